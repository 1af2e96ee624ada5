"""The ``hotsock`` command (also ``python -m hotsock``): :func:`main`.

* :mod:`~hotsock.cli.parser`: argparse, turned once into an options object;
* :mod:`~hotsock.cli.options`: those objects, one per command, and the facts they rest on;
* :mod:`~hotsock.cli.commands`: sockets built from the options, the loops run on them;
* :mod:`~hotsock.cli.workers`: ``--workers N``;
* :mod:`~hotsock.cli.display`: the live statistics on stderr;
* :mod:`~hotsock.cli.wording`: everything the command says;
* :mod:`~hotsock.cli.addresses`: address families, groups, interfaces.
"""
import json
import os
import sys

from . import commands, display, parser, wording, workers
from .options import BenchOptions, InfoOptions

__all__ = ["main"]


def _info(options):
    from .. import features
    info = features()
    if options.json:
        print(json.dumps(info, indent=2))
    else:
        for key, value in info.items():
            print(f"{key:22} {value}")
    return 0


def _say(options):
    if options.quiet:
        return lambda text: None
    return lambda text: print(text, file=sys.stderr, flush=True)


def _run(options, argv, latch):
    """capture, echo or blast: in this process, or as --workers; summary at the end."""
    if options.worker_index is not None:
        return workers.worker_main(options, latch)     # reports to its parent only
    say = _say(options)
    shown = (display.NoDisplay() if options.quiet
             else display.make_display(options.display, options.command))

    def on_ready(context):
        say(wording.opening_line(options, context, options.workers))

    per_worker = None
    try:
        if options.workers > 1:
            stats, per_worker, context = workers.run_workers(options, argv, shown, on_ready,
                                                             latch)
        else:
            progress = display.LocalProgress(shown) if shown.active else None
            stats, context = commands.run(options, on_ready, progress, latch)
    except commands.CommandError as exc:
        # A full disk: the file ends with its last whole record, and the statistics of
        # the run so far are shown before the error line.
        if exc.stats is not None:
            shown.close()
            for line in wording.closing_lines(exc.stats, exc.context or {}, options):
                say(line)
        raise
    finally:
        shown.close()
    for line in wording.closing_lines(stats, context, options, per_worker):
        say(line)
    if options.json:
        print(json.dumps(wording.summary(options, stats, context, per_worker)), flush=True)
    return 0


def _error(message):
    print(wording.error_line(message), file=sys.stderr, flush=True)


def main(argv=None):
    """Run the ``hotsock`` command with *argv* (default ``sys.argv[1:]``); returns the exit
    status (see :data:`~hotsock.cli.wording.EXIT_STATUS`).  Usage errors exit through
    ``SystemExit(2)``."""
    # From the start: a SIGINT/SIGTERM while the command starts up is noted, and the run
    # then ends at once with its (empty) statistics and a complete file, as a later one would.
    latch = commands.StopLatch()
    latch.install()
    try:
        return _main(sys.argv[1:] if argv is None else list(argv), latch)
    finally:
        latch.restore()


def _main(argv, latch):
    options, usage_error = parser.parse(argv)
    if isinstance(options, BenchOptions):
        latch.restore()
        from .. import bench
        return bench.main(list(options.argv))
    if isinstance(options, InfoOptions):
        return _info(options)
    try:
        return _run(options, argv, latch)
    except commands.UsageError as exc:
        usage_error(str(exc))
    except workers.WorkerFailed as exc:
        _error(str(exc))
        return exc.status
    except BrokenPipeError:
        # The reader of stdout went away (hotsock capture --print | head): the run is over.
        # stdout now points at /dev/null so that the interpreter's final flush stays quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (commands.CommandError, OSError) as exc:
        _error(wording.describe_error(exc))
        return 1
    except KeyboardInterrupt:
        # Only where no handler of ours is in place (a caller's thread, say).
        return 130
