"""The compiled core of ``hotsock.blast``: a paced sendmmsg load generator.

Payloads are stamped in place in one arena (sequence header: stream id,
sequence number, send time) and sent *batch* at a time.  With a rate, the
loop sends what is due by the clock and sleeps (``clock_nanosleep``) until
the next datagram is due, instead of spinning.
"""
cimport cython
from cpython.mem cimport PyMem_Calloc, PyMem_Free
from libc.stdint cimport int64_t, uint32_t, uint64_t, INT64_MAX, UINT64_MAX

from includes.compat cimport (
    hs_monotonic_ns, hs_realtime_ns, hs_sleep_until_ns, mmsghdr, HS_GSO_MAX_BYTES)
from includes.core cimport hs_gso_build, hs_gso_join, hs_seq_stamp
from includes.socket cimport iovec, sockaddr_storage, socklen_t
from hotsock._address cimport resolve_address
from hotsock._driver cimport Run, drive, send_all, send_segmented
from hotsock._send cimport SendArrays, give_back, take_arrays


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


cdef struct Blast:
    int fd
    Py_ssize_t size             # bytes per datagram
    Py_ssize_t batch            # datagrams per sendmmsg
    char *arena                 # batch payloads of size bytes, stamped in place
    mmsghdr *msgs               # one per payload, all to the destination
    mmsghdr *groups             # the segmented sends built from msgs (gso)
    uint32_t *datagrams
    char *control
    iovec *joined
    Py_ssize_t m                # groups built
    Py_ssize_t grouped          # the count the groups were built for (-1: none)
    Py_ssize_t k                # datagrams of this send
    bint gso
    bint sequence
    uint32_t stream
    uint64_t seq                # the next sequence number
    double rate
    double ns_per_datagram
    int64_t start


cdef Py_ssize_t _rest_plain(void *ctx, Py_ssize_t groups_sent, mmsghdr **msgs) noexcept nogil:
    """Segmented sends refused after *groups_sent* groups: these datagrams,
    and all later ones, one by one."""
    cdef Blast *b = <Blast *>ctx
    cdef Py_ssize_t i, first = 0
    b.gso = False
    for i in range(groups_sent):
        first += b.datagrams[i]
    msgs[0] = b.msgs + first
    return b.k - first


# The run is never None here (the driver holds it); Cython's debug-build
# None checks would need the GIL.
@cython.nonecheck(False)
cdef Py_ssize_t _blast_step(Run run, void *ctx, int *err) noexcept nogil:
    cdef Blast *b = <Blast *>ctx
    cdef Py_ssize_t i, k = b.batch
    cdef uint64_t due
    cdef int64_t now, stamp, next_due
    if <uint64_t>k > run.remaining():
        k = <Py_ssize_t>run.remaining()
    if k == 0:
        return 0
    if b.rate > 0:
        # Datagrams due by now (the first at once), less those sent.
        now = hs_monotonic_ns()
        due = _due(now - b.start, b.ns_per_datagram)
        if due <= b.seq:
            next_due = _due_time(b.start, b.seq, b.ns_per_datagram)
            if next_due >= run.next_check_ns:
                hs_sleep_until_ns(run.next_check_ns)
                return 0
            hs_sleep_until_ns(next_due)
            return 1
        if <uint64_t>k > due - b.seq:
            k = <Py_ssize_t>(due - b.seq)
    if b.sequence:
        stamp = hs_realtime_ns()
        for i in range(k):
            hs_seq_stamp(<unsigned char *>b.arena + i * b.size, b.stream, b.seq + i, stamp)
    b.k = k
    if b.gso:
        if k != b.grouped:
            # The messages stay the same from batch to batch (only the
            # payloads change): group them again only for a different
            # count.  The arena is one run of memory, so each group goes
            # as one buffer.
            b.m = <Py_ssize_t>hs_gso_build(b.msgs, k, HS_GSO_MAX_BYTES, b.groups, b.control,
                                           b.datagrams)
            hs_gso_join(b.groups, b.m, b.joined)
            b.grouped = k
        if send_segmented(run, b.groups, b.m, b.datagrams, b.fd, 0, False, _rest_plain, b,
                          err) < 0:
            return -1
    elif send_all(run, b.msgs, k, b.fd, 0, NULL, False, err) < 0:
        return -1
    b.seq += <uint64_t>k
    run.c.attempted += <uint64_t>k
    run.c.batches += 1
    return k


def blast_loop(int fd, int family, address, Run run not None, Py_ssize_t size,
               Py_ssize_t batch, double rate, uint32_t stream, bint sequence, bint gso=False):
    """Send until *run* says stop (internal: see ``hotsock.blast``).  *gso*:
    segmented sends of up to 64 datagrams each (the caller checked the socket)."""
    cdef Blast b
    cdef sockaddr_storage dest
    cdef socklen_t dest_len = 0
    cdef Py_ssize_t i
    cdef SendArrays arrays = take_arrays(batch, True)
    cdef char *arena = <char *>PyMem_Calloc(batch * size if batch * size else 1, 1)
    try:
        if arena == NULL:
            raise MemoryError()
        if address is not None:
            resolve_address(family, address, "blast", &dest, &dest_len)
        for i in range(batch):
            arrays.iovs[i].iov_base = arena + i * size
            arrays.iovs[i].iov_len = <size_t>size
            arrays.msgs[i].msg_hdr.msg_iov = &arrays.iovs[i]
            arrays.msgs[i].msg_hdr.msg_iovlen = 1
            if address is not None:
                arrays.msgs[i].msg_hdr.msg_name = &dest
                arrays.msgs[i].msg_hdr.msg_namelen = dest_len
        b.fd = fd
        b.size = size
        b.batch = batch
        b.arena = arena
        b.msgs = arrays.msgs
        b.groups = arrays.groups
        b.datagrams = arrays.datagrams
        b.control = arrays.control
        b.joined = arrays.joined
        b.m = 0
        b.grouped = -1
        b.k = 0
        b.gso = gso
        b.sequence = sequence
        b.stream = stream
        b.seq = 0
        b.rate = rate
        b.ns_per_datagram = 1e9 / rate if rate > 0 else 0     # inf for a tiny rate
        b.start = hs_monotonic_ns()
        drive(run, _blast_step, NULL, &b)
    finally:
        PyMem_Free(arena)
        give_back(arrays)
