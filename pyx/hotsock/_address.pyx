"""Socket addresses: Python tuples to ``struct sockaddr`` and back.

The fast path converts the forms a hot loop uses -- ``(host, port)`` and
``(host, port, flowinfo, scope_id)`` with a numeric host, ``''`` and
``'<broadcast>'`` -- without a name lookup.  Anything else is left to the
stdlib (the socket methods delegate) or to :func:`resolve_address`, which
follows CPython's ``getsockaddrarg``/``setipaddr`` step by step, messages
included.

:class:`AddressCache` remembers the last destination and the last source
per socket, so that a loop sending to one peer converts its tuple once and
a loop receiving from one peer builds its tuple once.
"""
from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.tuple cimport PyTuple_GET_SIZE, PyTuple_GET_ITEM
from libc.stdint cimport uint16_t, uint32_t
from libc.string cimport memcpy, memcmp, memset, strlen

from includes.socket cimport AF_INET, AF_INET6, SOCK_DGRAM, sa_family_t
from includes.netinet cimport (
    sockaddr_in, sockaddr_in6, htons, ntohs, htonl, ntohl, inet_pton, inet_ntop,
    INADDR_ANY, INADDR_BROADCAST, INET6_ADDRSTRLEN)

import os
import _socket

cdef extern from "Python.h":
    bint PyUnicode_IS_ASCII(object o)
    object PyUnicode_DecodeFSDefault(const char *s)
    const char *PyUnicode_AsUTF8AndSize(object o, Py_ssize_t *size) except NULL

cdef extern from "<sys/un.h>":
    struct sockaddr_un:
        sa_family_t sun_family
        char sun_path[108]
    enum: AF_UNIX

# Offset of sun_path: the family field is all that precedes it.
cdef size_t SUN_PATH_OFFSET = sizeof(sa_family_t)


cdef inline bint _exact_u32(object o, uint32_t limit, uint32_t *out) noexcept:
    """True if *o* is a plain int in 0..limit (a port, flowinfo or scope id)."""
    cdef long long value
    if type(o) is not int:
        return False
    try:
        value = o
    except OverflowError:
        return False
    if value < 0 or value > limit:
        return False
    out[0] = <uint32_t>value
    return True


cdef int parse_inet(int family, object addr, sockaddr_storage *out,
                    socklen_t *out_len) except -1:
    """Fast path: 1 if *addr* was converted, 0 if it needs the general path.

    Only plain tuples of a plain ASCII ``str`` host that is an address
    literal (or ``''``/``'<broadcast>'`` for IPv4) and plain ``int`` fields
    in range are taken here; the conversion is then exactly CPython's.
    """
    cdef Py_ssize_t n, host_len
    cdef const char *host
    cdef uint32_t port, flowinfo = 0, scope_id = 0
    cdef sockaddr_in *sin
    cdef sockaddr_in6 *sin6
    if type(addr) is not tuple:
        return 0
    n = PyTuple_GET_SIZE(addr)
    if family == AF_INET:
        if n != 2:
            return 0
    elif family == AF_INET6:
        if n < 2 or n > 4:
            return 0
    else:
        return 0
    host_obj = <object>PyTuple_GET_ITEM(addr, 0)
    if type(host_obj) is not str or not PyUnicode_IS_ASCII(host_obj):
        return 0
    if not _exact_u32(<object>PyTuple_GET_ITEM(addr, 1), 0xffff, &port):
        return 0
    host = PyUnicode_AsUTF8AndSize(host_obj, &host_len)
    if <size_t>host_len != strlen(host):
        return 0            # embedded NUL: the stdlib has the message for it
    memset(out, 0, sizeof(sockaddr_storage))
    if family == AF_INET:
        sin = <sockaddr_in *>out
        if host_len == 0:
            sin.sin_addr.s_addr = htonl(INADDR_ANY)
        elif host_obj == "<broadcast>":
            sin.sin_addr.s_addr = htonl(INADDR_BROADCAST)
        elif inet_pton(AF_INET, host, &sin.sin_addr) != 1:
            return 0
        sin.sin_family = AF_INET
        sin.sin_port = htons(<uint16_t>port)
        out_len[0] = sizeof(sockaddr_in)
        return 1
    # AF_INET6.  '' means getaddrinfo(NULL, AI_PASSIVE) and a '%' scope means
    # an interface-name lookup: both go the general way, as in CPython.
    if n > 2 and not _exact_u32(<object>PyTuple_GET_ITEM(addr, 2), 0xfffff, &flowinfo):
        return 0
    if n > 3 and not _exact_u32(<object>PyTuple_GET_ITEM(addr, 3), 0xffffffffu, &scope_id):
        return 0
    sin6 = <sockaddr_in6 *>out
    if inet_pton(AF_INET6, host, &sin6.sin6_addr) != 1:
        return 0
    sin6.sin6_family = AF_INET6
    sin6.sin6_port = htons(<uint16_t>port)
    sin6.sin6_flowinfo = htonl(flowinfo)
    sin6.sin6_scope_id = scope_id
    out_len[0] = sizeof(sockaddr_in6)
    return 1


