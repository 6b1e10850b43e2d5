"""Finding shared libraries and executables the way the dynamic linker and a running
process see them.

* :func:`ld_so_cache` parses ``/etc/ld.so.cache`` (the ``glibc-ld.so.cache1.1`` format,
  alone or after the old ``ld.so-1.7.0`` table) into soname -> paths, keeping the
  entries of this machine's ABI;
* :func:`proc_maps` parses ``/proc/PID/maps``;
* :func:`resolve_library` turns ``"c"``, ``"libc"``, ``"libc.so.6"``, ``"readline"`` or a
  path into a file: first the libraries mapped by process ``pid`` (when given), then the
  cache, then the usual directories. An unknown name raises
  :class:`UnknownLibraryError` with close matches;
* :func:`resolve_binary` accepts a path, a command name on ``$PATH``, or a library name.
"""

from __future__ import annotations

import glob
import os
import re
import struct
from typing import Dict, List, NamedTuple, Optional, Tuple

from ..errors import UnknownNameError, close_matches

__all__ = ["ld_so_cache", "proc_maps", "MapEntry", "resolve_library", "resolve_binary",
           "UnknownLibraryError", "library_candidates", "LD_SO_CACHE"]

LD_SO_CACHE = "/etc/ld.so.cache"
_NEW_MAGIC = b"glibc-ld.so.cache1.1"
_OLD_MAGIC = b"ld.so-1.7.0"

# ld.so.cache entry flags: the low byte is the type (3 = ELF libc6), the next the ABI
_ABI_FLAGS = {
    "x86_64": 0x0300, "aarch64": 0x0A00, "ppc64le": 0x0500, "ppc64": 0x0500,
    "s390x": 0x0400, "riscv64": 0x1000, "loongarch64": 0x1200, "i686": 0x0000,
    "i386": 0x0000, "armv7l": 0x0000,
}
_ABI_MASK = 0xFF00
_TYPE_ELF_LIBC6 = 0x0003


class UnknownLibraryError(UnknownNameError):
    """A library name that resolves to no file (``matches`` lists close names)."""


class MapEntry(NamedTuple):
    """One line of ``/proc/PID/maps``."""

    start: int
    end: int
    perms: str
    offset: int
    dev: str
    inode: int
    path: str


_cache: Optional[Tuple[float, Dict[str, List[str]]]] = None


def _parse_cache(data: bytes) -> Dict[str, List[str]]:
    base = 0
    if data.startswith(_OLD_MAGIC):
        nlibs = struct.unpack_from("<I", data, 12)[0]
        base = 16 + nlibs * 12
        base = (base + 7) & ~7          # the new table follows, aligned
        if not data.startswith(_NEW_MAGIC, base):
            found = data.find(_NEW_MAGIC, 16)
            if found < 0:
                return {}
            base = found
    elif not data.startswith(_NEW_MAGIC):
        return {}
    nlibs, _strings_len = struct.unpack_from("<II", data, base + 20)
    endian_flag = data[base + 28]
    order = ">" if endian_flag == 3 else "<"
    if order == ">":
        nlibs, _strings_len = struct.unpack_from(">II", data, base + 20)
    want = _ABI_FLAGS.get(os.uname().machine)
    out: Dict[str, List[str]] = {}
    # string offsets are from the start of the new-format table in a combined file and
    # from the start of the file otherwise; the two agree when the new table is alone
    str_base = base if data.startswith(_OLD_MAGIC) else 0
    entry = struct.Struct(order + "iIIIQ")
    for i in range(nlibs):
        flags, key, value, _osv, _hwcap = entry.unpack_from(data, base + 48 + i * 24)
        if want is not None and (flags & 0xFF) == _TYPE_ELF_LIBC6 and \
                (flags & _ABI_MASK) != want:
            continue
        k_end = data.find(b"\0", str_base + key)
        v_end = data.find(b"\0", str_base + value)
        name = data[str_base + key:k_end].decode(errors="replace")
        path = data[str_base + value:v_end].decode(errors="replace")
        out.setdefault(name, []).append(path)
    return out


def ld_so_cache(path: str = LD_SO_CACHE) -> Dict[str, List[str]]:
    """soname -> library paths from the dynamic linker's cache (re-read when the file
    changes). Empty if there is no cache (musl systems have none)."""
    global _cache
    try:
        mtime = os.stat(path).st_mtime
    except OSError:
        return {}
    if _cache is not None and _cache[0] == mtime and path == LD_SO_CACHE:
        return _cache[1]
    try:
        with open(path, "rb") as fh:
            table = _parse_cache(fh.read())
    except (OSError, struct.error):
        table = {}
    if path == LD_SO_CACHE:
        _cache = (mtime, table)
    return table


