"""``hotsock bench``: datagram throughput against the stdlib and plain C.

Every figure is a ratio measured in one run on one machine, never an
absolute claim.  The contenders take turns on the same socket in small
chunks (1024 datagrams by default), round after round, so that all of them
meet the same conditions -- queue depth, memory state, whatever else the
machine is doing -- and each contender's rate is its median chunk.

* Receive: the queue is filled with one chunk per contender (plus a margin)
  before a round, by a C sendmmsg loop, so no racing sender adds noise;
  then each contender drains its chunk.
* Send: each contender sends its chunk to a receiver whose queue is emptied
  (untimed) after every round.
* Capture: as receive, with :func:`hotsock.capture` writing each chunk to
  a new pcap (or pcapng) file in a temporary directory -- the file write is
  part of the cost -- against the C recvmmsg loop draining the same queue.
* Echo: before each contender's turn the server socket's queue is filled
  with one chunk from a client socket; the contender sends each datagram
  back to the client, whose queue is emptied and counted (untimed) after
  the turn.  Against a C recvmmsg/sendmmsg echo loop, a stdlib
  recvfrom/sendto loop and, when it is installed, uvloop's datagram
  endpoint (its loop and endpoint are set up once, untimed; each turn wakes
  the loop and runs it until the protocol has counted the chunk).
* GSO (segmented sends, UDP_SEGMENT): each contender sends its chunk to a
  receiver with UDP_GRO on, which holds segmented sends as they were sent
  (one buffer of up to 64 datagrams); after each turn the receiver is
  emptied (untimed) and must hold exactly the chunk.  hotsock's
  ``send_batch(..., gso=True)`` (calls of 1024 datagrams) and ``blast(...,
  gso=True)`` (one call per chunk) against a C loop of segmented sends
  (sendmmsg of 16 messages, each one buffer of 64 datagrams) and the
  stdlib's ``sendto``.  ``blast`` is measured twice: sending zeros, as the
  C loop does (``sequence=False``), and with its default sequence headers
  ("hotsock blast gso seq"), which stamp every datagram.  The report also
  gives each contender's time for a one-datagram call (blast sets up
  signal handlers and a batch of 1024 per call).
* GRO (coalesced receives, UDP_GRO): as receive, the queue filled before a
  round by the C segmented-send loop; on loopback a segmented send reaches
  a socket with UDP_GRO on as one buffer of 64 datagrams.  hotsock's
  ``recv_batch`` with ``RecvBatch(64, gro=True)`` and a C recvmmsg loop
  reading the UDP_GRO segment size drain that socket.  The stdlib's
  ``recvfrom`` returns one datagram per call, so it drains a second socket,
  without UDP_GRO, filled the same way: the kernel splits each segmented
  send into datagrams for it, as it does for any receiver that did not ask
  for coalesced buffers.

The hot loops (capture, echo) are called as users call them, defaults
included, once per chunk: their per-call set-up (socket options, signal
handlers, the kernel's drop counter, a receive batch, opening the file) is
paid once per chunk, so their chunks are larger (8192 datagrams by
default); the report also gives each contender's time for a one-datagram
call.  The GSO and GRO parts move 64 datagrams per system call buffer,
so their chunks are larger still (65536 datagrams by default, rounded to
whole receive batches of 64 buffers of 64 datagrams): the rate is
datagrams per second for every contender.

The C references are plain C loops compiled into hotsock
(``hotsock._reference``), so this runs from a wheel on a machine without a
compiler.  Traffic stays on loopback.
"""
import argparse
import asyncio
import json
import os
import select
import shutil
import socket as _stdlib
import statistics
import sys
import tempfile
import time

from . import _features, _hotloops, _reference
from ._recv import RecvBatch
from ._socket_class import socket

