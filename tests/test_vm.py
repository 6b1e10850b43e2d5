"""pybpf.vm: the reference interpreter, instruction by instruction, with hand-built programs."""

from __future__ import annotations

import argparse
import os
from typing import Any, List

import pytest

from pybpf.asm import R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10, Instruction, encode
from pybpf.asm.builder import (
    B, DW, H, W, Label, add, add32, arsh, arsh32, atomic, atomic_cmpxchg, be, bswap,
    build, call, call_kfunc, call_local, callx, div, div32, exit_, gotol, ja, jeq, jeq32, jge,
    jgt, jgt32, jle, jlt, jne, jne32, jset, jset32, jsge, jsgt, jsgt32, jsle, jslt, jslt32,
    addr_space_cast, ld_abs, ld_btf_id, ld_func, ld_ind, ld_map_fd, ld_map_idx,
    ld_map_idx_value, ld_map_value, lddw, ldx, ldxs, le, load_acquire, lsh,
    lsh32, may_goto, mod, mod32, mov, mov32, movsx, movsx32, mul, mul32, neg, neg32, or_,
    rsh, rsh32, sdiv, sdiv32, smod, smod32, st, store_release, stx, sub, sub32, xor32,
)
from pybpf.vm import (
    CLOBBERED, ArrayMap, Environment, HashMap, HelperError, Machine, MemoryFault, ProgramError,
    RingBuf, StepLimitExceeded, VMError, run,
)

M64 = (1 << 64) - 1
INT64_MIN = 1 << 63
INT32_MIN = 1 << 31


def r0_of(items: List[Any], mem: bytes = b"", **options: Any) -> int:
    """r0 after running ``items`` (instructions and labels; exit appended)."""
    return Machine(build(list(items) + [exit_()]), mem=mem, **options).run()


def set64(reg: Any, value: int) -> Instruction:
    return lddw(reg, value & M64)


# -- 32-bit subregisters --------------------------------------------------------------------

@pytest.mark.parametrize("items,expected", [
    ([set64(R0, -1), add32(R0, 1)], 0),
    ([set64(R0, -1), mov32(R0, R0)], 0xFFFFFFFF),
    ([mov32(R0, -1)], 0xFFFFFFFF),
    ([mov(R0, -1)], M64),                                      # 64-bit mov sign-extends imm
    ([mov32(R0, 0), sub32(R0, 1)], 0xFFFFFFFF),
    ([set64(R0, 0x1_0000_0003), mul32(R0, 0x55555556)], (3 * 0x55555556) & 0xFFFFFFFF),
    ([set64(R0, 0xFFFF_FFFF_0000_0001), xor32(R0, 0)], 1),
    ([set64(R0, -1), neg32(R0)], 1),
    ([set64(R0, 5), neg(R0)], (-5) & M64),
    ([mov(R0, 1), add(R0, -2)], M64),                            # imm sign-extended to 64
])
def test_alu32_zero_extends_and_alu64_sign_extends_immediates(items: list, expected: int) -> None:
    assert r0_of(items) == expected


# -- division and modulo ------------------------------------------------------------------

@pytest.mark.parametrize("items,expected", [
    ([mov(R0, 7), mov(R1, 0), div(R0, R1)], 0),
    ([mov(R0, 7), div(R0, 0)], 0),
    ([set64(R0, -1), mov(R1, 0), div32(R0, R1)], 0),
    ([mov(R0, 7), mov(R1, 0), mod(R0, R1)], 7),                   # unchanged
    ([set64(R0, 0x1234_0000_0007), mov(R1, 0), mod(R0, R1)], 0x1234_0000_0007),
    ([set64(R0, 0x1234_0000_0007), mov(R1, 0), mod32(R0, R1)], 7),  # zero-extended
    ([set64(R0, 0x1234_0000_0007), mod32(R0, 0)], 7),
    ([set64(R0, 0x1234_0000_0007), mov(R1, 0), smod32(R0, R1)], 7),
    ([set64(R0, 0x1234_0000_0007), mov(R1, 0), smod(R0, R1)], 0x1234_0000_0007),
    ([set64(R0, 0x1234_0000_0007), mov(R1, 0), sdiv(R0, R1)], 0),
    ([set64(R0, 0x1234_0000_0007), mov(R1, 0), sdiv32(R0, R1)], 0),
    ([mov(R0, 10), div(R0, -1)], 0),                # divisor is 0xffff...ffff unsigned
    ([set64(R0, -1), div(R0, -1)], 1),
    ([mov32(R0, -1), div32(R0, -1)], 1),            # 32-bit: 0xffffffff / 0xffffffff
    ([set64(R0, 0x1_0000_000A), mov(R1, 3), div32(R0, R1)], 3),
    ([mov(R0, 10), mod(R0, 3)], 1),
])
def test_division_and_modulo_by_zero_and_unsigned_immediates(items: list, expected: int) -> None:
    assert r0_of(items) == expected


