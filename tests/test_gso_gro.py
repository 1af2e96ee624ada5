"""GSO and GRO: many datagrams per syscall, the same datagrams on the wire.

Segmented sends (send_batch gso=, blast) are checked by receivers that see
single datagrams (a plain socket: the kernel segments) and coalesced buffers
(a GRO batch); GRO receive by independent C programs (tests/cpeers
udp_gso_send / udp_gro_recv) and across a veth pair between namespaces.
"""
import os
import socket
import subprocess
import sys
import threading

import pytest
from hosts import read_line

import hotsock
from hotsock import _state

pytestmark = pytest.mark.skipif(
    not (hotsock.features()["gso_available"] and hotsock.features()["gro_available"]),
    reason="UDP_SEGMENT/UDP_GRO are not available here (Linux >= 5.0)")

# The hotsock being tested, for subprocesses too: an in-place build or the installed one.
SRC = os.path.dirname(os.path.dirname(os.path.abspath(hotsock.__file__)))
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(
    p for p in (SRC, os.environ.get("PYTHONPATH")) if p))
SO_NO_CHECK = 11        # Linux: no UDP checksums -- which makes the kernel refuse GSO


def udp(family=socket.AF_INET, host="127.0.0.1", cls=hotsock.socket):
    s = cls(family, socket.SOCK_DGRAM)
    s.bind((host, 0))
    s.settimeout(5)
    return s


def prime(rx, batch):
    """A first (empty) receive: it turns UDP_GRO on for the socket."""
    timeout = rx.gettimeout()
    rx.setblocking(False)
    with pytest.raises(BlockingIOError):
        rx.recv_batch(batch)
    rx.settimeout(timeout)


def receive(sock, count, batch):
    """(payload, address) of *count* datagrams, received into *batch*."""
    got = []
    while len(got) < count:
        sock.recv_batch(batch)
        got += [(bytes(p), a) for p, a in batch]
    return got


def coalesced_receiver(family=socket.AF_INET, host="127.0.0.1"):
    rx = udp(family, host)
    rx.set_recv_buffer(1 << 24, force=True)
    batch = hotsock.RecvBatch(8, gro=True)
    prime(rx, batch)
    return rx, batch


PAYLOADS = {
    "equal": [bytes([i]) * 100 for i in range(20)],
    "short last": [bytes([i]) * 100 for i in range(9)] + [b"end"],
    "mixed sizes": [b"a" * 100, b"b" * 100, b"c" * 40, b"d" * 100, b"e" * 300, b"f" * 300,
                    b"", b"g" * 5, b"h" * 5, b"i" * 5],
    "more than 64": [(b"%04d" % i) * 25 for i in range(150)],
    "large segments": [bytes([i]) * 8000 for i in range(12)],
}


@pytest.mark.parametrize("kind", PAYLOADS)
def test_segmented_send_arrives_as_single_datagrams(kind):
    payloads = PAYLOADS[kind]
    rx, tx = udp(cls=socket.socket), udp()
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    assert tx.send_batch(payloads, rx.getsockname(), gso=True) == len(payloads)
    assert [rx.recvfrom(65536) for _ in payloads] == [(p, tx.getsockname()) for p in payloads]
    rx.close()
    tx.close()


@pytest.mark.parametrize("kind", PAYLOADS)
def test_gro_batch_splits_coalesced_buffers(kind):
    payloads = PAYLOADS[kind]
    rx, batch = coalesced_receiver()
    tx = udp()
    assert tx.send_batch(payloads, rx.getsockname(), gso=True) == len(payloads)
    got = receive(rx, len(payloads), batch)
    assert got == [(p, tx.getsockname()) for p in payloads]
    rx.close()
    tx.close()


