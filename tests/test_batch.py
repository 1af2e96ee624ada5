"""RecvBatch, recv_batch and send_batch on real sockets (recvmmsg/sendmmsg,
or the recvmsg/sendmsg loop when HOTSOCK_NO_MMSG=1)."""
import array
import errno
import os
import socket
import subprocess
import sys
import threading
import time
import tracemalloc

import pytest

import hotsock

LOOPBACK = {socket.AF_INET: "127.0.0.1", socket.AF_INET6: "::1"}


def _family_ids(family):
    return "ipv4" if family == socket.AF_INET else "ipv6"


@pytest.fixture(params=[socket.AF_INET, socket.AF_INET6], ids=_family_ids)
def family(request):
    if request.param == socket.AF_INET6 and not socket.has_ipv6:
        pytest.skip("no IPv6")
    return request.param


@pytest.fixture
def pair(family):
    """(receiver, sender): bound hotsock UDP sockets on loopback."""
    rx = hotsock.socket(family, socket.SOCK_DGRAM)
    tx = hotsock.socket(family, socket.SOCK_DGRAM)
    try:
        rx.bind((LOOPBACK[family], 0))
        tx.bind((LOOPBACK[family], 0))
    except OSError as exc:
        pytest.skip(f"cannot bind loopback: {exc}")
    rx.settimeout(5)
    tx.settimeout(5)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    yield rx, tx
    rx.close()
    tx.close()


def send_all(tx, payloads, address):
    for p in payloads:
        tx.sendto(p, address)


# --- RecvBatch ------------------------------------------------------------------

@pytest.mark.parametrize("count, size", [(0, 16), (-1, 16), (hotsock.MAX_BATCH + 1, 16),
                                         (4, -1), (4, (1 << 24) + 1)])
def test_recvbatch_rejects_bad_dimensions(count, size):
    with pytest.raises(ValueError):
        hotsock.RecvBatch(count, size)


@pytest.mark.parametrize("count, size", [("4", 16), (4, 1.5), (None, 16)])
def test_recvbatch_rejects_non_integers(count, size):
    with pytest.raises(TypeError):
        hotsock.RecvBatch(count, size)


def test_recvbatch_rejects_huge_integers():
    with pytest.raises(OverflowError):
        hotsock.RecvBatch(2 ** 70, 16)


def test_empty_batch_is_empty():
    batch = hotsock.RecvBatch(8, 32)
    assert len(batch) == 0
    assert list(batch) == []
    assert batch.lengths.tolist() == []
    assert (batch.count, batch.size) == (8, 32)
    with pytest.raises(IndexError):
        batch[0]
    with pytest.raises(IndexError):
        batch.address(0)
    assert len(memoryview(batch)) == 8 * 32
    assert "count=8" in repr(batch)


def test_recv_batch_receives_payloads_and_addresses(pair, family):
    rx, tx = pair
    payloads = [b"", b"a", b"hello", bytes(range(200))]
    send_all(tx, payloads, rx.getsockname())
    batch = hotsock.RecvBatch(16, 256)
    got = []
    while len(got) < len(payloads):
        n = rx.recv_batch(batch)
        assert n == len(batch) >= 1
        got += [(bytes(p), a) for p, a in batch]
    assert [p for p, _ in got] == payloads
    assert all(a == tx.getsockname() for _, a in got)
    assert batch.address(-1) == tx.getsockname()
    assert batch.lengths.tolist() == [len(p) for p in payloads][-len(batch):]
    assert batch.flags.tolist() == [0] * len(batch)
    assert not any(batch.truncated(i) for i in range(len(batch)))
    assert batch.lengths.format == "I" and batch.lengths.itemsize == 4
    assert batch.flags.format == "i"


def test_recv_batch_takes_at_most_count_without_waiting_again(pair):
    rx, tx = pair
    send_all(tx, [b"%d" % i for i in range(100)], rx.getsockname())
    time.sleep(0.05)
    batch = hotsock.RecvBatch(64, 16)
    assert rx.recv_batch(batch) == 64
    assert bytes(batch[63]) == b"63"
    rx.settimeout(5)
    start = time.monotonic()
    assert rx.recv_batch(batch) == 36          # the rest, with no wait for more
    assert time.monotonic() - start < 1.0
    assert bytes(batch[0]) == b"64" and bytes(batch[35]) == b"99"