@pytest.mark.parametrize("items,expected", [
    ([set64(R0, INT64_MIN), mov(R1, -1), sdiv(R0, R1)], INT64_MIN),
    ([set64(R0, INT64_MIN), sdiv(R0, -1)], INT64_MIN),
    ([set64(R0, INT64_MIN), mov(R1, -1), smod(R0, R1)], 0),
    ([set64(R0, INT64_MIN), smod(R0, -1)], 0),
    ([mov32(R0, INT32_MIN), mov(R1, -1), sdiv32(R0, R1)], INT32_MIN),
    ([mov32(R0, INT32_MIN), sdiv32(R0, -1)], INT32_MIN),
    ([mov32(R0, INT32_MIN), smod32(R0, -1)], 0),
    ([mov(R0, -7), sdiv(R0, 2)], (-3) & M64),       # truncates toward zero
    ([mov(R0, -7), smod(R0, 2)], (-1) & M64),       # sign of the dividend
    ([mov(R0, 7), smod(R0, -2)], 1),
    ([mov(R0, -7), smod(R0, -2)], (-1) & M64),
    ([mov32(R0, -7), sdiv32(R0, 2)], (-3) & 0xFFFFFFFF),
    ([mov32(R0, -7), smod32(R0, 2)], (-1) & 0xFFFFFFFF),
    ([set64(R0, 0xFFFF_FFFF_FFFF_FFF9), sdiv32(R0, 2)], 0xFFFFFFFD),
])
def test_signed_division_and_modulo(items: list, expected: int) -> None:
    assert r0_of(items) == expected


# -- shifts ---------------------------------------------------------------------------------

@pytest.mark.parametrize("items,expected", [
    ([mov(R0, 1), mov(R1, 65), lsh(R0, R1)], 2),                 # 65 & 63 = 1
    ([mov(R0, 1), mov(R1, 33), lsh32(R0, R1)], 2),               # 33 & 31 = 1
    ([mov(R0, 1), lsh(R0, 63)], INT64_MIN),
    ([mov(R0, 1), lsh32(R0, 31), lsh32(R0, 1)], 0),
    ([set64(R0, 0xFFFF_FFFF_8000_0000), rsh32(R0, 31)], 1),
    ([set64(R0, -1), mov(R1, 0x7F), rsh(R0, R1)], 1),           # 0x7f & 63 = 63
    ([set64(R0, INT64_MIN), arsh(R0, 63)], M64),
    ([set64(R0, INT64_MIN), mov(R1, 64 + 4), arsh(R0, R1)], 0xF800_0000_0000_0000),
    ([mov32(R0, INT32_MIN), arsh32(R0, 4)], 0xF8000000),        # low half, zero-extended
    ([set64(R0, 0x0000_0001_4000_0000), arsh32(R0, 4)], 0x04000000),
    ([mov32(R0, INT32_MIN), mov(R1, 35), arsh32(R0, R1)], 0xF0000000),
])
def test_shifts_are_masked_by_width(items: list, expected: int) -> None:
    assert r0_of(items) == expected


# -- byte order ---------------------------------------------------------------------------

@pytest.mark.parametrize("items,expected", [
    ([set64(R0, 0x1122334455667788), le(R0, 16)], 0x7788),
    ([set64(R0, 0x1122334455667788), le(R0, 32)], 0x55667788),
    ([set64(R0, 0x1122334455667788), le(R0, 64)], 0x1122334455667788),
    ([set64(R0, 0x1122334455667788), be(R0, 16)], 0x8877),
    ([set64(R0, 0x1122334455667788), be(R0, 32)], 0x88776655),
    ([set64(R0, 0x1122334455667788), be(R0, 64)], 0x8877665544332211),
    ([set64(R0, 0x1122334455667788), bswap(R0, 16)], 0x8877),
    ([set64(R0, 0x1122334455667788), bswap(R0, 32)], 0x88776655),
    ([set64(R0, 0x1122334455667788), bswap(R0, 64)], 0x8877665544332211),
])
def test_byte_swaps_on_a_little_endian_host(items: list, expected: int) -> None:
    assert r0_of(items) == expected


# -- sign extension -------------------------------------------------------------------------

@pytest.mark.parametrize("items,expected", [
    ([mov(R1, 0x80), movsx(R0, R1, 8)], 0xFFFF_FFFF_FFFF_FF80),
    ([mov(R1, 0x7F), movsx(R0, R1, 8)], 0x7F),
    ([mov(R1, 0x18000), movsx(R0, R1, 16)], 0xFFFF_FFFF_FFFF_8000),
    ([mov32(R1, INT32_MIN), movsx(R0, R1, 32)], 0xFFFF_FFFF_8000_0000),
    ([mov(R1, 0x80), movsx32(R0, R1, 8)], 0xFFFFFF80),           # then zero-extended
    ([mov(R1, 0x8000), movsx32(R0, R1, 16)], 0xFFFF8000),
])
def test_sign_extending_moves(items: list, expected: int) -> None:
    assert r0_of(items) == expected


@pytest.mark.parametrize("size,unsigned,signed", [
    (B, 0xF0, 0xFFFF_FFFF_FFFF_FFF0),
    (H, 0xFFF0, 0xFFFF_FFFF_FFFF_FFF0),
    (W, 0xFFFF_FFF0, 0xFFFF_FFFF_FFFF_FFF0),
])
def test_loads_zero_extend_and_sign_extending_loads_do_not(size: Any, unsigned: int,
                                                          signed: int) -> None:
    mem = bytes([0xF0, 0xFF, 0xFF, 0xFF, 0x11, 0x22, 0x33, 0x44])
    assert r0_of([set64(R0, -1), ldx(size, R0, R1, 0)], mem) == unsigned
    assert r0_of([ldxs(size, R0, R1, 0)], mem) == signed
    assert r0_of([ldx(DW, R0, R1, 0)], mem) == int.from_bytes(mem, "little")


def test_stores_of_every_width_little_endian() -> None:
    prog = build([
        st(DW, R1, 0, -1), st(B, R1, 0, 0x1AB), st(H, R1, 2, 0x1234), mov(R2, 0x778899AA),
        stx(W, R1, 4, R2), stx(B, R1, 8, R2), ldx(DW, R0, R1, 0), exit_()])
    vm = Machine(prog, mem=bytes(9))
    assert vm.run() == 0x778899AA_1234_FFAB
    assert vm.mem == bytes.fromhex("abff3412aa998877aa")


