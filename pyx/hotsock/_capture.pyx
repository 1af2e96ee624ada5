"""The compiled core of ``hotsock.capture``: receive, write records, repeat.

:class:`CaptureFile` receives batches with ``recvmmsg`` and turns each
datagram into one pcap/pcapng record (``pyx/core/pcap.c``) without the GIL
and without any Python object per datagram; the records go to the file in
buffered writes of whole records (see ``hs_pcap_flush`` for what a kill or
a full disk leaves).  :func:`capture_batches` hands each batch
to a Python callback instead.  The Python side (``hotsock/_hotloops.py``)
opens the file, sets the socket options and installs the signal handlers.
"""
cimport cython
from libc.errno cimport errno
from libc.stdint cimport int64_t, uint32_t
from libc.string cimport memcpy, memset

from includes.compat cimport hs_realtime_ns, hs_monotonic_ns
from includes.core cimport (
    HS_PCAP_MIN_SNAPLEN, HS_PCAP_MAX_SNAPLEN, hs_capture_format_name, hs_endpoint,
    hs_endpoint_from, hs_pcap_writer, hs_pcap_open, hs_pcap_write, hs_pcap_stats, hs_pcap_flush,
    hs_pcap_discard, hs_pcap_free, hs_rx_meta)
from includes.socket cimport MSG_CTRUNC, sockaddr, sockaddr_storage, socklen_t, getsockname
from hotsock._recv cimport (
    BatchSlots, RecvBatch, entry_data, entry_flags, entry_length, entry_slot)
from hotsock._driver cimport Run, drive_receiving, receive_ready
from hotsock._syscall cimport raise_errno


cdef dict _formats():
    # The formats' one list is C's (HS_CAPTURE_FORMATS in pyx/core/pcap.h).
    cdef int number = 0
    formats = {}
    while hs_capture_format_name(number) != NULL:
        formats[hs_capture_format_name(number).decode("ascii")] = number
        number += 1
    return formats


FORMATS = _formats()    # name -> the format's number for CaptureFile
#: The bytes a record may keep, headers included (the writer's limits).
MIN_SNAPLEN = HS_PCAP_MIN_SNAPLEN
MAX_SNAPLEN = HS_PCAP_MAX_SNAPLEN


cdef int _local_endpoint(int fd, hs_endpoint *out) except -1:
    cdef sockaddr_storage sa
    cdef socklen_t length = sizeof(sa)
    memset(&sa, 0, sizeof(sa))
    if getsockname(fd, <sockaddr *>&sa, &length) < 0:
        raise_errno(errno)
    hs_endpoint_from(out, <sockaddr *>&sa)
    return 0


cdef struct Capture:
    hs_pcap_writer *writer
    BatchSlots *s
    int fd
    hs_endpoint local           # the socket's own address: the destination by default


# The run is never None here (the driver holds it); Cython's debug-build
# None checks would need the GIL.
@cython.nonecheck(False)
cdef Py_ssize_t _capture_step(Run run, void *ctx, int *err) noexcept nogil:
    """Receive a batch and hand one record per datagram to the writer."""
    cdef Capture *cap = <Capture *>ctx
    cdef BatchSlots *s = cap.s
    cdef hs_endpoint src, dst
    cdef hs_rx_meta *meta
    cdef Py_ssize_t i, slot
    cdef int64_t stamp = 0
    cdef Py_ssize_t n = receive_ready(run, s, cap.fd, 0, err)
    if n <= 0:
        return n
    for i in range(n):
        if s.gro and entry_flags(s, i) & MSG_CTRUNC:
            continue    # segment size unknown: counted, not guessed
        slot = entry_slot(s, i)
        meta = &s.meta[slot]
        hs_endpoint_from(&src, <sockaddr *>&s.names[slot])
        dst = cap.local
        if meta.dst_family:
            dst.family = meta.dst_family
            memcpy(dst.addr, meta.dst_addr, 16)
        if meta.timestamp_ns == 0 and stamp == 0:
            stamp = hs_realtime_ns()     # no kernel timestamp: now
        if hs_pcap_write(cap.writer, meta.timestamp_ns if meta.timestamp_ns else stamp,
                         &src, &dst, <unsigned char *>entry_data(s, i),
                         <size_t>entry_length(s, i), s.lengths[i]) < 0:
            err[0] = cap.writer.err
            return -1
    return n


# The run is never None here (the driver holds it); Cython's debug-build
# None checks would need the GIL.
@cython.nonecheck(False)
cdef Py_ssize_t _capture_flush(Run run, void *ctx, int *err) noexcept nogil:
    """The round's records to the file (whole records only); after a failed
    write nothing more is written."""
    cdef Capture *cap = <Capture *>ctx
    if cap.writer.err or hs_pcap_flush(cap.writer) < 0:
        err[0] = cap.writer.err
        return -1
    return 0


cdef class CaptureFile:
    """CaptureFile(fd, format, snaplen, bufsize)

    A capture file being written to descriptor *fd* (internal: see
    ``hotsock.capture``).  Nothing reaches the file until :meth:`run` or
    :meth:`close` flushes; every flush writes whole records only.
    """
    cdef hs_pcap_writer writer
    cdef bint opened
    cdef int64_t start_ns

    def __cinit__(self, int fd, int format, uint32_t snaplen, size_t bufsize):
        if hs_pcap_open(&self.writer, fd, format, snaplen, bufsize) < 0:
            raise_errno(errno)
        self.opened = True
        self.start_ns = hs_realtime_ns()

    def __init__(self, int fd, int format, uint32_t snaplen, size_t bufsize):
        pass            # everything is set up in __cinit__

    def __dealloc__(self):
        hs_pcap_free(&self.writer)

    @property
    def records(self):
        """Records handed to the writer so far."""
        return self.writer.records

    def run(self, int fd, RecvBatch batch not None, Run run not None):
        """Capture from socket *fd* until *run* says stop."""
        cdef Capture cap
        _local_endpoint(fd, &cap.local)
        cap.writer = &self.writer
        cap.s = &batch.slots
        cap.fd = fd
        drive_receiving(run, batch, fd, _capture_step, _capture_flush, &cap)

    def close(self, received, dropped):
        """Complete the file: an interface statistics block (pcapng) with
        *received* and *dropped*, then flush what is buffered.  After a failed
        write (a full disk) the records that could not be written are dropped
        first, so that the statistics block may still fit after the last
        whole record."""
        if not self.opened:
            return
        self.opened = False
        if self.writer.err:
            hs_pcap_discard(&self.writer)
        if hs_pcap_stats(&self.writer, hs_realtime_ns(), self.start_ns, received, dropped) < 0:
            raise_errno(self.writer.err)
        if hs_pcap_flush(&self.writer) < 0:
            raise_errno(self.writer.err)


def capture_batches(int fd, RecvBatch batch not None, Run run not None, callback):
    """Receive batches from socket *fd* and call ``callback(batch)`` with each,
    until *run* says stop (internal: see ``hotsock.capture``)."""
    cdef Py_ssize_t n = 0
    cdef int err = 0
    batch.enable_gro(fd)
    while True:
        batch.acquire()
        try:
            with nogil:
                n = receive_ready(run, &batch.slots, fd, 0, &err)
        finally:
            batch.release(n if n > 0 else 0)
        if n < 0:
            raise_errno(err)
        if n > 0:
            callback(batch)
            if run.remaining() != 0 and hs_monotonic_ns() < run.next_check_ns:
                continue
        if run.check():
            break
