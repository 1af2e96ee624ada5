# <sys/socket.h> and <sys/uio.h>: only what hotsock uses.

cdef extern from "<sys/uio.h>" nogil:
    struct iovec:
        void *iov_base
        size_t iov_len

cdef extern from "<sys/socket.h>" nogil:
    ctypedef unsigned int socklen_t
    ctypedef unsigned short sa_family_t

    struct sockaddr:
        sa_family_t sa_family

    struct sockaddr_storage:
        sa_family_t ss_family

    struct msghdr:
        void *msg_name
        socklen_t msg_namelen
        iovec *msg_iov
        size_t msg_iovlen
        void *msg_control
        size_t msg_controllen
        int msg_flags

    struct cmsghdr:
        size_t cmsg_len
        int cmsg_level
        int cmsg_type

    cmsghdr *CMSG_FIRSTHDR(msghdr *msg)
    cmsghdr *CMSG_NXTHDR(msghdr *msg, cmsghdr *cmsg)
    unsigned char *CMSG_DATA(cmsghdr *cmsg)

    enum: AF_INET
    enum: AF_INET6
    enum: SOCK_DGRAM
    enum: SOL_SOCKET
    enum: SO_TYPE
    enum: SO_PROTOCOL
    enum: MSG_TRUNC
    enum: MSG_CTRUNC
    enum: MSG_DONTWAIT
    enum: MSG_OOB

    ssize_t recv(int fd, void *buf, size_t n, int flags)
    ssize_t recvfrom(int fd, void *buf, size_t n, int flags,
                     sockaddr *addr, socklen_t *addrlen)
    ssize_t recvmsg(int fd, msghdr *msg, int flags)
    ssize_t send(int fd, const void *buf, size_t n, int flags)
    ssize_t sendto(int fd, const void *buf, size_t n, int flags,
                   const sockaddr *addr, socklen_t addrlen)
    ssize_t sendmsg(int fd, const msghdr *msg, int flags)
    int getsockopt(int fd, int level, int name, void *val, socklen_t *len)
    int setsockopt(int fd, int level, int name, const void *val, socklen_t len)
    int getsockname(int fd, sockaddr *addr, socklen_t *len)
    int getpeername(int fd, sockaddr *addr, socklen_t *len)
    int socket(int domain, int type, int protocol)
