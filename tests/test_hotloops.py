"""capture, echo and blast: the C hot loops, checked with real sockets on loopback.

Captures are read back three ways (tests/pcapfiles.py: our reader, dpkt, tshark)
and compared with what was sent: counts, payloads, addresses, ports, timestamps.
"""
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import tracemalloc

import pytest
from pcapfiles import read_capture, read_isb, tshark_fields

import hotsock

# The hotsock being tested, for subprocesses too: an in-place build or the installed one.
SRC = os.path.dirname(os.path.dirname(os.path.abspath(hotsock.__file__)))
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(
    p for p in (SRC, os.environ.get("PYTHONPATH")) if p))


def udp(family=socket.AF_INET, host="127.0.0.1", cls=hotsock.socket):
    s = cls(family, socket.SOCK_DGRAM)
    s.bind((host, 0))
    return s


def send_later(sock, payloads, address, delay=0.1):
    """Send *payloads* from a thread after *delay* (the loop under test is running by then)."""
    def run():
        time.sleep(delay)
        for p in payloads:
            sock.sendto(p, address)
    thread = threading.Thread(target=run)
    thread.start()
    return thread


def header(stream, seq, sent_ns=0):
    return struct.pack("!4sIQq", b"HSQ1", stream, seq, sent_ns)


@pytest.fixture
def pair():
    """A receiver with a deep queue (other work on the machine may stall it), and a sender."""
    rx, tx = udp(), udp(cls=socket.socket)
    rx.set_recv_buffer(1 << 23, force=True)
    yield rx, tx
    rx.close()
    tx.close()


# --- capture: files ------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_capture_records_match_what_was_sent(pair, tmp_path, fmt):
    rx, tx = pair
    path = tmp_path / f"c.{fmt}"
    payloads = [bytes([i]) * (i * 7 % 1500) for i in range(200)]
    before = time.time_ns()
    thread = send_later(tx, payloads, rx.getsockname())
    stats = hotsock.capture(rx, str(path), format=fmt, count=len(payloads), idle=5)
    thread.join()
    after = time.time_ns()
    assert (stats.received, stats.stopped, stats.dropped, stats.truncated) == (200, "count", 0, 0)
    assert stats.received_bytes == sum(map(len, payloads))
    records = read_capture(path)
    assert [r.payload for r in records] == payloads
    host, port = rx.getsockname()
    for r in records:
        assert (r.version, r.src, r.dst) == (4, "127.0.0.1", host)
        assert (r.sport, r.dport) == (tx.getsockname()[1], port)
        assert r.udp_length == 8 + len(r.payload) and r.origlen == r.caplen
        assert before <= r.ts_ns <= after
    stamps = [r.ts_ns for r in records]
    assert stamps == sorted(stamps)


def test_capture_pcapng_ends_with_statistics(pair, tmp_path):
    rx, tx = pair
    path = tmp_path / "s.pcapng"
    thread = send_later(tx, [b"x" * 10] * 30, rx.getsockname())
    hotsock.capture(rx, path, format="pcapng", count=30, idle=5)
    thread.join()
    isb = read_isb(path)
    assert (isb["ifrecv"], isb["ifdrop"]) == (30, 0)
    assert isb["starttime"] <= isb["endtime"]


