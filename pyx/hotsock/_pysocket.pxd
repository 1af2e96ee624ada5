# Reading a socket object's descriptor, family and timeout without a method call.
from libc.stdint cimport int64_t

cdef struct SockInfo:
    int fd
    int family
    int64_t timeout_ns      # < 0: blocking, 0: non-blocking, > 0: timeout

cdef int get_sock_info(object sock, SockInfo *info) except -1
cdef bint is_fast_socket(object sock) noexcept
cdef bint fast_sock_info(object sock, SockInfo *info) noexcept
