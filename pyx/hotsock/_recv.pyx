"""Receiving in batches: ``RecvBatch`` and ``recv_batch``.

One ``recvmmsg`` call moves up to 1024 datagrams from the kernel.  A
:class:`RecvBatch` owns all the memory such a call needs -- one arena of
``count * size`` bytes and the mmsghdr/iovec/sockaddr/control arrays --
allocated once and reused, so receiving makes no Python object per datagram
(contract 6 in docs/ARCHITECTURE.md).  Payloads are memoryviews into the arena and metadata are
flat arrays behind the buffer protocol.  The hot loops receive into the
same batch without the GIL through its C side, ``BatchSlots``.

Where recvmmsg is missing (macOS) or switched off with ``HOTSOCK_NO_MMSG=1``,
the same functions run a C loop of recvmsg with identical results.
"""
import threading

from cpython.buffer cimport PyBuffer_FillInfo, PyBUF_FORMAT, PyBUF_ND, PyBUF_STRIDES
from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.mem cimport PyMem_Calloc, PyMem_Free
from libc.errno cimport errno, EAGAIN, EINTR
from libc.stdint cimport int32_t, int64_t, uint32_t

from includes.compat cimport (
    mmsghdr, hs_recvmmsg, HS_MAX_BATCH, MSG_WAITFORONE, MSG_CMSG_CLOEXEC, SOL_UDP, HS_UDP_GRO,
    HS_GRO_MAX_SEGMENTS)
from includes.core cimport HS_CONTROL_SPACE, hs_control_parse, hs_control_room, hs_rx_meta
from includes.netinet cimport INET6_ADDRSTRLEN, inet_ntop
from includes.socket cimport (
    iovec, sockaddr, sockaddr_storage, recvmsg, setsockopt, MSG_TRUNC, MSG_CTRUNC, MSG_DONTWAIT)
from posix.mman cimport mmap, munmap, PROT_READ, PROT_WRITE, MAP_PRIVATE, MAP_ANONYMOUS, MAP_FAILED
from hotsock._address cimport AddressCache
from hotsock._features cimport use_gro, use_mmsg
from hotsock._pysocket cimport SockInfo, get_sock_info
from hotsock._state cimport SocketState, state_of, fork_generation
from hotsock._syscall cimport flags_arg, sock_call, raise_errno, timeout_flags

# Memory blocks from this size up are mapped from the kernel (see _Memory).
cdef size_t MAPPED_MEMORY = 1 << 20

# Control-message room per buffer that RecvBatch accepts.
cdef Py_ssize_t MAX_CONTROL = 65536

# A coalesced (GRO) buffer holds up to 64 KiB.
cdef Py_ssize_t GRO_BUFFER = 65536

# The largest slot: a full GRO buffer needs 64 KiB; larger slots suit stream sockets.
cdef Py_ssize_t MAX_SLOT = 1 << 24


