# Batches of datagrams: one arena, one receive or send syscall for many.
from libc.stdint cimport int32_t, int64_t, uint32_t
from includes.compat cimport mmsghdr
from includes.core cimport hs_rx_meta, hs_rx_drops
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


# The C side of a RecvBatch: everything a receive touches, so that the hot
# loops in other modules can receive into a batch without the GIL.
cdef struct BatchSlots:
    Py_ssize_t count
    Py_ssize_t size
    char *arena
    mmsghdr *msgs
    iovec *iovs
    sockaddr_storage *names
    char *control                   # HS_CONTROL_SPACE bytes per slot
    hs_rx_meta *meta
    uint32_t *lengths
    int32_t *flags
    int64_t *timestamps
    Py_ssize_t dirty                # slots the kernel may have rewritten
    hs_rx_drops drops
    int deferred_errno              # recvmsg fallback: an error met after datagrams


# Before a receive: reset what the kernel rewrote in the slots it filled.
cdef void slots_prepare(BatchSlots *s) noexcept nogil
# One receive of up to *want* datagrams into the first slots (recvmmsg, or the
# recvmsg fallback): the count, or -1 with errno.  Prepares the slots; the
# caller then calls slots_finish.
cdef Py_ssize_t slots_receive(BatchSlots *s, int fd, unsigned int want, int flags) noexcept nogil
# One sendmmsg (or the sendmsg fallback) of n prepared messages: the count
# sent, or -1 with errno.
cdef Py_ssize_t mmsg_send(int fd, mmsghdr *msgs, unsigned int n, int flags) noexcept nogil
# After a receive of n datagrams: lengths, flags, timestamps, destinations, drops.
cdef void slots_finish(BatchSlots *s, Py_ssize_t n) noexcept nogil


cdef class RecvBatch:
    cdef readonly Py_ssize_t count
    cdef readonly Py_ssize_t size
    cdef BatchSlots slots
    cdef _Memory _arena
    cdef _Memory _lengths
    cdef _Memory _flags
    cdef _Memory _timestamps
    cdef object _arena_view
    cdef Py_ssize_t _received
    cdef bint _busy
    cdef AddressCache _addresses

    cdef Py_ssize_t _index(self, Py_ssize_t i) except -1
    cdef int acquire(self) except -1
    cdef void release(self, Py_ssize_t received) noexcept
