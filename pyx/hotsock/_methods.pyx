"""The compiled I/O methods of ``hotsock.socket``.

Each method keeps the stdlib method's semantics exactly (contract 4 in
docs/ARCHITECTURE.md).  They are C functions with CPython's METH_FASTCALL convention,
installed on the class as method descriptors (like the stdlib's own
methods), so a call costs no argument tuple or keyword dict, and the
descriptor guarantees that ``self`` is a ``hotsock.socket``.

The fast path takes the ordinary call shapes -- plain ints, contiguous
buffers, IPv4/IPv6 numeric addresses -- and makes the syscall through
``_syscall.sock_call``.  Every other shape (keyword misuse, odd types, bad
values, host names, other address families) is handed to the stdlib method
itself, so arguments are accepted, converted and refused exactly as the
stdlib does, messages included.
"""
from cpython.buffer cimport (
    PyBuffer_Release, PyBuffer_IsContiguous, PyBUF_SIMPLE, PyBUF_WRITABLE)
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING
from cpython.exc cimport PyErr_Clear
from cpython.mem cimport PyMem_Malloc, PyMem_Free
from cpython.object cimport PyObject, PyTypeObject, PyObject_TypeCheck
from cpython.ref cimport Py_INCREF, Py_XDECREF
from cpython.tuple cimport PyTuple_GET_SIZE, PyTuple_GET_ITEM
from libc.string cimport memcpy, memset

from includes.socket cimport sockaddr, sockaddr_storage, socklen_t, AF_INET, AF_INET6, MSG_TRUNC
# The C calls are renamed: recv, recvfrom, ... are the methods defined here.
from includes.socket cimport (
    recv as c_recv, recvfrom as c_recvfrom, send as c_send, sendto as c_sendto)
from hotsock._address cimport AddressCache, cache_of
from hotsock._pysocket cimport SockInfo, fast_sock_info
from hotsock._syscall cimport sock_call, timeout_flags

import _socket

cdef extern from "Python.h":
    object PyObject_Vectorcall(object callable, PyObject **args, size_t nargsf,
                               PyObject *kwnames)

cdef extern from "Python.h":
    # Without Cython's automatic raise: a refusal here means "let the stdlib
    # method say what is wrong", not an error of ours.
    int try_get_buffer "PyObject_GetBuffer" (object obj, Py_buffer *view, int flags)

    ctypedef struct PyMethodDef:
        pass
    object PyDescr_NewMethod(PyTypeObject *type, PyMethodDef *method)

    ctypedef struct PyMemberDef:
        Py_ssize_t offset
    ctypedef struct PyMemberDescrObject:
        PyMemberDef *d_member

cdef extern from *:
    """
    static void hs_fastcall_def(PyMethodDef *def, const char *name,
                                void *func, const char *doc)
    {
        def->ml_name = name;
        def->ml_meth = (PyCFunction)(void (*)(void))func;
        def->ml_flags = METH_FASTCALL | METH_KEYWORDS;
        def->ml_doc = doc;
    }
    """
    void hs_fastcall_def(PyMethodDef *d, const char *name, void *func, const char *doc)

# Datagrams up to this size are received on the stack and copied into an
# exact-size bytes object; larger reads allocate the result up front, as the
# stdlib does.  Kept small so that threads with small stacks are safe.
cdef enum:
    STACK_RECV = 8192

cdef object _std_recv = _socket.socket.recv
cdef object _std_recv_into = _socket.socket.recv_into
cdef object _std_recvfrom = _socket.socket.recvfrom
cdef object _std_recvfrom_into = _socket.socket.recvfrom_into
cdef object _std_send = _socket.socket.send
cdef object _std_sendto = _socket.socket.sendto


# --- argument handling ----------------------------------------------------------

