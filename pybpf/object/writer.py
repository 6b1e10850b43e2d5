"""Writing pybpf programs as BPF ELF objects (libbpf conventions): one section per
program, BTF-defined maps in ``.maps`` with their ``.BTF``, ``R_BPF_64_64`` relocations
for map references, a ``license`` section. ``bpftool prog loadall``, ``llvm-objdump -d``
and :func:`~pybpf.object.reader.read_object` accept the result.

Limits: programs must be self-contained (bpf-to-bpf calls inside one program are written
as they are, without relocations); only maps (not global data) may be referenced.
"""

from __future__ import annotations

import os
import struct
from typing import Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

from ..asm.encoding import encode
from ..asm.instruction import Instruction
from ..asm.opcodes import Pseudo
from ..maps.spec import MapSpec, Pinning
from .errors import ObjectError

__all__ = ["ObjectProgram", "write_object"]

_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_SHDR = struct.Struct("<IIQQQQIIQQ")
_SYM = struct.Struct("<IBBHQQ")
_REL = struct.Struct("<QQ")
_SHT_PROGBITS, _SHT_SYMTAB, _SHT_STRTAB, _SHT_REL = 1, 2, 3, 9
_SHF_WRITE, _SHF_ALLOC, _SHF_EXECINSTR = 1, 2, 4
_STB_GLOBAL, _STT_OBJECT, _STT_FUNC = 1, 1, 2
_R_BPF_64_64 = 1


class ObjectProgram(NamedTuple):
    """A program to write: its ``SEC()`` section name (``"xdp"``,
    ``"tracepoint/syscalls/sys_enter_getppid"``), function name and instructions (map
    loads carry the map's name as ``reference``)."""

    section: str
    name: str
    instructions: Sequence[Instruction]


class _Strings:
    def __init__(self) -> None:
        self.data = bytearray(b"\0")
        self.index: Dict[str, int] = {"": 0}

    def add(self, text: str) -> int:
        if text not in self.index:
            self.index[text] = len(self.data)
            self.data += text.encode() + b"\0"
        return self.index[text]


def _maps_btf(maps: Mapping[str, MapSpec]) -> Tuple[bytes, List[Tuple[str, int, int]]]:
    """The ``.BTF`` blob describing ``maps`` and their (name, offset, size) in ``.maps``."""
    from ..btf.builder import BTFBuilder
    b = BTFBuilder()
    int_id = b.add_int("int", 4, signed=True)
    index_id = b.add_int("unsigned int", 4)
    placed: List[Tuple[str, int, int]] = []
    var_entries = []
    offset = 0
    for name, spec in maps.items():
        attrs = [("type", int(spec.type)), ("key_size", spec.key_size),
                 ("value_size", spec.value_size), ("max_entries", spec.max_entries),
                 ("map_flags", spec.flags)]
        if spec.pinning is Pinning.BY_NAME:
            attrs.append(("pinning", 1))
        if spec.map_extra:
            attrs.append(("map_extra", spec.map_extra))
        attrs = [(k, v) for k, v in attrs if v or k in ("type", "max_entries")]
        members = []
        for i, (attr, value) in enumerate(attrs):
            arr = b.add_array(int_id, value, index_type=index_id)
            members.append((attr, b.add_ptr(arr), i * 64))
        size = 8 * len(members)
        struct_id = b.add_struct("", size, members)
        var_id = b.add_var(name, struct_id)
        var_entries.append((var_id, offset, size))
        placed.append((name, offset, size))
        offset += size
    if var_entries:
        b.add_datasec(".maps", offset, var_entries)
    return b.to_bytes(), placed