def test_capture_readable_by_dpkt(pair, tmp_path):
    dpkt = pytest.importorskip("dpkt")
    rx, tx = pair
    payloads = [b"dpkt-%d" % i for i in range(50)]
    for fmt, reader in (("pcap", dpkt.pcap.Reader), ("pcapng", dpkt.pcapng.Reader)):
        path = tmp_path / f"d.{fmt}"
        thread = send_later(tx, payloads, rx.getsockname())
        hotsock.capture(rx, path, format=fmt, count=50, idle=5)
        thread.join()
        ours = read_capture(path)
        with open(path, "rb") as f:
            packets = list(reader(f))
        assert len(packets) == 50
        for (ts, raw), mine, sent in zip(packets, ours, payloads):
            ip = dpkt.ip.IP(raw)
            assert ip.p == dpkt.ip.IP_PROTO_UDP and bytes(ip.data.data) == sent
            assert ip.data.sport == tx.getsockname()[1]
            assert abs(float(ts) - mine.ts_ns / 1e9) < 2e-6     # dpkt's pcapng gives floats
            if fmt == "pcap":
                assert int(ts * 10**9) == mine.ts_ns            # Decimal: exact


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_capture_tshark_agrees(pair, tmp_path, fmt):
    rx, tx = pair
    path = tmp_path / f"t.{fmt}"
    payloads = [os.urandom(n) for n in (0, 1, 63, 64, 1472, 9000)] * 5
    thread = send_later(tx, payloads, rx.getsockname())
    hotsock.capture(rx, path, format=fmt, count=len(payloads), idle=5)
    thread.join()
    rows = tshark_fields(path, "frame.time_epoch", "ip.src", "ip.dst", "udp.srcport",
                         "udp.dstport", "udp.length", "ip.checksum.status",
                         "udp.checksum.status",
                         extra=["-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE",
                                "--disable-protocol", "all", "--enable-protocol", "raw",
                                "--enable-protocol", "ip", "--enable-protocol", "udp",
                                "--enable-protocol", "frame", "--enable-protocol", "data"])
    ours = read_capture(path)
    assert len(rows) == len(payloads)
    for row, record, sent in zip(rows, ours, payloads):
        seconds, fraction = row[0].split(".")
        assert int(seconds) * 10**9 + int(fraction.ljust(9, "0")[:9]) == record.ts_ns
        assert row[1:6] == ["127.0.0.1", "127.0.0.1", str(tx.getsockname()[1]),
                            str(rx.getsockname()[1]), str(8 + len(sent))]
        assert row[6:8] == ["1", "1"]                           # both checksums good


def test_capinfos_counts(pair, tmp_path):
    import shutil
    if shutil.which("capinfos") is None:
        pytest.skip("capinfos is not installed (Debian: apt-get install tshark)")
    rx, tx = pair
    path = tmp_path / "ci.pcapng"
    thread = send_later(tx, [b"c" * 100] * 77, rx.getsockname())
    hotsock.capture(rx, path, format="pcapng", count=77, idle=5)
    thread.join()
    out = subprocess.run(["capinfos", "-c", "-M", str(path)], capture_output=True, text=True,
                         timeout=30).stdout
    assert "Number of packets:   77" in out, out


@pytest.mark.ipv6
def test_capture_ipv6_and_v4_mapped(tmp_path):
    rx = hotsock.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    rx.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    rx.bind(("::", 0))
    port = rx.getsockname()[1]
    tx6, tx4 = udp(socket.AF_INET6, "::1", socket.socket), udp(cls=socket.socket)
    path = tmp_path / "v6.pcapng"

    def send():
        time.sleep(0.1)
        tx6.sendto(b"six", ("::1", port))
        tx4.sendto(b"four", ("127.0.0.1", port))
    thread = threading.Thread(target=send)
    thread.start()
    hotsock.capture(rx, path, format="pcapng", count=2, idle=5)
    thread.join()
    six, four = read_capture(path)
    assert (six.version, six.src, six.dst, six.sport, six.dport, six.payload) == (
        6, "::1", "::1", tx6.getsockname()[1], port, b"six")
    assert (four.version, four.src, four.dst, four.sport, four.dport, four.payload) == (
        4, "127.0.0.1", "127.0.0.1", tx4.getsockname()[1], port, b"four")
    rows = tshark_fields(path, "ipv6.src", "udp.checksum.status",
                         extra=["-o", "udp.check_checksum:TRUE"])
    assert rows[0] == ["::1", "1"]
    for s in (rx, tx6, tx4):
        s.close()


def test_capture_destination_from_pktinfo(tmp_path):
    """Bound to the wildcard address: each record carries the address it was sent to."""
    rx = udp(host="0.0.0.0")
    port = rx.getsockname()[1]
    tx = udp(cls=socket.socket)
    path = tmp_path / "dst.pcap"

    def send():
        time.sleep(0.1)
        for host in ("127.0.0.1", "127.0.0.2", "127.0.0.3"):
            tx.sendto(host.encode(), (host, port))
    thread = threading.Thread(target=send)
    thread.start()
    hotsock.capture(rx, path, count=3, idle=5)
    thread.join()
    assert [(r.dst, r.payload) for r in read_capture(path)] == [
        (h, h.encode()) for h in ("127.0.0.1", "127.0.0.2", "127.0.0.3")]
    rx.close()
    tx.close()


