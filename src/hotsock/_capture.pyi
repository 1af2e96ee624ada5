from typing import Any, Callable, Dict

from typing_extensions import disjoint_base

from ._driver import Run
from ._recv import RecvBatch

FORMATS: Dict[str, int]
MIN_SNAPLEN: int
MAX_SNAPLEN: int

@disjoint_base
class CaptureFile:
    def __init__(self, fd: int, format: int, snaplen: int, bufsize: int) -> None: ...
    @property
    def records(self) -> int: ...
    def run(self, fd: int, batch: RecvBatch, run: Run) -> None: ...
    def close(self, received: int, dropped: int) -> None: ...

def capture_batches(fd: int, batch: RecvBatch, run: Run,
                    callback: Callable[[RecvBatch], Any]) -> None: ...
