"""The LLVM dialect by hand: every Form kind both ways, the syntax llvm-mc accepts,
listings, and errors with their locations.

The exhaustive comparison with LLVM itself is tests/test_llvm_differential.py.
"""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pybpf.asm.disasm import (
    UNKNOWN, ListingLine, disassemble, format_instruction, iter_listing, jump_target,
)
from pybpf.asm.encoding import encode
from pybpf.asm.errors import AsmError, AssemblyError
from pybpf.asm.instruction import Instruction, SourceLocation
from pybpf.asm.llvm_asm import _parse, assemble, parse

# (llvm text, (opcode, dst, src, off, imm)); the text is exactly what llvm-objdump-19
# prints, so it must also be what format_instruction gives back.
FORMS = [
    # alu, both widths, immediate and register
    ("r1 += 0x3", (0x07, 1, 0, 0, 3)),
    ("r1 += r2", (0x0F, 1, 2, 0, 0)),
    ("w1 += 0x3", (0x04, 1, 0, 0, 3)),
    ("w1 += w2", (0x0C, 1, 2, 0, 0)),
    ("r1 -= -0x1", (0x17, 1, 0, 0, -1)),
    ("w9 -= w10", (0x1C, 9, 10, 0, 0)),
    ("r1 *= r2", (0x2F, 1, 2, 0, 0)),
    ("w1 *= 0x7fffffff", (0x24, 1, 0, 0, 0x7FFFFFFF)),
    ("r1 /= 0x3", (0x37, 1, 0, 0, 3)),
    ("w1 /= w2", (0x3C, 1, 2, 0, 0)),
    ("r1 s/= r2", (0x3F, 1, 2, 1, 0)),
    ("w1 s/= 0x3", (0x34, 1, 0, 1, 3)),
    ("r1 |= r2", (0x4F, 1, 2, 0, 0)),
    ("w1 &= 0xff", (0x54, 1, 0, 0, 0xFF)),
    ("r1 <<= 0x20", (0x67, 1, 0, 0, 32)),
    ("w1 >>= w2", (0x7C, 1, 2, 0, 0)),
    ("r1 %= r2", (0x9F, 1, 2, 0, 0)),
    ("w1 s%= w2", (0x9C, 1, 2, 1, 0)),
    ("r1 s%= -0x80000000", (0x97, 1, 0, 1, -0x80000000)),
    ("r1 ^= 0x1", (0xA7, 1, 0, 0, 1)),
    ("r0 = 0x1", (0xB7, 0, 0, 0, 1)),
    ("w0 = -0x5", (0xB4, 0, 0, 0, -5)),
    ("r10 = r1", (0xBF, 10, 1, 0, 0)),
    ("w2 = w3", (0xBC, 2, 3, 0, 0)),
    ("r1 s>>= r2", (0xCF, 1, 2, 0, 0)),
    ("w1 s>>= 0x1f", (0xC4, 1, 0, 0, 31)),
    # neg
    ("r1 = -r1", (0x87, 1, 0, 0, 0)),
    ("w7 = -w7", (0x84, 7, 0, 0, 0)),
    # end (le/be: printed with r registers even in class ALU) and bswap
    ("r3 = le16 r3", (0xD4, 3, 0, 0, 16)),
    ("r3 = le64 r3", (0xD4, 3, 0, 0, 64)),
    ("r3 = be32 r3", (0xDC, 3, 0, 0, 32)),
    ("r3 = bswap16 r3", (0xD7, 3, 0, 0, 16)),
    ("r3 = bswap64 r3", (0xD7, 3, 0, 0, 64)),
    # movsx
    ("r1 = (s8)r2", (0xBF, 1, 2, 8, 0)),
    ("r1 = (s32)r2", (0xBF, 1, 2, 32, 0)),
    ("w1 = (s16)w2", (0xBC, 1, 2, 16, 0)),
    # addr_space_cast: dst space in imm's high half, src space in the low half
    ("r1 = addr_space_cast(r2, 0x0, 0x1)", (0xBF, 1, 2, 1, 0x00000001)),
    ("r1 = addr_space_cast(r2, 0x1, 0x0)", (0xBF, 1, 2, 1, 0x00010000)),
    # ja, gotol, may_goto
    ("goto +0x0", (0x05, 0, 0, 0, 0)),
    ("goto -0x8000", (0x05, 0, 0, -0x8000, 0)),
    ("gotol +0x5", (0x06, 0, 0, 0, 5)),
    ("gotol -0x80000000", (0x06, 0, 0, 0, -0x80000000)),
    ("may_goto +0x3", (0xE5, 0, 0, 3, 0)),
    # call (helper; local and kfunc print the same way), callx, exit
    ("call 0xe", (0x85, 0, 0, 0, 14)),
    ("call -0x1", (0x85, 0, 0, 0, -1)),
    ("callx r3", (0x8D, 3, 0, 0, 0)),
    ("exit", (0x95, 0, 0, 0, 0)),
    # jcmp: every comparison, both widths, both sources
    ("if r1 == 0x3 goto +0x1", (0x15, 1, 0, 1, 3)),
    ("if r1 > r2 goto -0x1", (0x2D, 1, 2, -1, 0)),
    ("if r1 >= 0x3 goto +0x1", (0x35, 1, 0, 1, 3)),
    ("if r1 & r2 goto +0x1", (0x4D, 1, 2, 1, 0)),
    ("if r1 != -0x1 goto +0x1", (0x55, 1, 0, 1, -1)),
    ("if r1 s> r2 goto +0x1", (0x6D, 1, 2, 1, 0)),
    ("if r1 s>= 0x3 goto +0x1", (0x75, 1, 0, 1, 3)),
    ("if r1 < r2 goto +0x1", (0xAD, 1, 2, 1, 0)),
    ("if r1 <= 0x3 goto +0x1", (0xB5, 1, 0, 1, 3)),
    ("if r1 s< r2 goto +0x1", (0xCD, 1, 2, 1, 0)),
    ("if r1 s<= 0x3 goto +0x7fff", (0xD5, 1, 0, 0x7FFF, 3)),
    ("if w1 == w2 goto +0x1", (0x1E, 1, 2, 1, 0)),
    ("if w1 s< -0x80000000 goto -0x8000", (0xC6, 1, 0, -0x8000, -0x80000000)),
    ("if w1 & 0x3 goto +0x1", (0x46, 1, 0, 1, 3)),
    # lddw: one instruction, full 64-bit immediate stored unsigned; pseudo sources
    ("r1 = 0x1234 ll", (0x18, 1, 0, 0, 0x1234)),
    ("r1 = -0x1 ll", (0x18, 1, 0, 0, 2**64 - 1)),
    ("r1 = -0x8000000000000000 ll", (0x18, 1, 0, 0, 2**63)),
    ("r1 = 0x7fffffffffffffff ll", (0x18, 1, 0, 0, 2**63 - 1)),
    ("ld_pseudo\tr1, 0x1, 0x5", (0x18, 1, 1, 0, 5)),
    ("ld_pseudo\tr9, 0x2, 0xffffffff", (0x18, 9, 2, 0, 0xFFFFFFFF)),
    ("ld_pseudo\tr0, 0x6, 0x0", (0x18, 0, 6, 0, 0)),
    # legacy packet loads (result in r0)
    ("r0 = *(u8 *)skb[0x2]", (0x30, 0, 0, 0, 2)),
    ("r0 = *(u16 *)skb[-0x1]", (0x28, 0, 0, 0, -1)),
    ("r0 = *(u32 *)skb[0x7fffffff]", (0x20, 0, 0, 0, 0x7FFFFFFF)),
    ("r0 = *(u8 *)skb[r3]", (0x50, 0, 3, 0, 0)),
    ("r0 = *(u32 *)skb[r10]", (0x40, 0, 10, 0, 0)),
    # ldx: sizes below 64 bits print w registers with -mcpu=v4
    ("w0 = *(u32 *)(r1 + 0x4)", (0x61, 0, 1, 4, 0)),
    ("w0 = *(u16 *)(r1 - 0x2)", (0x69, 0, 1, -2, 0)),
    ("w0 = *(u8 *)(r10 - 0x8000)", (0x71, 0, 10, -0x8000, 0)),
    ("r0 = *(u64 *)(r1 + 0x7fff)", (0x79, 0, 1, 0x7FFF, 0)),
    # ldxsx: always r registers
    ("r0 = *(s32 *)(r1 + 0x2)", (0x81, 0, 1, 2, 0)),
    ("r0 = *(s16 *)(r1 + 0x0)", (0x89, 0, 1, 0, 0)),
    ("r0 = *(s8 *)(r1 - 0x1)", (0x91, 0, 1, -1, 0)),
    # st, stx
    ("*(u32 *)(r10 - 0x8) = 0x5", (0x62, 10, 0, -8, 5)),
    ("*(u16 *)(r10 - 0x2) = -0x7", (0x6A, 10, 0, -2, -7)),
    ("*(u8 *)(r1 + 0x0) = 0x12345", (0x72, 1, 0, 0, 0x12345)),
    ("*(u64 *)(r10 - 0x10) = 0x1", (0x7A, 10, 0, -16, 1)),
    ("*(u32 *)(r10 - 0x2) = w3", (0x63, 10, 3, -2, 0)),
    ("*(u16 *)(r1 + 0x2) = w3", (0x6B, 1, 3, 2, 0)),
    ("*(u8 *)(r1 + 0x2) = w3", (0x73, 1, 3, 2, 0)),
    ("*(u64 *)(r1 + 0x2) = r3", (0x7B, 1, 3, 2, 0)),
    # atomics
    ("lock *(u32 *)(r1 - 0x8) += w2", (0xC3, 1, 2, -8, 0x00)),
    ("lock *(u32 *)(r1 - 0x8) |= w2", (0xC3, 1, 2, -8, 0x40)),
    ("lock *(u64 *)(r1 + 0x0) &= r2", (0xDB, 1, 2, 0, 0x50)),
    ("lock *(u64 *)(r1 + 0x0) ^= r2", (0xDB, 1, 2, 0, 0xA0)),
    ("w2 = atomic_fetch_add((u32 *)(r1 - 0x8), w2)", (0xC3, 1, 2, -8, 0x01)),
    ("r2 = atomic_fetch_or((u64 *)(r1 + 0x0), r2)", (0xDB, 1, 2, 0, 0x41)),
    ("r0 = atomic_fetch_and((u64 *)(r1 + 0x0), r0)", (0xDB, 1, 0, 0, 0x51)),
    ("w2 = atomic_fetch_xor((u32 *)(r1 + 0x0), w2)", (0xC3, 1, 2, 0, 0xA1)),
    ("w2 = xchg32_32(r1 - 0x8, w2)", (0xC3, 1, 2, -8, 0xE1)),
    ("r2 = xchg_64(r1 - 0x8, r2)", (0xDB, 1, 2, -8, 0xE1)),
    ("w0 = cmpxchg32_32(r1 + 0x8, w0, w2)", (0xC3, 1, 2, 8, 0xF1)),
    ("r0 = cmpxchg_64(r1 - 0x8, r0, r2)", (0xDB, 1, 2, -8, 0xF1)),
    # load-acquire / store-release: LLVM 20 syntax (LLVM 19 does not know them)
    ("w0 = load_acquire((u8 *)(r1 + 0x0))", (0xD3, 0, 1, 0, 0x100)),
    ("w0 = load_acquire((u16 *)(r1 + 0x2))", (0xCB, 0, 1, 2, 0x100)),
    ("w0 = load_acquire((u32 *)(r1 - 0x4))", (0xC3, 0, 1, -4, 0x100)),
    ("r0 = load_acquire((u64 *)(r1 + 0x0))", (0xDB, 0, 1, 0, 0x100)),
    ("store_release((u8 *)(r1 + 0x0), w2)", (0xD3, 1, 2, 0, 0x110)),
    ("store_release((u32 *)(r1 + 0x8), w2)", (0xC3, 1, 2, 8, 0x110)),
    ("store_release((u64 *)(r1 + 0x0), r2)", (0xDB, 1, 2, 0, 0x110)),
]


