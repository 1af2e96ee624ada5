"""Attacks on the hot loops (capture, echo, blast) and the CLI, from issue 10.

Every case that could hang runs in a subprocess with a timeout, so that a
regression fails the test instead of hanging the suite.
"""
import errno
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import time

import pytest
from pcapfiles import read_capture

import hotsock
from hotsock import _features, _loop_socket

SRC = os.path.dirname(os.path.dirname(os.path.abspath(hotsock.__file__)))
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(
    p for p in (SRC, os.environ.get("PYTHONPATH")) if p))


def run_python(code, timeout=20):
    """Run *code* in a fresh interpreter; a hang fails (TimeoutExpired is turned into a
    test failure that says so) instead of blocking the suite."""
    try:
        return subprocess.run([sys.executable, "-c", textwrap.dedent(code)],
                              capture_output=True, text=True, timeout=timeout, env=ENV)
    except subprocess.TimeoutExpired:
        pytest.fail(f"hung for more than {timeout} s:\n{code}")


def udp(host="127.0.0.1"):
    s = hotsock.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((host, 0))
    return s


# --- 6: interval bounds; check() cannot loop ---------------------------------------------

LOOP_CALLS = {
    "capture": "hotsock.capture(rx, lambda b: None, duration=0.3, progress=seen.append, {arg})",
    "echo": "hotsock.echo(rx, duration=0.3, progress=seen.append, {arg})",
    "blast": "hotsock.blast(rx, rx.getsockname(), duration=0.3, rate=1000, "
             "progress=seen.append, {arg})",
}


def loop_script(loop, arg):
    return f"""
        import socket, hotsock
        rx = hotsock.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rx.bind(("127.0.0.1", 0))
        seen = []
        try:
            stats = {LOOP_CALLS[loop].format(arg=arg)}
        except (ValueError, TypeError) as exc:
            print(type(exc).__name__, exc)
        else:
            print("ran", stats.stopped, len(seen))
    """


