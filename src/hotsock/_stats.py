"""What a hot loop reports: :class:`LoopStats`, and the kinds of loop."""
import enum
from dataclasses import asdict, dataclass, fields
from typing import Any, Dict, Optional

_SUMMED = ("received", "received_bytes", "sent", "sent_bytes", "dropped", "truncated",
           "ctruncated", "errors", "sequenced", "lost", "duplicated", "reordered", "batches")


class LoopKind(enum.StrEnum):
    """The hot loops, as ``LoopStats.kind`` names them (members equal their
    strings).  A receiver counts what it receives; blast what it sends."""

    CAPTURE = "capture"
    ECHO = "echo"
    BLAST = "blast"

    @property
    def receives(self) -> bool:
        """The loop counts what it receives (capture, echo), not what it sends
        (blast): its datagrams, its bytes and its count limit."""
        return self is not LoopKind.BLAST


@dataclass(frozen=True)
class LoopStats:
    """Counters of one run of :func:`hotsock.capture`, :func:`hotsock.echo` or
    :func:`hotsock.blast` (also handed to their ``progress`` callbacks).

    * ``received``/``received_bytes``, ``sent``/``sent_bytes``: datagrams and
      payload bytes through the socket (a capture writes one record per
      datagram received; echo sends each one back).
    * ``dropped``: datagrams the kernel dropped on this socket during the run
      because its receive buffer was full (the ``SO_RXQ_OVFL`` counter, read
      per batch, and /proc/net/udp at the end on Linux).
    * ``truncated``: datagrams longer than the receive slot (cut, and flagged
      in a capture's records by their original length); ``ctruncated``:
      datagrams whose control data (timestamp, destination) was cut.
    * ``errors``: sends the kernel refused (an ICMP error on a connected
      socket, no buffer space); the loop counts them and goes on.
    * ``sequenced``, ``lost``, ``duplicated``, ``reordered``: for streams that
      carry hotsock's sequence header (what :func:`hotsock.blast` sends),
      as iperf3 and sockperf count them; 0 otherwise.
    * ``elapsed`` seconds; ``stopped``: why the run ended (``"count"``,
      ``"duration"``, ``"idle"``, ``"signal"``; None while it runs) and
      ``signal``, the signal number that stopped it.
    """

    kind: str
    received: int = 0
    received_bytes: int = 0
    sent: int = 0
    sent_bytes: int = 0
    dropped: int = 0
    truncated: int = 0
    ctruncated: int = 0
    errors: int = 0
    sequenced: int = 0
    lost: int = 0
    duplicated: int = 0
    reordered: int = 0
    batches: int = 0
    elapsed: float = 0.0
    stopped: Optional[str] = None
    signal: Optional[int] = None

    @property
    def packets(self) -> int:
        """Datagrams handled: received (capture, echo) or sent (blast)."""
        return self.received if LoopKind(self.kind).receives else self.sent

    @property
    def payload_bytes(self) -> int:
        """Payload bytes handled: received (capture, echo) or sent (blast)."""
        return self.received_bytes if LoopKind(self.kind).receives else self.sent_bytes

    @property
    def rate(self) -> float:
        """Datagrams handled per second."""
        return self.packets / self.elapsed if self.elapsed > 0 else 0.0

    def as_dict(self) -> Dict[str, Any]:
        """All fields, plus ``rate``, as a dict ready for JSON."""
        result = asdict(self)
        result["rate"] = self.rate
        return result

    def __add__(self, other: "LoopStats") -> "LoopStats":
        """Sum of two runs side by side (``--workers``): counters add, elapsed is the longest."""
        if not isinstance(other, LoopStats):
            return NotImplemented
        values = {name: getattr(self, name) + getattr(other, name) for name in _SUMMED}
        return LoopStats(kind=self.kind, elapsed=max(self.elapsed, other.elapsed),
                         stopped=self.stopped or other.stopped,
                         signal=self.signal or other.signal, **values)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "LoopStats":
        """Inverse of :meth:`as_dict` (extra keys such as ``rate`` are ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})
