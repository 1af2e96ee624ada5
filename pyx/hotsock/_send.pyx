"""Sending in batches: ``send_batch``, and the send arrays the loops share.

One ``sendmmsg`` call moves up to 1024 datagrams to the kernel; with GSO,
consecutive datagrams for one destination go as one segmented send
(UDP_SEGMENT), and a kernel or device that refuses it is remembered in the
socket's record (``_state``) so that later sends go one by one.  On a
stream socket the buffers are written whole, in order.

:class:`SendBatch` is the arena to send from without a Python object per
datagram: the caller fills its slots in place and sets their lengths (and
destinations), and ``send_batch`` builds the messages in C.  A received
:class:`~hotsock.RecvBatch` is sent the same way (echo, relays, fan-out).

:class:`SendArrays` holds the mmsghdr/iovec/sockaddr/segment arrays a send
works in; ``send_batch``, ``echo`` and ``blast`` take theirs from one small
pool, so a call neither allocates nor zeroes them afresh.

Where sendmmsg is missing (macOS) or switched off with ``HOTSOCK_NO_MMSG=1``,
the same functions run a C loop of sendmsg with identical results.
"""
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBuffer_FillInfo, PyBUF_SIMPLE
from cpython.mem cimport PyMem_Calloc, PyMem_Free, PyMem_Malloc
from cpython.sequence cimport PySequence_Fast, PySequence_Fast_GET_SIZE, PySequence_Fast_GET_ITEM
from libc.errno cimport errno, EIO, EINVAL, EOPNOTSUPP
from libc.stdint cimport uint32_t
from libc.string cimport memcpy, memmove, memset

from includes.compat cimport mmsghdr, hs_sendmmsg, HS_MAX_BATCH, HS_GSO_MAX_BYTES
from includes.core cimport (
    HS_SEGMENT_CONTROL, hs_gso_build, hs_gso_build_arena, hs_gso_join, hs_gso_split_arena,
    hs_gso_stage, hs_gso_stage_size)
from includes.socket cimport (
    iovec, msghdr, sockaddr, sockaddr_storage, socklen_t, sendmsg, getsockopt, getpeername,
    SOL_SOCKET, SO_TYPE)
from hotsock._address cimport AddressCache, cache_of, resolve_address
from hotsock._features cimport safe_segment, use_mmsg
from hotsock._pysocket cimport SockInfo, get_sock_info
from hotsock._recv cimport _Memory, BatchSlots, RecvBatch, entry_data, entry_length, entry_slot
from hotsock._state cimport fork_generation, gso_usable_for, state_of
from hotsock._syscall cimport flags_arg, sock_call, raise_errno, timeout_flags


cdef extern from "<sys/socket.h>":
    enum: SOCK_STREAM

# Segmented sends of datagrams up to this size are copied into one buffer.
cdef size_t STAGED_SEGMENT = 1024

# The largest SendBatch slot (as for RecvBatch).
cdef Py_ssize_t MAX_SLOT = 1 << 24

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
    return _do_sendmmsg(fd, &ctx) if use_mmsg() else _do_sendmsg_loop(fd, &ctx)


cdef int _destination(AddressCache cache, int family, object addr,
                      sockaddr_storage *out, socklen_t *out_len) except -1:
    if not cache.destination(family, addr, out, out_len):
        resolve_address(family, addr, "send_batch", out, out_len)
    return 0


