"""The shared back end's fast paths equal the long way: the clean-up pass
(pybpf/compiler/peephole.py), which keeps each instruction's facts beside it instead of
looking them up on every sweep and rebuilds a list only when a sweep changed something,
is checked against a plain transcription of the pass as it was (liveness recomputed from
scratch for every sweep), on random instruction lists with labels, calls and jumps
both ways."""

from __future__ import annotations

import random
from typing import Dict, List, Optional, Tuple

import pytest

from pybpf.asm import Instruction
from pybpf.asm.opcodes import AluOp, Class, JmpOp, Mode, Size, Source
from pybpf.compiler import peephole
from pybpf.compiler.peephole import fold_moves
from pybpf.compiler.regalloc import _uses

_MOV_X = AluOp.MOV | Source.X | Class.ALU64
_MOV_K = AluOp.MOV | Source.K | Class.ALU64


# -- the long way: the pass as first written ----------------------------------------------

def _ref_facts(ins: Instruction) -> Tuple[int, int, int]:
    flow, gen, keep, _ = peephole._facts_of(ins.opcode, ins.dst, ins.src,
                                            ins.imm if ins.opcode == 0x85 else 0)
    return flow, gen, keep


def _ref_live_out(insns: List[Instruction]) -> List[int]:
    labels = {i.label: n for n, i in enumerate(insns) if i.label}
    count = len(insns)
    succ: List[Tuple[int, ...]] = []
    for n, ins in enumerate(insns):
        flow = _ref_facts(ins)[0]
        if flow == peephole._EXIT:
            succ.append(())
        elif flow == peephole._JA:
            succ.append((labels[ins.reference],))
        elif flow == peephole._BRANCH and isinstance(ins.reference, str):
            succ.append((n + 1, labels[ins.reference]))
        else:
            succ.append((n + 1,))
    live_in = [0] * (count + 1)
    live_out = [0] * count
    changed = True
    while changed:
        changed = False
        for n in range(count - 1, -1, -1):
            _, g, k = _ref_facts(insns[n])
            out = 0
            for m in succ[n]:
                out |= live_in[m]
            new_in = g | (out & k)
            if out != live_out[n] or new_in != live_in[n]:
                live_out[n], live_in[n] = out, new_in
                changed = True
    return live_out


def _ref_pure(op: int) -> bool:
    cls = op & 0x07
    if cls in (Class.ALU, Class.ALU64):
        return True
    return cls == Class.LDX and (op & 0xE0) == 0x60


def _ref_drop_dead(insns: List[Instruction], live: List[int]) -> List[Instruction]:
    out: List[Instruction] = []
    carry = None
    for n, ins in enumerate(insns):
        if _ref_pure(ins.opcode) and not live[n] >> ins.dst & 1 and ins.dst != 10 and \
                n + 1 < len(insns):
            if ins.label is not None:
                if carry is not None:
                    return insns
                carry = ins.label
            continue
        if carry is not None:
            if ins.label is not None:
                return insns
            ins = ins.replace(label=carry)
            carry = None
        out.append(ins)
    return out if carry is None else insns


def _ref_rewrite_pair(a: Instruction, b: Instruction,
                      dead_after: bool) -> Optional[List[Instruction]]:
    if b.label or not dead_after or b.opcode == 0x85:
        return None
    if a.opcode == _MOV_K and b.opcode == _MOV_X and b.src == a.dst:
        return [a.replace(dst=b.dst)]
    if a.opcode != _MOV_X or a.dst == a.src or a.src == 10:
        return None
    rd, wd, rs = _uses(b)
    if wd and b.dst == a.dst:
        return None
    uses_src = rs and b.src == a.dst
    uses_dst = rd and b.dst == a.dst
    if not (uses_src or uses_dst) or (uses_dst and b.opcode & 0x07 in (Class.ALU, Class.ALU64)):
        return None
    new = b.replace(src=a.src if uses_src else b.src, dst=a.src if uses_dst else b.dst)
    if new.opcode == _MOV_X and new.dst == new.src:
        return None if a.label else []
    return [new.replace(label=a.label) if a.label else new]


def _ref_forward_copies(insns: List[Instruction], live: List[int]) -> List[Instruction]:
    out: List[Instruction] = []
    n = 0
    while n < len(insns):
        if n + 1 < len(insns):
            a, b = insns[n], insns[n + 1]
            new = _ref_rewrite_pair(a, b, not live[n + 1] >> a.dst & 1) \
                if a.opcode in (_MOV_X, _MOV_K) else None
            if new is not None:
                out.extend(new)
                n += 2
                continue
        out.append(insns[n])
        n += 1
    return out


