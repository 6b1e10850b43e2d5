"""Reading a clang-built BPF ELF object (libbpf conventions) into an
:class:`~pybpf.object.spec.ObjectSpec`, with pyelftools."""

from __future__ import annotations

import io
import os
import re
import struct
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from ..maps.spec import MapSpec, Pinning
from ..program import ProgramSpec
from ..syscall.bpf import MapFlags, MapType
from .errors import ObjectError
from .externs import Extern
from .btfext import program_ext_info
from .relocations import (R_BPF_64_32, R_BPF_64_64, Function, Reloc, link_program)
from .sections import classify_section
from .spec import GlobalData, ObjectSpec, ProgramInfo, Variable

__all__ = ["read_object", "ObjectError"]

_SHF_EXECINSTR = 0x4
_EM_BPF = 247
_MAX_NOBITS = 1 << 26
_DATA_RE = re.compile(r"^\.(data|rodata|bss)(\..*)?$")


def _is_data_section(name: str) -> bool:
    return bool(_DATA_RE.match(name)) and not name.startswith(".rodata.str") \
        and not name.startswith(".rodata.cst")


def _map_name(name: str) -> str:
    """A kernel map name (15 characters of letters, digits, ``_`` and ``.``)."""
    clean = re.sub(r"[^A-Za-z0-9_.]", "_", name)
    return clean[:15]


def read_object(source: Union[str, "os.PathLike[str]", bytes, bytearray], *,
                kernel_btf: Any = None,
                kconfig: Optional[Mapping[str, str]] = None) -> ObjectSpec:
    """Read a BPF ELF object (a path, or its bytes) into an :class:`ObjectSpec`.

    CO-RE relocations (``.BTF.ext``) are applied against ``kernel_btf`` (a
    :class:`pybpf.btf.BTF`; the running kernel's, :func:`pybpf.btf.vmlinux`, by
    default, read only when the object has CO-RE relocations or ``__ksym`` externs).
    ``kconfig`` (``{"CONFIG_X": "y"}``) replaces the kernel's configuration for
    ``__kconfig`` externs (see :mod:`pybpf.object.externs`).

    The object's BTF (made loadable, :func:`~pybpf.object.btfext.sanitize_btf`) is
    kept in :attr:`ObjectSpec.btf`, and each program gets its ``func_info`` and
    ``line_info`` from ``.BTF.ext`` and a :class:`~pybpf.asm.instruction.SourceLocation`
    (the C line) on each instruction.

    Any malformed content, or a CO-RE relocation the kernel's BTF cannot satisfy,
    raises :class:`ObjectError` (a ``ValueError``) naming the section, symbol or
    relocation at fault."""
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
        label = "object"
    else:
        label = os.fspath(source)
        with open(label, "rb") as fh:
            data = fh.read()
    try:
        return _Reader(data, kernel_btf, kconfig).read()
    except ObjectError as exc:
        raise type(exc)(f"{label}: {exc}") from None
    except RecursionError:
        raise ObjectError(f"{label}: malformed object (too deeply nested)") from None
    except Exception as exc:  # pyelftools and the BTF parser raise many kinds
        raise ObjectError(f"{label}: malformed object: {type(exc).__name__}: {exc}") \
            from None


