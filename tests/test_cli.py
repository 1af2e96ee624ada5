"""The hotsock command: info and a short bench run (figures are not judged here)."""
import importlib.util
import json
import subprocess
import sys

import pytest

import hotsock


def run_cli(*args, timeout=120):
    out = subprocess.run([sys.executable, "-m", "hotsock", *args], capture_output=True,
                         text=True, timeout=timeout)
    return out


def test_info_json_is_features():
    out = run_cli("info", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == json.loads(json.dumps(hotsock.features()))


def test_info_text_lists_the_batch_path():
    out = run_cli("info")
    assert out.returncode == 0, out.stderr
    assert hotsock.features()["batch_path"] in out.stdout


def _uvloop_installed():
    return importlib.util.find_spec("uvloop") is not None


CONTENDERS = {
    "recv": {"stdlib recvfrom", "stdlib recv_into", "hotsock recvfrom", "hotsock recv_into",
             "hotsock recv_batch", "C recvfrom loop", "C recvmmsg loop"},
    "send": {"stdlib sendto", "hotsock sendto", "hotsock send_batch", "C sendto loop",
             "C sendmmsg loop"},
    "capture": {"hotsock capture", "hotsock capture pcapng", "C recvmmsg loop"},
    "echo": {"hotsock echo", "stdlib echo loop", "C echo loop"}
    | ({"uvloop echo"} if _uvloop_installed() else set()),
}


def test_bench_json_reports_every_contender_and_ratio():
    out = run_cli("bench", "--rounds", "2", "--chunk", "128", "--loop-chunk", "128", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert set(report["parts"]) == set(CONTENDERS)
    for part, names in CONTENDERS.items():
        result = report["parts"][part]
        assert set(result["rates"]) == names
        assert all(rate > 0 for rate in result["rates"].values())
        assert result["chunk"] == 128
    for part in ("capture", "echo"):
        times = report["parts"][part]["one_datagram_us"]
        assert set(times) == CONTENDERS[part] and all(t > 0 for t in times.values())
    assert len(report["ratios"]) == 9 + _uvloop_installed()
    assert report["rounds"] == 2


@pytest.mark.parametrize("part", ["capture", "echo"])
def test_bench_hot_loop_parts(part):
    out = run_cli("bench", "--rounds", "1", "--loop-chunk", "64", "--only", part, "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert list(report["parts"]) == [part]
    rates = report["parts"][part]["rates"]
    assert set(rates) == CONTENDERS[part] and all(rate > 0 for rate in rates.values())
    assert report["ratios"] and all(item["part"] == part for item in report["ratios"])
    table = run_cli("bench", "--rounds", "1", "--loop-chunk", "64", "--only", part)
    assert table.returncode == 0, table.stderr
    assert f"hotsock {part}" in table.stdout and "targets:" in table.stdout
    assert "recv_batch" not in table.stdout


def test_bench_table_and_only():
    out = run_cli("bench", "--rounds", "1", "--chunk", "64", "--only", "recv")
    assert out.returncode == 0, out.stderr
    assert "hotsock recv_batch" in out.stdout and "sendto" not in out.stdout
    assert "targets:" in out.stdout


def test_bad_arguments_exit_with_usage():
    assert run_cli("bench", "--chunk", "100").returncode == 2
    assert run_cli("bench", "--loop-chunk", "100").returncode == 2
    assert run_cli("bench", "--only", "nonsense").returncode == 2
    assert run_cli("bench", "--size", "-1").returncode == 2
    assert run_cli("nonsense").returncode == 2
    assert run_cli("info", "--bogus").returncode == 2
