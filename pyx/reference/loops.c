/* Plain C reference loops for `hotsock bench`.
 *
 * These are what a C programmer would write: no Python, no per-call
 * argument parsing, a fixed buffer.  They are compiled into the package so
 * that the benchmark's ratios against C can be measured from an installed
 * wheel on a machine without a compiler.  Each returns the number of
 * datagrams moved, or -errno if the first call failed.
 */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE   /* recvmmsg, sendmmsg and struct mmsghdr in glibc */
#endif
#include "loops.h"

#include <errno.h>
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
