"""The object's own BTF at program load: ``.BTF.ext`` function and line information
per program, and the object's ``.BTF`` made acceptable to ``BPF_BTF_LOAD``.

clang leaves some of the BTF to the loader, which the kernel's BTF checker refuses as it
stands; :func:`sanitize_btf` fixes exactly that, keeping every type id and every string
offset (so ``func_info`` type ids and ``line_info`` string offsets read from
``.BTF.ext`` stay valid without rebasing; new strings are appended):

* DATASEC sizes and variable offsets are 0 in clang's output: they are filled from the
  ELF section sizes and symbol values (the entries are then sorted by offset, which the
  kernel requires);
* ``extern`` VARs (``__kconfig``, ``__ksym``) have a linkage the kernel does not accept
  in a loaded blob: they become global;
* ``extern`` FUNCs (kfunc declarations) likewise become global functions, and the
  kernel wants every FUNC's parameters named: clang leaves them unnamed in extern
  declarations, so they are called ``arg1``, ``arg2``...;
* the ``.ksyms`` DATASEC lists VARs and FUNCs that live in the kernel, not in any map;
  the kernel wants only VARs of non-zero size there, so each entry is replaced by one
  4-byte placeholder ``int`` VAR (appended at the end, so no id moves); a typeless
  ``__ksym`` VAR (of type ``const void``) becomes an ``int``, as the kernel wants
  variables to have a size.
"""

from __future__ import annotations

import struct
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

from ..asm.instruction import Instruction, SourceLocation
from ..btf.format import (
    FIXED_WORDS, FUNC_INFO, HEADER, HEADER_SIZE, LINE_COL_BITS, LINE_INFO, MAGIC, VERSION,
    WORDS_PER_ITEM, Kind, info_word, unpack_info,
)
from .errors import ObjectError

__all__ = ["ExtInfo", "parse_ext_info", "sanitize_btf", "program_ext_info"]

_EXT_MAGIC = 0xEB9F


class ExtInfo(NamedTuple):
    """The function and line records of ``.BTF.ext``, per code section: ``funcs``
    maps a section to (slot, FUNC type id) pairs, ``lines`` to (slot, file name
    offset, line text offset, ``line_col``) tuples; slots count 8-byte instruction
    slots from the start of the section."""

    funcs: Dict[str, List[Tuple[int, int]]]
    lines: Dict[str, List[Tuple[int, int, int, int]]]


