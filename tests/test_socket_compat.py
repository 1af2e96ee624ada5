"""hotsock.socket against socket.socket: one suite, two implementations.

Tests either run on both classes through the ``impl`` fixture (conftest.py)
with explicit expectations, or run one scenario on both classes and compare
what happened (``same_on_both``): equal return values, exact types
included, or the same exception type, message and errno.

Real sockets on 127.0.0.1 and ::1 only.  Every receiver has a timeout, so a
bug makes a test fail instead of hanging the suite.

Sections: 1 round trips (UDP, TCP, AF_UNIX), 2 argument forms and buffer
types, 3 bad input side by side, 4 closed and adopted sockets, 5 timeouts
and non-blocking sockets, 6 signals (PEP 475), 7 ICMP errors on connected
UDP, 8 drop-in use (selectors, asyncio, factories), 9 the address caches.
"""
import array
import asyncio
import collections
import contextlib
import errno
import inspect
import os
import re
import select
import selectors
import signal
import socket
import sys
import threading
import time

import numpy as np
import pytest

import hotsock

AF_INET, AF_INET6, AF_UNIX = socket.AF_INET, socket.AF_INET6, socket.AF_UNIX
SOCK_DGRAM, SOCK_STREAM = socket.SOCK_DGRAM, socket.SOCK_STREAM
LOOPBACK = {AF_INET: "127.0.0.1", AF_INET6: "::1"}
FAMILIES = [pytest.param(AF_INET, id="ipv4"),
            pytest.param(AF_INET6, id="ipv6", marks=pytest.mark.ipv6)]
MODULE = {socket.socket: socket, hotsock.socket: hotsock}

TIMEOUT = 2.0           # the longest any receive waits: a bug fails, it cannot hang
BUFFER_BYTES = 1 << 18  # SO_RCVBUF/SO_SNDBUF: room for a 65507-byte datagram
FILL = 0xEE             # what receive buffers hold before a call
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="Linux-specific socket semantics")

# --- helpers ------------------------------------------------------------------------------

_PATTERN = bytes(range(251))    # a prime length: sizes never line up with it


def payload(size, tag=0):
    """*size* bytes of a pattern that depends on size and tag."""
    start = (size + 37 * tag) % len(_PATTERN)
    return (_PATTERN * (size // len(_PATTERN) + 2))[start:start + size]


P = payload(20)                 # the datagram of the argument-form tests


class Addr(str):
    """A stand-in for an address tuple in expected values (its ports vary)."""


PEER = Addr("<peer>")   # the sending peer's address, in expected results


def typed(value, names=None):
    """*value* with every nested item's exact type spelled out.

    ``b"x" == bytearray(b"x")`` and ``1 == True`` hold in Python, but not
    here.  Tuples found in *names* are replaced by their label, so that
    scenarios run on different ports compare equal.
    """
    if type(value) is Addr:
        return ("tuple", str(value))
    if names and type(value) in (tuple, str, bytes) and value in names:
        return (type(value).__name__, names[value])
    if isinstance(value, (tuple, list)):
        return (type(value).__name__, tuple(typed(v, names) for v in value))
    return (type(value).__name__, value)


def outcome(call, names=None):
    """What ``call()`` did: ('returned', typed value) or ('raised', type, message, errno)."""
    try:
        result = call()
    except Exception as exc:
        return ("raised", type(exc), str(exc), getattr(exc, "errno", None))
    return ("returned", typed(result, names))


def raised(exc_type, message, err=None):
    """The outcome of a call that raised exc_type(message)."""
    return ("raised", exc_type, message, err)


def same_on_both(scenario):
    """Run ``scenario(cls)`` for the stdlib class and for hotsock's; they must agree.

    Returns the stdlib's result, for the test to check that the scenario
    exercised what it meant to.
    """
    expected = scenario(socket.socket)
    actual = scenario(hotsock.socket)
    assert actual == expected, f"\nstdlib:  {expected!r}\nhotsock: {actual!r}"
    return expected


def wait_readable(sock, timeout=TIMEOUT):
    readable, _, _ = select.select([sock], [], [], timeout)
    assert readable, "nothing arrived in time"


def pending(sock):
    """The next datagram waiting on *sock* (read by the stdlib method), or None."""
    readable, _, _ = select.select([sock], [], [], 0)
    return socket.socket.recv(sock, 1 << 17) if readable else None


def adopt(cls, sock):
    """Move a stdlib socket's descriptor into a new *cls* socket."""
    return cls(sock.family, sock.type, sock.proto, fileno=sock.detach())


class Index:
    """Not an int, but usable as one (``__index__``)."""

    def __init__(self, value):
        self.value = value

    def __index__(self):
        return self.value


class Net:
    """Sockets made for one scenario, all closed at its end."""

    def __init__(self):
        self._sockets = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for sock in self._sockets:
            sock.close()

    def keep(self, sock, timeout=TIMEOUT):
        sock.settimeout(timeout)
        self._sockets.append(sock)
        return sock

    def udp(self, cls=socket.socket, family=AF_INET, timeout=TIMEOUT):
        """A *cls* UDP socket bound to the loopback address of *family*."""
        sock = self.keep(cls(family, SOCK_DGRAM), timeout)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, BUFFER_BYTES)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, BUFFER_BYTES)
        sock.bind((LOOPBACK[family], 0))
        return sock

    def udp_pair(self, cls, family=AF_INET, timeout=TIMEOUT):
        """(a *cls* UDP socket, a stdlib UDP peer), both bound on loopback."""
        return self.udp(cls, family, timeout), self.udp(socket.socket, family)

    def tcp_pair(self, cls, family=AF_INET):
        """A connected (client, accepted) pair of *cls* TCP sockets."""
        listener = self.keep(cls(family, SOCK_STREAM))
        listener.bind((LOOPBACK[family], 0))
        listener.listen(1)
        client = self.keep(cls(family, SOCK_STREAM))
        client.connect(listener.getsockname())
        server, _ = listener.accept()
        return client, self.keep(server)

    def unix_pair(self, cls, kind):
        """A connected AF_UNIX pair of *cls* sockets, via socket.socketpair."""
        a, b = socket.socketpair(AF_UNIX, kind)
        return self.keep(adopt(cls, a)), self.keep(adopt(cls, b))


@pytest.fixture
def net():
    with Net() as n:
        yield n


class Background(threading.Thread):
    """Run a function in a thread; ``result()`` returns its value or re-raises."""

    def __init__(self, fn, *args):
        super().__init__(daemon=True)
        self._fn, self._args = fn, args
        self._value = self._error = None
        self.start()

    def run(self):
        try:
            self._value = self._fn(*self._args)
        except BaseException as exc:
            self._error = exc

    def result(self, timeout=TIMEOUT * 2):
        self.join(timeout)
        assert not self.is_alive(), "background thread did not finish"
        if self._error is not None:
            raise self._error
        return self._value


class Delayed(threading.Thread):
    """Call *fn* *delay* seconds after *go* is set, unless cancelled first.

    The thread blocks SIGALRM, so that the alarms of the signal tests
    interrupt the main thread's call and never this thread's wait.
    """

    def __init__(self, delay, fn, go):
        super().__init__(daemon=True)
        self._delay, self._fn, self._go = delay, fn, go
        self._ready, self._cancelled = threading.Event(), threading.Event()
        self.start()
        assert self._ready.wait(TIMEOUT)

    def run(self):
        if hasattr(signal, "pthread_sigmask"):
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        self._ready.set()
        if self._go.wait(TIMEOUT * 5) and not self._cancelled.wait(self._delay):
            self._fn()

    def cancel(self):
        self._cancelled.set()
        self._go.set()
        self.join(TIMEOUT)


@contextlib.contextmanager
def timers(*schedule):
    """Threads that call fn, delay seconds after go(), for each (delay, fn).

    Yields go: call it right before the blocking call, so that the delays
    count from there even if this thread was slow to get there.
    """
    go = threading.Event()
    started = [Delayed(delay, fn, go) for delay, fn in schedule]
    try:
        yield go.set
    finally:
        for timer in started:
            timer.cancel()


