"""The hot loops: :func:`capture`, :func:`echo` and :func:`blast`.

Each one checks its arguments, prepares the socket (the options that make
the kernel report timestamps, destinations and drops) and the signal
handlers, then hands over to a compiled loop (``_capture``, ``_echo``,
``_blast``) that runs with the GIL released and no Python object per
datagram.  All three return a :class:`LoopStats`.

Stopping: by *count*, *duration* (seconds), *idle* (seconds without a
datagram; capture and echo) or a signal.  While a loop runs in the main
thread, SIGINT and SIGTERM (*stop_signals*) end it cleanly: a capture file
is completed, and the statistics are returned with ``stopped == "signal"``.
Pass ``stop_signals=()`` to leave the handlers alone (Ctrl-C then raises
``KeyboardInterrupt`` -- after the capture file has been completed).
"""
import _signal as _c_signal
import os
import signal as _signal
import socket as _stdlib
import threading

from . import _blast, _capture, _echo, _features, _limits
from ._driver import Run
from ._features import MAX_BATCH
from ._loop_socket import (
    DEFAULT_RCVBUF,
    _family,
    _needs_destination,
    _options_restored,
    _reception_options,
    _type,
    kernel_drops,
)
from ._recv import RecvBatch, _loop_batch, _return_batch
from ._state import gso_usable
from ._stats import LoopKind

DEFAULT_STOP_SIGNALS = (_signal.SIGINT, _signal.SIGTERM)
MAX_DATAGRAM = 65535        # the largest UDP payload (IPv6 without jumbograms)
MAX_SNAPLEN = _capture.MAX_SNAPLEN      # as tcpdump's default; the writer's limit
MIN_SNAPLEN = _capture.MIN_SNAPLEN      # an IPv6 and a UDP header


# --- arguments ---------------------------------------------------------------

def _datagram_socket(sock, caller, families=None):
    """(socket object, fd) for *sock*, a socket object or a descriptor."""
    if isinstance(sock, int) and not isinstance(sock, bool):
        duplicate = os.dup(sock)
        try:
            sock = _stdlib.socket(fileno=duplicate)    # a view; family and type read from it
        except BaseException:
            os.close(duplicate)
            raise
        owned = sock
    elif hasattr(sock, "fileno") and hasattr(sock, "family"):
        owned = None
    else:
        raise TypeError(f"{caller}() needs a socket or a file descriptor, "
                        f"not {type(sock).__name__}")
    try:
        if sock.fileno() < 0:
            raise OSError(9, "Bad file descriptor")
        if _type(sock) != _stdlib.SOCK_DGRAM:
            raise ValueError(f"{caller}() needs a datagram (SOCK_DGRAM) socket")
        if families is not None and _family(sock) not in families:
            raise ValueError(f"{caller}() needs an AF_INET or AF_INET6 socket")
    except BaseException:
        if owned is not None:
            owned.close()
        raise
    return sock, owned


def _positive_int(name, value, upper=_limits.MAX_COUNT, optional=True):
    if value is None and optional:
        return None
    return _limits.integer(name, value, upper)


def _positive_seconds(name, value):
    return None if value is None else _limits.seconds(name, value)


def _run(kind, sock, count, duration, idle, progress, interval, drops_baseline=0):
    count = _positive_int("count", count)
    duration = _positive_seconds("duration", duration)
    idle = _positive_seconds("idle", idle)
    interval = _limits.interval(interval)
    if progress is not None and not callable(progress):
        raise TypeError("progress must be callable")
    run = Run(kind, count, duration, idle, progress, interval,
              drops_baseline=drops_baseline or 0)
    run.follow(sock)        # a close from another thread ends the loop with EBADF
    return run


def _use_gro(gro, size):
    """Coalesced receives need 64 KiB buffers: only at the full datagram size."""
    return bool(gro) and size >= MAX_DATAGRAM and _features.gro_enabled()


# --- signals -----------------------------------------------------------------

class _stopping_on:
    """While the body runs, *signals* are noted in ``run.signals`` -- and only
    noted: the compiled loop sees the note at its next check and ends
    cleanly; a signal before it starts ends it at once, one after it ended
    changes nothing.  Outside the main thread handlers cannot be set:
    nothing is changed."""

    __slots__ = ("signals", "noted", "previous")

    def __init__(self, signals, run):
        self.signals = signals
        self.noted = run.signals
        self.previous = {}

    def _note(self, signum, frame):
        self.noted.append(signum)

    def __enter__(self):
        if not self.signals or threading.current_thread() is not threading.main_thread():
            return self
        # The C module's signal(): the signal module's wrapper converts numbers
        # and handlers to enum members and back, ten times the cost of the call.
        try:
            for signum in self.signals:
                self.previous[signum] = _c_signal.signal(signum, self._note)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc_info):
        for signum, old in self.previous.items():
            _c_signal.signal(signum, old)
        self.previous.clear()
        return False


