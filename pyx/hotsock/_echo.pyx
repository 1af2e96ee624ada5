"""The compiled core of ``hotsock.echo``: every datagram back to its sender.

Each round is one ``recvmmsg`` into a :class:`RecvBatch` and one
``sendmmsg`` whose messages point at the same slots -- payload and sender
address -- so nothing is copied and nothing is allocated per datagram; the
GIL is released between checks (see ``_loop``).

With GRO and GSO, a coalesced buffer (many datagrams of one sender) goes
back as it came: one segmented send with the same segment size.  If the
kernel refuses that, the loop sends datagram by datagram from then on.
"""
from cpython.mem cimport PyMem_Calloc, PyMem_Free
from libc.stdint cimport uint16_t, uint32_t

from includes.compat cimport hs_monotonic_ns, mmsghdr, MSG_CONFIRM
from includes.core cimport HS_SEGMENT_CONTROL, hs_gso_attach
from includes.socket cimport iovec
from hotsock._batch cimport (
    BatchSlots, RecvBatch, entry_data, entry_length, entry_slot, refuse_gso)
from hotsock._loop cimport Run, receive_ready, send_all
from hotsock._syscall cimport raise_errno


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


cdef Py_ssize_t _per_datagram(BatchSlots *s, Py_ssize_t first, Py_ssize_t n,
                              mmsghdr *out, iovec *iovs) noexcept nogil:
    """Messages for datagrams first..n-1, one each, to their senders."""
    cdef Py_ssize_t i, m = 0
    for i in range(first, n):
        _reply(s, entry_slot(s, i), entry_data(s, i), entry_length(s, i), &out[m], &iovs[m])
        m += 1
    return m


cdef Py_ssize_t _per_buffer(BatchSlots *s, mmsghdr *out, iovec *iovs, char *control,
                            uint32_t *datagrams) noexcept nogil:
    """Messages for the buffers of the last receive, one each; a coalesced
    buffer gets its segment size back."""
    cdef Py_ssize_t b, length, segment
    for b in range(s.dirty):
        length = s.msgs[b].msg_len if s.msgs[b].msg_len <= <unsigned int>s.size else s.size
        segment = s.meta[b].gro_size
        _reply(s, b, s.arena + b * s.size, length, &out[b], &iovs[b])
        datagrams[b] = 1
        if 0 < segment < length:
            hs_gso_attach(&out[b], control + b * HS_SEGMENT_CONTROL, <uint16_t>segment)
            datagrams[b] = <uint32_t>((length + segment - 1) // segment)
    return s.dirty


def echo_loop(int fd, RecvBatch batch not None, Run run not None, bint confirm=False,
              bint gso=False):
    """Echo on socket *fd* until *run* says stop (internal: see ``hotsock.echo``).
    *gso*: send coalesced buffers back segmented (the batch must be a GRO batch)."""
    cdef BatchSlots *s = &batch.slots
    cdef mmsghdr *out = <mmsghdr *>PyMem_Calloc(batch.capacity, sizeof(mmsghdr))
    cdef iovec *iovs = <iovec *>PyMem_Calloc(batch.capacity, sizeof(iovec))
    cdef uint32_t *datagrams = <uint32_t *>PyMem_Calloc(batch.count, sizeof(uint32_t))
    cdef char *control = <char *>PyMem_Calloc(batch.count, HS_SEGMENT_CONTROL)
    cdef Py_ssize_t n = 0, m, sent, first, i
    cdef int err = 0
    cdef int send_flags = MSG_CONFIRM if confirm else 0
    cdef bint refused = False
    gso = gso and batch.gro
    try:
        if out == NULL or iovs == NULL or datagrams == NULL or control == NULL:
            raise MemoryError()
        batch.enable_gro(fd)
        batch.acquire()
        try:
            while True:
                with nogil:
                    while True:
                        n = receive_ready(run, s, fd, 0, &err)
                        if n <= 0:
                            break
                        if gso:
                            m = _per_buffer(s, out, iovs, control, datagrams)
                            sent = send_all(run, out, m, fd, send_flags, datagrams, True, &err)
                            if 0 <= sent < m:
                                # Segmented sends refused: the rest of this
                                # round, and every later one, one by one.
                                gso = False
                                refused = True
                                first = 0
                                while first < n and <Py_ssize_t>s.slot_of[first] < sent:
                                    first += 1
                                m = _per_datagram(s, first, n, out, iovs)
                                sent = send_all(run, out, m, fd, send_flags, NULL, True, &err)
                        else:
                            m = _per_datagram(s, 0, n, out, iovs)
                            sent = send_all(run, out, m, fd, send_flags, NULL, True, &err)
                        if sent < 0:
                            n = -1
                            break
                        if hs_monotonic_ns() >= run.next_check_ns or run.remaining() == 0:
                            break
                if refused:
                    refuse_gso(fd)
                    refused = False
                if n < 0:
                    raise_errno(err)
                if run.check():
                    break
        finally:
            batch.release(0)
    finally:
        PyMem_Free(out)
        PyMem_Free(iovs)
        PyMem_Free(datagrams)
        PyMem_Free(control)