cdef object _delegate(object method, object sock, PyObject **args, Py_ssize_t nargs,
                      PyObject *kwnames):
    """Hand an unusual call to the stdlib method: it converts or refuses it.

    Called the way ``sock.recv(...)`` reaches it -- a vectorcall of the
    method descriptor with ``sock`` first -- so that even argument errors
    are worded as the stdlib words them.
    """
    cdef Py_ssize_t n_kw = PyTuple_GET_SIZE(<object>kwnames) if kwnames != NULL else 0
    cdef Py_ssize_t total = 1 + nargs + n_kw
    cdef PyObject **stack = <PyObject **>PyMem_Malloc(total * sizeof(PyObject *))
    if stack == NULL:
        raise MemoryError()
    try:
        stack[0] = <PyObject *>sock
        memcpy(&stack[1], args, (nargs + n_kw) * sizeof(PyObject *))
        return PyObject_Vectorcall(method, stack, <size_t>(1 + nargs), kwnames)
    finally:
        PyMem_Free(stack)


cdef bint _parse(PyObject **args, Py_ssize_t nargs, PyObject *kwnames, tuple names,
                 Py_ssize_t n_params, Py_ssize_t n_required, PyObject **out) noexcept:
    """Spread a vectorcall's arguments over *out* (NULL where not given).

    *names* are the parameters that may be given by keyword (None: none
    may).  False when the call is not of an ordinary shape: the stdlib then
    decides what it means.
    """
    cdef Py_ssize_t i, j, n_kw
    cdef PyObject *key
    if nargs > n_params:
        return False
    for i in range(n_params):
        out[i] = args[i] if i < nargs else NULL
    if kwnames != NULL:
        n_kw = PyTuple_GET_SIZE(<object>kwnames)
        if n_kw and names is None:
            return False
        for j in range(n_kw):
            key = PyTuple_GET_ITEM(<object>kwnames, j)
            for i in range(n_params):
                if <object>key == <object>PyTuple_GET_ITEM(names, i):
                    break
            else:
                return False
            if out[i] != NULL:
                return False
            out[i] = args[nargs + j]
    for i in range(n_required):
        if out[i] == NULL:
            return False
    return True


# Ints and int subclasses (IntFlag constants such as socket.MSG_TRUNC, bool)
# convert by their value, as the stdlib's "n" and "i" formats convert them.

cdef inline bint _small_int(PyObject *o, Py_ssize_t *out) noexcept:
    """True if *o* is an int that fits a Py_ssize_t and is >= 0."""
    cdef Py_ssize_t value
    if o == NULL or not isinstance(<object>o, int):
        return False
    try:
        value = <object>o
    except OverflowError:
        return False
    if value < 0:
        return False
    out[0] = value
    return True


cdef inline bint _flag_int(PyObject *o, int *out) noexcept:
    """True if *o* is absent (0) or an int that fits a C int (the stdlib's "i")."""
    if o == NULL:
        out[0] = 0
        return True
    if not isinstance(<object>o, int):
        return False
    try:
        out[0] = <object>o
    except OverflowError:
        return False
    return True


cdef inline bint _inet(int family) noexcept:
    return family == AF_INET or family == AF_INET6


# Offset of the ``_hotsock_addresses`` slot in hotsock.socket instances, and
# that class.  The method descriptors pass only instances of it as ``self``;
# the slot is still read only after checking (a cheap test, and no layout is
# ever assumed for another object), and what it holds is type-checked.
cdef Py_ssize_t _cache_offset = -1
cdef PyTypeObject *_cache_class = NULL
cdef object _cache_class_ref = None     # keeps the class alive


cdef AddressCache _cache(object sock):
    cdef PyObject **slot
    cdef PyObject *old
    if _cache_offset < 0 or not PyObject_TypeCheck(sock, _cache_class):
        return cache_of(sock)
    slot = <PyObject **>((<char *><PyObject *>sock) + _cache_offset)
    if slot[0] != NULL and type(<object>slot[0]) is AddressCache:
        return <AddressCache>slot[0]
    cache = AddressCache()
    Py_INCREF(cache)
    old = slot[0]
    slot[0] = <PyObject *>cache
    Py_XDECREF(old)         # after the store: a __del__ then sees the new cache
    return cache


