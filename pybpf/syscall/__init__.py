"""pybpf.syscall: the kernel interface, through ctypes and nothing else.

* :mod:`pybpf.syscall.bpf`: system call numbers, the kernel's enums, the :func:`bpf`
  call and a few map commands;
* :mod:`pybpf.syscall.progs`: the program, link, BTF and statistics commands;
* :mod:`pybpf.syscall.fd`: :class:`FD`, the owner of every descriptor;
* :mod:`pybpf.syscall.errors`: :class:`BPFError` (an :class:`OSError`) and
  :class:`VerifierError` (with the verifier log).
"""

from __future__ import annotations

from .bpf import (
    AttachType, Cmd, LinkType, MapType, ProgFlags, ProgType, bpf, kernel_version,
    syscall_number,
)
from .errors import BPFError, BPFPermissionError, NotSupportedError, VerifierError
from .fd import FD, fd_number
from .maps import ElemFlags, map_create, map_lookup_elem, map_update_elem
from .progs import (
    TestRunResult, btf_load, enable_stats, link_create, link_detach, prog_load,
    prog_test_run, raw_tracepoint_open,
)

__all__ = [
    "bpf", "syscall_number", "Cmd", "MapType", "ProgType", "ElemFlags", "map_create",
    "map_update_elem", "map_lookup_elem", "prog_load", "prog_test_run", "TestRunResult", "FD",
    "fd_number", "BPFError", "BPFPermissionError", "VerifierError", "NotSupportedError",
    "AttachType", "LinkType", "ProgFlags", "kernel_version", "link_create", "link_detach",
    "raw_tracepoint_open", "enable_stats", "btf_load",
]
