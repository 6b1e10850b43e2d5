"""Writing pybpf programs as BPF ELF objects (libbpf conventions), readable by
``bpftool prog loadall``, ``llvm-objdump -d/-S`` and
:func:`~pybpf.object.reader.read_object`:

* one executable section per ``SEC()`` name, one global function symbol per program;
  the subprograms a program calls (BPF-to-BPF calls, cut at the call targets) go to
  ``.text`` as static functions (a subprogram identical to one already written, down to
  its calls, references and sources, is written once), and each call becomes
  ``call -1`` with an ``R_BPF_64_32`` relocation against the callee's symbol, as clang
  writes them;
* BTF-defined maps in ``.maps`` (a DATASEC of ``__uint``/``__type`` structs) and
  ``R_BPF_64_64`` relocations on the map loads;
* global data sections (``.data``, ``.rodata``, ``.bss``, ``.data.*``, ``.rodata.*``)
  with a symbol and a VAR per variable in a DATASEC; a ``lddw`` with pseudo source
  ``MAP_VALUE`` whose ``reference`` names such a section (``".rodata"``) loads the
  address of the byte at its offset (the high 32 bits of ``imm``, as for map value
  loads): an ``R_BPF_64_64`` against the section's symbol, the offset in ``imm``;
* when instructions carry a :class:`~pybpf.asm.instruction.SourceLocation`,
  ``.BTF.ext`` with ``func_info`` (a FUNC per function) and ``line_info`` (a record
  wherever the source line changes), which ``llvm-objdump -S`` and the kernel show;
* a ``license`` section.

The entry point is :func:`build_object`; :func:`write_object` is its older form.
"""

from __future__ import annotations

import linecache
import os
import struct
from typing import (
    Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union,
)

from ..asm.encoding import encode
from ..asm.instruction import Instruction
from ..asm.opcodes import Pseudo
from ..btf.format import line_col
from ..maps.spec import MapSpec, Pinning
from .errors import ObjectError

__all__ = ["ObjectProgram", "build_object", "write_object", "section_for",
           "ObjectWriteError"]

_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_SHDR = struct.Struct("<IIQQQQIIQQ")
_SYM = struct.Struct("<IBBHQQ")
_REL = struct.Struct("<QQ")
_SHT_PROGBITS, _SHT_SYMTAB, _SHT_STRTAB, _SHT_REL, _SHT_NOBITS = 1, 2, 3, 9, 8
_SHF_WRITE, _SHF_ALLOC, _SHF_EXECINSTR = 1, 2, 4
_STB_LOCAL, _STB_GLOBAL = 0, 1
_STT_OBJECT, _STT_FUNC, _STT_SECTION = 1, 2, 3
_R_BPF_64_64, _R_BPF_64_32 = 1, 10
_DATA_PREFIXES = (".data", ".rodata", ".bss")


class ObjectWriteError(ObjectError):
    """Programs, maps or data that cannot be written as an object."""


class ObjectProgram(NamedTuple):
    """A program to write: its ``SEC()`` section name (``"xdp"``,
    ``"tracepoint/syscalls/sys_enter_getppid"``), function name and linked
    instructions (map loads carry the map's name as ``reference``, global data loads the
    data section's name)."""

    section: str
    name: str
    instructions: Sequence[Instruction]

    @classmethod
    def from_spec(cls, spec: Any, section: Optional[str] = None,
                  name: Optional[str] = None) -> "ObjectProgram":
        """From a :class:`~pybpf.program.ProgramSpec`: ``section`` defaults to
        :func:`section_for` the spec, ``name`` to the spec's name."""
        return cls(section or section_for(spec), name or spec.name, spec.instructions)


#: program type -> the conventional section prefix (with a target when it takes one)
_SECTION_OF_TYPE = {
    "XDP": ("xdp", False), "SCHED_CLS": ("tc", False), "SOCKET_FILTER": ("socket", False),
    "PERF_EVENT": ("perf_event", False), "SYSCALL": ("syscall", False),
    "TRACEPOINT": ("tracepoint", True), "RAW_TRACEPOINT": ("raw_tp", True),
    "KPROBE": ("kprobe", True),
}


