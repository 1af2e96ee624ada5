# Reading a socket object's descriptor, family and timeout without a method call.
from cpython.object cimport PyObject
from libc.stdint cimport int64_t
from includes.pysocket cimport hs_socket_fd_now

cdef struct SockInfo:
    int fd
    int family
    int64_t timeout_ns      # < 0: blocking, 0: non-blocking, > 0: timeout
    PyObject *sock          # the socket object fd was read from (borrowed: the
                            # caller holds it), NULL for a bare descriptor
    const int *live_fd      # its sock_fd field, read again without the GIL right
                            # before each syscall; NULL: info.fd is all there is

cdef int get_sock_info(object sock, SockInfo *info) except -1
cdef bint is_fast_socket(object sock) noexcept
cdef bint fast_sock_info(object sock, SockInfo *info) noexcept
# Read info.fd again from its socket object: another thread may have closed
# it (-1) while the descriptor number went to a new socket.
cdef int refresh_fd(SockInfo *info) except -1
# The descriptor to pass to a syscall now, read without the GIL: the socket's
# own field where it can be read so (the GIL was released just before, and a
# close may have come in between), else info.fd.
cdef inline int current_fd(const SockInfo *info) noexcept nogil:
    return hs_socket_fd_now(info.live_fd) if info.live_fd != NULL else info.fd