def test_capture_multicast_group_is_the_destination(tmp_path):
    group = "239.18.4.1"
    rx = hotsock.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    rx.bind(("0.0.0.0", 0))
    rx.join_group(group, interface="127.0.0.1")
    tx = hotsock.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.set_multicast_interface("127.0.0.1")
    path = tmp_path / "m.pcap"
    thread = send_later(tx, [b"feed"] * 5, (group, rx.getsockname()[1]))
    stats = hotsock.capture(rx, path, count=5, idle=5)
    thread.join()
    assert stats.received == 5
    assert {(r.dst, r.payload) for r in read_capture(path)} == {(group, b"feed")}
    rx.close()
    tx.close()


def test_capture_truncation_and_snaplen(pair, tmp_path):
    rx, tx = pair
    path = tmp_path / "tr.pcap"
    thread = send_later(tx, [b"a" * 300, b"b" * 50], rx.getsockname())
    stats = hotsock.capture(rx, path, size=100, snaplen=100, count=2, idle=5)
    thread.join()
    assert (stats.truncated, stats.received_bytes) == (1, 350)
    long, short = read_capture(path)
    # Original lengths are the real ones; captured bytes stop at the snaplen.
    assert (long.origlen, long.caplen, long.udp_length) == (328, 100, 308)
    assert long.payload == b"a" * 72
    assert (short.origlen, short.caplen) == (78, 78) and short.payload == b"b" * 50


def test_capture_flood_accounts_for_every_datagram(tmp_path, cpeers):
    """A C sender floods a small receive buffer: sent = captured + dropped, exactly."""
    rx = udp()
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    path = tmp_path / "flood.pcapng"
    sent = 20000
    result = {}

    def flood():
        time.sleep(0.2)     # the capture has read the socket's drop counter by then
        result["proc"] = cpeers.run("udp_flood", "-s", "200", "127.0.0.1",
                                    rx.getsockname()[1], sent)
    thread = threading.Thread(target=flood)
    thread.start()
    stats = hotsock.capture(rx, path, format="pcapng", idle=1.0, duration=30,
                            rcvbuf=None)   # keep the 16 KiB buffer: the flood must overrun it
    thread.join()
    out = result["proc"].stdout
    assert out.split() == ["sent", str(sent)]
    assert stats.dropped > 0, "the flood should overrun a 16 KiB buffer"
    assert stats.received + stats.dropped == sent
    records = read_capture(path)
    assert len(records) == stats.received
    isb = read_isb(path)
    assert (isb["ifrecv"], isb["ifdrop"]) == (stats.received, stats.dropped)
    # udp_flood numbers its datagrams: what arrived came in order, none twice.
    numbers = [struct.unpack("!I", r.payload[:4])[0] for r in records]
    assert numbers == sorted(set(numbers))
    rx.close()


def test_capture_counts_blast_loss_duplicates_and_reordering(pair, tmp_path):
    rx, tx = pair
    order = [0, 1, 3, 2, 2, 5, 6, 6]        # 4 lost, 2 late, one 2 and one 6 twice
    payloads = [header(7, seq) + b"pad" for seq in order]
    thread = send_later(tx, payloads, rx.getsockname())
    stats = hotsock.capture(rx, tmp_path / "seq.pcap", count=len(order), idle=5)
    thread.join()
    assert (stats.sequenced, stats.lost, stats.duplicated, stats.reordered) == (8, 1, 2, 1)


def test_capture_plain_datagrams_are_not_sequenced(pair, tmp_path):
    rx, tx = pair
    thread = send_later(tx, [b"HSQ"] * 3 + [b"\0" * 40] * 3, rx.getsockname())
    stats = hotsock.capture(rx, tmp_path / "p.pcap", count=6, idle=5)
    thread.join()
    assert (stats.sequenced, stats.lost) == (0, 0)


# --- capture: callbacks ----------------------------------------------------------

def test_capture_callback_gets_whole_batches(pair):
    rx, tx = pair
    seen = []

    def callback(batch):
        assert isinstance(batch, hotsock.RecvBatch)
        for i, (payload, address) in enumerate(batch):
            seen.append((bytes(payload), address, batch.timestamps[i], batch.destination(i)))

    before = time.time_ns()
    thread = send_later(tx, [b"%d" % i for i in range(100)], rx.getsockname())
    stats = hotsock.capture(rx, callback, count=100, idle=5)
    thread.join()
    assert stats.received == 100 and len(seen) == 100
    assert [p for p, _, _, _ in seen] == [b"%d" % i for i in range(100)]
    assert {a for _, a, _, _ in seen} == {tx.getsockname()}
    assert all(before <= ts <= time.time_ns() for _, _, ts, _ in seen)
    assert {d for _, _, _, d in seen} == {"127.0.0.1"}


