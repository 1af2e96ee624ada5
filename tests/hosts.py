"""Hosts for multi-host tests: Linux network namespaces on one bridged Ethernet segment.

    from hosts import network, read_line   # `network` is a pytest fixture

    def test_ping(network):
        a, b = network.add_host("a"), network.add_host("b")
        server = b.popen_python(SERVER_CODE, b.address, "5000")
        assert read_line(server) == "ready"
        result = a.run_python(CLIENT_CODE, b.address, "5000", timeout=10)
        out, err = server.communicate(timeout=10)

Layout: one namespace holds a bridge "br0" (the wire); every host is a namespace whose interface
"eth0" is one end of a veth pair, the other end being a port of "br0". Hosts are numbered from 1
and get 198.18.0.N/24 (198.18.0.0/15 is reserved for network tests, RFC 2544). Nothing here
touches the root namespace: no interface is created there, no namespace has a default route or a
link out, so test traffic can reach only loopback or the other hosts of the same Network.

Outside a fixture, `with open_network() as net:` does the same (it skips the test when namespaces
are unavailable); `with Network() as net:` raises NamespacesUnavailable instead.

Names carry the pid and a random tag so parallel runs never collide, and close() (run by the
fixture's teardown and by `with`, also when the test fails) kills the processes it started and
deletes every namespace, which deletes their interfaces too.
"""
import os
import secrets
import select
import shutil
import subprocess
import sys
import time

import pytest

SUBNET = "198.18.0"        # hosts get SUBNET.1, SUBNET.2, ... (at most MAX_HOSTS)
PREFIX_LEN = 24
BROADCAST = SUBNET + ".255"
MAX_HOSTS = 250
IFACE = "eth0"             # every host's interface on the segment
BRIDGE = "br0"
MULTICAST_ROUTE = "224.0.0.0/4"
IP_TIMEOUT = 10            # seconds allowed to any single `ip` command
RUN_TIMEOUT = 10           # default for Host.run / run_python
KILL_TIMEOUT = 5           # seconds to wait for a killed process to be reaped


class NamespacesUnavailable(RuntimeError):
    """Namespaces cannot be created here (not Linux, not root, no `ip`, or the kernel refused)."""


def _ip(*args):
    """Run one `ip` command; raise with its stderr, so a failing setup step says why."""
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=IP_TIMEOUT)
    if proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {proc.stderr.strip() or proc.returncode}")
    return proc.stdout


def _child_env():
    # The current environment, so PYTHONPATH (the in-place build) or the installed wheel is what
    # the child imports too; unbuffered so a child's lines reach read_line() as they are printed.
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def namespace_names():
    """The names `ip netns list` shows (each line is 'NAME' or 'NAME (id: N)')."""
    return {line.split()[0] for line in _ip("netns", "list").splitlines() if line.strip()}


def _check_platform():
    if not sys.platform.startswith("linux"):
        raise NamespacesUnavailable("network namespaces need Linux")
    if os.geteuid() != 0:
        raise NamespacesUnavailable("network namespaces need root (run the tests as root)")
    if shutil.which("ip") is None:
        raise NamespacesUnavailable("the `ip` command (iproute2) is not installed")


class Host:
    """One namespace on the segment: its name, address and interface, and ways to run in it."""

    def __init__(self, network, name, netns, address):
        self.network = network
        self.name = name
        self.netns = netns
        self.address = address
        self.iface = IFACE
        self.broadcast = BROADCAST

    def __repr__(self):
        return f"<Host {self.name} {self.address} netns={self.netns}>"

    def command(self, argv):
        """argv prefixed so that it runs inside this host's namespace."""
        return ["ip", "netns", "exec", self.netns, *map(str, argv)]

    def run(self, argv, timeout=RUN_TIMEOUT, input=None):
        """Run argv in this host; returns the CompletedProcess (text, stdout and stderr captured).

        On timeout the process is killed and subprocess.TimeoutExpired is raised.
        """
        return subprocess.run(self.command(argv), input=input, capture_output=True, text=True,
                              timeout=timeout, env=_child_env())

    def run_python(self, code, *args, timeout=RUN_TIMEOUT):
        """Run `python -c code *args` (this interpreter) here; args arrive in sys.argv[1:]."""
        return self.run([sys.executable, "-c", code, *args], timeout=timeout)

    def popen(self, argv, **kwargs):
        """Start argv in the background in this host; text pipes for stdout and stderr.

        The network kills it on close() if it is still running. Bound its lifetime anyway
        (a count, a socket timeout) and collect it with communicate(timeout=...).
        """
        options = dict(stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_child_env())
        options.update(kwargs)
        proc = subprocess.Popen(self.command(argv), **options)
        self.network.processes.append(proc)
        return proc

    def popen_python(self, code, *args, **kwargs):
        """popen() of `python -c code *args`."""
        return self.popen([sys.executable, "-c", code, *args], **kwargs)


