/* Control messages of received datagrams: what the kernel says besides the
 * payload.  One parser for RecvBatch and the C hot loops, so that the
 * receive timestamp (SO_TIMESTAMPNS), the destination address
 * (IP_PKTINFO / IPV6_PKTINFO), the socket's drop counter (SO_RXQ_OVFL) and
 * the segment size of a coalesced buffer (UDP_GRO) mean the same everywhere.
 */
#ifndef HOTSOCK_ANCILLARY_H
#define HOTSOCK_ANCILLARY_H

#include <stdint.h>
#include <sys/socket.h>

/* Room per datagram for every control message hotsock asks for, with slack
 * for ones it did not (a socket option set by someone else): a message that
 * does not fit sets MSG_CTRUNC, which is reported, never ignored. */
#define HS_CONTROL_SPACE 256

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

/* Fill *meta from msg's control messages; update *drops if one carries the counter. */
void hs_control_parse(const struct msghdr *msg, hs_rx_meta *meta, hs_rx_drops *drops);

#endif
