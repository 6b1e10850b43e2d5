"""Linking the functions of a BPF object: bpf-to-bpf calls (``R_BPF_64_32`` on a
pseudo call) and map / global data references (``R_BPF_64_64`` on ``lddw``)."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from ..asm.encoding import decode
from ..asm.errors import DecodeError
from ..asm.instruction import Instruction
from ..asm.opcodes import CallKind, Pseudo
from .errors import ObjectError

__all__ = ["Function", "Reloc", "link_program", "R_BPF_64_64", "R_BPF_64_32",
           "R_BPF_64_ABS64", "R_BPF_64_ABS32", "R_BPF_64_NODYLD32"]

R_BPF_NONE = 0
R_BPF_64_64 = 1
R_BPF_64_ABS64 = 2
R_BPF_64_ABS32 = 3
R_BPF_64_NODYLD32 = 4
R_BPF_64_32 = 10

_SLOT = struct.Struct("<BBhi")
_CALL = 0x85
_LDDW = 0x18


@dataclass
class Function:
    """A function symbol in an executable section: its name, section, first slot
    within the section and number of slots."""

    name: str
    section: str
    start: int
    count: int


@dataclass
class Reloc:
    """A relocation already interpreted: ``kind`` is ``"call"`` (``target`` a slot in
    section ``target_section``), ``"map"`` (``target`` a map name), ``"data"``
    (``target`` a global data section, ``offset`` the byte offset in it), ``"ksym"``
    (a ``__ksym`` variable: ``target`` the 64-bit immediate, ``offset`` the pseudo
    source) or ``"kfunc"`` (``target`` the kfunc's BTF id); ``what`` describes the
    relocation for messages."""

    kind: str
    target_section: str
    target: object
    offset: int
    what: str


Slot = List[int]


def _slots(data: bytes, section: str) -> List[Slot]:
    if len(data) % 8:
        raise ObjectError(f"section {section!r}: size {len(data)} is not a multiple of 8")
    return [list(s) for s in _SLOT.iter_unpack(data)]


def link_program(main: Function, functions: Dict[str, List[Function]],
                 code: Dict[str, bytes], relocs: Dict[str, Dict[int, Reloc]],
                 placement: Optional[List[Tuple[Function, int]]] = None
                 ) -> List[Instruction]:
    """The instructions of program ``main`` followed by every subprogram it calls
    (directly or not), with call offsets fixed and map / data references attached to
    their ``lddw`` instructions (``reference`` = the map name, resolved at load).

    ``functions`` lists the functions of each executable section, ``code`` its bytes,
    ``relocs`` its relocations by slot index. When ``placement`` is a list, each
    function copied is appended to it with the slot it starts at in the program."""
    section_slots: Dict[str, List[Slot]] = {}

    def slots_of(section: str) -> List[Slot]:
        if section not in section_slots:
            section_slots[section] = _slots(code[section], section)
        return section_slots[section]

    def function_at(section: str, slot: int, what: str) -> Function:
        for fn in functions.get(section, ()):
            if fn.start <= slot < fn.start + fn.count:
                return fn
        raise ObjectError(f"{what}: no function in section {section!r} at instruction "
                          f"{slot}")

    order: List[Function] = [main]
    placed: Dict[Tuple[str, int], int] = {(main.section, main.start): 0}
    total = main.count
    out: List[Slot] = []
    refs: Dict[int, str] = {}
    i = 0
    while i < len(order):
        fn = order[i]
        i += 1
        base = placed[(fn.section, fn.start)]
        if placement is not None:
            placement.append((fn, base))
        sec_slots = slots_of(fn.section)
        if fn.start + fn.count > len(sec_slots):
            raise ObjectError(f"symbol {fn.name!r} runs past the end of section "
                              f"{fn.section!r}")
        sec_relocs = relocs.get(fn.section, {})
        body = [list(s) for s in sec_slots[fn.start:fn.start + fn.count]]
        for k, slot in enumerate(body):
            at = fn.start + k
            rel = sec_relocs.get(at)
            opcode, regs = slot[0], slot[1]
            src = regs >> 4
            if opcode == _CALL and rel is not None and rel.kind == "kfunc":
                slot[1] = CallKind.KFUNC << 4
                slot[2] = 0                     # vmlinux (no fd_array index)
                slot[3] = int(rel.target)  # type: ignore[call-overload]
            elif opcode == _CALL and src == 1:  # a bpf-to-bpf call
                if rel is not None:
                    if rel.kind != "call":
                        raise ObjectError(f"{rel.what}: a call relocated against a "
                                          f"non-function")
                    tsec, tslot = rel.target_section, int(rel.target)  # type: ignore[call-overload]
                else:
                    tsec, tslot = fn.section, at + slot[3] + 1
                what = rel.what if rel is not None else \
                    f"call at instruction {at} of section {fn.section!r}"
                if tsec not in code:
                    raise ObjectError(f"{what}: target section {tsec!r} holds no code")
                target_fn = function_at(tsec, tslot, what)
                key = (tsec, target_fn.start)
                if key not in placed:
                    placed[key] = total
                    total += target_fn.count
                    order.append(target_fn)
                new_at = placed[key] + (tslot - target_fn.start)
                slot[3] = new_at - (base + k) - 1
            elif rel is not None:
                if opcode != _LDDW:
                    raise ObjectError(f"{rel.what}: relocation on an instruction that is "
                                      f"not lddw or a call (opcode {opcode:#04x})")
                if k + 1 >= len(body):
                    raise ObjectError(f"{rel.what}: lddw is truncated")
                if rel.kind == "map":
                    slot[1] = (Pseudo.MAP_FD << 4) | (regs & 0x0F)
                    slot[3] = 0
                    body[k + 1][3] = 0
                elif rel.kind == "data":
                    slot[1] = (Pseudo.MAP_VALUE << 4) | (regs & 0x0F)
                    slot[3] = 0
                    off = rel.offset
                    body[k + 1][3] = off - (1 << 32) if off >= 1 << 31 else off
                elif rel.kind == "ksym":
                    value = int(rel.target)  # type: ignore[call-overload]
                    slot[1] = (rel.offset << 4) | (regs & 0x0F)
                    lo, hi = value & 0xFFFFFFFF, (value >> 32) & 0xFFFFFFFF
                    slot[3] = lo - (1 << 32) if lo >= 1 << 31 else lo
                    body[k + 1][3] = hi - (1 << 32) if hi >= 1 << 31 else hi
                    continue
                else:
                    raise ObjectError(f"{rel.what}: lddw of a function (callbacks) is "
                                      f"not supported")
                refs[base + k] = str(rel.target)
        out.extend(body)
    try:
        raw = b"".join(_SLOT.pack(*s) for s in out)
        insns = decode(raw, validate=False)
    except (struct.error, DecodeError) as exc:
        raise ObjectError(f"program {main.name!r} in section {main.section!r}: {exc}") \
            from None
    if refs:
        slot = 0
        fixed = []
        for ins in insns:
            ref = refs.get(slot)
            if ref is not None:
                ins = ins.replace(reference=ref)
            fixed.append(ins)
            slot += ins.slots
        insns = fixed
    return insns
