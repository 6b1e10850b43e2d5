"""The function symbols of an ELF file, as uprobe listers (bpftrace, bcc) see them.

:func:`function_names` gives the names of the functions (``STT_FUNC`` and
``STT_GNU_IFUNC``) a file defines, from ``.symtab`` and ``.dynsym``, plus the ``.symtab``
of its separate debug file when the file itself has no ``.symtab`` (Debian's
``-dbg``/``-dbgsym`` packages), with symbol versions (``@GLIBC_2.2.5``) cut off.
:func:`separate_debug_file` finds that debug file by build id under
``/usr/lib/debug/.build-id``, else by ``.gnu_debuglink`` name.
"""

from __future__ import annotations

import os
import struct
from typing import Optional, Set

from .symbols import ElfFile, STT_FUNC, STT_GNU_IFUNC

__all__ = ["function_names", "separate_debug_file", "DEBUG_ROOT"]

#: where distributions install separate debug files
DEBUG_ROOT = "/usr/lib/debug"


def separate_debug_file(elf: ElfFile) -> Optional[str]:
    """The separate debug file of a (stripped) ELF file: by build id under
    ``DEBUG_ROOT/.build-id``, else by ``.gnu_debuglink`` name next to the file, in its
    ``.debug`` directory or under ``DEBUG_ROOT``; None if there is none."""
    note = elf.section(".note.gnu.build-id")
    if note is not None:
        data = bytes(elf.section_data(note))
        if len(data) >= 16:
            namesz, descsz, _ = struct.unpack_from(elf.endian + "III", data, 0)
            start = 12 + ((namesz + 3) & ~3)
            build_id = data[start:start + descsz].hex()
            if len(build_id) > 2:
                path = os.path.join(DEBUG_ROOT, ".build-id", build_id[:2],
                                    build_id[2:] + ".debug")
                if os.path.isfile(path):
                    return path
    link = elf.section(".gnu_debuglink")
    if link is not None:
        name = bytes(elf.section_data(link)).split(b"\0", 1)[0].decode(errors="replace")
        where = os.path.dirname(os.path.realpath(elf.path))
        for candidate in (os.path.join(where, name), os.path.join(where, ".debug", name),
                          DEBUG_ROOT + os.path.join(where, name)):
            if name and os.path.isfile(candidate) and candidate != elf.path:
                return candidate
    return None


def function_names(path: str, *, debug_file: bool = True) -> Set[str]:
    """Names of the functions ``path`` defines (see the module docstring). Raises
    OSError for an unreadable file and :class:`~pybpf.elf.symbols.ElfError` for one
    that is not ELF."""
    files = [path]
    with ElfFile(path) as elf:
        if debug_file and elf.section(".symtab") is None:
            debug = separate_debug_file(elf)
            if debug:
                files.append(debug)
    names: Set[str] = set()
    for file in files:
        with ElfFile(file) as elf:
            # a separate debug file keeps only .symtab (its .dynsym is NOBITS)
            for table in (".symtab", ".dynsym") if file == path else (".symtab",):
                for sym in elf.iter_symbols(table):
                    if sym.type in (STT_FUNC, STT_GNU_IFUNC) and sym.shndx != 0 and sym.name:
                        names.add(sym.name.split("@", 1)[0])
    return names
