"""Threads hammering hotsock's shared mutable state (issue 11, item 4).

Real loopback sockets, eight threads or more, bounded counts and a few
seconds per test.  What is shared: the per-socket state records
(``_state.state_of``: GSO refused, errors the recvmsg fallback deferred), the
per-socket address cache (``sendto`` / ``recvfrom`` on one socket from many
threads), the send_batch scratch pool, sockets closed while other threads
use them, and a ``RecvBatch`` handed to several threads.  Every test counts
exactly: each datagram at the right destination with the right payload and
source, each call ending in a result or in the documented error.

The GIL is switched between threads far more often than by default (see the
``busy_switching`` fixture), so that the interleavings a free-threaded
interpreter would give are approached on an ordinary one as well.
"""
import errno
import os
import random
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import hotsock
from hotsock import _features, _options, _send, _state

THREADS = 8
LOOPBACK = "127.0.0.1"
SO_NO_CHECK = 11        # Linux: no UDP checksums -- which makes the kernel refuse GSO
BUSY = "this RecvBatch is already receiving in another thread"

needs_gso = pytest.mark.skipif(not _features.gso_enabled(),
                               reason="UDP_SEGMENT is not available here (Linux >= 4.18) "
                                      "or switched off (HOTSOCK_NO_GSO=1)")

# The hotsock being tested, for subprocesses too: an in-place build or the installed one.
SRC = os.path.dirname(os.path.dirname(os.path.abspath(hotsock.__file__)))
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(
    p for p in (SRC, os.environ.get("PYTHONPATH")) if p))


