"""What a user gets from pip: the README's snippets run, the metadata and version agree.

README.md and .ci/run ship in the sdist, so these run from a checkout and from
an unpacked sdist alike.
"""
import importlib.metadata
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import hotsock

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
# The hotsock under test, for the subprocesses too.
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(
    p for p in (str(Path(hotsock.__file__).resolve().parent.parent),
                os.environ.get("PYTHONPATH")) if p))

README_TEST_COMMAND = 'python -m pip install ".[test]" && python -m pytest'


def _code_blocks(section, language):
    """The fenced code blocks of one README section (``## section``)."""
    match = re.search(rf"^## {re.escape(section)}\n(.*?)(?=^## )", README, re.S | re.M)
    assert match, f"README has no section {section!r}"
    return re.findall(rf"^```{language}\n(.*?)^```$", match.group(1), re.S | re.M)


def test_quick_start_runs_as_pasted(tmp_path):
    (code,) = _code_blocks("Quick start", "python")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, cwd=tmp_path, env=ENV)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    # The sender's address on every line: one port, chosen by the kernel.
    assert [re.sub(r"\d+\)$", "PORT)", line) for line in lines] == [
        f"b'{text}' ('127.0.0.1', PORT)" for text in ("hello", "a", "b", "c")], out.stdout
    assert len({line.rsplit(" ", 1)[1] for line in lines}) == 1, out.stdout


def test_install_section_names_pip_install_first():
    (commands,) = _code_blocks("Install", "sh")
    assert commands.splitlines()[0].startswith("python -m pip install hotsock")


def test_ci_runs_the_readme_test_command():
    assert README.count(f"```sh\n{README_TEST_COMMAND}\n```") == 1
    ci = (ROOT / ".ci" / "run").read_text()
    assert README_TEST_COMMAND in [line.strip() for line in ci.splitlines()], \
        "the README's test command is what CI runs"


def test_version_flag():
    out = subprocess.run([sys.executable, "-m", "hotsock", "--version"], capture_output=True,
                         text=True, timeout=60, env=ENV)
    assert (out.returncode, out.stdout, out.stderr) == (0, f"hotsock {hotsock.__version__}\n", "")


def test_console_script_is_the_command():
    """The installed ``hotsock`` script runs what ``python -m hotsock`` runs."""
    _metadata()
    (entry,) = importlib.metadata.entry_points(group="console_scripts", name="hotsock")
    import hotsock.cli
    assert entry.value == "hotsock.cli:main" and entry.load() is hotsock.cli.main
    script = Path(sys.executable).with_name("hotsock")
    if not script.exists():
        pytest.skip(f"no {script} beside this interpreter")
    out = subprocess.run([str(script), "--version"], capture_output=True, text=True,
                         timeout=60, env=ENV)
    assert (out.returncode, out.stdout, out.stderr) == (0, f"hotsock {hotsock.__version__}\n", "")


def _metadata():
    try:
        return importlib.metadata.metadata("hotsock")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("hotsock is not installed (source tree on sys.path)")


def test_metadata():
    meta = _metadata()
    assert meta["Version"] == hotsock.__version__          # one source for the version
    assert meta["License-Expression"] == "MIT"
    assert meta["Requires-Python"] == ">=3.11"
    classifiers = meta.get_all("Classifier")
    for minor in range(11, 16):
        assert f"Programming Language :: Python :: 3.{minor}" in classifiers
    assert "Typing :: Typed" in classifiers
    assert any(c.startswith("Development Status :: ") for c in classifiers)
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL"))
    assert set(urls) >= {"Homepage", "Source", "Issues"}


def test_stubs_and_marker_are_installed():
    here = Path(hotsock.__file__).parent
    assert (here / "py.typed").exists()
    assert (here / "__init__.pyi").exists()
