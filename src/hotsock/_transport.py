"""hotsock's datagram transport for asyncio (and uvloop): many datagrams per wakeup.

:class:`BatchDatagramTransport` is an :class:`asyncio.DatagramTransport`
that behaves as asyncio's own selector transport does -- callback order,
write buffering with ``pause_writing``/``resume_writing``, ``close`` and
``abort``, ``get_extra_info``, errors handed to ``error_received`` -- but
reads with ``recvmmsg`` (contract 9): on each readiness event it drains
the socket with ``MSG_DONTWAIT`` into one :class:`hotsock.RecvBatch`,
batch after batch, until the queue is empty or the wakeup's budget is
spent, then returns to the loop so other callbacks run.

It uses only the loop's public readiness API (``add_reader``,
``add_writer`` and their removal, ``call_soon``, ``call_exception_handler``),
which asyncio's default loop and uvloop both have.

A protocol with ``datagrams_received(batch)`` gets each batch (zero-copy
views, valid during the call); any other protocol -- a classic
:class:`asyncio.DatagramProtocol` -- gets ``datagram_received(data, addr)``
per datagram with ``bytes`` and the stdlib's address tuples.
"""
import asyncio
import collections
import socket as _stdlib
import sys
import warnings

from . import _recv, _send
from ._recv import RecvBatch

# Datagrams one wakeup may take before the loop runs other callbacks: a
# flood on one endpoint must not starve the rest (asyncio takes one).
WAKEUP_BUDGET = 1024

# asyncio sends empty datagrams from 3.13 on, and counts 8 bytes of
# bookkeeping per buffered datagram since then; before 3.13 it drops empty
# datagrams in sendto (gh-113812 changed both; 3.12 still drops them).
_DATAGRAM_OVERHEAD = 8 if sys.version_info >= (3, 13) else 0
_SENDS_EMPTY = sys.version_info >= (3, 13)


def _readiness_missing(loop):
    return RuntimeError(
        f"hotsock.asyncio needs an event loop with readiness callbacks (add_reader, "
        f"add_writer); {type(loop).__name__} has none: use asyncio's default loop "
        f"or uvloop")