# The four receive methods, called plainly: (sock, bufsize[, flags]).
RECEIVE_CALLS = {
    "recv": lambda s, n, flags=0: s.recv(n, flags),
    "recvfrom": lambda s, n, flags=0: s.recvfrom(n, flags),
    "recv_into": lambda s, n, flags=0: s.recv_into(bytearray(n), 0, flags),
    "recvfrom_into": lambda s, n, flags=0: s.recvfrom_into(bytearray(n), 0, flags),
}


def received(method, data, source=None):
    """What RECEIVE_CALLS[method] returns for the datagram *data* from *source*."""
    source = PEER if source is None else source
    return {"recv": data, "recvfrom": (data, source),
            "recv_into": len(data), "recvfrom_into": (len(data), source)}[method]


# --- 1. round trips -----------------------------------------------------------------------

SIZES = [0, 1, 64, 1500, 8192, 8193, 65507]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("room", ["exact", "roomy"])
@pytest.mark.parametrize("method", ["recv", "recvfrom", "recv_into", "recvfrom_into"])
def test_udp_receive_round_trip(net, impl, family, size, room, method):
    sock, peer = net.udp_pair(impl, family)
    data = payload(size)
    peer.sendto(data, sock.getsockname())
    bufsize = size if room == "exact" else 65536
    source = peer.getsockname()
    if method in ("recv", "recvfrom"):
        result = getattr(sock, method)(bufsize)
        expected = data if method == "recv" else (data, source)
    else:
        buf = bytearray([FILL]) * bufsize
        result = getattr(sock, method)(buf)
        expected = size if method == "recv_into" else (size, source)
        assert buf == data + bytearray([FILL]) * (bufsize - size)
    assert typed(result) == typed(expected)


SENDS = {
    "send": lambda s, data, dest: s.send(data),
    "sendto(data, addr)": lambda s, data, dest: s.sendto(data, dest),
    "sendto(data, flags, addr)": lambda s, data, dest: s.sendto(data, 0, dest),
}


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("method", list(SENDS))
def test_udp_send_round_trip(net, impl, family, size, method):
    sock, peer = net.udp_pair(impl, family)
    if method == "send":
        sock.connect(peer.getsockname())
    data = payload(size)
    assert typed(SENDS[method](sock, data, peer.getsockname())) == typed(size)
    assert peer.recvfrom(65536) == (data, sock.getsockname())


def send_all_and_shut(sock, data):
    """send() until all of *data* is out, then SHUT_WR; returns send()'s results."""
    counts = [sock.send(data)]
    while sum(counts) < len(data):
        counts.append(sock.send(data[sum(counts):]))
    sock.shutdown(socket.SHUT_WR)
    return counts


def read_to_eof(sock, method, chunk=65536):
    """recv() or recv_into() until end of stream."""
    parts = []
    buf = bytearray(chunk)
    while True:
        if method == "recv":
            part = sock.recv(chunk)
            assert type(part) is bytes
        else:
            n = sock.recv_into(buf)
            assert type(n) is int and 0 <= n <= chunk
            part = bytes(buf[:n])
        if not part:
            return b"".join(parts)
        parts.append(part)


def check_stream(sender, receiver, size, method):
    data = payload(size)
    writer = Background(send_all_and_shut, sender, data)
    assert read_to_eof(receiver, method) == data
    counts = writer.result()
    assert all(type(n) is int for n in counts)
    assert sum(counts) == size
    assert all(n > 0 for n in counts[1 if size == 0 else 0:])


STREAM_SIZES = [0, 1, 1500, 65507, 1 << 20]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("size", STREAM_SIZES)
@pytest.mark.parametrize("method", ["recv", "recv_into"])
def test_tcp_round_trip(net, impl, family, size, method):
    client, server = net.tcp_pair(impl, family)
    check_stream(client, server, size, method)
    check_stream(server, client, size, method)


@pytest.mark.parametrize("size", STREAM_SIZES)
@pytest.mark.parametrize("method", ["recv", "recv_into"])
def test_unix_stream_round_trip(net, impl, size, method):
    a, b = net.unix_pair(impl, SOCK_STREAM)
    check_stream(a, b, size, method)


@pytest.mark.parametrize("size", [0, 1, 8192, 8193, 65507])
def test_unix_datagram_round_trip(net, impl, size):
    a, b = net.unix_pair(impl, SOCK_DGRAM)
    for tag, method in enumerate(["recv", "recv_into", "recvfrom"]):
        data = payload(size, tag)
        assert typed(a.send(data)) == typed(size)
        if method == "recv_into":
            buf = bytearray(size + 1)
            assert typed(b.recv_into(buf)) == typed(size)
            assert buf[:size] == data
        else:
            result = getattr(b, method)(size + 1)
            assert typed(result) == typed(data if method == "recv" else (data, None))


@pytest.mark.parametrize("method", ["recvfrom", "recvfrom_into"])
def test_recvfrom_on_tcp_gives_no_address(method):
    def scenario(cls):
        with Net() as net:
            client, server = net.tcp_pair(cls)
            client.sendall(P)
            wait_readable(server)
            return outcome(lambda: RECEIVE_CALLS[method](server, 64))

    expected = (P, None) if method == "recvfrom" else (len(P), None)
    assert same_on_both(scenario) == ("returned", typed(expected))


def test_unix_datagram_paths_same_as_stdlib(tmp_path):
    # AF_UNIX addresses are not on the fast path: the stdlib handles them.
    def scenario(cls):
        with Net() as net:
            paths = [str(tmp_path / f"{cls.__module__}-{n}") for n in "ab"]
            a, b = (net.keep(cls(AF_UNIX, SOCK_DGRAM)) for _ in paths)
            a.bind(paths[0])
            b.bind(paths[1])
            names = {paths[0]: "<a>"}
            buf = bytearray(32)
            return [
                outcome(lambda: a.sendto(P, paths[1])),
                outcome(lambda: b.recvfrom(64), names),
                outcome(lambda: a.sendto(P, 0, paths[1].encode())),
                outcome(lambda: b.recvfrom_into(buf), names),
                outcome(lambda: a.sendto(P, ("127.0.0.1", 9))),
                outcome(lambda: a.sendto(P, str(tmp_path / "nobody"))),
            ]

    results = same_on_both(scenario)
    assert results[:4] == [("returned", typed(20)), ("returned", typed((P, "<a>"))),
                           ("returned", typed(20)), ("returned", typed((20, "<a>")))]


# --- 2. argument forms and buffers --------------------------------------------------------

def expect(value, peer_address):
    return typed(value, {peer_address: PEER})


@pytest.mark.parametrize("call, expected", [
    (lambda s: s.recv(64), P),
    (lambda s: s.recv(64, 0), P),
    (lambda s: s.recv(20), P),
    (lambda s: s.recv(Index(64)), P),
    (lambda s: s.recv(True), P[:1]),
    (lambda s: s.recvfrom(64), (P, PEER)),
    (lambda s: s.recvfrom(64, 0), (P, PEER)),
    (lambda s: s.recvfrom(Index(64), 0), (P, PEER)),
    (lambda s: s.recv(64, socket.MSG_DONTWAIT), P),
], ids=["recv(64)", "recv(64,0)", "recv(len)", "recv(Index)", "recv(True)",
        "recvfrom(64)", "recvfrom(64,0)", "recvfrom(Index,0)", "recv(64,DONTWAIT)"])
def test_receive_call_forms(net, impl, call, expected):
    sock, peer = net.udp_pair(impl)
    peer.sendto(P, sock.getsockname())
    assert expect(call(sock), peer.getsockname()) == typed(expected)


