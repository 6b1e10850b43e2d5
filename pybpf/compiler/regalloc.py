"""Register allocation: virtual registers -> r1-r4 and r6-r9, spilling to the stack.

Linear scan over live intervals (first to last mention in the instruction order; the
intervals of locals that meet a loop are stretched over the whole loop, as a value may
flow around the back edge). An interval that spans a call (from the first argument
move on) or holds a parameter gets a callee-saved register (r6-r9); the others prefer
r1-r4. When none is free, the interval that ends last is spilled: for its whole life it
lives in an 8-byte stack slot below r10, and each mention becomes a load into, or a store
from, a scratch register: r0 for the ``dst`` field and r5 for the ``src`` field (neither
is ever allocated; both are only live inside one instruction's reload/store).
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Dict, List, Optional, Sequence, Set, Tuple

from ..asm.instruction import Instruction, make_instruction
from ..asm.opcodes import AluOp, Class, JmpOp, Mode, Size, Source
from .codegen import VREG_BASE

__all__ = ["allocate", "Allocation"]

_CALLER = (1, 2, 3, 4)
_MOV_X = AluOp.MOV | Source.X | Class.ALU64
_LOAD_DW = Mode.MEM | Size.DW | Class.LDX          # spill reload
_STORE_DW = Mode.MEM | Size.DW | Class.STX         # spill store
_CALLEE = (6, 7, 8, 9)
_ALL = _CALLER + _CALLEE
# register masks (bit r for register r); _CALLER + _CALLEE and _CALLEE are in ascending
# order, so the first free register of either is the lowest bit of the free mask
_ALL_FREE = sum(1 << r for r in _ALL)
_CALLEE_MASK = sum(1 << r for r in _CALLEE)
_SCRATCH_DST, _SCRATCH_SRC = 0, 5


class Allocation:
    """The result: ``instructions`` on physical registers, the register or stack slot of
    each virtual register (``where``), and the ``stack`` bytes used for spills."""

    def __init__(self, instructions: List[Instruction], where: Optional[Dict[int, str]],
                 stack: int) -> None:
        self.instructions = instructions
        self._where = where
        self.stack = stack
        self._made: Optional[Tuple[Dict[int, int], Dict[int, int], Dict[int, int]]] = None

    @property
    def where(self) -> Dict[int, str]:
        """The register (``r6``) or stack slot (``[r10-8]``) of each virtual register by
        number, in the order they are first mentioned (made when first asked for)."""
        if self._where is None:
            assert self._made is not None
            start, assigned, spilled = self._made
            self._where = {r - VREG_BASE: (f"r{assigned[r]}" if r in assigned
                                           else f"[r10{spilled[r]}]") for r in start}
        return self._where


def _uses(ins: Instruction) -> Tuple[bool, bool, bool]:
    """(reads dst, writes dst, reads src) for an instruction."""
    found = _USES.get(ins.opcode)
    if found is None:
        found = _USES[ins.opcode] = _uses_of(ins.opcode)
    return found


#: :func:`_uses` by opcode, filled as opcodes are met (the allocator and the peephole
#: pass ask for every instruction, several times)
_USES: Dict[int, Tuple[bool, bool, bool]] = {}


def _uses_of(op: int) -> Tuple[bool, bool, bool]:
    cls = op & 0x07
    if cls in (Class.ALU, Class.ALU64):
        code = op & 0xF0
        x = bool(op & Source.X) and code not in (AluOp.NEG, AluOp.END)
        if code == AluOp.MOV:
            return False, True, x
        return True, True, x
    if cls in (Class.JMP, Class.JMP32):
        code = op & 0xF0
        if code in (JmpOp.CALL, JmpOp.EXIT, JmpOp.JA):
            return False, False, False
        return True, False, bool(op & Source.X)
    if cls == Class.LDX:
        return False, True, True
    if cls == Class.STX:
        return True, False, True
    if cls == Class.ST:
        return True, False, False
    if op == 0x18:
        return False, True, False
    return False, False, False


def allocate(instructions: Sequence[Instruction], loops: Sequence[Tuple[int, int]] = (),
             locals_: Set[int] = frozenset(), params: Sequence[int] = (),
             calls: Optional[Sequence[int]] = None, frame: int = 0,
             in_place: bool = False) -> Allocation:
    """Allocate the virtual registers of one function (see the module docstring).
    ``calls``: the index of the first argument set-up instruction of each call (found
    by looking back from each call when not given); ``frame``: bytes below r10 already
    used by the function's own stack objects (spill slots go below them);
    ``in_place``: the instructions are the caller's to give away (nobody else holds
    them), so an instruction that only changes registers or label is changed in place
    instead of copied."""
    start: Dict[int, int] = {}
    end: Dict[int, int] = {}
    for i, ins in enumerate(instructions):
        reg = ins.dst
        if reg >= VREG_BASE:
            if reg not in start:
                start[reg] = i
            end[reg] = i
        reg = ins.src
        if reg >= VREG_BASE:
            if reg not in start:
                start[reg] = i
            end[reg] = i
    # values of locals flow around loops
    if loops:
        held = [reg for reg in start if reg in locals_]
        for _ in range(2):
            for lo, hi in loops:
                for reg in held:
                    if start[reg] <= hi and end[reg] >= lo:
                        start[reg] = min(start[reg], lo)
                        end[reg] = max(end[reg], hi)
    # call points: from the first argument move to the call
    call_points: List[int] = list(calls) if calls is not None else []
    for i, ins in enumerate(instructions if calls is None else ()):
        if ins.opcode == 0x85:
            q = i
            while q > 0 and instructions[q - 1].opcode & 0x07 in (Class.ALU64, Class.ALU, Class.LDX) \
                    and 1 <= instructions[q - 1].dst <= 5 and instructions[q - 1].opcode & 0xF0 in (AluOp.MOV, 0x60):
                q -= 1
            call_points.append(q)
    # an interval crosses a call when a call point q has start < q <= end
    points = sorted(call_points)
    npoints = len(points)
    crossing = set()
    for r, first in start.items():
        if r in params:
            crossing.add(r)
            continue
        k = bisect_right(points, first)
        if k < npoints and points[k] <= end[r]:
            crossing.add(r)
    order = sorted(start, key=lambda r: (start[r], r))
    assigned: Dict[int, int] = {}
    spilled: Dict[int, int] = {}
    active: List[int] = []
    free = _ALL_FREE                # the free registers, as a bit mask

    def spill(reg: int) -> None:
        spilled[reg] = -frame - 8 * (len(spilled) + 1)

    for reg in order:
        first = start[reg]
        if active:
            for other in [o for o in active if end[o] < first]:
                active.remove(other)
                free |= 1 << assigned[other]
        if reg in crossing:
            allowed, usable = _CALLEE, free & _CALLEE_MASK
        else:
            allowed, usable = _ALL, free
        if usable:                  # the first free register in ``allowed``'s order
            low = usable & -usable
            free ^= low
            assigned[reg] = low.bit_length() - 1
            active.append(reg)
            continue
        victims = [o for o in active if assigned[o] in allowed]
        victim = max(victims, key=lambda o: end[o], default=None)
        if victim is not None and end[victim] > end[reg]:
            assigned[reg] = assigned.pop(victim)
            active.remove(victim)
            active.append(reg)
            spill(victim)
        else:
            spill(reg)

    # each register's number after allocation (-1: spilled), by its number before
    top = max(start, default=VREG_BASE - 1) + 1
    phys = list(range(VREG_BASE)) + [-1] * (top - VREG_BASE)
    for reg, p in assigned.items():
        phys[reg] = p

    # rewrite on physical registers; a self-move (``rN = rN``) is dropped and its label
    # goes to the next instruction (an alias when that one has a label of its own)
    out: List[Instruction] = []
    append = out.append
    carry: Optional[str] = None
    aliases: Dict[str, str] = {}
    for ins in instructions:
        dst, src = phys[ins.dst], phys[ins.src]
        if dst < 0 or src < 0:
            carry = _spill_code(ins, assigned, spilled, carry, aliases, out)
            continue
        label = ins.label
        if dst == src and ins.opcode == _MOV_X:     # never with spill code (r0, r5)
            if label is not None:
                if carry is None:
                    carry = label
                else:
                    aliases[label] = carry
            continue
        if carry is not None:
            if label is not None:
                aliases[label] = carry
            label, carry = carry, None
        if dst == ins.dst and src == ins.src and label == ins.label:
            append(ins)                             # on physical registers already
        elif in_place:
            ins.dst, ins.src, ins.label = dst, src, label
            append(ins)
        else:
            append(make_instruction(ins.opcode, dst, src, ins.off, ins.imm, label,
                                    ins.reference, ins.source))
    if carry is not None:
        out.append(Instruction(JmpOp.EXIT | Class.JMP, label=carry))
    cleaned = out
    if aliases:
        cleaned = [i.replace(reference=aliases.get(i.reference, i.reference))
                   if isinstance(i.reference, str) else i for i in cleaned]
    done = Allocation(cleaned, None, frame + 8 * len(spilled))
    done._made = (start, assigned, spilled)
    return done


def _spill_code(ins: Instruction, assigned: Dict[int, int], spilled: Dict[int, int],
                carry: Optional[str], aliases: Dict[str, str],
                out: List[Instruction]) -> Optional[str]:
    """Append ``ins`` rewritten with a spilled register (or two) to ``out``: its reloads
    before it, its store after it, the label (or ``carry``, the label of a dropped
    self-move before it) on the first; returns the label still to carry."""
    dst, src = ins.dst, ins.src
    before: List[Instruction] = []
    after: List[Instruction] = []
    if src >= VREG_BASE:
        if src in spilled:
            before.append(Instruction(_LOAD_DW, _SCRATCH_SRC, 10,
                                      spilled[src], source=ins.source))
            src = _SCRATCH_SRC
        else:
            src = assigned[src]
    if dst >= VREG_BASE:
        if dst in spilled:
            rd, wd, _ = _uses(ins)
            if rd:
                before.append(Instruction(_LOAD_DW, _SCRATCH_DST,
                                          10, spilled[dst], source=ins.source))
            if wd:
                after.append(Instruction(_STORE_DW, 10,
                                         _SCRATCH_DST, spilled[dst], source=ins.source))
            dst = _SCRATCH_DST
        else:
            dst = assigned[dst]
    label = ins.label
    if ins.opcode == _MOV_X and dst == src:
        # the move itself goes; its reload (``r5 = %spilled``: the value into r5) or its
        # store (``%spilled = r0``: r0 to the slot) is the whole move, and stays
        extra = before + after
        if not extra:
            if label is not None:
                if carry is None:
                    carry = label
                else:
                    aliases[label] = carry
            return carry
        if carry is not None:
            if label is not None:
                aliases[label] = carry
            label = carry
        extra[0].label = label
        out.extend(extra)
        return None
    if carry is not None:
        if label is not None:
            aliases[label] = carry
        label = carry
    # the spill loads and stores are fresh and unlabelled: the label goes on the first
    new = Instruction(ins.opcode, dst, src, ins.off, ins.imm, label=label,
                      reference=ins.reference, source=ins.source)
    if before:
        new.label = None
        before[0].label = label
        out.extend(before)
    out.append(new)
    if after:
        out.extend(after)
    return None
