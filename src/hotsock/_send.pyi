import socket as _stdlib
from typing import Any, Iterable, Optional, Sequence, Tuple, Union

from _typeshed import ReadableBuffer

_Address = Union[Tuple[Any, ...], str, ReadableBuffer]
_SockOrFd = Union[_stdlib.socket, int]

def send_batch(sock: _SockOrFd, buffers: Iterable[ReadableBuffer],
               address: Optional[_Address] = None, *,
               addresses: Optional[Sequence[_Address]] = None, flags: int = 0,
               gso: Optional[bool] = None) -> int: ...
