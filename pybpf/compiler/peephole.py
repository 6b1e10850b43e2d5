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
_ALU_CLASSES = (Class.ALU, Class.ALU64)


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


def _facts_of(op: int, dst: int, src: int, imm: int) -> Tuple[int, int, int, int, bool]:
    """(control flow kind, registers read, complement of the registers written, the bit
    of the register a pure write writes, whether it is a move) of an instruction: the
    fourth is 0 for an instruction with other effects and for a write of r10 (see
    :func:`_pure_write_of`), the last is true for the moves :func:`forward_copies`
    starts a pair with; ``imm`` matters only for a call (0 is passed for the others)."""
    if op == 0x85:
        return _flow_of(op), _mask(_call_reads_of(src, imm)), ~_CALL_KILLS, 0, False
    if op == JmpOp.EXIT | Class.JMP:
        return _flow_of(op), 1, ~0, 0, False
    rd, wd, rs = _uses(Instruction(op))
    pure = 1 << dst if _pure_write_of(op) and dst != 10 else 0
    return (_flow_of(op), (1 << dst if rd else 0) | (1 << src if rs else 0),
            ~(1 << dst) if wd else ~0, pure, op in (_MOV_X, _MOV_K))


#: :func:`_facts_of` by (opcode, dst, src, imm of a call), filled as they are met
_FACTS: Dict[Tuple[int, int, int, int], Tuple[int, int, int, int, bool]] = {}

_Facts = Tuple[int, int, int, int, bool]


def _facts(ins: Instruction) -> _Facts:
    """:func:`_facts_of` the instruction, through :data:`_FACTS`."""
    op = ins.opcode
    key = (op, ins.dst, ins.src, ins.imm if op == 0x85 else 0)
    found = _FACTS.get(key)
    if found is None:
        found = _FACTS[key] = _facts_of(*key)
    return found


def _facts_list(insns: List[Instruction]) -> List[_Facts]:
    """:func:`_facts` of each instruction."""
    table = _FACTS
    out: List[_Facts] = []
    append = out.append
    for ins in insns:
        op = ins.opcode
        key = (op, ins.dst, ins.src, ins.imm if op == 0x85 else 0)
        found = table.get(key)
        if found is None:
            found = table[key] = _facts_of(*key)
        append(found)
    return out


def _live_out(insns: List[Instruction], facts: Optional[List[_Facts]] = None) -> List[int]:
    """The registers live after each instruction, as bit masks (bit ``r`` for register
    ``r``: much faster than Python sets), by backward data flow: one backward sweep
    when every jump goes forward (each successor is done before its predecessors),
    else to a fixpoint (:func:`_live_out_loops`). ``facts``: :func:`_facts` of each
    instruction, when known."""
    return _sweep(insns, _facts_list(insns) if facts is None else facts)[0]


def _sweep(insns: List[Instruction], facts: List[_Facts]) -> Tuple[List[int], List[int],
                                                                   List[int]]:
    """:func:`_live_out`, and on the way the indices of the dead pure writes but the
    last instruction (what :func:`drop_dead` drops) and of the moves (where
    :func:`forward_copies` looks), both from the end."""
    labels: Dict[str, int] = {i.label: n for n, i in enumerate(insns) if i.label}
    count = len(insns)
    live_in = [0] * (count + 1)             # live_in[count]: nothing after the end
    live_out = [0] * count
    dead: List[int] = []
    moves: List[int] = []
    after = 0                               # live_in[n + 1]
    for n in range(count - 1, -1, -1):
        flow, g, k, pure, move = facts[n]
        if flow == _NEXT:
            out = after
        elif flow == _EXIT:
            out = 0
        else:
            ref = insns[n].reference
            if flow == _JA or isinstance(ref, str):
                t = labels[ref]
                if t <= n:                  # a loop
                    live_out = _live_out_loops(insns, labels, facts)
                    return live_out, _dead(facts, live_out), _moves(facts)
                out = live_in[t] if flow == _JA else after | live_in[t]
            else:
                out = after
        live_out[n] = out
        after = live_in[n] = g | (out & k)
        if pure and not out & pure:
            dead.append(n)
        if move:
            moves.append(n)
    if dead and dead[0] == count - 1:       # the last instruction stays
        del dead[0]
    return live_out, dead, moves


def _dead(facts: List[_Facts], live: List[int]) -> List[int]:
    """The indices of the pure writes of dead registers but the last instruction."""
    return [n for n in range(len(facts) - 2, -1, -1) if facts[n][3] & ~live[n]]


def _moves(facts: List[_Facts]) -> List[int]:
    """The indices of the moves, from the end."""
    return [n for n in range(len(facts) - 1, -1, -1) if facts[n][4]]


def _live_out_loops(insns: List[Instruction], labels: Dict[str, int],
                    facts: List[_Facts]) -> List[int]:
    """:func:`_live_out` for instructions with a backward jump: to a fixpoint."""
    count = len(insns)
    flows: List[int] = []
    gen: List[int] = []
    keep: List[int] = []                    # the complement of what the instruction kills
    target: List[int] = []                  # the jump's label index, or -1
    for n, ins in enumerate(insns):
        flow, g, k, _, _ = facts[n]
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


