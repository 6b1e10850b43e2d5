"""Fast ELF symbol tables: names to addresses and file offsets without a Python object
per symbol.

:class:`ElfFile` maps the file read-only and reads the header, program headers and
section headers with :mod:`struct`. A name is found without walking the table in
Python:

* in ``.dynsym`` through ``.gnu.hash`` (the dynamic linker's own hash table);
* otherwise (``.symtab``, or no hash table) by finding the places where the name occurs
  in the string table (``bytes.find``), then the symbols whose ``st_name`` is one of
  them in an :class:`array.array` column of all ``st_name`` values (``array.index``),
  both at C speed.

Resolving a handful of libc symbols takes well under a millisecond once the file is
open, and opening it about one. :meth:`ElfFile.names` (every name, for close matches)
builds the full list lazily in one pass. Both byte orders and both classes (ELF32,
ELF64) are read. :meth:`ElfFile.file_offset` turns an address into the offset in the
file that uprobes want (PIE, shared objects and fixed-address executables alike).
"""

from __future__ import annotations

import array
import mmap
import os
import struct
import sys
from .._records import record
from typing import Dict, Iterator, List, NamedTuple, Optional, Tuple

from ..errors import UnknownNameError, close_matches

__all__ = ["ElfFile", "Symbol", "Section", "Segment", "ElfError", "UnknownSymbolError",
           "gnu_hash", "STT_FUNC", "STT_GNU_IFUNC", "STT_OBJECT", "ET_EXEC", "ET_DYN",
           "parse_symbol_spec"]

ET_EXEC, ET_DYN = 2, 3
SHT_SYMTAB, SHT_DYNSYM, SHT_NOTE, SHT_GNU_HASH = 2, 11, 7, 0x6FFFFFF6
PT_LOAD = 1
PF_X = 1
STT_NOTYPE, STT_OBJECT, STT_FUNC, STT_GNU_IFUNC = 0, 1, 2, 10
STB_LOCAL, STB_GLOBAL, STB_WEAK = 0, 1, 2
SHN_UNDEF, SHN_XINDEX = 0, 0xFFFF


class ElfError(ValueError):
    """A file that is not ELF or is malformed."""


class UnknownSymbolError(UnknownNameError):
    """A symbol that is not in the binary (``matches`` lists close names)."""


class Section(NamedTuple):
    """A section header."""

    name: str
    type: int
    flags: int
    addr: int
    offset: int
    size: int
    link: int
    info: int
    entsize: int


class Segment(NamedTuple):
    """A program header."""

    type: int
    flags: int
    offset: int
    vaddr: int
    filesz: int
    memsz: int


@record(frozen=True)
class Symbol:
    """One symbol: ``value`` is its address (virtual, as linked), ``table`` the section
    it came from (``".symtab"``, ``".dynsym"``)."""

    name: str
    value: int
    size: int
    type: int
    bind: int
    shndx: int
    table: str

    @property
    def defined(self) -> bool:
        """Defined in this file (not an import)."""
        return self.shndx != SHN_UNDEF


def gnu_hash(name: bytes) -> int:
    """The ``.gnu.hash`` hash of a symbol name (the dynamic linker's, h*33 + c)."""
    h = 5381
    for c in name:
        h = (h * 33 + c) & 0xFFFFFFFF
    return h


def parse_symbol_spec(spec: str) -> Tuple[str, int]:
    """``"malloc+0x10"`` -> ``("malloc", 16)``; ``"malloc"`` -> ``("malloc", 0)``."""
    name, plus, off = spec.partition("+")
    if not plus:
        return spec, 0
    try:
        return name, int(off, 0)
    except ValueError:
        raise ValueError(f"bad offset in {spec!r}: expected symbol+N (decimal or 0x hex)"
                         ) from None


