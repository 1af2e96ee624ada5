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
import operator
import os
import threading

import _socket

from cpython.buffer cimport (
    PyObject_GetBuffer, PyBuffer_Release, PyBuffer_FillInfo, PyBUF_SIMPLE,
    PyBUF_FORMAT, PyBUF_ND, PyBUF_STRIDES)
from cpython.mem cimport PyMem_Calloc, PyMem_Free, PyMem_Malloc
from cpython.sequence cimport PySequence_Fast, PySequence_Fast_GET_SIZE, PySequence_Fast_GET_ITEM
from libc.errno cimport errno, EAGAIN, EINTR, ENOSYS, EIO, EINVAL, EOPNOTSUPP
from libc.limits cimport INT_MAX, INT_MIN
from libc.stdint cimport int32_t, int64_t, uint32_t
from libc.string cimport memset
from posix.stat cimport fstat, struct_stat

from includes.compat cimport (
    mmsghdr, hs_recvmmsg, hs_sendmmsg, HS_HAVE_MMSG, HS_MAX_BATCH, MSG_WAITFORONE, MSG_CMSG_CLOEXEC,
    HS_SO_TIMESTAMPNS, HS_IP_PKTINFO, HS_SO_RXQ_OVFL, HS_SO_MEMINFO, SOL_UDP, HS_UDP_GRO, HS_UDP_SEGMENT,
    HS_GRO_MAX_SEGMENTS, HS_GSO_MAX_SEGMENTS, HS_GSO_MAX_BYTES)
from includes.core cimport (
    HS_CONTROL_SPACE, HS_SEGMENT_CONTROL, hs_control_parse, hs_control_room, hs_gso_build,
    hs_gso_stage,
    hs_gso_stage_size, hs_rx_meta)
from includes.netinet cimport INET6_ADDRSTRLEN, inet_ntop
from includes.socket cimport (
    iovec, msghdr, sockaddr, sockaddr_storage, socklen_t, recvmsg, sendmsg, setsockopt,
    getsockopt, socket, AF_INET, AF_INET6, SOCK_DGRAM, SOL_SOCKET, SO_TYPE, SO_PROTOCOL,
    IPPROTO_UDP, MSG_TRUNC, MSG_CTRUNC, MSG_DONTWAIT)
from posix.mman cimport mmap, munmap, PROT_READ, PROT_WRITE, MAP_PRIVATE, MAP_ANONYMOUS, MAP_FAILED
from posix.unistd cimport close
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
# ... and the ones hotsock's loops use: the socket's memory counters (its
# drop counter among them), and receive coalescing (IPPROTO_UDP level).
SO_MEMINFO = HS_SO_MEMINFO if HS_SO_MEMINFO >= 0 else None
UDP_GRO = HS_UDP_GRO if HS_UDP_GRO >= 0 else None

# Memory blocks from this size up are mapped from the kernel (see _Memory).
cdef size_t MAPPED_MEMORY = 1 << 20

# Control-message room per buffer that RecvBatch accepts.
cdef Py_ssize_t MAX_CONTROL = 65536

# A coalesced (GRO) buffer holds up to 64 KiB.
cdef Py_ssize_t GRO_BUFFER = 65536

# The largest slot: a full GRO buffer needs 64 KiB; larger slots suit stream sockets.
cdef Py_ssize_t MAX_SLOT = 1 << 24


cdef extern from "Python.h":
    long PyLong_AsLong(object o) except? -1

cdef extern from "<sys/socket.h>":
    enum: SOCK_STREAM


cdef int flags_arg(object flags) except? -1:
    """*flags* as the stdlib's "i" format takes them: an int (or an object
    with ``__index__``), never a float; the stdlib's messages."""
    cdef long value = PyLong_AsLong(operator.index(flags))
    if value > INT_MAX:
        raise OverflowError("signed integer is greater than maximum")
    if value < INT_MIN:
        raise OverflowError("signed integer is less than minimum")
    return <int>value


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


