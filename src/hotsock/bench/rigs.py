"""The bench's rigs: sockets on loopback, queues filled beforehand, drains.

A rig owns every socket (and file, and event loop) its part's contenders
use, and closes them all.  Its receive queues are named: ``"rx"`` (the
receiver), ``"tx"`` (the echo client, which gets the echoes back),
``"plain"`` (the offload rig's receiver without UDP_GRO).
"""
import os
import select
import shutil
import socket as _stdlib
import tempfile
import time

from .. import _features, _reference
from .._features import GSO_MAX_BYTES, GSO_MAX_SEGMENTS as SEGMENTS, MAX_BATCH
from .._recv import RecvBatch
from .._socket_class import socket

BATCH = 64          # datagrams per recvmmsg/sendmmsg call, for hotsock and C alike
RECV_SIZE = 2048    # receive buffer per datagram
# The most a receive queue is asked for (SO_RCVBUFFORCE where permitted, else
# the largest the sysctl allows).
BIG_RCVBUF = 1 << 28
# SO_RCVTIMEO on the receivers: a blocking call that finds the queue empty
# (datagrams lost while filling) fails after this instead of hanging.
SAFETY_TIMEOUT_S = 2
GRO_BUFFERS = 64    # coalesced buffers per recvmmsg call, for hotsock and C alike
GRO_BUFFER = 65536  # bytes per coalesced buffer


class QueueShort(Exception):
    """The queue held fewer datagrams than were sent to it."""


