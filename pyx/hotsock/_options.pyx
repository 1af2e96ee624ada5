"""Typed socket options: the methods of ``hotsock.socket`` that set and get them.

Plainly wrong input (a group that is not multicast, a TTL out of 0..255, a
negative linger) is refused with ``ValueError``/``TypeError`` before any
syscall; what the kernel refuses comes back as ``OSError`` from errno, as
with ``setsockopt`` (joining a group twice: ``EADDRINUSE``; leaving a group
never joined: ``EADDRNOTAVAIL``).

Options of one shape -- a flag, a bounded int, a buffer size, per family
where IPv6 names its own -- are rows of ``OPTIONS`` here, served by one
generic getter and setter (``Option.get``/``Option.set``); each row becomes
real methods ``set_<name>``/``get_<name>``.  The options that take a struct
(or several options at once) are written by hand in ``_struct_options``.
``OPTION_METHODS`` is derived from both.
"""
cimport cython
from libc.errno cimport ENOPROTOOPT

from includes.options cimport *
from includes.socket cimport socklen_t, AF_INET6, SOL_SOCKET, SO_TYPE
from hotsock._pysocket cimport SockInfo, get_sock_info
from hotsock._sockopt cimport _check_range, _put, _take

from inspect import cleandoc

from hotsock import _struct_options


# --- options as data ---------------------------------------------------------------------
# pyzmq's way (SocketOption entries carrying their type, one generic get/set):
# an option of one of the shapes below is a row of OPTIONS, served by
# Option.set/Option.get, and becomes real methods set_<name>/get_<name>.

cdef enum Kind:
    FLAG = 1        # set_<name>(on); get_<name>() -> bool
    NUMBER = 2      # set_<name>(<param>), refused outside low..high; get_<name>() -> int
    BUFFER = 3      # set_<name>(size, force=False) -> the size granted; get_<name>() -> int
    READ_ONLY = 4   # get_<name>() -> int

cdef dict _KINDS = {"flag": FLAG, "number": NUMBER, "buffer": BUFFER, "read-only": READ_ONLY}


# One row: *level*, *option* and *constant* (its name, for messages and
# tests) are what a socket sets, except that AF_INET6 sockets set *v6* =
# (level, option, constant) where given.  An option < 0 is one this system
# lacks (compat.h).  *one_byte*: the IPv4 value is one byte (the BSDs insist
# on it for IP_MULTICAST_TTL/LOOP; Linux takes it too).  *what* names the
# value in error messages ("TTL must be between 0 and 255, not 256").  *doc*
# is the setter's docstring as a def would have it; *get_doc* the getter's
# where it says more than "get_<name>() -> int"; a flag without *doc* is
# documented from *what*.
@cython.final
cdef class Option:
    cdef readonly str name, kind, param, what, doc, get_doc
    cdef readonly int level, option, level6, option6
    cdef readonly str constant, constant6
    cdef readonly bint one_byte
    cdef readonly long low, high
    cdef readonly int force             # BUFFER: the option past the system's cap, -1: none
    cdef Kind c_kind

    def __init__(self, str name, str kind, int level, int option, str constant, *,
                 tuple v6=None, bint one_byte=False, str param="on", str what=None,
                 long low=0, long high=0, int force=-1, str doc=None, str get_doc=None):
        self.name, self.kind, self.c_kind, self.param = name, kind, _KINDS[kind], param
        self.level, self.option, self.constant, self.one_byte = level, option, constant, one_byte
        self.level6, self.option6, self.constant6 = v6 or (level, option, constant)
        self.what, self.low, self.high, self.force = what, low, high, force
        self.doc, self.get_doc = doc, get_doc

    def __repr__(self):
        return f"Option({self.name!r})"

    cdef inline int _resolve(self, object sock, int *fd, int *level, int *name) except -1:
        # The descriptor and the (level, option) for this socket's family;
        # returns whether the value is one byte.
        cdef SockInfo info
        get_sock_info(sock, &info)
        fd[0] = info.fd
        if info.family == AF_INET6:
            level[0], name[0] = self.level6, self.option6
        else:
            level[0], name[0] = self.level, self.option
        if name[0] < 0:
            raise OSError(ENOPROTOOPT, f"{self.constant6 if info.family == AF_INET6 else self.constant}"
                                       " is not available on this system")
        return self.one_byte and info.family != AF_INET6

    cpdef object set(self, object sock, object value):
        cdef int fd, level, name
        cdef int c_value
        cdef unsigned char c_byte
        if self.c_kind == FLAG:
            c_value = 1 if value else 0
        else:
            _check_range(self.what, value, self.low, self.high)
            c_value = value
        if self._resolve(sock, &fd, &level, &name):
            c_byte = <unsigned char>c_value
            _put(fd, level, name, &c_byte, sizeof(c_byte))
        else:
            _put(fd, level, name, &c_value, sizeof(c_value))

    cpdef object set_buffer(self, object sock, object size, object force):
        cdef int fd, level, name
        cdef int c_size
        _check_range(self.what, size, self.low, self.high)
        c_size = size
        if force and self.force >= 0:
            self._resolve(sock, &fd, &level, &name)
            try:
                _put(fd, level, self.force, &c_size, sizeof(c_size))
            except PermissionError:
                pass        # not CAP_NET_ADMIN: the ordinary, capped request below
            else:
                return self.get(sock)
        self._resolve(sock, &fd, &level, &name)
        _put(fd, level, name, &c_size, sizeof(c_size))
        return self.get(sock)

    cpdef object get(self, object sock):
        cdef int fd, level, name
        cdef int c_value = 0
        cdef unsigned char c_byte = 0
        cdef socklen_t size
        if self._resolve(sock, &fd, &level, &name):
            size = sizeof(c_byte)
            _take(fd, level, name, &c_byte, &size)
            c_value = c_byte
        else:
            size = sizeof(c_value)
            _take(fd, level, name, &c_value, &size)
        if self.c_kind == FLAG:
            return c_value != 0
        return c_value