def test_coalescing_really_happens_and_lengths_count_segments():
    rx, batch = coalesced_receiver()
    tx = udp()
    payloads = [bytes([i]) * 64 for i in range(64)]
    tx.send_batch(payloads, rx.getsockname(), gso=True)
    assert rx.recv_batch(batch) == 64              # one buffer, 64 datagrams
    assert len(batch) == 64 and list(batch.lengths) == [64] * 64
    assert [bytes(p) for p, _ in batch] == payloads
    assert list(batch.flags) == [0] * 64
    assert {batch.address(i) for i in range(64)} == {tx.getsockname()}
    with pytest.raises(IndexError):
        batch[64]
    rx.close()
    tx.close()


def test_mixed_destinations_are_not_merged():
    a, b = udp(cls=socket.socket), udp(cls=socket.socket)
    tx = udp()
    payloads = [b"%02d" % i * 10 for i in range(10)]
    targets = [a.getsockname() if i % 3 else b.getsockname() for i in range(10)]
    assert tx.send_batch(payloads, addresses=targets, gso=True) == 10
    for sock, name in ((a, a.getsockname()), (b, b.getsockname())):
        expected = [p for p, t in zip(payloads, targets) if t == name]
        assert [sock.recv(100) for _ in expected] == expected
    for s in (a, b, tx):
        s.close()


@pytest.mark.ipv6
def test_ipv6_segmented_send_and_gro_receive():
    rx, batch = coalesced_receiver(socket.AF_INET6, "::1")
    tx = udp(socket.AF_INET6, "::1")
    payloads = [bytes([i]) * 1000 for i in range(40)] + [b"tail"]
    assert tx.send_batch(payloads, rx.getsockname(), gso=True) == len(payloads)
    assert [p for p, _ in receive(rx, len(payloads), batch)] == payloads
    rx.close()
    tx.close()


def test_refusal_falls_back_and_is_remembered():
    """With SO_NO_CHECK the kernel refuses segmented sends (EINVAL): nothing is
    lost, and the socket is remembered as refusing."""
    rx, tx = udp(cls=socket.socket), udp()
    tx.setsockopt(socket.SOL_SOCKET, SO_NO_CHECK, 1)
    assert _state.gso_usable(tx, tx.family)
    payloads = [bytes([i]) * 200 for i in range(30)]
    assert tx.send_batch(payloads, rx.getsockname(), gso=True) == 30
    assert [rx.recv(300) for _ in payloads] == payloads
    assert not _state.gso_usable(tx, tx.family)
    assert tx.send_batch(payloads, rx.getsockname(), gso=True) == 30      # plain from now on
    assert [rx.recv(300) for _ in payloads] == payloads
    rx.close()
    tx.close()
    fresh = udp()                         # a new socket (perhaps the same number) starts afresh
    assert _state.gso_usable(fresh, fresh.family)
    fresh.close()


def test_single_datagrams_never_carry_a_segment_size():
    """On a socket that refuses segmented sends, single datagrams -- alone, or
    between differing neighbours -- go without one, so the socket is never
    marked as refusing."""
    rx, tx = udp(cls=socket.socket), udp()
    tx.setsockopt(socket.SOL_SOCKET, SO_NO_CHECK, 1)
    payloads = [b"one"], [b"a" * 10, b"b" * 20, b"c" * 30], [b"x" * 50, b""]
    for batch in payloads:
        assert tx.send_batch(batch, rx.getsockname(), gso=True) == len(batch)
        assert [rx.recv(100) for _ in batch] == batch
    assert _state.gso_usable(tx, tx.family)
    rx.close()
    tx.close()


def test_automatic_gso_only_for_safe_sizes():
    """gso=None: small datagrams are segmented (a refusal shows it), datagrams
    past a 1500-byte MTU are not."""
    rx, tx = udp(cls=socket.socket), udp()
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    tx.setsockopt(socket.SOL_SOCKET, SO_NO_CHECK, 1)
    big = [b"B" * 2000] * 5
    assert tx.send_batch(big, rx.getsockname()) == 5
    assert _state.gso_usable(tx, tx.family)      # not tried: too big for auto
    small = [b"s" * 100] * 5
    assert tx.send_batch(small, rx.getsockname()) == 5
    assert not _state.gso_usable(tx, tx.family)  # tried, refused, remembered
    assert [rx.recv(3000) for _ in range(10)] == big + small
    rx.close()
    tx.close()


