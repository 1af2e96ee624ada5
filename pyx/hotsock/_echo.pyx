"""The compiled core of ``hotsock.echo``: every datagram back to its sender.

Each round is one ``recvmmsg`` into a :class:`RecvBatch` and one
``sendmmsg`` whose messages point at the same slots -- payload and sender
address -- so nothing is copied and nothing is allocated per datagram; the
GIL is released between checks (see ``_driver``).

With GRO and GSO, a coalesced buffer (many datagrams of one sender) goes
back as it came: one segmented send with the same segment size.  If the
kernel refuses that, the loop sends datagram by datagram from then on.
"""
cimport cython
from libc.stdint cimport uint16_t, uint32_t

from includes.compat cimport mmsghdr, MSG_CONFIRM
from includes.core cimport HS_SEGMENT_CONTROL, hs_gso_attach
from includes.socket cimport iovec
from hotsock._recv cimport BatchSlots, RecvBatch, entry_data, entry_length, entry_slot
from hotsock._send cimport SendArrays, give_back, take_arrays
from hotsock._driver cimport Run, drive_receiving, receive_ready, send_all, send_segmented


cdef struct Echo:
    BatchSlots *s
    int fd
    int flags
    bint gso            # coalesced buffers go back segmented (until refused)
    Py_ssize_t n        # datagrams of the last receive
    mmsghdr *out        # the replies: one per buffer, or one per datagram
    iovec *iovs
    uint32_t *datagrams
    char *control


cdef inline void _reply(BatchSlots *s, Py_ssize_t slot, char *data, Py_ssize_t length,
                        mmsghdr *out, iovec *iov) noexcept nogil:
    """*out*: send *length* bytes at *data* back to the sender of buffer *slot*."""
    iov.iov_base = data
    iov.iov_len = <size_t>length
    out.msg_hdr.msg_name = &s.names[slot]
    out.msg_hdr.msg_namelen = s.msgs[slot].msg_hdr.msg_namelen
    out.msg_hdr.msg_iov = iov
    out.msg_hdr.msg_iovlen = 1
    out.msg_hdr.msg_control = NULL
    out.msg_hdr.msg_controllen = 0
    out.msg_hdr.msg_flags = 0


cdef Py_ssize_t _per_datagram(Echo *e, Py_ssize_t first) noexcept nogil:
    """Replies for datagrams first..n-1, one each, to their senders."""
    cdef Py_ssize_t i, m = 0
    for i in range(first, e.n):
        _reply(e.s, entry_slot(e.s, i), entry_data(e.s, i), entry_length(e.s, i),
               &e.out[m], &e.iovs[m])
        m += 1
    return m


cdef Py_ssize_t _per_buffer(Echo *e) noexcept nogil:
    """Replies for the buffers of the last receive, one each; a coalesced
    buffer gets its segment size back."""
    cdef BatchSlots *s = e.s
    cdef Py_ssize_t b, length, segment
    for b in range(s.dirty):
        length = s.msgs[b].msg_len if s.msgs[b].msg_len <= <unsigned int>s.size else s.size
        segment = s.meta[b].gro_size
        _reply(s, b, s.arena + b * s.size, length, &e.out[b], &e.iovs[b])
        e.datagrams[b] = 1
        if 0 < segment < length:
            hs_gso_attach(&e.out[b], e.control + b * HS_SEGMENT_CONTROL, <uint16_t>segment)
            e.datagrams[b] = <uint32_t>((length + segment - 1) // segment)
    return s.dirty


cdef Py_ssize_t _rest_per_datagram(void *ctx, Py_ssize_t buffers_sent,
                                   mmsghdr **msgs) noexcept nogil:
    """Segmented replies refused after *buffers_sent* buffers: the rest of
    this round, and every later one, one by one."""
    cdef Echo *e = <Echo *>ctx
    cdef Py_ssize_t first = 0
    e.gso = False
    while first < e.n and <Py_ssize_t>e.s.slot_of[first] < buffers_sent:
        first += 1
    msgs[0] = e.out
    return _per_datagram(e, first)


# The run is never None here (the driver holds it); Cython's debug-build
# None checks would need the GIL.
@cython.nonecheck(False)
cdef Py_ssize_t _echo_step(Run run, void *ctx, int *err) noexcept nogil:
    cdef Echo *e = <Echo *>ctx
    e.n = receive_ready(run, e.s, e.fd, 0, err)
    if e.n <= 0:
        return e.n
    if e.gso:
        if send_segmented(run, e.out, _per_buffer(e), e.datagrams, e.fd, e.flags, True,
                          _rest_per_datagram, e, err) < 0:
            return -1
    elif send_all(run, e.out, _per_datagram(e, 0), e.fd, e.flags, NULL, True, err) < 0:
        return -1
    return e.n


def echo_loop(int fd, RecvBatch batch not None, Run run not None, bint confirm=False,
              bint gso=False):
    """Echo on socket *fd* until *run* says stop (internal: see ``hotsock.echo``).
    *gso*: send coalesced buffers back segmented (the batch must be a GRO batch)."""
    cdef Echo e
    # Replies are built afresh each round: the arrays need no zeroing.
    cdef SendArrays arrays = take_arrays(batch.capacity, False)
    e.s = &batch.slots
    e.fd = fd
    e.flags = MSG_CONFIRM if confirm else 0
    e.gso = gso and batch.gro
    e.n = 0
    e.out = arrays.msgs
    e.iovs = arrays.iovs
    e.datagrams = arrays.datagrams
    e.control = arrays.control
    try:
        drive_receiving(run, batch, fd, _echo_step, NULL, &e)
    finally:
        give_back(arrays)
