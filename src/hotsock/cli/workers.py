"""``--workers N``: N processes running one command side by side, their statistics summed.

The parent starts N copies of the command line it was given, each with a
hidden ``--worker-index I``.  Receivers (capture, echo) all bind the same
port with SO_REUSEPORT, so the kernel spreads the senders over them (by a
hash of the addresses and ports: one sender always reaches the same
worker); blast workers each send from their own socket.

Each worker reports on its stdout, a pipe to the parent, one JSON object
per line::

    {"ready": context}                    socket set up; waiting for "go"
    {"progress": stats}                   every --interval
    {"final": stats, "context": context}  the loop ended
    {"error": "message", "status": 1|2}   it could not run

The parent writes ``go`` to every worker's stdin once all of them are ready,
so that their loops start together: a worker that started early cannot reach
its --idle or --duration before the last one is even listening.  A worker
that reads anything else (end of file: the parent failed or died) ends
without running.

The parent sums the statistics (:meth:`LoopStats.__add__`), shows them
live, and forwards SIGINT/SIGTERM to the workers, which run in their own
session so that a Ctrl-C on the terminal reaches the parent alone: the
parent then waits for every worker's final statistics.  A worker whose
parent died notices at its next progress report (the pipe is closed) and
ends its run, completing its capture file.
"""
import functools
import json
import operator
import os
import selectors
import signal as _signal
import subprocess
import sys
import time

from .._stats import LoopStats
from . import commands, wording
from .display import Meter, Ticker

# How often a stop signal is sent again to workers still running: one that
# arrived while a worker was starting, before its loop took over the signal
# handlers, is only noted by that worker's latch; a second one stops the loop.
RESEND_SECONDS = 0.5

# How long after the workers' reports the parent shows their sum (the reports cross a pipe).
REPORT_LAG = 0.05

# Starts a worker with this package importable as the parent imported it
# (its directory added only when the child's own path does not already hold
# it, so that the child's import order is otherwise Python's own).
_BOOT = ("import sys; p = sys.argv.pop(1); p in sys.path or sys.path.insert(0, p); "
         "from hotsock.cli import main; sys.exit(main(sys.argv[1:]))")


class WorkerFailed(Exception):
    """A worker could not run; *status* is the exit status the command should end with."""

    def __init__(self, message, status=1):
        super().__init__(message)
        self.status = status


# --- the worker side -----------------------------------------------------------

def _send(message):
    data = (json.dumps(message) + "\n").encode()
    while data:
        data = data[os.write(1, data):]


class _NoGo(Exception):
    """The parent did not say go."""


def _ready(context):
    _send({"ready": context})
    # A stop signal meanwhile is only noted (StopLatch): the read goes on, and the loop
    # then runs for an instant.
    if sys.stdin.buffer.readline().strip() != b"go":
        raise _NoGo()


def worker_main(options, latch):
    """Run one worker (``--worker-index`` given): the command, reported as JSON lines
    on stdout.  Returns the exit status."""
    try:
        stats, context = commands.run(
            options, on_ready=_ready, progress=lambda stats: _send({"progress": stats.as_dict()}),
            latch=latch)
        message, status = {"final": stats.as_dict(), "context": context}, 0
    except (_NoGo, BrokenPipeError):
        # The parent failed or is gone: nobody to report to (a capture file was completed).
        return 1
    except commands.UsageError as exc:
        message, status = {"error": str(exc), "status": 2}, 2
    except (commands.CommandError, OSError) as exc:
        message, status = {"error": wording.describe_error(exc), "status": 1}, 1
    try:
        _send(message)
    except BrokenPipeError:
        return 1
    return status


# --- the parent side -----------------------------------------------------------

class _Forwarder:
    """SIGINT/SIGTERM handlers of the parent: pass the signal on to the workers."""

    def __init__(self):
        self.signum = None
        self.pids = {}          # worker index -> pid, from "ready" to "final"
        self.sent_at = 0.0
        self._previous = {}

    def __enter__(self):
        for signum in (_signal.SIGINT, _signal.SIGTERM):
            self._previous[signum] = _signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            _signal.signal(signum, handler)

    def _handle(self, signum, frame):
        if self.signum is None:
            self.stop(signum)

    def stop(self, signum):
        """Stop every worker with *signum* (repeated by :meth:`resend` until they end)."""
        if self.signum is None:
            self.signum = signum
        self.resend(force=True)

    def resend(self, force=False):
        """Send the stop signal again to the workers still running, if it is time to."""
        if self.signum is None or (not force and time.monotonic() - self.sent_at < RESEND_SECONDS):
            return
        self.sent_at = time.monotonic()
        for pid in list(self.pids.values()):
            try:
                os.kill(pid, self.signum)
            except ProcessLookupError:
                pass


def _package_root():
    # This file is <root>/hotsock/cli/workers.py.
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def worker_argv(argv, command, index):
    """The command line of worker *index*: the parent's own, with ``--worker-index``."""
    rest = list(argv)
    position = rest.index(command)
    return rest[:position + 1] + ["--worker-index", str(index)] + rest[position + 1:]


def merge_contexts(contexts):
    """One context for the summary: the first worker's, with every worker's file (``files``)
    and, for blast, every worker's local address and port (``locals``)."""
    merged = dict(contexts[0])
    if "file" in merged:
        merged["files"] = [context["file"] for context in contexts]
        del merged["file"]
    if "local" in merged:
        merged["locals"] = [context["local"] for context in contexts]
        del merged["local"]
    return merged