cdef class SendArrays:
    """The arrays a send works in, for up to ``capacity`` datagrams: buffer
    views, iovecs, messages, addresses, and for segmented sends the groups,
    their segment-size control messages, datagram counts, joined iovecs and
    a staging buffer.  Taken with ``take_arrays`` and given back with
    ``give_back``: a call allocating a few hundred KiB would have the
    allocator map and unmap them each time (page faults on every call)."""

    def __dealloc__(self):
        self._free()

    cdef void _free(self) noexcept:
        PyMem_Free(self.views)
        PyMem_Free(self.iovs)
        PyMem_Free(self.msgs)
        PyMem_Free(self.names)
        PyMem_Free(self.groups)
        PyMem_Free(self.datagrams)
        PyMem_Free(self.control)
        PyMem_Free(self.joined)
        PyMem_Free(self.stage)
        self.views = NULL
        self.iovs = NULL
        self.msgs = NULL
        self.names = NULL
        self.groups = NULL
        self.datagrams = NULL
        self.control = NULL
        self.joined = NULL
        self.stage = NULL
        self.capacity = 0
        self.stage_capacity = 0

    cdef int reserve(self, Py_ssize_t n) except -1:
        """Room for n datagrams (contents undefined)."""
        if n > self.capacity:
            self._free()
            self.views = <Py_buffer *>PyMem_Malloc(n * sizeof(Py_buffer))
            self.iovs = <iovec *>PyMem_Malloc(n * sizeof(iovec))
            self.msgs = <mmsghdr *>PyMem_Malloc(n * sizeof(mmsghdr))
            self.names = <sockaddr_storage *>PyMem_Malloc(n * sizeof(sockaddr_storage))
            self.groups = <mmsghdr *>PyMem_Malloc(n * sizeof(mmsghdr))
            self.datagrams = <uint32_t *>PyMem_Malloc(n * sizeof(uint32_t))
            self.control = <char *>PyMem_Malloc(n * HS_SEGMENT_CONTROL)
            self.joined = <iovec *>PyMem_Malloc(n * sizeof(iovec))
            if (self.views == NULL or self.iovs == NULL or self.msgs == NULL
                    or self.names == NULL or self.groups == NULL or self.datagrams == NULL
                    or self.control == NULL or self.joined == NULL):
                self._free()
                raise MemoryError()
            self.capacity = n
        return 0

    cdef unsigned char *staging(self, size_t length) except NULL:
        if length > self.stage_capacity or self.stage == NULL:
            PyMem_Free(self.stage)
            self.stage = <unsigned char *>PyMem_Malloc(length or 1)
            if self.stage == NULL:
                self.stage_capacity = 0
                raise MemoryError()
            self.stage_capacity = length
        return self.stage


cdef list _pool = []
# Arrays kept for reuse; more concurrent calls allocate their own.
cdef Py_ssize_t POOL = 4
# What the pool may keep in all, and each pooled set at most: room for a
# GRO batch of 64 full buffers (8192 datagrams, about 3.3 MiB), which echo
# answers.  A larger call frees its arrays when it ends, so one call with a
# million buffers does not pin hundreds of MiB for the life of the process.
cdef size_t KEEP_BYTES = 8 << 20
cdef Py_ssize_t KEEP_DATAGRAMS = 8 * HS_MAX_BATCH
cdef size_t KEEP_STAGE = 1 << 20


cdef SendArrays take_arrays(Py_ssize_t n, bint zeroed):
    """Arrays with room for n datagrams, from the pool (taken under the GIL,
    so concurrent callers never share one); the messages and groups zeroed
    if asked."""
    cdef SendArrays arrays
    try:
        arrays = _pool.pop()    # (one step: no test-then-pop that another thread can race)
    except IndexError:
        arrays = SendArrays()
    arrays.reserve(n)
    if zeroed:
        memset(arrays.msgs, 0, n * sizeof(mmsghdr))
        memset(arrays.groups, 0, n * sizeof(mmsghdr))
    return arrays


cdef size_t _kept_bytes(SendArrays arrays) noexcept:
    return arrays.capacity * (
        sizeof(Py_buffer) + 2 * sizeof(iovec) + 2 * sizeof(mmsghdr)
        + sizeof(sockaddr_storage) + sizeof(uint32_t) + HS_SEGMENT_CONTROL
    ) + arrays.stage_capacity


cdef void give_back(SendArrays arrays) noexcept:
    """Back to the pool, trimmed to what the pool may keep (or dropped)."""
    if arrays.stage_capacity > KEEP_STAGE:
        PyMem_Free(arrays.stage)
        arrays.stage = NULL
        arrays.stage_capacity = 0
    if arrays.capacity > KEEP_DATAGRAMS:
        arrays._free()
    if len(_pool) < POOL and _pool_bytes() + _kept_bytes(arrays) <= KEEP_BYTES:
        _pool.append(arrays)


cdef size_t _pool_bytes() noexcept:
    cdef size_t total = 0
    for arrays in _pool:
        total += _kept_bytes(<SendArrays>arrays)
    return total


def _send_pool_bytes():
    """Bytes of C memory the send pool keeps between calls (for tests)."""
    return _pool_bytes()


