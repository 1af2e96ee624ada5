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

/* *out*: one send to *name* of the iovlen iovecs at *iov*, carrying k
 * datagrams (k > 1: cut at *segment* bytes, told in *control*). */
static void group(struct mmsghdr *out, void *name, socklen_t name_len, struct iovec *iov,
                  size_t iovlen, size_t k, size_t segment, char *control)
{
    memset(out, 0, sizeof(*out));
    out->msg_hdr.msg_name = name;
    out->msg_hdr.msg_namelen = name_len;
    out->msg_hdr.msg_iov = iov;
    out->msg_hdr.msg_iovlen = iovlen;
    if (k > 1)
        hs_gso_attach(out, control, (uint16_t)segment);
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
        group(&out[m], first->msg_name, first->msg_namelen, first->msg_iov, k, k, segment,
              control + m * HS_SEGMENT_CONTROL);
        datagrams[m++] = (uint32_t)k;
        i += k;
    }
    return m;
}

/* The datagram of iovs' slot, read once and checked: 0, or -1 with *bad set. */
static int arena_length(const uint32_t *lengths, size_t i, size_t slot_size, size_t *length,
                        size_t *bad)
{
    uint32_t value = lengths[i];
    if (value > slot_size) {
        *bad = i;
        return -1;
    }
    *length = value;
    return 0;
}

size_t hs_gso_build_arena(char *arena, size_t slot_size, const uint32_t *lengths, size_t n,
                          size_t max_segment, void *name, socklen_t name_len,
                          struct iovec *iovs, struct mmsghdr *out,
                          char *control, uint32_t *datagrams, size_t *bad)
{
    size_t i = 0, m = 0, j, next = 0;
    int have_next = 0;
    while (i < n) {
        size_t segment, total, k = 1;
        if (have_next)
            segment = next;     /* read once already, by the group before */
        else if (arena_length(lengths, i, slot_size, &segment, bad) < 0)
            return 0;
        have_next = 0;
        total = segment;
        /* The groups hs_gso_build makes: equal lengths, the last may be
         * shorter, at most HS_GSO_MAX_SEGMENTS and HS_GSO_MAX_BYTES.  The run
         * of equal lengths first (one compare each: this loop is the cost
         * per datagram), then the one after it, which may end the group. */
        if (segment > 0 && segment <= max_segment && segment <= 0xFFFF) {
            size_t room = n - i < HS_GSO_MAX_SEGMENTS ? n - i : HS_GSO_MAX_SEGMENTS;
            size_t full = HS_GSO_MAX_BYTES / segment < room ? HS_GSO_MAX_BYTES / segment : room;
            /* Eight at a time while all are equal (a loop without an early
             * exit, which the compiler vectorizes), then one by one. */
            while (k + 8 <= full) {
                uint32_t differ = 0;
                for (j = 0; j < 8; j++)
                    differ |= lengths[i + k + j] ^ (uint32_t)segment;
                if (differ)
                    break;
                k += 8;
            }
            while (k < full) {
                uint32_t value = lengths[i + k];
                if (value != segment) {
                    next = value;
                    have_next = 1;
                    break;
                }
                k++;
            }
            if (!have_next && k < room) {
                next = lengths[i + k];  /* no room for another full one: a shorter one? */
                have_next = 1;
            }
            total = k * segment;
            if (have_next) {
                if (next > slot_size) {
                    *bad = i + k;
                    return 0;
                }
                if (next > 0 && next < segment && total + next <= HS_GSO_MAX_BYTES) {
                    total += next;      /* the shorter last datagram */
                    k++;
                    have_next = 0;
                }
            }
        }
        if (k > 1 && segment == slot_size) {
            /* Full slots back to back: one buffer over the arena. */
            iovs[i].iov_base = arena + i * slot_size;
            iovs[i].iov_len = total;
            group(&out[m], name, name_len, &iovs[i], 1, k, segment,
                  control + m * HS_SEGMENT_CONTROL);
        } else {
            for (j = 0; j < k; j++) {
                iovs[i + j].iov_base = arena + (i + j) * slot_size;
                iovs[i + j].iov_len = j + 1 < k ? segment : total - (k - 1) * segment;
            }
            group(&out[m], name, name_len, &iovs[i], k, k, segment,
                  control + m * HS_SEGMENT_CONTROL);
        }
        datagrams[m++] = (uint32_t)k;
        i += k;
    }
    return m;
}

void hs_gso_split_arena(const struct mmsghdr *out, size_t m, const uint32_t *datagrams,
                        size_t slot_size, struct iovec *iovs)
{
    size_t j, t, first = 0;
    for (j = 0; j < m; j++) {
        size_t k = datagrams[j];
        if (k > 1 && out[j].msg_hdr.msg_iovlen == 1 && out[j].msg_hdr.msg_iov == &iovs[first]) {
            char *base = iovs[first].iov_base;
            size_t total = iovs[first].iov_len;
            for (t = 0; t < k; t++) {
                iovs[first + t].iov_base = base + t * slot_size;
                iovs[first + t].iov_len = t + 1 < k ? slot_size : total - (k - 1) * slot_size;
            }
        }
        first += k;
    }
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
