/* Control messages of received datagrams: what the kernel says besides the
 * payload.  One parser for RecvBatch and the C hot loops, so that the
 * receive timestamp (SO_TIMESTAMPNS), the destination address
 * (IP_PKTINFO / IPV6_PKTINFO), the socket's drop counter (SO_RXQ_OVFL) and
 * the segment size of a coalesced buffer (UDP_GRO) mean the same everywhere.
 *
 * Descriptors a peer attached (SCM_RIGHTS on AF_UNIX, SCM_PIDFD) are
 * installed by the kernel as soon as there is control room for them; nobody
 * asked hotsock for them, so the parser closes them and flags the datagram
 * MSG_CTRUNC -- what the kernel itself does when there is no room (the
 * stdlib's recv() and recvfrom() give none).  Receive with
 * MSG_CMSG_CLOEXEC, so that a fork+exec in another thread meanwhile does
 * not inherit them either.
 */
#ifndef HOTSOCK_ANCILLARY_H
#define HOTSOCK_ANCILLARY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Room per datagram for every control message hotsock asks for, with slack
 * for ones it did not (a socket option set by someone else): a message that
 * does not fit sets MSG_CTRUNC, which is reported, never ignored. */
#define HS_CONTROL_SPACE 256

/* Control room per slot rounded up to the alignment of struct cmsghdr (as
 * CMSG_ALIGN, which not every system exports), so that every slot's control
 * messages start where the parser may read them as structs. */
#define HS_CONTROL_ALIGN (_Alignof(struct cmsghdr) > sizeof(size_t) \
                          ? _Alignof(struct cmsghdr) : sizeof(size_t))
static inline size_t hs_control_room(size_t requested)
{
    return (requested + HS_CONTROL_ALIGN - 1) / HS_CONTROL_ALIGN * HS_CONTROL_ALIGN;
}

typedef struct {
    int64_t timestamp_ns;       /* kernel receive time, ns since the epoch; 0 = none */
    int dst_family;             /* AF_INET / AF_INET6 from *_PKTINFO; 0 = none */
    uint32_t ifindex;           /* interface it arrived on (with dst_family) */
    unsigned char dst_addr[16]; /* 4 or 16 bytes, network order */
    int gro_size;               /* UDP_GRO: the buffer holds segments of this size; 0 = one datagram */
} hs_rx_meta;

/* The socket's cumulative drop counter, as last reported (SO_RXQ_OVFL). */
typedef struct {
    uint32_t counter;
    int seen;
} hs_rx_drops;

/* Fill *meta from msg's control messages; update *drops if one carries the
 * counter.  Closes the descriptors a message carries (overwriting them with
 * -1, so a second parse of the same message closes nothing) and then sets
 * MSG_CTRUNC in msg->msg_flags.  Call it once for each message received. */
void hs_control_parse(struct msghdr *msg, hs_rx_meta *meta, hs_rx_drops *drops);

#endif
