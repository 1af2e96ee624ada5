#!/usr/bin/env python3
"""Non-blocking TCP client: connect, send and receive without ever blocking.

    python examples/tcp_echo_server_iterative.py --port 9000 &
    python examples/nonblocking_client.py --port 9000 one two three
    python examples/nonblocking_client.py --port 9000 --mode flags one two

1. connect: with O_NONBLOCK set, connect_ex() returns at once with
   EINPROGRESS while the handshake goes on.  The socket becomes writable
   when the handshake ends, either way; SO_ERROR (get_error()) then tells
   success (0) from failure (e.g. ECONNREFUSED).
2. send/receive, driven by a selector (epoll/poll/select): write only when
   the socket is writable, read only when it is readable; a call that would
   block raises BlockingIOError (EAGAIN) instead of waiting.
   --mode fd     keeps O_NONBLOCK on the descriptor (setblocking(False));
   --mode flags  puts the descriptor back in blocking mode and passes
                 MSG_DONTWAIT on each send/recv: non-blocking per call.
Works against any TCP echo server; the whole run is bounded by --timeout.
"""
import argparse
import errno
import os
import selectors
import sys
import time

import hotsock


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n".join(__doc__.splitlines()[1:]))
    p.add_argument("lines", nargs="*", default=["hello", "non-blocking", "world"],
                   help="lines to send (default: %(default)s)")
    p.add_argument("--host", default="127.0.0.1", help="server address (default %(default)s)")
    p.add_argument("--port", type=int, required=True, help="TCP port of an echo server")
    p.add_argument("--mode", choices=["fd", "flags"], default="fd",
                   help="O_NONBLOCK on the descriptor, or MSG_DONTWAIT per call (default %(default)s)")
    p.add_argument("--timeout", type=float, default=5.0,
                   help="seconds allowed for the whole exchange (default %(default)s)")
    return p.parse_args(argv)


def errno_text(code):
    return f"{errno.errorcode.get(code, code)} ({os.strerror(code)})"


def connect_nonblocking(sock, address, deadline):
    """Start the handshake, wait for writability, read the outcome from SO_ERROR."""
    sock.setblocking(False)
    start = time.perf_counter()
    code = sock.connect_ex(address)
    print(f"connect_ex returned {errno_text(code) if code else '0 (connected at once)'}")
    if code == 0:
        return True
    if code not in (errno.EINPROGRESS, errno.EWOULDBLOCK):
        return False
    with selectors.DefaultSelector() as selector:
        selector.register(sock, selectors.EVENT_WRITE)
        if not selector.select(timeout=max(0.0, deadline - time.monotonic())):
            print("connect timed out")
            return False
    waited = (time.perf_counter() - start) * 1000.0
    # Writable only says the handshake is over; SO_ERROR says how it ended (and reading it clears it).
    code = sock.get_error()
    print(f"writable after {waited:.3f} ms; SO_ERROR = {errno_text(code) if code else '0 (connected)'}")
    return code == 0


def exchange(sock, lines, mode, deadline):
    """Send everything and read the echo, both only when the selector says so."""
    flags = 0
    if mode == "flags":
        sock.setblocking(True)              # the descriptor blocks again ...
        flags = hotsock.MSG_DONTWAIT        # ... but every call says "do not wait"
    # Nothing has been sent, so nothing can be read: the call returns at once with EAGAIN
    # where a blocking recv() would wait.
    try:
        data = sock.recv(4096, flags)
        print(f"early recv returned {data!r}")
    except BlockingIOError as exc:
        print(f"recv before sending anything: BlockingIOError: {exc} (returned at once)")
    outgoing = b"".join(line.encode() + b"\n" for line in lines)
    sent = 0
    incoming = bytearray()
    pending_line = bytearray()
    would_block = send_calls = recv_calls = 0
    eof = False
    with selectors.DefaultSelector() as selector:
        selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
        while not eof:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                print("timed out before the server closed the connection")
                break
            for _key, events in selector.select(timeout=remaining):
                if events & selectors.EVENT_WRITE:
                    try:
                        n = sock.send(outgoing[sent:sent + 65536], flags)
                        send_calls += 1
                        sent += n
                    except BlockingIOError:
                        would_block += 1
                    if sent == len(outgoing):
                        # All sent: stop asking for writability (else the loop would spin) and
                        # half-close, so the echo server sees EOF and closes after its last echo.
                        sock.shutdown(hotsock.SHUT_WR)
                        selector.modify(sock, selectors.EVENT_READ)
                        print(f"sent {sent} bytes in {send_calls} send calls, then shutdown(SHUT_WR)")
                if events & selectors.EVENT_READ:
                    try:
                        data = sock.recv(65536, flags)
                        recv_calls += 1
                    except BlockingIOError:
                        would_block += 1
                        continue
                    if not data:
                        eof = True
                        break
                    incoming += data
                    pending_line += data
                    # Print each echoed line as soon as it is complete.
                    while b"\n" in pending_line:
                        line, _, rest = pending_line.partition(b"\n")
                        print(f"echo: {line.decode(errors='replace')}")
                        pending_line = bytearray(rest)
    print(f"received {len(incoming)} bytes in {recv_calls} recv calls"
          f"{', server closed' if eof else ''}; calls that would have blocked: {would_block}")
    return bytes(incoming) == outgoing


def main(argv=None):
    args = parse_args(argv)
    family = hotsock.AF_INET6 if ":" in args.host else hotsock.AF_INET
    deadline = time.monotonic() + args.timeout
    with hotsock.socket(family, hotsock.SOCK_STREAM) as sock:
        if not connect_nonblocking(sock, (args.host, args.port), deadline):
            print("not connected")
            return 1
        same = exchange(sock, args.lines, args.mode, deadline)
    print("echo matches what was sent" if same else "echo DIFFERS from what was sent")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
