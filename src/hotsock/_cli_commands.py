"""The ``hotsock`` command's work: sockets built from the options, and the loops run on them.

:func:`run` takes parsed arguments (see ``hotsock.__main__``) and runs
``capture``, ``echo`` or ``blast`` in this process -- on its own, or as one
worker of ``--workers`` (``args.worker_index`` set).  It returns the loop's
:class:`~hotsock.LoopStats` and a *context* dict (addresses, files, granted
buffer size) for the summary.
"""
import dataclasses
import errno
import ipaddress
import os
import signal as _signal
import socket as _stdlib
import sys
import threading
import time

import hotsock
from hotsock import _hotloops

# A stop signal that comes before the loop starts still gets the loop run, for this long:
# long enough to open and complete a capture file, too short to receive anything.
_INSTANT = 1e-6
_WRITE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO)


class CommandError(Exception):
    """A failure at run time, worded for one line after ``hotsock: error:`` (exit status 1).

    ``stats`` and ``context``: what the run got through before it failed (a full disk),
    for the closing lines; None if it never started."""

    stats = None
    context = None


class UsageError(Exception):
    """Options that contradict what the addresses turned out to be (exit status 2)."""


class StopLatch:
    """Remembers SIGINT/SIGTERM while no loop is running.

    The loops catch these signals themselves, but only while they run.  Before
    one starts (Python starting, the socket being set up) a signal would
    otherwise raise KeyboardInterrupt or kill the process, and a ``--workers``
    parent forwarding a signal to a worker that is still starting would lose
    that worker's statistics.  With the latch installed the signal is only
    noted, and :func:`run` then ends the run at once, cleanly.
    """

    SIGNALS = (_signal.SIGINT, _signal.SIGTERM)

    def __init__(self):
        self.signum = None
        self._previous = {}

    def _note(self, signum, frame):
        if self.signum is None:
            self.signum = signum

    def install(self):
        """Catch the stop signals from now on (in the main thread; elsewhere Python
        cannot set handlers, and nothing is changed)."""
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in self.SIGNALS:
            self._previous[signum] = _signal.signal(signum, self._note)

    def restore(self):
        """Give the stop signals back to the handlers found by :meth:`install`."""
        for signum, handler in self._previous.items():
            _signal.signal(signum, handler)
        self._previous.clear()


# --- addresses and sockets -----------------------------------------------------

def family_of(host):
    """AF_INET6 for an IPv6 literal (scope suffix ``%eth0`` allowed), AF_INET otherwise."""
    return _stdlib.AF_INET6 if ":" in host else _stdlib.AF_INET


def interface_arg(text):
    """An interface option as the typed socket options take it: an index or a name/address."""
    if text is None:
        return None
    return int(text) if text.isdigit() else text


def _sockaddr(host, port, family):
    # getaddrinfo, not a bare tuple: it parses IPv6 scope ids ("fe80::1%eth0").
    flags = _stdlib.AI_PASSIVE | _stdlib.AI_NUMERICHOST
    return _stdlib.getaddrinfo(host, port, family, _stdlib.SOCK_DGRAM, 0, flags)[0][4]


def describe_error(exc):
    """One line for ``hotsock: error:`` from an exception (an OSError's strerror and file)."""
    if isinstance(exc, OSError) and exc.strerror:
        return (f"{exc.filename}: " if exc.filename else "") + exc.strerror
    return str(exc)


def _fail(what, exc):
    reason = (exc.strerror or str(exc)) if isinstance(exc, OSError) else str(exc)
    return CommandError(f"{what}: {reason}")


def receiver_host(args):
    """The address a receiver binds: --bind, else the wildcard of the groups' family."""
    if args.bind:
        return args.bind
    if args.group and family_of(args.group[0]) == _stdlib.AF_INET6:
        return "::"
    return "0.0.0.0"


