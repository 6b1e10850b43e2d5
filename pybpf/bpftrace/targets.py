"""Binary and library targets of uprobes and USDT probes, found the way bpftrace 0.17
finds them: :func:`resolve_binary_path` (its ``$PATH`` walk, keeping ELF executables
and shared objects) and :func:`which_so` (bcc's ``libNAME`` lookup in
``/etc/ld.so.cache``, used for ``uprobe:libc:malloc``)."""

from __future__ import annotations

import os
from typing import List, Optional

__all__ = ["resolve_binary_path", "which_so"]



def _elf_type(path: str) -> Optional[int]:
    try:
        with open(path, "rb") as fh:
            head = fh.read(18)
    except OSError:
        return None
    if len(head) < 18 or head[:4] != b"\x7fELF":
        return None
    return int.from_bytes(head[16:18], "little" if head[5] == 1 else "big")


def _is_exe_or_shared(path: str) -> bool:
    etype = _elf_type(path)
    if etype is None:
        return False
    return os.access(path, os.X_OK) or etype == 3          # ET_DYN


def resolve_binary_path(cmd: str, pid: Optional[int] = None) -> List[str]:
    """bpftrace's ``resolve_binary_path``: ``cmd`` itself, then (without a ``/``) every
    ``$PATH`` directory joined with it, globbed when ``cmd`` has a ``*``, keeping the
    ELF files that are executable or shared objects, in that order. With ``pid`` in
    another mount namespace, paths are taken through ``/proc/PID/root``."""
    import glob as _glob
    candidates = [cmd]
    if "/" not in cmd:
        env_path = os.environ.get("PATH")
        if env_path is not None:
            candidates += [d + "/" + cmd for d in env_path.split(":")]
    if "*" in cmd:
        expanded: List[str] = []
        for c in candidates:
            hits = sorted(_glob.glob(c))
            expanded += hits or [c]
        candidates = expanded
    out = []
    for c in candidates:
        if pid and _other_mountns(pid) and not c.startswith(f"/proc/{pid}/root"):
            c = f"/proc/{pid}/root" + ("" if c.startswith("/") else "/") + c
        if _is_exe_or_shared(c):
            out.append(c)
    return out


def _other_mountns(pid: int) -> bool:
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
    except OSError:
        return False


def which_so(name: str, pid: Optional[int] = None) -> Optional[str]:
    """bcc's ``which_so`` as bpftrace 0.17 uses it for ``uprobe:libNAME:...``: with
    ``pid``, a mapped ``libNAME.so``/``libNAME-`` file of that process; else the first
    entry of ``/etc/ld.so.cache`` (this machine's ABI) whose soname starts with
    ``libNAME.so``; None if there is none."""
    if "/" in name:
        return name
    if pid:
        from pybpf.elf.libs import proc_maps
        try:
            for entry in proc_maps(pid):
                base = os.path.basename(entry.path)
                if base.startswith((f"lib{name}.", f"lib{name}-")) and ".so" in base:
                    return entry.path
        except OSError:
            pass
    from pybpf.elf.libs import ld_so_cache
    try:
        cache = ld_so_cache()
    except (OSError, ValueError):
        return None
    prefix = f"lib{name}.so"
    for soname, paths in cache.items():
        if soname.startswith(prefix) and paths:
            return paths[0]
    return None
