"""The ``hotsock`` command's work: sockets built from the options, and the loops run on them.

:func:`run` takes the options object of ``capture``, ``echo`` or ``blast``
(see :mod:`hotsock.cli.options`) and runs that command in this process -- on
its own, or as one worker of ``--workers`` (``worker_index`` set).  It
returns the loop's :class:`~hotsock.LoopStats` and a *context* dict
(addresses, files, granted buffer size) for the opening line and the summary.
"""
import dataclasses
import errno
import os
import signal as _signal
import socket as _stdlib
import sys
import threading
import time

import hotsock
from hotsock import _loop_socket

from . import wording
from .addresses import family_of, interface_arg, is_multicast, receiver_host, sockaddr
from .options import LoopKind

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


def _fail(what, exc):
    return CommandError(wording.failure(what, exc))


# --- sockets -------------------------------------------------------------------

def open_receiver(options):
    """A bound UDP socket for capture/echo, joined to the groups, with the options asked for.

    Returns ``(socket, context)``.  SO_REUSEPORT is set with ``--reuseport``
    and for every worker of ``--workers`` (so that they share the port and the
    kernel spreads the senders over them).  Raises :class:`CommandError`.
    """
    host = receiver_host(options.bind, options.groups)
    family = family_of(host)
    sock = hotsock.socket(family, _stdlib.SOCK_DGRAM)
    granted = None
    try:
        if options.workers > 1 or options.reuseport:
            try:
                sock.set_reuse_port(True)
            except OSError as exc:
                raise _fail("SO_REUSEPORT", exc) from exc
        if options.groups:
            # Other listeners of the same groups (another tool, another hotsock) may share
            # the port.
            sock.set_reuse_address(True)
        if options.rcvbuf:
            try:
                granted = sock.set_recv_buffer(options.rcvbuf, force=True)
            except OSError as exc:
                raise _fail(f"receive buffer of {options.rcvbuf} bytes", exc) from exc
        else:
            # A capture tool's defaults must not be why it drops: a buffer like tcpdump's.
            _loop_socket.raise_recv_buffer(sock, _loop_socket.DEFAULT_RCVBUF)
        try:
            sock.bind(sockaddr(host, options.port, family))
        except OSError as exc:
            raise _fail(f"bind {host} port {options.port}", exc) from exc
        interface = interface_arg(options.interface)
        for group in options.groups:
            try:
                sock.join_group(group, interface, options.source)
            except (OSError, ValueError) as exc:
                on = f" on {options.interface}" if options.interface else ""
                src = f" from {options.source}" if options.source else ""
                raise _fail(f"join {group}{src}{on}", exc) from exc
        bound = sock.getsockname()
        context = {"address": bound[0], "port": bound[1]}
        if options.groups:
            context.update(groups=list(options.groups), source=options.source,
                           interface=options.interface)
        # As the kernel granted it (Linux doubles the request, caps it without privilege).
        context["rcvbuf"] = granted if granted is not None else sock.get_recv_buffer()
        capped = _loop_socket.recv_buffer_cap(options.rcvbuf or _loop_socket.DEFAULT_RCVBUF,
                                           context["rcvbuf"])
        if capped is not None:
            context["rmem_max"] = capped
        return sock, context
    except BaseException:
        sock.close()
        raise


def _sender_options(sock, options, multicast):
    """The TTL, multicast and broadcast options of blast's socket."""
    try:
        if options.broadcast:
            sock.set_broadcast(True)
        if multicast:
            if options.ttl is not None:
                sock.set_multicast_ttl(options.ttl)
            if options.interface is not None:
                sock.set_multicast_interface(interface_arg(options.interface))
            if not options.multicast_loop:
                sock.set_multicast_loop(False)
        elif options.ttl is not None:
            sock.set_ttl(options.ttl)
    except (OSError, ValueError) as exc:
        raise _fail("socket options", exc) from exc


