#!/usr/bin/env python3
"""Concurrent TCP echo server: one child process per client (os.fork).

    python examples/tcp_echo_server_concurrent.py --port 9000 --clients 3

The parent only accepts; each connection is served by a forked child, so a
slow client no longer blocks the others.  A child that exits stays a zombie
until its parent collects its status, so the parent reaps children from a
SIGCHLD handler with waitpid(-1, WNOHANG) in a loop (several exits can
arrive as one signal).  After --clients connections it stops accepting,
waits for the remaining children and checks that none is left.  POSIX only.
"""
import argparse
import os
import signal
import sys

import hotsock


def say(line):
    """One line in one write: parent and children share stdout, and print()
    writes the text and the newline separately when unbuffered (-u), so
    their lines could interleave mid-line."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


reaped = []          # (pid, exit status) collected by the SIGCHLD handler


def reap_children(signum=None, frame=None):
    """Collect every child that has exited, without blocking."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:      # no children at all
            return
        if pid == 0:                   # children exist, but none has exited yet
            return
        # Only record here: printing from a signal handler could interleave with a print
        # the main program was in the middle of.
        reaped.append((pid, os.waitstatus_to_exitcode(status)))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    p.add_argument("--port", type=int, default=0,
                   help="TCP port; 0 lets the kernel choose (default %(default)s)")
    p.add_argument("--clients", type=int, default=5,
                   help="exit after N clients have been served; 0 = run until interrupted "
                        "(default %(default)s)")
    p.add_argument("--idle-timeout", type=float, default=30.0,
                   help="stop accepting when no client connects for this many seconds; a child "
                        "also gives up on a client silent this long; 0 = no limit (default %(default)s)")
    return p.parse_args(argv)


def serve_client(conn, number, idle_timeout):
    """Runs in the child: echo until the client closes; returns the exit status."""
    conn.settimeout(idle_timeout or None)
    total = 0
    # hotsock.timeout: TimeoutError on Python 3.10+, socket.timeout on 3.9.
    try:
        while True:
            data = conn.recv(4096)
            if not data:
                break
            conn.sendall(data)
            total += len(data)
    except (hotsock.timeout, ConnectionResetError) as exc:
        say(f"[child {os.getpid()}] client {number}: {type(exc).__name__}: {exc}")
        return 1
    say(f"[child {os.getpid()}] client {number} done: echoed {total} bytes")
    return 0


def report_reaped(already):
    """Print the children reaped since the last call; returns how many are shown now."""
    # A copy first: the handler may append while we print, and those wait for the next call.
    new = reaped[already:]
    for pid, code in new:
        say(f"reaped child {pid}, exit status {code}")
    return already + len(new)


def main(argv=None):
    args = parse_args(argv)
    family = hotsock.AF_INET6 if ":" in args.host else hotsock.AF_INET
    listener = hotsock.socket(family, hotsock.SOCK_STREAM)
    listener.set_reuse_address(True)
    listener.bind((args.host, args.port))
    listener.listen(16)
    host, port = listener.getsockname()[:2]
    say(f"listening on {host} {port} (parent pid {os.getpid()})")

    # Install the handler before the first fork, so no exit can be missed.  accept() is
    # interrupted by SIGCHLD (EINTR) and, since PEP 475, Python retries it by itself.
    signal.signal(signal.SIGCHLD, reap_children)
    listener.settimeout(args.idle_timeout or None)
    accepted = shown = 0
    while args.clients == 0 or accepted < args.clients:
        try:
            conn, peer = listener.accept()
        except hotsock.timeout:
            say(f"no client for {args.idle_timeout:g} s, stopping")
            break
        accepted += 1
        sys.stdout.flush()             # or the child would print our buffered lines again
        pid = os.fork()
        if pid == 0:                   # child: serve this client only
            status = 1
            try:
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                listener.close()       # the child does not accept; drop its copy
                with conn:
                    status = serve_client(conn, accepted, args.idle_timeout)
            finally:
                # _exit: skip the parent's cleanup (atexit, buffered output) in the child.
                os._exit(status)
        # Parent: the child has its own copy of the connection.  Closing ours does not end the
        # connection (the descriptor's reference count only drops to 1).
        conn.close()
        say(f"client {accepted} from {peer[0]} {peer[1]} -> child {pid}")
        shown = report_reaped(shown)
    listener.close()

    # No more clients: back to the default SIGCHLD action and a plain blocking wait for
    # each child still serving, until waitpid says there is no child left.
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        reaped.append((pid, os.waitstatus_to_exitcode(status)))
    shown = report_reaped(shown)
    # No child left to wait for means no zombie left behind.
    say(f"served {accepted} clients; reaped {len(reaped)} children; zombies left: 0")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