# --- the loops ---------------------------------------------------------------

def capture(sock, path_or_callback, *, format="pcap", count=None, duration=None, idle=None,
            snaplen=MAX_SNAPLEN, size=MAX_DATAGRAM, batch=64, gro=False, progress=None,
            interval=1.0, stop_signals=DEFAULT_STOP_SIGNALS, bufsize=1 << 20,
            rcvbuf=DEFAULT_RCVBUF):
    """capture(sock, path_or_callback, *, format="pcap", count=None, duration=None, idle=None,
        snaplen=262144, size=65535, batch=64, gro=False, progress=None, interval=1.0,
        stop_signals=(SIGINT, SIGTERM), bufsize=1 MiB, rcvbuf=2 MiB) -> LoopStats

    Receive every datagram on UDP socket *sock* (bound by the caller, joined
    to its groups) and write it to the file *path_or_callback* as a pcap
    (``format="pcap"``, nanosecond timestamps) or pcapng file that Wireshark
    and tcpdump read: link type RAW with synthesized IPv4/IPv6 and UDP
    headers carrying the real source and destination addresses and ports,
    and the kernel's receive timestamp (SO_TIMESTAMPNS).  A pcapng file ends
    with an interface statistics block (received and dropped counts).
    Records hold at most *snaplen* bytes (headers included); datagrams
    longer than *size* are cut and counted as ``truncated``.

    With a callable instead of a path, ``callback(batch)`` gets each
    :class:`RecvBatch` as it is received (payloads, addresses,
    ``timestamps``, ``destination(i)``, ``dropped``), valid during the call.

    *gro* (Linux): take coalesced buffers (UDP_GRO) where the system offers
    them -- many datagrams of one sender per receive -- and record each
    datagram as its own record, as it was sent (only at the full *size*:
    coalesced buffers need 64 KiB).  Off by default, because the kernel
    then counts a dropped coalesced buffer as one drop however many
    datagrams it held, so ``dropped`` would undercount; and a run may pass
    *count* by up to 127 datagrams (a buffer is never split between runs).

    *rcvbuf*: the receive buffer asked for during the capture, in bytes
    (default 2 MiB, as tcpdump's; SO_RCVBUFFORCE where permitted, else
    SO_RCVBUF, which ``net.core.rmem_max`` caps) -- a buffer already larger
    is kept; None leaves the buffer alone.  The socket's buffer, and the
    options the capture turns on (SO_TIMESTAMPNS, SO_RXQ_OVFL, IP_PKTINFO /
    IPV6_RECVPKTINFO, UDP_GRO), are put back as they were at the end.

    Writes are buffered (*bufsize*) and hold whole records only, flushed at
    least every 50 ms, in ``write()`` calls that each end on a record
    boundary and cross no page boundary of the file unless one record does
    (Linux lets a kill cut a write only there): after a hard kill the file
    ends on a whole record -- unless the kill lands while the kernel copies
    the first part of a record that itself spans a page boundary, which cuts
    that last record (measured: a few kills in a hundred during a flood of
    1400-byte datagrams; readers report it as cut short after reading every
    record before it).  If a write fails (a full disk: ENOSPC), the partial
    write is cut off again (``ftruncate``), so the file ends with its last
    whole record (and in pcapng its statistics block, when it still fits),
    and the ``OSError`` carries the run's :class:`LoopStats` as ``stats``.

    *count* is at most 2**63 - 1; *duration* and *idle* at most 1e9
    seconds; *interval* from 1e-9 to 1e9 seconds.
    Returns a :class:`LoopStats` (received, bytes, dropped by the kernel,
    truncated, and lost/duplicated/reordered for :func:`blast` streams).
    """
    sock, owned = _datagram_socket(sock, "capture", (_stdlib.AF_INET, _stdlib.AF_INET6))
    try:
        if format not in _capture.FORMATS:
            raise ValueError(f"format must be {' or '.join(map(repr, _capture.FORMATS))}, "
                             f"not {format!r}")
        _positive_int("snaplen", snaplen, MAX_SNAPLEN, optional=False)
        if snaplen < MIN_SNAPLEN:
            raise ValueError(f"snaplen must be at least {MIN_SNAPLEN} (the headers), not {snaplen}")
        _positive_int("size", size, MAX_DATAGRAM, optional=False)
        _positive_int("batch", batch, MAX_BATCH, optional=False)
        _positive_int("bufsize", bufsize, 1 << 30, optional=False)
        if callable(path_or_callback):
            callback, path = path_or_callback, None
        elif isinstance(path_or_callback, (str, bytes, os.PathLike)):
            callback, path = None, path_or_callback
        else:
            raise TypeError("capture() writes to a path (str, bytes or os.PathLike) or calls "
                            f"a callable, not {type(path_or_callback).__name__}")
        if rcvbuf is not None:
            _positive_int("rcvbuf", rcvbuf, (1 << 31) - 1)
        run = _run(LoopKind.CAPTURE, sock, count, duration, idle, progress, interval,
                   kernel_drops(sock))
        options = _reception_options(sock, callback is not None or _needs_destination(sock))
        if callback is not None:
            # The callback sees the batch: its own, never one a later run reuses.
            slots = RecvBatch(batch, size, gro=_use_gro(gro, size))
            with _stopping_on(stop_signals, run), _options_restored(sock, options, rcvbuf):
                with _stats_on_error(run, sock):
                    _capture.capture_batches(sock.fileno(), slots, run, callback)
            return run.stats(kernel_drops(sock))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0),
                     0o644)
        slots = _loop_batch(batch, size, _use_gro(gro, size))
        try:
            writer = _capture.CaptureFile(fd, _capture.FORMATS[format], snaplen,
                                          max(bufsize, snaplen + 256))
            with _stopping_on(stop_signals, run), _options_restored(sock, options, rcvbuf):
                return _write_capture(writer, sock, slots, run)
        finally:
            _return_batch(slots)
            os.close(fd)
    finally:
        if owned is not None:
            owned.close()