@pytest.mark.parametrize("loop", sorted(LOOP_CALLS))
@pytest.mark.parametrize("interval", ["1e-10", "5e-324", "1e10", "1e300"])
def test_interval_out_of_bounds_is_refused_not_a_hang(loop, interval):
    out = run_python(loop_script(loop, f"interval={interval}"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ValueError interval must be"), out.stdout


@pytest.mark.parametrize("loop", sorted(LOOP_CALLS))
@pytest.mark.parametrize("interval", ["1e-9", "0.001"])
def test_smallest_intervals_report_and_end(loop, interval):
    out = run_python(loop_script(loop, f"interval={interval}"))
    assert out.returncode == 0, out.stderr
    words = out.stdout.split()
    assert words[:2] == ["ran", "duration"], out.stdout
    assert int(words[2]) >= 1


# --- 23: bounds of every numeric argument, one clear message each ------------------------

BAD_VALUES = [
    ("capture", "duration=1e10", "duration must be"),
    ("capture", "duration=1e300", "duration must be"),
    ("capture", "idle=1e300", "idle must be"),
    ("capture", "count=10**30", "count must be"),
    ("capture", "count=-1", "count must be"),
    ("capture", "batch=10**30", "batch must be"),
    ("capture", "size=10**30", "size must be"),
    ("echo", "duration=1e10", "duration must be"),
    ("echo", "idle=9.3e9", "idle must be"),
    ("echo", "count=2**64", "count must be"),
    ("echo", "batch=0", "batch must be"),
    ("echo", "size=-5", "size must be"),
    ("blast", "duration=1e12", "duration must be"),
    ("blast", "count=2**64", "count must be"),
    ("blast", "size=10**30", "size must be"),
    ("blast", "batch=10**30", "batch must be"),
    ("blast", "rate=1e-11", "rate must be"),
    ("blast", "rate=1e21", "rate must be"),
    ("blast", "rate=float('nan')", "rate must be"),
]


@pytest.mark.parametrize("loop, arg, message", BAD_VALUES)
def test_out_of_range_arguments_say_what_is_wrong(loop, arg, message):
    call = LOOP_CALLS[loop].replace("duration=0.3, ", "") if "duration" in arg \
        else LOOP_CALLS[loop]
    call = call.replace("rate=1000, ", "") if "rate" in arg else call
    code = loop_script(loop, arg).replace(LOOP_CALLS[loop].format(arg=arg),
                                          call.format(arg=arg))
    out = run_python(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ValueError " + message), out.stdout
    assert "too large to convert" not in out.stdout


def test_capture_snaplen_out_of_range(tmp_path):
    rx = udp()
    for snaplen in (10**30, -1):
        with pytest.raises(ValueError, match="snaplen must be"):
            hotsock.capture(rx, tmp_path / "x.pcap", snaplen=snaplen, count=1)
    rx.close()


# --- 7: blast's pacing arithmetic ---------------------------------------------------------

@pytest.mark.parametrize("rate", ["1e-9", "1e15"])
def test_blast_rates_at_the_bounds_end_on_time(rate):
    out = run_python(f"""
        import socket, time, hotsock
        rx = hotsock.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rx.bind(("127.0.0.1", 0))
        rx.setblocking(False)
        start = time.monotonic()
        stats = hotsock.blast(rx, rx.getsockname(), rate={rate}, duration=0.5)
        print(stats.stopped, stats.sent >= 1, time.monotonic() - start < 5)
    """)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["duration", "True", "True"], out.stdout


@pytest.mark.parametrize("rate", ["1e-300", "1e-11", "1e21", "1e300"])
def test_blast_loop_pacing_saturates(rate):
    """The compiled loop itself (behind the wrapper's bounds) never overflows: any
    positive rate ends at the duration."""
    out = run_python(f"""
        import socket, time
        from hotsock import _blast
        from hotsock._driver import Run
        rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rx.bind(("127.0.0.1", 0))
        run = Run("blast", None, 0.5, None, None, 1.0)
        start = time.monotonic()
        _blast.blast_loop(rx.fileno(), rx.family, rx.getsockname(), run, 64, 64, {rate},
                          1, True, False)
        stats = run.stats()
        print(stats.stopped, stats.sent >= 1, time.monotonic() - start < 5)
    """)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["duration", "True", "True"], out.stdout


def test_run_clamps_what_it_is_given():
    """Run (behind the wrappers' bounds) turns any interval/duration into a schedule that
    ends: check() cannot loop forever whatever it was handed."""
    out = run_python("""
        import socket
        from hotsock import _capture
        from hotsock._recv import RecvBatch
        from hotsock._driver import Run
        rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rx.bind(("127.0.0.1", 0))
        for interval in (1e-300, 0.0, -1.0, 1e300, float("inf"), float("nan")):
            seen = []
            run = Run("capture", None, 0.2, None, seen.append, interval)
            _capture.capture_batches(rx.fileno(), RecvBatch(4, 64), run, lambda b: None)
            print(run.stats().stopped)
        run = Run("capture", None, 1e300, 0.2, None, 1.0)
        _capture.capture_batches(rx.fileno(), RecvBatch(4, 64), run, lambda b: None)
        print(run.stats().stopped)
    """)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["duration"] * 6 + ["idle"], out.stdout


# --- 8: whole records after SIGKILL -------------------------------------------------------

KILL_CAPTURE = """
import sys, hotsock, socket
rx = hotsock.socket(socket.AF_INET, socket.SOCK_DGRAM)
rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
rx.bind(("127.0.0.1", 0))
print(rx.getsockname()[1], flush=True)
hotsock.capture(rx, sys.argv[1], format=sys.argv[2], duration=30)
"""

KILL_BLAST = """
import sys, hotsock, socket
tx = hotsock.socket(socket.AF_INET, socket.SOCK_DGRAM)
hotsock.blast(tx, ("127.0.0.1", int(sys.argv[1])), size=int(sys.argv[2]), duration=30,
              stop_signals=())
"""


def _whole_prefix(blob, fmt):
    """Length of the file's longest prefix of whole units (header, records, blocks)."""
    if fmt == "pcapng":
        off = 0
        while off + 8 <= len(blob):
            length = struct.unpack_from("=I", blob, off + 4)[0]
            if off + length > len(blob):
                break
            off += length
        return off
    off = 24
    while off + 16 <= len(blob):
        caplen = struct.unpack_from("=I", blob, off + 8)[0]
        if off + 16 + caplen > len(blob):
            break
        off += 16 + caplen
    return off


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_many_hard_kills_at_high_rate_leave_whole_records(tmp_path, fmt):
    """SIGKILL while a blast floods the capture: the file ends on a whole record,
    with the one documented exception (hs_pcap_flush): Linux stops a write()
    for a fatal signal only between page-sized copies, and the writer lets a
    write() cross a page boundary of the file only within one record, so a
    kill can cut only such a record, at that boundary, during its own write.
    With one large write() per flush (before), nearly every kill cut the file;
    now such a cut is rare -- and when it happens, it is that case exactly."""
    kills, tolerated = (30, 5) if fmt == "pcap" else (20, 3)
    page = os.sysconf("SC_PAGE_SIZE")
    cut = []
    for n in range(kills):
        path = tmp_path / f"kill{n}.{fmt}"
        proc = subprocess.Popen([sys.executable, "-c", KILL_CAPTURE, str(path), fmt],
                                stdout=subprocess.PIPE, text=True, env=ENV)
        blaster = None
        try:
            port = proc.stdout.readline().strip()
            # Records that end at every offset within a page, and many that span one.
            size = (100, 333, 1400)[n % 3]
            blaster = subprocess.Popen([sys.executable, "-c", KILL_BLAST, port, str(size)],
                                       env=ENV)
            time.sleep(0.3 + (n % 7) * 0.037)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        finally:
            for p in (proc, blaster):
                if p is not None and p.poll() is None:
                    p.kill()
                    p.wait(timeout=10)
        blob = path.read_bytes()
        whole = _whole_prefix(blob, fmt)
        if whole != len(blob):
            # The exception: cut at a page boundary, inside a record that began before it.
            assert len(blob) % page == 0 and len(blob) - whole < page, (n, len(blob), whole)
            cut.append(n)
            path.write_bytes(blob[:whole])
        records = read_capture(path)     # asserts that every record is whole
        assert all(len(r.payload) == size for r in records), n
    # Measured: about 3 in 100 kills cut a record now, 40 in 100 before.
    assert len(cut) <= tolerated, f"kills that cut a record: {cut} of {kills}"


# --- 9: disk full -------------------------------------------------------------------------

@pytest.fixture
def small_tmpfs(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root and mount(8)")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_disk_full_keeps_whole_records_and_the_statistics(small_tmpfs, fmt):
    path = small_tmpfs / f"full.{fmt}"
    rx, tx = udp(), socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
    sizes = (1000, 1777, 333)
    n = 600
    for i in range(n):
        tx.sendto(b"%05d" % i + b"d" * (sizes[i % 3] - 5), rx.getsockname())
    with pytest.raises(OSError) as info:
        hotsock.capture(rx, path, format=fmt, count=n, idle=2, bufsize=4096)
    assert info.value.errno == errno.ENOSPC
    stats = info.value.stats
    assert isinstance(stats, hotsock.LoopStats)
    assert stats.received > 0
    records = read_capture(path)          # whole records only
    assert 0 < len(records) <= stats.received
    numbers = [int(r.payload[:5]) for r in records]
    assert numbers == list(range(len(records)))
    for r in records:
        assert len(r.payload) == sizes[int(r.payload[:5]) % 3]
    rx.close()
    tx.close()


# --- 11: echo on AF_UNIX, a sender without an address --------------------------------------

def test_echo_unix_unbound_sender_is_counted_not_fatal(tmp_path):
    server = hotsock.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(tmp_path / "echo.sock"))
    anonymous = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    named = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    named.bind(str(tmp_path / "client.sock"))
    named.settimeout(10)
    anonymous.sendto(b"nobody to answer", str(tmp_path / "echo.sock"))
    named.sendto(b"answer me", str(tmp_path / "echo.sock"))
    stats = hotsock.echo(server, count=2, idle=5)
    assert named.recv(100) == b"answer me"
    assert stats.received == 2 and stats.sent == 1 and stats.errors == 1
    for s in (server, anonymous, named):
        s.close()


# --- 21: options put back as they were ----------------------------------------------------

def _reception_options(sock):
    options = [(socket.SOL_SOCKET, _features.SO_TIMESTAMPNS), (socket.SOL_SOCKET, 29),
               (socket.SOL_SOCKET, _features.SO_RXQ_OVFL)]
    if sock.family == socket.AF_INET:
        options.append((socket.IPPROTO_IP, _features.IP_PKTINFO))
    else:
        options.append((socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO))
    if _features.UDP_GRO is not None:
        options.append((socket.IPPROTO_UDP, _features.UDP_GRO))
    return {o: sock.getsockopt(*o) for o in options if o[1] is not None}


@pytest.mark.parametrize("loop", ["capture-file", "capture-callback", "echo"])
@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0", "::"])
def test_loops_put_the_reception_options_back(tmp_path, loop, host):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    rx = hotsock.socket(family, socket.SOCK_DGRAM)
    rx.bind((host, 0))
    before = _reception_options(rx)
    if loop == "capture-file":
        hotsock.capture(rx, tmp_path / "o.pcap", duration=0.05, gro=True)
    elif loop == "capture-callback":
        hotsock.capture(rx, lambda b: None, duration=0.05, gro=True)
    else:
        hotsock.echo(rx, duration=0.05)
    assert _reception_options(rx) == before
    rx.close()


def test_loops_keep_options_the_caller_had_on(tmp_path):
    rx = udp()
    rx.setsockopt(socket.SOL_SOCKET, 29, 1)             # SO_TIMESTAMP (microseconds)
    rx.setsockopt(socket.SOL_SOCKET, _features.SO_RXQ_OVFL, 1)
    before = _reception_options(rx)
    hotsock.capture(rx, tmp_path / "o.pcap", duration=0.05)
    assert _reception_options(rx) == before
    rx.close()


# --- 24: a capture's receive buffer ---------------------------------------------------------

def test_capture_raises_the_receive_buffer_and_puts_it_back():
    rx, tx = udp(), socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    before = rx.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    during = []

    def note(batch):
        during.append(rx.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))

    tx.sendto(b"x", rx.getsockname())
    hotsock.capture(rx, note, count=1, idle=5)
    # Linux reports twice the request; as root the request passes net.core.rmem_max.
    assert during[0] > before
    if os.geteuid() == 0:
        assert during[0] >= 2 * _loop_socket.DEFAULT_RCVBUF
    assert rx.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) == before
    # rcvbuf=None leaves the buffer alone.
    during.clear()
    tx.sendto(b"x", rx.getsockname())
    hotsock.capture(rx, note, count=1, idle=5, rcvbuf=None)
    assert during == [before]
    # A buffer already larger is never lowered.
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 3 * _loop_socket.DEFAULT_RCVBUF)
    larger = rx.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    during.clear()
    tx.sendto(b"x", rx.getsockname())
    hotsock.capture(rx, note, count=1, idle=5)
    assert during == [larger]
    assert rx.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) == larger
    tx.close()
    rx.close()


