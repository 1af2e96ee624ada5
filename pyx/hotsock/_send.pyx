"""Sending in batches: ``send_batch``, and the send arrays the loops share.

One ``sendmmsg`` call moves up to 1024 datagrams to the kernel; with GSO,
consecutive datagrams for one destination go as one segmented send
(UDP_SEGMENT), and a kernel or device that refuses it is remembered in the
socket's record (``_state``) so that later sends go one by one.  On a
stream socket the buffers are written whole, in order.

:class:`SendArrays` holds the mmsghdr/iovec/sockaddr/segment arrays a send
works in; ``send_batch``, ``echo`` and ``blast`` take theirs from one small
pool, so a call neither allocates nor zeroes them afresh.

Where sendmmsg is missing (macOS) or switched off with ``HOTSOCK_NO_MMSG=1``,
the same functions run a C loop of sendmsg with identical results.
"""
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.sequence cimport PySequence_Fast, PySequence_Fast_GET_SIZE, PySequence_Fast_GET_ITEM
from libc.errno cimport errno, EIO, EINVAL, EOPNOTSUPP
from libc.stdint cimport uint32_t
from libc.string cimport memset

from includes.compat cimport mmsghdr, hs_sendmmsg, HS_MAX_BATCH, HS_GSO_MAX_BYTES
from includes.core cimport HS_SEGMENT_CONTROL, hs_gso_build, hs_gso_stage, hs_gso_stage_size
from includes.socket cimport (
    iovec, msghdr, sockaddr_storage, socklen_t, sendmsg, getsockopt, SOL_SOCKET, SO_TYPE)
from hotsock._address cimport AddressCache, cache_of, resolve_address
from hotsock._features cimport safe_segment, use_mmsg
from hotsock._pysocket cimport SockInfo, get_sock_info
from hotsock._state cimport gso_usable_for, state_of
from hotsock._syscall cimport flags_arg, sock_call, raise_errno, timeout_flags


cdef extern from "<sys/socket.h>":
    enum: SOCK_STREAM

# Segmented sends of datagrams up to this size are copied into one buffer.
cdef size_t STAGED_SEGMENT = 1024

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
                                int flags, size_t max_segment) except -1:
    """Send n datagrams as segmented sends where they group; the datagrams sent.
    A refusal is remembered for the socket and the rest go one by one."""
    cdef mmsghdr *groups = arrays.groups
    cdef Py_ssize_t m, sent = 0
    cdef int gso_error = 0
    m = <Py_ssize_t>hs_gso_build(arrays.msgs, n, max_segment, groups, arrays.control,
                                 arrays.datagrams)
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


def send_batch(sock, buffers, address=None, *, addresses=None, flags=0, gso=None):
    """send_batch(sock, buffers, address=None, *, addresses=None, flags=0, gso=None) -> int

    Send each bytes-like object of *buffers* (a sequence or any iterable) as one datagram,
    up to 1024 per ``sendmmsg`` call.  The destination is *address* for all
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
    datagram can be sent.
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
    cdef size_t max_segment
    get_sock_info(sock, &info)
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
            max_segment = HS_GSO_MAX_BYTES if gso is True else safe_segment(info.family)
            return _send_segmented(sock, &info, arrays, n, c_flags, max_segment)
        _send_messages(&info, msgs, n, c_flags, NULL, &total, &gso_error)
        return total
    finally:
        for i in range(acquired):
            PyBuffer_Release(&arrays.views[i])
        give_back(arrays)