def test_recv_batch_waits_for_the_first_datagram(pair):
    rx, tx = pair
    batch = hotsock.RecvBatch(8, 16)
    timer = threading.Timer(0.2, tx.sendto, (b"late", rx.getsockname()))
    # Before the timer starts: a stall between the two (a loaded CI machine)
    # must not shorten the wait measured below.
    start = time.monotonic()
    timer.start()
    try:
        # A stray datagram (from an earlier test's peer on a reused port) is
        # not what this waits for.
        while b"late" not in [bytes(p) for p, _ in batch]:
            assert rx.recv_batch(batch) >= 1
    finally:
        timer.join()
    assert time.monotonic() - start >= 0.15
    assert bytes(batch[0]) == b"late"


def test_recv_batch_timeout(pair):
    rx, _ = pair
    rx.settimeout(0.2)
    batch = hotsock.RecvBatch(8, 16)
    start = time.monotonic()
    with pytest.raises(socket.timeout, match="^timed out$"):
        rx.recv_batch(batch)
    assert 0.15 <= time.monotonic() - start < 2.0
    assert len(batch) == 0


def test_recv_batch_non_blocking(pair):
    rx, tx = pair
    batch = hotsock.RecvBatch(8, 16)
    rx.setblocking(False)
    with pytest.raises(BlockingIOError) as info:
        rx.recv_batch(batch)
    assert info.value.errno in (errno.EAGAIN, errno.EWOULDBLOCK)
    rx.setblocking(True)
    with pytest.raises(BlockingIOError):
        rx.recv_batch(batch, socket.MSG_DONTWAIT)


def test_recv_batch_flags_truncation(pair):
    rx, tx = pair
    send_all(tx, [b"x" * 40, b"y" * 16, b"z" * 3], rx.getsockname())
    batch = hotsock.RecvBatch(8, 16)
    got = 0
    truncated = []
    while got < 3:
        got += rx.recv_batch(batch)
        truncated += [batch.truncated(i) for i in range(len(batch))]
        assert all(len(batch[i]) <= 16 for i in range(len(batch)))
    assert truncated == [True, False, False]


def test_truncated_datagram_content_and_flags(pair):
    rx, tx = pair
    tx.sendto(bytes(range(40)), rx.getsockname())
    batch = hotsock.RecvBatch(4, 16)
    assert rx.recv_batch(batch) == 1
    assert bytes(batch[0]) == bytes(range(16))
    assert batch.lengths[0] == 16
    assert batch.flags[0] & socket.MSG_TRUNC


def test_msg_peek_leaves_datagrams_queued(pair):
    rx, tx = pair
    tx.sendto(b"peek", rx.getsockname())
    batch = hotsock.RecvBatch(4, 16)
    assert rx.recv_batch(batch, socket.MSG_PEEK) >= 1
    assert bytes(batch[0]) == b"peek"
    assert rx.recv(16) == b"peek"


def test_views_into_the_arena(pair):
    rx, tx = pair
    send_all(tx, [b"one", b"two"], rx.getsockname())
    batch = hotsock.RecvBatch(4, 8)
    n = 0
    while n < 2:
        n += rx.recv_batch(batch)
        first = batch[0]
    arena = memoryview(batch)
    assert arena.nbytes == 32 and not arena.readonly
    del batch                           # views keep the memory alive
    assert bytes(first) in (b"one", b"two")
    assert len(arena.tobytes()) == 32


def test_numpy_wraps_the_arrays(pair):
    np = pytest.importorskip("numpy")
    rx, tx = pair
    payloads = [bytes([i]) * (i + 1) for i in range(10)]
    send_all(tx, payloads, rx.getsockname())
    time.sleep(0.05)
    batch = hotsock.RecvBatch(16, 32)
    assert rx.recv_batch(batch) == 10
    lengths = np.frombuffer(batch.lengths, dtype=np.uint32)
    assert lengths.tolist() == list(range(1, 11))
    arena = np.frombuffer(batch, dtype=np.uint8).reshape(batch.count, batch.size)
    assert arena[3, :4].tolist() == [3, 3, 3, 3]
    assert not (np.frombuffer(batch.flags, dtype=np.int32) & socket.MSG_TRUNC).any()