cdef bint _probe_udp_option(int option, int value):
    """A fresh UDP socket takes this SOL_UDP option (UDP_SEGMENT, UDP_GRO)."""
    cdef int fd
    cdef bint ok
    if option < 0:
        return False
    fd = socket(AF_INET, SOCK_DGRAM, 0)
    if fd < 0:
        return False
    ok = setsockopt(fd, SOL_UDP, option, &value, sizeof(value)) == 0
    close(fd)
    return ok


cdef bint MMSG_AVAILABLE = _probe_mmsg()
cdef bint GSO_AVAILABLE = _probe_udp_option(HS_UDP_SEGMENT, 1400)
cdef bint GRO_AVAILABLE = _probe_udp_option(HS_UDP_GRO, 1)
cdef bint GSO_FORCED_OFF = os.environ.get("HOTSOCK_NO_GSO", "") not in ("", "0")
cdef bint USE_GSO = GSO_AVAILABLE and not GSO_FORCED_OFF
cdef bint GRO_FORCED_OFF = os.environ.get("HOTSOCK_NO_GRO", "") not in ("", "0")
cdef bint USE_GRO = GRO_AVAILABLE and not GRO_FORCED_OFF
# Segments any path with an MTU of 1500 carries whole (IPv4/IPv6 and UDP
# headers): the largest that automatic GSO (send_batch, blast) groups.
cdef size_t SAFE_SEGMENT_V4 = 1472
cdef size_t SAFE_SEGMENT_V6 = 1452
SAFE_SEGMENT = {AF_INET: SAFE_SEGMENT_V4, AF_INET6: SAFE_SEGMENT_V6}
# Segmented sends of datagrams up to this size are copied into one buffer.
cdef size_t STAGED_SEGMENT = 1024
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
        "gso_available": GSO_AVAILABLE,
        "gso_forced_off": GSO_FORCED_OFF,
        "gro_available": GRO_AVAILABLE,
        "gro_forced_off": GRO_FORCED_OFF,
    }


def gso_enabled():
    """Segmented sends (UDP_SEGMENT) are available and not switched off
    (``HOTSOCK_NO_GSO=1``)."""
    return USE_GSO


def gro_enabled():
    """Coalesced receives (UDP_GRO) are available and not switched off
    (``HOTSOCK_NO_GRO=1``)."""
    return USE_GRO


def gso_usable(int fd, int family):
    """Socket *fd* can take segmented sends: UDP, GSO enabled, never refused."""
    return _gso_usable(fd, family)


cdef bint _gso_usable(int fd, int family) except -1:
    return USE_GSO and _is_udp(fd, family) and not _gso_refused_for(fd)


# --- per-socket state (DESIGN.md, contract 8) ------------------------------------

cdef class SocketState:
    """What hotsock remembers about one socket, identified by its descriptor
    *and* inode: the kernel reuses descriptor numbers, and a new socket on an
    old number must start afresh.  Fetched only through ``state_of``."""

    def __cinit__(self, int fd, unsigned long long inode):
        self.fd = fd
        self.inode = inode

    def __repr__(self):
        return (f"<hotsock SocketState fd={self.fd} inode={self.inode} "
                f"gso_refused={self.gso_refused} deferred_errno={self.deferred_errno}>")


# The records by descriptor: for sockets that cannot carry one (stdlib
# sockets, bare descriptors) and for callers that know only the number (the
# hot loops' refuse_gso).  A hotsock.socket keeps its record in its
# ``_hotsock_state`` slot as well, so both ways reach the same record.  Each
# record is checked against the descriptor's inode before use; the lock makes
# look-up, check and replacement one step (also without a GIL).
cdef dict _states = {}
_states_lock = threading.Lock()


cdef bint _inode_of(int fd, unsigned long long *inode) noexcept:
    cdef struct_stat st
    if fd < 0 or fstat(fd, &st) < 0:
        return False
    inode[0] = <unsigned long long>st.st_ino
    return True


