"""What a hot loop does to its socket, and puts back: the options that make
the kernel report timestamps, destinations and drops, the receive buffer a
capture asks for, and the socket's drop counter read from the kernel.

The loops (``_hotloops``) turn these on for their run only: a caller's own
``recvmsg()`` afterwards gets no control messages nobody asked for, and the
socket's buffer is as it was (contract 8).
"""
import _socket
import errno
import os
import socket as _stdlib
import struct
import sys

from . import _features

# The socket module's family and type properties turn the numbers into enum
# members (a microsecond each); the loops compare numbers.
_raw_family = _socket.socket.family.__get__
_raw_type = _socket.socket.type.__get__


def _family(sock):
    """The socket's family as a number."""
    return _raw_family(sock) if isinstance(sock, _socket.socket) else sock.family


def _type(sock):
    """The socket's type as a number."""
    return _raw_type(sock) if isinstance(sock, _socket.socket) else sock.type


# --- the kernel's drop counter -------------------------------------------------

# getsockopt(SOL_SOCKET, SO_MEMINFO) (Linux >= 3.10): the socket's memory
# counters, of which SK_MEMINFO_DROPS (index 8) is its drop counter.
SO_MEMINFO = _features.SO_MEMINFO
_MEMINFO_DROPS = 8


def kernel_drops(sock):
    """The drop counter of UDP socket *sock* (a socket object or an integer
    file descriptor): datagrams the kernel dropped since the socket was
    opened (Linux; None elsewhere).

    SO_RXQ_OVFL reports the same counter, but only with a datagram: drops
    after the last one received show here only.  Read with SO_MEMINFO, or
    from /proc/net/udp{,6} where that is refused.  Raises ``TypeError`` for
    anything else, ``ValueError`` for a negative descriptor, ``OSError``
    (``EBADF``) for a closed socket and (``ENOTSOCK``) for a descriptor that
    is not a socket.
    """
    if not isinstance(sock, _stdlib.socket):
        if isinstance(sock, bool) or not isinstance(sock, int):
            raise TypeError(f"kernel_drops() expects a socket or a file descriptor, "
                            f"not {type(sock).__name__}")
        if sock < 0:        # in the words of recv_batch() and select() for the same mistake
            raise ValueError(f"file descriptor cannot be a negative integer ({sock})")
        # A borrowed descriptor: wrapped for the call, never closed.
        wrapped = _stdlib.socket(fileno=sock)
        try:
            return kernel_drops(wrapped)
        finally:
            wrapped.detach()
    if sock.fileno() < 0:
        raise OSError(errno.EBADF, os.strerror(errno.EBADF))    # closed, as capture() says
    if SO_MEMINFO is not None:
        try:
            raw = sock.getsockopt(_stdlib.SOL_SOCKET, SO_MEMINFO, 4 * (_MEMINFO_DROPS + 1))
            if len(raw) >= 4 * (_MEMINFO_DROPS + 1):
                return struct.unpack_from("=I", raw, 4 * _MEMINFO_DROPS)[0]
        except OSError:
            pass
    try:
        inode = str(os.fstat(sock.fileno()).st_ino)
    except OSError:
        return None
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(table) as rows:
                next(rows)
                for row in rows:
                    fields = row.split()
                    if len(fields) > 12 and fields[9] == inode:
                        return int(fields[12])
        except OSError:
            continue
    return None


def _ask(sock, level, option):
    """Turn a boolean socket option on; False if the system refuses or lacks it."""
    if option is None:
        return False
    try:
        sock.setsockopt(level, option, 1)
        return True
    except OSError:
        return False


def _needs_destination(sock):
    """Whether datagrams can reach this socket at more than one address:
    bound to a wildcard (or a group/broadcast), so IP_PKTINFO must say which."""
    host = sock.getsockname()[0]
    if host in ("0.0.0.0", "::"):
        return True
    try:
        if _family(sock) == _stdlib.AF_INET:
            first = _stdlib.inet_aton(host)[0]
            return first >= 224 or host.endswith(".255")
        return host.lower().startswith("ff")
    except OSError:
        return True


# SO_TIMESTAMP (microseconds): only read, to put it back.  On Linux turning
# SO_TIMESTAMPNS off clears SO_TIMESTAMP as well.
_SO_TIMESTAMP = getattr(_stdlib, "SO_TIMESTAMP", 29 if sys.platform.startswith("linux") else None)