# --- the syscalls, without the GIL ------------------------------------------

cdef struct IoCtx:
    char *buf
    size_t length
    int flags
    const sockaddr *dest
    socklen_t dest_len
    sockaddr_storage addr
    socklen_t addr_len


cdef ssize_t _do_recv(int fd, void *p) noexcept nogil:
    cdef IoCtx *c = <IoCtx *>p
    return c_recv(fd, c.buf, c.length, c.flags)


cdef ssize_t _do_recvfrom(int fd, void *p) noexcept nogil:
    cdef IoCtx *c = <IoCtx *>p
    c.addr_len = sizeof(c.addr)
    return c_recvfrom(fd, c.buf, c.length, c.flags, <sockaddr *>&c.addr, &c.addr_len)


cdef ssize_t _do_send(int fd, void *p) noexcept nogil:
    cdef IoCtx *c = <IoCtx *>p
    return c_send(fd, c.buf, c.length, c.flags)


cdef ssize_t _do_sendto(int fd, void *p) noexcept nogil:
    cdef IoCtx *c = <IoCtx *>p
    return c_sendto(fd, c.buf, c.length, c.flags, c.dest, c.dest_len)


# --- shared receive and send paths ---------------------------------------------

cdef object _recv_bytes(object sock, SockInfo *info, Py_ssize_t bufsize,
                        int flags, bint want_address):
    """recv()/recvfrom() into a new bytes object of the received size."""
    cdef char stack_buf[STACK_RECV]
    cdef IoCtx ctx
    cdef ssize_t n
    cdef object result
    if bufsize == 0 and not want_address:
        return b""          # as CPython's sock_recv_guts: no syscall for 0 bytes
    ctx.flags = timeout_flags(info.timeout_ns, flags)
    ctx.addr_len = 0
    if bufsize <= STACK_RECV:
        if flags & MSG_TRUNC:
            # TCP discards the data without writing the buffer: never hand
            # out what the stack held before.
            memset(stack_buf, 0, bufsize)
        ctx.buf = stack_buf
        ctx.length = <size_t>bufsize
        n = sock_call(info, False,
                      _do_recvfrom if want_address else _do_recv, &ctx)
        if n <= bufsize:
            result = PyBytes_FromStringAndSize(stack_buf, n)
        else:
            # MSG_TRUNC asked for the real length: the stdlib returns that
            # many bytes; the part that was never received is zero here.
            result = PyBytes_FromStringAndSize(NULL, n)
            memset(PyBytes_AS_STRING(result), 0, n)
            memcpy(PyBytes_AS_STRING(result), stack_buf, bufsize)
    else:
        result = PyBytes_FromStringAndSize(NULL, bufsize)
        if flags & MSG_TRUNC:
            memset(PyBytes_AS_STRING(result), 0, bufsize)
        ctx.buf = PyBytes_AS_STRING(result)
        ctx.length = <size_t>bufsize
        n = sock_call(info, False,
                      _do_recvfrom if want_address else _do_recv, &ctx)
        if n != bufsize:
            if n < bufsize:
                result = PyBytes_FromStringAndSize(ctx.buf, n)
            else:
                grown = PyBytes_FromStringAndSize(NULL, n)
                memset(PyBytes_AS_STRING(grown), 0, n)
                memcpy(PyBytes_AS_STRING(grown), ctx.buf, bufsize)
                result = grown
    if not want_address:
        return result
    return (result, _cache(sock).source(<sockaddr *>&ctx.addr, ctx.addr_len))


cdef object _send(SockInfo *info, object data, int flags,
                  const sockaddr *dest, socklen_t dest_len):
    """Send *data*; None if it is not a contiguous bytes-like object."""
    cdef Py_buffer view
    cdef IoCtx ctx
    cdef ssize_t n
    if try_get_buffer(data, &view, PyBUF_SIMPLE) < 0:
        PyErr_Clear()
        return None
    try:
        ctx.buf = <char *>view.buf
        ctx.length = <size_t>view.len
        ctx.flags = timeout_flags(info.timeout_ns, flags)
        ctx.dest = dest
        ctx.dest_len = dest_len
        n = sock_call(info, True,
                      _do_send if dest == NULL else _do_sendto, &ctx)
    finally:
        PyBuffer_Release(&view)
    return n


