"""The shared back end: a function's IR -> allocated, cleaned-up instructions
(:func:`lower_function`), and the functions of a program -> one linked instruction list
(:func:`link_program`), with the verifier's limits checked on the way (:mod:`.limits`).
Both front ends hand their :class:`~.ir.Function` s to it."""

from __future__ import annotations

from typing import Dict, List, Sequence

from ..asm.instruction import Instruction
from ..asm.program import link
from .codegen import VREG_BASE, generate, ranges
from .errors import CompileError
from .ir import Function
from .limits import STACK_HINT, check_stack, walk_estimate
from .peephole import fold_moves
from .regalloc import allocate

__all__ = ["CompiledFunction", "lower_function", "link_program"]


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


def lower_function(ir: Function, walks: Dict[str, int]) -> CompiledFunction:
    """Generate, allocate and clean up the instructions of ``ir``; its first
    instruction is labelled with its name. Refuses a frame over 512 bytes and a walk
    estimate over the verifier's limit (``walks``: the estimates of the functions
    compiled before, by name; this one's is added)."""
    gen = generate(ir)
    locals_ = {VREG_BASE + op.dst.id for op in ir.ops
               if op.dst is not None and op.dst.local}
    locals_ |= {VREG_BASE + i for i in ir.local_ids}
    alloc = allocate(gen.instructions, ranges(gen, ir), locals_, gen.params,
                     gen.calls, ir.frame, in_place=True)
    insns = alloc.instructions
    aliases = gen.aliases
    if aliases:                 # the instructions are this function's own: in place
        for i in insns:
            ref = i.reference
            if isinstance(ref, str) and ref in aliases:
                i.reference = aliases[ref]
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
    return CompiledFunction(ir, insns, alloc.stack)


def link_program(ordered: Sequence[CompiledFunction],
                 stack_hint: str = STACK_HINT) -> List[Instruction]:
    """The linked instructions of a program: ``ordered`` is its functions, the entry
    first. Refuses two functions of one name and call chains over the kernel's stack
    limits (``stack_hint``: what to do, in the front end's words)."""
    names = [f.name for f in ordered]
    if len(set(names)) != len(names):
        raise CompileError("two compiled functions share a name: " + ", ".join(names),
                           ordered[0].ir.loc, "rename one of them")
    check_stack(ordered, stack_hint)
    program: List[Instruction] = [i for f in ordered for i in f.instructions]
    return link(program)
