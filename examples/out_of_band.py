#!/usr/bin/env python3
"""TCP urgent ("out-of-band") data with MSG_OOB, with SO_OOBINLINE off and on.

    python examples/out_of_band.py
    python examples/out_of_band.py --before abc --urgent ! --after def

A client thread sends BEFORE, then one urgent byte with send(..., MSG_OOB),
then AFTER, and closes; the server (main thread) reads and prints what
arrived where.  TCP carries a single urgent byte (the last byte of the
MSG_OOB send), marked by the urgent pointer:

  SO_OOBINLINE off (default): the urgent byte is taken out of the stream.
      select() reports an "exceptional condition"; recv(1, MSG_OOB) reads
      the byte; ordinary reads return BEFORE+AFTER without it.
  SO_OOBINLINE on (set_oobinline(True)): the byte stays in the stream at
      its place; recv(..., MSG_OOB) fails with EINVAL; ordinary reads stop
      at the mark, so the byte starts a new read.
"""
import argparse
import select
import sys
import threading

import hotsock


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n".join(__doc__.splitlines()[1:]))
    p.add_argument("--before", default="abc", help="ordinary data sent first (default %(default)s)")
    p.add_argument("--urgent", default="!", help="the urgent byte, one character (default %(default)s)")
    p.add_argument("--after", default="def", help="ordinary data sent last (default %(default)s)")
    p.add_argument("--timeout", type=float, default=5.0,
                   help="seconds allowed for each wait (default %(default)s)")
    args = p.parse_args(argv)
    if len(args.urgent.encode()) != 1:
        p.error("--urgent must be exactly one byte: TCP has room for one urgent byte")
    return args


def client(address, args, errors):
    """Sender: ordinary data, one urgent byte, ordinary data, then close."""
    try:
        with hotsock.create_connection(address, timeout=args.timeout) as sock:
            sock.sendall(args.before.encode())
            sock.send(args.urgent.encode(), hotsock.MSG_OOB)
            sock.sendall(args.after.encode())
    except OSError as exc:
        errors.append(exc)


def read_to_end(conn):
    """All ordinary reads until EOF, as the list of chunks each recv() returned."""
    chunks = []
    while True:
        data = conn.recv(1024)
        if not data:
            return chunks
        chunks.append(data)


def demonstrate(inline, args):
    title = "SO_OOBINLINE on" if inline else "SO_OOBINLINE off"
    print(f"--- {title}: sending {args.before!r}, urgent {args.urgent!r}, then {args.after!r}")
    with hotsock.socket(hotsock.AF_INET, hotsock.SOCK_STREAM) as listener:
        # Set on the listener before any data can arrive; accepted sockets inherit it.
        listener.set_oobinline(inline)
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(args.timeout)
        errors = []
        sender = threading.Thread(target=client, args=(listener.getsockname(), args, errors))
        sender.start()
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(args.timeout)
            print(f"accepted socket: get_oobinline() = {conn.get_oobinline()}")
            if not inline:
                # Wait for the urgent pointer to arrive: it shows as an exceptional condition.
                _, _, exceptional = select.select([], [], [conn], args.timeout)
                print(f"select(): exceptional condition {'reported' if exceptional else 'NOT reported'}")
                urgent = conn.recv(1, hotsock.MSG_OOB)
                print(f"recv(1, MSG_OOB) -> {urgent!r}  (read out of band)")
            chunks = read_to_end(conn)
            if inline:
                # The byte is in the stream now, so there is nothing left to read out of band.
                try:
                    conn.recv(1, hotsock.MSG_OOB)
                except OSError as exc:
                    print(f"recv(1, MSG_OOB) -> {type(exc).__name__}: {exc}  (nothing out of band)")
        sender.join(args.timeout)
    if errors:
        raise errors[0]
    stream = b"".join(chunks)
    print(f"ordinary reads returned {chunks!r}")
    print(f"in-band stream: {stream!r}")
    before, urgent, after = (text.encode() for text in (args.before, args.urgent, args.after))
    if stream == before + after:
        print(f"urgent byte {args.urgent!r}: NOT in the stream (read out of band)")
    elif stream == before + urgent + after:
        print(f"urgent byte {args.urgent!r}: IN LINE at offset {len(before)} of the stream")
    else:
        print(f"unexpected stream {stream!r}")


def main(argv=None):
    args = parse_args(argv)
    demonstrate(False, args)
    print()
    demonstrate(True, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
