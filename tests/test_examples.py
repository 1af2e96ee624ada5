"""Every program under examples/ run as a real subprocess, on loopback only.

Each example runs as ``sys.executable examples/NAME.py ...`` from the repository
root, with the hotsock the tests import put first on PYTHONPATH (the rest of
PYTHONPATH is kept).  Servers are started with ``--port 0`` and print the port
the kernel chose on their first line.  Every subprocess has a timeout and is
killed when it runs over; the assertions are on what the programs print.
"""
import errno
import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import hotsock

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

# The examples this file exercises; a new example must be added here (and tested).
EXPECTED_EXAMPLES = {
    "udp_echo_server.py", "udp_echo_client.py",
    "tcp_echo_server_iterative.py", "tcp_echo_server_concurrent.py", "tcp_echo_client.py",
    "multicast_chat.py", "broadcast_sender.py", "broadcast_receiver.py",
    "nonblocking_client.py", "out_of_band.py", "connected_udp_icmp.py",
    "flow_control.py", "linger_vs_shutdown.py",
    "asyncio_echo_server.py", "asyncio_relay.py",
}

RUN_TIMEOUT = 20.0       # the most any single example run may take here


def _environment():
    env = dict(os.environ)
    # The same hotsock as this test process (installed wheel or in-place build), first.
    package_parent = str(Path(hotsock.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(
        [package_parent] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env["PYTHONUNBUFFERED"] = "1"     # lines reach us as they are printed
    return env


ENV = _environment()


def _command(script, args):
    return [sys.executable, str(EXAMPLES / script), *map(str, args)]


def run(script, *args, input=None, timeout=RUN_TIMEOUT):
    """Run an example to completion; returns (exit status, combined output)."""
    try:
        done = subprocess.run(_command(script, args), cwd=ROOT, env=ENV, input=input,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired as exc:    # subprocess.run has killed it already
        pytest.fail(f"{script} {args} ran over {timeout} s; output so far:\n{exc.output}")
    return done.returncode, done.stdout


class Background:
    """An example running in the background, its output collected line by line."""

    def __init__(self, script, *args):
        self.name = f"{script} {' '.join(map(str, args))}"
        self.proc = subprocess.Popen(_command(script, args), cwd=ROOT, env=ENV,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.lines = []
        self._queue = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_line(self, predicate=lambda line: True, timeout=10.0):
        """The next line satisfying predicate (earlier lines are kept in self.lines)."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                line = self._queue.get(timeout=max(remaining, 0.001))
            except queue.Empty:
                self.kill()
                pytest.fail(f"{self.name}: no expected line within {timeout} s; got {self.lines}")
            if line is None:
                self.proc.wait()
                pytest.fail(f"{self.name} ended (status {self.proc.returncode}) "
                            f"without the expected line; got {self.lines}")
            self.lines.append(line)
            if predicate(line):
                return line

    def port(self):
        """The port from the first line: "listening on HOST PORT ..." / "joined GROUP port PORT"."""
        return int(self.wait_line().split()[3])

    def finish(self, timeout=RUN_TIMEOUT):
        """Wait for the end; returns (exit status, whole output).  Killed if it runs over."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"{self.name} ran over {timeout} s; output: {self.lines}")
        self._reader.join(5)
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                break
            if line is not None:
                self.lines.append(line)
        return self.proc.returncode, "\n".join(self.lines)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def background():
    """Start background examples; whatever is still running at the end is killed."""
    started = []

    def start(script, *args):
        proc = Background(script, *args)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill()


def closed_port(family=socket.AF_INET, host="127.0.0.1", kind=socket.SOCK_DGRAM):
    """A port with no listener (free a moment ago)."""
    with socket.socket(family, kind) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def section(output, title):
    """The lines of the "--- title..." part of an example's output."""
    parts = output.split("--- ")
    matches = [part for part in parts if part.startswith(title)]
    assert matches, f"no section {title!r} in:\n{output}"
    return matches[0]


# ---------------------------------------------------------------------------------------------


def test_every_example_is_tested_and_documented():
    present = {path.name for path in EXAMPLES.glob("*.py")}
    assert present == EXPECTED_EXAMPLES
    readme = (EXAMPLES / "README.md").read_text()
    for name in present:
        assert name in readme, f"{name} missing from examples/README.md"


@pytest.mark.parametrize("script", sorted(EXPECTED_EXAMPLES))
def test_help(script):
    status, output = run(script, "--help")
    assert status == 0, output
    assert output.startswith("usage:"), output


@pytest.mark.parametrize("host, mode", [
    ("127.0.0.1", []),
    pytest.param("::1", ["--batch"], marks=pytest.mark.ipv6),
], ids=["ipv4-recvfrom", "ipv6-batch"])
def test_udp_echo(background, host, mode):
    server = background("udp_echo_server.py", "--host", host, "--port", 0, "--count", 3,
                        "--idle-timeout", 10, *mode)
    port = server.port()
    # One message more than the server answers: the client must time out on it and say so.
    status, output = run("udp_echo_client.py", "--host", host, "--port", port, "--count", 4,
                         "--message", "hi there", "--timeout", 0.5)
    assert status == 1, output
    for seq in (1, 2, 3):
        assert f"#{seq}: reply '{seq} hi there' from {host} {port} in " in output
    assert "#4: no reply within 0.5 s" in output
    assert "replies: 3/4" in output
    assert "round trip ms: min" in output
    status, server_output = server.finish()
    assert status == 0, server_output
    assert server_output.count("hi there") == 3
    assert "done: echoed 3 datagrams" in server_output


def test_tcp_echo_iterative(background):
    server = background("tcp_echo_server_iterative.py", "--port", 0, "--clients", 3,
                        "--idle-timeout", 10)
    port = server.port()
    status, output = run("tcp_echo_client.py", "--port", port, "hello", "second line")
    assert status == 0, output
    assert "line 1: sent 'hello', echo matches" in output
    assert "line 2: sent 'second line', echo matches" in output
    assert "echoed correctly: 2/2" in output

    status, output = run("tcp_echo_client.py", "--port", port, input="from\nstdin\n")
    assert status == 0, output
    assert "sent 'from', echo matches" in output and "sent 'stdin', echo matches" in output

    # A 64 KiB line read 1000 bytes at a time: the echo needs many recv calls.
    status, output = run("tcp_echo_client.py", "--port", port, "--size", 65536,
                         "--recv-size", 1000)
    assert status == 0, output
    assert "echo matches (65536 bytes in " in output
    calls = int(output.split("bytes in ")[1].split()[0])
    assert calls >= 66
    assert "echoed correctly: 1/1" in output

    status, server_output = server.finish()
    assert status == 0, server_output
    assert "echoed 18 bytes" in server_output and "echoed 65536 bytes" in server_output
    assert "served 3 clients, exiting" in server_output


def test_tcp_echo_concurrent(background):
    server = background("tcp_echo_server_concurrent.py", "--port", 0, "--clients", 3,
                        "--idle-timeout", 10)
    port = server.port()
    # A slow client holds its connection open ...
    slow = background("tcp_echo_client.py", "--port", port, "--delay", 2.0, "slow-1", "slow-2")
    slow.wait_line(lambda line: line.startswith("line 1:"))
    # ... while others are served from start to end: only a concurrent server can do that.
    for words in (["fast-a"], ["fast-b", "fast-c"]):
        status, output = run("tcp_echo_client.py", "--port", port, *words)
        assert status == 0, output
        assert f"echoed correctly: {len(words)}/{len(words)}" in output
    assert slow.proc.poll() is None, "the slow client should still be connected"
    status, output = slow.finish()
    assert status == 0, output
    assert "echoed correctly: 2/2" in output

    status, server_output = server.finish()
    assert status == 0, server_output
    children = {line.split()[-1] for line in server_output.splitlines() if "-> child" in line}
    reaped = {line.split()[2].rstrip(",") for line in server_output.splitlines()
              if line.startswith("reaped child")}
    assert len(children) == 3
    assert reaped == children, server_output
    assert "exit status 0" in server_output
    assert "served 3 clients; reaped 3 children; zombies left: 0" in server_output


def test_multicast_chat(background):
    group = "239.1.2.77"
    common = ["--group", group, "--interface", "127.0.0.1"]
    first = background("multicast_chat.py", "receive", *common, "--port", 0, "--count", 3,
                       "--timeout", 10)
    port = first.port()
    # A second receiver on the same port (SO_REUSEADDR): both get every line.
    second = background("multicast_chat.py", "receive", *common, "--port", port, "--count", 3,
                        "--timeout", 10)
    second.wait_line(lambda line: line.startswith("joined"))

    status, output = run("multicast_chat.py", "send", *common, "--port", port, "--ttl", 0,
                         "--name", "ann", "hi", "how are you")
    assert status == 0, output
    assert "(ttl 0, loop on)" in output
    assert "sent: hi" in output and "sent: how are you" in output
    status, output = run("multicast_chat.py", "send", *common, "--port", port, "--name", "bob",
                         input="from stdin\n")
    assert status == 0, output

    for receiver in (first, second):
        status, received = receiver.finish()
        assert status == 0, received
        assert f"joined {group} port {port} on 127.0.0.1" in received
        assert received.splitlines()[1:4] == ["ann: hi", "ann: how are you", "bob: from stdin"]
        assert "received 3 lines" in received


def test_multicast_chat_source_specific_and_options(background):
    group = "239.1.2.78"
    common = ["--group", group, "--interface", "127.0.0.1"]
    receiver = background("multicast_chat.py", "receive", *common, "--port", 0, "--count", 1,
                          "--timeout", 10, "--source", "127.0.0.2")
    port = receiver.port()
    # From 127.0.0.1: filtered out by the source-specific membership.
    status, output = run("multicast_chat.py", "send", *common, "--port", port, "--name", "eve",
                         "--no-loop", "not for you")
    assert status == 0, output
    assert "loop off" in output                    # the option is set and read back
    # From 127.0.0.2: the one source the receiver accepts.
    status, output = run("multicast_chat.py", "send", *common, "--port", port, "--name", "sam",
                         "--bind", "127.0.0.2", "from the source")
    assert status == 0, output
    status, received = receiver.finish()
    assert status == 0, received
    assert "only from 127.0.0.2" in received
    assert "sam: from the source" in received
    assert "eve" not in received


def test_broadcast(background):
    receiver = background("broadcast_receiver.py", "--port", 0, "--count", 2, "--timeout", 10)
    port = receiver.port()
    status, output = run("broadcast_sender.py", "--port", port, "--without-permission", "denied")
    assert status == 0, output
    assert "SO_BROADCAST is off" in output
    assert "PermissionError" in output
    status, output = run("broadcast_sender.py", "--port", port, "hello", "world")
    assert status == 0, output
    assert "SO_BROADCAST is on" in output
    assert f"broadcast to 127.255.255.255 {port}: world" in output
    status, received = receiver.finish()
    assert status == 0, received
    # Exactly the two permitted datagrams, in order: the refused one never left.
    lines = received.splitlines()
    assert lines[1].startswith("from 127.0.0.1 ") and lines[1].endswith(": hello")
    assert lines[2].endswith(": world")
    assert "received 2 datagrams" in received
    assert "denied" not in received


def test_nonblocking_client(background):
    server = background("tcp_echo_server_iterative.py", "--port", 0, "--clients", 2,
                        "--idle-timeout", 10)
    port = server.port()
    for mode in ("fd", "flags"):
        status, output = run("nonblocking_client.py", "--port", port, "--mode", mode,
                             "one", "two", "three")
        assert status == 0, output
        assert "connect_ex returned EINPROGRESS" in output or "connected at once" in output
        assert "SO_ERROR = 0 (connected)" in output or "connected at once" in output
        assert "BlockingIOError" in output             # the early read did not wait
        assert "sent 14 bytes" in output
        assert [line for line in output.splitlines() if line.startswith("echo:")] == [
            "echo: one", "echo: two", "echo: three"]
        assert "server closed" in output
        assert "echo matches what was sent" in output
    status, server_output = server.finish()
    assert status == 0, server_output

    # Nothing listening: the outcome of the non-blocking connect comes from SO_ERROR.
    status, output = run("nonblocking_client.py", "--port", closed_port(kind=socket.SOCK_STREAM))
    assert status == 1, output
    assert "ECONNREFUSED" in output
    assert "not connected" in output


def test_out_of_band():
    status, output = run("out_of_band.py", "--before", "hello", "--urgent", "#", "--after", "world")
    assert status == 0, output
    off = section(output, "SO_OOBINLINE off")
    assert "get_oobinline() = False" in off
    assert "exceptional condition reported" in off
    assert "recv(1, MSG_OOB) -> b'#'" in off
    assert "in-band stream: b'helloworld'" in off
    assert "NOT in the stream" in off
    on = section(output, "SO_OOBINLINE on")
    assert "get_oobinline() = True" in on
    assert "recv(1, MSG_OOB) -> OSError" in on
    assert "in-band stream: b'hello#world'" in on
    assert "IN LINE at offset 5" in on


@pytest.mark.parametrize("host", [
    "127.0.0.1", pytest.param("::1", marks=pytest.mark.ipv6)], ids=["ipv4", "ipv6"])
def test_connected_udp_icmp(host):
    status, output = run("connected_udp_icmp.py", "--host", host, "--wait", 0.3)
    assert status == 0, output
    unconnected, connected = output.split("2. connected socket")
    assert "recvfrom: TimeoutError" in unconnected
    assert "get_error() -> 0 (no error)" in unconnected
    assert "recv: ConnectionRefusedError" in connected
    assert f"get_error() -> {errno.ECONNREFUSED} (ECONNREFUSED" in connected
    assert "get_error() again -> 0 (no error)" in connected


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_RXQ_OVFL is Linux-only")
def test_flow_control_json():
    status, output = run("flow_control.py", "--json", "--count", 2000, "--size", 1400,
                         "--buffers", "4K,64K,1M")
    assert status == 0, output
    report = json.loads(output)
    results = report["results"]
    assert [r["requested_rcvbuf"] for r in results] == [4096, 65536, 1 << 20]
    for r in results:
        assert r["sent"] == 2000
        assert r["sent"] == r["received"] + r["dropped"], r
        assert r["accounted"] is True
        assert r["granted_rcvbuf"] > 0
    assert results[0]["dropped"] > 0                      # 4 KiB cannot hold 2000 datagrams
    assert results[0]["received"] < results[-1]["received"]  # a bigger buffer keeps more
    assert report["all_accounted"] is True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_RXQ_OVFL is Linux-only")
def test_flow_control_slow_reader_table():
    status, output = run("flow_control.py", "--reader", "slow", "--count", 500,
                         "--buffers", "4K,64K")
    assert status == 0, output
    # The table rows: asked, granted, sent, received, dropped, lost %, check.
    rows = [row for row in (line.split() for line in output.splitlines())
            if len(row) >= 7 and all(field.isdigit() for field in row[:5])]
    assert [row[0] for row in rows] == ["4096", "65536"], output
    for row in rows:
        sent, received, dropped = int(row[2]), int(row[3]), int(row[4])
        assert sent == 500 and sent == received + dropped, row
        assert row[-1] == "yes"
    assert "every datagram is accounted for" in output


def test_linger_vs_shutdown():
    status, output = run("linger_vs_shutdown.py", "--size", "256K")
    assert status == 0, output
    close = section(output, "close()")
    assert "get_linger() = (False, 0)" in close
    assert "read 262144 of 262144 bytes, then EOF" in close
    assert "every byte was delivered" in close
    reset = section(output, "set_linger(True, 0)")
    assert "get_linger() = (True, 0)" in reset
    assert "then ConnectionResetError" in reset
    assert "reset (RST)" in reset
    half = section(output, "shutdown(SHUT_WR)")
    assert "peer observed: read 262144 of 262144 bytes, then EOF" in half
    assert "'server got 262144 bytes, then EOF', then EOF" in half
    assert "graceful half-close" in half


@pytest.mark.parametrize("mode", [[], ["--classic"], ["--uvloop"]],
                         ids=["batch", "classic", "batch-uvloop"])
def test_asyncio_echo_server(background, mode):
    if "--uvloop" in mode:
        pytest.importorskip("uvloop")
    server = background("asyncio_echo_server.py", "--port", 0, "--count", 3,
                        "--idle-timeout", 10, *mode)
    port = server.port()
    status, output = run("udp_echo_client.py", "--port", port, "--count", 3,
                         "--message", "hi there", "--timeout", 2)
    assert status == 0, output
    for seq in (1, 2, 3):
        assert f"#{seq}: reply '{seq} hi there' from 127.0.0.1 {port} in " in output
    assert "replies: 3/3" in output
    status, server_output = server.finish()
    assert status == 0, server_output
    assert server_output.count("hi there") == 3
    assert "done: echoed 3 datagrams" in server_output


def test_asyncio_relay(background):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as source:
        sink.bind(("127.0.0.1", 0))
        sink.settimeout(5)
        relay = background("asyncio_relay.py", "--port", 0, "--to",
                           f"127.0.0.1:{sink.getsockname()[1]}", "--count", 4,
                           "--idle-timeout", 10)
        port = int(relay.wait_line().split()[2])        # "relaying HOST PORT -> HOST PORT"
        sent = [bytes([hop]) + word for hop, word in
                enumerate([b"alpha", b"bravo", b"charlie", b"delta"])]
        for payload in sent:
            source.sendto(payload, ("127.0.0.1", port))
        got = [sink.recv(100) for _ in sent]
    # Rewritten in place: one more hop, upper case; in order, none lost.
    assert got == [bytes([p[0] + 1]) + p[1:].upper() for p in sent]
    status, output = relay.finish()
    assert status == 0, output
    assert "done: relayed 4 datagrams" in output
