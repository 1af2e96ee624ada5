#!/usr/bin/env python3
"""UDP has no flow control: a fast sender overruns a slow receiver, silently.

    python examples/flow_control.py
    python examples/flow_control.py --buffers 4K,64K,1M --count 2000 --size 1400 --json
    python examples/flow_control.py --reader slow --delay 0.0005

For each receive buffer size (SO_RCVBUF, set with set_recv_buffer) a fresh
receiving socket on 127.0.0.1 is flooded with --count datagrams.  Nothing
tells the sender to slow down: what does not fit in the receive buffer is
thrown away by the kernel, and neither side gets an error.

The drops are not invisible, though: with SO_RXQ_OVFL enabled (Linux), every
datagram carries, as ancillary data, the socket's cumulative drop counter at
the time it was queued.  A datagram queued before the overflow cannot know
about the drops after it, so once the flood is over and the queue is drained
one more "marker" datagram is sent; it is queued into the empty buffer and
its counter is the total.  Then sent == received + dropped must hold, and
is checked.

  --reader paused  the receiver does not read at all during the flood
  --reader slow    a reader thread reads all along, pausing --delay s per datagram
"""
import argparse
import json
import sys
import threading
import time

import hotsock

# Linux value; the socket module does not export it on every version.
SO_RXQ_OVFL = getattr(hotsock, "SO_RXQ_OVFL", 40 if sys.platform.startswith("linux") else None)
MARKER = b"--end of flood--"


def size_arg(text):
    """4096, 4K, 64k or 1M -> bytes."""
    units = {"K": 1 << 10, "M": 1 << 20}
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    if text and text[-1] in units:
        return int(text[:-1]) * units[text[-1]]
    return int(text)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n".join(__doc__.splitlines()[1:]))
    p.add_argument("--buffers", default="4K,64K,1M",
                   help="comma-separated SO_RCVBUF sizes to try (default %(default)s)")
    p.add_argument("--count", type=int, default=2000, help="datagrams per flood (default %(default)s)")
    p.add_argument("--size", type=int, default=1400, help="bytes per datagram (default %(default)s)")
    p.add_argument("--reader", choices=["paused", "slow"], default="paused",
                   help="how the receiver behaves during the flood (default %(default)s)")
    p.add_argument("--delay", type=float, default=0.0005,
                   help="slow reader: pause after each datagram, in seconds (default %(default)s)")
    p.add_argument("--force", action="store_true",
                   help="use SO_RCVBUFFORCE (needs CAP_NET_ADMIN) to pass net.core.rmem_max")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    args = p.parse_args(argv)
    try:
        args.buffers = [size_arg(part) for part in args.buffers.split(",") if part.strip()]
    except ValueError:
        p.error(f"--buffers: sizes like 4096, 4K or 1M expected, got {args.buffers!r}")
    if args.size < len(MARKER) + 1:
        p.error(f"--size must be more than {len(MARKER)} bytes (to tell data from the marker)")
    return args


def drop_counter(ancdata):
    """The uint32 SO_RXQ_OVFL counter from recvmsg's ancillary data (absent means 0)."""
    for level, kind, data in ancdata:
        if level == hotsock.SOL_SOCKET and kind == SO_RXQ_OVFL:
            return int.from_bytes(data[:4], sys.byteorder)
    return 0


def flood(tx, count, size):
    """Send count datagrams as fast as the kernel takes them; returns how many it took."""
    payload = bytes(size)
    sent = 0
    while sent < count:
        # send_batch: up to 1024 datagrams per sendmmsg, to make the sender really fast.
        sent += tx.send_batch([payload] * min(1024, count - sent))
    return sent


def drain_now(rx, size):
    """Read everything queued right now, without waiting; returns the number of datagrams."""
    # recvmmsg, 256 datagrams per call: draining must not be what limits the experiment.
    batch = hotsock.RecvBatch(count=256, size=size)
    got = 0
    rx.setblocking(False)
    try:
        while True:
            got += rx.recv_batch(batch)
    except BlockingIOError:
        return got
    finally:
        rx.setblocking(True)


