"""Reading a clang-built BPF ELF object (libbpf conventions) into an
:class:`~pybpf.object.spec.ObjectSpec`, with pyelftools."""

from __future__ import annotations

import io
import os
import re
import struct
from typing import Any, Dict, List, Optional, Tuple, Union

from ..maps.spec import MapSpec, Pinning
from ..program import ProgramSpec
from ..syscall.bpf import MapFlags, MapType
from .errors import ObjectError
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
                kernel_btf: Any = None) -> ObjectSpec:
    """Read a BPF ELF object (a path, or its bytes) into an :class:`ObjectSpec`.

    CO-RE relocations (``.BTF.ext``) are applied against ``kernel_btf`` (a
    :class:`pybpf.btf.BTF`; the running kernel's, :func:`pybpf.btf.vmlinux`, by
    default, read only when the object has CO-RE relocations).

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
        return _Reader(data, kernel_btf).read()
    except ObjectError as exc:
        raise ObjectError(f"{label}: {exc}") from None
    except RecursionError:
        raise ObjectError(f"{label}: malformed object (too deeply nested)") from None
    except Exception as exc:  # pyelftools and the BTF parser raise many kinds
        raise ObjectError(f"{label}: malformed object: {type(exc).__name__}: {exc}") \
            from None


class _Reader:
    def __init__(self, data: bytes, kernel_btf: Any = None) -> None:
        from elftools.elf.elffile import ELFFile
        self.data = data
        self.kernel_btf = kernel_btf
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
        self._read_programs(spec)
        return spec

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

    def _btf_maps(self, spec: ObjectSpec) -> None:
        from ..btf.resolve import sizeof
        from ..btf.types import Array, Composite, Datasec, Ptr, Var
        secs = [t for t in self.btf.types() if isinstance(t, Datasec) and t.name == ".maps"]
        if not secs:
            raise ObjectError("section '.maps': no DATASEC '.maps' in the object's BTF")
        for info in secs[0].vars:
            var = self.btf.type(info.type)
            if not isinstance(var, Var):
                raise ObjectError(f"DATASEC '.maps': entry {info.type} is not a variable")
            name = var.name
            struct_t = self._strip(var.type)
            if not isinstance(struct_t, Composite):
                raise ObjectError(f"map {name!r}: its BTF type is not a struct")
            attrs: Dict[str, int] = {}
            for member in struct_t.members:
                mt = self._strip(member.type)
                if not isinstance(mt, Ptr):
                    raise ObjectError(f"map {name!r}: member {member.name!r} is not a "
                                      f"pointer (__uint/__type)")
                if member.name in ("key", "value"):
                    pointee = self._strip(mt.type)
                    attrs[member.name + "_size"] = sizeof(self.btf, pointee.id)
                elif member.name == "values":
                    raise ObjectError(f"map {name!r}: initialised map-in-map / prog "
                                      f"array 'values' are not supported")
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
            try:
                spec.maps[name] = MapSpec(
                    type=attrs["type"], key=attrs.get("key_size", 0),
                    value=attrs.get("value_size", 0),
                    max_entries=attrs.get("max_entries", 0),
                    flags=attrs.get("map_flags", 0), name=_map_name(name),
                    pinning=Pinning.BY_NAME if pinning else Pinning.NONE,
                    map_extra=attrs.get("map_extra", 0),
                    numa_node=attrs["numa_node"] if "numa_node" in attrs else None)
            except (ValueError, TypeError) as exc:
                raise ObjectError(f"map {name!r}: {exc}") from None

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
        for sec_name, fns in functions.items():
            if sec_name == ".text":
                continue
            kind = classify_section(sec_name)
            if kind is None:
                continue
            for fn in fns:
                if fn.name in spec.programs:
                    raise ObjectError(f"symbol {fn.name!r}: two programs of that name")
                insns = link_program(fn, functions, code, relocs)
                spec.programs[fn.name] = ProgramSpec(
                    kind.prog_type, insns, license=spec.license or "GPL",
                    attach_type=kind.attach_type, attach_target=kind.target or None,
                    name=_map_name(fn.name).replace(".", "_"),
                    kernel_version=spec.kernel_version, source_lines=False)
                spec.program_info[fn.name] = ProgramInfo(sec_name, kind)

    def _apply_core(self, code: Dict[str, bytes]) -> Dict[str, bytes]:
        ext = self.by_name.get(".BTF.ext")
        if ext is None or self.btf is None:
            return code
        from .core import apply_core_relocs, parse_core_relocs
        relocs = parse_core_relocs(self._bytes(ext), self.btf)
        if not relocs:
            return code
        target = self.kernel_btf
        if target is None:
            from ..btf.parser import vmlinux
            try:
                target = vmlinux()
            except OSError as exc:
                raise ObjectError(f"the object has {len(relocs)} CO-RE relocations and "
                                  f"the kernel's BTF cannot be read: {exc}") from None
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
                if rtype == R_BPF_64_32 and opcode == 0x85:
                    if sym_sec not in code_names(exec_index):
                        raise ObjectError(f"{what}: call target is not in a code section")
                    tslot = sym["st_value"] // 8 + imm + 1
                    table[slot] = Reloc("call", sym_sec or "", tslot, 0, what)
                elif rtype == R_BPF_64_64 and opcode == 0x18:
                    if sym_sec is None:
                        raise ObjectError(f"{what}: undefined symbol (extern "
                                          f"kconfig/ksym are not supported)")
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


def code_names(exec_index: Dict[int, str]) -> Tuple[str, ...]:
    """The names of the executable sections."""
    return tuple(exec_index.values())