cdef class _Memory:
    """A block of C memory exported through the buffer protocol.

    Views keep it alive, so a memoryview taken from a batch stays valid (its
    contents change with the next receive) even after the batch is gone.
    """

    def __cinit__(self, Py_ssize_t capacity, Py_ssize_t itemsize, bytes fmt):
        cdef size_t length = max(capacity, 1) * itemsize
        if length >= MAPPED_MEMORY:
            # Straight from the kernel: zeroed page by page as first touched,
            # so a large arena costs nothing until datagrams land in it (a
            # calloc'ed block may be recycled memory cleared up front).
            self.ptr = <char *>mmap(NULL, length, PROT_READ | PROT_WRITE,
                                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
            if self.ptr == <char *>MAP_FAILED:
                self.ptr = NULL
                raise MemoryError()
            self.mapped = length
        else:
            self.ptr = <char *>PyMem_Calloc(max(capacity, 1), itemsize)
            if self.ptr == NULL:
                raise MemoryError()
        self.itemsize = itemsize
        self.capacity = capacity
        self.items = capacity
        self.fmt = fmt

    def __dealloc__(self):
        if self.mapped:
            munmap(self.ptr, self.mapped)
        else:
            PyMem_Free(self.ptr)

    def __getbuffer__(self, Py_buffer *view, int flags):
        self.shape[0] = self.items
        self.strides[0] = self.itemsize
        view.buf = self.ptr
        view.obj = self
        view.len = self.items * self.itemsize
        view.readonly = 0
        view.itemsize = self.itemsize
        view.format = NULL
        if flags & PyBUF_FORMAT:
            view.format = <char *>self.fmt
        view.ndim = 1
        view.shape = self.shape if flags & PyBUF_ND else NULL
        view.strides = self.strides if flags & PyBUF_STRIDES == PyBUF_STRIDES else NULL
        view.suboffsets = NULL
        view.internal = NULL

    def __releasebuffer__(self, Py_buffer *view):
        pass

    cdef object view(self, Py_ssize_t items):
        self.items = items
        return memoryview(self)


cdef void slots_prepare(BatchSlots *s) noexcept nogil:
    cdef Py_ssize_t i
    cdef mmsghdr *m
    for i in range(s.dirty):
        m = &s.msgs[i]
        m.msg_hdr.msg_namelen = sizeof(sockaddr_storage)
        m.msg_hdr.msg_control = s.control + i * s.control_space if s.control_space else NULL
        m.msg_hdr.msg_controllen = <size_t>s.control_space
        m.msg_hdr.msg_flags = 0
    s.dirty = s.count


cdef void slots_entry_meta(BatchSlots *s) noexcept nogil:
    cdef Py_ssize_t i, b
    if not s.gro or s.entry_meta_ready:
        return
    for i in range(s.entries):
        b = s.slot_of[i]
        s.flags[i] = s.msgs[b].msg_hdr.msg_flags
        s.timestamps[i] = s.meta[b].timestamp_ns
    s.entry_meta_ready = True


cdef Py_ssize_t slots_finish(BatchSlots *s, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i, j, k = 0, last, segment
    cdef uint32_t length
    cdef hs_rx_meta *meta
    for i in range(n):
        # Linux hands the MSG_CMSG_CLOEXEC we pass back in msg_flags: not the datagram's.
        s.msgs[i].msg_hdr.msg_flags &= ~MSG_CMSG_CLOEXEC
    if not s.gro:
        for i in range(n):
            s.lengths[i] = s.msgs[i].msg_len
            hs_control_parse(&s.msgs[i].msg_hdr, &s.meta[i], &s.drops)   # may add MSG_CTRUNC
            s.flags[i] = s.msgs[i].msg_hdr.msg_flags
            s.timestamps[i] = s.meta[i].timestamp_ns
        s.dirty = n
        s.entries = n
        return n
    for i in range(n):
        meta = &s.meta[i]
        hs_control_parse(&s.msgs[i].msg_hdr, meta, &s.drops)
        length = s.msgs[i].msg_len
        segment = meta.gro_size
        if (segment <= 0 or segment >= length or length > <uint32_t>s.size
                or k + (length - 1) // segment + 1 > s.capacity):
            # One datagram -- or, with MSG_CTRUNC, a buffer whose segment size
            # may have been lost: flagged, never split by guesswork.  (More
            # segments than the batch has room for -- past any kernel's limit
            # -- are not split either, and flagged the same way.)
            if segment > 0 and segment < length and length <= <uint32_t>s.size:
                s.msgs[i].msg_hdr.msg_flags |= MSG_CTRUNC
            s.first[i] = k
            s.segment[i] = length
            s.slot_of[k] = <uint32_t>i
            s.lengths[k] = length
            k += 1
            continue
        # Only what every datagram needs is stored here (this loop runs at
        # tens of millions of datagrams a second); offsets are worked out
        # from the buffer's, flags and timestamps filled when asked for.
        s.first[i] = k
        s.segment[i] = segment
        last = (length - 1) // segment         # datagrams before the last one
        for j in range(k, k + last):           # a counted loop: the compiler vectorizes it
            s.slot_of[j] = <uint32_t>i
            s.lengths[j] = <uint32_t>segment
        k += last
        s.slot_of[k] = <uint32_t>i
        s.lengths[k] = <uint32_t>(length - last * segment)
        k += 1
    s.entry_meta_ready = False
    s.dirty = n
    s.entries = k
    return k


cdef class RecvBatch:
    """RecvBatch(count=64, size=2048, *, gro=False, control=256)

    Room for *count* datagrams of up to *size* bytes each, for
    :func:`recv_batch`.  After a receive, ``len(batch)`` is the number of
    datagrams received; ``batch[i]`` is a memoryview of datagram *i* inside
    the batch's arena (valid until the next receive into this batch);
    iteration yields ``(payload, address)`` pairs.

    ``lengths`` and ``flags`` are arrays (``uint32``, ``int32``) of the
    received lengths and ``msg_flags`` (``MSG_TRUNC``: the datagram was
    longer than *size*; ``MSG_CTRUNC``: control data was cut), ready for
    ``numpy.frombuffer``.  The batch itself exports the whole arena.

    When the socket asks for them (``SO_TIMESTAMPNS``, ``IP_PKTINFO`` /
    ``IPV6_RECVPKTINFO``, ``SO_RXQ_OVFL``), ``timestamps``,
    ``destination(i)`` and ``dropped`` report the kernel's receive times,
    the address each datagram was sent to, and the socket's drop counter.

    *gro* (Linux, UDP): the first receive turns UDP_GRO on for the socket,
    so that one buffer may hold many datagrams of one sender, coalesced by
    the kernel; each buffer is then 64 KiB (at least), and the batch splits
    buffers back into datagrams at the segment size the kernel reports:
    ``len(batch)``, indexing, iteration, ``lengths``, ``flags``,
    ``timestamps``, ``address(i)`` all count datagrams (up to ``capacity``,
    128 per buffer), still without copying.  A buffer whose control data was
    cut (``MSG_CTRUNC`` in its datagram's ``flags``) has lost its segment
    size: it stays one flagged entry, never guessed apart.

    *control* is the room per buffer for control messages (the options
    above), rounded up to a multiple of 8 (their alignment); a socket asking
    for more than fits gets ``MSG_CTRUNC``.  Descriptors a peer attaches on an
    AF_UNIX socket (``SCM_RIGHTS``) are closed at once and their datagram
    flagged ``MSG_CTRUNC``, as the stdlib's ``recv``/``recvfrom`` have the
    kernel drop them.

    Raises ``ValueError`` for a count outside 1..MAX_BATCH, a size outside
    0..16 MiB or a control size outside 0..64 KiB, and ``MemoryError`` if the
    arena cannot be allocated.
    """

    def __cinit__(self, Py_ssize_t count=64, Py_ssize_t size=2048, *, bint gro=False,
                  Py_ssize_t control=HS_CONTROL_SPACE):
        cdef Py_ssize_t i
        cdef BatchSlots *s = &self.slots
        if count < 1 or count > HS_MAX_BATCH:
            raise ValueError(f"count must be between 1 and {HS_MAX_BATCH}, not {count}")
        if size < 0 or size > MAX_SLOT:
            raise ValueError(f"size must be between 0 and {MAX_SLOT}, not {size}")
        if control < 0 or control > MAX_CONTROL:
            raise ValueError(f"control must be between 0 and {MAX_CONTROL}, not {control}")
        if gro and size < GRO_BUFFER:
            size = GRO_BUFFER       # room for a whole coalesced buffer
        self.count = count
        self.size = size
        self.gro = gro
        self.capacity = count * HS_GRO_MAX_SEGMENTS if gro else count
        self._gro_fd = -1
        self._arena = _Memory(count * size, 1, b"B")
        self._lengths = _Memory(self.capacity, sizeof(uint32_t), b"I")
        self._flags = _Memory(self.capacity, sizeof(int32_t), b"i")
        self._timestamps = _Memory(self.capacity, sizeof(int64_t), b"q")
        self._arena_view = memoryview(self._arena)
        self._addresses = AddressCache()
        s.count = count
        s.size = size
        s.gro = gro
        s.capacity = self.capacity
        if gro:
            s.slot_of = <uint32_t *>PyMem_Calloc(self.capacity, sizeof(uint32_t))
            s.first = <Py_ssize_t *>PyMem_Calloc(count, sizeof(Py_ssize_t))
            s.segment = <Py_ssize_t *>PyMem_Calloc(count, sizeof(Py_ssize_t))
            if s.slot_of == NULL or s.first == NULL or s.segment == NULL:
                raise MemoryError()
        s.arena = self._arena.ptr
        s.lengths = <uint32_t *>self._lengths.ptr
        s.flags = <int32_t *>self._flags.ptr
        s.timestamps = <int64_t *>self._timestamps.ptr
        s.msgs = <mmsghdr *>PyMem_Calloc(count, sizeof(mmsghdr))
        s.iovs = <iovec *>PyMem_Calloc(count, sizeof(iovec))
        s.names = <sockaddr_storage *>PyMem_Calloc(count, sizeof(sockaddr_storage))
        # Rounded up: each slot's control messages must start aligned for
        # struct cmsghdr (the kernel writes them at msg_control as structs).
        s.control_space = <Py_ssize_t>hs_control_room(<size_t>control)
        s.control = <char *>PyMem_Calloc(count, s.control_space if s.control_space else 1)
        s.meta = <hs_rx_meta *>PyMem_Calloc(count, sizeof(hs_rx_meta))
        if (s.msgs == NULL or s.iovs == NULL or s.names == NULL or s.control == NULL
                or s.meta == NULL):
            raise MemoryError()
        for i in range(count):
            s.iovs[i].iov_base = s.arena + i * size
            s.iovs[i].iov_len = <size_t>size
            s.msgs[i].msg_hdr.msg_iov = &s.iovs[i]
            s.msgs[i].msg_hdr.msg_iovlen = 1
            s.msgs[i].msg_hdr.msg_name = &s.names[i]
        s.dirty = count

    def __init__(self, Py_ssize_t count=64, Py_ssize_t size=2048, *, bint gro=False,
                 Py_ssize_t control=HS_CONTROL_SPACE):
        pass            # everything is set up (and checked) in __cinit__

    def __dealloc__(self):
        PyMem_Free(self.slots.slot_of)
        PyMem_Free(self.slots.first)
        PyMem_Free(self.slots.segment)
        PyMem_Free(self.slots.msgs)
        PyMem_Free(self.slots.iovs)
        PyMem_Free(self.slots.names)
        PyMem_Free(self.slots.control)
        PyMem_Free(self.slots.meta)

    def __len__(self):
        return self._received

    def __repr__(self):
        gro = " gro" if self.gro else ""
        return (f"<hotsock.RecvBatch count={self.count} size={self.size}{gro} "
                f"received={self._received}>")

    cdef int enable_gro(self, int fd) except -1:
        """Let socket *fd* hand this batch coalesced buffers (UDP_GRO), once per socket.
        Where the socket or system refuses, datagrams simply arrive one by one."""
        cdef int on = 1
        if self.gro and fd != self._gro_fd and use_gro():
            setsockopt(fd, SOL_UDP, HS_UDP_GRO, &on, sizeof(on))
            self._gro_fd = fd
        return 0

    cdef int acquire(self) except -1:
        """Claim the batch for one receive (it is filled with the GIL released)."""
        if self._busy and self._busy_forks == fork_generation():
            raise RuntimeError("this RecvBatch is already receiving in another thread")
        self._busy = True
        self._busy_forks = fork_generation()
        self._received = 0
        return 0

    cdef void release(self, Py_ssize_t received) noexcept:
        self._busy = False
        self._received = received

    cdef Py_ssize_t _index(self, Py_ssize_t i) except -1:
        if i < 0:
            i += self._received
        if i < 0 or i >= self._received:
            raise IndexError("batch index out of range")
        return i

    def __getitem__(self, Py_ssize_t i):
        i = self._index(i)
        cdef Py_ssize_t start = entry_data(&self.slots, i) - self.slots.arena
        return self._arena_view[start:start + entry_length(&self.slots, i)]

    def __iter__(self):
        cdef Py_ssize_t i
        for i in range(self._received):
            yield self[i], self.address(i)

    def address(self, Py_ssize_t i):
        """The sender of datagram *i*, as ``recvfrom`` gives it (None if unknown)."""
        i = entry_slot(&self.slots, self._index(i))
        return self._addresses.source(<sockaddr *>&self.slots.names[i],
                                      self.slots.msgs[i].msg_hdr.msg_namelen)

    def destination(self, Py_ssize_t i):
        """The address datagram *i* was sent to -- a group, a broadcast or one of
        this host's addresses -- as a string, or None unless the socket has
        ``IP_PKTINFO`` (IPv4) or ``IPV6_RECVPKTINFO`` (IPv6) on."""
        cdef char text[INET6_ADDRSTRLEN]
        i = entry_slot(&self.slots, self._index(i))
        cdef hs_rx_meta *meta = &self.slots.meta[i]
        if meta.dst_family == 0:
            return None
        inet_ntop(meta.dst_family, meta.dst_addr, text, sizeof(text))
        return text.decode("ascii")

    def truncated(self, Py_ssize_t i):
        """True if datagram *i* was longer than the slot and was cut."""
        i = self._index(i)
        return bool(entry_flags(&self.slots, i) & MSG_TRUNC)

    @property
    def lengths(self):
        """Received length of each datagram: a ``uint32`` memoryview of ``len(batch)`` items."""
        return self._lengths.view(self._received)

    @property
    def flags(self):
        """``msg_flags`` of each datagram (MSG_TRUNC, MSG_CTRUNC): an ``int32`` memoryview."""
        slots_entry_meta(&self.slots)
        return self._flags.view(self._received)

    @property
    def timestamps(self):
        """Kernel receive time of each datagram in ns since the epoch (``SO_TIMESTAMPNS``;
        0 where the socket did not ask for it): an ``int64`` memoryview."""
        slots_entry_meta(&self.slots)
        return self._timestamps.view(self._received)

    @property
    def dropped(self):
        """The socket's drop counter as the kernel last reported it with a datagram
        (``SO_RXQ_OVFL``: datagrams dropped since the socket was opened), or None
        if it never did (the option is off, or nothing was dropped yet)."""
        return self.slots.drops.counter if self.slots.drops.seen else None

    def __getbuffer__(self, Py_buffer *view, int flags):
        PyBuffer_FillInfo(view, self._arena, self._arena.ptr,
                          self.count * self.size, 0, flags)

    def __releasebuffer__(self, Py_buffer *view):
        pass


# --- receive ------------------------------------------------------------------

cdef struct RecvCtx:
    mmsghdr *msgs
    unsigned int count
    int flags
    int later_errno         # fallback: an error met after the first datagram


# Descriptors a peer attaches are installed close-on-exec: the control parser
# closes them (see ancillary.h), and a fork+exec meanwhile must not keep them.

cdef ssize_t _do_recvmmsg(int fd, void *p) noexcept nogil:
    cdef RecvCtx *c = <RecvCtx *>p
    # MSG_WAITFORONE: block (or time out) for the first datagram only, then
    # take what is queued.  recvmmsg's own timeout argument is not used: it
    # is only checked between datagrams (see BUGS in recvmmsg(2)).
    return hs_recvmmsg(fd, c.msgs, c.count, c.flags | MSG_WAITFORONE | MSG_CMSG_CLOEXEC)


cdef ssize_t _do_recvmsg_loop(int fd, void *p) noexcept nogil:
    cdef RecvCtx *c = <RecvCtx *>p
    cdef ssize_t res
    cdef unsigned int i
    res = recvmsg(fd, &c.msgs[0].msg_hdr, c.flags | MSG_CMSG_CLOEXEC)
    if res < 0:
        return -1
    c.msgs[0].msg_len = <unsigned int>res
    for i in range(1, c.count):
        res = recvmsg(fd, &c.msgs[i].msg_hdr, c.flags | MSG_DONTWAIT | MSG_CMSG_CLOEXEC)
        if res < 0:
            if errno != EAGAIN and errno != EINTR:
                c.later_errno = errno
            return i
        c.msgs[i].msg_len = <unsigned int>res
    return c.count


cdef Py_ssize_t slots_receive(BatchSlots *s, int fd, unsigned int want, int flags) noexcept nogil:
    cdef RecvCtx ctx
    cdef ssize_t n
    slots_prepare(s)
    ctx.msgs = s.msgs
    ctx.count = want
    ctx.flags = flags
    ctx.later_errno = 0
    n = _do_recvmmsg(fd, &ctx) if use_mmsg() else _do_recvmsg_loop(fd, &ctx)
    if ctx.later_errno:
        s.deferred_errno = ctx.later_errno
    return n


def recv_batch(sock, RecvBatch batch not None, flags=0):
    """recv_batch(sock, batch, flags=0) -> int

    Receive into *batch* with one ``recvmmsg`` call: wait (honouring the
    socket's timeout) until at least one datagram is queued, then take what
    is queued, up to ``batch.count``, without waiting again.  Returns the
    number received, also ``len(batch)``.  *sock* is a socket object or an
    integer file descriptor (whose own O_NONBLOCK flag then applies).

    Raises ``TimeoutError`` when the timeout expires, ``BlockingIOError`` on a
    non-blocking socket with nothing queued, and ``OSError`` for the socket's
    errors (``ConnectionRefusedError`` after an ICMP port unreachable on a
    connected socket, ...).
    """
    cdef SockInfo info
    cdef RecvCtx ctx
    cdef Py_ssize_t n = 0
    cdef SocketState state
    cdef int deferred
    cdef int c_flags = flags_arg(flags)
    get_sock_info(sock, &info)
    state = state_of(sock, info.fd, False)
    if state is not None and state.deferred_errno:
        # The fallback met this error after receiving datagrams last time:
        # report it now, as the kernel's recvmmsg does with sk_err.
        deferred = state.take_deferred_errno()
        if deferred:
            batch._received = 0
            raise_errno(deferred)
    batch.enable_gro(info.fd)
    batch.acquire()
    slots_prepare(&batch.slots)     # the loops' slots_receive does this itself
    ctx.msgs = batch.slots.msgs
    ctx.count = <unsigned int>batch.count
    ctx.flags = timeout_flags(info.timeout_ns, c_flags)
    ctx.later_errno = 0
    try:
        n = sock_call(&info, False,
                      _do_recvmmsg if use_mmsg() else _do_recvmsg_loop, &ctx)
        n = slots_finish(&batch.slots, n)
    finally:
        batch.release(n)
    if ctx.later_errno:
        state_of(sock, info.fd, True).deferred_errno = ctx.later_errno
    return n


# --- batches the hot loops reuse --------------------------------------------

# A loop's default batch (64 buffers of 64 KiB) is a 4 MiB arena: mapping,
# faulting and unmapping it costs more than a one-datagram run itself.  The
# loops take their batch from here and give it back; batches the caller sees
# (capture's callback mode) are never pooled.  Bounded: a few batches of up
# to POOLED_ARENA bytes.
cdef list _batch_pool = []
_batch_pool_lock = threading.Lock()
cdef Py_ssize_t BATCH_POOL = 2
cdef Py_ssize_t POOLED_ARENA = 4 << 20


def _loop_batch(Py_ssize_t count, Py_ssize_t size, bint gro):
    """A RecvBatch for a hot loop: a pooled one of this shape, else a new one."""
    cdef RecvBatch batch
    cdef Py_ssize_t i
    with _batch_pool_lock:      # (a free-threaded build has no GIL to make this one step)
        for i in range(len(_batch_pool)):
            batch = <RecvBatch>_batch_pool[i]
            if batch.count == count and batch.gro == gro and (
                    batch.size == size or (gro and size < GRO_BUFFER and batch.size == GRO_BUFFER)):
                del _batch_pool[i]
                return batch
    return RecvBatch(count, size, gro=gro)


def _return_batch(RecvBatch batch not None):
    """Back to the pool, as new: nothing of the last run (its socket, its
    drop counter, a deferred error) carries over to the next."""
    cdef BatchSlots *s = &batch.slots
    if batch._busy or batch.count * batch.size > POOLED_ARENA:
        return
    s.drops.counter = 0
    s.drops.seen = 0
    s.deferred_errno = 0
    s.entries = 0
    batch._received = 0
    batch._gro_fd = -1
    with _batch_pool_lock:
        if len(_batch_pool) >= BATCH_POOL:
            del _batch_pool[0]          # the least recently used goes: shapes change
        _batch_pool.append(batch)


# --- datagrams one by one, for a classic protocol -----------------------------

def _deliver(RecvBatch batch not None, Py_ssize_t start, callback, transport, on_error):
    """``callback(bytes, address)`` for datagrams *start*.. of the last
    receive, as asyncio's ``datagram_received`` takes them, while the
    transport reads (``transport._closing`` and ``_paused`` false: a
    protocol that paused or closed its transport gets no more for now).  An
    exception from the callback (but SystemExit and KeyboardInterrupt, which
    propagate) goes to ``on_error(exc)`` and the next
    datagram is delivered all the same (each was its own callback in
    asyncio; none may be lost with another's error).  Returns the index of
    the first datagram not delivered (``len(batch)`` when all were).
    (Compiled: no memoryview per datagram on the way.)"""
    cdef BatchSlots *s = &batch.slots
    cdef Py_ssize_t i, slot, n = batch._received
    for i in range(start, n):
        if transport._closing or transport._paused:
            return i
        slot = entry_slot(s, i)
        data = PyBytes_FromStringAndSize(entry_data(s, i), entry_length(s, i))
        address = batch._addresses.source(<sockaddr *>&s.names[slot],
                                          s.msgs[slot].msg_hdr.msg_namelen)
        try:
            callback(data, address)
        except (SystemExit, KeyboardInterrupt):
            raise                       # as asyncio's handles let these through
        except BaseException as exc:
            on_error(exc)
    return n
