"""Print the re-export block of src/hotsock/__init__.pyi: the socket module's constants.

hotsock re-exports the constants of ``socket.__all__`` (hotsock/__init__.py).
Its stub cannot say so with ``from socket import *``: that would also bind
``socket``, ``socketpair``, ``fromfd``, ``create_connection``,
``create_server`` (and, from 3.12, ``IP_PKTINFO``) to the stdlib's, and a
type checker keeps one binding per name.  So the stub imports each constant
by name, under the same platform and version conditions as typeshed's
``socket.pyi`` lists them in ``__all__``; this script derives that block from
the typeshed that mypy bundles.  Run it and paste the output between the
markers in __init__.pyi after a mypy upgrade:

    python .ci/stub_constants.py
"""
import ast
import os
import re

import mypy

CONSTANT = re.compile(r"^[A-Z][A-Z0-9_]*$")
# hotsock's own values under these names (None where the platform lacks them).
OWN = {"IP_PKTINFO", "SO_RXQ_OVFL", "SO_TIMESTAMPNS", "MAX_BATCH"}


def _names(node):
    return [e.value for e in node.value.elts
            if isinstance(e, ast.Constant) and CONSTANT.match(e.value) and e.value not in OWN]


def _block(body, indent):
    lines = []
    for node in body:
        if isinstance(node, (ast.Assign, ast.AugAssign)):
            target = node.targets[0] if isinstance(node, ast.Assign) else node.target
            if isinstance(target, ast.Name) and target.id == "__all__":
                names = _names(node)
                if names:
                    lines.append(f"{indent}from socket import (")
                    lines += [f"{indent}    {n} as {n}," for n in names]
                    lines.append(f"{indent})")
        elif isinstance(node, ast.If):
            inner = _block(node.body, indent + "    ")
            other = _block(node.orelse, indent + "    ")
            if inner or other:
                lines.append(f"{indent}if {ast.unparse(node.test)}:")
                lines += inner or [f"{indent}    pass"]
                if other:
                    lines.append(f"{indent}else:")
                    lines += other
    return lines


def main():
    path = os.path.join(os.path.dirname(mypy.__file__), "typeshed", "stdlib", "socket.pyi")
    with open(path) as f:
        tree = ast.parse(f.read())
    print("\n".join(_block(tree.body, "")))


if __name__ == "__main__":
    main()