def fields(ins: Instruction) -> tuple:
    return (ins.opcode, ins.dst, ins.src, ins.off, ins.imm)


@pytest.mark.parametrize("text,expected", FORMS, ids=[t for t, _ in FORMS])
def test_form_both_ways(text, expected):
    [ins] = assemble(text)
    assert fields(ins) == expected
    ins.validate()
    assert format_instruction(Instruction(*expected)) == text
    assert str(Instruction(*expected)) == text


def test_every_form_kind_is_covered():
    kinds = {Instruction(*f).form.kind for _, f in FORMS}
    kinds.add("call")  # local and kfunc calls are below
    assert kinds == {
        "alu", "neg", "end", "bswap", "movsx", "addr_space_cast", "ja", "gotol",
        "may_goto", "call", "callx", "exit", "jcmp", "lddw", "ldabs", "ldind", "ldx",
        "ldxsx", "st", "stx", "atomic", "load_acquire", "store_release",
    }


# -- what llvm-mc accepts besides llvm-objdump's spelling -----------------------------------

VARIANTS = [
    # spacing is free, decimal works, and the w forms of 32-bit loads/stores may use r
    ("r0=1", "r0 = 0x1"),
    ("  r0   =\t1  ", "r0 = 0x1"),
    ("*(u32*)(r1+4)=5", "*(u32 *)(r1 + 0x4) = 0x5"),
    ("if r1>3 goto +2", "if r1 > 0x3 goto +0x2"),
    ("r0 = * ( u32 * ) ( r1 + 4 )", "w0 = *(u32 *)(r1 + 0x4)"),
    ("r0 = *(u32 *)(r1 + 4)", "w0 = *(u32 *)(r1 + 0x4)"),
    ("*(u8 *)(r1 + 0) = r2", "*(u8 *)(r1 + 0x0) = w2"),
    ("lock *(u32 *)(r1 + 0) += r2", "lock *(u32 *)(r1 + 0x0) += w2"),
    # numbers: octal, binary, suffixes, characters, expressions with llvm's precedence
    ("r0 = 017", "r0 = 0xf"),
    ("r0 = 0b101", "r0 = 0x5"),
    ("r0 = 0X1F", "r0 = 0x1f"),
    ("r0 = 5ull", "r0 = 0x5"),
    ("r1 = 5ll", "r1 = 0x5"),            # an integer suffix, not the 64-bit load
    ("r0 = 'a'", "r0 = 0x61"),
    ("r0 = '\\n'", "r0 = 0xa"),
    ("r0 = 1 << 4", "r0 = 0x10"),
    ("r0 = 6 - 2 | 1", "r0 = 0x3"),      # | binds tighter than - (GNU as)
    ("r0 = 8 >> 1 + 1", "r0 = 0x5"),
    ("r0 = -7 / 2", "r0 = -0x3"),
    ("r0 = 1 == 1", "r0 = -0x1"),
    ("r0 = 0 + ~0", "r0 = -0x1"),
    ("r0 = 0xffffffff", "r0 = -0x1"),    # 32-bit fields take unsigned spellings
    ("r1 = 0xffffffffffffffff ll", "r1 = -0x1 ll"),
    ("r1 = 1 + 2 ll", "r1 = 0x3 ll"),
    ("r0 = *(u32 *)(r1 - 2+1)", "w0 = *(u32 *)(r1 - 0x1)"),
    ("r0 = *(u32 *)(r1 0x1)", "w0 = *(u32 *)(r1 + 0x1)"),
    ("goto 5", "goto +0x5"),
    ("goto 1+1", "goto +0x2"),
    ("call +1", "call 0x1"),
    ("call 0xffffffff", "call -0x1"),
    ("ld_pseudo r1, 2, 5", "ld_pseudo\tr1, 0x2, 0x5"),
    ("ld_pseudo r1, 1, -1", "ld_pseudo\tr1, 0x1, 0xffffffff"),
    ("ld_pseudo r1, 0, 5", "r1 = 0x5 ll"),
    # operators may be spelled with spaces, commas are optional separators (llvm-mc)
    ("r8 + = 1", "r8 += 0x1"),
    ("r8 < < = 1", "r8 <<= 0x1"),
    ("r8 s >> = 1", "r8 s>>= 0x1"),
    ("if r1 s < = r2 goto +1", "if r1 s<= r2 goto +0x1"),
    ("lock *(u64 *)(r1 + 0) + = r2", "lock *(u64 *)(r1 + 0x0) += r2"),
    ("ld_pseudo r1 2 5", "ld_pseudo\tr1, 0x2, 0x5"),
    ("r2 = xchg_64(r1 + 0 r2)", "r2 = xchg_64(r1 + 0x0, r2)"),
    ("r1 = addr_space_cast(r2 0 1)", "r1 = addr_space_cast(r2, 0x0, 0x1)"),
    ("r0 ,= 1,", "r0 = 0x1"),
    ("if r1 > 1, goto +1", "if r1 > 0x1 goto +0x1"),
    ("r1 = - r1", "r1 = -r1"),
    ("r1 = ( s8 ) r2", "r1 = (s8)r2"),
    ("r0 = *(u8 *) skb [ 1 ]", "r0 = *(u8 *)skb[0x1]"),
    # keywords and registers in any case
    ("EXIT", "exit"),
    ("R0 = 1", "r0 = 0x1"),
    ("If r1 > 3 goto +2", "if r1 > 0x3 goto +0x2"),
    ("CALLX r1", "callx r1"),
    ("Ld_pseudo r1, 2, 5", "ld_pseudo\tr1, 0x2, 0x5"),
    # llvm-objdump output, annotation and all
    ("if r1 > 0x3 goto +0x2 <.text+0x28>", "if r1 > 0x3 goto +0x2"),
    ("goto -0x8000 <.text+0xfffffffffffc0100>", "goto -0x8000"),
    ("gotol +0x7fffffff <.text+0x400000180>", "gotol +0x7fffffff"),
    ("      12:\tr0 = 0x1", "r0 = 0x1"),
    # comments
    ("r0 = 1 # comment", "r0 = 0x1"),
    ("r0 = 1 // comment", "r0 = 0x1"),
    ("/* c */ r0 = 1 /* d */", "r0 = 0x1"),
    # a helper called by name, with or without bpf_
    ("call bpf_map_lookup_elem", "call 0x1"),
    ("call get_current_pid_tgid", "call 0xe"),
]


