"""The course's C programs (tests/cpeers) against the hotsock example programs
(examples/), in both directions where the pair has two: C clients against
hotsock servers, a C multicast sender to the hotsock chat receiver and the
hotsock chat sender to a C multicast receiver.  Loopback only."""
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
TIMEOUT = 20
GROUP = "239.77.0.9"


def example(script, *args):
    """Start an example server; return (process, port from its first line)."""
    proc = subprocess.Popen([sys.executable, str(EXAMPLES / script), *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    first = proc.stdout.readline().split()
    assert first[:2] == ["listening", "on"], (first, proc.stderr.read() if proc.poll() else "")
    return proc, int(first[3])


def finish(proc):
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"{proc.args} did not finish: {err}")
    assert proc.returncode == 0, err
    return out


@pytest.mark.parametrize("mode", [[], ["--batch"]], ids=["recvfrom", "recv_batch"])
def test_c_udp_echo_client_against_example_server(cpeers, mode):
    server, port = example("udp_echo_server.py", "--count", 5, "--idle-timeout", 10, *mode)
    client = cpeers.run("udp_echo_client", "-m", "course", "127.0.0.1", port, 5, timeout=TIMEOUT)
    assert client.returncode == 0, client.stderr
    assert client.stdout.splitlines()[-1] == "ok 5"
    finish(server)


@pytest.mark.parametrize("script", ["tcp_echo_server_iterative.py", "tcp_echo_server_concurrent.py"])
def test_c_tcp_echo_client_against_example_servers(cpeers, script):
    server, port = example(script, "--clients", 2, "--idle-timeout", 10)
    for size in (100, 40000):          # 40 kB: partial reads and writes on both sides
        client = cpeers.run("tcp_echo_client", "-s", size, "127.0.0.1", port, 3, timeout=TIMEOUT)
        assert client.returncode == 0, client.stderr
        assert client.stdout.splitlines()[-2:] == ["ok 3", "eof"]
    finish(server)


def test_c_multicast_sender_to_example_chat_receiver(cpeers):
    receiver = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "multicast_chat.py"), "receive", "--group", GROUP,
         "--port", "0", "--interface", "127.0.0.1", "--count", "3", "--timeout", "15"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    first = receiver.stdout.readline().split()
    assert first[0] == "joined", first
    port = int(first[first.index("port") + 1])
    sent = cpeers.run("mcast_send", "-t", 0, "-l", 1, "-i", "127.0.0.1", "-m", "from C",
                      GROUP, port, 3, timeout=TIMEOUT)
    assert sent.returncode == 0, sent.stderr
    out = finish(receiver)
    assert out.count("from C") == 3


def test_example_chat_sender_to_c_multicast_receiver(cpeers):
    port = free_udp_port()
    with cpeers.popen("mcast_recv", "-i", "127.0.0.1", "-w", 10000, GROUP, port, 2) as receiver:
        assert receiver.stdout.readline().strip() == "ready"
        sender = subprocess.run(
            [sys.executable, str(EXAMPLES / "multicast_chat.py"), "send", "--group", GROUP,
             "--port", str(port), "--interface", "127.0.0.1", "--ttl", "0", "--name", "py",
             "hello C", "second line"],
            capture_output=True, text=True, timeout=TIMEOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        assert sender.returncode == 0, sender.stderr
        out, err = receiver.communicate(timeout=TIMEOUT)
    assert receiver.returncode == 0, err
    payloads = [line.split(" ", 4)[4] for line in out.splitlines() if line.startswith("recv ")]
    assert len(payloads) == 2
    assert "hello C" in payloads[0] and "second line" in payloads[1]


def free_udp_port():
    """A UDP port that was free a moment ago, for a receiver that cannot report its own."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
