/* Control messages of received datagrams: see ancillary.h. */
#ifndef _GNU_SOURCE
#  define _GNU_SOURCE           /* struct in6_pktinfo in glibc */
#endif
#define __APPLE_USE_RFC_3542    /* ... and on macOS */
#include "ancillary.h"

#include <netinet/in.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#if defined(__linux__)
#  include <netinet/udp.h>      /* SOL_UDP, UDP_GRO */
#endif

#ifndef SO_RXQ_OVFL
#  define SO_RXQ_OVFL (-1)
#endif

/* Close the descriptors of one SCM_RIGHTS/SCM_PIDFD message (see ancillary.h). */
static void close_passed(struct cmsghdr *c)
{
    unsigned char *data = CMSG_DATA(c);
    size_t i, n;
    int fd, none = -1;
    if (c->cmsg_len < CMSG_LEN(0))
        return;
    n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (i = 0; i < n; i++) {
        memcpy(&fd, data + i * sizeof(int), sizeof(int));
        if (fd >= 0)
            close(fd);
        memcpy(data + i * sizeof(int), &none, sizeof(int));
    }
}

void hs_control_parse(struct msghdr *msg, hs_rx_meta *meta, hs_rx_drops *drops)
{
    struct cmsghdr *c;
    meta->timestamp_ns = 0;
    meta->dst_family = 0;
    meta->gro_size = 0;
    if (msg->msg_controllen == 0)
        return;
    for (c = CMSG_FIRSTHDR(msg); c != NULL; c = CMSG_NXTHDR(msg, c)) {
        /* Copies, not casts: CMSG_DATA need not be aligned for the struct. */
        if (c->cmsg_level == SOL_SOCKET) {
            if (c->cmsg_type == SCM_RIGHTS
#ifdef SCM_PIDFD
                    || c->cmsg_type == SCM_PIDFD
#endif
                    ) {
                close_passed(c);
                msg->msg_flags |= MSG_CTRUNC;
                continue;
            }
#ifdef SCM_TIMESTAMPNS
            if (c->cmsg_type == SCM_TIMESTAMPNS
                    && c->cmsg_len >= CMSG_LEN(sizeof(struct timespec))) {
                struct timespec ts;
                memcpy(&ts, CMSG_DATA(c), sizeof(ts));
                meta->timestamp_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
                continue;
            }
#endif
            if (c->cmsg_type == SO_RXQ_OVFL && c->cmsg_len >= CMSG_LEN(sizeof(uint32_t))) {
                memcpy(&drops->counter, CMSG_DATA(c), sizeof(uint32_t));
                drops->seen = 1;
            }
        }
#ifdef UDP_GRO
        else if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO
                 && c->cmsg_len >= CMSG_LEN(sizeof(int))) {
            memcpy(&meta->gro_size, CMSG_DATA(c), sizeof(int));
        }
#endif
#ifdef IP_PKTINFO
        else if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO
                 && c->cmsg_len >= CMSG_LEN(sizeof(struct in_pktinfo))) {
            struct in_pktinfo info;
            memcpy(&info, CMSG_DATA(c), sizeof(info));
            meta->dst_family = AF_INET;
            meta->ifindex = (uint32_t)info.ipi_ifindex;
            /* ipi_addr is the header's destination; ipi_spec_dst the local route's. */
            memcpy(meta->dst_addr, &info.ipi_addr, 4);
        }
#endif
#ifdef IPV6_PKTINFO
        else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO
                 && c->cmsg_len >= CMSG_LEN(sizeof(struct in6_pktinfo))) {
            struct in6_pktinfo info;
            memcpy(&info, CMSG_DATA(c), sizeof(info));
            meta->dst_family = AF_INET6;
            meta->ifindex = (uint32_t)info.ipi6_ifindex;
            memcpy(meta->dst_addr, &info.ipi6_addr, 16);
        }
#endif
    }
}
