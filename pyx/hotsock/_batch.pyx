"""Batch datagram I/O: ``RecvBatch``, ``recv_batch`` and ``send_batch``.

One ``recvmmsg``/``sendmmsg`` call moves up to 1024 datagrams between the
kernel and Python.  A :class:`RecvBatch` owns all the memory such a call
needs -- one arena of ``count * size`` bytes and the mmsghdr/iovec/sockaddr
arrays -- allocated once and reused, so receiving makes no Python object per
datagram (DESIGN.md, contract 6).  Payloads are memoryviews into the arena
and metadata are flat arrays behind the buffer protocol.

Where recvmmsg/sendmmsg are missing (macOS) or switched off with
``HOTSOCK_NO_MMSG=1``, the same functions run a C loop of recvmsg/sendmsg
with identical results.
"""
import os

from cpython.buffer cimport (
    PyObject_GetBuffer, PyBuffer_Release, PyBuffer_FillInfo, PyBUF_SIMPLE,
    PyBUF_FORMAT, PyBUF_ND, PyBUF_STRIDES)
from cpython.mem cimport PyMem_Calloc, PyMem_Free
from cpython.sequence cimport PySequence_Fast, PySequence_Fast_GET_SIZE, PySequence_Fast_GET_ITEM
from libc.errno cimport errno, EAGAIN, EINTR, ENOSYS
from libc.stdint cimport int32_t, int64_t, uint32_t

from includes.compat cimport (
    mmsghdr, hs_recvmmsg, hs_sendmmsg, HS_HAVE_MMSG, HS_MAX_BATCH, MSG_WAITFORONE,
    HS_SO_TIMESTAMPNS, HS_IP_PKTINFO, HS_SO_RXQ_OVFL)
from includes.core cimport HS_CONTROL_SPACE, hs_control_parse, hs_rx_meta
from includes.netinet cimport INET6_ADDRSTRLEN, inet_ntop
from includes.socket cimport (
    iovec, msghdr, sockaddr, sockaddr_storage, socklen_t, recvmsg, sendmsg,
    MSG_TRUNC, MSG_CTRUNC, MSG_DONTWAIT)
from hotsock._address cimport AddressCache, cache_of, resolve_address
from hotsock._pysocket cimport SockInfo, get_sock_info
from hotsock._syscall cimport sock_call, raise_errno, timeout_flags

#: The most datagrams one recvmmsg/sendmmsg call takes (the kernel's UIO_MAXIOV).
MAX_BATCH = HS_MAX_BATCH

# Options that make the kernel report per-datagram metadata (see RecvBatch),
# which the socket module does not name; None where the system lacks them.
SO_TIMESTAMPNS = HS_SO_TIMESTAMPNS if HS_SO_TIMESTAMPNS >= 0 else None
IP_PKTINFO = HS_IP_PKTINFO if HS_IP_PKTINFO >= 0 else None
SO_RXQ_OVFL = HS_SO_RXQ_OVFL if HS_SO_RXQ_OVFL >= 0 else None

# The largest slot: a full GRO buffer needs 64 KiB; larger slots suit stream sockets.
cdef Py_ssize_t MAX_SLOT = 1 << 24


cdef bint _probe_mmsg():
    """recvmmsg and sendmmsg exist here: compiled in, not refused by the kernel."""
    if not HS_HAVE_MMSG:
        return False
    # An invalid descriptor fails with EBADF where the syscall exists and
    # with ENOSYS where it does not (old kernels, some sandboxes).
    if hs_recvmmsg(-1, NULL, 0, 0) < 0 and errno == ENOSYS:
        return False
    if hs_sendmmsg(-1, NULL, 0, 0) < 0 and errno == ENOSYS:
        return False
    return True


cdef bint MMSG_AVAILABLE = _probe_mmsg()
cdef bint MMSG_FORCED_OFF = os.environ.get("HOTSOCK_NO_MMSG", "") not in ("", "0")
cdef bint USE_MMSG = MMSG_AVAILABLE and not MMSG_FORCED_OFF


def batch_features():
    """What the batch functions use on this system (part of ``hotsock.features()``)."""
    return {
        "mmsg_compiled": bool(HS_HAVE_MMSG),
        "mmsg_available": MMSG_AVAILABLE,
        "mmsg_forced_off": MMSG_FORCED_OFF,
        "batch_path": "recvmmsg/sendmmsg" if USE_MMSG else "recvmsg/sendmsg loop",
        "max_batch": HS_MAX_BATCH,
    }


