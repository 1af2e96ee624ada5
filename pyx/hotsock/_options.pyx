"""Typed socket options: C structs built here instead of ``struct.pack``.

Each function takes the socket first and is installed on ``hotsock.socket``
as a method.  Plainly wrong input (a group that is not multicast, a TTL out
of 0..255, a negative linger) is refused with ``ValueError``/``TypeError``
before any syscall; what the kernel refuses comes back as ``OSError`` from
errno, as with ``setsockopt`` (joining a group twice: ``EADDRINUSE``;
leaving a group never joined: ``EADDRNOTAVAIL``).

Options of one shape -- a flag, a bounded int, a buffer size, per family
where IPv6 names its own -- are rows of ``OPTIONS`` at the end, served by
one generic getter and setter (``Option.get``/``Option.set``); each row
becomes real methods ``set_<name>``/``get_<name>``.  The options that take a
struct (or several options at once) are written by hand and marked
``@_method``.  ``OPTION_METHODS`` is derived from both.

IPv4 joins use ``ip_mreq`` (interface by address), ``ip_mreqn`` (by index,
Linux) and ``ip_mreq_source`` (source-specific); IPv6 joins ``ipv6_mreq``
and ``group_source_req``.  Where ``ip_mreqn`` is missing (macOS, BSD), an
interface index goes through RFC 3678's ``group_req``/``group_source_req``.
Structs are filled field by field, so their per-OS layouts (``ip_mreq_source``
orders its fields differently on Linux and the BSDs) come from the system
headers.
"""
cimport cython
from cpython.long cimport PyLong_AsLongAndOverflow
from libc.string cimport memset

from includes.socket cimport (
    sockaddr_storage, socklen_t, setsockopt, getsockopt,
    AF_INET, AF_INET6, SOL_SOCKET, SO_TYPE)
from includes.netinet cimport (
    in_addr, in6_addr, sockaddr_in, sockaddr_in6, inet_pton, inet_ntop, htonl, ntohl,
    INADDR_ANY, INET6_ADDRSTRLEN)
from includes.options cimport *
from hotsock._pysocket cimport SockInfo, get_sock_info
from hotsock._syscall cimport raise_errno

from libc.errno cimport errno, ENOPROTOOPT, ENODEV

import os
from inspect import cleandoc


# Names of the hand-written methods, in the order they are defined.
cdef list _hand_written = []


def _method(function):
    """Mark a hand-written function as a method of ``hotsock.socket``."""
    _hand_written.append(function.__name__)
    return function


# --- raw get/set ---------------------------------------------------------------

cdef int _fd(object sock) except? -1:   # -1 is also a closed socket's fd
    cdef SockInfo info
    get_sock_info(sock, &info)
    return info.fd


cdef int _put(int fd, int level, int name, const void *value, socklen_t size) except -1:
    if setsockopt(fd, level, name, value, size) < 0:
        raise_errno(errno)
    return 0


cdef int _take(int fd, int level, int name, void *value, socklen_t *size) except -1:
    if getsockopt(fd, level, name, value, size) < 0:
        raise_errno(errno)
    return 0


# The setters return None (through these helpers), as setsockopt() does.

cdef object _set(object sock, int level, int name, const void *value, socklen_t size):
    _put(_fd(sock), level, name, value, size)


cdef int _get(object sock, int level, int name, void *value, socklen_t *size) except -1:
    return _take(_fd(sock), level, name, value, size)


cdef object _set_int(object sock, int level, int name, int value):
    return _set(sock, level, name, &value, sizeof(value))


cdef int _get_int(object sock, int level, int name) except? -1:
    cdef int value = 0
    cdef socklen_t size = sizeof(value)
    _get(sock, level, name, &value, &size)
    return value


cdef bint _is_ipv6(object sock) except -1:
    cdef SockInfo info
    get_sock_info(sock, &info)
    return info.family == AF_INET6


cdef int _check_range(str what, object value, long low, long high) except -1:
    cdef int overflow = 0
    cdef long c_value
    if type(value) is int:
        # Compared in C; an int subclass (bool, IntEnum, ...) as Python compares it.
        c_value = PyLong_AsLongAndOverflow(value, &overflow)
        if not overflow and low <= c_value <= high:
            return 0
    elif not isinstance(value, int):
        raise TypeError(f"{what} must be an integer, not {type(value).__name__}")
    if not low <= value <= high:
        raise ValueError(f"{what} must be between {low} and {high}, not {value}")
    return 0