def test_addresses_from_two_peers(family):
    host = LOOPBACK[family]
    with hotsock.socket(family, socket.SOCK_DGRAM) as rx, \
            hotsock.socket(family, socket.SOCK_DGRAM) as a, \
            hotsock.socket(family, socket.SOCK_DGRAM) as b:
        rx.bind((host, 0))
        a.bind((host, 0))
        b.bind((host, 0))
        for i in range(6):
            (a if i % 2 else b).sendto(b"%d" % i, rx.getsockname())
        time.sleep(0.05)
        batch = hotsock.RecvBatch(8, 8)
        rx.settimeout(5)
        assert rx.recv_batch(batch) == 6
        for i, (payload, address) in enumerate(batch):
            assert payload == b"%d" % i
            assert address == (a if i % 2 else b).getsockname()


def test_one_batch_receives_in_one_thread_at_a_time(pair):
    rx, tx = pair
    batch = hotsock.RecvBatch(4, 16)
    started = threading.Event()

    def receive():
        started.set()
        rx.recv_batch(batch)            # blocks until the datagram below

    worker = threading.Thread(target=receive)
    worker.start()
    started.wait(5)
    time.sleep(0.1)
    try:
        with pytest.raises(RuntimeError, match="already receiving"):
            rx.recv_batch(batch)
    finally:
        tx.sendto(b"go", rx.getsockname())
        worker.join(5)
    assert bytes(batch[0]) == b"go"
    rx.settimeout(0.1)
    with pytest.raises(socket.timeout):   # usable again afterwards
        rx.recv_batch(batch)


# --- any socket object or descriptor --------------------------------------------

def test_module_functions_take_fds_and_stdlib_sockets(pair):
    rx, tx = pair
    std_tx = socket.socket(socket.AF_INET6 if rx.family == socket.AF_INET6 else socket.AF_INET,
                           socket.SOCK_DGRAM)
    with std_tx:
        assert hotsock.send_batch(std_tx, [b"std"], rx.getsockname()) == 1
        assert hotsock.send_batch(tx.fileno(), [b"fd"], rx.getsockname()) == 1
        batch = hotsock.RecvBatch(4, 8)
        got = []
        while len(got) < 2:
            hotsock.recv_batch(rx.fileno(), batch)
            got += [bytes(p) for p, _ in batch]
        assert sorted(got) == [b"fd", b"std"]


def test_bad_socket_arguments():
    batch = hotsock.RecvBatch(4, 8)
    with pytest.raises(TypeError):
        hotsock.recv_batch("not a socket", batch)
    with pytest.raises(ValueError, match="negative"):
        hotsock.recv_batch(-1, batch)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s, pytest.raises(TypeError):
        hotsock.recv_batch(s, [1, 2])
    r, w = os.pipe()
    try:
        with pytest.raises(OSError) as info:
            hotsock.recv_batch(r, batch, socket.MSG_DONTWAIT)
        assert info.value.errno == errno.ENOTSOCK
        with pytest.raises(OSError) as info:
            hotsock.send_batch(w, [b"x"])
        assert info.value.errno == errno.ENOTSOCK
    finally:
        os.close(r)
        os.close(w)


def test_closed_socket():
    s = hotsock.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.close()
    with pytest.raises(OSError) as info:
        s.recv_batch(hotsock.RecvBatch(2, 8))
    assert info.value.errno == errno.EBADF
    with pytest.raises(OSError) as info:
        s.send_batch([b"x"], ("127.0.0.1", 9))
    assert info.value.errno == errno.EBADF


