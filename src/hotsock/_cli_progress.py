"""What the ``hotsock`` command shows on stderr: the live statistics and the closing lines.

A :class:`Meter` turns successive :class:`~hotsock.LoopStats` snapshots of one
loop into current rates.  A display shows the totals and rates every
interval, in one of four ways chosen by :func:`make_display`:

* ``plain``: one line per interval, for logs and pipes (stderr not a terminal);
* ``line``: one line rewritten in place (``\\r``) on a terminal;
* ``rich``: a table redrawn in place (a row per worker), with the optional
  ``cli`` extra (``pip install "hotsock[cli]"``, which installs rich);
* ``none``: nothing (``--quiet``).

:func:`closing_lines` words the final summary the way tcpdump's closing lines
read ("N packets captured", "N packets dropped by kernel").
"""
import importlib.util
import shutil
import signal as _signal
import sys
import time

# How the count of each command reads: a capture "captures", echo "echoes".
NOUNS = {"capture": "received", "echo": "echoed", "blast": "sent"}
DISPLAYS = ("auto", "rich", "line", "plain", "none")


def payload_bytes(stats):
    """Payload bytes handled by a loop: sent by blast, received by capture and echo."""
    return stats.sent_bytes if stats.kind == "blast" else stats.received_bytes


class Meter:
    """Current rates of one loop, from the difference between its last two snapshots.

    Each loop (each worker) needs its own meter: the snapshots of different
    workers are taken at different instants, so only per-loop differences
    are exact; the rates of several loops are then summed.
    """

    def __init__(self):
        self._last = None
        self.pps = 0.0
        self.bps = 0.0

    def update(self, stats):
        """Take a new snapshot; returns ``(datagrams per second, bits per second)``."""
        packets, octets = stats.packets, payload_bytes(stats)
        if self._last is None:
            span, done, moved = stats.elapsed, packets, octets
        else:
            elapsed, last_packets, last_octets = self._last
            span = stats.elapsed - elapsed
            done, moved = packets - last_packets, octets - last_octets
        if span > 0:
            self.pps, self.bps = done / span, moved * 8 / span
        self._last = (stats.elapsed, packets, octets)
        return self.pps, self.bps


def _count(n):
    return f"{n:,}"


def _rate(pps, bps):
    return f"{pps:,.0f} pkt/s, {bps / 1e6:,.2f} Mbit/s"


def status_text(total, pps, bps):
    """One line of live statistics: elapsed time, totals, rates and what went wrong."""
    parts = [f"{total.elapsed:6.1f} s", f"{_count(total.packets)} {NOUNS[total.kind]}",
             _rate(pps, bps)]
    if total.kind != "blast":
        parts += [f"{_count(total.dropped)} dropped", f"{_count(total.truncated)} truncated"]
    if total.sequenced:
        parts.append(f"{_count(total.lost)} lost")
        if total.duplicated or total.reordered:
            parts.append(f"{_count(total.duplicated)} dup, {_count(total.reordered)} reordered")
    if total.errors:
        parts.append(f"{_count(total.errors)} send errors")
    return ", ".join(parts)


class NoDisplay:
    """``--quiet``, ``--display none``: shows nothing."""

    active = False

    def update(self, total, pps, bps, workers=None):
        """Show the statistics so far (here: ignore them)."""

    def close(self):
        """End the display, leaving stderr ready for the closing lines."""


class PlainDisplay(NoDisplay):
    """One line per update, as a log file or a pipe wants it."""

    active = True

    def __init__(self, kind, stream):
        self.prefix = f"hotsock {kind}: "
        self.stream = stream

    def update(self, total, pps, bps, workers=None):
        """Write one line of statistics."""
        self.stream.write(self.prefix + status_text(total, pps, bps) + "\n")
        self.stream.flush()


class LineDisplay(PlainDisplay):
    """One line on a terminal, rewritten in place."""

    def __init__(self, kind, stream):
        super().__init__(kind, stream)
        self.shown = False

    def update(self, total, pps, bps, workers=None):
        """Rewrite the status line (cut to the terminal's width: a wrapped line
        could not be rewritten with a carriage return)."""
        width = shutil.get_terminal_size((100, 24)).columns - 1
        text = status_text(total, pps, bps)[:max(width, 10)]
        self.stream.write("\r" + text + "\x1b[K")
        self.stream.flush()
        self.shown = True

    def close(self):
        """Erase the status line, so that the closing lines start on a clean one."""
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.shown = False