def test_gso_false_and_non_udp_sockets():
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    # A UNIX datagram socket would ignore UDP_SEGMENT and deliver one big datagram.
    assert hotsock.send_batch(a, [b"u" * 10] * 4, gso=True) == 4
    assert [b.recv(100) for _ in range(4)] == [b"u" * 10] * 4
    a.close()
    b.close()
    with pytest.raises(TypeError, match="gso must be"):
        hotsock.send_batch(udp(), [b"x"], ("127.0.0.1", 9), gso="yes")


def test_forced_off_by_environment():
    code = ("import hotsock, socket\n"
            "f = hotsock.features()\n"
            "rx = hotsock.socket(socket.AF_INET, socket.SOCK_DGRAM); rx.bind(('127.0.0.1', 0))\n"
            "tx = hotsock.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "tx.setsockopt(socket.SOL_SOCKET, 11, 1)\n"      # a GSO attempt would be refused
            "n = tx.send_batch([b'z' * 10] * 8, rx.getsockname(), gso=True)\n"
            "b = hotsock.RecvBatch(4, gro=True); rx.settimeout(5); got = 0\n"
            "while got < 8: got += rx.recv_batch(b)\n"
            "from hotsock import _state\n"
            "print(f['gso_forced_off'], f['gro_forced_off'], n, got,"
            " _state.gso_usable(tx, tx.family))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, env={**ENV,
                                          "HOTSOCK_NO_GSO": "1", "HOTSOCK_NO_GRO": "1"})
    assert out.stdout.split() == ["True", "True", "8", "8", "False"], out.stderr


def test_control_truncation_is_flagged_not_split():
    """A GRO buffer whose UDP_GRO message did not fit is one flagged entry."""
    rx = udp()
    batch = hotsock.RecvBatch(4, gro=True, control=0)
    prime(rx, batch)
    tx = udp()
    tx.send_batch([b"q" * 100] * 5, rx.getsockname(), gso=True)
    assert rx.recv_batch(batch) == 1
    assert batch.flags[0] & socket.MSG_CTRUNC
    assert batch.lengths[0] == 500 and bytes(batch[0]) == b"q" * 500
    rx.close()
    tx.close()


def test_bad_control_size():
    with pytest.raises(ValueError, match="control must be between 0 and 65536"):
        hotsock.RecvBatch(4, control=-1)


# --- the hot loops ------------------------------------------------------------------

def test_echo_sends_coalesced_buffers_back_segmented():
    server = udp()
    client, batch = coalesced_receiver()
    payloads = [bytes([i]) * 64 for i in range(200)]
    result = {}
    thread = threading.Thread(target=lambda: result.update(
        stats=hotsock.echo(server, count=200, idle=5)))
    thread.start()
    assert client.send_batch(payloads, server.getsockname(), gso=True) == 200
    thread.join()
    stats = result["stats"]
    assert (stats.received, stats.sent, stats.errors) == (200, 200, 0)
    assert stats.batches < 50, "the server should have seen coalesced buffers"
    assert [p for p, _ in receive(client, 200, batch)] == payloads
    server.close()
    client.close()


def test_echo_falls_back_when_segmented_sends_are_refused():
    server = udp()
    server.setsockopt(socket.SOL_SOCKET, SO_NO_CHECK, 1)
    client = udp()
    client.set_recv_buffer(1 << 22, force=True)
    payloads = [bytes([i]) * 64 for i in range(100)]
    result = {}
    thread = threading.Thread(target=lambda: result.update(
        stats=hotsock.echo(server, count=100, idle=5)))
    thread.start()
    client.send_batch(payloads, server.getsockname(), gso=True)
    thread.join()
    assert (result["stats"].sent, result["stats"].errors) == (100, 0)
    assert [client.recv(100) for _ in payloads] == payloads
    assert not _state.gso_usable(server, server.family)
    server.close()
    client.close()


