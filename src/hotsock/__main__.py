"""The ``hotsock`` command (also ``python -m hotsock``): options and dispatch.

The work is done elsewhere: ``_cli_commands`` (sockets and loops),
``_cli_progress`` (what is shown on stderr), ``_cli_workers`` (``--workers``).
"""
import argparse
import ipaddress
import json
import math
import os
import sys

from . import _limits

EXIT_STATUS = """\
exit status:
  0  the run ended: --count, --duration or --idle reached, or stopped by SIGINT/SIGTERM
     (the capture file is complete and the statistics are printed either way)
  1  a run-time error: address in use, unknown interface, file not writable, ...
     (one line "hotsock: error: ..." on stderr)
  2  wrong usage: a bad or contradicting option"""

WORKERS_NOTE = """\
--workers N runs N processes of this command side by side and sums their statistics.
Receivers share the port with SO_REUSEPORT: the kernel spreads unicast senders over them
by address and port (one sender always reaches the same worker; multicast and broadcast
datagrams reach every worker, so --group is refused). Limits (--count, --duration, --idle,
--rate) apply to each worker; worker I of "capture -w out.pcap" writes out.I.pcap."""

OUTPUT_NOTE = """\
Live statistics go to stderr every --interval: one rewritten line on a terminal (a table
with rich, "pip install 'hotsock[cli]'"), a plain line per interval otherwise. The closing
summary goes to stderr too; --json prints it as one JSON object on stdout."""

MAX_WORKERS = 256


# --- argument types (each raises ArgumentTypeError: argparse's "invalid value" message) --

def _integer(text, low, high, what):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what} must be an integer, not {text!r}") from None
    if value < low or (high is not None and value > high):
        span = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise argparse.ArgumentTypeError(f"{what} must be {span}, not {value}")
    return value


def _ranged(low, high=None, what="value"):
    def parse(text):
        return _integer(text, low, high, what)
    parse.__name__ = what       # argparse names the type in its messages
    return parse


