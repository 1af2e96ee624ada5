import socket as _stdlib
from typing import Any, Callable, Iterable, Optional, Sequence, Tuple, TypeVar, Union

from _typeshed import ReadableBuffer

from ._recv import RecvBatch
from ._transport import BatchDatagramTransport as BatchDatagramTransport

_P = TypeVar("_P")
_Address = Union[Tuple[Any, ...], str, ReadableBuffer]

async def create_datagram_endpoint(
        protocol_factory: Callable[[], _P], local_addr: Optional[_Address] = None,
        remote_addr: Optional[_Address] = None, *, family: int = 0, proto: int = 0,
        flags: int = 0, reuse_port: Optional[bool] = None,
        allow_broadcast: Optional[bool] = None, sock: Optional[_stdlib.socket] = None,
        batch: int = 64, size: int = 2048,
        gro: bool = False) -> Tuple[BatchDatagramTransport, _P]: ...
async def recv_batch(sock: _stdlib.socket, batch: RecvBatch, flags: int = 0) -> int: ...
async def send_batch(sock: _stdlib.socket, buffers: Iterable[ReadableBuffer],
                     address: Optional[_Address] = None, *,
                     addresses: Optional[Sequence[_Address]] = None, flags: int = 0,
                     gso: Optional[bool] = None) -> int: ...