def _records(ext: bytes, start: int, length: int, min_size: int, what: str, btf: Any
             ) -> Dict[str, List[Tuple[int, ...]]]:
    out: Dict[str, List[Tuple[int, ...]]] = {}
    if length == 0:
        return out
    end = start + length
    if end > len(ext) or length < 4:
        raise ObjectError(f"section '.BTF.ext': {what} runs past the section")
    rec_size = struct.unpack_from("<I", ext, start)[0]
    if rec_size < min_size:
        raise ObjectError(f"section '.BTF.ext': {what} record size {rec_size} < "
                          f"{min_size}")
    pos = start + 4
    while pos < end:
        if pos + 8 > end:
            raise ObjectError(f"section '.BTF.ext': truncated {what} header")
        name_off, count = struct.unpack_from("<II", ext, pos)
        pos += 8
        section = btf.string(name_off)
        if pos + count * rec_size > end:
            raise ObjectError(f"section '.BTF.ext': {what} of {section!r} run past the "
                              f"section")
        rows = out.setdefault(section, [])
        for _ in range(count):
            fields = struct.unpack_from(f"<{min_size // 4}I", ext, pos)
            pos += rec_size
            if fields[0] % 8:
                raise ObjectError(f"section '.BTF.ext': {what} of {section!r}: "
                                  f"instruction offset {fields[0]} is not a multiple of 8")
            rows.append((fields[0] // 8,) + tuple(fields[1:]))
    return out


def parse_ext_info(ext: bytes, btf: Any) -> ExtInfo:
    """The function and line information of a ``.BTF.ext`` blob (section names are
    strings of the object's ``btf``)."""
    if len(ext) < 24:
        raise ObjectError("section '.BTF.ext': too short for a header")
    magic, _version, _flags, hdr_len = struct.unpack_from("<HBBI", ext, 0)
    if magic != _EXT_MAGIC:
        raise ObjectError(f"section '.BTF.ext': bad magic {magic:#06x}")
    if hdr_len < 24 or hdr_len > len(ext):
        raise ObjectError(f"section '.BTF.ext': bad header length {hdr_len}")
    f_off, f_len, l_off, l_len = struct.unpack_from("<IIII", ext, 8)
    funcs = _records(ext, hdr_len + f_off, f_len, FUNC_INFO.size, "func_info", btf)
    lines = _records(ext, hdr_len + l_off, l_len, LINE_INFO.size, "line_info", btf)
    return ExtInfo({k: [(r[0], r[1]) for r in v] for k, v in funcs.items()},
                   {k: [(r[0], r[1], r[2], r[3]) for r in v] for k, v in lines.items()})


def program_ext_info(placement: Sequence[Tuple[Any, int]], info: ExtInfo, btf: Any,
                     instructions: Sequence[Instruction]
                     ) -> Tuple[bytes, bytes, List[Instruction]]:
    """``func_info`` and ``line_info`` records for one linked program, and its
    instructions with a :class:`SourceLocation` (from the line records) on each.

    ``placement`` lists each function copied into the program (a
    :class:`~pybpf.object.relocations.Function`) with the slot it starts at."""
    funcs: List[Tuple[int, int]] = []
    lines: List[Tuple[int, int, int, int]] = []
    for fn, base in placement:
        for slot, type_id in info.funcs.get(fn.section, ()):
            if fn.start <= slot < fn.start + fn.count:
                funcs.append((base + slot - fn.start, type_id))
        for slot, file_off, line_off, lc in info.lines.get(fn.section, ()):
            if fn.start <= slot < fn.start + fn.count:
                lines.append((base + slot - fn.start, file_off, line_off, lc))
    funcs.sort()
    lines.sort()
    func_info = b"".join(FUNC_INFO.pack(*f) for f in funcs)
    line_info = b"".join(LINE_INFO.pack(*ln) for ln in lines)
    if not lines:
        return func_info, line_info, list(instructions)
    by_slot = {ln[0]: ln for ln in lines}
    out: List[Instruction] = []
    current: Optional[SourceLocation] = None
    slot = 0
    for ins in instructions:
        rec = by_slot.get(slot)
        if rec is not None:
            _, file_off, line_off, lc = rec
            current = SourceLocation(btf.string(file_off), lc >> LINE_COL_BITS,
                                     lc & ((1 << LINE_COL_BITS) - 1),
                                     btf.string(line_off).strip())
        if current is not None and ins.source is None:
            ins = ins.replace(source=current)
        out.append(ins)
        slot += ins.slots
    return func_info, line_info, out


# -- sanitizing -----------------------------------------------------------------------------

_U32 = struct.Struct("<I")


def sanitize_btf(raw: bytes, sections: Dict[str, Tuple[int, Dict[str, Tuple[int, int]]]]
                 ) -> bytes:
    """The object's ``.BTF`` as the kernel accepts it (see the module docstring).

    ``sections`` gives, per data section name, its size and its variables' (offset,
    size) by name; DATASECs of other names keep their values."""
    if len(raw) < HEADER_SIZE:
        raise ObjectError("section '.BTF': too short for a header")
    magic, version, flags, hdr_len, t_off, t_len, s_off, s_len = HEADER.unpack_from(raw, 0)
    if magic != MAGIC or version != VERSION:
        raise ObjectError("section '.BTF': not little-endian BTF version 1")
    types = raw[hdr_len + t_off:hdr_len + t_off + t_len]
    strings = bytearray(raw[hdr_len + s_off:hdr_len + s_off + s_len])
    if len(types) != t_len or len(strings) != s_len:
        raise ObjectError("section '.BTF': truncated")

    def add_string(text: str) -> int:
        off = len(strings)
        strings.extend(text.encode() + b"\0")
        return off

    def string(off: int) -> str:
        end = strings.find(b"\0", off)
        return strings[off:end if end >= 0 else len(strings)].decode("utf-8", "replace")

    records: List[bytearray] = []
    kinds: List[int] = []
    pos = 0
    while pos < len(types):
        if pos + 12 > len(types):
            raise ObjectError("section '.BTF': truncated type record")
        kind, vlen, _ = unpack_info(_U32.unpack_from(types, pos + 4)[0])
        fixed = FIXED_WORDS[kind] if kind < len(FIXED_WORDS) else None
        if fixed is None:
            raise ObjectError(f"section '.BTF': unknown kind {kind} in type "
                              f"{len(records) + 1}")
        size = 12 + 4 * (fixed + vlen * WORDS_PER_ITEM[kind])
        if pos + size > len(types):
            raise ObjectError("section '.BTF': truncated type record")
        records.append(bytearray(types[pos:pos + size]))
        kinds.append(kind)
        pos += size
    added: Dict[str, int] = {}

    def placeholder(what: str) -> int:
        """The id of the appended ``int`` (``what="int"``) or placeholder VAR."""
        if not added:
            records.append(bytearray(struct.pack("<IIII", add_string("int"),
                                                 info_word(Kind.INT), 4, (1 << 24) | 32)))
            kinds.append(Kind.INT)
            added["int"] = len(records)
            records.append(bytearray(struct.pack("<IIII", add_string("pybpf_ksym_placeholder"),
                                                 info_word(Kind.VAR), added["int"], 1)))
            kinds.append(Kind.VAR)
            added["var"] = len(records)
        return added[what]

    def is_void(type_id: int) -> bool:
        for _ in range(64):
            if type_id == 0:
                return True
            if not 0 < type_id <= len(records) or kinds[type_id - 1] not in (
                    Kind.CONST, Kind.VOLATILE, Kind.RESTRICT, Kind.TYPEDEF, Kind.TYPE_TAG):
                return False
            type_id = _U32.unpack_from(records[type_id - 1], 8)[0]
        return False

    name_of_var = {}
    for i, (rec, kind) in enumerate(list(zip(records, kinds))):
        if kind == Kind.VAR:
            name_of_var[i + 1] = string(_U32.unpack_from(rec, 0)[0])
            if _U32.unpack_from(rec, 12)[0] == 2:          # extern -> global
                _U32.pack_into(rec, 12, 1)
                if is_void(_U32.unpack_from(rec, 8)[0]):     # typeless __ksym
                    _U32.pack_into(rec, 8, placeholder("int"))
        elif kind == Kind.FUNC:
            _, vlen, kflag = unpack_info(_U32.unpack_from(rec, 4)[0])
            if vlen == 2:                                   # extern -> global
                _U32.pack_into(rec, 4, info_word(Kind.FUNC, 1, kflag))
    for rec, kind in list(zip(records, kinds)):
        if kind != Kind.FUNC:
            continue
        proto_id = _U32.unpack_from(rec, 8)[0]
        if not 0 < proto_id <= len(records) or kinds[proto_id - 1] != Kind.FUNC_PROTO:
            continue
        proto = records[proto_id - 1]
        _, vlen, _ = unpack_info(_U32.unpack_from(proto, 4)[0])
        for k in range(vlen):
            name_off, ptype = struct.unpack_from("<II", proto, 12 + 8 * k)
            if not name_off and ptype:
                _U32.pack_into(proto, 12 + 8 * k, add_string(f"arg{k + 1}"))
    for rec, kind in zip(records, kinds):
        if kind != Kind.DATASEC:
            continue
        name = string(_U32.unpack_from(rec, 0)[0])
        _, vlen, _ = unpack_info(_U32.unpack_from(rec, 4)[0])
        entries = [list(struct.unpack_from("<III", rec, 12 + 12 * k)) for k in range(vlen)]
        if name == ".ksyms":
            entries = [[placeholder("var"), 4 * k, 4] for k in range(vlen)]
            total = 4 * vlen
        else:
            size, offsets = sections.get(name, (None, {}))
            for entry in entries:
                found = offsets.get(name_of_var.get(entry[0], ""))
                if found is not None:
                    entry[1], entry[2] = found
            entries.sort(key=lambda e: e[1])
            total = size if size is not None else _U32.unpack_from(rec, 8)[0]
        _U32.pack_into(rec, 8, total)
        for k, entry in enumerate(entries):
            struct.pack_into("<III", rec, 12 + 12 * k, *entry)
    body = b"".join(records)
    header = HEADER.pack(MAGIC, VERSION, flags, HEADER_SIZE, 0, len(body), len(body),
                         len(strings))
    return header + body + bytes(strings)
