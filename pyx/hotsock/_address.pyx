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
from cpython.buffer cimport (
    PyObject_GetBuffer, PyBuffer_Release, PyBuffer_IsContiguous, PyBUF_SIMPLE)
from libc.limits cimport INT_MAX, INT_MIN
from libc.stdint cimport uint16_t, uint32_t
from libc.string cimport memcpy, memcmp, memset, strlen

from includes.socket cimport AF_INET, AF_INET6, SOCK_DGRAM, sa_family_t
from includes.netinet cimport (
    sockaddr_in, sockaddr_in6, htons, ntohs, htonl, ntohl, inet_pton, inet_ntop,
    INADDR_ANY, INADDR_BROADCAST, INET6_ADDRSTRLEN)

import operator
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


cdef bytes _host_bytes(object host):
    """CPython's idna_converter: the host as bytes for the resolver (or raise)."""
    if isinstance(host, (bytes, bytearray)):
        raw = bytes(host)
    elif isinstance(host, str):
        if host.isascii():
            raw = host.encode("ascii")
        else:
            try:
                raw = host.encode("idna")
            except UnicodeError:
                # Surrogates, labels too long, ...: the stdlib's wording.
                raise TypeError("encoding of hostname failed") from None
    else:
        raise TypeError(f"str, bytes or bytearray expected, not {type(host).__name__}")
    if b"\0" in raw:
        raise TypeError("host name must not contain null character")
    return raw


cdef object _c_int(object value):
    """The stdlib's "i" format: any __index__ object, OverflowError past a C int."""
    value = operator.index(value)
    if not INT_MIN <= value <= INT_MAX:
        raise OverflowError("signed integer is out of range")
    return value


cdef object _c_uint_mask(object value):
    """The stdlib's "I" format: any __index__ object, masked to 32 bits."""
    return operator.index(value) & 0xffffffff


cdef int _set_ip(int family, bytes host, sockaddr_storage *out) except -1:
    """CPython's setipaddr(): *host* to an address of *family*; port and
    scope are the caller's."""
    cdef sockaddr_in *sin = <sockaddr_in *>out
    cdef sockaddr_in6 *sin6 = <sockaddr_in6 *>out
    cdef const char *name = host
    memset(out, 0, sizeof(sockaddr_storage))
    if not host:
        infos = _socket.getaddrinfo(None, "0", family, SOCK_DGRAM, 0, _socket.AI_PASSIVE)
        if len(infos) > 1:
            raise OSError("wildcard resolved to multiple address")
        text = infos[0][4][0]
    elif host == b"255.255.255.255" or host == b"<broadcast>":
        if family != AF_INET:
            raise OSError("address family mismatched")
        sin.sin_family = AF_INET
        sin.sin_addr.s_addr = htonl(INADDR_BROADCAST)
        return 0
    elif family == AF_INET and inet_pton(AF_INET, name, &sin.sin_addr) == 1:
        sin.sin_family = AF_INET
        return 0
    elif (family == AF_INET6 and b"%" not in host
            and inet_pton(AF_INET6, name, &sin6.sin6_addr) == 1):
        sin6.sin6_family = AF_INET6
        return 0
    else:
        # A name or a scoped literal: the resolver decides (its scope is not kept).
        text = _socket.getaddrinfo(host, None, family)[0][4][0]
    encoded = text.split("%")[0].encode("ascii")
    name = encoded
    if family == AF_INET:
        sin.sin_family = AF_INET
        if inet_pton(AF_INET, name, &sin.sin_addr) != 1:
            raise OSError("unknown address family")
    else:
        sin6.sin6_family = AF_INET6
        if inet_pton(AF_INET6, name, &sin6.sin6_addr) != 1:
            raise OSError("unknown address family")
    return 0


