"""Plain C loops that the benchmarks measure hotsock against.

The loops themselves live in ``reference/loops.c``; this module only calls
them with the GIL released.  Each function moves *total* datagrams of *size*
bytes and returns how many it moved (``OSError`` if none; ``ENOSYS`` for
the GSO/GRO loops where the system lacks UDP_SEGMENT/UDP_GRO).
"""

from includes.socket cimport sockaddr, sockaddr_storage, socklen_t
from hotsock._address cimport resolve_address
from hotsock._pysocket cimport SockInfo, get_sock_info
from hotsock._syscall cimport raise_errno

cdef extern from "reference/loops.h" nogil:
    long long hs_ref_recvfrom(int fd, long long total, size_t size)
    long long hs_ref_recvmmsg(int fd, long long total, int batch, size_t size)
    long long hs_ref_capture(int fd, int out_fd, long long total, int batch, size_t size)
    long long hs_ref_sendto(int fd, const sockaddr *to, socklen_t to_len,
                            long long total, size_t size)
    long long hs_ref_sendmmsg(int fd, const sockaddr *to, socklen_t to_len,
                              long long total, int batch, size_t size)
    long long hs_ref_echo(int fd, long long total, int batch, size_t size)
    long long hs_ref_gso_send(int fd, const sockaddr *to, socklen_t to_len,
                              long long total, int segments_per_send, size_t size)
    long long hs_ref_gro_recv(int fd, long long total, int buffers, size_t buffer_size)


cdef long long _checked(long long result) except -1:
    if result < 0:
        raise_errno(<int>-result)
    return result


def recvfrom_loop(sock, long long total, size_t size=2048):
    """A C recvfrom() loop receiving *total* datagrams."""
    cdef SockInfo info
    cdef long long n
    get_sock_info(sock, &info)
    with nogil:
        n = hs_ref_recvfrom(info.fd, total, size)
    return _checked(n)


def recvmmsg_loop(sock, long long total, int batch=64, size_t size=2048):
    """A C recvmmsg() loop receiving *total* datagrams, *batch* per call."""
    cdef SockInfo info
    cdef long long n
    get_sock_info(sock, &info)
    with nogil:
        n = hs_ref_recvmmsg(info.fd, total, batch, size)
    return _checked(n)


def capture_loop(sock, int out_fd, long long total, int batch=64, size_t size=65535):
    """A C capture: recvmmsg with SO_TIMESTAMPNS, each datagram written to
    descriptor *out_fd* as a pcap record (the writer hotsock.capture uses)."""
    cdef SockInfo info
    cdef long long n
    get_sock_info(sock, &info)
    with nogil:
        n = hs_ref_capture(info.fd, out_fd, total, batch, size)
    return _checked(n)


def sendto_loop(sock, address, long long total, size_t size=64):
    """A C sendto() loop sending *total* datagrams of zeros to *address*."""
    cdef SockInfo info
    cdef sockaddr_storage to
    cdef socklen_t to_len
    cdef long long n
    get_sock_info(sock, &info)
    resolve_address(info.family, address, "sendto_loop", &to, &to_len)
    with nogil:
        n = hs_ref_sendto(info.fd, <sockaddr *>&to, to_len, total, size)
    return _checked(n)


def sendmmsg_loop(sock, address, long long total, int batch=64, size_t size=64):
    """A C sendmmsg() loop sending *total* datagrams, *batch* per call."""
    cdef SockInfo info
    cdef sockaddr_storage to
    cdef socklen_t to_len
    cdef long long n
    get_sock_info(sock, &info)
    resolve_address(info.family, address, "sendmmsg_loop", &to, &to_len)
    with nogil:
        n = hs_ref_sendmmsg(info.fd, <sockaddr *>&to, to_len, total, batch, size)
    return _checked(n)


def echo_loop(sock, long long total, int batch=64, size_t size=2048):
    """A C echo server: recvmmsg() up to *batch*, then sendmmsg() of the same
    messages back to their senders, until *total* datagrams are echoed."""
    cdef SockInfo info
    cdef long long n
    get_sock_info(sock, &info)
    with nogil:
        n = hs_ref_echo(info.fd, total, batch, size)
    return _checked(n)


def gso_send_loop(sock, address, long long total, int segments_per_send=64, size_t size=64):
    """A C loop of segmented sends (UDP_SEGMENT) sending *total* datagrams of
    zeros to *address*: each message one contiguous buffer of
    *segments_per_send* datagrams, 16 messages per sendmmsg() call."""
    cdef SockInfo info
    cdef sockaddr_storage to
    cdef socklen_t to_len
    cdef long long n
    get_sock_info(sock, &info)
    resolve_address(info.family, address, "gso_send_loop", &to, &to_len)
    with nogil:
        n = hs_ref_gso_send(info.fd, <sockaddr *>&to, to_len, total, segments_per_send, size)
    return _checked(n)


def gro_recv_loop(sock, long long total, int buffers=64, size_t buffer_size=65536):
    """A C loop of coalesced receives: turns UDP_GRO on, then recvmmsg() into
    *buffers* buffers of *buffer_size* bytes, counting the datagrams in each
    by the UDP_GRO segment size, until *total* datagrams are received (may
    return more: the last buffers can hold more than were wanted)."""
    cdef SockInfo info
    cdef long long n
    get_sock_info(sock, &info)
    with nogil:
        n = hs_ref_gro_recv(info.fd, total, buffers, buffer_size)
    return _checked(n)
