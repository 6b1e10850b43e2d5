"""The compiler's pipeline: Python ``ast`` -> typed IR -> instructions on virtual
registers -> register allocation -> linked :mod:`pybpf.asm` instructions
(:func:`compile_functions`). Imported on the first compilation only
(:mod:`pybpf.dsl.compiler` loads it lazily)."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Tuple

from ...asm.instruction import Instruction, SourceLocation
from ...asm.program import link
from ...compiler.codegen import VREG_BASE, generate, ranges
from ...compiler.errors import CompileError
from ...compiler.ir import Function
from ...compiler.limits import check_stack, walk_estimate
from ...compiler.peephole import fold_moves
from ...compiler.regalloc import allocate
from ...compiler.types import IntType
from ...compiler.unit import Unit
from .frontend import FunctionCompiler, parse_function

__all__ = ["compile_functions", "CompiledFunction"]


class CompiledFunction:
    """One compiled function: its IR, allocated instructions (unlinked), spill bytes."""

    def __init__(self, ir: Function, instructions: List[Instruction], stack: int) -> None:
        self.ir = ir
        self.instructions = instructions
        self.stack = stack

    @property
    def name(self) -> str:
        """The function's name (its label in the program)."""
        return self.ir.name


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
        gen = generate(ir)
        locals_ = {VREG_BASE + op.dst.id for op in ir.ops
                   if op.dst is not None and op.dst.local}
        locals_ |= {VREG_BASE + i for i in ir.local_ids}
        alloc = allocate(gen.instructions, ranges(gen, ir), locals_, gen.params,
                         gen.calls, ir.frame)
        insns = alloc.instructions
        if gen.aliases:
            insns = [i.replace(reference=gen.aliases.get(i.reference, i.reference))
                     if isinstance(i.reference, str) else i for i in insns]
        insns = fold_moves(insns)
        if alloc.stack > 512:
            raise CompileError(f"{ir.name} needs {alloc.stack} bytes of stack ({ir.frame} "
                               f"for its structs and buffers, the rest for spilled values; "
                               "BPF allows 512)", ir.loc,
                               "use smaller structs, or keep big records in a per-CPU array")
        walks[ir.name] = walk_estimate(insns, ir.loop_bounds, gen.aliases, walks,
                                       ir.name, ir.loc)
        insns[0] = insns[0].replace(label=ir.name) if insns[0].label is None else insns[0]
        if insns[0].label != ir.name:
            # the first instruction already carries a loop label: alias it
            old = insns[0].label
            insns = [i.replace(reference=ir.name) if i.reference == old else i for i in insns]
            insns[0] = insns[0].replace(label=ir.name)
        done[fn] = (ir.name, ir.params, ir.ret)
        in_progress.pop()
        compiled.append(CompiledFunction(ir, insns, alloc.stack))

    compile_one(entry, True)
    # the entry first, then the others in the order they were finished
    entry_fn = compiled.pop()
    ordered = [entry_fn] + compiled
    names = [f.name for f in ordered]
    if len(set(names)) != len(names):
        raise CompileError("two compiled functions share a name: " + ", ".join(names),
                           entry_fn.ir.loc, "rename one of them")
    check_stack(ordered)
    program: List[Instruction] = [i for f in ordered for i in f.instructions]
    return ordered, link(program)
