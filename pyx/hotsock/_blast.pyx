"""The compiled core of ``hotsock.blast``: a paced sendmmsg load generator.

Payloads are stamped in place in one arena (sequence header: stream id,
sequence number, send time) and sent *batch* at a time.  With a rate, the
loop sends what is due by the clock and sleeps (``clock_nanosleep``) until
the next datagram is due, instead of spinning.
"""
from cpython.mem cimport PyMem_Calloc, PyMem_Free
from libc.stdint cimport int64_t, uint32_t, uint64_t, INT64_MAX, UINT64_MAX

from includes.compat cimport (
    hs_monotonic_ns, hs_realtime_ns, hs_sleep_until_ns, mmsghdr, HS_GSO_MAX_BYTES)
from includes.core cimport HS_SEGMENT_CONTROL, hs_gso_build, hs_gso_join, hs_seq_stamp
from includes.socket cimport iovec, sockaddr_storage, socklen_t
from hotsock._address cimport resolve_address
from hotsock._batch cimport refuse_gso
from hotsock._loop cimport Run, send_all
from hotsock._syscall cimport raise_errno


# The pacing arithmetic saturates instead of overflowing (a rate of 1e-300 or
# 1e300 per second must still reach the loop's checks): a time beyond
# MAX_AHEAD_NS from the start is "never", a count beyond MAX_DUE "all of them".
cdef double MAX_AHEAD_NS = 4.0e18       # start (a monotonic clock) + this fits an int64
cdef double MAX_DUE = 1.8e19            # below 2**64


cdef inline uint64_t _due(int64_t elapsed_ns, double ns_per_datagram) noexcept nogil:
    """How many datagrams are due *elapsed_ns* after the start (the first at once)."""
    cdef double due = <double>elapsed_ns / ns_per_datagram
    if not due < MAX_DUE:                   # NaN included
        return UINT64_MAX
    return <uint64_t>due + 1


cdef inline int64_t _due_time(int64_t start, uint64_t seq, double ns_per_datagram) noexcept nogil:
    """When datagram *seq* is due."""
    cdef double ahead = <double>seq * ns_per_datagram
    if not ahead < MAX_AHEAD_NS:            # NaN included (0 * inf)
        return INT64_MAX
    return start + <int64_t>ahead


def blast_loop(int fd, int family, address, Run run not None, Py_ssize_t size,
               Py_ssize_t batch, double rate, uint32_t stream, bint sequence, bint gso=False):
    """Send until *run* says stop (internal: see ``hotsock.blast``).  *gso*:
    segmented sends of up to 64 datagrams each (the caller checked the socket)."""
    cdef sockaddr_storage dest
    cdef socklen_t dest_len = 0
    cdef char *arena = <char *>PyMem_Calloc(batch * size if batch * size else 1, 1)
    cdef mmsghdr *msgs = <mmsghdr *>PyMem_Calloc(batch, sizeof(mmsghdr))
    cdef iovec *iovs = <iovec *>PyMem_Calloc(batch, sizeof(iovec))
    cdef mmsghdr *groups = <mmsghdr *>PyMem_Calloc(batch, sizeof(mmsghdr))
    cdef uint32_t *datagrams = <uint32_t *>PyMem_Calloc(batch, sizeof(uint32_t))
    cdef char *control = <char *>PyMem_Calloc(batch, HS_SEGMENT_CONTROL)
    cdef iovec *joined = <iovec *>PyMem_Calloc(batch, sizeof(iovec))
    cdef Py_ssize_t i, k, m = 0, sent, first
    cdef Py_ssize_t grouped = -1    # the k that groups[0..m) were built for
    cdef bint refused = False
    cdef uint64_t seq = 0, due
    cdef int err = 0
    cdef int64_t start, now, stamp, next_due
    cdef double ns_per_datagram = 1e9 / rate if rate > 0 else 0     # inf for a tiny rate
    try:
        if (arena == NULL or msgs == NULL or iovs == NULL or groups == NULL
                or datagrams == NULL or control == NULL or joined == NULL):
            raise MemoryError()
        if address is not None:
            resolve_address(family, address, "blast", &dest, &dest_len)
        for i in range(batch):
            iovs[i].iov_base = arena + i * size
            iovs[i].iov_len = <size_t>size
            msgs[i].msg_hdr.msg_iov = &iovs[i]
            msgs[i].msg_hdr.msg_iovlen = 1
            if address is not None:
                msgs[i].msg_hdr.msg_name = &dest
                msgs[i].msg_hdr.msg_namelen = dest_len
        start = hs_monotonic_ns()
        while True:
            sent = 0
            with nogil:
                while True:
                    k = batch
                    if <uint64_t>k > run.remaining():
                        k = <Py_ssize_t>run.remaining()
                    if k == 0:
                        break
                    if rate > 0:
                        # Datagrams due by now (the first at once), less those sent.
                        now = hs_monotonic_ns()
                        due = _due(now - start, ns_per_datagram)
                        if due <= seq:
                            next_due = _due_time(start, seq, ns_per_datagram)
                            if next_due >= run.next_check_ns:
                                hs_sleep_until_ns(run.next_check_ns)
                                break
                            hs_sleep_until_ns(next_due)
                            continue
                        if <uint64_t>k > due - seq:
                            k = <Py_ssize_t>(due - seq)
                    if sequence:
                        stamp = hs_realtime_ns()
                        for i in range(k):
                            hs_seq_stamp(<unsigned char *>arena + i * size, stream, seq + i, stamp)
                    if gso:
                        if k != grouped:
                            # The messages stay the same from batch to batch (only
                            # the payloads change): group them again only for a
                            # different count.  The arena is one run of memory, so
                            # each group goes as one buffer.
                            m = <Py_ssize_t>hs_gso_build(msgs, k, HS_GSO_MAX_BYTES, groups,
                                                         control, datagrams)
                            hs_gso_join(groups, m, joined)
                            grouped = k
                        sent = send_all(run, groups, m, fd, 0, datagrams, False, &err)
                        if 0 <= sent < m:
                            # Refused: these datagrams, and all later ones, one by one.
                            gso = False
                            refused = True
                            first = 0
                            for i in range(sent):
                                first += datagrams[i]
                            sent = send_all(run, msgs + first, k - first, fd, 0, NULL, False,
                                            &err)
                    else:
                        sent = send_all(run, msgs, k, fd, 0, NULL, False, &err)
                    if sent < 0:
                        break
                    seq += <uint64_t>k
                    run.c.attempted += <uint64_t>k
                    run.c.batches += 1
                    if hs_monotonic_ns() >= run.next_check_ns:
                        break
            if refused:
                refuse_gso(fd)
                refused = False
            if sent < 0:
                raise_errno(err)
            if run.check():
                break
    finally:
        PyMem_Free(arena)
        PyMem_Free(msgs)
        PyMem_Free(iovs)
        PyMem_Free(groups)
        PyMem_Free(datagrams)
        PyMem_Free(control)
        PyMem_Free(joined)