@pytest.fixture(autouse=True)
def busy_switching():
    """Hand the GIL over every 20 us instead of every 5 ms."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(2e-5)
    yield
    sys.setswitchinterval(before)


def run_threads(targets, timeout=20.0):
    """Start every target at once (a barrier), wait for all, re-raise the first failure."""
    barrier = threading.Barrier(len(targets))
    errors = []

    def wrap(target):
        def run():
            try:
                barrier.wait(5)
                target()
            except BaseException as exc:    # noqa: BLE001  (re-raised below)
                errors.append(exc)
        return run

    threads = [threading.Thread(target=wrap(t), daemon=True) for t in targets]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    assert not [t for t in threads if t.is_alive()], "a thread did not finish in time"
    if errors:
        raise errors[0]


def receiver(cls=socket.socket, timeout=2.0):
    """A bound UDP socket with room for every datagram a test sends it."""
    rx = cls(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind((LOOPBACK, 0))
    _options.set_recv_buffer(rx, 1 << 23, force=True)
    rx.settimeout(timeout)
    return rx


def drain(rx, count):
    """(payload, source) of *count* datagrams queued on *rx*, then nothing more."""
    batch = hotsock.RecvBatch(64, 2048)
    got = []
    while len(got) < count:
        try:
            hotsock.recv_batch(rx, batch)
        except TimeoutError:
            raise AssertionError(f"{len(got)} of {count} datagrams arrived "
                                 f"(kernel drops: {hotsock.kernel_drops(rx)})") from None
        got += [(bytes(p), a) for p, a in batch]
    timeout = rx.gettimeout()
    rx.setblocking(False)
    try:
        with pytest.raises(BlockingIOError):
            hotsock.recv_batch(rx, batch)       # not one datagram too many
    finally:
        rx.settimeout(timeout)
    return got


def tagged(*fields, size=0):
    """A payload naming who sent it: the fields, then filler derived from them."""
    head = struct.pack("!%dI" % len(fields), *fields)
    fill = bytes([sum(fields) & 0xFF]) * max(0, size - len(head))
    return head + fill


# --- the address cache: one socket, many threads, many peers ----------------------

def test_sendto_from_threads_reaches_each_destination():
    """Threads share one socket (and so its last-destination cache), each
    sending to all eight receivers in turn, by the same address object, an
    equal new tuple, sendto with flags, and send_batch."""
    per_thread = 1200
    receivers = [receiver() for _ in range(THREADS)]
    destinations = [r.getsockname() for r in receivers]
    tx = hotsock.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.bind((LOOPBACK, 0))

    def sender(t):
        for i in range(per_thread):
            d = (t + i) % THREADS
            payload = tagged(t, d, i, size=8 + (i % 5) * 100)
            how = i % 4
            if how == 0:
                assert tx.sendto(payload, destinations[d]) == len(payload)
            elif how == 1:
                assert tx.sendto(payload, (LOOPBACK, destinations[d][1])) == len(payload)
            elif how == 2:
                assert tx.sendto(payload, 0, destinations[d]) == len(payload)
            else:
                assert tx.send_batch([payload], destinations[d]) == 1

    try:
        run_threads([lambda t=t: sender(t) for t in range(THREADS)])
        source = tx.getsockname()
        for d, rx in enumerate(receivers):
            got = drain(rx, per_thread)     # each receiver gets 1/8 of every thread's
            assert {a for _, a in got} == {source}
            assert sorted(p for p, _ in got) == sorted(
                tagged(t, d, i, size=8 + (i % 5) * 100)
                for t in range(THREADS) for i in range(per_thread) if (t + i) % THREADS == d)
    finally:
        tx.close()
        for rx in receivers:
            rx.close()


def test_receives_from_threads_name_each_sender():
    """Threads share one receiving socket (and its last-source cache) while
    eight senders feed it: every datagram is taken once, by recvfrom,
    recvfrom_into or recv_batch, with its own sender's address."""
    per_sender = 600
    rx = receiver(hotsock.socket, timeout=0.3)
    senders = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(THREADS)]
    for s in senders:
        s.bind((LOOPBACK, 0))
    names = [s.getsockname() for s in senders]
    done_sending = threading.Event()
    sent = [0]
    taken = []                  # (sender index, seq, address) from every receiving thread
    lock = threading.Lock()

    def send(k):
        for i in range(per_sender):
            senders[k].sendto(tagged(k, i, size=16 + i % 64), rx.getsockname())
        with lock:
            sent[0] += 1
            if sent[0] == THREADS:
                done_sending.set()

    def take(r):
        batch = hotsock.RecvBatch(16, 128)
        buf = bytearray(128)
        mine = []
        i = 0
        while True:
            try:
                how = (r + i) % 3
                i += 1
                if how == 0:
                    data, address = rx.recvfrom(128)
                    got = [(data, address)]
                elif how == 1:
                    n, address = rx.recvfrom_into(buf)
                    got = [(bytes(buf[:n]), address)]
                else:
                    rx.recv_batch(batch)
                    got = [(bytes(p), a) for p, a in batch]
            except TimeoutError:
                if done_sending.is_set():
                    break
                continue
            for data, address in got:
                k, seq = struct.unpack("!2I", data[:8])
                assert data == tagged(k, seq, size=16 + seq % 64)
                mine.append((k, seq, address))
        with lock:
            taken.extend(mine)

    try:
        run_threads([lambda k=k: send(k) for k in range(THREADS)]
                    + [lambda r=r: take(r) for r in range(THREADS)])
        assert hotsock.kernel_drops(rx) == 0
        assert sorted((k, seq) for k, seq, _ in taken) == [
            (k, i) for k in range(THREADS) for i in range(per_sender)]
        assert all(address == names[k] for k, _, address in taken)
    finally:
        rx.close()
        for s in senders:
            s.close()


def test_replies_from_threads_reach_their_senders():
    """An echo server run by several threads on one socket: each reply goes to
    the address recvfrom gave (the cached source), so each client gets back
    exactly its own requests."""
    clients_n, per_client, window = THREADS, 300, 10
    server = receiver(hotsock.socket, timeout=0.3)
    address = server.getsockname()
    stop = threading.Event()
    answered = [0]
    lock = threading.Lock()

    def serve(k):
        buf = bytearray(64)
        count = 0
        while not stop.is_set():
            try:
                if k % 2:
                    data, peer = server.recvfrom(64)
                else:
                    n, peer = server.recvfrom_into(buf)
                    data = bytes(buf[:n])
            except TimeoutError:
                continue
            assert server.sendto(data, peer) == len(data)
            count += 1
        with lock:
            answered[0] += count

    def client(c):
        with receiver(timeout=2.0) as s:
            replies = []
            for start in range(0, per_client, window):
                for i in range(start, start + window):
                    s.sendto(tagged(c, i), address)
                for _ in range(window):
                    data, peer = s.recvfrom(64)
                    assert peer == address
                    replies.append(data)
            assert sorted(replies) == [tagged(c, i) for i in range(per_client)]

    servers = [threading.Thread(target=serve, args=(k,)) for k in range(4)]
    for t in servers:
        t.start()
    try:
        run_threads([lambda c=c: client(c) for c in range(clients_n)])
    finally:
        stop.set()
        for t in servers:
            t.join(5)
        server.close()
    assert not [t for t in servers if t.is_alive()]
    assert answered[0] == clients_n * per_client


