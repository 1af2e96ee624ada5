"""Shared fixtures: the two socket implementations, an IPv6 skip marker, and the
fixtures of the test helpers (C peers, network-namespace hosts), registered here
once rather than imported into each test module."""
import os
import socket
import sysconfig

import pytest
from cpeers import cpeers  # noqa: F401  (a fixture, for every test module)
from hosts import network  # noqa: F401  (a fixture, for every test module)

import hotsock


def _ipv6_loopback_works():
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


IPV6_OK = _ipv6_loopback_works()


def pytest_configure(config):
    config.addinivalue_line("markers", "ipv6: needs an IPv6 loopback (::1); skipped otherwise")
    # CI (and a user testing a wheel) says which hotsock must be under test:
    # HOTSOCK_EXPECT_INSTALLED=1 refuses one imported from a source tree, so
    # that a passing run is a run of what pip installed.
    if os.environ.get("HOTSOCK_EXPECT_INSTALLED", "") not in ("", "0"):
        here = os.path.realpath(os.path.dirname(hotsock.__file__))
        installed = {os.path.realpath(p) for p in
                     (sysconfig.get_path("purelib"), sysconfig.get_path("platlib"))}
        if os.path.dirname(here) not in installed:
            raise pytest.UsageError(
                f"hotsock is imported from {here}, not from this environment's "
                f"site-packages ({', '.join(sorted(installed))})")


def pytest_report_header(config):
    return f"hotsock {hotsock.__version__} from {os.path.dirname(hotsock.__file__)}"


def pytest_runtest_setup(item):
    if item.get_closest_marker("ipv6") is not None and not IPV6_OK:
        pytest.skip("IPv6 loopback ::1 is not available")


@pytest.fixture(params=[socket.socket, hotsock.socket], ids=["stdlib", "hotsock"])
def impl(request):
    """The socket class under test: the stdlib's, then hotsock's."""
    return request.param
