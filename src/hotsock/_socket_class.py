"""``hotsock.socket``: the stdlib socket class with compiled I/O methods.

(Not named _socket.py: that would shadow the stdlib's _socket module for
anyone running Python from inside this directory.)
"""
import socket as _stdlib
from multiprocessing import reduction as _reduction

from . import _methods, _options, _recv, _send

__all__ = ["socket", "fromfd", "socketpair", "create_connection", "create_server"]


class socket(_stdlib.socket):
    """socket(family=-1, type=-1, proto=-1, fileno=None)

    A drop-in replacement for :class:`socket.socket` (and a subclass of it):
    same constructor, same methods, same exceptions.  ``recv``, ``recv_into``,
    ``recvfrom``, ``recvfrom_into``, ``send`` and ``sendto`` are compiled and
    faster; ``recv_batch`` and ``send_batch`` move many datagrams per
    syscall; typed option methods (``join_group``, ``set_linger``,
    ``set_multicast_ttl``, ...) build the C structs ``setsockopt`` needs.
    ``accept()`` and ``dup()`` return hotsock sockets.
    """

    # The address cache (hotsock._address) and the per-socket state record
    # (hotsock._state), owned by the socket.
    __slots__ = ("_hotsock_addresses", "_hotsock_state")

    def __init__(self, family=-1, type=-1, proto=-1, fileno=None):
        super().__init__(family, type, proto, fileno)
        self._hotsock_addresses = None
        self._hotsock_state = None

    # recv, recv_into, recvfrom, recvfrom_into, send and sendto: installed
    # below as compiled method descriptors (hotsock._methods.install).
    recv_batch = _recv.recv_batch
    send_batch = _send.send_batch

    def accept(self):
        """accept() -> (socket object, address info)

        Same as :meth:`socket.socket.accept`, but the new connection is a
        ``hotsock.socket``.
        """
        fd, addr = self._accept()
        sock = socket(self.family, self.type, self.proto, fileno=fd)
        # As the stdlib does (bpo-7995): with no default timeout, a
        # connection accepted from a listener with a timeout is blocking.
        if _stdlib.getdefaulttimeout() is None and self.gettimeout():
            sock.setblocking(True)
        return sock, addr


socket.__module__ = "hotsock"
_methods.install(socket)
# Typed options (join_group, set_linger, ...): see hotsock._options.
for _name in _options.OPTION_METHODS:
    setattr(socket, _name, getattr(_options, _name))
del _name


# The stdlib's helpers, bound once: code that swaps hotsock's helpers into the
# socket module (``socket.socketpair = hotsock.socketpair``) must not make
# them find themselves there when they run.
_std_fromfd = _stdlib.fromfd
_std_socketpair = _stdlib.socketpair
_std_create_connection = _stdlib.create_connection
_std_create_server = _stdlib.create_server


def _adopt(sock):
    """Move a stdlib socket's descriptor into a ``hotsock.socket``."""
    timeout = sock.gettimeout()
    new = socket(sock.family, sock.type, sock.proto, fileno=sock.detach())
    new.settimeout(timeout)
    return new


def fromfd(fd, family, type, proto=0):
    """fromfd(fd, family, type[, proto]) -> hotsock.socket

    Same as :func:`socket.fromfd`: a socket on a duplicate of *fd*.
    """
    return _adopt(_std_fromfd(fd, family, type, proto))


def socketpair(*args, **kwargs):
    """socketpair([family[, type[, proto]]]) -> (hotsock.socket, hotsock.socket)

    Same as :func:`socket.socketpair`.
    """
    a, b = _std_socketpair(*args, **kwargs)
    return _adopt(a), _adopt(b)


def create_connection(*args, **kwargs):
    """Same as :func:`socket.create_connection`, returning a ``hotsock.socket``."""
    return _adopt(_std_create_connection(*args, **kwargs))


def create_server(*args, **kwargs):
    """Same as :func:`socket.create_server`, returning a ``hotsock.socket``."""
    return _adopt(_std_create_server(*args, **kwargs))


# --- multiprocessing --------------------------------------------------------------
# multiprocessing looks its reducers up by exact class, and registers one for
# socket.socket only; without this one a hotsock.socket given to a child
# process (Process args, Queue.put, ForkingPickler) is refused as unpicklable.
# The same reduction as the stdlib's: the descriptor is duplicated for the
# child (DupFd) and rebuilt there, as a hotsock.socket.

def _rebuild_socket(dup, family, type, proto):
    return socket(family, type, proto, fileno=dup.detach())


def _reduce_socket(sock):
    return _rebuild_socket, (_reduction.DupFd(sock.fileno()), sock.family, sock.type,
                             sock.proto)


_reduction.register(socket, _reduce_socket)
