"""Everything the ``hotsock`` command says: the notes of its help, the opening line,
the live statistics, the closing lines, the ``--json`` summary and the error line.

The closing lines read the way tcpdump words its own ("N packets captured",
"N packets dropped by kernel"), adapted to each command.
"""
import signal as _signal

from .options import LoopKind

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

# How the count of each command reads: a capture "captures", echo "echoes".
NOUNS = {LoopKind.CAPTURE: "received", LoopKind.ECHO: "echoed", LoopKind.BLAST: "sent"}


def prefix(command):
    """What starts the command's own lines on stderr: ``hotsock capture: ``."""
    return f"hotsock {command}: "


def error_line(message):
    """The one line of a run-time error (exit status 1)."""
    return f"hotsock: error: {message}"


def describe_error(exc):
    """One line for ``hotsock: error:`` from an exception (an OSError's strerror and file)."""
    if isinstance(exc, OSError) and exc.strerror:
        return (f"{exc.filename}: " if exc.filename else "") + exc.strerror
    return str(exc)


def failure(what, exc):
    """``what: reason`` for an operation that failed with *exc*."""
    reason = (exc.strerror or str(exc)) if isinstance(exc, OSError) else str(exc)
    return f"{what}: {reason}"


def count(n):
    """A count of datagrams, sends or bytes: 1,234,567."""
    return f"{n:,}"


def rates(pps, bps):
    """Datagrams and bits per second."""
    return f"{pps:,.0f} pkt/s, {bps / 1e6:,.2f} Mbit/s"


def byte_size(size):
    """A buffer size as people write it: 4 MiB, 416 KiB, 3000 bytes."""
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale and size % scale == 0:
            return f"{size // scale} {unit}"
    return f"{size} bytes"


def suffixed_size(size):
    """A size as the options take it: 2M, 256K, 3000."""
    for unit, scale in (("M", 1 << 20), ("K", 1 << 10)):
        if size >= scale and size % scale == 0:
            return f"{size // scale}{unit}"
    return str(size)


# --- while it runs -------------------------------------------------------------

def opening_line(options, context, workers=1):
    """The first line on stderr, as tcpdump's "listening on ...": where, what, how."""
    if not options.loop.receives:
        rate = f"at {options.rate:,g} pkt/s" if options.rate else "as fast as possible"
        text = (f"sending {options.size}-byte datagrams to {context['destination']} port "
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
        files = _files(context)
        if files:
            text += (f", writing {', '.join(files)} ({context['format']}, "
                     f"snapshot length {options.snaplen} bytes)")
        elif options.loop is LoopKind.CAPTURE:
            text += ", printing each datagram" if options.print_each else ", counting"
        if context.get("rcvbuf"):
            text += f", receive buffer {byte_size(context['rcvbuf'])}"
            if context.get("rmem_max"):
                text += (f" (capped by net.core.rmem_max = {context['rmem_max']}; "
                         "run as root or raise it for fewer drops)")
    if workers > 1:
        text += f", {workers} workers"
    return prefix(options.command) + text


def _files(context):
    """The capture files of a run (one per worker), or None."""
    return context.get("files") or ([context["file"]] if context.get("file") else None)


def status_text(total, pps, bps):
    """One line of live statistics: elapsed time, totals, rates and what went wrong."""
    loop = LoopKind(total.kind)
    parts = [f"{total.elapsed:6.1f} s", f"{count(total.packets)} {NOUNS[loop]}",
             rates(pps, bps)]
    if loop.receives:
        parts += [f"{count(total.dropped)} dropped", f"{count(total.truncated)} truncated"]
    if total.sequenced:
        parts.append(f"{count(total.lost)} lost")
        if total.duplicated or total.reordered:
            parts.append(f"{count(total.duplicated)} dup, {count(total.reordered)} reordered")
    if total.errors:
        parts.append(f"{count(total.errors)} send errors")
    return ", ".join(parts)


def table_title(kind):
    """The title of the live table."""
    return f"hotsock {kind}"


def table_columns(kind):
    """The live table's column headings."""
    loop = LoopKind(kind)
    columns = ["", "elapsed", NOUNS[loop], "pkt/s", "Mbit/s"]
    if loop.receives:
        columns += ["dropped", "truncated"]
    return columns + ["lost", "errors"]


def table_cells(label, stats, pps, bps):
    """One row of the live table (*label*: ``worker I`` or ``total``)."""
    cells = [label, f"{stats.elapsed:.1f} s", count(stats.packets), f"{pps:,.0f}",
             f"{bps / 1e6:,.2f}"]
    if LoopKind(stats.kind).receives:
        cells += [count(stats.dropped), count(stats.truncated)]
    return cells + [count(stats.lost) if stats.sequenced else "-", count(stats.errors)]


def worker_label(index):
    """How the live table names worker *index*'s row."""
    return f"worker {index}"


TOTAL_LABEL = "total"


# --- at the end ------------------------------------------------------------------

def _signal_name(signum):
    try:
        return _signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _stop_reason(stats, options):
    if stats.stopped == "signal":
        return f"stopped by {_signal_name(stats.signal)}" if stats.signal else "stopped by a signal"
    if stats.stopped == "count":
        return f"stopped after --count {options.count}"
    if stats.stopped == "duration":
        return f"stopped after --duration {options.duration:g} s"
    if stats.stopped == "idle":
        return f"stopped after {options.idle:g} s idle"
    return None


def closing_lines(stats, context, options, per_worker=None):
    """The final summary, as tcpdump words its closing lines ("N packets captured",
    "N packets dropped by kernel"), adapted to each command."""
    loop = LoopKind(stats.kind)
    moved = stats.payload_bytes
    totals = f"({count(moved)} bytes) in {stats.elapsed:.2f} s: " + rates(
        stats.rate, moved * 8 / stats.elapsed if stats.elapsed > 0 else 0.0)
    where = _files(context) if loop is LoopKind.CAPTURE else None
    if loop is LoopKind.CAPTURE:
        head = f"{count(stats.received)} packets {'captured' if where else 'received'} {totals}"
    elif loop is LoopKind.ECHO:
        head = f"{count(stats.received)} packets echoed {totals}"
    else:
        head = f"{count(stats.sent)} packets sent {totals}"
    lines = [head]
    if per_worker and len(per_worker) > 1:
        lines.append(f"{len(per_worker)} workers: "
                     + " + ".join(count(w.packets) for w in per_worker))
    if where:
        lines.append("written to " + ", ".join(where))
    if loop.receives:
        lines.append(f"{count(stats.dropped)} packets dropped by kernel")
        lines.append(f"{count(stats.truncated)} packets truncated (longer than --size "
                     f"{options.size})")
    if stats.errors:
        lines.append(f"{count(stats.errors)} sends failed")
    if stats.sequenced:
        lines.append(f"{count(stats.sequenced)} sequenced packets: {count(stats.lost)} lost, "
                     f"{count(stats.duplicated)} duplicated, {count(stats.reordered)} reordered")
    reason = _stop_reason(stats, options)
    if reason:
        lines.append(reason)
    return lines


def summary(options, stats, context, per_worker=None):
    """The ``--json`` summary: the statistics and what they are about."""
    result = {"command": options.command}
    result.update(context)
    result["workers"] = options.workers
    result.update(stats.as_dict())
    result["mbps"] = (stats.payload_bytes * 8 / stats.elapsed / 1e6
                      if stats.elapsed > 0 else 0.0)
    if per_worker and len(per_worker) > 1:
        result["worker_stats"] = [w.as_dict() for w in per_worker]
    return result
