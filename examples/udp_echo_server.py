#!/usr/bin/env python3
"""UDP echo server: replies to every datagram with the same bytes.

The first line printed is "listening on HOST PORT", so a client (or a test)
started with --port 0 can learn the port the kernel chose.

    python examples/udp_echo_server.py --port 9000 --count 5
    python examples/udp_echo_client.py --port 9000 --count 5

Each reply is sent with MSG_CONFIRM (Linux): the reply goes to the host that
has just sent us a datagram, so we can tell the neighbour layer that its
link-layer address is confirmed and spare an ARP re-probe.  Only use it for
such direct replies; where the platform has no MSG_CONFIRM we send with 0.
"""
import argparse
import sys

import hotsock

# MSG_CONFIRM is Linux-only; 0 keeps the program working elsewhere.
MSG_CONFIRM = getattr(hotsock, "MSG_CONFIRM", 0)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (127.0.0.1, ::1, 0.0.0.0, ...; default %(default)s)")
    p.add_argument("--port", type=int, default=0,
                   help="UDP port to bind; 0 lets the kernel choose (default %(default)s)")
    p.add_argument("--count", type=int, default=10,
                   help="stop after echoing N datagrams; 0 = run until interrupted (default %(default)s)")
    p.add_argument("--idle-timeout", type=float, default=30.0,
                   help="stop when no datagram arrives for this many seconds; 0 = wait forever "
                        "(default %(default)s)")
    p.add_argument("--batch", action="store_true",
                   help="receive with recv_batch (recvmmsg) and reply with send_batch (sendmmsg)")
    p.add_argument("--quiet", action="store_true", help="do not print every datagram")
    return p.parse_args(argv)


def serve_one_by_one(sock, args):
    """The classic loop: one recvfrom, one sendto per datagram."""
    echoed = 0
    while args.count == 0 or echoed < args.count:
        data, peer = sock.recvfrom(65535)
        sock.sendto(data, MSG_CONFIRM, peer)
        echoed += 1
        if not args.quiet:
            print(f"echoed {len(data)} bytes to {peer[0]} {peer[1]}: {data.decode(errors='replace')!r}")
    return echoed


def serve_in_batches(sock, args):
    """Same service, up to 32 datagrams per system call in each direction."""
    echoed = 0
    # Allocated once and reused: room for 32 datagrams of the largest UDP payload.
    batch = hotsock.RecvBatch(count=32, size=65535)
    while args.count == 0 or echoed < args.count:
        if args.count and args.count - echoed < batch.count:
            # Never take more than we still have to answer, so --count is exact.
            batch = hotsock.RecvBatch(count=args.count - echoed, size=65535)
        n = sock.recv_batch(batch)
        payloads = [bytes(batch[i]) for i in range(n)]
        peers = [batch.address(i) for i in range(n)]
        sent = sock.send_batch(payloads, addresses=peers, flags=MSG_CONFIRM)
        if not args.quiet:
            print(f"batch of {n}: one recvmmsg, one sendmmsg")
            for data, peer in zip(payloads[:sent], peers):
                print(f"echoed {len(data)} bytes to {peer[0]} {peer[1]}: "
                      f"{data.decode(errors='replace')!r}")
        if sent < n:
            # UDP may drop: a reply the kernel would not take is simply not sent.
            print(f"{n - sent} replies could not be sent")
        echoed += n
    return echoed


def main(argv=None):
    args = parse_args(argv)
    family = hotsock.AF_INET6 if ":" in args.host else hotsock.AF_INET
    with hotsock.socket(family, hotsock.SOCK_DGRAM) as sock:
        # Lets a restarted server take the same port straight away.
        sock.set_reuse_address(True)
        sock.bind((args.host, args.port))
        host, port = sock.getsockname()[:2]
        print(f"listening on {host} {port}", flush=True)
        # An idle timeout keeps the run bounded even if clients never come.
        sock.settimeout(args.idle_timeout or None)
        serve = serve_in_batches if args.batch else serve_one_by_one
        # hotsock.timeout: TimeoutError on Python 3.10+, socket.timeout on 3.9.
        try:
            echoed = serve(sock, args)
        except hotsock.timeout:
            print(f"no datagram for {args.idle_timeout:g} s, stopping")
            return 1
        except KeyboardInterrupt:
            print("interrupted")
            return 130
    print(f"done: echoed {echoed} datagrams")
    return 0


if __name__ == "__main__":
    sys.exit(main())