@pytest.mark.parametrize("text,canonical", VARIANTS, ids=[t for t, _ in VARIANTS])
def test_llvm_mc_spellings(text, canonical):
    assert [str(i) for i in assemble(text)] == [canonical]


def test_statement_separator_is_semicolon_not_a_comment():
    # `;` separates statements in LLVM's BPF assembly: this is three instructions
    ins = assemble("r0 = 1; r1 = 2 ;exit")
    assert [str(i) for i in ins] == ["r0 = 0x1", "r1 = 0x2", "exit"]
    assert [i.source.column for i in ins] == [1, 9, 17]
    assert assemble("exit ;") == assemble("exit")


def test_blank_lines_comments_and_directives():
    text = """
        .text
        .globl  prog                  # clang -S output carries these
        .p2align 3
        .type   prog,@function
    prog:                             // entry
        # a comment line
        // another

        /* a block
           comment */
        r0 = 0
        exit
    .Lfunc_end0:
        .size   prog, .Lfunc_end0-prog
    """
    ins = assemble(text, file="prog.s")
    assert [str(i) for i in ins] == ["r0 = 0x0", "exit"]
    assert ins[0].label == "prog"
    assert ins[0].source == SourceLocation("prog.s", 12, 9, "        r0 = 0")


def test_crlf_line_endings():
    assert [str(i) for i in assemble("r0 = 1\r\nexit\r\n")] == ["r0 = 0x1", "exit"]


