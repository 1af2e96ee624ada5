"""``hotsock bench``: datagram throughput against the stdlib and plain C.

Every figure is a ratio measured in one run on one machine, never an
absolute claim.  The contenders take turns on the same socket in small
chunks (1024 datagrams by default), round after round, so that all of them
meet the same conditions -- queue depth, memory state, whatever else the
machine is doing -- and each contender's rate is its median chunk.

* Receive: the queue is filled with one chunk per contender (plus a margin)
  before a round, by a C sendmmsg loop, so no racing sender adds noise;
  then each contender drains its chunk.
* Send: each contender sends its chunk to a receiver whose queue is emptied
  (untimed) after every round.

The C references are plain C loops compiled into hotsock
(``hotsock._reference``), so this runs from a wheel on a machine without a
compiler.  Traffic stays on loopback.
"""
import argparse
import json
import socket as _stdlib
import statistics
import sys
import time

from . import _reference
from ._batch import RecvBatch
from ._socket_class import socket

BATCH = 64          # datagrams per recvmmsg/sendmmsg call, for hotsock and C alike
RECV_SIZE = 2048    # receive buffer per datagram
SO_RCVBUFFORCE = getattr(_stdlib, "SO_RCVBUFFORCE", 33)
# SO_RCVTIMEO on the receiver: a blocking call that finds the queue empty
# (datagrams lost while filling) fails after this instead of hanging.
SAFETY_TIMEOUT_S = 2


class QueueShort(Exception):
    """The queue held fewer datagrams than were sent to it."""


class Rig:
    """A receiver and a sender on loopback, and ways to fill and empty the queue."""

    def __init__(self, size):
        self.size = size
        self.rx = socket(_stdlib.AF_INET, _stdlib.SOCK_DGRAM)
        self.rx.bind(("127.0.0.1", 0))
        try:
            self.rx.setsockopt(_stdlib.SOL_SOCKET, SO_RCVBUFFORCE, 1 << 28)
        except OSError:     # not root: the largest the sysctl allows
            self.rx.setsockopt(_stdlib.SOL_SOCKET, _stdlib.SO_RCVBUF, 1 << 28)
        self.rx.setsockopt(_stdlib.SOL_SOCKET, _stdlib.SO_RCVTIMEO,
                           SAFETY_TIMEOUT_S.to_bytes(8, sys.byteorder) + bytes(8))
        self.tx = socket(_stdlib.AF_INET, _stdlib.SOCK_DGRAM)
        self.address = self.rx.getsockname()
        # stdlib socket objects on duplicates of the same two sockets
        self.std_rx = _stdlib.fromfd(self.rx.fileno(), _stdlib.AF_INET, _stdlib.SOCK_DGRAM)
        self.std_tx = _stdlib.fromfd(self.tx.fileno(), _stdlib.AF_INET, _stdlib.SOCK_DGRAM)
        self._drain_batch = RecvBatch(1024, RECV_SIZE)

    def close(self):
        for s in (self.rx, self.tx, self.std_rx, self.std_tx):
            s.close()

    def fill(self, count):
        _reference.sendmmsg_loop(self.tx, self.address, count, BATCH, self.size)

    def drain(self):
        """Empty the queue; return how many datagrams it held."""
        held = 0
        while True:
            try:
                held += self.rx.recv_batch(self._drain_batch, _stdlib.MSG_DONTWAIT)
            except BlockingIOError:
                return held

    def capacity(self, wanted):
        """How many datagrams the queue holds whole, up to *wanted*."""
        self.drain()
        self.fill(wanted)
        return self.drain()


# --- the contenders: each handles *n* datagrams -------------------------------

# Per-datagram contenders call the method as user code would: bound to a
# local name, with plain positional arguments (no *args unpacking, which
# would add the same constant cost to every contender and blur the ratios).

def _per_call1(method, a):
    def run(n):
        for _ in range(n):
            method(a)
    return run


def _per_call2(method, a, b):
    def run(n):
        for _ in range(n):
            method(a, b)
    return run


def receive_contenders(rig):
    std, hot = rig.std_rx, rig.rx
    buf = bytearray(RECV_SIZE)
    batch = RecvBatch(BATCH, RECV_SIZE)

    def hotsock_recv_batch(n):
        recv_batch = hot.recv_batch
        while n > 0:
            n -= recv_batch(batch)

    return {
        "stdlib recvfrom": _per_call1(std.recvfrom, RECV_SIZE),
        "stdlib recv_into": _per_call1(std.recv_into, buf),
        "hotsock recvfrom": _per_call1(hot.recvfrom, RECV_SIZE),
        "hotsock recv_into": _per_call1(hot.recv_into, buf),
        "hotsock recv_batch": hotsock_recv_batch,
        "C recvfrom loop": lambda n: _reference.recvfrom_loop(hot, n, RECV_SIZE),
        "C recvmmsg loop": lambda n: _reference.recvmmsg_loop(hot, n, BATCH, RECV_SIZE),
    }


def send_contenders(rig):
    payload = bytes(rig.size)
    payloads = [payload] * BATCH
    address = rig.address
    std, hot = rig.std_tx, rig.tx

    def hotsock_send_batch(n):
        send_batch = hot.send_batch
        while n > 0:
            n -= send_batch(payloads if n >= BATCH else payloads[:n], address)

    return {
        "stdlib sendto": _per_call2(std.sendto, payload, address),
        "hotsock sendto": _per_call2(hot.sendto, payload, address),
        "hotsock send_batch": hotsock_send_batch,
        "C sendto loop": lambda n: _reference.sendto_loop(hot, address, n, rig.size),
        "C sendmmsg loop": lambda n: _reference.sendmmsg_loop(hot, address, n, BATCH, rig.size),
    }


