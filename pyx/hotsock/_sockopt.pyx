"""The raw parts of the typed socket options: getsockopt/setsockopt with
errno, range checks in the stdlib's words, and the conversions of groups,
addresses and interfaces into the C structs (``_struct_options``) and the
table's rows (``_options``) use."""
from cpython.long cimport PyLong_AsLongAndOverflow
from libc.errno cimport errno, ENODEV
from libc.string cimport memset

from includes.netinet cimport in_addr, in6_addr, sockaddr_in, sockaddr_in6, inet_pton, ntohl
from includes.socket cimport sockaddr_storage, socklen_t, setsockopt, getsockopt, AF_INET, AF_INET6
from includes.options cimport *
from hotsock._pysocket cimport SockInfo, get_sock_info
from hotsock._syscall cimport raise_errno

import os

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