# --- addresses and interfaces ------------------------------------------------------

cdef int _ipv4(object text, str what, in_addr *out) except -1:
    if not isinstance(text, str):
        raise TypeError(f"{what} must be a str, not {type(text).__name__}")
    if "\0" in text:
        # The C string would end there: refused, as the stdlib's inet_aton/inet_pton do.
        raise ValueError("embedded null character")
    if inet_pton(AF_INET, text.encode("ascii", "replace"), out) != 1:
        raise ValueError(f"{what} is not an IPv4 address: {text!r}")
    return 0


cdef int _ipv6(object text, str what, in6_addr *out) except -1:
    if not isinstance(text, str):
        raise TypeError(f"{what} must be a str, not {type(text).__name__}")
    if "\0" in text:
        # The C string would end there: refused, as the stdlib's inet_aton/inet_pton do.
        raise ValueError("embedded null character")
    if inet_pton(AF_INET6, text.encode("ascii", "replace"), out) != 1:
        raise ValueError(f"{what} is not an IPv6 address: {text!r}")
    return 0


cdef bint _group_is_ipv6(object group) except -1:
    if not isinstance(group, str):
        raise TypeError(f"group must be a str, not {type(group).__name__}")
    return ":" in group


cdef int _multicast_ipv4(object group, in_addr *out) except -1:
    _ipv4(group, "group", out)
    if (ntohl(out.s_addr) >> 28) != 0xE:                 # 224.0.0.0/4
        raise ValueError(f"group must be a multicast address, not {group!r}")
    return 0


cdef int _multicast_ipv6(object group, in6_addr *out) except -1:
    _ipv6(group, "group", out)
    if out.s6_addr[0] != 0xFF:                           # ff00::/8
        raise ValueError(f"group must be a multicast address, not {group!r}")
    return 0


cdef unsigned int interface_index(object interface) except? 0:
    """An interface given as an index or a name, as an index (0: the default)."""
    cdef unsigned int index
    if interface is None:
        return 0
    if isinstance(interface, int):
        _check_range("interface index", interface, 0, 0x7fffffff)
        return interface
    if isinstance(interface, str):
        name = os.fsencode(interface)       # the stdlib's if_nametoindex conversion
        if b"\0" in name:
            raise ValueError("embedded null byte")
        index = if_nametoindex(name)
        if index == 0:
            raise OSError(ENODEV, f"no such network interface: {interface!r}")
        return index
    raise TypeError(f"interface must be an index, a name or an address, "
                    f"not {type(interface).__name__}")


cdef bint _looks_ipv4(object interface):
    cdef in_addr probe
    return (isinstance(interface, str)
            and inet_pton(AF_INET, interface.encode("ascii", "replace"), &probe) == 1)


cdef void _sockaddr_v4(sockaddr_storage *out, in_addr address) noexcept:
    memset(out, 0, sizeof(sockaddr_storage))
    (<sockaddr_in *>out).sin_family = AF_INET
    (<sockaddr_in *>out).sin_addr = address


cdef void _sockaddr_v6(sockaddr_storage *out, in6_addr *address) noexcept:
    memset(out, 0, sizeof(sockaddr_storage))
    (<sockaddr_in6 *>out).sin6_family = AF_INET6
    (<sockaddr_in6 *>out).sin6_addr = address[0]


# --- multicast membership -----------------------------------------------------------

