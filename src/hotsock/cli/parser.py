"""The ``hotsock`` command's options: argparse, and the one conversion of its result.

:func:`parse` is the only place that sees argparse's ``Namespace``: it checks
what argparse cannot express and turns it into one of the frozen option
objects of :mod:`hotsock.cli.options`.  Bounds, defaults and the help that
states them come from there (and so from the Python API and
``hotsock._limits``), never restated here.
"""
import argparse
import math

from .. import __version__, _limits
from . import wording
from .addresses import family_of, is_ip, is_multicast
from .display import rich_available
from .options import (
    DEFAULT_BATCH,
    DEFAULT_BLAST_SIZE,
    DEFAULT_FORMAT,
    DEFAULT_INTERVAL,
    DEFAULT_RCVBUF,
    DISPLAYS,
    FORMATS,
    MAX_BATCH,
    MAX_DATAGRAM,
    MAX_PORT,
    MAX_SNAPLEN,
    MAX_TTL,
    MAX_WORKERS,
    MIN_SNAPLEN,
    RECEIVERS,
    SEQUENCE_HEADER,
    BenchOptions,
    BlastOptions,
    CaptureOptions,
    EchoOptions,
    InfoOptions,
    LoopKind,
    guess_format,
)

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
    if not is_ip(text):
        raise argparse.ArgumentTypeError(f"not an IP address: {text!r}")
    return text


# --- the parser ----------------------------------------------------------------

def _receiver_options(parser):
    where = parser.add_argument_group("where to receive")
    where.add_argument("-p", "--port", type=_ranged(0, MAX_PORT, "port"), required=True,
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
                            f"default {wording.suffixed_size(DEFAULT_RCVBUF)} as tcpdump's, "
                            "or the socket's if larger)")
    where.add_argument("--reuseport", action="store_true",
                       help="set SO_REUSEPORT (always set with --workers)")


def _run_options(parser, loop):
    """The options capture, echo and blast share, and those of *loop*'s kind of loop."""
    limits = parser.add_argument_group("when to stop (default: on SIGINT/SIGTERM)")
    limits.add_argument("-c", "--count", type=_ranged(1, _limits.MAX_COUNT, "count"),
                        metavar="N", help="stop after N datagrams")
    limits.add_argument("--duration", type=_seconds_of("duration"), metavar="S",
                        help="stop after S seconds")
    if loop.receives:
        limits.add_argument("--idle", type=_seconds_of("idle"), metavar="S",
                            help="stop after S seconds without a datagram")
    out = parser.add_argument_group("output")
    out.add_argument("--json", action="store_true",
                     help="print the final summary as one JSON object on stdout")
    out.add_argument("-q", "--quiet", action="store_true",
                     help="nothing on stderr but errors (no live statistics, no summary)")
    out.add_argument("--interval", type=_interval, default=DEFAULT_INTERVAL, metavar="S",
                     help=f"live statistics every S seconds (default {DEFAULT_INTERVAL:g})")
    out.add_argument("--display", choices=DISPLAYS, default="auto",
                     help="live statistics: rich table, rewritten line, plain lines or none "
                          "(default auto: by whether stderr is a terminal)")
    tuning = parser.add_argument_group("performance")
    batch = _ranged(1, MAX_BATCH, "batch")
    if loop.receives:
        tuning.add_argument("--batch", type=batch, default=DEFAULT_BATCH, metavar="N",
                            help=f"datagrams per recvmmsg/sendmmsg (default {DEFAULT_BATCH})")
        tuning.add_argument("--size", type=_ranged(1, MAX_DATAGRAM, "size"),
                            default=MAX_DATAGRAM, metavar="N",
                            help="receive slot size; longer datagrams are cut and counted as "
                                 f"truncated (default {MAX_DATAGRAM})")
    else:
        tuning.add_argument("--batch", type=batch, metavar="N",
                            help=f"datagrams per sendmmsg (default {DEFAULT_BATCH}; "
                                 f"{MAX_BATCH} with GSO)")
    if loop is LoopKind.CAPTURE:
        # Off by default: the kernel's drop counter counts a dropped coalesced buffer
        # once, however many datagrams it held.
        tuning.add_argument("--gro", action="store_true",
                            help="coalesced receives (UDP_GRO, Linux; at the full --size): "
                                 "faster, but 'dropped by kernel' then counts coalesced "
                                 "buffers, not datagrams, and a --count may be passed by "
                                 "up to 127 datagrams")
    elif loop is LoopKind.ECHO:
        tuning.add_argument("--no-gro", action="store_true",
                            help="no coalesced receives (UDP_GRO, Linux; used by default "
                                 "at the full --size, and a --count may then be passed by "
                                 "up to 127 datagrams)")
    tuning.add_argument("--workers", type=_ranged(1, MAX_WORKERS, "workers"), default=1,
                        metavar="N", help="run N processes and sum their statistics (see below)")
    parser.add_argument("--worker-index", type=int, help=argparse.SUPPRESS)


