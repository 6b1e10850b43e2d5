"""Program section names (libbpf's ``SEC()`` conventions) to program type, expected
attach type and attach target."""

from __future__ import annotations

from typing import NamedTuple, Optional, Tuple

from ..syscall.bpf import AttachType, ProgType

__all__ = ["SectionKind", "classify_section"]


class SectionKind(NamedTuple):
    """What a program section name means: ``kind`` (the prefix, e.g. ``"tracepoint"``),
    program type, expected attach type (or None) and the attach target written after
    the prefix (``""`` when none)."""

    kind: str
    prog_type: int
    attach_type: Optional[int]
    target: str


# prefix -> (canonical kind, program type, expected attach type, takes a target)
_PREFIXES: Tuple[Tuple[str, str, int, Optional[int], bool], ...] = (
    ("tracepoint", "tracepoint", ProgType.TRACEPOINT, None, True),
    ("tp", "tracepoint", ProgType.TRACEPOINT, None, True),
    ("raw_tracepoint", "raw_tp", ProgType.RAW_TRACEPOINT, None, True),
    ("raw_tp", "raw_tp", ProgType.RAW_TRACEPOINT, None, True),
    ("tp_btf", "tp_btf", ProgType.TRACING, AttachType.TRACE_RAW_TP, True),
    ("kprobe", "kprobe", ProgType.KPROBE, None, True),
    ("kretprobe", "kretprobe", ProgType.KPROBE, None, True),
    ("uprobe", "uprobe", ProgType.KPROBE, None, True),
    ("uretprobe", "uretprobe", ProgType.KPROBE, None, True),
    ("fentry", "fentry", ProgType.TRACING, AttachType.TRACE_FENTRY, True),
    ("fexit", "fexit", ProgType.TRACING, AttachType.TRACE_FEXIT, True),
    ("fmod_ret", "fmod_ret", ProgType.TRACING, AttachType.MODIFY_RETURN, True),
    ("lsm", "lsm", ProgType.LSM, AttachType.LSM_MAC, True),
    ("iter", "iter", ProgType.TRACING, AttachType.TRACE_ITER, True),
    ("xdp", "xdp", ProgType.XDP, AttachType.XDP, False),
    ("tc", "tc", ProgType.SCHED_CLS, None, False),
    ("classifier", "tc", ProgType.SCHED_CLS, None, False),
    ("socket", "socket", ProgType.SOCKET_FILTER, None, False),
    ("perf_event", "perf_event", ProgType.PERF_EVENT, None, False),
    ("syscall", "syscall", ProgType.SYSCALL, None, False),
)


def classify_section(name: str) -> Optional[SectionKind]:
    """The :class:`SectionKind` of a program section name (``"tracepoint/syscalls/
    sys_enter_openat"``, ``"uretprobe//bin/bash:readline"``, ``"xdp"``), or None for a
    name that follows none of the conventions."""
    for prefix, kind, prog_type, attach_type, takes_target in _PREFIXES:
        if name == prefix:
            return SectionKind(kind, prog_type, attach_type, "")
        if name.startswith(prefix + "/"):
            target = name[len(prefix) + 1:]
            return SectionKind(kind, prog_type, attach_type, target if takes_target else "")
        if not takes_target and name.startswith(prefix + "."):
            return SectionKind(kind, prog_type, attach_type, "")
    return None
