"""The uBPF assembly dialect: syntax, numbers, labels, errors, the printer, and the
conformance corpus (every program assembles, every malformed file is rejected)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import List

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from isa_samples import forms_by_name, random_instruction
from pybpf.asm import AssemblyError, DecodeError, Instruction, encode, form_of
from pybpf.asm.assembler import assemble as assemble_any
from pybpf.asm.ubpf_asm import MNEMONICS, assemble, format_program, format_ubpf, parse
from pybpf.conformance.corpus import CorpusError, load_case, parse_case

# the corpus lives beside the repository: ../shared/conformance
CORPUS = (Path(__file__).resolve().parent.parent / ".." / "shared" / "conformance").resolve()
TESTS = sorted((CORPUS / "tests").glob("*.data"))
NEGATIVE = sorted((CORPUS / "negative").glob("*.data"))
needs_corpus = pytest.mark.skipif(not TESTS, reason="conformance corpus not present")


def one(text: str) -> Instruction:
    prog = assemble(text)
    assert len(prog) == 1
    return prog[0]


def enc(text: str) -> str:
    return encode(assemble(text)).hex()


def error_of(text: str, file: str = "t.s") -> AssemblyError:
    with pytest.raises(AssemblyError) as info:
        assemble(text, file=file)
    return info.value


# -- syntax ----------------------------------------------------------------------------

ENCODINGS = [
    ("mov %r0, 1", "b700000001000000"),
    ("mov32 %r0, 1", "b400000001000000"),
    ("mov %r1, %r2", "bf21000000000000"),
    ("add32 %r3, %r4", "0c43000000000000"),
    ("sub %r1, -1", "17010000ffffffff"),
    ("mul32 %r2, 7", "2402000007000000"),
    ("div %r1, %r2", "3f21000000000000"),
    ("sdiv %r1, %r2", "3f21010000000000"),
    ("sdiv32 %r1, 3", "3401010003000000"),
    ("smod %r1, %r2", "9f21010000000000"),
    ("smod32 %r1, 3", "9401010003000000"),
    ("mod32 %r1, 3", "9401000003000000"),
    ("or %r1, 0x0f", "470100000f000000"),
    ("and32 %r1, %r9", "5c91000000000000"),
    ("lsh %r1, 3", "6701000003000000"),
    ("rsh32 %r1, %r2", "7c21000000000000"),
    ("arsh %r1, 63", "c70100003f000000"),
    ("xor %r1, %r1", "af11000000000000"),
    ("neg %r3", "8703000000000000"),
    ("neg32 %r3", "8403000000000000"),
    ("movsx832 %r0, %r1", "bc10080000000000"),
    ("movsx1632 %r0, %r1", "bc10100000000000"),
    ("movsx864 %r0, %r1", "bf10080000000000"),
    ("movsx1664 %r0, %r1", "bf10100000000000"),
    ("movsx3264 %r0, %r1", "bf10200000000000"),
    ("le16 %r0", "d400000010000000"),
    ("le64 %r0", "d400000040000000"),
    ("be32 %r0", "dc00000020000000"),
    ("bswap16 %r0", "d700000010000000"),
    ("bswap64 %r0", "d700000040000000"),
    ("swap16 %r0", "d700000010000000"),       # the corpus's aliases of bswapNN
    ("swap32 %r0", "d700000020000000"),
    ("swap64 %r0", "d700000040000000"),
    ("ldxb %r0, [%r1+2]", "7110020000000000"),
    ("ldxh %r0, [%r1]", "6910000000000000"),
    ("ldxw %r0, [%r10-4]", "61a0fcff00000000"),
    ("ldxdw %r0, [%r1+0x10]", "7910100000000000"),
    ("ldxsb %r0, [%r10-1]", "91a0ffff00000000"),
    ("ldxsh %r0, [%r10-2]", "89a0feff00000000"),
    ("ldxsw %r0, [%r10-4]", "81a0fcff00000000"),
    ("stb [%r10-1], 0x80", "720affff80000000"),
    ("sth [%r10-2], 0x8001", "6a0afeff01800000"),
    ("stw [%r10-4], -1", "620afcffffffffff"),
    ("stdw [%r10-16], 0xab", "7a0af0ffab000000"),
    ("stxb [%r0+1], %r9", "7390010000000000"),
    ("stxh [%r1+2], %r2", "6b21020000000000"),
    ("stxw [%r10-4], %r1", "631afcff00000000"),
    ("stxdw [%r10-8], %r0", "7b0af8ff00000000"),
    ("lddw %r0, 0x1122334455667788", "1800000088776655" "0000000044332211"),
    ("lddw %r1, -1", "18010000ffffffff" "00000000ffffffff"),
    ("lddw %r1, map_fd(5)", "1811000005000000" "0000000000000000"),
    ("lddw %r1, map_value(5, 16)", "1821000005000000" "0000000010000000"),
    ("ldabsw 0x10", "2000000010000000"),
    ("ldabsh 2", "2800000002000000"),
    ("ldindb %r3, 4", "5030000004000000"),
    ("ja +1\nexit\nexit", "0500010000000000" "9500000000000000" "9500000000000000"),
    ("ja32 -1", "06000000ffffffff"),
    ("jeq %r1, 0x80000000, +1", "1501010000000080"),
    ("jne32 %r1, %r2, -2", "5e21feff00000000"),
    ("jsle %r1, 0xfffffffd, +0", "d5010000fdffffff"),
    ("may_goto +3", "e500030000000000"),
    ("call 5", "8500000005000000"),
    ("call helper 5", "8500000005000000"),
    ("call bpf_ktime_get_ns", "8500000005000000"),
    ("call local +2", "8510000002000000"),
    ("call kfunc 7", "8520000007000000"),
    ("call kfunc 7, 1", "8520010007000000"),
    ("call %r2", "8d02000000000000"),          # callx: register in dst, as LLVM 19
    ("callx %r3", "8d03000000000000"),
    ("exit", "9500000000000000"),
    ("lock add [%r10-8], %r1", "db1af8ff00000000"),
    ("lock add32 [%r10-4], %r1", "c31afcff00000000"),
    ("lock fetch add [%r1], %r2", "db21000001000000"),
    ("lock or32 [%r1], %r2", "c321000040000000"),
    ("lock fetch and [%r1], %r2", "db21000051000000"),
    ("lock fetch xor32 [%r1], %r2", "c3210000a1000000"),
    ("lock xchg [%r1], %r2", "db210000e1000000"),
    ("lock cmpxchg32 [%r10-8], %r1", "c31af8fff1000000"),
    ("load_acquire32 %r0, [%r1+4]", "c310040000010000"),
    ("store_release64 [%r1+8], %r2", "db21080010010000"),
    ("addr_space_cast %r1, %r2, 0, 1", "bf21010001000000"),
]


@pytest.mark.parametrize("text, expected", ENCODINGS)
def test_encodings(text: str, expected: str) -> None:
    assert enc(text) == expected


def _mnemonic_of(text: str) -> str:
    words = text.split("\n")[0].replace(",", " ").split()
    if words[0] == "lock":
        return " ".join(words[:3] if words[1] == "fetch" else words[:2])
    return words[0]


def test_every_mnemonic_is_exercised() -> None:
    covered = {_mnemonic_of(text) for text, _ in ENCODINGS}
    for opcode, src, off, imm in forms_by_name().values():
        for dst in (1, 0):
            try:
                covered.add(_mnemonic_of(format_ubpf(Instruction(opcode, dst, src, off, imm))))
                break
            except Exception:
                continue
    assert set(MNEMONICS) <= covered, sorted(set(MNEMONICS) - covered)


def test_comments_blank_lines_and_whitespace() -> None:
    text = """
    # a comment line
    mov %r0 ,  1   # trailing comment
    ; semicolon comment
    \tadd %r0, 2 ; another
    exit
    """
    assert assemble(text) == assemble("mov %r0, 1\nadd %r0, 2\nexit")


def test_numbers_decimal_hex_binary_octal() -> None:
    assert one("mov %r0, 0x10").imm == 16
    assert one("mov %r0, 0b101").imm == 5
    assert one("mov %r0, 0o17").imm == 15
    assert one("mov %r0, -0x10").imm == -16
    assert one("mov %r0, 010").imm == 10       # leading zero is still decimal


def test_imm32_range_rules() -> None:
    assert one("mov32 %r0, 0x80000000").imm == -0x80000000      # bit pattern
    assert one("mov32 %r0, 0xffffffff").imm == -1
    assert one("mov32 %r0, -2147483648").imm == -0x80000000
    assert one("mov32 %r0, 2147483647").imm == 0x7FFFFFFF
    for bad in ("2147483648", "4294967295", "0x100000000", "-2147483649", "-0x80000001"):
        err = error_of(f"mov32 %r0, {bad}")
        assert "does not fit in 32 bits" in err.message
        assert err.column == 12 and err.line == 1
        assert "0xffffffff" in (err.expected or "")


def test_lddw_range_rules() -> None:
    assert one("lddw %r0, 0xffffffffffffffff").imm == 0xFFFFFFFFFFFFFFFF
    assert one("lddw %r0, -9223372036854775808").imm == 1 << 63
    assert one("lddw %r0, 0xFFFFFFFF80000000").imm == 0xFFFFFFFF80000000
    assert "64 bits" in error_of("lddw %r0, 9223372036854775808").message
    assert "64 bits" in error_of("lddw %r0, 0x10000000000000000").message


def test_offset_range_rules() -> None:
    assert one("ldxb %r0, [%r1-0x8000]").off == -0x8000
    assert one("ldxb %r0, [%r1+32767]").off == 32767
    assert one("ldxb %r0, [%r1+-2]").off == -2
    for bad in ("+0x10000", "+0x8000", "+32768", "-32769"):
        err = error_of(f"ldxb %r0, [%r1{bad}]")
        assert "signed 16-bit" in err.message
    assert "out of range" in error_of("ja +32768").message
    assert one("ja32 +40000").imm == 40000


def test_registers() -> None:
    err = error_of("or %r0, %r50")
    assert "%r50" in err.message and err.column == 9
    assert "%r0 to %r10" in (err.expected or "")
    assert "%r11" in error_of("mov %r11, 1").message
    assert "invalid destination register 'r0'" in error_of("mov r0, 1").message


# -- labels ----------------------------------------------------------------------------

def test_parse_keeps_labels_references_and_locations() -> None:
    prog = parse("start:\n  jeq %r1, 0, done\nmov %r0, 1\ndone: exit\n", file="p.s")
    assert prog[0].label == "start"
    assert prog[0].reference == "done" and prog[0].off == 0
    assert prog[2].label == "done"
    assert prog[0].source.file == "p.s" and prog[0].source.line == 2
    assert prog[0].source.column == 3 and prog[0].source.text == "  jeq %r1, 0, done"
    linked = assemble("start:\n  jeq %r1, 0, done\nmov %r0, 1\ndone: exit\n")
    assert linked[0].off == 1


def test_several_labels_on_one_instruction() -> None:
    prog = parse("a:\nb:\nexit")
    assert prog[0].label == ("a", "b")
    assert assemble("ja b\na:\nb:\nexit")[0].off == 0


def test_implicit_exit_label_is_the_first_exit() -> None:
    prog = assemble("jeq %r1, 0, exit\nmov %r0, 1\nexit\nmov %r0, 2\nexit")
    assert prog[0].off == 1
    # an explicit label named exit wins
    prog = assemble("jeq %r1, 0, exit\nexit\nexit:\nexit")
    assert prog[0].off == 1


def test_local_calls_and_gotol_take_labels() -> None:
    prog = assemble("call local f\nexit\nf:\nmov %r0, 1\nexit")
    assert prog[0].src == 1 and prog[0].imm == 1
    prog = assemble("ja32 t\nexit\nt: exit")
    assert prog[0].opcode == 0x06 and prog[0].imm == 1
    prog = assemble("lddw %r1, func(f)\nexit\nf: exit")
    assert prog[0].src == 4 and prog[0].imm == 2     # counted from lddw's second slot


def test_label_errors() -> None:
    err = error_of("ja NOT_A_LABEL\nexit")
    assert err.message == "undefined label 'NOT_A_LABEL'" and (err.line, err.column) == (1, 4)
    assert "did you mean done" in error_of("ja dnoe\ndone: exit").message
    err = error_of("a: exit\na: exit")
    assert "duplicate label 'a'" in err.message and "line 1" in err.message and err.line == 2
    assert "names no instruction" in error_of("exit\nend:").message


# -- errors ----------------------------------------------------------------------------

def test_error_format_has_location_text_caret_and_expectation() -> None:
    err = error_of("mov %r0, 1\nldxq %r0, %r1\n", file="bad.s")
    text = str(err)
    assert text.startswith("bad.s:2:1: error: unknown mnemonic 'ldxq'")
    assert "did you mean" in text
    assert "\n    ldxq %r0, %r1\n    ^" in text


@pytest.mark.parametrize("text, fragment", [
    ("lddw %r0", "invalid number of operands for lddw"),
    ("mov %r0", "invalid number of operands for mov"),
    ("exit %r0", "invalid number of operands for exit"),
    ("lock or [%r10-8]", "invalid number of operands for lock"),
    ("lock", "invalid number of operands for lock"),
    ("lock fetch xchg [%r1], %r2", "unknown atomic operation"),
    ("ldxb %r0, %r1", "expected a memory operand"),
    ("ldxb %r0, [%r1*2]", "malformed memory operand"),
    ("stxw [%r1+x], %r2", "is not a number"),
    ("mov %r0, abc", "is not a number"),
    ("jeq %r1, 0, 1x", "invalid jump target"),
    ("call local", "needs a target"),
    ("call nosuchhelper", "unknown helper"),
    ("call remote 5", "unknown call kind"),
    ("lddw %r0, bogus(1)", "unknown lddw pseudo source"),
    ("mov %r0,", "empty operand"),
    ("neg %r0, 1", "invalid number of operands for neg"),
])
def test_error_messages(text: str, fragment: str) -> None:
    err = error_of(text)
    assert fragment in err.message
    assert err.line == 1 and err.column >= 1 and err.expected


def test_encoding_rule_errors_are_located() -> None:
    # an InvalidInstruction from validation comes back as a located AssemblyError
    err = error_of("mov %r0, 1\nlddw %r1, map_fd(1, 2)")
    assert err.line == 2 and err.column == 1 and "second slot" in err.message


def test_addr_space_cast_operands() -> None:
    assert one("addr_space_cast %r1, %r2, 1, 0").imm == 1 << 16
    assert one("addr_space_cast %r1, %r2, 0, 1").imm == 1
    assert "out of range" in error_of("addr_space_cast %r1, %r2, 65536, 0").message


def test_dialect_entry_point() -> None:
    assert assemble_any("mov %r0, 1\nexit", dialect="ubpf") == assemble("mov %r0, 1\nexit")


# -- printer ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(forms_by_name()))
def test_every_form_has_a_spelling(name: str) -> None:
    opcode, src, off, imm = forms_by_name()[name]
    for dst in (1, 0):
        ins = Instruction(opcode, dst, src, off, imm)
        try:
            ins.validate()
            break
        except Exception:
            continue
    text = format_ubpf(ins)
    assert assemble(text) == [ins], text
    assert form_of(ins.opcode, ins.dst, ins.src, ins.off, ins.imm).name == name


@st.composite
def valid_instructions(draw: st.DrawFn) -> Instruction:
    return random_instruction(random.Random(draw(st.integers(0, 2**32 - 1))))


@settings(max_examples=3000, deadline=None)
@given(valid_instructions())
def test_format_assemble_roundtrip(ins: Instruction) -> None:
    text = format_ubpf(ins)
    assert assemble(text) == [ins], text


@settings(max_examples=300, deadline=None)
@given(st.lists(valid_instructions(), min_size=1, max_size=10))
def test_program_roundtrip(program: List[Instruction]) -> None:
    assert assemble(format_program(program)) == program


def test_format_program_prints_labels_and_symbolic_targets() -> None:
    text = "jeq %r1, 0, out\nmov %r0, 1\nout:\nexit\n"
    assert format_program(parse(text)) == text


# -- the conformance corpus -------------------------------------------------------------

@needs_corpus
@pytest.mark.parametrize("path", TESTS, ids=[p.name for p in TESTS])
def test_corpus_file_assembles(path: Path) -> None:
    case = load_case(path)
    program = case.program()
    assert program, "empty program"
    # the printer reproduces every instruction of the corpus
    for ins in program:
        bare = ins.replace(reference=None, label=None)
        assert assemble(format_ubpf(bare)) == [bare]
    raw = case.raw_program()
    if raw is not None:
        assert raw == program


# Every malformed file and who rejects it: "parser" (the .data reader), "assembler",
# "decoder" (a -- raw program breaking the encoding rules), "verifier" and "result"
# (need a kernel: tests/test_conformance_kernel.py).
NEGATIVE_EXPECTED = {
    "empty.data": ("parser", "has no program"),
    "empty_instructions.data": ("parser", "has no program"),
    "invalid_unknown_directive.data": ("parser", "unknown section '-- Unknown directive'"),
    "invalid_imm32_dec_range.data": ("assembler", "immediate 2147483648 does not fit in 32 bits"),
    "invalid_imm32_hex_range.data": ("assembler", "immediate 0x100000000 does not fit in 32 bits"),
    "invalid_label.data": ("assembler", "undefined label 'NOT_A_LABEL'"),
    "invalid_lock.data": ("assembler", "invalid number of operands for lock"),
    "invalid_lock2.data": ("assembler", "invalid number of operands for lock"),
    "invalid_mnemonic.data": ("assembler", "unknown mnemonic 'ldxq'"),
    "invalid_offset.data": ("assembler", "expected a memory operand"),
    "invalid_offset_range.data": ("assembler", "does not fit in a signed 16-bit field"),
    "invalid_operand_count.data": ("assembler", "invalid number of operands for lddw"),
    "invalid_register.data": ("assembler", "invalid source register '%r50'"),
    "error.data": ("verifier", "R0 !read_ok"),
    # mov with off=1 is not RFC 9669 but Linux's addr_space_cast, and imm 0 (space 0 to 0)
    # is not a conversion Linux defines
    "unused-mov64_reg-offset.data": ("decoder",
                                     "addr_space_cast converts between address spaces 0 and 1"),
    "unused-mov_reg-offset.data": ("decoder", "sign-extension width must be one of (8, 16)"),
    "incorrect_return_value_high_bits.data": ("result", "expected 0x8977665544332211"),
}
# unused-<form>-<field>.data: a reserved field is non-zero
_FIELD_WORDS = {"offset": "off", "src": "src", "dst": "dst", "imm": "imm"}


def _negative_expectation(name: str):
    if name in NEGATIVE_EXPECTED:
        return NEGATIVE_EXPECTED[name]
    assert name.startswith("unused-"), f"no expectation declared for negative/{name}"
    return ("decoder", "must be 0")


@needs_corpus
def test_every_negative_file_has_an_expectation() -> None:
    names = {p.name for p in NEGATIVE}
    assert set(NEGATIVE_EXPECTED) <= names
    for name in names:
        _negative_expectation(name)


@needs_corpus
@pytest.mark.parametrize("path", NEGATIVE, ids=[p.name for p in NEGATIVE])
def test_negative_file_is_rejected(path: Path) -> None:
    stage, fragment = _negative_expectation(path.name)
    if stage == "parser":
        with pytest.raises(CorpusError) as info:
            load_case(path)
        assert fragment in str(info.value)
        assert str(path) in str(info.value)
        return
    case = load_case(path)
    if stage == "assembler":
        with pytest.raises(AssemblyError) as err:
            case.program()
        exc = err.value
        assert fragment in exc.message
        # located in the .data file itself, with the offending line
        assert exc.file == str(path) and exc.line > 0 and exc.column > 0
        assert exc.text.strip() and exc.text in path.read_text()
        assert exc.expected
    elif stage == "decoder":
        assert case.asm is None and case.raw is not None and case.expects_error
        with pytest.raises(DecodeError) as derr:
            case.program()
        assert fragment in str(derr.value)
        if path.name not in NEGATIVE_EXPECTED:      # names the reserved field
            assert _FIELD_WORDS[path.name[:-5].rsplit("-", 1)[1]] in str(derr.value)
        assert derr.value.offset == 0
    else:
        # accepted by the assembler; the kernel test checks the verifier / the result
        assert case.program()


def test_corpus_parser_details() -> None:
    case = parse_case("# c\n-- asm\nmov %r0, 1\nexit\n-- mem\n01 02\nff\n-- result\n0x10\n"
                      "-- c\nint x;\n-- no register offset\nwhatever\n", "x.data")
    assert case.mem == b"\x01\x02\xff" and case.result == 0x10 and case.error is None
    assert case.c_source == "int x;"
    case = parse_case("-- raw\n0x00000001000000b7\n95 00 00 00 00 00 00 00\n-- error\n",
                      "r.data")
    assert case.expects_error and case.error == ""
    assert encode(case.program()).hex() == "b700000001000000" + "9500000000000000"
    assert parse_case("-- asm\nexit\n-- result\n42\n").result == 42
    with pytest.raises(CorpusError, match="appears twice"):
        parse_case("-- asm\nexit\n-- asm\nexit\n-- result\n0\n")
    with pytest.raises(CorpusError, match="no expected outcome"):
        parse_case("-- asm\nexit\n")
    with pytest.raises(CorpusError, match="memory byte 'zz'"):
        parse_case("-- asm\nexit\n-- mem\nzz\n-- result\n0\n")
    with pytest.raises(CorpusError, match="text before the first section"):
        parse_case("hello\n-- asm\nexit\n-- result\n0\n")
    # assembly errors point at the line of the .data file
    case = parse_case("# one\n# two\n-- asm\nmov %r0, 1\nbogus\n-- result\n0\n", "f.data")
    with pytest.raises(AssemblyError) as info:
        case.program()
    assert str(info.value).startswith("f.data:5:1: error: unknown mnemonic 'bogus'")
