"""Attack tests for the send side: addresses, flags, the address cache,
stream sockets and the send arrays pool (issue 10, items 1, 3, 10, 14-19, 23).

Bad input is run side by side with the stdlib: the same address given to
``socket.socket.sendto`` and to hotsock's ``sendto``, ``send_batch`` and
``blast`` must end the same way -- sent, or the same exception type with the
same message (the caller's name in it aside).
"""
import array
import errno
import os
import pathlib
import socket
import subprocess
import sys
import threading
import time

import pytest
from conftest import IPV6_OK

import hotsock
from hotsock import _send

# --- side by side with the stdlib ---------------------------------------------------

def _outcome(call, caller):
    try:
        call()
    except Exception as exc:    # noqa: BLE001 -- the outcome is what is compared
        return type(exc), str(exc).replace(f"{caller}()", "CALLER()")
    return "sent"


def _outcomes(family, kind, address, prepare=None):
    """How the stdlib's sendto and hotsock's three senders end for *address*."""
    def fresh():
        s = hotsock.socket(family, kind)
        if prepare is not None:
            prepare(s)
        return s

    results = {}
    calls = {
        "stdlib sendto": ("sendto", lambda s: socket.socket.sendto(s, b"x", address)),
        "hotsock sendto": ("sendto", lambda s: s.sendto(b"x", address)),
        "send_batch": ("send_batch", lambda s: s.send_batch([b"x"], address)),
        "blast": ("blast", lambda s: hotsock.blast(s, address, size=1, count=1, duration=1, sequence=False,
                                                   stop_signals=())),
    }
    for name, (caller, call) in calls.items():
        if name == "blast" and _kernel_error(results["stdlib sendto"]):
            # blast counts a datagram the kernel refuses and goes on (a load
            # generator): only the conversion of the address is compared.
            continue
        with fresh() as s:
            results[name] = _outcome(lambda: call(s), caller)
    return results


def _kernel_error(outcome):
    return (outcome != "sent" and issubclass(outcome[0], OSError)
            and not issubclass(outcome[0], socket.gaierror) and outcome[1].startswith("[Errno"))


def _assert_same(results):
    expected = results["stdlib sendto"]
    for name, outcome in results.items():
        assert outcome == expected, f"{name}: {outcome!r}, stdlib: {expected!r}"


INET_ADDRESSES = [
    "127.0.0.1", ("127.0.0.1",), ("127.0.0.1", 9, 1), (None, 9),
    (b"127.0.0.1", 9), (bytearray(b"127.0.0.1"), 9),
    ("127.0.0.1", 9.0), ("127.0.0.1", "9"), ("127.0.0.1", 2 ** 40), ("127.0.0.1", 2 ** 70),
    ("127.0.0.1", 70000), ("127.0.0.1", -1),
    ("127.0.0.1\0x", 9), (b"127.0.0.1\0", 9),
    ("\ud800", 9), ("bad\udcff.example", 9), ("\u2603" * 100, 9), ("\u2603.\u2603" * 40, 9),
    ("a" * 300, 9), ("x" * 64 + ".invalid", 9), ("a." * 200, 9), (b"\xff\xfe", 9),
    ("999.1.1.1", 70000), ("\ud800", "9"), ("a" * 300, "9"), ("a" * 300, 2 ** 70),
    ("<broadcast>", 9), ("255.255.255.255", 9), ("", 9), ("127.0.0.1", 9),
    ("127.1", 9), ("localhost", 9), ("127.0.0.1%lo", 9),
]


@pytest.mark.parametrize("address", INET_ADDRESSES, ids=repr)
def test_inet_addresses_as_the_stdlib(address):
    _assert_same(_outcomes(socket.AF_INET, socket.SOCK_DGRAM, address))


INET6_ADDRESSES = [
    "::1", ("::1",), ("::1", 9, 0, 0, 0),
    ("::1", 9, 1.0), ("::1", 9, 0, 1.0), ("::1", 9, "0"), ("::1", 9, 0, "0"),
    ("::1", 9, None), ("::1", 9, 0x100000), ("::1", 9, -1), ("::1", 9, 0, -1),
    ("::1", 9, 2 ** 70), ("::1", 9, 0, 2 ** 70), ("::1", 9, 2 ** 32),
    ("::1", 9.0), ("::1", 70000), ("::1", 2 ** 70), ("\ud800", 9, 1.0),
    ("fe80::1%lo", 9), ("fe80::1%lo", 9, 0, 0), ("::1%lo", 9), ("fe80::1%nosuchif", 9),
    ("<broadcast>", 9), ("255.255.255.255", 9), ("", 9), ("::1", 9), ("localhost", 9),
    ("::1\0", 9), ("\u2603" * 100, 9), ("a" * 300, 9),
]


