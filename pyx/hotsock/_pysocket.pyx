"""Fast access to the state of a stdlib socket object.

CPython keeps a socket's descriptor, family and timeout in C fields
(PySocketSockObject).  Reading them directly saves two method calls per I/O
call.  The layout is checked against real sockets when this module is
imported; if the check fails (another Python implementation, a future
CPython), every access goes through ``fileno()``/``gettimeout()`` instead,
and the socket methods hand every call to the stdlib.
"""
from cpython.object cimport PyObject, PyTypeObject, PyObject_TypeCheck
from libc.stdint cimport int64_t
from libc.string cimport memset

from includes.pysocket cimport hs_PySocketPrefix
from includes.socket cimport sockaddr, sockaddr_storage, socklen_t, getsockname

import os
import _socket

cdef extern from "Python.h":
    int PyObject_AsFileDescriptor(object o) except -1

cdef PyTypeObject *_sock_type = <PyTypeObject *>_socket.socket


cdef bint _layout_matches():
    cdef hs_PySocketPrefix *raw
    probes = []
    try:
        for family, kind, timeout, expected_ns in (
                (_socket.AF_INET, _socket.SOCK_DGRAM, 2.5, 2500000000),
                (_socket.AF_INET, _socket.SOCK_STREAM, 0.0, 0),
                (_socket.AF_UNIX, _socket.SOCK_DGRAM, None, -1)):
            s = _socket.socket(family, kind)
            probes.append(s)
            s.settimeout(timeout)
            raw = <hs_PySocketPrefix *><PyObject *>s
            if (raw.sock_fd != s.fileno() or raw.sock_family != s.family
                    or raw.sock_type != s.type):
                return False
            if (raw.sock_timeout < 0) != (expected_ns < 0):
                return False
            if expected_ns >= 0 and raw.sock_timeout != expected_ns:
                return False
        return True
    except Exception:
        return False
    finally:
        for s in probes:
            s.close()


# HOTSOCK_NO_DIRECT_ACCESS=1 forces the method-call path (for its tests).
cdef bint LAYOUT_OK = (_layout_matches() and
                       os.environ.get("HOTSOCK_NO_DIRECT_ACCESS", "") in ("", "0"))

#: True when socket state is read straight from CPython's socket object.
direct_access = LAYOUT_OK


cdef bint is_fast_socket(object sock) noexcept:
    return LAYOUT_OK and PyObject_TypeCheck(sock, _sock_type)


cdef int _family_of_fd(int fd) except -1:
    cdef sockaddr_storage ss
    cdef socklen_t length = sizeof(ss)
    memset(&ss, 0, sizeof(ss))
    if getsockname(fd, <sockaddr *>&ss, &length) < 0:
        return 0        # not a socket, or closed: the I/O call will say so
    return ss.ss_family


cdef bint fast_sock_info(object sock, SockInfo *info) noexcept:
    """Fill *info* straight from a CPython socket object; False if it is not one
    (or the layout could not be verified)."""
    cdef hs_PySocketPrefix *raw
    if not is_fast_socket(sock):
        return False
    raw = <hs_PySocketPrefix *><PyObject *>sock
    info.fd = raw.sock_fd
    info.family = raw.sock_family
    info.timeout_ns = raw.sock_timeout
    info.sock = <PyObject *>sock
    info.live_fd = &raw.sock_fd
    return True


cdef int refresh_fd(SockInfo *info) except -1:
    """As CPython reads ``sock_fd`` for every attempt: a socket closed by
    another thread then fails with EBADF instead of reading whatever socket
    now has its old number."""
    cdef object sock
    if info.sock == NULL:
        return 0            # a bare descriptor: the number is all there is
    sock = <object>info.sock
    if is_fast_socket(sock):
        info.fd = (<hs_PySocketPrefix *>info.sock).sock_fd
    else:
        info.fd = sock.fileno()
    return 0


cdef int get_sock_info(object sock, SockInfo *info) except -1:
    """Fill *info* from a socket object, an integer fd or an object with fileno()."""
    if fast_sock_info(sock, info):
        return 0
    # The same conversion (and error messages) as select() and selectors.
    info.fd = PyObject_AsFileDescriptor(sock)
    info.sock = NULL
    info.live_fd = NULL
    if isinstance(sock, _socket.socket):
        info.sock = <PyObject *>sock
        info.family = sock.family
        timeout = sock.gettimeout()
        info.timeout_ns = -1 if timeout is None else <int64_t>(timeout * 1e9)
    else:
        info.family = _family_of_fd(info.fd)
        # A bare descriptor has no Python timeout: its own O_NONBLOCK flag rules.
        info.timeout_ns = -1
    return 0
