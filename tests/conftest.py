"""Shared fixtures: the two socket implementations and an IPv6 skip marker."""
import socket

import pytest

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


def pytest_runtest_setup(item):
    if item.get_closest_marker("ipv6") is not None and not IPV6_OK:
        pytest.skip("IPv6 loopback ::1 is not available")


@pytest.fixture(params=[socket.socket, hotsock.socket], ids=["stdlib", "hotsock"])
def impl(request):
    """The socket class under test: the stdlib's, then hotsock's."""
    return request.param
