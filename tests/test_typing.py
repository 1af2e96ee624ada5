"""mypy sees hotsock's own API: a program using it type-checks, a misuse does not.

stubtest (test_stubs.py) checks that the stubs agree with the runtime; this
checks what a user's type checker makes of them: ``hotsock.socket`` must be
hotsock's class (not the stdlib's, re-exported over it), and hotsock's
functions must keep their own signatures.
"""
import subprocess
import sys
import textwrap

import pytest

USES_HOTSOCK_API = textwrap.dedent("""\
    import hotsock
    from hotsock import RecvBatch

    s = hotsock.socket(hotsock.AF_INET, hotsock.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.join_group("239.1.2.3", "127.0.0.1")
    s.set_multicast_ttl(1)
    ttl: int = s.get_multicast_ttl()
    on, seconds = s.get_linger()
    batch = RecvBatch(count=8, size=2048)
    n: int = s.recv_batch(batch)
    sent: int = s.send_batch([b"a", b"b"], ("127.0.0.1", 9))

    a, b = hotsock.socketpair()
    a.send_batch([b"x"])
    b.set_recv_buffer(1 << 20)
    c = hotsock.fromfd(a.fileno(), hotsock.AF_UNIX, hotsock.SOCK_STREAM)
    c.get_recv_buffer()
    conn = hotsock.create_connection(("127.0.0.1", 9))
    conn.set_nodelay(True)
    server = hotsock.create_server(("127.0.0.1", 0))
    peer, address = server.accept()
    peer.set_keepalive(True, idle=10)
    got: int = hotsock.recv_batch(s, batch)
    version: str = hotsock.__version__
    info = hotsock.features()
    err = hotsock.error
    timeout: float | None = s.gettimeout()
    pktinfo: int | None = hotsock.IP_PKTINFO

    arena = hotsock.SendBatch(4, 64)
    arena.used = 2
    s.send_batch(arena, ("127.0.0.1", 9))

    import asyncio
    import hotsock.asyncio

    class Feed:
        def connection_made(self, transport: asyncio.BaseTransport) -> None: ...
        def datagrams_received(self, batch: RecvBatch) -> None: ...

    async def serve() -> int:
        transport, feed = await hotsock.asyncio.create_datagram_endpoint(
            Feed, local_addr=("127.0.0.1", 0), batch=64)
        transport.send_batch([b"a"], ("127.0.0.1", 9))
        limits: tuple[int, int] = transport.get_write_buffer_limits()
        return await hotsock.asyncio.recv_batch(s, batch)
""")

# Each line must be an error: mypy knows hotsock's signatures and return types.
MISUSES = {
    "recv_batch_wants_a_batch": "s.recv_batch(2048)",
    "join_group_wants_a_group": "s.join_group(5)",
    "socketpair_gives_hotsock_sockets": "x: int = hotsock.socketpair()[0].get_recv_buffer(); "
                                        "y: str = hotsock.socketpair()[0].get_ttl()",
    "create_server_gives_hotsock_socket": "hotsock.create_server(('', 0)).no_such_method()",
    "accept_gives_hotsock_socket": "z: str = server.accept()[0].get_nodelay()",
    "the_endpoint_is_typed": "async def f() -> None: "
                             "(await hotsock.asyncio.create_datagram_endpoint(Feed))[0].nothing()",
}


@pytest.fixture(scope="module")
def mypy_cache(tmp_path_factory):
    pytest.importorskip("mypy")
    # One cache for the module: the first run reads typeshed, the others reuse it.
    return tmp_path_factory.mktemp("mypy-cache")


def _mypy(tmp_path, cache, source):
    program = tmp_path / "program.py"
    program.write_text(source)
    # From an empty directory, so that the installed package is what mypy reads.
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--no-error-summary", "--cache-dir", str(cache),
         str(program)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path)


def test_hotsock_api_type_checks(tmp_path, mypy_cache):
    out = _mypy(tmp_path, mypy_cache, USES_HOTSOCK_API)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("line", MISUSES.values(), ids=MISUSES.keys())
def test_misuse_is_reported(tmp_path, mypy_cache, line):
    out = _mypy(tmp_path, mypy_cache, USES_HOTSOCK_API + line + "\n")
    assert out.returncode == 1, out.stdout + out.stderr
    errors = [e for e in out.stdout.splitlines() if ": error:" in e]
    last_line = USES_HOTSOCK_API.count("\n") + 1
    assert errors and all(f"program.py:{last_line}:" in e for e in errors), out.stdout
