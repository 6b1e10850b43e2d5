"""``pybpf features`` (alias ``pybpf info``): what this kernel supports, probed."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Dict, List, TextIO

__all__ = ["register", "format_report", "TRACING_HELPERS"]

EXAMPLES = """examples:
  pybpf features                     report shaped like bpftrace --info
  pybpf info --json | jq .map_types  the same as JSON (bpftool's key names)
  pybpf features --full              every helper for every program type
  pybpf features --helpers-for xdp   the helper list for XDP programs
"""

#: the helpers listed under "Kernel helpers" (for kprobe programs, as bpftrace does)
TRACING_HELPERS = (
    "probe_read", "probe_read_str", "probe_read_user", "probe_read_user_str",
    "probe_read_kernel", "probe_read_kernel_str", "get_current_pid_tgid",
    "get_current_cgroup_id", "get_current_task_btf", "send_signal", "override_return",
    "get_stackid", "get_stack", "perf_event_output", "ringbuf_output", "get_func_ip",
    "get_attach_cookie", "ktime_get_boot_ns", "jiffies64", "find_vma", "loop",
    "for_each_map_elem", "snprintf", "d_path",
)


def register(sub: "argparse._SubParsersAction") -> None:
    """Add the ``features`` subcommand (alias ``info``)."""
    p = sub.add_parser("features", aliases=["info"],
                       help="probe what the running kernel supports",
                       description="Probe the running kernel's BPF support: program and "
                                   "map types, helpers, ISA versions, links, ... Every "
                                   "answer is yes, no, not permitted here (the kernel "
                                   "has it; a security policy refuses it) or unknown, "
                                   "with the reason.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true",
                   help="print JSON (keys as bpftool feature probe; null for unknown; "
                        "'privileges' names the capabilities this run lacks)")
    p.add_argument("--full", action="store_true",
                   help="list the helpers of every program type")
    p.add_argument("--helpers-for", metavar="TYPE", default="kprobe",
                   help="program type of the 'Kernel helpers' section (default: kprobe)")
    p.set_defaults(handler=run)


#: how each answer reads in the report; "restricted" is no absence of the feature
_SHOWN = {"restricted": "not permitted here"}


def _line(label: str, detail: Dict[str, Any], show_reason: bool = True) -> str:
    support = _SHOWN.get(detail["support"], detail["support"])
    reason = detail.get("reason") or ""
    if support != "yes" and reason and show_reason:
        return f"  {label}: {support} ({reason})"
    return f"  {label}: {support}"


def format_report(data: Dict[str, Any], *, helpers_for: str = "kprobe",
                  full: bool = False) -> str:
    """The text report (sections System, Kernel helpers, Kernel features, Map types,
    Probe types) from :func:`pybpf.features.report` data, under a ``note:`` line when
    the run lacked capabilities (``data["privileges"]["note"]``)."""
    from pybpf import features as F
    from pybpf.asm.helpers import helper as find_helper
    from pybpf.syscall.bpf import ProgType

    system = data["system"]
    details = data["details"]
    note = (data.get("privileges") or {}).get("note")
    out: List[str] = [f"note: {note}", ""] if note else []
    out.append("System")
    out.append(f"  OS: {system['os']}")
    out.append(f"  Arch: {system['arch']}")
    out.append(f"  Kernel version: {system['kernel_version']} "
               f"(LINUX_VERSION_CODE {system['linux_version_code']:#x})")
    for key in ("bpf_jit_enable", "bpf_jit_harden", "unprivileged_bpf_disabled",
                "bpf_stats_enabled"):
        value = system.get(key)
        out.append(f"  {key}: {'unknown' if value is None else value}")

    prog_type = ProgType[helpers_for.upper()]
    out += ["", f"Kernel helpers ({prog_type.name.lower()} programs)"]
    for name in TRACING_HELPERS:
        try:
            h = find_helper(name)
        except KeyError:
            continue
        res = F.helper_support(prog_type, h.id)
        out.append(_line(name, {"support": res.support.value, "reason": res.reason},
                         show_reason=res.support.value in ("unknown", "restricted")))
    if full:
        for key, names in data.get("helpers", {}).items():
            kind = key.replace('_available_helpers', '')
            if names is None:
                reason = details.get(f"prog_type.{kind}", {}).get("reason", "")
                out += ["", f"Helpers of {kind} programs: unknown"
                            + (f" ({reason})" if reason else "")]
                continue
            out += ["", f"Helpers of {kind} programs ({len(names)})"]
            out += [f"  {n}" for n in names]

    out += ["", "Kernel features"]
    for feat in F.MISC_FEATURES.values():
        out.append(_line(feat.title or feat.name, details[feat.key]))
    for feat in F.LINK_FEATURES.values():
        out.append(_line(f"link {feat.title or feat.name}", details[feat.key]))

    out += ["", "Map types"]
    for key, detail in details.items():
        if key.startswith("map_type."):
            out.append(_line(key.split(".", 1)[1], detail))

    out += ["", "Probe types"]
    for key, detail in details.items():
        if key.startswith("prog_type."):
            out.append(_line(key.split(".", 1)[1], detail))
    return "\n".join(out) + "\n"


def run(args: argparse.Namespace) -> int:
    """Handler of ``pybpf features``."""
    from pybpf import features as F
    from pybpf.syscall.bpf import ProgType

    try:
        ProgType[args.helpers_for.upper()]
    except KeyError:
        raise ValueError(f"--helpers-for: unknown program type {args.helpers_for!r} "
                         f"(known: {', '.join(t.name.lower() for t in ProgType)})") from None
    data = F.report(helpers=True)
    out: TextIO = sys.stdout
    if args.json:
        json.dump(data, out, indent=2)
        out.write("\n")
    else:
        out.write(format_report(data, helpers_for=args.helpers_for, full=args.full))
    return 0
