#!/usr/bin/env python3
"""Connected UDP sockets receive ICMP errors; unconnected ones do not.

    python examples/connected_udp_icmp.py
    python examples/connected_udp_icmp.py --host ::1

A datagram sent to a port where nothing listens makes the destination host
answer with ICMP "port unreachable".  sendto() has already returned by then,
so the error is asynchronous: the kernel can only report it on a later call.
It does so only for a *connected* UDP socket (the error can then be tied to
the one peer it talks to): the next recv() raises ConnectionRefusedError
(ECONNREFUSED).  An unconnected socket hears nothing and its recvfrom()
just times out.  The pending error can also be read, and cleared, with
getsockopt SO_ERROR: hotsock's get_error().
"""
import argparse
import errno
import os
import select
import sys

import hotsock


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n".join(__doc__.splitlines()[1:]))
    p.add_argument("--host", default="127.0.0.1", help="destination host (default %(default)s)")
    p.add_argument("--port", type=int, default=0,
                   help="a UDP port with no listener; 0 = find a free one (default %(default)s)")
    p.add_argument("--wait", type=float, default=1.0,
                   help="seconds to wait for a reply or an error (default %(default)s)")
    return p.parse_args(argv)


def closed_port(family, host):
    """A port nobody listens on: bind to get a free one, then release it."""
    with hotsock.socket(family, hotsock.SOCK_DGRAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def describe(code):
    return f"{code} ({errno.errorcode.get(code, '?')}: {os.strerror(code)})" if code else "0 (no error)"


def main(argv=None):
    args = parse_args(argv)
    family = hotsock.AF_INET6 if ":" in args.host else hotsock.AF_INET
    port = args.port or closed_port(family, args.host)
    target = (args.host, port)
    print(f"target: {args.host} {port} (no listener)")

    print("1. unconnected socket: sendto(), then recvfrom()")
    with hotsock.socket(family, hotsock.SOCK_DGRAM) as sock:
        sock.sendto(b"ping", target)
        sock.settimeout(args.wait)
        # hotsock.timeout: TimeoutError on Python 3.10+, socket.timeout on 3.9.
        try:
            data, peer = sock.recvfrom(2048)
            print(f"   unexpected reply from {peer}: {data!r}")
        except hotsock.timeout:
            print(f"   recvfrom: TimeoutError after {args.wait:g} s: the ICMP error was not reported")
        except ConnectionRefusedError as exc:
            print(f"   recvfrom: ConnectionRefusedError: {exc} (this system reports it anyway)")
        print(f"   get_error() -> {describe(sock.get_error())}")

    print("2. connected socket: connect(), send(), then recv()")
    with hotsock.socket(family, hotsock.SOCK_DGRAM) as sock:
        # connect() on UDP sends nothing: it only fixes the peer, which lets ICMP errors reach us.
        sock.connect(target)
        sock.send(b"ping")
        sock.settimeout(args.wait)
        refused = False
        try:
            data = sock.recv(2048)
            print(f"   unexpected reply: {data!r}")
        except ConnectionRefusedError as exc:
            refused = True
            print(f"   recv: ConnectionRefusedError: {exc}")
        except hotsock.timeout:
            print(f"   recv: TimeoutError after {args.wait:g} s (no ICMP error came back)")

        print("3. connected socket: send() again, wait, then read SO_ERROR with get_error()")
        sock.send(b"ping again")
        # A pending socket error makes the socket readable, so select() tells when it is there.
        select.select([sock], [], [], args.wait)
        first = sock.get_error()
        second = sock.get_error()
        print(f"   get_error() -> {describe(first)}")
        print(f"   get_error() again -> {describe(second)}  (reading SO_ERROR cleared it)")
        try:
            sock.recv(2048)
        except hotsock.timeout:
            print("   recv now: TimeoutError: the error was consumed by get_error()")
        except ConnectionRefusedError as exc:
            print(f"   recv now: ConnectionRefusedError: {exc}")
    return 0 if refused and first == errno.ECONNREFUSED else 1


if __name__ == "__main__":
    sys.exit(main())
