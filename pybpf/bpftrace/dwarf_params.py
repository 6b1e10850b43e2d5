"""A function's parameters from DWARF, named the way bpftrace 0.17's DWARF reader names
them (for ``bpftrace -lv 'uprobe:BIN:FUNC'``).

bpftrace looks a function up by name in the compilation units in order (the first
``DW_TAG_subprogram`` with that name wins), and prints each ``DW_TAG_formal_parameter``
as ``TYPE NAME``, where TYPE is a base type's or typedef's name, ``INNER*`` for a
pointer (``void*`` without a pointee), ``struct/union/enum NAME`` (``<anonymous>``
without one), ``const T`` (``T const`` when T is a pointer), and ``<unknown type>``
otherwise. The DWARF is read with pyelftools, from the file or its separate debug file.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

__all__ = ["DwarfParams"]


class DwarfParams:
    """The DWARF of one file; :meth:`open` returns None when it has none."""

    def __init__(self, dwarf: Any, handle: Any) -> None:
        self._dwarf, self._handle = dwarf, handle
        self._funcs: Optional[Dict[str, Any]] = None

    @classmethod
    def open(cls, path: str) -> Optional["DwarfParams"]:
        """The DWARF of ``path`` (or of its separate debug file), None without one."""
        from elftools.elf.elffile import ELFFile
        from pybpf.elf.functions import separate_debug_file
        from pybpf.elf.symbols import ElfFile
        candidates = [path]
        try:
            with ElfFile(path) as elf:
                debug = separate_debug_file(elf)
            if debug:
                candidates.append(debug)
        except (OSError, ValueError):
            return None
        for file in candidates:
            try:
                fh = open(file, "rb")
            except OSError:
                continue
            try:
                elf = ELFFile(fh)
                if elf.has_dwarf_info():
                    dwarf = elf.get_dwarf_info()
                    if next(iter(dwarf.iter_CUs()), None) is not None:
                        return cls(dwarf, fh)
            except Exception:           # pyelftools raises many kinds on bad input
                pass
            fh.close()
        return None

    def _index(self) -> Dict[str, Any]:
        if self._funcs is None:
            funcs: Dict[str, Any] = {}
            for cu in self._dwarf.iter_CUs():
                for die in cu.iter_DIEs():
                    if die.tag != "DW_TAG_subprogram":
                        continue
                    name = die.attributes.get("DW_AT_name")
                    if name is None:
                        continue
                    text = name.value.decode("utf-8", "replace")
                    if text not in funcs and "DW_AT_declaration" not in die.attributes:
                        funcs[text] = die
            self._funcs = funcs
        return self._funcs

    def function_params(self, function: str) -> List[str]:
        """``TYPE NAME`` for each parameter of ``function`` (empty if unknown)."""
        die = self._index().get(function)
        if die is None:
            return []
        out = []
        for child in die.iter_children():
            if child.tag != "DW_TAG_formal_parameter":
                continue
            name = child.attributes.get("DW_AT_name")
            text = name.value.decode("utf-8", "replace") if name is not None else ""
            out.append(f"{_type_name(_type_of(child))} {text}")
        return out

    def close(self) -> None:
        """Close the file."""
        self._handle.close()


def _type_of(die: Any) -> Any:
    if "DW_AT_type" not in die.attributes:
        origin = die.attributes.get("DW_AT_abstract_origin")
        if origin is None:
            return None
        die = die.get_DIE_from_attribute("DW_AT_abstract_origin")
        if "DW_AT_type" not in die.attributes:
            return None
    return die.get_DIE_from_attribute("DW_AT_type")


def _name(die: Any) -> Optional[str]:
    attr = die.attributes.get("DW_AT_name")
    return attr.value.decode("utf-8", "replace") if attr is not None else None


def _type_name(die: Any) -> str:
    if die is None:
        return "<unknown type>"
    tag = die.tag
    if tag in ("DW_TAG_base_type", "DW_TAG_typedef"):
        return _name(die) or ""
    if tag == "DW_TAG_pointer_type":
        inner = _type_of(die)
        return "void*" if inner is None else _type_name(inner) + "*"
    if tag in ("DW_TAG_structure_type", "DW_TAG_union_type", "DW_TAG_enumeration_type"):
        prefix = {"DW_TAG_structure_type": "struct ", "DW_TAG_union_type": "union ",
                  "DW_TAG_enumeration_type": "enum "}[tag]
        return prefix + (_name(die) or "<anonymous>")
    if tag == "DW_TAG_const_type":
        inner = _type_of(die)
        if inner is not None and inner.tag == "DW_TAG_pointer_type":
            return _type_name(inner) + " const"
        return "const " + _type_name(inner)
    return "<unknown type>"