cdef class _Memory:
    """A block of C memory exported through the buffer protocol.

    Views keep it alive, so a memoryview taken from a batch stays valid (its
    contents change with the next receive) even after the batch is gone.
    """

    def __cinit__(self, Py_ssize_t capacity, Py_ssize_t itemsize, bytes fmt):
        self.ptr = <char *>PyMem_Calloc(capacity if capacity > 0 else 1, itemsize)
        if self.ptr == NULL:
            raise MemoryError()
        self.itemsize = itemsize
        self.capacity = capacity
        self.items = capacity
        self.fmt = fmt

    def __dealloc__(self):
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
        m.msg_hdr.msg_control = s.control + i * HS_CONTROL_SPACE
        m.msg_hdr.msg_controllen = HS_CONTROL_SPACE
        m.msg_hdr.msg_flags = 0
    s.dirty = s.count


cdef void slots_finish(BatchSlots *s, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        s.lengths[i] = s.msgs[i].msg_len
        s.flags[i] = s.msgs[i].msg_hdr.msg_flags
        hs_control_parse(&s.msgs[i].msg_hdr, &s.meta[i], &s.drops)
        s.timestamps[i] = s.meta[i].timestamp_ns
    s.dirty = n


cdef class RecvBatch:
    """RecvBatch(count=64, size=2048)

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

    Raises ``ValueError`` for a count outside 1..MAX_BATCH or a size outside
    0..16 MiB, and ``MemoryError`` if the arena cannot be allocated.
    """

    def __cinit__(self, Py_ssize_t count=64, Py_ssize_t size=2048):
        cdef Py_ssize_t i
        cdef BatchSlots *s = &self.slots
        if count < 1 or count > HS_MAX_BATCH:
            raise ValueError(f"count must be between 1 and {HS_MAX_BATCH}, not {count}")
        if size < 0 or size > MAX_SLOT:
            raise ValueError(f"size must be between 0 and {MAX_SLOT}, not {size}")
        self.count = count
        self.size = size
        self._arena = _Memory(count * size, 1, b"B")
        self._lengths = _Memory(count, sizeof(uint32_t), b"I")
        self._flags = _Memory(count, sizeof(int32_t), b"i")
        self._timestamps = _Memory(count, sizeof(int64_t), b"q")
        self._arena_view = memoryview(self._arena)
        self._addresses = AddressCache()
        s.count = count
        s.size = size
        s.arena = self._arena.ptr
        s.lengths = <uint32_t *>self._lengths.ptr
        s.flags = <int32_t *>self._flags.ptr
        s.timestamps = <int64_t *>self._timestamps.ptr
        s.msgs = <mmsghdr *>PyMem_Calloc(count, sizeof(mmsghdr))
        s.iovs = <iovec *>PyMem_Calloc(count, sizeof(iovec))
        s.names = <sockaddr_storage *>PyMem_Calloc(count, sizeof(sockaddr_storage))
        s.control = <char *>PyMem_Calloc(count, HS_CONTROL_SPACE)
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

    def __init__(self, Py_ssize_t count=64, Py_ssize_t size=2048):
        pass            # everything is set up (and checked) in __cinit__

    def __dealloc__(self):
        PyMem_Free(self.slots.msgs)
        PyMem_Free(self.slots.iovs)
        PyMem_Free(self.slots.names)
        PyMem_Free(self.slots.control)
        PyMem_Free(self.slots.meta)

    def __len__(self):
        return self._received

    def __repr__(self):
        return (f"<hotsock.RecvBatch count={self.count} size={self.size} "
                f"received={self._received}>")

    cdef int acquire(self) except -1:
        """Claim the batch for one receive (it is filled with the GIL released)."""
        if self._busy:
            raise RuntimeError("this RecvBatch is already receiving in another thread")
        self._busy = True
        self._received = 0
        slots_prepare(&self.slots)
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
        cdef Py_ssize_t length = self.slots.lengths[i]
        if length > self.size:
            length = self.size          # MSG_TRUNC in flags: lengths has the full size
        return self._arena_view[i * self.size:i * self.size + length]

    def __iter__(self):
        cdef Py_ssize_t i
        for i in range(self._received):
            yield self[i], self.address(i)

    def address(self, Py_ssize_t i):
        """The sender of datagram *i*, as ``recvfrom`` gives it (None if unknown)."""
        i = self._index(i)
        return self._addresses.source(<sockaddr *>&self.slots.names[i],
                                      self.slots.msgs[i].msg_hdr.msg_namelen)

    def destination(self, Py_ssize_t i):
        """The address datagram *i* was sent to -- a group, a broadcast or one of
        this host's addresses -- as a string, or None unless the socket has
        ``IP_PKTINFO`` (IPv4) or ``IPV6_RECVPKTINFO`` (IPv6) on."""
        cdef char text[INET6_ADDRSTRLEN]
        i = self._index(i)
        cdef hs_rx_meta *meta = &self.slots.meta[i]
        if meta.dst_family == 0:
            return None
        inet_ntop(meta.dst_family, meta.dst_addr, text, sizeof(text))
        return text.decode("ascii")

    def truncated(self, Py_ssize_t i):
        """True if datagram *i* was longer than the slot and was cut."""
        i = self._index(i)
        return bool(self.slots.flags[i] & MSG_TRUNC)

    @property
    def lengths(self):
        """Received length of each datagram: a ``uint32`` memoryview of ``len(batch)`` items."""
        return self._lengths.view(self._received)

    @property
    def flags(self):
        """``msg_flags`` of each datagram (MSG_TRUNC, MSG_CTRUNC): an ``int32`` memoryview."""
        return self._flags.view(self._received)

    @property
    def timestamps(self):
        """Kernel receive time of each datagram in ns since the epoch (``SO_TIMESTAMPNS``;
        0 where the socket did not ask for it): an ``int64`` memoryview."""
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


cdef ssize_t _do_recvmmsg(int fd, void *p) noexcept nogil:
    cdef RecvCtx *c = <RecvCtx *>p
    # MSG_WAITFORONE: block (or time out) for the first datagram only, then
    # take what is queued.  recvmmsg's own timeout argument is not used: it
    # is only checked between datagrams (see BUGS in recvmmsg(2)).
    return hs_recvmmsg(fd, c.msgs, c.count, c.flags | MSG_WAITFORONE)


cdef ssize_t _do_recvmsg_loop(int fd, void *p) noexcept nogil:
    cdef RecvCtx *c = <RecvCtx *>p
    cdef ssize_t res
    cdef unsigned int i
    res = recvmsg(fd, &c.msgs[0].msg_hdr, c.flags)
    if res < 0:
        return -1
    c.msgs[0].msg_len = <unsigned int>res
    for i in range(1, c.count):
        res = recvmsg(fd, &c.msgs[i].msg_hdr, c.flags | MSG_DONTWAIT)
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
    n = _do_recvmmsg(fd, &ctx) if USE_MMSG else _do_recvmsg_loop(fd, &ctx)
    if ctx.later_errno:
        s.deferred_errno = ctx.later_errno
    return n


# Errors the recvmsg fallback met after the first datagram of a call, by
# descriptor: the next recv_batch on that descriptor raises them.
cdef dict _deferred_errors = {}


def recv_batch(sock, RecvBatch batch not None, int flags=0):
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
    get_sock_info(sock, &info)
    if info.fd in _deferred_errors:
        # The fallback met this error after receiving datagrams last time:
        # report it now, as the kernel's recvmmsg does with sk_err.
        batch._received = 0
        raise_errno(<int>_deferred_errors.pop(info.fd))
    batch.acquire()
    ctx.msgs = batch.slots.msgs
    ctx.count = <unsigned int>batch.count
    ctx.flags = timeout_flags(info.timeout_ns, flags)
    ctx.later_errno = 0
    try:
        n = sock_call(info.fd, info.timeout_ns, False,
                      _do_recvmmsg if USE_MMSG else _do_recvmsg_loop, &ctx)
        slots_finish(&batch.slots, n)
    finally:
        batch.release(n)
    if ctx.later_errno:
        _deferred_errors[info.fd] = ctx.later_errno
    return n


# --- send ---------------------------------------------------------------------

cdef struct SendCtx:
    mmsghdr *msgs
    unsigned int count
    int flags


cdef ssize_t _do_sendmmsg(int fd, void *p) noexcept nogil:
    cdef SendCtx *c = <SendCtx *>p
    return hs_sendmmsg(fd, c.msgs, c.count, c.flags)


cdef ssize_t _do_sendmsg_loop(int fd, void *p) noexcept nogil:
    # Like sendmmsg: an error after the first datagram ends the run, and the
    # caller learns of it by sending the rest again.
    cdef SendCtx *c = <SendCtx *>p
    cdef ssize_t res
    cdef unsigned int i
    for i in range(c.count):
        res = sendmsg(fd, &c.msgs[i].msg_hdr, c.flags)
        if res < 0:
            return -1 if i == 0 else i
        c.msgs[i].msg_len = <unsigned int>res
    return c.count


cdef Py_ssize_t mmsg_send(int fd, mmsghdr *msgs, unsigned int n, int flags) noexcept nogil:
    cdef SendCtx ctx
    ctx.msgs = msgs
    ctx.count = n
    ctx.flags = flags
    return _do_sendmmsg(fd, &ctx) if USE_MMSG else _do_sendmsg_loop(fd, &ctx)


cdef int _destination(AddressCache cache, int family, object addr,
                      sockaddr_storage *out, socklen_t *out_len) except -1:
    if not cache.destination(family, addr, out, out_len):
        resolve_address(family, addr, "send_batch", out, out_len)
    return 0


def send_batch(sock, buffers, address=None, *, addresses=None, int flags=0):
    """send_batch(sock, buffers, address=None, *, addresses=None, flags=0) -> int

    Send each bytes-like object of *buffers* (a sequence or any iterable) as one datagram,
    up to 1024 per ``sendmmsg`` call.  The destination is *address* for all
    of them, ``addresses[i]`` for each, or the connected peer when neither is
    given.  Returns the number of datagrams sent: fewer than ``len(buffers)``
    when the socket stops accepting (a full buffer on a non-blocking socket,
    an error after the first datagram; sending the rest again reports it).

    Raises ``TypeError`` for an item that is not a bytes-like object or for
    both *address* and *addresses*, ``ValueError`` when *addresses* and
    *buffers* differ in length, the stdlib's errors for a bad address, and
    ``OSError``/``TimeoutError`` when not even the first datagram can be sent.
    """
    cdef SockInfo info
    cdef SendCtx ctx
    cdef Py_ssize_t n, i, acquired = 0, total = 0, k
    cdef Py_buffer *views = NULL
    cdef iovec *iovs = NULL
    cdef mmsghdr *msgs = NULL
    cdef sockaddr_storage *names = NULL
    cdef socklen_t name_len = 0
    cdef AddressCache cache
    get_sock_info(sock, &info)
    # Tuples: user code runs below (__index__, name lookups with the GIL
    # released) and must not be able to shrink what is being indexed.
    items = tuple(PySequence_Fast(buffers, "send_batch() expects a sequence of bytes-like objects"))
    n = PySequence_Fast_GET_SIZE(items)
    if address is not None and addresses is not None:
        raise TypeError("send_batch() takes address or addresses, not both")
    if addresses is not None:
        targets = tuple(PySequence_Fast(addresses, "addresses must be a sequence of addresses"))
        if PySequence_Fast_GET_SIZE(targets) != n:
            raise ValueError(f"{n} buffers but {PySequence_Fast_GET_SIZE(targets)} addresses")
    if n == 0:
        return 0
    try:
        views = <Py_buffer *>PyMem_Calloc(n, sizeof(Py_buffer))
        iovs = <iovec *>PyMem_Calloc(n, sizeof(iovec))
        msgs = <mmsghdr *>PyMem_Calloc(n, sizeof(mmsghdr))
        if views == NULL or iovs == NULL or msgs == NULL:
            raise MemoryError()
        cache = cache_of(sock)
        if address is not None or addresses is not None:
            names = <sockaddr_storage *>PyMem_Calloc(
                n if addresses is not None else 1, sizeof(sockaddr_storage))
            if names == NULL:
                raise MemoryError()
            if address is not None:
                _destination(cache, info.family, address, &names[0], &name_len)
        for i in range(n):
            PyObject_GetBuffer(<object>PySequence_Fast_GET_ITEM(items, i),
                               &views[i], PyBUF_SIMPLE)
            acquired += 1
            iovs[i].iov_base = views[i].buf
            iovs[i].iov_len = <size_t>views[i].len
            msgs[i].msg_hdr.msg_iov = &iovs[i]
            msgs[i].msg_hdr.msg_iovlen = 1
            if addresses is not None:
                _destination(cache, info.family, <object>PySequence_Fast_GET_ITEM(targets, i),
                             &names[i], &name_len)
                msgs[i].msg_hdr.msg_name = &names[i]
                msgs[i].msg_hdr.msg_namelen = name_len
            elif names != NULL:
                msgs[i].msg_hdr.msg_name = &names[0]
                msgs[i].msg_hdr.msg_namelen = name_len
        ctx.flags = timeout_flags(info.timeout_ns, flags)
        while total < n:
            ctx.msgs = msgs + total
            ctx.count = <unsigned int>min(n - total, <Py_ssize_t>HS_MAX_BATCH)
            try:
                k = sock_call(info.fd, info.timeout_ns, True,
                              _do_sendmmsg if USE_MMSG else _do_sendmsg_loop, &ctx)
            except OSError:
                if total == 0:
                    raise
                break       # what was sent stands; the rest reports the error again
            total += k
            if k < ctx.count:
                break
        return total
    finally:
        for i in range(acquired):
            PyBuffer_Release(&views[i])
        PyMem_Free(views)
        PyMem_Free(iovs)
        PyMem_Free(msgs)
        PyMem_Free(names)