class _Table:
    """One symbol table: its bytes, string table and the ``st_name`` column."""

    def __init__(self, elf: "ElfFile", sec: Section) -> None:
        self.name = sec.name
        self.section = sec
        self.entsize = sec.entsize or (24 if elf.is64 else 16)
        self.count = sec.size // self.entsize
        self.data = elf.view(sec.offset, self.count * self.entsize)
        strsec = elf.sections[sec.link]
        self.strtab = bytes(elf.view(strsec.offset, strsec.size))
        self._names: Optional[array.array] = None
        self.fmt = elf.endian + ("IBBHQQ" if elf.is64 else "IIIBBH")
        self.is64 = elf.is64
        self.swap = elf.endian != ("<" if sys.byteorder == "little" else ">")

    def st_names(self) -> array.array:
        if self._names is None:
            col = array.array("I")
            words = self.entsize // 4
            col.frombytes(bytes(self.data))
            if self.swap:
                col.byteswap()
            self._names = col[0::words]
        return self._names

    def symbol(self, index: int) -> Symbol:
        raw = struct.unpack_from(self.fmt, self.data, index * self.entsize)
        if self.is64:
            st_name, info, _other, shndx, value, size = raw
        else:
            st_name, value, size, info, _other, shndx = raw
        end = self.strtab.find(b"\0", st_name)
        name = self.strtab[st_name:end if end >= 0 else None].decode(errors="replace")
        return Symbol(name, value, size, info & 0xF, info >> 4, shndx, self.name)

    def find(self, name: bytes) -> List[Symbol]:
        """Every symbol called ``name`` (string-table positions, then the column)."""
        wanted = name + b"\0"
        positions = []
        pos = self.strtab.find(wanted)
        while pos >= 0:
            positions.append(pos)
            pos = self.strtab.find(wanted, pos + 1)
        if not positions:
            return []
        col = self.st_names()
        out = []
        for p in positions:
            start = 0
            while True:
                try:
                    i = col.index(p, start)
                except ValueError:
                    break
                out.append(self.symbol(i))
                start = i + 1
        return out

    def defined_function_names(self) -> List[str]:
        """Names (as stored, version suffix kept) of the defined ``STT_FUNC`` and
        ``STT_GNU_IFUNC`` symbols, in table order, read from three columns of the raw
        table (no :class:`Symbol` per entry)."""
        step = self.entsize
        info_at, shndx_at = (4, 6) if self.is64 else (12, 14)
        infos = bytes(self.data[info_at::step])
        col = array.array("H")
        col.frombytes(bytes(self.data))
        if self.swap:
            col.byteswap()
        shndxs = col[shndx_at // 2::step // 2]
        wanted = [st_name for st_name, info, shndx in zip(self.st_names(), infos, shndxs)
                  if st_name and shndx and (info & 0xF) in (STT_FUNC, STT_GNU_IFUNC)]
        strtab = self.strtab
        if strtab.isascii():            # byte offsets are str offsets: decode once
            text = strtab.decode("ascii")
            find, size = text.find, len(text)
            ends = [find("\0", at) for at in wanted]
            return [text[at:end if end >= 0 else size]
                    for at, end in zip(wanted, ends) if end != at]
        out = []
        for at in wanted:
            end = strtab.find(b"\0", at)
            if end != at:                               # an empty name is no function
                out.append(strtab[at:end if end >= 0 else None].decode(errors="replace"))
        return out

    def names(self) -> Iterator[str]:
        strtab = self.strtab
        for st_name in set(self.st_names()):
            if st_name:
                end = strtab.find(b"\0", st_name)
                yield strtab[st_name:end].decode(errors="replace")


class ElfFile:
    """An ELF file opened for symbol lookups (a context manager; ``close()`` unmaps).

    ``path`` is kept for messages. ``etype`` is ``ET_EXEC`` (2) or ``ET_DYN`` (3, PIE
    executables and shared objects), ``machine`` the ``e_machine`` number.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            size = os.fstat(fd).st_size
            if size < 52:
                raise ElfError(f"{path}: not an ELF file (too small)")
            self._mm: Optional[mmap.mmap] = mmap.mmap(fd, 0, prot=mmap.PROT_READ)
        finally:
            os.close(fd)
        self._mv = memoryview(self._mm)
        self._tables: Dict[str, Optional[_Table]] = {}
        self._all_names: Optional[List[str]] = None
        try:
            self._parse()
        except Exception:
            self.close()
            raise

    # -- parsing --------------------------------------------------------------------------
    def _parse(self) -> None:
        ident = bytes(self._mv[:16])
        if ident[:4] != b"\x7fELF":
            raise ElfError(f"{self.path}: not an ELF file")
        if ident[4] not in (1, 2) or ident[5] not in (1, 2):
            raise ElfError(f"{self.path}: unknown ELF class or byte order")
        self.is64 = ident[4] == 2
        self.endian = "<" if ident[5] == 1 else ">"
        e = self.endian
        if self.is64:
            (self.etype, self.machine, _v, self.entry, phoff, shoff, _f, _eh, phentsize,
             phnum, shentsize, shnum, shstrndx) = struct.unpack_from(e + "HHIQQQIHHHHHH",
                                                                     self._mv, 16)
        else:
            (self.etype, self.machine, _v, self.entry, phoff, shoff, _f, _eh, phentsize,
             phnum, shentsize, shnum, shstrndx) = struct.unpack_from(e + "HHIIIIIHHHHHH",
                                                                     self._mv, 16)
        shfmt = e + ("IIQQQQIIQQ" if self.is64 else "IIIIIIIIII")
        phfmt = e + ("IIQQQQQQ" if self.is64 else "IIIIIIII")
        raw_sections = []
        if shoff:
            first = struct.unpack_from(shfmt, self._mv, shoff)
            if shnum == 0:
                shnum = first[5]
            if shstrndx == SHN_XINDEX:
                shstrndx = first[6]
            raw_sections = [struct.unpack_from(shfmt, self._mv, shoff + i * shentsize)
                            for i in range(shnum)]
        names = b""
        if raw_sections and shstrndx < len(raw_sections):
            s = raw_sections[shstrndx]
            names = bytes(self._mv[s[4]:s[4] + s[5]])
        self.sections: List[Section] = []
        for s in raw_sections:
            end = names.find(b"\0", s[0])
            name = names[s[0]:end].decode(errors="replace") if names else ""
            # (name, type, flags, addr, offset, size, link, info, align, entsize)
            self.sections.append(Section(name, s[1], s[2], s[3], s[4], s[5], s[6], s[7],
                                         s[9]))
        self.segments: List[Segment] = []
        for i in range(phnum):
            p = struct.unpack_from(phfmt, self._mv, phoff + i * phentsize)
            if self.is64:
                self.segments.append(Segment(p[0], p[1], p[2], p[3], p[5], p[6]))
            else:
                self.segments.append(Segment(p[0], p[6], p[1], p[2], p[4], p[5]))

    # -- raw access -----------------------------------------------------------------------
    def view(self, offset: int, size: int) -> memoryview:
        """``size`` bytes of the file at ``offset`` (no copy)."""
        if offset < 0 or offset + size > len(self._mv):
            raise ElfError(f"{self.path}: range {offset:#x}+{size:#x} is outside the file")
        return self._mv[offset:offset + size]

    def section(self, name: str) -> Optional[Section]:
        """The first section called ``name``, or None."""
        for sec in self.sections:
            if sec.name == name:
                return sec
        return None

    def section_data(self, sec: Section) -> memoryview:
        """A section's bytes."""
        return self.view(sec.offset, sec.size)

    # -- symbols --------------------------------------------------------------------------
    def _table(self, name: str) -> Optional[_Table]:
        if name not in self._tables:
            kind = SHT_SYMTAB if name == ".symtab" else SHT_DYNSYM
            sec = next((s for s in self.sections if s.type == kind), None)
            self._tables[name] = _Table(self, sec) if sec is not None and sec.size else None
        return self._tables[name]

    def _gnu_hash_lookup(self, name: bytes) -> Optional[List[Symbol]]:
        """Defined ``.dynsym`` symbols called ``name`` via ``.gnu.hash``; None when the
        file has no such table."""
        sec = next((s for s in self.sections if s.type == SHT_GNU_HASH), None)
        table = self._table(".dynsym")
        if sec is None or table is None:
            return None
        e = self.endian
        data = self.section_data(sec)
        nbuckets, symoffset, bloom_size, _shift = struct.unpack_from(e + "IIII", data, 0)
        if nbuckets == 0:
            return []
        word = 8 if self.is64 else 4
        buckets_at = 16 + bloom_size * word
        chain_at = buckets_at + nbuckets * 4
        h = gnu_hash(name)
        idx = struct.unpack_from(e + "I", data, buckets_at + (h % nbuckets) * 4)[0]
        found: List[Symbol] = []
        if idx == 0 or idx < symoffset:
            return found
        while True:
            at = chain_at + (idx - symoffset) * 4
            if at + 4 > len(data) or idx >= table.count:
                break
            chained = struct.unpack_from(e + "I", data, at)[0]
            if (chained | 1) == (h | 1):
                sym = table.symbol(idx)
                if sym.name == name.decode(errors="replace"):
                    found.append(sym)
            if chained & 1:
                break
            idx += 1
        return found

    def find_symbols(self, name: str) -> List[Symbol]:
        """Every symbol called ``name`` in ``.symtab`` and ``.dynsym`` (a version suffix
        ``@GLIBC_2.2.5`` is ignored), defined ones only."""
        base = name.split("@", 1)[0].encode()
        out: List[Symbol] = []
        symtab = self._table(".symtab")
        if symtab is not None:
            out += symtab.find(base)
        hashed = self._gnu_hash_lookup(base)
        if hashed is None:
            dynsym = self._table(".dynsym")
            hashed = dynsym.find(base) if dynsym is not None else []
        out += hashed
        return [s for s in out if s.defined]

    def symbol(self, name: str) -> Symbol:
        """The symbol ``name``: defined, preferring functions and global over weak over
        local bindings. Raises :class:`UnknownSymbolError` with close matches."""
        found = self.find_symbols(name)
        if not found:
            raise UnknownSymbolError("symbol", name, close_matches(name, self.names()),
                                     detail=f"in {self.path}")
        rank = {STB_GLOBAL: 0, STB_WEAK: 1, STB_LOCAL: 2}

        def key(s: Symbol) -> Tuple[int, int]:
            is_code = s.type in (STT_FUNC, STT_GNU_IFUNC)
            return (0 if is_code else 1, rank.get(s.bind, 3))
        return min(found, key=key)

    def names(self) -> List[str]:
        """Every symbol name in the file (built once, on first use)."""
        if self._all_names is None:
            seen = set()
            for tname in (".symtab", ".dynsym"):
                table = self._table(tname)
                if table is not None:
                    seen.update(table.names())
            self._all_names = sorted(seen)
        return self._all_names

    def function_names(self, table: str = ".symtab") -> List[str]:
        """Names of the functions (``STT_FUNC``, ``STT_GNU_IFUNC``) ``table`` defines, in
        table order, version suffixes kept (fast path: no :class:`Symbol` objects)."""
        t = self._table(table)
        return t.defined_function_names() if t is not None else []

    def iter_symbols(self, table: str = ".symtab") -> Iterator[Symbol]:
        """Every symbol of ``table`` as :class:`Symbol` objects (slow path, for tools)."""
        t = self._table(table)
        if t is not None:
            for i in range(t.count):
                yield t.symbol(i)

    # -- addresses ------------------------------------------------------------------------
    def file_offset(self, address: int) -> int:
        """The file offset of virtual address ``address`` (through the ``PT_LOAD``
        segment that contains it): what uprobes take. Raises :class:`ElfError` for an
        address in no loadable segment."""
        for seg in self.segments:
            if seg.type == PT_LOAD and seg.vaddr <= address < seg.vaddr + seg.filesz:
                return address - seg.vaddr + seg.offset
        raise ElfError(f"{self.path}: address {address:#x} is in no loadable segment")

    def symbol_offset(self, spec: str) -> int:
        """The file offset of ``"name"`` or ``"name+off"``."""
        name, off = parse_symbol_spec(spec)
        return self.file_offset(self.symbol(name).value) + off

    # -- lifetime -------------------------------------------------------------------------
    def close(self) -> None:
        """Unmap the file."""
        self._tables.clear()
        mm, self._mm = self._mm, None
        if mm is not None:
            self._mv.release()
            try:
                mm.close()
            except BufferError:   # a view handed out is still alive; GC will unmap
                pass

    def __enter__(self) -> "ElfFile":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<ElfFile {self.path!r}>"