# -- atomics --------------------------------------------------------------------------------

_ATOMIC_CASES = [
    ("add", DW, 0x10, 0x22, 0x32), ("or", DW, 0x10, 0x03, 0x13),
    ("and", DW, 0x1F, 0x31, 0x11), ("xor", DW, 0x1F, 0x31, 0x2E),
    ("add", W, 0xFFFFFFFF, 2, 1), ("or", W, 0x10, 0x03, 0x13),
    ("and", W, 0x1F, 0x31, 0x11), ("xor", W, 0x1F, 0x31, 0x2E),
]


@pytest.mark.parametrize("name,size,start,operand,stored,fetch", [
    *[(op, size, a, b, out, False) for op, size, a, b, out in _ATOMIC_CASES],
    *[("fetch_" + op, size, a, b, out, True) for op, size, a, b, out in _ATOMIC_CASES],
    ("xchg", DW, 0x1F, 0x31, 0x31, True), ("xchg", W, 7, 9, 9, True),
])
def test_atomic_operations_and_fetch(name: str, size: Any, start: int, operand: int,
                                     stored: int, fetch: bool) -> None:
    width = 8 if size == DW else 4
    # a 32-bit atomic uses only the low half of src: put garbage in the high half
    src = (0xAAAA_0000_0000_0000 if size == W else 0) | operand
    mem = start.to_bytes(width, "little") + b"\xee" * 4
    prog = build([lddw(R2, src), mov(R0, R2), atomic(name, size, R1, 0, R2), exit_()])
    vm = Machine(prog, mem=mem)
    vm.run()
    assert int.from_bytes(vm.mem[:width], "little") == stored
    assert vm.mem[width:] == b"\xee" * 4                              # neighbours untouched
    # fetch: src receives the old value (zero-extended for 32-bit); else it is unchanged
    assert vm.get_register(2) == (start if fetch else src)
    assert vm.get_register(0) == src


def test_cmpxchg_compares_r0_and_returns_the_old_value_in_r0() -> None:
    mem = (0x1122334455667788).to_bytes(8, "little")
    ok = build([lddw(R0, 0x1122334455667788), mov(R2, 9), atomic_cmpxchg(DW, R1, 0, R2),
                exit_()])
    vm = Machine(ok, mem=mem)
    assert vm.run() == 0x1122334455667788 and vm.mem == (9).to_bytes(8, "little")
    fail = build([mov(R0, 1), mov(R2, 9), atomic_cmpxchg(DW, R1, 0, R2), exit_()])
    vm = Machine(fail, mem=mem)
    assert vm.run() == 0x1122334455667788 and vm.mem == mem


def test_cmpxchg32_compares_low_halves_and_zero_extends() -> None:
    mem = (0x55667788).to_bytes(4, "little")
    prog = build([lddw(R0, 0xFFFF_FFFF_5566_7788), lddw(R2, 0x9999_9999_0000_0009),
                  atomic_cmpxchg(W, R1, 0, R2), exit_()])
    vm = Machine(prog, mem=mem)
    assert vm.run() == 0x55667788
    assert vm.mem == (9).to_bytes(4, "little")


def test_load_acquire_and_store_release_are_plain_accesses() -> None:
    prog = build([mov(R2, 0x42), store_release(W, R1, 0, R2), load_acquire(B, R0, R1, 0),
                  exit_()])
    assert Machine(prog, mem=bytes(4)).run() == 0x42


# -- lddw -----------------------------------------------------------------------------------

def test_lddw_loads_all_64_bits_and_takes_two_slots() -> None:
    prog = build([lddw(R0, -2), ja("x"), Label("x"), exit_()])
    vm = Machine(prog)
    first = vm.step()
    assert (first.index, first.pc, vm.pc) == (0, 0, 2)
    assert vm.run() == M64 - 1


def test_lddw_map_value_and_function_pointers() -> None:
    arr = ArrayMap(value_size=16, max_entries=2, name="globals")
    arr[0] = (0x1234).to_bytes(8, "little") + (0x55).to_bytes(8, "little")
    prog = build([ld_map_value(R1, "globals", 8), ldx(DW, R0, R1, 0), exit_()])
    assert Machine(prog, maps={"globals": arr}).run() == 0x55
    prog = build([ld_func(R2, "f"), callx(R2), add(R0, 1), exit_(),
                  Label("f"), mov(R0, 41), exit_()])
    assert Machine(prog).run() == 42


def test_lddw_fd_array_forms_and_kernel_only_forms() -> None:
    arr = ArrayMap(value_size=8, max_entries=1, name="cfg")
    arr[0] = 0x0102030405060708
    by_index = build([ld_map_idx_value(R1, 1, 2), ldx(B, R0, R1, 0), exit_()])
    assert Machine(by_index, fd_array=[HashMap(4, 4, 1), arr]).run() == 0x06
    handle = build([ld_map_idx(R1, 0), st(W, R10, -4, 0), mov(R2, R10), add(R2, -4),
                    call("map_lookup_elem"), ldx(DW, R0, R0, 0), exit_()])
    assert Machine(handle, fd_array=[arr]).run() == 0x0102030405060708
    with pytest.raises(ProgramError, match="fd_array has no map at index 3"):
        Machine(build([ld_map_idx(R1, 3), exit_()]))
    # forms that need a kernel build fine and fail only when executed
    btf = Machine(build([mov(R0, 0), jeq(R0, 0, "out"), ld_btf_id(R1, 42), Label("out"),
                         exit_()]))
    assert btf.run() == 0
    with pytest.raises(VMError, match=r"instruction 0 .*BTF id"):
        Machine(build([ld_btf_id(R1, 42), exit_()])).run()
    with pytest.raises(VMError, match="arena"):
        Machine(build([addr_space_cast(R1, R2, 1, 0), exit_()])).run()


