"""Typed socket options that take a C struct, or several options at once,
written by hand: multicast membership and source filters, the multicast
interface, ``linger``, the kernel timeouts (``timeval``) and keepalive.

IPv4 joins use ``ip_mreq`` (interface by address), ``ip_mreqn`` (by index,
Linux) and ``ip_mreq_source`` (source-specific); IPv6 joins ``ipv6_mreq``
and ``group_source_req``.  Where ``ip_mreqn`` is missing (macOS, BSD), an
interface index goes through RFC 3678's ``group_req``/``group_source_req``.
Structs are filled field by field, so their per-OS layouts (``ip_mreq_source``
orders its fields differently on Linux and the BSDs) come from the system
headers.  Each function takes the socket first; ``_options`` installs the
ones marked ``@_method`` on ``hotsock.socket``, in ``HAND_WRITTEN``'s order.
"""

from libc.errno cimport ENOPROTOOPT
from libc.string cimport memset

from includes.netinet cimport in_addr, in6_addr, inet_ntop, htonl, INADDR_ANY, INET6_ADDRSTRLEN
from includes.options cimport *
from includes.socket cimport socklen_t, AF_INET, SOL_SOCKET
from hotsock._sockopt cimport (
    _check_range, _get, _get_int, _group_is_ipv6, _ipv4, _ipv6, _is_ipv6, _looks_ipv4,
    _multicast_ipv4, _multicast_ipv6, _set, _set_int, _sockaddr_v4, _sockaddr_v6,
    interface_index)


# Names of the hand-written methods, in the order they are defined.
cdef list _hand_written = []


def _method(function):
    """Mark a hand-written function as a method of ``hotsock.socket``."""
    _hand_written.append(function.__name__)
    return function


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


#: The hand-written methods' names, in order.
HAND_WRITTEN = tuple(_hand_written)