cdef Py_ssize_t _send_messages(SockInfo *info, mmsghdr *msgs, Py_ssize_t n, int flags,
                               const uint32_t *datagrams, Py_ssize_t *datagrams_sent,
                               int *gso_error) except -1:
    """Send n messages (sendmmsg, up to HS_MAX_BATCH at a time); the number of
    messages sent.  With *datagrams* (segmented messages), a refusal of a
    segmented send stops the run with *gso_error* set instead of raising."""
    cdef SendCtx ctx
    cdef Py_ssize_t total = 0, k, i
    ctx.flags = flags
    while total < n:
        ctx.msgs = msgs + total
        ctx.count = <unsigned int>min(n - total, <Py_ssize_t>HS_MAX_BATCH)
        try:
            k = sock_call(info, True,
                          _do_sendmmsg if use_mmsg() else _do_sendmsg_loop, &ctx)
        except OSError as exc:
            if (datagrams != NULL and datagrams[total] > 1
                    and exc.errno in (EIO, EINVAL, EOPNOTSUPP)):
                gso_error[0] = exc.errno
                return total
            if total == 0:
                raise
            return total    # what was sent stands; the rest reports the error again
        for i in range(total, total + k):
            datagrams_sent[0] += datagrams[i] if datagrams != NULL else 1
        total += k
        if k < ctx.count:
            break
    return total


cdef Py_ssize_t _send_segmented(object sock, SockInfo *info, SendArrays arrays, Py_ssize_t n,
                                int flags, size_t max_segment, bint join) except -1:
    """Send n datagrams as segmented sends where they group; the datagrams sent.
    A refusal is remembered for the socket and the rest go one by one.
    *join*: the datagrams may lie back to back in memory (an arena whose
    slots they fill), and such groups go as one buffer, uncopied."""
    cdef mmsghdr *groups = arrays.groups
    cdef Py_ssize_t m, sent = 0
    cdef int gso_error = 0
    m = <Py_ssize_t>hs_gso_build(arrays.msgs, n, max_segment, groups, arrays.control,
                                 arrays.datagrams)
    if join:
        hs_gso_join(groups, m, arrays.joined)
    # Small datagrams: copied into one buffer per send (see hs_gso_stage).
    hs_gso_stage(groups, m, STAGED_SEGMENT,
                 arrays.staging(hs_gso_stage_size(groups, m, STAGED_SEGMENT)), arrays.joined)
    _send_messages(info, groups, m, flags, arrays.datagrams, &sent, &gso_error)
    if gso_error:
        state_of(sock, info.fd, True).gso_refused = True
        _send_messages(info, arrays.msgs + sent, n - sent, flags, NULL, &sent, &gso_error)
    return sent


cdef int _socket_type(int fd) except -1:
    """SO_TYPE of *fd*; the errno (ENOTSOCK for a pipe or file, EBADF for a
    closed descriptor) if it is not a socket."""
    cdef int value = 0
    cdef socklen_t length = sizeof(value)
    if getsockopt(fd, SOL_SOCKET, SO_TYPE, &value, &length) < 0:
        raise_errno(errno)
    return value


cdef struct StreamCtx:
    msghdr msg
    int flags


cdef ssize_t _do_stream_send(int fd, void *p) noexcept nogil:
    cdef StreamCtx *c = <StreamCtx *>p
    return sendmsg(fd, &c.msg, c.flags)


cdef Py_ssize_t _send_stream(SockInfo *info, iovec *iovs, Py_ssize_t n, int flags,
                             sockaddr_storage *name, socklen_t name_len) except -1:
    """Write the n buffers to a stream socket in order, whole: the number written.

    Many buffers go per ``sendmsg`` (one iovec each).  A buffer the kernel
    took only part of is finished by waiting until the socket is writable
    (with its timeout for each wait).  If it cannot be finished -- the
    timeout expires, the socket is non-blocking and full, an error -- the
    exception says how far the data went: ``buffers_sent`` whole buffers
    and ``characters_written`` bytes of the next one.  At a buffer boundary
    the count is returned instead (or the error raised if nothing went), as
    for datagrams.
    """
    cdef StreamCtx ctx
    cdef Py_ssize_t done = 0
    cdef size_t written = 0         # bytes of buffer *done* already sent
    cdef ssize_t res
    memset(&ctx, 0, sizeof(ctx))
    ctx.flags = flags
    if name != NULL:
        ctx.msg.msg_name = name
        ctx.msg.msg_namelen = name_len
    while done < n:
        if iovs[done].iov_len == 0:
            done += 1
            continue
        ctx.msg.msg_iov = &iovs[done]
        ctx.msg.msg_iovlen = <size_t>min(n - done, <Py_ssize_t>HS_MAX_BATCH)
        try:
            res = sock_call(info, True, _do_stream_send, &ctx)
        except BaseException as exc:   # a signal handler's exception too
            if written == 0 and isinstance(exc, OSError):
                if done == 0:
                    raise
                return done     # what was sent stands; the rest reports the error again
            if done or written:
                exc.buffers_sent = done
                exc.characters_written = written
            raise
        # Advance over what the kernel took: whole buffers, then part of one.
        while res > 0 and done < n:
            if <size_t>res >= iovs[done].iov_len:
                res -= iovs[done].iov_len
                iovs[done].iov_base = NULL
                iovs[done].iov_len = 0
                done += 1
                written = 0
            else:
                iovs[done].iov_base = (<char *>iovs[done].iov_base) + res
                iovs[done].iov_len -= <size_t>res
                written += <size_t>res
                res = 0
    return n


