"""hotsock in the event loop: datagram endpoints and awaitables that move many
datagrams per wakeup.

* :func:`create_datagram_endpoint` takes the arguments of
  :meth:`asyncio.loop.create_datagram_endpoint`, plus the batch shape, and
  returns ``(transport, protocol)``.  The transport
  (:class:`BatchDatagramTransport`) drains the socket with ``recvmmsg`` on
  each readiness event.  A protocol with ``datagrams_received(batch)`` gets
  each :class:`hotsock.RecvBatch` (zero-copy views, valid during the call);
  a classic :class:`asyncio.DatagramProtocol` gets ``datagram_received(data,
  addr)`` per datagram, exactly as asyncio calls it.
* :func:`recv_batch` and :func:`send_batch` are awaitables for code that owns
  its (non-blocking) socket, under asyncio -- and uvloop -- or trio.

It works on any loop with readiness callbacks (``add_reader``/``add_writer``):
asyncio's default loop and uvloop.
"""
import asyncio as _asyncio
import os
import socket as _stdlib
import stat
import sys

from . import _recv, _send
from ._socket_class import socket as _hotsock_socket
from ._transport import BatchDatagramTransport, _readiness_missing

__all__ = ["create_datagram_endpoint", "recv_batch", "send_batch", "BatchDatagramTransport"]

# asyncio's words for a sock= that is not SOCK_DGRAM, which 3.13 changed.
_NOT_DATAGRAM = "A datagram socket" if sys.version_info >= (3, 13) else "A UDP Socket"


# --- the endpoint ----------------------------------------------------------------

async def create_datagram_endpoint(protocol_factory, local_addr=None, remote_addr=None, *,
                                   family=0, proto=0, flags=0, reuse_port=None,
                                   allow_broadcast=None, sock=None, batch=64, size=2048,
                                   gro=False):
    """create_datagram_endpoint(protocol_factory, local_addr=None, remote_addr=None, *,
        family=0, proto=0, flags=0, reuse_port=None, allow_broadcast=None, sock=None,
        batch=64, size=2048, gro=False) -> (transport, protocol)

    Create a datagram endpoint on the running loop, with the arguments and
    meaning of :meth:`asyncio.loop.create_datagram_endpoint` (same errors and
    messages): bound to *local_addr*, connected to *remote_addr*, or on the
    socket *sock*.  A new socket is a :class:`hotsock.socket`.

    Each readiness event is answered by up to ``WAKEUP_BUDGET`` datagrams
    received with ``recvmmsg`` into one :class:`hotsock.RecvBatch` of *batch*
    buffers of *size* bytes (*gro*: coalesced receives, see ``RecvBatch``);
    datagrams longer than *size* are cut, as ``recvfrom(size)`` would cut them
    (flagged in ``batch.flags`` for a batch protocol).  Raises
    ``RuntimeError`` on a loop without readiness callbacks.
    """
    loop = _asyncio.get_running_loop()
    if not (isinstance(batch, int) and not isinstance(batch, bool)):
        raise TypeError(f"batch must be an integer, not {type(batch).__name__}")
    if not (isinstance(size, int) and not isinstance(size, bool)):
        raise TypeError(f"size must be an integer, not {type(size).__name__}")
    batch = _recv.RecvBatch(batch, size, gro=bool(gro))   # its own errors, before any socket
    if sock is not None:
        _check_given_socket(sock, local_addr, remote_addr, family, proto, flags, reuse_port,
                            allow_broadcast)
        sock.setblocking(False)
        r_addr = None
    else:
        sock, r_addr = await _open_socket(loop, local_addr, remote_addr, family, proto, flags,
                                          reuse_port, allow_broadcast)
    try:
        _check_readiness(loop, sock)
        protocol = protocol_factory()
        waiter = loop.create_future()
        transport = BatchDatagramTransport(loop, sock, protocol, r_addr, waiter, batch)
    except BaseException:
        sock.close()
        raise
    try:
        await waiter
    except BaseException:
        transport.close()
        raise
    return transport, protocol


def _check_readiness(loop, sock):
    """RuntimeError now, naming the loop, if it has no readiness callbacks
    (rather than a transport that fails on its first wakeup)."""
    fd = sock.fileno()
    try:
        loop.add_reader(fd, _no_op)
    except NotImplementedError:
        raise _readiness_missing(loop) from None
    loop.remove_reader(fd)


def _no_op():
    pass


def _check_given_socket(sock, local_addr, remote_addr, family, proto, flags, reuse_port,
                        allow_broadcast):
    """asyncio's checks of a *sock* argument, in its words."""
    if sock.type != _stdlib.SOCK_DGRAM:
        raise ValueError(f"{_NOT_DATAGRAM} was expected, got {sock!r}")
    if (local_addr or remote_addr or family or proto or flags or reuse_port
            or allow_broadcast):
        opts = dict(local_addr=local_addr, remote_addr=remote_addr, family=family,
                    proto=proto, flags=flags, reuse_port=reuse_port,
                    allow_broadcast=allow_broadcast)
        problems = ", ".join(f"{k}={v}" for k, v in opts.items() if v)
        raise ValueError(f"socket modifier keyword arguments can not be used "
                         f"when sock is specified. ({problems})")


