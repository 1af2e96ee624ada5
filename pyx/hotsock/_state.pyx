"""What hotsock remembers about a socket, in one record the socket owns.

The kernel reuses descriptor numbers, so nothing hotsock learns about a
socket -- the kernel refused its segmented sends, the recvmsg fallback met
an error it must report on the next call -- may be kept under a bare
number (contract 8 in docs/ARCHITECTURE.md).  A :class:`SocketState` is identified by descriptor
*and* inode and is kept by what owns the socket:

* a ``hotsock.socket`` keeps its record in its ``_hotsock_state`` slot;
* another socket object (the stdlib's ``socket.socket``) is the weak key of
  its record, which dies with the object;
* a bare descriptor (an int, or ``_socket.socket``, which takes no weak
  reference) has nothing else to own it: its record is filed under the
  number, and checked against the inode before every use, so a new socket
  on a reused number starts afresh.

Records are read and replaced under one lock: the hot loops' and the batch
functions' callers may be many threads.
"""
import os
import threading
import weakref

import _socket

from posix.stat cimport fstat, struct_stat
from includes.netinet cimport IPPROTO_UDP
from includes.socket cimport (
    getsockopt, socklen_t, AF_INET, AF_INET6, SOCK_DGRAM, SOL_SOCKET, SO_TYPE, SO_PROTOCOL)
from hotsock._features cimport use_gso


cdef class SocketState:
    """What hotsock remembers about one socket (internal): fetched only
    through ``state_of``."""

    def __cinit__(self, int fd, unsigned long long inode):
        self.fd = fd
        self.inode = inode

    def __repr__(self):
        return (f"<hotsock SocketState fd={self.fd} inode={self.inode} "
                f"gso_refused={self.gso_refused} deferred_errno={self.deferred_errno}>")

    cdef int take_deferred_errno(self) except -1:
        """The deferred error, cleared: one caller gets it."""
        cdef int deferred
        with _lock:
            deferred = self.deferred_errno
            self.deferred_errno = 0
        return deferred


cdef object _by_socket = weakref.WeakKeyDictionary()   # socket object -> record
cdef dict _by_descriptor = {}                          # bare descriptor -> record
_lock = threading.Lock()


cdef bint _inode_of(int fd, unsigned long long *inode) noexcept:
    cdef struct_stat st
    if fd < 0 or fstat(fd, &st) < 0:
        return False
    inode[0] = <unsigned long long>st.st_ino
    return True


cdef SocketState _fresh(int fd):
    cdef unsigned long long inode = 0
    _inode_of(fd, &inode)
    return SocketState(fd, inode)


cdef bint _current(SocketState state, int fd):
    """*state* is the record of the socket now on descriptor *fd*."""
    cdef unsigned long long inode
    return state.fd == fd and _inode_of(fd, &inode) and inode == state.inode


cdef object _NO_SLOT = object()


cdef SocketState state_of(object sock, int fd, bint create):
    cdef SocketState state = None
    cdef bint is_socket = isinstance(sock, _socket.socket)
    held = _NO_SLOT
    if is_socket:
        try:
            held = sock._hotsock_state      # a hotsock.socket: the slot owns the record
        except AttributeError:
            pass
    if held is not _NO_SLOT:
        # Checked by type and descriptor: a user's value is never used.
        if type(held) is SocketState and (<SocketState>held).fd == fd and fd >= 0:
            return <SocketState>held
        if not create:
            return None
        with _lock:
            held = sock._hotsock_state
            if type(held) is SocketState and (<SocketState>held).fd == fd and fd >= 0:
                return <SocketState>held
            state = _fresh(fd)
            if fd >= 0:
                sock._hotsock_state = state
        return state
    if fd < 0:
        return SocketState(fd, 0) if create else None   # a closed socket: nothing keeps it
    if not create and not _by_socket and not _by_descriptor:
        return None                 # (no lock, no allocation: the common case)
    with _lock:
        if is_socket:
            try:
                state = _by_socket.get(sock)
                if state is not None and state.fd != fd:
                    state = None            # detached and wrapped again
                if state is None and create:
                    state = _fresh(fd)
                    _by_socket[sock] = state
                return state
            except TypeError:
                pass                        # no weak reference: a bare descriptor
        state = _by_descriptor.get(fd)
        if state is not None and not _current(state, fd):
            del _by_descriptor[fd]          # a socket since closed; the number is reused
            state = None
        if state is None and create:
            state = _fresh(fd)
            _by_descriptor[fd] = state
        return state


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


cdef bint gso_usable_for(object sock, int fd, int family) except -1:
    cdef SocketState state
    if not use_gso() or not _is_udp(fd, family):
        return False
    state = state_of(sock, fd, False)
    return state is None or not state.gso_refused


def gso_usable(sock, int family):
    """Socket *sock* (a socket object or a descriptor) can take segmented
    sends: UDP, GSO enabled, never refused by its kernel or device."""
    fd = sock if isinstance(sock, int) else sock.fileno()
    return gso_usable_for(sock, fd, family)


# After fork() a batch some thread was receiving into is free in the child:
# that thread did not come along.  A batch is busy only within the fork
# generation that claimed it.
cdef unsigned long _forks = 0


cdef unsigned long fork_generation() noexcept:
    return _forks


def _forked_in_child():
    global _forks, _lock
    _forks += 1
    # A thread that held the lock did not come along either.
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked_in_child)
