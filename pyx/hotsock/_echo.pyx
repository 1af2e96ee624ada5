"""The compiled core of ``hotsock.echo``: every datagram back to its sender.

Each round is one ``recvmmsg`` into a :class:`RecvBatch` and one
``sendmmsg`` whose messages point at the same slots -- payload and sender
address -- so nothing is copied and nothing is allocated per datagram; the
GIL is released between checks (see ``_loop``).
"""
from cpython.mem cimport PyMem_Calloc, PyMem_Free

from includes.compat cimport hs_monotonic_ns, mmsghdr, MSG_CONFIRM
from includes.socket cimport iovec
from hotsock._batch cimport BatchSlots, RecvBatch
from hotsock._loop cimport Run, receive_ready, send_all
from hotsock._syscall cimport raise_errno


def echo_loop(int fd, RecvBatch batch not None, Run run not None, bint confirm=False):
    """Echo on socket *fd* until *run* says stop (internal: see ``hotsock.echo``)."""
    cdef BatchSlots *s = &batch.slots
    cdef mmsghdr *out = <mmsghdr *>PyMem_Calloc(batch.count, sizeof(mmsghdr))
    cdef iovec *iovs = <iovec *>PyMem_Calloc(batch.count, sizeof(iovec))
    cdef Py_ssize_t n = 0, i, length
    cdef int err = 0
    cdef int send_flags = MSG_CONFIRM if confirm else 0
    if out == NULL or iovs == NULL:
        PyMem_Free(out)
        PyMem_Free(iovs)
        raise MemoryError()
    for i in range(batch.count):
        out[i].msg_hdr.msg_name = &s.names[i]
        out[i].msg_hdr.msg_iov = &iovs[i]
        out[i].msg_hdr.msg_iovlen = 1
        iovs[i].iov_base = s.arena + i * s.size
    batch.acquire()
    try:
        while True:
            with nogil:
                while True:
                    n = receive_ready(run, s, fd, 0, &err)
                    if n <= 0:
                        break
                    for i in range(n):
                        length = s.lengths[i]
                        iovs[i].iov_len = <size_t>(length if length <= s.size else s.size)
                        out[i].msg_hdr.msg_namelen = s.msgs[i].msg_hdr.msg_namelen
                    if send_all(run, out, n, fd, send_flags, &err) < 0:
                        n = -1
                        break
                    if hs_monotonic_ns() >= run.next_check_ns or run.remaining() == 0:
                        break
            if n < 0:
                raise_errno(err)
            if run.check():
                break
    finally:
        batch.release(0)
        PyMem_Free(out)
        PyMem_Free(iovs)
