"""The BPF file system, where objects are pinned: detection and mounting."""

from __future__ import annotations

import ctypes
import errno
import os
from typing import Optional

__all__ = ["BPFFS_ROOT", "BPF_FS_MAGIC", "is_bpffs", "ensure_bpffs", "prepare_pin_path"]

#: where the BPF file system is mounted by convention
BPFFS_ROOT = "/sys/fs/bpf"
#: ``f_type`` of a BPF file system in ``statfs()``
BPF_FS_MAGIC = 0xCAFE4A11

_libc: Optional[ctypes.CDLL] = None


def _lib() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def is_bpffs(path: str) -> bool:
    """True if ``path`` (which must exist) lies on a BPF file system."""
    from ..syscall.objects import filesystem_magic
    return filesystem_magic(path) == BPF_FS_MAGIC


def ensure_bpffs(root: str = BPFFS_ROOT) -> None:
    """Mount a BPF file system at ``root`` unless one is there (needs CAP_SYS_ADMIN)."""
    os.makedirs(root, exist_ok=True)
    if is_bpffs(root):
        return
    if _lib().mount(b"bpf", os.fsencode(root), b"bpf", ctypes.c_ulong(0), None) != 0:
        err = ctypes.get_errno()
        hint = " (needs root)" if err == errno.EPERM else ""
        raise OSError(err, f"cannot mount the BPF file system: {os.strerror(err)}{hint}",
                      root)


def prepare_pin_path(path: str) -> str:
    """Make ``path`` ready to pin at: mount the BPF file system at :data:`BPFFS_ROOT` if
    ``path`` is below it and it is not mounted, and create the missing directories (on
    the BPF file system). Returns the absolute path. Raises ``ValueError`` if the
    directory is not on a BPF file system."""
    path = os.path.abspath(path)
    root = BPFFS_ROOT
    if path == root or path.startswith(root + os.sep):
        ensure_bpffs(root)
    parent = os.path.dirname(path)
    existing = parent
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not is_bpffs(existing):
        raise ValueError(f"cannot pin at {path}: {existing} is not on a BPF file system "
                         f"(mount one: mount -t bpf bpf {existing})")
    os.makedirs(parent, exist_ok=True)
    return path
