"""The syscall helper (DESIGN.md, contracts 1 and 2).

Every socket call that can block goes through :func:`sock_call`, which
mirrors CPython's ``sock_call_ex`` (Modules/socketmodule.c):

* the GIL is released only around the syscall itself;
* EINTR runs the Python signal handlers and retries unless one raised
  (PEP 475);
* a socket timeout is honoured with poll() against a monotonic deadline that
  is recomputed on every retry, ending in ``TimeoutError("timed out")``;
* any other failure becomes ``OSError(errno, strerror)``, so PEP 3151 picks
  the subclass (``BlockingIOError``, ``ConnectionRefusedError``, ...).

With a timeout, readiness is awaited *before* each attempt, as CPython
does, so every outcome (a timeout where the kernel would refuse at once, a
pending error reported through POLLERR) is the stdlib's.  Callers also pass
MSG_DONTWAIT then (see ``timeout_flags``): the descriptor's O_NONBLOCK flag
belongs to the open file description, which another handle (``dup()``, a
forked worker) may have switched back to blocking.
"""
from cpython.exc cimport PyErr_CheckSignals, PyErr_SetFromErrno
from libc.errno cimport errno, EINTR, EAGAIN
from libc.stdint cimport int64_t

from includes.compat cimport hs_monotonic_ns
from includes.socket cimport MSG_DONTWAIT
from includes.poll cimport pollfd, poll, POLLIN, POLLOUT

from socket import timeout as _timeout_error   # TimeoutError since 3.10


cdef int timeout_flags(int64_t timeout_ns, int flags) noexcept:
    """*flags* for a syscall on a socket with this timeout (MSG_DONTWAIT if any)."""
    return flags | MSG_DONTWAIT if timeout_ns > 0 else flags


cdef int raise_errno(int err) except -1:
    errno = err
    PyErr_SetFromErrno(OSError)
    return -1


cdef int raise_timeout() except -1:
    raise _timeout_error("timed out")


cdef int wait_ready(int fd, bint writing, int64_t deadline_ns) except -1:
    """Wait until *fd* is ready or *deadline_ns* passes: 1 ready, 0 timed out."""
    cdef pollfd pfd
    cdef int res, err, timeout_ms
    cdef int64_t remaining
    if fd < 0:
        return 1        # a closed socket: let the syscall report EBADF, as CPython does
    pfd.fd = fd
    pfd.events = POLLOUT if writing else POLLIN
    while True:
        remaining = deadline_ns - hs_monotonic_ns()
        if remaining <= 0:
            return 0
        # Round up, as CPython does, so that we never wake before the deadline.
        timeout_ms = <int>min((remaining + 999999) // 1000000, 0x7fffffff)
        with nogil:
            res = poll(&pfd, 1, timeout_ms)
            err = errno
        if res > 0:
            return 1
        if res == 0:
            continue        # woke early by rounding: the loop re-checks the deadline
        if err != EINTR:
            return raise_errno(err)
        if PyErr_CheckSignals() < 0:
            return -1


cdef ssize_t sock_call(int fd, int64_t timeout_ns, bint writing,
                       io_func func, void *ctx) except -1:
    """Run ``func(fd, ctx)`` with the socket's blocking semantics."""
    cdef ssize_t res
    cdef int err
    cdef int64_t deadline = 0
    if timeout_ns > 0:
        deadline = hs_monotonic_ns() + timeout_ns
    while True:
        if timeout_ns > 0 and not wait_ready(fd, writing, deadline):
            return raise_timeout()
        with nogil:
            res = func(fd, ctx)
            err = errno
        if res >= 0:
            return res
        if err == EINTR:
            if PyErr_CheckSignals() < 0:
                return -1
            continue
        if timeout_ns > 0 and err == EAGAIN:
            continue        # ready, then not: another reader won the race
        return raise_errno(err)