# -- labels and references ------------------------------------------------------------------

def test_parse_leaves_labels_unresolved():
    text = ("start:\n  if r1 == 0 goto out\n  call sub\n  goto start\nout: exit\n"
            "sub:\n  r0 = 1\n  exit\n")
    ins = parse(text, file="x.s")
    assert [i.label for i in ins] == ["start", None, None, "out", "sub", None]
    assert [i.reference for i in ins] == ["out", "sub", "start", None, None, None]
    assert ins[1].src == 1  # a local call: sub is a label of this file
    assert ins[0].source == SourceLocation("x.s", 2, 3, "  if r1 == 0 goto out")
    assert ins[3].source.column == 6  # after the label
    linked = assemble(text)
    assert [str(i) for i in linked] == [
        "if r1 == 0x0 goto +0x2", "call 0x2", "goto -0x3", "exit", "r0 = 0x1", "exit"]
    assert linked[1].is_local_call and linked[1].imm == 2


def test_label_that_shadows_a_helper_name_is_a_local_call():
    ins = assemble("call map_lookup_elem\nexit\nmap_lookup_elem:\n r0 = 0\n exit\n")
    assert (ins[0].src, ins[0].imm) == (1, 1)
    assert assemble("call map_lookup_elem\nexit")[0].is_helper_call


