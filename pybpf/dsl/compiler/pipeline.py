"""The Python front end's pipeline: Python ``ast`` -> typed IR (:mod:`.frontend`) ->
the shared back end (:mod:`pybpf.compiler.backend`: code generation, register
allocation, peephole, limits, linking) (:func:`compile_functions`). Imported on the
first compilation only (:mod:`pybpf.dsl.compiler` loads it lazily)."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Tuple

from ...asm.instruction import Instruction, SourceLocation
from ...compiler.backend import CompiledFunction, link_program, lower_function
from ...compiler.errors import CompileError
from ...compiler.types import IntType
from ...compiler.unit import Unit
from .frontend import FunctionCompiler, parse_function

__all__ = ["compile_functions", "CompiledFunction"]

#: what to do about a call chain over the kernel's stack limit, in the language's words
_STACK_HINT = ("keep big records in the ring buffer (with ring.reserve() as e:) or in a "
               "per-CPU array used as scratch space (PerCPUArrayMap(Rec, 1)), or move "
               "locals out of the functions of the deepest chain")


def compile_functions(entry: Callable[..., Any], unit: Optional[Unit] = None,
                      kind: Any = None) -> Tuple[List[CompiledFunction], List[Instruction]]:
    """Compile ``entry`` and every function it calls; return the functions (entry
    first) and the linked instructions of the whole program. ``unit`` gathers the maps,
    constants and print sites of a module; ``kind`` (a
    :class:`pybpf.dsl.attach.ProgramKind`) types the entry's context."""
    unit = unit if unit is not None else Unit()
    done: Dict[Any, Tuple[str, List[IntType], IntType]] = {}
    compiled: List[CompiledFunction] = []
    in_progress: List[Any] = []
    walks: Dict[str, int] = {}          # function name -> instructions the verifier walks

    def resolve(fn: Any, where: SourceLocation) -> Tuple[str, List[IntType], IntType]:
        if fn in in_progress:
            chain = " -> ".join(f.__name__ for f in in_progress + [fn])
            raise CompileError(f"recursion is not supported ({chain})", where,
                               "BPF has no recursion: rewrite it as a bounded loop")
        if fn not in done:
            compile_one(fn, False)
        return done[fn]

    def compile_one(fn: Any, is_entry: bool) -> None:
        in_progress.append(fn)
        src = parse_function(fn)
        ir = FunctionCompiler(src, resolve, entry=is_entry, unit=unit,
                              kind=kind).compile()
        compiled_fn = lower_function(ir, walks)
        done[fn] = (ir.name, ir.params, ir.ret)
        in_progress.pop()
        compiled.append(compiled_fn)

    compile_one(entry, True)
    # the entry first, then the others in the order they were finished
    entry_fn = compiled.pop()
    ordered = [entry_fn] + compiled
    return ordered, link_program(ordered, _STACK_HINT)
