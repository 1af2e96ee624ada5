"""The hand-written .pyi stubs agree with the compiled package (mypy's stubtest)."""
import subprocess
import sys

import pytest


@pytest.mark.skipif(sys.version_info < (3, 10),
                    reason="typeshed's socket stubs list names (AF_DECnet, AddressFamily) "
                           "that Python 3.9's socket.__all__ lacks; the star re-export differs")
def test_stubs_match_the_runtime(tmp_path):
    pytest.importorskip("mypy.stubtest")
    # From an empty directory (mypy's cache goes there too), so that the
    # installed package is what gets checked.
    out = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "hotsock", "--ignore-missing-stub"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
