"""Encoder/decoder properties and the encoding rules, checked without a kernel."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from isa_samples import FORM_NAMES, TEMPLATES_BY_FORM, random_instruction
from pybpf.asm import (
    AsmError, DecodeError, Group, Instruction, InvalidInstruction, decode, encode, form_of,
)


@st.composite
def valid_instructions(draw: st.DrawFn) -> Instruction:
    seed = draw(st.integers(0, 2**32 - 1))
    return random_instruction(random.Random(seed))


@settings(max_examples=3000, deadline=None)
@given(st.lists(valid_instructions(), min_size=1, max_size=8))
def test_decode_encode_roundtrip(program: list) -> None:
    data = encode(program)
    assert len(data) == 8 * sum(i.slots for i in program)
    assert decode(data) == program
    assert encode(decode(data)) == data


@settings(max_examples=5000, deadline=None)
@given(st.binary(min_size=0, max_size=64))
def test_random_bytes_only_raise_decode_errors(data: bytes) -> None:
    try:
        program = decode(data)
    except DecodeError as exc:
        assert isinstance(exc, AsmError) and exc.offset <= len(data)
        assert f"byte offset {exc.offset}" in str(exc)
    else:
        assert encode(program) == data  # whatever decodes re-encodes to the same bytes


def test_every_form_is_generated() -> None:
    # the generators reach every form the rules define: 125 of them today
    assert len(FORM_NAMES) == 125
    rng = random.Random(1)
    seen = {random_instruction(rng).form.name for _ in range(6000)}
    assert seen == set(FORM_NAMES)


@pytest.mark.parametrize("name", FORM_NAMES)
def test_form_classification_is_consistent(name: str) -> None:
    opcode, src, off, imm = TEMPLATES_BY_FORM[name][0]
    dst = 0 if name in ("ja", "ja32", "exit", "may_goto") or name.startswith(("call", "ldabs", "ldind")) else 1
    if name == "callx":
        dst = 1
    form = form_of(opcode, dst, src, off, imm)
    assert form.name == name
    assert isinstance(form.group, Group)
    assert 1 <= form.version <= 4


@pytest.mark.parametrize("raw, reason", [
    ("07 10 00 00 01 00 00 00", "does not use src"),          # add64 imm with src set
    ("0f 00 00 00 01 00 00 00", "does not use imm"),          # add64 reg with imm set
    ("04 00 01 00 01 00 00 00", "does not use off"),          # add32 imm with off set
    ("dc 00 00 00 11 00 00 00", "byte swap width"),           # be with imm 17
    ("85 01 00 00 00 00 00 00", "call does not use dst"),
    ("85 00 01 00 00 00 00 00", "helper call does not use off"),
    ("95 00 00 00 01 00 00 00", "exit does not use imm"),
    ("8f 00 00 00 00 00 00 00", "neg takes no source operand"),
    ("b7 0b 00 00 00 00 00 00", "r11 does not exist"),
    ("99 21 00 00 00 00 00 00", "sign-extending DW load"),
    ("38 00 00 00 03 00 00 00", "legacy packet load of DW"),
    ("0e 00 00 00 00 00 00 00", "not defined"),
    ("db 21 00 00 02 00 00 00", "not a known atomic operation"),
    ("bc 21 20 00 00 00 00 00", "sign-extension width"),
    ("34 01 02 00 03 00 00 00", "off must be 0 (unsigned) or 1 (signed)"),
    ("18 11 00 00 05 00 00 00 00 00 00 00 01 00 00 00", "second slot's imm must be 0"),
    ("18 01 00 00 05 00 00 00 07 00 00 00 00 00 00 00", "second slot of lddw"),
    ("18 01 00 00 05 00 00 00", "truncated"),
    ("b7 00 00 00 00 00 00 00 95 00", "trailing bytes"),
])
def test_decoder_rejects_with_reason(raw: str, reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode(bytes.fromhex(raw))
    assert reason in str(info.value)


def test_decode_error_names_the_offset() -> None:
    good = "b7 00 00 00 00 00 00 00 "
    with pytest.raises(DecodeError) as info:
        decode(bytes.fromhex(good * 3 + "0f 00 00 00 01 00 00 00"))
    assert info.value.offset == 24
    assert str(info.value).startswith("byte offset 24 (instruction 3)")


def test_lddw_is_one_instruction_of_two_slots() -> None:
    (ins,) = decode(bytes.fromhex("18 01 00 00 ef cd ab 89 00 00 00 00 67 45 23 01"))
    assert ins.imm == 0x0123456789ABCDEF and ins.slots == 2 and ins.is_wide
    neg = Instruction(0x18, 1, 0, 0, -1)
    assert encode([neg]) == bytes.fromhex("18 01 00 00 ff ff ff ff 00 00 00 00 ff ff ff ff")


def test_encode_rejects_out_of_range_fields() -> None:
    with pytest.raises(InvalidInstruction, match="instruction 1"):
        encode([Instruction(0xB7), Instruction(0xB7, 1, 0, 0, 1 << 40)])


def test_equality_ignores_metadata() -> None:
    a = Instruction(0x05, off=3, reference="out", label="top")
    assert a == Instruction(0x05, off=3) and hash(a) == hash(Instruction(0x05, off=3))
    assert a.replace(off=4) != a and a.replace(off=4).label == "top"
