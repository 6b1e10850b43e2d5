"""System call numbers and names (x86-64), shared by ``programs/syscount.py`` and the
Prometheus exporters.

The names come from the kernel's table in
``/usr/include/x86_64-linux-gnu/asm/unistd_64.h`` (the ``__NR_*`` numbers) when that
header is installed, else from a small built-in table of common calls. Standard library
only.
"""

from __future__ import annotations

import re
from typing import Dict, Optional, Tuple

__all__ = ["UNISTD", "BUILTIN", "syscall_table", "syscall_name"]

#: the header the table is read from when it exists
UNISTD = "/usr/include/x86_64-linux-gnu/asm/unistd_64.h"
#: the fallback table: common x86-64 system calls
BUILTIN = {0: "read", 1: "write", 2: "open", 3: "close", 4: "stat", 5: "fstat",
           7: "poll", 8: "lseek", 9: "mmap", 10: "mprotect", 11: "munmap", 12: "brk",
           13: "rt_sigaction", 14: "rt_sigprocmask", 16: "ioctl", 17: "pread64",
           18: "pwrite64", 21: "access", 22: "pipe", 23: "select", 24: "sched_yield",
           32: "dup", 33: "dup2", 35: "nanosleep", 39: "getpid", 41: "socket",
           42: "connect", 43: "accept", 44: "sendto", 45: "recvfrom", 56: "clone",
           57: "fork", 59: "execve", 60: "exit", 61: "wait4", 62: "kill", 72: "fcntl",
           95: "umask", 102: "getuid", 110: "getppid", 202: "futex", 217: "getdents64",
           228: "clock_gettime", 230: "clock_nanosleep", 231: "exit_group",
           232: "epoll_wait", 257: "openat", 262: "newfstatat",
           281: "epoll_pwait", 318: "getrandom", 332: "statx", 435: "clone3"}

_table: Optional[Dict[int, str]] = None


def syscall_table() -> Tuple[Dict[int, str], str]:
    """``({number: name}, where the names come from)``: the installed header's table,
    or a copy of :data:`BUILTIN` with ``"the built-in table"``."""
    try:
        with open(UNISTD) as f:
            found = re.findall(r"^#define __NR_(\w+) (\d+)$", f.read(), re.M)
        return {int(n): name for name, n in found}, UNISTD
    except OSError:
        return dict(BUILTIN), "the built-in table"


def syscall_name(number: int) -> str:
    """The name of system call ``number`` (table read once per process), or
    ``"unknown_N"`` for a number the table lacks."""
    global _table
    if _table is None:
        _table = syscall_table()[0]
    return _table.get(int(number), f"unknown_{int(number)}")