def section_for(spec: Any) -> str:
    """The ``SEC()`` name for a :class:`~pybpf.program.ProgramSpec` from its type
    and ``attach_target`` (``"xdp"``, ``"tracepoint/GROUP/NAME"``, ``"kprobe/FN"``).
    :class:`ObjectWriteError` for types without a convention pybpf knows."""
    from ..syscall.bpf import ProgType
    try:
        type_name = ProgType(spec.type).name
    except ValueError:
        type_name = str(spec.type)
    found = _SECTION_OF_TYPE.get(type_name)
    if found is None:
        raise ObjectWriteError(f"program {spec.name!r}: no section name convention for "
                               f"program type {type_name}; give the section")
    prefix, takes_target = found
    target = getattr(spec, "attach_target", None)
    if takes_target:
        if not target:
            raise ObjectWriteError(f"program {spec.name!r}: a {prefix} section needs the "
                                   f"spec's attach_target")
        return f"{prefix}/{target}"
    return prefix


class _Strings:
    def __init__(self) -> None:
        self.data = bytearray(b"\0")
        self.index: Dict[str, int] = {"": 0}

    def add(self, text: str) -> int:
        if text not in self.index:
            self.index[text] = len(self.data)
            self.data += text.encode() + b"\0"
        return self.index[text]


class _Function(NamedTuple):
    name: str
    section: str
    instructions: List[Instruction]
    is_main: bool


class _Section:
    def __init__(self, name: str, stype: int, flags: int, align: int = 8) -> None:
        self.name = name
        self.stype = stype
        self.flags = flags
        self.align = align
        self.data = bytearray()
        self.size = 0                  # for NOBITS
        self.link = 0
        self.info = 0
        self.entsize = 0
        self.relocs: List[Tuple[int, str, int]] = []     # offset, symbol key, type


def _slots(instructions: Sequence[Instruction]) -> List[int]:
    out, slot = [], 0
    for ins in instructions:
        out.append(slot)
        slot += ins.slots
    return out


def _call_target(ins: Instruction, slot: int) -> int:
    imm = ins.imm if ins.imm < 1 << 31 else ins.imm - (1 << 32)
    return slot + 1 + imm


def _split(prog: Any, used: Dict[str, int]) -> List[Tuple[_Function, int]]:
    """The functions of one program: the main one, then one per call target, each
    with its first slot in the program."""
    insns = list(prog.instructions)
    slots = _slots(insns)
    starts = {0}
    for ins, slot in zip(insns, slots):
        if ins.opcode == 0x85 and ins.src == 1:
            starts.add(_call_target(ins, slot))
        if ins.opcode == 0x18 and ins.src == Pseudo.FUNC:
            raise ObjectWriteError(f"program {prog.name!r}: lddw of a function "
                                   f"(callbacks) cannot be written")
    total = slots[-1] + insns[-1].slots if insns else 0
    bad = [s for s in starts if s != 0 and (s not in slots or s >= total)]
    if bad:
        raise ObjectWriteError(f"program {prog.name!r}: a call targets slot {bad[0]}, "
                               f"which is not the start of an instruction")
    ordered = sorted(starts)
    out: List[Tuple[_Function, int]] = []
    index = {s: i for i, s in enumerate(slots)}
    for n, start in enumerate(ordered):
        end = ordered[n + 1] if n + 1 < len(ordered) else total
        body = insns[index[start]:index[end] if end in index else len(insns)]
        if n == 0:
            fn = _Function(prog.name, prog.section, body, True)
        else:
            label = body[0].label
            if isinstance(label, tuple):
                label = label[0] if label else None
            base = str(label) if label else f"{prog.name}_sub_{start}"
            name = base
            while name in used:
                used[base] = used.get(base, 0) + 1
                name = f"{base}_{used[base]}"
            fn = _Function(name, ".text", body, False)
        used.setdefault(fn.name, 0)
        out.append((fn, start))
    return out


