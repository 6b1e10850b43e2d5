"""Differential testing: random ALU/JMP programs give the same r0 in the interpreter and in
the kernel (BPF_PROG_TEST_RUN through pybpf.conformance's runner).

Every register is folded into r0 before the exit, so a difference anywhere shows. Programs
are built so that the verifier accepts them: every register r0-r9 starts as a
scalar constant (r10 is never used), shifts by an immediate stay below the width, division
and modulo by an immediate never divide by zero, and jumps only go forward (no loops)
with conditional jumps, so no instruction is unreachable. Division by a zero register,
shifts by out-of-range register counts and every other edge case stay in.
"""

from __future__ import annotations

import os
from typing import Any, List, Tuple

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from pybpf.asm import Instruction, Reg  # noqa: E402
from pybpf.asm.builder import (  # noqa: E402
    add, add32, and32, and_, arsh, arsh32, be, bswap, div, div32, exit_, jeq, jeq32, jge, jge32,
    jgt, jgt32, jle, jle32, jlt, jlt32, jne, jne32, jset, jset32, jsge, jsge32, jsgt, jsgt32,
    jsle, jsle32, jslt, jslt32, lddw, le, lsh, lsh32, mod, mod32, mov, mov32, movsx, movsx32,
    mul, mul32, neg, neg32, or32, or_, rsh, rsh32, sdiv, sdiv32, smod, smod32, sub, sub32,
    xor, xor32,
)
from pybpf.vm import Machine  # noqa: E402

conformance = pytest.importorskip("pybpf.conformance",
                                  reason="pybpf.conformance (the kernel runner) is not available")

_why_not = None if os.geteuid() == 0 else "not root: BPF_PROG_TEST_RUN needs CAP_BPF"
if _why_not is None:
    _why_not = conformance.kernel_unavailable()
pytestmark = pytest.mark.skipif(_why_not is not None, reason=f"no kernel to compare with: "
                                                             f"{_why_not}")

EXAMPLES = int(os.environ.get("PYBPF_VM_DIFF_EXAMPLES", "600"))
M64 = (1 << 64) - 1
REGS = [Reg(i) for i in range(10)]

_BINARY_64 = [add, sub, mul, div, sdiv, mod, smod, or_, and_, xor, lsh, rsh, arsh, mov]
_BINARY_32 = [add32, sub32, mul32, div32, sdiv32, mod32, smod32, or32, and32, xor32, lsh32,
              rsh32, arsh32, mov32]
_DIVIDES = {div, sdiv, mod, smod, div32, sdiv32, mod32, smod32}
_SHIFTS = {lsh: 64, rsh: 64, arsh: 64, lsh32: 32, rsh32: 32, arsh32: 32}
_JUMPS = [jeq, jne, jgt, jge, jlt, jle, jset, jsgt, jsge, jslt, jsle,
          jeq32, jne32, jgt32, jge32, jlt32, jle32, jset32, jsgt32, jsge32, jslt32, jsle32]

_INTERESTING_64 = [0, 1, 2, 7, M64, M64 - 1, 1 << 63, (1 << 63) - 1, 0xFFFFFFFF, 0x80000000,
                   0x7FFFFFFF, 0x1_0000_0000, 0xFFFF_FFFF_8000_0000, 0x8000_0000_0000_0001,
                   0xFF, 0x80, 0xFFFF, 0x8000, 0xFFFF_FFFF_0000_0000, 0x7FFF_FFFF_0000_0000,
                   0x8000_0000_0000_0000 | 0xFFFF_FFFF]
_INTERESTING_32 = [0, 1, -1, 2, 3, -2, 0x7FFFFFFF, -0x80000000, 0xFF, 0x80, 0x7F, 0x8000,
                   -0x8000, 31, 32, 63, 64]

values64 = st.one_of(st.sampled_from(_INTERESTING_64), st.integers(0, M64))
imm32 = st.one_of(st.sampled_from(_INTERESTING_32), st.integers(-(1 << 31), (1 << 31) - 1))
regs = st.sampled_from(REGS)


