"""Checking that an ELF file's bytes hold everything its headers point at, before a
parser (pyelftools) reads it: a file cut short is reported as truncated, with its size
and the size the header, a header table or a section needs.

Standard library only.
"""

from __future__ import annotations

import struct
from typing import Optional

__all__ = ["ELFLayoutError", "TruncatedELFError", "check_layout"]

_SHT_NOBITS = 8
_SHN_XINDEX = 0xFFFF


class ELFLayoutError(ValueError):
    """Bytes that are not a well-formed ELF file (no magic, an unknown class or byte
    order, a header table with impossible entry sizes)."""


class TruncatedELFError(ELFLayoutError):
    """An ELF file shorter than its headers say: ``size`` bytes where ``what`` (the ELF
    header, the section header table, a section) needs ``needed``."""

    def __init__(self, size: int, needed: int, what: str) -> None:
        self.size, self.needed, self.what = size, needed, what
        super().__init__(f"truncated ELF file ({size} bytes; {what} needs {needed}): the "
                         "file was cut short or its headers are corrupt; build or copy it "
                         "again")


def check_layout(data: bytes) -> None:
    """Raise :class:`TruncatedELFError` if ``data`` ends before the ELF header, the
    program or section header table, or the contents of a section (other than
    ``SHT_NOBITS``) ends, and :class:`ELFLayoutError` if it is not ELF at all."""
    size = len(data)
    if data[:4] != b"\x7fELF"[:min(size, 4)] or size == 0:
        raise ELFLayoutError("not an ELF file (it does not start with \\x7fELF)")
    if size < 16:
        raise TruncatedELFError(size, 16, "the ELF identification")
    elf_class, order = data[4], data[5]
    if elf_class not in (1, 2):
        raise ELFLayoutError(f"not a valid ELF file: class byte {elf_class} is neither 1 "
                             "(32-bit) nor 2 (64-bit)")
    if order not in (1, 2):
        raise ELFLayoutError(f"not a valid ELF file: data byte {order} is neither 1 "
                             "(little-endian) nor 2 (big-endian)")
    end = "<" if order == 1 else ">"
    wide = elf_class == 2
    header = 64 if wide else 52
    if size < header:
        raise TruncatedELFError(size, header, "the ELF header")
    fields = struct.unpack_from(end + ("HHIQQQIHHHHHH" if wide else "HHIIIIIHHHHHH"),
                                data, 16)
    phoff, shoff = fields[4], fields[5]
    phentsize, phnum, shentsize, shnum, shstrndx = fields[8:13]
    if phnum:
        _table(size, phoff, phnum, phentsize, 56 if wide else 32, "program header")
    if not shoff:
        return
    sh_fmt = end + ("IIQQQQIIQQ" if wide else "IIIIIIIIII")
    sh_min = struct.calcsize(sh_fmt)
    count = shnum
    if count == 0:              # extended numbering: the count is section 0's sh_size
        _table(size, shoff, 1, shentsize, sh_min, "section header")
        count = struct.unpack_from(sh_fmt, data, shoff)[5]
    _table(size, shoff, count, shentsize, sh_min, "section header")
    headers = [struct.unpack_from(sh_fmt, data, shoff + i * shentsize) for i in range(count)]
    if shstrndx == _SHN_XINDEX and headers:
        shstrndx = headers[0][6]
    for index, sh in enumerate(headers):
        if sh[1] == _SHT_NOBITS or index == 0:
            continue
        offset, length = sh[4], sh[5]
        if offset + length > size:
            name = _name(data, headers, shstrndx, sh[0])
            label = f"section {index}" + (f" ({name})" if name else "")
            raise TruncatedELFError(size, offset + length, label)


def _table(size: int, offset: int, count: int, entsize: int, minimum: int,
           what: str) -> None:
    if entsize < minimum:
        raise ELFLayoutError(f"not a valid ELF file: {what} entries of {entsize} bytes "
                             f"(at least {minimum} needed)")
    needed = offset + count * entsize
    if needed > size:
        raise TruncatedELFError(size, needed, f"the {what} table ({count} entries at "
                                f"offset {offset})")


def _name(data: bytes, headers: list, shstrndx: int, offset: int) -> Optional[str]:
    """A section's name from the section-name string table, when that is readable."""
    if not 0 < shstrndx < len(headers):
        return None
    table = headers[shstrndx]
    start = table[4] + offset
    if start >= min(len(data), table[4] + table[5]):
        return None
    stop = data.find(b"\0", start, table[4] + table[5])
    if stop < 0:
        return None
    return data[start:stop].decode("utf-8", "replace") or None
