"""pybpf.asm: the BPF instruction set, with no kernel involved.

* :class:`Instruction` and the numeric enums in :mod:`pybpf.asm.opcodes`;
* :func:`encode` / :func:`decode` between bytes and instructions;
* :func:`link` to resolve labels; the builder functions in :mod:`pybpf.asm.builder`;
* :func:`assemble` for LLVM (``r0 = 1``) and uBPF (``mov %r0, 1``) text;
* :func:`disassemble` and :func:`format_instruction`, matching ``llvm-objdump -d``;
* the kernel helper table in :mod:`pybpf.asm.helpers`.
"""

from __future__ import annotations

from .encoding import decode, encode
from .errors import AsmError, AssemblyError, DecodeError, InvalidInstruction, LinkError
from .helpers import Helper, helper, helper_name
from .instruction import Form, Instruction, SourceLocation, form_of
from .opcodes import (
    AluOp, AtomicOp, CallKind, Class, Group, JmpOp, Mode, Pseudo, Reg, Size, Source,
)
from .program import label_slots, link, slot_count

R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10 = tuple(Reg)

__all__ = [
    "Instruction", "SourceLocation", "Form", "form_of", "encode", "decode", "link",
    "label_slots", "slot_count", "AsmError", "AssemblyError", "DecodeError",
    "InvalidInstruction", "LinkError", "Helper", "helper", "helper_name", "AluOp",
    "AtomicOp", "CallKind", "Class", "Group", "JmpOp", "Mode", "Pseudo", "Reg", "Size",
    "Source", "R0", "R1", "R2", "R3", "R4", "R5", "R6", "R7", "R8", "R9", "R10",
]