class _Writer:
    def __init__(self, maps: Mapping[str, MapSpec],
                 data: Mapping[str, Any], variables: Mapping[str, Any],
                 license: str) -> None:
        from ..btf.builder import BTFBuilder
        self.maps = dict(maps)
        self.data = {name: _data_bytes(name, value) for name, value in data.items()}
        self.variables = variables
        self.license = license
        self.btf = BTFBuilder()
        self.sections: Dict[str, _Section] = {}
        # symbols: key -> (name, bind, type, section name, value, size)
        self.symbols: Dict[str, Tuple[str, int, int, str, int, int]] = {}
        self.func_info: Dict[str, List[Tuple[int, int]]] = {}
        self.line_info: Dict[str, List[Tuple[int, int, int, int]]] = {}
        self._protos: Dict[bool, int] = {}
        #: subprograms written: (code, relocations, sources) -> symbol name
        self.written: Dict[Tuple[Any, ...], str] = {}
        #: a subprogram not written again -> the identical one written
        self.alias: Dict[str, str] = {}

    def section(self, name: str, stype: int, flags: int, align: int = 8) -> _Section:
        sec = self.sections.get(name)
        if sec is None:
            sec = self.sections[name] = _Section(name, stype, flags, align)
        return sec

    # -- programs -----------------------------------------------------------------------
    def add_programs(self, programs: Sequence[Any]) -> None:
        seen = set()
        used: Dict[str, int] = {}
        for prog in programs:
            if not hasattr(prog, "section"):
                prog = ObjectProgram.from_spec(prog)
            if not prog.name:
                raise ObjectWriteError("a program without a name")
            if prog.name in seen:
                raise ObjectWriteError(f"two programs named {prog.name!r}")
            seen.add(prog.name)
            used[prog.name] = 0
        used_names = dict(used)
        any_source = any(getattr(i, "source", None) is not None
                         for p in programs for i in p.instructions)
        for prog in programs:
            if not hasattr(prog, "section"):
                prog = ObjectProgram.from_spec(prog)
            parts = _split(prog, used_names)
            start_name = {start: fn.name for fn, start in parts}
            callees: Dict[str, List[str]] = {}
            for fn, start in parts:
                slot = start
                callees[fn.name] = []
                for ins in fn.instructions:
                    if ins.opcode == 0x85 and ins.src == 1:
                        callees[fn.name].append(start_name[_call_target(ins, slot)])
                    slot += ins.slots
            # callees first, so that a subprogram identical to one written already
            # (same code, calls, data references and sources) is written once
            order: List[str] = []
            seen_fns: set = set()

            def visit(name: str) -> None:
                if name in seen_fns:
                    return
                seen_fns.add(name)
                for callee in callees[name]:
                    visit(callee)
                order.append(name)
            visit(prog.name)
            by_name = {fn.name: (fn, start) for fn, start in parts}
            for name in order:
                fn, start = by_name[name]
                self._add_function(prog, fn, start, start_name, any_source)

    def _add_function(self, prog: Any, fn: _Function, start: int,
                      start_name: Dict[int, str], with_btf: bool) -> None:
        sec = self.section(fn.section, _SHT_PROGBITS, _SHF_ALLOC | _SHF_EXECINSTR)
        slot_in_prog = start
        code = bytearray()
        relocs: List[Tuple[int, str, int]] = []
        for ins in fn.instructions:
            here = len(code)
            if ins.opcode == 0x85 and ins.src == 1:
                target = start_name[_call_target(ins, slot_in_prog)]
                relocs.append((here, "fn:" + self.alias.get(target, target), _R_BPF_64_32))
                ins = Instruction(0x85, ins.dst, 1, ins.off, -1)
            elif ins.opcode == 0x18 and ins.src in (Pseudo.MAP_FD, Pseudo.MAP_VALUE) \
                    and ins.reference is not None:
                ins = self._map_load(prog, ins, here, relocs)
            elif ins.opcode == 0x18 and ins.src in (Pseudo.MAP_FD, Pseudo.MAP_VALUE):
                raise ObjectWriteError(f"program {prog.name!r}: a map load without a "
                                       f"reference (a map or data section name)")
            code += encode([ins])
            slot_in_prog += ins.slots
        if not fn.is_main:
            key = (bytes(code), tuple(relocs),
                   tuple(getattr(i, "source", None) for i in fn.instructions))
            found = self.written.get(key)
            if found is not None:
                self.alias[fn.name] = found
                return
            self.written[key] = fn.name
        at = len(sec.data)
        sec.data += code
        sec.relocs.extend((at + off, target, rtype) for off, target, rtype in relocs)
        bind = _STB_GLOBAL if fn.is_main else _STB_LOCAL
        self.symbols["fn:" + fn.name] = (fn.name, bind, _STT_FUNC, fn.section, at,
                                         len(code))
        if with_btf:
            default = next((i.source for i in prog.instructions
                            if getattr(i, "source", None) is not None), None)
            self._function_btf(fn, at, default)

    def _map_load(self, prog: Any, ins: Instruction, here: int,
                  relocs: List[Tuple[int, str, int]]) -> Instruction:
        ref = ins.reference if isinstance(ins.reference, str) else \
            getattr(ins.reference, "name", "")
        if ins.src == Pseudo.MAP_FD:
            if ref not in self.maps:
                raise ObjectWriteError(f"program {prog.name!r}: map {ref!r} is not among "
                                       f"the maps written")
            relocs.append((here, "map:" + ref, _R_BPF_64_64))
            return Instruction(0x18, ins.dst, 0, 0, 0)
        if ref not in self.data:
            what = "a map (only global data can be loaded by address)" \
                if ref in self.maps else "not among the data sections written"
            raise ObjectWriteError(f"program {prog.name!r}: value load of {ref!r}: {what}")
        offset = (ins.imm >> 32) & 0xFFFFFFFF
        if offset > len(self.data[ref]):
            raise ObjectWriteError(f"program {prog.name!r}: offset {offset} is past the "
                                   f"end of {ref!r}")
        relocs.append((here, "sec:" + ref, _R_BPF_64_64))
        return Instruction(0x18, ins.dst, 0, 0, offset)

    def _function_btf(self, fn: _Function, at: int, default: Any) -> None:
        """A FUNC and its func_info record; line records from the instructions'
        sources (``default`` until the first one, so every function has a line)."""
        from ..btf.builder import _identifier
        b = self.btf
        if fn.is_main not in self._protos:
            if fn.is_main:
                self._protos[True] = b.add_func_proto(b.int_type(4, signed=True),
                                                      [("ctx", b.add_ptr(0))])
            else:
                long_id = b.add_int("long", 8, signed=True)
                self._protos[False] = b.add_func_proto(
                    long_id, [(f"r{i}", long_id) for i in range(1, 6)])
        func = b.add_func(_identifier(fn.name, "fn"), self._protos[fn.is_main],
                          1 if fn.is_main else 0)
        self.func_info.setdefault(fn.section, []).append((at, func))
        lines = self.line_info.setdefault(fn.section, [])
        current = next((i.source for i in fn.instructions
                        if getattr(i, "source", None) is not None), default)
        previous = None
        offset = at
        for k, ins in enumerate(fn.instructions):
            loc = getattr(ins, "source", None)
            if loc is not None:
                current = loc
            if current is not None:
                key = (current.file, current.line, current.column)
                if k == 0 or key != previous:
                    text = current.text or linecache.getline(current.file, current.line)
                    lines.append((offset, b.add_string(current.file),
                                  b.add_string(text.strip()),
                                  line_col(current.line, current.column)))
                    previous = key
            offset += 8 * ins.slots

    # -- maps and data ------------------------------------------------------------------
    def add_maps(self) -> None:
        if not self.maps:
            return
        b = self.btf
        int_id = b.int_type(4, signed=True)
        index_id = b.add_int("__ARRAY_SIZE_TYPE__", 4)
        sec = self.section(".maps", _SHT_PROGBITS, _SHF_ALLOC | _SHF_WRITE)
        entries = []
        for name, spec in self.maps.items():
            if spec.inner is not None:
                raise ObjectWriteError(f"map {name!r}: maps of maps cannot be written")
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
            var = b.add_var(name, b.add_struct("", size, members))
            offset = len(sec.data)
            entries.append((var, offset, size))
            sec.data += bytes(size)
            self.symbols["map:" + name] = (name, _STB_GLOBAL, _STT_OBJECT, ".maps", offset,
                                           size)
        b.add_datasec(".maps", len(sec.data), entries)

    def add_data(self) -> None:
        b = self.btf
        byte_id = 0
        for name, raw in self.data.items():
            if not name.startswith(_DATA_PREFIXES) or name.startswith(".rodata.str") \
                    or name.startswith(".rodata.cst"):
                raise ObjectWriteError(f"data section {name!r}: not .data, .rodata, .bss "
                                       f"or .data.*/.rodata.*/.bss.*")
            if name.startswith(".bss"):
                if any(raw):
                    raise ObjectWriteError(f"data section {name!r}: .bss must be zeroes")
                sec = self.section(name, _SHT_NOBITS, _SHF_ALLOC | _SHF_WRITE)
                sec.size = len(raw)
            else:
                flags = _SHF_ALLOC | (0 if name.startswith(".rodata") else _SHF_WRITE)
                sec = self.section(name, _SHT_PROGBITS, flags)
                sec.data += raw
            self.symbols["sec:" + name] = (name, _STB_LOCAL, _STT_SECTION, name, 0, 0)
            vars_here = sorted(((v.offset, v.size, n) for n, v in self.variables.items()
                                if v.section == name), key=lambda t: t[0])
            if not vars_here:
                vars_here = [(0, len(raw), "pybpf" + name.replace(".", "_"))]
            if not byte_id:
                byte_id = b.add_int("unsigned char", 1)
            entries = []
            end = 0
            for offset, size, var_name in vars_here:
                if offset < end or offset + size > len(raw):
                    raise ObjectWriteError(f"variable {var_name!r} overlaps another or "
                                           f"runs past {name!r}")
                end = offset + size
                arr = b.add_array(byte_id, size)
                entries.append((b.add_var(var_name, arr), offset, size))
                self.symbols["var:" + var_name] = (var_name, _STB_GLOBAL, _STT_OBJECT, name,
                                                   offset, size)
            b.add_datasec(name, len(raw), entries)

    # -- the file -----------------------------------------------------------------------
    def btf_ext(self) -> bytes:
        def part(table: Dict[str, List[Tuple[int, ...]]], rec: str) -> bytes:
            size = struct.calcsize(rec)
            out = bytearray(struct.pack("<I", size))
            for sec_name, rows in table.items():
                if not rows:
                    continue
                out += struct.pack("<II", self.btf.add_string(sec_name), len(rows))
                for row in rows:
                    out += struct.pack(rec, *row)
            return bytes(out)
        funcs = part(self.func_info, "<II")           # type: ignore[arg-type]
        lines = part(self.line_info, "<IIII")         # type: ignore[arg-type]
        header = struct.pack("<HBBIIIIIII", 0xEB9F, 1, 0, 32, 0, len(funcs), len(funcs),
                             len(lines), len(funcs) + len(lines), 0)
        return header + funcs + lines

    def to_bytes(self) -> bytes:
        lic = self.license.encode() + b"\0"
        sec = self.section("license", _SHT_PROGBITS, _SHF_ALLOC | _SHF_WRITE, 1)
        sec.data += lic
        self.symbols["var:_license"] = ("_license", _STB_GLOBAL, _STT_OBJECT, "license", 0,
                                        len(lic))
        ext = self.btf_ext() if self.func_info else b""
        ordered = list(self.sections.values())
        btf_sec = _Section(".BTF", _SHT_PROGBITS, 0, 4)
        btf_sec.data += self.btf.to_bytes()
        ordered.append(btf_sec)
        if ext:
            ext_sec = _Section(".BTF.ext", _SHT_PROGBITS, 0, 4)
            ext_sec.data += ext
            ordered.append(ext_sec)
        index_of = {s.name: i + 1 for i, s in enumerate(ordered)}
        # symbols: locals first (ELF), then globals
        syms = sorted(self.symbols.items(), key=lambda kv: kv[1][1] != _STB_LOCAL)
        sym_index = {key: i + 1 for i, (key, _) in enumerate(syms)}
        first_global = 1 + sum(1 for _, s in syms if s[1] == _STB_LOCAL)
        rel_secs = [s for s in ordered if s.relocs]
        symtab_index = len(ordered) + len(rel_secs) + 1
        for s in rel_secs:
            rel = _Section(".rel" + s.name, _SHT_REL, 0, 8)
            for off, key, rtype in s.relocs:
                if key not in sym_index:
                    raise ObjectWriteError(f"section {s.name!r}: relocation against "
                                           f"unknown {key!r}")
                rel.data += _REL.pack(off, (sym_index[key] << 32) | rtype)
            rel.link, rel.info, rel.entsize = symtab_index, index_of[s.name], _REL.size
            ordered.append(rel)
        strings = _Strings()
        symtab = _Section(".symtab", _SHT_SYMTAB, 0, 8)
        symtab.data += _SYM.pack(0, 0, 0, 0, 0, 0)
        for _, (name, bind, stype, sec_name, value, size) in syms:
            symtab.data += _SYM.pack(0 if stype == _STT_SECTION else strings.add(name),
                                     (bind << 4) | stype, 0, index_of[sec_name], value,
                                     size)
        symtab.link, symtab.info, symtab.entsize = symtab_index + 1, first_global, _SYM.size
        ordered.append(symtab)
        strtab = _Section(".strtab", _SHT_STRTAB, 0, 1)
        ordered.append(strtab)
        name_offs = [strings.add(s.name) for s in ordered]
        strtab.data += strings.data
        body = bytearray()
        offsets = []
        pos = _EHDR.size
        for s in ordered:
            pad = (-pos) % max(s.align, 1)
            body += bytes(pad)
            pos += pad
            offsets.append(pos)
            if s.stype != _SHT_NOBITS:
                body += s.data
                pos += len(s.data)
        pad = (-pos) % 8
        body += bytes(pad)
        shoff = pos + pad
        headers = bytearray(_SHDR.pack(0, 0, 0, 0, 0, 0, 0, 0, 0, 0))
        for s, off, name_off in zip(ordered, offsets, name_offs):
            size = s.size if s.stype == _SHT_NOBITS else len(s.data)
            headers += _SHDR.pack(name_off, s.stype, s.flags, 0, off, size, s.link, s.info,
                                  s.align, s.entsize)
        ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
        header = _EHDR.pack(ident, 1, 247, 1, 0, 0, shoff, 0, _EHDR.size, 0, 0,
                            _SHDR.size, len(ordered) + 1, len(ordered))
        return header + bytes(body) + bytes(headers)


