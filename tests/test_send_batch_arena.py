"""SendBatch: sending from an arena, and sending received RecvBatches on.

Real sockets on loopback; receivers are stdlib sockets, so what arrives is
read by code that is not hotsock's.
"""
import errno
import os
import socket
import threading
import time

import pytest
from test_batch import _peak_during

import hotsock
from hotsock import _features, _state

SO_NO_CHECK = 11        # Linux: no UDP checksums -- which makes the kernel refuse GSO
needs_gso = pytest.mark.skipif(not hotsock.features().get("gso_available", False)
                               or hotsock.features().get("gso_forced_off", False),
                               reason="no UDP_SEGMENT here")
needs_gro = pytest.mark.skipif(not _features.gro_enabled(), reason="no UDP_GRO here")


def udp(family=socket.AF_INET, cls=socket.socket, rcvbuf=1 << 22):
    s = cls(family, socket.SOCK_DGRAM)
    s.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(5)
    return s


def recv_all(sock, count, size=65536):
    return [sock.recv(size) for _ in range(count)]


def filled(payloads, size=None, addresses=None):
    """A SendBatch holding *payloads* (set one by one, as user code would)."""
    batch = hotsock.SendBatch(max(len(payloads), 1),
                              size if size is not None else max([len(p) for p in payloads] + [0]))
    for i, p in enumerate(payloads):
        batch.set(i, p, None if addresses is None else addresses[i])
    return batch


def pattern(i, n):
    return bytes((i * 7 + j) & 0xFF for j in range(n))


# --- the object ---------------------------------------------------------------

def test_shape_views_lengths_and_count():
    batch = hotsock.SendBatch(8, 100)
    assert (batch.count, batch.size, len(batch), batch.used) == (8, 100, 0, 0)
    view = batch[3]
    assert isinstance(view, memoryview) and len(view) == 100 and not view.readonly
    view[:5] = b"hello"
    assert bytes(batch[3][:5]) == b"hello" and bytes(batch[-5][:5]) == b"hello"
    lengths = batch.lengths
    assert (lengths.format, lengths.itemsize, len(lengths), lengths.readonly) == ("I", 4, 8, False)
    assert list(lengths) == [0] * 8
    batch.set(2, b"abc")
    assert (len(batch), batch.lengths[2]) == (3, 3)      # set raises used to i + 1
    batch.set(0, b"z")
    assert len(batch) == 3                               # ... never lowers it
    batch.used = 8
    assert len(batch) == 8
    batch.used = 0
    assert len(batch) == 0
    whole = memoryview(batch)
    assert len(whole) == 800 and bytes(whole[200:203]) == b"abc"
    assert "count=8" in repr(batch) and "used=0" in repr(batch)


def test_iteration_yields_payloads_and_addresses():
    batch = filled([b"a", b"bb", b"ccc"], size=10)
    batch.set_address(1, ("127.0.0.1", 9))
    assert [(bytes(p), a) for p, a in batch] == [(b"a", None), (b"bb", ("127.0.0.1", 9)),
                                                  (b"ccc", None)]
    assert batch.address(1) == ("127.0.0.1", 9) and batch.address(0) is None
    batch.set_address(1, None)
    assert batch.address(1) is None


def test_numpy_wraps_the_arena_and_lengths():
    np = pytest.importorskip("numpy")
    batch = hotsock.SendBatch(16, 32)
    slots = np.frombuffer(batch, np.uint8).reshape(16, 32)
    lengths = np.frombuffer(batch.lengths, np.uint32)
    slots[:] = np.arange(16, dtype=np.uint8)[:, None]
    lengths[:] = np.arange(16) + 1
    batch.used = 16
    rx, tx = udp(), hotsock.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with rx, tx:
        assert tx.send_batch(batch, rx.getsockname(), gso=False) == 16
        assert recv_all(rx, 16) == [bytes([i]) * (i + 1) for i in range(16)]


# --- round trips ----------------------------------------------------------------

