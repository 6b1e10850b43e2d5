"""``bpftrace --info``: bpftrace 0.17's report of what the kernel supports, with its
sections and keys (System, Build, Kernel helpers, Kernel features, Map types, Probe
types), answered by :mod:`pybpf.features` (each answer found by trying on this kernel).

Answers are ``yes`` or ``no`` as bpftrace prints them; a feature the kernel has but this
machine's policy refuses (``restricted`` in :mod:`pybpf.features`) or that could not be
probed (``unknown``) is ``no``, since a program needing it would not run here. Where
bpftrace answers from the program type alone and pybpf from what can be attached, the
answers may differ: ``kprobe`` is ``no`` on a kernel without kprobe events even though
kprobe programs load.

The Build section describes pybpf: ``version`` keeps bpftrace's version with pybpf's
beside it, ``LLVM`` is ``none``, DWARF support comes from pyelftools.
"""

from __future__ import annotations

import os
import platform
from typing import Callable, List, Tuple

__all__ = ["info_report", "SECTIONS"]

#: the report's section titles, in bpftrace 0.17's order
SECTIONS = ("System", "Build", "Kernel helpers", "Kernel features", "Map types",
            "Probe types")

#: "Kernel helpers" keys -> pybpf helper names (bpftrace probes them in kprobe programs)
_HELPERS = (
    ("probe_read", "probe_read"), ("probe_read_str", "probe_read_str"),
    ("probe_read_user", "probe_read_user"), ("probe_read_user_str", "probe_read_user_str"),
    ("probe_read_kernel", "probe_read_kernel"),
    ("probe_read_kernel_str", "probe_read_kernel_str"),
    ("get_current_cgroup_id", "get_current_cgroup_id"), ("send_signal", "send_signal"),
    ("override_return", "override_return"), ("get_boot_ns", "ktime_get_boot_ns"),
    ("dpath", "d_path"), ("skboutput", "skb_output"),
)

#: "Map types" keys -> pybpf MapType names
_MAPS = (("hash", "HASH"), ("percpu hash", "PERCPU_HASH"), ("array", "ARRAY"),
         ("percpu array", "PERCPU_ARRAY"), ("stack_trace", "STACK_TRACE"),
         ("perf_event_array", "PERF_EVENT_ARRAY"))


def _yn(value: object) -> str:
    return "yes" if value else "no"


def _safe(check: Callable[[], object]) -> str:
    try:
        return _yn(check())
    except (OSError, ValueError, LookupError):
        return "no"


def _uprobe_refcount() -> bool:
    """The uprobe PMU takes a reference-counter offset (USDT semaphores, Linux 4.20)."""
    return os.path.exists("/sys/bus/event_source/devices/uprobe/format/ref_ctr_offset")


def info_report(version_line: str) -> str:
    """The whole report, as ``bpftrace --info`` prints it on stderr (ends with a
    newline and a blank line). ``version_line`` is the Build section's ``version`` value."""
    from pybpf import features as F
    from pybpf.asm.helpers import all_helpers
    from pybpf.syscall.bpf import MapType, ProgType

    def misc(key: str) -> Callable[[], object]:
        return lambda: F.probe(F.feature(key))

    def prog(name: str) -> Callable[[], object]:
        return lambda: F.have_prog_type(ProgType[name])

    helper_ids = {h.name: h.id for h in all_helpers()}
    uts = os.uname()
    lines: List[str] = [
        "System",
        f"  OS: {uts.sysname} {uts.release} {uts.version}",
        f"  Arch: {platform.machine()}",
        "",
        "Build",
        f"  version: {version_line}",
        "  LLVM: none (pybpf compiles bpftrace programs itself)",
        "  unsafe uprobe: no",
        "  bfd: no",
        "  libdw (DWARF support): yes (pyelftools)",
        "",
        "Kernel helpers",
    ]
    for key, name in _HELPERS:
        hid = helper_ids.get(name)
        lines.append(f"  {key}: " + ("no" if hid is None else _safe(
            lambda hid=hid: F.helper_support(ProgType.KPROBE, hid))))
    large = _safe(misc("misc.large_insn_limit")) == "yes"
    lines += [
        "",
        "Kernel features",
        f"  Instruction limit: {1000000 if large else 4096}",
        f"  Loop support: {_safe(misc('misc.bounded_loops'))}",
        f"  btf: {_safe(misc('misc.btf'))}",
        f"  map batch: {_safe(misc('misc.map_batch'))}",
        "  uprobe refcount (depends on Build:bcc bpf_attach_uprobe refcount): "
        f"{_yn(_uprobe_refcount())}",
        "",
        "Map types",
    ]
    for key, name in _MAPS:
        lines.append(f"  {key}: {_safe(lambda name=name: F.have_map_type(MapType[name]))}")
    tracing = _safe(prog("TRACING"))
    probes: Tuple[Tuple[str, str], ...] = (
        ("kprobe", _safe(misc("misc.kprobe_pmu")) if _safe(prog("KPROBE")) == "yes"
         else "no"),
        ("tracepoint", _safe(prog("TRACEPOINT"))),
        ("perf_event", _safe(prog("PERF_EVENT"))),
        ("kfunc", tracing),
        ("iter:task", tracing),
        ("iter:task_file", tracing),
        ("kprobe_multi", _safe(misc("misc.kprobe_multi"))),
        ("raw_tp_special", _safe(prog("RAW_TRACEPOINT"))),
    )
    lines += ["", "Probe types"] + [f"  {k}: {v}" for k, v in probes]
    return "\n".join(lines) + "\n\n"
