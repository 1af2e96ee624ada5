"""hotsock: BSD sockets for Python at the speed of C.

``hotsock.socket`` is a drop-in :class:`socket.socket` whose datagram and
stream I/O methods are compiled; :class:`RecvBatch`, :func:`recv_batch` and
:func:`send_batch` move up to 1024 datagrams per syscall (recvmmsg/sendmmsg)
over zero-copy buffers (:class:`SendBatch`: an arena to send from).  The
socket module's constants (``AF_INET``, ``SOCK_DGRAM``, ``MSG_PEEK``, ...)
and exceptions are re-exported, so ``import hotsock as socket`` works for
the common cases.
"""
import re as _re
import socket as _stdlib
import sys as _sys

# The one place the version is written (pyproject.toml reads it from here).
__version__ = "0.1.0"

try:
    from . import _features, _pysocket
except ImportError as exc:
    # Typically the source tree put on sys.path (PYTHONPATH=src) with no
    # compiled modules in it: Python then blames a "circular import".
    import importlib.machinery as _machinery
    import os as _os
    _built = any(_os.path.exists(_os.path.join(__path__[0], "_features" + suffix))
                 for suffix in _machinery.EXTENSION_SUFFIXES)
    if _built:
        raise
    raise ImportError(
        f"hotsock's compiled modules are not built in {__path__[0]} for this Python "
        f"({_sys.version.split()[0]}): install hotsock with pip ('pip install hotsock', "
        "or 'pip install .' in a checkout) rather than putting the source tree on "
        "sys.path", name=__name__, path=__path__[0]) from exc
from . import _capture
from ._features import IP_PKTINFO, MAX_BATCH, SO_RXQ_OVFL, SO_TIMESTAMPNS
from ._hotloops import blast, capture, echo
from ._loop_socket import kernel_drops
from ._recv import RecvBatch, recv_batch
from ._send import SendBatch, send_batch
from ._socket_class import create_connection, create_server, fromfd, socket, socketpair
from ._stats import LoopStats

# The socket module's constants and exceptions, unchanged (enum members stay
# enum members) -- except hotsock's own names: IP_PKTINFO (in the socket
# module from 3.12 on) stays hotsock's, which is None where the platform
# lacks it, on every Python version.
_OWN = {"IP_PKTINFO", "SO_RXQ_OVFL", "SO_TIMESTAMPNS", "MAX_BATCH"}
_CONSTANT = _re.compile(r"^[A-Z][A-Z0-9_]*$")
_CONSTANTS = [name for name in _stdlib.__all__ if _CONSTANT.match(name) and name not in _OWN]
globals().update({name: getattr(_stdlib, name) for name in _CONSTANTS})
error = _stdlib.error
timeout = _stdlib.timeout
gaierror = _stdlib.gaierror
herror = _stdlib.herror


def features():
    """features() -> dict

    What this build and this system provide, and which paths are active:
    ``batch_path`` is ``"recvmmsg/sendmmsg"`` or ``"recvmsg/sendmsg loop"``
    (forced by ``HOTSOCK_NO_MMSG=1``); ``direct_socket_access`` says whether
    socket state is read from CPython's socket object (else through method
    calls); ``receive_timestamps``, ``receive_destination`` and
    ``drop_counter`` say what :func:`capture` can record per datagram.
    """
    info = {
        "version": __version__,
        "platform": _sys.platform,
        "python": _sys.version.split()[0],
        "direct_socket_access": bool(_pysocket.direct_access),
    }
    info.update(_features.batch_features())
    # What capture can record, per datagram: kernel timestamps, destination
    # addresses, and the socket's drop counter.
    info["receive_timestamps"] = SO_TIMESTAMPNS is not None
    info["receive_destination"] = IP_PKTINFO is not None
    info["drop_counter"] = SO_RXQ_OVFL is not None
    info["capture_formats"] = list(_capture.FORMATS)
    return info


__all__ = [
    "socket", "fromfd", "socketpair", "create_connection", "create_server",
    "RecvBatch", "recv_batch", "SendBatch", "send_batch", "MAX_BATCH", "features",
    "capture", "echo", "blast", "LoopStats", "kernel_drops",
    "SO_TIMESTAMPNS", "IP_PKTINFO", "SO_RXQ_OVFL",
    "error", "timeout", "gaierror", "herror",
] + _CONSTANTS