# --- the send pool: send_batch from many threads ------------------------------------

def test_send_batch_from_threads_counts_exact():
    """Eight threads on one socket, calls of 1 to 1100 datagrams of mixed or
    equal sizes, with GSO automatic, forced or off, to one address or a list
    of addresses: every call returns its whole count and every datagram
    arrives once, intact."""
    rounds = 25
    receivers = [receiver() for _ in range(THREADS)]
    destinations = [r.getsockname() for r in receivers]
    tx = hotsock.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.bind((LOOPBACK, 0))
    _options.set_send_buffer(tx, 1 << 22, force=True)
    sent_counts = [0] * THREADS

    def sender(t):
        rng = random.Random(t)
        dest = destinations[t]
        for r in range(rounds):
            if r == 7:
                n, sizes = 1100, [16 + rng.randrange(48) for _ in range(1100)]   # > 1024: two sendmmsg
            else:
                n = rng.randint(1, 200)
                shape = rng.randrange(3)
                if shape == 0:          # all one size (the last shorter): GSO groups them
                    size = rng.randint(12, 1400)
                    sizes = [size] * (n - 1) + [rng.randint(12, size)]
                elif shape == 1:        # every size different
                    sizes = [rng.randint(12, 1400) for _ in range(n)]
                else:                   # runs of equal sizes
                    sizes = []
                    while len(sizes) < n:
                        sizes += [rng.randint(12, 1400)] * rng.randint(1, 70)
                    sizes = sizes[:n]
            payloads = [tagged(t, r, i, size=s) for i, s in enumerate(sizes)]
            gso = (None, True, False)[r % 3]
            if r % 4 == 3:
                addresses = [dest if i % 2 else (LOOPBACK, dest[1]) for i in range(n)]
                assert tx.send_batch(payloads, addresses=addresses, gso=gso) == n
            else:
                assert tx.send_batch(payloads, dest, gso=gso) == n
            got = drain(receivers[t], n)
            assert sorted(p for p, _ in got) == sorted(payloads)
            assert {a for _, a in got} == {tx.getsockname()}
            sent_counts[t] += n

    try:
        run_threads([lambda t=t: sender(t) for t in range(THREADS)], timeout=60)
        assert all(c > rounds for c in sent_counts)
        # What the pool keeps afterwards stays bounded (four scratches at most).
        assert 0 < _send._send_pool_bytes() <= 8 * 1024 * 1024
    finally:
        tx.close()
        for rx in receivers:
            rx.close()



# --- sockets closed under threads: the numbers they leave -----------------------------
#
# A call that read a socket's descriptor just before another thread closed it
# can still reach whatever socket takes the number next: the kernel knows
# only numbers.  The stdlib has that window (it reads ``sock_fd`` after
# releasing the GIL, just before the syscall), and so has hotsock, which reads
# it at the same point -- see
# test_no_send_reaches_the_socket_that_reused_the_number and
# test_no_receive_takes_from_the_socket_that_reused_the_number below, which
# hold it to the stdlib's.  The close tests therefore allow a datagram through a new socket, and
# account for every one: nothing lost, nothing corrupted, every call ending
# in a count or EBADF.

def drain_until(rx, batch, arrived, stop):
    """Receive into *arrived* ((payload, sender) pairs) until *stop* is set and
    a receive times out (rx has a timeout): what a collector thread runs."""
    while True:
        try:
            hotsock.recv_batch(rx, batch)
        except TimeoutError:
            if stop.is_set():
                return
            continue
        arrived.extend((bytes(p), a) for p, a in batch)


