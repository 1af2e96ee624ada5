"""hotsock bench: the GSO and GRO parts (smoke tests: tiny runs; figures are not judged)."""
import json
import os
import socket
import subprocess
import sys

import pytest

import hotsock
from hotsock import _reference, bench

# The hotsock being tested, for the subprocesses too (whatever the caller's PYTHONPATH).
SRC = os.path.dirname(os.path.dirname(os.path.abspath(hotsock.__file__)))
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(
    p for p in (SRC, os.environ.get("PYTHONPATH")) if p))


def run_cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "hotsock", *args], capture_output=True,
                          text=True, timeout=timeout, env=ENV)


FEATURES = hotsock.features()
GSO = FEATURES["gso_available"] and not FEATURES["gso_forced_off"]
GRO = GSO and FEATURES["gro_available"] and not FEATURES["gro_forced_off"]

CONTENDERS = {
    "gso": {"stdlib sendto", "hotsock send_batch gso", "hotsock SendBatch gso", "hotsock blast gso",
            "hotsock blast gso seq", "C GSO send loop"},
    "gro": {"stdlib recvfrom", "hotsock recv_batch gro", "C GRO recv loop"},
}
AVAILABLE = {"gso": GSO, "gro": GRO}
# The smallest chunk: one receive batch of 64 coalesced buffers of 64 datagrams.
SMALL = "4096"


@pytest.mark.parametrize("part", ["gso", "gro"])
def test_offload_part_json(part):
    out = run_cli("bench", "--rounds", "1", "--offload-chunk", SMALL, "--only", part, "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    if not AVAILABLE[part]:
        assert report["parts"] == {} and part in report["skipped"]
        return
    assert list(report["parts"]) == [part] and report["skipped"] == {}
    result = report["parts"][part]
    assert set(result["rates"]) == CONTENDERS[part]
    assert all(rate > 0 for rate in result["rates"].values())
    assert result["chunk"] == int(SMALL)
    assert report["ratios"] and all(item["part"] == part for item in report["ratios"])
    assert {item["what"] for item in report["ratios"]} == {
        f"{a} / {b}" for p, a, b, _ in bench.TARGETS if p == part}
    if part == "gso":
        times = result["one_datagram_us"]
        assert set(times) == CONTENDERS[part] and all(t > 0 for t in times.values())


@pytest.mark.parametrize("part", ["gso", "gro"])
def test_offload_part_table(part):
    out = run_cli("bench", "--rounds", "1", "--offload-chunk", SMALL, "--only", part)
    assert out.returncode == 0, out.stderr
    if not AVAILABLE[part]:
        assert f"{part}: skipped" in out.stdout
        return
    for name in CONTENDERS[part]:
        assert name in out.stdout
    assert "targets:" in out.stdout and "C recvmmsg loop" not in out.stdout


def test_offload_chunk_is_rounded_to_whole_receive_batches():
    if not GSO:
        pytest.skip("no segmented sends here")
    report = bench.run(rounds=1, parts=("gso",), offload_chunk=4096 + 64)
    assert report["parts"]["gso"]["chunk"] == 4096
    report = bench.run(rounds=1, parts=("gso",), offload_chunk=64)
    assert report["parts"]["gso"]["chunk"] == 4096


def test_offload_parts_skip_zero_byte_datagrams():
    report = bench.run(size=0, rounds=1, parts=("gso", "gro"))
    assert report["parts"] == {} and set(report["skipped"]) == {"gso", "gro"}
    assert "skipped" in bench.format_report(report)


def test_bad_offload_chunk_exits_with_usage():
    assert run_cli("bench", "--offload-chunk", "100").returncode == 2
    assert run_cli("bench", "--offload-chunk", "0").returncode == 2


# --- the C references themselves ------------------------------------------------

@pytest.fixture
def pair():
    rx = hotsock.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(5)
    tx = hotsock.socket(socket.AF_INET, socket.SOCK_DGRAM)
    yield rx, tx
    rx.close()
    tx.close()


@pytest.mark.skipif(not GSO, reason="no segmented sends here")
def test_c_gso_send_loop_sends_separate_datagrams(pair):
    rx, tx = pair
    # 100 datagrams: a full segmented send of 64, then one of 36.
    assert _reference.gso_send_loop(tx, rx.getsockname(), 100, 64, 48) == 100
    batch = hotsock.RecvBatch(128, 2048)       # no gro: one datagram per entry
    got = 0
    while got < 100:
        got += rx.recv_batch(batch)
        assert all(n == 48 for n in batch.lengths)
    assert got == 100


@pytest.mark.skipif(not GRO, reason="no coalesced receives here")
def test_c_gro_recv_loop_counts_datagrams(pair):
    rx, tx = pair
    assert _reference.gso_send_loop(tx, rx.getsockname(), 0, 64, 64) == 0
    # Turns UDP_GRO on (nothing queued yet, nothing wanted), then counts
    # coalesced buffers by their segment size: 64 + 64 + 10 datagrams.
    assert _reference.gro_recv_loop(rx, 0) == 0
    assert _reference.gso_send_loop(tx, rx.getsockname(), 138, 64, 100) == 138
    assert _reference.gro_recv_loop(rx, 138) == 138


@pytest.mark.skipif(not GSO, reason="no segmented sends here")
def test_c_gso_send_loop_rejects_bad_arguments(pair):
    rx, tx = pair
    for segments, size in ((0, 64), (65, 64), (64, 0), (64, 2000)):
        with pytest.raises(OSError):
            _reference.gso_send_loop(tx, rx.getsockname(), 10, segments, size)