@st.composite
def alu_instruction(draw: Any) -> Instruction:
    kind = draw(st.sampled_from(["binary"] * 17 + ["neg", "end", "movsx"]))
    dst = draw(regs)
    if kind == "neg":
        return draw(st.sampled_from([neg, neg32]))(dst)
    if kind == "end":
        fn = draw(st.sampled_from([le, be, bswap]))
        return fn(dst, draw(st.sampled_from([16, 32, 64])))
    if kind == "movsx":
        if draw(st.booleans()):
            return movsx(dst, draw(regs), draw(st.sampled_from([8, 16, 32])))
        return movsx32(dst, draw(regs), draw(st.sampled_from([8, 16])))
    fn = draw(st.sampled_from(_BINARY_64 + _BINARY_32))
    if draw(st.booleans()):
        return fn(dst, draw(regs))
    if fn in _SHIFTS:       # the verifier refuses an immediate shift count >= width
        return fn(dst, draw(st.integers(0, _SHIFTS[fn] - 1)))
    if fn in _DIVIDES:      # ... and an immediate division by zero
        return fn(dst, draw(imm32.filter(lambda v: v != 0)))
    return fn(dst, draw(imm32))


@st.composite
def programs(draw: Any, branching: bool = True) -> Tuple[List[Instruction], List[int]]:
    """(program, initial values of r0-r9). Jumps land at most on the final fold."""
    initial = [draw(values64) for _ in REGS]
    size = draw(st.integers(1, 32))
    body: List[Any] = []
    for i in range(size):
        if branching and draw(st.integers(0, 3)) == 0:
            fn = draw(st.sampled_from(_JUMPS))
            src = draw(st.one_of(regs, imm32))
            skip = draw(st.integers(0, size - i - 1))   # forward, at most to the exit
            body.append(fn(draw(regs), src, skip))
        else:
            body.append(draw(alu_instruction()))
    init = [lddw(reg, value) for reg, value in zip(REGS, initial)]
    return init + body + FOLD + [exit_()], initial


#: Fold r1-r9 into r0 so a difference in any register changes the result: multiplying by
#: an odd constant and xoring are both bijective modulo 2**64.
FOLD = [ins for reg in REGS[1:] for ins in (mul(REGS[0], 0x5BD1E995), xor(REGS[0], reg))]


KERNEL = conformance.KernelRunner()
COMMON = settings(max_examples=EXAMPLES, deadline=None, derandomize=False,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _compare(program: List[Instruction]) -> None:
    expected = KERNEL.run(program)
    got = Machine(program).run()
    listing = "\n".join(str(ins) for ins in program)
    assert got == expected, (f"vm r0 {got:#x} != kernel r0 {expected:#x} for\n{listing}")


@COMMON
@given(programs(branching=False))
def test_straight_line_alu_programs_agree_with_the_kernel(case: Tuple[list, list]) -> None:
    _compare(case[0])


@COMMON
@given(programs(branching=True))
def test_branching_programs_agree_with_the_kernel(case: Tuple[list, list]) -> None:
    _compare(case[0])


@pytest.mark.parametrize("program", [
    [lddw(Reg(0), 1 << 63), lddw(Reg(1), M64), sdiv(Reg(0), Reg(1)), exit_()],
    [lddw(Reg(0), 1 << 63), lddw(Reg(1), M64), smod(Reg(0), Reg(1)), exit_()],
    [lddw(Reg(0), 0x1234_5678_9ABC_DEF0), mov(Reg(1), 0), mod32(Reg(0), Reg(1)), exit_()],
    [lddw(Reg(0), 0x1234_5678_9ABC_DEF0), mov(Reg(1), 0), smod32(Reg(0), Reg(1)), exit_()],
    [lddw(Reg(0), 0x1234_5678_9ABC_DEF0), mov(Reg(1), 0), div(Reg(0), Reg(1)), exit_()],
    [lddw(Reg(0), 0x1234_5678_9ABC_DEF0), mov(Reg(1), 100), lsh32(Reg(0), Reg(1)), exit_()],
    [lddw(Reg(0), 0x8234_5678_9ABC_DEF0), mov(Reg(1), 200), arsh(Reg(0), Reg(1)), exit_()],
    [lddw(Reg(0), 0x1234_5678_9ABC_DEF0), be(Reg(0), 16), exit_()],
    [lddw(Reg(0), 0x1234_5678_9ABC_DEF0), le(Reg(0), 32), exit_()],
], ids=["sdiv-intmin", "smod-intmin", "mod32-by-0", "smod32-by-0", "div-by-0", "lsh32-reg-100",
        "arsh-reg-200", "be16", "le32"])
def test_edge_cases_agree_with_the_kernel(program: List[Instruction]) -> None:
    _compare(program)