def proc_maps(pid: int) -> List[MapEntry]:
    """The memory map of process ``pid`` (``ProcessLookupError`` if it is gone)."""
    out = []
    try:
        fh = open(f"/proc/{pid}/maps", encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise ProcessLookupError(f"no process {pid}") from None
    with fh:
        for line in fh:
            parts = line.rstrip("\n").split(None, 5)
            if len(parts) < 5:
                continue
            lo, _, hi = parts[0].partition("-")
            out.append(MapEntry(int(lo, 16), int(hi, 16), parts[1], int(parts[2], 16),
                                parts[3], int(parts[4]), parts[5] if len(parts) > 5 else ""))
    return out


def library_candidates(name: str) -> re.Pattern:
    """The soname pattern a short library name stands for: ``"c"``/``"libc"`` ->
    ``libc.so``, ``libc-2.36.so``, ``libc.so.6``..."""
    stem = name[3:] if name.startswith("lib") else name
    stem = re.sub(r"\.so(\..*)?$", "", stem)
    return re.compile(rf"^lib{re.escape(stem)}(?:-[0-9][0-9.]*)?\.so(?:\.[0-9.]+)?$")


_SEARCH_DIRS = ("/lib", "/usr/lib", "/lib64", "/usr/lib64", "/usr/local/lib")


def _multiarch_dirs() -> List[str]:
    machine = os.uname().machine
    triplet = {"x86_64": "x86_64-linux-gnu", "aarch64": "aarch64-linux-gnu",
               "ppc64le": "powerpc64le-linux-gnu", "s390x": "s390x-linux-gnu",
               "riscv64": "riscv64-linux-gnu", "i686": "i386-linux-gnu",
               "armv7l": "arm-linux-gnueabihf"}.get(machine)
    dirs = []
    if triplet:
        dirs += [f"/lib/{triplet}", f"/usr/lib/{triplet}"]
    return dirs + list(_SEARCH_DIRS)


def _best(paths: List[str]) -> str:
    # prefer versioned sonames (libc.so.6) over linker scripts (libc.so)
    real = [p for p in paths if os.path.exists(p) and not p.endswith(".so")]
    return sorted(real or paths, key=lambda p: (len(os.path.basename(p)), p))[0]


def _in_root_of(pid: int, path: str) -> str:
    """``path`` as process ``pid`` sees it: through ``/proc/PID/root`` when that process
    lives in another mount namespace."""
    try:
        same = os.readlink(f"/proc/{pid}/ns/mnt") == os.readlink("/proc/self/ns/mnt")
    except OSError:
        same = True
    return path if same else f"/proc/{pid}/root{path}"


def resolve_library(name: str, pid: Optional[int] = None) -> str:
    """The file of library ``name``: a path (returned as is if it exists), a soname
    (``"libc.so.6"``) or a short name (``"c"``, ``"libc"``, ``"readline"``). With
    ``pid``, the copy that process has mapped wins (containers, other prefixes: the
    path is returned through ``/proc/PID/root``). Raises :class:`UnknownLibraryError`
    with close matches."""
    if "/" in name:
        if os.path.exists(name):
            return name
        raise UnknownLibraryError("library", name, detail="no such file")
    pattern = library_candidates(name)
    exact = name if ".so" in name else None
    if pid is not None:
        for entry in proc_maps(pid):
            base = os.path.basename(entry.path)
            if entry.path.startswith("/") and (base == exact or pattern.match(base)):
                return _in_root_of(pid, entry.path)
    cache = ld_so_cache()
    if exact and exact in cache:
        return _best(cache[exact])
    hits = [p for soname, paths in cache.items() if pattern.match(soname) for p in paths]
    if hits:
        return _best(hits)
    for d in _multiarch_dirs():
        found = [p for p in glob.glob(os.path.join(d, "lib*.so*"))
                 if pattern.match(os.path.basename(p)) or os.path.basename(p) == exact]
        if found:
            return _best(found)
    names = sorted(set(cache))
    short = sorted({re.sub(r"^lib|\.so.*$", "", n) for n in names})
    raise UnknownLibraryError("library", name, close_matches(name, names + short),
                              detail="not in /etc/ld.so.cache"
                                     + (f" nor mapped by process {pid}" if pid else ""))


def resolve_binary(target: str, pid: Optional[int] = None) -> str:
    """A path for ``target``: an existing path, a command on ``$PATH`` (``"bash"``), or a
    library name (:func:`resolve_library`). With only a pid (``target`` empty), the
    process's executable."""
    if not target:
        if pid is None:
            raise ValueError("give a binary, a library or a pid")
        return f"/proc/{pid}/exe"
    if "/" in target:
        if not os.path.exists(target):
            raise UnknownLibraryError("binary", target, detail="no such file")
        return target
    try:
        return resolve_library(target, pid)
    except UnknownLibraryError as exc:
        import shutil
        found = shutil.which(target)
        if found:
            return os.path.realpath(found)
        raise exc