def test_several_labels_on_one_instruction():
    ins = assemble("a:\nb: c: r0 = 1\n goto a\n goto b\n goto c\n")
    assert ins[0].label == "a"
    assert [i.off for i in ins[1:]] == [-2, -3, -4]


def test_numeric_local_labels():
    text = "1: r0 = 1\n goto 1b\n goto 1f\n1: exit\n goto 1b\n"
    ins = assemble(text)
    assert [ins[1].off, ins[2].off, ins[4].off] == [-2, 0, -2]


def test_listing_addresses_read_as_numeric_labels():
    ins = assemble("       0:\tr0 = 0x1\n       1:\texit\n")
    assert [str(i) for i in ins] == ["r0 = 0x1", "exit"]
    assert all(i.label is None for i in ins)


def test_ld_pseudo_of_a_function_label():
    ins = assemble("ld_pseudo r1, 4, f\nexit\nf: exit\n")
    assert (ins[0].src, ins[0].imm) == (4, 2)


def test_long_jumps():
    body = "goto far\n" + "r0 = 0\n" * 40000 + "far: exit\n"
    with pytest.raises(AssemblyError, match="long_jumps"):
        assemble(body)
    ins = assemble(body, long_jumps=True)
    assert (ins[0].opcode, ins[0].imm) == (0x06, 40000)


# -- errors ---------------------------------------------------------------------------------