def _write_capture(writer, sock, slots, run):
    """Run *writer* and complete its file whatever ended the loop (KeyboardInterrupt
    too).  An OSError (a full disk) carries the statistics as ``stats``; the file
    then ends with its last whole record (and, in pcapng, the statistics block if
    there was room for it)."""
    try:
        writer.run(sock.fileno(), slots, run)
    except BaseException as exc:
        stats = run.stats(kernel_drops(sock))
        if isinstance(exc, OSError):
            exc.stats = stats
        try:
            writer.close(stats.received, stats.dropped)
        except OSError:
            pass        # the error that ended the loop is the one to report
        raise
    stats = run.stats(kernel_drops(sock))
    try:
        writer.close(stats.received, stats.dropped)
    except OSError as exc:
        exc.stats = stats
        raise
    return stats


class _stats_on_error:
    """An OSError that ends a loop carries the run's statistics as ``stats``."""

    __slots__ = ("run", "sock")

    def __init__(self, run, sock=None):
        self.run = run
        self.sock = sock

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, traceback):
        if isinstance(exc, OSError):
            exc.stats = self.run.stats(kernel_drops(self.sock) if self.sock is not None else None)
        return False


def echo(sock, *, count=None, duration=None, idle=None, batch=64, size=MAX_DATAGRAM,
         confirm=False, gro=True, gso=True, progress=None, interval=1.0,
         stop_signals=DEFAULT_STOP_SIGNALS):
    """echo(sock, *, count=None, duration=None, idle=None, batch=64, size=65535, confirm=False,
        gro=True, gso=True, progress=None, interval=1.0, stop_signals=(SIGINT, SIGTERM)) -> LoopStats

    Send every datagram received on datagram socket *sock* back to its
    sender: ``recvmmsg`` of up to *batch*, then one ``sendmmsg`` from the
    same memory, with no Python code per datagram.  *confirm* adds
    ``MSG_CONFIRM`` (Linux: the sender's neighbour entry is confirmed by the
    exchange, saving ARP probes).  Datagrams longer than *size* are echoed
    cut and counted as ``truncated``.  *count* counts datagrams received
    (each is echoed); sends the network refuses are counted in ``errors``.

    *gro* and *gso* (Linux): take coalesced buffers (UDP_GRO) and send each
    back as one segmented send (UDP_SEGMENT) with the segment size it came
    with, where the system offers them; if the kernel refuses a segmented
    send, the loop goes on datagram by datagram and nothing is lost.  With
    GRO the kernel counts a dropped coalesced buffer as one drop in
    ``dropped`` (pass ``gro=False`` to count datagrams exactly).

    A reply that cannot go to its sender -- an AF_UNIX sender without an
    address (ENOTCONN), one gone since (ECONNREFUSED, ENOENT), an ICMP error
    -- is counted in ``errors`` and the loop goes on.  SO_RXQ_OVFL and
    UDP_GRO are put back as they were at the end.  The receive buffer is
    left as the caller set it (a server's own choice; ``hotsock echo`` asks
    for 2 MiB, as :func:`capture` does).  An ``OSError`` that ends
    the loop carries the run's :class:`LoopStats` as ``stats``.  Bounds as
    for :func:`capture`.
    """
    sock, owned = _datagram_socket(sock, "echo")
    try:
        _positive_int("batch", batch, MAX_BATCH, optional=False)
        _positive_int("size", size, MAX_DATAGRAM, optional=False)
        run = _run(LoopKind.ECHO, sock, count, duration, idle, progress, interval,
                   kernel_drops(sock))
        segmented = bool(gso) and gso_usable(sock, _family(sock))
        # Coalesced buffers only when they can go back whole, or one by one
        # was asked for: a GRO batch costs 64 KiB per buffer.
        slots = _loop_batch(batch, size, _use_gro(gro, size))
        options = [(_stdlib.SOL_SOCKET, _features.SO_RXQ_OVFL)] if _features.SO_RXQ_OVFL else []
        try:
            with _stopping_on(stop_signals, run), _options_restored(sock, options):
                with _stats_on_error(run, sock):
                    _echo.echo_loop(sock.fileno(), slots, run, bool(confirm), segmented)
        finally:
            _return_batch(slots)
        return run.stats(kernel_drops(sock))
    finally:
        if owned is not None:
            owned.close()