# --- measuring ---------------------------------------------------------------

def _rotate(names, r):
    k = r % len(names)
    return names[k:] + names[:k]


def measure_receive(rig, contenders, chunk, rounds):
    names = list(contenders)
    times = {name: [] for name in names}
    margin = BATCH
    for r in range(rounds):
        rig.fill(chunk * len(names) + margin)
        for name in _rotate(names, r):
            start = time.perf_counter()
            try:
                contenders[name](chunk)
            except OSError as exc:      # SO_RCVTIMEO: the queue ran dry
                raise QueueShort(f"{name}: {exc}") from exc
            times[name].append(time.perf_counter() - start)
        left = rig.drain()
        if left != margin:
            raise QueueShort(f"{margin} datagrams should be left, found {left}")
    return times


def measure_send(rig, contenders, chunk, rounds):
    names = list(contenders)
    times = {name: [] for name in names}
    rig.drain()
    for r in range(rounds):
        for name in _rotate(names, r):
            start = time.perf_counter()
            contenders[name](chunk)
            times[name].append(time.perf_counter() - start)
        arrived = rig.drain()
        if arrived != chunk * len(names):
            raise QueueShort(f"{arrived} of {chunk * len(names)} datagrams arrived")
    return times


TARGETS = [
    # (numerator, denominator, minimum ratio) from the project's issues
    ("hotsock recv_batch", "C recvmmsg loop", 0.95),
    ("hotsock recv_batch", "stdlib recvfrom", 2.2),
    ("hotsock recvfrom", "stdlib recvfrom", 1.15),
    ("hotsock recv_into", "stdlib recv_into", 1.0),
    ("hotsock sendto", "stdlib sendto", 1.1),
    ("hotsock send_batch", "C sendmmsg loop", 0.95),
]


def run(size=64, chunk=1024, rounds=30, parts=("recv", "send")):
    """Run the benchmark; return a report dict (see ``--json``)."""
    rig = Rig(size)
    try:
        held = rig.capacity(chunk * 8 + BATCH)
        if held < chunk * 8 + BATCH:
            # A small receive buffer (not root, low rmem_max): smaller chunks.
            chunk = max(BATCH, (held * 3 // 4 // 8) // BATCH * BATCH)
        times = {}
        if "recv" in parts:
            times.update(measure_receive(rig, receive_contenders(rig), chunk, rounds))
        if "send" in parts:
            times.update(measure_send(rig, send_contenders(rig), chunk, rounds))
    finally:
        rig.close()
    rates = {name: chunk / statistics.median(values) for name, values in times.items()}
    ratios = [{"what": f"{a} / {b}", "ratio": rates[a] / rates[b], "target": t}
              for a, b, t in TARGETS if a in rates and b in rates]
    return {"size": size, "chunk": chunk, "rounds": rounds, "batch": BATCH,
            "recv_bufsize": RECV_SIZE, "rates": rates, "ratios": ratios}


def format_report(report):
    lines = [f"hotsock bench: {report['size']}-byte datagrams on loopback; "
             f"{report['rounds']} rounds of {report['chunk']} datagrams per contender, "
             f"median round; batches of {report['batch']}, "
             f"receive buffers of {report['recv_bufsize']} bytes", ""]
    rates = report["rates"]
    for base, c_ref in (("stdlib recvfrom", "C recvmmsg loop"),
                        ("stdlib sendto", "C sendmmsg loop")):
        if base not in rates:
            continue
        kind = "recv" if base.endswith("recvfrom") else "send"
        names = [n for n in rates if ("rec" in n) == (kind == "recv")]
        lines.append(f"{'':22}{'M dgrams/s':>11}{'vs ' + base:>22}{'vs ' + c_ref:>22}")
        for name in names:
            lines.append(f"{name:22}{rates[name] / 1e6:11.3f}"
                         f"{rates[name] / rates[base]:21.2f}x"
                         f"{rates[name] / rates[c_ref]:21.2f}x")
        lines.append("")
    lines.append("targets:")
    for item in report["ratios"]:
        mark = "met" if item["ratio"] >= item["target"] else "MISSED"
        lines.append(f"  {item['what']:42} {item['ratio']:6.2f}  (>= {item['target']})  {mark}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="hotsock bench",
        description="Datagram throughput of hotsock against the stdlib and plain C loops, "
                    "as ratios measured in one run on loopback.")
    parser.add_argument("--size", type=int, default=64, help="payload bytes (default 64)")
    parser.add_argument("--chunk", type=int, default=1024,
                        help="datagrams per contender per round (default 1024)")
    parser.add_argument("--rounds", type=int, default=30, help="rounds (default 30)")
    parser.add_argument("--only", choices=("recv", "send"), help="run one half only")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    if not 0 <= args.size <= RECV_SIZE:
        parser.error(f"--size must be between 0 and {RECV_SIZE}")
    if args.chunk < BATCH or args.chunk % BATCH or not 1 <= args.rounds <= 10000:
        parser.error(f"--chunk must be a multiple of {BATCH}; --rounds 1..10000")
    parts = (args.only,) if args.only else ("recv", "send")
    try:
        report = run(args.size, args.chunk, args.rounds, parts)
    except QueueShort as exc:
        print(f"hotsock bench: datagrams were lost on loopback ({exc}); "
              "try a smaller --chunk", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