ERRORS = [
    # (text, line, column, fragment of the message)
    ("r11 = 1", 1, 1, "register r11 does not exist"),
    ("r00 = 1", 1, 1, "register r00 does not exist"),
    ("  r0 = 0x100000000", 1, 8, "does not fit in 32 bits"),
    ("r0 = -0x80000001", 1, 6, "does not fit in 32 bits"),
    ("r0 = 0xffffffffffffffff", 1, 6, "does not fit in 32 bits"),  # llvm-mc truncates
    ("r1 = 0x10000000000000000 ll", 1, 6, "does not fit in 64 bits"),
    ("r0 = *(u32 *)(r1 + 0x8000)", 1, 18, "offset 0x8000 does not fit in 16 bits"),
    ("r0 = *(u32 *)(r1)", 1, 17, "unexpected ')'"),
    ("goto +0x8000", 1, 6, "does not fit in 16 bits"),
    ("gotol +0x80000000", 1, 7, "does not fit in 32 bits"),
    ("w1 += r2", 1, 7, "r2 is a 64-bit register"),
    ("if r1 == w2 goto +1", 1, 10, "w2 is a 32-bit register"),
    ("*(u64 *)(r1 + 0) = w2", 1, 20, "w2 is a 32-bit register"),
    ("r1 = le16 r2", 1, 11, "must be the same register as r1"),
    ("r1 = -r2", 1, 7, "must be the same register as r1"),
    ("r2 = xchg_64(r1 + 0, r3)", 1, 22, "must be the same register as r2"),
    ("r3 = cmpxchg_64(r1 + 0, r3, r2)", 1, 1, "compares with and returns in r0"),
    ("w1 = (s32)w2", 1, 6, "(s32) sign extension needs 64-bit registers"),
    ("w1 = bswap16 w1", 1, 1, "byte swaps work on 64-bit registers"),
    ("lock *(u64 *)(r1 + 0) -= r2", 1, 23, "an atomic operation"),
    ("lock *(u16 *)(r1 + 0) += w2", 1, 8, "one of u32, u64"),
    ("r0 = *(u64 *)skb[1]", 1, 8, "legacy packet loads of u64 do not exist"),
    ("r1 = *(u8 *)skb[0]", 1, 1, "legacy packet loads always write r0"),
    ("w0 = *(s8 *)(r1 + 0)", 1, 1, "sign-extending loads write 64-bit registers"),
    ("ld_pseudo r1, 7, 5", 1, 15, "pseudo source 0x7 is not defined"),
    ("w1 = 1 ll", 1, 1, "a 64-bit constant load needs a 64-bit register"),
    ("r1 = r2 ll", 1, 9, "'ll' loads a constant"),
    ("callx 5", 1, 7, "unexpected '5'"),
    ("call r1", 1, 6, "use callx"),
    ("frob r1", 1, 1, "unknown instruction"),
    ("exit exit", 1, 6, "after the instruction"),
    ("if r1 >> 3 goto +1", 1, 7, "a comparison"),
    ("if r1 > 3", 1, 10, "'goto'"),
    ("r1 = 1 +", 1, 9, "unexpected end of statement"),
    ("r0 = 5 / 0", 1, 8, "division by zero"),
    ("r0 = 08", 1, 6, "malformed octal number"),
    ("r0 = 0x", 1, 6, "malformed number"),
    ("r0 = 1 @", 1, 8, "unexpected character '@'"),
    ("r0 = foo ll", 1, 6, "symbol 'foo' cannot be used here"),
    (",r0 = 1", 1, 1, "unexpected ','"),
    (".section .data", 1, 1, "directive .section is not supported"),
    ("r1 = addr_space_cast(r2, 0x0, 0x0)", 1, 26, "address spaces 0 and 1 only"),
    ("r1 = addr_space_cast(r2, 0x10000, 0)", 1, 26, "does not fit in 16 bits"),
    ("r0 = 1\nfoo:\nfoo: exit", 3, 1, "label 'foo' is already defined on line 2"),
    ("r0 = 1\n  goto nowhere", 2, 3, "undefined label 'nowhere'"),
    ("goto end\nend:", 1, 1, "at the end of the program"),
    ("goto 1f\nexit", 1, 1, "no local label 1: after this instruction"),
    ("call bpf_map_lookup_elm", 1, 1, "did you mean bpf_map_lookup_elem"),
    ("r0 = 1\n/* never closed\nexit", 2, 1, "unterminated /* comment"),
    ("r1 = " + "(" * 100 + "1" + ")" * 100, 1, 71, "nested too deeply"),
    ("r1 = " + "-" * 5000 + "1", 1, 71, "nested too deeply"),
    (" " * 100000 + "x", 1, 100001, "unknown instruction"),
    ("r0 = " + "9" * 5000, 1, 6, "far too large"),
]


@pytest.mark.parametrize("text,line,column,fragment", ERRORS, ids=[e[0][:40] for e in ERRORS])
def test_errors_are_located(text, line, column, fragment):
    with pytest.raises(AssemblyError) as info:
        assemble(text, file="bad.s")
    err = info.value
    assert fragment in str(err)
    assert (err.file, err.line, err.column) == ("bad.s", line, column)
    assert err.text == text.split("\n")[line - 1]
    assert str(err).startswith(f"bad.s:{line}:{column}: error: ")
    assert "^" in str(err)


def test_error_says_what_was_expected():
    with pytest.raises(AssemblyError) as info:
        assemble("r0 = 0x100000000")
    assert info.value.expected == "a value from -0x80000000 to 0xffffffff, or a 64-bit " \
                                  "constant with 'll'"
    with pytest.raises(AssemblyError) as info:
        assemble("w1 += r2")
    assert info.value.expected == "w2"


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(list("rw0123456789 +-*/=<>()[],;:#&|^!~'.xsulgotifexcab_\t\n")
                               + ["r1", "w2", "goto", "if", "ll", "u32", "skb", "lock",
                                  "call", "0x7fffffff", "(u64 *)", "*(u32 *)(r1 + 0x4)",
                                  "atomic_fetch_add(", "xchg_64(", "/*", "*/", "1b", "1f"]),
                max_size=30).map("".join))