# -- jumps ---------------------------------------------------------------------------------

def _taken(jump: Any, setup: list) -> bool:
    return r0_of(setup + [mov(R0, 0), jump, mov(R0, 1), exit_(), Label("t"), mov(R0, 2)]) == 2


@pytest.mark.parametrize("jump,setup,taken", [
    (jeq32(R1, 0, "t"), [lddw(R1, 0x1_0000_0000)], True),
    (jeq(R1, 0, "t"), [lddw(R1, 0x1_0000_0000)], False),
    (jgt32(R1, 1, "t"), [lddw(R1, 0x1_0000_0001)], False),
    (jne32(R1, R2, "t"), [lddw(R1, 0x5_0000_0007), mov(R2, 7)], False),
    (jset32(R1, 0x10, "t"), [lddw(R1, 0x10_0000_0000)], False),
    (jset(R1, 0x10, "t"), [mov(R1, 0x30)], True),
    (jsgt32(R1, 0, "t"), [lddw(R1, 0x0000_0000_8000_0000)], False),   # low half negative
    (jsgt(R1, 0, "t"), [lddw(R1, 0x0000_0000_8000_0000)], True),
    (jslt32(R1, R2, "t"), [lddw(R1, 0xFFFF_FFFF), mov(R2, 0)], True),
    (jslt(R1, -1, "t"), [mov(R1, -2)], True),
    (jsge(R1, -2, "t"), [mov(R1, -2)], True),
    (jsle(R1, -3, "t"), [mov(R1, -2)], False),
    (jgt(R1, -1, "t"), [mov(R1, -1)], False),                 # -1 imm is u64 max
    (jge(R1, -1, "t"), [mov(R1, -1)], True),
    (jlt(R1, R2, "t"), [mov(R1, 1), mov(R2, -1)], True),
    (jle(R1, 0, "t"), [mov(R1, 0)], True),
    (jne(R1, 0, "t"), [mov(R1, 0)], False),
])
def test_conditional_jumps_64_and_32(jump: Any, setup: list, taken: bool) -> None:
    assert _taken(jump, setup) is taken


def test_gotol_uses_imm_and_ja_off() -> None:
    prog = build([mov(R0, 1), gotol("end"), mov(R0, 2), Label("end"), exit_()])
    assert prog[1].imm == 1 and prog[1].off == 0
    assert Machine(prog).run() == 1
    assert Machine(build([mov(R0, 3), ja(1), mov(R0, 4), exit_()])).run() == 3
    assert r0_of([mov(R0, 0), Label("top"), add(R0, 1), jne(R0, 5, "top")]) == 5


# -- calls ---------------------------------------------------------------------------------

def test_local_call_frames_preserve_r6_to_r9_and_get_their_own_stack() -> None:
    prog = build([
        mov(R6, 6), mov(R7, 7), mov(R8, 8), mov(R9, 9), st(DW, R10, -8, 0x77),
        mov(R1, 20), mov(R2, 22), mov(R3, R10),
        call_local("f"),
        jne(R6, 6, "bad"), jne(R7, 7, "bad"), jne(R8, 8, "bad"), jne(R9, 9, "bad"),
        ldx(DW, R1, R10, -8), jne(R1, 0x77, "bad"),
        exit_(),
        Label("bad"), mov(R0, -1), exit_(),
        Label("f"),
        mov(R6, 0), mov(R7, 0), mov(R8, 0), mov(R9, 0),
        st(DW, R10, -8, 0x99),                  # the callee's own stack
        jeq(R3, R10, "bad"),                    # a new frame pointer
        ldx(DW, R4, R3, -8),                    # the caller's stack is reachable by pointer
        mov(R0, R1), add(R0, R2), add(R0, R4), exit_(),
    ])
    vm = Machine(prog)
    assert vm.run() == 20 + 22 + 0x77


def test_recursion_hits_the_frame_limit() -> None:
    prog = build([Label("f"), call_local("f"), exit_()])
    with pytest.raises(VMError, match=r"instruction 0 \(call .*call depth limit reached \(8"):
        Machine(prog).run()
    depth = build([mov(R1, 6), call_local("f"), exit_(), Label("f"), mov(R0, R1),
                   jeq(R1, 0, "out"), sub(R1, 1), call_local("f"), Label("out"), exit_()])
    assert Machine(depth).run() == 0                 # 7 nested frames + main = 8: allowed


def test_returned_frame_pointers_dangle() -> None:
    prog = build([call_local("f"), ldx(DW, R0, R0, 0), exit_(),
                  Label("f"), mov(R0, R10), add(R0, -8), exit_()])
    with pytest.raises(MemoryFault, match=r"instruction 1 .*the stack of frame 1 no longer "
                                          r"exists"):
        Machine(prog).run()


def test_helper_calls_set_r0_and_clobber_r1_to_r5() -> None:
    env = Environment(ktime_ns=lambda: 123456789)
    prog = build([mov(R1, 1), mov(R5, 5), mov(R6, 6), call("ktime_get_ns"), exit_()])
    vm = Machine(prog, env=env)
    assert vm.run() == 123456789
    assert vm.registers[1:6] == (CLOBBERED,) * 5
    assert vm.get_register(6) == 6


