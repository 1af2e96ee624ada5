#!/usr/bin/env python3
"""UDP relay in asyncio: receive a batch, rewrite it in place, forward it.

A relay (a feed handler's fan-in, a NAT, a test tap) receives datagrams on
one port and sends them on to another address.  With hotsock's batch
protocol each readiness event brings a whole ``RecvBatch``; the payloads
are edited where they lie in the batch's memory (here: a hop counter in the
first byte, and upper case), and the batch goes on with one ``send_batch``
-- no Python object per datagram beyond the views.  The first line printed
is "relaying HOST PORT -> HOST PORT".

    python examples/asyncio_relay.py --port 9000 --to 127.0.0.1:9001 --count 5
"""
import argparse
import asyncio
import sys

import hotsock.asyncio


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    p.add_argument("--port", type=int, default=0,
                   help="UDP port to receive on; 0 lets the kernel choose (default %(default)s)")
    p.add_argument("--to", required=True, metavar="HOST:PORT", help="where to forward")
    p.add_argument("--count", type=int, default=10,
                   help="stop after relaying N datagrams; 0 = until interrupted (default %(default)s)")
    p.add_argument("--idle-timeout", type=float, default=30.0,
                   help="stop when nothing arrives for this many seconds (default %(default)s)")
    return p.parse_args(argv)


def destination(text):
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


class Relay:
    def __init__(self, target, count, done):
        self.target, self.count, self.done, self.relayed = target, count, done, 0

    def connection_made(self, transport):
        self.transport = transport

    def datagrams_received(self, batch):
        n = len(batch)
        if self.count:
            n = min(n, self.count - self.relayed)
        payloads = []
        for i in range(n):
            view = batch[i]                       # writable, in the batch's arena
            if len(view):
                view[0] = (view[0] + 1) & 0xFF    # one more hop
                view[1:] = bytes(view[1:]).upper()
            payloads.append(view)
        self.transport.send_batch(payloads, self.target)
        self.relayed += n
        if self.count and self.relayed >= self.count and not self.done.done():
            self.done.set_result(None)

    def error_received(self, exc):
        print(f"error: {exc}", file=sys.stderr)

    def connection_lost(self, exc):
        pass


async def relay(args):
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    target = destination(args.to)
    transport, protocol = await hotsock.asyncio.create_datagram_endpoint(
        lambda: Relay(target, args.count, done), local_addr=(args.host, args.port))
    host, port = transport.get_extra_info("sockname")[:2]
    print(f"relaying {host} {port} -> {target[0]} {target[1]}", flush=True)
    try:
        while not done.done():
            before = protocol.relayed
            try:
                await asyncio.wait_for(asyncio.shield(done), args.idle_timeout or None)
            except asyncio.TimeoutError:
                if protocol.relayed == before:
                    print(f"idle for {args.idle_timeout} s", file=sys.stderr)
                    break
    finally:
        transport.close()
    print(f"done: relayed {protocol.relayed} datagrams")
    return 0 if not args.count or protocol.relayed >= args.count else 1


def main(argv=None):
    return asyncio.run(relay(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