# The methods are plain Python functions written from the row: their
# argument errors (a missing or extra argument) then name the method itself,
# as CPython words them -- a compiled template would name the template.
_GETTER = "def {name}(sock):\n    return option.get(sock)\n"
_SETTER = "def {name}(sock, {params}):\n    return option.{call}(sock, {args})\n"


cdef object _function(str source, str name, Option option, str doc):
    namespace = {"option": option}
    exec(source, namespace)
    function = namespace[name]
    function.__doc__ = doc
    function.__module__ = __name__
    return function


cdef list _typed_methods(Option option):
    # [(name, function)]: the row's methods, named, signed and documented as
    # the row says (parameter names included: callers may pass them by keyword).
    cdef str set_name = "set_" + option.name
    cdef str get_name = "get_" + option.name
    if option.c_kind == FLAG and option.doc is None:
        get_doc = f"Whether {option.what} is on."
    else:
        get_doc = f"{get_name}(sock)\n\n" + cleandoc(
            option.get_doc or f"{get_name}() -> {'bool' if option.c_kind == FLAG else 'int'}")
    getter = _function(_GETTER.format(name=get_name), get_name, option, get_doc)
    if option.c_kind == READ_ONLY:
        return [(get_name, getter)]
    if option.c_kind == BUFFER:
        params, args, call = f"{option.param}, force=False", f"{option.param}, force", "set_buffer"
    else:
        params, args, call = option.param, option.param, "set"
    if option.c_kind == FLAG and option.doc is None:
        set_doc = f"Set {option.what} on or off."
    else:
        set_doc = f"{set_name}(sock, {params})\n\n" + cleandoc(option.doc)
    setter = _function(_SETTER.format(name=set_name, params=params, args=args, call=call),
                       set_name, option, set_doc)
    return [(set_name, setter), (get_name, getter)]