# --- the methods ------------------------------------------------------------------

cdef tuple _INTO_NAMES = ("buffer", "nbytes", "flags")


cdef object m_recv(object self, PyObject **args, Py_ssize_t nargs, PyObject *kwnames):
    cdef PyObject *a[2]
    cdef SockInfo info
    cdef Py_ssize_t size
    cdef int flags
    if (not _parse(args, nargs, kwnames, None, 2, 1, a) or not _small_int(a[0], &size)
            or not _flag_int(a[1], &flags) or not fast_sock_info(self, &info)):
        return _delegate(_std_recv, self, args, nargs, kwnames)
    return _recv_bytes(self, &info, size, flags, False)


cdef object m_recvfrom(object self, PyObject **args, Py_ssize_t nargs, PyObject *kwnames):
    cdef PyObject *a[2]
    cdef SockInfo info
    cdef Py_ssize_t size
    cdef int flags
    if (not _parse(args, nargs, kwnames, None, 2, 1, a) or not _small_int(a[0], &size)
            or not _flag_int(a[1], &flags) or not fast_sock_info(self, &info)
            or not _inet(info.family)):
        return _delegate(_std_recvfrom, self, args, nargs, kwnames)
    return _recv_bytes(self, &info, size, flags, True)


cdef object _recv_into(object sock, object method, PyObject **args, Py_ssize_t nargs,
                       PyObject *kwnames, bint want_address):
    cdef PyObject *a[3]
    cdef SockInfo info
    cdef Py_buffer view
    cdef Py_ssize_t nbytes = 0
    cdef int flags
    cdef IoCtx ctx
    cdef ssize_t n
    if (not _parse(args, nargs, kwnames, _INTO_NAMES, 3, 1, a)
            or (a[1] != NULL and not _small_int(a[1], &nbytes))
            or not _flag_int(a[2], &flags) or not fast_sock_info(sock, &info)
            or (want_address and not _inet(info.family))):
        return _delegate(method, sock, args, nargs, kwnames)
    if try_get_buffer(<object>a[0], &view, PyBUF_WRITABLE) < 0:
        PyErr_Clear()
        return _delegate(method, sock, args, nargs, kwnames)
    if not PyBuffer_IsContiguous(&view, b'C') or nbytes > view.len:
        PyBuffer_Release(&view)
        return _delegate(method, sock, args, nargs, kwnames)
    if not want_address and (nbytes if nbytes else view.len) == 0:
        PyBuffer_Release(&view)
        return 0            # as CPython's sock_recv_guts: no syscall for 0 bytes
    try:
        ctx.buf = <char *>view.buf
        ctx.length = <size_t>(nbytes if nbytes else view.len)
        ctx.flags = timeout_flags(info.timeout_ns, flags)
        ctx.addr_len = 0
        n = sock_call(&info, False,
                      _do_recvfrom if want_address else _do_recv, &ctx)
    finally:
        PyBuffer_Release(&view)
    if not want_address:
        return n
    return (n, _cache(sock).source(<sockaddr *>&ctx.addr, ctx.addr_len))


cdef object m_recv_into(object self, PyObject **args, Py_ssize_t nargs, PyObject *kwnames):
    return _recv_into(self, _std_recv_into, args, nargs, kwnames, False)


cdef object m_recvfrom_into(object self, PyObject **args, Py_ssize_t nargs,
                            PyObject *kwnames):
    return _recv_into(self, _std_recvfrom_into, args, nargs, kwnames, True)


cdef object m_send(object self, PyObject **args, Py_ssize_t nargs, PyObject *kwnames):
    cdef PyObject *a[2]
    cdef SockInfo info
    cdef int flags
    if (not _parse(args, nargs, kwnames, None, 2, 1, a) or not _flag_int(a[1], &flags)
            or not fast_sock_info(self, &info)):
        return _delegate(_std_send, self, args, nargs, kwnames)
    result = _send(&info, <object>a[0], flags, NULL, 0)
    if result is None:
        return _delegate(_std_send, self, args, nargs, kwnames)
    return result


