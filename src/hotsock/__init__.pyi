# Type stubs for hotsock (hand-written; see README "API").
import socket as _stdlib
from socket import *  # noqa: F401,F403  (constants and exceptions are re-exported)
from socket import error as error, gaierror as gaierror, herror as herror, timeout as timeout
from typing import Any, Iterable, Iterator, Optional, Sequence, Tuple, Union

from ._batch import MAX_BATCH as MAX_BATCH, RecvBatch as RecvBatch
from ._batch import recv_batch as recv_batch, send_batch as send_batch
from ._socket_class import create_connection as create_connection, create_server as create_server
from ._socket_class import fromfd as fromfd, socket as socket, socketpair as socketpair

from _typeshed import ReadableBuffer


__version__: str

def features() -> dict[str, Any]: ...