cdef object _host_text(object host):
    """CPython's idna_converter: the host as an ASCII str (or raise)."""
    if isinstance(host, (bytes, bytearray)):
        text = bytes(host).decode("ascii", "surrogateescape")
    elif isinstance(host, str):
        text = host if host.isascii() else host.encode("idna").decode("ascii")
    else:
        raise TypeError(f"str, bytes or bytearray expected, not {type(host).__name__}")
    if "\0" in text:
        raise TypeError("host name must not contain null character")
    return text


cdef int resolve_address(int family, object addr, str caller,
                         sockaddr_storage *out, socklen_t *out_len) except -1:
    """The general path: any address CPython's socket methods accept.

    Host names are resolved with getaddrinfo (the GIL released, as the stdlib
    does); messages and exception types follow ``getsockaddrarg``.
    """
    if parse_inet(family, addr, out, out_len):
        return 0
    if family == AF_UNIX:
        return _unix_address(addr, out, out_len)
    if family == AF_INET:
        if not isinstance(addr, tuple):
            raise TypeError(
                f"{caller}(): AF_INET address must be tuple, not {type(addr).__name__}")
        if len(addr) != 2:
            raise TypeError("AF_INET address must be a pair (host, port)")
        host, port = addr
        extra = ()
    elif family == AF_INET6:
        if not isinstance(addr, tuple):
            raise TypeError(
                f"{caller}(): AF_INET6 address must be tuple, not {type(addr).__name__}")
        if not 2 <= len(addr) <= 4:
            raise TypeError(
                "AF_INET6 address must be a tuple (host, port[, flowinfo[, scopeid]])")
        host, port, *extra = addr
    else:
        raise OSError(f"{caller}(): bad family")
    text = _host_text(host)
    try:
        port = port.__index__()
    except AttributeError:
        raise TypeError(
            f"'{type(port).__name__}' object cannot be interpreted as an integer") from None
    if not 0 <= port <= 0xffff:
        raise OverflowError(f"{caller}(): port must be 0-65535.")
    # The stdlib parses both with "I": masked to 32 bits, then range-checked.
    flowinfo = (extra[0].__index__() & 0xffffffff) if len(extra) > 0 else 0
    scope_id = (extra[1].__index__() & 0xffffffff) if len(extra) > 1 else 0
    if not 0 <= flowinfo <= 0xfffff:
        raise OverflowError(f"{caller}(): flowinfo must be 0-1048575.")
    if text and text != "<broadcast>" and "%" not in text:
        numeric = (text, port) if family == AF_INET else (text, port, flowinfo, scope_id & 0xffffffff)
        if parse_inet(family, numeric, out, out_len):
            return 0
    if text == "<broadcast>" and family == AF_INET6:
        raise OSError("address family mismatched")
    # Names, '' for IPv6 and scoped literals: the resolver decides, as in setipaddr().
    infos = _socket.getaddrinfo(text or None, port, family, SOCK_DGRAM, 0,
                                _socket.AI_PASSIVE if not text else 0)
    sockaddr_tuple = infos[0][4]
    if family == AF_INET6:
        sockaddr_tuple = (sockaddr_tuple[0].split("%")[0], port, flowinfo,
                          (scope_id & 0xffffffff) or sockaddr_tuple[3])
    if not parse_inet(family, sockaddr_tuple, out, out_len):
        raise OSError(f"{caller}(): cannot convert address {addr!r}")
    return 0


cdef int _unix_address(object addr, sockaddr_storage *out, socklen_t *out_len) except -1:
    """A filesystem path or (leading NUL) a Linux abstract name, as getsockaddrarg takes it."""
    cdef sockaddr_un *sun = <sockaddr_un *>out
    cdef bytes path
    if isinstance(addr, (bytes, bytearray, memoryview)):
        path = bytes(addr)
    else:
        path = os.fsencode(addr)
    abstract = len(path) > 0 and path[0] == 0
    # (Py_ssize_t on both sides: len() is signed, sizeof unsigned; -Wsign-compare.)
    if (len(path) > <Py_ssize_t>sizeof(sun.sun_path)
            or (not abstract and len(path) >= <Py_ssize_t>sizeof(sun.sun_path))):
        raise OSError("AF_UNIX path too long")
    memset(out, 0, sizeof(sockaddr_storage))
    sun.sun_family = AF_UNIX
    memcpy(sun.sun_path, <const char *>path, len(path))
    out_len[0] = <socklen_t>(SUN_PATH_OFFSET + len(path) + (0 if abstract else 1))
    return 0


