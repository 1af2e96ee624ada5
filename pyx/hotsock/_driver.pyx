"""The loop driver: what every hot loop (capture, echo, blast) shares.

A hot loop is a *step* -- a C function that receives and/or sends once --
and :func:`drive` runs it: step after step with the GIL released, until
:meth:`Run.check` is due (at least every ``CHECK_NS``, after a wait was
interrupted by EINTR, and when a limit may have been reached); then, with
the GIL, it applies what the steps noted (a refused segmented send goes
into the socket's record), raises a step's errno, and calls ``check``,
which runs the Python signal handlers (PEP 475, as the syscall helper
does), reports progress and decides whether to stop: by count, duration,
idle time or a signal.  :class:`Run` holds the limits and counters; the
waits the steps use are :func:`receive_ready` and :func:`send_all`.

Stopping on a signal: the Python wrappers install handlers that only note
the signal in the run's ``signals`` list (a handler that raised could do so
anywhere in the wrapper -- between installing and restoring handlers, while
a file is completed -- and escape); ``check`` sees the note and ends the run
cleanly (``stopped == "signal"``) so that files are completed and statistics
returned.  An exception from a handler of the caller's own
(``KeyboardInterrupt`` when the wrapper was told to leave handlers alone)
propagates after the loop has completed its file.
"""
cimport cython
from cpython.exc cimport PyErr_CheckSignals
from cpython.mem cimport PyMem_Calloc, PyMem_Free
from libc.errno cimport (
    errno, EAGAIN, EBADF, EINTR, EIO, EINVAL, EOPNOTSUPP, ENOBUFS, ECONNREFUSED, EHOSTUNREACH, ENETUNREACH,
    EHOSTDOWN, ENETDOWN, ENOTCONN, ENOENT, EACCES, EPERM, EDESTADDRREQ)
from libc.stdint cimport int64_t, uint32_t, uint64_t, INT64_MAX

from includes.compat cimport hs_monotonic_ns, hs_sleep_until_ns, mmsghdr
from includes.core cimport hs_seq_tracker, hs_seq_totals, hs_seq_init, hs_seq_account, hs_seq_sum
from includes.poll cimport pollfd, poll, POLLIN, POLLOUT
from includes.socket cimport MSG_CTRUNC, MSG_DONTWAIT, MSG_TRUNC
from includes.pysocket cimport hs_PySocketPrefix, hs_socket_fd_now
from cpython.object cimport PyObject
from hotsock._pysocket cimport is_fast_socket
from hotsock._recv cimport (
    BatchSlots, RecvBatch, entry_data, entry_flags, entry_length, slots_finish, slots_receive)
from hotsock._send cimport mmsg_send
from hotsock._state cimport state_of
from hotsock._syscall cimport raise_errno

from hotsock._stats import LoopKind, LoopStats

# How long the loop may run without the GIL before it checks for signals and
# limits; a wait for data is cut to this too.
cdef int64_t CHECK_NS = 50_000_000


# Durations beyond this (about 146 years) are "never"; any clock value plus
# this still fits in an int64.
cdef int64_t MAX_NS = 1 << 62


cdef int64_t _ns(double seconds) noexcept:
    """*seconds* as nanoseconds, saturated to [0, MAX_NS] (NaN: 0)."""
    if not seconds > 0:
        return 0
    if seconds >= MAX_NS / 1e9:
        return MAX_NS
    return <int64_t>(seconds * 1e9)


cdef int64_t _after(int64_t start, int64_t ns) noexcept:
    """*start* + *ns* (ns in [0, MAX_NS]), saturated, and never 0 ("no limit")."""
    if ns > INT64_MAX - start:
        return INT64_MAX
    return start + ns if start + ns != 0 else 1


