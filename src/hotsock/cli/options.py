"""What the ``hotsock`` command was asked to do: one frozen dataclass per command.

:mod:`hotsock.cli.parser` builds these from argparse's result, once; every
other part of the command reads only them.  The bounds and defaults the
command shares with the Python API are taken from it here (its names, and
the defaults of ``hotsock.capture``/``echo``/``blast``), never restated.
"""
import dataclasses
import inspect
from typing import ClassVar, Optional, Tuple

from .. import _hotloops
from .._capture import FORMATS
from .._features import MAX_BATCH
from .._hotloops import MAX_DATAGRAM, MAX_SNAPLEN, MIN_SNAPLEN, SEQUENCE_HEADER
from .._loop_socket import DEFAULT_RCVBUF
from .._stats import LoopKind

__all__ = [
    "LoopKind", "RECEIVERS", "FORMATS", "MAX_BATCH", "MAX_DATAGRAM",
    "MAX_SNAPLEN", "MIN_SNAPLEN", "SEQUENCE_HEADER", "DEFAULT_RCVBUF", "DEFAULT_FORMAT",
    "DEFAULT_BATCH", "DEFAULT_INTERVAL", "DEFAULT_BLAST_SIZE", "MAX_PORT", "MAX_TTL",
    "MAX_WORKERS", "DISPLAYS", "guess_format", "RunOptions", "ReceiverOptions",
    "CaptureOptions", "EchoOptions", "BlastOptions", "InfoOptions", "BenchOptions",
]


RECEIVERS = frozenset(kind for kind in LoopKind if kind.receives)


def _api_default(function, name):
    """The default of *function*'s argument *name*: the command's default is the API's."""
    return inspect.signature(function).parameters[name].default


DEFAULT_FORMAT = _api_default(_hotloops.capture, "format")
DEFAULT_BATCH = _api_default(_hotloops.capture, "batch")
DEFAULT_INTERVAL = _api_default(_hotloops.capture, "interval")
DEFAULT_BLAST_SIZE = _api_default(_hotloops.blast, "size")
MAX_PORT = 65535
MAX_TTL = 255
MAX_WORKERS = 256
DISPLAYS = ("auto", "rich", "line", "plain", "none")


def guess_format(path: Optional[str]) -> str:
    """The capture format a file name asks for by its extension (``x.pcapng``), else
    the API's default."""
    if path:
        name = path.lower()
        for fmt in FORMATS:
            if fmt != DEFAULT_FORMAT and name.endswith(f".{fmt}"):
                return fmt
    return DEFAULT_FORMAT


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunOptions:
    """What capture, echo and blast share: when to stop, what to show, how many workers."""

    loop: ClassVar[LoopKind]
    count: Optional[int] = None
    duration: Optional[float] = None
    json: bool = False
    quiet: bool = False
    interval: float = DEFAULT_INTERVAL
    display: str = "auto"
    batch: Optional[int] = DEFAULT_BATCH
    workers: int = 1
    worker_index: Optional[int] = None

    @property
    def command(self) -> str:
        """The command's name (``hotsock capture``: ``"capture"``)."""
        return self.loop.value


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReceiverOptions(RunOptions):
    """capture and echo: where to receive, and the receive loop's tuning."""

    port: int
    bind: Optional[str] = None
    groups: Tuple[str, ...] = ()
    source: Optional[str] = None
    interface: Optional[str] = None
    rcvbuf: Optional[int] = None
    reuseport: bool = False
    idle: Optional[float] = None
    size: int = MAX_DATAGRAM
    gro: bool = False


@dataclasses.dataclass(frozen=True, kw_only=True)
class CaptureOptions(ReceiverOptions):
    """``hotsock capture``: a file (``write``, ``-`` for stdout), a line per datagram
    (``print_each``) or, with neither, a count."""

    loop: ClassVar[LoopKind] = LoopKind.CAPTURE
    write: Optional[str] = None
    print_each: bool = False
    format: str = DEFAULT_FORMAT
    snaplen: int = MAX_SNAPLEN


@dataclasses.dataclass(frozen=True, kw_only=True)
class EchoOptions(ReceiverOptions):
    """``hotsock echo``."""

    loop: ClassVar[LoopKind] = LoopKind.ECHO
    gro: bool = True
    confirm: bool = False
    gso: bool = True


@dataclasses.dataclass(frozen=True, kw_only=True)
class BlastOptions(RunOptions):
    """``hotsock blast``: what to send to ``host`` ``port``, and how."""

    loop: ClassVar[LoopKind] = LoopKind.BLAST
    host: str
    port: int
    batch: Optional[int] = None         # the API's: by whether GSO is used
    size: int = DEFAULT_BLAST_SIZE
    rate: Optional[float] = None
    sequence: bool = True
    bind: Optional[str] = None
    ttl: Optional[int] = None
    interface: Optional[str] = None
    multicast_loop: bool = True
    broadcast: bool = False
    gso: Optional[bool] = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class InfoOptions:
    """``hotsock info``."""

    command: ClassVar[str] = "info"
    json: bool = False


@dataclasses.dataclass(frozen=True, kw_only=True)
class BenchOptions:
    """``hotsock bench``: its own options, parsed by :mod:`hotsock.bench`."""

    command: ClassVar[str] = "bench"
    argv: Tuple[str, ...] = ()
