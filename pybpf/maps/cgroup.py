"""Cgroup arrays, for ``bpf_skb_under_cgroup`` and ``bpf_current_task_under_cgroup``
(``BPF_MAP_TYPE_CGROUP_ARRAY``)."""

from __future__ import annotations

import os
from typing import Any

from ..syscall.bpf import MapType
from .base import ElemFlags
from .fdarray import WriteOnlyFdArray

__all__ = ["CgroupArray"]


class CgroupArray(WriteOnlyFdArray):
    """A table of cgroups (``BPF_MAP_TYPE_CGROUP_ARRAY``, Linux 4.8). Store a cgroup as
    an open descriptor of its cgroup v2 directory or as that directory's path (opened
    for the update and closed again). User space cannot read slots back (lookups raise
    ``BPFError``); ``del`` empties one."""

    map_types = (MapType.CGROUP_ARRAY,)
    holds = "cgroup directory"

    def update(self, key: Any, value: Any, flags: int = ElemFlags.ANY) -> None:
        """Store a cgroup (fd or directory path) at index ``key``."""
        if isinstance(value, (str, bytes, os.PathLike)):
            fd = os.open(value, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                super().update(key, fd, flags)
            finally:
                os.close(fd)
            return
        super().update(key, value, flags)

    def __setitem__(self, key: Any, value: Any) -> None:
        self.update(key, value)