def test_callx_with_a_helper_id_calls_the_helper() -> None:
    env = Environment(ktime_ns=lambda: 77)
    prog = build([mov(R2, 5), callx(R2), exit_()])   # the conformance suite's callx case
    assert Machine(prog, env=env).run() == 77
    with pytest.raises(HelperError, match=r"callx r2: helper 999 is not implemented"):
        Machine(build([mov(R2, 999), callx(R2), exit_()])).run()


def test_custom_helpers_by_id_and_name_and_unknown_helpers() -> None:
    def double(vm: Machine, r1: int, *rest: int) -> int:
        return 2 * r1

    prog = build([mov(R1, 21), call(7), exit_()])
    assert Machine(prog, helpers={7: double}).run() == 42
    assert Machine(prog, helpers={"get_prandom_u32": double}).run() == 42
    unknown = build([call(9), exit_()])
    with pytest.raises(HelperError, match=r"instruction 0 .*bpf_skb_store_bytes \(id 9\) is "
                                          "not implemented"):
        Machine(unknown).run()
    with pytest.raises(HelperError, match="kfunc"):
        Machine(build([call_kfunc(1234), exit_()])).run()


# -- memory errors ----------------------------------------------------------------------------

@pytest.mark.parametrize("items,pattern", [
    ([ldx(DW, R0, R10, 0)], r"instruction 0 \(r0 = \*\(u64 \*\)\(r10 \+ 0x0\)\): read of 8 "
                            r"bytes at 0x[0-9a-f]+: out of bounds of the stack of frame 0 "
                            r"\(offset 512, size 512\)"),
    ([ldx(DW, R0, R10, -520)], r"8 bytes before the start of the stack of frame 0"),
    ([mov(R2, 0), ldx(W, R0, R2, 0)], r"instruction 1 .*NULL pointer dereference"),
    ([ldx(W, R0, R1, 2)], r"out of bounds of input memory \(offset 2, size 4\)"),
    ([mov(R2, 0x1234), lsh(R2, 40), st(B, R2, 0, 1)], r"instruction 2 .*write of 1 byte at "
                                                    r"0x12340000000000: the address is not in"),
])
def test_out_of_bounds_accesses_name_the_instruction(items: list, pattern: str) -> None:
    with pytest.raises(MemoryFault, match=pattern) as info:
        r0_of(items, mem=b"abcd")
    assert info.value.index is not None and info.value.instruction is not None


def test_fault_reports_instruction_index_and_slot_after_lddw() -> None:
    prog = build([lddw(R2, 0), ldx(B, R0, R2, 0), exit_()])
    with pytest.raises(MemoryFault) as info:
        Machine(prog).run()
    assert (info.value.index, info.value.pc) == (1, 2)
    assert str(info.value).startswith("instruction 1 (slot 2) (")


def test_map_handles_cannot_be_dereferenced_and_deleted_values_dangle() -> None:
    h = HashMap(4, 8, 4, name="h")
    with pytest.raises(MemoryFault, match="map handle"):
        Machine(build([ld_map_fd(R1, "h"), ldx(DW, R0, R1, 0), exit_()]), maps=[h]).run()
    h[1] = 5
    prog = build([
        st(W, R10, -4, 1), mov(R2, R10), add(R2, -4), ld_map_fd(R1, h),
        call("map_lookup_elem"), mov(R6, R0),
        ld_map_fd(R1, h), mov(R2, R10), add(R2, -4), call("map_delete_elem"),
        ldx(DW, R0, R6, 0), exit_()])
    with pytest.raises(MemoryFault, match=r"instruction 10 .*the value of key 01000000 in map "
                                          r"'h' no longer exists"):
        Machine(prog).run()


def test_program_errors_are_reported_when_the_machine_is_built() -> None:
    with pytest.raises(ProgramError, match=r"instruction 0 .*jump target \+5 .* outside"):
        Machine([Instruction(0x05, off=5), exit_()])
    with pytest.raises(ProgramError, match=r"instruction 0 .*middle of lddw"):
        Machine([Instruction(0x05, off=1), lddw(R0, 1), exit_()])
    with pytest.raises(ProgramError, match=r"instruction 0 .*r10 is read-only"):
        Machine([Instruction(0xB7, dst=10, imm=1), exit_()])
    with pytest.raises(ProgramError, match=r"instruction 0 .*"):
        Machine([Instruction(0xFF), exit_()])
    with pytest.raises(ProgramError, match=r"unknown map 'nope'"):
        Machine(build([ld_map_fd(R1, "nope"), exit_()]))
    with pytest.raises(ProgramError, match="byte offset 8"):
        Machine(encode([mov(R0, 0)]) + b"\xff" * 8)
    with pytest.raises(VMError, match=r"instruction 1 \(r0 = 0x1\): execution "
                                   r"continued past the last instruction"):
        Machine(build([mov(R0, 0), mov(R0, 1)])).run()


def test_trace_stops_at_the_step_limit() -> None:
    vm = Machine(build([Label("l"), ja("l")]), max_steps=5)
    records = []
    with pytest.raises(StepLimitExceeded, match="instruction 0 .*stopped after 5"):
        for rec in vm.trace():
            records.append(rec)
    assert len(records) == 5 and vm.steps == 5


def test_step_limit_stops_and_run_can_continue() -> None:
    prog = build([mov(R0, 0), Label("l"), add(R0, 1), jne(R0, 1000, "l"), exit_()])
    vm = Machine(prog, max_steps=100)
    with pytest.raises(StepLimitExceeded, match="stopped after 100 instructions"):
        vm.run()
    assert vm.steps == 100
    assert vm.run(max_steps=10_000) == 1000
    assert vm.steps == 1 + 2 * 1000 + 1


# -- step API and tracing -------------------------------------------------------------------

