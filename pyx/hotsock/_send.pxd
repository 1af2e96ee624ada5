# Sending in batches: the arrays a send works in, shared by send_batch and
# the hot loops, and one sendmmsg.
from libc.stdint cimport uint32_t
from includes.compat cimport mmsghdr
from includes.socket cimport iovec, sockaddr_storage, socklen_t
from hotsock._recv cimport _Memory


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


# An arena of datagrams to send: count slots of size bytes, their lengths,
# and per-slot destinations (the Python address as given, and its sockaddr
# once converted for a socket of family name_family[i]).
cdef class SendBatch:
    cdef readonly Py_ssize_t count
    cdef readonly Py_ssize_t size
    cdef Py_ssize_t _used               # datagrams to send: slots 0..used-1
    cdef _Memory _arena
    cdef _Memory _lengths
    cdef object _arena_view
    cdef list _targets                  # per slot: the address given, or None
    cdef Py_ssize_t _targeted           # slots with an address
    cdef sockaddr_storage *names
    cdef socklen_t *name_lens
    cdef int *name_family               # 0: not converted (or no address)

    cdef Py_ssize_t _slot(self, Py_ssize_t i) except -1
    cdef int _name(self, Py_ssize_t i, int family, sockaddr_storage *out,
                   socklen_t *out_len) except -1