SIZES = [0, 1, 2, 63, 64, 1452, 1472, 1473, 2048, 9000, 65507]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("family", [socket.AF_INET, pytest.param(socket.AF_INET6, marks=pytest.mark.ipv6)],
                         ids=["ipv4", "ipv6"])
def test_round_trip(family, size):
    rx, tx = udp(family), hotsock.socket(family, socket.SOCK_DGRAM)
    with rx, tx:
        payloads = [pattern(i, size) for i in range(5)]
        batch = filled(payloads, size=size)
        for gso in (False, None, True):
            assert hotsock.send_batch(tx, batch, rx.getsockname(), gso=gso) == 5
            assert recv_all(rx, 5) == payloads
        tx.connect(rx.getsockname())
        assert tx.send_batch(batch) == 5                # the connected peer
        assert recv_all(rx, 5) == payloads


@pytest.mark.parametrize("size", [0, 1, 100, 2048, 65507])
def test_round_trip_unix_datagram(tmp_path, size):
    path = str(tmp_path / "rx")
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(path)
    rx.settimeout(5)
    tx = hotsock.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    with rx, tx:
        payloads = [pattern(i, size) for i in range(3)]
        batch = filled(payloads, size=size)
        assert tx.send_batch(batch, path, gso=True) == 3     # gso never applies to UNIX
        assert recv_all(rx, 3, 70000) == payloads
        for i in range(3):
            batch.set_address(i, path)
        assert tx.send_batch(batch) == 3
        assert recv_all(rx, 3, 70000) == payloads