cdef inline size_t _max_segment(object gso, int family) noexcept:
    return HS_GSO_MAX_BYTES if gso is True else safe_segment(family)


def send_batch(sock, buffers, address=None, *, addresses=None, flags=0, gso=None):
    """send_batch(sock, buffers, address=None, *, addresses=None, flags=0, gso=None) -> int

    Send each bytes-like object of *buffers* (a sequence or any iterable) as one datagram,
    up to 1024 per ``sendmmsg`` call.  *buffers* may also be a :class:`SendBatch`
    (its ``len(batch)`` datagrams, each to ``address`` if given, else to the
    one set with ``set_address``, else to the connected peer) or a received
    :class:`RecvBatch` (its datagrams as received, each to ``address`` if
    given, else to the connected peer on a connected socket, else back to
    its sender); neither makes a Python object per datagram, and *addresses*
    does not apply to them.  The destination is *address* for all
    of them, ``addresses[i]`` for each, or the connected peer when neither is
    given.  Returns the number of datagrams sent: fewer than ``len(buffers)``
    when the socket stops accepting (a full buffer on a non-blocking socket,
    an error after the first datagram; sending the rest again reports it).

    On a stream socket (TCP, AF_UNIX SOCK_STREAM) the buffers are written in
    order, each one whole: a buffer the kernel takes only part of is
    finished by waiting until the socket is writable again (the socket's
    timeout applies to each wait).  The count returned is of whole buffers
    written.  When a buffer cannot be finished (the timeout expires, a
    non-blocking socket is full, an error), the exception raised --
    ``TimeoutError``, ``BlockingIOError``, ``OSError`` -- carries
    ``buffers_sent`` (whole buffers written) and ``characters_written``
    (bytes of the next buffer written): no byte is ever dropped or written
    twice without the caller being told.

    *gso* (Linux, UDP sockets): consecutive datagrams for one destination and
    of one size (the last may be shorter) go as one segmented send
    (UDP_SEGMENT) of up to 64 datagrams.  None: where that is safe --
    datagrams of at most 1472 (IPv4) / 1452 (IPv6) bytes, which any path MTU
    of 1500 carries; True: any size; False: never.  If the kernel or device
    refuses (EIO, EINVAL, EOPNOTSUPP), the datagrams go one by one and the
    socket is remembered as refusing.  Receivers see the same datagrams.

    Addresses are converted as ``socket.sendto`` converts them, with the
    same errors and messages.  Raises ``TypeError`` for an item that is not
    a bytes-like object, for both *address* and *addresses* or for *flags*
    that are not an integer, ``ValueError`` when *addresses* and *buffers*
    differ in length, ``OSError`` (``ENOTSOCK``) when *sock* is not a
    socket, and ``OSError``/``TimeoutError`` when not even the first
    datagram can be sent.  For a SendBatch: ``ValueError`` for a length above
    the slot size (naming the datagram), and the address errors of
    ``sendto`` (with a note naming the datagram); for a RecvBatch that is
    being received into, ``RuntimeError``.
    """
    cdef SockInfo info
    cdef Py_ssize_t n, i, acquired = 0, total = 0
    cdef Py_buffer *views
    cdef iovec *iovs
    cdef mmsghdr *msgs
    cdef sockaddr_storage *names
    cdef socklen_t name_len = 0
    cdef AddressCache cache
    cdef SendArrays arrays
    cdef int gso_error = 0
    cdef int c_flags = flags_arg(flags)
    cdef bint stream
    get_sock_info(sock, &info)
    if isinstance(buffers, (SendBatch, RecvBatch)):
        if addresses is not None:
            raise TypeError("send_batch() takes addresses only with a sequence of buffers "
                            "(a SendBatch has set_address)")
        return _send_from_batch(sock, &info, buffers, address, c_flags, gso)
    # Tuples: user code runs below (__index__, name lookups with the GIL
    # released) and must not be able to shrink what is being indexed.
    items = tuple(PySequence_Fast(buffers, "send_batch() expects a sequence of bytes-like objects"))
    n = PySequence_Fast_GET_SIZE(items)
    if address is not None and addresses is not None:
        raise TypeError("send_batch() takes address or addresses, not both")
    if gso is not None and gso is not True and gso is not False:
        raise TypeError(f"gso must be True, False or None, not {type(gso).__name__}")
    if addresses is not None:
        targets = tuple(PySequence_Fast(addresses, "addresses must be a sequence of addresses"))
        if PySequence_Fast_GET_SIZE(targets) != n:
            raise ValueError(f"{n} buffers but {PySequence_Fast_GET_SIZE(targets)} addresses")
    if n == 0:
        return 0
    # Not a socket (a pipe, a file): say so, as the stdlib would, before
    # the address is read by the rules of a family it does not have.
    stream = _socket_type(info.fd) == SOCK_STREAM
    arrays = take_arrays(n, True)
    try:
        views, iovs, msgs, names = arrays.views, arrays.iovs, arrays.msgs, arrays.names
        cache = cache_of(sock)
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
            elif address is not None:
                msgs[i].msg_hdr.msg_name = &names[0]
                msgs[i].msg_hdr.msg_namelen = name_len
        c_flags = timeout_flags(info.timeout_ns, c_flags)
        if stream:
            # A stream has no datagrams: sendmmsg would count a buffer the
            # kernel took only part of as sent, and drop the rest.
            return _send_stream(&info, iovs, n, c_flags,
                                &names[0] if address is not None or addresses is not None
                                else NULL, name_len)
        if n > 1 and gso is not False and gso_usable_for(sock, info.fd, info.family):
            return _send_segmented(sock, &info, arrays, n, c_flags,
                                   _max_segment(gso, info.family), False)
        _send_messages(&info, msgs, n, c_flags, NULL, &total, &gso_error)
        return total
    finally:
        for i in range(acquired):
            PyBuffer_Release(&arrays.views[i])
        give_back(arrays)