def reference_fold_moves(insns: List[Instruction]) -> List[Instruction]:
    """fold_moves the long way: every sweep from scratch."""
    insns = peephole.drop_jumps_to_next(insns)
    while True:
        live = _ref_live_out(insns)
        pruned = _ref_drop_dead(insns, live)
        if len(pruned) != len(insns):
            insns = pruned
            continue
        forwarded = _ref_forward_copies(insns, live)
        if len(forwarded) == len(insns):
            return insns
        insns = forwarded


# -- random functions ---------------------------------------------------------------------

_ALU_OPS = [AluOp.ADD, AluOp.SUB, AluOp.MUL, AluOp.AND, AluOp.OR, AluOp.LSH, AluOp.NEG]


def random_function(rng: random.Random, size: int, loops: bool) -> List[Instruction]:
    """A random instruction list on physical registers: moves (most of them, so that
    pairs fold), ALU operations, loads, stores, helper calls, jumps forward (and back
    when ``loops``), labels (sometimes two in a row of dead writes), an exit at the end."""
    labels = [f"L{i}" for i in range(size // 4 + 1)]
    regs = list(range(10))
    out: List[Instruction] = []
    for n in range(size):
        kind = rng.random()
        d, s = rng.choice(regs), rng.choice(regs + [10])
        if kind < 0.35:
            ins = Instruction(_MOV_X, d, s)
        elif kind < 0.5:
            ins = Instruction(_MOV_K, d, imm=rng.randrange(-5, 5))
        elif kind < 0.6:
            op = rng.choice(_ALU_OPS)
            ins = Instruction(op | rng.choice([Source.X, Source.K]) | Class.ALU64, d, s,
                              imm=rng.randrange(8))
        elif kind < 0.68:
            ins = Instruction(Mode.MEM | Size.DW | Class.LDX, d, s, -8 * rng.randrange(1, 4))
        elif kind < 0.76:
            ins = Instruction(Mode.MEM | Size.DW | Class.STX, 10, s % 10, -8 * rng.randrange(1, 4))
        elif kind < 0.82:
            ins = Instruction(JmpOp.CALL | Class.JMP, imm=rng.choice([1, 2, 5, 6, 14, 35]))
        elif kind < 0.9:
            ins = Instruction(JmpOp.JEQ | Source.K | Class.JMP, d, imm=1,
                              reference=rng.choice(labels))
        elif kind < 0.95:
            ins = Instruction(JmpOp.JA | Class.JMP, reference=rng.choice(labels))
        else:
            ins = Instruction(JmpOp.EXIT | Class.JMP)
        out.append(ins)
    # place each label once, after each of its jumps unless loops are wanted
    for name in labels:
        refs = [n for n, i in enumerate(out) if i.reference == name]
        lo = 0 if loops or not refs else max(refs) + 1
        spots = [n for n in range(lo, len(out)) if out[n].label is None]
        if spots:
            n = rng.choice(spots)
            out[n] = out[n].replace(label=name)
        else:
            out.append(Instruction(JmpOp.EXIT | Class.JMP, label=name))
    out.append(Instruction(JmpOp.EXIT | Class.JMP))
    return out


def _text(insns: List[Instruction]) -> List[str]:
    return [repr(i) for i in insns]


@pytest.mark.parametrize("loops", [False, True])
def test_fold_moves_equals_the_long_way_on_random_functions(loops):
    rng = random.Random(1234 + loops)
    changed = 0
    for _ in range(400):
        body = random_function(rng, rng.randrange(2, 60), loops)
        got = fold_moves(list(body))
        want = reference_fold_moves(list(body))
        assert _text(got) == _text(want)
        changed += len(got) != len(body)
    assert changed > 100                    # the pass did rewrite most of them


def test_the_sweeps_keep_facts_beside_the_instructions(monkeypatch):
    """The shortcut is taken: one facts list is built for the whole pass (and patched as
    the list shrinks), not one per sweep; the result equals the long way."""
    built = []
    real = peephole._facts_list
    monkeypatch.setattr(peephole, "_facts_list", lambda insns: built.append(1) or real(insns))
    rng = random.Random(7)
    for _ in range(50):
        body = random_function(rng, 40, False)
        built.clear()
        assert _text(fold_moves(list(body))) == _text(reference_fold_moves(list(body)))
        assert built == [1]
