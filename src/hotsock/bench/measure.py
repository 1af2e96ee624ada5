"""The bench's one measuring skeleton, the drills that prepare and check its
rounds, the parts run on their rigs, and the ratios.

:func:`measure` owns rounds and turns: every round each contender takes one
turn on the same sockets, the order rotated by one from round to round, and
its time is the median of its turns.  A drill supplies only what differs
from part to part: what is queued before a round or a turn, and what must
have arrived (or be left) after it -- all untimed.
"""
import statistics
import time

from .contenders import PARTS, TARGETS, contenders, queued_chunks
from .rigs import BATCH, RECV_SIZE, OffloadRig, QueueShort, Rig, offload_unavailable

SIZE = 64           # payload bytes
ROUNDS = 30
MAX_ROUNDS = 10000
CHUNK = 1024        # datagrams per contender per round, recv and send
LOOP_CHUNK = 8192   # datagrams per call of the hot loops (capture, echo)
OFFLOAD_CHUNK = 65536   # datagrams per contender per round, gso and gro
# Bounded above too: a chunk of 10**23 datagrams would only end in an overflow.
MAX_CHUNK = 1 << 24


class Drill:
    """What a part does around the turns (untimed); nothing by default."""

    # An OSError from a contender means its queue ran dry (SO_RCVTIMEO on
    # the receivers): datagrams were lost while filling.
    dry_is_short = False

    def __init__(self, rig):
        self.rig = rig

    def start(self, entries):
        """Before the first round."""

    def before_round(self, chunk):
        pass

    def before_turn(self, n):
        pass

    def after_turn(self, name, n):
        pass

    def after_round(self, chunk):
        pass


class Queued(Drill):
    """Receiving parts (recv, capture, gro): before each round every queue is
    filled with a chunk per contender that drains it, plus the rig's margin;
    after the round exactly the margin must be left on each."""

    dry_is_short = True

    def start(self, entries):
        # the receiver first, then (gro) the plain one
        self.queues = {queue: queued_chunks(entries, queue)
                       for queue in sorted({c.queue for c in entries.values()},
                                           key=lambda q: q != "rx")}
        for queue in self.queues:
            self.rig.drain(queue)

    def before_round(self, chunk):
        for queue, chunks in self.queues.items():
            self.rig.fill(chunk * chunks + self.rig.margin, queue)

    def after_round(self, chunk):
        margin = self.rig.margin
        for queue in self.queues:
            left = self.rig.drain(queue)
            if left != margin:
                where = "" if queue == "rx" else f" on the {queue} receiver"
                raise QueueShort(f"{margin} datagrams should be left{where}, found {left}")


class Sent(Drill):
    """Sending parts (send, gso): the receiver is emptied before the first
    round; after each round (with *each_turn*, after each turn) it must hold
    exactly what was sent, and is emptied."""

    def __init__(self, rig, each_turn=False):
        super().__init__(rig)
        self.each_turn = each_turn
        self.sent = 0

    def start(self, entries):
        self.rig.drain()

    def after_turn(self, name, n):
        if self.each_turn:
            arrived = self.rig.drain()
            if arrived != n:
                raise QueueShort(f"{name}: {arrived} of {n} datagrams arrived")
        else:
            self.sent += n

    def after_round(self, chunk):
        if not self.each_turn:
            arrived, expected = self.rig.drain(), self.sent
            self.sent = 0
            if arrived != expected:
                raise QueueShort(f"{arrived} of {expected} datagrams arrived")


class Echoed(Drill):
    """The echo part: before each turn the server's queue is filled with the
    turn's datagrams; after it the client must have every echo back, and
    the server's queue must be empty."""

    dry_is_short = True

    def start(self, entries):
        self.rig.drain()
        self.rig.drain("tx")

    def before_turn(self, n):
        self.rig.fill(n)

    def after_turn(self, name, n):
        echoed, left = self.rig.collect(n), self.rig.drain()
        if echoed != n or left:
            raise QueueShort(f"{name}: {echoed} of {n} datagrams echoed, {left} left unread")


class Filled(Drill):
    """The event-loop part: before each turn the receiver's queue is filled
    with the turn's datagrams (an endpoint reads what is there, not a share
    of it); after it the queue must be empty."""

    dry_is_short = True

    def start(self, entries):
        self.rig.drain()

    def before_turn(self, n):
        self.rig.fill(n)

    def after_turn(self, name, n):
        left = self.rig.drain()
        if left:
            raise QueueShort(f"{name}: {left} of {n} datagrams left unread")


def _rotate(names, r):
    k = r % len(names)
    return names[k:] + names[:k]


def measure(drill, entries, chunk, rounds, scaled=True):
    """Each contender's time for each of *rounds* turns of *chunk* datagrams
    (times its scale, if *scaled*): name -> [seconds]."""
    names = list(entries)
    times = {name: [] for name in names}
    drill.start(entries)
    for r in range(rounds):
        drill.before_round(chunk)
        for name in _rotate(names, r):
            contender = entries[name]
            n = chunk * contender.scale if scaled else chunk
            move = contender.move
            drill.before_turn(n)
            start = time.perf_counter()
            try:
                move(n)
            except OSError as exc:
                if not drill.dry_is_short:
                    raise
                raise QueueShort(f"{name}: {exc}") from exc
            times[name].append(time.perf_counter() - start)
            drill.after_turn(name, n)
            drill.rig.tidy()
        drill.after_round(chunk)
    return times


