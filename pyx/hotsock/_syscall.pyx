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

Unlike CPython, a socket with a timeout tries the syscall *before* polling:
its descriptor is already non-blocking, so the first attempt costs nothing
when data is waiting, and saves one poll() per call in a busy loop.  The
outcome is the same as polling first wherever the kernel answers a socket
that is not ready with EAGAIN.  Where it does not -- MSG_OOB (EINVAL, or
urgent data without POLLIN) and zero-length transfers (they succeed at
once) -- callers pass ``wait_first`` and the stdlib's order is kept.
"""
from cpython.exc cimport PyErr_CheckSignals, PyErr_SetFromErrno
from libc.errno cimport errno, EINTR, EAGAIN
from libc.stdint cimport int64_t

from includes.compat cimport hs_monotonic_ns
from includes.poll cimport pollfd, poll, POLLIN, POLLOUT

from socket import timeout as _timeout_error   # TimeoutError since 3.10


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
                       io_func func, void *ctx, bint wait_first=False) except -1:
    """Run ``func(fd, ctx)`` with the socket's blocking semantics."""
    cdef ssize_t res
    cdef int err
    cdef int64_t deadline = 0
    if wait_first and timeout_ns > 0:
        deadline = hs_monotonic_ns() + timeout_ns
        if not wait_ready(fd, writing, deadline):
            return raise_timeout()
    while True:
        with nogil:
            res = func(fd, ctx)
            err = errno
        if res >= 0:
            return res
        if err == EINTR:
            if PyErr_CheckSignals() < 0:
                return -1
            continue
        if timeout_ns > 0 and (err == EAGAIN):
            if deadline == 0:
                deadline = hs_monotonic_ns() + timeout_ns
            if not wait_ready(fd, writing, deadline):
                return raise_timeout()
            continue
        return raise_errno(err)
