"""The hotsock command: info and a short bench run (figures are not judged here)."""
import json
import subprocess
import sys

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


def test_bench_json_reports_every_contender_and_ratio():
    out = run_cli("bench", "--rounds", "2", "--chunk", "128", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert set(report["rates"]) == {
        "stdlib recvfrom", "stdlib recv_into", "hotsock recvfrom", "hotsock recv_into",
        "hotsock recv_batch", "C recvfrom loop", "C recvmmsg loop",
        "stdlib sendto", "hotsock sendto", "hotsock send_batch", "C sendto loop",
        "C sendmmsg loop"}
    assert all(rate > 0 for rate in report["rates"].values())
    assert len(report["ratios"]) == 6
    assert report["chunk"] == 128 and report["rounds"] == 2


def test_bench_table_and_only():
    out = run_cli("bench", "--rounds", "1", "--chunk", "64", "--only", "recv")
    assert out.returncode == 0, out.stderr
    assert "hotsock recv_batch" in out.stdout and "sendto" not in out.stdout
    assert "targets:" in out.stdout


def test_bad_arguments_exit_with_usage():
    assert run_cli("bench", "--chunk", "100").returncode == 2
    assert run_cli("bench", "--size", "-1").returncode == 2
    assert run_cli("nonsense").returncode == 2
    assert run_cli("info", "--bogus").returncode == 2
