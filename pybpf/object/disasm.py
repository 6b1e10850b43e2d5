"""Disassembling a BPF ELF object the way ``llvm-objdump -d`` does (the text
``pybpf disasm FILE.o`` prints).

The listing is line for line what ``llvm-objdump-19 -d FILE.o`` prints: a header naming
the file, then for every non-empty executable section ``Disassembly of section NAME:``, a
``<symbol>:`` line at each symbol (the section's name at address 0 when no symbol is
there), and ``slot:`` + raw bytes + instruction text lines. ``relocations=True`` adds the
ELF relocation lines of ``llvm-objdump -d -r`` (not the CO-RE lines llvm-objdump 19
also derives from ``.BTF.ext``).

Register spelling: a BPF ELF object records nothing about the CPU it was compiled for
(``e_flags`` is 0 for every ``-mcpu``, and llvm-objdump ignores it), so llvm-objdump
disassembles every object with its default CPU, which lacks the ``alu32`` feature: loads
and stores narrower than 64 bits show ``r`` registers even in a ``-mcpu=v3`` object. That
is the default here too; ``alu32=True`` gives the text of ``llvm-objdump -d --mcpu=v3``
(or ``v4``, or ``--mattr=+alu32``) instead.
"""

from __future__ import annotations

import os
from typing import Dict, List, Optional, Tuple, Union

from ..asm.disasm import format_instruction
from ..asm.encoding import decode
from .errors import ObjectError

__all__ = ["disasm_object"]

_RELOC_NAMES = {0: "R_BPF_NONE", 1: "R_BPF_64_64", 2: "R_BPF_64_ABS64",
                3: "R_BPF_64_ABS32", 4: "R_BPF_64_NODYLD32", 10: "R_BPF_64_32"}

_SHF_EXECINSTR = 0x4

#: ELF symbol types by name (pyelftools spells them), for ordering symbols that share an
#: address: llvm-objdump shows the one with the highest (type, name).
_SYMBOL_TYPES = {"STT_NOTYPE": 0, "STT_OBJECT": 1, "STT_FUNC": 2, "STT_COMMON": 5,
                 "STT_TLS": 6, "STT_GNU_IFUNC": 10}


def disasm_object(source: Union[str, "os.PathLike[str]", bytes, bytearray], *,
                  name: Optional[str] = None, relocations: bool = False,
                  alu32: bool = False) -> str:
    """The ``llvm-objdump -d`` listing of a BPF object (a path or the file's bytes).

    ``name`` is the file name printed in the header (default: the path as given, or
    ``object`` for bytes). ``relocations=True`` adds ``llvm-objdump -r``'s relocation
    line under each instruction that has one. ``alu32=True`` spells 32-bit loads,
    stores and atomics as llvm-objdump does with ``--mcpu=v3``/``--mattr=+alu32``; the
    default matches plain ``llvm-objdump -d``. Raises :class:`ObjectError` for a
    malformed object, its message starting with the file name."""
    from .reader import _Reader
    if isinstance(source, (bytes, bytearray)):
        data, label = bytes(source), name or "object"
    else:
        label = os.fspath(source)
        with open(label, "rb") as fh:
            data = fh.read()
    try:
        return _disasm(_Reader(data), label if name is None else name, relocations,
                       alu32)
    except ObjectError as exc:
        raise type(exc)(f"{label}: {exc}") from None
    except Exception as exc:
        raise ObjectError(f"{label}: malformed object: {type(exc).__name__}: {exc}") \
            from None


def _labels(reader: object, index: int) -> Dict[int, str]:
    """Slot -> the symbol llvm-objdump names there, for section ``index``: symbols with a
    name other than section and file symbols; of several at one address the one with the
    highest (type, name)."""
    best: Dict[int, Tuple[int, bytes, str]] = {}
    for sym in reader.symbols:  # type: ignore[attr-defined]
        kind = sym["st_info"]["type"]
        if sym["st_shndx"] != index or not sym.name or kind in ("STT_SECTION", "STT_FILE"):
            continue
        key = (_SYMBOL_TYPES.get(kind, kind if isinstance(kind, int) else 0),
               sym.name.encode("utf-8", "surrogateescape"), sym.name)
        slot = sym["st_value"] // 8
        if slot not in best or key > best[slot]:
            best[slot] = key
    return {slot: key[2] for slot, key in best.items()}


def _relocations(reader: object, index: int) -> List[Tuple[int, str, str]]:
    """(offset, type name, symbol name) of every relocation of section ``index``, in
    offset order."""
    r = reader
    found: List[Tuple[int, str, str]] = []
    for rsec in r.sections.values():  # type: ignore[attr-defined]
        if rsec["sh_type"] == "SHT_REL" and rsec["sh_info"] == index:
            for rel in rsec.iter_relocations():
                sym = r.symbols[rel["r_info_sym"]]  # type: ignore[attr-defined]
                name = sym.name or r._section_name(sym["st_shndx"]) or ""  # type: ignore[attr-defined]
                kind = _RELOC_NAMES.get(rel["r_info_type"], str(rel["r_info_type"]))
                found.append((rel["r_offset"], kind, name))
    found.sort(key=lambda item: item[0])
    return found


def _disasm(reader: object, name: str, relocations: bool, alu32: bool) -> str:
    r = reader  # a pybpf.object.reader._Reader
    out: List[str] = ["", f"{name}:\tfile format elf64-bpf"]
    for index, sec in r.sections.items():  # type: ignore[attr-defined]
        if sec["sh_type"] != "SHT_PROGBITS" or not sec["sh_flags"] & _SHF_EXECINSTR \
                or not sec["sh_size"]:
            continue
        code = r._bytes(sec)  # type: ignore[attr-defined]
        labels = _labels(r, index)
        shown = dict(labels)
        shown.setdefault(0, sec.name)
        relocs = _relocations(r, index) if relocations else []
        next_reloc = 0
        out.extend(["", f"Disassembly of section {sec.name}:"])
        slot = 0
        for ins in decode(code, validate=False):
            if slot in shown:
                out.extend(["", f"{slot * 8:016x} <{shown[slot]}>:"])
            raw = " ".join(f"{b:02x}" for b in code[slot * 8:(slot + ins.slots) * 8])
            text = format_instruction(ins, pc=slot, section=sec.name, labels=labels,
                                      alu32=alu32)
            out.append(f"{slot:8d}:\t{raw}\t{text}")
            slot += ins.slots
            while next_reloc < len(relocs) and relocs[next_reloc][0] < slot * 8:
                offset, kind, target = relocs[next_reloc]
                out.append(f"\t\t{offset:016x}:  {kind}\t{target}")
                next_reloc += 1
    return "\n".join(out) + "\n"
