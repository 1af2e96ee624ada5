"""Bounds of the hot loops' numeric arguments: one source for the Python API
(``hotsock.capture``/``echo``/``blast``) and for the ``hotsock`` command's
option types, so that a value is refused with the same words in both.

The bounds keep every value inside what the compiled loops can represent
(nanoseconds in a signed 64-bit clock, counts in 64 bits), with room to
spare, and they are stated in the user's units.
"""
import math

# Seconds: a duration, idle time or progress interval.  The loops count in
# nanoseconds on a 64-bit clock (2**63 ns is about 292 years); a billion
# seconds (about 31.7 years) leaves room for the clock's own start value.
MAX_SECONDS = 1e9
# A progress interval below one nanosecond cannot be scheduled on that clock.
MIN_INTERVAL = 1e-9
# Datagrams: a count limit is a 64-bit counter.
MAX_COUNT = (1 << 63) - 1
# Datagrams per second: below one per ~31.7 years or above a billion per
# millisecond is not a rate anything can send at.
MIN_RATE = 1e-9
MAX_RATE = 1e15


def integer(name, value, high=MAX_COUNT, low=1):
    """*value* as an int from *low* to *high*, or TypeError/ValueError naming *name*."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, not {type(value).__name__}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be at least {low} and at most {high}, not {value}")
    return value


def _number(name, value, low, high, what):
    """*value* as a float within [*low*, *high*], or TypeError/ValueError saying *what*."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of {what}, not {type(value).__name__}")
    try:
        as_float = float(value)
    except OverflowError:       # an int beyond any float
        as_float = math.inf
    if not (as_float > 0 and low <= as_float <= high):      # NaN fails too
        span = f"at most {high:g}" if low == 0 else f"from {low:g} to {high:g}"
        raise ValueError(f"{name} must be a positive number of {what}, {span}, not {value!r}")
    return as_float


def seconds(name, value):
    """A duration or idle time in seconds: positive, at most :data:`MAX_SECONDS`."""
    return _number(name, value, 0.0, MAX_SECONDS, "seconds")


def interval(value):
    """A progress interval in seconds, from :data:`MIN_INTERVAL` to :data:`MAX_SECONDS`."""
    return _number("interval", value, MIN_INTERVAL, MAX_SECONDS, "seconds")


def rate(value):
    """Datagrams per second, from :data:`MIN_RATE` to :data:`MAX_RATE`."""
    return _number("rate", value, MIN_RATE, MAX_RATE, "datagrams per second")
