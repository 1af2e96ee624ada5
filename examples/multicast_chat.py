#!/usr/bin/env python3
"""A tiny chat over IP multicast: `send` lines to a group, `receive` them.

    python examples/multicast_chat.py receive --group 239.1.2.3 --port 5007 --count 3
    python examples/multicast_chat.py send --group 239.1.2.3 --port 5007 --name ann hi "how are you"
    echo hello | python examples/multicast_chat.py send --port 5007 --name bob

On one machine without a multicast route, add --interface 127.0.0.1 on both
sides (the loopback interface carries the group then).  The receiver prints
"joined GROUP port PORT ..." first; with --port 0 that is the port the
kernel chose, for the senders to use.

Options, and the socket option each one sets (hotsock's typed methods build
the C structures, no struct.pack):
  --interface  IP_MULTICAST_IF on the sender, the interface of the join on the receiver
  --ttl        IP_MULTICAST_TTL: 0 = this host only, 1 = this link (default), more = routed
  --no-loop    IP_MULTICAST_LOOP off: receivers on the sending host do not get our lines
               (Linux: not when sending on the loopback interface itself, whose traffic all
               comes back in anyway)
  --source     receiver only: source-specific join (IP_ADD_SOURCE_MEMBERSHIP), accept the
               group's traffic only from this sender address
  --bind       sender only: the local address to send from (the source receivers filter on)
"""
import argparse
import ipaddress
import json
import sys
import time

import hotsock


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n".join(__doc__.splitlines()[1:]))
    p.add_argument("mode", choices=["send", "receive"])
    p.add_argument("lines", nargs="*", help="send: lines to send (default: standard input)")
    p.add_argument("--group", default="239.1.2.3",
                   help="multicast group, IPv4 (224.0.0.0/4) or IPv6 (ff00::/8) (default %(default)s)")
    p.add_argument("--port", type=int, default=5007,
                   help="UDP port of the chat; receive accepts 0 = let the kernel choose "
                        "(default %(default)s)")
    p.add_argument("--interface", default=None,
                   help="interface: local IPv4 address, name (eth0) or index; default: the system's choice")
    p.add_argument("--ttl", type=int, default=1, help="send: multicast TTL / hop limit (default %(default)s)")
    p.add_argument("--loop", action=argparse.BooleanOptionalAction, default=True,
                   help="send: deliver to receivers on this host too (default: --loop)")
    p.add_argument("--source", default=None,
                   help="receive: only accept datagrams from this source address (source-specific join)")
    p.add_argument("--bind", default=None, help="send: local address to send from")
    p.add_argument("--name", default="anonymous", help="send: the name shown with your lines")
    p.add_argument("--count", type=int, default=10,
                   help="receive: exit after N lines; 0 = no limit (default %(default)s)")
    p.add_argument("--timeout", type=float, default=30.0,
                   help="receive: exit after this many seconds in all; 0 = no limit (default %(default)s)")
    # Intermixed: the lines may come after options (`send --name ann hi there`).
    return p.parse_intermixed_args(argv)


def family_of(group):
    address = ipaddress.ip_address(group)
    if not address.is_multicast:
        raise SystemExit(f"{group} is not a multicast address")
    return hotsock.AF_INET6 if address.version == 6 else hotsock.AF_INET


def interface_arg(value):
    """An interface index may be given as digits; names and addresses stay strings."""
    return int(value) if value is not None and value.isdigit() else value


def send(args):
    family = family_of(args.group)
    lines = args.lines or [line.rstrip("\n") for line in sys.stdin]
    with hotsock.socket(family, hotsock.SOCK_DGRAM) as sock:
        if args.bind:
            sock.bind((args.bind, 0))
        if args.interface is not None:
            sock.set_multicast_interface(interface_arg(args.interface))
        sock.set_multicast_ttl(args.ttl)
        sock.set_multicast_loop(args.loop)
        print(f"sending to {args.group} port {args.port} as {args.name!r} "
              f"(ttl {sock.get_multicast_ttl()}, loop {'on' if sock.get_multicast_loop() else 'off'})")
        for text in lines:
            # One datagram per line, tagged with the sender's name: JSON keeps it unambiguous.
            message = json.dumps({"name": args.name, "text": text}).encode()
            sock.sendto(message, (args.group, args.port))
            print(f"sent: {text}")
    return 0


def receive(args):
    family = family_of(args.group)
    with hotsock.socket(family, hotsock.SOCK_DGRAM) as sock:
        # Several chat receivers on one host share the port.
        sock.set_reuse_address(True)
        # Binding to the IPv4 group address (not the wildcard) keeps out unicast traffic and
        # other groups that happen to use the same port (Linux).  IPv6 binds the wildcard: a
        # link-scope group could not be bound without a scope id.
        sock.bind((args.group if family == hotsock.AF_INET else "::", args.port))
        port = sock.getsockname()[1]
        sock.join_group(args.group, interface_arg(args.interface), source=args.source)
        where = f" on {args.interface}" if args.interface else ""
        only = f", only from {args.source}" if args.source else ""
        print(f"joined {args.group} port {port}{where}{only}", flush=True)

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
            try:
                message = json.loads(data)
                line = f"{message['name']}: {message['text']}"
            except (ValueError, KeyError, TypeError):
                line = f"(not a chat message from {sender[0]}): {data!r}"
            print(line, flush=True)
            received += 1
        # Leaving is what close() does anyway; done explicitly to show the call.
        sock.leave_group(args.group, interface_arg(args.interface), source=args.source)
    print(f"received {received} lines")
    return 0


def main(argv=None):
    args = parse_args(argv)
    try:
        return send(args) if args.mode == "send" else receive(args)
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        # E.g. ENETUNREACH: no multicast route for the group on the chosen interface (IPv6 on
        # Linux has none on the loopback interface).
        print(f"error: {type(exc).__name__}: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
