"""Address facts the ``hotsock`` command decides in one place: an address's family,
whether it is a multicast group, an interface option, a receiver's bind address."""
import ipaddress
import socket as _stdlib


def family_of(host):
    """AF_INET6 for an IPv6 literal (scope suffix ``%eth0`` allowed), AF_INET otherwise."""
    return _stdlib.AF_INET6 if ":" in host else _stdlib.AF_INET


def is_multicast(host):
    """Whether *host* is a multicast group literal (IPv6 scope allowed); False for a name."""
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_multicast
    except ValueError:
        return False


def is_ip(text):
    """Whether *text* is an IPv4 or IPv6 address literal (IPv6 scope allowed: fe80::1%eth0)."""
    try:
        ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return False
    return True


def interface_arg(text):
    """An interface option as the typed socket options take it: an index or a name/address."""
    if text is None:
        return None
    return int(text) if text.isdigit() else text


def receiver_host(bind, groups):
    """The address a receiver binds: *bind*, else the wildcard of the *groups*' family."""
    if bind:
        return bind
    if groups and family_of(groups[0]) == _stdlib.AF_INET6:
        return "::"
    return "0.0.0.0"


def sockaddr(host, port, family):
    """*host* and *port* as a socket address of *family*, numerically."""
    # getaddrinfo, not a bare tuple: it parses IPv6 scope ids ("fe80::1%eth0").
    flags = _stdlib.AI_PASSIVE | _stdlib.AI_NUMERICHOST
    return _stdlib.getaddrinfo(host, port, family, _stdlib.SOCK_DGRAM, 0, flags)[0][4]
