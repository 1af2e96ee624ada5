from typing import Any

from ._driver import Run

def blast_loop(fd: int, family: int, address: Any, run: Run, size: int, batch: int,
               rate: float, stream: int, sequence: bool, gso: bool = False) -> None: ...
