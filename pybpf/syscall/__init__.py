"""pybpf.syscall: the kernel interface, through ctypes and nothing else.

* :mod:`pybpf.syscall.bpf`: system call numbers, the kernel's enums, the :func:`bpf` call;
* :mod:`pybpf.syscall.maps`: every map command; :mod:`pybpf.syscall.progs`: the program,
  link, BTF and statistics commands; :mod:`pybpf.syscall.objects`: pinning, ids, info;
  :mod:`pybpf.syscall.perf`: ``perf_event_open`` and its ioctls;
* :mod:`pybpf.syscall.fd`: :class:`FD`, the owner of every descriptor;
* :mod:`pybpf.syscall.errors`: :class:`BPFError` (an :class:`OSError`) and its kin.

The names below are re-exported lazily: importing this package loads no submodule
until one of them is used (defining the ctypes structures and enums costs milliseconds).
"""

from __future__ import annotations

from .._lazy import lazy_exports

#: re-exported name -> submodule that defines it
_EXPORTS = {
    "AttachType": "bpf", "Cmd": "bpf", "LinkType": "bpf", "MapType": "bpf",
    "ProgFlags": "bpf", "ProgType": "bpf", "bpf": "bpf", "kernel_version": "bpf",
    "syscall_number": "bpf",
    "BPFError": "errors", "BPFPermissionError": "errors", "NotSupportedError": "errors",
    "VerifierError": "errors",
    "FD": "fd", "fd_number": "fd",
    "ElemFlags": "maps", "map_create": "maps", "map_lookup_elem": "maps",
    "map_update_elem": "maps",
    "TestRunResult": "progs", "btf_load": "progs", "enable_stats": "progs",
    "link_create": "progs", "link_detach": "progs", "prog_load": "progs",
    "prog_test_run": "progs", "raw_tracepoint_open": "progs",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_exports(__name__, _EXPORTS, globals())


def __dir__() -> list:
    return sorted(set(globals()) | set(_EXPORTS))
