# Receiving in batches: one arena, one recvmmsg for many datagrams.
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
    cdef size_t mapped              # bytes mapped with mmap (0: from PyMem)
    cdef bytes fmt
    cdef Py_ssize_t shape[1]
    cdef Py_ssize_t strides[1]

    cdef object view(self, Py_ssize_t items)


# The C side of a RecvBatch: everything a receive touches, so that the hot
# loops in other modules can receive into a batch without the GIL.
cdef struct BatchSlots:
    Py_ssize_t count                # receive buffers (messages per recvmmsg)
    Py_ssize_t size                 # bytes per buffer
    bint gro                        # buffers may hold several coalesced datagrams
    Py_ssize_t capacity             # entries: count, or count * HS_GRO_MAX_SEGMENTS with gro
    Py_ssize_t entries              # datagrams in the last receive
    uint32_t *slot_of               # gro: the buffer each datagram came in
    Py_ssize_t *first               # gro: each buffer's first datagram
    Py_ssize_t *segment             # gro: each buffer's datagram size (the last may be shorter)
    bint entry_meta_ready           # gro: flags and timestamps filled per datagram
    char *arena
    mmsghdr *msgs
    iovec *iovs
    sockaddr_storage *names
    char *control                   # control_space bytes per slot
    Py_ssize_t control_space
    hs_rx_meta *meta
    uint32_t *lengths               # these three per datagram (entry); with gro,
    int32_t *flags                  # flags and timestamps only once asked for
    int64_t *timestamps             # (slots_entry_meta), being the buffer's
    Py_ssize_t dirty                # slots the kernel may have rewritten
    hs_rx_drops drops
    int deferred_errno              # recvmsg fallback: an error met after datagrams


# Before a receive: reset what the kernel rewrote in the slots it filled.
cdef void slots_prepare(BatchSlots *s) noexcept nogil
# One receive of up to *want* datagrams into the first slots (recvmmsg, or the
# recvmsg fallback): the count, or -1 with errno.  Prepares the slots; the
# caller then calls slots_finish.
cdef Py_ssize_t slots_receive(BatchSlots *s, int fd, unsigned int want, int flags) noexcept nogil
# After a receive of n buffers: lengths, flags, timestamps, destinations,
# drops; coalesced buffers split into their datagrams.  Returns the datagrams.
cdef Py_ssize_t slots_finish(BatchSlots *s, Py_ssize_t n) noexcept nogil


# With gro: fill the per-datagram flags and timestamps from their buffers'.
cdef void slots_entry_meta(BatchSlots *s) noexcept nogil


# Datagram i of the last receive: its bytes, flags, and the buffer it came in.
cdef inline char *entry_data(BatchSlots *s, Py_ssize_t i) noexcept nogil:
    cdef Py_ssize_t b
    if not s.gro:
        return s.arena + i * s.size
    b = s.slot_of[i]
    return s.arena + b * s.size + (i - s.first[b]) * s.segment[b]

cdef inline int entry_flags(BatchSlots *s, Py_ssize_t i) noexcept nogil:
    return s.msgs[s.slot_of[i]].msg_hdr.msg_flags if s.gro else s.flags[i]

cdef inline Py_ssize_t entry_slot(BatchSlots *s, Py_ssize_t i) noexcept nogil:
    return s.slot_of[i] if s.gro else i

cdef inline Py_ssize_t entry_length(BatchSlots *s, Py_ssize_t i) noexcept nogil:
    # lengths has a cut datagram's full length (MSG_TRUNC); its bytes stop at the buffer.
    return s.lengths[i] if s.lengths[i] <= <uint32_t>s.size else s.size


cdef class RecvBatch:
    cdef readonly Py_ssize_t count
    cdef readonly Py_ssize_t size
    cdef readonly bint gro
    cdef readonly Py_ssize_t capacity
    cdef BatchSlots slots
    cdef _Memory _arena
    cdef _Memory _lengths
    cdef _Memory _flags
    cdef _Memory _timestamps
    cdef object _arena_view
    cdef Py_ssize_t _received
    cdef int _gro_fd                # the socket UDP_GRO was last turned on for
    cdef bint _busy
    cdef unsigned long _busy_forks  # the fork generation _busy was set in
    cdef AddressCache _addresses

    cdef Py_ssize_t _index(self, Py_ssize_t i) except -1
    cdef int enable_gro(self, int fd) except -1
    cdef int acquire(self) except -1
    cdef void release(self, Py_ssize_t received) noexcept