@pytest.mark.parametrize("receive", ["recv_batch", "stdlib recv"])
def test_connected_udp_reports_icmp_then_queued_datagrams(receive):
    """A pending ICMP error comes first, then the queued datagrams, as with the stdlib."""
    with hotsock.socket(socket.AF_INET, socket.SOCK_DGRAM) as a, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b:
        b.bind(("127.0.0.1", 0))
        a.bind(("127.0.0.1", 0))
        a.connect(b.getsockname())
        a.settimeout(5)
        for i in range(3):
            b.sendto(b"%d" % i, a.getsockname())
        time.sleep(0.05)
        b.close()                           # now nobody listens on a's peer port
        a.send(b"ping")                     # answered by ICMP port unreachable
        time.sleep(0.05)
        batch = hotsock.RecvBatch(8, 8)
        if receive == "recv_batch":
            with pytest.raises(ConnectionRefusedError):
                a.recv_batch(batch)
            assert a.recv_batch(batch) == 3
            got = [bytes(p) for p, _ in batch]
        else:
            with pytest.raises(ConnectionRefusedError):
                socket.socket.recv(a, 8)
            got = [socket.socket.recv(a, 8) for _ in range(3)]
        assert got == [b"0", b"1", b"2"]


# --- send_batch -----------------------------------------------------------------------

def receive_n(rx, n, size=2048):
    batch = hotsock.RecvBatch(64, size)
    got = []
    while len(got) < n:
        rx.recv_batch(batch)
        got += [(bytes(p), a) for p, a in batch]
    return got


def test_send_batch_buffer_kinds(pair):
    rx, tx = pair
    buffers = [b"bytes", bytearray(b"bytearray"), memoryview(b"memoryview"),
               array.array("B", b"array"), b""]
    assert tx.send_batch(buffers, rx.getsockname()) == len(buffers)
    assert [p for p, _ in receive_n(rx, len(buffers))] == [bytes(b) for b in buffers]


def test_send_batch_more_than_one_syscall_takes(pair):
    rx, tx = pair
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 24)
    n = 2 * hotsock.MAX_BATCH + 100
    buffers = [i.to_bytes(4, "big") for i in range(n)]
    sent = 0
    while sent < n:   # a full receive queue may make the kernel drop; pace by receiving
        chunk = buffers[sent:sent + 500]
        assert tx.send_batch(chunk, rx.getsockname()) == len(chunk)
        assert [p for p, _ in receive_n(rx, len(chunk))] == chunk
        sent += len(chunk)
    assert tx.send_batch(buffers[:hotsock.MAX_BATCH + 10], rx.getsockname()) == hotsock.MAX_BATCH + 10


def test_send_batch_per_datagram_addresses(family):
    host = LOOPBACK[family]
    with hotsock.socket(family, socket.SOCK_DGRAM) as tx, \
            hotsock.socket(family, socket.SOCK_DGRAM) as r1, \
            hotsock.socket(family, socket.SOCK_DGRAM) as r2:
        r1.bind((host, 0))
        r2.bind((host, 0))
        r1.settimeout(5)
        r2.settimeout(5)
        targets = [r1.getsockname(), r2.getsockname()] * 3
        assert tx.send_batch([b"%d" % i for i in range(6)], addresses=targets) == 6
        assert [p for p, _ in receive_n(r1, 3)] == [b"0", b"2", b"4"]
        assert [p for p, _ in receive_n(r2, 3)] == [b"1", b"3", b"5"]


def test_send_batch_connected(pair):
    rx, tx = pair
    tx.connect(rx.getsockname())
    assert tx.send_batch([b"a", b"b"]) == 2
    assert [p for p, _ in receive_n(rx, 2)] == [b"a", b"b"]


def test_send_batch_host_name_and_any_iterable(pair):
    rx, tx = pair
    if rx.family == socket.AF_INET:
        assert tx.send_batch([b"n"], ("localhost", rx.getsockname()[1])) == 1
        assert receive_n(rx, 1)[0][0] == b"n"
    assert tx.send_batch((b for b in [b"g1", b"g2"]), rx.getsockname()) == 2
    assert [p for p, _ in receive_n(rx, 2)] == [b"g1", b"g2"]


def test_send_batch_empty():
    with hotsock.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        assert s.send_batch([], ("127.0.0.1", 9)) == 0


