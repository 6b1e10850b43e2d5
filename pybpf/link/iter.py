"""BPF iterators (Linux 5.8): a tracing program (``TRACE_ITER``, target
``bpf_iter_<name>``: ``task``, ``task_file``, ``bpf_map``, ``bpf_map_elem``, ``tcp``,
...) that the kernel runs once per object while a process reads the iterator.

:func:`attach_iter` creates the iterator link (``BPF_LINK_CREATE`` with
``BPF_TRACE_ITER``; a map, a task (6.1) or a cgroup (6.1) narrows it). Each
:meth:`IterLink.open` (``BPF_ITER_CREATE``) starts a fresh walk whose output (what the
program wrote with ``bpf_seq_write``/``bpf_seq_printf``) is read from the returned
descriptor; :meth:`IterLink.read` does that to the end and returns the bytes. A link can
also be pinned in bpffs, where every ``cat`` of the pin runs the iterator.
"""

from __future__ import annotations

import os
import struct
from typing import Any, Optional

from ..syscall import progs as _progs
from ..syscall.bpf import AttachType
from ..syscall.fd import FD, FdLike, fd_number
from .base import Link

__all__ = ["IterLink", "attach_iter", "iter_info_map", "iter_info_task",
           "iter_info_cgroup", "CgroupIterOrder"]


class CgroupIterOrder:
    """``enum bpf_cgroup_iter_order`` (Linux 6.1)."""

    UNSPEC, SELF_ONLY, DESCENDANTS_PRE, DESCENDANTS_POST, ANCESTORS_UP = range(5)


def iter_info_map(map_fd: FdLike) -> bytes:
    """``union bpf_iter_link_info`` for a map iterator (``bpf_map_elem``,
    ``bpf_sk_storage_map``)."""
    return struct.pack("=I", fd_number(map_fd))


def iter_info_task(tid: int = 0, pid: int = 0, pid_fd: int = 0) -> bytes:
    """``union bpf_iter_link_info`` for a task iterator narrowed to one thread, one
    process or a pidfd (Linux 6.1)."""
    return struct.pack("=III", tid, pid, pid_fd)


def iter_info_cgroup(order: int, cgroup_fd: int = 0, cgroup_id: int = 0) -> bytes:
    """``union bpf_iter_link_info`` for a cgroup iterator (Linux 6.1)."""
    return struct.pack("=IIQ", order, cgroup_fd, cgroup_id)


class IterLink(Link):
    """An iterator link: :meth:`open` starts a walk, :meth:`read` runs one to the end."""

    def open(self) -> FD:
        """A new iterator instance (``BPF_ITER_CREATE``): read it like a file, close it
        when done."""
        if self.fd is None or self.closed:
            raise ValueError(f"{self!r} is closed")
        return _progs.iter_create(self.fd)

    def read(self, chunk: int = 65536) -> bytes:
        """Run the iterator once and return everything the program wrote."""
        parts = []
        with self.open() as fd:
            while True:
                data = os.read(fd.fileno(), chunk)
                if not data:
                    break
                parts.append(data)
        return b"".join(parts)


def attach_iter(prog: FdLike, *, info: bytes = b"", map: Optional[Any] = None,
                target: str = "") -> IterLink:
    """Create the link of a loaded iterator program. ``map`` (a map object or fd) is
    shorthand for ``info=iter_info_map(map)``; ``info`` is a raw
    ``bpf_iter_link_info`` (:func:`iter_info_task`, :func:`iter_info_cgroup`)."""
    if map is not None:
        if info:
            raise ValueError("give map or info, not both")
        info = iter_info_map(map)
    spec = getattr(prog, "spec", None)
    target = target or (str(spec.attach_target) if spec is not None and
                        spec.attach_target else "")
    fd = _progs.link_create(prog, AttachType.TRACE_ITER, 0, iter_info=info)
    return IterLink("iter", target, fd, is_bpf_link=True)
