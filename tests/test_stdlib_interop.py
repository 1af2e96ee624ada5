"""hotsock in the places where other code expects the stdlib's socket module.

- Swapping the module's helpers (``socket.socketpair = hotsock.socketpair``,
  as test suites and libraries that patch ``socket`` do) must not make them
  call themselves: hotsock binds the stdlib functions once, at import.
- A ``hotsock.socket`` goes to a multiprocessing child as a stdlib socket
  does (the descriptor is duplicated for the child), and arrives as a
  ``hotsock.socket``.
"""
import multiprocessing
import socket
from multiprocessing.reduction import ForkingPickler

import pytest

import hotsock

CHILD_TIMEOUT = 60.0


# --- item 25: the helpers with the stdlib's names swapped in ------------------------

def _round_trip(a, b):
    a.sendall(b"ping")
    assert b.recv(16) == b"ping"


def test_swapped_socketpair(monkeypatch):
    monkeypatch.setattr(socket, "socketpair", hotsock.socketpair)
    a, b = socket.socketpair()
    with a, b:
        assert type(a) is hotsock.socket and type(b) is hotsock.socket
        _round_trip(a, b)


def test_swapped_fromfd(monkeypatch):
    monkeypatch.setattr(socket, "fromfd", hotsock.fromfd)
    a, b = socket.socketpair()
    with a, b:
        c = socket.fromfd(a.fileno(), a.family, a.type)
        with c:
            assert type(c) is hotsock.socket
            assert c.fileno() != a.fileno()
            _round_trip(c, b)


def test_swapped_create_server_and_create_connection(monkeypatch):
    monkeypatch.setattr(socket, "create_server", hotsock.create_server)
    monkeypatch.setattr(socket, "create_connection", hotsock.create_connection)
    with socket.create_server(("127.0.0.1", 0)) as server:
        assert type(server) is hotsock.socket
        with socket.create_connection(server.getsockname(), timeout=10) as client:
            assert type(client) is hotsock.socket
            conn, _ = server.accept()
            with conn:
                _round_trip(client, conn)


def test_swapped_helpers_with_swapped_class(monkeypatch):
    # Both at once, as a suite run "with hotsock in place" does.
    monkeypatch.setattr(socket, "socket", hotsock.socket)
    monkeypatch.setattr(socket, "socketpair", hotsock.socketpair)
    monkeypatch.setattr(socket, "create_server", hotsock.create_server)
    monkeypatch.setattr(socket, "create_connection", hotsock.create_connection)
    a, b = socket.socketpair()
    with a, b:
        assert type(a) is hotsock.socket
        _round_trip(a, b)
    with socket.create_server(("127.0.0.1", 0)) as server:
        with socket.create_connection(server.getsockname(), timeout=10) as client:
            assert type(client) is hotsock.socket
            conn, _ = server.accept()
            with conn:
                _round_trip(conn, client)


# --- item 26: a hotsock.socket given to a multiprocessing child ---------------------

def _child_echo(sock, results):
    """In the child: say what arrived, then echo one message over it."""
    with sock:
        results.put((type(sock).__module__, type(sock).__qualname__, sock.type))
        sock.sendall(sock.recv(64).upper())


def _child_from_queue(jobs, results):
    sock = jobs.get(timeout=CHILD_TIMEOUT)
    _child_echo(sock, results)


# The stdlib side by side: what works for its sockets works for hotsock's,
# and each arrives in the child as its own class.
PAIRS = {"stdlib": (socket.socketpair, ("socket", "socket")),
         "hotsock": (hotsock.socketpair, ("hotsock", "socket"))}


def _check_child(results, here, cls):
    kind = results.get(timeout=CHILD_TIMEOUT)
    assert kind == (*cls, socket.SOCK_STREAM)
    here.settimeout(CHILD_TIMEOUT)
    here.sendall(b"hello child")
    assert here.recv(64) == b"HELLO CHILD"


@pytest.mark.parametrize("impl", [socket.socket, hotsock.socket], ids=["stdlib", "hotsock"])
def test_forking_pickler_round_trip(impl):
    a, b = (socket.socketpair if impl is socket.socket else hotsock.socketpair)()
    with a, b:
        data = ForkingPickler.dumps(a)
        # Within one process the pickle resolves through the resource sharer,
        # as the stdlib's own socket reducer does.
        c = ForkingPickler.loads(data)
        with c:
            assert type(c) is impl
            assert (c.family, c.type) == (a.family, a.type)
            assert c.fileno() != a.fileno()
            c.sendall(b"via copy")
            assert b.recv(64) == b"via copy"


def test_stdlib_pickle_still_refuses():
    # Only multiprocessing duplicates descriptors; a plain pickle is refused
    # as for the stdlib's socket.
    import pickle
    a, b = hotsock.socketpair()
    with a, b:
        with pytest.raises(TypeError, match="cannot pickle"):
            pickle.dumps(a)


@pytest.mark.parametrize("pair", PAIRS.values(), ids=PAIRS.keys())
# (Not "fork": the child inherits the object itself, nothing is pickled; and
# earlier tests leave multiprocessing's resource-sharer thread running, with
# which a fork may deadlock -- Python 3.12+ warns.)
@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_process_argument(method, pair):
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {method} start method here")
    socketpair, cls = pair
    ctx = multiprocessing.get_context(method)
    here, there = socketpair()
    with here, there:
        results = ctx.Queue()
        child = ctx.Process(target=_child_echo, args=(there, results))
        child.start()
        try:
            _check_child(results, here, cls)
        finally:
            child.join(CHILD_TIMEOUT)
            if child.is_alive():
                child.kill()
                child.join()
        assert child.exitcode == 0


@pytest.mark.parametrize("pair", PAIRS.values(), ids=PAIRS.keys())
def test_queue_put(pair):
    socketpair, cls = pair
    ctx = multiprocessing.get_context("spawn")
    here, there = socketpair()
    with here, there:
        jobs, results = ctx.Queue(), ctx.Queue()
        child = ctx.Process(target=_child_from_queue, args=(jobs, results))
        child.start()
        try:
            jobs.put(there)
            _check_child(results, here, cls)
        finally:
            child.join(CHILD_TIMEOUT)
            if child.is_alive():
                child.kill()
                child.join()
        assert child.exitcode == 0


def test_udp_socket_to_spawned_child():
    # A datagram socket too: the child receives on the parent's bound port.
    ctx = multiprocessing.get_context("spawn")
    rx = hotsock.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with rx, hotsock.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        rx.bind(("127.0.0.1", 0))
        results = ctx.Queue()
        child = ctx.Process(target=_child_recv_datagram, args=(rx, results))
        child.start()
        try:
            assert results.get(timeout=CHILD_TIMEOUT) == "ready"
            tx.sendto(b"dgram", rx.getsockname())
            assert results.get(timeout=CHILD_TIMEOUT) == ("hotsock.socket", b"dgram")
        finally:
            child.join(CHILD_TIMEOUT)
            if child.is_alive():
                child.kill()
                child.join()
        assert child.exitcode == 0


def _child_recv_datagram(sock, results):
    with sock:
        sock.settimeout(CHILD_TIMEOUT)
        results.put("ready")
        data, _ = sock.recvfrom(64)
        results.put((f"{type(sock).__module__}.{type(sock).__qualname__}", data))
