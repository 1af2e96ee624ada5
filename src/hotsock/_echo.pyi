from ._driver import Run
from ._recv import RecvBatch

def echo_loop(fd: int, batch: RecvBatch, run: Run, confirm: bool = False,
              gso: bool = False) -> None: ...