# --- 22 and 24: the command line -------------------------------------------------------------

COMMAND = [sys.executable, "-m", "hotsock"]


def run_cli(*args, timeout=60):
    try:
        return subprocess.run([*COMMAND, *args], capture_output=True, text=True,
                              timeout=timeout, env=ENV)
    except subprocess.TimeoutExpired:
        pytest.fail(f"hotsock {' '.join(args)} hung")


HUGE_INT = "99999999999999999999999"
BAD_NUMBERS = {
    "--count": [HUGE_INT, "0", "-1", "1.5", "x", "1e3"],
    "--duration": ["1e300", "1e10", "inf", "nan", "0", "-1", "x", "1e-400"],
    "--idle": ["1e300", "1e10", "nan", "0", "x"],
    "--interval": ["1e300", "1e10", "1e-10", "0", "nan", "x"],
    "--batch": [HUGE_INT, "0", "1.5", "x"],
    "--size": [HUGE_INT, "-1", "70000", "x"],
    "--workers": [HUGE_INT, "0", "x"],
    "--rcvbuf": [HUGE_INT, "1e300", "nan", "-1", "0", "x", "8T"],
    "--port": [HUGE_INT, "-1", "65536", "x"],
    "--snaplen": [HUGE_INT, "10", "x"],
    "--rate": ["1e300", "1e21", "1e-11", "inf", "nan", "0", "x", "1e-400"],
    "--ttl": [HUGE_INT, "256", "-1", "x"],
}
COMMAND_OPTIONS = {
    "capture": ["--count", "--duration", "--idle", "--interval", "--batch", "--size",
                "--workers", "--rcvbuf", "--port", "--snaplen"],
    "echo": ["--count", "--duration", "--idle", "--interval", "--batch", "--size",
             "--workers", "--rcvbuf", "--port"],
    "blast": ["--count", "--duration", "--interval", "--batch", "--size", "--workers",
              "--rate", "--ttl", "PORT"],
}
CLI_CASES = [(command, option, value)
             for command, options in COMMAND_OPTIONS.items() for option in options
             for value in BAD_NUMBERS["--port" if option == "PORT" else option]]