def test_only_assembly_errors_escape(text):
    try:
        ins = assemble(text)
    except AsmError:
        return
    for i in ins:
        i.validate()
    # whatever was accepted prints and reads back (symbolic: local calls included)
    assert [(fields(i), i.src) for i in assemble(disassemble(ins, symbolic=True))] == \
        [(fields(i), i.src) for i in ins]


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_arbitrary_unicode_only_raises_assembly_errors(text):
    try:
        assemble(text)
    except AsmError:
        pass


# -- the fast paths agree with the reference parser ----------------------------------------

_TOKENS = ["r1", "w1", "r11", "R2", "0x10", "-0x8000", "0x7fff", "0x8000", "+", "-", "=",
           "ll", ",", ")", "(", "*", "goto", "#c", ";", "lbl", "1b", "1f", "<.text+0x8>",
           "0xffffffff", "0x100000000", "017", "08", "5ll", "'a'", "s", "u64", "u8",
           "0b11", "1_0", "0o7", "\u0663"]


def _mutate(rng: random.Random, line: str) -> str:
    toks = line.split(" ")
    k = rng.randrange(8)
    if k == 0:
        return line.replace(" ", "", rng.randrange(1, 4))
    if k == 1:
        return re.sub(" ", lambda m: rng.choice([" ", "  ", "\t"]), line)
    if k == 2:
        i = rng.randrange(len(toks))
        toks[i] = toks[i].upper()
    elif k == 3:
        toks[rng.randrange(len(toks))] = rng.choice(_TOKENS)
    elif k == 4 and len(toks) > 1:
        del toks[rng.randrange(len(toks))]
    elif k == 5:
        toks.insert(rng.randrange(len(toks) + 1), rng.choice(_TOKENS))
    elif k == 6:
        return rng.choice(["lbl: ", "  ", "1: "]) + line + rng.choice(["", " # x", " ;"])
    else:
        chars = list(line)
        digits = [i for i, c in enumerate(chars) if c.isdigit()]
        if digits:
            chars[rng.choice(digits)] = rng.choice("0123456789abcdefx")
        return "".join(chars)
    return " ".join(toks)


def _outcome(text: str, fast: bool):
    try:
        out = _parse(text, "f", fast).out
    except AsmError as exc:
        return str(exc)
    for ins in out:
        ins.validate()  # assemble() relies on parse() building only valid encodings
    return [(fields(i), i.reference, i.label, i.source) for i in out]


def test_fast_paths_agree_with_the_reference_parser():
    rng = random.Random(1234)
    lines = [text for text, _ in FORMS] + [text for text, _ in VARIANTS]
    checked = 0
    for _ in range(6):
        for line in lines:
            text = _mutate(rng, line)
            if rng.random() < 0.3:
                text = _mutate(rng, text)
            text += "\nlbl2: exit"
            assert _outcome(text, True) == _outcome(text, False), text
            checked += 1
    assert checked > 1000


# -- disassembly ----------------------------------------------------------------------------

def test_branch_annotations_like_llvm_objdump():
    ja = Instruction(0x05, 0, 0, 5, 0)
    assert format_instruction(ja, pc=1, section=".text") == "goto +0x5 <.text+0x38>"
    assert format_instruction(Instruction(0x05), pc=4, section=".text") == \
        "goto +0x0 <.text+0x28>"
    # a target at the section start has no +0x0, a negative one wraps around 64 bits
    assert format_instruction(Instruction(0x05, 0, 0, -1, 0), pc=0, section=".text") == \
        "goto -0x1 <.text>"
    assert format_instruction(Instruction(0x05, 0, 0, -0x8000, 0), pc=31,
                              section=".text") == "goto -0x8000 <.text+0xfffffffffffc0100>"
    assert format_instruction(Instruction(0x06, 0, 0, 0, 0x7FFFFFFF), pc=48,
                              section=".text") == "gotol +0x7fffffff <.text+0x400000180>"
    assert format_instruction(Instruction(0xE5, 0, 0, -1, 0), pc=50, section="xdp") == \
        "may_goto -0x1 <xdp+0x190>"
    # the closest label at or below the target names it, as llvm uses symbols
    jcmp = Instruction(0x15, 0, 0, -2, 0)
    assert format_instruction(jcmp, pc=1, section=".text", labels={0: "foo", 1: "bar"}) \
        == "if r0 == 0x0 goto -0x2 <foo>"
    assert format_instruction(Instruction(0x05, 0, 0, 0x7FFF, 0), pc=2, section=".text",
                              labels={1: "foo", 2: "bar"}) == "goto +0x7fff <bar+0x40000>"
    # no annotation for calls and non-branches, nor without both pc and section
    assert format_instruction(Instruction(0x85, 0, 1, 0, -1), pc=3, section=".text") == \
        "call -0x1"
    assert format_instruction(ja, pc=1) == "goto +0x5"
    assert jump_target(ja, 1) == 7 and jump_target(Instruction(0x95), 0) is None