#: The options of one shape.  Adding one: a row here, its constant in
#: includes/options.pxd (through compat.h where systems differ), its two
#: lines in _socket_class.pyi and its row in tests/test_options.py.
OPTIONS = (
    Option("multicast_ttl", "number", IPPROTO_IP, IP_MULTICAST_TTL, "IP_MULTICAST_TTL",
           one_byte=True, v6=(IPPROTO_IPV6, IPV6_MULTICAST_HOPS, "IPV6_MULTICAST_HOPS"),
           param="ttl", what="TTL", low=0, high=255, doc="""
        set_multicast_ttl(ttl)

        Hop limit of outgoing multicast (IP_MULTICAST_TTL; IPV6_MULTICAST_HOPS on
        IPv6 sockets): 0 keeps datagrams on this host, 1 (the default) on the link.
        ``ValueError`` outside 0..255.
        """),
    Option("multicast_loop", "flag", IPPROTO_IP, IP_MULTICAST_LOOP, "IP_MULTICAST_LOOP",
           one_byte=True, v6=(IPPROTO_IPV6, IPV6_MULTICAST_LOOP, "IPV6_MULTICAST_LOOP"), doc="""
        set_multicast_loop(on)

        Whether this host's own multicast is delivered to its own sockets
        (IP_MULTICAST_LOOP / IPV6_MULTICAST_LOOP; on by default).
        """),
    Option("recv_buffer", "buffer", SOL_SOCKET, SO_RCVBUF, "SO_RCVBUF",
           force=SO_RCVBUFFORCE, param="size", what="buffer size", low=1, high=0x7fffffff,
           doc="""
        set_recv_buffer(size, force=False) -> int

        SO_RCVBUF.  With *force*, SO_RCVBUFFORCE first (Linux, needs
        CAP_NET_ADMIN), which passes net.core.rmem_max; without the privilege the
        ordinary request is made.  Returns the size the kernel granted, as
        ``getsockopt`` reports it (Linux doubles the request for its bookkeeping).
        """),
    Option("send_buffer", "buffer", SOL_SOCKET, SO_SNDBUF, "SO_SNDBUF",
           force=SO_SNDBUFFORCE, param="size", what="buffer size", low=1, high=0x7fffffff,
           doc="""
        set_send_buffer(size, force=False) -> int

        SO_SNDBUF, as :meth:`set_recv_buffer` (SO_SNDBUFFORCE with *force*).
        """),
    Option("reuse_address", "flag", SOL_SOCKET, SO_REUSEADDR, "SO_REUSEADDR",
           what="SO_REUSEADDR (bind to an address in TIME_WAIT)"),
    Option("reuse_port", "flag", SOL_SOCKET, SO_REUSEPORT, "SO_REUSEPORT", doc="""
        set_reuse_port(on)

        SO_REUSEPORT: several sockets bind one port and the kernel spreads the
        load.  ``OSError`` (ENOPROTOOPT) where the system lacks it.
        """),
    Option("broadcast", "flag", SOL_SOCKET, SO_BROADCAST, "SO_BROADCAST",
           what="SO_BROADCAST (permission to send to broadcast addresses)"),
    Option("oobinline", "flag", SOL_SOCKET, SO_OOBINLINE, "SO_OOBINLINE",
           what="SO_OOBINLINE (urgent data read in line)"),
    Option("dontroute", "flag", SOL_SOCKET, SO_DONTROUTE, "SO_DONTROUTE",
           what="SO_DONTROUTE (send to directly connected hosts only)"),
    Option("nodelay", "flag", IPPROTO_TCP, TCP_NODELAY, "TCP_NODELAY",
           what="TCP_NODELAY (no Nagle delay for small segments)"),
    Option("maxseg", "number", IPPROTO_TCP, TCP_MAXSEG, "TCP_MAXSEG",
           param="size", what="maximum segment size", low=1, high=0x7fffffff, doc="""
        set_maxseg(size)

        TCP_MAXSEG: the largest segment this side sends (set before connecting).
        """),
    Option("ttl", "number", IPPROTO_IP, IP_TTL, "IP_TTL",
           v6=(IPPROTO_IPV6, IPV6_UNICAST_HOPS, "IPV6_UNICAST_HOPS"),
           param="ttl", what="TTL", low=1, high=255, doc="""
        set_ttl(ttl)

        Unicast hop limit: IP_TTL, or IPV6_UNICAST_HOPS on IPv6 sockets.
        ``ValueError`` outside 1..255.
        """),
    Option("tos", "number", IPPROTO_IP, IP_TOS, "IP_TOS",
           param="tos", what="TOS", low=0, high=255, doc="""
        set_tos(tos)

        IP_TOS: the type-of-service / DSCP+ECN byte of outgoing IPv4 packets.
        ``ValueError`` outside 0..255.
        """),
    Option("type", "read-only", SOL_SOCKET, SO_TYPE, "SO_TYPE", get_doc="""
        get_type() -> int: SO_TYPE, the socket's type as the kernel reports it.
        """),
    Option("error", "read-only", SOL_SOCKET, SO_ERROR, "SO_ERROR", get_doc="""
        get_error() -> int

        SO_ERROR: the socket's pending error (0 if none), which reading clears --
        e.g. ``ECONNREFUSED`` after an ICMP port unreachable, or the outcome of a
        non-blocking ``connect``.
        """),
)

cdef list _table_methods = []
for _option in OPTIONS:
    _table_methods.extend(_typed_methods(_option))
del _option
globals().update(_table_methods)

# The hand-written ones are this module's names too: one place to find every method.
globals().update({name: getattr(_struct_options, name) for name in _struct_options.HAND_WRITTEN})

#: Names installed on hotsock.socket as methods: the hand-written ones, then the table's.
OPTION_METHODS = _struct_options.HAND_WRITTEN + tuple([name for name, _ in _table_methods])
