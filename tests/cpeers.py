"""Plain C socket programs to test hotsock against, compiled once per test session.

    from cpeers import cpeers    # a session-scoped pytest fixture

    def test_echo(cpeers):
        result = cpeers.run("udp_echo_client", "127.0.0.1", port, 5)
        with cpeers.popen("mcast_recv", "-i", "127.0.0.1", group, port, 3) as proc: ...
        host.run([cpeers.mcast_send, "-t", "1", group, port, 3])   # a path, for namespace hosts

The sources are tests/cpeers/*.c, one small program each, modelled on the socket course
material: mcast_send, mcast_recv, udp_echo_client, udp_flood, tcp_echo_client, and for
segmentation offload udp_gso_send and udp_gro_recv. Every one takes
its addresses, ports and counts from argv, stops by itself (counts and time limits), prints
machine-readable lines and documents its exit codes at the top of its source.
"""
import contextlib
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SOURCE_DIR = Path(__file__).parent / "cpeers"
CFLAGS = ["-O2", "-Wall", "-Werror"]
COMPILE_TIMEOUT = 60   # seconds per program
RUN_TIMEOUT = 10       # default for run(); the programs' own limits are shorter
KILL_TIMEOUT = 5


class CPeers:
    """The compiled programs: `peers.mcast_send` is a path; run()/popen() start one locally."""

    def __init__(self, paths):
        self.paths = dict(paths)
        for name, path in self.paths.items():
            setattr(self, name, path)

    def argv(self, name, *args):
        return [self.paths[name], *map(str, args)]

    def run(self, name, *args, timeout=RUN_TIMEOUT):
        """Run a program in this (the root) namespace; the CompletedProcess, text captured."""
        return subprocess.run(self.argv(name, *args), capture_output=True, text=True,
                              timeout=timeout)

    @contextlib.contextmanager
    def popen(self, name, *args):
        """Start a program in the background; it is killed on leaving the block if still running.

        Collect it inside the block with proc.communicate(timeout=...).
        """
        proc = subprocess.Popen(self.argv(name, *args), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired, ValueError, OSError):
                proc.communicate(timeout=KILL_TIMEOUT)


def find_compiler():
    """The C compiler: $CC if set (it may carry flags), else `cc`; None when there is none."""
    command = shlex.split(os.environ.get("CC", "")) or ["cc"]
    return command if shutil.which(command[0]) else None


def build(out_dir, compiler):
    """Compile every tests/cpeers/*.c into out_dir; {program name: path}. Errors fail loudly."""
    paths = {}
    for source in sorted(SOURCE_DIR.glob("*.c")):
        binary = Path(out_dir) / source.stem
        proc = subprocess.run([*compiler, *CFLAGS, "-o", str(binary), str(source)],
                              capture_output=True, text=True, timeout=COMPILE_TIMEOUT)
        if proc.returncode != 0:
            raise RuntimeError(f"compiling {source.name} failed:\n{proc.stderr}")
        paths[source.stem] = str(binary)
    return paths


@pytest.fixture(scope="session")
def cpeers(tmp_path_factory):
    """CPeers for this session; skips when there is no C compiler."""
    if sys.platform == "win32":
        pytest.skip("the C peers use POSIX sockets")
    compiler = find_compiler()
    if compiler is None:
        pytest.skip("no C compiler (set CC or install cc) to build tests/cpeers")
    # A compile error is a bug in the sources, so it fails (RuntimeError), it never skips.
    return CPeers(build(tmp_path_factory.mktemp("cpeers"), compiler))