cdef object _membership(object sock, object group, object interface, object source,
                        bint join):
    cdef in_addr group4, source4, iface4
    cdef in6_addr group6, source6
    cdef ip_mreq mreq
    cdef hs_ip_mreqn mreqn
    cdef ip_mreq_source mreq_source
    cdef ipv6_mreq mreq6
    cdef group_source_req gsr
    cdef group_req gr
    if _group_is_ipv6(group):
        _multicast_ipv6(group, &group6)
        if source is None:
            memset(&mreq6, 0, sizeof(mreq6))
            mreq6.ipv6mr_multiaddr = group6
            mreq6.ipv6mr_interface = interface_index(interface)
            return _set(sock, IPPROTO_IPV6, IPV6_JOIN_GROUP if join else IPV6_LEAVE_GROUP,
                        &mreq6, sizeof(mreq6))
        _ipv6(source, "source", &source6)
        memset(&gsr, 0, sizeof(gsr))
        gsr.gsr_interface = interface_index(interface)
        _sockaddr_v6(&gsr.gsr_group, &group6)
        _sockaddr_v6(&gsr.gsr_source, &source6)
        return _set(sock, IPPROTO_IPV6,
                    MCAST_JOIN_SOURCE_GROUP if join else MCAST_LEAVE_SOURCE_GROUP,
                    &gsr, sizeof(gsr))
    _multicast_ipv4(group, &group4)
    iface4.s_addr = htonl(INADDR_ANY)
    by_address = interface is None or _looks_ipv4(interface)
    if interface is not None and by_address:
        _ipv4(interface, "interface", &iface4)
    if source is not None:
        _ipv4(source, "source", &source4)
        if by_address:
            memset(&mreq_source, 0, sizeof(mreq_source))
            mreq_source.imr_multiaddr = group4
            mreq_source.imr_interface = iface4
            mreq_source.imr_sourceaddr = source4
            return _set(sock, IPPROTO_IP,
                        IP_ADD_SOURCE_MEMBERSHIP if join else IP_DROP_SOURCE_MEMBERSHIP,
                        &mreq_source, sizeof(mreq_source))
        memset(&gsr, 0, sizeof(gsr))
        gsr.gsr_interface = interface_index(interface)
        _sockaddr_v4(&gsr.gsr_group, group4)
        _sockaddr_v4(&gsr.gsr_source, source4)
        return _set(sock, IPPROTO_IP,
                    MCAST_JOIN_SOURCE_GROUP if join else MCAST_LEAVE_SOURCE_GROUP,
                    &gsr, sizeof(gsr))
    if by_address:
        memset(&mreq, 0, sizeof(mreq))
        mreq.imr_multiaddr = group4
        mreq.imr_interface = iface4
        return _set(sock, IPPROTO_IP, IP_ADD_MEMBERSHIP if join else IP_DROP_MEMBERSHIP,
                    &mreq, sizeof(mreq))
    if HS_HAVE_IP_MREQN:
        memset(&mreqn, 0, sizeof(mreqn))
        mreqn.imr_multiaddr = group4
        mreqn.imr_ifindex = <int>interface_index(interface)
        return _set(sock, IPPROTO_IP, IP_ADD_MEMBERSHIP if join else IP_DROP_MEMBERSHIP,
                    &mreqn, sizeof(mreqn))
    memset(&gr, 0, sizeof(gr))
    gr.gr_interface = interface_index(interface)
    _sockaddr_v4(&gr.gr_group, group4)
    return _set(sock, IPPROTO_IP, MCAST_JOIN_GROUP if join else MCAST_LEAVE_GROUP,
                &gr, sizeof(gr))


@_method
def join_group(sock, group, interface=None, source=None):
    """join_group(group, interface=None, source=None)

    Join the multicast *group* (an IPv4 or IPv6 address string) on
    *interface* -- None for the system's choice, an interface index or name,
    or (IPv4) a local address -- receiving only from *source* when given
    (source-specific multicast).  Raises ``ValueError`` for an address that
    is not multicast, ``OSError`` where the kernel refuses (``EADDRINUSE``
    when already joined).
    """
    return _membership(sock, group, interface, source, True)


@_method
def leave_group(sock, group, interface=None, source=None):
    """leave_group(group, interface=None, source=None)

    Leave what :meth:`join_group` joined, with the same arguments.  Raises
    ``OSError`` (``EADDRNOTAVAIL``) for a group that was not joined.
    """
    return _membership(sock, group, interface, source, False)


