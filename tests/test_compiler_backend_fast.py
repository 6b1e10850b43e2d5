"""The shared back end's fast paths equal the long way, on random functions:

* the clean-up pass (pybpf/compiler/peephole.py), which keeps each instruction's facts
  beside it instead of looking them up on every sweep and rebuilds a list only when a
  sweep changed something, against a plain transcription of the pass as it was
  (liveness recomputed from scratch for every sweep), on instruction lists with labels,
  calls and jumps both ways;
* the register allocator (pybpf/compiler/regalloc.py), which maps registers through a
  list, rewrites in place when asked and keeps spill code off the common path, against
  the allocator as it was, on virtual-register code with calls, loops and spills."""

from __future__ import annotations

import random
from typing import Dict, List, Optional, Tuple

import pytest

from pybpf.asm import Instruction
from pybpf.asm.opcodes import AluOp, Class, JmpOp, Mode, Size, Source
from pybpf.compiler import peephole
from pybpf.compiler.peephole import fold_moves
from pybpf.compiler.codegen import VREG_BASE
from pybpf.compiler.regalloc import (
    _CALLEE, _CALLER, _LOAD_DW, _MOV_X as _RA_MOV_X, _SCRATCH_DST, _SCRATCH_SRC, _STORE_DW,
    Allocation, allocate, _uses,
)
from bisect import bisect_right
from typing import Sequence, Set

_MOV_X = AluOp.MOV | Source.X | Class.ALU64
_MOV_K = AluOp.MOV | Source.K | Class.ALU64


# -- the long way: the pass as first written ----------------------------------------------

def _ref_facts(ins: Instruction) -> Tuple[int, int, int]:
    flow, gen, keep = peephole._facts_of(ins.opcode, ins.dst, ins.src,
                                         ins.imm if ins.opcode == 0x85 else 0)[:3]
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


def reference_fold_moves(insns: List[Instruction], sweeps: Optional[List[int]] = None
                         ) -> List[Instruction]:
    """fold_moves the long way: every sweep from scratch (each liveness computation
    appends to ``sweeps``)."""
    insns = peephole.drop_jumps_to_next(insns)
    while True:
        live = _ref_live_out(insns)
        if sweeps is not None:
            sweeps.append(1)
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
    """The shortcuts are taken: one facts list is built for the whole pass (and patched
    as the list shrinks), not one per sweep; liveness is carried over a sweep that only
    merged pairs after one that found no dead write, so it is computed fewer times than
    the long way does; the result equals the long way."""
    built: List[int] = []
    computed: List[int] = []
    real, real_sweep = peephole._facts_list, peephole._sweep
    monkeypatch.setattr(peephole, "_facts_list", lambda insns: built.append(1) or real(insns))
    monkeypatch.setattr(peephole, "_sweep", lambda *a: computed.append(1) or real_sweep(*a))
    rng = random.Random(7)
    sweeps: List[int] = []
    for loops in (False, True):
        for _ in range(100):
            body = random_function(rng, 40, loops)
            built.clear()
            assert _text(fold_moves(list(body))) == \
                _text(reference_fold_moves(list(body), sweeps))
            assert built == [1]
    assert 0 < len(computed) < len(sweeps) * 0.9


# -- the register allocator, the long way ------------------------------------------------

_MOV_X_RA = _RA_MOV_X


