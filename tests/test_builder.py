"""The Python builder API and label linking."""

from __future__ import annotations

import pytest

from pybpf.asm import (
    R0, R1, R2, R10, InvalidInstruction, LinkError, Pseudo, decode, encode, helper, link,
)
from pybpf.asm.builder import (
    DW, W, Builder, Label, add, atomic_add, build, call, call_local, exit_, gotol, ja, jeq,
    jne32, ld_func, ld_map_fd, ld_map_value, lddw, ldx, mov, mov32, movsx, stx,
)


def test_counter_program_encodes_as_the_kernel_expects() -> None:
    prog = build([
        mov(R1, 0), stx(DW, R10, -8, R1), mov(R2, R10), add(R2, -8),
        ld_map_fd(R1, "counts"), call("map_lookup_elem"), jeq(R0, 0, "out"),
        mov(R1, 1), atomic_add(DW, R0, 0, R1),
        Label("out"), mov(R0, 0), exit_(),
    ])
    assert prog[6].off == 3 - 1 and prog[6].reference == "out"   # lddw counts two slots
    assert prog[4].src == Pseudo.MAP_FD and prog[4].reference == "counts"
    assert prog[5].imm == helper("map_lookup_elem").id == 1
    assert encode(prog).hex() == (
        "b701000000000000" "7b1af8ff00000000" "bfa2000000000000" "07020000f8ffffff"
        "1811000000000000" "0000000000000000" "8500000001000000" "1500020000000000"
        "b701000001000000" "db10000000000000" "b700000000000000" "9500000000000000")
    assert decode(encode(prog)) == prog


def test_backward_jumps_local_calls_and_function_pointers() -> None:
    prog = build([
        Label("top"), mov32(R1, 1), jne32(R1, 0, "top"), call_local("f"), ld_func(R2, "f"),
        gotol("top"), Label("f"), exit_(),
    ])
    assert prog[1].off == -2
    assert prog[2].imm == 3          # f is at slot 6, call at slot 2
    assert prog[3].imm == 2          # lddw at slots 3-4, f at 6
    assert prog[4].imm == -6 and prog[4].opcode == 0x06


def test_duplicate_and_undefined_labels() -> None:
    with pytest.raises(LinkError, match="duplicate label 'a'"):
        build([Label("a"), exit_(), Label("a"), exit_()])
    with pytest.raises(LinkError, match="undefined label 'nowhere'"):
        build([ja("nowhere"), exit_()])


def test_far_jumps_become_gotol_only_when_asked() -> None:
    body = [mov(R0, 0)] * 40000
    with pytest.raises(LinkError, match="'far' is 40000 slots away.*long_jumps"):
        build([ja("far"), *body, Label("far"), exit_()])
    prog = build([ja("far"), *body, Label("far"), exit_()], long_jumps=True)
    assert prog[0].opcode == 0x06 and prog[0].imm == 40000
    with pytest.raises(LinkError, match="'far' is 40000 slots away"):
        build([jeq(R1, 0, "far"), *body, Label("far"), exit_()], long_jumps=True)


def test_builder_records_python_lines() -> None:
    b = Builder(record_source=True)
    b.emit(mov(R0, 0))
    b.label("out").emit(exit_())
    prog = b.link()
    assert prog[0].source.file == __file__ and prog[1].label == "out"
    assert prog[1].source.line == prog[0].source.line + 1


@pytest.mark.parametrize("make, message", [
    (lambda: mov(R1, 1 << 33), "does not fit in 32 bits"),
    (lambda: mov(11, 0), "r0-r10"),
    (lambda: ldx(3, R0, R1), "access size"),
    (lambda: movsx(R1, R2, 64), "sign-extension width"),
    (lambda: stx(DW, R10, 40000, R1), "offset must be"),
    (lambda: call("map_lookup_elm"), "did you mean bpf_map_lookup_elem"),
    (lambda: lddw(R1, 1 << 64), "64-bit int"),
])
def test_bad_operands_raise_typed_errors(make, message) -> None:
    with pytest.raises((InvalidInstruction, KeyError), match=message):
        make()


def test_immediates_and_map_values() -> None:
    assert mov(R1, 0xFFFFFFFF).imm == -1          # a 32-bit pattern is accepted
    assert lddw(R1, -1).imm == (1 << 64) - 1
    assert ld_map_value(R1, "cfg", offset=16).imm == 16 << 32
    assert ldx(W, R0, R1, 4) == ldx(4, R0, R1, 4)
    assert link([mov(R0, 0), exit_()]) == [mov(R0, 0), exit_()]