cdef object _source_filter(object sock, object group, object source, object interface,
                           bint block):
    cdef in_addr group4, source4, iface4
    cdef in6_addr group6, source6
    cdef ip_mreq_source mreq_source
    cdef group_source_req gsr
    if _group_is_ipv6(group) or not (interface is None or _looks_ipv4(interface)):
        memset(&gsr, 0, sizeof(gsr))
        gsr.gsr_interface = interface_index(interface)
        if _group_is_ipv6(group):
            _multicast_ipv6(group, &group6)
            _ipv6(source, "source", &source6)
            _sockaddr_v6(&gsr.gsr_group, &group6)
            _sockaddr_v6(&gsr.gsr_source, &source6)
            level = IPPROTO_IPV6
        else:
            _multicast_ipv4(group, &group4)
            _ipv4(source, "source", &source4)
            _sockaddr_v4(&gsr.gsr_group, group4)
            _sockaddr_v4(&gsr.gsr_source, source4)
            level = IPPROTO_IP
        return _set(sock, level, MCAST_BLOCK_SOURCE if block else MCAST_UNBLOCK_SOURCE,
                    &gsr, sizeof(gsr))
    _multicast_ipv4(group, &group4)
    _ipv4(source, "source", &source4)
    iface4.s_addr = htonl(INADDR_ANY)
    if interface is not None:
        _ipv4(interface, "interface", &iface4)
    memset(&mreq_source, 0, sizeof(mreq_source))
    mreq_source.imr_multiaddr = group4
    mreq_source.imr_interface = iface4
    mreq_source.imr_sourceaddr = source4
    return _set(sock, IPPROTO_IP, IP_BLOCK_SOURCE if block else IP_UNBLOCK_SOURCE,
                &mreq_source, sizeof(mreq_source))


@_method
def block_source(sock, group, source, interface=None):
    """block_source(group, source, interface=None)

    Stop receiving *group*'s datagrams from *source* (the group must have been
    joined without a source).  ``OSError`` where the kernel refuses.
    """
    return _source_filter(sock, group, source, interface, True)


@_method
def unblock_source(sock, group, source, interface=None):
    """unblock_source(group, source, interface=None)

    Undo :meth:`block_source`.
    """
    return _source_filter(sock, group, source, interface, False)


# --- multicast sending -----------------------------------------------------------------
# (TTL and loop: rows of OPTIONS below.)

@_method
def set_multicast_interface(sock, interface):
    """set_multicast_interface(interface)

    The interface outgoing multicast leaves by: a local IPv4 address, an
    interface index or name (IP_MULTICAST_IF with ``in_addr`` or
    ``ip_mreqn``; IPV6_MULTICAST_IF with an index).  None: the system's choice.
    """
    cdef in_addr address
    cdef hs_ip_mreqn mreqn
    cdef unsigned int index
    if _is_ipv6(sock):
        index = interface_index(interface)
        return _set(sock, IPPROTO_IPV6, IPV6_MULTICAST_IF, &index, sizeof(index))
    if interface is None or _looks_ipv4(interface):
        address.s_addr = htonl(INADDR_ANY)
        if interface is not None:
            _ipv4(interface, "interface", &address)
        return _set(sock, IPPROTO_IP, IP_MULTICAST_IF, &address, sizeof(address))
    if not HS_HAVE_IP_MREQN:
        raise OSError(ENOPROTOOPT, "an interface index needs ip_mreqn (Linux); "
                                   "give the interface's address")
    memset(&mreqn, 0, sizeof(mreqn))
    mreqn.imr_ifindex = <int>interface_index(interface)
    return _set(sock, IPPROTO_IP, IP_MULTICAST_IF, &mreqn, sizeof(mreqn))


@_method
def get_multicast_interface(sock):
    """get_multicast_interface() -> str | int

    IPv4: the outgoing interface's address (``'0.0.0.0'`` when the system
    chooses; Linux reports ``'0.0.0.0'`` too when it was set by index).
    IPv6: the interface index (0 when the system chooses).
    """
    cdef in_addr address
    cdef socklen_t size = sizeof(address)
    cdef char text[INET6_ADDRSTRLEN]
    if _is_ipv6(sock):
        return <unsigned int>_get_int(sock, IPPROTO_IPV6, IPV6_MULTICAST_IF)
    address.s_addr = 0
    _get(sock, IPPROTO_IP, IP_MULTICAST_IF, &address, &size)
    inet_ntop(AF_INET, &address, text, sizeof(text))
    return text.decode("ascii")