class BatchDatagramTransport(asyncio.DatagramTransport):
    """The transport :func:`hotsock.asyncio.create_datagram_endpoint` returns."""

    def __init__(self, loop, sock, protocol, address=None, waiter=None, batch=None):
        super().__init__({})
        self._loop = loop
        self._sock = sock
        self._fd = sock.fileno()
        self._address = address
        self._batch = RecvBatch() if batch is None else batch
        self._extra["socket"] = _transport_socket(sock)
        try:
            self._extra["sockname"] = sock.getsockname()
        except OSError:
            self._extra["sockname"] = None
        try:
            self._extra["peername"] = sock.getpeername()
        except OSError:
            self._extra["peername"] = None
        self._buffer = collections.deque()      # (bytes, address) waiting to be sent
        self._buffer_size = 0
        self._writing = False                   # add_writer in effect
        self._conn_lost = 0
        self._closing = False
        self._paused = False
        self._undelivered = None                # first datagram of the batch not yet delivered
        self._protocol_paused = False
        self._high_water = 64 * 1024
        self._low_water = self._high_water // 4
        self.set_protocol(protocol)
        loop.call_soon(self._protocol.connection_made, self)
        loop.call_soon(self._start_reading)
        if waiter is not None:
            loop.call_soon(_set_result_unless_cancelled, waiter, None)

    def __repr__(self):
        state = "closed" if self._sock is None else "closing" if self._closing else "open"
        return (f"<{type(self).__name__} {state} fd={self._fd} batch={self._batch.count}x"
                f"{self._batch.size} bufsize={self._buffer_size}>")

    # --- protocol --------------------------------------------------------------

    def set_protocol(self, protocol):
        self._protocol = protocol
        self._batches = callable(getattr(protocol, "datagrams_received", None))

    def get_protocol(self):
        return self._protocol

    # --- reading ---------------------------------------------------------------

    def is_reading(self):
        return not self._closing and not self._paused

    def pause_reading(self):
        if self.is_reading():
            self._paused = True
            self._loop.remove_reader(self._fd)

    def resume_reading(self):
        if self._closing or not self._paused:
            return
        self._paused = False
        if self._undelivered is not None:
            # Datagrams of the last batch the protocol paused before: first.
            self._loop.call_soon(self._deliver_rest)
        else:
            self._start_reading()

    def _deliver_rest(self):
        start, self._undelivered = self._undelivered, None
        if start is None or self._closing:
            return
        self._deliver_from(start)
        if self._undelivered is None:
            self._start_reading()

    def _deliver_from(self, start):
        """Datagrams *start*.. of the batch to a classic protocol; those it did
        not take (it paused reading) are kept for resume_reading()."""
        end = _recv._deliver(self._batch, start, self._protocol.datagram_received, self,
                             self._callback_failed)
        if end < len(self._batch) and self._paused and not self._closing:
            self._undelivered = end

    def _start_reading(self):
        if not self.is_reading():
            return
        try:
            self._loop.add_reader(self._fd, self._read_ready)
        except NotImplementedError:
            self._fatal_error(_readiness_missing(self._loop))

    def _read_ready(self):
        """Drain what is queued, up to the budget, into the batch."""
        if self._conn_lost:
            return      # a callback the loop had queued before remove_reader (uvloop)
        batch = self._batch
        taken = 0
        while taken < WAKEUP_BUDGET and not self._closing and not self._paused:
            try:
                n = _recv.recv_batch(self._sock, batch, _stdlib.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._rearm()
                self._protocol.error_received(exc)      # an ICMP error, as asyncio does
                return
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, "Fatal read error on datagram transport")
                return
            taken += n
            if self._batches:
                self._protocol.datagrams_received(batch)
            else:
                self._deliver_from(0)
            if n < batch.count:
                return          # the queue is empty: no EAGAIN syscall to learn it

    def _rearm(self):
        """Register the callbacks again after the socket reported an error:
        libuv (uvloop) stops watching a descriptor that polled POLLERR, so
        without this one ICMP error would end all reading and writing."""
        if self.is_reading():
            self._loop.remove_reader(self._fd)
            self._loop.add_reader(self._fd, self._read_ready)
        if self._writing:
            self._loop.remove_writer(self._fd)
            self._loop.add_writer(self._fd, self._write_ready)

    def _callback_failed(self, exc):
        self._loop.call_exception_handler({
            "message": "Exception in datagram_received()",
            "exception": exc,
            "transport": self,
            "protocol": self._protocol,
        })

    # --- writing ---------------------------------------------------------------

    def get_write_buffer_size(self):
        return self._buffer_size

    def get_write_buffer_limits(self):
        return (self._low_water, self._high_water)

    def set_write_buffer_limits(self, high=None, low=None):
        if high is None:
            high = 64 * 1024 if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self._high_water = high
        self._low_water = low
        self._maybe_pause_protocol()

    def _destination(self, addr):
        """Where a datagram goes, as asyncio decides it: None for send() on a
        connected socket, else sendto()'s address -- *remote_addr* for an
        endpoint that has one but is not connected (allow_broadcast)."""
        if self._address:
            if addr not in (None, self._address):
                raise ValueError(f"Invalid address: must be None or {self._address}")
            addr = self._address
        if self._extra["peername"]:
            return None             # connected: send()
        return addr

    def _send_one(self, data, addr):
        if addr is None and self._extra["peername"]:
            self._sock.send(data)
        else:
            self._sock.sendto(data, addr)   # no address: sendto's TypeError, as asyncio

    def sendto(self, data, addr=None):
        """Send *data* to *addr* (or the connected peer), as asyncio's
        transport does: at once if the socket takes it, else buffered."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data argument must be a bytes-like object, "
                            f"not {type(data).__name__!r}")
        if not data and not _SENDS_EMPTY:
            return
        addr = self._destination(addr)
        if self._conn_lost and (self._address or self._sock is None):
            self._conn_lost += 1
            return
        if not self._buffer:
            try:
                self._send_one(data, addr)
                return
            except (BlockingIOError, InterruptedError):
                if self._conn_lost:
                    self._conn_lost += 1    # closed: nothing is buffered any more
                    return
            except OSError as exc:
                self._protocol.error_received(exc)
                return
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, "Fatal write error on datagram transport")
                return
        self._queue(bytes(data), addr)
        self._maybe_pause_protocol()

    def send_batch(self, buffers, addr=None, *, addresses=None):
        """Send each buffer of *buffers* as one datagram -- to *addr*, to
        ``addresses[i]``, or to the connected peer -- with ``sendmmsg`` (and
        GSO where it applies), as :func:`hotsock.send_batch` does.  What the
        socket does not take at once is buffered and sent when it is
        writable, as for :meth:`sendto`.  Errors of the network
        (``ConnectionRefusedError``, ...) go to ``error_received``, for the
        datagram that met them."""
        items = list(buffers)
        for data in items:
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise TypeError(f"data argument must be a bytes-like object, "
                                f"not {type(data).__name__!r}")
        if addresses is not None:
            if addr is not None:
                raise TypeError("send_batch() takes addr or addresses, not both")
            targets = [self._destination(a) for a in addresses]
            if len(targets) != len(items):
                raise ValueError(f"{len(items)} buffers but {len(targets)} addresses")
        else:
            targets = [self._destination(addr)] * len(items)
        if items and not self._extra["peername"] and None in targets:
            raise TypeError("send_batch() needs addr or addresses: the transport "
                            "is not connected")
        if not _SENDS_EMPTY:
            kept = [(d, a) for d, a in zip(items, targets, strict=True) if d]
            items, targets = [d for d, _ in kept], [a for _, a in kept]
        if not items or (self._conn_lost and (self._address or self._sock is None)):
            self._conn_lost += bool(items)
            return
        start = 0 if self._buffer else self._send_now(items, targets)
        if start is None:
            return
        if self._conn_lost:
            self._conn_lost += 1        # closed: nothing is buffered any more
            return
        for data, target in zip(items[start:], targets[start:], strict=True):
            self._queue(bytes(data), target)
        self._maybe_pause_protocol()

    def _send_now(self, items, targets):
        """Send what the socket takes now; the index of the first datagram not
        sent (to be buffered), or None when all went or the transport failed."""
        done = 0
        while done < len(items):
            first = targets[done]
            run = done + 1
            while run < len(items) and targets[run] == first:
                run += 1        # one destination: one send_batch
            try:
                if first is None:
                    sent = _send.send_batch(self._sock, items[done:run], flags=_stdlib.MSG_DONTWAIT)
                else:
                    sent = _send.send_batch(self._sock, items[done:run], first,
                                            flags=_stdlib.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return done
            except OSError as exc:
                self._protocol.error_received(exc)
                done += 1       # that datagram met the error; the rest go on
                continue
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, "Fatal write error on datagram transport")
                return None
            done += sent
            if sent < run - (done - sent):
                return done     # the socket is full
        return None

    def _queue(self, data, addr):
        self._buffer.append((data, addr))
        self._buffer_size += len(data) + _DATAGRAM_OVERHEAD
        if not self._writing:
            try:
                self._loop.add_writer(self._fd, self._write_ready)
            except NotImplementedError:
                self._fatal_error(_readiness_missing(self._loop))
                return
            self._writing = True

    def _write_ready(self):
        """The socket is writable: send what is buffered, in order."""
        if self._conn_lost:
            return      # a callback the loop had queued before remove_writer (uvloop)
        while self._buffer:
            data, addr = self._buffer[0]
            try:
                self._send_one(data, addr)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                self._dequeue()
                self._rearm()
                self._protocol.error_received(exc)
                continue
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, "Fatal write error on datagram transport")
                return
            self._dequeue()
        self._maybe_resume_protocol()       # may buffer more
        if not self._buffer:
            self._stop_writing()
            if self._closing and not self._conn_lost:
                self._conn_lost += 1
                self._call_connection_lost(None)

    def _dequeue(self):
        data, _ = self._buffer.popleft()
        self._buffer_size -= len(data) + _DATAGRAM_OVERHEAD

    def _stop_writing(self):
        if self._writing:
            self._writing = False
            self._loop.remove_writer(self._fd)

    def _maybe_pause_protocol(self):
        if self._buffer_size <= self._high_water or self._protocol_paused:
            return
        self._protocol_paused = True
        self._protocol_call("pause_writing")

    def _maybe_resume_protocol(self):
        if self._protocol_paused and self._buffer_size <= self._low_water:
            self._protocol_paused = False
            self._protocol_call("resume_writing")

    def _protocol_call(self, name):
        try:
            getattr(self._protocol, name)()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._loop.call_exception_handler({
                "message": f"protocol.{name}() failed",
                "exception": exc,
                "transport": self,
                "protocol": self._protocol,
            })

    # --- closing ---------------------------------------------------------------

    def is_closing(self):
        return self._closing

    def close(self):
        """Stop reading; send what is buffered, then call ``connection_lost(None)``."""
        if self._closing:
            return
        self._closing = True
        self._loop.remove_reader(self._fd)
        if not self._buffer:
            self._conn_lost += 1
            self._stop_writing()
            self._loop.call_soon(self._call_connection_lost, None)

    def abort(self):
        """Close at once, dropping what is buffered."""
        self._force_close(None)

    def _fatal_error(self, exc, message="Fatal error on transport"):
        if not isinstance(exc, OSError):
            self._loop.call_exception_handler({
                "message": message,
                "exception": exc,
                "transport": self,
                "protocol": self._protocol,
            })
        self._force_close(exc)

    def _force_close(self, exc):
        if self._conn_lost:
            return
        if self._buffer:
            self._buffer.clear()
            self._buffer_size = 0
            self._stop_writing()
        if not self._closing:
            self._closing = True
            self._loop.remove_reader(self._fd)
        self._conn_lost += 1
        self._loop.call_soon(self._call_connection_lost, exc)

    def _call_connection_lost(self, exc):
        try:
            self._protocol.connection_lost(exc)
        finally:
            if self._writing:   # connection_lost() sent, and the socket was full
                self._buffer.clear()
                self._buffer_size = 0
                self._stop_writing()
            self._sock.close()
            self._sock = None
            self._protocol = None
            self._loop = None

    def __del__(self, _warn=warnings.warn):
        if getattr(self, "_sock", None) is not None:
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            self._sock.close()


def _set_result_unless_cancelled(future, result):
    if not future.cancelled():
        future.set_result(result)


def _transport_socket(sock):
    """What ``get_extra_info('socket')`` gives: asyncio's guarded view of the
    socket where this Python has it (as asyncio's transports give), else the
    socket itself."""
    try:
        from asyncio.trsock import TransportSocket
    except ImportError:         # pragma: no cover  (every supported Python has it)
        return sock
    return TransportSocket(sock)