# --- sending from batches -------------------------------------------------------

# SendBatch.name_family: the slot has no address, or one not yet converted.
cdef int NO_ADDRESS = 0
cdef int UNCONVERTED = -1


cdef class SendBatch:
    """SendBatch(count=64, size=2048)

    An arena of *count* slots of *size* bytes each, to send from with
    :func:`send_batch` without a Python object per datagram.  ``batch[i]``
    is a writable memoryview of slot *i* (all *size* bytes) for the caller
    to fill; ``lengths`` is a writable ``uint32`` array of *count* items,
    each slot's datagram length (0 to begin with).  ``len(batch)`` is the
    number of datagrams to send, slots ``0 .. used-1``: set ``used``, or let
    ``set(i, data)`` raise it to ``i + 1``.  The batch itself exports the
    whole arena (``numpy.frombuffer(batch, numpy.uint8).reshape(count, size)``).

    ``set_address(i, address)`` gives slot *i* its own destination (None: none,
    the connected peer); it is converted as ``socket.sendto`` converts it,
    for the family of the socket it is sent on, when first sent, and kept
    converted for later sends (a host name is looked up once).  An
    ``address`` passed to ``send_batch`` goes for every datagram instead.

    Raises ``ValueError`` for a count outside 1..MAX_BATCH or a size outside
    0..16 MiB, and ``MemoryError`` if the arena cannot be allocated.
    """

    def __cinit__(self, Py_ssize_t count=64, Py_ssize_t size=2048):
        if count < 1 or count > HS_MAX_BATCH:
            raise ValueError(f"count must be between 1 and {HS_MAX_BATCH}, not {count}")
        if size < 0 or size > MAX_SLOT:
            raise ValueError(f"size must be between 0 and {MAX_SLOT}, not {size}")
        self.count = count
        self.size = size
        self._arena = _Memory(count * size, 1, b"B")
        self._lengths = _Memory(count, sizeof(uint32_t), b"I")
        self._arena_view = memoryview(self._arena)
        self._targets = [None] * count
        self.names = <sockaddr_storage *>PyMem_Calloc(count, sizeof(sockaddr_storage))
        self.name_lens = <socklen_t *>PyMem_Calloc(count, sizeof(socklen_t))
        self.name_family = <int *>PyMem_Calloc(count, sizeof(int))
        if self.names == NULL or self.name_lens == NULL or self.name_family == NULL:
            raise MemoryError()

    def __init__(self, Py_ssize_t count=64, Py_ssize_t size=2048):
        pass            # everything is set up (and checked) in __cinit__

    def __dealloc__(self):
        PyMem_Free(self.names)
        PyMem_Free(self.name_lens)
        PyMem_Free(self.name_family)

    def __len__(self):
        return self._used

    def __repr__(self):
        return f"<hotsock.SendBatch count={self.count} size={self.size} used={self._used}>"

    @property
    def used(self):
        """Datagrams to send (slots ``0 .. used-1``); settable, 0..count."""
        return self._used

    @used.setter
    def used(self, Py_ssize_t n):
        if n < 0 or n > self.count:
            raise ValueError(f"used must be between 0 and {self.count}, not {n}")
        self._used = n

    cdef Py_ssize_t _slot(self, Py_ssize_t i) except -1:
        if i < 0:
            i += self.count
        if i < 0 or i >= self.count:
            raise IndexError("SendBatch index out of range")
        return i

    def __getitem__(self, Py_ssize_t i):
        i = self._slot(i)
        return self._arena_view[i * self.size:(i + 1) * self.size]

    def __iter__(self):
        """``(payload, address)`` of each datagram to send: its first
        ``lengths[i]`` bytes, and the address set for it (or None)."""
        cdef Py_ssize_t i
        cdef uint32_t c_len
        for i in range(self._used):
            c_len = (<uint32_t *>self._lengths.ptr)[i]
            if c_len > <uint32_t>self.size:
                _length_error(i, c_len, self.size)
            yield self._arena_view[i * self.size:i * self.size + c_len], self._targets[i]

    @property
    def lengths(self):
        """Each slot's datagram length: a writable ``uint32`` memoryview of
        ``count`` items.  A length above ``size`` is refused when sent."""
        return self._lengths.view(self.count)

    def set(self, Py_ssize_t i, data, address=None):
        """Copy the bytes-like *data* into slot *i*, set its length, raise
        ``used`` to ``i + 1`` if below, and set its address if one is given
        (None leaves it as it is).  ``ValueError`` if *data* is longer than
        ``size``, ``IndexError`` for a slot out of range, ``TypeError`` for
        data that is not bytes-like."""
        cdef Py_buffer view
        cdef Py_ssize_t length
        i = self._slot(i)
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            length = view.len
            if length > self.size:
                raise ValueError(f"{length} bytes do not fit in a slot of {self.size}")
            # memmove: data may be a view of this very slot
            memmove(self._arena.ptr + i * self.size, view.buf, <size_t>length)
        finally:
            PyBuffer_Release(&view)
        (<uint32_t *>self._lengths.ptr)[i] = <uint32_t>length
        if address is not None:
            self.set_address(i, address)
        if self._used <= i:
            self._used = i + 1

    def set_address(self, Py_ssize_t i, address):
        """The destination of slot *i* (None: no address of its own).  It is
        converted when first sent, with ``sendto``'s errors."""
        i = self._slot(i)
        if (self._targets[i] is None) != (address is None):
            self._targeted += 1 if address is not None else -1
        self._targets[i] = address
        self.name_family[i] = NO_ADDRESS if address is None else UNCONVERTED

    def address(self, Py_ssize_t i):
        """The address set for slot *i*, or None."""
        return self._targets[self._slot(i)]

    cdef int _name(self, Py_ssize_t i, int family, sockaddr_storage *out,
                   socklen_t *out_len) except -1:
        """Slot i's destination as a sockaddr for a socket of *family*, copied
        to *out* (a copy: the send runs without the GIL, and another thread
        may set the address meanwhile)."""
        if self.name_family[i] == family:
            memcpy(out, &self.names[i], self.name_lens[i])
            out_len[0] = self.name_lens[i]
            return 0
        target = self._targets[i]
        try:
            resolve_address(family, target, "send_batch", out, out_len)
        except Exception as exc:
            exc.add_note(f"(the address set for datagram {i} of the SendBatch)")
            raise
        # Kept for later sends -- unless converted for another family already,
        # or replaced while a host name was being looked up.
        if self.name_family[i] == UNCONVERTED and self._targets[i] is target:
            memcpy(&self.names[i], out, out_len[0])
            self.name_lens[i] = out_len[0]
            self.name_family[i] = family
        return 0

    def __getbuffer__(self, Py_buffer *view, int flags):
        PyBuffer_FillInfo(view, self._arena, self._arena.ptr,
                          self.count * self.size, 0, flags)

    def __releasebuffer__(self, Py_buffer *view):
        pass


