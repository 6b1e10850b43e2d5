"""pybpf.syscall: the kernel interface, through ctypes and nothing else.

* :mod:`pybpf.syscall.bpf`: system call numbers, ``union bpf_attr`` layouts, the
  :func:`bpf` call and one small function per command;
* :mod:`pybpf.syscall.fd`: :class:`FD`, the owner of every descriptor;
* :mod:`pybpf.syscall.errors`: :class:`BPFError` (an :class:`OSError`) and
  :class:`VerifierError` (with the verifier log).
"""

from __future__ import annotations

from .bpf import (
    Cmd, MapType, ProgType, TestRunResult, UpdateFlags, bpf, map_create, map_lookup,
    map_update, prog_load, prog_test_run, syscall_number,
)
from .errors import BPFError, BPFPermissionError, VerifierError
from .fd import FD, fd_number

__all__ = [
    "bpf", "syscall_number", "Cmd", "MapType", "ProgType", "UpdateFlags", "map_create",
    "map_update", "map_lookup", "prog_load", "prog_test_run", "TestRunResult", "FD",
    "fd_number", "BPFError", "BPFPermissionError", "VerifierError",
]