cdef SocketState state_of(object sock, int fd, bint create):
    """The state record of the socket with descriptor *fd*; *sock* is the
    object it came from (a socket object, an int, or None).  None when it
    has none yet, unless *create*: then a new record.  A closed descriptor
    gets a record that nothing keeps."""
    cdef SocketState state = None
    cdef unsigned long long inode
    cdef bint carries = isinstance(sock, _socket.socket)
    if carries:
        # Checked by type and descriptor: whatever else is in the attribute
        # (a user's value, a closed socket's record) is not used.
        held = getattr(sock, "_hotsock_state", None)
        if type(held) is SocketState and (<SocketState>held).fd == fd and fd >= 0:
            return <SocketState>held
    if not create and not _states:
        return None
    with _states_lock:
        state = _states.get(fd)
        if state is not None and not (_inode_of(fd, &inode) and inode == state.inode):
            del _states[fd]         # a socket that was closed; the number is reused
            state = None
        if state is None and create:
            if not _inode_of(fd, &inode):
                return SocketState(fd, 0)
            state = SocketState(fd, inode)
            _states[fd] = state
    if state is not None and carries:
        try:
            sock._hotsock_state = state
        except AttributeError:
            pass                    # a stdlib socket: no slot for it
    return state


# After fork() a batch some thread was receiving into is free in the child:
# that thread did not come along.  A batch is busy only within the fork
# generation that claimed it.
cdef unsigned long _forks = 0


def _forked_in_child():
    global _forks, _states_lock
    _forks += 1
    # A thread that held the registry's lock did not come along either.
    _states_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked_in_child)


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
        if self.gro and fd != self._gro_fd and USE_GRO:
            setsockopt(fd, SOL_UDP, HS_UDP_GRO, &on, sizeof(on))
            self._gro_fd = fd
        return 0

    cdef int acquire(self) except -1:
        """Claim the batch for one receive (it is filled with the GIL released)."""
        if self._busy and self._busy_forks == _forks:
            raise RuntimeError("this RecvBatch is already receiving in another thread")
        self._busy = True
        self._busy_forks = _forks
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
    n = _do_recvmmsg(fd, &ctx) if USE_MMSG else _do_recvmsg_loop(fd, &ctx)
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
        with _states_lock:
            deferred = state.deferred_errno
            state.deferred_errno = 0
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
                      _do_recvmmsg if USE_MMSG else _do_recvmsg_loop, &ctx)
        n = slots_finish(&batch.slots, n)
    finally:
        batch.release(n)
    if ctx.later_errno:
        state_of(sock, info.fd, True).deferred_errno = ctx.later_errno
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


cdef class _SendScratch:
    """The arrays one send_batch call works in, kept for the next call: a
    call allocating a few hundred KiB would have the allocator map and unmap
    them each time (page faults on every call).  Taken from and returned to
    a small pool under the GIL, so concurrent calls never share one."""
    cdef Py_ssize_t capacity
    cdef Py_buffer *views
    cdef iovec *iovs
    cdef mmsghdr *msgs
    cdef sockaddr_storage *names
    cdef mmsghdr *groups
    cdef uint32_t *datagrams
    cdef char *control
    cdef iovec *joined
    cdef unsigned char *stage
    cdef size_t stage_capacity

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
        """Room for n datagrams, the used part zeroed."""
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
        memset(self.msgs, 0, n * sizeof(mmsghdr))
        memset(self.groups, 0, n * sizeof(mmsghdr))
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


cdef list _scratch_pool = []
# Scratch kept for reuse; more concurrent calls allocate their own.
cdef Py_ssize_t SCRATCH_POOL = 4
# What one pooled scratch may keep: arrays for this many datagrams (about
# 1.6 MiB) and this much staging room.  A larger call frees its arrays when
# it ends, so one call with a million buffers does not pin hundreds of MiB
# for the life of the process.
cdef Py_ssize_t SCRATCH_KEEP_DATAGRAMS = 4 * HS_MAX_BATCH
cdef size_t SCRATCH_KEEP_STAGE = 1 << 20


