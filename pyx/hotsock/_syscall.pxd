# The one helper through which every blocking socket call is made.
from libc.stdint cimport int64_t
from hotsock._pysocket cimport SockInfo

# A syscall wrapper: returns >= 0 on success, -1 with errno set on failure.
# It runs without the GIL and must not touch Python objects.
ctypedef ssize_t (*io_func)(int fd, void *ctx) noexcept nogil

cdef ssize_t sock_call(SockInfo *info, bint writing, io_func func, void *ctx) except -1
cdef int timeout_flags(int64_t timeout_ns, int flags) noexcept
# *flags* as the stdlib's "i" format takes them (an int, never a float).
cdef int flags_arg(object flags) except? -1
cdef int wait_ready(SockInfo *info, bint writing, int64_t deadline_ns,
                    int64_t first_ns) except -1
cdef int raise_errno(int err) except -1
cdef int raise_timeout() except -1