# One-datagram calls timed per contender, at least.
SINGLE_CALLS = 101


def result(drill, entries, chunk, rounds, single=False):
    """A part's result: its chunk, each contender's rate in its median turn
    and, with *single*, its median time for a one-datagram call."""
    times = measure(drill, entries, chunk, rounds)
    part = {"chunk": chunk,
            "rates": {name: chunk * entries[name].scale / statistics.median(values)
                      for name, values in times.items()}}
    if single:
        # A one-datagram call takes microseconds: a median of few is noise.
        drill.rig.to_devnull = True
        try:
            singles = measure(drill, entries, 1, max(rounds, SINGLE_CALLS), scaled=False)
        finally:
            drill.rig.to_devnull = False
        part["one_datagram_us"] = {name: statistics.median(values) * 1e6
                                   for name, values in singles.items()}
    scales = {c.scale for c in entries.values()} - {1}
    if scales:
        part["scale"] = max(scales)
    return part


def _run_capture(size, chunk, rounds):
    rig = Rig(size, files=True)
    try:
        entries = contenders("capture", rig)
        chunk = rig.fitting_chunk(chunk, len(entries))
        return result(Queued(rig), entries, chunk, rounds, single=True)
    finally:
        rig.close()


def _run_echo(size, chunk, rounds):
    rig = Rig(size, client=True)
    try:
        chunk = rig.fitting_chunk(chunk, 1)
        return result(Echoed(rig), contenders("echo", rig), chunk, rounds, single=True)
    finally:
        rig.close()


# An event loop's turn starts and stops the loop (about 0.1 ms): the
# endpoints drain this many loop chunks a turn so that the fixed cost weighs
# as little as it does in a running server.
ASYNCIO_CHUNKS = 4


def _run_asyncio(size, chunk, rounds):
    rig = Rig(size)
    try:
        chunk = rig.fitting_chunk(chunk, 1)
        return result(Filled(rig), contenders("asyncio", rig), chunk, rounds)
    finally:
        rig.close()


def _run_gso(size, chunk, rounds):
    rig = OffloadRig(size)
    try:
        # The stdlib's datagrams arrive one by one: the queue must hold a
        # chunk of those (the others' arrive coalesced, taking less room).
        chunk = rig.fitting_chunk(rig.whole_units(chunk), 1, one_by_one=True)
        return result(Sent(rig, each_turn=True), contenders("gso", rig), chunk, rounds,
                      single=True)
    finally:
        rig.close()


def _run_gro(size, chunk, rounds):
    rig = OffloadRig(size, plain=True)
    try:
        entries = contenders("gro", rig)
        chunk = rig.whole_units(chunk)
        for queue in ("rx", "plain"):
            chunk = rig.fitting_chunk(chunk, queued_chunks(entries, queue), queue)
        return result(Queued(rig), entries, chunk, rounds)
    finally:
        rig.close()


def ratios(results):
    """The TARGETS measured in *results* (part -> result)."""
    found = []
    for part, a, b, target in TARGETS:
        rates = results.get(part, {}).get("rates", {})
        if a in rates and b in rates:
            found.append({"part": part, "what": f"{a} / {b}",
                          "ratio": rates[a] / rates[b], "target": target})
    return found


def run(size=SIZE, chunk=CHUNK, rounds=ROUNDS, parts=PARTS, loop_chunk=LOOP_CHUNK,
        offload_chunk=OFFLOAD_CHUNK):
    """Run the benchmark; return a report dict (see ``--json``).

    *chunk* is for the recv and send parts, *loop_chunk* for capture and
    echo, *offload_chunk* for gso and gro.
    """
    report = {"size": size, "rounds": rounds, "batch": BATCH, "recv_bufsize": RECV_SIZE,
              "parts": {}, "ratios": [], "skipped": {}}
    results = report["parts"]
    if "recv" in parts or "send" in parts:
        rig = Rig(size)
        try:
            chunk = rig.fitting_chunk(chunk, 8)
            if "recv" in parts:
                results["recv"] = result(Queued(rig), contenders("recv", rig), chunk, rounds)
            if "send" in parts:
                results["send"] = result(Sent(rig), contenders("send", rig), chunk, rounds)
        finally:
            rig.close()
    # Each hot loop on sockets of its own: capture turns on timestamps,
    # the event loops make their sockets non-blocking.
    if "capture" in parts:
        results["capture"] = _run_capture(size, loop_chunk, rounds)
    if "echo" in parts:
        results["echo"] = _run_echo(size, loop_chunk, rounds)
    if "asyncio" in parts:
        results["asyncio"] = _run_asyncio(size, loop_chunk * ASYNCIO_CHUNKS, rounds)
    for part, runner in (("gso", _run_gso), ("gro", _run_gro)):
        if part in parts:
            why = offload_unavailable(part, size)
            if why is None:
                results[part] = runner(size, offload_chunk, rounds)
            else:
                report["skipped"][part] = why
    report["ratios"] = ratios(results)
    return report