def write_object(programs: Sequence[ObjectProgram], maps: Optional[Mapping[str, MapSpec]] = None,
                 *, license: str = "GPL",
                 path: Union[str, "os.PathLike[str]", None] = None) -> bytes:
    """Build a relocatable BPF ELF object of ``programs`` and ``maps`` (keyed by the
    names the programs' map references use); write it to ``path`` when given and return
    its bytes. :class:`ObjectError` for a reference to an unknown map or a reference
    that is not a map load."""
    maps = dict(maps or {})
    strings = _Strings()
    sections: List[Tuple[str, int, int, bytes, int, int, int, int]] = []
    # (name, type, flags, data, link, info, align, entsize); index 0 is the null section
    symbols: List[Tuple[str, int, str, int, int]] = []   # name, info, section, value, size
    relocs: Dict[str, List[Tuple[int, str]]] = {}
    prog_sections: Dict[str, bytearray] = {}
    seen = set()
    for prog in programs:
        if prog.name in seen:
            raise ObjectError(f"two programs named {prog.name!r}")
        seen.add(prog.name)
        code = prog_sections.setdefault(prog.section, bytearray())
        start = len(code)
        slot = start // 8
        insns = []
        for ins in prog.instructions:
            if ins.reference is not None:
                if ins.opcode != 0x18 or ins.src not in (Pseudo.MAP_FD, Pseudo.MAP_VALUE):
                    raise ObjectError(f"program {prog.name!r}: reference {ins.reference!r} "
                                      f"on an instruction that is not a map load")
                ref = ins.reference if isinstance(ins.reference, str) else \
                    getattr(ins.reference, "name", "")
                if ref not in maps:
                    raise ObjectError(f"program {prog.name!r}: map {ref!r} is not among "
                                      f"the maps written")
                if ins.src != Pseudo.MAP_FD:
                    raise ObjectError(f"program {prog.name!r}: map value loads of {ref!r} "
                                      f"are not supported")
                relocs.setdefault(prog.section, []).append((slot * 8, ref))
                ins = Instruction(0x18, ins.dst, 0, 0, 0)
            insns.append(ins)
            slot += ins.slots
        code += encode(insns)
        symbols.append((prog.name, (_STB_GLOBAL << 4) | _STT_FUNC, prog.section, start,
                        len(code) - start))
    for name, code in prog_sections.items():
        sections.append((name, _SHT_PROGBITS, _SHF_ALLOC | _SHF_EXECINSTR, bytes(code),
                         0, 0, 8, 0))
    if maps:
        btf, placed = _maps_btf(maps)
        total = sum(size for _, _, size in placed)
        sections.append((".maps", _SHT_PROGBITS, _SHF_ALLOC | _SHF_WRITE, bytes(total),
                         0, 0, 8, 0))
        for name, offset, size in placed:
            symbols.append((name, (_STB_GLOBAL << 4) | _STT_OBJECT, ".maps", offset, size))
    else:
        from ..btf.builder import BTFBuilder
        btf = BTFBuilder().to_bytes()
    lic = license.encode() + b"\0"
    sections.append(("license", _SHT_PROGBITS, _SHF_ALLOC | _SHF_WRITE, lic, 0, 0, 1, 0))
    symbols.append(("_license", (_STB_GLOBAL << 4) | _STT_OBJECT, "license", 0, len(lic)))
    sections.append((".BTF", _SHT_PROGBITS, 0, btf, 0, 0, 4, 0))
    names = [s[0] for s in sections]
    index_of = {name: i + 1 for i, name in enumerate(names)}
    sym_index = {name: i + 1 for i, (name, *_rest) in enumerate(symbols)}
    symtab_index = len(sections) + len(relocs) + 1
    for sec_name, entries in relocs.items():
        data = b"".join(_REL.pack(off, (sym_index[ref] << 32) | _R_BPF_64_64)
                        for off, ref in entries)
        sections.append((".rel" + sec_name, _SHT_REL, 0, data, symtab_index,
                         index_of[sec_name], 8, _REL.size))
    strtab_index = symtab_index + 1
    symdata = bytearray(_SYM.pack(0, 0, 0, 0, 0, 0))
    for name, info, sec, value, size in symbols:
        symdata += _SYM.pack(strings.add(name), info, 0, index_of[sec], value, size)
    sections.append((".symtab", _SHT_SYMTAB, 0, bytes(symdata), strtab_index, 1, 8,
                     _SYM.size))
    name_offs = [strings.add(s[0]) for s in sections]
    str_off = strings.add(".strtab")
    sections.append((".strtab", _SHT_STRTAB, 0, b"", 0, 0, 1, 0))
    name_offs.append(str_off)
    strtab = bytes(strings.data)
    sections[-1] = (".strtab", _SHT_STRTAB, 0, strtab, 0, 0, 1, 0)
    body = bytearray()
    offsets = []
    pos = _EHDR.size
    for sec in sections:
        align = max(sec[6], 1)
        pad = (-pos) % align
        body += bytes(pad)
        pos += pad
        offsets.append(pos)
        body += sec[3]
        pos += len(sec[3])
    pad = (-pos) % 8
    body += bytes(pad)
    shoff = pos + pad
    headers = bytearray(_SHDR.pack(0, 0, 0, 0, 0, 0, 0, 0, 0, 0))
    for sec, off, name_off in zip(sections, offsets, name_offs):
        name, stype, flags, data, link, info, align, entsize = sec
        headers += _SHDR.pack(name_off, stype, flags, 0, off, len(data), link, info, align,
                              entsize)
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    header = _EHDR.pack(ident, 1, 247, 1, 0, 0, shoff, 0, _EHDR.size, 0, 0, _SHDR.size,
                        len(sections) + 1, len(sections))
    out = header + bytes(body) + bytes(headers)
    if path is not None:
        with open(path, "wb") as fh:
            fh.write(out)
    return out