def slow_reader(rx, delay, flood_over, counts):
    """Reads one datagram at a time, pausing after each, until the flood is over and read."""
    buffer = bytearray(65535)
    rx.settimeout(0.1)
    while True:
        # hotsock.timeout: TimeoutError on Python 3.10+, socket.timeout on 3.9.
        try:
            rx.recv_into(buffer)
        except hotsock.timeout:
            if flood_over.is_set():
                return
            continue
        counts["received"] += 1
        time.sleep(delay)


def run_one(requested, args):
    with hotsock.socket(hotsock.AF_INET, hotsock.SOCK_DGRAM) as rx, \
            hotsock.socket(hotsock.AF_INET, hotsock.SOCK_DGRAM) as tx:
        rx.bind(("127.0.0.1", 0))
        granted = rx.set_recv_buffer(requested, force=args.force)
        # Ask the kernel to attach the drop counter to every datagram we receive.
        rx.setsockopt(hotsock.SOL_SOCKET, SO_RXQ_OVFL, 1)
        tx.connect(rx.getsockname())

        counts = {"received": 0}
        start = time.perf_counter()
        if args.reader == "slow":
            flood_over = threading.Event()
            reader = threading.Thread(target=slow_reader, args=(rx, args.delay, flood_over, counts))
            reader.start()
            sent = flood(tx, args.count, args.size)
            flood_over.set()
            reader.join()
        else:
            sent = flood(tx, args.count, args.size)
            counts["received"] += drain_now(rx, args.size)
        elapsed = time.perf_counter() - start

        # The queue is empty now, so the marker finds room; its counter is the total.
        tx.send(MARKER)
        rx.settimeout(2.0)
        while True:
            data, ancdata, _flags, _addr = rx.recvmsg(65535, hotsock.CMSG_SPACE(4))
            if data == MARKER:
                dropped = drop_counter(ancdata)
                break
            counts["received"] += 1     # a straggler queued after the drain: still data
    received = counts["received"]
    return {
        "requested_rcvbuf": requested,
        "granted_rcvbuf": granted,
        "sent": sent,
        "received": received,
        "dropped": dropped,
        "accounted": sent == received + dropped,
        "seconds": round(elapsed, 4),
    }


def main(argv=None):
    args = parse_args(argv)
    if SO_RXQ_OVFL is None:
        print("SO_RXQ_OVFL (the per-socket drop counter) is Linux-only; nothing to show here")
        return 2
    results = [run_one(size, args) for size in args.buffers]
    all_accounted = all(r["accounted"] for r in results)
    if args.json:
        print(json.dumps({"count": args.count, "size": args.size, "reader": args.reader,
                          "results": results, "all_accounted": all_accounted}, indent=2))
        return 0 if all_accounted else 1

    print(f"{args.count} datagrams of {args.size} bytes per flood on 127.0.0.1, reader {args.reader}")
    print(f"{'SO_RCVBUF asked':>15} {'granted':>9} {'sent':>7} {'received':>9} {'dropped':>8}"
          f"  {'lost':>6}  sent == received + dropped")
    for r in results:
        lost = 100.0 * r["dropped"] / r["sent"] if r["sent"] else 0.0
        check = "yes" if r["accounted"] else f"NO ({r['sent'] - r['received'] - r['dropped']:+d})"
        print(f"{r['requested_rcvbuf']:>15} {r['granted_rcvbuf']:>9} {r['sent']:>7} "
              f"{r['received']:>9} {r['dropped']:>8}  {lost:5.1f}%  {check}")
    print("every datagram is accounted for: received or counted as dropped by the kernel"
          if all_accounted else "some datagrams are unaccounted for (dropped before the socket?)")
    print("(Linux doubles the SO_RCVBUF request for its bookkeeping, and caps it at "
          "net.core.rmem_max unless --force)")
    return 0 if all_accounted else 1


if __name__ == "__main__":
    sys.exit(main())
