"""docs/ARCHITECTURE.md names every module and C file of the package.

The map is only useful while it is complete: a compiled module added to
setup.py, a C file added to pyx/, or a Python module added to src/hotsock
(or to one of its subpackages) without a line in the map fails here.
"""
import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
MAP = ROOT / "docs" / "ARCHITECTURE.md"


def _compiled_modules():
    """The keys of setup.py's MODULES dict, read without running setup.py."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "MODULES" for t in node.targets):
            return [key.value for key in node.value.keys]
    raise AssertionError("setup.py has no MODULES dict")


def _names():
    names = [f"`{name}`" for name in _compiled_modules()]
    for pattern in ("pyx/core/*.c", "pyx/reference/*.c"):
        names += [f"`{p.relative_to(ROOT).as_posix()}" for p in sorted(ROOT.glob(pattern))]
    package = ROOT / "src" / "hotsock"
    names += [f"`{p.name}`" for p in sorted(package.glob("*.py"))]
    # Subpackages (cli/, bench/): their modules by their path in the package.
    names += [f"`{p.relative_to(package).as_posix()}`" for p in sorted(package.glob("*/*.py"))]
    return names


def test_the_map_reads_the_module_list():
    # Guard against a vacuous pass: the parse must find the modules we know exist.
    assert {"_syscall", "_recv", "_send", "_capture"} <= set(_compiled_modules())


@pytest.mark.parametrize("name", _names())
def test_every_module_is_on_the_map(name):
    assert name in MAP.read_text(), f"{name} is missing from docs/ARCHITECTURE.md"
