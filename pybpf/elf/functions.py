"""The function symbols of an ELF file, as uprobe listers (bpftrace, bcc) see them.

:func:`function_names` gives the names of the functions (``STT_FUNC`` and
``STT_GNU_IFUNC``) a file defines, from ``.symtab`` and ``.dynsym``, plus the ``.symtab``
of its separate debug file when the file itself has no ``.symtab`` (Debian's
``-dbg``/``-dbgsym`` packages), with symbol versions (``@GLIBC_2.2.5``) cut off.
:func:`separate_debug_file` finds that debug file by build id under
``/usr/lib/debug/.build-id``, else by ``.gnu_debuglink`` name.

The names are read from the raw tables (no object per symbol) and kept for the life of
the process, keyed by the identity of each file read (device, inode, modification time,
size) and of every place a debug file was looked for: a file that is rebuilt, replaced
or given a debug file is read again, so a cached answer is always the one a fresh read
would give. A program with many uprobes on one library reads it once.
"""

from __future__ import annotations

import os
import struct
from typing import Dict, FrozenSet, List, Optional, Set, Tuple

from .symbols import ElfFile

__all__ = ["function_names", "function_name_set", "file_identity", "separate_debug_file",
           "DEBUG_ROOT"]

#: where distributions install separate debug files
DEBUG_ROOT = "/usr/lib/debug"


def _debug_candidates(elf: ElfFile) -> List[str]:
    """The places a separate debug file of ``elf`` is looked for, in order."""
    out = []
    note = elf.section(".note.gnu.build-id")
    if note is not None:
        data = bytes(elf.section_data(note))
        if len(data) >= 16:
            namesz, descsz, _ = struct.unpack_from(elf.endian + "III", data, 0)
            start = 12 + ((namesz + 3) & ~3)
            build_id = data[start:start + descsz].hex()
            if len(build_id) > 2:
                out.append(os.path.join(DEBUG_ROOT, ".build-id", build_id[:2],
                                        build_id[2:] + ".debug"))
    link = elf.section(".gnu_debuglink")
    if link is not None:
        name = bytes(elf.section_data(link)).split(b"\0", 1)[0].decode(errors="replace")
        where = os.path.dirname(os.path.realpath(elf.path))
        if name:
            out += [c for c in (os.path.join(where, name),
                                os.path.join(where, ".debug", name),
                                DEBUG_ROOT + os.path.join(where, name))
                    if c != elf.path]
    return out


def separate_debug_file(elf: ElfFile) -> Optional[str]:
    """The separate debug file of a (stripped) ELF file: by build id under
    ``DEBUG_ROOT/.build-id``, else by ``.gnu_debuglink`` name next to the file, in its
    ``.debug`` directory or under ``DEBUG_ROOT``; None if there is none."""
    return next((c for c in _debug_candidates(elf) if os.path.isfile(c)), None)


_Ident = Optional[Tuple[int, int, int, int]]
#: path -> (identities of the files and debug-file places it depended on, names)
_CACHE: Dict[str, Tuple[Tuple[Tuple[str, _Ident], ...], FrozenSet[str]]] = {}
_CACHE_MAX = 64


def file_identity(path: str) -> _Ident:
    """(device, inode, mtime in ns, size) of a regular file, None when there is none: a
    cached answer about a file holds while this stays the same."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not (st.st_mode & 0o170000 == 0o100000):
        return None
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)


def _read_names(path: str, debug_file: bool) -> Tuple[FrozenSet[str], List[str]]:
    """(names, the places a debug file was looked for) read from the files."""
    files = [path]
    looked: List[str] = []
    with ElfFile(path) as elf:
        if debug_file and elf.section(".symtab") is None:
            looked = _debug_candidates(elf)
            debug = next((c for c in looked if os.path.isfile(c)), None)
            if debug:
                files.append(debug)
    names: Set[str] = set()
    for file in files:
        with ElfFile(file) as elf:
            # a separate debug file keeps only .symtab (its .dynsym is NOBITS)
            for table in (".symtab", ".dynsym") if file == path else (".symtab",):
                names.update(n.split("@", 1)[0] for n in elf.function_names(table))
    return frozenset(names), looked


def function_name_set(path: str, *, debug_file: bool = True) -> FrozenSet[str]:
    """Names of the functions ``path`` defines (see the module docstring), shared and
    cached: do not rely on identity. Raises OSError for an unreadable file and
    :class:`~pybpf.elf.symbols.ElfError` for one that is not ELF."""
    key = f"{int(debug_file)}{path}"
    hit = _CACHE.get(key)
    if hit is not None and all(file_identity(p) == i for p, i in hit[0]):
        return hit[1]
    before = file_identity(path)
    names, looked = _read_names(path, debug_file)
    if before is not None and file_identity(path) == before:   # not rewritten while read
        if len(_CACHE) >= _CACHE_MAX:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = (((path, before),) + tuple((p, file_identity(p)) for p in looked), names)
    return names


def function_names(path: str, *, debug_file: bool = True) -> Set[str]:
    """Names of the functions ``path`` defines (see the module docstring), a new set
    the caller may change. Raises OSError for an unreadable file and
    :class:`~pybpf.elf.symbols.ElfError` for one that is not ELF."""
    return set(function_name_set(path, debug_file=debug_file))
