"""The hand-written .pyi stubs agree with the compiled package (mypy's stubtest).

Run on every Python the suite runs on (.ci/run: each pyenv Python 3.11+): the
socket module's constants differ between versions (IP_PKTINFO from 3.12 on)
and the stubs must hold on each.
"""
import subprocess
import sys

import pytest


def test_stubs_match_the_runtime(tmp_path):
    pytest.importorskip("mypy.stubtest")
    # From an empty directory (mypy's cache goes there too), so that the
    # installed package is what gets checked.
    out = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "hotsock", "--ignore-missing-stub"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