INTO_FORMS = [
    # (form, call(method, buffer), bytes written)
    ("(buf)", lambda m, b: m(b), 20),
    ("(buf, 0)", lambda m, b: m(b, 0), 20),
    ("(buf, 5)", lambda m, b: m(b, 5), 5),
    ("(buf, 32)", lambda m, b: m(b, 32), 20),
    ("(buf, 5, 0)", lambda m, b: m(b, 5, 0), 5),
    ("(buffer=buf)", lambda m, b: m(buffer=b), 20),
    ("(buf, nbytes=5)", lambda m, b: m(b, nbytes=5), 5),
    ("(buf, flags=0)", lambda m, b: m(b, flags=0), 20),
    ("(buf, 0, flags=0)", lambda m, b: m(b, 0, flags=0), 20),
    ("(buffer=buf, nbytes=5, flags=0)", lambda m, b: m(buffer=b, nbytes=5, flags=0), 5),
    ("(flags=0, nbytes=5, buffer=buf)", lambda m, b: m(flags=0, nbytes=5, buffer=b), 5),
    ("(buf, Index(5))", lambda m, b: m(b, Index(5)), 5),
]


@pytest.mark.parametrize("form, call, written", INTO_FORMS, ids=[f[0] for f in INTO_FORMS])
@pytest.mark.parametrize("method", ["recv_into", "recvfrom_into"])
def test_into_call_forms(net, impl, method, form, call, written):
    sock, peer = net.udp_pair(impl)
    peer.sendto(P, sock.getsockname())
    buf = bytearray([FILL]) * 32
    result = call(getattr(sock, method), buf)
    expected = written if method == "recv_into" else (written, PEER)
    assert expect(result, peer.getsockname()) == typed(expected)
    # nbytes smaller than the buffer: the rest of it is left alone.
    assert buf == P[:written] + bytearray([FILL]) * (32 - written)
    # The datagram was consumed whole, even when only part of it was read.
    assert pending(sock) is None


