"""A small clean-up pass on allocated instructions of one function.

It drops instructions that only write a register nobody reads afterwards (the result
of a helper call that is not used), and folds a move into the move that copies its
result when the intermediate register is dead afterwards (``r1 = r0; r0 = r1`` -> nothing, ``r2 = 5; r1 = r2`` -> ``r1 = 5``),
using a backward liveness analysis over the function's control flow on physical
registers (calls read r1-r5 and clobber r0-r5; ``exit`` reads r0).
"""

from __future__ import annotations

from typing import Dict, List, Optional, Set, Tuple

from ..asm.instruction import Instruction
from ..asm.opcodes import AluOp, Class, JmpOp, Source
from .regalloc import _uses

__all__ = ["fold_moves", "drop_jumps_to_next"]

_MOV_X = AluOp.MOV | Source.X | Class.ALU64
_MOV_K = AluOp.MOV | Source.K | Class.ALU64


def _call_reads_of(src: int, imm: int) -> Set[int]:
    """The argument registers a call reads: a helper's parameter count (from the helper
    table), all of r1-r5 for other calls."""
    if src == 0:
        try:
            from ..asm.helpers import helper
            return set(range(1, helper(imm).argc + 1))
        except (KeyError, LookupError, ValueError):
            pass
    return {1, 2, 3, 4, 5}


def _mask(regs: Set[int]) -> int:
    out = 0
    for r in regs:
        out |= 1 << r
    return out


_CALL_KILLS = _mask({0, 1, 2, 3, 4, 5})

#: control flow kinds of an opcode, for :func:`_live_out`
_EXIT, _JA, _BRANCH, _NEXT = range(4)


def _flow_of(op: int) -> int:
    code, cls = op & 0xF0, op & 0x07
    if cls == Class.JMP and code == JmpOp.EXIT:
        return _EXIT
    if cls == Class.JMP and code == JmpOp.JA:
        return _JA
    if cls in (Class.JMP, Class.JMP32) and code not in (JmpOp.CALL, JmpOp.EXIT):
        return _BRANCH
    return _NEXT


def _facts_of(op: int, dst: int, src: int, imm: int) -> Tuple[int, int, int]:
    """(control flow kind, registers read, complement of the registers written) of an
    instruction; ``imm`` matters only for a call (0 is passed for the others)."""
    if op == 0x85:
        return _flow_of(op), _mask(_call_reads_of(src, imm)), ~_CALL_KILLS
    if op == JmpOp.EXIT | Class.JMP:
        return _flow_of(op), 1, ~0
    rd, wd, rs = _uses(Instruction(op))
    return (_flow_of(op), (1 << dst if rd else 0) | (1 << src if rs else 0),
            ~(1 << dst) if wd else ~0)


#: :func:`_facts_of` by (opcode, dst, src, imm of a call), filled as they are met
_FACTS: Dict[Tuple[int, int, int, int], Tuple[int, int, int]] = {}


def _facts(ins: Instruction) -> Tuple[int, int, int]:
    """:func:`_facts_of` the instruction, through :data:`_FACTS`."""
    op = ins.opcode
    key = (op, ins.dst, ins.src, ins.imm if op == 0x85 else 0)
    found = _FACTS.get(key)
    if found is None:
        found = _FACTS[key] = _facts_of(*key)
    return found


def _live_out(insns: List[Instruction]) -> List[int]:
    """The registers live after each instruction, as bit masks (bit ``r`` for register
    ``r``: much faster than Python sets), by backward data flow: one backward sweep
    when every jump goes forward (each successor is done before its predecessors),
    else to a fixpoint (:func:`_live_out_loops`)."""
    labels: Dict[str, int] = {i.label: n for n, i in enumerate(insns) if i.label}
    count = len(insns)
    live_in = [0] * (count + 1)             # live_in[count]: nothing after the end
    live_out = [0] * count
    for n in range(count - 1, -1, -1):
        ins = insns[n]
        flow, g, k = _facts(ins)
        if flow == _NEXT:
            out = live_in[n + 1]
        elif flow == _EXIT:
            out = 0
        elif flow == _JA or isinstance(ins.reference, str):
            t = labels[ins.reference]
            if t <= n:                      # a loop
                return _live_out_loops(insns, labels)
            out = live_in[t] if flow == _JA else live_in[n + 1] | live_in[t]
        else:
            out = live_in[n + 1]
        live_out[n] = out
        live_in[n] = g | (out & k)
    return live_out


def _live_out_loops(insns: List[Instruction], labels: Dict[str, int]) -> List[int]:
    """:func:`_live_out` for instructions with a backward jump: to a fixpoint."""
    count = len(insns)
    flows: List[int] = []
    gen: List[int] = []
    keep: List[int] = []                    # the complement of what the instruction kills
    target: List[int] = []                  # the jump's label index, or -1
    for n, ins in enumerate(insns):
        flow, g, k = _facts(ins)
        flows.append(flow)
        gen.append(g)
        keep.append(k)
        if flow == _JA or (flow == _BRANCH and isinstance(ins.reference, str)):
            target.append(labels[ins.reference])
        else:
            target.append(-1)
    live_in = [0] * (count + 1)             # live_in[count]: nothing after the end
    live_out = [0] * count
    succ: List[Tuple[int, ...]] = []
    for n in range(count):
        flow, t = flows[n], target[n]
        if flow == _EXIT:
            succ.append(())
        elif flow == _JA:
            succ.append((t,))
        else:
            succ.append((n + 1, t) if t >= 0 else (n + 1,))
    changed = True
    while changed:
        changed = False
        for n in range(count - 1, -1, -1):
            out = 0
            for m in succ[n]:
                out |= live_in[m]
            new_in = gen[n] | (out & keep[n])
            if out != live_out[n] or new_in != live_in[n]:
                live_out[n], live_in[n] = out, new_in
                changed = True
    return live_out


