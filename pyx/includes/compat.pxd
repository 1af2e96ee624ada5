# compat.h: one spelling of platform-dependent features for every module.
from includes.socket cimport msghdr

cdef extern from "includes/compat.h" nogil:
    struct mmsghdr:
        msghdr msg_hdr
        unsigned int msg_len

    enum: HS_HAVE_MMSG
    enum: HS_MAX_BATCH
    enum: MSG_WAITFORONE
    enum: MSG_CONFIRM
    enum: MSG_CMSG_CLOEXEC
    enum: HS_SO_TIMESTAMPNS
    enum: HS_IP_PKTINFO
    enum: HS_SO_RXQ_OVFL
    enum: HS_SO_MEMINFO
    enum: SOL_UDP
    enum: HS_UDP_SEGMENT
    enum: HS_UDP_GRO
    enum: HS_GSO_MAX_SEGMENTS
    enum: HS_GRO_MAX_SEGMENTS
    enum: HS_GSO_MAX_BYTES

    int hs_recvmmsg(int fd, mmsghdr *v, unsigned int n, int flags)
    int hs_sendmmsg(int fd, mmsghdr *v, unsigned int n, int flags)
    size_t hs_cmsg_space(size_t length)
    long long hs_monotonic_ns()
    long long hs_realtime_ns()
    void hs_sleep_until_ns(long long when)