cdef int resolve_address(int family, object addr, str caller,
                         sockaddr_storage *out, socklen_t *out_len) except -1:
    """The general path: any address CPython's socket methods accept.

    Follows CPython's ``getsockaddrarg``/``setipaddr`` step by step -- the
    order of the checks, exception types and messages included -- so that
    ``send_batch`` and ``blast`` refuse what ``sendto`` refuses, the same
    way.  Host names are resolved with getaddrinfo (the GIL released, as the
    stdlib does).
    """
    cdef sockaddr_in *sin = <sockaddr_in *>out
    cdef sockaddr_in6 *sin6 = <sockaddr_in6 *>out
    if parse_inet(family, addr, out, out_len):
        return 0
    if family == AF_UNIX:
        return _unix_address(addr, out, out_len)
    if family != AF_INET and family != AF_INET6:
        raise OSError(f"{caller}(): bad family")
    name = "AF_INET" if family == AF_INET else "AF_INET6"
    if not isinstance(addr, tuple):
        raise TypeError(f"{caller}(): {name} address must be tuple, not {type(addr).__name__}")
    # PyArg_ParseTuple("O&i|II"): the fields converted in order, then resolved.
    if family == AF_INET and len(addr) != 2:
        raise TypeError("AF_INET address must be a pair (host, port)")
    if family == AF_INET6 and not 2 <= len(addr) <= 4:
        raise TypeError("AF_INET6 address must be a tuple (host, port[, flowinfo[, scopeid]])")
    host = _host_bytes(addr[0])
    try:
        port = _c_int(addr[1])
    except OverflowError:
        raise OverflowError(f"{caller}(): port must be 0-65535.") from None
    flowinfo = _c_uint_mask(addr[2]) if len(addr) > 2 else 0
    scope_id = _c_uint_mask(addr[3]) if len(addr) > 3 else 0
    _set_ip(family, host, out)
    if not 0 <= port <= 0xffff:
        raise OverflowError(f"{caller}(): port must be 0-65535.")
    if family == AF_INET:
        sin.sin_port = htons(<uint16_t>port)
        out_len[0] = sizeof(sockaddr_in)
        return 0
    if flowinfo > 0xfffff:
        raise OverflowError(f"{caller}(): flowinfo must be 0-1048575.")
    sin6.sin6_port = htons(<uint16_t>port)
    sin6.sin6_flowinfo = htonl(<uint32_t>flowinfo)
    sin6.sin6_scope_id = <uint32_t>scope_id      # the tuple's, never the literal's
    out_len[0] = sizeof(sockaddr_in6)
    return 0


def sockaddr_for(int family, address):
    """The address tuple ``send_batch`` would send to (for tests): *address*
    converted to a sockaddr and back."""
    cdef sockaddr_storage ss
    cdef socklen_t length = 0
    resolve_address(family, address, "sockaddr_for", &ss, &length)
    return make_address(<sockaddr *>&ss, length)


cdef int _unix_address(object addr, sockaddr_storage *out, socklen_t *out_len) except -1:
    """A filesystem path or (leading NUL) a Linux abstract name, as getsockaddrarg
    takes it: a str encoded with the filesystem encoding, else any contiguous
    bytes-like object (not a PathLike, as in the stdlib)."""
    cdef sockaddr_un *sun = <sockaddr_un *>out
    cdef Py_buffer view
    cdef bint abstract
    if isinstance(addr, str):
        addr = os.fsencode(addr)
    PyObject_GetBuffer(addr, &view, PyBUF_SIMPLE)
    try:
        if not PyBuffer_IsContiguous(&view, b'C'):
            raise TypeError(f"a bytes-like object is required, not '{type(addr).__name__}'")
        # '' is the empty abstract address: the kernel refuses it (EINVAL)
        # in sendto, as for the stdlib; its length must not take a NUL.
        abstract = view.len == 0 or (<const char *>view.buf)[0] == 0
        if view.len > <Py_ssize_t>sizeof(sun.sun_path) or (
                not abstract and view.len >= <Py_ssize_t>sizeof(sun.sun_path)):
            raise OSError("AF_UNIX path too long")
        memset(out, 0, sizeof(sockaddr_storage))
        sun.sun_family = AF_UNIX
        memcpy(sun.sun_path, view.buf, view.len)
        out_len[0] = <socklen_t>(SUN_PATH_OFFSET + view.len + (0 if abstract else 1))
    finally:
        PyBuffer_Release(&view)
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
    if type(cache) is AddressCache:
        return <AddressCache>cache
    # None (not made yet), or anything else a user or a duck-typed object
    # put there: never trusted, replaced where the object lets us.
    cache = AddressCache()
    if isinstance(sock, _socket.socket):
        try:
            sock._hotsock_addresses = cache
        except (AttributeError, TypeError):
            pass
    return cache