class _Reader:
    def __init__(self, data: bytes, kernel_btf: Any = None,
                 kconfig: Optional[Mapping[str, str]] = None) -> None:
        from elftools.elf.elffile import ELFFile
        self.data = data
        self.kernel_btf = kernel_btf
        self.kconfig = kconfig
        self.externs: Dict[str, Extern] = {}
        from ..elf.layout import ELFLayoutError, check_layout
        try:
            check_layout(data)
        except ELFLayoutError as exc:
            raise ObjectError(str(exc)) from None
        try:
            self.elf = ELFFile(io.BytesIO(data))
        except Exception as exc:
            raise ObjectError(f"not an ELF file: {exc}") from None
        if self.elf["e_machine"] not in ("EM_BPF", _EM_BPF):
            raise ObjectError(f"not a BPF object (machine {self.elf['e_machine']})")
        self.sections: Dict[int, Any] = {}
        self.by_name: Dict[str, Any] = {}
        for index, sec in enumerate(self.elf.iter_sections()):
            self.sections[index] = sec
            self.by_name.setdefault(sec.name, sec)
        self.symtab = self.elf.get_section_by_name(".symtab")
        if self.symtab is None:
            raise ObjectError("no .symtab section")
        self.symbols = list(self.symtab.iter_symbols())
        self.btf: Any = None

    # -- helpers ----------------------------------------------------------------------
    def _section_name(self, shndx: Any) -> Optional[str]:
        if not isinstance(shndx, int):
            return None
        sec = self.sections.get(shndx)
        return sec.name if sec is not None else None

    def _bytes(self, sec: Any) -> bytes:
        if sec["sh_type"] == "SHT_NOBITS":
            if sec["sh_size"] > _MAX_NOBITS:
                raise ObjectError(f"section {sec.name!r}: {sec['sh_size']} bytes of "
                                  f"zeroes is more than any map value can hold")
            return bytes(sec["sh_size"])
        if sec["sh_offset"] + sec["sh_size"] > len(self.data):
            raise ObjectError(f"section {sec.name!r} runs past the end of the file")
        raw = sec.data()
        if len(raw) != sec["sh_size"]:
            raise ObjectError(f"section {sec.name!r} is truncated")
        return bytes(raw)

    # -- the whole object -------------------------------------------------------------
    def read(self) -> ObjectSpec:
        spec = ObjectSpec()
        lic = self.by_name.get("license")
        if lic is not None:
            spec.license = self._bytes(lic).split(b"\0", 1)[0].decode("utf-8", "replace")
        ver = self.by_name.get("version")
        if ver is not None:
            raw = self._bytes(ver)
            if len(raw) != 4:
                raise ObjectError(f"section 'version' has {len(raw)} bytes, expected 4")
            spec.kernel_version = struct.unpack("<I", raw)[0]
        btf_sec = self.by_name.get(".BTF")
        if btf_sec is not None:
            from ..btf.parser import BTF
            try:
                self.btf = BTF(self._bytes(btf_sec), name=".BTF")
            except ValueError as exc:
                raise ObjectError(f"section '.BTF': {exc}") from None
        self._read_maps(spec)
        self._read_data(spec)
        self._read_externs(spec)
        self._read_programs(spec)
        if self.btf is not None:
            spec.btf = self._loadable_btf(btf_sec, spec)
        return spec

    def _kernel(self, why: str) -> Any:
        if self.kernel_btf is None:
            from ..btf.parser import vmlinux
            try:
                self.kernel_btf = vmlinux()
            except OSError as exc:
                raise ObjectError(f"{why} and the kernel's BTF cannot be read: {exc}") \
                    from None
        return self.kernel_btf

    # -- externs ----------------------------------------------------------------------
    def _read_externs(self, spec: ObjectSpec) -> None:
        from .externs import collect_externs, extern_symbols, kconfig_layout, resolve_ksyms
        if self.btf is None:
            return
        self.externs = collect_externs(self.btf, extern_symbols(self.symbols))
        if not self.externs:
            return
        spec.externs = self.externs
        if any(e.kind == "kconfig" for e in self.externs.values()):
            initial = kconfig_layout(self.btf, self.externs, self.kconfig)
            mspec = MapSpec(type=MapType.ARRAY, key=4, value=max(len(initial), 8),
                            max_entries=1, flags=MapFlags.RDONLY_PROG, name=".kconfig")
            spec.data[".kconfig"] = GlobalData(".kconfig", bytearray(initial), True, mspec)
        if any(e.kind != "kconfig" for e in self.externs.values()):
            names = sorted(e.name for e in self.externs.values() if e.kind != "kconfig")
            resolve_ksyms(self.btf, self.externs,
                          self._kernel(f"the object has __ksym externs ({', '.join(names)})"))

    # -- BTF for the kernel -----------------------------------------------------------
    def _loadable_btf(self, btf_sec: Any, spec: ObjectSpec) -> bytes:
        from .btfext import sanitize_btf
        layout: Dict[str, Tuple[int, Dict[str, Tuple[int, int]]]] = {}
        for index, sec in self.sections.items():
            if sec["sh_type"] not in ("SHT_PROGBITS", "SHT_NOBITS") or not sec.name:
                continue
            offsets: Dict[str, Tuple[int, int]] = {}
            for sym in self.symbols:
                if sym["st_shndx"] == index and sym.name and \
                        sym["st_info"]["type"] == "STT_OBJECT":
                    offsets[sym.name] = (sym["st_value"], sym["st_size"])
            layout[sec.name] = (sec["sh_size"], offsets)
        if ".kconfig" in spec.data:
            layout[".kconfig"] = (len(spec.data[".kconfig"].initial),
                                  {e.name: (e.offset, e.size) for e in self.externs.values()
                                   if e.kind == "kconfig"})
        return sanitize_btf(self._bytes(btf_sec), layout)

    # -- maps -------------------------------------------------------------------------
    def _read_maps(self, spec: ObjectSpec) -> None:
        if ".maps" in self.by_name:
            if self.btf is None:
                raise ObjectError("section '.maps' needs the object's BTF (.BTF)")
            self._btf_maps(spec)
        if "maps" in self.by_name:
            self._legacy_maps(spec)

    def _strip(self, type_id: int) -> Any:
        from ..btf.types import Modifier
        seen = 0
        t = self.btf.type(type_id)
        while isinstance(t, Modifier):
            seen += 1
            if seen > 64:
                raise ObjectError(f"BTF type {type_id}: modifier loop")
            t = self.btf.type(t.type)
        return t

    def _map_def(self, name: str, struct_t: Any, depth: int = 0
                 ) -> Tuple[MapSpec, Optional[int]]:
        """The :class:`MapSpec` a BTF map definition describes and the byte offset of
        its ``values`` member (None without one)."""
        from ..btf.resolve import sizeof
        from ..btf.types import Array, Composite, FuncProto, Ptr
        if not isinstance(struct_t, Composite):
            raise ObjectError(f"map {name!r}: its BTF type is not a struct")
        attrs: Dict[str, int] = {}
        inner: Optional[MapSpec] = None
        values_at: Optional[int] = None
        for member in struct_t.members:
            mt = self._strip(member.type)
            if member.name == "values":
                # __array(values, ...): a flexible array of pointers to the inner map
                # definition (maps of maps) or to a function prototype (prog arrays)
                if not isinstance(mt, Array) or mt.nelems != 0:
                    raise ObjectError(f"map {name!r}: member 'values' is not a flexible "
                                      f"array (__array)")
                ptr = self._strip(mt.type)
                if not isinstance(ptr, Ptr):
                    raise ObjectError(f"map {name!r}: 'values' are not pointers")
                pointee = self._strip(ptr.type)
                if isinstance(pointee, Composite):
                    if depth:
                        raise ObjectError(f"map {name!r}: maps of maps nest one level only")
                    inner = self._map_def(f"{name}.values", pointee, depth + 1)[0]
                elif not isinstance(pointee, FuncProto):
                    raise ObjectError(f"map {name!r}: 'values' point to neither a map "
                                      f"definition nor a function")
                values_at = member.bit_offset // 8
                continue
            if not isinstance(mt, Ptr):
                raise ObjectError(f"map {name!r}: member {member.name!r} is not a "
                                  f"pointer (__uint/__type)")
            if member.name in ("key", "value"):
                pointee = self._strip(mt.type)
                attrs[member.name + "_size"] = sizeof(self.btf, pointee.id)
            else:
                arr = self._strip(mt.type)
                if not isinstance(arr, Array):
                    raise ObjectError(f"map {name!r}: member {member.name!r} is not "
                                      f"__uint(...)")
                attrs[member.name] = arr.nelems
        if "type" not in attrs:
            raise ObjectError(f"map {name!r}: no map type")
        pinning = attrs.get("pinning", 0)
        if pinning not in (0, 1):
            raise ObjectError(f"map {name!r}: unsupported pinning {pinning}")
        value_size = attrs.get("value_size", 0)
        if inner is not None or (values_at is not None and not value_size):
            value_size = value_size or 4          # fd-valued maps hold 4-byte ids
        try:
            mspec = MapSpec(
                type=attrs["type"], key=attrs.get("key_size", 0), value=value_size,
                max_entries=attrs.get("max_entries", 0),
                flags=attrs.get("map_flags", 0), name=_map_name(name.split(".")[0]),
                pinning=Pinning.BY_NAME if pinning else Pinning.NONE,
                inner=inner, map_extra=attrs.get("map_extra", 0),
                numa_node=attrs["numa_node"] if "numa_node" in attrs else None)
        except (ValueError, TypeError) as exc:
            raise ObjectError(f"map {name!r}: {exc}") from None
        return mspec, values_at

    def _btf_maps(self, spec: ObjectSpec) -> None:
        from ..btf.types import Datasec, Var
        secs = [t for t in self.btf.types() if isinstance(t, Datasec) and t.name == ".maps"]
        if not secs:
            raise ObjectError("section '.maps': no DATASEC '.maps' in the object's BTF")
        values_at: Dict[str, int] = {}
        for info in secs[0].vars:
            var = self.btf.type(info.type)
            if not isinstance(var, Var):
                raise ObjectError(f"DATASEC '.maps': entry {info.type} is not a variable")
            name = var.name
            spec.maps[name], at = self._map_def(name, self._strip(var.type))
            if at is not None:
                values_at[name] = at
        self._map_values(spec, values_at)

    def _map_values(self, spec: ObjectSpec, values_at: Dict[str, int]) -> None:
        """``.values = { [i] = &prog_or_map }``: the ``.rel.maps`` relocations, each
        against a program (prog arrays) or a map (maps of maps)."""
        maps_sec = self.by_name[".maps"]
        maps_index = next(i for i, s in self.sections.items() if s is maps_sec)
        placed = [(sym["st_value"], sym["st_size"], sym.name) for sym in self.symbols
                  if sym["st_shndx"] == maps_index and sym.name in spec.maps]
        for sec in self.sections.values():
            if sec["sh_type"] != "SHT_REL" or sec["sh_info"] != maps_index:
                continue
            for n, rel in enumerate(sec.iter_relocations()):
                what = f"relocation {n} of {sec.name!r} (offset {rel['r_offset']:#x})"
                if rel["r_info_sym"] >= len(self.symbols):
                    raise ObjectError(f"{what}: symbol index out of range")
                sym = self.symbols[rel["r_info_sym"]]
                off = rel["r_offset"]
                owner = next((p for p in placed if p[0] <= off < p[0] + p[1]), None)
                if owner is None or owner[2] not in values_at:
                    raise ObjectError(f"{what} against {sym.name!r}: not inside the "
                                      f"'values' of a map")
                rel_off = off - owner[0] - values_at[owner[2]]
                if rel_off < 0 or rel_off % 8:
                    raise ObjectError(f"{what} against {sym.name!r}: not a 'values' slot")
                index = rel_off // 8
                mspec = spec.maps[owner[2]]
                if index >= mspec.max_entries:
                    raise ObjectError(f"{what}: index {index} of map {owner[2]!r} is past "
                                      f"max_entries {mspec.max_entries}")
                if mspec.inner is not None:
                    if sym["st_shndx"] != maps_index or sym.name not in spec.maps:
                        raise ObjectError(f"{what}: {sym.name!r} is not a map")
                    entry = ("map", sym.name)
                else:
                    if sym["st_info"]["type"] != "STT_FUNC":
                        raise ObjectError(f"{what}: {sym.name!r} is not a program")
                    entry = ("prog", sym.name)
                spec.map_values.setdefault(owner[2], {})[index] = entry

    def _legacy_maps(self, spec: ObjectSpec) -> None:
        sec = self.by_name["maps"]
        raw = self._bytes(sec)
        index = next(i for i, s in self.sections.items() if s is sec)
        syms = [s for s in self.symbols if s["st_shndx"] == index and s.name]
        for sym in syms:
            off = sym["st_value"]
            if off + 20 > len(raw):
                raise ObjectError(f"legacy map {sym.name!r} runs past section 'maps'")
            mtype, ksize, vsize, maxent, flags = struct.unpack_from("<5I", raw, off)
            try:
                spec.maps[sym.name] = MapSpec(type=mtype, key=ksize, value=vsize,
                                              max_entries=maxent, flags=flags,
                                              name=_map_name(sym.name))
            except (ValueError, TypeError) as exc:
                raise ObjectError(f"legacy map {sym.name!r}: {exc}") from None

    # -- global data ------------------------------------------------------------------
    def _read_data(self, spec: ObjectSpec) -> None:
        for sec in self.sections.values():
            if not _is_data_section(sec.name) or sec["sh_size"] == 0:
                continue
            readonly = sec.name.startswith(".rodata")
            size = sec["sh_size"]
            try:
                mspec = MapSpec(type=MapType.ARRAY, key=4, value=size, max_entries=1,
                                flags=MapFlags.RDONLY_PROG if readonly else 0,
                                name=_map_name(sec.name))
            except (ValueError, TypeError) as exc:
                raise ObjectError(f"section {sec.name!r}: {exc}") from None
            spec.data[sec.name] = GlobalData(sec.name, bytearray(self._bytes(sec)),
                                             readonly, mspec)
        # clang leaves the DATASEC offsets to the loader: the symbol table has them
        for sym in self.symbols:
            sec_name = self._section_name(sym["st_shndx"])
            if sec_name not in spec.data or sym["st_info"]["type"] != "STT_OBJECT" \
                    or not sym.name:
                continue
            off, size = sym["st_value"], sym["st_size"]
            if off + size > len(spec.data[sec_name].initial):
                raise ObjectError(f"symbol {sym.name!r} runs past section {sec_name!r}")
            spec.variables[sym.name] = Variable(sec_name, off, size)

    # -- programs ---------------------------------------------------------------------
    def _read_programs(self, spec: ObjectSpec) -> None:
        code: Dict[str, bytes] = {}
        functions: Dict[str, List[Function]] = {}
        exec_index: Dict[int, str] = {}
        for index, sec in self.sections.items():
            if sec["sh_type"] == "SHT_PROGBITS" and sec["sh_flags"] & _SHF_EXECINSTR:
                code[sec.name] = self._bytes(sec)
                exec_index[index] = sec.name
                functions[sec.name] = []
        for sym in self.symbols:
            if sym["st_info"]["type"] != "STT_FUNC":
                continue
            sec_name = exec_index.get(sym["st_shndx"]) \
                if isinstance(sym["st_shndx"], int) else None
            if sec_name is None:
                continue
            value, size = sym["st_value"], sym["st_size"]
            if value % 8 or size % 8:
                raise ObjectError(f"symbol {sym.name!r}: offset/size not a multiple of 8")
            if value + size > len(code[sec_name]):
                raise ObjectError(f"symbol {sym.name!r} runs past section {sec_name!r}")
            functions[sec_name].append(Function(sym.name, sec_name, value // 8, size // 8))
        relocs = self._relocations(spec, exec_index)
        code = self._apply_core(code)
        ext_info = None
        ext_sec = self.by_name.get(".BTF.ext")
        if ext_sec is not None and self.btf is not None:
            from .btfext import parse_ext_info
            ext_info = parse_ext_info(self._bytes(ext_sec), self.btf)
        for sec_name, fns in functions.items():
            if sec_name == ".text":
                continue
            kind = classify_section(sec_name)
            if kind is None:
                continue
            for fn in fns:
                if fn.name in spec.programs:
                    raise ObjectError(f"symbol {fn.name!r}: two programs of that name")
                placement: List[Tuple[Function, int]] = []
                insns = link_program(fn, functions, code, relocs, placement)
                func_info, line_info = b"", b""
                if ext_info is not None:
                    func_info, line_info, insns = program_ext_info(placement, ext_info,
                                                                   self.btf, insns)
                insns = _label_subprograms(insns, placement[1:])
                spec.programs[fn.name] = ProgramSpec(
                    kind.prog_type, insns, license=spec.license or "GPL",
                    attach_type=kind.attach_type, attach_target=kind.target or None,
                    name=_map_name(fn.name).replace(".", "_"),
                    kernel_version=spec.kernel_version, source_lines=False)
                spec.program_info[fn.name] = ProgramInfo(sec_name, kind, func_info,
                                                         line_info)

    def _apply_core(self, code: Dict[str, bytes]) -> Dict[str, bytes]:
        ext = self.by_name.get(".BTF.ext")
        if ext is None or self.btf is None:
            return code
        from .core import apply_core_relocs, parse_core_relocs
        relocs = parse_core_relocs(self._bytes(ext), self.btf)
        if not relocs:
            return code
        target = self._kernel(f"the object has {len(relocs)} CO-RE relocations")
        return apply_core_relocs(code, relocs, self.btf, target)

    def _relocations(self, spec: ObjectSpec, exec_index: Dict[int, str]
                     ) -> Dict[str, Dict[int, Reloc]]:
        out: Dict[str, Dict[int, Reloc]] = {}
        for sec in self.sections.values():
            if sec["sh_type"] not in ("SHT_REL", "SHT_RELA"):
                continue
            target = self.sections.get(sec["sh_info"])
            if target is None:
                raise ObjectError(f"section {sec.name!r}: relocates unknown section "
                                  f"{sec['sh_info']}")
            if target.name not in exec_index.values():
                continue          # debug info and .BTF.ext relocations are not needed
            table = out.setdefault(target.name, {})
            code = self._bytes(target)
            for n, rel in enumerate(sec.iter_relocations()):
                offset = rel["r_offset"]
                rtype = rel["r_info_type"]
                symi = rel["r_info_sym"]
                what = f"relocation {n} of {sec.name!r} (offset {offset:#x})"
                if symi >= len(self.symbols):
                    raise ObjectError(f"{what}: symbol index {symi} out of range")
                sym = self.symbols[symi]
                what = f"{what} against symbol {sym.name!r}"
                if offset % 8:
                    raise ObjectError(f"{what}: offset not instruction-aligned")
                if offset + 8 > len(code):
                    raise ObjectError(f"{what}: offset past the end of the section")
                opcode, _, _, imm = struct.unpack_from("<BBhi", code, offset)
                sym_sec = self._section_name(sym["st_shndx"])
                slot = offset // 8
                ext = self.externs.get(sym.name) if sym_sec is None else None
                if ext is not None:
                    table[slot] = self._extern_reloc(ext, rtype, opcode, what)
                elif rtype == R_BPF_64_32 and opcode == 0x85:
                    if sym_sec not in code_names(exec_index):
                        raise ObjectError(f"{what}: call target is not in a code section")
                    tslot = sym["st_value"] // 8 + imm + 1
                    table[slot] = Reloc("call", sym_sec or "", tslot, 0, what)
                elif rtype == R_BPF_64_64 and opcode == 0x18:
                    if sym_sec is None:
                        raise ObjectError(f"{what}: undefined symbol, not a __kconfig "
                                          f"or __ksym extern of the object's BTF")
                    if sym_sec == ".maps" or sym_sec == "maps":
                        if sym.name not in spec.maps:
                            raise ObjectError(f"{what}: no map named {sym.name!r}")
                        table[slot] = Reloc("map", sym_sec, sym.name, 0, what)
                    elif sym_sec in spec.data:
                        off = sym["st_value"] + imm
                        if not 0 <= off <= len(spec.data[sym_sec].initial):
                            raise ObjectError(f"{what}: offset {off} outside {sym_sec!r}")
                        table[slot] = Reloc("data", sym_sec, sym_sec, off, what)
                    elif sym_sec in code_names(exec_index):
                        table[slot] = Reloc("func", sym_sec, sym["st_value"], imm, what)
                    else:
                        raise ObjectError(f"{what}: reference to section {sym_sec!r}, "
                                          f"which is neither a map nor global data")
                elif rtype in (R_BPF_64_64, R_BPF_64_32):
                    raise ObjectError(f"{what}: relocation type {rtype} on opcode "
                                      f"{opcode:#04x}")
                # other types (ABS64/ABS32/NODYLD32) apply to data/debug sections only
        return out


    def _extern_reloc(self, ext: Extern, rtype: int, opcode: int, what: str) -> Reloc:
        if ext.kind == "kfunc":
            if rtype != R_BPF_64_32 or opcode != 0x85:
                raise ObjectError(f"{what}: kfunc {ext.name!r} used other than by a call "
                                  f"(relocation type {rtype}, opcode {opcode:#04x})")
            return Reloc("kfunc", "", ext.imm, 0, what)
        if rtype != R_BPF_64_64 or opcode != 0x18:
            raise ObjectError(f"{what}: extern {ext.name!r} used other than by lddw "
                              f"(relocation type {rtype}, opcode {opcode:#04x})")
        if ext.kind == "kconfig":
            return Reloc("data", ".kconfig", ".kconfig", ext.offset, what)
        return Reloc("ksym", "", ext.imm, ext.src, what)


def _label_subprograms(insns: List[Any], placed: List[Tuple[Function, int]]) -> List[Any]:
    """Each subprogram's first instruction labelled with its function name (so the
    writer and BTF builders can name it)."""
    if not placed:
        return insns
    names = {base: fn.name for fn, base in placed}
    out = []
    slot = 0
    for ins in insns:
        name = names.get(slot)
        if name is not None and ins.label is None:
            ins = ins.replace(label=name)
        out.append(ins)
        slot += ins.slots
    return out


def code_names(exec_index: Dict[int, str]) -> Tuple[str, ...]:
    """The names of the executable sections."""
    return tuple(exec_index.values())