class Network:
    """A bridged segment of namespace hosts. Use as a context manager, or the `network` fixture."""

    def __init__(self):
        self.tag = f"hs{os.getpid()}-{secrets.token_hex(2)}"
        self.hosts = []
        self.namespaces = []    # every namespace created, in creation order
        self.processes = []     # every Popen started by a host
        self._bridge_ns = None
        self._closed = False

    def __enter__(self):
        if self._bridge_ns is None:
            self.open()
        return self

    def __exit__(self, *exc_info):
        self.close()

    def open(self):
        """Create the segment (a namespace holding the bridge). Raises NamespacesUnavailable.

        On any failure whatever was created is deleted again before the exception propagates.
        """
        try:
            self._create_segment()
        except BaseException:
            self.close()
            raise

    def _create_segment(self):
        _check_platform()
        try:
            self._bridge_ns = self._add_namespace("wire")
            # `ip netns exec` also needs to remount /sys, which some containers forbid.
            probe = subprocess.run(["ip", "netns", "exec", self._bridge_ns, "true"],
                                   capture_output=True, text=True, timeout=IP_TIMEOUT)
            if probe.returncode != 0:
                raise RuntimeError(f"ip netns exec: {probe.stderr.strip()}")
        except RuntimeError as exc:
            raise NamespacesUnavailable(f"cannot create network namespaces: {exc}") from None
        # "name"/"dev" spelled out: `ip link` reads a bare "br" as short for "broadcast".
        # No IGMP snooping: with no querier on the segment it could withhold multicast from ports.
        _ip("-n", self._bridge_ns, "link", "add", "name", BRIDGE, "type", "bridge",
            "mcast_snooping", "0")
        _ip("-n", self._bridge_ns, "link", "set", "dev", BRIDGE, "up")

    def add_host(self, name):
        """A new host on the segment, with the next address and a multicast route on its eth0."""
        if self._bridge_ns is None or self._closed:
            raise RuntimeError("the network is not open")
        if len(self.hosts) >= MAX_HOSTS:
            raise RuntimeError(f"at most {MAX_HOSTS} hosts on one segment")
        number = len(self.hosts) + 1
        netns = self._add_namespace(name)
        host = Host(self, name, netns, f"{SUBNET}.{number}")
        port = f"port{number}"
        # Created inside the host namespace with its peer placed straight into the bridge's,
        # so no interface ever appears in the root namespace, even for an instant.
        _ip("-n", netns, "link", "add", "name", IFACE, "type", "veth", "peer", "name", port,
            "netns", self._bridge_ns)
        _ip("-n", self._bridge_ns, "link", "set", "dev", port, "master", BRIDGE, "up")
        _ip("-n", netns, "addr", "add", f"{host.address}/{PREFIX_LEN}", "brd", "+", "dev", IFACE)
        _ip("-n", netns, "link", "set", "dev", "lo", "up")
        _ip("-n", netns, "link", "set", "dev", IFACE, "up")
        # Without a default route, a multicast send with no IP_MULTICAST_IF has nowhere to go.
        _ip("-n", netns, "route", "add", MULTICAST_ROUTE, "dev", IFACE)
        self.hosts.append(host)
        return host

    def close(self):
        """Kill leftover processes and delete every namespace. Safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        for proc in self.processes:
            if proc.poll() is None:
                proc.kill()
            try:
                proc.communicate(timeout=KILL_TIMEOUT)   # reap it and close its pipes
            except (subprocess.TimeoutExpired, ValueError, OSError):
                pass
        errors = []
        for netns in reversed(self.namespaces):
            try:
                _ip("netns", "delete", netns)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                errors.append(str(exc))
        if errors:
            raise RuntimeError("namespaces left behind: " + "; ".join(errors))

    def _add_namespace(self, name):
        netns = f"{self.tag}-{name}"
        _ip("netns", "add", netns)
        self.namespaces.append(netns)   # recorded at once, so close() deletes it whatever follows
        return netns


def open_network():
    """An open Network, or pytest.skip() with the reason namespaces cannot be created here."""
    net = Network()
    try:
        net.open()
    except NamespacesUnavailable as exc:
        pytest.skip(str(exc))
    return net


@pytest.fixture
def network():
    """An open Network, closed (processes killed, namespaces deleted) after the test."""
    with open_network() as net:
        yield net


def read_line(proc, timeout=RUN_TIMEOUT):
    """The next stdout line of a popen()ed process, without its newline, within timeout seconds.

    Reads the pipe's descriptor a byte at a time, so nothing past the line is buffered away from
    a later proc.communicate(). Raises TimeoutError, or RuntimeError if the process exits first.
    """
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + timeout
    line = b""
    while not line.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no line from {proc.args} within {timeout} s (so far {line!r})")
        readable, _, _ = select.select([fd], [], [], remaining)
        if not readable:
            continue
        byte = os.read(fd, 1)
        if not byte:
            try:
                _, err = proc.communicate(timeout=KILL_TIMEOUT)
            except subprocess.TimeoutExpired:
                err = ""
            raise RuntimeError(f"{proc.args} exited ({proc.returncode}) before a full line "
                               f"(got {line!r}); stderr: {err.strip()}")
        line += byte
    return line.decode().rstrip("\n")