# --- socket-level options ----------------------------------------------------------------

@_method
def set_linger(sock, on, seconds=0):
    """set_linger(on, seconds=0)

    SO_LINGER: with *on*, ``close()`` waits up to *seconds* for unsent data
    (0: drop it and reset the connection).  ``ValueError`` for negative seconds.
    """
    cdef linger value
    _check_range("linger seconds", seconds, 0, 0x7fffffff)
    value.l_onoff = 1 if on else 0
    value.l_linger = seconds
    return _set(sock, SOL_SOCKET, SO_LINGER, &value, sizeof(value))


@_method
def get_linger(sock):
    """get_linger() -> (on, seconds)"""
    cdef linger value
    cdef socklen_t size = sizeof(value)
    memset(&value, 0, sizeof(value))
    _get(sock, SOL_SOCKET, SO_LINGER, &value, &size)
    return (bool(value.l_onoff), value.l_linger)


cdef object _set_timeval(object sock, int name, object seconds):
    cdef timeval value
    if seconds is None:
        seconds = 0
    if not isinstance(seconds, (int, float)):
        raise TypeError(f"seconds must be a number or None, not {type(seconds).__name__}")
    if not 0 <= seconds < 2 ** 31:
        raise ValueError(f"seconds must be None or between 0 and 2**31, not {seconds}")
    microseconds = round(seconds * 1000000)
    if seconds > 0 and microseconds == 0:
        microseconds = 1        # a zero timeval would mean "no timeout"
    value.tv_sec = microseconds // 1000000
    value.tv_usec = microseconds % 1000000
    return _set(sock, SOL_SOCKET, name, &value, sizeof(value))


cdef object _get_timeval(object sock, int name):
    cdef timeval value
    cdef socklen_t size = sizeof(value)
    memset(&value, 0, sizeof(value))
    _get(sock, SOL_SOCKET, name, &value, &size)
    if value.tv_sec == 0 and value.tv_usec == 0:
        return None
    return value.tv_sec + value.tv_usec / 1e6


@_method
def set_recv_timeout(sock, seconds):
    """set_recv_timeout(seconds)

    SO_RCVTIMEO, the kernel's receive timeout (None or 0: none).  It acts only
    while the socket is in blocking mode (``settimeout(None)``): a receive
    then fails with ``BlockingIOError`` (EAGAIN) after *seconds*.  A Python
    timeout (``settimeout(t)``) makes the descriptor non-blocking, so the
    Python timeout rules and this one never fires.
    """
    return _set_timeval(sock, SO_RCVTIMEO, seconds)


@_method
def get_recv_timeout(sock):
    """get_recv_timeout() -> float | None"""
    return _get_timeval(sock, SO_RCVTIMEO)


@_method
def set_send_timeout(sock, seconds):
    """set_send_timeout(seconds)

    SO_SNDTIMEO, as :meth:`set_recv_timeout` for sends.
    """
    return _set_timeval(sock, SO_SNDTIMEO, seconds)


@_method
def get_send_timeout(sock):
    """get_send_timeout() -> float | None"""
    return _get_timeval(sock, SO_SNDTIMEO)


@_method
def set_keepalive(sock, on, idle=None, interval=None, count=None):
    """set_keepalive(on, idle=None, interval=None, count=None)

    SO_KEEPALIVE, and where given the idle time before the first probe
    (TCP_KEEPIDLE; TCP_KEEPALIVE on macOS), the seconds between probes
    (TCP_KEEPINTVL) and how many unanswered probes drop the connection
    (TCP_KEEPCNT).  ``ValueError`` for values below 1.
    """
    for what, value in (("idle", idle), ("interval", interval), ("count", count)):
        if value is not None:
            _check_range(f"keepalive {what}", value, 1, 0x7fffffff)
    _set_int(sock, SOL_SOCKET, SO_KEEPALIVE, 1 if on else 0)
    for name, value in ((HS_TCP_KEEPIDLE, idle), (TCP_KEEPINTVL, interval),
                        (TCP_KEEPCNT, count)):
        if value is not None:
            if name < 0:
                raise OSError(ENOPROTOOPT, "this system has no such keepalive option")
            _set_int(sock, IPPROTO_TCP, name, value)