def _argv(command, option, value):
    if command == "blast":
        if option == "PORT":
            return ["blast", "127.0.0.1", value, "--count", "1"]
        return ["blast", "127.0.0.1", "9", f"{option}={value}"]
    base = [command] + ([] if option == "--port" else ["--port", "0"])
    extra = ["-w", "/dev/null"] if option == "--snaplen" else []
    return base + extra + [f"{option}={value}"]


@pytest.mark.parametrize("command, option, value", CLI_CASES)
def test_cli_bad_numbers_are_one_error_line_exit_2(command, option, value):
    from hotsock.cli import main
    argv = _argv(command, option, value)
    import contextlib
    import io
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2, (argv, err.getvalue())
    text = err.getvalue()
    assert "Traceback" not in text
    lines = text.splitlines()
    assert lines[-1].startswith(f"hotsock {command}: error: argument "), text
    assert lines[0].startswith("usage: hotsock")


def test_cli_huge_values_from_the_command_line_no_traceback():
    for args in (["capture", "--port", "0", "--count", HUGE_INT],
                 ["capture", "--port", "0", "--duration", "1e300"],
                 ["blast", "127.0.0.1", "9", "--rate", "1e300"],
                 ["echo", "--port", "0", "--interval", "1e-10"]):
        out = run_cli(*args)
        assert out.returncode == 2, (args, out.stderr)
        assert "Traceback" not in out.stderr
        assert out.stderr.splitlines()[-1].startswith(f"hotsock {args[0]}: error: argument")