async def _open_socket(loop, local_addr, remote_addr, family, proto, flags, reuse_port,
                       allow_broadcast):
    """A new socket as asyncio's create_datagram_endpoint makes it: the first
    (family, protocol) for which both addresses resolve, bind and connect."""
    if not (local_addr or remote_addr):
        if family == 0:
            raise ValueError("unexpected address family")
        candidates = [((family, proto), (None, None))]
    elif hasattr(_stdlib, "AF_UNIX") and family == _stdlib.AF_UNIX:
        for addr in (local_addr, remote_addr):
            if addr is not None and not isinstance(addr, str):
                raise TypeError("string is expected")
        if local_addr and local_addr[0] not in (0, "\x00"):
            try:
                if stat.S_ISSOCK(os.stat(local_addr).st_mode):
                    os.remove(local_addr)       # a stale socket file, as asyncio removes it
            except FileNotFoundError:
                pass
            except OSError:
                pass                            # bind() will say what is wrong
        candidates = [((family, proto), (local_addr, remote_addr))]
    else:
        candidates = await _resolve_pairs(loop, local_addr, remote_addr, family, proto, flags)
    errors = []
    for (family, proto), (local_address, remote_address) in candidates:
        sock = None
        try:
            sock = _hotsock_socket(family, _stdlib.SOCK_DGRAM, proto)
            if reuse_port:
                _set_reuseport(sock)
            if allow_broadcast:
                sock.setsockopt(_stdlib.SOL_SOCKET, _stdlib.SO_BROADCAST, 1)
            sock.setblocking(False)
            if local_addr:
                sock.bind(local_address)
            r_addr = None
            if remote_addr:
                if not allow_broadcast:
                    await loop.sock_connect(sock, remote_address)
                r_addr = remote_address
        except OSError as exc:
            if sock is not None:
                sock.close()
            errors.append(exc)
        except BaseException:
            if sock is not None:
                sock.close()
            raise
        else:
            return sock, r_addr
    raise errors[0]


async def _resolve_pairs(loop, local_addr, remote_addr, family, proto, flags):
    """[((family, proto), (local, remote))]: the pairs both addresses resolve to."""
    infos_by_key = {}
    for index, addr in ((0, local_addr), (1, remote_addr)):
        if addr is None:
            continue
        if not (isinstance(addr, tuple) and len(addr) == 2):
            raise TypeError("2-tuple is expected")
        info = _numeric_info(addr[0], addr[1], family, proto)
        if info is not None:
            infos = [info]
        else:
            infos = await loop.getaddrinfo(addr[0], addr[1], family=family,
                                           type=_stdlib.SOCK_DGRAM, proto=proto, flags=flags)
        if not infos:
            raise OSError("getaddrinfo() returned empty list")
        for fam, _, pro, _, address in infos:
            infos_by_key.setdefault((fam, pro), [None, None])[index] = address
    pairs = [(key, pair) for key, pair in infos_by_key.items()
             if not ((local_addr and pair[0] is None) or (remote_addr and pair[1] is None))]
    if not pairs:
        raise ValueError("can not get address information")
    return pairs


def _numeric_info(host, port, family, proto):
    """asyncio's shortcut past getaddrinfo for a numeric host (its
    ``_ipaddr_info``, for SOCK_DGRAM): the getaddrinfo entry, or None.  Kept
    so that a bad port meets bind()'s OverflowError as in asyncio, rather
    than a getaddrinfo that refuses it or wraps it around 65536."""
    if proto not in (0, _stdlib.IPPROTO_TCP, _stdlib.IPPROTO_UDP) or host is None:
        return None
    if port is None or port == b"" or port == "":
        port = 0
    else:
        try:
            port = int(port)
        except (TypeError, ValueError):
            return None         # a service name: getaddrinfo
    if family == _stdlib.AF_UNSPEC:
        families = [_stdlib.AF_INET]
        if hasattr(_stdlib, "AF_INET6"):
            families.append(_stdlib.AF_INET6)
    else:
        families = [family]
    if isinstance(host, bytes):
        host = host.decode("idna")
    if "%" in host:
        return None             # a zone index: inet_pton refuses it
    for fam in families:
        try:
            _stdlib.inet_pton(fam, host)
        except OSError:
            continue
        address = ((host, port, 0, 0) if fam == getattr(_stdlib, "AF_INET6", None)
                   else (host, port))
        return fam, _stdlib.SOCK_DGRAM, _stdlib.IPPROTO_UDP, "", address
    return None