@_method
def get_keepalive(sock):
    """get_keepalive() -> (on, idle, interval, count)"""
    values = [bool(_get_int(sock, SOL_SOCKET, SO_KEEPALIVE))]
    for name in (HS_TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT):
        values.append(_get_int(sock, IPPROTO_TCP, name) if name >= 0 else None)
    return tuple(values)


# --- options as data ---------------------------------------------------------------------
# pyzmq's way (SocketOption entries carrying their type, one generic get/set):
# an option of one of the shapes below is a row of OPTIONS, served by
# Option.set/Option.get, and becomes real methods set_<name>/get_<name>.

cdef enum Kind:
    FLAG = 1        # set_<name>(on); get_<name>() -> bool
    NUMBER = 2      # set_<name>(<param>), refused outside low..high; get_<name>() -> int
    BUFFER = 3      # set_<name>(size, force=False) -> the size granted; get_<name>() -> int
    READ_ONLY = 4   # get_<name>() -> int

cdef dict _KINDS = {"flag": FLAG, "number": NUMBER, "buffer": BUFFER, "read-only": READ_ONLY}


# One row: *level*, *option* and *constant* (its name, for messages and
# tests) are what a socket sets, except that AF_INET6 sockets set *v6* =
# (level, option, constant) where given.  An option < 0 is one this system
# lacks (compat.h).  *one_byte*: the IPv4 value is one byte (the BSDs insist
# on it for IP_MULTICAST_TTL/LOOP; Linux takes it too).  *what* names the
# value in error messages ("TTL must be between 0 and 255, not 256").  *doc*
# is the setter's docstring as a def would have it; *get_doc* the getter's
# where it says more than "get_<name>() -> int"; a flag without *doc* is
# documented from *what*.
@cython.final
cdef class Option:
    cdef readonly str name, kind, param, what, doc, get_doc
    cdef readonly int level, option, level6, option6
    cdef readonly str constant, constant6
    cdef readonly bint one_byte
    cdef readonly long low, high
    cdef readonly int force             # BUFFER: the option past the system's cap, -1: none
    cdef Kind c_kind

    def __init__(self, str name, str kind, int level, int option, str constant, *,
                 tuple v6=None, bint one_byte=False, str param="on", str what=None,
                 long low=0, long high=0, int force=-1, str doc=None, str get_doc=None):
        self.name, self.kind, self.c_kind, self.param = name, kind, _KINDS[kind], param
        self.level, self.option, self.constant, self.one_byte = level, option, constant, one_byte
        self.level6, self.option6, self.constant6 = v6 or (level, option, constant)
        self.what, self.low, self.high, self.force = what, low, high, force
        self.doc, self.get_doc = doc, get_doc

    def __repr__(self):
        return f"Option({self.name!r})"

    cdef inline int _resolve(self, object sock, int *fd, int *level, int *name) except -1:
        # The descriptor and the (level, option) for this socket's family;
        # returns whether the value is one byte.
        cdef SockInfo info
        get_sock_info(sock, &info)
        fd[0] = info.fd
        if info.family == AF_INET6:
            level[0], name[0] = self.level6, self.option6
        else:
            level[0], name[0] = self.level, self.option
        if name[0] < 0:
            raise OSError(ENOPROTOOPT, f"{self.constant6 if info.family == AF_INET6 else self.constant}"
                                       " is not available on this system")
        return self.one_byte and info.family != AF_INET6

    cpdef object set(self, object sock, object value):
        cdef int fd, level, name
        cdef int c_value
        cdef unsigned char c_byte
        if self.c_kind == FLAG:
            c_value = 1 if value else 0
        else:
            _check_range(self.what, value, self.low, self.high)
            c_value = value
        if self._resolve(sock, &fd, &level, &name):
            c_byte = <unsigned char>c_value
            _put(fd, level, name, &c_byte, sizeof(c_byte))
        else:
            _put(fd, level, name, &c_value, sizeof(c_value))

    cpdef object set_buffer(self, object sock, object size, object force):
        cdef int fd, level, name
        cdef int c_size
        _check_range(self.what, size, self.low, self.high)
        c_size = size
        if force and self.force >= 0:
            self._resolve(sock, &fd, &level, &name)
            try:
                _put(fd, level, self.force, &c_size, sizeof(c_size))
            except PermissionError:
                pass        # not CAP_NET_ADMIN: the ordinary, capped request below
            else:
                return self.get(sock)
        self._resolve(sock, &fd, &level, &name)
        _put(fd, level, name, &c_size, sizeof(c_size))
        return self.get(sock)

    cpdef object get(self, object sock):
        cdef int fd, level, name
        cdef int c_value = 0
        cdef unsigned char c_byte = 0
        cdef socklen_t size
        if self._resolve(sock, &fd, &level, &name):
            size = sizeof(c_byte)
            _take(fd, level, name, &c_byte, &size)
            c_value = c_byte
        else:
            size = sizeof(c_value)
            _take(fd, level, name, &c_value, &size)
        if self.c_kind == FLAG:
            return c_value != 0
        return c_value