cdef object make_address(const sockaddr *sa, socklen_t length):
    """CPython's makesockaddr for the families hotsock receives on."""
    cdef char text[INET6_ADDRSTRLEN]
    cdef const sockaddr_in *sin
    cdef const sockaddr_in6 *sin6
    cdef const sockaddr_un *sun
    cdef Py_ssize_t path_len
    if length == 0:
        return None         # e.g. recvfrom() on a connected stream socket
    if sa.sa_family == AF_INET:
        sin = <const sockaddr_in *>sa
        inet_ntop(AF_INET, &sin.sin_addr, text, sizeof(text))
        return (text.decode("ascii"), ntohs(sin.sin_port))
    if sa.sa_family == AF_INET6:
        sin6 = <const sockaddr_in6 *>sa
        inet_ntop(AF_INET6, &sin6.sin6_addr, text, sizeof(text))
        return (text.decode("ascii"), ntohs(sin6.sin6_port),
                ntohl(sin6.sin6_flowinfo), sin6.sin6_scope_id)
    if sa.sa_family == AF_UNIX:
        sun = <const sockaddr_un *>sa
        path_len = <Py_ssize_t>length - <Py_ssize_t>SUN_PATH_OFFSET
        if path_len > 0 and sun.sun_path[0] == 0:
            return PyBytes_FromStringAndSize(sun.sun_path, path_len)  # Linux abstract name
        return PyUnicode_DecodeFSDefault(sun.sun_path)
    # Unknown family: (family, raw bytes), as the stdlib does.
    return (sa.sa_family, PyBytes_FromStringAndSize(
        (<const char *>sa) + sizeof(sa_family_t), 14))


cdef inline bint _same_key(object a, object b) noexcept:
    """Equal address tuples whose items have the same exact types."""
    cdef Py_ssize_t i, n
    if b is None or type(a) is not tuple:
        return False
    n = PyTuple_GET_SIZE(a)
    if n != PyTuple_GET_SIZE(b):
        return False
    for i in range(n):
        x = <object>PyTuple_GET_ITEM(a, i)
        y = <object>PyTuple_GET_ITEM(b, i)
        if type(x) is not type(y):
            return False
        try:
            if not (x == y):
                return False
        except Exception:
            return False
    return True


cdef class AddressCache:
    """The last destination and source addresses of one socket or batch."""

    cdef int destination(self, int family, object addr,
                         sockaddr_storage *out, socklen_t *length) except -1:
        """Copy the sockaddr for *addr* to *out*: 1 done, 0 needs the general path.

        A copy, not a pointer into the cache: the caller releases the GIL for
        the syscall, and another thread may update the cache meanwhile.
        """
        cdef sockaddr_storage tmp
        cdef socklen_t tmp_len
        if addr is self.src_value and self.src.ss_family == family:
            # Replying to whoever sent last: the kernel's own sockaddr.
            memcpy(out, &self.src, self.src_len)
            length[0] = self.src_len
            return 1
        if addr is not self.dest_key and not _same_key(addr, self.dest_key):
            if not parse_inet(family, addr, &tmp, &tmp_len):
                return 0
            memcpy(&self.dest, &tmp, tmp_len)
            self.dest_len = tmp_len
            self.dest_key = addr
        elif self.dest.ss_family != family:
            return 0
        memcpy(out, &self.dest, self.dest_len)
        length[0] = self.dest_len
        return 1

    cdef object source(self, const sockaddr *sa, socklen_t length):
        """The address tuple for *sa*, reusing the last one when it is the same peer."""
        if length == 0:
            return None
        if (self.src_value is not None and length == self.src_len
                and memcmp(sa, &self.src, length) == 0):
            return self.src_value
        value = make_address(sa, length)
        if length <= sizeof(sockaddr_storage):
            memcpy(&self.src, sa, length)
            self.src_len = length
            self.src_value = value
        return value


cdef AddressCache cache_of(object sock):
    """The address cache of a hotsock socket, made on first use.

    Other objects (stdlib sockets, integer descriptors) get a fresh cache,
    which still serves the many datagrams of one batch.
    """
    try:
        cache = sock._hotsock_addresses
    except AttributeError:
        return AddressCache()
    if cache is None:
        cache = AddressCache()
        sock._hotsock_addresses = cache
    return <AddressCache>cache