BATCH = 64          # datagrams per recvmmsg/sendmmsg call, for hotsock and C alike
RECV_SIZE = 2048    # receive buffer per datagram
SO_RCVBUFFORCE = getattr(_stdlib, "SO_RCVBUFFORCE", 33)
SOL_UDP = getattr(_stdlib, "SOL_UDP", 17)
UDP_GRO = getattr(_stdlib, "UDP_GRO", 104)     # Linux's value; the gro part runs only there
# SO_RCVTIMEO on the receiver: a blocking call that finds the queue empty
# (datagrams lost while filling) fails after this instead of hanging.
SAFETY_TIMEOUT_S = 2
# The hot loops wait with poll() (SO_RCVTIMEO does not stop them): a duration
# that no chunk comes near ends a run whose datagrams were lost.  A deadline
# costs nothing per datagram (it is looked at only when the loop checks in).
SAFETY_DURATION_S = 30
PARTS = ("recv", "send", "capture", "echo", "gso", "gro")
LOOP_CHUNK = 8192   # datagrams per call of the hot loops (capture, echo)
OFFLOAD_CHUNK = 65536   # datagrams per contender per round, gso and gro
SEGMENTS = 64       # datagrams per segmented send (UDP_MAX_SEGMENTS), and per coalesced buffer
GSO_MAX_BYTES = 65487   # the most payload one segmented send carries
GRO_BUFFERS = 64    # coalesced buffers per recvmmsg call, for hotsock and C alike
GRO_BUFFER = 65536  # bytes per coalesced buffer
SEND_BATCH_GSO = 1024   # datagrams per send_batch call in the gso part
GSO_SCALE = 4           # chunks per turn for the segmented senders (see _run_gso)


class QueueShort(Exception):
    """The queue held fewer datagrams than were sent to it."""


def _big_receive_buffer(sock):
    try:
        sock.setsockopt(_stdlib.SOL_SOCKET, SO_RCVBUFFORCE, 1 << 28)
    except OSError:     # not root: the largest the sysctl allows
        sock.setsockopt(_stdlib.SOL_SOCKET, _stdlib.SO_RCVBUF, 1 << 28)


def _drain(sock, batch):
    """Receive into *batch* until *sock*'s queue is empty; the datagrams it held."""
    held = 0
    while True:
        try:
            held += sock.recv_batch(batch, _stdlib.MSG_DONTWAIT)
        except BlockingIOError:
            return held


class Rig:
    """A receiver and a sender on loopback, and ways to fill and empty the queue."""

    def __init__(self, size, client=False):
        """With *client*, the sender is bound and has a receive buffer as
        large as the receiver's: it gets the echoes back."""
        self.size = size
        self.rx = socket(_stdlib.AF_INET, _stdlib.SOCK_DGRAM)
        self.rx.bind(("127.0.0.1", 0))
        _big_receive_buffer(self.rx)
        self.rx.setsockopt(_stdlib.SOL_SOCKET, _stdlib.SO_RCVTIMEO,
                           SAFETY_TIMEOUT_S.to_bytes(8, sys.byteorder) + bytes(8))
        self.tx = socket(_stdlib.AF_INET, _stdlib.SOCK_DGRAM)
        if client:
            self.tx.bind(("127.0.0.1", 0))
            _big_receive_buffer(self.tx)
        self.address = self.rx.getsockname()
        # stdlib socket objects on duplicates of the same two sockets
        self.std_rx = _stdlib.fromfd(self.rx.fileno(), _stdlib.AF_INET, _stdlib.SOCK_DGRAM)
        self.std_tx = _stdlib.fromfd(self.tx.fileno(), _stdlib.AF_INET, _stdlib.SOCK_DGRAM)
        self._drain_batch = RecvBatch(1024, RECV_SIZE)

    def close(self):
        for s in (self.rx, self.tx, self.std_rx, self.std_tx):
            s.close()

    def fill(self, count):
        _reference.sendmmsg_loop(self.tx, self.address, count, BATCH, self.size)

    def drain(self, sock=None):
        """Empty the queue (of *sock*, the receiver by default); return how
        many datagrams it held."""
        return _drain(self.rx if sock is None else sock, self._drain_batch)

    def collect(self, expected):
        """Empty the sender's queue (the echoes), waiting up to
        SAFETY_TIMEOUT_S for *expected* datagrams; return how many arrived."""
        held = self.drain(self.tx)
        deadline = time.monotonic() + SAFETY_TIMEOUT_S
        while held < expected:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            select.select([self.tx], [], [], left)
            held += self.drain(self.tx)
        return held

    def capacity(self, wanted):
        """How many datagrams the queue holds whole, up to *wanted*."""
        self.drain()
        self.fill(wanted)
        return self.drain()


# --- the contenders: each handles *n* datagrams -------------------------------

# Per-datagram contenders call the method as user code would: bound to a
# local name, with plain positional arguments (no *args unpacking, which
# would add the same constant cost to every contender and blur the ratios).

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


