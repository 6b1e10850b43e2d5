"""The layering of the compiler: the shared compiler (pybpf/compiler) imports no front
end, and the two front ends (pybpf/dsl, pybpf/bpftrace) never import each other.

Every import statement of every module is read with ``ast`` (those inside functions
too: the lazy ones count) and resolved to the absolute module it names.
"""

from __future__ import annotations

import ast
import os
from typing import Iterator, List, Tuple

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG = os.path.join(ROOT, "pybpf")

#: layers above the compiler: nothing in pybpf/compiler may import them
ABOVE_COMPILER = ("pybpf.dsl", "pybpf.bpftrace", "pybpf.cli", "pybpf.export", "pybpf.tooling",
                  "pybpf.explain", "pybpf.explain_html", "pybpf.explain_trace", "programs")


def _module_name(path: str, root: str) -> str:
    rel = os.path.relpath(path, root)[:-3].replace(os.sep, ".")
    return rel[:-len(".__init__")] if rel.endswith(".__init__") else rel


def imports_of(path: str, root: str = ROOT) -> Iterator[Tuple[int, str]]:
    """``(line, absolute module)`` for every import in the file at ``path`` (under
    ``root``, the directory holding ``pybpf``); a ``from X import a`` gives ``X`` and
    ``X.a`` (``a`` may be a submodule)."""
    with open(path, encoding="utf-8") as fh:
        tree = ast.parse(fh.read(), path)
    name = _module_name(path, root)
    package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield node.lineno, target
            for alias in node.names:
                yield node.lineno, f"{target}.{alias.name}"


def modules_under(*parts: str) -> List[str]:
    top = os.path.join(PKG, *parts)
    found = []
    for d, dirs, files in os.walk(top):
        dirs[:] = [x for x in dirs if x != "__pycache__"]
        found += [os.path.join(d, f) for f in files if f.endswith(".py")]
    return sorted(found)


def offending(paths: List[str], forbidden: Tuple[str, ...], root: str = ROOT) -> List[str]:
    out = []
    for path in paths:
        for line, mod in imports_of(path, root):
            if any(mod == f or mod.startswith(f + ".") for f in forbidden):
                out.append(f"{os.path.relpath(path, root)}:{line}: imports {mod}")
    return out


def test_the_resolver_sees_relative_and_lazy_imports(tmp_path):
    """The checks below could not fail if the resolver missed imports: a module of
    pybpf/compiler with the forms used in the code base is caught."""
    seen = {m for _, m in imports_of(os.path.join(PKG, "compiler", "blocks.py"))}
    assert {"pybpf.compiler.types", "pybpf.compiler.ir.MapFd",      # relative
            "pybpf.events.wakeup.adaptive_window"} <= seen           # inside a function
    fake_dir = tmp_path / "pybpf" / "compiler"
    fake_dir.mkdir(parents=True)
    fake = fake_dir / "bad.py"
    fake.write_text("from . import ir\n"
                    "from ..dsl import types\n"
                    "def f():\n    from ..dsl.maps import HashMap\n"
                    "import pybpf.bpftrace.ast\n")
    found = offending([str(fake)], ("pybpf.dsl", "pybpf.bpftrace"), str(tmp_path))
    assert found == ["pybpf/compiler/bad.py:2: imports pybpf.dsl",
                     "pybpf/compiler/bad.py:2: imports pybpf.dsl.types",
                     "pybpf/compiler/bad.py:5: imports pybpf.bpftrace.ast",
                     "pybpf/compiler/bad.py:4: imports pybpf.dsl.maps",
                     "pybpf/compiler/bad.py:4: imports pybpf.dsl.maps.HashMap"]


def test_the_shared_compiler_imports_no_front_end():
    paths = modules_under("compiler")
    assert len(paths) >= 10
    assert offending(paths, ABOVE_COMPILER) == []


@pytest.mark.parametrize("front, other", [("dsl", "pybpf.bpftrace"),
                                          ("bpftrace", "pybpf.dsl")])
def test_the_front_ends_never_import_each_other(front, other):
    paths = modules_under(front)
    assert paths
    assert offending(paths, (other,)) == []
