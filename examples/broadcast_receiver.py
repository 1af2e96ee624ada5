#!/usr/bin/env python3
"""UDP broadcast receiver: prints the datagrams broadcast to a port.

    python examples/broadcast_receiver.py --port 9097 --count 2 --timeout 30

The first line printed is "listening on ADDRESS PORT" (--port 0 lets the
kernel choose one, for the sender to use).  A receiver needs no option to
get broadcasts, but it must be bound to the wildcard address (or to the
broadcast address itself): a socket bound to one unicast address such as
127.0.0.1 does not see datagrams sent to 127.255.255.255.
"""
import argparse
import sys
import time

import hotsock


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bind", default="0.0.0.0",
                   help="address to bind: the wildcard or the broadcast address (default %(default)s)")
    p.add_argument("--port", type=int, default=9097,
                   help="UDP port; 0 lets the kernel choose (default %(default)s)")
    p.add_argument("--count", type=int, default=5,
                   help="exit after N datagrams; 0 = no limit (default %(default)s)")
    p.add_argument("--timeout", type=float, default=30.0,
                   help="exit after this many seconds in all; 0 = no limit (default %(default)s)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    with hotsock.socket(hotsock.AF_INET, hotsock.SOCK_DGRAM) as sock:
        # Several receivers on one host may listen to the same broadcast port.
        sock.set_reuse_address(True)
        sock.bind((args.bind, args.port))
        address, port = sock.getsockname()
        print(f"listening on {address} {port}", flush=True)
        deadline = time.monotonic() + args.timeout if args.timeout else None
        received = 0
        while args.count == 0 or received < args.count:
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                sock.settimeout(remaining)
            # hotsock.timeout: TimeoutError on Python 3.10+, socket.timeout on 3.9.
            try:
                data, sender = sock.recvfrom(65535)
            except hotsock.timeout:
                break
            received += 1
            print(f"from {sender[0]} {sender[1]}: {data.decode(errors='replace')}", flush=True)
    print(f"received {received} datagrams")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