def _data_bytes(name: str, value: Any) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    initial = getattr(value, "initial", None)
    if initial is not None:
        return bytes(initial)
    raise ObjectWriteError(f"data section {name!r}: expected bytes or a GlobalData")


def build_object(programs: Sequence[Any], maps: Optional[Mapping[str, MapSpec]] = None,
                 data: Optional[Mapping[str, Any]] = None, *,
                 variables: Optional[Mapping[str, Any]] = None, license: str = "GPL",
                 path: Union[str, "os.PathLike[str]", None] = None) -> bytes:
    """Build a relocatable BPF ELF object and return its bytes (also written to
    ``path`` when given).

    * ``programs``: :class:`ObjectProgram`\\ s, or anything with ``section``, ``name``
      and ``instructions`` (linked), or :class:`~pybpf.program.ProgramSpec`\\ s (section
      from :func:`section_for`). Subprograms (the targets of BPF-to-BPF calls) are
      written to ``.text``;
    * ``maps``: :class:`~pybpf.maps.spec.MapSpec` by the name map loads use as their
      ``reference``;
    * ``data``: global data sections by name (``".data"``, ``".rodata"``, ``".bss"``,
      ``".data.NAME"``...): bytes or :class:`~pybpf.object.spec.GlobalData`;
    * ``variables``: :class:`~pybpf.object.spec.Variable` by name, laid out in those
      sections (without any, a section is one variable, ``pybpf_data`` etc.).

    Raises :class:`ObjectWriteError` (an :class:`ObjectError`) for a reference to a map
    or section not written, a callback (``lddw`` of a function), or data that cannot be
    a section."""
    writer = _Writer(maps or {}, data or {}, variables or {}, license)
    writer.add_maps()
    writer.add_data()
    writer.add_programs(list(programs))
    out = writer.to_bytes()
    if path is not None:
        with open(path, "wb") as fh:
            fh.write(out)
    return out


def write_object(programs: Sequence[ObjectProgram], maps: Optional[Mapping[str, MapSpec]] = None,
                 *, license: str = "GPL",
                 path: Union[str, "os.PathLike[str]", None] = None) -> bytes:
    """Build a relocatable BPF ELF object of ``programs`` and ``maps`` (keyed by the
    names the programs' map references use); write it to ``path`` when given and return
    its bytes. :class:`ObjectError` for a reference to an unknown map. The same as
    :func:`build_object` without global data."""
    return build_object(programs, maps, license=license, path=path)
