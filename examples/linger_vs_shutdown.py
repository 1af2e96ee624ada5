#!/usr/bin/env python3
"""Three ways to end a TCP connection, and what the peer sees each time.

    python examples/linger_vs_shutdown.py
    python examples/linger_vs_shutdown.py --case linger0 --size 1M

1. close() (default SO_LINGER off): close returns at once; the kernel keeps
   sending whatever is still queued, then a FIN.  The peer reads every byte,
   then end of file.
2. set_linger(True, 0) then close(): an abortive close.  The kernel throws
   away the unsent data and sends a RST instead of a FIN.  The peer reads at
   most what had already reached it, then gets ConnectionResetError.
3. shutdown(SHUT_WR), then read until EOF: a half-close.  The FIN tells the
   peer "no more data from me", but our socket can still receive: the peer
   reads everything, answers, closes, and we read its answer, then EOF.

In cases 1 and 2 the peer starts reading only after the close, and its
receive buffer is small, so most of the data is still in the closing side's
send queue at close time: that is what a RST discards.
"""
import argparse
import sys
import threading

import hotsock


def size_arg(text):
    units = {"K": 1 << 10, "M": 1 << 20}
    text = text.strip().upper()
    return int(text[:-1]) * units[text[-1]] if text[-1:] in units else int(text)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n".join(__doc__.splitlines()[1:]))
    p.add_argument("--case", choices=["close", "linger0", "shutdown", "all"], default="all",
                   help="which ending to show (default %(default)s)")
    p.add_argument("--size", type=size_arg, default=256 << 10,
                   help="bytes the closing side sends, e.g. 65536, 256K, 1M (default 256K)")
    p.add_argument("--timeout", type=float, default=5.0,
                   help="seconds allowed for each wait (default %(default)s)")
    return p.parse_args(argv)


def connected_pair(timeout):
    """A (client, server-side connection) pair on loopback; the server side reads slowly."""
    with hotsock.socket(hotsock.AF_INET, hotsock.SOCK_STREAM) as listener:
        # A small receive buffer, set before listen() so the accepted socket gets it (and its
        # TCP window): the data then waits in the sender's queue rather than at the peer.
        listener.set_recv_buffer(16 << 10)
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(timeout)
        client = hotsock.create_connection(listener.getsockname(), timeout=timeout)
        conn, _ = listener.accept()
    conn.settimeout(timeout)
    return client, conn


def queue_data(sock, size):
    """Send up to size bytes without blocking; returns how many the kernel accepted."""
    sock.setblocking(False)
    chunk = b"x" * 65536
    queued = 0
    try:
        while queued < size:
            queued += sock.send(chunk[:size - queued])
    except BlockingIOError:
        pass                         # send buffer full: good enough, stop here
    return queued


def read_until_end(conn):
    """Read until EOF or an error: returns (bytes read, how it ended)."""
    total = 0
    try:
        while True:
            data = conn.recv(65536)
            if not data:
                return total, "EOF"
            total += len(data)
    except OSError as exc:
        return total, f"{type(exc).__name__}: {exc}"


def case_close(size, timeout, abortive):
    client, conn = connected_pair(timeout)
    queued = queue_data(client, size)
    if abortive:
        client.set_linger(True, 0)
        label = "set_linger(True, 0) + close()"
        print(f"--- {label}: get_linger() = {client.get_linger()}")
    else:
        label = "close()"
        print(f"--- {label}: get_linger() = {client.get_linger()} (the default)")
    client.close()
    print(f"closing side: queued {queued} bytes, closed")
    with conn:
        total, end = read_until_end(conn)
    print(f"peer observed: read {total} of {queued} bytes, then {end}")
    if end == "EOF" and total == queued:
        print("=> orderly release (FIN): every byte was delivered")
    elif end.startswith("ConnectionResetError"):
        print(f"=> reset (RST): {queued - total} bytes were discarded")
    else:
        print("=> unexpected outcome")


def case_shutdown(size, timeout):
    print("--- shutdown(SHUT_WR), then read until EOF")
    client, conn = connected_pair(timeout)
    observed = {}

    def peer():
        with conn:
            total, end = read_until_end(conn)
            observed.update(total=total, end=end)
            # The client has only shut down its sending side: it can still hear our answer.
            conn.sendall(f"server got {total} bytes, then {end}".encode())

    thread = threading.Thread(target=peer)
    thread.start()
    with client:
        client.sendall(b"x" * size)
        client.shutdown(hotsock.SHUT_WR)
        print(f"closing side: sent {size} bytes, shutdown(SHUT_WR) sent the FIN")
        reply, end = b"", "EOF"
        try:
            while True:
                data = client.recv(4096)
                if not data:
                    break
                reply += data
        except OSError as exc:
            end = f"{type(exc).__name__}: {exc}"
    thread.join(timeout)
    print(f"peer observed: read {observed.get('total')} of {size} bytes, then {observed.get('end')}")
    print(f"closing side read after its shutdown: {reply.decode()!r}, then {end}")
    if observed.get("end") == "EOF" and observed.get("total") == size and reply:
        print("=> graceful half-close: all data delivered and the answer still came back")
    else:
        print("=> unexpected outcome")


def main(argv=None):
    args = parse_args(argv)
    if args.case in ("close", "all"):
        case_close(args.size, args.timeout, abortive=False)
    if args.case in ("linger0", "all"):
        case_close(args.size, args.timeout, abortive=True)
    if args.case in ("shutdown", "all"):
        case_shutdown(args.size, args.timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