BUFFERS = {
    "bytearray": lambda n: bytearray(n),
    "memoryview": lambda n: memoryview(bytearray(n)),
    "memoryview-slice": lambda n: memoryview(bytearray(n + 8))[4:n + 4],
    "array-B": lambda n: array.array("B", bytes(n)),
    "array-i": lambda n: array.array("i", bytes(n)),
    "numpy-uint8": lambda n: np.zeros(n, np.uint8),
    "numpy-int32-2d": lambda n: np.zeros((2, n // 8), np.int32),
    "numpy-row-of-2d": lambda n: np.zeros((3, n), np.uint8)[1],
}


@pytest.mark.parametrize("make", BUFFERS.values(), ids=list(BUFFERS))
@pytest.mark.parametrize("method", ["recv_into", "recvfrom_into"])
def test_receive_into_buffer_types(net, impl, method, make):
    sock, peer = net.udp_pair(impl)
    peer.sendto(P, sock.getsockname())
    buf = make(32)
    result = getattr(sock, method)(buf)
    expected = 20 if method == "recv_into" else (20, PEER)
    assert expect(result, peer.getsockname()) == typed(expected)
    assert bytes(memoryview(buf)) == P + bytes(12)


DATA_TYPES = {
    "bytes": bytes,
    "bytearray": bytearray,
    "memoryview": memoryview,
    "memoryview-slice": lambda d: memoryview(b"xx" + d + b"yy")[2:-2],
    "array-B": lambda d: array.array("B", d),
    "numpy-uint8": lambda d: np.frombuffer(d, np.uint8),
    "numpy-int16-2d": lambda d: np.frombuffer(d, np.int16).reshape(2, 5),
}


@pytest.mark.parametrize("convert", DATA_TYPES.values(), ids=list(DATA_TYPES))
@pytest.mark.parametrize("method", list(SENDS))
def test_send_data_types(net, impl, method, convert):
    sock, peer = net.udp_pair(impl)
    if method == "send":
        sock.connect(peer.getsockname())
    assert typed(SENDS[method](sock, convert(P), peer.getsockname())) == typed(len(P))
    assert peer.recvfrom(64) == (P, sock.getsockname())


# Flags as the socket module's IntFlag constants and as plain ints.
FLAG_FORMS = [pytest.param(lambda flag: flag, id="IntFlag"),
              pytest.param(int, id="int")]


@pytest.mark.parametrize("flag_form", FLAG_FORMS)
@pytest.mark.parametrize("method", list(RECEIVE_CALLS))
def test_peek_then_read(net, impl, method, flag_form):
    sock, peer = net.udp_pair(impl)
    peer.sendto(P, sock.getsockname())
    bufs = [bytearray(64), bytearray(64)]
    peek = flag_form(socket.MSG_PEEK)
    if method in ("recv", "recvfrom"):
        results = [getattr(sock, method)(64, peek), getattr(sock, method)(64)]
        expected = P if method == "recv" else (P, PEER)
    else:
        results = [getattr(sock, method)(bufs[0], 0, peek), getattr(sock, method)(bufs[1])]
        expected = 20 if method == "recv_into" else (20, PEER)
        assert bufs[0] == bufs[1] == P + bytes(44)
    assert [expect(r, peer.getsockname()) for r in results] == [typed(expected)] * 2
    assert pending(sock) is None


@pytest.mark.parametrize("method", list(RECEIVE_CALLS))
@pytest.mark.parametrize("bufsize, size", [(8, 20), (8193, 9000)])
def test_long_datagram_is_truncated(net, impl, method, bufsize, size):
    sock, peer = net.udp_pair(impl)
    first, second = payload(size, 1), payload(size, 2)
    for data in (first, second):
        peer.sendto(data, sock.getsockname())
    result = RECEIVE_CALLS[method](sock, bufsize)
    expected = {"recv": first[:bufsize], "recvfrom": (first[:bufsize], PEER),
                "recv_into": bufsize, "recvfrom_into": (bufsize, PEER)}[method]
    assert expect(result, peer.getsockname()) == typed(expected)
    # The rest of the first datagram is gone: the second comes next, whole.
    assert sock.recv(65536) == second


@linux_only
@pytest.mark.parametrize("flag_form", FLAG_FORMS)
@pytest.mark.parametrize("method", ["recv_into", "recvfrom_into"])
@pytest.mark.parametrize("bufsize, size", [(8, 20), (8193, 9000)])
def test_msg_trunc_into_returns_real_length(net, impl, method, bufsize, size, flag_form):
    sock, peer = net.udp_pair(impl)
    data = payload(size)
    peer.sendto(data, sock.getsockname())
    buf = bytearray(bufsize)
    result = getattr(sock, method)(buf, 0, flag_form(socket.MSG_TRUNC))
    expected = size if method == "recv_into" else (size, PEER)
    assert expect(result, peer.getsockname()) == typed(expected)
    assert buf == data[:bufsize]


@linux_only
@pytest.mark.parametrize("flag_form", FLAG_FORMS)
@pytest.mark.parametrize("method", ["recv", "recvfrom"])
@pytest.mark.parametrize("bufsize, size", [(8, 20), (8193, 9000)])
def test_msg_trunc_bytes_has_real_length(net, impl, method, bufsize, size, flag_form):
    # The stdlib grows the result to the real length; the bytes past bufsize
    # were never received, so only the length and the prefix are compared.
    sock, peer = net.udp_pair(impl)
    data = payload(size)
    peer.sendto(data, sock.getsockname())
    result = getattr(sock, method)(bufsize, flag_form(socket.MSG_TRUNC))
    received = result if method == "recv" else result[0]
    assert type(received) is bytes and len(received) == size
    assert received[:bufsize] == data[:bufsize]
    if impl is hotsock.socket and hotsock.features()["direct_socket_access"]:
        # Documented for the compiled path: zeros where the stdlib leaves
        # uninitialised memory.  (The method-call fallback is the stdlib's.)
        assert received[bufsize:] == bytes(size - bufsize)


# --- 3. bad input, side by side -----------------------------------------------------------

def _nd(*shape, **kw):
    return np.zeros(shape, np.uint8, **kw)


class Int(int):
    """An int subclass (as IntFlag constants and bool are)."""


# (id, call(sock, peer address), exception the stdlib raises, or None if it returns)
MISUSE = [
    # sizes
    ("recv(-1)", lambda s, a: s.recv(-1), ValueError),
    ("recvfrom(-1)", lambda s, a: s.recvfrom(-1), ValueError),
    ("recv_into(buf,-1)", lambda s, a: s.recv_into(bytearray(32), -1), ValueError),
    ("recvfrom_into(buf,-1)", lambda s, a: s.recvfrom_into(bytearray(32), -1), ValueError),
    ("recv_into(nbytes=-1)", lambda s, a: s.recv_into(bytearray(32), nbytes=-1), ValueError),
    ("recv_into(buf,33)", lambda s, a: s.recv_into(bytearray(32), 33), ValueError),
    ("recvfrom_into(buf,33)", lambda s, a: s.recvfrom_into(bytearray(32), 33), ValueError),
    ("recv_into(empty,1)", lambda s, a: s.recv_into(bytearray(), 1), ValueError),
    ("recv(1.5)", lambda s, a: s.recv(1.5), TypeError),
    ("recv('1')", lambda s, a: s.recv("1"), TypeError),
    ("recv(None)", lambda s, a: s.recv(None), TypeError),
    ("recvfrom(1.5)", lambda s, a: s.recvfrom(1.5), TypeError),
    ("recvfrom('1')", lambda s, a: s.recvfrom("1"), TypeError),
    ("recv_into(buf,5.0)", lambda s, a: s.recv_into(bytearray(32), 5.0), TypeError),
    ("recvfrom_into(buf,'5')", lambda s, a: s.recvfrom_into(bytearray(32), "5"), TypeError),
    ("recv(2**63)", lambda s, a: s.recv(2**63), OverflowError),
    ("recv(2**100)", lambda s, a: s.recv(2**100), OverflowError),
    ("recv(-2**63-1)", lambda s, a: s.recv(-2**63 - 1), OverflowError),
    ("recv(maxsize)", lambda s, a: s.recv(sys.maxsize), OverflowError),
    ("recvfrom(2**63)", lambda s, a: s.recvfrom(2**63), OverflowError),
    ("recvfrom(2**100)", lambda s, a: s.recvfrom(2**100), OverflowError),
    ("recv_into(buf,2**63)", lambda s, a: s.recv_into(bytearray(32), 2**63), OverflowError),
    ("recvfrom_into(buf,2**100)",
     lambda s, a: s.recvfrom_into(bytearray(32), 2**100), OverflowError),
    # flags
    ("recv(64,2**31)", lambda s, a: s.recv(64, 2**31), OverflowError),
    ("recv(64,2**63)", lambda s, a: s.recv(64, 2**63), OverflowError),
    ("recv(64,2**100)", lambda s, a: s.recv(64, 2**100), OverflowError),
    ("recv(64,-2**31-1)", lambda s, a: s.recv(64, -2**31 - 1), OverflowError),
    ("recvfrom(64,2**63)", lambda s, a: s.recvfrom(64, 2**63), OverflowError),
    ("recv_into(buf,0,2**63)", lambda s, a: s.recv_into(bytearray(32), 0, 2**63), OverflowError),
    ("recvfrom_into(flags=2**100)",
     lambda s, a: s.recvfrom_into(bytearray(32), flags=2**100), OverflowError),
    ("recv(64,0.0)", lambda s, a: s.recv(64, 0.0), TypeError),
    ("recvfrom(64,None)", lambda s, a: s.recvfrom(64, None), TypeError),
    ("recv_into(buf,0,'0')", lambda s, a: s.recv_into(bytearray(32), 0, "0"), TypeError),
    ("send(x,2**63)", lambda s, a: s.send(b"x", 2**63), OverflowError),
    ("send(x,1.0)", lambda s, a: s.send(b"x", 1.0), TypeError),
    ("sendto(x,2**63,addr)", lambda s, a: s.sendto(b"x", 2**63, a), OverflowError),
    ("sendto(x,2**100,addr)", lambda s, a: s.sendto(b"x", 2**100, a), OverflowError),
    ("sendto(x,'0',addr)", lambda s, a: s.sendto(b"x", "0", a), TypeError),
    ("sendto(x,None,addr)", lambda s, a: s.sendto(b"x", None, a), TypeError),
    # buffers and data
    ("recv_into(bytes)", lambda s, a: s.recv_into(bytes(32)), TypeError),
    ("recvfrom_into(bytes)", lambda s, a: s.recvfrom_into(bytes(32)), TypeError),
    ("recv_into(readonly-mv)",
     lambda s, a: s.recv_into(memoryview(bytearray(32)).toreadonly()), TypeError),
    ("recv_into(mv[::2])", lambda s, a: s.recv_into(memoryview(bytearray(64))[::2]), TypeError),
    ("recvfrom_into(mv[::2])",
     lambda s, a: s.recvfrom_into(memoryview(bytearray(64))[::2]), TypeError),
    ("recv_into(np[::2])", lambda s, a: s.recv_into(_nd(64)[::2]), TypeError),
    ("recvfrom_into(np-F-order)",
     lambda s, a: s.recvfrom_into(_nd(4, 8, order="F")), TypeError),
    ("recv_into(np-readonly)",
     lambda s, a: s.recv_into(np.frombuffer(bytes(32), np.uint8)), TypeError),
    ("recv_into(str)", lambda s, a: s.recv_into("x" * 32), TypeError),
    ("recv_into(None)", lambda s, a: s.recv_into(None), TypeError),
    ("send(str)", lambda s, a: s.send("x"), TypeError),
    ("sendto(str,addr)", lambda s, a: s.sendto("x", a), TypeError),
    ("sendto(str,0,addr)", lambda s, a: s.sendto("x", 0, a), TypeError),
    ("sendto(None,addr)", lambda s, a: s.sendto(None, a), TypeError),
    ("sendto(int,addr)", lambda s, a: s.sendto(3, a), TypeError),
    # "y*" lets the exporter's own error through
    ("send(mv[::2])", lambda s, a: s.send(memoryview(bytes(8))[::2]), BufferError),
    ("sendto(mv[::2],addr)", lambda s, a: s.sendto(memoryview(bytes(8))[::2], a), BufferError),
    ("sendto(np-F-order,addr)", lambda s, a: s.sendto(_nd(4, 8, order="F"), a), ValueError),
    ("send(unconnected)", lambda s, a: s.send(b"x"), OSError),
    ("sendto(65508 bytes)", lambda s, a: s.sendto(bytes(65508), a), OSError),
    # keywords
    ("recv(bufsize=1)", lambda s, a: s.recv(bufsize=1), TypeError),
    ("recv(64,flags=0)", lambda s, a: s.recv(64, flags=0), TypeError),
    ("recvfrom(bufsize=1)", lambda s, a: s.recvfrom(bufsize=1), TypeError),
    ("recv_into(foo=1)", lambda s, a: s.recv_into(foo=1), TypeError),
    ("recv_into(buf,foo=1)", lambda s, a: s.recv_into(bytearray(32), foo=1), TypeError),
    ("recv_into(buf,buffer=buf)",
     lambda s, a: s.recv_into(bytearray(32), buffer=bytearray(32)), TypeError),
    ("recv_into(nbytes=5)", lambda s, a: s.recv_into(nbytes=5), TypeError),
    ("recvfrom_into(foo=1)", lambda s, a: s.recvfrom_into(foo=1), TypeError),
    ("recvfrom_into(buf,5,nbytes=5)",
     lambda s, a: s.recvfrom_into(bytearray(32), 5, nbytes=5), TypeError),
    ("send(data=x)", lambda s, a: s.send(data=b"x"), TypeError),
    ("sendto(x,address=addr)", lambda s, a: s.sendto(b"x", address=a), TypeError),
    ("sendto(x,0,address=addr)", lambda s, a: s.sendto(b"x", 0, address=a), TypeError),
    # argument counts
    ("recv()", lambda s, a: s.recv(), TypeError),
    ("recv(1,2,3)", lambda s, a: s.recv(1, 2, 3), TypeError),
    ("recvfrom()", lambda s, a: s.recvfrom(), TypeError),
    ("recvfrom(1,2,3)", lambda s, a: s.recvfrom(1, 2, 3), TypeError),
    ("recv_into()", lambda s, a: s.recv_into(), TypeError),
    ("recv_into(buf,0,0,0)", lambda s, a: s.recv_into(bytearray(32), 0, 0, 0), TypeError),
    ("recvfrom_into()", lambda s, a: s.recvfrom_into(), TypeError),
    ("recvfrom_into(buf,0,0,0)",
     lambda s, a: s.recvfrom_into(bytearray(32), 0, 0, 0), TypeError),
    ("send()", lambda s, a: s.send(), TypeError),
    ("send(x,0,0)", lambda s, a: s.send(b"x", 0, 0), TypeError),
    ("sendto()", lambda s, a: s.sendto(), TypeError),
    ("sendto(x)", lambda s, a: s.sendto(b"x"), TypeError),
    ("sendto(x,0,addr,1)", lambda s, a: s.sendto(b"x", 0, a, 1), TypeError),
    # unusual but accepted
    ("recv_into(buf,True)", lambda s, a: s.recv_into(bytearray(32), True), None),
    ("recv(int-subclass)", lambda s, a: s.recv(Int(64)), None),
    ("recv(numpy.int64)", lambda s, a: s.recv(np.int64(64)), None),
    ("recv(True,0)", lambda s, a: s.recv(True, 0), None),
    ("recv(int-subclass -1)", lambda s, a: s.recv(Int(-1)), ValueError),
    ("recv(int-subclass 2**63)", lambda s, a: s.recv(Int(2**63)), OverflowError),
    ("recv(64,int-subclass 2**31)", lambda s, a: s.recv(64, Int(2**31)), OverflowError),
    ("recv_into(buf,int-subclass 33)", lambda s, a: s.recv_into(bytearray(32), Int(33)),
     ValueError),
    ("sendto(x,Index(0),addr)", lambda s, a: s.sendto(b"x", Index(0), a), None),
    ("sendto(x,False,addr)", lambda s, a: s.sendto(b"x", False, a), None),
]


@pytest.mark.parametrize("call, exc_type", [m[1:] for m in MISUSE], ids=[m[0] for m in MISUSE])
def test_misuse_same_as_stdlib(call, exc_type):
    def scenario(cls):
        with Net() as net:
            sock, peer = net.udp_pair(cls, timeout=0.5)
            peer.sendto(P, sock.getsockname())
            wait_readable(sock)
            names = {peer.getsockname(): PEER}
            result = outcome(lambda: call(sock, peer.getsockname()), names)
            # What the call left behind: the waiting datagram, and what it sent.
            return result, pending(sock), pending(peer)

    result = same_on_both(scenario)[0]
    if exc_type is None:
        assert result[0] == "returned"
    else:
        assert result[0] == "raised" and issubclass(result[1], exc_type), result


RECEIVER = object()     # stands for the receiver's port in the address tables
SENDER = Addr("<sender>")


def _at(host, port=RECEIVER, *rest):
    """An address factory: (host, port, *rest), RECEIVER replaced by the receiver's port."""
    return lambda p: (host, p if port is RECEIVER else port) + rest


# (id, address(receiver port), exception the stdlib raises, or None if it sends)
V4_ADDRESSES = [
    ("numeric", _at("127.0.0.1"), None),
    ("not-a-tuple-str", lambda p: f"127.0.0.1:{p}", TypeError),
    ("not-a-tuple-list", lambda p: ["127.0.0.1", p], TypeError),
    ("not-a-tuple-None", lambda p: None, TypeError),
    ("1-tuple", lambda p: ("127.0.0.1",), TypeError),
    ("3-tuple", _at("127.0.0.1", RECEIVER, 0), TypeError),
    ("4-tuple", _at("127.0.0.1", RECEIVER, 0, 0), TypeError),
    ("port-str", lambda p: ("127.0.0.1", str(p)), TypeError),
    ("port-float", lambda p: ("127.0.0.1", float(p)), TypeError),
    ("port-None", _at("127.0.0.1", None), TypeError),
    ("port-minus-1", _at("127.0.0.1", -1), OverflowError),
    ("port-65536", _at("127.0.0.1", 65536), OverflowError),
    ("port-2**70", _at("127.0.0.1", 2**70), OverflowError),
    ("port-Index", lambda p: ("127.0.0.1", Index(p)), None),
    ("host-None", _at(None), TypeError),
    ("host-123", _at(123), TypeError),
    ("host-NUL", _at("127.0.0.1\0"), TypeError),
    ("host-NUL-inside", _at("127.0\0.0.1"), TypeError),
    ("host-bytes", _at(b"127.0.0.1"), None),
    ("host-bytearray", _at(bytearray(b"127.0.0.1")), None),
    ("host-bytes-NUL", _at(b"127.0.0.1\0"), TypeError),
    ("host-str-subclass", _at(type("Str", (str,), {})("127.0.0.1")), None),
    ("tuple-subclass", lambda p: type("Addr", (tuple,), {})(("127.0.0.1", p)), None),
    ("ipv6-host", _at("::1"), socket.gaierror),
    ("ipv6-4-tuple", _at("::1", RECEIVER, 0, 0), TypeError),
    ("empty-host", _at(""), None),
    ("broadcast", _at("<broadcast>"), PermissionError),
    ("localhost", _at("localhost"), None),
    ("short-form-127.1", _at("127.1"), None),
]

V6_ADDRESSES = [
    ("2-tuple", _at("::1"), None),
    ("3-tuple", _at("::1", RECEIVER, 0), None),
    ("4-tuple", _at("::1", RECEIVER, 0, 0), None),
    ("flowinfo-0xfffff", _at("::1", RECEIVER, 0xFFFFF, 0), None),
    ("flowinfo-1<<20", _at("::1", RECEIVER, 1 << 20, 0), OverflowError),
    ("flowinfo-minus-1", _at("::1", RECEIVER, -1, 0), OverflowError),
    ("flowinfo-str", _at("::1", RECEIVER, "0", 0), TypeError),
    ("scope-2**32", _at("::1", RECEIVER, 0, 2**32), None),
    ("scope-minus-1", _at("::1", RECEIVER, 0, -1), None),
    ("1-tuple", lambda p: ("::1",), TypeError),
    ("5-tuple", _at("::1", RECEIVER, 0, 0, 0), TypeError),
    ("not-a-tuple", lambda p: "::1", TypeError),
    ("port-minus-1", _at("::1", -1), OverflowError),
    ("port-65536", _at("::1", 65536, 0, 0), OverflowError),
    ("port-2**70", _at("::1", 2**70), OverflowError),
    ("host-None", _at(None, RECEIVER, 0, 0), TypeError),
    ("host-NUL", _at("::1\0", RECEIVER, 0, 0), TypeError),
    ("host-bytes", _at(b"::1", RECEIVER, 0, 0), None),
    ("ipv4-host", _at("127.0.0.1"), socket.gaierror),
    ("ipv4-host-4-tuple", _at("127.0.0.1", RECEIVER, 0, 0), socket.gaierror),
    ("v4-mapped", _at("::ffff:127.0.0.1", RECEIVER, 0, 0), OSError),
    ("empty-host", _at("", RECEIVER, 0, 0), None),
    ("broadcast", _at("<broadcast>"), OSError),
]


def _address_cases(family, table):
    marks = [pytest.mark.ipv6] if family == AF_INET6 else []
    prefix = "ipv4" if family == AF_INET else "ipv6"
    return [pytest.param(family, make, exc, id=f"{prefix}-{name}", marks=marks)
            for name, make, exc in table]


@pytest.mark.parametrize("cache", ["cold", "warm"])
@pytest.mark.parametrize("family, make_address, exc_type",
                         _address_cases(AF_INET, V4_ADDRESSES)
                         + _address_cases(AF_INET6, V6_ADDRESSES))
def test_sendto_address_same_as_stdlib(family, make_address, exc_type, cache):
    def scenario(cls):
        with Net() as net:
            sock, receiver = net.udp_pair(cls, family)
            if cache == "warm":     # the receiver's plain address was used just before
                sock.sendto(b"warm-up", receiver.getsockname())
                assert receiver.recv(64) == b"warm-up"
            address = make_address(receiver.getsockname()[1])
            result = outcome(lambda: sock.sendto(P, address))
            arrived = None
            if result[0] == "returned":
                wait_readable(receiver)
                arrived = typed(receiver.recvfrom(64), {sock.getsockname(): SENDER})
            return result, arrived, pending(receiver)

    result, arrived, _ = same_on_both(scenario)
    if exc_type is None:
        assert result == ("returned", typed(len(P)))
        assert arrived == typed((P, SENDER))
    else:
        assert result[0] == "raised" and issubclass(result[1], exc_type), result
        assert arrived is None


# --- 4. closed and adopted sockets --------------------------------------------------------

# Valid calls of the six methods: (sock, destination address).
SIX_CALLS = {
    "recv": lambda s, a: s.recv(64),
    "recvfrom": lambda s, a: s.recvfrom(64),
    "recv_into": lambda s, a: s.recv_into(bytearray(64)),
    "recvfrom_into": lambda s, a: s.recvfrom_into(bytearray(64)),
    "send": lambda s, a: s.send(b"x"),
    "sendto": lambda s, a: s.sendto(b"x", a),
    "sendto-flags": lambda s, a: s.sendto(b"x", 0, a),
}


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("how", ["close", "detach", "used-then-close"])
@pytest.mark.parametrize("method", list(SIX_CALLS))
def test_methods_on_closed_socket(family, how, method):
    def scenario(cls):
        with Net() as net:
            sock, peer = net.udp_pair(cls, family)
            dest = peer.getsockname()
            if how == "used-then-close":    # the address caches warmed up
                assert sock.sendto(b"a", dest) == 1
                peer.sendto(b"b", sock.getsockname())
                assert sock.recvfrom(64) == (b"b", dest)
                sock.connect(dest)
                assert sock.send(b"c") == 1
            if how == "detach":
                socket.socket(fileno=sock.detach()).close()
            else:
                sock.close()
            return outcome(lambda: SIX_CALLS[method](sock, dest))

    result = same_on_both(scenario)
    assert result[:2] == ("raised", OSError) and result[3] == errno.EBADF, result


@pytest.mark.parametrize("family", FAMILIES)
def test_socket_from_detached_fd(net, impl, family):
    original = impl(family, SOCK_DGRAM)
    original.bind((LOOPBACK[family], 0))
    address = original.getsockname()
    sock = net.keep(impl(fileno=original.detach()))
    assert (type(sock), sock.family, sock.type, sock.getsockname()) == (
        impl, family, SOCK_DGRAM, address)
    peer = net.udp(family=family)
    for tag, method in enumerate(RECEIVE_CALLS):
        data = payload(30, tag)
        peer.sendto(data, address)
        result = RECEIVE_CALLS[method](sock, 64)
        assert typed(result, {peer.getsockname(): PEER}) == typed(received(method, data))
    assert sock.sendto(P, peer.getsockname()) == 20
    assert peer.recvfrom(64) == (P, address)
    # The detached object has no descriptor left: it fails like a closed socket.
    result = outcome(lambda: original.recv(64))
    assert result[:2] == ("raised", OSError) and result[3] == errno.EBADF


@pytest.mark.parametrize("method", list(SIX_CALLS))
def test_methods_on_unconnected_stream(method):
    def scenario(cls):
        with Net() as net:
            sock = net.keep(cls(AF_INET, SOCK_STREAM))
            return outcome(lambda: SIX_CALLS[method](sock, ("127.0.0.1", 9)))

    result = same_on_both(scenario)
    assert result[0] == "raised" and issubclass(result[1], OSError), result


def test_stdlib_descriptor_adopted_by_hotsock(net):
    std = net.udp(socket.socket)
    address = std.getsockname()
    sock = net.keep(hotsock.socket(fileno=std.detach()))
    peer = net.udp()
    peer.sendto(P, address)
    assert sock.recvfrom(64) == (P, peer.getsockname())
    assert sock.sendto(P, peer.getsockname()) == 20
    assert peer.recvfrom(64) == (P, address)


# --- 5. timeouts and non-blocking sockets -------------------------------------------------

@pytest.mark.parametrize("method", list(RECEIVE_CALLS))
def test_timeout_on_empty_socket(net, impl, method):
    sock = net.udp(impl, timeout=0.2)
    start = time.monotonic()
    result = outcome(lambda: RECEIVE_CALLS[method](sock, 64))
    elapsed = time.monotonic() - start
    assert result == raised(socket.timeout, "timed out")
    assert 0.15 <= elapsed < 2.0


@pytest.mark.parametrize("method", ["recv", "recv_into"])
def test_timeout_on_empty_stream(net, impl, method):
    client, server = net.tcp_pair(impl)
    server.settimeout(0.2)
    start = time.monotonic()
    result = outcome(lambda: RECEIVE_CALLS[method](server, 64))
    elapsed = time.monotonic() - start
    assert result == raised(socket.timeout, "timed out")
    assert 0.15 <= elapsed < 2.0


EAGAIN_MESSAGE = str(BlockingIOError(errno.EAGAIN, os.strerror(errno.EAGAIN)))


@pytest.mark.parametrize("how", ["setblocking(False)", "settimeout(0)", "MSG_DONTWAIT"])
@pytest.mark.parametrize("method", list(RECEIVE_CALLS))
def test_nonblocking_receive_on_empty_socket(method, how):
    def scenario(cls):
        with Net() as net:
            sock = net.udp(cls)
            flags = 0
            if how == "setblocking(False)":
                sock.setblocking(False)
            elif how == "settimeout(0)":
                sock.settimeout(0)
            else:
                sock.settimeout(None)
                flags = socket.MSG_DONTWAIT
            return outcome(lambda: RECEIVE_CALLS[method](sock, 64, flags))

    assert same_on_both(scenario) == raised(BlockingIOError, EAGAIN_MESSAGE, errno.EAGAIN)


@pytest.mark.parametrize("mode", ["timeout", "non-blocking"])
def test_send_on_full_stream(net, impl, mode):
    client, server = net.tcp_pair(impl)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    if mode == "timeout":
        client.settimeout(0.2)
    else:
        client.setblocking(False)
    chunk = bytes(65536)
    for _ in range(4000):       # until the peer's window and our buffer are full
        start = time.monotonic()
        result = outcome(lambda: client.send(chunk))
        elapsed = time.monotonic() - start
        if result[0] == "raised":
            break
        assert result[1][0] == "int" and 0 < result[1][1] <= len(chunk)
    else:
        pytest.fail("the send buffer never filled up")
    if mode == "timeout":
        assert result == raised(socket.timeout, "timed out")
        assert 0.15 <= elapsed < 2.0
    else:
        assert result == raised(BlockingIOError, EAGAIN_MESSAGE, errno.EAGAIN)


@pytest.mark.parametrize("method", list(RECEIVE_CALLS))
def test_datagram_arriving_during_wait(net, impl, method):
    sock, peer = net.udp_pair(impl, timeout=1.0)
    with timers((0.1, lambda: peer.sendto(P, sock.getsockname()))) as go:
        start = time.monotonic()
        go()
        result = RECEIVE_CALLS[method](sock, 64)
        elapsed = time.monotonic() - start
    assert typed(result, {peer.getsockname(): PEER}) == typed(received(method, P))
    assert 0.05 <= elapsed < 1.0


# --- 6. signals: EINTR is retried, handler exceptions propagate (PEP 475) -----------------

needs_itimer = pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs setitimer")


class HandlerError(Exception):
    pass


class Alarms:
    """The SIGALRM handler: counts its calls; raises once when asked to.

    After *limit* calls it stops the timer, so that a call that restarts its
    timeout on every signal still ends (and fails its test) instead of hanging.
    """

    def __init__(self, limit):
        self.calls = 0
        self.limit = limit
        self.raise_at = None    # the call count at which to raise HandlerError

    def __call__(self, signum, frame):
        self.calls += 1
        if self.calls >= self.limit:
            signal.setitimer(signal.ITIMER_REAL, 0, 0)
        if self.calls == self.raise_at:
            raise HandlerError("raised by the signal handler")


@contextlib.contextmanager
def alarms(every, limit=40):
    """SIGALRM every *every* seconds (setitimer), at most *limit* times."""
    handler = Alarms(limit)
    previous = signal.signal(signal.SIGALRM, handler)
    try:
        signal.setitimer(signal.ITIMER_REAL, every, every)
        yield handler
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0, 0)
        signal.signal(signal.SIGALRM, previous)


@needs_itimer
@pytest.mark.parametrize("timeout", [None, 1.0])
@pytest.mark.parametrize("method", ["recvfrom", "recv_into"])
def test_signal_during_blocking_receive_is_retried(net, impl, method, timeout):
    sock, peer = net.udp_pair(impl, timeout=timeout)
    send = lambda data: lambda: peer.sendto(data, sock.getsockname())   # noqa: E731
    # The second datagram only bounds the wait should the first one be lost.
    with timers((0.3, send(P)), (3.0, send(b"rescue"))) as go, alarms(0.05) as handler:
        start, before = time.monotonic(), handler.calls
        go()
        result = RECEIVE_CALLS[method](sock, 64)
        elapsed, during = time.monotonic() - start, handler.calls - before
    assert typed(result, {peer.getsockname(): PEER}) == typed(received(method, P))
    assert during >= 3
    assert 0.25 <= elapsed < 1.0


@needs_itimer
@pytest.mark.parametrize("timeout", [None, 1.0])
def test_signal_handler_exception_propagates(net, impl, timeout):
    sock, peer = net.udp_pair(impl, timeout=timeout)
    rescue = lambda: peer.sendto(b"rescue", sock.getsockname())    # noqa: E731
    with timers((1.5, rescue)) as go, alarms(0.05) as handler:
        handler.raise_at = handler.calls + 3    # the third alarm during the call
        start = time.monotonic()
        go()
        result = outcome(lambda: sock.recvfrom(64))
        elapsed = time.monotonic() - start
    assert result == raised(HandlerError, "raised by the signal handler")
    assert handler.calls >= 3
    assert elapsed < 1.0


@needs_itimer
@pytest.mark.parametrize("method", list(RECEIVE_CALLS))
def test_signals_do_not_restart_the_timeout(net, impl, method):
    sock = net.udp(impl, timeout=0.3)
    with alarms(0.05) as handler:
        start, before = time.monotonic(), handler.calls
        result = outcome(lambda: RECEIVE_CALLS[method](sock, 64))
        elapsed, during = time.monotonic() - start, handler.calls - before
    assert result == raised(socket.timeout, "timed out")
    assert during >= 3
    assert 0.25 <= elapsed < 0.6


# --- 7. connected UDP and ICMP port unreachable -------------------------------------------

def closed_port_address(family):
    """A loopback address where (almost certainly) nothing listens."""
    with socket.socket(family, SOCK_DGRAM) as s:
        s.bind((LOOPBACK[family], 0))
        return s.getsockname()


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("method", list(RECEIVE_CALLS))
def test_connected_udp_port_unreachable(family, method):
    def scenario(cls):
        with Net() as net:
            sock = net.udp(cls, family)
            sock.connect(closed_port_address(family))
            sent = outcome(lambda: sock.send(P))
            return sent, outcome(lambda: RECEIVE_CALLS[method](sock, 64))

    sent, result = same_on_both(scenario)
    assert sent == ("returned", typed(20))
    assert result[:2] == ("raised", ConnectionRefusedError)
    assert result[3] == errno.ECONNREFUSED


# --- 8. drop-in ---------------------------------------------------------------------------

def test_selector(net, impl):
    sock, peer = net.udp_pair(impl)
    with selectors.DefaultSelector() as selector:
        selector.register(sock, selectors.EVENT_READ, "mine")
        assert selector.select(timeout=0) == []
        peer.sendto(P, sock.getsockname())
        events = selector.select(timeout=TIMEOUT)
        assert [(key.fileobj, mask, key.data) for key, mask in events] == [
            (sock, selectors.EVENT_READ, "mine")]
        assert sock.recvfrom(64) == (P, peer.getsockname())
        selector.modify(sock, selectors.EVENT_WRITE)
        assert [key.fileobj for key, _ in selector.select(timeout=TIMEOUT)] == [sock]


def test_asyncio_sock_recv_and_sendall(impl):
    data = payload(1 << 20)

    async def main():
        loop = asyncio.get_running_loop()
        a, b = MODULE[impl].socketpair()
        with a, b:
            a.setblocking(False)
            b.setblocking(False)

            async def read_all():
                parts, size = [], 0
                while size < len(data):
                    part = await loop.sock_recv(b, 65536)
                    assert part, "unexpected end of stream"
                    parts.append(part)
                    size += len(part)
                return b"".join(parts)

            _, echoed = await asyncio.gather(loop.sock_sendall(a, data), read_all())
            await loop.sock_sendall(b, P)
            buf = bytearray(64)
            n = await loop.sock_recv_into(a, buf)
            return type(a), type(b), echoed, bytes(buf[:n])

    result = asyncio.run(asyncio.wait_for(main(), 10))
    assert result == (impl, impl, data, P)


def test_fromfd(net, impl):
    original = net.udp()
    sock = MODULE[impl].fromfd(original.fileno(), AF_INET, SOCK_DGRAM)
    assert type(sock) is impl and sock.gettimeout() is None
    net.keep(sock)
    assert sock.fileno() != original.fileno()
    assert sock.getsockname() == original.getsockname()
    peer = net.udp()
    peer.sendto(P, sock.getsockname())
    assert sock.recvfrom(64) == (P, peer.getsockname())


@pytest.mark.parametrize("kind", [SOCK_STREAM, SOCK_DGRAM], ids=["stream", "dgram"])
def test_socketpair(impl, kind):
    a, b = MODULE[impl].socketpair(AF_UNIX, kind)
    with a, b:
        b.settimeout(TIMEOUT)
        assert (type(a), type(b)) == (impl, impl)
        assert a.send(P) == 20
        assert b.recv(64) == P


@pytest.mark.parametrize("family", FAMILIES)
def test_create_server_connection_and_accept(net, impl, family):
    module = MODULE[impl]
    server = module.create_server((LOOPBACK[family], 0), family=family)
    assert type(server) is impl and server.gettimeout() is None
    net.keep(server)            # now with a timeout: accept() must still give blocking sockets
    client = module.create_connection(server.getsockname()[:2], timeout=TIMEOUT)
    assert type(client) is impl and client.gettimeout() == TIMEOUT
    net.keep(client)
    conn, address = server.accept()
    assert type(conn) is impl and conn.gettimeout() is None
    assert address == client.getsockname()
    net.keep(conn)
    assert client.send(P) == 20
    assert conn.recv(64) == P


def test_makefile(net, impl):
    client, server = net.tcp_pair(impl)
    with client.makefile("wb") as writer, server.makefile("rb") as reader:
        writer.write(b"line one\nline two\n" + payload(100000))
        writer.flush()
        client.shutdown(socket.SHUT_WR)
        assert reader.readline() == b"line one\n"
        assert reader.readline() == b"line two\n"
        assert reader.read() == payload(100000)


def test_no_instance_dict_like_stdlib():
    def scenario(cls):
        with cls(AF_INET, SOCK_DGRAM) as sock:
            return outcome(lambda: setattr(sock, "anything", 1))

    assert same_on_both(scenario)[:2] == ("raised", AttributeError)


def test_dup(net, impl):
    sock, peer = net.udp_pair(impl)
    copy = net.keep(sock.dup())
    assert type(copy) is impl
    assert copy.fileno() != sock.fileno()
    assert copy.getsockname() == sock.getsockname()
    peer.sendto(P, sock.getsockname())
    assert copy.recvfrom(64) == (P, peer.getsockname())


def test_is_a_stdlib_socket(net, impl):
    sock = net.udp(impl)
    assert isinstance(sock, socket.socket)
    assert repr(sock).startswith(f"<{impl.__module__}.socket ")


def test_hotsock_repr():
    with hotsock.socket(AF_INET, SOCK_DGRAM) as sock:
        assert repr(sock).startswith("<hotsock.socket")


def test_repr_like_stdlib():
    def scenario(cls):
        with cls(AF_INET, SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            text = repr(sock).replace("<hotsock.socket", "<socket.socket")
            text = re.sub(r"fd=\d+", "fd=N", text.replace(str(sock.getsockname()[1]), "PORT"))
        return text, repr(sock).replace("<hotsock.socket", "<socket.socket")

    opened, closed = same_on_both(scenario)
    assert "laddr=('127.0.0.1', PORT)" in opened and "[closed]" in closed


def test_recv_into_signature():
    signature = inspect.signature(hotsock.socket.recv_into)
    assert [(p.name, p.default) for p in signature.parameters.values()] == [
        ("self", inspect.Parameter.empty), ("buffer", inspect.Parameter.empty),
        ("nbytes", 0), ("flags", 0)]
    with hotsock.socket(AF_INET, SOCK_DGRAM) as sock:
        assert list(inspect.signature(sock.recv_into).parameters) == ["buffer", "nbytes", "flags"]


def test_subclass_of_hotsock(net):
    class Mine(hotsock.socket):
        __slots__ = ("tag",)

    sock = net.keep(Mine(AF_INET, SOCK_DGRAM))
    sock.bind(("127.0.0.1", 0))
    sock.tag = "x"
    peers = [net.udp(), net.udp()]
    for i, peer in enumerate(peers * 2):
        peer.sendto(payload(10, i), sock.getsockname())
        data, address = sock.recvfrom(64)
        assert (data, address) == (payload(10, i), peer.getsockname())
        assert sock.sendto(data, address) == 10
        assert peer.recvfrom(64) == (data, sock.getsockname())
    assert sock.tag == "x"


# --- 9. address caches: an optimisation only ----------------------------------------------

@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("method", ["recvfrom", "recvfrom_into"])
def test_source_address_follows_the_sender(net, impl, family, method):
    sock = net.udp(impl, family)
    senders = {"A": net.udp(family=family), "B": net.udp(family=family)}
    names = {s.getsockname(): Addr(name) for name, s in senders.items()}
    seen = []
    # recv() in between takes a datagram without looking at its address.
    steps = ["A", "A", "B", "A", "recv:B", "A", "B", "B", "recv:A", "B", "A"]
    for i, step in enumerate(steps):
        how, _, name = step.rpartition(":")
        data = payload(10 + i, i)
        senders[name].sendto(data, sock.getsockname())
        if how == "recv":
            assert sock.recv(64) == data
            continue
        result = RECEIVE_CALLS[method](sock, 64)
        assert typed(result, names) == typed(received(method, data, Addr(name)))
        seen.append((name, result[1]))
    for name, address in seen:
        assert address == senders[name].getsockname()


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("method", ["recvfrom", "recvfrom_into"])
def test_same_datagram_same_address_as_stdlib(net, impl, family, method):
    # The stdlib peeks at each datagram, then impl reads it: same address tuple.
    sock = net.udp(impl, family)
    if family == AF_INET6 and sys.platform.startswith("linux"):
        sock.setsockopt(socket.IPPROTO_IPV6, 11, 1)     # IPV6_FLOWINFO: report flow labels
    senders = [net.udp(family=family) for _ in range(2)]
    for i, sender in enumerate(senders * 2):
        sender.sendto(payload(10, i), sock.getsockname())
        peeked = socket.socket.recvfrom(sock, 64, socket.MSG_PEEK)
        result = RECEIVE_CALLS[method](sock, 64)
        assert typed(result[1]) == typed(peeked[1])
        assert peeked[1] == sender.getsockname()[:2] + peeked[1][2:]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("tuples", ["same-objects", "equal-copies"])
def test_sendto_alternating_destinations(net, impl, family, tuples):
    sock = net.udp(impl, family)
    receivers = {"1": net.udp(family=family), "2": net.udp(family=family)}
    addresses = {name: r.getsockname() for name, r in receivers.items()}
    if family == AF_INET6:
        host, port = addresses["1"][:2]
        addresses["1"] = (host, port, 0x12345, 0)   # a nonzero flowinfo
        addresses["2"] = addresses["2"][:2]         # the short form
    sent = {name: [] for name in receivers}
    for i, name in enumerate("11212212"):
        address = addresses[name]
        if tuples == "equal-copies":
            address = tuple(["".join(list(address[0]))] + list(address[1:]))
        data = payload(10 + i, i)
        n = sock.sendto(data, address) if i % 2 else sock.sendto(data, 0, address)
        assert typed(n) == typed(len(data))
        sent[name].append(data)
    for name, receiver in receivers.items():
        got = [receiver.recvfrom(64) for _ in sent[name]]
        assert got == [(data, sock.getsockname()) for data in sent[name]]
        assert pending(receiver) is None


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("method", ["recvfrom", "recvfrom_into"])
def test_reply_to_the_returned_address(net, impl, family, method):
    sock = net.udp(impl, family)
    peers = {"A": net.udp(family=family), "B": net.udp(family=family)}
    returned = {}

    def hear_from(name):
        peers[name].sendto(name.encode(), sock.getsockname())
        returned[name] = RECEIVE_CALLS[method](sock, 64)[1]
        assert returned[name] == peers[name].getsockname()

    hear_from("A")
    assert sock.sendto(b"reply-1", returned["A"]) == 7      # A sent last
    hear_from("B")
    assert sock.sendto(b"reply-2", returned["A"]) == 7      # an older address
    assert sock.sendto(b"reply-3", 0, returned["B"]) == 7   # B sent last
    assert sock.sendto(b"reply-4", returned["A"]) == 7
    hear_from("A")
    assert sock.sendto(b"reply-5", returned["B"]) == 7
    expected = {"A": [b"reply-1", b"reply-2", b"reply-4"], "B": [b"reply-3", b"reply-5"]}
    for name, peer in peers.items():
        assert [peer.recvfrom(64) for _ in expected[name]] == [
            (data, sock.getsockname()) for data in expected[name]]
        assert pending(peer) is None


# Threads share a socket: one thread's destination or source must never leak
# into another thread's call, even while a call waits in the kernel.

def drain_until_quiet(receivers, busy, counts, quiet=0.1):
    """Count what arrives at each receiver while busy(), then until *quiet* s pass without."""
    while True:
        readable, _, _ = select.select(receivers, [], [], quiet)
        for receiver in readable:
            counts[receivers.index(receiver)][receiver.recv(64)] += 1
        if not readable and not busy():
            return


def test_threads_sending_to_two_destinations(net, impl):
    sock = net.udp(impl)
    receivers = [net.udp(), net.udp()]

    def send_many(i):
        address, data = receivers[i].getsockname(), b"%d" % i
        for _ in range(5000):
            sock.sendto(data, address)

    senders = [Background(send_many, i) for i in range(2)]
    counts = [collections.Counter(), collections.Counter()]
    # Receive buffers fill up and drop datagrams: only where they go matters.
    drain_until_quiet(receivers, lambda: any(s.is_alive() for s in senders), counts)
    for sender in senders:
        sender.result()
    assert counts[0][b"0"] > 0 and counts[1][b"1"] > 0
    assert dict(counts[0]) == {b"0": counts[0][b"0"]}, "datagrams of thread 1 reached receiver 0"
    assert dict(counts[1]) == {b"1": counts[1][b"1"]}, "datagrams of thread 0 reached receiver 1"


def test_threaded_echo_replies_to_each_sender(net, impl):
    sock = net.udp(impl, timeout=0.3)
    peers = [net.udp(), net.udp()]

    def echo():
        served = 0
        with contextlib.suppress(socket.timeout):
            while True:
                data, address = sock.recvfrom(64)
                sock.sendto(data, address)
                served += 1
        return served

    servers = [Background(echo) for _ in range(2)]
    counts = [collections.Counter(), collections.Counter()]
    for i in range(6000):
        peers[i % 2].sendto(b"%d" % (i % 2), sock.getsockname())
        if i % 50 == 49:
            drain_until_quiet(peers, lambda: False, counts, quiet=0)
    drain_until_quiet(peers, lambda: any(s.is_alive() for s in servers), counts)
    assert sum(server.result() for server in servers) > 0
    assert counts[0][b"0"] > 0 and counts[1][b"1"] > 0
    assert dict(counts[0]) == {b"0": counts[0][b"0"]}, "peer 0 got replies meant for peer 1"
    assert dict(counts[1]) == {b"1": counts[1][b"1"]}, "peer 1 got replies meant for peer 0"