def test_blast_gso_into_capture(tmp_path):
    from pcapfiles import read_capture
    rx, batch = coalesced_receiver()          # UDP_GRO on before the datagrams arrive
    tx = hotsock.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sent = hotsock.blast(tx, rx.getsockname(), size=200, count=5000, gso=True)
    assert (sent.sent, sent.batches) == (5000, 5)      # 1024 datagrams per sendmmsg
    stats = hotsock.capture(rx, tmp_path / "g.pcap", count=5000, idle=5, gro=True)
    assert (stats.received, stats.sequenced, stats.lost, stats.duplicated, stats.reordered) == (
        5000, 5000, 0, 0, 0)
    # 5000 datagrams in 79 coalesced buffers: a few recvmmsg calls, not 79 or 5000.
    assert stats.batches <= 5
    records = read_capture(tmp_path / "g.pcap")
    assert len(records) == 5000 and {len(r.payload) for r in records} == {200}
    seqs = [int.from_bytes(r.payload[8:16], "big") for r in records]
    assert seqs == list(range(5000))
    assert {(r.src, r.sport, r.dport) for r in records} == {
        ("127.0.0.1", tx.getsockname()[1], rx.getsockname()[1])}
    rx.close()
    tx.close()


def test_blast_gso_refused_loses_nothing():
    rx = udp(cls=socket.socket)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    tx = hotsock.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.setsockopt(socket.SOL_SOCKET, SO_NO_CHECK, 1)
    stats = hotsock.blast(tx, rx.getsockname(), size=100, count=300, gso=True)
    assert (stats.sent, stats.errors) == (300, 0)
    seqs = [int.from_bytes(rx.recv(200)[8:16], "big") for _ in range(300)]
    assert seqs == list(range(300))
    rx.close()
    tx.close()


# --- independent C peers ------------------------------------------------------------------

def test_c_gso_sender_into_gro_batch(cpeers):
    rx, batch = coalesced_receiver()
    proc = cpeers.run("udp_gso_send", "-s", "500", "-n", "32", "127.0.0.1",
                      rx.getsockname()[1], 1000)
    assert proc.stdout.split() == ["sent", "1000"], proc.stderr
    got = [p for p, _ in receive(rx, 1000, batch)]
    assert len(got) == 1000 and sum(map(len, got)) == 500 * 1000
    for i, p in enumerate(got):
        assert p == i.to_bytes(4, "big") + bytes([i & 0xff]) * 496
    rx.close()


def test_capture_drops_under_gro_count_buffers_not_datagrams():
    """Why capture leaves GRO off by default: a dropped coalesced buffer is one
    drop in the kernel's counter, however many datagrams it held."""
    rx = udp(cls=socket.socket)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    rx.setsockopt(socket.IPPROTO_UDP, 104, 1)          # UDP_GRO
    tx = udp()
    tx.send_batch([b"d" * 100] * 640, rx.getsockname(), gso=True)   # 10 buffers of 64
    dropped = hotsock.kernel_drops(rx)
    assert 0 < dropped < 640 - 64, dropped           # most datagrams lost, few drops counted
    rx.close()
    tx.close()


def test_hotsock_gso_into_c_gro_receiver(cpeers):
    holder = udp(cls=socket.socket)
    port = holder.getsockname()[1]
    holder.close()
    with cpeers.popen("udp_gro_recv", "-w", "3000", "-b", "127.0.0.1", port, 2000) as proc:
        assert proc.stdout.readline().strip() == "ready"
        tx = udp()
        payloads = [i.to_bytes(4, "big") + bytes([i & 0xff]) * 296 for i in range(2000)]
        assert tx.send_batch(payloads, ("127.0.0.1", port), gso=True) == 2000
        out, err = proc.communicate(timeout=20)
        tx.close()
    fields = out.split()
    assert proc.returncode == 0, out + err
    assert fields[:4] == ["received", "2000", "bytes", str(300 * 2000)]
    assert int(fields[fields.index("coalesced") + 1]) > 0
    assert fields[-2:] == ["bad", "0"]