def take_numbers(count):
    """*count* new UDP sockets -- the lowest free numbers, a just-closed one
    among them -- bound to loopback, and the ports they have.  A send racing
    the close may have gone through one before its bind: the kernel bound it
    to a port of its own then (and bind() says EINVAL)."""
    sockets = []
    for _ in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind((LOOPBACK, 0))
        except OSError as exc:
            assert exc.errno == errno.EINVAL, exc      # already bound by a send
        sockets.append(s)
    return sockets, {s.getsockname()[1] for s in sockets}


# --- per-socket state: GSO refusals on fresh, reused and closing sockets --------------

@needs_gso
def test_gso_refusal_stays_with_its_socket_under_threads():
    """Threads open, use and close sockets all the time, so descriptor numbers
    are reused at once, by other threads too.  Half the sockets refuse
    segmented sends (SO_NO_CHECK): each of those is remembered as refusing,
    and no fresh socket ever inherits a refusal from its number."""
    rounds = 40
    receivers = [receiver() for _ in range(THREADS)]

    def worker(t):
        dest = receivers[t].getsockname()
        for r in range(rounds):
            cls = (hotsock.socket, socket.socket)[(t + r) % 2]
            refusing = (t + r // 2) % 2 == 1
            with cls(socket.AF_INET, socket.SOCK_DGRAM) as tx:
                tx.bind((LOOPBACK, 0))
                assert _state.gso_usable(tx, tx.family), "a fresh socket inherited a refusal"
                if refusing:
                    tx.setsockopt(socket.SOL_SOCKET, SO_NO_CHECK, 1)
                payloads = [tagged(t, r, i, size=200) for i in range(20)]
                handle = tx if r % 3 else tx.fileno()
                assert hotsock.send_batch(handle, payloads, dest, gso=True) == 20
                # Remembered by what was sent through: the socket's own record,
                # or -- for a bare descriptor -- the number's, checked by inode.
                assert _state.gso_usable(handle, tx.family) == (not refusing)
                assert hotsock.send_batch(handle, payloads[:10], dest, gso=True) == 10
                assert sorted(p for p, _ in drain(receivers[t], 30)) == sorted(
                    payloads + payloads[:10])

    try:
        run_threads([lambda t=t: worker(t) for t in range(THREADS)])
    finally:
        for rx in receivers:
            rx.close()


@needs_gso
def test_send_batch_on_a_socket_closed_under_it():
    """Four threads send segmented batches on one socket; another closes it
    and opens sockets that take its number.  Each call returns a count or
    fails with EBADF; the receiver gets exactly the datagrams the counts say,
    intact, from the closed socket (or, in the window described above, a
    socket on its number); a fresh socket on the number may segment."""
    senders_n, rounds, batch = 4, 6, 64
    rx = receiver(timeout=0.05)
    dest = rx.getsockname()
    for r in range(rounds):
        cls = (hotsock.socket, socket.socket)[r % 2]
        tx = cls(socket.AF_INET, socket.SOCK_DGRAM)
        tx.bind((LOOPBACK, 0))
        source = tx.getsockname()
        counts = [0] * senders_n
        endings = [None] * senders_n
        calls = [0]
        replacements = []
        new_ports = set()
        arrived = []
        stop_draining = threading.Event()

        def send(k):
            payloads = [tagged(r, k, i, size=100) for i in range(batch)]
            for i in range(2000):
                if i >= 20:
                    time.sleep(0.001)   # enough sent: until the close, at a walk
                try:
                    n = hotsock.send_batch(tx, payloads, dest, gso=True)
                except OSError as exc:
                    endings[k] = exc.errno
                    return
                assert 0 <= n <= batch
                counts[k] += n
                calls[0] += 1
            endings[k] = "not closed"

        def close():
            deadline = time.monotonic() + 5
            while calls[0] < 2 * senders_n and time.monotonic() < deadline:
                time.sleep(0.001)
            number = tx.fileno()
            tx.close()
            taken, ports = take_numbers(8)
            replacements.extend(taken)
            new_ports.update(ports)
            for new in taken:
                if new.fileno() == number:
                    # A fresh socket on the closed one's number: no refusal inherited.
                    assert _state.gso_usable(new, new.family)

        collector = threading.Thread(target=drain_until,
                                     args=(rx, hotsock.RecvBatch(256, 256), arrived, stop_draining))
        collector.start()
        try:
            run_threads([lambda k=k: send(k) for k in range(senders_n)] + [close])
        finally:
            stop_draining.set()
            collector.join(5)
            for s in replacements:
                s.close()
        assert not collector.is_alive()
        assert endings == [errno.EBADF] * senders_n
        assert {a[1] for _, a in arrived} <= {source[1]} | new_ports
        assert len(arrived) == sum(counts), f"kernel drops: {hotsock.kernel_drops(rx)}"
        for k in range(senders_n):
            mine = sorted(p for p, _ in arrived if p[4:8] == struct.pack("!I", k))
            assert len(mine) == counts[k]
            assert set(mine) <= {tagged(r, k, i, size=100) for i in range(batch)}
    rx.close()


# --- sockets closed while other threads receive on them -------------------------------

# Each returns the payloads it received.
RECEIVES = {
    "recv": lambda s, b: [s.recv(64)],
    "recvfrom": lambda s, b: [s.recvfrom(64)[0]],
    "recv_into": lambda s, b: [_into(s.recv_into)],
    "recvfrom_into": lambda s, b: [_into(lambda buf: s.recvfrom_into(buf)[0])],
    "recv_batch": lambda s, b: hotsock.recv_batch(s, b) and [bytes(p) for p, _ in b],
}


def _into(call):
    buf = bytearray(64)
    return bytes(buf[:call(buf)])


@pytest.mark.parametrize("cls", [hotsock.socket, socket.socket], ids=["hotsock", "stdlib"])
def test_receiving_threads_on_a_closed_socket_end_with_ebadf(cls):
    """Six threads receive on one socket (every compiled receive), fed all the
    while; another thread closes it and opens sockets that take its number,
    each with a datagram of its own queued.  Every thread ends with EBADF;
    each new socket's datagram is received once: by it, or (in the window
    described above) by a call that read the old number."""
    rounds = 4
    feeder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for _ in range(rounds):
        rx = receiver(cls, timeout=0.05)
        address = rx.getsockname()
        endings = {}
        wrong = []
        closed = threading.Event()
        replacements = []

        def take(k):
            batch = hotsock.RecvBatch(4, 64)
            methods = list(RECEIVES)
            i = 0
            while True:
                name = methods[(k + i) % len(methods)]
                i += 1
                if cls is socket.socket and name != "recv_batch" and i % 2:
                    name = "recv_batch"     # a stdlib socket: hotsock's batch reads it
                try:
                    got = RECEIVES[name](rx, batch)
                except TimeoutError:
                    continue
                except OSError as exc:
                    endings[k] = (name, exc.errno)
                    return
                wrong.extend(data for data in got if data != b"for the old socket")

        def feed():
            while not closed.is_set():
                feeder.sendto(b"for the old socket", address)
                time.sleep(0.0005)

        def close():
            time.sleep(0.15)
            rx.close()
            closed.set()
            for j in range(12):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.bind((LOOPBACK, 0))
                feeder.sendto(b"for new socket %d" % j, s.getsockname())
                replacements.append(s)

        try:
            run_threads([lambda k=k: take(k) for k in range(6)] + [feed, close])
            assert sorted(endings) == list(range(6))
            assert {e for _, e in endings.values()} == {errno.EBADF}, endings
            meant = [b"for new socket %d" % j for j in range(len(replacements))]
            assert len(set(wrong)) == len(wrong) and set(wrong) <= set(meant), wrong
            for j, s in enumerate(replacements):
                s.setblocking(False)
                if meant[j] not in wrong:
                    assert s.recv(64) == meant[j]
                with pytest.raises(BlockingIOError):
                    s.recv(64)
        finally:
            for s in replacements:
                s.close()
            rx.close()
    feeder.close()


def test_sending_threads_on_a_closed_socket_end_with_ebadf():
    """Six threads send on one socket (sendto, send_batch with one or many
    addresses); another closes it and opens sockets that take its number.
    Each call sends or fails with EBADF; the receiver gets as many datagrams
    as the calls reported, intact, from the closed socket (or, in the window
    described above, a socket on its number)."""
    rounds = 4
    rx = receiver(timeout=0.05)
    dest = rx.getsockname()
    for r in range(rounds):
        tx = hotsock.socket(socket.AF_INET, socket.SOCK_DGRAM)
        tx.bind((LOOPBACK, 0))
        source = tx.getsockname()
        counts = [0] * 6
        endings = [None] * 6
        calls = [0]
        replacements = []
        new_ports = set()
        arrived = []
        stop_draining = threading.Event()

        def send(k):
            for i in range(2000):
                if i >= 50:
                    time.sleep(0.001)   # enough sent: until the close, at a walk
                payload = tagged(r, k, i)
                try:
                    how = (k + i) % 4
                    if how == 0:
                        n = tx.sendto(payload, dest) // len(payload)
                    elif how == 1:
                        n = tx.sendto(payload, (LOOPBACK, dest[1])) // len(payload)
                    elif how == 2:
                        n = tx.send_batch([payload] * 3, dest, gso=False)
                    else:
                        n = tx.send_batch([payload] * 2, addresses=[dest, (LOOPBACK, dest[1])])
                except OSError as exc:
                    endings[k] = exc.errno
                    return
                counts[k] += n
                calls[0] += 1
            endings[k] = "not closed"

        def close():
            deadline = time.monotonic() + 5
            while calls[0] < 60 and time.monotonic() < deadline:
                time.sleep(0.001)
            tx.close()
            taken, ports = take_numbers(8)
            replacements.extend(taken)
            new_ports.update(ports)

        collector = threading.Thread(target=drain_until,
                                     args=(rx, hotsock.RecvBatch(256, 64), arrived, stop_draining))
        collector.start()
        try:
            run_threads([lambda k=k: send(k) for k in range(6)] + [close])
        finally:
            stop_draining.set()
            collector.join(5)
            for s in replacements:
                s.close()
        assert not collector.is_alive()
        assert endings == [errno.EBADF] * 6
        assert {a[1] for _, a in arrived} <= {source[1]} | new_ports
        assert len(arrived) == sum(counts), f"kernel drops: {hotsock.kernel_drops(rx)}"
        for k in range(6):
            mine = [p for p, _ in arrived if p[4:8] == struct.pack("!I", k)]
            assert len(mine) == counts[k]
            assert all(p == tagged(r, k, struct.unpack("!I", p[8:12])[0]) for p in mine)
    rx.close()


def _sends_through_a_reused_number(cls, trials):
    """In how many of *trials* a send racing a close (four threads sending --
    sendto, and for a hotsock socket send_batch too -- one closing) went out
    through the socket that took the number next: seen as that new socket,
    untouched by anyone, being bound by the kernel."""
    hits = 0
    for _ in range(trials):
        tx = cls(socket.AF_INET, socket.SOCK_DGRAM)
        tx.bind((LOOPBACK, 0))
        stop = threading.Event()

        def send(k):
            while not stop.is_set():
                try:
                    if k % 2 and cls is hotsock.socket:
                        tx.send_batch([b"x"], (LOOPBACK, 9))
                    else:
                        tx.sendto(b"x", (LOOPBACK, 9))      # discard: nobody listens
                except OSError:
                    return

        senders = [threading.Thread(target=send, args=(k,)) for k in range(4)]
        for t in senders:
            t.start()
        time.sleep(0.002)
        number = tx.fileno()
        tx.close()
        new = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)     # the lowest free number
        time.sleep(0.001)
        hits += new.fileno() == number and new.getsockname()[1] != 0
        stop.set()
        for t in senders:
            t.join(5)
        new.close()
    return hits