@pytest.mark.skipif(not IPV6_OK, reason="no IPv6 loopback")
@pytest.mark.parametrize("address", INET6_ADDRESSES, ids=repr)
def test_inet6_addresses_as_the_stdlib(address):
    _assert_same(_outcomes(socket.AF_INET6, socket.SOCK_DGRAM, address))


def _unix_addresses(tmp):
    missing = os.path.join(tmp, "missing")
    return [
        "", b"", bytearray(), pathlib.Path(missing), array.array("b", missing.encode()),
        memoryview(missing.encode()), memoryview(missing.encode())[::2],
        bytearray(missing.encode()), missing, missing.encode(),
        "x" * 107, "x" * 108, b"\0" + b"x" * 107, b"\0" + b"x" * 108, "\0abstract-none",
        5, ("a",), "\ud800", "\udcff", missing + "\0tail",
    ]


@pytest.mark.parametrize("index", range(len(_unix_addresses("/t"))))
def test_unix_addresses_as_the_stdlib(tmp_path, index):
    address = _unix_addresses(str(tmp_path))[index]
    _assert_same(_outcomes(socket.AF_UNIX, socket.SOCK_DGRAM, address))


def test_unix_addresses_reach_the_same_receiver(tmp_path):
    path = str(tmp_path / "rx")
    with hotsock.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as rx:
        rx.bind(path)
        rx.settimeout(2)
        for address in (path, path.encode(), bytearray(path.encode()),
                        array.array("b", path.encode()), memoryview(path.encode())):
            with hotsock.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as tx:
                assert tx.send_batch([b"a"], address) == 1
                assert rx.recv(8) == b"a"


def test_empty_unix_address_is_refused_not_sent_to_the_abstract_nul():
    # '' used to go to the abstract socket "\0": a listener there got the datagram.
    with hotsock.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as trap, \
            hotsock.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as tx:
        trap.bind(b"\0")
        trap.setblocking(False)
        for address in ("", b""):
            with pytest.raises(OSError) as info:
                tx.send_batch([b"misdirected"], address)
            assert info.value.errno == errno.EINVAL
        with pytest.raises(BlockingIOError):
            trap.recv(64)


@pytest.mark.skipif(not IPV6_OK, reason="no IPv6 loopback")
def test_scoped_literal_uses_the_tuples_scope_id():
    convert = hotsock._address.sockaddr_for
    assert convert(socket.AF_INET6, ("fe80::1%lo", 9)) == ("fe80::1", 9, 0, 0)
    assert convert(socket.AF_INET6, ("fe80::1%lo", 9, 3, 7)) == ("fe80::1", 9, 3, 7)
    assert convert(socket.AF_INET6, ("::1", 9, 0, 5)) == ("::1", 9, 0, 5)


# --- item 1: the per-socket address cache is type-checked ---------------------------

@pytest.mark.parametrize("cache", ["1", "'x'", "object()", "[1, 2]", "b'\\0' * 4096",
                                   "socket.socket()", "hotsock.socket()"])
def test_foreign_address_cache_does_not_crash(cache):
    code = f"""
import socket, hotsock
class _Duck:
    def __init__(self, fd, cache):
        self._fd = fd
        self._hotsock_addresses = cache
    def fileno(self):
        return self._fd
rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
rx.bind(("127.0.0.1", 0))
rx.settimeout(2)
tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
duck = _Duck(tx.fileno(), {cache})
for _ in range(3):
    assert hotsock.send_batch(duck, [b"d"], rx.getsockname()) == 1
    assert rx.recv(8) == b"d"
h = hotsock.socket(socket.AF_INET, socket.SOCK_DGRAM)
h._hotsock_addresses = {cache}
for _ in range(3):
    assert h.send_batch([b"h"], rx.getsockname()) == 1
    assert rx.recv(8) == b"h"
    assert h.sendto(b"s", rx.getsockname()) == 1
    assert rx.recv(8) == b"s"
print("ok")
"""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


# --- item 19: flags are integers, as the stdlib's ------------------------------------

@pytest.mark.parametrize("flags", [1.0, "0", None, 2 ** 40, 2 ** 70, -2 ** 40])
def test_flags_refused_as_the_stdlib(flags):
    with hotsock.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
        expected = _outcome(lambda: socket.socket.recv(s, 10, flags), "recv")
        assert expected != "sent"
        assert _outcome(lambda: s.send_batch([b"x"], ("127.0.0.1", 9), flags=flags),
                        "send_batch") == expected
        batch = hotsock.RecvBatch(2, 16)
        assert _outcome(lambda: hotsock.recv_batch(s, batch, flags), "recv_batch") == expected