def _opening_line(*args):
    proc = subprocess.Popen([*COMMAND, *args, "--duration", "0.2"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    return err.splitlines()[0]


@pytest.mark.parametrize("command", ["capture", "echo"])
def test_cli_receivers_default_to_a_large_receive_buffer_and_say_so(command):
    line = _opening_line(command, "--port", "0")
    assert "receive buffer" in line, line
    if os.geteuid() == 0:
        assert "receive buffer 4 MiB" in line, line     # 2 MiB asked, doubled by Linux


def test_cli_explicit_rcvbuf_wins():
    line = _opening_line("capture", "--port", "0", "--rcvbuf", "256K")
    assert "receive buffer 512 KiB" in line, line


def test_opening_line_says_when_rmem_max_capped_the_buffer():
    from hotsock.cli.parser import parse
    from hotsock.cli.wording import opening_line
    options, _ = parse(["capture", "--port", "0"])
    line = opening_line(options, {"address": "0.0.0.0", "port": 9, "rcvbuf": 425984,
                                  "rmem_max": 212992})
    assert "receive buffer 416 KiB (capped by net.core.rmem_max = 212992" in line
    assert _loop_socket.recv_buffer_cap(2 << 20, 4 << 20) is None
    if os.path.exists("/proc/sys/net/core/rmem_max"):
        with open("/proc/sys/net/core/rmem_max") as f:
            assert _loop_socket.recv_buffer_cap(2 << 20, 425984) == int(f.read())


def test_cli_disk_full_prints_the_statistics_then_one_error(small_tmpfs):
    path = small_tmpfs / "full.pcap"
    proc = subprocess.Popen([*COMMAND, "capture", "--port", "0", "--bind", "127.0.0.1",
                             "-w", str(path), "--idle", "3", "--duration", "30"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        line = proc.stderr.readline()
        port = int(line.split(" port ")[1].split()[0])
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            for i in range(400):
                tx.sendto(b"%05d" % i + b"d" * 995, ("127.0.0.1", port))
                if i % 50 == 0:
                    time.sleep(0.01)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, err
    lines = err.splitlines()
    assert lines[-1].startswith("hotsock: error: writing ") and "No space left" in lines[-1]
    assert any("packets captured" in x for x in lines), err
    assert "Traceback" not in err
    records = read_capture(path)
    assert [int(r.payload[:5]) for r in records] == list(range(len(records)))


@pytest.mark.parametrize("option, value", [
    (option, value)
    for option in ("--size", "--chunk", "--loop-chunk", "--offload-chunk", "--rounds")
    for value in (HUGE_INT, str(64 * 10**22), "-64", "1.5", "x")
    + (() if option == "--size" else ("0",))])
def test_cli_bench_bad_numbers_exit_2(option, value):
    import contextlib
    import io

    from hotsock.cli import main
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exit_:
        main(["bench", f"{option}={value}", "--only", "recv"])
    assert exit_.value.code == 2, err.getvalue()
    assert "Traceback" not in err.getvalue()
    assert err.getvalue().splitlines()[-1].startswith("hotsock bench: error: ")


# --- 4: a loop whose socket another thread closes never reads the socket that reused its number

def _close_and_reuse(sock, delay):
    """Close *sock* after *delay*, open a socket on the same descriptor number and send it a
    datagram: (the new socket, True if the number was really reused)."""
    time.sleep(delay)
    number = sock.fileno()
    sock.close()
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    other.bind(("127.0.0.1", 0))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        tx.sendto(b"for the new socket", other.getsockname())
    return other, other.fileno() == number


LOOPS_ON_A_CLOSED_SOCKET = {
    "capture": lambda rx, seen: hotsock.capture(rx, lambda b: seen.extend(bytes(p) for p, _ in b),
                                                duration=5, stop_signals=()),
    "capture-file": lambda rx, seen: hotsock.capture(rx, os.devnull, duration=5,
                                                     stop_signals=()),
    "echo": lambda rx, seen: hotsock.echo(rx, duration=5, stop_signals=()),
}


@pytest.mark.parametrize("loop", sorted(LOOPS_ON_A_CLOSED_SOCKET))
def test_loop_on_a_socket_closed_by_another_thread_fails_with_ebadf(loop):
    import threading
    rx = udp()
    seen, outcome = [], {}

    def run():
        try:
            outcome["stats"] = LOOPS_ON_A_CLOSED_SOCKET[loop](rx, seen)
        except BaseException as exc:        # noqa: BLE001 - the outcome is the assertion
            outcome["error"] = exc

    worker = threading.Thread(target=run)
    worker.start()
    other, reused = _close_and_reuse(rx, 0.3)
    try:
        worker.join(10)
        assert not worker.is_alive(), f"{loop} went on after its socket was closed"
        assert reused, "the descriptor number was not reused; the test proves nothing"
        assert isinstance(outcome.get("error"), OSError), outcome
        assert outcome["error"].errno == errno.EBADF
        assert seen == []
        other.settimeout(2)
        assert other.recv(100) == b"for the new socket"     # still there: nobody read it
    finally:
        other.close()


def test_blast_count_ends_the_run_when_every_send_is_refused():
    # Refused datagrams are counted in errors; the count limits datagrams handed to the
    # kernel, so a destination that refuses everything cannot keep the run going for ever.
    result = run_python("""
        import socket, hotsock
        tx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        stats = hotsock.blast(tx, "\\0hotsock-nobody-listens-here", count=50)
        print(stats.sent, stats.errors, stats.stopped)
    """, timeout=20)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "50", "count"]


# --- found by the second attack -----------------------------------------------------------

def test_cli_unicast_ttl_zero_is_a_usage_error():
    """TTL 0 keeps datagrams on the host: a multicast TTL only.  For a unicast
    destination it is refused when the options are parsed (exit 2), not when
    the socket is set up (exit 1)."""
    out = run_cli("blast", "127.0.0.1", "9", "--ttl", "0", "--duration", "0.1", "-q")
    assert out.returncode == 2, out.stderr
    assert out.stderr.splitlines()[-1] == (
        "hotsock blast: error: --ttl 0 keeps datagrams on this host: for a multicast group "
        "only (a unicast TTL is 1 to 255)")


def test_kernel_drops_on_a_closed_socket_and_a_negative_descriptor():
    s = hotsock.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.close()
    with pytest.raises(OSError) as info:
        hotsock.kernel_drops(s)             # as capture(s, ...) says of a closed socket
    assert info.value.errno == errno.EBADF
    with pytest.raises(ValueError, match=r"^file descriptor cannot be a negative integer \(-1\)$"):
        hotsock.kernel_drops(-1)            # recv_batch(-1)'s words
    with pytest.raises(ValueError) as theirs:
        hotsock.recv_batch(-1, hotsock.RecvBatch(1, 1))
    assert str(theirs.value) == "file descriptor cannot be a negative integer (-1)"
