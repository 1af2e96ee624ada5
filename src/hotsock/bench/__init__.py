"""``hotsock bench``: datagram throughput against the stdlib and plain C.

Every figure is a ratio measured in one run on one machine, never an
absolute claim.  The contenders take turns on the same socket in small
chunks (1024 datagrams by default), round after round, so that all of them
meet the same conditions -- queue depth, memory state, whatever else the
machine is doing -- and each contender's rate is its median chunk.

* Receive: the queue is filled with one chunk per contender (plus a margin)
  before a round, by a C sendmmsg loop, so no racing sender adds noise;
  then each contender drains its chunk.
* Send: each contender sends its chunk to a receiver whose queue is emptied
  (untimed) after every round.
* Capture: as receive, with :func:`hotsock.capture` writing each chunk to
  a new pcap (or pcapng) file in a temporary directory -- the file write is
  part of the cost -- against the C recvmmsg loop draining the same queue.
* Echo: before each contender's turn the server socket's queue is filled
  with one chunk from a client socket; the contender sends each datagram
  back to the client, whose queue is emptied and counted (untimed) after
  the turn.  Against a C recvmmsg/sendmmsg echo loop, a stdlib
  recvfrom/sendto loop and, when it is installed, uvloop's datagram
  endpoint (its loop and endpoint are set up once, untimed; each turn wakes
  the loop and runs it until the protocol has counted the chunk).
* GSO (segmented sends, UDP_SEGMENT): each contender sends its chunk to a
  receiver with UDP_GRO on, which holds segmented sends as they were sent
  (one buffer of up to 64 datagrams); after each turn the receiver is
  emptied (untimed) and must hold exactly the chunk.  hotsock's
  ``send_batch(..., gso=True)`` (calls of 1024 datagrams) and ``blast(...,
  gso=True)`` (one call per chunk) against a C loop of segmented sends
  (sendmmsg of 16 messages, each one buffer of 64 datagrams) and the
  stdlib's ``sendto``.  ``blast`` is measured twice: sending zeros, as the
  C loop does (``sequence=False``), and with its default sequence headers
  ("hotsock blast gso seq"), which stamp every datagram.  The report also
  gives each contender's time for a one-datagram call (blast sets up
  signal handlers and a batch of 1024 per call).
* GRO (coalesced receives, UDP_GRO): as receive, the queue filled before a
  round by the C segmented-send loop; on loopback a segmented send reaches
  a socket with UDP_GRO on as one buffer of 64 datagrams.  hotsock's
  ``recv_batch`` with ``RecvBatch(64, gro=True)`` and a C recvmmsg loop
  reading the UDP_GRO segment size drain that socket.  The stdlib's
  ``recvfrom`` returns one datagram per call, so it drains a second socket,
  without UDP_GRO, filled the same way: the kernel splits each segmented
  send into datagrams for it, as it does for any receiver that did not ask
  for coalesced buffers.

The hot loops (capture, echo) are called as users call them, defaults
included, once per chunk: their per-call set-up (socket options, signal
handlers, the kernel's drop counter, a receive batch, opening the file) is
paid once per chunk, so their chunks are larger (8192 datagrams by
default); the report also gives each contender's time for a one-datagram
call.  The GSO and GRO parts move 64 datagrams per system call buffer,
so their chunks are larger still (65536 datagrams by default, rounded to
whole receive batches of 64 buffers of 64 datagrams): the rate is
datagrams per second for every contender.

The C references are plain C loops compiled into hotsock
(``hotsock._reference``), so this runs from a wheel on a machine without a
compiler.  Traffic stays on loopback.

The modules: ``rigs`` (sockets, queues filled beforehand, drains),
``contenders`` (the contenders as data, and the targets), ``measure`` (the
one measuring skeleton, the parts, the ratios), ``report`` (the text).
"""
import argparse
import json
import sys

from .contenders import PARTS, TARGETS
from .measure import CHUNK, LOOP_CHUNK, MAX_CHUNK, MAX_ROUNDS, OFFLOAD_CHUNK, ROUNDS, SIZE, run
from .report import format_report
from .rigs import BATCH, RECV_SIZE, QueueShort, offload_unavailable

__all__ = ["main", "run", "format_report", "offload_unavailable", "QueueShort", "PARTS",
           "TARGETS", "BATCH", "RECV_SIZE", "LOOP_CHUNK", "OFFLOAD_CHUNK", "MAX_CHUNK"]


def main(argv=None):
    """``hotsock bench [options]``: run, print the report; 0, or 1 if
    datagrams were lost (argument errors exit with 2)."""
    parser = argparse.ArgumentParser(
        prog="hotsock bench",
        description="Datagram throughput of hotsock against the stdlib and plain C loops, "
                    "as ratios measured in one run on loopback.")
    parser.add_argument("--size", type=int, default=SIZE, help=f"payload bytes (default {SIZE})")
    parser.add_argument("--chunk", type=int, default=CHUNK,
                        help=f"datagrams per contender per round, recv and send (default {CHUNK})")
    parser.add_argument("--loop-chunk", type=int, default=LOOP_CHUNK,
                        help="datagrams per contender per round, capture and echo "
                             f"(one call of the hot loop; default {LOOP_CHUNK})")
    parser.add_argument("--offload-chunk", type=int, default=OFFLOAD_CHUNK,
                        help="datagrams per contender per round, gso and gro (rounded down "
                             f"to whole receive batches; default {OFFLOAD_CHUNK})")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help=f"rounds (default {ROUNDS})")
    parser.add_argument("--only", choices=PARTS, help="run one part only")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    if not 0 <= args.size <= RECV_SIZE:
        parser.error(f"--size must be between 0 and {RECV_SIZE}")
    if any(c < BATCH or c > MAX_CHUNK or c % BATCH
           for c in (args.chunk, args.loop_chunk, args.offload_chunk)) \
            or not 1 <= args.rounds <= MAX_ROUNDS:
        parser.error(f"--chunk, --loop-chunk and --offload-chunk must be multiples of {BATCH} "
                     f"up to {MAX_CHUNK}; --rounds 1..{MAX_ROUNDS}")
    parts = (args.only,) if args.only else PARTS
    try:
        report = run(args.size, args.chunk, args.rounds, parts, args.loop_chunk,
                     args.offload_chunk)
    except QueueShort as exc:
        print(f"hotsock bench: datagrams were lost on loopback ({exc}); "
              "try a smaller --chunk", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0
