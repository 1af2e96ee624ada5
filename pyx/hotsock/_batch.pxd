# Batches of datagrams: one arena, one receive or send syscall for many.
from includes.compat cimport mmsghdr
from includes.socket cimport iovec, sockaddr_storage
from hotsock._address cimport AddressCache


cdef class _Memory:
    cdef char *ptr
    cdef Py_ssize_t itemsize
    cdef Py_ssize_t items           # items exported (the batch's current count)
    cdef Py_ssize_t capacity        # items allocated
    cdef bytes fmt
    cdef Py_ssize_t shape[1]
    cdef Py_ssize_t strides[1]

    cdef object view(self, Py_ssize_t items)


cdef class RecvBatch:
    cdef readonly Py_ssize_t count
    cdef readonly Py_ssize_t size
    cdef _Memory _arena
    cdef _Memory _lengths
    cdef _Memory _flags
    cdef object _arena_view
    cdef mmsghdr *_msgs
    cdef iovec *_iovs
    cdef sockaddr_storage *_names
    cdef Py_ssize_t _received
    cdef Py_ssize_t _dirty
    cdef bint _busy
    cdef AddressCache _addresses

    cdef Py_ssize_t _index(self, Py_ssize_t i) except -1
