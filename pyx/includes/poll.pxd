# <poll.h>: readiness waits for socket timeouts.
cdef extern from "<poll.h>" nogil:
    struct pollfd:
        int fd
        short events
        short revents
    ctypedef unsigned long nfds_t
    enum: POLLIN
    enum: POLLOUT
    enum: POLLERR
    int poll(pollfd *fds, nfds_t nfds, int timeout)
