"""Disassembling a BPF ELF object per section, with function symbols and relocations
shown (the text ``pybpf disasm FILE.o`` is meant to print)."""

from __future__ import annotations

import os
from typing import Dict, List, Tuple, Union

from ..asm.disasm import format_instruction
from ..asm.encoding import decode
from .errors import ObjectError

__all__ = ["disasm_object"]

_RELOC_NAMES = {1: "R_BPF_64_64", 2: "R_BPF_64_ABS64", 3: "R_BPF_64_ABS32",
                4: "R_BPF_64_NODYLD32", 10: "R_BPF_64_32"}


def disasm_object(source: Union[str, "os.PathLike[str]", bytes, bytearray], *,
                  name: str = "") -> str:
    """The disassembly of every executable section of a BPF object: a header per
    section, ``<function>:`` at each function symbol, ``slot: instruction`` lines and,
    under an instruction with a relocation, ``R_BPF_... symbol``. Raises
    :class:`ObjectError` for a malformed object, its message starting with ``name``
    (default: the path, or ``object`` for bytes)."""
    from .reader import _Reader
    if isinstance(source, (bytes, bytearray)):
        data, label = bytes(source), name or "object"
    else:
        label = os.fspath(source)
        with open(label, "rb") as fh:
            data = fh.read()
    try:
        return _disasm(_Reader(data))
    except ObjectError as exc:
        raise type(exc)(f"{label}: {exc}") from None
    except Exception as exc:
        raise ObjectError(f"{label}: malformed object: {type(exc).__name__}: {exc}") \
            from None


def _disasm(reader: object) -> str:
    r = reader  # a pybpf.object.reader._Reader
    out: List[str] = []
    for index, sec in r.sections.items():  # type: ignore[attr-defined]
        if sec["sh_type"] != "SHT_PROGBITS" or not sec["sh_flags"] & 0x4:
            continue
        code = r._bytes(sec)  # type: ignore[attr-defined]
        labels: Dict[int, str] = {}
        for sym in r.symbols:  # type: ignore[attr-defined]
            if sym["st_shndx"] == index and sym["st_info"]["type"] == "STT_FUNC":
                labels[sym["st_value"] // 8] = sym.name
        relocs: Dict[int, List[Tuple[str, str]]] = {}
        for rsec in r.sections.values():  # type: ignore[attr-defined]
            if rsec["sh_type"] == "SHT_REL" and rsec["sh_info"] == index:
                for rel in rsec.iter_relocations():
                    sym = r.symbols[rel["r_info_sym"]]  # type: ignore[attr-defined]
                    name = sym.name or r._section_name(sym["st_shndx"]) or "?"  # type: ignore[attr-defined]
                    kind = _RELOC_NAMES.get(rel["r_info_type"], str(rel["r_info_type"]))
                    relocs.setdefault(rel["r_offset"] // 8, []).append((kind, name))
        out.append(f"Disassembly of section {sec.name}:")
        slot = 0
        for ins in decode(code, validate=False):
            if slot in labels:
                out.append("")
                out.append(f"<{labels[slot]}>:")
            text = format_instruction(ins, pc=slot, section=sec.name, labels=labels)
            out.append(f"{slot:6d}: {text}")
            for kind, name in relocs.get(slot, ()):
                out.append(f"        {kind}\t{name}")
            slot += ins.slots
        out.append("")
    return "\n".join(out)