def test_step_records_changed_registers_depth_and_exit() -> None:
    prog = build([mov(R0, 1), mov(R0, 1), call_local("f"), exit_(), Label("f"), mov(R0, 7),
                  exit_()])
    vm = Machine(prog)
    fp = vm.get_register(10)
    assert vm.next_instruction == prog[0]
    first = vm.step()
    assert first.changes == ((0, 0, 1),) and first.depth == 1 and not first.halted
    assert vm.step().changes == ()
    call_rec = vm.step()
    assert call_rec.changes[0][0] == 10 and call_rec.changes[0][1] == fp
    assert vm.depth == 2 and vm.pc == 4
    inner = vm.step()
    assert inner.depth == 2 and inner.changes == ((0, 1, 7),)
    ret = vm.step()
    assert ret.changes == ((10, call_rec.changes[0][2], fp),) and vm.depth == 1
    last = vm.step()
    assert last.halted and vm.halted and vm.next_instruction is None
    with pytest.raises(VMError, match="has exited"):
        vm.step()
    vm.reset()
    assert vm.run() == 7 and vm.steps == 6


def test_registers_can_be_inspected_and_set_between_steps() -> None:
    vm = Machine(build([mov(R0, R3), add(R0, R1), exit_()]), mem=b"xyz")
    assert vm.get_register(1) == vm.mem_address and vm.get_register(2) == 3
    vm.set_register(3, -1)
    vm.step()
    assert vm.registers[0] == M64
    with pytest.raises(ValueError):
        vm.set_register(10, 0)
    assert vm.read(vm.mem_address, 3) == b"xyz"
    vm.write(vm.mem_address + 1, b"Y")
    assert vm.mem == b"xYz"


def test_trace_lines_show_disassembly_and_changes() -> None:
    vm = Machine(build([mov(R0, 1), lsh(R0, 4), exit_()]))
    lines = [rec.format() for rec in vm.trace()]
    assert lines[0].startswith("    0: r0 = 0x1") and lines[0].endswith("; r0 0x0 -> 0x1")
    assert lines[1].endswith("; r0 0x1 -> 0x10")
    assert lines[2].strip() == "2: exit"


def test_ctx_argument_replaces_r1() -> None:
    vm = Machine(build([ldx(B, R0, R1, 1), exit_()]), mem=b"pkt", ctx=b"\x01\x02")
    assert vm.get_register(1) == vm.ctx_address and vm.get_register(2) == 0
    assert vm.run() == 2


# -- legacy packet access, may_goto ---------------------------------------------------------

def test_ldabs_and_ldind_read_big_endian_and_end_the_program_out_of_bounds() -> None:
    mem = bytes.fromhex("0102030405060708")
    assert r0_of([ld_abs(H, 2)], mem) == 0x0304
    assert r0_of([ld_abs(W, 4)], mem) == 0x05060708
    assert r0_of([mov(R6, 3), ld_ind(B, R6, 4)], mem) == 0x08
    assert r0_of([mov(R0, 9), ld_abs(W, 6), mov(R0, 9)], mem) == 0


def test_may_goto_jumps_when_the_budget_is_used_up() -> None:
    prog = build([mov(R0, 0), Label("l"), may_goto("out"), add(R0, 1), ja("l"),
                  Label("out"), exit_()])
    assert Machine(prog).run() == 8 * 1024 * 1024


# -- maps and helpers -----------------------------------------------------------------------

def _counter_program(map_ref: Any) -> List[Instruction]:
    """Increment map[key] (key = first u32 of mem); insert 1 if missing; return the value."""
    return build([
        ldx(W, R6, R1, 0), stx(W, R10, -4, R6),
        ld_map_fd(R1, map_ref), mov(R2, R10), add(R2, -4), call("map_lookup_elem"),
        jeq(R0, 0, "insert"),
        mov(R1, 1), atomic("add", DW, R0, 0, R1), ldx(DW, R0, R0, 0), exit_(),
        Label("insert"),
        st(DW, R10, -16, 1), ld_map_fd(R1, map_ref), mov(R2, R10), add(R2, -4),
        mov(R3, R10), add(R3, -16), mov(R4, 0), call("map_update_elem"), exit_(),
    ])


def test_hash_map_lookup_update_through_value_pointers() -> None:
    counts = HashMap(key_size=4, value_size=8, max_entries=2, name="counts")
    vm = Machine(_counter_program("counts"), mem=(7).to_bytes(4, "little"), maps=[counts])
    assert vm.run() == 0                     # inserted
    for expected in (2, 3):
        vm.reset()
        assert vm.run() == expected
    assert counts.get_int(7) == 3
    vm.reset(mem=(8).to_bytes(4, "little"))
    assert vm.run() == 0
    vm.reset(mem=(9).to_bytes(4, "little"))
    assert vm.run() == (-7) & M64            # -E2BIG: full
    assert sorted(counts.items()) == [((7).to_bytes(4, "little"), (3).to_bytes(8, "little")),
                                      ((8).to_bytes(4, "little"), (1).to_bytes(8, "little"))]


