from typing import Any, Optional

MAX_BATCH: int
SO_TIMESTAMPNS: Optional[int]
IP_PKTINFO: Optional[int]
SO_RXQ_OVFL: Optional[int]
SO_MEMINFO: Optional[int]
UDP_GRO: Optional[int]
SAFE_SEGMENT: dict[int, int]
GSO_MAX_SEGMENTS: int
GSO_MAX_BYTES: int
GRO_MAX_SEGMENTS: int
SEQUENCE_HEADER: int

def batch_features() -> dict[str, Any]: ...
def gso_enabled() -> bool: ...
def gro_enabled() -> bool: ...
