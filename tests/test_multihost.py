"""Multicast and broadcast across hosts, set up with hotsock's typed options.

Hosts are network namespaces on one bridged segment (hosts.py, 198.18.0.0/24);
each test skips with the reason where namespaces cannot be made.  Every
program below runs inside a host with ``python -c`` and is bounded: a
receiver stops after its count or after ``wait`` idle seconds.
"""
import json

import pytest
from hosts import read_line

GROUP = "239.18.0.7"
PORT = 5007
COUNT = 3
TIMEOUT = 15

RECEIVER = """
import json, sys, hotsock
cfg = json.loads(sys.argv[1])
family = hotsock.AF_INET6 if cfg.get("ipv6") else hotsock.AF_INET
with hotsock.socket(family, hotsock.SOCK_DGRAM) as s:
    s.set_reuse_address(True)
    s.bind(("::" if cfg.get("ipv6") else "0.0.0.0", cfg["port"]))
    if cfg.get("group"):
        s.join_group(cfg["group"], cfg.get("interface"), cfg.get("source"))
    s.settimeout(cfg.get("wait", 1.5))
    print("ready", flush=True)
    got = 0
    try:
        while got < cfg.get("count", 100):
            data, peer = s.recvfrom(2048)
            print("from", peer[0], data.decode(), flush=True)
            got += 1
    except hotsock.timeout:
        pass
    print("done", got)
"""

SENDER = """
import json, sys, hotsock
cfg = json.loads(sys.argv[1])
family = hotsock.AF_INET6 if cfg.get("ipv6") else hotsock.AF_INET
with hotsock.socket(family, hotsock.SOCK_DGRAM) as s:
    if "ttl" in cfg:
        s.set_multicast_ttl(cfg["ttl"])
    if "loop" in cfg:
        s.set_multicast_loop(cfg["loop"])
    if "interface" in cfg:
        s.set_multicast_interface(cfg["interface"])
    if cfg.get("broadcast"):
        s.set_broadcast(True)
    try:
        for i in range(cfg["count"]):
            s.sendto(("%s %d" % (cfg["tag"], i)).encode(), (cfg["to"], cfg["port"]))
    except PermissionError as exc:
        print("PermissionError", exc.errno)
    else:
        print("sent", cfg["count"])
"""


def start_receiver(host, **cfg):
    proc = host.popen_python(RECEIVER, json.dumps({"port": PORT, **cfg}))
    assert read_line(proc, TIMEOUT) == "ready"
    return proc