def open_receiver(args):
    """A bound UDP socket for capture/echo, joined to --group, with the options asked for.

    Returns ``(socket, context)``.  SO_REUSEPORT is set with ``--reuseport``
    and for every worker of ``--workers`` (so that they share the port and the
    kernel spreads the senders over them).  Raises :class:`CommandError`.
    """
    host = receiver_host(args)
    family = family_of(host)
    sock = hotsock.socket(family, _stdlib.SOCK_DGRAM)
    granted = None
    try:
        if args.workers > 1 or args.reuseport:
            try:
                sock.set_reuse_port(True)
            except OSError as exc:
                raise _fail("SO_REUSEPORT", exc) from exc
        if args.group:
            # Other listeners of the same groups (another tool, another hotsock) may share
            # the port.
            sock.set_reuse_address(True)
        if args.rcvbuf:
            try:
                granted = sock.set_recv_buffer(args.rcvbuf, force=True)
            except OSError as exc:
                raise _fail(f"receive buffer of {args.rcvbuf} bytes", exc) from exc
        else:
            # A capture tool's defaults must not be why it drops: a buffer like tcpdump's.
            _hotloops.raise_recv_buffer(sock, _hotloops.DEFAULT_RCVBUF)
        try:
            sock.bind(_sockaddr(host, args.port, family))
        except OSError as exc:
            raise _fail(f"bind {host} port {args.port}", exc) from exc
        interface = interface_arg(args.interface)
        for group in args.group or ():
            try:
                sock.join_group(group, interface, args.source)
            except (OSError, ValueError) as exc:
                on = f" on {args.interface}" if args.interface else ""
                src = f" from {args.source}" if args.source else ""
                raise _fail(f"join {group}{src}{on}", exc) from exc
        bound = sock.getsockname()
        context = {"address": bound[0], "port": bound[1]}
        if args.group:
            context.update(groups=list(args.group), source=args.source, interface=args.interface)
        # As the kernel granted it (Linux doubles the request, caps it without privilege).
        context["rcvbuf"] = granted if granted is not None else sock.get_recv_buffer()
        capped = _hotloops.recv_buffer_cap(args.rcvbuf or _hotloops.DEFAULT_RCVBUF,
                                           context["rcvbuf"])
        if capped is not None:
            context["rmem_max"] = capped
        return sock, context
    except BaseException:
        sock.close()
        raise


def _is_multicast(host):
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_multicast
    except ValueError:
        return False


def open_sender(args):
    """A UDP socket for blast, connected to HOST PORT, with the multicast and broadcast
    options asked for.  Returns ``(socket, context)``.

    Connected, so that the kernel resolves the route once and an ICMP port
    unreachable shows as failed sends (``errors``) instead of going unseen.
    Raises :class:`CommandError`, and :class:`UsageError` for multicast
    options with a destination that is not a group.
    """
    try:
        family = family_of(args.bind) if args.bind else 0
        infos = _stdlib.getaddrinfo(args.host, args.port, family, _stdlib.SOCK_DGRAM)
    except OSError as exc:
        raise _fail(args.host, exc) from exc
    family, _, _, _, destination = infos[0]
    multicast = _is_multicast(destination[0])
    if not multicast and (args.interface is not None or args.no_loop):
        raise UsageError(f"--interface and --no-loop set how multicast is sent; "
                         f"{destination[0]} is not a multicast group")
    sock = hotsock.socket(family, _stdlib.SOCK_DGRAM)
    try:
        try:
            if args.broadcast:
                sock.set_broadcast(True)
            if multicast:
                if args.ttl is not None:
                    sock.set_multicast_ttl(args.ttl)
                if args.interface is not None:
                    sock.set_multicast_interface(interface_arg(args.interface))
                if args.no_loop:
                    sock.set_multicast_loop(False)
            elif args.ttl is not None:
                sock.set_ttl(args.ttl)
        except (OSError, ValueError) as exc:
            raise _fail("socket options", exc) from exc
        if args.bind:
            try:
                sock.bind(_sockaddr(args.bind, 0, family))
            except OSError as exc:
                raise _fail(f"bind {args.bind}", exc) from exc
        try:
            sock.connect(destination)
        except OSError as exc:
            # EACCES: the kernel's answer for a broadcast address without SO_BROADCAST.
            hint = " (a broadcast address needs --broadcast)" if exc.errno == errno.EACCES else ""
            raise CommandError(f"connect {destination[0]} port {destination[1]}: "
                               f"{exc.strerror or exc}{hint}") from exc
        local = sock.getsockname()
        context = {"destination": destination[0], "port": destination[1],
                   "local": [local[0], local[1]]}
        if multicast:
            context.update(ttl=sock.get_multicast_ttl(), interface=args.interface)
        return sock, context
    except BaseException:
        sock.close()
        raise


