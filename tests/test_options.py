"""Typed socket options: each setter read back with raw getsockopt, bad input
refused before the syscall, kernel refusals as OSError, and multicast
membership checked by delivery on loopback."""
import errno
import socket
import struct
import time

import pytest

import hotsock
from hotsock._options import OPTION_METHODS, OPTIONS

GROUP = "239.255.77.1"
GROUP6 = "ff02::1:7701"     # link-local scope: stays on the interface


def udp(family=socket.AF_INET):
    return hotsock.socket(family, socket.SOCK_DGRAM)


@pytest.fixture
def s():
    with udp() as sock:
        yield sock


@pytest.fixture
def s6():
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    with udp(socket.AF_INET6) as sock:
        yield sock


@pytest.fixture
def tcp():
    with hotsock.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        yield sock


def raw_int(sock, level, name):
    return sock.getsockopt(level, name)


# --- read back with raw getsockopt -----------------------------------------------------

@pytest.mark.parametrize("ttl", [0, 1, 32, 255])
def test_multicast_ttl(s, s6, ttl):
    s.set_multicast_ttl(ttl)
    assert s.get_multicast_ttl() == ttl == raw_int(s, socket.IPPROTO_IP, socket.IP_MULTICAST_TTL)
    s6.set_multicast_ttl(ttl)
    assert s6.get_multicast_ttl() == ttl == raw_int(
        s6, socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS)


@pytest.mark.parametrize("on", [False, True])
def test_multicast_loop(s, s6, on):
    s.set_multicast_loop(on)
    assert s.get_multicast_loop() is on
    assert raw_int(s, socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP) == int(on)
    s6.set_multicast_loop(on)
    assert s6.get_multicast_loop() is on
    assert raw_int(s6, socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP) == int(on)


def test_multicast_interface(s, s6):
    s.set_multicast_interface("127.0.0.1")
    assert s.get_multicast_interface() == "127.0.0.1"
    assert socket.inet_ntoa(s.getsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, 4)) == "127.0.0.1"
    s.set_multicast_interface(None)
    assert s.get_multicast_interface() == "0.0.0.0"
    s.set_multicast_interface("lo")                      # by name: ip_mreqn on Linux
    lo = socket.if_nametoindex("lo")
    s6.set_multicast_interface(lo)
    assert s6.get_multicast_interface() == lo == raw_int(
        s6, socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF)
    s6.set_multicast_interface("lo")
    assert s6.get_multicast_interface() == lo


@pytest.mark.parametrize("on, seconds", [(True, 0), (True, 5), (False, 0), (False, 3)])
def test_linger(tcp, on, seconds):
    tcp.set_linger(on, seconds)
    raw = struct.unpack("ii", tcp.getsockopt(socket.SOL_SOCKET, socket.SO_LINGER, 8))
    assert tcp.get_linger() == (bool(raw[0]), raw[1])
    assert raw[0] == int(on)
    if on:                      # Linux keeps no linger time while lingering is off
        assert raw[1] == seconds


@pytest.mark.parametrize("setter, getter, name", [
    ("set_recv_timeout", "get_recv_timeout", socket.SO_RCVTIMEO),
    ("set_send_timeout", "get_send_timeout", socket.SO_SNDTIMEO),
])
@pytest.mark.parametrize("seconds", [None, 0.25, 2, 1.000001])
def test_kernel_timeouts(s, setter, getter, name, seconds):
    getattr(s, setter)(seconds)
    sec, usec = struct.unpack("ll", s.getsockopt(socket.SOL_SOCKET, name, 16))
    raw = sec + usec / 1e6
    assert raw == pytest.approx(seconds or 0, abs=0.005)    # the kernel keeps jiffies
    got = getattr(s, getter)()
    if seconds:
        assert got == raw
    else:
        assert got is None


def test_kernel_receive_timeout_in_blocking_mode_only(s):
    """SO_RCVTIMEO ends a blocking receive with EAGAIN, on the stdlib as on hotsock."""
    s.bind(("127.0.0.1", 0))
    s.set_recv_timeout(0.2)
    for recv in (s.recv, lambda n: socket.socket.recv(s, n)):
        start = time.monotonic()
        with pytest.raises(BlockingIOError):
            recv(16)
        assert 0.15 <= time.monotonic() - start < 2.0
    s.settimeout(0.4)           # a Python timeout rules instead (non-blocking fd)
    start = time.monotonic()
    with pytest.raises(socket.timeout):
        s.recv(16)
    assert time.monotonic() - start >= 0.35


