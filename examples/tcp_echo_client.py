#!/usr/bin/env python3
"""TCP echo client: sends lines, reads each echo back completely.

    python examples/tcp_echo_client.py --port 9000 hello "second line"
    printf 'a\\nb\\n' | python examples/tcp_echo_client.py --port 9000
    python examples/tcp_echo_client.py --port 9000 --size 65536 --recv-size 1000

TCP is a byte stream, not a sequence of messages: one recv() may return part
of a line, or parts of two.  So the client knows how many bytes it expects
back and loops on recv() until it has them all (a short read is normal, an
empty read means the server closed the connection).
"""
import argparse
import sys
import time

import hotsock


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("lines", nargs="*", help="lines to send (default: read standard input)")
    p.add_argument("--host", default="127.0.0.1", help="server address (default %(default)s)")
    p.add_argument("--port", type=int, required=True, help="server TCP port")
    p.add_argument("--timeout", type=float, default=5.0,
                   help="seconds allowed for connecting and for each read (default %(default)s)")
    p.add_argument("--recv-size", type=int, default=4096,
                   help="bytes asked for by each recv(); small values show the read loop at work "
                        "(default %(default)s)")
    p.add_argument("--size", type=int, default=0,
                   help="instead of text lines, send one generated line of this many bytes")
    p.add_argument("--delay", type=float, default=0.0,
                   help="pause between lines, in seconds, holding the connection open "
                        "(default %(default)s)")
    return p.parse_args(argv)


def recv_exactly(sock, n, recv_size):
    """Read exactly n bytes; returns (data, number of recv calls)."""
    chunks = []
    received = calls = 0
    while received < n:
        chunk = sock.recv(min(recv_size, n - received))
        calls += 1
        if not chunk:
            raise ConnectionError(f"server closed the connection after {received} of {n} bytes")
        chunks.append(chunk)
        received += len(chunk)
    return b"".join(chunks), calls


def main(argv=None):
    args = parse_args(argv)
    if args.size:
        # A long line of printable bytes, ending with a newline like the others.
        body = bytes(ord("a") + i % 26 for i in range(args.size - 1))
        lines = [body + b"\n"]
    elif args.lines:
        lines = [line.encode() + b"\n" for line in args.lines]
    else:
        lines = [line.encode() if line.endswith("\n") else line.encode() + b"\n"
                 for line in sys.stdin]

    ok = 0
    with hotsock.create_connection((args.host, args.port), timeout=args.timeout) as sock:
        local = sock.getsockname()
        print(f"connected from {local[0]} {local[1]} to {args.host} {args.port}")
        for number, line in enumerate(lines, 1):
            start = time.perf_counter()
            sock.sendall(line)
            echo, calls = recv_exactly(sock, len(line), args.recv_size)
            ms = (time.perf_counter() - start) * 1000.0
            shown = line.decode(errors="replace").rstrip("\n")
            if len(shown) > 60:
                shown = f"{shown[:40]}... ({len(line)} bytes)"
            same = echo == line
            ok += same
            print(f"line {number}: sent {shown!r}, echo {'matches' if same else 'DIFFERS'} "
                  f"({len(echo)} bytes in {calls} recv calls, {ms:.3f} ms)")
            if args.delay and number < len(lines):
                time.sleep(args.delay)
        # Tell the server we are done (FIN), then wait for its close: a clean end for both.
        sock.shutdown(hotsock.SHUT_WR)
        rest = sock.recv(1)
        if rest:
            print(f"unexpected extra data from the server: {rest!r}")
    print(f"echoed correctly: {ok}/{len(lines)}")
    return 0 if ok == len(lines) else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (OSError, ConnectionError) as exc:
        print(f"error: {type(exc).__name__}: {exc}")
        sys.exit(1)