cdef size_t _scratch_bytes(_SendScratch scratch) noexcept:
    return scratch.capacity * (
        sizeof(Py_buffer) + 2 * sizeof(iovec) + 2 * sizeof(mmsghdr)
        + sizeof(sockaddr_storage) + sizeof(uint32_t) + HS_SEGMENT_CONTROL
    ) + scratch.stage_capacity


cdef void _scratch_return(_SendScratch scratch) noexcept:
    """Back to the pool, trimmed to what the pool may keep (or dropped)."""
    if scratch.stage_capacity > SCRATCH_KEEP_STAGE:
        PyMem_Free(scratch.stage)
        scratch.stage = NULL
        scratch.stage_capacity = 0
    if scratch.capacity > SCRATCH_KEEP_DATAGRAMS:
        scratch._free()
    if len(_scratch_pool) < SCRATCH_POOL:
        _scratch_pool.append(scratch)


def _send_pool_bytes():
    """Bytes of C memory the send_batch pool keeps between calls (for tests)."""
    return sum(_scratch_bytes(scratch) for scratch in _scratch_pool)


# Sockets whose kernel or device refused a segmented send (EIO, EINVAL,
# EOPNOTSUPP) send one datagram at a time: SocketState.gso_refused.

cdef bint _gso_refused_for(int fd) except -1:
    cdef SocketState state = state_of(None, fd, False)
    return state is not None and state.gso_refused


cdef int refuse_gso(int fd) except -1:
    state_of(None, fd, True).gso_refused = True
    return 0


cdef bint _is_udp(int fd, int family) noexcept:
    cdef int value = 0
    cdef socklen_t length = sizeof(value)
    if family != AF_INET and family != AF_INET6:
        return False
    if getsockopt(fd, SOL_SOCKET, SO_TYPE, &value, &length) < 0 or value != SOCK_DGRAM:
        return False
    length = sizeof(value)
    if getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &value, &length) < 0:
        return False
    return value == IPPROTO_UDP


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
                          _do_sendmmsg if USE_MMSG else _do_sendmsg_loop, &ctx)
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


cdef Py_ssize_t _send_segmented(SockInfo *info, _SendScratch scratch, Py_ssize_t n, int flags,
                                size_t max_segment) except -1:
    """Send n datagrams as segmented sends where they group; the datagrams sent.
    A refusal is remembered for the socket and the rest go one by one."""
    cdef mmsghdr *groups = scratch.groups
    cdef Py_ssize_t m, sent = 0
    cdef int gso_error = 0
    m = <Py_ssize_t>hs_gso_build(scratch.msgs, n, max_segment, groups, scratch.control,
                                 scratch.datagrams)
    # Small datagrams: copied into one buffer per send (see hs_gso_stage).
    hs_gso_stage(groups, m, STAGED_SEGMENT,
                 scratch.staging(hs_gso_stage_size(groups, m, STAGED_SEGMENT)), scratch.joined)
    _send_messages(info, groups, m, flags, scratch.datagrams, &sent, &gso_error)
    if gso_error:
        refuse_gso(info.fd)
        _send_messages(info, scratch.msgs + sent, n - sent, flags, NULL, &sent, &gso_error)
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
    cdef Py_ssize_t done = 0, k
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
    cdef _SendScratch scratch
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
    scratch = _scratch_pool.pop() if _scratch_pool else _SendScratch()
    try:
        scratch.reserve(n)
        views, iovs, msgs, names = scratch.views, scratch.iovs, scratch.msgs, scratch.names
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
        if n > 1 and gso is not False and _gso_usable(info.fd, info.family):
            if gso is True:
                max_segment = HS_GSO_MAX_BYTES
            else:
                max_segment = SAFE_SEGMENT_V4 if info.family == AF_INET else SAFE_SEGMENT_V6
            return _send_segmented(&info, scratch, n, c_flags, max_segment)
        _send_messages(&info, msgs, n, c_flags, NULL, &total, &gso_error)
        return total
    finally:
        for i in range(acquired):
            PyBuffer_Release(&scratch.views[i])
        _scratch_return(scratch)
