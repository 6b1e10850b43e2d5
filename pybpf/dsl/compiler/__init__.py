"""The Python front end of the compiler: Python ``ast`` -> the shared typed IR
(:mod:`pybpf.compiler`), then the shared back end (register allocation, peephole,
linking).

Here: the ``ast`` walker (:mod:`.frontend`), the typing rules of Python expressions
(:mod:`.typing_rules`), the Python-specific calls (:mod:`.builtins`, :mod:`.packet`),
the stale-pointer analysis of Python locals (:mod:`.stale`) and the pipeline
(:mod:`.pipeline`, :func:`compile_functions`). The public entry points are in
:mod:`pybpf.dsl`. Importing this package is cheap: the pipeline (most of the
compiler's import time) is imported only when :func:`compile_functions` or
:class:`CompiledFunction` is first asked for, so a tool whose programs come from the
cache of compiled programs (:mod:`pybpf.dsl.cache`) never imports it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["compile_functions", "CompiledFunction"]


def __getattr__(name: str) -> Any:
    if name in ("compile_functions", "CompiledFunction"):
        from . import pipeline
        return getattr(pipeline, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
