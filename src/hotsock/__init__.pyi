# Type stubs for hotsock (hand-written; see README "API").
import socket as _stdlib
from socket import *  # noqa: F401,F403  (constants and exceptions are re-exported)
from socket import error as error, gaierror as gaierror, herror as herror, timeout as timeout
from typing import Any, Iterable, Iterator, Optional, Sequence, Tuple, Union

from ._batch import MAX_BATCH as MAX_BATCH, RecvBatch as RecvBatch
from ._batch import recv_batch as recv_batch, send_batch as send_batch
from ._batch import IP_PKTINFO as IP_PKTINFO, SO_RXQ_OVFL as SO_RXQ_OVFL
from ._batch import SO_TIMESTAMPNS as SO_TIMESTAMPNS
from ._hotloops import blast as blast, capture as capture, echo as echo
from ._hotloops import kernel_drops as kernel_drops
from ._stats import LoopStats as LoopStats
from ._socket_class import create_connection as create_connection, create_server as create_server
from ._socket_class import fromfd as fromfd, socket as socket, socketpair as socketpair

from _typeshed import ReadableBuffer


__version__: str

def features() -> dict[str, Any]: ...
