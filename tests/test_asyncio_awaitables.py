"""hotsock.asyncio.recv_batch / send_batch: awaitables for code that owns its
socket, under asyncio's default loop, uvloop, trio and anyio (both backends).

trio.socket.from_stdlib_socket refuses subclasses of socket.socket, so these
take the socket itself -- a plain socket.socket or a hotsock.socket -- and
wait through trio.lowlevel.wait_readable/wait_writable.
"""
import asyncio
import socket

import pytest
from eventloops import NoReadinessLoop

import hotsock
import hotsock.asyncio as hasyncio

uvloop = pytest.importorskip("uvloop")
trio = pytest.importorskip("trio")
anyio = pytest.importorskip("anyio")

LOOPS = {"default": None, "uvloop": uvloop.new_event_loop}
SOCKETS = {"stdlib": socket.socket, "hotsock": hotsock.socket}


@pytest.fixture(params=list(LOOPS))
def loop(request):
    return request.param


@pytest.fixture(params=list(SOCKETS))
def kind(request):
    return SOCKETS[request.param]


def run_on(loop, coro_fn, *args, timeout=5.0):
    async def bounded():
        return await asyncio.wait_for(coro_fn(*args), timeout)
    with asyncio.Runner(loop_factory=LOOPS[loop]) as runner:
        return runner.run(bounded())