def test_invalid_instructions_print_as_unknown():
    assert format_instruction(Instruction(0x07, 11, 0, 0, 1)) == UNKNOWN
    assert str(Instruction(0xFF)) == UNKNOWN
    [line] = list(iter_listing([Instruction(0x07, 1, 0, 5, 1)]))
    assert line.text == UNKNOWN and "off" in line.comment


def test_ambiguous_llvm_texts():
    # llvm prints these the same as their neighbours; pybpf prints exactly what llvm does
    assert str(Instruction(0x85, 0, 1, 0, 5)) == str(Instruction(0x85, 0, 0, 0, 5)) == "call 0x5"
    assert str(Instruction(0x85, 0, 2, 3, 5)) == "call 0x5"
    assert str(Instruction(0x40, 0, 3, 0, 7)) == "r0 = *(u32 *)skb[r3]"
    assert str(Instruction(0x18, 1, 2, 0, 0x0000000700000005)) == "ld_pseudo\tr1, 0x2, 0x5"


PROGRAM = """
start:
    r1 = 0
    call bpf_get_current_pid_tgid
    if r0 == 0 goto out
    call sub
    ld_pseudo r2, 1, 3
    goto start
out:
    exit
sub:
    r0 = 1
    exit
"""


def test_disassemble_listing():
    listing = disassemble(assemble(PROGRAM))
    assert listing == (
        "start:\n"
        "       0:\tr1 = 0x0\n"
        "       1:\tcall 0xe  # bpf_get_current_pid_tgid\n"
        "       2:\tif r0 == 0x0 goto +0x4 <out>\n"
        "       3:\tcall 0x4  # bpf-to-bpf call to <sub>\n"
        "       4:\tld_pseudo\tr2, 0x1, 0x3  # map fd\n"
        "       6:\tgoto -0x7 <start>\n"
        "\n"
        "out:\n"
        "       7:\texit\n"
        "\n"
        "sub:\n"
        "       8:\tr0 = 0x1\n"
        "       9:\texit\n")


def test_disassemble_options():
    code = encode(assemble(PROGRAM))  # bytes carry no labels
    plain = disassemble(code, helper_comments=False, addresses=False, section=None)
    assert plain.splitlines()[:3] == ["\tr1 = 0x0", "\tcall 0xe", "\tif r0 == 0x0 goto +0x4"]
    raw = disassemble(code, show_bytes=True).splitlines()
    assert raw[0] == "       0:\tb7 01 00 00 00 00 00 00\tr1 = 0x0"
    assert raw[4].startswith("       4:\t18 12 00 00 03 00 00 00 00 00 00 00 00 00 00 00\t")
    auto = disassemble(code, labels=True)
    assert "L7:\n       7:\texit" in auto and "goto -0x7 <L0>" in auto
    assert "goto +0x4 <L7>" in auto and "call 0x4  # bpf-to-bpf call to <L8>" in auto
    named = disassemble(code, labels={8: "sub"})
    assert "call 0x4  # bpf-to-bpf call to <sub>" in named
    assert disassemble(b"") == ""


def test_listing_round_trips():
    ins = assemble(PROGRAM)
    back = assemble(disassemble(ins))
    # the same instructions, except that llvm's `call 0x4` reads back as a helper call
    assert [i.src for i in back if i.opcode == 0x85] == [0, 0]
    back[3].src = 1
    assert back == ins
    symbolic = disassemble(ins, symbolic=True)
    assert "goto out" in symbolic and "call sub  #" in symbolic
    again = assemble(symbolic)
    assert [(fields(i), i.src) for i in again] == [(fields(i), i.src) for i in ins]


def test_iter_listing_records():
    lines = list(iter_listing(assemble(PROGRAM)))
    assert all(isinstance(line, ListingLine) for line in lines)
    first = lines[1]
    assert (first.address, first.text, first.comment, first.label) == \
        (1, "call 0xe", "bpf_get_current_pid_tgid", None)
    assert first.instruction == Instruction(0x85, 0, 0, 0, 14)
    assert [line.address for line in lines] == [0, 1, 2, 3, 4, 6, 7, 8, 9]
    assert lines[0].label == "start"


def test_disassemble_every_form_text_assembles_back():
    instructions = [Instruction(*f) for _, f in FORMS]
    text = disassemble(instructions)
    assert assemble(text) == instructions