cdef int _length_error(Py_ssize_t i, uint32_t length, Py_ssize_t size) except -1:
    raise ValueError(f"SendBatch.lengths[{i}] is {length}, more than the slot size {size}")


cdef inline void _message(mmsghdr *m, iovec *iov, char *data, size_t length,
                          void *name, socklen_t name_len) noexcept:
    iov.iov_base = data
    iov.iov_len = length
    m.msg_hdr.msg_name = name
    m.msg_hdr.msg_namelen = name_len
    m.msg_hdr.msg_iov = iov
    m.msg_hdr.msg_iovlen = 1
    m.msg_hdr.msg_control = NULL
    m.msg_hdr.msg_controllen = 0
    m.msg_hdr.msg_flags = 0


cdef int _fill_from_arena(SendBatch batch, int family, SendArrays arrays, Py_ssize_t n,
                          sockaddr_storage *one, socklen_t one_len) except -1:
    """Messages for the first n slots of *batch*: to *one* if given, else each
    to its own address (if set)."""
    cdef uint32_t *lengths = <uint32_t *>batch._lengths.ptr
    cdef char *arena = batch._arena.ptr
    cdef Py_ssize_t i, size = batch.size
    cdef uint32_t c_len
    cdef socklen_t name_len
    cdef bint own = one == NULL and batch._targeted > 0
    for i in range(n):
        # Read once: NumPy (or another thread) may write the array meanwhile,
        # and what was checked must be what is sent.
        c_len = lengths[i]
        if c_len > <uint32_t>size:
            _length_error(i, c_len, size)
        _message(&arrays.msgs[i], &arrays.iovs[i], arena + i * size, c_len, one, one_len)
        if own and batch.name_family[i] != NO_ADDRESS:
            batch._name(i, family, &arrays.names[i], &name_len)
            arrays.msgs[i].msg_hdr.msg_name = &arrays.names[i]
            arrays.msgs[i].msg_hdr.msg_namelen = name_len
    return 0