def test_int_like_flags_still_accepted():
    with hotsock.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx, \
            hotsock.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(2)
        assert tx.send_batch([b"x"], rx.getsockname(), flags=socket.MSG_DONTWAIT) == 1
        assert tx.send_batch([b"y"], rx.getsockname(), flags=False) == 1
        batch = hotsock.RecvBatch(2, 16)
        assert hotsock.recv_batch(rx, batch, socket.MSG_PEEK) >= 1


# --- item 23: the user's terms -------------------------------------------------------

def test_send_batch_on_a_pipe_says_not_a_socket():
    r, w = os.pipe()
    try:
        for fd in (r, w):
            for address in (("127.0.0.1", 9), None):
                with pytest.raises(OSError) as info:
                    hotsock.send_batch(fd, [b"x"], address)
                assert info.value.errno == errno.ENOTSOCK
    finally:
        os.close(r)
        os.close(w)


def test_kernel_drops_takes_an_int_descriptor():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        by_socket = hotsock.kernel_drops(s)
        assert hotsock.kernel_drops(s.fileno()) == by_socket
        assert s.fileno() >= 0          # the descriptor is still the caller's
        s.getsockname()


def test_kernel_drops_bad_arguments():
    with pytest.raises(TypeError, match="socket or a file descriptor"):
        hotsock.kernel_drops("not a socket")
    with pytest.raises(TypeError, match="socket or a file descriptor"):
        hotsock.kernel_drops(1.5)
    r, w = os.pipe()
    try:
        with pytest.raises(OSError) as info:
            hotsock.kernel_drops(r)
        assert info.value.errno == errno.ENOTSOCK
    finally:
        os.close(r)
        os.close(w)


# --- item 18: option setters never cut a string at a NUL -----------------------------

def _std_error(call):
    try:
        call()
    except Exception as exc:    # noqa: BLE001
        return type(exc), str(exc)
    return None


@pytest.mark.parametrize("call, stdlib", [
    (lambda s: s.join_group("239.1.2.3\0junk", "lo\0junk"),
     lambda: socket.inet_aton("239.1.2.3\0junk")),
    (lambda s: s.join_group("239.1.2.3\0junk"), lambda: socket.inet_aton("239.1.2.3\0junk")),
    (lambda s: s.join_group("239.1.2.3", "lo\0junk"), lambda: socket.if_nametoindex("lo\0junk")),
    (lambda s: s.join_group("239.1.2.3", "127.0.0.1\0x"),
     lambda: socket.inet_aton("127.0.0.1\0x")),
    (lambda s: s.join_group("239.1.2.3", None, "127.0.0.1\0x"),
     lambda: socket.inet_aton("127.0.0.1\0x")),
    (lambda s: s.block_source("239.1.2.3", "127.0.0.1\0x"),
     lambda: socket.inet_aton("127.0.0.1\0x")),
    (lambda s: s.set_multicast_interface("127.0.0.1\0x"),
     lambda: socket.inet_aton("127.0.0.1\0x")),
    (lambda s: s.set_multicast_interface("lo\0x"), lambda: socket.if_nametoindex("lo\0x")),
])
def test_option_strings_with_nul_refused_as_the_stdlib(call, stdlib):
    expected = _std_error(stdlib)
    assert expected is not None and expected[0] is ValueError
    with hotsock.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        assert _std_error(lambda: call(s)) == expected


@pytest.mark.skipif(not IPV6_OK, reason="no IPv6 loopback")
@pytest.mark.parametrize("call, stdlib", [
    (lambda s: s.join_group("ff02::1\0x", "lo"),
     lambda: socket.inet_pton(socket.AF_INET6, "ff02::1\0x")),
    (lambda s: s.join_group("ff02::1", "lo\0x"), lambda: socket.if_nametoindex("lo\0x")),
    (lambda s: s.set_multicast_interface("lo\0x"), lambda: socket.if_nametoindex("lo\0x")),
])
def test_ipv6_option_strings_with_nul_refused_as_the_stdlib(call, stdlib):
    expected = _std_error(stdlib)
    with hotsock.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
        assert _std_error(lambda: call(s)) == expected


# --- item 3: stream sockets lose nothing ------------------------------------------------

