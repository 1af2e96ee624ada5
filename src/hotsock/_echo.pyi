from ._recv import RecvBatch
from ._driver import Run

def echo_loop(fd: int, batch: RecvBatch, run: Run, confirm: bool = False,
              gso: bool = False) -> None: ...