class _Worker:
    """What the parent knows of one worker: its process, pipe buffer and last reports."""

    def __init__(self, index, process):
        self.index = index
        self.process = process
        self.buffer = b""
        self.meter = Meter()
        self.latest = None
        self.context = None
        self.final = None
        self.error = None


def run_workers(options, argv, display, on_ready, latch=None):
    """Run ``options.workers`` workers of the command given by *argv*; show their summed
    statistics on *display* every ``options.interval``; call *on_ready(context)* once
    all are set up.  A stop signal noted by *latch* (a :class:`StopLatch`) before
    this call stops the workers as soon as they are ready.
    Returns ``(total stats, [stats of each worker], context)``.
    Raises :class:`WorkerFailed` when a worker could not run (the others are stopped).
    """
    workers = []
    selector = selectors.DefaultSelector()
    blank = LoopStats(kind=options.command)
    # The handlers go in before the first worker starts: a Ctrl-C from then on is
    # forwarded, never a KeyboardInterrupt that would leave workers behind.
    with _Forwarder() as forwarder:
        if latch is not None and latch.signum is not None:
            forwarder.signum = latch.signum
        try:
            for index in range(options.workers):
                process = subprocess.Popen(
                    [sys.executable, "-c", _BOOT, _package_root(),
                     *worker_argv(argv, options.command, index)],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True)
                workers.append(_Worker(index, process))
                selector.register(process.stdout, selectors.EVENT_READ, workers[-1])
            _collect(options.interval, workers, selector, forwarder, display, on_ready, blank)
        except BaseException:
            # The parent itself failed: no worker may outlive it.
            for worker in workers:
                worker.process.kill()
            raise
        finally:
            for worker in workers:
                _close_quietly(worker.process.stdin)     # no "go" now: the worker ends
                worker.process.wait()
                worker.process.stdout.close()
            selector.close()
    failed = [w for w in workers if w.final is None]
    if failed:
        first = min(failed, key=lambda w: (w.error is None, w.index))
        if first.error is not None:
            message, status = first.error
        else:
            message, status = (f"exited with status {first.process.returncode} "
                               "without reporting its statistics"), 1
        raise WorkerFailed(f"worker {first.index}: {message}", status)
    finals = [w.final for w in workers]
    return functools.reduce(operator.add, finals), finals, merge_contexts(
        [w.context for w in workers])


def _collect(interval, workers, selector, forwarder, display, on_ready, blank):
    """Read the workers' reports until every one has closed its pipe."""
    ticker = None
    open_pipes = len(workers)
    while open_pipes:
        timeout = ticker.left() if ticker is not None and display.active else None
        if forwarder.signum is not None:
            timeout = RESEND_SECONDS if timeout is None else min(timeout, RESEND_SECONDS)
        for key, _ in selector.select(timeout):
            worker = key.data
            chunk = os.read(key.fd, 65536)
            if not chunk:
                selector.unregister(key.fileobj)
                forwarder.pids.pop(worker.index, None)
                open_pipes -= 1
                continue
            *lines, worker.buffer = (worker.buffer + chunk).split(b"\n")
            for line in lines:
                try:
                    message = json.loads(line)
                except ValueError:
                    # Not a report (something in the worker printed): shown, not fatal.
                    sys.stderr.write(line.decode(errors="replace") + "\n")
                    continue
                _receive(worker, message, forwarder, workers)
        if ticker is None and all(w.context is not None for w in workers):
            for worker in workers:
                _go(worker.process.stdin)
            on_ready(merge_contexts([w.context for w in workers]))
            # The workers report every interval from their start, which was just now: the
            # display follows a moment later, so that it shows their fresh reports.
            ticker = Ticker(interval, delay=REPORT_LAG)
        if ticker is not None and display.active and ticker.ready():
            rows = [(w.index, w.latest or blank, w.meter.pps, w.meter.bps) for w in workers]
            total = functools.reduce(operator.add, [row[1] for row in rows])
            display.update(total, sum(row[2] for row in rows), sum(row[3] for row in rows),
                           rows)
        forwarder.resend()


def _go(stdin):
    try:
        stdin.write(b"go\n")
    except BrokenPipeError:
        pass            # that worker is gone already: its pipe says how
    _close_quietly(stdin)


def _close_quietly(stdin):
    try:
        stdin.close()
    except BrokenPipeError:
        pass


def _receive(worker, message, forwarder, workers):
    if "progress" in message or "final" in message:
        stats = LoopStats.from_dict(message.get("final") or message["progress"])
        worker.meter.update(stats)
        worker.latest = stats
        if "final" in message:
            worker.final = stats
            worker.context = message["context"]
            # It is ending: no more signals for it.
            forwarder.pids.pop(worker.index, None)
    elif "ready" in message:
        worker.context = message["ready"]
        # Signals go to a worker once it is ready: its handlers are in place from then on
        # (a worker still starting would be killed by one, statistics lost).
        forwarder.pids[worker.index] = worker.process.pid
        if forwarder.signum is not None:
            forwarder.resend(force=True)
    elif "error" in message:
        worker.error = (message["error"], message.get("status", 1))
        forwarder.pids.pop(worker.index, None)
        # One worker cannot run: the command fails, the others are stopped cleanly
        # (those that are running by a signal, those waiting for "go" by its absence).
        forwarder.stop(_signal.SIGTERM)
        for other in workers:
            _close_quietly(other.process.stdin)