def _pure_write(ins: Instruction) -> bool:
    """True for an instruction whose only effect is writing its dst register."""
    found = _PURE.get(ins.opcode)
    if found is None:
        found = _PURE[ins.opcode] = _pure_write_of(ins.opcode)
    return found


_PURE: Dict[int, bool] = {}


def _pure_write_of(op: int) -> bool:
    cls = op & 0x07
    if cls in (Class.ALU, Class.ALU64):
        return True
    return cls == Class.LDX and (op & 0xE0) == 0x60          # plain memory loads


def drop_dead(insns: List[Instruction], live: List[int]) -> List[Instruction]:
    """Drop pure writes of registers nobody reads afterwards (a label moves on)."""
    out: List[Instruction] = []
    carry = None
    pure = _PURE
    for n, ins in enumerate(insns):
        found = pure.get(ins.opcode)
        if found is None:
            found = _pure_write(ins)
        if found and not live[n] >> ins.dst & 1 and ins.dst != 10 and \
                n + 1 < len(insns):
            if ins.label is not None:
                if carry is not None:
                    return insns                # two labels in a row: keep it simple
                carry = ins.label
            continue
        if carry is not None:
            if ins.label is not None:
                return insns
            ins = ins.replace(label=carry)
            carry = None
        out.append(ins)
    return out if carry is None else insns


def _rewrite_pair(a: Instruction, b: Instruction, dead_after: bool) -> Optional[List[Instruction]]:
    """The replacement of the pair (a, b), or None to keep it. ``dead_after``: a's
    destination is not read after b."""
    if b.label or not dead_after or b.opcode == 0x85:
        return None
    if a.opcode == _MOV_K and b.opcode == _MOV_X and b.src == a.dst:
        return [a.replace(dst=b.dst)]                  # r2 = 5; r1 = r2 -> r1 = 5
    if a.opcode != _MOV_X or a.dst == a.src or a.src == 10:
        return None
    rd, wd, rs = _uses(b)
    if wd and b.dst == a.dst:
        return None
    uses_src = rs and b.src == a.dst
    uses_dst = rd and b.dst == a.dst
    if not (uses_src or uses_dst) or (uses_dst and b.opcode & 0x07 in (Class.ALU, Class.ALU64)):
        return None                                    # an ALU op writes its dst
    new = b.replace(src=a.src if uses_src else b.src, dst=a.src if uses_dst else b.dst)
    if new.opcode == _MOV_X and new.dst == new.src:
        return None if a.label else []                 # r1 = r0; r0 = r1: nothing to do
    return [new.replace(label=a.label) if a.label else new]


def forward_copies(insns: List[Instruction], live: List[int]) -> List[Instruction]:
    """One sweep over move pairs: ``rA = rB`` followed by an instruction that only reads
    rA, with rA dead after it, reads rB there instead (``r1 = r0; *(u64 *)(r10 - 8) = r1``
    -> ``*(u64 *)(r10 - 8) = r0``); ``rA = 5; rB = rA`` -> ``rB = 5``. Rewrites do not
    change liveness after the pair, so one sweep can make several."""
    out: List[Instruction] = []
    n = 0
    while n < len(insns):
        if n + 1 < len(insns):
            a, b = insns[n], insns[n + 1]
            new = _rewrite_pair(a, b, not live[n + 1] >> a.dst & 1) \
                if a.opcode in (_MOV_X, _MOV_K) else None
            if new is not None:
                out.extend(new)
                n += 2
                continue
        out.append(insns[n])
        n += 1
    return out


def drop_jumps_to_next(insns: List[Instruction]) -> List[Instruction]:
    """Drop each jump, conditional or not, whose target is the instruction right after
    it (a predicate with an empty body compiles to one): it changes nothing, since a
    conditional jump only compares. ``may_goto`` (a counted jump) stays, and so does a
    labelled jump (something jumps to it)."""
    out: List[Instruction] = []
    last = len(insns) - 1
    for n, ins in enumerate(insns):
        if n < last and ins.label is None and isinstance(ins.reference, str) \
                and ins.reference == insns[n + 1].label \
                and _flow(ins.opcode) in (_JA, _BRANCH) and ins.opcode & 0xF0 != JmpOp.JCOND:
            continue
        out.append(ins)
    return out


def _flow(op: int) -> int:
    found = _FLOW.get(op)
    if found is None:
        found = _FLOW[op] = _flow_of(op)
    return found


#: :func:`_flow_of` by opcode, filled as opcodes are met
_FLOW: Dict[int, int] = {}


def fold_moves(insns: List[Instruction]) -> List[Instruction]:
    """The instructions with dead writes dropped and move pairs folded (see the module
    docstring), until nothing changes; a jump to the next instruction is dropped first."""
    insns = drop_jumps_to_next(insns)
    while True:
        live = _live_out(insns)
        pruned = drop_dead(insns, live)
        if len(pruned) != len(insns):
            insns = pruned
            continue
        forwarded = forward_copies(insns, live)
        if len(forwarded) == len(insns):
            return insns
        insns = forwarded