def indexed_path(path, index):
    """Worker *index*'s file: the index inserted before the extension
    (``out.pcap`` -> ``out.0.pcap``, ``capture`` -> ``capture.0``)."""
    head, tail = os.path.split(path)
    stem, ext = os.path.splitext(tail)
    return os.path.join(head, f"{stem}.{index}{ext}")


def capture_format(args):
    """--format, else from the file's extension (``.pcapng``), else pcap."""
    if args.format:
        return args.format
    return "pcapng" if args.write and args.write.lower().endswith(".pcapng") else "pcap"


# --- the per-datagram printer (capture --print) --------------------------------

class Printer:
    """The ``--print`` callback: one tcpdump-style line per datagram on stdout."""

    def __init__(self, sock, stream=None):
        self.stream = sys.stdout if stream is None else stream
        self.host, self.port = sock.getsockname()[:2]

    def __call__(self, batch):
        lines = []
        stamps, lengths = batch.timestamps, batch.lengths
        for i in range(len(batch)):
            # The kernel's receive time when it gave one (SO_TIMESTAMPNS), else now.
            when = stamps[i] / 1e9 if stamps[i] else time.time()
            source = batch.address(i)
            target = batch.destination(i) or self.host
            flag = " [truncated]" if batch.truncated(i) else ""
            lines.append(f"{time.strftime('%H:%M:%S', time.localtime(when))}."
                         f"{int(when * 1e6) % 1000000:06d} {source[0]}.{source[1]} > "
                         f"{target}.{self.port}: UDP, length {lengths[i]}{flag}\n")
        self.stream.write("".join(lines))
        self.stream.flush()


def _count_only(batch):
    """capture without -w or --print: the datagrams are counted, nothing else."""


# --- running -------------------------------------------------------------------

def _with_kernel_drops(progress, sock):
    """*progress* with ``dropped`` read from the kernel's counter (/proc on Linux) as well:
    SO_RXQ_OVFL reports drops only along with a datagram, so a receiver that is
    losing everything would otherwise show none until the end."""
    if progress is None:
        return None
    baseline = hotsock.kernel_drops(sock)
    if baseline is None:
        return progress

    def report(stats):
        now = hotsock.kernel_drops(sock)
        if now is not None and now - baseline > stats.dropped:
            stats = dataclasses.replace(stats, dropped=now - baseline)
        progress(stats)
    return report


def _limits(args, latch):
    if latch is not None and latch.signum is not None:
        return {"count": None, "duration": _INSTANT, "idle": None}
    return {"count": args.count, "duration": args.duration, "idle": getattr(args, "idle", None)}


def _after(stats, latch):
    if latch is not None and latch.signum is not None and stats.stopped != "signal":
        # Stopped by the signal noted before the loop started (see StopLatch).
        stats = dataclasses.replace(stats, stopped="signal", signal=latch.signum)
    return stats


def _probe_writable(path, shown):
    """Fail now, before "listening on", if *path* cannot be written (capture opens it
    only when its loop starts).  Not for a FIFO or a device: an extra open and
    close would show an end of file to a reader (wireshark -k -i FIFO)."""
    try:
        if os.path.exists(path) and not os.path.isfile(path):
            return
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644))
    except OSError as exc:
        raise _fail(f"writing {shown}", exc) from exc


def run_capture(args, on_ready, progress, latch=None):
    """``hotsock capture``: receive on the bound socket into a pcap/pcapng file
    (-w), onto stdout (--print) or just count.  Returns ``(stats, context)``."""
    sock, context = open_receiver(args)
    with sock:
        fmt = capture_format(args)
        path = args.write
        if path == "-":
            path = "/dev/stdout"
        elif path and args.worker_index is not None and args.workers > 1:
            path = indexed_path(path, args.worker_index)
        if path:
            context.update(file=args.write if args.write == "-" else path, format=fmt,
                           snaplen=args.snaplen)
            _probe_writable(path, context["file"])
            target = path
        elif args.print:
            target = Printer(sock)
        else:
            target = _count_only
        on_ready(context)
        try:
            stats = hotsock.capture(
                sock, target, format=fmt, snaplen=args.snaplen, size=args.size,
                batch=args.batch, gro=args.gro, progress=_with_kernel_drops(progress, sock),
                rcvbuf=None,        # open_receiver set it (and the opening line says so)
                interval=args.interval, **_limits(args, latch))
        except OSError as exc:
            # Opening the file (it carries the name) or writing it (a full disk).
            if path and (exc.filename is not None or exc.errno in _WRITE_ERRORS):
                error = _fail(f"writing {context['file']}", exc)
                error.stats, error.context = getattr(exc, "stats", None), context
                raise error from exc
            raise
    return _after(stats, latch), context