# The methods are plain Python functions written from the row: their
# argument errors (a missing or extra argument) then name the method itself,
# as CPython words them -- a compiled template would name the template.
_GETTER = "def {name}(sock):\n    return option.get(sock)\n"
_SETTER = "def {name}(sock, {params}):\n    return option.{call}(sock, {args})\n"


cdef object _function(str source, str name, Option option, str doc):
    namespace = {"option": option}
    exec(source, namespace)
    function = namespace[name]
    function.__doc__ = doc
    function.__module__ = __name__
    return function


cdef list _typed_methods(Option option):
    # [(name, function)]: the row's methods, named, signed and documented as
    # the row says (parameter names included: callers may pass them by keyword).
    cdef str set_name = "set_" + option.name
    cdef str get_name = "get_" + option.name
    if option.c_kind == FLAG and option.doc is None:
        get_doc = f"Whether {option.what} is on."
    else:
        get_doc = f"{get_name}(sock)\n\n" + cleandoc(
            option.get_doc or f"{get_name}() -> {'bool' if option.c_kind == FLAG else 'int'}")
    getter = _function(_GETTER.format(name=get_name), get_name, option, get_doc)
    if option.c_kind == READ_ONLY:
        return [(get_name, getter)]
    if option.c_kind == BUFFER:
        params, args, call = f"{option.param}, force=False", f"{option.param}, force", "set_buffer"
    else:
        params, args, call = option.param, option.param, "set"
    if option.c_kind == FLAG and option.doc is None:
        set_doc = f"Set {option.what} on or off."
    else:
        set_doc = f"{set_name}(sock, {params})\n\n" + cleandoc(option.doc)
    setter = _function(_SETTER.format(name=set_name, params=params, args=args, call=call),
                       set_name, option, set_doc)
    return [(set_name, setter), (get_name, getter)]