def test_no_send_reaches_the_socket_that_reused_the_number():
    """A send racing a close reaches the socket that reused the number no more
    often than the stdlib's does (whose window is the few instructions between
    reading sock_fd and entering the kernel)."""
    trials = 50
    stdlib = _sends_through_a_reused_number(socket.socket, trials)
    ours = _sends_through_a_reused_number(hotsock.socket, trials)
    assert ours <= stdlib + 3, f"hotsock {ours}/{trials}, stdlib {stdlib}/{trials}"


def _receives_from_a_reused_number(cls, trials):
    """In how many of *trials* a recvfrom racing a close (four threads polling
    a non-blocking socket, one closing) took a datagram queued on the socket
    that took the number next."""
    hits = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as feeder:
        for _ in range(trials):
            rx = cls(socket.AF_INET, socket.SOCK_DGRAM)
            rx.bind((LOOPBACK, 0))
            rx.setblocking(False)
            stolen = []

            def take():
                while True:
                    try:
                        stolen.append(rx.recvfrom(64)[0])
                    except BlockingIOError:
                        continue
                    except OSError:
                        return

            takers = [threading.Thread(target=take) for _ in range(4)]
            for t in takers:
                t.start()
            time.sleep(0.002)
            number = rx.fileno()
            rx.close()
            new = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)     # the lowest free number
            new.bind((LOOPBACK, 0))
            for _ in range(10):
                feeder.sendto(b"for the new socket", new.getsockname())
            for t in takers:
                t.join(5)
            hits += new.fileno() == number and bool(stolen)
            new.close()
    return hits