def send(host, **cfg):
    result = host.run_python(SENDER, json.dumps({"port": PORT, "count": COUNT, **cfg}),
                             timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def heard(proc):
    """(source, payload) of every datagram a receiver printed."""
    out, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, err
    lines = out.splitlines()
    assert lines[-1].startswith("done ")
    return [tuple(line.split(" ", 2)[1:]) for line in lines if line.startswith("from ")]


def expected(host, tag):
    return [(host.address, f"{tag} {i}") for i in range(COUNT)]


@pytest.mark.parametrize("interface", ["eth0", "address"])
def test_multicast_reaches_another_host(network, interface):
    a, b = network.add_host("a"), network.add_host("b")
    rx = start_receiver(b, group=GROUP, count=COUNT,
                        interface=b.address if interface == "address" else "eth0")
    assert send(a, to=GROUP, tag="hello", interface=a.address) == f"sent {COUNT}"
    assert heard(rx) == expected(a, "hello")


def test_ttl_zero_stays_on_the_sending_host(network):
    a, b = network.add_host("a"), network.add_host("b")
    local = start_receiver(a, group=GROUP, interface="eth0", count=COUNT)
    remote = start_receiver(b, group=GROUP, interface="eth0")
    send(a, to=GROUP, tag="ttl0", interface=a.address, ttl=0, loop=True)
    assert heard(local) == expected(a, "ttl0")
    assert heard(remote) == []


@pytest.mark.parametrize("loop", [False, True])
def test_multicast_loop_controls_local_copies(network, loop):
    a, b = network.add_host("a"), network.add_host("b")
    local = start_receiver(a, group=GROUP, interface="eth0", count=COUNT)
    remote = start_receiver(b, group=GROUP, interface="eth0", count=COUNT)
    send(a, to=GROUP, tag="loop", interface=a.address, ttl=1, loop=loop)
    assert heard(remote) == expected(a, "loop")
    assert heard(local) == (expected(a, "loop") if loop else [])


def test_multicast_interface_picks_the_interface(network):
    a, b = network.add_host("a"), network.add_host("b")
    assert a.run(["ip", "link", "set", "lo", "up"]).returncode == 0
    on_lo = start_receiver(a, group=GROUP, interface="lo", count=COUNT)
    remote = start_receiver(b, group=GROUP, interface="eth0")
    send(a, to=GROUP, tag="via-lo", interface="lo")          # by name: ip_mreqn index
    assert heard(on_lo) == expected(a, "via-lo")
    assert heard(remote) == []
    remote = start_receiver(b, group=GROUP, interface="eth0", count=COUNT)
    send(a, to=GROUP, tag="via-eth0", interface=a.address)   # by address
    assert heard(remote) == expected(a, "via-eth0")


def test_source_specific_join_delivers_only_the_chosen_source(network):
    a, b, c = network.add_host("a"), network.add_host("b"), network.add_host("c")
    rx = start_receiver(b, group=GROUP, interface="eth0", source=a.address)
    send(c, to=GROUP, tag="unwanted", interface=c.address)
    send(a, to=GROUP, tag="chosen", interface=a.address)
    assert heard(rx) == expected(a, "chosen")


def test_block_source_across_hosts(network):
    a, b, c = network.add_host("a"), network.add_host("b"), network.add_host("c")
    code = RECEIVER.replace(
        "    s.settimeout(", "    s.block_source(cfg['group'], cfg['blocked'], 'eth0')\n"
        "    s.settimeout(", 1)
    proc = b.popen_python(code, json.dumps({"port": PORT, "group": GROUP, "interface": "eth0",
                                            "blocked": c.address}))
    assert read_line(proc, TIMEOUT) == "ready"
    send(c, to=GROUP, tag="blocked", interface=c.address)
    send(a, to=GROUP, tag="open", interface=a.address)
    assert heard(proc) == expected(a, "open")


def test_broadcast_needs_so_broadcast(network):
    a, b = network.add_host("a"), network.add_host("b")
    rx = start_receiver(b, count=COUNT)
    assert send(a, to=a.broadcast, tag="refused") == "PermissionError 13"
    assert send(a, to=a.broadcast, tag="bcast", broadcast=True) == f"sent {COUNT}"
    assert heard(rx) == expected(a, "bcast")


# IPv6: the hosts' link-local addresses, once duplicate address detection is done.

GROUP6 = "ff12::18:7"       # transient, link-local scope

def link_local(host, timeout=5.0):
    """The host's fe80:: address, waiting until it is no longer tentative."""
    import time
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = host.run(["ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "link"]).stdout
        if out and "tentative" not in out:
            return out.split()[3].split("/")[0]
        time.sleep(0.1)
    pytest.skip("IPv6 link-local address not ready (no IPv6 in the namespaces?)")


@pytest.mark.parametrize("hops, loop", [(1, False), (0, True)])
def test_ipv6_multicast_between_hosts(network, hops, loop):
    a, b = network.add_host("a"), network.add_host("b")
    a_address = link_local(a)
    link_local(b)
    local = start_receiver(a, ipv6=True, group=GROUP6, interface="eth0", count=COUNT)
    remote = start_receiver(b, ipv6=True, group=GROUP6, interface="eth0", count=COUNT)
    send(a, ipv6=True, to=GROUP6, tag="six", interface="eth0", ttl=hops, loop=loop)
    sent = [(a_address, f"six {i}") for i in range(COUNT)]
    # hop limit 0: only this host's members; loop off: only the other host's.
    assert heard(remote) == ([] if hops == 0 else sent)
    assert heard(local) == (sent if loop else [])
