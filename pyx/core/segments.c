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

size_t hs_gso_join(struct mmsghdr *out, size_t m, struct iovec *joined)
{
    size_t j, i, count = 0;
    for (j = 0; j < m; j++) {
        struct msghdr *h = &out[j].msg_hdr;
        const struct iovec *v = h->msg_iov;
        char *end;
        if (h->msg_iovlen < 2)
            continue;
        end = (char *)v[0].iov_base + v[0].iov_len;
        for (i = 1; i < h->msg_iovlen; i++) {
            if (v[i].iov_base != end)
                break;
            end += v[i].iov_len;
        }
        if (i < h->msg_iovlen)
            continue;           /* not one run of memory: left as it is */
        joined[j].iov_base = v[0].iov_base;
        joined[j].iov_len = (size_t)(end - (char *)v[0].iov_base);
        h->msg_iov = &joined[j];
        h->msg_iovlen = 1;
        count++;
    }
    return count;
}

static int stageable(const struct msghdr *h, size_t max_segment)
{
    return h->msg_iovlen > 1 && h->msg_iov[0].iov_len <= max_segment;
}

size_t hs_gso_stage_size(const struct mmsghdr *out, size_t m, size_t max_segment)
{
    size_t j, i, total = 0;
    for (j = 0; j < m; j++) {
        const struct msghdr *h = &out[j].msg_hdr;
        if (stageable(h, max_segment))
            for (i = 0; i < h->msg_iovlen; i++)
                total += h->msg_iov[i].iov_len;
    }
    return total;
}

void hs_gso_stage(struct mmsghdr *out, size_t m, size_t max_segment,
                  unsigned char *stage, struct iovec *joined)
{
    size_t j, i;
    for (j = 0; j < m; j++) {
        struct msghdr *h = &out[j].msg_hdr;
        unsigned char *start = stage;
        if (!stageable(h, max_segment))
            continue;
        for (i = 0; i < h->msg_iovlen; i++) {
            memcpy(stage, h->msg_iov[i].iov_base, h->msg_iov[i].iov_len);
            stage += h->msg_iov[i].iov_len;
        }
        joined[j].iov_base = start;
        joined[j].iov_len = (size_t)(stage - start);
        h->msg_iov = &joined[j];
        h->msg_iovlen = 1;
    }
}
