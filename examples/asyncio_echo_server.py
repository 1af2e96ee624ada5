#!/usr/bin/env python3
"""UDP echo server in asyncio, with hotsock's batch protocol.

One ``recvmmsg`` per readiness event hands the protocol a whole batch of
datagrams (``datagrams_received``); it answers the batch with one
``send_batch`` (``sendmmsg``) to their senders.  ``--classic`` runs the same
server with a plain ``asyncio.DatagramProtocol`` on hotsock's endpoint, and
``--uvloop`` on uvloop's event loop.  The first line printed is "listening on
HOST PORT".

    python examples/asyncio_echo_server.py --port 9000 --count 5
    python examples/udp_echo_client.py --port 9000 --count 5
"""
import argparse
import asyncio
import sys

import hotsock.asyncio


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    p.add_argument("--port", type=int, default=0,
                   help="UDP port to bind; 0 lets the kernel choose (default %(default)s)")
    p.add_argument("--count", type=int, default=10,
                   help="stop after echoing N datagrams; 0 = until interrupted (default %(default)s)")
    p.add_argument("--idle-timeout", type=float, default=30.0,
                   help="stop when nothing arrives for this many seconds (default %(default)s)")
    p.add_argument("--classic", action="store_true",
                   help="a classic DatagramProtocol (one datagram_received per datagram)")
    p.add_argument("--uvloop", action="store_true", help="run on uvloop's event loop")
    p.add_argument("--quiet", action="store_true", help="do not print every datagram")
    return p.parse_args(argv)


class Echo:
    """The batch protocol: each batch back to its senders in one send_batch."""

    def __init__(self, args, done):
        self.args, self.done, self.echoed = args, done, 0

    def connection_made(self, transport):
        self.transport = transport

    def datagrams_received(self, batch):
        n = len(batch)
        if self.args.count:
            n = min(n, self.args.count - self.echoed)
        # Views into the batch: sent before the next receive reuses them.
        self.transport.send_batch([batch[i] for i in range(n)],
                                  addresses=[batch.address(i) for i in range(n)])
        self.counted(n, batch)

    def counted(self, n, batch=None):
        if not self.args.quiet and batch is not None:
            for i in range(n):
                print(f"{bytes(batch[i])!r} from {batch.address(i)[0]} {batch.address(i)[1]}")
        self.echoed += n
        if self.args.count and self.echoed >= self.args.count and not self.done.done():
            self.done.set_result(None)

    def error_received(self, exc):
        print(f"error: {exc}", file=sys.stderr)

    def connection_lost(self, exc):
        pass


class ClassicEcho(Echo, asyncio.DatagramProtocol):
    """The same server as a classic protocol: one callback per datagram."""

    datagrams_received = None       # (so the endpoint delivers one by one)

    def datagram_received(self, data, addr):
        self.transport.sendto(data, addr)
        if not self.args.quiet:
            print(f"{data!r} from {addr[0]} {addr[1]}")
        self.counted(1)


async def serve(args):
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    protocol = ClassicEcho if args.classic else Echo
    transport, server = await hotsock.asyncio.create_datagram_endpoint(
        lambda: protocol(args, done), local_addr=(args.host, args.port))
    host, port = transport.get_extra_info("sockname")[:2]
    print(f"listening on {host} {port}", flush=True)
    try:
        while not done.done():
            before = server.echoed
            try:
                await asyncio.wait_for(asyncio.shield(done), args.idle_timeout or None)
            except asyncio.TimeoutError:
                if server.echoed == before:
                    print(f"idle for {args.idle_timeout} s", file=sys.stderr)
                    break
    finally:
        transport.close()
    print(f"done: echoed {server.echoed} datagrams")
    return 0 if not args.count or server.echoed >= args.count else 1


def main(argv=None):
    args = parse_args(argv)
    if args.uvloop:
        import uvloop
        return uvloop.run(serve(args))
    return asyncio.run(serve(args))


if __name__ == "__main__":
    sys.exit(main())
