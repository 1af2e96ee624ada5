"""The bench's contenders, as data: which part each belongs to, its name, and
how it moves *n* datagrams on its part's rig.

Per-datagram contenders call the method as user code would: bound to a
local name, with plain positional arguments (no *args unpacking, which
would add the same constant cost to every contender and blur the ratios).
The hot loops (capture, echo, blast) are called as users call them,
defaults included, once per chunk.
"""
import array
import asyncio
import os
import socket as _stdlib
from dataclasses import dataclass
from typing import Callable

from .. import _hotloops, _reference, asyncio as hotsock_asyncio
from .._recv import RecvBatch
from .._send import SendBatch
from .rigs import BATCH, GRO_BUFFER, GRO_BUFFERS, RECV_SIZE, QueueShort

PARTS = ("recv", "send", "capture", "echo", "asyncio", "gso", "gro")
SEND_BATCH_GSO = 1024   # datagrams per send_batch call in the gso part
GSO_SCALE = 4           # chunks per turn for the segmented senders (see their entries)
# The hot loops wait with poll() (SO_RCVTIMEO does not stop them): a duration
# that no chunk comes near ends a run whose datagrams were lost.  A deadline
# costs nothing per datagram (it is looked at only when the loop checks in).
SAFETY_DURATION_S = 30
# The C capture loop receives datagrams up to this, as hotsock.capture does by default.
CAPTURE_SIZE = _hotloops.MAX_DATAGRAM


@dataclass(frozen=True)
class Entry:
    """One contender of one part.  *make(rig)* returns the callable that
    moves *n* datagrams (``move(n)``), or None where it cannot run."""
    part: str
    name: str
    make: Callable
    queue: str = "rx"       # the receive queue it drains (receiving parts)
    scale: int = 1          # chunks per turn


@dataclass(frozen=True)
class Contender:
    """An entry made for a rig."""
    name: str
    move: Callable[[int], object]
    queue: str = "rx"
    scale: int = 1


def _per_call1(method, a):
    def run(n):
        for _ in range(n):
            method(a)
    return run


def _per_call2(method, a, b):
    def run(n):
        for _ in range(n):
            method(a, b)
    return run


def _recv_batches(sock, batch):
    def run(n):
        recv_batch = sock.recv_batch
        while n > 0:
            n -= recv_batch(batch)
    return run


def _send_arena(sock, address, size, per_call, gso):
    """send_batch of a SendBatch: *per_call* slots of *size* bytes, filled once
    (the slot size is the datagram size, as the README advises for GSO)."""
    arena = SendBatch(per_call, size)
    arena.lengths[:] = array.array("I", [size]) * per_call
    arena.used = per_call

    def run(n):
        send_batch = sock.send_batch
        while n > 0:
            arena.used = per_call if n >= per_call else n
            n -= send_batch(arena, address, gso=gso)
    return run


def _send_batches(sock, address, size, per_call, gso):
    payloads = [bytes(size)] * per_call

    def run(n):
        send_batch = sock.send_batch
        while n > 0:
            n -= send_batch(payloads if n >= per_call else payloads[:n], address, gso=gso)
    return run


def _expect(name, stats, n):
    if stats.received != n or stats.sent < (n if stats.kind == "echo" else 0):
        raise QueueShort(f"{name}: {stats.received} of {n} datagrams received "
                         f"({stats.sent} sent, stopped by {stats.stopped})")


def _capture(rig, fmt):
    capture = _hotloops.capture
    hot, name = rig.rx, "bench." + fmt

    def run(n):
        _expect("hotsock capture", capture(hot, rig.path(name), format=fmt, count=n,
                                           duration=SAFETY_DURATION_S), n)
    return run