def test_capture_callback_exception_propagates(pair):
    rx, tx = pair
    thread = send_later(tx, [b"x"], rx.getsockname(), delay=0)

    def callback(batch):
        raise ZeroDivisionError("from the callback")
    with pytest.raises(ZeroDivisionError, match="from the callback"):
        hotsock.capture(rx, callback, idle=5)
    thread.join()


# --- stopping ------------------------------------------------------------------------

def test_duration_and_idle_stop(pair, tmp_path):
    rx, _ = pair
    start = time.monotonic()
    stats = hotsock.capture(rx, tmp_path / "d.pcap", duration=0.3)
    assert stats.stopped == "duration" and 0.25 <= time.monotonic() - start < 5
    stats = hotsock.echo(rx, idle=0.2)
    assert stats.stopped == "idle" and stats.received == 0
    assert read_capture(tmp_path / "d.pcap") == []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_cleanly_and_restores_handlers(pair, tmp_path, signum):
    rx, tx = pair
    before = signal.getsignal(signum)
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signum))
    thread = send_later(tx, [b"s"] * 10, rx.getsockname())
    timer.start()
    stats = hotsock.capture(rx, tmp_path / "sig.pcapng", format="pcapng", duration=10)
    thread.join()
    assert (stats.stopped, stats.signal, stats.received) == ("signal", signum, 10)
    assert stats.elapsed < 5
    assert signal.getsignal(signum) is before
    assert len(read_capture(tmp_path / "sig.pcapng")) == 10
    assert read_isb(tmp_path / "sig.pcapng")["ifrecv"] == 10


def test_without_stop_signals_keyboardinterrupt_propagates_file_complete(pair, tmp_path):
    rx, tx = pair
    thread = send_later(tx, [b"k"] * 4, rx.getsockname())
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        hotsock.capture(rx, tmp_path / "k.pcapng", format="pcapng", duration=10, stop_signals=())
    thread.join()
    assert len(read_capture(tmp_path / "k.pcapng")) == 4
    assert read_isb(tmp_path / "k.pcapng")["ifrecv"] == 4


def test_progress_is_reported(pair):
    rx, tx = pair
    reports = []
    thread = send_later(tx, [b"p"] * 5, rx.getsockname())
    stats = hotsock.echo(rx, duration=0.5, progress=reports.append, interval=0.1)
    thread.join()
    assert 3 <= len(reports) <= 6
    assert all(isinstance(r, hotsock.LoopStats) and r.stopped is None for r in reports)
    assert [r.received for r in reports] == sorted(r.received for r in reports)
    assert stats.received == 5


KILL_SCRIPT = """
import sys, hotsock, socket
rx = hotsock.socket(socket.AF_INET, socket.SOCK_DGRAM)
rx.bind(("127.0.0.1", 0))
print(rx.getsockname()[1], flush=True)
hotsock.capture(rx, sys.argv[1], format=sys.argv[2], duration=30, bufsize=4096)
"""


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_hard_kill_leaves_whole_records(tmp_path, fmt):
    path = tmp_path / f"kill.{fmt}"
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(path), fmt],
                            stdout=subprocess.PIPE, text=True,
                            env=ENV)
    try:
        port = int(proc.stdout.readline())
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for i in range(3000):
            tx.sendto(b"%05d" % i + b"." * 300, ("127.0.0.1", port))
            if i % 500 == 0:
                time.sleep(0.02)
        time.sleep(0.2)
        proc.kill()
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    records = read_capture(path)     # asserts every record is whole
    assert len(records) > 0
    numbers = [int(r.payload[:5]) for r in records]
    assert numbers == sorted(set(numbers))      # in order, none twice (some may be dropped)
    assert all(r.payload[5:] == b"." * 300 for r in records)


# --- echo ----------------------------------------------------------------------------------

def test_echo_returns_each_datagram_to_its_sender(pair):
    rx, _ = pair
    clients = [udp(cls=socket.socket) for _ in range(3)]
    for c in clients:
        c.settimeout(5)

    def send():
        time.sleep(0.1)
        for i in range(20):
            for k, c in enumerate(clients):
                c.sendto(b"%d:%d" % (k, i), rx.getsockname())
    thread = threading.Thread(target=send)
    thread.start()
    stats = hotsock.echo(rx, count=60, idle=5)
    thread.join()
    assert (stats.received, stats.sent, stats.errors) == (60, 60, 0)
    assert stats.sent_bytes == stats.received_bytes
    for k, c in enumerate(clients):
        assert [c.recvfrom(100) for _ in range(20)] == [
            (b"%d:%d" % (k, i), rx.getsockname()) for i in range(20)]
        c.close()