def _stream_pair(family):
    if family == socket.AF_UNIX:
        a, b = hotsock.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    else:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
            server.bind(("127.0.0.1", 0))
            server.listen(1)
            a = hotsock.socket(socket.AF_INET, socket.SOCK_STREAM)
            a.connect(server.getsockname())
            b, _ = server.accept()
    for s in (a, b):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    return a, b


def _slow_reader(rx, total, into, counted):
    """Read *total* bytes (or to EOF), pausing now and then: the sender's
    buffers fill up and many sends are partial."""
    rx.settimeout(60)
    view = memoryview(into)
    got = 0
    reads = 0
    while got < total:
        n = rx.recv_into(view[got:], min(100_000, total - got))
        if n == 0:
            break
        got += n
        reads += 1
        if reads % 4 == 0:
            time.sleep(0.002)
    if got == total and rx.recv(1) == b"":
        counted.append(got)         # all of it, and not a byte more


@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_UNIX], ids=["tcp", "unix"])
@pytest.mark.parametrize("mode", ["timeout", "non-blocking"])
def test_stream_every_byte_once_in_order(family, mode):
    total = 40 * 1024 * 1024
    data = os.urandom(total)
    # Buffers of many sizes, a few bytes to a few hundred KiB.
    sizes = [1, 7, 1000, 65536, 300_000, 4096, 123_457, 16, 200_000]
    buffers, at, i = [], 0, 0
    while at < total:
        size = min(sizes[i % len(sizes)], total - at)
        buffers.append(memoryview(data)[at:at + size])
        at += size
        i += 1
    tx, rx = _stream_pair(family)
    received = bytearray(total)
    counted = []
    reader = threading.Thread(target=_slow_reader, args=(rx, total, received, counted))
    reader.start()
    partial_reports = 0
    try:
        if mode == "timeout":
            tx.settimeout(0.005)
        else:
            tx.setblocking(False)
        pos = 0
        deadline = time.monotonic() + 120
        while pos < len(buffers):
            assert time.monotonic() < deadline
            try:
                pos += tx.send_batch(buffers[pos:pos + 64])
            except (TimeoutError, BlockingIOError) as exc:
                if hasattr(exc, "buffers_sent"):
                    # Stopped inside a buffer: resume exactly where it stopped.
                    partial_reports += 1
                    pos += exc.buffers_sent
                    buffers[pos] = buffers[pos][exc.characters_written:]
                else:
                    # Nothing went: wait until the reader has made room.
                    import select
                    select.select([], [tx], [], 1)
        tx.shutdown(socket.SHUT_WR)
        reader.join(60)
        assert not reader.is_alive()
    finally:
        tx.close()
        reader.join(5)
        rx.close()
    assert counted == [total]
    assert received == data
    if mode == "non-blocking":
        # The kernel takes what fits, mostly ending inside a buffer: the
        # resume-from-the-report path above was exercised.
        assert partial_reports > 0


def test_stream_blocking_send_batch_writes_everything():
    tx, rx = _stream_pair(socket.AF_UNIX)
    total = 8 * 1024 * 1024
    data = os.urandom(total)
    received = bytearray(total)
    counted = []
    reader = threading.Thread(target=_slow_reader, args=(rx, total, received, counted))
    reader.start()
    try:
        buffers = [memoryview(data)[i:i + 300_001] for i in range(0, total, 300_001)]
        assert tx.send_batch(buffers) == len(buffers)
        tx.shutdown(socket.SHUT_WR)
        reader.join(60)
    finally:
        tx.close()
        reader.join(5)
        rx.close()
    assert counted == [total]
    assert received == data


def test_stream_partial_buffer_is_reported_not_counted():
    tx, rx = _stream_pair(socket.AF_UNIX)
    with tx, rx:
        tx.setblocking(False)
        big = bytes(4 * 1024 * 1024)
        with pytest.raises(BlockingIOError) as info:
            tx.send_batch([b"head", big, b"tail"])
        assert info.value.buffers_sent == 1
        assert 0 < info.value.characters_written < len(big)


# --- item 10: the send arrays pool is bounded -----------------------------------------

def test_send_pool_keeps_a_bounded_amount_after_a_huge_call():
    a, b = hotsock.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with a, b:
        a.setblocking(False)
        small = a.send_batch([b"x"] * 10)
        assert small == 10
        kept_small = _send._send_pool_bytes()
        assert kept_small > 0           # small calls still reuse their arrays
        sent = a.send_batch([b"y"] * 300_000)       # ~120 MiB of arrays for one call
        assert 0 < sent < 300_000
        assert _send._send_pool_bytes() <= 8 * 1024 * 1024
