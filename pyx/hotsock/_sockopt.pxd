# The raw parts of the typed socket options (see _sockopt.pyx).
from includes.netinet cimport in_addr, in6_addr
from includes.socket cimport sockaddr_storage, socklen_t

cdef int _fd(object sock) except? -1
cdef int _put(int fd, int level, int name, const void *value, socklen_t size) except -1
cdef int _take(int fd, int level, int name, void *value, socklen_t *size) except -1
cdef object _set(object sock, int level, int name, const void *value, socklen_t size)
cdef int _get(object sock, int level, int name, void *value, socklen_t *size) except -1
cdef object _set_int(object sock, int level, int name, int value)
cdef int _get_int(object sock, int level, int name) except? -1
cdef bint _is_ipv6(object sock) except -1
cdef int _check_range(str what, object value, long low, long high) except -1
cdef int _ipv4(object text, str what, in_addr *out) except -1
cdef int _ipv6(object text, str what, in6_addr *out) except -1
cdef bint _group_is_ipv6(object group) except -1
cdef int _multicast_ipv4(object group, in_addr *out) except -1
cdef int _multicast_ipv6(object group, in6_addr *out) except -1
cdef unsigned int interface_index(object interface) except? 0
cdef bint _looks_ipv4(object interface)
cdef void _sockaddr_v4(sockaddr_storage *out, in_addr address) noexcept
cdef void _sockaddr_v6(sockaddr_storage *out, in6_addr *address) noexcept
