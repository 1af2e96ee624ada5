"""Reading capture files back, three independent ways: a small reader written
here from the file format specs, dpkt, and tshark.

    records = read_capture(path)          # [Record], from pcap or pcapng
    read_isb(path)                        # pcapng interface statistics {name: value}
    tshark_fields(path, "ip.src", ...)    # rows of tshark's -T fields output (or skip)
"""
import dataclasses
import ipaddress
import shutil
import struct
import subprocess

import pytest

PCAP_NS_MAGIC = 0xA1B23C4D
LINKTYPE_RAW = 101


@dataclasses.dataclass
class Record:
    ts_ns: int
    caplen: int
    origlen: int
    data: bytes

    @property
    def version(self):
        return self.data[0] >> 4

    @property
    def header_size(self):
        return 20 if self.version == 4 else 40

    @property
    def src(self):
        if self.version == 4:
            return str(ipaddress.IPv4Address(self.data[12:16]))
        return str(ipaddress.IPv6Address(self.data[8:24]))

    @property
    def dst(self):
        if self.version == 4:
            return str(ipaddress.IPv4Address(self.data[16:20]))
        return str(ipaddress.IPv6Address(self.data[24:40]))

    @property
    def sport(self):
        return struct.unpack_from("!H", self.data, self.header_size)[0]

    @property
    def dport(self):
        return struct.unpack_from("!H", self.data, self.header_size + 2)[0]

    @property
    def udp_length(self):
        return struct.unpack_from("!H", self.data, self.header_size + 4)[0]

    @property
    def payload(self):
        return self.data[self.header_size + 8:]


def _read_pcap(blob):
    magic, major, minor, _, _, snaplen, linktype = struct.unpack_from("=IHHiIII", blob)
    assert magic == PCAP_NS_MAGIC, hex(magic)
    assert (major, minor, linktype) == (2, 4, LINKTYPE_RAW)
    records, offset = [], 24
    while offset < len(blob):
        # A partial record header or body would fail here: every record must be whole.
        sec, nsec, caplen, origlen = struct.unpack_from("=IIII", blob, offset)
        assert nsec < 10**9 and caplen <= snaplen and caplen <= origlen
        body = blob[offset + 16:offset + 16 + caplen]
        assert len(body) == caplen, "record cut short"
        records.append(Record(sec * 10**9 + nsec, caplen, origlen, body))
        offset += 16 + caplen
    return records


def _blocks(blob):
    offset = 0
    while offset < len(blob):
        kind, length = struct.unpack_from("=II", blob, offset)
        assert length % 4 == 0 and offset + length <= len(blob), "block cut short"
        assert struct.unpack_from("=I", blob, offset + length - 4)[0] == length
        yield kind, blob[offset + 8:offset + length - 4]
        offset += length


def _options(body):
    offset, options = 0, {}
    while offset + 4 <= len(body):
        code, length = struct.unpack_from("=HH", body, offset)
        if code == 0:
            break
        options[code] = body[offset + 4:offset + 4 + length]
        offset += 4 + (length + 3) // 4 * 4
    return options


def _read_pcapng(blob):
    records = []
    for kind, body in _blocks(blob):
        if kind == 0x0A0D0D0A:
            assert struct.unpack_from("=I", body)[0] == 0x1A2B3C4D
        elif kind == 1:
            linktype, _, snaplen = struct.unpack_from("=HHI", body)
            assert linktype == LINKTYPE_RAW
            assert _options(body[8:]).get(9) == b"\x09"        # if_tsresol: nanoseconds
        elif kind == 6:
            iface, high, low, caplen, origlen = struct.unpack_from("=IIIII", body)
            assert iface == 0 and caplen <= origlen
            records.append(Record(high << 32 | low, caplen, origlen, body[20:20 + caplen]))
    return records


def read_capture(path):
    """Every record of a pcap (ns) or pcapng file written by hotsock."""
    with open(path, "rb") as f:
        blob = f.read()
    if struct.unpack_from("=I", blob)[0] == 0x0A0D0D0A:
        return _read_pcapng(blob)
    return _read_pcap(blob)


def read_isb(path):
    """The last interface statistics block of a pcapng file, as a dict."""
    with open(path, "rb") as f:
        blob = f.read()
    found = None
    for kind, body in _blocks(blob):
        if kind == 5:
            options = _options(body[12:])

            def stamp(code):
                high, low = struct.unpack("=II", options[code])
                return high << 32 | low
            found = {"starttime": stamp(2), "endtime": stamp(3),
                     "ifrecv": struct.unpack("=Q", options[4])[0],
                     "ifdrop": struct.unpack("=Q", options[5])[0]}
    return found


def tshark_fields(path, *fields, extra=()):
    """Rows (lists of strings) of `tshark -T fields`; skips the test without tshark."""
    tshark = shutil.which("tshark")
    if tshark is None:
        pytest.skip("tshark is not installed (Debian: apt-get install tshark)")
    command = [tshark, "-n", "-r", str(path), "-T", "fields", "-E", "separator=|", *extra]
    for field in fields:
        command += ["-e", field]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return [line.split("|") for line in proc.stdout.splitlines()]
