/* Platform shims for hotsock's compiled core.
 *
 * Everything that differs between Linux, macOS and the BSDs is decided here,
 * once, so that the .pyx modules can use one spelling everywhere.  Where a
 * feature is missing the shim compiles to a call that fails with ENOSYS, and
 * the run-time probe in _batch.pyx then picks the portable fallback.
 */
#ifndef HOTSOCK_COMPAT_H
#define HOTSOCK_COMPAT_H

/* glibc declares recvmmsg/sendmmsg only with _GNU_SOURCE; Python.h (always
 * included first by Cython) defines it, C files define it themselves. */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <netinet/in.h>
#include <errno.h>
#include <limits.h>
#include <time.h>

/* recvmmsg/sendmmsg: Linux (glibc and musl, whose flags argument is
 * unsigned) and FreeBSD >= 11 have them; macOS does not. */
#if defined(__linux__) || (defined(__FreeBSD__) && __FreeBSD__ >= 11)
#  define HS_HAVE_MMSG 1
static inline int hs_recvmmsg(int fd, struct mmsghdr *v, unsigned int n, int flags)
{
    return recvmmsg(fd, v, n, flags, NULL);
}
static inline int hs_sendmmsg(int fd, struct mmsghdr *v, unsigned int n, int flags)
{
    return sendmmsg(fd, v, n, flags);
}
#else
#  define HS_HAVE_MMSG 0
struct mmsghdr {
    struct msghdr msg_hdr;
    unsigned int msg_len;
};
static inline int hs_recvmmsg(int fd, struct mmsghdr *v, unsigned int n, int flags)
{
    (void)fd; (void)v; (void)n; (void)flags;
    errno = ENOSYS;
    return -1;
}
static inline int hs_sendmmsg(int fd, struct mmsghdr *v, unsigned int n, int flags)
{
    (void)fd; (void)v; (void)n; (void)flags;
    errno = ENOSYS;
    return -1;
}
#endif

/* Flags that only some systems know become no-ops elsewhere. */
#ifndef MSG_WAITFORONE
#  define MSG_WAITFORONE 0
#endif
#ifndef MSG_CONFIRM
#  define MSG_CONFIRM 0
#endif
#ifndef MSG_NOSIGNAL
#  define MSG_NOSIGNAL 0
#endif
#ifndef MSG_CMSG_CLOEXEC
#  define MSG_CMSG_CLOEXEC 0
#endif

/* The kernel caps recvmmsg/sendmmsg's vlen at UIO_MAXIOV (1024 on Linux). */
#if defined(UIO_MAXIOV)
#  define HS_MAX_BATCH UIO_MAXIOV
#elif defined(IOV_MAX)
#  define HS_MAX_BATCH IOV_MAX
#else
#  define HS_MAX_BATCH 1024
#endif

/* ip_mreqn (join or pick the multicast interface by index or address) is
 * Linux's; elsewhere an index goes through RFC 3678's group_req instead and
 * this stand-in is never handed to the kernel. */
#if defined(__linux__)
#  define HS_HAVE_IP_MREQN 1
typedef struct ip_mreqn hs_ip_mreqn;
#else
#  define HS_HAVE_IP_MREQN 0
typedef struct {
    struct in_addr imr_multiaddr;
    struct in_addr imr_address;
    int imr_ifindex;
} hs_ip_mreqn;
#endif

/* TCP keepalive idle time: TCP_KEEPIDLE on Linux/BSD, TCP_KEEPALIVE on macOS. */
#include <netinet/tcp.h>
#if defined(TCP_KEEPIDLE)
#  define HS_TCP_KEEPIDLE TCP_KEEPIDLE
#elif defined(TCP_KEEPALIVE)
#  define HS_TCP_KEEPIDLE TCP_KEEPALIVE
#else
#  define HS_TCP_KEEPIDLE (-1)
#endif
#ifndef TCP_KEEPINTVL
#  define TCP_KEEPINTVL (-1)
#endif
#ifndef TCP_KEEPCNT
#  define TCP_KEEPCNT (-1)
#endif

/* Buffer sizes past net.core.[rw]mem_max (Linux, CAP_NET_ADMIN). */
#ifndef SO_RCVBUFFORCE
#  define SO_RCVBUFFORCE (-1)
#endif
#ifndef SO_SNDBUFFORCE
#  define SO_SNDBUFFORCE (-1)
#endif
#ifndef SO_REUSEPORT
#  define SO_REUSEPORT (-1)
#endif

/* Receive metadata options (control messages); -1 where the system has none. */
#ifdef SO_TIMESTAMPNS
#  define HS_SO_TIMESTAMPNS SO_TIMESTAMPNS
#else
#  define HS_SO_TIMESTAMPNS (-1)
#endif
#ifdef IP_PKTINFO
#  define HS_IP_PKTINFO IP_PKTINFO
#else
#  define HS_IP_PKTINFO (-1)
#endif
#ifdef SO_RXQ_OVFL
#  define HS_SO_RXQ_OVFL SO_RXQ_OVFL
#else
#  define HS_SO_RXQ_OVFL (-1)
#endif
/* The socket's memory counters; SK_MEMINFO_DROPS is its drop counter. */
#ifdef SO_MEMINFO
#  define HS_SO_MEMINFO SO_MEMINFO
#else
#  define HS_SO_MEMINFO (-1)
#endif

/* UDP segmentation offload (send) and receive coalescing (Linux >= 4.18 and
 * 5.0); -1 elsewhere, where the probes in _batch.pyx then report them off. */
#if defined(__linux__)
#  include <netinet/udp.h>
#endif
#ifndef SOL_UDP
#  define SOL_UDP 17
#endif
#ifdef UDP_SEGMENT
#  define HS_UDP_SEGMENT UDP_SEGMENT
#else
#  define HS_UDP_SEGMENT (-1)
#endif
#ifdef UDP_GRO
#  define HS_UDP_GRO UDP_GRO
#else
#  define HS_UDP_GRO (-1)
#endif
/* Segments per segmented send hotsock builds (UDP_MAX_SEGMENTS before Linux
 * 6.11), and per coalesced buffer it accepts: a local segmented send reaches
 * a GRO socket whole, and since 6.11 may carry 128. */
#define HS_GSO_MAX_SEGMENTS 64
#define HS_GRO_MAX_SEGMENTS 128
/* The most payload one segmented send carries: what fits one IPv6 packet's
 * 16-bit length with the headers (also within IPv4's). */
#define HS_GSO_MAX_BYTES 65487

/* CMSG_SPACE is a constant expression on Linux but not everywhere, so
 * control buffers are sized by a function. */
static inline size_t hs_cmsg_space(size_t len) { return CMSG_SPACE(len); }

static inline long long hs_monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Wall-clock time, for datagrams whose kernel timestamp is missing and for
 * the send times in sequence headers (comparable with SO_TIMESTAMPNS). */
static inline long long hs_realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Sleep until a CLOCK_MONOTONIC time (ns); returns early on a signal. */
static inline void hs_sleep_until_ns(long long when)
{
    struct timespec ts;
    ts.tv_sec = (time_t)(when / 1000000000LL);
    ts.tv_nsec = (long)(when % 1000000000LL);
#if defined(__linux__) || defined(__FreeBSD__)
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
#else
    long long left = when - hs_monotonic_ns();
    if (left > 0) {
        ts.tv_sec = (time_t)(left / 1000000000LL);
        ts.tv_nsec = (long)(left % 1000000000LL);
        nanosleep(&ts, NULL);
    }
#endif
}

#endif /* HOTSOCK_COMPAT_H */