def test_map_update_flags_and_delete_errors() -> None:
    h = HashMap(4, 4, 8, name="h")
    a = ArrayMap(value_size=4, max_entries=2, name="a")

    def update(m: Any, key: int, flags: int) -> int:
        prog = build([
            st(W, R10, -4, key), st(W, R10, -8, 0x55), ld_map_fd(R1, m), mov(R2, R10),
            add(R2, -4), mov(R3, R10), add(R3, -8), mov(R4, flags),
            call("map_update_elem"), exit_()])
        return Machine(prog).run()

    def delete(m: Any, key: int) -> int:
        prog = build([st(W, R10, -4, key), ld_map_fd(R1, m), mov(R2, R10), add(R2, -4),
                      call("map_delete_elem"), exit_()])
        return Machine(prog).run()

    assert update(h, 1, 2) == (-2) & M64           # BPF_EXIST on a missing key: -ENOENT
    assert update(h, 1, 1) == 0                    # BPF_NOEXIST inserts
    assert update(h, 1, 1) == (-17) & M64          # ... once: -EEXIST
    assert update(h, 1, 4) == (-22) & M64          # unknown flag: -EINVAL
    assert h.get_int(1) == 0x55
    assert delete(h, 1) == 0 and delete(h, 1) == (-2) & M64 and 1 not in h
    assert update(a, 1, 0) == 0 and a.get_int(1) == 0x55
    assert update(a, 2, 0) == (-7) & M64           # out of range: -E2BIG
    assert update(a, 0, 1) == (-17) & M64          # array elements always exist
    assert delete(a, 0) == (-22) & M64


def test_array_map_lookup_out_of_range_is_null_and_values_start_zeroed() -> None:
    a = ArrayMap(value_size=8, max_entries=4, name="a")
    prog = build([
        ldx(W, R6, R1, 0), stx(W, R10, -4, R6), ld_map_fd(R1, "a"), mov(R2, R10),
        add(R2, -4), call("map_lookup_elem"), jne(R0, 0, "found"), mov(R0, -1), exit_(),
        Label("found"), ldx(DW, R0, R0, 0), exit_()])
    assert Machine(prog, mem=(3).to_bytes(4, "little"), maps={"a": a}).run() == 0
    assert Machine(prog, mem=(4).to_bytes(4, "little"), maps={"a": a}).run() == M64
    with pytest.raises(MemoryFault, match=r"out of bounds of the value of key 03000000"):
        bad = build([st(W, R10, -4, 3), ld_map_fd(R1, "a"), mov(R2, R10), add(R2, -4),
                     call("map_lookup_elem"), ldx(DW, R0, R0, 4), exit_()])
        Machine(bad, maps={"a": a}).run()


def test_map_helpers_check_their_arguments() -> None:
    h = HashMap(8, 8, 1, name="h")
    with pytest.raises(HelperError, match=r"is not a map pointer"):
        Machine(build([mov(R1, 1), call("map_lookup_elem"), exit_()])).run()
    with pytest.raises(MemoryFault, match=r"bpf_map_lookup_elem: read of the key of 8 bytes"):
        Machine(build([ld_map_fd(R1, "h"), mov(R2, R10), add(R2, -4),
                       call("map_lookup_elem"), exit_()]), maps={"h": h}).run()


def test_task_helpers_use_the_configured_environment() -> None:
    env = Environment(pid=100, tgid=200, uid=1001, gid=1002, comm="a-very-long-process-name",
                      cpu=3)
    assert r0_of([call("get_current_pid_tgid")], env=env) == (200 << 32) | 100
    assert r0_of([call("get_current_uid_gid")], env=env) == (1002 << 32) | 1001
    assert r0_of([call("get_smp_processor_id")], env=env) == 3
    prog = build([mov(R1, R10), add(R1, -16), mov(R2, 16), call("get_current_comm"),
                  ldx(DW, R0, R10, -16), ldx(DW, R6, R10, -8), exit_()])
    vm = Machine(prog, env=env)
    vm.run()
    comm = vm.get_register(0).to_bytes(8, "little") + vm.get_register(6).to_bytes(8, "little")
    assert comm == b"a-very-long-pro\0"
    a = Machine(build([call("get_prandom_u32"), exit_()]), env=Environment(seed=1)).run()
    b = Machine(build([call("get_prandom_u32"), exit_()]), env=Environment(seed=1)).run()
    assert a == b and a <= 0xFFFFFFFF


def _string_on_stack(text: bytes) -> list:
    """Instructions that put ``text`` (NUL-padded to 8) at r10 - len, address in r1."""
    data = text + bytes(-len(text) % 8 or 8)
    out = []
    for i in range(0, len(data), 8):
        out += [lddw(R1, int.from_bytes(data[i:i + 8], "little")),
                stx(DW, R10, -len(data) + i, R1)]
    return out + [mov(R1, R10), add(R1, -len(data)), mov(R2, len(data))]


def test_trace_printk_formats_into_a_list() -> None:
    prog = build(_string_on_stack(b"n=%d u=%u x=%llx\n") + [
        mov(R3, -5), mov(R4, -1), mov(R5, -1), call("trace_printk"), exit_()])
    vm = Machine(prog)
    assert vm.run() == len("n=-5 u=4294967295 x=ffffffffffffffff\n")
    assert vm.printk == ["n=-5 u=4294967295 x=ffffffffffffffff\n"]
    strings = build([lddw(R1, int.from_bytes(b"hi\0", "little")), stx(DW, R10, -24, R1)]
                    + _string_on_stack(b"[%s|%5d|%c|%s]") + [
        mov(R3, R10), add(R3, -24), mov(R4, 42), mov(R5, 0x41), call("trace_printk"), exit_()])
    vm = Machine(strings)
    vm.run()
    assert vm.printk == ["[hi|   42|A|(efault)]"]        # a missing fourth argument is 0
    unterminated = build([st(DW, R10, -8, 0x41414141), mov(R1, R10), add(R1, -8), mov(R2, 4),
                          call("trace_printk"), exit_()])
    assert Machine(unterminated).run() == (-22) & M64