def test_echo_c_client(pair, cpeers):
    """The course's echo client (C) against hotsock.echo in a thread."""
    rx, _ = pair
    port = rx.getsockname()[1]
    result = {}
    thread = threading.Thread(target=lambda: result.update(
        stats=hotsock.echo(rx, count=50, idle=5, confirm=True)))
    thread.start()
    proc = cpeers.run("udp_echo_client", "-m", "hello hotsock", "127.0.0.1", port, 50)
    thread.join()
    assert proc.returncode == 0, proc.stderr
    assert result["stats"].sent == 50


def test_echo_truncates_to_size(pair):
    rx, tx = pair
    tx.settimeout(5)
    thread = send_later(tx, [b"z" * 500], rx.getsockname())
    stats = hotsock.echo(rx, size=100, count=1, idle=5)
    thread.join()
    assert (stats.truncated, stats.received_bytes, stats.sent_bytes) == (1, 500, 100)
    assert tx.recv(1000) == b"z" * 100


@pytest.mark.ipv6
def test_echo_ipv6():
    rx, tx = udp(socket.AF_INET6, "::1"), udp(socket.AF_INET6, "::1", socket.socket)
    tx.settimeout(5)
    thread = send_later(tx, [b"v6"] * 3, rx.getsockname())
    assert hotsock.echo(rx, count=3, idle=5).sent == 3
    thread.join()
    assert [tx.recv(10) for _ in range(3)] == [b"v6"] * 3
    rx.close()
    tx.close()


# --- blast -------------------------------------------------------------------------------------

def test_blast_headers_and_count(pair):
    rx, tx = pair
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    blaster = hotsock.socket(socket.AF_INET, socket.SOCK_DGRAM)
    before = time.time_ns()
    stats = hotsock.blast(blaster, rx.getsockname(), size=100, count=300)
    after = time.time_ns()
    assert (stats.sent, stats.sent_bytes, stats.stopped) == (300, 30000, "count")
    batch = hotsock.RecvBatch(300, 200)
    got = []
    while len(got) < 300:
        rx.recv_batch(batch)
        got += [bytes(p) for p, _ in batch]
    fields = [struct.unpack("!4sIQq", p[:24]) for p in got]
    assert {len(p) for p in got} == {100}
    assert {(magic, stream) for magic, stream, _, _ in fields} == {(b"HSQ1", fields[0][1])}
    assert [seq for _, _, seq, _ in fields] == list(range(300))
    assert all(before <= sent <= after for _, _, _, sent in fields)
    blaster.close()


def test_blast_into_capture_counts_nothing_lost(pair, tmp_path):
    rx, _ = pair
    blaster = hotsock.socket(socket.AF_INET, socket.SOCK_DGRAM)
    thread = threading.Thread(target=hotsock.blast, args=(blaster, rx.getsockname()),
                              kwargs={"count": 2000, "rate": 20000})
    thread.start()
    stats = hotsock.capture(rx, tmp_path / "b.pcap", count=2000, idle=5)
    thread.join()
    assert (stats.sequenced, stats.lost, stats.duplicated, stats.reordered) == (2000, 0, 0, 0)
    blaster.close()


def test_blast_rate_paces_without_spinning(pair):
    rx, _ = pair
    blaster = hotsock.socket(socket.AF_INET, socket.SOCK_DGRAM)
    cpu = time.process_time()
    stats = hotsock.blast(blaster, rx.getsockname(), count=100, rate=200)
    cpu = time.process_time() - cpu
    # 100 datagrams at 200/s: the last is due 0.495 s after the first.
    assert 0.45 <= stats.elapsed < 5
    assert cpu < stats.elapsed / 2, "the pacing should sleep, not spin"
    blaster.close()


