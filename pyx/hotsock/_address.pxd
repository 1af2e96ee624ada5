# Socket addresses: Python tuples <-> struct sockaddr, with a per-socket cache.
from includes.socket cimport sockaddr, sockaddr_storage, socklen_t

cdef int parse_inet(int family, object addr, sockaddr_storage *out,
                    socklen_t *out_len) except -1
cdef int resolve_address(int family, object addr, str caller,
                         sockaddr_storage *out, socklen_t *out_len) except -1
cdef object make_address(const sockaddr *sa, socklen_t length)

cdef class AddressCache:
    cdef object dest_key
    cdef sockaddr_storage dest
    cdef socklen_t dest_len
    cdef object src_value
    cdef sockaddr_storage src
    cdef socklen_t src_len

    cdef int destination(self, int family, object addr,
                         sockaddr_storage *out, socklen_t *length) except -1
    cdef object source(self, const sockaddr *sa, socklen_t length)


cdef AddressCache cache_of(object sock)