def test_ringbuf_output_reserve_submit_discard() -> None:
    rb = RingBuf(64, name="events")
    prog = build([
        st(DW, R10, -8, 0x1234), ld_map_fd(R1, "events"), mov(R2, R10), add(R2, -8),
        mov(R3, 8), mov(R4, 0), call("ringbuf_output"), mov(R6, R0),
        ld_map_fd(R1, "events"), mov(R2, 4), mov(R3, 0), call("ringbuf_reserve"),
        jeq(R0, 0, "out"), st(W, R0, 0, 0xABCD), mov(R1, R0), mov(R2, 0),
        call("ringbuf_submit"),
        ld_map_fd(R1, "events"), mov(R2, 4), mov(R3, 0), call("ringbuf_reserve"),
        mov(R1, R0), mov(R2, 0), call("ringbuf_discard"),
        Label("out"), mov(R0, R6), exit_()])
    vm = Machine(prog, maps=[rb])
    assert vm.run() == 0
    assert rb.drain() == [(0x1234).to_bytes(8, "little"), (0xABCD).to_bytes(4, "little")]
    big = RingBuf(16, name="small")
    out = build([ld_map_fd(R1, "small"), mov(R2, R10), add(R2, -16), mov(R3, 16), mov(R4, 0),
                 call("ringbuf_output"), exit_()])
    assert Machine(out, maps=[big]).run() == (-11) & M64 and big.records == []


def test_probe_read_copies_or_fails_with_efault() -> None:
    prog = build([mov(R3, R1), mov(R1, R10), add(R1, -8), mov(R2, 4), call("probe_read_kernel"),
                  mov(R6, R0), ldx(W, R0, R10, -8), exit_()])
    assert Machine(prog, mem=b"\x01\x02\x03\x04").run() == 0x04030201
    bad = build([mov(R1, R10), add(R1, -8), mov(R2, 4), mov(R3, 16), call("probe_read_kernel"),
                 exit_()])
    assert Machine(bad).run() == (-14) & M64


def test_bpf_loop_calls_a_subprogram_callback() -> None:
    prog = build([
        st(DW, R10, -8, 0), mov(R1, 10), ld_func(R2, "cb"), mov(R3, R10), add(R3, -8),
        mov(R4, 0), call("loop"), ldx(DW, R6, R10, -8), lsh(R6, 8), or_(R0, R6), exit_(),
        Label("cb"),  # r1 = index, r2 = ctx: *ctx += index; stop after index 4
        ldx(DW, R3, R2, 0), add(R3, R1), stx(DW, R2, 0, R3), mov(R0, 0),
        jne(R1, 4, "ret"), mov(R0, 1), Label("ret"), exit_()])
    assert Machine(prog).run() == ((0 + 1 + 2 + 3 + 4) << 8) | 5


def test_run_convenience_and_raw_bytes() -> None:
    prog = build([mov(R0, R2), mul(R0, 3), exit_()])
    assert run(prog, b"abcd") == 12
    assert run(encode(prog), b"ab") == 6


# -- the command line -----------------------------------------------------------------------

def _cli(argv: List[str]) -> int:
    from pybpf.cli import vm_cmd
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    vm_cmd.register(sub)
    args = parser.parse_args(argv)
    return args.handler(args)


UBPF_SUM = """\
mov %r0, 0
ldxb %r3, [%r1]
add %r0, %r3
ldxb %r3, [%r1+1]
add %r0, %r3
exit
"""


def test_cli_vm_run_prints_r0_and_traces(tmp_path: Any, capsys: Any) -> None:
    src = tmp_path / "sum.asm"
    src.write_text(UBPF_SUM)
    assert _cli(["vm", "run", "--dialect", "ubpf", str(src), "--mem", "28 02"]) == 0
    assert capsys.readouterr().out == "0x2a\n"
    assert _cli(["vm", "run", "--dialect", "ubpf", str(src), "--mem", "2802", "--trace"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("    0: r0 = 0x0")
    assert "; r3 0x0 -> 0x28" in out[1]
    assert out[-2:] == ["6 instructions executed", "0x2a"]


def test_cli_vm_run_raw_and_errors(tmp_path: Any, capsys: Any) -> None:
    from pybpf.cli import CliError
    binary = tmp_path / "p.bin"
    binary.write_bytes(encode(build([ldx(W, R0, R1, 0), exit_()])))
    assert _cli(["vm", "run", "--dialect", "raw", str(binary), "--mem", "01 00 00 00"]) == 0
    assert capsys.readouterr().out == "0x1\n"
    with pytest.raises(CliError, match=r"instruction 0 \(w0 = \*\(u32 \*\)\(r1 \+ 0x0\)\): "
                                       r"read of 4 bytes .* out of bounds of input memory"):
        _cli(["vm", "run", "--dialect", "raw", str(binary), "--mem", "01"])
    with pytest.raises(ValueError, match="--mem"):
        _cli(["vm", "run", "--dialect", "raw", str(binary), "--mem", "zz"])


@pytest.mark.skipif(not os.path.exists(os.path.join(os.path.dirname(__file__), "..", "pybpf",
                                                    "cli", "exec_cmd.py")),
                    reason="pybpf.cli.exec_cmd (listed in COMMAND_MODULES) is not written yet")
def test_cli_main_dispatches_vm_run(tmp_path: Any, capsys: Any) -> None:
    from pybpf.cli import main
    binary = tmp_path / "p.bin"
    binary.write_bytes(encode(build([mov(R0, R2), exit_()])))
    assert main(["vm", "run", "--dialect", "raw", str(binary), "--mem", "00 11 22"]) == 0
    assert capsys.readouterr().out == "0x3\n"
    assert main(["vm", "run", "--dialect", "raw", str(binary), "--max-steps", "0"]) == 1
    assert "stopped after 0 instructions" in capsys.readouterr().err