# --- across a veth pair ---------------------------------------------------------------------

GRO_RECEIVER = """
import sys, hotsock
rx = hotsock.socket(hotsock.AF_INET, hotsock.SOCK_DGRAM)
rx.bind(("0.0.0.0", 5400))
rx.set_recv_buffer(1 << 24, force=True)
batch = hotsock.RecvBatch(16, gro=True)
rx.settimeout(5)
print("ready", flush=True)
count, got, calls = int(sys.argv[1]), [], 0
while len(got) < count:
    rx.recv_batch(batch)
    calls += 1
    got += [bytes(p) for p, _ in batch]
ok = all(p == i.to_bytes(4, "big") + bytes([i & 0xff]) * (len(p) - 4) for i, p in enumerate(got))
print(len(got), sum(map(len, got)), ok, calls < count, flush=True)
"""

GSO_SENDER = """
import sys, hotsock
tx = hotsock.socket(hotsock.AF_INET, hotsock.SOCK_DGRAM)
count, size = int(sys.argv[2]), int(sys.argv[3])
payloads = [i.to_bytes(4, "big") + bytes([i & 0xff]) * (size - 4) for i in range(count)]
print(tx.send_batch(payloads, (sys.argv[1], 5400), gso=True), flush=True)
"""


@pytest.mark.parametrize("size", [100, 1400])
def test_across_veth(network, size):
    a, b = network.add_host("a"), network.add_host("b")
    count = 3000
    receiver = b.popen_python(GRO_RECEIVER, str(count))
    assert read_line(receiver) == "ready"
    sent = a.run_python(GSO_SENDER, b.address, str(count), str(size), timeout=20)
    assert sent.stdout.split() == [str(count)], sent.stderr
    out, err = receiver.communicate(timeout=20)
    assert out.split() == [str(count), str(count * size), "True", "True"], err


# --- review findings ---------------------------------------------------------------------

def _raw_segmented_send(tx, payload, segment, address):
    """A segmented send built by hand (as a C program would): any segment count."""
    tx.sendmsg([payload], [(socket.IPPROTO_UDP, 103, segment.to_bytes(2, sys.byteorder))],
               0, address)


def test_a_buffer_of_128_segments_fits():
    """Since Linux 6.11 a local segmented send may carry 128 datagrams, and it
    reaches a GRO socket whole: the batch has room for them all."""
    rx, batch = coalesced_receiver()
    tx = udp(cls=socket.socket)
    one = hotsock.RecvBatch(1, gro=True)
    prime(rx, one)
    payload = b"".join(bytes([i]) * 10 for i in range(128))
    try:
        _raw_segmented_send(tx, payload, 10, rx.getsockname())
    except OSError:
        pytest.skip("this kernel takes at most 64 segments per send")
    assert one.capacity >= 128
    assert rx.recv_batch(one) == 128
    assert [bytes(p) for p, _ in one] == [bytes([i]) * 10 for i in range(128)]
    rx.close()
    tx.close()


def test_loops_put_udp_gro_back_as_it_was():
    """After echo (GRO on by default), the caller's own recvfrom gets datagrams,
    not coalesced buffers."""
    rx, tx = udp(), udp()
    assert rx.getsockopt(socket.IPPROTO_UDP, 104) == 0
    thread = threading.Thread(target=lambda: hotsock.echo(rx, count=1, idle=5))
    thread.start()
    import time
    time.sleep(0.1)
    tx.sendto(b"x", rx.getsockname())
    thread.join()
    assert rx.getsockopt(socket.IPPROTO_UDP, 104) == 0
    tx.send_batch([b"a" * 100] * 10, rx.getsockname(), gso=True)
    assert [len(rx.recvfrom(65535)[0]) for _ in range(10)] == [100] * 10
    rx.close()
    tx.close()