#: The options of one shape.  Adding one: a row here, its constant in
#: includes/options.pxd (through compat.h where systems differ), its two
#: lines in _socket_class.pyi and its row in tests/test_options.py.
OPTIONS = (
    Option("multicast_ttl", "number", IPPROTO_IP, IP_MULTICAST_TTL, "IP_MULTICAST_TTL",
           one_byte=True, v6=(IPPROTO_IPV6, IPV6_MULTICAST_HOPS, "IPV6_MULTICAST_HOPS"),
           param="ttl", what="TTL", low=0, high=255, doc="""
        set_multicast_ttl(ttl)

        Hop limit of outgoing multicast (IP_MULTICAST_TTL; IPV6_MULTICAST_HOPS on
        IPv6 sockets): 0 keeps datagrams on this host, 1 (the default) on the link.
        ``ValueError`` outside 0..255.
        """),
    Option("multicast_loop", "flag", IPPROTO_IP, IP_MULTICAST_LOOP, "IP_MULTICAST_LOOP",
           one_byte=True, v6=(IPPROTO_IPV6, IPV6_MULTICAST_LOOP, "IPV6_MULTICAST_LOOP"), doc="""
        set_multicast_loop(on)

        Whether this host's own multicast is delivered to its own sockets
        (IP_MULTICAST_LOOP / IPV6_MULTICAST_LOOP; on by default).
        """),
    Option("recv_buffer", "buffer", SOL_SOCKET, SO_RCVBUF, "SO_RCVBUF",
           force=SO_RCVBUFFORCE, param="size", what="buffer size", low=1, high=0x7fffffff,
           doc="""
        set_recv_buffer(size, force=False) -> int

        SO_RCVBUF.  With *force*, SO_RCVBUFFORCE first (Linux, needs
        CAP_NET_ADMIN), which passes net.core.rmem_max; without the privilege the
        ordinary request is made.  Returns the size the kernel granted, as
        ``getsockopt`` reports it (Linux doubles the request for its bookkeeping).
        """),
    Option("send_buffer", "buffer", SOL_SOCKET, SO_SNDBUF, "SO_SNDBUF",
           force=SO_SNDBUFFORCE, param="size", what="buffer size", low=1, high=0x7fffffff,
           doc="""
        set_send_buffer(size, force=False) -> int

        SO_SNDBUF, as :meth:`set_recv_buffer` (SO_SNDBUFFORCE with *force*).
        """),
    Option("reuse_address", "flag", SOL_SOCKET, SO_REUSEADDR, "SO_REUSEADDR",
           what="SO_REUSEADDR (bind to an address in TIME_WAIT)"),
    Option("reuse_port", "flag", SOL_SOCKET, SO_REUSEPORT, "SO_REUSEPORT", doc="""
        set_reuse_port(on)

        SO_REUSEPORT: several sockets bind one port and the kernel spreads the
        load.  ``OSError`` (ENOPROTOOPT) where the system lacks it.
        """),
    Option("broadcast", "flag", SOL_SOCKET, SO_BROADCAST, "SO_BROADCAST",
           what="SO_BROADCAST (permission to send to broadcast addresses)"),
    Option("oobinline", "flag", SOL_SOCKET, SO_OOBINLINE, "SO_OOBINLINE",
           what="SO_OOBINLINE (urgent data read in line)"),
    Option("dontroute", "flag", SOL_SOCKET, SO_DONTROUTE, "SO_DONTROUTE",
           what="SO_DONTROUTE (send to directly connected hosts only)"),
    Option("nodelay", "flag", IPPROTO_TCP, TCP_NODELAY, "TCP_NODELAY",
           what="TCP_NODELAY (no Nagle delay for small segments)"),
    Option("maxseg", "number", IPPROTO_TCP, TCP_MAXSEG, "TCP_MAXSEG",
           param="size", what="maximum segment size", low=1, high=0x7fffffff, doc="""
        set_maxseg(size)

        TCP_MAXSEG: the largest segment this side sends (set before connecting).
        """),
    Option("ttl", "number", IPPROTO_IP, IP_TTL, "IP_TTL",
           v6=(IPPROTO_IPV6, IPV6_UNICAST_HOPS, "IPV6_UNICAST_HOPS"),
           param="ttl", what="TTL", low=1, high=255, doc="""
        set_ttl(ttl)

        Unicast hop limit: IP_TTL, or IPV6_UNICAST_HOPS on IPv6 sockets.
        ``ValueError`` outside 1..255.
        """),
    Option("tos", "number", IPPROTO_IP, IP_TOS, "IP_TOS",
           param="tos", what="TOS", low=0, high=255, doc="""
        set_tos(tos)

        IP_TOS: the type-of-service / DSCP+ECN byte of outgoing IPv4 packets.
        ``ValueError`` outside 0..255.
        """),
    Option("type", "read-only", SOL_SOCKET, SO_TYPE, "SO_TYPE", get_doc="""
        get_type() -> int: SO_TYPE, the socket's type as the kernel reports it.
        """),
    Option("error", "read-only", SOL_SOCKET, SO_ERROR, "SO_ERROR", get_doc="""
        get_error() -> int

        SO_ERROR: the socket's pending error (0 if none), which reading clears --
        e.g. ``ECONNREFUSED`` after an ICMP port unreachable, or the outcome of a
        non-blocking ``connect``.
        """),
)

cdef list _table_methods = []
for _option in OPTIONS:
    _table_methods.extend(_typed_methods(_option))
del _option
globals().update(_table_methods)

#: Names installed on hotsock.socket as methods: the hand-written ones, then the table's.
OPTION_METHODS = tuple(_hand_written) + tuple([name for name, _ in _table_methods])