cdef object m_sendto(object self, PyObject **args, Py_ssize_t nargs, PyObject *kwnames):
    cdef PyObject *a[3]
    cdef SockInfo info
    cdef int flags = 0
    cdef sockaddr_storage dest
    cdef socklen_t dest_len = 0
    if not _parse(args, nargs, kwnames, None, 3, 2, a):
        return _delegate(_std_sendto, self, args, nargs, kwnames)
    if a[2] == NULL:
        address = <object>a[1]              # sendto(data, address)
    elif _flag_int(a[1], &flags):
        address = <object>a[2]              # sendto(data, flags, address)
    else:
        return _delegate(_std_sendto, self, args, nargs, kwnames)
    if (not fast_sock_info(self, &info) or not _inet(info.family)
            or not _cache(self).destination(info.family, address, &dest, &dest_len)):
        return _delegate(_std_sendto, self, args, nargs, kwnames)
    result = _send(&info, <object>a[0], flags, <sockaddr *>&dest, dest_len)
    if result is None:
        return _delegate(_std_sendto, self, args, nargs, kwnames)
    return result


# --- installing them on the class -----------------------------------------------

cdef PyMethodDef _defs[6]


def install(cls):
    """Install the compiled methods on *cls* (``hotsock.socket``)."""
    global _cache_offset, _cache_class, _cache_class_ref
    slot = cls.__dict__["_hotsock_addresses"]
    if type(slot).__name__ != "member_descriptor":
        raise TypeError("hotsock.socket must keep _hotsock_addresses in __slots__")
    _cache_class_ref = cls
    _cache_class = <PyTypeObject *>cls
    _cache_offset = (<PyMemberDescrObject *>slot).d_member.offset
    hs_fastcall_def(&_defs[0], "recv", <void *>m_recv,
        "recv($self, bufsize, flags=0, /)\n--\n\n"
        "recv(bufsize[, flags]) -> data\n\n"
        "Same as socket.socket.recv(), compiled.")
    hs_fastcall_def(&_defs[1], "recvfrom", <void *>m_recvfrom,
        "recvfrom($self, bufsize, flags=0, /)\n--\n\n"
        "recvfrom(bufsize[, flags]) -> (data, address info)\n\n"
        "Same as socket.socket.recvfrom(), compiled.  Datagrams from the peer\n"
        "of the previous call return the same (immutable) address tuple.")
    hs_fastcall_def(&_defs[2], "recv_into", <void *>m_recv_into,
        "recv_into($self, /, buffer, nbytes=0, flags=0)\n--\n\n"
        "recv_into(buffer, [nbytes[, flags]]) -> nbytes_read\n\n"
        "Same as socket.socket.recv_into(), compiled.")
    hs_fastcall_def(&_defs[3], "recvfrom_into", <void *>m_recvfrom_into,
        "recvfrom_into($self, /, buffer, nbytes=0, flags=0)\n--\n\n"
        "recvfrom_into(buffer[, nbytes[, flags]]) -> (nbytes, address info)\n\n"
        "Same as socket.socket.recvfrom_into(), compiled.")
    hs_fastcall_def(&_defs[4], "send", <void *>m_send,
        "send($self, data, flags=0, /)\n--\n\n"
        "send(data[, flags]) -> count\n\n"
        "Same as socket.socket.send(), compiled.")
    hs_fastcall_def(&_defs[5], "sendto", <void *>m_sendto,
        "sendto(data[, flags], address) -> count\n\n"
        "Same as socket.socket.sendto(), compiled.  The converted address is\n"
        "reused while the same destination is given again.")
    for i in range(6):
        method = PyDescr_NewMethod(<PyTypeObject *>cls, &_defs[i])
        setattr(cls, method.__name__, method)
