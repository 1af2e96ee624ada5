#!/usr/bin/env python3
"""UDP echo client: sends N datagrams, times each reply, counts what came back.

    python examples/udp_echo_client.py --port 9000 --count 5 --message hello

UDP gives no delivery guarantee, so every wait for a reply has a timeout: a
lost request or a lost reply only costs that timeout, never a hang.  Each
message carries a sequence number, so a late reply to an earlier message is
recognised and not mistaken for the current one.
"""
import argparse
import sys
import time

import hotsock


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1", help="server address (default %(default)s)")
    p.add_argument("--port", type=int, required=True, help="server UDP port")
    p.add_argument("--count", type=int, default=5, help="messages to send (default %(default)s)")
    p.add_argument("--message", default="hello", help="text of each message (default %(default)s)")
    p.add_argument("--timeout", type=float, default=1.0,
                   help="seconds to wait for each reply (default %(default)s)")
    p.add_argument("--interval", type=float, default=0.0,
                   help="pause between messages, in seconds (default %(default)s)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    family = hotsock.AF_INET6 if ":" in args.host else hotsock.AF_INET
    server = (args.host, args.port)
    rtts = []
    with hotsock.socket(family, hotsock.SOCK_DGRAM) as sock:
        sock.settimeout(args.timeout)
        for seq in range(1, args.count + 1):
            payload = f"{seq} {args.message}".encode()
            start = time.perf_counter()
            sock.sendto(payload, server)
            deadline = start + args.timeout
            while True:
                # The remaining time, so stray datagrams cannot stretch the wait.
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    print(f"#{seq}: no reply within {args.timeout:g} s")
                    break
                sock.settimeout(remaining)
                # hotsock.timeout: TimeoutError on Python 3.10+, socket.timeout on 3.9.
                try:
                    reply, peer = sock.recvfrom(65535)
                except hotsock.timeout:
                    print(f"#{seq}: no reply within {args.timeout:g} s")
                    break
                except ConnectionRefusedError:
                    # Linux reports the ICMP port unreachable of an earlier send here.
                    print(f"#{seq}: connection refused (nothing listens on {args.host} {args.port})")
                    break
                if reply != payload:
                    print(f"ignoring a late or foreign datagram from {peer[0]} {peer[1]}: {reply!r}")
                    continue
                rtt = (time.perf_counter() - start) * 1000.0
                rtts.append(rtt)
                print(f"#{seq}: reply {reply.decode(errors='replace')!r} from {peer[0]} {peer[1]} "
                      f"in {rtt:.3f} ms")
                break
            if args.interval:
                time.sleep(args.interval)
    print(f"replies: {len(rtts)}/{args.count}")
    if rtts:
        print(f"round trip ms: min {min(rtts):.3f}  avg {sum(rtts) / len(rtts):.3f}  "
              f"max {max(rtts):.3f}")
    return 0 if len(rtts) == args.count else 1


if __name__ == "__main__":
    sys.exit(main())
