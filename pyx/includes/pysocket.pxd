# pysocket.h: the leading fields of CPython's socket object.
from libc.stdint cimport int64_t

cdef extern from "includes/pysocket.h":
    ctypedef struct hs_PySocketPrefix:
        int sock_fd
        int sock_family
        int sock_type
        int sock_proto
        int64_t sock_timeout
    int hs_socket_fd_now(const int *sock_fd) nogil