def _udp_pair(kind):
    rx = kind(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.setblocking(False)
    tx = kind(socket.AF_INET, socket.SOCK_DGRAM)
    tx.bind(("127.0.0.1", 0))
    tx.setblocking(False)
    return rx, tx


def _unix_pair(kind):
    """A connected AF_UNIX datagram pair whose first end is full (EAGAIN)
    after a few datagrams the second has not read (the smallest SO_SNDBUF)."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)
    if kind is hotsock.socket:
        a = hotsock.socket(fileno=a.detach())
        b = hotsock.socket(fileno=b.detach())
    a.setblocking(False)
    b.setblocking(False)
    return a, b


def _drain(sock, limit=10000):
    out = []
    for _ in range(limit):
        try:
            out.append(sock.recv(65536))
        except BlockingIOError:
            break
    return out


# --- asyncio and uvloop ------------------------------------------------------------

def test_recv_batch_takes_what_is_queued_and_waits_for_more(loop, kind):
    async def scenario():
        rx, tx = _udp_pair(kind)
        with rx, tx:
            batch = hotsock.RecvBatch(8, 64)
            for i in range(5):
                tx.sendto(b"q%d" % i, rx.getsockname())
            first = await hasyncio.recv_batch(rx, batch)
            got = [(bytes(p), a) for p, a in batch]
            asyncio.get_running_loop().call_later(0.05, tx.sendto, b"later", rx.getsockname())
            second = await hasyncio.recv_batch(rx, batch)
            return first, got, second, bytes(batch[0]), tx.getsockname()
    first, got, second, later, sender = run_on(loop, scenario)
    assert first == 5 and got == [(b"q%d" % i, sender) for i in range(5)]
    assert (second, later) == (1, b"later")


def test_recv_batch_cancelled_leaves_batch_and_socket_consistent(loop, kind):
    async def scenario():
        lp = asyncio.get_running_loop()
        rx, tx = _udp_pair(kind)
        with rx, tx:
            batch = hotsock.RecvBatch(4, 64)
            tx.sendto(b"old", rx.getsockname())
            assert await hasyncio.recv_batch(rx, batch) == 1
            task = asyncio.ensure_future(hasyncio.recv_batch(rx, batch))
            await asyncio.sleep(0.02)
            assert not task.done()
            task.cancel()
            try:
                await task
                cancelled = False
            except asyncio.CancelledError:
                cancelled = True
            after_cancel = len(batch)
            reader_left = lp.remove_reader(rx.fileno())
            tx.sendto(b"new", rx.getsockname())
            n = await hasyncio.recv_batch(rx, batch)       # the same batch again
            plain = None
            tx.sendto(b"plain", rx.getsockname())
            plain = await asyncio.wait_for(lp.sock_recv(rx, 100), 1)   # the socket too
            return cancelled, after_cancel, reader_left, n, bytes(batch[0]), plain
    cancelled, after, reader_left, n, new, plain = run_on(loop, scenario)
    assert (cancelled, after, bool(reader_left), n, new, plain) == (True, 0, False, 1, b"new",
                                                                      b"plain")


def test_recv_batch_many_waiters_on_many_sockets(loop):
    async def scenario():
        pairs = [_udp_pair(hotsock.socket) for _ in range(20)]
        batches = [hotsock.RecvBatch(2, 32) for _ in pairs]
        tasks = [asyncio.ensure_future(hasyncio.recv_batch(rx, b))
                 for (rx, tx), b in zip(pairs, batches)]
        await asyncio.sleep(0.01)
        for i, (rx, tx) in enumerate(pairs):
            tx.sendto(b"%d" % i, rx.getsockname())
        counts = await asyncio.gather(*tasks)
        out = counts, [bytes(b[0]) for b in batches]
        for rx, tx in pairs:
            rx.close()
            tx.close()
        return out
    counts, payloads = run_on(loop, scenario)
    assert counts == [1] * 20 and payloads == [b"%d" % i for i in range(20)]


def test_send_batch_sends_all_waiting_while_full(loop, kind):
    async def scenario():
        a, b = _unix_pair(kind)
        with a, b:
            buffers = [b"%03d" % i for i in range(60)]
            received = []

            async def reader():
                while len(received) < 60:
                    received.append(await asyncio.get_running_loop().sock_recv(b, 100))
            task = asyncio.ensure_future(reader())
            n = await hasyncio.send_batch(a, buffers)
            await asyncio.wait_for(task, 2)
            return n, received
    n, received = run_on(loop, scenario)
    assert n == 60 and received == [b"%03d" % i for i in range(60)]


def test_send_batch_to_addresses(loop, kind):
    async def scenario():
        rx, tx = _udp_pair(kind)
        with rx, tx:
            n = await hasyncio.send_batch(tx, [b"a", b"b"], addresses=[rx.getsockname()] * 2)
            m = await hasyncio.send_batch(tx, [b"c"], rx.getsockname())
            await asyncio.sleep(0.01)
            return n, m, _drain(rx)
    assert run_on(loop, scenario) == (2, 1, [b"a", b"b", b"c"])


def test_send_batch_cancelled_says_how_many_went(loop, kind):
    async def scenario():
        lp = asyncio.get_running_loop()
        a, b = _unix_pair(kind)
        with a, b:
            task = asyncio.ensure_future(hasyncio.send_batch(a, [b"%03d" % i for i in range(50)]))
            await asyncio.sleep(0.02)
            assert not task.done()
            task.cancel()
            try:
                await task
                return "not cancelled"
            except asyncio.CancelledError as exc:
                sent = exc.buffers_sent
            writer_left = lp.remove_writer(a.fileno())
            received = _drain(b)
            more = await hasyncio.send_batch(a, [b"next"])     # the socket goes on
            return sent, writer_left, received, more, _drain(b)
    sent, writer_left, received, more, after = run_on(loop, scenario)
    assert 0 < sent < 50
    assert received == [b"%03d" % i for i in range(sent)]
    assert (bool(writer_left), more, after) == (False, 1, [b"next"])


def test_send_batch_network_error_carries_buffers_sent(loop):
    async def scenario():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as closed:
            closed.bind(("127.0.0.1", 0))
            addr = closed.getsockname()
        with hotsock.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.setblocking(False)
            s.connect(addr)
            s.send(b"x")
            await asyncio.sleep(0.05)               # the ICMP error is pending
            try:
                await hasyncio.send_batch(s, [b"a", b"b"])
                return "sent"
            except ConnectionRefusedError as exc:
                return getattr(exc, "buffers_sent", 0)
    assert run_on(loop, scenario) == 0


@pytest.mark.parametrize("timeout", [None, 1.0])
def test_blocking_socket_is_refused(loop, timeout):
    async def scenario():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(timeout)
            out = []
            for coro in (hasyncio.recv_batch(s, hotsock.RecvBatch(1, 8)),
                         hasyncio.send_batch(s, [b"x"], ("127.0.0.1", 9))):
                try:
                    await coro
                    out.append("ok")
                except ValueError as exc:
                    out.append(str(exc))
            return out
    assert run_on(loop, scenario) == ["the socket must be non-blocking"] * 2


def test_bad_arguments_raise_not_hang(loop):
    async def scenario():
        rx, tx = _udp_pair(hotsock.socket)
        out = []
        with rx, tx:
            for coro in (hasyncio.recv_batch(rx, "not a batch"),
                         hasyncio.send_batch(tx, ["text"], rx.getsockname()),
                         hasyncio.send_batch(tx, [b"x"], rx.getsockname(),
                                             addresses=[rx.getsockname()]),
                         hasyncio.send_batch(tx, [b"x", b"y"], addresses=[rx.getsockname()])):
                try:
                    await asyncio.wait_for(coro, 1)
                    out.append("ok")
                except (TypeError, ValueError) as exc:
                    out.append(type(exc).__name__)
        return out
    assert run_on(loop, scenario) == ["TypeError", "TypeError", "TypeError", "ValueError"]


def test_loop_without_readiness_callbacks_says_so():
    async def scenario():
        rx, tx = _udp_pair(hotsock.socket)
        with rx, tx:
            try:
                await hasyncio.recv_batch(rx, hotsock.RecvBatch(1, 8))
            except RuntimeError as exc:
                return str(exc)
            return "no error"
    with asyncio.Runner(loop_factory=NoReadinessLoop) as runner:
        message = runner.run(asyncio.wait_for(scenario(), 5))
    assert "NoReadinessLoop" in message and "add_reader" in message


# --- trio and anyio ---------------------------------------------------------------------

def test_trio_refuses_subclasses_so_the_awaitables_take_the_socket():
    with hotsock.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        with pytest.raises(TypeError):
            trio.socket.from_stdlib_socket(s)


def test_under_trio(kind):
    async def main():
        rx, tx = _udp_pair(kind)
        with rx, tx:
            batch = hotsock.RecvBatch(8, 64)
            with trio.move_on_after(0.05) as scope:
                await hasyncio.recv_batch(rx, batch)
            cancelled = scope.cancelled_caught
            after = len(batch)
            async with trio.open_nursery() as nursery:
                async def later():
                    await trio.sleep(0.02)
                    await hasyncio.send_batch(tx, [b"t1", b"t2"], rx.getsockname())
                nursery.start_soon(later)
                n = await hasyncio.recv_batch(rx, batch)
                if n < 2:
                    n += await hasyncio.recv_batch(rx, batch)
            a, b = _unix_pair(kind)
            with a, b:
                sent = None
                try:
                    with trio.fail_after(0.05):
                        await hasyncio.send_batch(a, [b"%d" % i for i in range(40)])
                except trio.TooSlowError as exc:
                    sent = getattr(exc.__context__, "buffers_sent", None)
                received = _drain(b)
            return cancelled, after, n, sent, len(received)
    cancelled, after, n, sent, received = trio.run(main)
    assert (cancelled, after, n) == (True, 0, 2)
    assert sent is not None and 0 < sent < 40 and received == sent


@pytest.mark.parametrize("backend", ["trio", "asyncio"])
def test_under_anyio(backend, kind):
    async def main():
        rx, tx = _udp_pair(kind)
        with rx, tx:
            batch = hotsock.RecvBatch(8, 64)
            with anyio.move_on_after(0.05) as scope:
                await hasyncio.recv_batch(rx, batch)
            async with anyio.create_task_group() as tg:
                async def later():
                    await anyio.sleep(0.02)
                    await hasyncio.send_batch(tx, [b"any"], rx.getsockname())
                tg.start_soon(later)
                n = await hasyncio.recv_batch(rx, batch)
            return scope.cancelled_caught, n, bytes(batch[0])
    assert anyio.run(main, backend=backend) == (True, 1, b"any")


@pytest.mark.parametrize("arena", ["SendBatch", "RecvBatch"])
def test_an_arena_is_refused_with_a_message_saying_where_it_goes(loop, arena):
    """The awaitable resumes a part-sent call from the next buffer, which an
    arena cannot do: it says so (it used to fail on a tuple of the arena's
    iteration), and nothing is sent."""
    async def scenario():
        rx, tx = _udp_pair(hotsock.socket)
        with rx, tx:
            batch = hotsock.SendBatch(2, 8) if arena == "SendBatch" else hotsock.RecvBatch(2, 8)
            with pytest.raises(TypeError) as info:
                await hasyncio.send_batch(tx, batch, rx.getsockname())
            rx.setblocking(False)
            with pytest.raises(BlockingIOError):
                rx.recv(8)
            return str(info.value)
    assert run_on(loop, scenario) == (
        f"send_batch() awaits a sequence of bytes-like objects, not a {arena}: "
        "send an arena with hotsock.send_batch()")