cdef int _fill_from_received(RecvBatch batch, SendArrays arrays, Py_ssize_t n,
                             sockaddr_storage *one, socklen_t one_len,
                             bint to_senders) except -1:
    """Messages for the n datagrams of *batch*, as received (each never past
    its buffer, whatever its ``lengths`` entry says): to *one*, back to their
    senders, or (neither) to the connected peer."""
    cdef BatchSlots *s = &batch.slots
    cdef Py_ssize_t i, slot, length, room
    cdef char *data
    cdef socklen_t name_len
    for i in range(n):
        slot = entry_slot(s, i)
        data = entry_data(s, i)
        room = s.size - (data - (s.arena + slot * s.size))
        length = entry_length(s, i)
        if length > room:
            length = room if room > 0 else 0
        _message(&arrays.msgs[i], &arrays.iovs[i], data, <size_t>length, one, one_len)
        if to_senders:
            name_len = s.msgs[slot].msg_hdr.msg_namelen
            if name_len > sizeof(sockaddr_storage):
                name_len = sizeof(sockaddr_storage)
            # A copy: a receive into the batch may start once this one has the GIL back.
            memcpy(&arrays.names[i], &s.names[slot], name_len)
            arrays.msgs[i].msg_hdr.msg_name = &arrays.names[i] if name_len else NULL
            arrays.msgs[i].msg_hdr.msg_namelen = name_len
    return 0


