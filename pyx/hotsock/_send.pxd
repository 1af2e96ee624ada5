# Sending in batches: the arrays a send works in, shared by send_batch and
# the hot loops, and one sendmmsg.
from libc.stdint cimport uint32_t
from includes.compat cimport mmsghdr
from includes.socket cimport iovec, sockaddr_storage


cdef class SendArrays:
    cdef Py_ssize_t capacity        # datagrams there is room for
    cdef Py_buffer *views
    cdef iovec *iovs
    cdef mmsghdr *msgs
    cdef sockaddr_storage *names
    cdef mmsghdr *groups            # segmented sends built from msgs
    cdef uint32_t *datagrams        # per group: the datagrams it carries
    cdef char *control              # per group: its UDP_SEGMENT control message
    cdef iovec *joined              # per group: its payload as one buffer
    cdef unsigned char *stage
    cdef size_t stage_capacity

    cdef void _free(self) noexcept
    cdef int reserve(self, Py_ssize_t n) except -1
    cdef unsigned char *staging(self, size_t length) except NULL


# Arrays for n datagrams from the pool (messages and groups zeroed if asked),
# and back to it.
cdef SendArrays take_arrays(Py_ssize_t n, bint zeroed)
cdef void give_back(SendArrays arrays) noexcept

# One sendmmsg (or the sendmsg fallback) of n prepared messages: the count
# sent, or -1 with errno.
cdef Py_ssize_t mmsg_send(int fd, mmsghdr *msgs, unsigned int n, int flags) noexcept nogil
