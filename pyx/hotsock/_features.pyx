"""What this system offers hotsock, probed once, and the facts the rest reads.

* Capabilities: recvmmsg/sendmmsg, segmented sends (UDP_SEGMENT) and
  coalesced receives (UDP_GRO) are compiled in (``compat.h``) *and* accepted
  by the running kernel; ``HOTSOCK_NO_MMSG=1``, ``HOTSOCK_NO_GSO=1`` and
  ``HOTSOCK_NO_GRO=1`` switch them off (the fallbacks are tested that way).
* Constants the socket module does not name (``SO_TIMESTAMPNS``,
  ``IP_PKTINFO``, ``SO_RXQ_OVFL``, ``SO_MEMINFO``, ``UDP_GRO``): None where
  the system lacks them.
* The facts of the C core that Python code and the command's options and
  help read instead of restating: the batch and GSO/GRO limits, the size of
  blast's sequence header.
"""
import os

from libc.errno cimport errno, ENOSYS
from includes.compat cimport (
    hs_recvmmsg, hs_sendmmsg, HS_HAVE_MMSG, HS_MAX_BATCH, HS_SO_TIMESTAMPNS, HS_IP_PKTINFO,
    HS_SO_RXQ_OVFL, HS_SO_MEMINFO, SOL_UDP, HS_UDP_GRO, HS_UDP_SEGMENT, HS_GRO_MAX_SEGMENTS,
    HS_GSO_MAX_SEGMENTS, HS_GSO_MAX_BYTES)
from includes.core cimport HS_SEQ_HEADER
from includes.socket cimport setsockopt, socket, AF_INET, AF_INET6, SOCK_DGRAM
from posix.unistd cimport close

MAX_BATCH = HS_MAX_BATCH

# Options that make the kernel report per-datagram metadata (see RecvBatch),
# which the socket module does not name; None where the system lacks them.
SO_TIMESTAMPNS = HS_SO_TIMESTAMPNS if HS_SO_TIMESTAMPNS >= 0 else None
IP_PKTINFO = HS_IP_PKTINFO if HS_IP_PKTINFO >= 0 else None
SO_RXQ_OVFL = HS_SO_RXQ_OVFL if HS_SO_RXQ_OVFL >= 0 else None
# ... and the ones hotsock's loops use: the socket's memory counters (its
# drop counter among them), and receive coalescing (IPPROTO_UDP level).
SO_MEMINFO = HS_SO_MEMINFO if HS_SO_MEMINFO >= 0 else None
UDP_GRO = HS_UDP_GRO if HS_UDP_GRO >= 0 else None

#: The most segments one segmented send carries, and the most payload bytes.
GSO_MAX_SEGMENTS = HS_GSO_MAX_SEGMENTS
GSO_MAX_BYTES = HS_GSO_MAX_BYTES
#: The most datagrams one coalesced (GRO) buffer holds (Linux 6.11 and later).
GRO_MAX_SEGMENTS = HS_GRO_MAX_SEGMENTS
#: The size of blast's sequence header at the start of each payload.
SEQUENCE_HEADER = HS_SEQ_HEADER


def _switched_off(name):
    return os.environ.get(name, "") not in ("", "0")


cdef bint _probe_mmsg():
    """recvmmsg and sendmmsg exist here: compiled in, not refused by the kernel."""
    if not HS_HAVE_MMSG:
        return False
    # An invalid descriptor fails with EBADF where the syscall exists and
    # with ENOSYS where it does not (old kernels, some sandboxes).
    if hs_recvmmsg(-1, NULL, 0, 0) < 0 and errno == ENOSYS:
        return False
    if hs_sendmmsg(-1, NULL, 0, 0) < 0 and errno == ENOSYS:
        return False
    return True


cdef bint _probe_udp_option(int option, int value):
    """A fresh UDP socket takes this SOL_UDP option (UDP_SEGMENT, UDP_GRO)."""
    cdef int fd
    cdef bint ok
    if option < 0:
        return False
    fd = socket(AF_INET, SOCK_DGRAM, 0)
    if fd < 0:
        return False
    ok = setsockopt(fd, SOL_UDP, option, &value, sizeof(value)) == 0
    close(fd)
    return ok


cdef bint MMSG_AVAILABLE = _probe_mmsg()
cdef bint GSO_AVAILABLE = _probe_udp_option(HS_UDP_SEGMENT, 1400)
cdef bint GRO_AVAILABLE = _probe_udp_option(HS_UDP_GRO, 1)
cdef bint GSO_FORCED_OFF = _switched_off("HOTSOCK_NO_GSO")
cdef bint USE_GSO = GSO_AVAILABLE and not GSO_FORCED_OFF
cdef bint GRO_FORCED_OFF = _switched_off("HOTSOCK_NO_GRO")
cdef bint USE_GRO = GRO_AVAILABLE and not GRO_FORCED_OFF
# Segments any path with an MTU of 1500 carries whole (IPv4/IPv6 and UDP
# headers): the largest that automatic GSO (send_batch, blast) groups.
cdef size_t SAFE_SEGMENT_V4 = 1472
cdef size_t SAFE_SEGMENT_V6 = 1452
SAFE_SEGMENT = {AF_INET: SAFE_SEGMENT_V4, AF_INET6: SAFE_SEGMENT_V6}
cdef bint MMSG_FORCED_OFF = _switched_off("HOTSOCK_NO_MMSG")
cdef bint USE_MMSG = MMSG_AVAILABLE and not MMSG_FORCED_OFF


def batch_features():
    """What the batch functions use on this system (part of ``hotsock.features()``)."""
    return {
        "mmsg_compiled": bool(HS_HAVE_MMSG),
        "mmsg_available": MMSG_AVAILABLE,
        "mmsg_forced_off": MMSG_FORCED_OFF,
        "batch_path": "recvmmsg/sendmmsg" if USE_MMSG else "recvmsg/sendmsg loop",
        "max_batch": HS_MAX_BATCH,
        "gso_available": GSO_AVAILABLE,
        "gso_forced_off": GSO_FORCED_OFF,
        "gro_available": GRO_AVAILABLE,
        "gro_forced_off": GRO_FORCED_OFF,
    }


def gso_enabled():
    """Segmented sends (UDP_SEGMENT) are available and not switched off
    (``HOTSOCK_NO_GSO=1``)."""
    return USE_GSO


def gro_enabled():
    """Coalesced receives (UDP_GRO) are available and not switched off
    (``HOTSOCK_NO_GRO=1``)."""
    return USE_GRO


cdef bint use_mmsg() noexcept nogil:
    return USE_MMSG


cdef bint use_gso() noexcept nogil:
    return USE_GSO


cdef bint use_gro() noexcept nogil:
    return USE_GRO


cdef size_t safe_segment(int family) noexcept nogil:
    return SAFE_SEGMENT_V4 if family == AF_INET else SAFE_SEGMENT_V6