def receive_contenders(rig):
    std, hot = rig.std_rx, rig.rx
    buf = bytearray(RECV_SIZE)
    batch = RecvBatch(BATCH, RECV_SIZE)

    def hotsock_recv_batch(n):
        recv_batch = hot.recv_batch
        while n > 0:
            n -= recv_batch(batch)

    return {
        "stdlib recvfrom": _per_call1(std.recvfrom, RECV_SIZE),
        "stdlib recv_into": _per_call1(std.recv_into, buf),
        "hotsock recvfrom": _per_call1(hot.recvfrom, RECV_SIZE),
        "hotsock recv_into": _per_call1(hot.recv_into, buf),
        "hotsock recv_batch": hotsock_recv_batch,
        "C recvfrom loop": lambda n: _reference.recvfrom_loop(hot, n, RECV_SIZE),
        "C recvmmsg loop": lambda n: _reference.recvmmsg_loop(hot, n, BATCH, RECV_SIZE),
    }


def send_contenders(rig):
    payload = bytes(rig.size)
    payloads = [payload] * BATCH
    address = rig.address
    std, hot = rig.std_tx, rig.tx

    def hotsock_send_batch(gso):
        def run(n):
            send_batch = hot.send_batch
            while n > 0:
                n -= send_batch(payloads if n >= BATCH else payloads[:n], address, gso=gso)
        return run

    return {
        "stdlib sendto": _per_call2(std.sendto, payload, address),
        "hotsock sendto": _per_call2(hot.sendto, payload, address),
        # gso=False: one datagram per message, as the C sendmmsg loop sends;
        # the default (automatic GSO) groups them -- see the gso part.
        "hotsock send_batch": hotsock_send_batch(False),
        "hotsock send_batch auto": hotsock_send_batch(None),
        "C sendto loop": lambda n: _reference.sendto_loop(hot, address, n, rig.size),
        "C sendmmsg loop": lambda n: _reference.sendmmsg_loop(hot, address, n, BATCH, rig.size),
    }


def _expect(name, stats, n):
    if stats.received != n or stats.sent < (n if stats.kind == "echo" else 0):
        raise QueueShort(f"{name}: {stats.received} of {n} datagrams received "
                         f"({stats.sent} sent, stopped by {stats.stopped})")


