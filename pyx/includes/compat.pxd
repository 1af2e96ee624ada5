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

    int hs_recvmmsg(int fd, mmsghdr *v, unsigned int n, int flags)
    int hs_sendmmsg(int fd, mmsghdr *v, unsigned int n, int flags)
    size_t hs_cmsg_space(size_t length)
    long long hs_monotonic_ns()