def test_no_receive_takes_from_the_socket_that_reused_the_number():
    """A receive racing a close takes a datagram meant for the socket that
    reused the number no more often than the stdlib's does."""
    trials = 50
    stdlib = _receives_from_a_reused_number(socket.socket, trials)
    ours = _receives_from_a_reused_number(hotsock.socket, trials)
    assert ours <= stdlib + 3, f"hotsock {ours}/{trials}, stdlib {stdlib}/{trials}"


# --- one RecvBatch, many threads --------------------------------------------------------

def test_batch_held_by_one_thread_refuses_the_others():
    """While one thread waits in recv_batch, seven others try the same batch on
    their own sockets, each with a datagram queued: every attempt is refused
    with the documented RuntimeError and takes nothing; then the waiting
    thread gets its datagram, and the others theirs."""
    attempts = 300
    batch = hotsock.RecvBatch(8, 64)
    owner_rx = receiver(timeout=3.0)
    others = [receiver(timeout=2.0) for _ in range(THREADS - 1)]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        for j, s in enumerate(others):
            tx.sendto(b"queued for %d" % j, s.getsockname())
        for rnd in range(3):
            owner_got = []

            def owner():
                while True:
                    try:
                        owner_got.append(hotsock.recv_batch(owner_rx, batch))
                        owner_got.append(bytes(batch[0]))
                        return
                    except RuntimeError as exc:    # the main thread's probe had it
                        assert str(exc) == BUSY

            thread = threading.Thread(target=owner)
            thread.start()
            # Until the owner holds the batch: a probe on an empty socket
            # (BlockingIOError) is refused once it does.
            probe = receiver(timeout=0.0)
            deadline = time.monotonic() + 5
            while True:
                assert time.monotonic() < deadline
                try:
                    hotsock.recv_batch(probe, batch)
                except BlockingIOError:
                    time.sleep(0.001)
                    continue
                except RuntimeError as exc:
                    assert str(exc) == BUSY
                    break
            probe.close()
            refused = [0] * len(others)

            def intruder(j):
                for _ in range(attempts):
                    with pytest.raises(RuntimeError) as info:
                        hotsock.recv_batch(others[j], batch)
                    assert str(info.value) == BUSY
                    refused[j] += 1

            run_threads([lambda j=j: intruder(j) for j in range(len(others))])
            assert refused == [attempts] * len(others)
            assert thread.is_alive() and owner_got == []
            tx.sendto(b"for the owner %d" % rnd, owner_rx.getsockname())
            thread.join(5)
            assert owner_got == [1, b"for the owner %d" % rnd]
        for j, s in enumerate(others):       # nothing was taken by a refused attempt
            assert [p for p, _ in drain(s, 1)] == [b"queued for %d" % j]
    owner_rx.close()
    for s in others:
        s.close()