def _format_help():
    guessed = ", ".join(f"{fmt} for a .{fmt} FILE" for fmt in FORMATS if fmt != DEFAULT_FORMAT)
    return f"file format (default: {guessed}, else {DEFAULT_FORMAT})"


def build_parser():
    """The ``hotsock`` argument parser; returns ``(parser, {command: subparser})``."""
    parser = argparse.ArgumentParser(
        prog="hotsock", description="Fast BSD socket I/O for Python: tools and benchmarks.",
        epilog=wording.EXIT_STATUS, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"hotsock {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    epilog = "\n\n".join([wording.WORKERS_NOTE, wording.OUTPUT_NOTE, wording.EXIT_STATUS])
    style = {"formatter_class": argparse.RawDescriptionHelpFormatter, "epilog": epilog}

    capture = commands.add_parser(
        LoopKind.CAPTURE.value, help="receive UDP into a pcap/pcapng file",
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
    sink.add_argument("--format", choices=tuple(FORMATS), help=_format_help())
    sink.add_argument("-s", "--snaplen", type=_ranged(MIN_SNAPLEN, MAX_SNAPLEN, "snaplen"),
                      metavar="N",
                      help=f"bytes kept per record, headers included (default {MAX_SNAPLEN})")
    _run_options(capture, LoopKind.CAPTURE)

    echo = commands.add_parser(
        LoopKind.ECHO.value, help="send every UDP datagram back",
        description="Send every datagram received on a port (and groups) back to its sender.",
        **style)
    _receiver_options(echo)
    echo.add_argument("--confirm", action="store_true",
                      help="send with MSG_CONFIRM (Linux: saves neighbour probes)")
    echo.add_argument("--no-gso", action="store_true",
                      help="send coalesced datagrams back one by one, not as one segmented "
                           "send (UDP_SEGMENT)")
    _run_options(echo, LoopKind.ECHO)

    blast = commands.add_parser(
        LoopKind.BLAST.value, help="send UDP datagrams, paced or flat out",
        description="Send datagrams to HOST PORT as fast as possible or at --rate. Each one\n"
                    "carries a sequence header (unless --no-sequence) from which capture and\n"
                    "echo count lost, duplicated and reordered datagrams.", **style)
    blast.add_argument("host", metavar="HOST", help="destination: address, name or group")
    blast.add_argument("port", metavar="PORT", type=_ranged(1, MAX_PORT, "port"),
                       help="destination port")
    what = blast.add_argument_group("what to send")
    what.add_argument("--size", type=_ranged(0, MAX_DATAGRAM, "size"),
                      default=DEFAULT_BLAST_SIZE, metavar="N",
                      help=f"payload bytes per datagram (default {DEFAULT_BLAST_SIZE}; at least "
                           f"{SEQUENCE_HEADER} with the sequence header)")
    what.add_argument("--rate", type=_rate, metavar="PPS",
                      help="datagrams per second, per worker (k/M suffixes; default: flat out)")
    what.add_argument("--no-sequence", action="store_true",
                      help="no sequence header: payloads are zeros")
    how = blast.add_argument_group("how to send")
    how.add_argument("--bind", type=_ip, metavar="ADDR", help="source address")
    how.add_argument("--ttl", type=_ranged(0, MAX_TTL, "ttl"), metavar="N",
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
    _run_options(blast, LoopKind.BLAST)

    # bench parses its own options (see hotsock.bench), so they pass through.
    bench = commands.add_parser(BenchOptions.command, add_help=False,
                                help="datagram throughput against the stdlib and plain C")
    info = commands.add_parser(InfoOptions.command, help="what this build and system provide")
    info.add_argument("--json", action="store_true", help="print as JSON")
    return parser, {LoopKind.CAPTURE.value: capture, LoopKind.ECHO.value: echo,
                    LoopKind.BLAST.value: blast, BenchOptions.command: bench,
                    InfoOptions.command: info}


# --- from the parser's result to the options ----------------------------------------

def check(args, error):
    """Cross-option checks argparse cannot express; *error*(message) (exit 2) on failure."""
    if args.command in RECEIVERS:
        first = args.group[0] if args.group else None
        for group in args.group or ():
            if not is_multicast(group):
                error(f"--group {group}: not a multicast address")
            if family_of(group) != family_of(first):
                error("--group: all groups must be of one family (IPv4 or IPv6)")
            if args.bind and family_of(args.bind) != family_of(group):
                error(f"--group {group} and --bind {args.bind} are of different families")
        if args.source and not args.group:
            error("--source needs --group (a source-specific join)")
        if args.source and family_of(args.source) != family_of(first):
            error("--source and --group are of different families")
        if args.interface is not None and not args.group:
            error("--interface needs --group (it is where groups are joined)")
        if args.workers > 1 and args.group:
            error("--workers with --group: the kernel gives every worker its own copy "
                  "of each multicast datagram (SO_REUSEPORT spreads unicast only)")
        if args.workers > 1 and args.port == 0:
            error("--workers needs a --port: workers share one port, and port 0 "
                  "would give each its own")
    if args.command == LoopKind.CAPTURE:
        if not args.write and (args.format or args.snaplen):
            error("--format and --snaplen apply to a capture file (-w FILE)")
        to_stdout = args.print or args.write == "-"
        if to_stdout and args.json:
            error("--json needs stdout, which --print / -w - take")
        if to_stdout and args.workers > 1:
            error("--workers cannot share stdout: use -w FILE")
    if args.command == LoopKind.BLAST and args.ttl == 0 and not (
            is_ip(args.host) and is_multicast(args.host)):
        error("--ttl 0 keeps datagrams on this host: for a multicast group only "
              f"(a unicast TTL is 1 to {MAX_TTL})")
    if args.command == LoopKind.BLAST and args.size < SEQUENCE_HEADER and not args.no_sequence:
        error(f"--size {args.size} leaves no room for the {SEQUENCE_HEADER}-byte sequence "
              "header (use --no-sequence)")
    if args.display == "rich" and not args.quiet and not rich_available():
        error("--display rich needs rich: pip install 'hotsock[cli]'")


def _run_fields(args):
    return dict(count=args.count, duration=args.duration, json=args.json, quiet=args.quiet,
                interval=args.interval, display=args.display, batch=args.batch,
                workers=args.workers, worker_index=args.worker_index)


def _receiver_fields(args):
    return dict(_run_fields(args), port=args.port, bind=args.bind, groups=tuple(args.group or ()),
                source=args.source, interface=args.interface, rcvbuf=args.rcvbuf,
                reuseport=args.reuseport, idle=args.idle, size=args.size)


def options_of(args):
    """The options object of a checked capture, echo or blast ``Namespace``."""
    if args.command == LoopKind.CAPTURE:
        return CaptureOptions(
            **_receiver_fields(args), gro=args.gro, write=args.write, print_each=args.print,
            format=args.format or guess_format(args.write),
            snaplen=MAX_SNAPLEN if args.snaplen is None else args.snaplen)
    if args.command == LoopKind.ECHO:
        return EchoOptions(**_receiver_fields(args), gro=not args.no_gro, confirm=args.confirm,
                           gso=not args.no_gso)
    return BlastOptions(
        **_run_fields(args), host=args.host, port=args.port, size=args.size, rate=args.rate,
        sequence=not args.no_sequence, bind=args.bind, ttl=args.ttl, interface=args.interface,
        multicast_loop=not args.no_loop, broadcast=args.broadcast, gso=args.gso)


def parse(argv):
    """*argv* (without the program name) as ``(options, usage_error)``: the command's
    options object, and the callable that reports a usage error of that command and exits
    with status 2.  Wrong usage exits here (``SystemExit(2)``); so do --help and --version
    (status 0)."""
    parser, subparsers = build_parser()
    args, rest = parser.parse_known_args(argv)
    usage_error = subparsers[args.command].error
    if args.command == BenchOptions.command:
        return BenchOptions(argv=tuple(rest)), usage_error
    if rest:
        usage_error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command == InfoOptions.command:
        return InfoOptions(json=args.json), usage_error
    check(args, usage_error)
    return options_of(args), usage_error
