from typing import Any, Callable, Optional

from typing_extensions import disjoint_base

from ._stats import LoopStats

@disjoint_base
class Run:
    stopped: Optional[str]
    signal: Optional[int]
    @property
    def signals(self) -> list[int]: ...
    def __init__(self, kind: str, count: Optional[int] = None, duration: Optional[float] = None,
                 idle: Optional[float] = None,
                 progress: Optional[Callable[[LoopStats], Any]] = None,
                 interval: float = 1.0, track_sequence: bool = True,
                 drops_baseline: int = 0) -> None: ...
    def follow(self, sock: object) -> None: ...
    def stats(self, kernel_drops: Optional[int] = None) -> LoopStats: ...
