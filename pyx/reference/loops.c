/* Plain C reference loops for `hotsock bench`.
 *
 * These are what a C programmer would write: no Python, no per-call
 * argument parsing, a fixed buffer.  They are compiled into the package so
 * that the benchmark's ratios against C can be measured from an installed
 * wheel on a machine without a compiler.  Each returns the number of
 * datagrams moved, or -errno if the first call failed (-ENOSYS for the
 * GSO/GRO loops where the system lacks UDP_SEGMENT/UDP_GRO).
 */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE   /* recvmmsg, sendmmsg and struct mmsghdr in glibc */
#endif
#include "loops.h"
#include "core/pcap.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <time.h>

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "../includes/compat.h"

#define REF_MAX_BATCH 1024

/* Point msgs[i] at slot i of a batch*size arena; name/namelen as given. */
static void setup_msgs(struct mmsghdr *msgs, struct iovec *iovs, char *arena,
                       int batch, size_t size, void *names, size_t name_stride,
                       socklen_t name_len)
{
    int i;
    memset(msgs, 0, sizeof(*msgs) * (size_t)batch);
    for (i = 0; i < batch; i++) {
        iovs[i].iov_base = arena + (size_t)i * size;
        iovs[i].iov_len = size;
        msgs[i].msg_hdr.msg_iov = &iovs[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
        msgs[i].msg_hdr.msg_name = (char *)names + (size_t)i * name_stride;
        msgs[i].msg_hdr.msg_namelen = name_len;
    }
}

long long hs_ref_recvfrom(int fd, long long total, size_t size)
{
    char *buf = malloc(size ? size : 1);
    struct sockaddr_storage from;
    socklen_t from_len;
    long long done = 0;
    if (!buf)
        return -ENOMEM;
    while (done < total) {
        from_len = sizeof(from);
        if (recvfrom(fd, buf, size, 0, (struct sockaddr *)&from, &from_len) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        done++;
    }
    free(buf);
    return (done || total == 0) ? done : -errno;
}

long long hs_ref_recvmmsg(int fd, long long total, int batch, size_t size)
{
    struct mmsghdr msgs[REF_MAX_BATCH];
    struct iovec iovs[REF_MAX_BATCH];
    struct sockaddr_storage names[REF_MAX_BATCH];
    char *arena;
    long long done = 0;
    int i, n, want;
    if (batch < 1 || batch > REF_MAX_BATCH)
        return -EINVAL;
    arena = malloc((size_t)batch * (size ? size : 1));
    if (!arena)
        return -ENOMEM;
    setup_msgs(msgs, iovs, arena, batch, size, names, sizeof(names[0]), sizeof(names[0]));
    while (done < total) {
        want = total - done < batch ? (int)(total - done) : batch;
        for (i = 0; i < want; i++)
            msgs[i].msg_hdr.msg_namelen = sizeof(names[i]);
        n = hs_recvmmsg(fd, msgs, (unsigned int)want, MSG_WAITFORONE);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        done += n;
    }
    free(arena);
    return (done || total == 0) ? done : -errno;
}

/* What a C programmer would write to capture: recvmmsg with the kernel's
 * receive timestamps (SO_TIMESTAMPNS), each datagram written as a pcap
 * record with pyx/core/pcap.c, the writer hotsock.capture uses too.  The
 * socket is bound to one address, so the destination is that address. */
long long hs_ref_capture(int fd, int out_fd, long long total, int batch, size_t size)
{
    struct mmsghdr msgs[REF_MAX_BATCH];
    struct iovec iovs[REF_MAX_BATCH];
    struct sockaddr_storage names[REF_MAX_BATCH];
    static char control[REF_MAX_BATCH][64];
    struct sockaddr_storage local;
    socklen_t local_len = sizeof(local);
    hs_endpoint src, dst;
    hs_pcap_writer w;
    char *arena;
    long long done = 0;
    int i, n, want, on = 1;
    if (batch < 1 || batch > REF_MAX_BATCH)
        return -EINVAL;
    if (setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof(on)) < 0
            || getsockname(fd, (struct sockaddr *)&local, &local_len) < 0)
        return -errno;
    hs_endpoint_from(&dst, (struct sockaddr *)&local);
    arena = malloc((size_t)batch * (size ? size : 1));
    if (!arena)
        return -ENOMEM;
    if (hs_pcap_open(&w, out_fd, HS_PCAP, 262144, 1 << 20) < 0) {
        free(arena);
        return -errno;
    }
    setup_msgs(msgs, iovs, arena, batch, size, names, sizeof(names[0]), sizeof(names[0]));
    while (done < total) {
        want = total - done < batch ? (int)(total - done) : batch;
        for (i = 0; i < want; i++) {
            msgs[i].msg_hdr.msg_namelen = sizeof(names[i]);
            msgs[i].msg_hdr.msg_control = control[i];
            msgs[i].msg_hdr.msg_controllen = sizeof(control[i]);
        }
        n = hs_recvmmsg(fd, msgs, (unsigned int)want, MSG_WAITFORONE | MSG_TRUNC);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        for (i = 0; i < n; i++) {
            struct cmsghdr *c;
            struct timespec ts = {0, 0};
            size_t have = msgs[i].msg_len < size ? msgs[i].msg_len : size;
            for (c = CMSG_FIRSTHDR(&msgs[i].msg_hdr); c; c = CMSG_NXTHDR(&msgs[i].msg_hdr, c))
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS)
                    memcpy(&ts, CMSG_DATA(c), sizeof(ts));
            hs_endpoint_from(&src, (struct sockaddr *)&names[i]);
            hs_pcap_write(&w, (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec, &src, &dst,
                          (unsigned char *)iovs[i].iov_base, have, msgs[i].msg_len);
        }
        done += n;
    }
    hs_pcap_flush(&w);
    hs_pcap_free(&w);
    free(arena);
    return (done || total == 0) ? done : -errno;
}

long long hs_ref_sendto(int fd, const struct sockaddr *to, socklen_t to_len,
                        long long total, size_t size)
{
    char *buf = calloc(1, size ? size : 1);
    long long done = 0;
    if (!buf)
        return -ENOMEM;
    while (done < total) {
        if (sendto(fd, buf, size, 0, to, to_len) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        done++;
    }
    free(buf);
    return (done || total == 0) ? done : -errno;
}

long long hs_ref_sendmmsg(int fd, const struct sockaddr *to, socklen_t to_len,
                          long long total, int batch, size_t size)
{
    struct mmsghdr msgs[REF_MAX_BATCH];
    struct iovec iovs[REF_MAX_BATCH];
    char *arena;
    long long done = 0;
    int n, want;
    if (batch < 1 || batch > REF_MAX_BATCH)
        return -EINVAL;
    arena = calloc((size_t)batch, size ? size : 1);
    if (!arena)
        return -ENOMEM;
    /* Every datagram to the same destination: a name stride of 0. */
    setup_msgs(msgs, iovs, arena, batch, size, (void *)to, 0, to_len);
    while (done < total) {
        want = total - done < batch ? (int)(total - done) : batch;
        n = hs_sendmmsg(fd, msgs, (unsigned int)want, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        done += n;
    }
    free(arena);
    return (done || total == 0) ? done : -errno;
}

/* An echo server: recvmmsg up to *batch* (MSG_WAITFORONE), then sendmmsg the
 * same messages -- payload and sender address, from the same memory -- back
 * to their senders, until *total* datagrams have been received and echoed. */
long long hs_ref_echo(int fd, long long total, int batch, size_t size)
{
    struct mmsghdr msgs[REF_MAX_BATCH];
    struct iovec iovs[REF_MAX_BATCH];
    struct sockaddr_storage names[REF_MAX_BATCH];
    char *arena;
    long long done = 0;
    int i, n, k, sent, want;
    if (batch < 1 || batch > REF_MAX_BATCH)
        return -EINVAL;
    arena = malloc((size_t)batch * (size ? size : 1));
    if (!arena)
        return -ENOMEM;
    setup_msgs(msgs, iovs, arena, batch, size, names, sizeof(names[0]), sizeof(names[0]));
    while (done < total) {
        want = total - done < batch ? (int)(total - done) : batch;
        for (i = 0; i < want; i++) {
            iovs[i].iov_len = size;
            msgs[i].msg_hdr.msg_namelen = sizeof(names[i]);
        }
        n = hs_recvmmsg(fd, msgs, (unsigned int)want, MSG_WAITFORONE);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        /* Send back what arrived; msg_namelen is the sender's, as received. */
        for (i = 0; i < n; i++)
            iovs[i].iov_len = msgs[i].msg_len < size ? msgs[i].msg_len : size;
        for (sent = 0; sent < n; sent += k) {
            k = hs_sendmmsg(fd, msgs + sent, (unsigned int)(n - sent), 0);
            if (k < 0) {
                if (errno == EINTR) {
                    k = 0;
                    continue;
                }
                goto out;
            }
        }
        done += n;
    }
out:
    free(arena);
    return (done || total == 0) ? done : -errno;
}

/* --- UDP segmentation offload (GSO) and receive coalescing (GRO) ---------- */

/* Messages per sendmmsg call in the GSO loop: 16 segmented sends of up to 64
 * datagrams each, 1024 datagrams a call (as hotsock.blast does by default). */
#define REF_GSO_MESSAGES 16
/* UDP_MAX_SEGMENTS, and the most payload one segmented send may carry. */
#define REF_GSO_MAX_SEGMENTS 64
#define REF_GSO_MAX_BYTES 65487

#ifdef UDP_SEGMENT
/* Segmented sends (UDP_SEGMENT): each message is one contiguous buffer of
 * up to *segments_per_send* datagrams of *size* bytes, with the segment size
 * in a control message; REF_GSO_MESSAGES messages per sendmmsg call, until
 * *total* datagrams are sent. */
long long hs_ref_gso_send(int fd, const struct sockaddr *to, socklen_t to_len,
                          long long total, int segments_per_send, size_t size)
{
    struct mmsghdr msgs[REF_GSO_MESSAGES];
    struct iovec iovs[REF_GSO_MESSAGES];
    union {     /* aligned for struct cmsghdr */
        char buf[CMSG_SPACE(sizeof(uint16_t))];
        struct cmsghdr align;
    } control[REF_GSO_MESSAGES];
    struct cmsghdr *c;
    uint16_t segment = (uint16_t)size;
    char *buf;
    long long done = 0, left;
    int i, n, want, per;
    if (segments_per_send < 1 || segments_per_send > REF_GSO_MAX_SEGMENTS || size < 1
            || (size_t)segments_per_send * size > REF_GSO_MAX_BYTES)
        return -EINVAL;
    buf = calloc((size_t)REF_GSO_MESSAGES * (size_t)segments_per_send, size);
    if (!buf)
        return -ENOMEM;
    memset(msgs, 0, sizeof(msgs));
    memset(control, 0, sizeof(control));
    for (i = 0; i < REF_GSO_MESSAGES; i++) {
        iovs[i].iov_base = buf + (size_t)i * (size_t)segments_per_send * size;
        msgs[i].msg_hdr.msg_iov = &iovs[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
        msgs[i].msg_hdr.msg_name = (void *)to;
        msgs[i].msg_hdr.msg_namelen = to_len;
        msgs[i].msg_hdr.msg_control = control[i].buf;
        msgs[i].msg_hdr.msg_controllen = sizeof(control[i].buf);
        c = CMSG_FIRSTHDR(&msgs[i].msg_hdr);
        c->cmsg_level = SOL_UDP;
        c->cmsg_type = UDP_SEGMENT;
        c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
        memcpy(CMSG_DATA(c), &segment, sizeof(segment));
    }
    while (done < total) {
        /* The datagrams left, as full messages and a last shorter one. */
        left = total - done;
        for (want = 0; want < REF_GSO_MESSAGES && left > 0; want++) {
            per = left < segments_per_send ? (int)left : segments_per_send;
            iovs[want].iov_len = (size_t)per * size;
            left -= per;
        }
        n = hs_sendmmsg(fd, msgs, (unsigned int)want, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        for (i = 0; i < n; i++)
            done += (long long)(iovs[i].iov_len / size);
    }
    free(buf);
    return (done || total == 0) ? done : -errno;
}
#else
long long hs_ref_gso_send(int fd, const struct sockaddr *to, socklen_t to_len,
                          long long total, int segments_per_send, size_t size)
{
    (void)fd; (void)to; (void)to_len; (void)total; (void)segments_per_send; (void)size;
    return -ENOSYS;
}
#endif

#ifdef UDP_GRO
/* The GRO loop's buffers (64 of 64 KiB: 4 MiB) are kept from call to call,
 * per thread, as a program would allocate them once: a fresh block each
 * call would cost the loop the page faults of its first touch every time
 * (hotsock's RecvBatch is allocated once too). */
static __thread char *gro_arena;
static __thread size_t gro_arena_size;

/* Coalesced receives (UDP_GRO, turned on here): recvmmsg of up to *buffers*
 * buffers of *buffer_size* bytes (MSG_WAITFORONE), each holding one
 * datagram or several of the segment size the UDP_GRO control message gives
 * (the last may be shorter), until *total* datagrams are received.  Returns
 * the datagrams received: more than *total* when the last buffers held
 * more than were wanted. */
long long hs_ref_gro_recv(int fd, long long total, int buffers, size_t buffer_size)
{
    struct mmsghdr msgs[REF_MAX_BATCH];
    struct iovec iovs[REF_MAX_BATCH];
    struct sockaddr_storage names[REF_MAX_BATCH];
    union {     /* aligned for struct cmsghdr */
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } control[REF_MAX_BATCH];
    struct cmsghdr *c;
    size_t need;
    long long done = 0;
    int i, n, want, on = 1, segment;
    unsigned int len;
    if (buffers < 1 || buffers > REF_MAX_BATCH || buffer_size < 1)
        return -EINVAL;
    if (setsockopt(fd, SOL_UDP, UDP_GRO, &on, sizeof(on)) < 0)
        return -errno;
    need = (size_t)buffers * buffer_size;
    if (gro_arena_size < need) {
        free(gro_arena);
        gro_arena_size = 0;
        gro_arena = malloc(need);
        if (!gro_arena)
            return -ENOMEM;
        gro_arena_size = need;
    }
    setup_msgs(msgs, iovs, gro_arena, buffers, buffer_size, names, sizeof(names[0]),
               sizeof(names[0]));
    while (done < total) {
        /* Each buffer holds at least one datagram: never ask for more
         * buffers than datagrams are wanted. */
        want = total - done < buffers ? (int)(total - done) : buffers;
        for (i = 0; i < want; i++) {
            msgs[i].msg_hdr.msg_namelen = sizeof(names[i]);
            msgs[i].msg_hdr.msg_control = control[i].buf;
            msgs[i].msg_hdr.msg_controllen = sizeof(control[i].buf);
        }
        n = hs_recvmmsg(fd, msgs, (unsigned int)want, MSG_WAITFORONE);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        for (i = 0; i < n; i++) {
            segment = 0;
            for (c = CMSG_FIRSTHDR(&msgs[i].msg_hdr); c != NULL;
                    c = CMSG_NXTHDR(&msgs[i].msg_hdr, c)) {
                if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
                    memcpy(&segment, CMSG_DATA(c), sizeof(segment));
                    break;
                }
            }
            len = msgs[i].msg_len;
            done += (segment > 0 && len > (unsigned int)segment)
                ? (len + (unsigned int)segment - 1) / (unsigned int)segment : 1;
        }
    }
    return (done || total == 0) ? done : -errno;
}
#else
long long hs_ref_gro_recv(int fd, long long total, int buffers, size_t buffer_size)
{
    (void)fd; (void)total; (void)buffers; (void)buffer_size;
    return -ENOSYS;
}
#endif