def _bounded(check, text, what):
    """*text* as a number, then *check*ed by the loops' own bounds (hotsock._limits):
    the same limits and words as the Python API, as one argparse error."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not {what}: {text!r}") from None
    try:
        return check(value)
    except (TypeError, ValueError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _seconds_of(name):
    def parse(text):
        return _bounded(lambda value: _limits.seconds(name, value), text, "a number of seconds")
    parse.__name__ = name
    return parse


def _interval(text):
    return _bounded(_limits.interval, text, "a number of seconds")


_DECIMAL = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}
_BINARY = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def _scaled(text, units, what):
    number, unit = text.strip(), ""
    if number and number[-1].lower() in "kmg":
        number, unit = number[:-1], number[-1].lower()
    try:
        value = float(number) * units[unit]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not {what}: {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be positive, not {text}")
    return value


def _rate(text):
    """Datagrams per second; k, M, G multiply by 1000s (10k = 10000)."""
    try:
        return _limits.rate(_scaled(text, _DECIMAL, "a rate"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _buffer_size(text):
    """Bytes; K, M, G multiply by 1024s (8M = 8388608)."""
    value = _scaled(text, _BINARY, "a size in bytes")
    if value > (1 << 31) - 1:
        raise argparse.ArgumentTypeError(f"must be less than 2 GiB, not {text}")
    return int(value)


def _ip(text):
    """An IPv4 or IPv6 address literal (IPv6 scope allowed: fe80::1%eth0)."""
    try:
        ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an IP address: {text!r}") from None
    return text


# --- the parser ----------------------------------------------------------------

def _receiver_options(parser):
    where = parser.add_argument_group("where to receive")
    where.add_argument("-p", "--port", type=_ranged(0, 65535, "port"), required=True,
                       help="UDP port (0: any free port, printed at start)")
    where.add_argument("--bind", type=_ip, metavar="ADDR",
                       help="local address (default 0.0.0.0, or :: for an IPv6 --group; "
                            "--bind :: for IPv6)")
    where.add_argument("--group", action="append", type=_ip, metavar="G",
                       help="join multicast group G (repeatable)")
    where.add_argument("--source", type=_ip, metavar="S",
                       help="source-specific join: only datagrams from S (needs --group)")
    where.add_argument("-i", "--interface", metavar="IF",
                       help="join on this interface: name, index or (IPv4) local address")
    where.add_argument("--rcvbuf", type=_buffer_size, metavar="BYTES",
                       help="receive buffer size (K/M suffixes; SO_RCVBUFFORCE when permitted; "
                            "default 2M as tcpdump's, or the socket's if larger)")
    where.add_argument("--reuseport", action="store_true",
                       help="set SO_REUSEPORT (always set with --workers)")


def _run_options(parser, receiver):
    """The options capture, echo and blast share (receiver: those of capture and echo)."""
    from ._features import MAX_BATCH
    from ._cli_progress import DISPLAYS
    limits = parser.add_argument_group("when to stop (default: on SIGINT/SIGTERM)")
    limits.add_argument("-c", "--count", type=_ranged(1, _limits.MAX_COUNT, "count"),
                        metavar="N", help="stop after N datagrams")
    limits.add_argument("--duration", type=_seconds_of("duration"), metavar="S",
                        help="stop after S seconds")
    if receiver:
        limits.add_argument("--idle", type=_seconds_of("idle"), metavar="S",
                            help="stop after S seconds without a datagram")
    out = parser.add_argument_group("output")
    out.add_argument("--json", action="store_true",
                     help="print the final summary as one JSON object on stdout")
    out.add_argument("-q", "--quiet", action="store_true",
                     help="nothing on stderr but errors (no live statistics, no summary)")
    out.add_argument("--interval", type=_interval, default=1.0, metavar="S",
                     help="live statistics every S seconds (default 1)")
    out.add_argument("--display", choices=DISPLAYS, default="auto",
                     help="live statistics: rich table, rewritten line, plain lines or none "
                          "(default auto: by whether stderr is a terminal)")
    tuning = parser.add_argument_group("performance")
    if receiver:
        tuning.add_argument("--batch", type=_ranged(1, MAX_BATCH, "batch"), default=64,
                            metavar="N", help="datagrams per recvmmsg/sendmmsg (default 64)")
        tuning.add_argument("--size", type=_ranged(1, 65535, "size"), default=65535,
                            metavar="N", help="receive slot size; longer datagrams are cut "
                                              "and counted as truncated (default 65535)")
        if parser.prog.endswith("capture"):
            # Off by default: the kernel's drop counter counts a dropped
            # coalesced buffer once, however many datagrams it held.
            tuning.add_argument("--gro", action="store_true",
                                help="coalesced receives (UDP_GRO, Linux; at the full --size): "
                                     "faster, but 'dropped by kernel' then counts coalesced "
                                     "buffers, not datagrams, and a --count may be passed by "
                                     "up to 127 datagrams")
        else:
            tuning.add_argument("--no-gro", action="store_true",
                                help="no coalesced receives (UDP_GRO, Linux; used by default "
                                     "at the full --size, and a --count may then be passed by "
                                     "up to 127 datagrams)")
    else:
        tuning.add_argument("--batch", type=_ranged(1, MAX_BATCH, "batch"), metavar="N",
                            help="datagrams per sendmmsg (default 64; 1024 with GSO)")
    tuning.add_argument("--workers", type=_ranged(1, MAX_WORKERS, "workers"), default=1,
                        metavar="N", help="run N processes and sum their statistics (see below)")
    parser.add_argument("--worker-index", type=int, help=argparse.SUPPRESS)


def build_parser():
    """The ``hotsock`` argument parser; returns ``(parser, {command: subparser})``."""
    parser = argparse.ArgumentParser(
        prog="hotsock", description="Fast BSD socket I/O for Python: tools and benchmarks.",
        epilog=EXIT_STATUS, formatter_class=argparse.RawDescriptionHelpFormatter)
    from . import __version__
    parser.add_argument("--version", action="version", version=f"hotsock {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    epilog = "\n\n".join([WORKERS_NOTE, OUTPUT_NOTE, EXIT_STATUS])
    style = {"formatter_class": argparse.RawDescriptionHelpFormatter, "epilog": epilog}

    capture = commands.add_parser(
        "capture", help="receive UDP into a pcap/pcapng file",
        description="Receive every UDP datagram on a port (and groups) and write it to a\n"
                    "pcap or pcapng file that tcpdump and Wireshark read, print it, or count it.",
        **style)
    _receiver_options(capture)
    sink = capture.add_argument_group("what to do with the datagrams (default: count them)")
    into = sink.add_mutually_exclusive_group()
    into.add_argument("-w", "--write", metavar="FILE",
                      help="write a capture file (- for stdout)")
    into.add_argument("--print", action="store_true",
                      help="print one line per datagram on stdout, tcpdump style")
    sink.add_argument("--format", choices=("pcap", "pcapng"),
                      help="file format (default: pcapng for a .pcapng FILE, else pcap)")
    sink.add_argument("-s", "--snaplen", type=_ranged(48, 262144, "snaplen"), metavar="N",
                      help="bytes kept per record, headers included (default 262144)")
    _run_options(capture, receiver=True)

    echo = commands.add_parser(
        "echo", help="send every UDP datagram back",
        description="Send every datagram received on a port (and groups) back to its sender.",
        **style)
    _receiver_options(echo)
    echo.add_argument("--confirm", action="store_true",
                      help="send with MSG_CONFIRM (Linux: saves neighbour probes)")
    echo.add_argument("--no-gso", action="store_true",
                      help="send coalesced datagrams back one by one, not as one segmented "
                           "send (UDP_SEGMENT)")
    _run_options(echo, receiver=True)

    blast = commands.add_parser(
        "blast", help="send UDP datagrams, paced or flat out",
        description="Send datagrams to HOST PORT as fast as possible or at --rate. Each one\n"
                    "carries a sequence header (unless --no-sequence) from which capture and\n"
                    "echo count lost, duplicated and reordered datagrams.", **style)
    blast.add_argument("host", metavar="HOST", help="destination: address, name or group")
    blast.add_argument("port", metavar="PORT", type=_ranged(1, 65535, "port"),
                       help="destination port")
    what = blast.add_argument_group("what to send")
    what.add_argument("--size", type=_ranged(0, 65535, "size"), default=64, metavar="N",
                      help="payload bytes per datagram (default 64; at least 24 with the "
                           "sequence header)")
    what.add_argument("--rate", type=_rate, metavar="PPS",
                      help="datagrams per second, per worker (k/M suffixes; default: flat out)")
    what.add_argument("--no-sequence", action="store_true",
                      help="no sequence header: payloads are zeros")
    how = blast.add_argument_group("how to send")
    how.add_argument("--bind", type=_ip, metavar="ADDR", help="source address")
    how.add_argument("--ttl", type=_ranged(0, 255, "ttl"), metavar="N",
                     help="TTL (hop limit); for a group, the multicast TTL")
    how.add_argument("-i", "--interface", metavar="IF",
                     help="multicast: send on this interface (name, index, IPv4 address)")
    how.add_argument("--no-loop", action="store_true",
                     help="multicast: no copy to this host's own members")
    how.add_argument("--broadcast", action="store_true",
                     help="allow a broadcast destination (SO_BROADCAST)")
    segments = how.add_mutually_exclusive_group()
    segments.add_argument("--gso", dest="gso", action="store_const", const=True,
                          help="segmented sends (UDP_SEGMENT, Linux) at any size (default: "
                               "when the size fits a 1500-byte MTU)")
    segments.add_argument("--no-gso", dest="gso", action="store_const", const=False,
                          help="no segmented sends")
    _run_options(blast, receiver=False)

    # bench parses its own options (see hotsock.bench), so they pass through.
    bench = commands.add_parser("bench", add_help=False,
                                help="datagram throughput against the stdlib and plain C")
    info = commands.add_parser("info", help="what this build and system provide")
    info.add_argument("--json", action="store_true", help="print as JSON")
    return parser, {"capture": capture, "echo": echo, "blast": blast, "bench": bench,
                    "info": info}


def _family(address):
    return 6 if ":" in address else 4


def check(args, parser):
    """Cross-option checks argparse cannot express; *parser*.error() (exit 2) on failure."""
    from ._cli_progress import rich_available
    if args.command in ("capture", "echo"):
        for group in args.group or ():
            if not ipaddress.ip_address(group.split("%", 1)[0]).is_multicast:
                parser.error(f"--group {group}: not a multicast address")
            if _family(group) != _family(args.group[0]):
                parser.error("--group: all groups must be of one family (IPv4 or IPv6)")
            if args.bind and _family(args.bind) != _family(group):
                parser.error(f"--group {group} and --bind {args.bind} are of different families")
        if args.source and not args.group:
            parser.error("--source needs --group (a source-specific join)")
        if args.source and _family(args.source) != _family(args.group[0]):
            parser.error("--source and --group are of different families")
        if args.interface is not None and not args.group:
            parser.error("--interface needs --group (it is where groups are joined)")
        if args.workers > 1 and args.group:
            parser.error("--workers with --group: the kernel gives every worker its own copy "
                         "of each multicast datagram (SO_REUSEPORT spreads unicast only)")
        if args.workers > 1 and args.port == 0:
            parser.error("--workers needs a --port: workers share one port, and port 0 "
                         "would give each its own")
    if args.command == "capture":
        if not args.write and (args.format or args.snaplen):
            parser.error("--format and --snaplen apply to a capture file (-w FILE)")
        if args.snaplen is None:
            args.snaplen = 262144
        to_stdout = args.print or args.write == "-"
        if to_stdout and args.json:
            parser.error("--json needs stdout, which --print / -w - take")
        if to_stdout and args.workers > 1:
            parser.error("--workers cannot share stdout: use -w FILE")
    if args.command == "blast" and args.size < 24 and not args.no_sequence:
        parser.error(f"--size {args.size} leaves no room for the 24-byte sequence header "
                     "(use --no-sequence)")
    if args.display == "rich" and not args.quiet and not rich_available():
        parser.error("--display rich needs rich: pip install 'hotsock[cli]'")


# --- running -------------------------------------------------------------------

def _info(args):
    from . import features
    info = features()
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        for key, value in info.items():
            print(f"{key:22} {value}")
    return 0


def _say(args):
    if args.quiet:
        return lambda text: None
    return lambda text: print(text, file=sys.stderr, flush=True)


def _run(args, argv, latch):
    """capture, echo or blast: in this process, or as --workers; summary at the end."""
    from . import _cli_commands, _cli_progress, _cli_workers
    if args.worker_index is not None:
        return _cli_workers.worker_main(args, latch)     # reports to its parent only
    say = _say(args)
    display = (_cli_progress.NoDisplay() if args.quiet
               else _cli_progress.make_display(args.display, args.command))

    def on_ready(context):
        say(_cli_commands.opening_line(args, context, args.workers))

    per_worker = None
    try:
        if args.workers > 1:
            stats, per_worker, context = _cli_workers.run_workers(args, argv, display,
                                                                  on_ready, latch)
        else:
            progress = _cli_progress.LocalProgress(display) if display.active else None
            stats, context = _cli_commands.run(args, on_ready, progress, latch)
    except _cli_commands.CommandError as exc:
        # A full disk: the file ends with its last whole record, and the statistics of
        # the run so far are shown before the error line.
        if exc.stats is not None:
            display.close()
            for line in _cli_progress.closing_lines(exc.stats, exc.context or {}, args):
                say(line)
        raise
    finally:
        display.close()
    for line in _cli_progress.closing_lines(stats, context, args, per_worker):
        say(line)
    if args.json:
        print(json.dumps(_cli_commands.summary(args, stats, context, per_worker)), flush=True)
    return 0


def _error(message):
    print(f"hotsock: error: {message}", file=sys.stderr, flush=True)


def main(argv=None):
    """Run the ``hotsock`` command with *argv* (default ``sys.argv[1:]``); returns the exit
    status (see :data:`EXIT_STATUS`).  Usage errors exit through ``SystemExit(2)``."""
    from ._cli_commands import StopLatch
    # From the start: a SIGINT/SIGTERM while the command starts up is noted, and the run
    # then ends at once with its (empty) statistics and a complete file, as a later one would.
    latch = StopLatch()
    latch.install()
    try:
        return _main(sys.argv[1:] if argv is None else list(argv), latch)
    finally:
        latch.restore()


def _main(argv, latch):
    parser, subparsers = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command == "bench":
        latch.restore()
        from . import bench as bench_module
        return bench_module.main(rest)
    if rest:
        subparsers[args.command].error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command == "info":
        return _info(args)
    check(args, subparsers[args.command])

    from ._cli_commands import CommandError, UsageError, describe_error
    from ._cli_workers import WorkerFailed
    try:
        return _run(args, argv, latch)
    except UsageError as exc:
        subparsers[args.command].error(str(exc))
    except WorkerFailed as exc:
        _error(str(exc))
        return exc.status
    except BrokenPipeError:
        # The reader of stdout went away (hotsock capture --print | head): the run is over.
        # stdout now points at /dev/null so that the interpreter's final flush stays quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (CommandError, OSError) as exc:
        _error(describe_error(exc))
        return 1
    except KeyboardInterrupt:
        # Only where no handler of ours is in place (a caller's thread, say).
        return 130


if __name__ == "__main__":
    sys.exit(main())
