"""Label resolution: turning symbolic jumps and calls into offsets.

Instructions refer to each other by name: an instruction's ``label`` names it, and a jump,
a local call or a ``lddw`` of a function (pseudo source 4) names its target in
``reference``. :func:`link` computes every such offset, counting in 8-byte slots from the
instruction after the one that refers, so hand-built, assembled and compiled programs
resolve the same way.
"""

from __future__ import annotations

from typing import Dict, Iterable, List, Sequence

from .errors import LinkError
from .instruction import Instruction, make_instruction
from .opcodes import Class, JmpOp, Pseudo

__all__ = ["link", "label_slots", "slot_count"]

# enum members looked up once (each lookup goes through the enum's descriptor)
_FUNC = Pseudo.FUNC
_JMP32, _JA = Class.JMP32, JmpOp.JA
_JUMP_CLASSES = (Class.JMP, Class.JMP32)
_NOT_JUMPS = (JmpOp.CALL, JmpOp.EXIT)


def slot_count(instructions: Iterable[Instruction]) -> int:
    """The number of 8-byte slots the instructions occupy."""
    return sum(2 if ins.opcode == 0x18 else 1 for ins in instructions)


def label_slots(instructions: Sequence[Instruction]) -> Dict[str, int]:
    """Map each label to the slot index of the instruction it names.

    An instruction's ``label`` is one name or a tuple of names for the same place.

    Raises :class:`LinkError` on a duplicate label.
    """
    labels: Dict[str, int] = {}
    slot = 0
    for ins in instructions:
        names = ins.label
        if names is not None:
            for name in (names,) if isinstance(names, str) else names:
                if name in labels:
                    raise LinkError(f"duplicate label {name!r}", ins)
                labels[name] = slot
        slot += 2 if ins.opcode == 0x18 else 1
    return labels


def link(instructions: Sequence[Instruction], *, long_jumps: bool = False) -> List[Instruction]:
    """Return a copy of ``instructions`` with every symbolic jump and call resolved.

    A string reference of a jump, a local call or a ``lddw`` of a function must name a
    label in the program. Map references (on map loads) are left for program loading. An unconditional ``ja`` whose distance does
    not fit in 16 bits becomes ``gotol`` when ``long_jumps`` is true; otherwise, and for
    conditional jumps, it is a :class:`LinkError` naming the label.
    """
    labels = label_slots(instructions)
    out: List[Instruction] = []
    slot = 0
    for ins in instructions:
        ref = ins.reference
        if isinstance(ref, str) and (ins.opcode != 0x18 or ins.src == _FUNC):
            if ref not in labels:
                raise LinkError(f"undefined label {ref!r}", ins)
            delta = labels[ref] - (slot + 1)
            ins = _resolve(ins, ref, delta, long_jumps)
        out.append(ins)
        slot += 2 if ins.opcode == 0x18 else 1
    return out


def _resolve(ins: Instruction, ref: str, delta: int, long_jumps: bool) -> Instruction:
    op = ins.opcode
    cls = op & 0x07
    if op == 0x85:  # call: only local calls take a label
        if ins.src != 1:
            raise LinkError(f"call to label {ref!r} must be a local call (src=1)", ins)
        return make_instruction(op, ins.dst, ins.src, ins.off, delta, ins.label, ref,
                                ins.source)
    if op == 0x18:
        if ins.src != Pseudo.FUNC:
            raise LinkError(f"lddw of label {ref!r} needs pseudo source 4 (func)", ins)
        return ins.replace(imm=delta & 0xFFFFFFFF)
    if cls == _JMP32 and (op & 0xF0) == _JA:  # gotol: 32-bit offset in imm
        if not -(1 << 31) <= delta < (1 << 31):
            raise LinkError(f"jump to {ref!r} is {delta} slots away: too far", ins)
        return ins.replace(imm=delta)
    if cls in _JUMP_CLASSES and (op & 0xF0) not in _NOT_JUMPS:
        if -0x8000 <= delta <= 0x7FFF:        # the most frequent: built straight
            return make_instruction(op, ins.dst, ins.src, delta, ins.imm, ins.label, ref,
                                    ins.source)
        if op == 0x05 and long_jumps:
            return ins.replace(opcode=0x06, off=0, imm=delta)
        hint = " (use long_jumps to turn an unconditional ja into gotol)" if op == 0x05 else ""
        raise LinkError(f"jump to {ref!r} is {delta} slots away, beyond the "
                        f"signed 16-bit offset range{hint}", ins)
    raise LinkError(f"{ins!r} cannot refer to label {ref!r}", ins)