def _reception_options(sock, pktinfo):
    """The options a receiving loop turns on: (level, option) pairs, those the
    system has.  *pktinfo*: also the destination address of each datagram."""
    wanted = [(_stdlib.SOL_SOCKET, _features.SO_TIMESTAMPNS),
              (_stdlib.SOL_SOCKET, _features.SO_RXQ_OVFL)]
    if pktinfo:
        if _family(sock) == _stdlib.AF_INET:
            wanted.append((_stdlib.IPPROTO_IP, _features.IP_PKTINFO))
        else:
            wanted.append((_stdlib.IPPROTO_IPV6, getattr(_stdlib, "IPV6_RECVPKTINFO", None)))
    return [(level, option) for level, option in wanted if option is not None]


class _options_restored:
    """Turn the boolean options *turn_on* on for the body (the loop), then put
    back every option the body changed -- those, SO_TIMESTAMP, UDP_GRO (a GRO
    batch turns it on) and the receive buffer -- so that the caller's own
    recvmsg() calls get no control messages or coalesced buffers nobody asked
    for.  *rcvbuf*: raise the receive buffer to at least that many bytes for
    the body (see :func:`raise_recv_buffer`).  (A class, not a generator:
    the loops' per-call cost is counted in microseconds.)"""

    __slots__ = ("sock", "turn_on", "rcvbuf", "before", "buffer_before")

    def __init__(self, sock, turn_on, rcvbuf=None):
        self.sock = sock
        self.turn_on = turn_on
        self.rcvbuf = rcvbuf
        self.before = {}
        self.buffer_before = None

    def __enter__(self):
        sock = self.sock
        for level, option in (*self.turn_on, *_ALSO_WATCHED):
            try:
                self.before[level, option] = sock.getsockopt(level, option)
            except OSError:
                pass
        try:
            for level, option in self.turn_on:
                _ask(sock, level, option)
            if self.rcvbuf is not None:
                self.buffer_before = raise_recv_buffer(sock, self.rcvbuf)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc_info):
        sock = self.sock
        # In this order: SO_TIMESTAMPNS off clears SO_TIMESTAMP, which follows it.
        for (level, option), value in self.before.items():
            try:
                if sock.getsockopt(level, option) != value:
                    sock.setsockopt(level, option, value)
            except OSError:
                pass
        if self.buffer_before is not None:
            try:
                _set_recv_buffer(sock, self.buffer_before // 2 if _DOUBLED
                                 else self.buffer_before)
            except OSError:
                pass
        return False


# What a loop may change without asking: SO_TIMESTAMP (SO_TIMESTAMPNS off
# clears it) and UDP_GRO (a GRO batch turns it on).
_ALSO_WATCHED = tuple(
    (level, option) for level, option in ((_stdlib.SOL_SOCKET, _SO_TIMESTAMP),
                                          (_stdlib.IPPROTO_UDP, _features.UDP_GRO))
    if option is not None)


# --- the receive buffer ------------------------------------------------------------

# A capture tool's buffer must not be the reason it drops: tcpdump's default
# capture buffer (-B) is 2 MiB, and so is this (the size asked for; Linux
# reports and uses twice as much).
DEFAULT_RCVBUF = 2 << 20
_DOUBLED = sys.platform.startswith("linux")     # Linux doubles a request for its bookkeeping
_SO_RCVBUFFORCE = getattr(_stdlib, "SO_RCVBUFFORCE",
                          33 if sys.platform.startswith("linux") else None)
_RMEM_MAX = "/proc/sys/net/core/rmem_max"


def _set_recv_buffer(sock, size):
    """SO_RCVBUFFORCE (Linux, passes net.core.rmem_max, needs CAP_NET_ADMIN), else SO_RCVBUF."""
    if _SO_RCVBUFFORCE is not None:
        try:
            sock.setsockopt(_stdlib.SOL_SOCKET, _SO_RCVBUFFORCE, size)
            return
        except OSError:
            pass
    sock.setsockopt(_stdlib.SOL_SOCKET, _stdlib.SO_RCVBUF, size)


def raise_recv_buffer(sock, size):
    """Ask for a receive buffer of *size* bytes unless the socket's is already
    at least that large (never lowers it).  Returns the size before, as
    ``getsockopt(SO_RCVBUF)`` reported it, if it was changed; else None."""
    before = sock.getsockopt(_stdlib.SOL_SOCKET, _stdlib.SO_RCVBUF)
    if before >= (2 * size if _DOUBLED else size):
        return None
    try:
        _set_recv_buffer(sock, size)
    except OSError:
        return None
    return before


def recv_buffer_cap(requested, granted):
    """net.core.rmem_max if it is why *granted* (as getsockopt reports it) is less than
    *requested* (as asked for), else None (Linux only)."""
    if not _DOUBLED or granted >= 2 * requested:
        return None
    try:
        with open(_RMEM_MAX) as f:
            return int(f.read())
    except (OSError, ValueError):
        return None
