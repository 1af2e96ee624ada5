"""The syscall helper (contracts 1 and 2 in docs/ARCHITECTURE.md).

Every socket call that can block goes through :func:`sock_call`, which
mirrors CPython's ``sock_call_ex`` (Modules/socketmodule.c):

* the GIL is released only around the syscall itself;
* EINTR runs the Python signal handlers and retries unless one raised
  (PEP 475);
* a socket timeout is honoured with poll() against a monotonic deadline that
  is recomputed on every retry, ending in ``TimeoutError("timed out")``; the
  first poll waits the whole timeout, so one attempt is always made;
* the descriptor is read again from the socket object before every poll and
  attempt, so a socket closed by another thread fails with EBADF;
* any other failure becomes ``OSError(errno, strerror)``, so PEP 3151 picks
  the subclass (``BlockingIOError``, ``ConnectionRefusedError``, ...).

With a timeout, readiness is awaited *before* each attempt, as CPython
does, so every outcome (a timeout where the kernel would refuse at once, a
pending error reported through POLLERR) is the stdlib's.  Callers also pass
MSG_DONTWAIT then (see ``timeout_flags``): the descriptor's O_NONBLOCK flag
belongs to the open file description, which another handle (``dup()``, a
forked worker) may have switched back to blocking.
"""
from cpython.exc cimport PyErr_CheckSignals
from libc.errno cimport errno, EBADF, EINTR, EAGAIN
from operator import index as _index
from os import strerror as _strerror
from libc.limits cimport INT_MAX, INT_MIN
from libc.stdint cimport int64_t

from includes.compat cimport hs_monotonic_ns
from includes.socket cimport MSG_DONTWAIT
from includes.poll cimport pollfd, poll, POLLIN, POLLOUT
from hotsock._pysocket cimport SockInfo, current_fd, refresh_fd

from socket import timeout as _timeout_error   # TimeoutError since 3.10


cdef int timeout_flags(int64_t timeout_ns, int flags) noexcept:
    """*flags* for a syscall on a socket with this timeout (MSG_DONTWAIT if any)."""
    return flags | MSG_DONTWAIT if timeout_ns > 0 else flags


cdef extern from "Python.h":
    long PyLong_AsLong(object o) except? -1


cdef int flags_arg(object flags) except? -1:
    """*flags* as the stdlib's "i" format takes them: an int (or an object
    with ``__index__``), never a float; the stdlib's messages."""
    cdef long value = PyLong_AsLong(_index(flags))
    if value > INT_MAX:
        raise OverflowError("signed integer is greater than maximum")
    if value < INT_MIN:
        raise OverflowError("signed integer is less than minimum")
    return <int>value


cdef int raise_errno(int err) except -1:
    # Built from *err* itself: assigning the C errno here would only make a
    # Cython local, and the exception would report whatever errno happened to
    # hold (EAGAIN from a loop's last poll instead of EBADF).  OSError's
    # constructor picks the PEP 3151 subclass, as PyErr_SetFromErrno does.
    raise OSError(err, _strerror(err))


cdef int raise_timeout() except -1:
    raise _timeout_error("timed out")


cdef int wait_ready(SockInfo *info, bint writing, int64_t deadline_ns,
                    int64_t first_ns) except -1:
    """Wait until the socket is ready or *deadline_ns* passes: 1 ready, 0 timed out.

    The first poll waits *first_ns* (the whole timeout) whatever the clock
    says by then, as CPython's does: a datagram already queued is taken even
    when the deadline passed before the poll (a timeout of 1 ns, a thread
    descheduled under load).  The descriptor is read again for every poll.
    """
    cdef pollfd pfd
    cdef int res, err, timeout_ms
    cdef int64_t remaining
    pfd.events = POLLOUT if writing else POLLIN
    while True:
        refresh_fd(info)
        if info.fd < 0:
            return 1        # a closed socket: let the syscall report EBADF, as CPython does
        if first_ns > 0:
            remaining = first_ns
            first_ns = 0
        else:
            remaining = deadline_ns - hs_monotonic_ns()
            if remaining < 0:
                return 0
        # Round up, as CPython does, so that we never wake before the deadline.
        timeout_ms = <int>min((remaining + 999999) // 1000000, 0x7fffffff)
        with nogil:
            pfd.fd = current_fd(info)
            if pfd.fd < 0:
                res = 1     # closed meanwhile: the syscall reports EBADF
            else:
                res = poll(&pfd, 1, timeout_ms)
            err = errno
        if res > 0:
            return 1
        if res == 0:
            continue        # the deadline passed (or a wait past poll's limit goes on)
        if err != EINTR:
            return raise_errno(err)
        if PyErr_CheckSignals() < 0:
            return -1


cdef ssize_t sock_call(SockInfo *info, bint writing, io_func func, void *ctx) except -1:
    """Run ``func(fd, ctx)`` with the socket's blocking semantics.

    ``info.fd`` is read again from the socket object before each attempt
    (see ``refresh_fd``): after another thread closed the socket, a retry
    fails with EBADF, as CPython's does, and never reaches the socket that
    reused the number.
    """
    cdef ssize_t res
    cdef int err, fd
    cdef int64_t timeout_ns = info.timeout_ns
    cdef int64_t deadline = 0, first = 0
    if timeout_ns > 0:
        deadline = hs_monotonic_ns() + timeout_ns
        first = timeout_ns
    while True:
        if timeout_ns > 0:
            if not wait_ready(info, writing, deadline, first):
                return raise_timeout()
            first = 0
        refresh_fd(info)
        with nogil:
            # The descriptor is read again here, without the GIL, as CPython
            # reads sock_fd only once it has released it: a close by the thread
            # that took the GIL meanwhile must end in EBADF, never reach the
            # socket that was given the number since.
            fd = current_fd(info)
            if fd < 0:
                res = -1
                err = EBADF
            else:
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