def run_echo(args, on_ready, progress, latch=None):
    """``hotsock echo``: send every datagram back to its sender.  Returns ``(stats, context)``."""
    sock, context = open_receiver(args)
    with sock:
        on_ready(context)
        stats = hotsock.echo(sock, batch=args.batch, size=args.size, confirm=args.confirm,
                             gro=not args.no_gro, gso=not args.no_gso,
                             progress=_with_kernel_drops(progress, sock),
                             interval=args.interval, **_limits(args, latch))
    return _after(stats, latch), context


def run_blast(args, on_ready, progress, latch=None):
    """``hotsock blast``: send datagrams to HOST PORT.  Returns ``(stats, context)``."""
    sock, context = open_sender(args)
    with sock:
        context.update(size=args.size, rate_limit=args.rate, sequence=not args.no_sequence)
        on_ready(context)
        limits = _limits(args, latch)
        limits.pop("idle")
        stats = hotsock.blast(sock, size=args.size, rate=args.rate, batch=args.batch,
                              sequence=not args.no_sequence, gso=args.gso, progress=progress,
                              interval=args.interval, **limits)
    return _after(stats, latch), context


RUNNERS = {"capture": run_capture, "echo": run_echo, "blast": run_blast}


def run(args, on_ready, progress, latch=None):
    """Run ``args.command`` in this process.

    *on_ready(context)* is called once the socket is set up (bound, joined,
    connected) and just before the loop starts; *progress(stats)* about
    every ``args.interval`` seconds (or None).  Returns ``(stats, context)``.
    Raises :class:`CommandError` (and OSError) for failures at run time,
    :class:`UsageError` for contradicting options.
    """
    return RUNNERS[args.command](args, on_ready, progress, latch)


# --- what is shown -------------------------------------------------------------

def _bytes(size):
    """A buffer size as people write it: 4 MiB, 416 KiB, 3000 bytes."""
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale and size % scale == 0:
            return f"{size // scale} {unit}"
    return f"{size} bytes"


def opening_line(args, context, workers=1):
    """The first line on stderr, as tcpdump's "listening on ...": where, what, how."""
    if args.command == "blast":
        rate = f"at {args.rate:,g} pkt/s" if args.rate else "as fast as possible"
        text = (f"sending {args.size}-byte datagrams to {context['destination']} port "
                f"{context['port']} {rate}")
        if workers == 1:
            text += f", from {context['local'][0]} port {context['local'][1]}"
    else:
        text = f"listening on {context['address']} port {context['port']} (UDP)"
        if context.get("groups"):
            text += ", group " + ", ".join(context["groups"])
            if context.get("source"):
                text += f" from {context['source']}"
            if context.get("interface"):
                text += f" on {context['interface']}"
        files = context.get("files") or ([context["file"]] if context.get("file") else [])
        if files:
            text += (f", writing {', '.join(files)} ({context['format']}, "
                     f"snapshot length {args.snaplen} bytes)")
        elif args.command == "capture":
            text += ", printing each datagram" if args.print else ", counting"
        if context.get("rcvbuf"):
            text += f", receive buffer {_bytes(context['rcvbuf'])}"
            if context.get("rmem_max"):
                text += (f" (capped by net.core.rmem_max = {context['rmem_max']}; "
                         "run as root or raise it for fewer drops)")
    if workers > 1:
        text += f", {workers} workers"
    return f"hotsock {args.command}: {text}"


def summary(args, stats, context, per_worker=None):
    """The ``--json`` summary: the statistics and what they are about."""
    result = {"command": args.command}
    result.update(context)
    result["workers"] = args.workers
    result.update(stats.as_dict())
    result["mbps"] = ((stats.sent_bytes if stats.kind == "blast" else stats.received_bytes)
                      * 8 / stats.elapsed / 1e6 if stats.elapsed > 0 else 0.0)
    if per_worker and len(per_worker) > 1:
        result["worker_stats"] = [w.as_dict() for w in per_worker]
    return result
