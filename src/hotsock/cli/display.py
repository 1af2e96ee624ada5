"""What the ``hotsock`` command shows on stderr while it runs: the live statistics.

A :class:`Meter` turns successive :class:`~hotsock.LoopStats` snapshots of one
loop into current rates.  A display shows the totals and rates every
interval, in one of the ways of :data:`~hotsock.cli.options.DISPLAYS`,
chosen by :func:`make_display`:

* ``plain``: one line per interval, for logs and pipes (stderr not a terminal);
* ``line``: one line rewritten in place (``\\r``) on a terminal;
* ``rich``: a table redrawn in place (a row per worker), with the optional
  ``cli`` extra (``pip install "hotsock[cli]"``, which installs rich);
* ``none``: nothing (``--quiet``).

The words and numbers shown are :mod:`hotsock.cli.wording`'s.
"""
import importlib.util
import shutil
import sys
import time

from . import wording


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
        packets, octets = stats.packets, stats.payload_bytes
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
        self.prefix = wording.prefix(kind)
        self.stream = stream

    def update(self, total, pps, bps, workers=None):
        """Write one line of statistics."""
        self.stream.write(self.prefix + wording.status_text(total, pps, bps) + "\n")
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
        text = wording.status_text(total, pps, bps)[:max(width, 10)]
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
        table = Table(title=wording.table_title(self.kind), title_justify="left", box=None,
                      header_style="bold")
        for name in wording.table_columns(self.kind):
            table.add_column(name, justify="right")

        def row(label, stats, row_pps, row_bps, style=None):
            # Problems stand out: red when anything was dropped, lost or refused.
            bad = stats.dropped or stats.lost or stats.errors
            table.add_row(*wording.table_cells(label, stats, row_pps, row_bps),
                          style=style or ("red" if bad else None))

        for index, stats, row_pps, row_bps in workers or ():
            row(wording.worker_label(index), stats, row_pps, row_bps, style="dim")
        row(wording.TOTAL_LABEL, total, pps, bps, style="bold")
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
    """The display for *mode* (one of :data:`~hotsock.cli.options.DISPLAYS`) of command
    *kind*.

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
