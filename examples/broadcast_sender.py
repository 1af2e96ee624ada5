#!/usr/bin/env python3
"""UDP broadcast sender: one datagram to every host of a subnet.

    python examples/broadcast_receiver.py --port 9097 --count 2
    python examples/broadcast_sender.py --port 9097 hello world
    python examples/broadcast_sender.py --port 9097 --without-permission hello

Sending to a broadcast address needs SO_BROADCAST on the socket: it is an
explicit "yes, I mean everybody", and without it the kernel refuses the
send with EACCES, which Python raises as PermissionError.
--without-permission leaves the option off to show exactly that.

The default address, 127.255.255.255, is the broadcast address of the
loopback network 127.0.0.0/8, so the demonstration stays on this host; on a
LAN use its broadcast address (e.g. 192.168.1.255, see `ip addr`).
"""
import argparse
import sys

import hotsock


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("messages", nargs="*", default=["hello, everybody"],
                   help="messages, one datagram each (default: %(default)s)")
    p.add_argument("--address", default="127.255.255.255",
                   help="broadcast address to send to (default %(default)s)")
    p.add_argument("--port", type=int, required=True, help="UDP port of the receivers")
    p.add_argument("--without-permission", action="store_true",
                   help="do not set SO_BROADCAST, to show the PermissionError the send gets then")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    destination = (args.address, args.port)
    with hotsock.socket(hotsock.AF_INET, hotsock.SOCK_DGRAM) as sock:
        if not args.without_permission:
            sock.set_broadcast(True)
        print(f"SO_BROADCAST is {'on' if sock.get_broadcast() else 'off'}")
        for text in args.messages:
            try:
                sock.sendto(text.encode(), destination)
            except PermissionError as exc:
                # The expected outcome without SO_BROADCAST: the demonstration worked.
                print(f"sendto {args.address} {args.port} failed: PermissionError: {exc}")
                if args.without_permission:
                    print("as expected: broadcasting needs set_broadcast(True) (SO_BROADCAST)")
                    return 0
                return 1
            print(f"broadcast to {args.address} {args.port}: {text}")
    if args.without_permission:
        print(f"note: the kernel accepted a send to {args.address} without SO_BROADCAST "
              "(it does not treat this address as a broadcast address)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