def segments(size):
    """Datagrams per segmented send (and per coalesced buffer) of *size* bytes."""
    return max(1, min(SEGMENTS, GSO_MAX_BYTES // max(size, 1)))


def offload_unavailable(part, size=64):
    """Why *part* (gso or gro) cannot run here, or None if it can."""
    features = _features.batch_features()
    if size < 1:
        return "segmented sends need datagrams of at least 1 byte"
    if not features["gso_available"]:
        return "segmented sends (UDP_SEGMENT) are not available on this system"
    if features["gso_forced_off"]:
        return "segmented sends are switched off (HOTSOCK_NO_GSO)"
    if part == "gro":
        if not features["gro_available"]:
            return "coalesced receives (UDP_GRO) are not available on this system"
        if features["gro_forced_off"]:
            return "coalesced receives are switched off (HOTSOCK_NO_GRO)"
    return None


def _receiver(gro=False):
    rx = socket(_stdlib.AF_INET, _stdlib.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.set_recv_buffer(BIG_RCVBUF, force=True)
    rx.set_recv_timeout(SAFETY_TIMEOUT_S)
    if gro:
        # Before the queue is filled: the kernel coalesces only for a socket
        # that asked (a RecvBatch(gro=True) would ask at its first receive).
        rx.setsockopt(_stdlib.IPPROTO_UDP, _features.UDP_GRO, 1)
    return rx


def _stdlib_twin(sock):
    """A stdlib socket object on a duplicate of *sock*."""
    return _stdlib.fromfd(sock.fileno(), _stdlib.AF_INET, _stdlib.SOCK_DGRAM)


class _Rig:
    """What every rig has: a sender, named receive queues, the chunk that fits."""

    margin = BATCH      # what a fill sends beyond the chunks: one send's worth
    unit = BATCH        # chunks are whole multiples of this

    def __init__(self, size):
        self.size = size
        self._sockets = []          # every socket the rig made, closed with it
        self._owned = []            # closed before the sockets (uvloop's endpoint)
        self._queues = {}           # name -> (socket, batch to drain it with)
        self.tx = self._socket(socket(_stdlib.AF_INET, _stdlib.SOCK_DGRAM))
        self.std_tx = self._socket(_stdlib_twin(self.tx))

    def _socket(self, sock):
        self._sockets.append(sock)
        return sock

    def _queue(self, name, sock, batch):
        self._queues[name] = (sock, batch)
        return sock

    def own(self, thing):
        """Close *thing* with the rig, before its sockets; return it."""
        self._owned.append(thing)
        return thing

    def close(self):
        for thing in self._owned:
            thing.close()
        for sock in self._sockets:
            sock.close()

    def address_of(self, queue="rx"):
        return self._queues[queue][0].getsockname()

    def fill_one_by_one(self, count, queue="rx"):
        """Queue *count* datagrams on *queue* with the C sendmmsg loop."""
        _reference.sendmmsg_loop(self.tx, self.address_of(queue), count, BATCH, self.size)

    fill = fill_one_by_one

    def drain(self, queue="rx"):
        """Empty *queue*; return how many datagrams it held."""
        sock, batch = self._queues[queue]
        held = 0
        while True:
            try:
                held += sock.recv_batch(batch, _stdlib.MSG_DONTWAIT)
            except BlockingIOError:
                return held

    def tidy(self):
        """What to do (untimed) after every turn: nothing, unless a rig says."""

    def fitting_chunk(self, chunk, queued, queue="rx", one_by_one=False):
        """*chunk*, or less (whole units) if *queue* cannot hold *queued*
        chunks (a small receive buffer: not root, low rmem_max); filled
        *one_by_one*, or as this rig fills it."""
        wanted = chunk * queued + self.margin
        self.drain(queue)
        (self.fill_one_by_one if one_by_one else self.fill)(wanted, queue)
        held = self.drain(queue)
        if held < wanted:
            chunk = max(self.unit, (held * 3 // 4 // queued) // self.unit * self.unit)
        return chunk


class Rig(_Rig):
    """A receiver and a sender on loopback, and ways to fill and empty the queue."""

    def __init__(self, size, client=False, files=False):
        """With *client*, the sender is bound and has a receive buffer as
        large as the receiver's: it gets the echoes back (queue ``"tx"``).
        With *files*, a temporary directory for the files contenders write,
        emptied after every turn (:meth:`path`)."""
        super().__init__(size)
        self.rx = self._queue("rx", self._socket(_receiver()), RecvBatch(MAX_BATCH, RECV_SIZE))
        if client:
            self.tx.bind(("127.0.0.1", 0))
            self.tx.set_recv_buffer(BIG_RCVBUF, force=True)
            self._queue("tx", self.tx, RecvBatch(MAX_BATCH, RECV_SIZE))
        self.address = self.rx.getsockname()
        # a stdlib socket object on a duplicate of the receiver
        self.std_rx = self._socket(_stdlib_twin(self.rx))
        self.directory = tempfile.mkdtemp(prefix="hotsock-bench-") if files else None
        # One-datagram calls time the loop, not the file system: they write to
        # /dev/null (creating a file costs ~40 us, in C too).
        self.to_devnull = False

    def close(self):
        super().close()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)

    def path(self, name):
        """Where a contender writes its file *name* (in the rig's directory)."""
        return os.devnull if self.to_devnull else os.path.join(self.directory, name)

    def tidy(self):
        if self.directory is not None:
            for name in os.listdir(self.directory):
                os.unlink(self.path(name))

    def collect(self, expected):
        """Empty the sender's queue (the echoes), waiting up to
        SAFETY_TIMEOUT_S for *expected* datagrams; return how many arrived."""
        held = self.drain("tx")
        deadline = time.monotonic() + SAFETY_TIMEOUT_S
        while held < expected:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            select.select([self.tx], [], [], left)
            held += self.drain("tx")
        return held


class OffloadRig(_Rig):
    """A sender, a receiver with UDP_GRO on (*rx*, queue ``"rx"``) and, with
    *plain*, a second receiver without it (*plain_rx*, queue ``"plain"``, for
    contenders that receive one datagram per call), on loopback."""

    def __init__(self, size, plain=False):
        super().__init__(size)
        self.segments = segments(size)
        # one segmented send; GRO contenders take up to GRO_BUFFERS coalesced
        # buffers a call: chunks are multiples of that, so that none takes
        # datagrams queued for the next.
        self.margin = self.segments
        self.unit = GRO_BUFFERS * self.segments
        self.rx = self._queue("rx", self._socket(_receiver(gro=True)),
                              RecvBatch(GRO_BUFFERS, GRO_BUFFER, gro=True))
        self.address = self.rx.getsockname()
        self.plain_rx = self.std_plain_rx = None
        if plain:       # drained without gro: that would turn UDP_GRO on
            self.plain_rx = self._queue("plain", self._socket(_receiver()),
                                        RecvBatch(MAX_BATCH, RECV_SIZE))
            self.std_plain_rx = self._socket(_stdlib_twin(self.plain_rx))

    def whole_units(self, chunk):
        """*chunk* rounded down to whole units (at least one)."""
        return max(self.unit, chunk // self.unit * self.unit)

    def fill(self, count, queue="rx"):
        """Queue *count* datagrams on *queue* with the C segmented-send loop."""
        _reference.gso_send_loop(self.tx, self.address_of(queue), count, self.segments,
                                 self.size)
