"""Calls the kernel does not answer with EAGAIN: zero-length transfers and
MSG_OOB.  On a socket with a timeout hotsock waits for readiness before
each attempt, as the stdlib does (``_syscall.sock_call``); these calls show
that order, because trying the syscall first would return at once where
the stdlib waits.  Side by side."""
import socket
import time

import pytest

import hotsock

IMPLS = [socket.socket, hotsock.socket]
IDS = ["stdlib", "hotsock"]


def outcome(call):
    start = time.monotonic()
    try:
        result = ("returned", call())
    except Exception as exc:    # noqa: BLE001  (compared, not swallowed)
        result = ("raised", type(exc), str(exc))
    return result, time.monotonic() - start


@pytest.fixture
def tcp_pair():
    def make(impl):
        with socket.create_server(("127.0.0.1", 0)) as server:
            client = impl(socket.AF_INET, socket.SOCK_STREAM)
            client.connect(server.getsockname())
            peer, _ = server.accept()
        made.append((client, peer))
        return client, peer
    made = []
    yield make
    for a, b in made:
        a.close()
        b.close()


@pytest.mark.parametrize("impl", IMPLS, ids=IDS)
def test_zero_length_recv_touches_nothing(impl):
    with impl(socket.AF_INET, socket.SOCK_DGRAM) as rx, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(0.3)
        (kind, value), elapsed = outcome(lambda: rx.recv(0))
        assert (kind, value) == ("returned", b"") and elapsed < 0.2
        assert rx.recv_into(bytearray(0)) == 0
        tx.sendto(b"kept", rx.getsockname())
        time.sleep(0.05)
        assert rx.recv(0) == b""
        assert rx.recv(16) == b"kept"         # the datagram was not consumed


def test_oob_without_urgent_data_waits_for_the_timeout(tcp_pair):
    results = []
    for impl in IMPLS:
        client, peer = tcp_pair(impl)
        client.settimeout(0.3)
        result, elapsed = outcome(lambda: client.recv(1, socket.MSG_OOB))
        results.append(result)
        assert elapsed >= 0.25
    assert results[0] == results[1] == ("raised", socket.timeout, "timed out")


def test_oob_with_only_urgent_data_behaves_alike(tcp_pair):
    results = []
    for impl in IMPLS:
        client, peer = tcp_pair(impl)
        peer.send(b"!", socket.MSG_OOB)
        time.sleep(0.05)
        client.settimeout(0.3)
        results.append(outcome(lambda: client.recv(1, socket.MSG_OOB))[0])
    assert results[0] == results[1]


def test_empty_send_on_a_full_socket_waits_for_the_timeout(tcp_pair):
    results = []
    for impl in IMPLS:
        client, peer = tcp_pair(impl)
        client.setblocking(False)
        try:
            while True:
                client.send(b"x" * 65536)
        except BlockingIOError:
            pass
        client.settimeout(0.3)
        result, elapsed = outcome(lambda: client.send(b""))
        results.append(result)
        assert elapsed >= 0.25
    assert results[0] == results[1] == ("raised", socket.timeout, "timed out")


def _alarm_guard(seconds):
    """Make a hang fail the test instead of the run."""
    import signal

    def expired(signum, frame):
        raise AssertionError(f"still blocked after {seconds} s")
    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    return previous


def _alarm_off(previous):
    import signal
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("impl", IMPLS, ids=IDS)
def test_timeout_holds_when_another_handle_made_the_descriptor_blocking(impl):
    with impl(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(0.3)
        other = s.dup()
        other.settimeout(None)          # O_NONBLOCK off for the shared file description
        previous = _alarm_guard(3)
        try:
            result, elapsed = outcome(lambda: s.recv(10))
        finally:
            _alarm_off(previous)
            other.close()
    assert result == ("raised", socket.timeout, "timed out")
    assert 0.25 <= elapsed < 2.0


def test_listening_socket_times_out_like_the_stdlib():
    results = []
    for impl in IMPLS:
        with impl(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            s.listen()
            s.settimeout(0.2)
            for call in (lambda: s.recv(10), lambda: s.recv_into(bytearray(4)),
                         lambda: s.send(b"x")):
                result, elapsed = outcome(call)
                results.append((impl.__name__, result))
                assert elapsed >= 0.15
    stdlib = [r for name, r in results[:3]]
    hot = [r for name, r in results[3:]]
    assert stdlib == hot
    assert all(r == ("raised", socket.timeout, "timed out") for r in hot)


def test_msg_trunc_on_tcp_returns_zeros_not_old_memory(tcp_pair):
    with hotsock.socket(socket.AF_INET, socket.SOCK_DGRAM) as u, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        u.bind(("127.0.0.1", 0))
        tx.sendto(b"SECRET-" * 100, u.getsockname())
        u.settimeout(2)
        assert u.recv(700).startswith(b"SECRET-")     # leaves the bytes on the stack
    client, peer = tcp_pair(hotsock.socket)
    peer.sendall(b"d" * 600)
    client.settimeout(2)
    time.sleep(0.05)
    for size in (600, 9000):                            # the stack and the heap paths
        data = client.recv(size, socket.MSG_TRUNC)
        assert data == bytes(len(data)) and len(data) > 0
        peer.sendall(b"d" * 600)
        time.sleep(0.05)