def test_batch_contended_by_threads_loses_nothing():
    """Eight threads share one batch, each receiving from its own socket; a
    ninth reads the batch all the while.  Each attempt receives or is refused
    with the documented RuntimeError; each thread's counts add up to exactly
    what its socket was sent."""
    per_socket = 400
    batch = hotsock.RecvBatch(16, 64)
    sockets = [receiver(timeout=1.0) for _ in range(THREADS)]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        for j, s in enumerate(sockets):
            for i in range(per_socket):
                tx.sendto(tagged(j, i), s.getsockname())
    received = [0] * THREADS
    refusals = [0] * THREADS
    done = threading.Event()

    def take(j):
        while received[j] < per_socket:
            try:
                received[j] += hotsock.recv_batch(sockets[j], batch)
            except RuntimeError as exc:
                assert str(exc) == BUSY
                refusals[j] += 1

    def read():
        # The contents belong to whichever receive filled the batch last;
        # reading them while another thread receives must still be safe.
        while not done.is_set():
            for i in range(batch.count):
                try:
                    assert len(batch[i]) <= 64
                    assert batch.lengths[i] <= 64
                    batch.address(i)
                except IndexError:
                    break

    reader = threading.Thread(target=read)
    reader.start()
    try:
        run_threads([lambda j=j: take(j) for j in range(THREADS)])
    finally:
        done.set()
        reader.join(5)
    assert received == [per_socket] * THREADS
    for s in sockets:
        s.setblocking(False)
        with pytest.raises(BlockingIOError):
            hotsock.recv_batch(s, hotsock.RecvBatch(1, 64))
        s.close()
    assert not reader.is_alive()