@pytest.mark.parametrize("buffers, kwargs, exc, message", [
    ([b"x", "str"], {}, TypeError, "a bytes-like object is required, not 'str'"),
    ([b"x", 5], {}, TypeError, "a bytes-like object is required, not 'int'"),
    (5, {}, TypeError, "expects a sequence"),
    ([b"x"], {"addresses": 5}, TypeError, "addresses must be a sequence"),
    ([b"x"], {"addresses": [("127.0.0.1", 9)] * 2}, ValueError, "1 buffers but 2 addresses"),
    ([b"x"], {"address": ("127.0.0.1", 9), "addresses": [("127.0.0.1", 9)]},
     TypeError, "not both"),
    ([b"x"], {"address": ("127.0.0.1", 70000)}, OverflowError, r"port must be 0-65535"),
    ([b"x"], {"address": ("127.0.0.1", -1)}, OverflowError, r"port must be 0-65535"),
    ([b"x"], {"address": "127.0.0.1"}, TypeError, "AF_INET address must be tuple, not str"),
    ([b"x"], {"address": ("127.0.0.1",)}, TypeError, r"must be a pair \(host, port\)"),
    ([b"x"], {"address": (None, 9)}, TypeError, "str, bytes or bytearray expected, not NoneType"),
    ([b"x"], {"address": ("127.0.0.1", "9")}, TypeError, "cannot be interpreted as an integer"),
    ([b"x"], {"flags": "0"}, TypeError, "'str' object cannot be interpreted as an integer"),
    ([b"x"], {"flags": 1.0}, TypeError, "'float' object cannot be interpreted as an integer"),
])
def test_send_batch_bad_input(buffers, kwargs, exc, message):
    with hotsock.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        given = "address" in kwargs or "addresses" in kwargs
        args = (buffers,) if given else (buffers, ("127.0.0.1", 9))
        with pytest.raises(exc, match=message):
            s.send_batch(*args, **kwargs)


def test_send_batch_port_error_matches_sendto_wording():
    with hotsock.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        with pytest.raises(OverflowError) as batch_error:
            s.send_batch([b"x"], ("127.0.0.1", 70000))
        with pytest.raises(OverflowError) as sendto_error:
            socket.socket.sendto(s, b"x", ("127.0.0.1", 70000))
    assert str(batch_error.value) == str(sendto_error.value).replace("sendto", "send_batch")


def test_send_batch_oversized_datagram(pair):
    rx, tx = pair
    big = bytes(70000)
    with pytest.raises(OSError) as info:
        tx.send_batch([big], rx.getsockname())
    assert info.value.errno == errno.EMSGSIZE
    # After the first datagram an error ends the run: its count comes back,
    # and sending the rest again reports the error.
    assert tx.send_batch([b"ok", big, b"never"], rx.getsockname()) == 1
    with pytest.raises(OSError):
        tx.send_batch([big, b"never"], rx.getsockname())
    assert receive_n(rx, 1)[0][0] == b"ok"


def test_send_batch_partial_on_full_non_blocking_socket():
    a, b = hotsock.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with a, b:
        a.setblocking(False)
        sent = a.send_batch([b"x" * 512] * 5000)
        assert 0 < sent < 5000                  # the peer's queue filled up
        with pytest.raises(BlockingIOError):
            a.send_batch([b"x"])
        a.settimeout(0.2)
        start = time.monotonic()
        with pytest.raises(socket.timeout):
            a.send_batch([b"x"])
        assert 0.15 <= time.monotonic() - start < 2.0
        batch = hotsock.RecvBatch(hotsock.MAX_BATCH, 512)
        b.settimeout(5)
        drained = 0
        b.setblocking(False)
        try:
            while True:
                drained += b.recv_batch(batch)
        except BlockingIOError:
            pass
        assert drained == sent


# --- the machinery ----------------------------------------------------------------

def test_features_reports_the_batch_path():
    info = hotsock.features()
    forced = os.environ.get("HOTSOCK_NO_MMSG", "") not in ("", "0")
    assert info["mmsg_forced_off"] is forced
    expected = ("recvmmsg/sendmmsg" if info["mmsg_available"] and not forced
                else "recvmsg/sendmsg loop")
    assert info["batch_path"] == expected
    assert info["max_batch"] == hotsock.MAX_BATCH >= 1
    if sys.platform.startswith("linux"):
        assert info["mmsg_compiled"] and info["mmsg_available"]
    assert isinstance(info["direct_socket_access"], bool)
    assert info["version"] == hotsock.__version__


