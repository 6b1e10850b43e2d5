"""The pybpf language compiler: Python ``ast`` -> typed IR -> instructions on virtual
registers -> register allocation -> linked :mod:`pybpf.asm` instructions.

See :func:`compile_functions` (in :mod:`.pipeline`); the public entry points are in
:mod:`pybpf.dsl`. Importing this package is cheap: :class:`CompileError` and
:class:`Unit` are here at once, the pipeline (frontend, IR, code generator, register
allocator: most of the compiler's import time) only when :func:`compile_functions` or
:class:`CompiledFunction` is first asked for, so a tool whose programs come from the
cache of compiled programs (:mod:`pybpf.dsl.cache`) never imports it.
"""

from __future__ import annotations

from typing import Any

from .errors import CompileError
from .unit import Unit

__all__ = ["CompileError", "compile_functions", "CompiledFunction", "Unit"]


def __getattr__(name: str) -> Any:
    if name in ("compile_functions", "CompiledFunction"):
        from . import pipeline
        return getattr(pipeline, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
