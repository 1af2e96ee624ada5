#!/usr/bin/env python3
"""Iterative TCP echo server: serves one client at a time, in arrival order.

    python examples/tcp_echo_server_iterative.py --port 9000 --clients 2
    python examples/tcp_echo_client.py --port 9000 hello world

The first line printed is "listening on HOST PORT" (use --port 0 to let the
kernel choose).  While one client is served, the next ones wait in the
listen backlog: simple, but one slow client delays everybody.  Compare
tcp_echo_server_concurrent.py.
"""
import argparse
import sys

import hotsock


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    p.add_argument("--port", type=int, default=0,
                   help="TCP port; 0 lets the kernel choose (default %(default)s)")
    p.add_argument("--clients", type=int, default=5,
                   help="exit after serving N clients; 0 = run until interrupted (default %(default)s)")
    p.add_argument("--idle-timeout", type=float, default=30.0,
                   help="exit when no client connects, or a connected client stays silent, "
                        "for this many seconds; 0 = no limit (default %(default)s)")
    return p.parse_args(argv)


def echo(conn, peer, idle_timeout):
    """Send back everything the client sends, until it closes its side."""
    total = 0
    conn.settimeout(idle_timeout or None)
    while True:
        data = conn.recv(4096)
        if not data:            # b"" is end of file: the client has closed (or shut down) its side.
            break
        # sendall, not send: send may take only part of the data when the send buffer is full.
        conn.sendall(data)
        total += len(data)
    return total


def main(argv=None):
    args = parse_args(argv)
    family = hotsock.AF_INET6 if ":" in args.host else hotsock.AF_INET
    with hotsock.socket(family, hotsock.SOCK_STREAM) as listener:
        # A restarted server can bind again although old connections sit in TIME_WAIT.
        listener.set_reuse_address(True)
        listener.bind((args.host, args.port))
        listener.listen(16)
        host, port = listener.getsockname()[:2]
        print(f"listening on {host} {port}", flush=True)
        listener.settimeout(args.idle_timeout or None)
        served = 0
        while args.clients == 0 or served < args.clients:
            # hotsock.timeout: TimeoutError on Python 3.10+, socket.timeout on 3.9.
            try:
                conn, peer = listener.accept()
            except hotsock.timeout:
                print(f"no client for {args.idle_timeout:g} s, stopping")
                return 1
            served += 1
            print(f"client {served} connected from {peer[0]} {peer[1]}", flush=True)
            with conn:
                try:
                    total = echo(conn, peer, args.idle_timeout)
                except (hotsock.timeout, ConnectionResetError) as exc:
                    print(f"client {served}: {type(exc).__name__}: {exc}")
                    continue
            print(f"client {served} from {peer[0]} {peer[1]} done: echoed {total} bytes", flush=True)
    print(f"served {served} clients, exiting")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