def _set_reuseport(sock):
    if not hasattr(_stdlib, "SO_REUSEPORT"):
        raise ValueError("reuse_port not supported by socket module")
    try:
        sock.setsockopt(_stdlib.SOL_SOCKET, _stdlib.SO_REUSEPORT, 1)
    except OSError:
        raise ValueError("reuse_port not supported by socket module, "
                         "SO_REUSEPORT defined but not implemented.") from None


# --- awaitables ------------------------------------------------------------------

async def recv_batch(sock, batch, flags=0):
    """recv_batch(sock, batch, flags=0) -> int

    Await datagrams on the non-blocking socket *sock*, then receive what is
    queued into *batch* with one ``recvmmsg``, as :func:`hotsock.recv_batch`
    does; returns the count.  Cancelled while waiting, nothing was received
    and the batch is as it was.  Under asyncio (or uvloop) or trio.  Raises
    ``ValueError`` for a socket with a timeout or blocking (it would block
    the loop), and the errors of :func:`hotsock.recv_batch`.
    """
    _check_non_blocking(sock)
    flags |= _stdlib.MSG_DONTWAIT
    while True:
        try:
            return _recv.recv_batch(sock, batch, flags)
        except (BlockingIOError, InterruptedError):
            pass
        await _wait(sock, writing=False)


async def send_batch(sock, buffers, address=None, *, addresses=None, flags=0, gso=None):
    """send_batch(sock, buffers, address=None, *, addresses=None, flags=0, gso=None) -> int

    Send every buffer of *buffers* (bytes-like objects; not an arena, whose
    rest could not be resumed after a part went) on the non-blocking socket
    *sock* as :func:`hotsock.send_batch` does (GSO where it applies), awaiting
    writability whenever the socket is full; returns the count, all of them.
    Cancelled while waiting, the ``CancelledError`` carries ``buffers_sent``
    (and, on a stream socket, ``characters_written`` of the next buffer):
    what was sent stays sent.  Under asyncio (or uvloop) or trio.  Raises
    ``ValueError`` for a socket with a timeout or blocking, and the errors
    of :func:`hotsock.send_batch` (for a datagram the network refuses, after
    those before it went: ``buffers_sent`` says how many).
    """
    _check_non_blocking(sock)
    if isinstance(buffers, (_recv.RecvBatch, _send.SendBatch)):
        # A part sent is resumed from the next buffer, which an arena cannot do.
        raise TypeError(f"send_batch() awaits a sequence of bytes-like objects, not a "
                        f"{type(buffers).__name__}: send an arena with hotsock.send_batch()")
    items = list(buffers)
    targets = None if addresses is None else list(addresses)
    flags |= _stdlib.MSG_DONTWAIT
    done = 0
    written = 0         # bytes of items[done] already written (stream sockets)
    while done < len(items):
        rest = items[done:]
        if written:
            rest[0] = memoryview(rest[0]).cast("B")[written:]
        try:
            sent = _send.send_batch(sock, rest, address,
                                    addresses=None if targets is None else targets[done:],
                                    flags=flags, gso=gso)
        except (BlockingIOError, InterruptedError) as exc:
            done, written = _advance(done, written, exc)
        except BaseException as exc:
            done, written = _advance(done, written, exc)
            exc.buffers_sent = done
            if written:
                exc.characters_written = written
            raise
        else:
            done += sent
            written = 0
            if done >= len(items):
                break
        try:
            await _wait(sock, writing=True)
        except BaseException as exc:    # cancelled: say how far it went
            exc.buffers_sent = done
            if written:
                exc.characters_written = written
            raise
    return done


def _advance(done, written, exc):
    """Where a send that raised *exc* left off: (whole buffers, bytes of the next)."""
    whole = getattr(exc, "buffers_sent", 0) or 0
    part = getattr(exc, "characters_written", 0) or 0
    if whole:
        return done + whole, part
    return done, written + part


def _check_non_blocking(sock):
    timeout = sock.gettimeout() if hasattr(sock, "gettimeout") else 0.0
    if timeout != 0:
        raise ValueError("the socket must be non-blocking")


async def _wait(sock, writing):
    """Until *sock* is readable (writable): through the running loop's
    readiness callbacks, or trio's."""
    try:
        loop = _asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if loop is None:
        trio = sys.modules.get("trio")
        if trio is None:
            raise RuntimeError("hotsock.asyncio's awaitables run under asyncio (or uvloop) "
                               "or trio; no running event loop was found")
        wait = trio.lowlevel.wait_writable if writing else trio.lowlevel.wait_readable
        await wait(sock.fileno())
        return
    fd = sock.fileno()
    future = loop.create_future()
    add, remove = ((loop.add_writer, loop.remove_writer) if writing
                   else (loop.add_reader, loop.remove_reader))
    try:
        add(fd, _set_unless_done, future)
    except NotImplementedError:
        raise _readiness_missing(loop) from None
    try:
        await future
    finally:
        remove(fd)


def _set_unless_done(future):
    if not future.done():
        future.set_result(None)