def test_blast_connected_and_refused_counts_errors():
    port_holder = udp(cls=socket.socket)
    port = port_holder.getsockname()[1]
    port_holder.close()                   # nobody listens there now
    blaster = hotsock.socket(socket.AF_INET, socket.SOCK_DGRAM)
    blaster.connect(("127.0.0.1", port))
    stats = hotsock.blast(blaster, count=50, rate=5000)
    # Each ICMP port unreachable fails one later send with ECONNREFUSED; the count is of
    # datagrams handed to the kernel, sent or refused.
    assert stats.errors > 0 and stats.sent > 0 and stats.sent + stats.errors == 50
    blaster.close()


def test_blast_without_sequence_and_zero_size(pair):
    rx, _ = pair
    blaster = hotsock.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stats = hotsock.blast(blaster, rx.getsockname(), size=0, count=5, sequence=False)
    assert stats.sent == 5 and stats.sent_bytes == 0
    assert rx.recvfrom(10)[0] == b""
    blaster.close()


# --- no Python allocation per datagram --------------------------------------------------------

def _allocated_blocks(run):
    tracemalloc.start()
    try:
        run()
        snapshot = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    return sum(stat.count for stat in snapshot.statistics("filename"))


@pytest.mark.parametrize("loop", ["capture", "echo", "blast"])
def test_no_allocation_per_datagram(pair, tmp_path, loop):
    rx, tx = pair
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    sink = udp(cls=socket.socket)
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    blaster = hotsock.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def once(n):
        if loop == "blast":
            return lambda: hotsock.blast(blaster, sink.getsockname(), count=n)
        for _ in range(n):
            tx.sendto(b"q" * 64, rx.getsockname())
        if loop == "echo":
            return lambda: hotsock.echo(rx, count=n, idle=5)
        return lambda: hotsock.capture(rx, tmp_path / "a.pcap", count=n, idle=5)

    once(10)()                    # warm up: imports, caches
    small = _allocated_blocks(once(10))
    large = _allocated_blocks(once(2000))
    assert large - small < 20, (small, large)
    blaster.close()
    sink.close()


# --- bad input --------------------------------------------------------------------------------

@pytest.mark.parametrize("call, error, message", [
    (lambda s, p: hotsock.capture(s, p, format="pcapx"), ValueError, "format must be"),
    (lambda s, p: hotsock.capture(s, p, snaplen=10), ValueError, "snaplen must be at least 48"),
    (lambda s, p: hotsock.capture(s, p, snaplen=10**6), ValueError, "snaplen must be at least 1"),
    (lambda s, p: hotsock.capture(s, 42), TypeError, "writes to a path"),
    (lambda s, p: hotsock.capture(s, p, count=0), ValueError, "count must be at least 1"),
    (lambda s, p: hotsock.capture(s, p, count=2.5), TypeError, "count must be an integer"),
    (lambda s, p: hotsock.capture(s, p, duration=-1), ValueError, "duration must be a positive"),
    (lambda s, p: hotsock.capture(s, p, duration="1"), TypeError, "duration must be a number"),
    (lambda s, p: hotsock.capture(s, p, batch=5000), ValueError, "batch must be at least 1"),
    (lambda s, p: hotsock.capture(s, p, progress=3), TypeError, "progress must be callable"),
    (lambda s, p: hotsock.echo(s, size=0), ValueError, "size must be at least 1"),
    (lambda s, p: hotsock.echo(s, idle=float("nan")), ValueError, "idle must be a positive"),
    (lambda s, p: hotsock.blast(s, ("127.0.0.1", 9), size=10), ValueError, "sequence header"),
    (lambda s, p: hotsock.blast(s, ("127.0.0.1", 9), size=70000), ValueError, "size must be"),
    (lambda s, p: hotsock.blast(s, ("127.0.0.1", 9), rate=0), ValueError, "rate must be"),
    (lambda s, p: hotsock.blast(s, ("127.0.0.1", 9), rate="x"), TypeError, "rate must be"),
    (lambda s, p: hotsock.blast(s, "127.0.0.1", count=1), TypeError, "address must be tuple"),
    (lambda s, p: hotsock.blast(s, ("no.such.host.invalid", 9), count=1), socket.gaierror, "."),
    (lambda s, p: hotsock.capture("sock", p), TypeError, "needs a socket or a file descriptor"),
])
def test_bad_arguments(pair, tmp_path, call, error, message):
    rx, _ = pair
    with pytest.raises(error, match=message):
        call(rx, str(tmp_path / "never.pcap"))
    assert not (tmp_path / "never.pcap").exists()