cdef Py_ssize_t _send_arena_segmented(object sock, SockInfo *info, SendArrays arrays,
                                      SendBatch batch, Py_ssize_t n, int flags,
                                      size_t max_segment, sockaddr_storage *one,
                                      socklen_t one_len) except -1:
    """_send_segmented for the first n slots of an arena, all to *one* (NULL:
    the connected peer): grouped in one pass over the lengths, with no
    message per datagram unless the socket refuses segmented sends."""
    cdef mmsghdr *groups = arrays.groups
    cdef size_t bad = 0
    cdef Py_ssize_t m, i, sent = 0
    cdef int gso_error = 0
    m = <Py_ssize_t>hs_gso_build_arena(batch._arena.ptr, <size_t>batch.size,
                                       <uint32_t *>batch._lengths.ptr, <size_t>n, max_segment,
                                       one, one_len, arrays.iovs, groups,
                                       arrays.control, arrays.datagrams, &bad)
    if m == 0:
        _length_error(<Py_ssize_t>bad, (<uint32_t *>batch._lengths.ptr)[bad], batch.size)
    hs_gso_stage(groups, m, STAGED_SEGMENT,
                 arrays.staging(hs_gso_stage_size(groups, m, STAGED_SEGMENT)), arrays.joined)
    _send_messages(info, groups, m, flags, arrays.datagrams, &sent, &gso_error)
    if gso_error:
        state_of(sock, info.fd, True).gso_refused = True
        # One by one, each datagram as the grouping read it.
        hs_gso_split_arena(groups, m, arrays.datagrams, <size_t>batch.size, arrays.iovs)
        for i in range(sent, n):
            _message(&arrays.msgs[i], &arrays.iovs[i], <char *>arrays.iovs[i].iov_base,
                     arrays.iovs[i].iov_len, one, one_len)
        _send_messages(info, arrays.msgs + sent, n - sent, flags, NULL, &sent, &gso_error)
    return sent


cdef bint _connected(int fd) noexcept:
    cdef sockaddr_storage peer
    cdef socklen_t length = sizeof(peer)
    return getpeername(fd, <sockaddr *>&peer, &length) == 0


cdef Py_ssize_t _send_from_batch(object sock, SockInfo *info, object batch, object address,
                                 int c_flags, object gso) except -1:
    """send_batch for a SendBatch or a RecvBatch."""
    cdef SendArrays arrays
    cdef RecvBatch received = None
    cdef sockaddr_storage *one = NULL
    cdef socklen_t name_len = 0
    cdef Py_ssize_t n, total = 0
    cdef int gso_error = 0
    cdef bint stream, segmented
    if gso is not None and gso is not True and gso is not False:
        raise TypeError(f"gso must be True, False or None, not {type(gso).__name__}")
    if isinstance(batch, RecvBatch):
        received = <RecvBatch>batch
        if received._busy and received._busy_forks == fork_generation():
            raise RuntimeError("this RecvBatch is being received into in another thread")
        n = received._received
    else:
        n = (<SendBatch>batch)._used
    if n == 0:
        return 0
    # (Segmented sends are for UDP sockets only: no need to ask for the type too.)
    segmented = n > 1 and gso is not False and gso_usable_for(sock, info.fd, info.family)
    stream = not segmented and _socket_type(info.fd) == SOCK_STREAM
    c_flags = timeout_flags(info.timeout_ns, c_flags)
    arrays = take_arrays(n, False)      # every field of every message is set below
    try:
        if address is not None:
            _destination(cache_of(sock), info.family, address, &arrays.names[0], &name_len)
            one = &arrays.names[0]
        if received is not None:
            _fill_from_received(received, arrays, n, one, name_len,
                                one == NULL and not stream and not _connected(info.fd))
        elif segmented and (one != NULL or (<SendBatch>batch)._targeted == 0):
            return _send_arena_segmented(sock, info, arrays, <SendBatch>batch, n, c_flags,
                                         _max_segment(gso, info.family), one, name_len)
        else:
            _fill_from_arena(<SendBatch>batch, info.family, arrays, n, one, name_len)
        if stream:
            return _send_stream(info, arrays.iovs, n, c_flags, one, name_len)
        if segmented:
            return _send_segmented(sock, info, arrays, n, c_flags,
                                   _max_segment(gso, info.family), True)
        _send_messages(info, arrays.msgs, n, c_flags, NULL, &total, &gso_error)
        return total
    finally:
        give_back(arrays)
