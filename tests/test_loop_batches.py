"""The hot loops reuse their receive batches between calls (a 4 MiB arena
mapped, faulted and unmapped per call cost more than a one-datagram run):
nothing of one run may reach the next -- not its socket's drop counter, not
the socket it turned UDP_GRO on for -- and a batch a caller can see is never
one a later run reuses."""
import socket
import time

import pytest

import hotsock
from hotsock import _features
from hotsock._recv import _loop_batch, _return_batch


def _take_all(count, size, gro):
    """Every pooled batch of this shape (other tests may have left some; the
    pool keeps two at most), and a new one after them."""
    return [_loop_batch(count, size, gro) for _ in range(3)]


def _udp_pair(rcvbuf=None):
    rx = hotsock.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    if rcvbuf is not None:
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    return rx, tx


@pytest.mark.skipif(_features.SO_RXQ_OVFL is None, reason="no SO_RXQ_OVFL here")
def test_a_reused_batch_forgets_the_last_drop_counter():
    rx, tx = _udp_pair(rcvbuf=4096)
    with rx, tx:
        rx.setsockopt(socket.SOL_SOCKET, _features.SO_RXQ_OVFL, 1)
        rx.settimeout(2)
        for _ in range(400):                   # far more than the buffer holds
            tx.sendto(b"d" * 512, rx.getsockname())
        batch = _loop_batch(64, 2048, False)
        rx.setblocking(False)
        while True:                            # drain what was queued
            try:
                rx.recv_batch(batch)
            except BlockingIOError:
                break
        rx.settimeout(2)
        tx.sendto(b"after", rx.getsockname())  # queued after the drops: carries the counter
        time.sleep(0.05)
        assert rx.recv_batch(batch) == 1
        assert batch.dropped and batch.dropped > 0
        _return_batch(batch)
    taken = _take_all(64, 2048, False)
    assert any(b is batch for b in taken)      # the pool handed it back
    assert [(len(b), b.dropped) for b in taken] == [(0, None)] * len(taken)
    for b in taken:
        _return_batch(b)


@pytest.mark.skipif(not _features.gro_enabled(), reason="no UDP_GRO here")
def test_a_reused_gro_batch_turns_gro_on_again():
    rx, tx = _udp_pair()
    with rx, tx:
        rx.settimeout(2)
        batch = _loop_batch(4, 65535, True)
        tx.sendto(b"x", rx.getsockname())
        assert rx.recv_batch(batch) == 1
        assert rx.getsockopt(socket.IPPROTO_UDP, _features.UDP_GRO) == 1
        rx.setsockopt(socket.IPPROTO_UDP, _features.UDP_GRO, 0)    # as a loop puts it back
        _return_batch(batch)
        taken = _take_all(4, 65535, True)
        assert any(b is batch for b in taken)
        for again in taken:
            rx.setsockopt(socket.IPPROTO_UDP, _features.UDP_GRO, 0)
            tx.sendto(b"y", rx.getsockname())
            assert rx.recv_batch(again) == 1
            assert rx.getsockopt(socket.IPPROTO_UDP, _features.UDP_GRO) == 1
            _return_batch(again)


def test_echo_twice_on_one_socket_coalesces_both_times():
    """echo puts UDP_GRO back off when it ends; the next echo on the same
    socket must turn it on again (a pooled batch remembering the socket would
    not), so its replies are still whole segmented sends: counted the same."""
    server, client = _udp_pair()
    with server, client:
        client.bind(("127.0.0.1", 0))
        client.settimeout(5)
        for round_ in range(2):
            payloads = [bytes([round_]) * 100] * 20
            for p in payloads:
                client.sendto(p, server.getsockname())
            stats = hotsock.echo(server, count=20, idle=5)
            assert (stats.received, stats.sent, stats.errors) == (20, 20, 0)
            assert [client.recv(200) for _ in payloads] == payloads
            assert server.getsockopt(socket.IPPROTO_UDP, _features.UDP_GRO or 104) == 0


def test_a_callback_never_sees_a_pooled_batch(tmp_path):
    """capture's callback mode hands the caller its batch: one of its own,
    which no later run reuses."""
    rx, tx = _udp_pair()
    seen = []
    with rx, tx:
        for _ in range(2):
            tx.sendto(b"c", rx.getsockname())
            hotsock.capture(rx, seen.append, count=1, idle=5)
            tx.sendto(b"f", rx.getsockname())
            hotsock.capture(rx, str(tmp_path / "f.pcap"), count=1, idle=5)
    assert seen[0] is not seen[1]
    pooled = _loop_batch(64, 65535, False)
    assert all(pooled is not batch for batch in seen)
    _return_batch(pooled)


def test_the_pool_keeps_no_huge_batch():
    big = _loop_batch(1024, 65535, False)       # a 64 MiB arena
    _return_batch(big)
    assert _loop_batch(1024, 65535, False) is not big