def reference_allocate(instructions: Sequence[Instruction], loops: Sequence[Tuple[int, int]] = (),
             locals_: Set[int] = frozenset(), params: Sequence[int] = (),
             calls: Optional[Sequence[int]] = None, frame: int = 0) -> Allocation:
    """allocate as first written."""
    start: Dict[int, int] = {}
    end: Dict[int, int] = {}
    for i, ins in enumerate(instructions):
        for reg in (ins.dst, ins.src):
            if reg >= VREG_BASE:
                start.setdefault(reg, i)
                end[reg] = i
    # values of locals flow around loops
    for _ in range(2):
        for lo, hi in loops:
            for reg in start:
                if reg in locals_ and start[reg] <= hi and end[reg] >= lo:
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
    crossing = set()
    for r in start:
        if r in params:
            crossing.add(r)
            continue
        k = bisect_right(points, start[r])
        if k < len(points) and points[k] <= end[r]:
            crossing.add(r)
    order = sorted(start, key=lambda r: (start[r], r))
    assigned: Dict[int, int] = {}
    spilled: Dict[int, int] = {}
    active: List[int] = []
    free: List[int] = list(_CALLER + _CALLEE)

    def spill(reg: int) -> None:
        spilled[reg] = -frame - 8 * (len(spilled) + 1)

    for reg in order:
        for other in list(active):
            if end[other] < start[reg]:
                active.remove(other)
                free.append(assigned[other])
        allowed = _CALLEE if reg in crossing else _CALLER + _CALLEE
        choice: Optional[int] = next((p for p in allowed if p in free), None)
        if choice is not None:
            free.remove(choice)
            assigned[reg] = choice
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

    # rewrite on physical registers; a self-move (``rN = rN``) is dropped and its label
    # goes to the next instruction (an alias when that one has a label of its own)
    out: List[Instruction] = []
    carry: Optional[str] = None
    aliases: Dict[str, str] = {}
    for ins in instructions:
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
        if ins.opcode == _MOV_X_RA and dst == src and (before or after):
            # a move between a spilled register and r0 or r5: its reload or store is
            # the move (the allocator as first written dropped them with it)
            if carry is not None:
                if label is not None:
                    aliases[label] = carry
                label, carry = carry, None
            (before + after)[0].label = label
            out.extend(before + after)
            continue
        if ins.opcode == _MOV_X_RA and dst == src:
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
        if dst == ins.dst and src == ins.src and label == ins.label and not before:
            out.append(ins)                         # on physical registers already
            continue
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
    if carry is not None:
        out.append(Instruction(JmpOp.EXIT | Class.JMP, label=carry))
    cleaned = out
    if aliases:
        cleaned = [i.replace(reference=aliases.get(i.reference, i.reference))
                   if isinstance(i.reference, str) else i for i in cleaned]
    where = {r - VREG_BASE: (f"r{assigned[r]}" if r in assigned else f"[r10{spilled[r]}]")
             for r in start}
    return Allocation(cleaned, where, frame + 8 * len(spilled))


def test_a_spilled_register_keeps_a_helper_result_and_feeds_r5():
    """``%v = r0`` with %v spilled stores r0 to %v's slot, and ``r5 = %v`` reloads it
    into r5: neither is a self-move to drop, although the scratch registers of spill
    code are r0 (results) and r5 (sources)."""
    n = 12                                      # more live registers than r1-r4, r6-r9
    vregs = [VREG_BASE + i for i in range(n)]
    insns = [Instruction(_MOV_K, v, imm=i) for i, v in enumerate(vregs)]
    insns.append(Instruction(JmpOp.CALL | Class.JMP, imm=5))
    res = VREG_BASE + n
    insns.append(Instruction(_MOV_X, res, 0))
    insns += [Instruction(_MOV_X, 5, v) for v in vregs]       # each one is read again
    insns.append(Instruction(_MOV_X, 5, res))
    insns.append(Instruction(_MOV_X, 0, 5))
    insns.append(Instruction(JmpOp.EXIT | Class.JMP))
    got = allocate(_copy(insns), [], set(), [], [n], 0)
    where = got.where
    slots = {int(w[4:-1]) for r, w in where.items() if w.startswith("[r10")}
    assert slots, "nothing spilled: the test does not reach spill code"
    text = [repr(i) for i in got.instructions]
    for r, w in where.items():
        if w.startswith("[r10"):
            off = int(w[4:-1])
            # every spilled register is stored once written and reloaded before r5 = it
            assert any(i.opcode == _STORE_DW and i.dst == 10 and i.off == off
                       for i in got.instructions), (r, text)
            assert any(i.opcode == _LOAD_DW and i.dst == 5 and i.off == off
                       for i in got.instructions), (r, text)
    want = reference_allocate(_copy(insns), [], set(), [], [n], 0)
    assert _text(got.instructions) == _text(want.instructions)