@pytest.mark.parametrize("gso", [False, None, True])
def test_per_datagram_addresses_to_several_receivers(gso):
    receivers = [udp() for _ in range(3)]
    tx = hotsock.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        # Runs of equal sizes per receiver, so that GSO groups some of them.
        plan = [(i % 3 if i < 30 else (i // 10) % 3, 100 if i % 11 else 40) for i in range(90)]
        batch = hotsock.SendBatch(90, 200)
        for i, (r, n) in enumerate(plan):
            batch.set(i, pattern(i, n), receivers[r].getsockname())
        assert tx.send_batch(batch, gso=gso) == 90
        for r, rx in enumerate(receivers):
            expected = [pattern(i, n) for i, (to, n) in enumerate(plan) if to == r]
            assert recv_all(rx, len(expected)) == expected
        # Sent again: the converted addresses are reused, same result.
        assert tx.send_batch(batch, gso=gso) == 90
        for r, rx in enumerate(receivers):
            expected = [pattern(i, n) for i, (to, n) in enumerate(plan) if to == r]
            assert recv_all(rx, len(expected)) == expected
        # One address for the call overrides the per-datagram ones.
        assert tx.send_batch(batch, receivers[0].getsockname(), gso=gso) == 90
        assert recv_all(receivers[0], 90) == [pattern(i, n) for i, (_, n) in enumerate(plan)]
    finally:
        for s in receivers + [tx]:
            s.close()


def test_addresses_by_host_name_and_for_another_family():
    rx = udp()
    tx = hotsock.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with rx, tx:
        batch = filled([b"one", b"two"], size=8)
        port = rx.getsockname()[1]
        batch.set_address(0, ("localhost", port))
        batch.set_address(1, ("127.0.0.1", port))
        assert tx.send_batch(batch) == 2
        assert recv_all(rx, 2) == [b"one", b"two"]
        if socket.has_ipv6:
            # Converted for AF_INET already; on an IPv6 socket the stdlib's
            # conversion (and error) for that family applies.
            with hotsock.socket(socket.AF_INET6, socket.SOCK_DGRAM) as tx6, \
                    socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as std6:
                with pytest.raises(OSError) as ours:
                    tx6.send_batch(filled([b"x"], addresses=[("127.0.0.1", port)]))
                with pytest.raises(OSError) as stdlib:
                    std6.sendto(b"x", ("127.0.0.1", port))
                assert type(ours.value) is type(stdlib.value)
                assert str(ours.value) == str(stdlib.value)


# --- GSO --------------------------------------------------------------------------

@needs_gso
@pytest.mark.parametrize("slot", ["full", "strided"])
@pytest.mark.parametrize("size", [1, 64, 1000, 1472, 1473, 8000])
def test_gso_on_and_off_deliver_the_same_datagrams(slot, size):
    rx, tx = udp(rcvbuf=1 << 24), hotsock.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with rx, tx:
        count = min(1024, (1 << 20) // max(size, 1) // 2)
        # Runs of equal sizes, a shorter last one, an empty one, a longer one.
        lengths = [size] * (count - 4) + [max(size // 2, 1), 0, size, max(size // 3, 1)]
        batch = hotsock.SendBatch(count, size if slot == "full" else size + 17)
        for i, n in enumerate(lengths):
            batch.set(i, pattern(i, n))
        expected = [pattern(i, n) for i, n in enumerate(lengths)]
        for gso in (False, True, None):
            assert tx.send_batch(batch, rx.getsockname(), gso=gso) == count
            assert recv_all(rx, count) == expected
        assert _state.gso_usable(tx, tx.family)


@needs_gso
@pytest.mark.parametrize("own_addresses", [False, True])
def test_gso_refusal_falls_back_and_is_remembered(own_addresses):
    rx, tx = udp(), hotsock.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with rx, tx:
        tx.setsockopt(socket.SOL_SOCKET, SO_NO_CHECK, 1)
        payloads = [bytes([i]) * (200 if i < 25 else 50) for i in range(30)]
        batch = filled(payloads, size=256 if own_addresses else 200,
                       addresses=[rx.getsockname()] * 30 if own_addresses else None)
        address = None if own_addresses else rx.getsockname()
        assert _state.gso_usable(tx, tx.family)
        assert tx.send_batch(batch, address, gso=True) == 30
        assert recv_all(rx, 30) == payloads
        assert not _state.gso_usable(tx, tx.family)
        assert tx.send_batch(batch, address, gso=True) == 30     # one by one from now on
        assert recv_all(rx, 30) == payloads


# --- RecvBatch sent on ------------------------------------------------------------

def test_relay_forwards_an_edited_recv_batch():
    client, relay, server = udp(), udp(cls=hotsock.socket), udp()
    with client, relay, server:
        payloads = [b"msg %03d " % i + pattern(i, i * 9) for i in range(64)]
        for p in payloads:
            client.sendto(p, relay.getsockname())
        batch = hotsock.RecvBatch(64, 2048)
        assert relay.recv_batch(batch) == 64            # all queued already (loopback)
        for i in range(64):
            batch[i][:3] = b"MSG"                       # edited in place
        lengths = batch.lengths
        lengths[5] = 4                                 # and one shortened
        for gso in (False, True):
            assert relay.send_batch(batch, server.getsockname(), gso=gso) == 64
            expected = [b"MSG" + p[3:] for p in payloads]
            expected[5] = expected[5][:4]
            assert recv_all(server, 64) == expected


def test_recv_batch_goes_back_to_its_senders_or_the_peer():
    a, b, echo = udp(), udp(), udp(cls=hotsock.socket)
    with a, b, echo:
        a.sendto(b"from a", echo.getsockname())
        b.sendto(b"from b", echo.getsockname())
        a.sendto(b"a again", echo.getsockname())
        batch = hotsock.RecvBatch(8, 100)
        time.sleep(0.05)
        assert echo.recv_batch(batch) == 3
        assert echo.send_batch(batch) == 3             # unconnected: back to each sender
        assert recv_all(a, 2) == [b"from a", b"a again"]
        assert recv_all(b, 1) == [b"from b"]
        with hotsock.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
            out.connect(b.getsockname())
            assert out.send_batch(batch) == 3          # connected: all to the peer
            assert recv_all(b, 3) == [b"from a", b"from b", b"a again"]


@needs_gso
@needs_gro
def test_gro_batch_is_forwarded_datagram_by_datagram():
    rx, tx, dest = udp(cls=hotsock.socket, rcvbuf=1 << 24), hotsock.socket(
        socket.AF_INET, socket.SOCK_DGRAM), udp(rcvbuf=1 << 24)
    with rx, tx, dest:
        batch = hotsock.RecvBatch(8, gro=True)
        rx.setblocking(False)
        with pytest.raises(BlockingIOError):
            rx.recv_batch(batch)                       # turns UDP_GRO on
        rx.settimeout(5)
        payloads = [pattern(i, 300) for i in range(40)] + [pattern(99, 120)]
        assert tx.send_batch(payloads, rx.getsockname(), gso=True) == 41
        received = []
        while len(received) < 41:
            rx.recv_batch(batch)
            received += [bytes(p) for p, _ in batch]
            assert rx.send_batch(batch, dest.getsockname(), gso=False) == len(batch)
        assert received == payloads
        assert recv_all(dest, 41) == payloads


def test_a_recv_batch_being_received_into_is_refused():
    rx, tx = udp(cls=hotsock.socket), udp()
    with rx, tx:
        batch = hotsock.RecvBatch(4, 100)
        worker = threading.Thread(target=rx.recv_batch, args=(batch,))
        worker.start()
        try:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                try:
                    hotsock.send_batch(tx, batch, rx.getsockname())
                except RuntimeError as exc:
                    assert "received into" in str(exc)
                    break
                time.sleep(0.01)
            else:
                pytest.fail("the busy batch was never refused")
        finally:
            tx.sendto(b"wake", rx.getsockname())
            worker.join(5)
        assert len(batch) == 1


def test_an_empty_recv_batch_sends_nothing():
    with hotsock.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        assert tx.send_batch(hotsock.RecvBatch(4, 10), ("127.0.0.1", 9)) == 0
        assert tx.send_batch(hotsock.SendBatch(4, 10), ("127.0.0.1", 9)) == 0


# --- streams and full sockets -------------------------------------------------------

def _stream_pair(kind):
    if kind == "unix":
        return hotsock.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = hotsock.create_connection(server.getsockname())
        return client, server.accept()[0]


@pytest.mark.parametrize("kind", ["unix", "tcp"])
def test_stream_sockets_get_each_datagram_whole_in_order(kind):
    payloads = [pattern(i, 1000 + i) for i in range(50)] + [b""] + [b"end"]
    batch = filled(payloads, size=2000)
    sender, receiver = _stream_pair(kind)
    with sender, receiver:
        assert sender.send_batch(batch) == len(payloads)
        sender.shutdown(socket.SHUT_WR)
        receiver.settimeout(5)
        data = b"".join(iter(lambda: receiver.recv(1 << 16), b""))
        assert data == b"".join(payloads)


def test_partial_send_on_a_full_non_blocking_socket():
    a, b = hotsock.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with a, b:
        a.setblocking(False)
        batch = hotsock.SendBatch(1024, 512)
        for i in range(1024):
            batch.set(i, i.to_bytes(4, "big") * 128)
        sent = 0
        rounds = 0
        while rounds < 50:
            rounds += 1
            n = a.send_batch(batch)
            sent += n
            if n < 1024:
                break
        assert 0 < n < 1024                         # the peer's queue filled up
        with pytest.raises(BlockingIOError):
            a.send_batch(batch)
        b.setblocking(False)
        received = []
        try:
            while True:
                received.append(b.recv(1024))
        except BlockingIOError:
            pass
        assert len(received) == sent
        assert received[-1] == (n - 1).to_bytes(4, "big") * 128


# --- bad input ----------------------------------------------------------------------

@pytest.mark.parametrize("args, exc, words", [
    ((0, 10), ValueError, "count must be between 1 and"),
    ((hotsock.MAX_BATCH + 1, 10), ValueError, "count must be between 1 and"),
    ((-1, 10), ValueError, "count must be between 1 and"),
    ((4, -1), ValueError, "size must be between 0 and"),
    ((4, (1 << 24) + 1), ValueError, "size must be between 0 and"),
    ((4.0, 10), TypeError, "integer"),
    ((4, "10"), TypeError, "integer"),
])
def test_bad_shapes(args, exc, words):
    with pytest.raises(exc, match=words):
        hotsock.SendBatch(*args)


def test_bad_indices_counts_and_data():
    batch = hotsock.SendBatch(4, 8)
    for i in (4, -5, 1 << 40):
        with pytest.raises((IndexError, OverflowError)):
            batch[i]
        with pytest.raises((IndexError, OverflowError)):
            batch.set(i, b"x")
        with pytest.raises((IndexError, OverflowError)):
            batch.set_address(i, ("127.0.0.1", 9))
        with pytest.raises((IndexError, OverflowError)):
            batch.address(i)
    with pytest.raises(IndexError, match="SendBatch index out of range"):
        batch[4]
    for n in (-1, 5):
        with pytest.raises(ValueError, match="used must be between 0 and 4"):
            batch.used = n
    with pytest.raises(TypeError):
        batch.used = "2"
    with pytest.raises(ValueError, match="9 bytes do not fit in a slot of 8"):
        batch.set(0, b"123456789")
    with pytest.raises(TypeError):
        batch.set(0, "text")
    assert len(batch) == 0                      # nothing half-done
    batch.set(3, memoryview(b"abcdefgh")[2:])   # any bytes-like object
    assert bytes(batch[3][:6]) == b"cdefgh" and len(batch) == 4
    batch.set(3, batch[3][1:4])                 # from its own slot
    assert bytes(batch[3][:3]) == b"def"


@pytest.mark.parametrize("gso", [False, True])
@pytest.mark.parametrize("how", ["memoryview", "numpy"])
def test_a_length_above_the_slot_is_refused_at_send_time(how, gso):
    rx, tx = udp(), hotsock.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with rx, tx:
        batch = filled([b"x" * 64] * 10, size=64)
        if how == "numpy":
            np = pytest.importorskip("numpy")
            np.frombuffer(batch.lengths, np.uint32)[7] = 0xFFFFFFFF
            shown = 0xFFFFFFFF
        else:
            batch.lengths[7] = 65
            shown = 65
        with pytest.raises(ValueError, match=rf"SendBatch.lengths\[7\] is {shown}, more than "
                                             r"the slot size 64"):
            tx.send_batch(batch, rx.getsockname(), gso=gso)
        with pytest.raises(ValueError, match=r"lengths\[7\]"):
            list(batch)
        rx.setblocking(False)
        with pytest.raises(BlockingIOError):
            rx.recv(100)                        # nothing was sent
        a, b = hotsock.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        with a, b:
            with pytest.raises(ValueError, match=r"lengths\[7\]"):
                a.send_batch(batch)


@pytest.mark.parametrize("family, address", [
    (socket.AF_INET, ("::1", 9)),
    (socket.AF_INET, ["127.0.0.1", 9]),
    (socket.AF_INET, ("127.0.0.1",)),
    (socket.AF_INET, ("127.0.0.1", 70000)),
    (socket.AF_INET, ("127.0.0.1", "9")),
    (socket.AF_INET, "/tmp/a-path"),
    (socket.AF_INET6, ("127.0.0.1", 9)),
    (socket.AF_INET6, ("::1", 9, 1 << 21)),
    (socket.AF_UNIX, ("127.0.0.1", 9)),
])
def test_bad_addresses_fail_as_sendto_fails(family, address):
    if family == socket.AF_INET6 and not socket.has_ipv6:
        pytest.skip("no IPv6")
    with socket.socket(family, socket.SOCK_DGRAM) as std, \
            hotsock.socket(family, socket.SOCK_DGRAM) as hot:
        with pytest.raises(Exception) as expected:
            std.sendto(b"x", address)
        batch = filled([b"x", b"y"], size=4)
        for how in ("per datagram", "for all"):
            if how == "per datagram":
                batch.set_address(1, address)
                call = lambda: hot.send_batch(batch)    # noqa: E731
            else:
                call = lambda: hot.send_batch(batch, address)   # noqa: E731
            with pytest.raises(type(expected.value)) as ours:
                call()
            # The stdlib's words, with send_batch() as the caller.
            assert str(ours.value) == str(expected.value).replace("sendto()", "send_batch()")
            if how == "per datagram":
                assert "datagram 1" in "".join(getattr(ours.value, "__notes__", []))


def test_bad_arguments_with_a_batch():
    with hotsock.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        batch = filled([b"x"], size=4)
        with pytest.raises(TypeError, match="addresses only with a sequence"):
            tx.send_batch(batch, addresses=[("127.0.0.1", 9)])
        with pytest.raises(TypeError, match="gso must be"):
            tx.send_batch(batch, ("127.0.0.1", 9), gso="yes")
        with pytest.raises(TypeError):
            tx.send_batch(batch, ("127.0.0.1", 9), flags=1.0)
        # Unconnected, no address anywhere: the kernel's answer.
        with pytest.raises(OSError) as info:
            tx.send_batch(batch)
        assert info.value.errno in (errno.EDESTADDRREQ, errno.ENOTCONN)
    r, w = os.pipe()
    try:
        with pytest.raises(OSError) as info:
            hotsock.send_batch(w, filled([b"x"], size=4))
        assert info.value.errno == errno.ENOTSOCK
    finally:
        os.close(r)
        os.close(w)


# --- costs and threads ---------------------------------------------------------------

@pytest.mark.parametrize("gso", [False, True])
def test_sending_an_arena_allocates_nothing_per_datagram(gso):
    # The receiver drops what it has no room for: UDP senders never wait.
    rx, tx = udp(), hotsock.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with rx, tx:
        batch = filled([b"p" * 100] * 1024, size=100)
        send_batch, address = tx.send_batch, rx.getsockname()

        def ten_sends():
            i = 0                   # a while loop: range() and ints above 256 would allocate
            while i < 10:
                assert send_batch(batch, address, gso=gso) == 1024
                i += 1

        # 10240 datagrams: a byte each would show; the count returned (an int) may.
        assert _peak_during(ten_sends) <= 64
        payloads = [b"p" * 100] * 1024

        def ten_list_sends():       # the control: a list's path takes a tuple of it per call
            i = 0
            while i < 10:
                send_batch(payloads, address, gso=gso)
                i += 1

        assert _peak_during(ten_list_sends) > 1024 * 8


def test_threads_sharing_one_arena_do_not_crash():
    rx = udp(rcvbuf=1 << 24)
    rx.setblocking(False)
    tx = hotsock.socket(socket.AF_INET, socket.SOCK_DGRAM)
    batch = filled([b"t" * 64] * 256, size=64)
    for i in range(0, 256, 3):
        batch.set_address(i, rx.getsockname())
    stop = time.monotonic() + 1.0
    errors = []

    def sender():
        n = 0
        while time.monotonic() < stop and n < 2000:
            n += 1
            try:
                tx.send_batch(batch, None if n % 2 else rx.getsockname(), gso=(n % 3 == 0))
            except (ValueError, OSError):
                pass                            # a length above the slot, a full buffer
            except Exception as exc:            # anything else is a bug
                errors.append(exc)

    def scribbler():
        lengths = batch.lengths
        n = 0
        while time.monotonic() < stop and n < 200000:
            n += 1
            i = n % 256
            lengths[i] = (n * 37) % 80          # sometimes above the slot
            if n % 5 == 0:
                batch.set(i, b"s" * (n % 60), rx.getsockname() if n % 2 else None)
            if n % 7 == 0:
                batch.used = 1 + n % 256
            if n % 11 == 0:
                batch.set_address(i, ("localhost", rx.getsockname()[1]))

    def drainer():
        while time.monotonic() < stop:
            try:
                rx.recv(100)
            except BlockingIOError:
                time.sleep(0.001)

    threads = [threading.Thread(target=f) for f in (sender, sender, sender, scribbler, drainer)]
    with rx, tx:
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