def _pure_write_of(op: int) -> bool:
    """True for an opcode whose only effect is writing its dst register."""
    cls = op & 0x07
    if cls in (Class.ALU, Class.ALU64):
        return True
    return cls == Class.LDX and (op & 0xE0) == 0x60          # plain memory loads


def drop_dead(insns: List[Instruction], live: List[int]) -> List[Instruction]:
    """Drop pure writes of registers nobody reads afterwards (a label moves on)."""
    facts = _facts_list(insns)
    found = _drop_dead(insns, facts, _dead(facts, live))
    return insns if found is None else found[0]


def _drop_dead(insns: List[Instruction], facts: List[_Facts],
               dead: List[int]) -> Optional[Tuple[List[Instruction], List[_Facts]]]:
    """:func:`drop_dead` on instructions whose :func:`_facts` are known, given the
    indices of the ``dead`` writes (:func:`_dead`): the shorter instructions and their
    facts, or None when nothing is dropped (also when two labels would meet: then the
    instructions are kept as they are)."""
    if not dead:
        return None
    drop = set(dead)
    out: List[Instruction] = []
    kept: List[_Facts] = []
    carry = None
    for n, ins in enumerate(insns):
        if n in drop:
            if ins.label is not None:
                if carry is not None:
                    return None                 # two labels in a row: keep it simple
                carry = ins.label
            continue
        if carry is not None:
            if ins.label is not None:
                return None
            ins = ins.replace(label=carry)
            carry = None
        out.append(ins)
        kept.append(facts[n])
    return None if carry is not None else (out, kept)


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
    if not (uses_src or uses_dst) or (uses_dst and b.opcode & 0x07 in _ALU_CLASSES):
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
    facts = _facts_list(insns)
    found = _forward_copies(insns, facts, live, _moves(facts))
    return insns if found is None else found[0]


def _forward_copies(insns: List[Instruction], facts: List[_Facts], live: List[int],
                    moves: List[int], track: bool = False
                    ) -> Optional[Tuple[List[Instruction], List[_Facts], Optional[List[int]]]]:
    """:func:`forward_copies` on instructions whose :func:`_facts` are known, given the
    indices of the ``moves`` from the end (:func:`_moves`): the new instructions and
    their facts, or None when no pair is rewritten. With ``track``, also the registers
    live after each new instruction, when the rewrites leave them as they were (see
    :func:`fold_moves`), else None."""
    rewrites: List[Tuple[int, List[Instruction]]] = []
    free = 0                                # the first index not in a rewritten pair
    last_pair = len(insns) - 1              # a pair starts before the last instruction
    for n in reversed(moves):
        if n >= free and n < last_pair:
            a = insns[n]
            new = _rewrite_pair(a, insns[n + 1], not live[n + 1] >> a.dst & 1)
            if new is not None:
                rewrites.append((n, new))
                free = n + 2
    if not rewrites:
        return None
    out: List[Instruction] = []
    kept: List[_Facts] = []
    after: Optional[List[int]] = [] if track else None
    last = 0
    for n, new in rewrites:
        out.extend(insns[last:n])
        kept.extend(facts[last:n])
        out.extend(new)
        kept.extend(_facts(i) for i in new)
        if after is not None:
            if new:
                after.extend(live[last:n])
                after.append(live[n + 1])
            else:                           # a pair gone: what it read is no more read
                after = None
        last = n + 2
    out.extend(insns[last:])
    kept.extend(facts[last:])
    if after is not None:
        after.extend(live[last:])
    return out, kept, after


def drop_jumps_to_next(insns: List[Instruction]) -> List[Instruction]:
    """Drop each jump, conditional or not, whose target is the instruction right after
    it (a predicate with an empty body compiles to one): it changes nothing, since a
    conditional jump only compares. ``may_goto`` (a counted jump) stays, and so does a
    labelled jump (something jumps to it)."""
    out: List[Instruction] = []
    last = len(insns) - 1
    for n, ins in enumerate(insns):
        ref = ins.reference
        if ref is not None and n < last and ins.label is None and isinstance(ref, str) \
                and ref == insns[n + 1].label \
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
    docstring), until nothing changes; a jump to the next instruction is dropped first.

    A sweep of :func:`forward_copies` that replaces each pair it rewrites by one
    instruction leaves the registers live after every other instruction as they were
    (the pair's first register is dead after it, and the one instruction reads what the
    pair read from outside it), and the new instruction has the pair's second one's: then
    liveness is carried over instead of computed again. A pair that goes altogether
    (``r1 = r0; r0 = r1``) no longer reads its register: liveness is computed again."""
    insns = drop_jumps_to_next(insns)
    facts = _facts_list(insns)
    live: Optional[List[int]] = None
    while True:
        if live is None:
            live, dead, moves = _sweep(insns, facts)
        else:
            dead, moves = _dead(facts, live), _moves(facts)
        pruned = _drop_dead(insns, facts, dead)
        if pruned is not None:
            insns, facts = pruned
            live = None
            continue
        forwarded = _forward_copies(insns, facts, live, moves, track=True)
        if forwarded is None:
            return insns
        insns, facts, live = forwarded