cdef class Run:
    """One run of a hot loop (internal; the loops' wrappers create it)."""

    def __cinit__(self, kind, count=None, duration=None, idle=None,
                  progress=None, double interval=1.0, bint track_sequence=True,
                  drops_baseline=0):
        kind = LoopKind(kind)
        self.kind = str(kind)       # LoopStats.kind is the plain string
        if track_sequence:
            self.seq = <hs_seq_tracker *>PyMem_Calloc(1, sizeof(hs_seq_tracker))
            if self.seq == NULL:
                raise MemoryError()
            hs_seq_init(self.seq)
        self.limit = count if count is not None else 0
        # blast's count is of datagrams handed to the kernel: one it refuses
        # (counted in errors) must not make the run go on for ever.
        self.counted = &self.c.received if kind.receives else &self.c.attempted
        self.start_ns = hs_monotonic_ns()
        # The wrappers bound these (hotsock._limits); saturating here too, so
        # that no value can make the schedule wrap and check() never end.
        self.deadline_ns = _after(self.start_ns, _ns(duration)) if duration is not None else 0
        self.idle_ns = (_ns(idle) or 1) if idle is not None else 0
        self.last_rx_ns = self.start_ns
        self.progress = progress
        self.interval_ns = _ns(interval) or 1
        self.next_progress_ns = _after(self.start_ns, self.interval_ns)
        self.next_check_ns = self.start_ns
        self.drops_baseline = drops_baseline
        self.signals = []

    def __init__(self, kind, count=None, duration=None, idle=None,
                 progress=None, double interval=1.0, bint track_sequence=True,
                 drops_baseline=0):
        pass            # everything is set up in __cinit__

    def __dealloc__(self):
        PyMem_Free(self.seq)

    cdef uint64_t remaining(self) noexcept nogil:
        """How many more datagrams the count limit allows (a large number if none)."""
        if self.limit == 0:
            return <uint64_t>-1
        return self.limit - self.counted[0] if self.counted[0] < self.limit else 0

    def follow(self, sock):
        """Read *sock*'s descriptor before every syscall of the loop, as the
        socket methods do (``_pysocket.current_fd``): after another thread
        closed the socket the loop fails with EBADF instead of reading
        whatever socket reused the number.  What the loop learns about the
        socket (a refused segmented send) goes into *sock*'s own record.
        The run keeps *sock* alive."""
        self.followed = sock
        if is_fast_socket(sock):
            self.live_fd = &(<hs_PySocketPrefix *><PyObject *>sock).sock_fd

    cdef void refuse_gso(self) noexcept nogil:
        """The socket refused a segmented send: the driver records it."""
        self.gso_refused = True

    cdef int current_fd(self, int fd) noexcept nogil:
        """The descriptor to use now: the followed socket's, else *fd*."""
        return hs_socket_fd_now(self.live_fd) if self.live_fd != NULL else fd

    cdef int poll_timeout_ms(self, int64_t now) noexcept nogil:
        """How long a wait for readiness may block before check() is due."""
        cdef int64_t left = self.next_check_ns - now
        if left <= 0:
            return 0
        return <int>((left + 999_999) // 1_000_000)

    cdef void account_payload(self, const unsigned char *p, size_t length) noexcept nogil:
        if self.seq != NULL:
            hs_seq_account(self.seq, p, length)

    cdef bint check(self) except -1:
        """Run signal handlers, report progress, apply the limits: True to stop."""
        cdef int64_t now
        PyErr_CheckSignals()
        if self.signals:
            self.stopped = "signal"
            self.signal = self.signals[0]
            return True
        now = hs_monotonic_ns()
        if self.progress is not None and now >= self.next_progress_ns:
            self.progress(self.stats())
            now = hs_monotonic_ns()
            if self.next_progress_ns <= now:
                # The next report after now, skipping those missed: computed, not
                # counted up to (a tiny interval would take ages), never wrapping.
                self.next_progress_ns += ((now - self.next_progress_ns) // self.interval_ns
                                          + 1) * self.interval_ns
        if self.limit and self.counted[0] >= self.limit:
            self.stopped = "count"
        elif self.deadline_ns and now >= self.deadline_ns:
            self.stopped = "duration"
        elif self.idle_ns and now - self.last_rx_ns >= self.idle_ns:
            self.stopped = "idle"
        if self.stopped is not None:
            return True
        self.next_check_ns = now + CHECK_NS
        if self.deadline_ns and self.deadline_ns < self.next_check_ns:
            self.next_check_ns = self.deadline_ns
        if self.idle_ns and self.last_rx_ns + self.idle_ns < self.next_check_ns:
            self.next_check_ns = self.last_rx_ns + self.idle_ns
        if self.progress is not None and self.next_progress_ns < self.next_check_ns:
            self.next_check_ns = self.next_progress_ns
        return False

    def stats(self, kernel_drops=None):
        """The counters so far as a :class:`hotsock.LoopStats`.

        *kernel_drops* is the socket's drop counter read at the end (from
        /proc), which also covers drops after the last datagram received;
        otherwise the last one reported with a datagram is used.
        """
        cdef hs_seq_totals totals
        cdef uint64_t counter = self.c.drops.counter if self.c.drops.seen else self.drops_baseline
        if kernel_drops is not None and kernel_drops > counter:
            counter = kernel_drops
        if self.seq != NULL:
            hs_seq_sum(self.seq, &totals)
        else:
            totals.sequenced = totals.lost = totals.duplicated = totals.reordered = 0
        return LoopStats(
            kind=self.kind,
            received=self.c.received, received_bytes=self.c.received_bytes,
            sent=self.c.sent, sent_bytes=self.c.sent_bytes,
            dropped=counter - self.drops_baseline if counter > self.drops_baseline else 0,
            truncated=self.c.truncated, ctruncated=self.c.ctruncated,
            errors=self.c.errors, sequenced=totals.sequenced, lost=totals.lost,
            duplicated=totals.duplicated, reordered=totals.reordered,
            batches=self.c.batches,
            elapsed=(hs_monotonic_ns() - self.start_ns) / 1e9,
            stopped=self.stopped, signal=self.signal)


cdef int drive(Run run, loop_step step, loop_step round_end, void *ctx) except -1:
    """The rounds of a hot loop; see _driver.pxd."""
    cdef Py_ssize_t r = 0, ended = 0
    cdef int err = 0, end_err = 0
    while True:
        with nogil:
            while True:
                r = step(run, ctx, &err)
                if r <= 0:
                    break
                if hs_monotonic_ns() >= run.next_check_ns or run.remaining() == 0:
                    break
            if round_end != NULL:
                ended = round_end(run, ctx, &end_err)
        if run.gso_refused:
            run.gso_refused = False
            if run.followed is not None:
                # Fetched only now: most runs never need the record.
                state_of(run.followed, run.followed.fileno(), True).gso_refused = True
        if ended < 0:
            raise_errno(end_err)
        if r < 0:
            raise_errno(err)
        if run.check():
            return 0


cdef int drive_receiving(Run run, RecvBatch batch, int fd, loop_step step, loop_step round_end,
                         void *ctx) except -1:
    batch.enable_gro(fd)
    batch.acquire()
    try:
        return drive(run, step, round_end, ctx)
    finally:
        batch.release(0)


# The run is never None here (callers hold it); Cython's debug-build None
# checks would need the GIL.
@cython.nonecheck(False)
cdef Py_ssize_t receive_ready(Run run, BatchSlots *s, int fd, int flags, int *err) noexcept nogil:
    """Receive what is queued, up to the batch and the count limit, waiting for
    it until check() is due; count it.  n > 0: datagrams in the slots (with
    GRO, a buffer's segments all count, so a count limit can be passed by up
    to 127);
    0: check() is due (time, a signal, the count limit); -1: *err holds errno.
    """
    cdef uint64_t left = run.remaining()
    cdef unsigned int want
    cdef Py_ssize_t n, i
    cdef int e
    cdef int64_t now
    cdef pollfd pfd
    if left == 0:
        return 0
    want = <unsigned int>s.count if left > <uint64_t>s.count else <unsigned int>left
    while True:
        if s.deferred_errno:
            err[0] = s.deferred_errno
            s.deferred_errno = 0
            return -1
        fd = run.current_fd(fd)
        if fd < 0:
            err[0] = EBADF
            return -1
        # MSG_TRUNC: a datagram's length is its real one even when cut.
        n = slots_receive(s, fd, want, flags | MSG_DONTWAIT | MSG_TRUNC)
        if n > 0:
            break
        e = errno
        if e == EINTR:
            return 0
        if e != EAGAIN:
            err[0] = e
            return -1
        now = hs_monotonic_ns()
        if now >= run.next_check_ns:
            return 0
        pfd.fd = fd
        pfd.events = POLLIN
        if poll(&pfd, 1, run.poll_timeout_ms(now)) < 0 and errno == EINTR:
            return 0
    n = slots_finish(s, n)          # now datagrams: coalesced buffers are split
    for i in range(n):
        run.c.received_bytes += s.lengths[i]
        if entry_flags(s, i) & MSG_TRUNC:
            run.c.truncated += 1
        if entry_flags(s, i) & MSG_CTRUNC:
            run.c.ctruncated += 1
        if run.seq != NULL:
            hs_seq_account(run.seq, <unsigned char *>entry_data(s, i),
                           <size_t>entry_length(s, i))
    run.c.received += <uint64_t>n
    run.c.batches += 1
    if s.drops.seen:
        run.c.drops = s.drops
    if run.idle_ns:
        run.last_rx_ns = hs_monotonic_ns()
    return n


cdef bint _refused_by_peer(int e, bint replies) noexcept nogil:
    # What the network answers about one destination (ICMP errors on a
    # connected socket, a lost route): that send fails, the loop goes on.
    # Replies (echo) go to whoever sent: an AF_UNIX sender without an address
    # cannot be answered (ENOTCONN), one may be gone (ENOENT: its path
    # removed) or not allowed (EACCES, EPERM: a firewall).  One stray
    # datagram must not stop a server.
    return (e == ECONNREFUSED or e == EHOSTUNREACH or e == ENETUNREACH
            or e == EHOSTDOWN or e == ENETDOWN
            or (replies and (e == ENOTCONN or e == ENOENT or e == EACCES or e == EPERM
                             or e == EDESTADDRREQ)))


# A send that cannot proceed for this long gives up on the rest of its batch
# (counted as errors) instead of holding the loop.
cdef int STALL_LIMIT_MS = 1000


@cython.nonecheck(False)
cdef Py_ssize_t send_all(Run run, mmsghdr *msgs, Py_ssize_t n, int fd, int flags,
                         const uint32_t *datagrams, bint replies, int *err) noexcept nogil:
    """Send n prepared messages, waiting while the socket is full; count them
    (message i carries datagrams[i] datagrams when segmented, else one).
    Returns how many messages went, all n unless: a segmented send was
    refused (EIO, EINVAL, EOPNOTSUPP: *err is set, the caller falls back to
    plain sends from there), or -1 with *err for an error that is the
    socket's rather than one destination's.  *replies*: the messages answer
    their senders (echo), so more errors are one destination's."""
    cdef Py_ssize_t done = 0, k, i
    cdef int e, stalled_ms = 0
    cdef pollfd pfd
    while done < n:
        fd = run.current_fd(fd)
        if fd < 0:
            err[0] = EBADF
            return -1
        k = mmsg_send(fd, msgs + done, <unsigned int>(n - done), flags | MSG_DONTWAIT)
        if k > 0:
            for i in range(done, done + k):
                run.c.sent_bytes += msgs[i].msg_len
                run.c.sent += datagrams[i] if datagrams != NULL else 1
            done += k
            stalled_ms = 0
            continue
        e = errno
        if e == EINTR:
            continue            # the handlers run at the next check()
        if datagrams != NULL and datagrams[done] > 1 and (e == EIO or e == EINVAL
                                                          or e == EOPNOTSUPP):
            err[0] = e
            return done
        if e == EAGAIN or e == ENOBUFS:
            if stalled_ms >= STALL_LIMIT_MS:
                for i in range(done, n):
                    run.c.errors += datagrams[i] if datagrams != NULL else 1
                return n
            stalled_ms += 1
            pfd.fd = fd
            pfd.events = POLLOUT
            if e == ENOBUFS:
                hs_sleep_until_ns(hs_monotonic_ns() + 1_000_000)  # a device queue: poll says ready
            else:
                poll(&pfd, 1, 1)
            continue
        if _refused_by_peer(e, replies):
            run.c.errors += datagrams[done] if datagrams != NULL else 1
            done += 1           # that message is lost; the rest go on
            continue
        err[0] = e
        return -1
    return done


@cython.nonecheck(False)
cdef int send_segmented(Run run, mmsghdr *groups, Py_ssize_t m, const uint32_t *datagrams,
                        int fd, int flags, bint replies, plain_rest rest, void *ctx,
                        int *err) noexcept nogil:
    cdef mmsghdr *plain
    cdef Py_ssize_t n
    cdef Py_ssize_t sent = send_all(run, groups, m, fd, flags, datagrams, replies, err)
    if sent < 0:
        return -1
    if sent < m:
        run.refuse_gso()
        n = rest(ctx, sent, &plain)
        if send_all(run, plain, n, fd, flags, NULL, replies, err) < 0:
            return -1
    return 0