def random_vreg_function(rng: random.Random, size: int, nregs: int):
    """Random code on virtual registers (as codegen makes it): moves and ALU operations
    between them, loads and stores through r10, helper calls with argument moves into
    r1-r5 and the result moved out of r0, branches to labels, loops over ranges of it;
    with ``nregs`` above what fits, some registers spill. Returns the instructions,
    loops, locals, params and call points."""
    vregs = [VREG_BASE + i for i in range(nregs)]
    params = [vregs[0]] if rng.random() < 0.5 else []
    out: List[Instruction] = []
    calls: List[int] = []
    labels = [f"L{i}" for i in range(size // 6 + 1)]
    if params:
        out.append(Instruction(_MOV_X, params[0], 1))
    for _ in range(size):
        kind = rng.random()
        d, s = rng.choice(vregs), rng.choice(vregs)
        if kind < 0.3:
            out.append(Instruction(_MOV_X, d, s))
        elif kind < 0.4:
            out.append(Instruction(_MOV_X, d, d))          # a self-move, dropped
        elif kind < 0.5:
            out.append(Instruction(_MOV_K, d, imm=rng.randrange(9)))
        elif kind < 0.6:
            out.append(Instruction(AluOp.ADD | Source.X | Class.ALU64, d, s))
        elif kind < 0.68:
            out.append(Instruction(Mode.MEM | Size.DW | Class.LDX, d, 10, -8))
        elif kind < 0.76:
            out.append(Instruction(Mode.MEM | Size.DW | Class.STX, 10, s, -16))
        elif kind < 0.88:
            calls.append(len(out))
            for arg in range(1, rng.randrange(1, 6) + 1):
                out.append(Instruction(_MOV_X, arg, rng.choice(vregs)))
            out.append(Instruction(JmpOp.CALL | Class.JMP, imm=rng.choice([1, 2, 6, 14])))
            out.append(Instruction(_MOV_X, d, 0))
        else:
            out.append(Instruction(JmpOp.JEQ | Source.K | Class.JMP, d, imm=0,
                                   reference=rng.choice(labels)))
    for name in labels:
        n = rng.randrange(len(out))
        if out[n].label is None:
            out[n].label = name
        else:
            out.append(Instruction(JmpOp.EXIT | Class.JMP, label=name))
    out.append(Instruction(_MOV_X, 0, rng.choice(vregs), label="last" if rng.random() < 0.3 else None))
    out.append(Instruction(JmpOp.EXIT | Class.JMP))
    loops = []
    for _ in range(rng.randrange(3)):
        lo = rng.randrange(len(out))
        loops.append((lo, rng.randrange(lo, len(out))))
    locals_ = {r for r in vregs if rng.random() < 0.4}
    return out, loops, locals_, params, calls


def _copy(insns: List[Instruction]) -> List[Instruction]:
    return [i.replace() for i in insns]


@pytest.mark.parametrize("in_place", [False, True])
def test_allocate_equals_the_long_way_on_random_functions(in_place):
    rng = random.Random(99 + in_place)
    spilled = dropped_spill = 0
    for _ in range(300):
        insns, loops, locals_, params, calls = random_vreg_function(
            rng, rng.randrange(1, 80), rng.randrange(1, 24))
        for given in (calls, None):
            want = reference_allocate(_copy(insns), loops, locals_, params, given, 32)
            mine = _copy(insns)
            got = allocate(mine, loops, locals_, params, given, 32, in_place=in_place)
            assert _text(got.instructions) == _text(want.instructions)
            assert list(got.where.items()) == list(want.where.items())
            assert got.stack == want.stack
            if not in_place:                    # the input is left as it was
                assert _text(mine) == _text(insns)
            spilled += want.stack > 32
    assert spilled > 50                         # spill code was exercised


def test_the_probe_lowering_emit_shortcut_is_the_base_one():
    """pybpf trace's lowering appends every operation but a helper call itself, as
    Lowering.emit does: what super() would reach only while no class between the
    helper-check mixin and Lowering defines an emit of its own; both make equal
    operations at the current location."""
    from pybpf.asm.instruction import SourceLocation
    from pybpf.bpftrace import lower_checks
    from pybpf.bpftrace.lower import ProbeLowering
    from pybpf.compiler import types as T
    from pybpf.compiler.ir import Function, VReg
    from pybpf.compiler.lowering import Lowering
    with_emit = [c for c in ProbeLowering.__mro__ if "emit" in c.__dict__]
    assert with_emit == [lower_checks.HelperCheckMixin, Lowering]

    class Probe(lower_checks.HelperCheckMixin, Lowering):
        pass

    made = []
    for cls in (Probe, Lowering):
        low = cls(Function("f", [], T.i64), None)
        low.loc = SourceLocation("x.bt", 3, 1, "text")
        ops = [low.emit("store", base=None, off=-8, size=8, a=VReg(1, T.u64)),
               low.emit("label", name="L"), low.emit("mov", dst=VReg(2, T.u32), a=5)]
        assert low.fn.ops == ops
        made.append([list(vars(op).items()) for op in ops])
    assert made[0] == made[1]
    # both take Op's fields by name (but the location), with Op's defaults
    import inspect
    from pybpf.compiler.ir import Op
    want = [(f[0], f[1]) for f in Op._record_fields if f[0] != "loc"]
    for emit in (Lowering.emit, lower_checks.HelperCheckMixin.emit):
        params = list(inspect.signature(emit).parameters.values())[1:]
        assert [(p.name, p.default if p.default is not p.empty else None)
                for p in params][1:] == want[1:]
        assert params[0].name == "kind"


def test_the_walk_estimate_without_loops_counts_as_the_long_way():
    """A function without loops (the usual one) is estimated without the per-instruction
    cost list: its instructions, plus each local call's callee, as the long way sums."""
    from pybpf.compiler import limits
    from pybpf.compiler.errors import CompileError
    rng = random.Random(5)
    callees = {"f": 40, "g": 7}
    for _ in range(50):
        insns = random_function(rng, rng.randrange(1, 40), False)
        for _ in range(rng.randrange(4)):
            insns.insert(rng.randrange(len(insns)),
                         Instruction(0x85, src=1, imm=-1, reference=rng.choice(["f", "g", "h"])))
        want = sum(1 + (callees.get(i.reference, 0) if limits._is_local_call(i) else 0)
                   for i in insns)
        assert limits.walk_estimate(insns, [], {}, callees, "x", None) == want
    with pytest.raises(CompileError, match="makes the verifier walk about"):
        limits.walk_estimate([Instruction(0x85, src=1, imm=-1, reference="f")], [], {},
                             {"f": limits.MAX_PROCESSED}, "x", None)


def test_the_ir_operation_init_is_the_record_one():
    """Op writes its own __init__ (plain attribute stores): it takes the record's fields
    in the record's order, positionally or by name, with the record's defaults, and
    leaves the same attributes in the same order; unknown names are refused."""
    from pybpf.compiler import types as T
    from pybpf.compiler.ir import Op, VReg
    fields = Op._record_fields
    values = {"kind": "store", "dst": VReg(2, T.u32), "a": VReg(1, T.u64), "b": 5,
              "name": "add", "target": "L1", "args": (1, 2), "loc": None,
              "base": VReg(3, T.u64), "off": -8, "size": 8}
    assert [f[0] for f in fields] == list(values)
    rng = random.Random(3)
    for _ in range(100):
        chosen = {n: v for n, v in values.items() if n == "kind" or rng.random() < 0.5}
        want = [(f[0], chosen.get(f[0], f[1])) for f in fields]
        assert list(vars(Op(**chosen)).items()) == want
        positional = [chosen.get(f[0], f[1]) for f in fields]
        assert list(vars(Op(*positional)).items()) == want
    with pytest.raises(TypeError):
        Op("mov", bogus=1)
    with pytest.raises(TypeError):
        Op()


def test_make_instruction_is_the_keyword_call():
    """The back end builds its instructions with make_instruction (every field by
    position, no __init__ call): the same instruction, metadata and all, as the class's
    keyword call; replace() keeps working through it and still refuses unknown fields."""
    from pybpf.asm.instruction import SourceLocation, make_instruction
    loc = SourceLocation("x.bt", 2, 3, "text")
    rng = random.Random(11)
    slots = Instruction.__slots__
    for _ in range(200):
        fields = (rng.randrange(256), rng.randrange(11), rng.randrange(11),
                  rng.randrange(-9, 9), rng.randrange(-1 << 31, 1 << 31),
                  rng.choice([None, "L1"]), rng.choice([None, "L2", object()]),
                  rng.choice([None, loc]))
        made = make_instruction(*fields)
        called = Instruction(*fields[:5], label=fields[5], reference=fields[6],
                             source=fields[7])
        assert type(made) is Instruction
        assert [getattr(made, n) for n in slots] == [getattr(called, n) for n in slots]
        assert made == called and repr(made) == repr(called)
        again = made.replace(off=1, label="M")
        assert [getattr(again, n) for n in slots] == \
            [getattr(called, n) if n not in ("off", "label") else {"off": 1, "label": "M"}[n]
             for n in slots]
    with pytest.raises(TypeError):
        make_instruction(0x95, 0, 0, 0, 0, None, None, None).replace(bogus=1)
