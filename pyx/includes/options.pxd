# <netinet/in.h>, <netinet/tcp.h>, <net/if.h> and compat.h: socket option values.
from libc.stdint cimport uint32_t
from includes.socket cimport sockaddr_storage
from includes.netinet cimport in_addr, in6_addr

cdef extern from "<netinet/in.h>" nogil:
    struct ip_mreq:
        in_addr imr_multiaddr
        in_addr imr_interface

    # Field order differs between Linux and the BSDs: fields are set by name.
    struct ip_mreq_source:
        in_addr imr_multiaddr
        in_addr imr_interface
        in_addr imr_sourceaddr

    struct ipv6_mreq:
        in6_addr ipv6mr_multiaddr
        unsigned int ipv6mr_interface

    struct group_req:
        uint32_t gr_interface
        sockaddr_storage gr_group

    struct group_source_req:
        uint32_t gsr_interface
        sockaddr_storage gsr_group
        sockaddr_storage gsr_source

    enum: IPPROTO_IP
    enum: IPPROTO_IPV6
    enum: IPPROTO_TCP
    enum: IP_ADD_MEMBERSHIP
    enum: IP_DROP_MEMBERSHIP
    enum: IP_ADD_SOURCE_MEMBERSHIP
    enum: IP_DROP_SOURCE_MEMBERSHIP
    enum: IP_BLOCK_SOURCE
    enum: IP_UNBLOCK_SOURCE
    enum: IP_MULTICAST_TTL
    enum: IP_MULTICAST_LOOP
    enum: IP_MULTICAST_IF
    enum: IP_TTL
    enum: IP_TOS
    enum: IPV6_JOIN_GROUP
    enum: IPV6_LEAVE_GROUP
    enum: IPV6_MULTICAST_HOPS
    enum: IPV6_MULTICAST_LOOP
    enum: IPV6_MULTICAST_IF
    enum: IPV6_UNICAST_HOPS
    enum: MCAST_JOIN_GROUP
    enum: MCAST_LEAVE_GROUP
    enum: MCAST_JOIN_SOURCE_GROUP
    enum: MCAST_LEAVE_SOURCE_GROUP
    enum: MCAST_BLOCK_SOURCE
    enum: MCAST_UNBLOCK_SOURCE

cdef extern from "<netinet/tcp.h>" nogil:
    enum: TCP_NODELAY
    enum: TCP_MAXSEG

cdef extern from "<net/if.h>" nogil:
    unsigned int if_nametoindex(const char *name)

cdef extern from "<sys/time.h>" nogil:
    struct timeval:
        long tv_sec
        long tv_usec

cdef extern from "<sys/socket.h>" nogil:
    struct linger:
        int l_onoff
        int l_linger
    enum: SO_LINGER
    enum: SO_RCVTIMEO
    enum: SO_SNDTIMEO
    enum: SO_KEEPALIVE
    enum: SO_RCVBUF
    enum: SO_SNDBUF
    enum: SO_REUSEADDR
    enum: SO_BROADCAST
    enum: SO_OOBINLINE
    enum: SO_DONTROUTE
    enum: SO_ERROR

cdef extern from "includes/compat.h" nogil:
    ctypedef struct hs_ip_mreqn:
        in_addr imr_multiaddr
        in_addr imr_address
        int imr_ifindex
    enum: HS_HAVE_IP_MREQN
    enum: HS_TCP_KEEPIDLE
    enum: TCP_KEEPINTVL
    enum: TCP_KEEPCNT
    enum: SO_RCVBUFFORCE
    enum: SO_SNDBUFFORCE
    enum: SO_REUSEPORT