def test_keepalive(tcp):
    tcp.set_keepalive(True, idle=30, interval=5, count=4)
    assert tcp.get_keepalive() == (True, 30, 5, 4)
    assert raw_int(tcp, socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
    assert raw_int(tcp, socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 30
    assert raw_int(tcp, socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == 5
    assert raw_int(tcp, socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 4
    tcp.set_keepalive(False)
    assert tcp.get_keepalive()[0] is False


@pytest.mark.parametrize("setter, getter, level, name, make", [
    ("set_reuse_address", "get_reuse_address", socket.SOL_SOCKET, socket.SO_REUSEADDR, udp),
    ("set_reuse_port", "get_reuse_port", socket.SOL_SOCKET, socket.SO_REUSEPORT, udp),
    ("set_broadcast", "get_broadcast", socket.SOL_SOCKET, socket.SO_BROADCAST, udp),
    ("set_oobinline", "get_oobinline", socket.SOL_SOCKET, socket.SO_OOBINLINE,
     lambda: hotsock.socket(socket.AF_INET, socket.SOCK_STREAM)),
    ("set_dontroute", "get_dontroute", socket.SOL_SOCKET, socket.SO_DONTROUTE, udp),
    ("set_nodelay", "get_nodelay", socket.IPPROTO_TCP, socket.TCP_NODELAY,
     lambda: hotsock.socket(socket.AF_INET, socket.SOCK_STREAM)),
])
def test_flags(setter, getter, level, name, make):
    with make() as sock:
        for on in (True, False, True):
            getattr(sock, setter)(on)
            assert getattr(sock, getter)() is on
            assert bool(raw_int(sock, level, name)) is on


def test_maxseg(tcp):
    tcp.set_maxseg(1000)
    assert tcp.get_maxseg() == raw_int(tcp, socket.IPPROTO_TCP, socket.TCP_MAXSEG)


def test_ttl_and_tos(s, s6):
    s.set_ttl(17)
    assert s.get_ttl() == 17 == raw_int(s, socket.IPPROTO_IP, socket.IP_TTL)
    s6.set_ttl(9)
    assert s6.get_ttl() == 9 == raw_int(s6, socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS)
    s.set_tos(0x28)
    assert s.get_tos() == 0x28 == raw_int(s, socket.IPPROTO_IP, socket.IP_TOS)


def test_buffers_report_what_the_kernel_granted(s):
    granted = s.set_recv_buffer(65536)
    assert granted == s.get_recv_buffer() == raw_int(s, socket.SOL_SOCKET, socket.SO_RCVBUF)
    assert granted >= 65536
    granted = s.set_send_buffer(32768)
    assert granted == s.get_send_buffer() == raw_int(s, socket.SOL_SOCKET, socket.SO_SNDBUF)
    with open("/proc/sys/net/core/rmem_max") as f:
        rmem_max = int(f.read())
    wanted = rmem_max * 4
    capped = s.set_recv_buffer(wanted)
    assert capped <= 2 * rmem_max           # the ordinary request is capped
    forced = s.set_recv_buffer(wanted, force=True)
    try:
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.setsockopt(socket.SOL_SOCKET, 33, 4096)   # SO_RCVBUFFORCE: permitted here?
        privileged = True
    except PermissionError:
        privileged = False
    finally:
        probe.close()
    if privileged:
        assert forced >= wanted              # past rmem_max
    else:
        assert forced == capped              # fell back to the ordinary request


def test_type_and_error(s, tcp):
    assert s.get_type() == socket.SOCK_DGRAM
    assert tcp.get_type() == socket.SOCK_STREAM
    assert s.get_error() == 0
    # A connected UDP socket learns of an ICMP port unreachable through SO_ERROR.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    s.connect(("127.0.0.1", port))
    s.send(b"x")
    deadline = time.monotonic() + 2
    error = 0
    while not error and time.monotonic() < deadline:
        error = s.get_error()
        time.sleep(0.01)
    assert error == errno.ECONNREFUSED
    assert s.get_error() == 0                # reading cleared it


# --- every row of the options table, generically ---------------------------------------

# One test row per row of hotsock._options.OPTIONS: the socket type it is
# tried on, the values set (None for a flag: True, False, True; for a
# read-only row: none), and whether the kernel keeps a value as given (it
# doubles buffer sizes and keeps its own MSS before connecting).
TABLE_ROWS = {
    "multicast_ttl": (socket.SOCK_DGRAM, [0, 1, 32, 255], True),
    "multicast_loop": (socket.SOCK_DGRAM, None, True),
    "recv_buffer": (socket.SOCK_DGRAM, [4096, 65536], False),
    "send_buffer": (socket.SOCK_DGRAM, [4096, 65536], False),
    "reuse_address": (socket.SOCK_DGRAM, None, True),
    "reuse_port": (socket.SOCK_DGRAM, None, True),
    "broadcast": (socket.SOCK_DGRAM, None, True),
    "oobinline": (socket.SOCK_STREAM, None, True),
    "dontroute": (socket.SOCK_DGRAM, None, True),
    "nodelay": (socket.SOCK_STREAM, None, True),
    "maxseg": (socket.SOCK_STREAM, [536, 1000], False),
    "ttl": (socket.SOCK_DGRAM, [1, 17, 255], True),
    "tos": (socket.SOCK_DGRAM, [0, 0x28, 0xB8], True),
    "type": (socket.SOCK_DGRAM, None, True),
    "error": (socket.SOCK_DGRAM, None, True),
}


def _families(row):
    """AF_INET, and AF_INET6 where IPv6 names its own option or any family takes it."""
    yield socket.AF_INET
    if socket.has_ipv6 and (row.constant6 != row.constant
                            or row.level in (socket.SOL_SOCKET, socket.IPPROTO_TCP)):
        yield socket.AF_INET6


def test_every_table_row_has_a_test_row():
    assert sorted(TABLE_ROWS) == sorted(row.name for row in OPTIONS)


@pytest.mark.parametrize("row", OPTIONS, ids=lambda row: row.name)
def test_table_row_is_the_stdlib_constant_and_installed(row):
    for constant, option in ((row.constant, row.option), (row.constant6, row.option6)):
        if hasattr(socket, constant):
            assert getattr(socket, constant) == option, constant
    names = [f"get_{row.name}"] if row.kind == "read-only" else [f"set_{row.name}",
                                                                 f"get_{row.name}"]
    assert hasattr(hotsock.socket, f"set_{row.name}") is (row.kind != "read-only")
    for name in names:
        assert name in OPTION_METHODS
        method = getattr(hotsock.socket, name)
        assert method is getattr(hotsock._options, name)
        assert method.__name__ == name and method.__doc__.strip()


@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6],
                         ids=["ipv4", "ipv6"])
@pytest.mark.parametrize("row", OPTIONS, ids=lambda row: row.name)
def test_table_row_against_raw_getsockopt(row, family):
    if family not in _families(row):
        pytest.skip(f"{row.name} is not an IPv6 option")
    kind, values, kept = TABLE_ROWS[row.name]
    level, name = ((row.level6, row.option6) if family == socket.AF_INET6
                   else (row.level, row.option))
    with hotsock.socket(family, kind) as sock:
        get = getattr(sock, f"get_{row.name}")
        if row.kind == "read-only":
            assert get() == raw_int(sock, level, name)
            return
        set_ = getattr(sock, f"set_{row.name}")
        if row.kind == "flag":
            for on in (True, False, True):
                assert set_(on) is None
                assert get() is on
                assert bool(raw_int(sock, level, name)) is on
            return
        for value in values:
            result = set_(value)
            assert get() == raw_int(sock, level, name)
            if row.kind == "buffer":
                assert result == get() >= value         # the size granted
            else:
                assert result is None
            if kept:
                assert get() == value


@pytest.mark.parametrize("row", [row for row in OPTIONS if row.kind in ("number", "buffer")],
                         ids=lambda row: row.name)
def test_table_row_bounds(s, row):
    set_ = getattr(s, f"set_{row.name}")
    for value in (row.low - 1, row.high + 1, 2 ** 64, -2 ** 64):
        with pytest.raises(ValueError, match=f"^{row.what} must be between {row.low} and "
                                             f"{row.high}, not {value}$"):
            set_(value)
    with pytest.raises(TypeError, match=f"^{row.what} must be an integer, not str$"):
        set_("1")
    with pytest.raises(TypeError, match=f"^{row.what} must be an integer, not float$"):
        set_(1.0)


def test_int_subclasses_are_compared_as_python_compares_them(s):
    class Hops(int):
        pass

    s.set_ttl(True)                         # bool is an int: 1
    assert s.get_ttl() == 1
    s.set_multicast_ttl(Hops(7))
    assert s.get_multicast_ttl() == 7
    with pytest.raises(ValueError, match="^TTL must be between 0 and 255, not 256$"):
        s.set_multicast_ttl(Hops(256))


# --- refused before the syscall ----------------------------------------------------------

@pytest.mark.parametrize("call, exc, message", [
    (lambda s: s.join_group("10.0.0.1"), ValueError, "group must be a multicast address, not '10.0.0.1'"),
    (lambda s: s.join_group("239.1"), ValueError, "not an IPv4 address: '239.1'"),
    (lambda s: s.join_group("ff02::1:2:3:4:5:6:7:8"), ValueError, "not an IPv6 address"),
    (lambda s: s.join_group("fe80::1"), ValueError, "must be a multicast address, not 'fe80::1'"),
    (lambda s: s.join_group(0xEF000001), TypeError, "group must be a str, not int"),
    (lambda s: s.join_group(GROUP, "999.1.1.1"), OSError, "no such network interface"),
    (lambda s: s.join_group(GROUP, 1.5), TypeError, "interface must be"),
    (lambda s: s.join_group(GROUP, -1), ValueError, "interface index must be between 0"),
    (lambda s: s.join_group(GROUP, source="nonsense"), ValueError, "source is not an IPv4 address"),
    (lambda s: s.block_source(GROUP, None), TypeError, "source must be a str"),
    (lambda s: s.set_multicast_ttl(256), ValueError, "TTL must be between 0 and 255, not 256"),
    (lambda s: s.set_multicast_ttl(-1), ValueError, "TTL must be between 0 and 255, not -1"),
    (lambda s: s.set_multicast_ttl("1"), TypeError, "TTL must be an integer, not str"),
    (lambda s: s.set_ttl(0), ValueError, "TTL must be between 1 and 255, not 0"),
    (lambda s: s.set_tos(256), ValueError, "TOS must be between 0 and 255"),
    (lambda s: s.set_linger(True, -1), ValueError, "linger seconds must be between 0"),
    (lambda s: s.set_linger(True, 1.5), TypeError, "linger seconds must be an integer"),
    (lambda s: s.set_recv_timeout(-0.5), ValueError, "seconds must be None or between 0"),
    (lambda s: s.set_send_timeout("1"), TypeError, "seconds must be a number or None"),
    (lambda s: s.set_keepalive(True, idle=0), ValueError, "keepalive idle must be between 1"),
    (lambda s: s.set_recv_buffer(0), ValueError, "buffer size must be between 1"),
    (lambda s: s.set_maxseg(-5), ValueError, "maximum segment size must be between 1"),
    (lambda s: s.set_multicast_interface("no-such-if"), OSError, "no such network interface"),
])
def test_bad_input(s, call, exc, message):
    with pytest.raises(exc, match=message.replace("(", r"\(").replace(")", r"\)")):
        call(s)


def test_closed_socket():
    sock = udp()
    sock.close()
    for call in (lambda: sock.set_multicast_ttl(1), lambda: sock.get_linger(),
                 lambda: sock.join_group(GROUP)):
        with pytest.raises(OSError) as info:
            call()
        assert info.value.errno == errno.EBADF


# --- what the kernel refuses, and delivery on loopback ----------------------------------------

def test_join_twice_and_leave_unjoined(s, s6):
    s.join_group(GROUP, "127.0.0.1")
    with pytest.raises(OSError) as info:
        s.join_group(GROUP, "127.0.0.1")
    assert info.value.errno == errno.EADDRINUSE
    s.leave_group(GROUP, "127.0.0.1")
    with pytest.raises(OSError) as info:
        s.leave_group(GROUP, "127.0.0.1")
    assert info.value.errno == errno.EADDRNOTAVAIL
    s6.join_group(GROUP6, "lo")
    with pytest.raises(OSError):
        s6.join_group(GROUP6, "lo")
    s6.leave_group(GROUP6, "lo")
    with pytest.raises(OSError):
        s6.leave_group(GROUP6, "lo")


@pytest.fixture
def multicast_receiver():
    rx = udp()
    rx.set_reuse_address(True)
    rx.bind(("0.0.0.0", 0))
    rx.settimeout(0.3)
    yield rx
    rx.close()


def sender(source="127.0.0.1"):
    tx = udp()
    tx.bind((source, 0))
    tx.set_multicast_interface("127.0.0.1")
    tx.set_multicast_loop(True)
    return tx


def received(rx):
    try:
        return rx.recvfrom(64)
    except socket.timeout:
        return None


@pytest.mark.parametrize("interface", ["127.0.0.1", "lo", None])
def test_join_delivers_and_leave_stops(multicast_receiver, interface):
    rx = multicast_receiver
    if interface is None:
        interface = "127.0.0.1"  # 'the system's choice' may not be lo: name it for delivery
    rx.join_group(GROUP, interface)
    port = rx.getsockname()[1]
    with sender() as tx:
        tx.sendto(b"joined", (GROUP, port))
        got = received(rx)
        assert got is not None and got[0] == b"joined"
        rx.leave_group(GROUP, interface)
        tx.sendto(b"left", (GROUP, port))
        assert received(rx) is None


def test_source_specific_join(multicast_receiver):
    rx = multicast_receiver
    rx.join_group(GROUP, "127.0.0.1", source="127.0.0.1")
    port = rx.getsockname()[1]
    with sender("127.0.0.2") as other, sender("127.0.0.1") as chosen:
        other.sendto(b"other", (GROUP, port))
        chosen.sendto(b"chosen", (GROUP, port))
        got = received(rx)
        assert got is not None and got == (b"chosen", chosen.getsockname())
        assert received(rx) is None
    rx.leave_group(GROUP, "127.0.0.1", source="127.0.0.1")
    with pytest.raises(OSError):
        rx.leave_group(GROUP, "127.0.0.1", source="127.0.0.1")


def test_block_and_unblock_source(multicast_receiver):
    rx = multicast_receiver
    rx.join_group(GROUP, "127.0.0.1")
    rx.block_source(GROUP, "127.0.0.2", "127.0.0.1")
    port = rx.getsockname()[1]
    with sender("127.0.0.2") as blocked, sender("127.0.0.1") as allowed:
        blocked.sendto(b"blocked", (GROUP, port))
        allowed.sendto(b"allowed", (GROUP, port))
        assert received(rx)[0] == b"allowed"
        assert received(rx) is None
        rx.unblock_source(GROUP, "127.0.0.2", "127.0.0.1")
        blocked.sendto(b"unblocked", (GROUP, port))
        assert received(rx)[0] == b"unblocked"
    with pytest.raises(OSError):           # was not blocked
        rx.unblock_source(GROUP, "127.0.0.2", "127.0.0.1")


def test_methods_are_documented():
    from hotsock import _options
    for name in _options.OPTION_METHODS:
        method = getattr(hotsock.socket, name)
        assert method.__doc__ and method.__doc__.strip(), name


def test_ipv6_source_specific_and_block(s6):
    """group_source_req joins (MCAST_JOIN_SOURCE_GROUP) and source blocks on IPv6."""
    group = "ff12::7702"            # transient, link-local scope
    s6.join_group(group, "lo", source="::1")
    with pytest.raises(OSError):     # Linux says EADDRNOTAVAIL here
        s6.join_group(group, "lo", source="::1")
    s6.leave_group(group, "lo", source="::1")
    with pytest.raises(OSError):
        s6.leave_group(group, "lo", source="::1")
    s6.join_group(group, "lo")
    s6.block_source(group, "::1", "lo")
    with pytest.raises(OSError):     # blocked already
        s6.block_source(group, "::1", "lo")
    s6.unblock_source(group, "::1", "lo")
    s6.leave_group(group, "lo")


def test_setters_return_none(s, tcp):
    assert s.set_broadcast(True) is None
    assert s.set_multicast_ttl(3) is None
    assert s.set_multicast_interface("127.0.0.1") is None
    assert s.set_recv_timeout(1) is None
    assert tcp.set_linger(True, 1) is None
    assert tcp.set_keepalive(True, idle=10) is None
    s.bind(("0.0.0.0", 0))
    assert s.join_group(GROUP, "127.0.0.1") is None
    assert s.leave_group(GROUP, "127.0.0.1") is None


def test_sub_microsecond_timeout_is_not_no_timeout(s):
    s.set_recv_timeout(4e-7)
    assert s.get_recv_timeout() == pytest.approx(1e-6, abs=0.005)
