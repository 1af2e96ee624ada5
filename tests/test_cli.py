"""The hotsock command: capture, echo, blast (with --workers), info and a short bench run.

Every command runs as a subprocess on loopback, bounded by --count/--duration/--idle and
by a timeout; receivers bind port 0 and the test reads the port from the opening line
("listening on 127.0.0.1 port N").  Bench figures are not judged here.
"""
import contextlib
import errno
import importlib.util
import json
import os
import queue
import random
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest
from pcapfiles import read_capture

import hotsock
import hotsock.bench
from hotsock.bench.measure import ASYNCIO_CHUNKS
from hotsock.cli import main

# The hotsock being tested, for the subprocesses too (whatever the caller's PYTHONPATH).
SRC = os.path.dirname(os.path.dirname(os.path.abspath(hotsock.__file__)))
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(
    p for p in (SRC, os.environ.get("PYTHONPATH")) if p))
COMMAND = [sys.executable, "-m", "hotsock"]
LISTENING = r"listening on (\S+) port (\d+)"


def run_cli(*args, timeout=120):
    return subprocess.run([*COMMAND, *args], capture_output=True, text=True, timeout=timeout,
                          env=ENV)


class Running:
    """A hotsock command running in the background; its stderr is read line by line as it
    comes (with the arrival time of each line), its stdout at the end."""

    def __init__(self, *args):
        self.proc = subprocess.Popen([*COMMAND, *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=ENV)
        self.lines = queue.Queue()
        self.stderr = []
        self.stdout = []
        threading.Thread(target=self._read_stderr, daemon=True).start()
        self._out = threading.Thread(target=lambda: self.stdout.append(self.proc.stdout.read()),
                                     daemon=True)
        self._out.start()

    def _read_stderr(self):
        for line in self.proc.stderr:
            self.stderr.append((time.monotonic(), line))
            self.lines.put(line)
        self.lines.put(None)

    def expect(self, pattern, timeout=15):
        """Wait for a stderr line matching *pattern*; its match."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no {pattern!r} within {timeout} s; stderr: {self.err_text()}")
            if line is None:
                pytest.fail(f"exited before {pattern!r}; stderr: {self.err_text()}")
            match = re.search(pattern, line)
            if match:
                return match

    def port(self):
        """The port from the opening line."""
        return int(self.expect(LISTENING).group(2))

    def err_text(self):
        return "".join(line for _, line in self.stderr)

    def finish(self, timeout=20):
        """Wait for the end: (exit status, stdout, stderr)."""
        try:
            status = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"still running after {timeout} s; stderr: {self.err_text()}")
        self._out.join(5)
        # stderr is read to its end by the reader thread (it puts None last).
        while self.lines.get(timeout=5) is not None:
            pass
        return status, "".join(self.stdout), self.err_text()

    def summary(self, timeout=20):
        """Wait for the end; the --json summary (exit status 0 checked)."""
        status, out, err = self.finish(timeout)
        assert status == 0, err
        return json.loads(out)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def sequence_numbers(records):
    """(stream ids, sequence numbers) of blast's "HSQ1" headers in *records*."""
    streams, numbers = set(), []
    for record in records:
        assert record.payload[:4] == b"HSQ1"
        stream, number = struct.unpack_from("!IQ", record.payload, 4)
        streams.add(stream)
        numbers.append(number)
    return streams, numbers


def random_group():
    return f"239.255.{random.randrange(1, 255)}.{random.randrange(1, 255)}"


@contextlib.contextmanager
def shared_port():
    """A port for --workers (which cannot use port 0): held, meanwhile, by a socket in the
    same SO_REUSEPORT group, so that nothing else takes it; close it before sending."""
    holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    holder.bind(("127.0.0.1", 0))
    try:
        yield holder, holder.getsockname()[1]
    finally:
        holder.close()


def send_from_many_ports(port, senders, each):
    """*each* datagrams from each of *senders* sockets (SO_REUSEPORT hashes by source port)."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(senders)]
    try:
        for sock in socks:
            for i in range(each):
                sock.sendto(b"x%d" % i, ("127.0.0.1", port))
    finally:
        for sock in socks:
            sock.close()


# --- info and bench ------------------------------------------------------------

def test_info_json_is_features():
    out = run_cli("info", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == json.loads(json.dumps(hotsock.features()))


def test_info_text_lists_the_batch_path():
    out = run_cli("info")
    assert out.returncode == 0, out.stderr
    assert hotsock.features()["batch_path"] in out.stdout


def _uvloop_installed():
    return importlib.util.find_spec("uvloop") is not None


CONTENDERS = {
    "recv": {"stdlib recvfrom", "stdlib recv_into", "hotsock recvfrom", "hotsock recv_into",
             "hotsock recv_batch", "C recvfrom loop", "C recvmmsg loop"},
    "send": {"stdlib sendto", "hotsock sendto", "hotsock send_batch", "hotsock send_batch auto",
             "hotsock SendBatch", "C sendto loop", "C sendmmsg loop"},
    "capture": {"hotsock capture", "hotsock capture pcapng", "C capture loop", "C recvmmsg loop"},
    "echo": {"hotsock echo", "stdlib echo loop", "C echo loop", "hotsock endpoint echo"}
    | ({"uvloop echo", "hotsock endpoint echo uvloop"} if _uvloop_installed() else set()),
    "asyncio": {"asyncio endpoint", "hotsock endpoint", "hotsock endpoint batch", "C recvmmsg loop"}
    | ({"uvloop endpoint", "hotsock endpoint uvloop", "hotsock endpoint batch uvloop"}
       if _uvloop_installed() else set()),
}


def test_bench_json_reports_every_contender_and_ratio():
    out = run_cli("bench", "--rounds", "2", "--chunk", "128", "--loop-chunk", "128",
                  "--offload-chunk", "4096", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    # gso and gro: see test_bench.py (they run, or are skipped, where the system allows)
    assert set(report["parts"]) | set(report["skipped"]) == set(CONTENDERS) | {"gso", "gro"}
    offload = len([t for t in hotsock.bench.TARGETS if t[0] in report["parts"]
                   and t[0] in ("gso", "gro")])
    for part, names in CONTENDERS.items():
        result = report["parts"][part]
        assert set(result["rates"]) == names
        assert all(rate > 0 for rate in result["rates"].values())
        # (the event loops' turns are several loop chunks: see hotsock.bench.measure)
        assert result["chunk"] == 128 * (ASYNCIO_CHUNKS if part == "asyncio" else 1)
    for part in ("capture", "echo"):
        times = report["parts"][part]["one_datagram_us"]
        assert set(times) == CONTENDERS[part] and all(t > 0 for t in times.values())
    # recv 4, send 3, capture 1, echo 3 (+ uvloop), asyncio 2 (+ uvloop)
    assert len(report["ratios"]) == 13 + 2 * _uvloop_installed() + offload
    assert report["rounds"] == 2


@pytest.mark.parametrize("part", ["capture", "echo"])
def test_bench_hot_loop_parts(part):
    out = run_cli("bench", "--rounds", "1", "--loop-chunk", "64", "--only", part, "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert list(report["parts"]) == [part]
    rates = report["parts"][part]["rates"]
    assert set(rates) == CONTENDERS[part] and all(rate > 0 for rate in rates.values())
    assert report["ratios"] and all(item["part"] == part for item in report["ratios"])
    table = run_cli("bench", "--rounds", "1", "--loop-chunk", "64", "--only", part)
    assert table.returncode == 0, table.stderr
    assert f"hotsock {part}" in table.stdout and "targets:" in table.stdout
    assert "recv_batch" not in table.stdout


def test_bench_table_and_only():
    out = run_cli("bench", "--rounds", "1", "--chunk", "64", "--only", "recv")
    assert out.returncode == 0, out.stderr
    assert "hotsock recv_batch" in out.stdout and "sendto" not in out.stdout
    assert "targets:" in out.stdout


def test_bad_arguments_exit_with_usage():
    assert run_cli("bench", "--chunk", "100").returncode == 2
    assert run_cli("bench", "--loop-chunk", "100").returncode == 2
    assert run_cli("bench", "--only", "nonsense").returncode == 2
    assert run_cli("bench", "--size", "-1").returncode == 2
    assert run_cli("nonsense").returncode == 2
    assert run_cli("info", "--bogus").returncode == 2


# --- capture, blast, echo ------------------------------------------------------

@pytest.mark.parametrize("receive, send", [(["--gro"], []), ([], ["--no-gso"])],
                         ids=["gso-gro", "plain"])
def test_capture_of_a_blast(receive, send, tmp_path):
    path = tmp_path / "out.pcap"
    with Running("capture", "--bind", "127.0.0.1", "--port", "0", "-w", str(path),
                 "--count", "200", "--idle", "10", "--json", *receive) as capture:
        port = capture.port()
        blast = run_cli("blast", "127.0.0.1", str(port), "--count", "200", "--size", "100",
                        "--rate", "20000", "--json", *send, timeout=30)
        assert blast.returncode == 0, blast.stderr
        sent = json.loads(blast.stdout)
        got = capture.summary()
    assert sent["sent"] == got["received"] == 200
    assert got["stopped"] == "count" and got["file"] == str(path) and got["format"] == "pcap"
    assert got["sequenced"] == 200 and got["lost"] == got["duplicated"] == 0
    assert sent["sent_bytes"] == got["received_bytes"] == 200 * 100
    records = read_capture(path)            # pcap, nanoseconds, LINKTYPE_RAW, whole records
    assert len(records) == 200
    assert all(r.origlen == 20 + 8 + 100 and r.dport == port for r in records)
    streams, numbers = sequence_numbers(records)
    assert len(streams) == 1 and sorted(numbers) == list(range(200))
    err = capture.err_text()
    assert "200 packets captured" in err and "0 packets dropped by kernel" in err
    assert "200 sequenced packets: 0 lost" in err


def test_capture_pcapng_by_extension_and_print(tmp_path):
    path = tmp_path / "out.pcapng"
    with Running("capture", "--bind", "127.0.0.1", "--port", "0", "-w", str(path),
                 "--count", "3", "--idle", "10", "--json") as capture, \
            Running("capture", "--bind", "127.0.0.1", "--port", "0", "--print",
                    "--count", "3", "--idle", "10") as printer, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        for port in (capture.port(), printer.port()):
            for payload in (b"a", b"bb", b"ccc"):
                tx.sendto(payload, ("127.0.0.1", port))
        assert capture.summary()["format"] == "pcapng"
        status, out, err = printer.finish()
        source = tx.getsockname()[1]
    assert status == 0, err
    assert [r.payload for r in read_capture(path)] == [b"a", b"bb", b"ccc"]   # pcapng
    lines = out.splitlines()
    assert len(lines) == 3
    for line, length in zip(lines, (1, 2, 3)):
        assert re.match(rf"\d\d:\d\d:\d\d\.\d{{6}} 127\.0\.0\.1\.{source} > 127\.0\.0\.1\.\d+: "
                        rf"UDP, length {length}$", line), line
    assert "3 packets received" in err


def test_echo_answers_a_stdlib_client():
    with Running("echo", "--bind", "127.0.0.1", "--port", "0", "--count", "5", "--idle", "10",
                 "--json") as echo, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        port = echo.port()
        client.settimeout(10)
        for i in range(5):
            client.sendto(b"ping %d" % i, ("127.0.0.1", port))
            assert client.recvfrom(100) == (b"ping %d" % i, ("127.0.0.1", port))
        got = echo.summary()
    assert got["received"] == got["sent"] == 5 and got["stopped"] == "count"
    assert "5 packets echoed" in echo.err_text()


def test_blast_rate_paces_and_quiet_is_quiet():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.bind(("127.0.0.1", 0))
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        out = run_cli("blast", "127.0.0.1", str(rx.getsockname()[1]), "--count", "200",
                      "--rate", "1000", "--json", "--quiet", timeout=30)
        assert out.returncode == 0, out.stderr
        assert out.stderr == ""
        sent = json.loads(out.stdout)
        rx.settimeout(5)
        for _ in range(200):
            rx.recv(100)
    # 200 datagrams at 1000/s: the last one is due at 0.199 s (loose: no flaky upper bound).
    assert sent["sent"] == 200 and sent["elapsed"] >= 0.15 and sent["stopped"] == "count"
    assert sent["rate_limit"] == 1000


@pytest.mark.parametrize("command", ["capture", "echo"])
def test_workers_share_a_port_and_sum(command, tmp_path):
    senders, each = 32, 5
    extra = ["-w", str(tmp_path / "out.pcap")] if command == "capture" else []
    with shared_port() as (holder, port), \
            Running(command, "--bind", "127.0.0.1", "--port", str(port), "--workers", "2",
                    "--idle", "1.5", "--json", *extra) as run:
        run.expect(LISTENING)
        holder.close()          # out of the group before anything is sent
        send_from_many_ports(port, senders, each)
        got = run.summary()
    assert got["workers"] == 2 and got["received"] == senders * each
    parts = [w["received"] for w in got["worker_stats"]]
    # 32 source ports over 2 workers: all on one has a chance of 2**-31.
    assert sum(parts) == senders * each and min(parts) > 0, parts
    if command == "echo":
        assert got["sent"] == senders * each
    else:
        files = [str(tmp_path / "out.0.pcap"), str(tmp_path / "out.1.pcap")]
        assert got["files"] == files
        assert [len(read_capture(f)) for f in files] == parts
    assert "2 workers: " in run.err_text()


@pytest.mark.parametrize("signum,workers", [(signal.SIGINT, 1), (signal.SIGTERM, 1),
                                            (signal.SIGINT, 2)],
                         ids=["SIGINT", "SIGTERM", "SIGINT-2-workers"])
def test_signal_stops_a_capture_cleanly(signum, workers, tmp_path):
    path = tmp_path / "sig.pcap"
    args = ["capture", "--bind", "127.0.0.1", "-w", str(path), "--interval", "0.1", "--json"]
    with contextlib.ExitStack() as stack:
        if workers > 1:
            holder, port = stack.enter_context(shared_port())
            args += ["--port", str(port), "--workers", str(workers)]
        else:
            args += ["--port", "0"]
        run = stack.enter_context(Running(*args))
        port = int(run.expect(LISTENING).group(2))
        if workers > 1:
            holder.close()
        send_from_many_ports(port, 10, 5)
        run.expect(r" 50 received")              # a live line: all of them are in
        run.proc.send_signal(signum)
        got = run.summary()
    assert got["stopped"] == "signal" and got["signal"] == signum
    assert got["received"] == 50
    files = got.get("files", [str(path)])
    assert sum(len(read_capture(f)) for f in files) == 50
    assert f"stopped by {signal.Signals(signum).name}" in run.err_text()


def test_live_lines_every_second_when_not_a_terminal():
    with Running("capture", "--bind", "127.0.0.1", "--port", "0", "--duration", "2.6") as run:
        run.port()
        status, out, err = run.finish()
    assert status == 0 and out == ""
    live = [(t, line) for t, line in run.stderr if re.match(r"hotsock capture: +\d+\.\d s, ",
                                                            line)]
    assert len(live) >= 2, err
    assert all("\r" not in line for _, line in live)                 # plain lines, no rewriting
    assert all(b - a < 1.5 for (a, _), (b, _) in zip(live, live[1:]))
    assert "stopped after --duration 2.6 s" in err


def test_multicast_capture_on_loopback():
    group = random_group()
    with Running("capture", "--group", group, "--interface", "127.0.0.1", "--port", "0",
                 "--count", "20", "--idle", "10", "--json") as capture:
        port = capture.port()
        assert f"group {group} on 127.0.0.1" in capture.err_text()
        out = run_cli("blast", group, str(port), "--interface", "127.0.0.1", "--ttl", "0",
                      "--count", "20", "--rate", "5000", "--json", timeout=30)
        assert out.returncode == 0, out.stderr
        got = capture.summary()
    assert got["received"] == 20 and got["groups"] == [group] and got["lost"] == 0
    assert json.loads(out.stdout)["ttl"] == 0


@pytest.mark.ipv6
def test_ipv6_capture(tmp_path):
    path = tmp_path / "v6.pcap"
    with Running("capture", "--bind", "::1", "--port", "0", "-w", str(path), "--count", "4",
                 "--idle", "10", "--json") as capture:
        port = capture.port()
        out = run_cli("blast", "::1", str(port), "--count", "4", "--json", timeout=30)
        assert out.returncode == 0, out.stderr
        got = capture.summary()
    assert got["received"] == 4 and got["address"] == "::1"
    assert [r.version for r in read_capture(path)] == [6] * 4        # IPv6 headers


def test_rich_display_on_a_terminal():
    pytest.importorskip("rich")
    import pty
    master, slave = pty.openpty()
    proc = subprocess.Popen([*COMMAND, "capture", "--bind", "127.0.0.1", "--port", "0",
                             "--duration", "1.6", "--interval", "0.5"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave,
                            env=dict(ENV, COLUMNS="120", TERM="xterm"))
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError as exc:          # EIO: the terminal's other end closed
                if exc.errno != errno.EIO:
                    raise
                break
            if not chunk:
                break
            seen += chunk
        elif proc.poll() is not None:
            break
    os.close(master)
    assert proc.wait(timeout=10) == 0
    text = seen.decode(errors="replace")
    assert "hotsock capture" in text and "total" in text and "pkt/s" in text   # the table
    assert "\x1b[" in text                                                     # drawn in place
    assert "0 packets received" in text


# --- exit status ---------------------------------------------------------------

def test_runtime_error_is_one_line_and_status_1(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = str(taken.getsockname()[1])
        out = run_cli("capture", "--bind", "127.0.0.1", "--port", port, "--count", "1")
        assert out.returncode == 1
        assert out.stderr == f"hotsock: error: bind 127.0.0.1 port {port}: " \
                             f"{os.strerror(errno.EADDRINUSE)}\n"
        out = run_cli("echo", "--bind", "127.0.0.1", "--port", port, "--count", "1",
                      "--workers", "2")
        assert out.returncode == 1 and "Traceback" not in out.stderr
        assert out.stderr.splitlines()[-1].startswith("hotsock: error: worker 0: bind ")
    out = run_cli("capture", "--bind", "127.0.0.1", "--port", "0", "--count", "1",
                  "-w", str(tmp_path / "missing" / "x.pcap"))
    assert out.returncode == 1 and out.stderr.startswith("hotsock: error: writing ")
    assert out.stderr.count("\n") == 1


@pytest.mark.parametrize("args", [
    ["capture", "--port", "70000"],
    ["capture", "--port", "x"],
    ["capture"],                                               # --port is required
    ["capture", "--port", "0", "--count", "0"],
    ["capture", "--port", "0", "--count", "-5"],
    ["capture", "--port", "0", "--duration", "0"],
    ["capture", "--port", "0", "--idle", "nan"],
    ["capture", "--port", "0", "--source", "127.0.0.1"],      # --source without --group
    ["capture", "--port", "0", "--group", "10.0.0.1"],        # not multicast
    ["capture", "--port", "0", "--group", "239.1.1.1", "--bind", "::"],
    ["capture", "--port", "0", "--interface", "lo"],          # --interface without --group
    ["capture", "--port", "0", "--bind", "localhost"],
    ["capture", "--port", "0", "--format", "pcapng"],          # without -w
    ["capture", "--port", "0", "--print", "--json"],
    ["capture", "--port", "0", "-w", "a.pcap", "--print"],
    ["capture", "--port", "0", "--workers", "2"],              # port 0 cannot be shared
    ["echo", "--port", "9", "--workers", "2", "--group", "239.1.1.1"],   # copies, not shares
    ["capture", "--port", "9", "--workers", "0"],
    ["capture", "--port", "0", "--batch", "100000"],
    ["capture", "--port", "0", "--snaplen", "10", "-w", "a.pcap"],
    ["echo", "--port", "0", "--rcvbuf", "-1"],
    ["blast", "127.0.0.1"],                                    # no PORT
    ["blast", "127.0.0.1", "0"],
    ["blast", "127.0.0.1", "9", "--size", "10"],               # no room for the sequence
    ["blast", "127.0.0.1", "9", "--rate", "0"],
    ["blast", "127.0.0.1", "9", "--ttl", "256"],
    ["blast", "127.0.0.1", "9", "--interface", "127.0.0.1"],   # not a group: found at run time
    ["blast", "127.0.0.1", "9", "--idle", "1"],                # blast has no --idle
    ["blast", "127.0.0.1", "9", "--gso", "--no-gso"],
    ["capture", "--port", "0", "--no-gso"],                    # a sender's option
    ["info", "--bogus"],
    ["nonsense"],
])
def test_usage_errors_exit_2(args, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "usage: hotsock" in err and "error: " in err


def test_usage_error_status_from_the_command_line():
    out = run_cli("capture", "--port", "0", "--source", "127.0.0.1")
    assert out.returncode == 2 and "--source needs --group" in out.stderr
    assert out.stdout == ""


def test_help_documents_exit_status_and_workers():
    out = run_cli("capture", "--help")
    assert out.returncode == 0
    assert "exit status:" in out.stdout and "out.I.pcap" in out.stdout