# --- errors the recvmsg fallback defers, under threads -------------------------------

DEFERRED_SCRIPT = textwrap.dedent("""
    import os, socket, struct, sys, threading, time
    import hotsock

    assert hotsock.features()["batch_path"] == "recvmsg/sendmsg loop"
    sys.setswitchinterval(2e-5)
    ROUNDS, THREADS = int(sys.argv[1]), int(sys.argv[2])
    KINDS = ("stdlib", "hotsock", "fd")
    failures = []
    barrier = threading.Barrier(THREADS)

    def reset_connection(kind):
        # Ten bytes, then a reset: the recvmsg loop takes the bytes one by
        # one and meets ECONNRESET after them, which it defers.
        with socket.create_server(("127.0.0.1", 0)) as server:
            client = socket.create_connection(server.getsockname())
            conn, _ = server.accept()
        client.sendall(b"0123456789")
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()
        time.sleep(0.02)
        if kind == "hotsock":
            conn = hotsock.socket(fileno=conn.detach())
        if kind != "fd":
            conn.settimeout(2)  # a bare descriptor stays blocking: its own flag applies
        return conn

    def worker(t):
        try:
            work(t)
        except BaseException as exc:
            failures.append((t, "raised", repr(exc)))

    def work(t):
        barrier.wait()
        batch = hotsock.RecvBatch(16, 1)
        for r in range(ROUNDS):
            kind = KINDS[(t + r) % 3]
            conn = reset_connection(kind)
            handle = conn.fileno() if kind == "fd" else conn
            n = hotsock.recv_batch(handle, batch)
            if n != 10 or bytes(batch[0]) != b"0":
                failures.append((t, r, kind, "first call", n))
            if r % 2 == 0:
                # The error, on the next call on the same socket.
                try:
                    hotsock.recv_batch(handle, batch)
                except ConnectionResetError:
                    pass
                else:
                    failures.append((t, r, kind, "deferred error lost"))
            conn.close()        # odd rounds: closed with the error still pending
            # A new socket -- as often as not on a number another thread's
            # connection just had -- never gets anyone's pending error.
            new = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            if kind == "hotsock":
                new = hotsock.socket(fileno=new.detach())
            new.bind(("127.0.0.1", 0))
            if kind != "fd":
                new.settimeout(2)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
                tx.sendto(b"fresh", new.getsockname())
            try:
                n = hotsock.recv_batch(new.fileno() if kind == "fd" else new, batch)
                if n != 1 or bytes(batch[0]) != b"f":
                    failures.append((t, r, kind, "fresh socket", n))
            except OSError as exc:
                failures.append((t, r, kind, "fresh socket raised", repr(exc)))
            new.close()

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    assert not any(th.is_alive() for th in threads), "a worker hung"
    print(failures if failures else "ok %d" % (ROUNDS * THREADS))
""")


def test_deferred_errors_stay_with_their_sockets_under_threads():
    """The recvmsg fallback (HOTSOCK_NO_MMSG=1) defers an error met after some
    datagrams to the next call.  Eight threads meet such errors on stdlib
    sockets, hotsock sockets and bare descriptors at once, closing some with
    the error pending, opening new sockets on the freed numbers: each error
    reaches the next call on its own socket, and never a new one."""
    rounds = 12
    env = dict(ENV, HOTSOCK_NO_MMSG="1")
    result = subprocess.run([sys.executable, "-c", DEFERRED_SCRIPT, str(rounds), str(THREADS)],
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"ok {rounds * THREADS}"