def _c_capture(rig):
    hot = rig.rx

    def run(n):
        fd = os.open(rig.path("bench-c.pcap"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            _reference.capture_loop(hot, fd, n, BATCH, CAPTURE_SIZE)
        finally:
            os.close(fd)
    return run


def _echo(rig):
    echo, hot = _hotloops.echo, rig.rx

    def run(n):
        _expect("hotsock echo", echo(hot, count=n, duration=SAFETY_DURATION_S), n)
    return run


def _stdlib_echo(rig):
    std = rig.std_rx

    def run(n):
        recvfrom, sendto = std.recvfrom, std.sendto
        for _ in range(n):
            data, addr = recvfrom(RECV_SIZE)
            sendto(data, addr)
    return run


class _Counted:
    """What the event-loop contenders' protocols share: ``done`` resolves
    once ``want`` datagrams were handled."""
    want = count = 0
    done = None
    transport = None

    def connection_made(self, transport):
        self.transport = transport

    def error_received(self, exc):
        pass

    def connection_lost(self, exc):
        pass

    def handled(self, k):
        self.count += k
        if self.count >= self.want and not self.done.done():
            self.done.set_result(None)


class _Drain(_Counted, asyncio.DatagramProtocol):
    """A classic protocol: a ``bytes`` and an address per datagram."""

    def datagram_received(self, data, addr):
        self.handled(1)


class _BatchDrain(_Counted):
    """hotsock's batch protocol: the whole RecvBatch per call."""

    def datagrams_received(self, batch):
        self.handled(len(batch))


class _EchoProtocol(_Counted, asyncio.DatagramProtocol):
    """Echo each datagram back to its sender."""

    def datagram_received(self, data, addr):
        self.transport.sendto(data, addr)
        self.handled(1)


class _BatchEcho(_Counted):
    """Echo each batch back with one send_batch per sender run."""

    def datagrams_received(self, batch):
        n = len(batch)
        self.transport.send_batch([batch[i] for i in range(n)],
                                  addresses=[batch.address(i) for i in range(n)])
        self.handled(n)


class _Endpoint:
    """A datagram endpoint on (a duplicate of) *sock* in an event loop of its
    own, set up once; each call runs the loop until the protocol has handled
    *n* datagrams.  The endpoint owns (and closes) its socket object and
    makes the descriptor non-blocking -- shared with the other contenders'
    descriptors, which find their queue filled anyway."""

    def __init__(self, loop, create, protocol, sock):
        self.loop = loop
        dup = _stdlib.socket(fileno=os.dup(sock.fileno()))
        try:
            self.transport, self.protocol = loop.run_until_complete(create(loop, protocol, dup))
        except BaseException:
            dup.close()
            loop.close()
            raise

    def __call__(self, n):
        protocol = self.protocol
        protocol.count, protocol.want = 0, n
        protocol.done = self.loop.create_future()
        self.loop.run_until_complete(protocol.done)

    def close(self):
        self.transport.close()
        self.loop.run_until_complete(asyncio.sleep(0))
        self.loop.close()


def _asyncio_endpoint(loop, protocol, sock):
    return loop.create_datagram_endpoint(protocol, sock=sock)


def _hotsock_endpoint(loop, protocol, sock):
    return hotsock_asyncio.create_datagram_endpoint(protocol, sock=sock, batch=BATCH,
                                                    size=RECV_SIZE)


def _endpoint(which, protocol, event_loop="asyncio"):
    """An entry's maker: *which* endpoint (asyncio's or hotsock's) with
    *protocol*, in asyncio's default loop or uvloop's."""
    create = _hotsock_endpoint if which == "hotsock" else _asyncio_endpoint

    def make(rig):
        if event_loop == "uvloop":
            try:
                import uvloop  # type: ignore[import-not-found]
            except ImportError:
                return None
            loop = uvloop.new_event_loop()
        else:
            loop = asyncio.new_event_loop()
        return rig.own(_Endpoint(loop, create, protocol, rig.rx))
    return make


def _blast(sequence):
    def make(rig):
        if sequence and rig.size < _hotloops.SEQUENCE_HEADER:
            return None         # no room for blast's sequence header
        blast, hot, address, size = _hotloops.blast, rig.tx, rig.address, rig.size

        def run(n):
            stats = blast(hot, address, size=size, count=n, gso=True, sequence=sequence)
            if stats.sent != n:
                raise QueueShort(f"hotsock blast: {stats.sent} of {n} datagrams sent "
                                 f"(stopped by {stats.stopped})")
        return run
    return make


def _gro_batch():
    return RecvBatch(GRO_BUFFERS, GRO_BUFFER, gro=True)


# In the order of the report's rows (and of the first round's turns).
CONTENDERS = (
    Entry("recv", "stdlib recvfrom", lambda rig: _per_call1(rig.std_rx.recvfrom, RECV_SIZE)),
    Entry("recv", "stdlib recv_into",
          lambda rig: _per_call1(rig.std_rx.recv_into, bytearray(RECV_SIZE))),
    Entry("recv", "hotsock recvfrom", lambda rig: _per_call1(rig.rx.recvfrom, RECV_SIZE)),
    Entry("recv", "hotsock recv_into",
          lambda rig: _per_call1(rig.rx.recv_into, bytearray(RECV_SIZE))),
    Entry("recv", "hotsock recv_batch",
          lambda rig: _recv_batches(rig.rx, RecvBatch(BATCH, RECV_SIZE))),
    Entry("recv", "C recvfrom loop",
          lambda rig: lambda n: _reference.recvfrom_loop(rig.rx, n, RECV_SIZE)),
    Entry("recv", "C recvmmsg loop",
          lambda rig: lambda n: _reference.recvmmsg_loop(rig.rx, n, BATCH, RECV_SIZE)),

    Entry("send", "stdlib sendto",
          lambda rig: _per_call2(rig.std_tx.sendto, bytes(rig.size), rig.address)),
    Entry("send", "hotsock sendto",
          lambda rig: _per_call2(rig.tx.sendto, bytes(rig.size), rig.address)),
    # gso=False: one datagram per message, as the C sendmmsg loop sends;
    # the default (automatic GSO) groups them -- see the gso part.
    Entry("send", "hotsock send_batch",
          lambda rig: _send_batches(rig.tx, rig.address, rig.size, BATCH, False)),
    Entry("send", "hotsock send_batch auto",
          lambda rig: _send_batches(rig.tx, rig.address, rig.size, BATCH, None)),
    Entry("send", "hotsock SendBatch",
          lambda rig: _send_arena(rig.tx, rig.address, rig.size, BATCH, False)),
    Entry("send", "C sendto loop",
          lambda rig: lambda n: _reference.sendto_loop(rig.tx, rig.address, n, rig.size)),
    Entry("send", "C sendmmsg loop",
          lambda rig: lambda n: _reference.sendmmsg_loop(rig.tx, rig.address, n, BATCH,
                                                         rig.size)),

    Entry("capture", "hotsock capture", lambda rig: _capture(rig, "pcap")),
    Entry("capture", "hotsock capture pcapng", lambda rig: _capture(rig, "pcapng")),
    # The same work in plain C: kernel timestamps, pcap records, the file.
    Entry("capture", "C capture loop", _c_capture),
    Entry("capture", "C recvmmsg loop",
          lambda rig: lambda n: _reference.recvmmsg_loop(rig.rx, n, BATCH, RECV_SIZE)),

    Entry("echo", "hotsock echo", _echo),
    Entry("echo", "stdlib echo loop", _stdlib_echo),
    Entry("echo", "C echo loop",
          lambda rig: lambda n: _reference.echo_loop(rig.rx, n, BATCH, RECV_SIZE)),
    Entry("echo", "uvloop echo", _endpoint("asyncio", _EchoProtocol, "uvloop")),
    Entry("echo", "hotsock endpoint echo", _endpoint("hotsock", _BatchEcho)),
    Entry("echo", "hotsock endpoint echo uvloop", _endpoint("hotsock", _BatchEcho, "uvloop")),

    # Datagram endpoints in an event loop, draining the queue filled beforehand.
    Entry("asyncio", "asyncio endpoint", _endpoint("asyncio", _Drain)),
    Entry("asyncio", "uvloop endpoint", _endpoint("asyncio", _Drain, "uvloop")),
    Entry("asyncio", "hotsock endpoint", _endpoint("hotsock", _Drain)),
    Entry("asyncio", "hotsock endpoint batch", _endpoint("hotsock", _BatchDrain)),
    Entry("asyncio", "hotsock endpoint uvloop", _endpoint("hotsock", _Drain, "uvloop")),
    Entry("asyncio", "hotsock endpoint batch uvloop",
          _endpoint("hotsock", _BatchDrain, "uvloop")),
    Entry("asyncio", "C recvmmsg loop",
          lambda rig: lambda n: _reference.recvmmsg_loop(rig.rx, n, BATCH, RECV_SIZE)),

    # The segmented senders send GSO_SCALE chunks a turn: at ~20 M/s a chunk
    # takes 3 ms, where one call's fixed cost (signal handlers, arrays:
    # ~80 us) would weigh as it never does in a real run; the stdlib's
    # one-by-one sends need no more to be measured.
    Entry("gso", "stdlib sendto",
          lambda rig: _per_call2(rig.std_tx.sendto, bytes(rig.size), rig.address)),
    Entry("gso", "hotsock send_batch gso",
          lambda rig: _send_batches(rig.tx, rig.address, rig.size, SEND_BATCH_GSO, True),
          scale=GSO_SCALE),
    Entry("gso", "hotsock SendBatch gso",
          lambda rig: _send_arena(rig.tx, rig.address, rig.size, SEND_BATCH_GSO, True),
          scale=GSO_SCALE),
    # sequence=False: zeros, as the C loop sends; blast's default stamps a
    # sequence header (and the time) into every datagram.
    Entry("gso", "hotsock blast gso", _blast(False), scale=GSO_SCALE),
    Entry("gso", "hotsock blast gso seq", _blast(True), scale=GSO_SCALE),
    Entry("gso", "C GSO send loop",
          lambda rig: lambda n: _reference.gso_send_loop(rig.tx, rig.address, n, rig.segments,
                                                         rig.size),
          scale=GSO_SCALE),

    # The stdlib's recvfrom returns one datagram per call: it drains a
    # receiver without UDP_GRO, filled the same way.
    Entry("gro", "stdlib recvfrom",
          lambda rig: _per_call1(rig.std_plain_rx.recvfrom, RECV_SIZE), queue="plain"),
    Entry("gro", "hotsock recv_batch gro", lambda rig: _recv_batches(rig.rx, _gro_batch())),
    Entry("gro", "C GRO recv loop",
          lambda rig: lambda n: _reference.gro_recv_loop(rig.rx, n, GRO_BUFFERS, GRO_BUFFER)),
)


def contenders(part, rig):
    """The contenders of *part* made for *rig*: name -> Contender."""
    made = {}
    for entry in CONTENDERS:
        if entry.part == part:
            move = entry.make(rig)
            if move is not None:
                made[entry.name] = Contender(entry.name, move, entry.queue, entry.scale)
    return made


def queued_chunks(entries, queue="rx"):
    """How many chunks a round queues on *queue*: one per contender draining it."""
    return sum(1 for c in entries.values() if c.queue == queue)


TARGETS = [
    # (part, numerator, denominator, minimum ratio) from the project's issues
    ("recv", "hotsock recv_batch", "C recvmmsg loop", 0.95),
    ("recv", "hotsock recv_batch", "stdlib recvfrom", 2.2),
    ("recv", "hotsock recvfrom", "stdlib recvfrom", 1.15),
    ("recv", "hotsock recv_into", "stdlib recv_into", 1.0),
    ("send", "hotsock sendto", "stdlib sendto", 1.1),
    ("send", "hotsock send_batch", "C sendmmsg loop", 0.95),
    ("send", "hotsock SendBatch", "C sendmmsg loop", 0.95),
    ("capture", "hotsock capture", "C recvmmsg loop", 0.9),
    ("echo", "hotsock echo", "C echo loop", 0.9),
    ("echo", "hotsock echo", "stdlib echo loop", 1.5),
    ("echo", "hotsock echo", "uvloop echo", 1.0),      # faster than uvloop
    ("echo", "hotsock endpoint echo", "C echo loop", 0.8),
    ("asyncio", "hotsock endpoint batch", "C recvmmsg loop", 0.8),
    ("asyncio", "hotsock endpoint", "asyncio endpoint", 3),
    ("asyncio", "hotsock endpoint", "uvloop endpoint", 1.3),
    ("gso", "hotsock blast gso", "C GSO send loop", 0.9),
    ("gso", "hotsock blast gso", "stdlib sendto", 30),
    ("gso", "hotsock send_batch gso", "stdlib sendto", 30),
    ("gso", "hotsock SendBatch gso", "C GSO send loop", 0.9),
    ("gro", "hotsock recv_batch gro", "C GRO recv loop", 0.9),
    ("gro", "hotsock recv_batch gro", "stdlib recvfrom", 30),
]