def test_fallback_selected_at_run_time():
    code = ("import hotsock, socket\n"
            "r = hotsock.socket(socket.AF_INET, socket.SOCK_DGRAM); r.bind(('127.0.0.1', 0))\n"
            "r.settimeout(5)\n"
            "s = hotsock.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "assert s.send_batch([b'a', b'b', b'c'], r.getsockname()) == 3\n"
            "b = hotsock.RecvBatch(8, 8); n = 0\n"
            "while n < 3: n += r.recv_batch(b)\n"
            "print(hotsock.features()['batch_path'])\n")
    for value, path in (("1", "recvmsg/sendmsg loop"), ("0", None)):
        env = dict(os.environ, HOTSOCK_NO_MMSG=value)
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        if path:
            assert out.stdout.strip() == path
        elif sys.platform.startswith("linux"):
            assert out.stdout.strip() == "recvmmsg/sendmmsg"


def test_without_direct_socket_access():
    """The method-call path, used where CPython's socket layout cannot be verified."""
    code = ("import hotsock, socket, time\n"
            "assert not hotsock.features()['direct_socket_access']\n"
            "r = hotsock.socket(socket.AF_INET, socket.SOCK_DGRAM); r.bind(('127.0.0.1', 0))\n"
            "s = hotsock.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('127.0.0.1', 0))\n"
            "assert s.sendto(b'one', r.getsockname()) == 3\n"
            "r.settimeout(5)\n"
            "assert r.recvfrom(8) == (b'one', s.getsockname())\n"
            "assert s.send_batch([b'a', b'b'], r.getsockname()) == 2\n"
            "b = hotsock.RecvBatch(8, 8); n = 0\n"
            "while n < 2: n += r.recv_batch(b)\n"
            "r.settimeout(0.2); t = time.monotonic()\n"
            "try:\n"
            "    r.recv_batch(b)\n"
            "except socket.timeout:\n"
            "    assert time.monotonic() - t >= 0.15\n"
            "else:\n"
            "    raise AssertionError('no timeout')\n"
            "print('ok')\n")
    env = dict(os.environ, HOTSOCK_NO_DIRECT_ACCESS="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def _peak_during(func):
    tracemalloc.start()
    try:
        func()                                  # warm caches, interned objects
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        func()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def test_receive_path_allocates_nothing_per_datagram():
    rx = hotsock.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx = hotsock.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with rx, tx:
        rx.bind(("127.0.0.1", 0))
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        rx.settimeout(5)
        batch = hotsock.RecvBatch(32, 128)
        payloads = [b"p" * 100] * 32
        rounds = 20

        def batch_loop():
            for _ in range(rounds):
                tx.send_batch(payloads, rx.getsockname())
                got = 0
                while got < 32:
                    got += rx.recv_batch(batch)

        def recvfrom_loop():             # the control: one bytes object per datagram
            for _ in range(rounds):
                tx.send_batch(payloads, rx.getsockname())
                for _ in range(32):
                    rx.recvfrom(128)

        # send_batch allocates its per-call arrays with PyMem (traced); the
        # receive side must add nothing, so the batch loop peaks at no more
        # than one send_batch call's arrays, well under one datagram apiece.
        batch_peak = _peak_during(batch_loop)
        control_peak = _peak_during(recvfrom_loop)
        per_call_arrays = 32 * 300
        assert batch_peak <= per_call_arrays
        assert control_peak > 100           # the control does allocate per datagram


def test_recv_batch_allocates_nothing_at_all():
    rx = hotsock.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with rx, tx:
        rx.bind(("127.0.0.1", 0))
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        rx.settimeout(5)
        batch = hotsock.RecvBatch(64, 128)
        for _ in range(2 * 64 * 10):
            tx.sendto(b"q" * 100, rx.getsockname())
        time.sleep(0.05)
        recv_batch = rx.recv_batch

        def drain_ten():
            # A while loop: range() and ints above 256 would allocate.
            i = 0
            while i < 10:
                assert recv_batch(batch) == 64
                i += 1

        assert _peak_during(drain_ten) == 0


def test_send_batch_survives_sequences_shrinking_under_it(pair):
    rx, tx = pair
    buffers = [b"a"] * 2000

    class ShrinkingPort:
        def __index__(self):
            buffers.clear()              # user code running inside send_batch
            return rx.getsockname()[1]

    host = rx.getsockname()[0]
    flow = (0, 0) if rx.family == socket.AF_INET6 else ()
    addresses = [(host, ShrinkingPort(), *flow)] + [rx.getsockname()] * 1999
    sent = tx.send_batch(buffers, addresses=addresses)
    assert sent == 2000                 # what was given when the call began
    assert buffers == []


def test_send_batch_flowinfo_is_masked_like_sendto():
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    with hotsock.socket(socket.AF_INET6, socket.SOCK_DGRAM) as rx, \
            hotsock.socket(socket.AF_INET6, socket.SOCK_DGRAM) as tx:
        rx.bind(("::1", 0))
        rx.settimeout(2)
        port = rx.getsockname()[1]
        socket.socket.sendto(tx, b"std", ("::1", port, 2 ** 32, 0))   # the stdlib accepts it
        assert tx.send_batch([b"hot"], ("::1", port, 2 ** 32, 0)) == 1
        assert sorted([rx.recv(8), rx.recv(8)]) == [b"hot", b"std"]


# --- receive metadata: timestamps, destinations, the drop counter ---------------------

def test_metadata_absent_unless_asked():
    rx = hotsock.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        tx.sendto(b"m", rx.getsockname())
    batch = hotsock.RecvBatch(4, 64)
    rx.settimeout(5)
    assert rx.recv_batch(batch) == 1
    assert list(batch.timestamps) == [0]
    assert batch.destination(0) is None and batch.dropped is None
    rx.close()


def test_timestamps_and_destinations_when_asked():
    rx = hotsock.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.setsockopt(socket.SOL_SOCKET, hotsock.SO_TIMESTAMPNS, 1)
    rx.setsockopt(socket.IPPROTO_IP, hotsock.IP_PKTINFO, 1)
    rx.bind(("0.0.0.0", 0))
    port = rx.getsockname()[1]
    before = time.time_ns()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        for host in ("127.0.0.1", "127.0.0.5"):
            tx.sendto(host.encode(), (host, port))
    rx.settimeout(5)
    batch = hotsock.RecvBatch(4, 64)
    seen = []
    while len(seen) < 2:
        rx.recv_batch(batch)
        seen += [(bytes(p), batch.timestamps[i], batch.destination(i))
                 for i, (p, _) in enumerate(batch)]
    after = time.time_ns()      # a datagram may be stamped as it is read
    rx.close()
    assert all(before <= ts <= after for _, ts, _ in seen)
    assert [(p.decode(), d) for p, _, d in seen] == [(h, h) for h in ("127.0.0.1", "127.0.0.5")]
    with pytest.raises(IndexError):
        batch.destination(len(batch))


@pytest.mark.ipv6
def test_ipv6_destination():
    rx = hotsock.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    rx.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
    rx.bind(("::", 0))
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as tx:
        tx.sendto(b"6", ("::1", rx.getsockname()[1]))
    rx.settimeout(5)
    batch = hotsock.RecvBatch(4, 64)
    assert rx.recv_batch(batch) == 1
    assert batch.destination(0) == "::1"
    rx.close()


def test_drop_counter_reported_with_datagrams():
    rx = hotsock.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.setsockopt(socket.SOL_SOCKET, hotsock.SO_RXQ_OVFL, 1)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    rx.bind(("127.0.0.1", 0))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        for _ in range(200):
            tx.sendto(b"d" * 500, rx.getsockname())
    batch = hotsock.RecvBatch(64, 600)

    def drain():
        received = 0
        while True:
            try:
                received += rx.recv_batch(batch, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return received
    received = drain()
    assert hotsock.kernel_drops(rx) == 200 - received > 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        tx.sendto(b"after", rx.getsockname())      # carries the counter as it is now
    assert drain() == 1
    assert batch.dropped == 200 - received
    rx.close()