class RichDisplay(NoDisplay):
    """A rich table redrawn in place: the totals, and a row per worker."""

    active = True

    def __init__(self, kind, stream):
        from rich.console import Console  # type: ignore[import-not-found]
        from rich.live import Live  # type: ignore[import-not-found]
        self.kind = kind
        self.console = Console(file=stream)
        # transient: the table goes away at the end, the closing lines stay.
        self.live = Live(console=self.console, auto_refresh=False, transient=True)
        self.started = False

    def _table(self, total, pps, bps, workers):
        from rich.table import Table  # type: ignore[import-not-found]
        table = Table(title=f"hotsock {self.kind}", title_justify="left", box=None,
                      header_style="bold")
        columns = ["", "elapsed", NOUNS[self.kind], "pkt/s", "Mbit/s"]
        if self.kind != "blast":
            columns += ["dropped", "truncated"]
        columns += ["lost", "errors"]
        for name in columns:
            table.add_column(name, justify="right")

        def row(label, stats, row_pps, row_bps, style=None):
            cells = [label, f"{stats.elapsed:.1f} s", _count(stats.packets),
                     f"{row_pps:,.0f}", f"{row_bps / 1e6:,.2f}"]
            if self.kind != "blast":
                cells += [_count(stats.dropped), _count(stats.truncated)]
            cells += [_count(stats.lost) if stats.sequenced else "-", _count(stats.errors)]
            # Problems stand out: red when anything was dropped, lost or refused.
            bad = stats.dropped or stats.lost or stats.errors
            table.add_row(*cells, style=style or ("red" if bad else None))

        for index, stats, row_pps, row_bps in workers or ():
            row(f"worker {index}", stats, row_pps, row_bps, style="dim")
        row("total", total, pps, bps, style="bold")
        return table

    def update(self, total, pps, bps, workers=None):
        """Redraw the table."""
        if not self.started:
            self.live.start()
            self.started = True
        self.live.update(self._table(total, pps, bps, workers), refresh=True)

    def close(self):
        """Take the table off the screen."""
        if self.started:
            self.live.stop()
            self.started = False


def rich_available():
    """Whether the optional rich package (the ``cli`` extra) can be imported."""
    return importlib.util.find_spec("rich") is not None


def make_display(mode, kind, stream=None):
    """The display for *mode* (one of :data:`DISPLAYS`) of command *kind*.

    ``auto`` picks rich on a terminal when it is installed, a line rewritten
    in place on a terminal otherwise, and plain lines when *stream* (stderr
    by default) is not a terminal.  Raises ``ImportError`` for ``rich`` when
    rich is not installed.
    """
    stream = sys.stderr if stream is None else stream
    if mode == "auto":
        try:
            tty = stream.isatty()
        except (AttributeError, ValueError):
            tty = False
        mode = ("rich" if rich_available() else "line") if tty else "plain"
    if mode == "none":
        return NoDisplay()
    if mode == "plain":
        return PlainDisplay(kind, stream)
    if mode == "line":
        return LineDisplay(kind, stream)
    return RichDisplay(kind, stream)


class LocalProgress:
    """The ``progress`` callback of a loop running in this process: meter and display."""

    def __init__(self, display):
        self.display = display
        self.meter = Meter()

    def __call__(self, stats):
        pps, bps = self.meter.update(stats)
        self.display.update(stats, pps, bps)


# --- closing lines -----------------------------------------------------------

def _signal_name(signum):
    try:
        return _signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _stop_reason(stats, args):
    if stats.stopped == "signal":
        return f"stopped by {_signal_name(stats.signal)}" if stats.signal else "stopped by a signal"
    if stats.stopped == "count":
        return f"stopped after --count {args.count}"
    if stats.stopped == "duration":
        return f"stopped after --duration {args.duration:g} s"
    if stats.stopped == "idle":
        return f"stopped after {args.idle:g} s idle"
    return None


def closing_lines(stats, context, args, per_worker=None):
    """The final summary, as tcpdump words its closing lines ("N packets captured",
    "N packets dropped by kernel"), adapted to each command."""
    kind = stats.kind
    totals = f"({_count(payload_bytes(stats))} bytes) in {stats.elapsed:.2f} s: " + _rate(
        stats.rate, payload_bytes(stats) * 8 / stats.elapsed if stats.elapsed > 0 else 0.0)
    if kind == "capture":
        where = context.get("files") or ([context["file"]] if context.get("file") else None)
        verb = "captured" if where else "received"
        head = f"{_count(stats.received)} packets {verb} {totals}"
    elif kind == "echo":
        head = f"{_count(stats.received)} packets echoed {totals}"
    else:
        head = f"{_count(stats.sent)} packets sent {totals}"
    lines = [head]
    if per_worker and len(per_worker) > 1:
        lines.append(f"{len(per_worker)} workers: "
                     + " + ".join(_count(w.packets) for w in per_worker))
    if kind == "capture" and where:
        lines.append("written to " + ", ".join(where))
    if kind != "blast":
        lines.append(f"{_count(stats.dropped)} packets dropped by kernel")
        lines.append(f"{_count(stats.truncated)} packets truncated (longer than --size "
                     f"{args.size})")
    if stats.errors:
        lines.append(f"{_count(stats.errors)} sends failed")
    if stats.sequenced:
        lines.append(f"{_count(stats.sequenced)} sequenced packets: {_count(stats.lost)} lost, "
                     f"{_count(stats.duplicated)} duplicated, {_count(stats.reordered)} reordered")
    reason = _stop_reason(stats, args)
    if reason:
        lines.append(reason)
    return lines


class Ticker:
    """When the next display update is due, at fixed multiples of *interval* from the start
    (no drift: a slow update does not push the later ones back)."""

    def __init__(self, interval, delay=0.0):
        self.interval = interval
        self.due = time.monotonic() + delay + interval

    def left(self):
        """Seconds until the next update is due (0 if it is)."""
        return max(0.0, self.due - time.monotonic())

    def ready(self):
        """True (once per interval) when an update is due."""
        now = time.monotonic()
        if now < self.due:
            return False
        while self.due <= now:
            self.due += self.interval
        return True