def test_wrong_sockets(tmp_path):
    with hotsock.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
        with pytest.raises(ValueError, match="datagram"):
            hotsock.echo(tcp, count=1)
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with pytest.raises(ValueError, match="AF_INET or AF_INET6"):
        hotsock.capture(a, tmp_path / "u.pcap", count=1)
    a.close()
    b.close()
    closed = udp()
    closed.close()
    for call in (lambda: hotsock.echo(closed, count=1),
                 lambda: hotsock.capture(closed, tmp_path / "c.pcap", count=1),
                 lambda: hotsock.blast(closed, ("127.0.0.1", 9), count=1)):
        with pytest.raises(OSError):
            call()


def test_unwritable_path_raises_before_receiving(pair, tmp_path):
    rx, _ = pair
    with pytest.raises(FileNotFoundError):
        hotsock.capture(rx, tmp_path / "no" / "dir.pcap", count=1)


def test_full_disk_raises_oserror(pair):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    rx, tx = pair
    thread = send_later(tx, [b"f" * 1000] * 10, rx.getsockname())
    with pytest.raises(OSError) as info:
        hotsock.capture(rx, "/dev/full", count=10, idle=5)
    thread.join()
    assert info.value.errno == 28        # ENOSPC


def test_descriptor_instead_of_socket(pair, tmp_path):
    rx, tx = pair
    thread = send_later(tx, [b"fd"] * 3, rx.getsockname())
    stats = hotsock.capture(rx.fileno(), tmp_path / "fd.pcap", count=3, idle=5)
    thread.join()
    assert stats.received == 3
    assert rx.fileno() >= 0               # still open: capture used its own duplicate


def test_loop_stats_sum_and_dict():
    a = hotsock.LoopStats("capture", received=3, dropped=1, elapsed=1.0)
    b = hotsock.LoopStats("capture", received=5, lost=2, elapsed=2.0, stopped="signal", signal=2)
    total = a + b
    assert (total.received, total.dropped, total.lost, total.elapsed) == (8, 1, 2, 2.0)
    assert total.stopped == "signal"
    assert hotsock.LoopStats.from_dict(total.as_dict()) == total
    assert total.as_dict()["rate"] == 4.0


def test_kernel_drops_meminfo_and_proc_agree(monkeypatch):
    rx = udp()
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        for _ in range(100):
            tx.sendto(b"x" * 500, rx.getsockname())
    fast = hotsock.kernel_drops(rx)
    monkeypatch.setattr(hotsock._loop_socket, "SO_MEMINFO", None)     # the /proc path
    assert hotsock.kernel_drops(rx) == fast > 0
    rx.close()


def test_receiver_joining_a_stream_late_counts_no_loss(pair):
    """Sequence numbers count from the first datagram a receiver sees."""
    rx, tx = pair
    stream = [header(9, seq) for seq in range(100, 200)]
    thread = send_later(tx, stream, rx.getsockname())
    stats = hotsock.capture(rx, lambda batch: None, count=100, idle=5)
    thread.join()
    assert (stats.sequenced, stats.lost, stats.duplicated, stats.reordered) == (100, 0, 0, 0)


def test_signals_never_escape_and_handlers_are_restored(pair):
    """Signals arriving at any moment -- while handlers are installed, after the
    loop, during clean-up -- end a run cleanly or not at all, never raise, and
    the caller's handler is back afterwards."""
    rx, _ = pair

    def ours(signum, frame):
        pass

    previous = signal.signal(signal.SIGINT, ours)
    blaster = hotsock.socket(socket.AF_INET, socket.SOCK_DGRAM)
    alarm = signal.signal(signal.SIGALRM, lambda *a: os.kill(os.getpid(), signal.SIGINT))
    signal.setitimer(signal.ITIMER_REAL, 0.0002, 0.0002)
    try:
        outcomes = set()
        for _ in range(3000):
            stats = hotsock.blast(blaster, rx.getsockname(), count=1, sequence=False)
            outcomes.add(stats.stopped)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, alarm)
        current = signal.signal(signal.SIGINT, previous)
    assert outcomes <= {"count", "signal"} and "signal" in outcomes
    assert current is ours                  # not a handler of hotsock's left behind
    blaster.close()


def test_non_socket_descriptor_leaks_nothing():
    fd = os.open(os.devnull, os.O_RDONLY)
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        with pytest.raises(OSError):
            hotsock.echo(fd, count=1)
    assert len(os.listdir("/proc/self/fd")) == before
    os.close(fd)