def capture_contenders(rig, directory):
    """The contenders of the capture part and what to do after each call
    (untimed): delete the file it wrote."""
    hot = rig.rx
    capture = _hotloops.capture

    def hotsock_capture(fmt):
        path = os.path.join(directory, "bench." + fmt)

        def run(n):
            _expect("hotsock capture", capture(hot, path, format=fmt, count=n,
                                               duration=SAFETY_DURATION_S), n)
        return run, lambda: os.path.exists(path) and os.unlink(path)

    c_path = os.path.join(directory, "bench-c.pcap")

    def c_capture(n):
        fd = os.open(c_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            _reference.capture_loop(hot, fd, n, BATCH, 65535)
        finally:
            os.close(fd)

    return {
        "hotsock capture": hotsock_capture("pcap"),
        "hotsock capture pcapng": hotsock_capture("pcapng"),
        # The same work in plain C: kernel timestamps, pcap records, the file.
        "C capture loop": (c_capture, lambda: os.path.exists(c_path) and os.unlink(c_path)),
        "C recvmmsg loop": (lambda n: _reference.recvmmsg_loop(hot, n, BATCH, RECV_SIZE), None),
    }


class _EchoProtocol(asyncio.DatagramProtocol):
    """Echo each datagram; resolve ``done`` after ``want`` of them."""
    want = count = 0
    done = None
    transport = None

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.transport.sendto(data, addr)
        self.count += 1
        if self.count == self.want:
            self.done.set_result(None)


class _UvloopEcho:
    """uvloop's datagram endpoint on (a duplicate of) the server socket, set
    up once; each call runs the loop until the protocol has echoed *n*."""

    def __init__(self, uvloop, sock):
        self.loop = uvloop.new_event_loop()
        # uvloop owns (and closes) the socket object it is given; it also
        # makes the descriptor non-blocking -- shared with the other
        # contenders' descriptors, which find their queue filled anyway.
        dup = _stdlib.socket(fileno=os.dup(sock.fileno()))
        try:
            self.transport, self.protocol = self.loop.run_until_complete(
                self.loop.create_datagram_endpoint(_EchoProtocol, sock=dup))
        except BaseException:
            dup.close()
            self.loop.close()
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


def _uvloop():
    try:
        import uvloop  # type: ignore[import-not-found]
    except ImportError:
        return None
    return uvloop


def echo_contenders(rig, uvloop=None):
    """The contenders of the echo part (and the uvloop one to close, or None)."""
    hot, std = rig.rx, rig.std_rx
    echo = _hotloops.echo

    def hotsock_echo(n):
        _expect("hotsock echo", echo(hot, count=n, duration=SAFETY_DURATION_S), n)

    def stdlib_echo(n):
        recvfrom, sendto = std.recvfrom, std.sendto
        for _ in range(n):
            data, addr = recvfrom(RECV_SIZE)
            sendto(data, addr)

    contenders = {
        "hotsock echo": hotsock_echo,
        "stdlib echo loop": stdlib_echo,
        "C echo loop": lambda n: _reference.echo_loop(hot, n, BATCH, RECV_SIZE),
    }
    uv = _UvloopEcho(uvloop, hot) if uvloop is not None else None
    if uv is not None:
        contenders["uvloop echo"] = uv
    return contenders, uv


# --- segmentation offload (GSO) and receive coalescing (GRO) -----------------

def _segments(size):
    """Datagrams per segmented send (and per coalesced buffer) of *size* bytes."""
    return max(1, min(SEGMENTS, GSO_MAX_BYTES // max(size, 1)))


def _gro_on(sock):
    sock.setsockopt(SOL_UDP, UDP_GRO, 1)


def _udp_receiver(gro):
    rx = socket(_stdlib.AF_INET, _stdlib.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    _big_receive_buffer(rx)
    rx.setsockopt(_stdlib.SOL_SOCKET, _stdlib.SO_RCVTIMEO,
                  SAFETY_TIMEOUT_S.to_bytes(8, sys.byteorder) + bytes(8))
    if gro:
        _gro_on(rx)
    return rx


class OffloadRig:
    """A sender, a receiver with UDP_GRO on (*rx*) and, with *plain*, a
    second receiver without it (*plain_rx*, for contenders that receive one
    datagram per call), on loopback."""

    def __init__(self, size, plain=False):
        self.size = size
        self.segments = _segments(size)
        self.rx = _udp_receiver(gro=True)
        self.plain_rx = _udp_receiver(gro=False) if plain else None
        self.tx = socket(_stdlib.AF_INET, _stdlib.SOCK_DGRAM)
        self.address = self.rx.getsockname()
        self.plain_address = self.plain_rx.getsockname() if plain else None
        self.std_tx = _stdlib.fromfd(self.tx.fileno(), _stdlib.AF_INET, _stdlib.SOCK_DGRAM)
        self.std_plain_rx = (_stdlib.fromfd(self.plain_rx.fileno(), _stdlib.AF_INET,
                                            _stdlib.SOCK_DGRAM) if plain else None)
        self._gro_batch = RecvBatch(GRO_BUFFERS, GRO_BUFFER, gro=True)
        self._plain_batch = RecvBatch(1024, RECV_SIZE)     # no gro: would turn UDP_GRO on

    def close(self):
        for s in (self.rx, self.plain_rx, self.tx, self.std_tx, self.std_plain_rx):
            if s is not None:
                s.close()

    def fill(self, count, plain=False):
        """Queue *count* datagrams on the receiver (or the plain one) with the
        C segmented-send loop."""
        _reference.gso_send_loop(self.tx, self.plain_address if plain else self.address,
                                 count, self.segments, self.size)

    def drain(self, plain=False):
        """Empty the receiver (or the plain one); return the datagrams it held."""
        if plain:
            return _drain(self.plain_rx, self._plain_batch)
        return _drain(self.rx, self._gro_batch)

    def capacity(self, wanted, plain=False, single=False):
        """How many datagrams the queue holds whole, up to *wanted*; sent
        one by one with *single*, else as segmented sends."""
        self.drain(plain)
        if single:
            _reference.sendmmsg_loop(self.tx, self.address, wanted, BATCH, self.size)
        else:
            self.fill(wanted, plain)
        return self.drain(plain)


def gso_contenders(rig):
    size, address = rig.size, rig.address
    payload = bytes(size)
    payloads = [payload] * SEND_BATCH_GSO
    std, hot = rig.std_tx, rig.tx
    blast = _hotloops.blast

    def hotsock_send_batch_gso(n):
        send_batch = hot.send_batch
        while n > 0:
            n -= send_batch(payloads if n >= SEND_BATCH_GSO else payloads[:n], address, gso=True)

    def hotsock_blast(sequence):
        def run(n):
            stats = blast(hot, address, size=size, count=n, gso=True, sequence=sequence)
            if stats.sent != n:
                raise QueueShort(f"hotsock blast: {stats.sent} of {n} datagrams sent "
                                 f"(stopped by {stats.stopped})")
        return run

    contenders = {
        "stdlib sendto": _per_call2(std.sendto, payload, address),
        "hotsock send_batch gso": hotsock_send_batch_gso,
        # sequence=False: zeros, as the C loop sends; blast's default stamps
        # a sequence header (and the time) into every datagram.
        "hotsock blast gso": hotsock_blast(False),
    }
    if size >= _hotloops.SEQUENCE_HEADER:
        contenders["hotsock blast gso seq"] = hotsock_blast(True)
    contenders["C GSO send loop"] = (
        lambda n: _reference.gso_send_loop(hot, address, n, rig.segments, size))
    return contenders


def gro_contenders(rig):
    """name -> (receive n datagrams, whether from the plain receiver)."""
    hot, std = rig.rx, rig.std_plain_rx
    batch = RecvBatch(GRO_BUFFERS, GRO_BUFFER, gro=True)

    def hotsock_recv_batch_gro(n):
        recv_batch = hot.recv_batch
        while n > 0:
            n -= recv_batch(batch)

    return {
        "stdlib recvfrom": (_per_call1(std.recvfrom, RECV_SIZE), True),
        "hotsock recv_batch gro": (hotsock_recv_batch_gro, False),
        "C GRO recv loop": (lambda n: _reference.gro_recv_loop(hot, n, GRO_BUFFERS, GRO_BUFFER),
                            False),
    }


# --- measuring ---------------------------------------------------------------

def _rotate(names, r):
    k = r % len(names)
    return names[k:] + names[:k]


def measure_receive(rig, contenders, chunk, rounds, after=None):
    """*after*: name -> what to call (untimed) after each of its turns."""
    names = list(contenders)
    times = {name: [] for name in names}
    after = after or {}
    margin = BATCH
    for r in range(rounds):
        rig.fill(chunk * len(names) + margin)
        for name in _rotate(names, r):
            start = time.perf_counter()
            try:
                contenders[name](chunk)
            except OSError as exc:      # SO_RCVTIMEO: the queue ran dry
                raise QueueShort(f"{name}: {exc}") from exc
            times[name].append(time.perf_counter() - start)
            if after.get(name) is not None:
                after[name]()
        left = rig.drain()
        if left != margin:
            raise QueueShort(f"{margin} datagrams should be left, found {left}")
    return times


def measure_send(rig, contenders, chunk, rounds):
    names = list(contenders)
    times = {name: [] for name in names}
    rig.drain()
    for r in range(rounds):
        for name in _rotate(names, r):
            start = time.perf_counter()
            contenders[name](chunk)
            times[name].append(time.perf_counter() - start)
        arrived = rig.drain()
        if arrived != chunk * len(names):
            raise QueueShort(f"{arrived} of {chunk * len(names)} datagrams arrived")
    return times


def measure_echo(rig, contenders, chunk, rounds):
    names = list(contenders)
    times = {name: [] for name in names}
    rig.drain()
    rig.drain(rig.tx)
    for r in range(rounds):
        for name in _rotate(names, r):
            rig.fill(chunk)
            start = time.perf_counter()
            try:
                contenders[name](chunk)
            except OSError as exc:      # SO_RCVTIMEO: the queue ran dry
                raise QueueShort(f"{name}: {exc}") from exc
            times[name].append(time.perf_counter() - start)
            echoed, left = rig.collect(chunk), rig.drain()
            if echoed != chunk or left:
                raise QueueShort(f"{name}: {echoed} of {chunk} datagrams echoed, "
                                 f"{left} left unread")
    return times


def measure_gso(rig, contenders, chunk, rounds, scale=None):
    """As measure_send, but the receiver is emptied after each turn, and
    must hold exactly what was sent: the chunk, times ``scale[name]``."""
    names = list(contenders)
    times = {name: [] for name in names}
    rig.drain()
    for r in range(rounds):
        for name in _rotate(names, r):
            n = chunk * (scale or {}).get(name, 1)
            start = time.perf_counter()
            contenders[name](n)
            times[name].append(time.perf_counter() - start)
            arrived = rig.drain()
            if arrived != n:
                raise QueueShort(f"{name}: {arrived} of {n} datagrams arrived")
    return times


def measure_gro(rig, contenders, chunk, rounds):
    """As measure_receive, with two queues: the receiver with UDP_GRO on,
    filled with a chunk per contender that drains it, and the plain one."""
    names = list(contenders)
    times = {name: [] for name in names}
    margin = rig.segments       # one segmented send
    plain = sum(1 for _, on_plain in contenders.values() if on_plain)
    rig.drain()
    rig.drain(plain=True)
    for r in range(rounds):
        rig.fill(chunk * (len(names) - plain) + margin)
        if plain:
            rig.fill(chunk * plain + margin, plain=True)
        for name in _rotate(names, r):
            run, _ = contenders[name]
            start = time.perf_counter()
            try:
                run(chunk)
            except OSError as exc:      # SO_RCVTIMEO: the queue ran dry
                raise QueueShort(f"{name}: {exc}") from exc
            times[name].append(time.perf_counter() - start)
        for on_plain in {False, bool(plain)}:
            left = rig.drain(on_plain)
            if left != margin:
                raise QueueShort(f"{margin} datagrams should be left"
                                 f"{' on the plain receiver' if on_plain else ''}, found {left}")
    return times


TARGETS = [
    # (part, numerator, denominator, minimum ratio) from the project's issues
    ("recv", "hotsock recv_batch", "C recvmmsg loop", 0.95),
    ("recv", "hotsock recv_batch", "stdlib recvfrom", 2.2),
    ("recv", "hotsock recvfrom", "stdlib recvfrom", 1.15),
    ("recv", "hotsock recv_into", "stdlib recv_into", 1.0),
    ("send", "hotsock sendto", "stdlib sendto", 1.1),
    ("send", "hotsock send_batch", "C sendmmsg loop", 0.95),
    ("capture", "hotsock capture", "C recvmmsg loop", 0.9),
    ("echo", "hotsock echo", "C echo loop", 0.9),
    ("echo", "hotsock echo", "stdlib echo loop", 1.5),
    ("echo", "hotsock echo", "uvloop echo", 1.0),      # faster than uvloop
    ("gso", "hotsock blast gso", "C GSO send loop", 0.9),
    ("gso", "hotsock blast gso", "stdlib sendto", 30),
    ("gso", "hotsock send_batch gso", "stdlib sendto", 30),
    ("gro", "hotsock recv_batch gro", "C GRO recv loop", 0.9),
    ("gro", "hotsock recv_batch gro", "stdlib recvfrom", 30),
]


def _fitting_chunk(rig, chunk, queued):
    """*chunk*, or less if the receive queue cannot hold *queued* chunks (a
    small receive buffer: not root, low rmem_max)."""
    held = rig.capacity(chunk * queued + BATCH)
    if held < chunk * queued + BATCH:
        chunk = max(BATCH, (held * 3 // 4 // queued) // BATCH * BATCH)
    return chunk


def _median_us(times):
    return {name: statistics.median(values) * 1e6 for name, values in times.items()}


def _part(chunk, times, single=None):
    part = {"chunk": chunk,
            "rates": {name: chunk / statistics.median(values) for name, values in times.items()}}
    if single is not None:
        part["one_datagram_us"] = _median_us(single)
    return part


def _run_capture(size, chunk, rounds):
    rig = Rig(size)
    directory = tempfile.mkdtemp(prefix="hotsock-bench-")
    try:
        table = capture_contenders(rig, directory)
        contenders = {name: fn for name, (fn, _) in table.items()}
        after = {name: cleanup for name, (_, cleanup) in table.items()}
        chunk = _fitting_chunk(rig, chunk, len(contenders))
        times = measure_receive(rig, contenders, chunk, rounds, after)
        single = measure_receive(rig, contenders, 1, rounds, after)
    finally:
        rig.close()
        shutil.rmtree(directory, ignore_errors=True)
    return _part(chunk, times, single)


def _run_echo(size, chunk, rounds):
    rig = Rig(size, client=True)
    uv = None
    try:
        chunk = _fitting_chunk(rig, chunk, 1)
        contenders, uv = echo_contenders(rig, _uvloop())
        times = measure_echo(rig, contenders, chunk, rounds)
        single = measure_echo(rig, contenders, 1, rounds)
    finally:
        if uv is not None:
            uv.close()
        rig.close()
    return _part(chunk, times, single)


def _offload_unit(size):
    """GRO contenders take up to GRO_BUFFERS coalesced buffers of
    _segments(size) datagrams a call: gso/gro chunks are multiples of that,
    so that none takes datagrams queued for the next."""
    return GRO_BUFFERS * _segments(size)


def _offload_chunk(chunk, size):
    unit = _offload_unit(size)
    return max(unit, chunk // unit * unit)


def _fitting_offload_chunk(rig, chunk, queued, plain=False, single=False):
    """*chunk*, or less (whole units) if the queue cannot hold *queued* chunks."""
    wanted = chunk * queued + rig.segments
    held = rig.capacity(wanted, plain, single)
    if held < wanted:
        unit = _offload_unit(rig.size)
        chunk = max(unit, (held * 3 // 4 // queued) // unit * unit)
    return chunk


def _run_gso(size, chunk, rounds):
    rig = OffloadRig(size)
    try:
        # The stdlib's datagrams arrive one by one: the queue must hold a
        # chunk of those (the others' arrive coalesced, taking less room).
        chunk = _fitting_offload_chunk(rig, _offload_chunk(chunk, size), 1, single=True)
        contenders = gso_contenders(rig)
        # The segmented senders send GSO_SCALE chunks a turn: at ~20 M/s a
        # chunk takes 3 ms, where one call's fixed cost (signal handlers,
        # arrays: ~80 us) would weigh as it never does in a real run; the
        # stdlib's one-by-one sends need no more to be measured.
        scale = {name: GSO_SCALE for name in contenders if not name.startswith("stdlib")}
        times = measure_gso(rig, contenders, chunk, rounds, scale)
        single = measure_gso(rig, contenders, 1, rounds)
    finally:
        rig.close()
    part = _part(chunk, times, single)
    for name in scale:
        part["rates"][name] *= GSO_SCALE
    part["scale"] = GSO_SCALE
    return part


def _run_gro(size, chunk, rounds):
    rig = OffloadRig(size, plain=True)
    try:
        contenders = gro_contenders(rig)
        plain = sum(1 for _, on_plain in contenders.values() if on_plain)
        chunk = _offload_chunk(chunk, size)
        chunk = _fitting_offload_chunk(rig, chunk, len(contenders) - plain)
        chunk = _fitting_offload_chunk(rig, chunk, plain, plain=True)
        times = measure_gro(rig, contenders, chunk, rounds)
    finally:
        rig.close()
    return _part(chunk, times)


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


def run(size=64, chunk=1024, rounds=30, parts=PARTS, loop_chunk=LOOP_CHUNK,
        offload_chunk=OFFLOAD_CHUNK):
    """Run the benchmark; return a report dict (see ``--json``).

    *chunk* is for the recv and send parts, *loop_chunk* for capture and
    echo, *offload_chunk* for gso and gro.
    """
    report = {"size": size, "rounds": rounds, "batch": BATCH, "recv_bufsize": RECV_SIZE,
              "parts": {}, "ratios": [], "skipped": {}}
    results = report["parts"]
    if "recv" in parts or "send" in parts:
        rig = Rig(size)
        try:
            chunk = _fitting_chunk(rig, chunk, 8)
            if "recv" in parts:
                results["recv"] = _part(chunk, measure_receive(
                    rig, receive_contenders(rig), chunk, rounds))
            if "send" in parts:
                results["send"] = _part(chunk, measure_send(
                    rig, send_contenders(rig), chunk, rounds))
        finally:
            rig.close()
    # Each hot loop on sockets of its own: capture turns on timestamps,
    # uvloop makes the echo socket non-blocking.
    if "capture" in parts:
        results["capture"] = _run_capture(size, loop_chunk, rounds)
    if "echo" in parts:
        results["echo"] = _run_echo(size, loop_chunk, rounds)
    for part, runner in (("gso", _run_gso), ("gro", _run_gro)):
        if part in parts:
            why = offload_unavailable(part, size)
            if why is None:
                results[part] = runner(size, offload_chunk, rounds)
            else:
                report["skipped"][part] = why
    for part, a, b, target in TARGETS:
        rates = results.get(part, {}).get("rates", {})
        if a in rates and b in rates:
            report["ratios"].append({"part": part, "what": f"{a} / {b}",
                                     "ratio": rates[a] / rates[b], "target": target})
    return report


# part: (title, the contenders the others are compared with)
_TABLES = {
    "recv": ("receive: each contender drains its chunk from a queue filled beforehand",
             ("stdlib recvfrom", "C recvmmsg loop")),
    "send": ("send", ("stdlib sendto", "C sendmmsg loop")),
    "capture": ("capture: as receive, hotsock writing each chunk to a new capture file "
                "(hotsock.capture(sock, path, count=chunk)); the C capture loop does the same "
                "work in plain C", ("C recvmmsg loop", "C capture loop")),
    "echo": ("echo: each contender echoes a chunk queued on the server socket back to "
             "the client (hotsock.echo(sock, count=chunk))",
             ("stdlib echo loop", "C echo loop")),
    "gso": ("gso: each contender sends segmented sends of 64 datagrams (UDP_SEGMENT) -- "
            "the stdlib one by one -- to a receiver emptied after each turn; the segmented "
            f"senders send {GSO_SCALE} chunks a turn, the stdlib one (rates are datagrams/s)",
            ("stdlib sendto", "C GSO send loop")),
    "gro": ("gro: each contender drains its chunk, queued beforehand as coalesced buffers "
            "of 64 datagrams (UDP_GRO; 64 buffers of 64 KiB per call) -- the stdlib one by "
            "one from a socket without UDP_GRO, filled the same way",
            ("stdlib recvfrom", "C GRO recv loop")),
}


def format_report(report):
    lines = [f"hotsock bench: {report['size']}-byte datagrams on loopback; "
             f"{report['rounds']} rounds, median round; batches of {report['batch']}, "
             f"receive buffers of {report['recv_bufsize']} bytes (hotsock.capture and "
             f"hotsock.echo: their defaults)", ""]
    for part, (title, bases) in _TABLES.items():
        if part in report.get("skipped", {}):
            lines.append(f"{part}: skipped: {report['skipped'][part]}")
            lines.append("")
        if part not in report["parts"]:
            continue
        result = report["parts"][part]
        rates, single = result["rates"], result.get("one_datagram_us")
        lines.append(f"{title}; {result['chunk']} datagrams per contender per round")
        header = f"{'':24}{'M dgrams/s':>11}" + "".join(f"{'vs ' + b:>22}" for b in bases)
        if single:
            header += f"{'1-datagram call':>17}"
        lines.append(header)
        for name, rate in rates.items():
            line = f"{name:24}{rate / 1e6:11.3f}" + "".join(
                f"{rate / rates[b]:21.2f}x" for b in bases)
            if single:
                line += f"{single[name]:14.1f} us"
            lines.append(line)
        lines.append("")
    lines.append("targets:")
    for item in report["ratios"]:
        mark = "met" if item["ratio"] >= item["target"] else "MISSED"
        lines.append(f"  {item['what']:42} {item['ratio']:6.2f}  (>= {item['target']})  {mark}")
    return "\n".join(lines)


MAX_CHUNK = 1 << 24


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="hotsock bench",
        description="Datagram throughput of hotsock against the stdlib and plain C loops, "
                    "as ratios measured in one run on loopback.")
    parser.add_argument("--size", type=int, default=64, help="payload bytes (default 64)")
    parser.add_argument("--chunk", type=int, default=1024,
                        help="datagrams per contender per round, recv and send (default 1024)")
    parser.add_argument("--loop-chunk", type=int, default=LOOP_CHUNK,
                        help="datagrams per contender per round, capture and echo "
                             f"(one call of the hot loop; default {LOOP_CHUNK})")
    parser.add_argument("--offload-chunk", type=int, default=OFFLOAD_CHUNK,
                        help="datagrams per contender per round, gso and gro (rounded down "
                             f"to whole receive batches; default {OFFLOAD_CHUNK})")
    parser.add_argument("--rounds", type=int, default=30, help="rounds (default 30)")
    parser.add_argument("--only", choices=PARTS, help="run one part only")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    if not 0 <= args.size <= RECV_SIZE:
        parser.error(f"--size must be between 0 and {RECV_SIZE}")
    # Bounded above too: a chunk of 10**23 datagrams would only end in an overflow.
    if any(c < BATCH or c > MAX_CHUNK or c % BATCH
           for c in (args.chunk, args.loop_chunk, args.offload_chunk)) \
            or not 1 <= args.rounds <= 10000:
        parser.error(f"--chunk, --loop-chunk and --offload-chunk must be multiples of {BATCH} "
                     f"up to {MAX_CHUNK}; --rounds 1..10000")
    parts = (args.only,) if args.only else PARTS
    try:
        report = run(args.size, args.chunk, args.rounds, parts, args.loop_chunk,
                     args.offload_chunk)
    except QueueShort as exc:
        print(f"hotsock bench: datagrams were lost on loopback ({exc}); "
              "try a smaller --chunk", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