SEQUENCE_HEADER = _features.SEQUENCE_HEADER


def blast(sock, address=None, *, size=64, count=None, duration=None, rate=None, batch=None,
          sequence=True, gso=None, progress=None, interval=1.0,
          stop_signals=DEFAULT_STOP_SIGNALS):
    """blast(sock, address=None, *, size=64, count=None, duration=None, rate=None, batch=None,
        sequence=True, gso=None, progress=None, interval=1.0, stop_signals=(SIGINT,
        SIGTERM)) -> LoopStats

    Send *size*-byte datagrams to *address* (or the connected peer) as fast
    as ``sendmmsg`` goes, or at *rate* datagrams per second: the loop sends
    what is due by the clock and sleeps until the next one is due (bursts
    of at most *batch*).  Stops after *count* datagrams, sent or refused
    (``sent + errors``: a destination that refuses everything cannot keep
    the run going, as ``ping -c`` counts what it transmits), after
    *duration* seconds, or on a signal; at least one of them is needed
    outside the main thread.

    With *sequence* (the default), each payload starts with a 24-byte header
    in network byte order -- ``b"HSQ1"``, a random 32-bit stream id, a
    64-bit sequence number from 0 and the send time (64-bit ns since the
    epoch) -- from which :func:`capture` and :func:`echo` (or any receiver)
    count lost, duplicated and reordered datagrams.

    *gso* (Linux, UDP): send up to 64 datagrams per segmented send
    (UDP_SEGMENT).  None: when *size* fits any 1500-byte path MTU (1472
    bytes over IPv4, 1452 over IPv6); True: any size; False: never.  If the
    kernel refuses, the loop goes on with plain sends and loses nothing.
    *batch*: datagrams per syscall (default 1024 with GSO, else 64).
    *rate* is from 1e-9 to 1e15 datagrams per second; other bounds as for
    :func:`capture`.  An ``OSError`` that ends the loop carries the run's
    :class:`LoopStats` as ``stats``.
    """
    sock, owned = _datagram_socket(sock, "blast")
    try:
        _limits.integer("size", size, MAX_DATAGRAM, low=0)
        if sequence and size < SEQUENCE_HEADER:
            raise ValueError(f"size must be at least {SEQUENCE_HEADER} to carry the sequence "
                             f"header (or pass sequence=False), not {size}")
        if gso is not None and not isinstance(gso, bool):
            raise TypeError(f"gso must be True, False or None, not {type(gso).__name__}")
        segmented = (gso is not False and size > 0
                     and gso_usable(sock, _family(sock))
                     and (gso is True or size <= _features.SAFE_SEGMENT[_family(sock)]))
        if batch is None:
            batch = MAX_BATCH if segmented else 64
        _positive_int("batch", batch, MAX_BATCH, optional=False)
        if rate is not None:
            rate = _limits.rate(rate)
        if (count is None and duration is None
                and threading.current_thread() is not threading.main_thread()):
            raise ValueError("blast() outside the main thread needs count or duration "
                             "(signals cannot stop it there)")
        run = _run(LoopKind.BLAST, sock, count, duration, None, progress, interval)
        stream = int.from_bytes(os.urandom(4), "big")
        with _stopping_on(stop_signals, run), _stats_on_error(run):
            _blast.blast_loop(sock.fileno(), _family(sock), address, run, size, batch,
                              rate or 0.0, stream, bool(sequence), segmented)
        return run.stats()
    finally:
        if owned is not None:
            owned.close()