def open_sender(options):
    """A UDP socket for blast, connected to HOST PORT, with the multicast and broadcast
    options asked for.  Returns ``(socket, context)``.

    Connected, so that the kernel resolves the route once and an ICMP port
    unreachable shows as failed sends (``errors``) instead of going unseen.
    Raises :class:`CommandError`, and :class:`UsageError` for multicast
    options with a destination that is not a group.
    """
    try:
        family = family_of(options.bind) if options.bind else 0
        infos = _stdlib.getaddrinfo(options.host, options.port, family, _stdlib.SOCK_DGRAM)
    except OSError as exc:
        raise _fail(options.host, exc) from exc
    family, _, _, _, destination = infos[0]
    multicast = is_multicast(destination[0])
    if not multicast and (options.interface is not None or not options.multicast_loop):
        raise UsageError(f"--interface and --no-loop set how multicast is sent; "
                         f"{destination[0]} is not a multicast group")
    sock = hotsock.socket(family, _stdlib.SOCK_DGRAM)
    try:
        _sender_options(sock, options, multicast)
        if options.bind:
            try:
                sock.bind(sockaddr(options.bind, 0, family))
            except OSError as exc:
                raise _fail(f"bind {options.bind}", exc) from exc
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
            context.update(ttl=sock.get_multicast_ttl(), interface=options.interface)
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


def _limits(options, latch):
    """The loop's stopping arguments: the options', or an instant after an early signal."""
    stopped = latch is not None and latch.signum is not None
    limits = ({"count": None, "duration": _INSTANT} if stopped
              else {"count": options.count, "duration": options.duration})
    if options.loop.receives:
        limits["idle"] = None if stopped else options.idle
    return limits


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


def run_capture(options, on_ready, progress, latch=None):
    """``hotsock capture``: receive on the bound socket into a pcap/pcapng file
    (-w), onto stdout (--print) or just count.  Returns ``(stats, context)``."""
    sock, context = open_receiver(options)
    with sock:
        path = options.write
        if path == "-":
            path = "/dev/stdout"
        elif path and options.worker_index is not None and options.workers > 1:
            path = indexed_path(path, options.worker_index)
        if path:
            context.update(file=options.write if options.write == "-" else path,
                           format=options.format, snaplen=options.snaplen)
            _probe_writable(path, context["file"])
            target = path
        elif options.print_each:
            target = Printer(sock)
        else:
            target = _count_only
        on_ready(context)
        try:
            stats = hotsock.capture(
                sock, target, format=options.format, snaplen=options.snaplen,
                size=options.size, batch=options.batch, gro=options.gro,
                progress=_with_kernel_drops(progress, sock),
                rcvbuf=None,        # open_receiver set it (and the opening line says so)
                interval=options.interval, **_limits(options, latch))
        except OSError as exc:
            # Opening the file (it carries the name) or writing it (a full disk).
            if path and (exc.filename is not None or exc.errno in _WRITE_ERRORS):
                error = _fail(f"writing {context['file']}", exc)
                error.stats, error.context = getattr(exc, "stats", None), context
                raise error from exc
            raise
    return _after(stats, latch), context


def run_echo(options, on_ready, progress, latch=None):
    """``hotsock echo``: send every datagram back to its sender.  Returns ``(stats, context)``."""
    sock, context = open_receiver(options)
    with sock:
        on_ready(context)
        stats = hotsock.echo(sock, batch=options.batch, size=options.size,
                             confirm=options.confirm, gro=options.gro, gso=options.gso,
                             progress=_with_kernel_drops(progress, sock),
                             interval=options.interval, **_limits(options, latch))
    return _after(stats, latch), context


def run_blast(options, on_ready, progress, latch=None):
    """``hotsock blast``: send datagrams to HOST PORT.  Returns ``(stats, context)``."""
    sock, context = open_sender(options)
    with sock:
        context.update(size=options.size, rate_limit=options.rate, sequence=options.sequence)
        on_ready(context)
        stats = hotsock.blast(sock, size=options.size, rate=options.rate, batch=options.batch,
                              sequence=options.sequence, gso=options.gso, progress=progress,
                              interval=options.interval, **_limits(options, latch))
    return _after(stats, latch), context


RUNNERS = {LoopKind.CAPTURE: run_capture, LoopKind.ECHO: run_echo, LoopKind.BLAST: run_blast}


def run(options, on_ready, progress, latch=None):
    """Run the command of *options* in this process.

    *on_ready(context)* is called once the socket is set up (bound, joined,
    connected) and just before the loop starts; *progress(stats)* about
    every ``options.interval`` seconds (or None).  Returns ``(stats, context)``.
    Raises :class:`CommandError` (and OSError) for failures at run time,
    :class:`UsageError` for contradicting options.
    """
    return RUNNERS[options.loop](options, on_ready, progress, latch)
