"""Bytes <-> instructions, little-endian, as the kernel and ELF objects store them."""

from __future__ import annotations

import struct
from typing import Iterable, List

from .errors import DecodeError, InvalidInstruction
from .instruction import Instruction, form_of

__all__ = ["encode", "decode", "SLOT_SIZE"]

SLOT_SIZE = 8
_SLOT = struct.Struct("<BBhi")


def encode(instructions: Iterable[Instruction]) -> bytes:
    """Encode instructions to bytes. Unresolved symbolic references are encoded as they
    stand (offset 0): link the program first (:func:`pybpf.asm.program.link`)."""
    pack = _SLOT.pack
    parts: List[bytes] = []
    append = parts.append
    try:
        for ins in instructions:
            if ins.opcode == 0x18:
                append(ins.encode())
            else:
                append(pack(ins.opcode, (ins.src << 4) | ins.dst, ins.off, ins.imm))
    except struct.error:
        # re-encode the culprit alone for a precise message
        raise InvalidInstruction(f"instruction {len(parts)}: cannot encode {ins!r}: a field is "
                                 "out of range (opcode 0-255, registers 0-15, off int16, "
                                 "imm int32)") from None
    return b"".join(parts)


def decode(data: bytes, *, validate: bool = True) -> List[Instruction]:
    """Decode bytes into instructions; ``lddw`` becomes one instruction of two slots.

    With ``validate`` (the default) every instruction is checked against the encoding
    rules and a :class:`DecodeError` names the byte offset and the broken rule.
    """
    view = memoryview(data).cast("B")
    size = len(view)
    if size % SLOT_SIZE:
        raise DecodeError(size - size % SLOT_SIZE,
                          f"{size % SLOT_SIZE} trailing bytes: the length must be a multiple of 8")
    slots = list(_SLOT.iter_unpack(view))
    out: List[Instruction] = []
    append = out.append
    n = len(slots)
    i = 0
    while i < n:
        opcode, regs, off, imm = slots[i]
        dst = regs & 0x0F
        src = regs >> 4
        if opcode == 0x18:
            if i + 1 >= n:
                raise DecodeError(i * 8, "lddw is truncated: its second slot is missing")
            op2, regs2, off2, imm2 = slots[i + 1]
            if op2 or regs2 or off2:
                raise DecodeError((i + 1) * 8, "the second slot of lddw must have opcode, "
                                  "registers and offset all zero")
            imm = (imm & 0xFFFFFFFF) | ((imm2 & 0xFFFFFFFF) << 32)
            ins = Instruction(0x18, dst, src, off, imm)
            step = 2
        else:
            ins = Instruction(opcode, dst, src, off, imm)
            step = 1
        if validate:
            try:
                form_of(opcode, dst, src, off, imm)
            except InvalidInstruction as exc:
                raise DecodeError(i * 8, str(exc)) from None
        append(ins)
        i += step
    return out
