import os
import socket as _stdlib
from typing import Any, Callable, Iterable, Optional, Union

from ._loop_socket import DEFAULT_RCVBUF as DEFAULT_RCVBUF, kernel_drops as kernel_drops
from ._recv import RecvBatch
from ._stats import LoopStats

DEFAULT_STOP_SIGNALS: tuple[int, ...]
MAX_DATAGRAM: int
MAX_SNAPLEN: int
MIN_SNAPLEN: int
SEQUENCE_HEADER: int

_SockOrFd = Union[_stdlib.socket, int]
_Progress = Optional[Callable[[LoopStats], Any]]
_Path = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]

def capture(sock: _SockOrFd, path_or_callback: Union[_Path, Callable[[RecvBatch], Any]], *,
            format: str = "pcap", count: Optional[int] = None,
            duration: Optional[float] = None, idle: Optional[float] = None,
            snaplen: int = ..., size: int = ..., batch: int = 64, gro: bool = False,
            progress: _Progress = None,
            interval: float = 1.0, stop_signals: Iterable[int] = ...,
            bufsize: int = ..., rcvbuf: Optional[int] = ...) -> LoopStats: ...
def echo(sock: _SockOrFd, *, count: Optional[int] = None, duration: Optional[float] = None,
         idle: Optional[float] = None, batch: int = 64, size: int = ..., confirm: bool = False,
         gro: bool = True, gso: bool = True, progress: _Progress = None, interval: float = 1.0,
         stop_signals: Iterable[int] = ...) -> LoopStats: ...
def blast(sock: _SockOrFd, address: Any = None, *, size: int = 64, count: Optional[int] = None,
          duration: Optional[float] = None, rate: Optional[float] = None,
          batch: Optional[int] = None, sequence: bool = True, gso: Optional[bool] = None,
          progress: _Progress = None, interval: float = 1.0,
          stop_signals: Iterable[int] = ...) -> LoopStats: ...
