/* Grouping datagrams into segmented sends: see segments.h. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE           /* struct mmsghdr in glibc */
#endif
#include "segments.h"

#include <string.h>
#include <sys/socket.h>

static int same_destination(const struct msghdr *a, const struct msghdr *b)
{
    if (a->msg_name == b->msg_name)
        return 1;           /* one address for the whole batch, or both connected */
    return a->msg_namelen == b->msg_namelen && a->msg_name != NULL && b->msg_name != NULL
        && memcmp(a->msg_name, b->msg_name, a->msg_namelen) == 0;
}

void hs_gso_attach(struct mmsghdr *m, char *control, uint16_t segment)
{
#if HS_UDP_SEGMENT >= 0
    struct cmsghdr *c;
    memset(control, 0, HS_SEGMENT_CONTROL);
    m->msg_hdr.msg_control = control;
    m->msg_hdr.msg_controllen = CMSG_SPACE(sizeof(uint16_t));
    c = CMSG_FIRSTHDR(&m->msg_hdr);
    c->cmsg_level = SOL_UDP;
    c->cmsg_type = HS_UDP_SEGMENT;
    c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    memcpy(CMSG_DATA(c), &segment, sizeof(segment));
#else
    (void)m; (void)control; (void)segment;
#endif
}

size_t hs_gso_build(const struct mmsghdr *msgs, size_t n, size_t max_segment,
                    struct mmsghdr *out, char *control, uint32_t *datagrams)
{
    size_t i = 0, m = 0;
    while (i < n) {
        const struct msghdr *first = &msgs[i].msg_hdr;
        size_t segment = first->msg_iov[0].iov_len, total = segment, k = 1;
        if (segment > 0 && segment <= max_segment && segment <= 0xFFFF) {
            while (i + k < n && k < HS_GSO_MAX_SEGMENTS) {
                const struct msghdr *next = &msgs[i + k].msg_hdr;
                size_t length = next->msg_iov[0].iov_len;
                if (length == 0 || length > segment || total + length > HS_GSO_MAX_BYTES
                        || !same_destination(first, next))
                    break;
                total += length;
                k++;
                if (length < segment)
                    break;      /* only the last segment may be shorter */
            }
        }
        memset(&out[m], 0, sizeof(out[m]));
        out[m].msg_hdr.msg_name = first->msg_name;
        out[m].msg_hdr.msg_namelen = first->msg_namelen;
        out[m].msg_hdr.msg_iov = first->msg_iov;
        out[m].msg_hdr.msg_iovlen = k;
        if (k > 1)
            hs_gso_attach(&out[m], control + m * HS_SEGMENT_CONTROL, (uint16_t)segment);
        datagrams[m] = (uint32_t)k;
        m++;
        i += k;
    }
    return m;
}
