"""``pybpf list [PATTERN]``: the probes this machine offers, spelled as bpftrace spells
them (``bpftrace -l``), with ``-v`` for a tracepoint's fields and a function's
arguments (``bpftrace -lv``).

A pattern is ``TYPE:REST`` with shell-style wildcards in ``REST``; a pattern without a
``:`` is matched against every kernel probe type, a wildcard ``TYPE`` against the names of
the kernel probe types (``'*:sys_enter_openat'``), and any other word before the first
``:`` is an :class:`UnknownProbeTypeError`.
Kernel functions are listed as kprobes only when the kernel has kprobes
(:class:`~pybpf.link.kprobe.KprobesUnavailableError` otherwise) unless ``all_symbols``
asks for the kernel's function list anyway. Listing tracepoints reads
one file (``available_events``) and imports nothing heavy, so ``pybpf list
'tracepoint:*'`` is quick; the BTF, ELF and tracefs modules are imported only when a
pattern needs them.
"""

from __future__ import annotations

import os
import sys

from pybpf.cli.common import add_json_flag, add_parser, emit_json, examples

TYPE_CHECKING = False
if TYPE_CHECKING:                       # typing costs start-up time: annotations only
    import argparse
    from typing import Any, Callable, List, Optional, Tuple

    #: one listed probe: (full name, probe type, extra data for -v)
    Probe = Tuple[str, str, Any]

__all__ = ["register", "run", "list_probes", "probe_details", "PROBE_TYPES",
           "SOFTWARE_EVENTS", "HARDWARE_EVENTS", "UnknownProbeTypeError",
           "TYPES_HELP"]

EXAMPLES = examples(
    ("pybpf list", "every kernel probe (tracepoints, kprobes, ...)"),
    ("pybpf list 'tracepoint:syscalls:*'", "the system call tracepoints"),
    ("pybpf list -v 'tracepoint:sched:sched_switch'", "its fields, with C types"),
    ("pybpf list 'kprobe:vfs_*'", "kernel functions a kprobe can attach to"),
    ("pybpf list --all-symbols 'kprobe:vfs_*'",
     "the kernel's functions even if this kernel has no kprobes"),
    ("pybpf list -v 'fentry:vmlinux:vfs_read'", "a kernel function's arguments (BTF)"),
    ("pybpf list 'uprobe:/bin/bash:*readline*'", "functions of a binary"),
    ("pybpf list 'uprobe:libc:mal*'", "functions of a library, by short name"),
    ("pybpf list 'usdt:/usr/bin/python3:*'", "USDT probes of a binary"),
    ("pybpf list 'software:*'", "software perf events"),
    ("pybpf list --json '*openat*'", "every kind of probe matching, as JSON"),
    note="Probe types: tracepoint (t), rawtracepoint (rt), kprobe (k), kretprobe (kr),\n"
         "fentry/kfunc (f), fexit/kretfunc (fr), uprobe (u), uretprobe (ur), usdt (U),\n"
         "software (s), hardware (h). Short forms are accepted and printed in full.\n"
         "A wildcard type matches the kernel types' names ('*:sys_enter_openat');\n"
         "any other word before the first ':' is an error. On a kernel without kprobes\n"
         "(CONFIG_KPROBES unset) 'kprobe:' patterns are an error and bare patterns skip\n"
         "kprobes; --all-symbols lists the kernel's functions anyway.")

#: the valid probe types with their short forms, as error messages name them
TYPES_HELP = ("tracepoint (t), rawtracepoint (rt), kprobe (k), kretprobe (kr), "
              "fentry/kfunc (f), fexit/kretfunc (fr), uprobe (u), uretprobe (ur), "
              "usdt (U), software (s), hardware (h)")


class UnknownProbeTypeError(ValueError):
    """A pattern whose part before the first ``:`` is no probe type: ``probe_type`` is
    that part, ``pattern`` the whole pattern."""

    def __init__(self, probe_type: str, pattern: str, hint: str = "") -> None:
        self.probe_type, self.pattern = probe_type, pattern
        what = (f"unknown probe type {probe_type!r}" if probe_type
                else "no probe type before ':'")
        super().__init__(f"{what} in pattern {pattern!r}{hint}; valid types: "
                         f"{TYPES_HELP} (a pattern without ':' is matched across the "
                         f"kernel's probe types)")

#: accepted type prefixes -> canonical name
PROBE_TYPES = {
    "tracepoint": "tracepoint", "t": "tracepoint",
    "rawtracepoint": "rawtracepoint", "rt": "rawtracepoint",
    "kprobe": "kprobe", "k": "kprobe", "kretprobe": "kretprobe", "kr": "kretprobe",
    "fentry": "fentry", "kfunc": "fentry", "f": "fentry",
    "fexit": "fexit", "kretfunc": "fexit", "fr": "fexit",
    "uprobe": "uprobe", "u": "uprobe", "uretprobe": "uretprobe", "ur": "uretprobe",
    "usdt": "usdt", "U": "usdt",
    "software": "software", "s": "software", "hardware": "hardware", "h": "hardware",
}

#: the kernel probe types a bare pattern is matched against, in output order
KERNEL_TYPES = ("hardware", "kprobe", "rawtracepoint", "software", "tracepoint")

#: software perf events as bpftrace names them (with its short aliases)
SOFTWARE_EVENTS = (
    "alignment-faults", "bpf-output", "context-switches", "cpu-clock", "cpu-migrations",
    "dummy", "emulation-faults", "major-faults", "minor-faults", "page-faults",
    "task-clock")
#: hardware perf events as bpftrace names them
HARDWARE_EVENTS = (
    "backend-stalls", "branch-instructions", "branch-misses", "bus-cycles",
    "cache-misses", "cache-references", "cpu-cycles", "frontend-stalls", "instructions",
    "ref-cycles")

def register(sub: "argparse._SubParsersAction") -> None:
    """Add the ``list`` subcommand (alias ``ls``)."""
    p = add_parser(sub, "list", aliases=["ls"],
                   help="list probes: tracepoints, kprobes, uprobes, USDT, events",
                   description="List the probes of this machine, spelled as bpftrace's "
                               "-l spells them; PATTERN is TYPE:REST with shell "
                               "wildcards, or a bare pattern matched across the "
                               "kernel's probe types.",
                   epilog=EXAMPLES)
    p.add_argument("pattern", nargs="?", default=None, metavar="PATTERN",
                   help="what to list (default: every kernel probe)")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="show tracepoint fields and function arguments")
    p.add_argument("--all-symbols", action="store_true",
                   help="list the kernel's functions for kprobe/kretprobe patterns even "
                        "when this kernel has no kprobes (CONFIG_KPROBES unset)")
    add_json_flag(p, "print JSON: a list of {probe, type[, fields]}")
    p.set_defaults(handler=run)


# ---------------------------------------------------------------------------------------
# matching
# ---------------------------------------------------------------------------------------

def _matcher(pattern: str) -> Callable[[str], bool]:
    """A fast predicate for a shell-style pattern."""
    if not any(c in pattern for c in "*?["):
        return pattern.__eq__
    if pattern == "*":
        return lambda _name: True
    import fnmatch
    import re
    return re.compile(fnmatch.translate(pattern)).match  # type: ignore[return-value]


def _split(pattern: str) -> Tuple[Optional[Tuple[str, ...]], str]:
    """``(probe types, rest)``: one type for ``TYPE:REST``, the kernel types whose names
    match a wildcard type (``'*:sys_enter_openat'``), or None for a bare pattern (no
    ``:``; matched across every kernel type). Raises :class:`UnknownProbeTypeError` for
    anything else before the first ``:``."""
    head, sep, rest = pattern.partition(":")
    if not sep:
        return None, pattern
    if head in PROBE_TYPES:
        return (PROBE_TYPES[head],), rest
    if any(c in head for c in "*?["):
        match = _matcher(head)
        kinds = tuple(k for k in KERNEL_TYPES if match(k))
        if kinds:
            return kinds, rest
        raise UnknownProbeTypeError(head, pattern, " (it matches no kernel probe type)")
    hint = ""
    if head and any(os.path.isdir(os.path.join(root, "events", head))
                    for root in _TRACEFS):
        hint = f" ({head!r} is a tracepoint group: did you mean 'tracepoint:{pattern}'?)"
    raise UnknownProbeTypeError(head, pattern, hint)


# ---------------------------------------------------------------------------------------
# sources
# ---------------------------------------------------------------------------------------

_TRACEFS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")


def _tracefs_file(name: str) -> str:
    """The contents of a tracefs file (tracefs is found, or mounted, by pybpf.tracefs
    only when the usual places do not have it). A tracefs this user may not read is a
    :class:`pybpf.tracefs.TracefsPermissionError`."""
    for root in _TRACEFS:
        try:
            with open(os.path.join(root, name), encoding="utf-8", errors="replace") as fh:
                return fh.read()
        except FileNotFoundError:
            continue
        except PermissionError as exc:
            from pybpf.tracefs import TracefsPermissionError
            raise TracefsPermissionError(root, os.path.join(root, name)) from exc
    from pybpf.tracefs import tracefs_root
    with open(os.path.join(tracefs_root(), name), encoding="utf-8",
              errors="replace") as fh:
        return fh.read()


def _tracepoints(rest: str) -> List[Probe]:
    match = _matcher(rest if ":" in rest else (rest if rest == "*" else "*:" + rest))
    return [("tracepoint:" + ev, "tracepoint", None)
            for ev in _tracefs_file("available_events").split() if match(ev)]


def _perf_events(kind: str, rest: str) -> List[Probe]:
    names = SOFTWARE_EVENTS if kind == "software" else HARDWARE_EVENTS
    match = _matcher(rest.split(":", 1)[0] or "*")
    return [(f"{kind}:{n}:", kind, None) for n in names if match(n)]


def _kernel_functions() -> Tuple[List[str], str]:
    """The functions kprobes can attach to, and where the list came from."""
    blacklist = set()
    try:
        with open("/sys/kernel/debug/kprobes/blacklist", encoding="ascii",
                  errors="replace") as fh:
            blacklist = {line.split()[1] for line in fh if len(line.split()) > 1}
    except OSError:
        pass
    try:
        text = _tracefs_file("available_filter_functions")
        names = {line.split()[0] for line in text.splitlines() if line.strip()}
        source = "available_filter_functions"
    except OSError:
        names = set()
        with open("/proc/kallsyms", encoding="ascii", errors="replace") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) >= 3 and parts[1] in "tT" and not parts[2].startswith(
                        ("__pfx_", "__cfi_")):
                    names.add(parts[2])
        source = "/proc/kallsyms"
    return sorted(names - blacklist), source


def _kprobes_missing() -> str:
    """Why this kernel has no kprobes (its error message), or ``""`` when it has them."""
    from pybpf.link.kprobe import kprobes_available
    return kprobes_available()


def _kprobes(kind: str, rest: str, all_symbols: bool = False) -> List[Probe]:
    """Kernel functions as kprobes; a kernel without kprobes raises
    :class:`~pybpf.link.kprobe.KprobesUnavailableError` unless ``all_symbols``."""
    if not all_symbols and _kprobes_missing():
        from pybpf.link.kprobe import KprobesUnavailableError
        err = KprobesUnavailableError()
        err.strerror += ("; nothing to list (pass --all-symbols to list the kernel's "
                         "functions anyway)")
        raise err
    func = rest.rsplit(":", 1)[-1] if ":" in rest else rest
    match = _matcher(func or "*")
    names, _ = _kernel_functions()
    return [(f"{kind}:{n}", kind, None) for n in names if match(n)]


def _raw_tracepoints(rest: str) -> List[Probe]:
    """BTF tracepoints (``btf_trace_<name>`` typedefs in vmlinux), else tracefs names."""
    name_pat = rest.rsplit(":", 1)[-1] if ":" in rest else rest
    match = _matcher(name_pat or "*")
    try:
        names = sorted(n[len("btf_trace_"):] for n in _btf_names("vmlinux")
                       if n.startswith("btf_trace_"))
    except OSError:
        names = sorted({ev.split(":", 1)[1] for ev in
                        _tracefs_file("available_events").split()})
    return [(f"rawtracepoint:{n}", "rawtracepoint", n) for n in names if match(n)]


def _btf_names(module: str) -> List[str]:
    from pybpf.btf.parser import load_module, vmlinux
    btf = vmlinux() if module == "vmlinux" else load_module(module)
    return list(btf.names())


def _btf_functions(kind: str, rest: str) -> List[Probe]:
    """fentry/fexit targets: the FUNC records of vmlinux and the modules' BTF."""
    from pybpf.btf.format import Kind
    from pybpf.btf.parser import load_module, module_names, vmlinux
    mod_pat, sep, func_pat = rest.partition(":")
    if not sep:
        mod_pat, func_pat = "*", rest
    match_mod, match_func = _matcher(mod_pat or "*"), _matcher(func_pat or "*")
    out = []
    modules = ["vmlinux"] + (module_names() if mod_pat != "vmlinux" else [])
    for mod in modules:
        if not match_mod(mod):
            continue
        try:
            btf = vmlinux() if mod == "vmlinux" else load_module(mod)
        except (OSError, ValueError):
            continue
        seen = set()
        for type_id in btf.ids_of_kind(Kind.FUNC):
            name = btf.name_of(type_id)
            if name not in seen and match_func(name):
                seen.add(name)
                out.append((f"{kind}:{mod}:{name}", kind, (btf, type_id)))
    return out


def _resolve_target(target: str) -> str:
    from pybpf.elf.libs import resolve_binary
    if not target or any(c in target for c in "*?["):
        raise ValueError("name a binary or library (no wildcards there): "
                         "'uprobe:/bin/bash:*', 'uprobe:libc:mal*', 'usdt:/usr/bin/X:*'")
    return resolve_binary(target)


def _uprobes(kind: str, rest: str) -> List[Probe]:
    from pybpf.elf.functions import function_names
    target, _, func_pat = rest.rpartition(":")
    if not target:
        target, func_pat = func_pat, "*"
    path = _resolve_target(target)
    match = _matcher(func_pat or "*")
    names = {n for n in function_names(path) if match(n)}
    return [(f"{kind}:{path}:{n}", kind, None) for n in sorted(names)]


def _usdt(rest: str) -> List[Probe]:
    from pybpf.elf.usdt import usdt_probes
    parts = rest.split(":")
    target = parts[0]
    path = _resolve_target(target)
    if len(parts) >= 3:
        prov_pat, name_pat = parts[1] or "*", parts[2] or "*"
    elif len(parts) == 2:
        prov_pat, name_pat = "*", parts[1] or "*"
    else:
        prov_pat, name_pat = "*", "*"
    match_prov, match_name = _matcher(prov_pat), _matcher(name_pat)
    found = sorted({(p.provider, p.name) for p in usdt_probes(path)
                    if match_prov(p.provider) and match_name(p.name)})
    return [(f"usdt:{path}:{prov}:{name}", "usdt", None) for prov, name in found]


def list_probes(pattern: Optional[str] = None, *, all_symbols: bool = False
                ) -> List[Probe]:
    """Every probe matching ``pattern`` (see the module docstring), sorted by name as
    bpftrace sorts them. Raises :class:`UnknownProbeTypeError` (a ValueError) for an
    unknown type, ValueError for a pattern that needs a binary and has none,
    LookupError for an unknown binary or library,
    :class:`~pybpf.link.kprobe.KprobesUnavailableError` for kprobes on a kernel without
    them (unless ``all_symbols``), and :class:`~pybpf.tracefs.TracefsPermissionError`
    when tracefs is not readable by this user."""
    probes, problem = _collect(pattern, all_symbols)
    if problem is not None:
        raise problem
    return probes


def _collect(pattern: Optional[str], all_symbols: bool
             ) -> Tuple[List[Probe], Optional[OSError]]:
    """``(probes, problem)``: for a bare pattern, what the kernel types that could be
    read gave and the permission error of one that could not (or None); a typed
    pattern's errors are raised."""
    kinds, rest = _split(pattern or "*")
    if kinds is None or len(kinds) > 1:
        out: List[Probe] = []
        problem: Optional[OSError] = None
        for k in kinds or KERNEL_TYPES:
            if k == "kprobe" and not all_symbols and _kprobes_missing():
                continue          # no kprobes here: no kernel functions to offer
            try:
                out += _list_kind(k, rest or "*", all_symbols)
            except PermissionError as exc:
                problem = problem or exc    # not readable by this user: say so
            except OSError:
                continue          # e.g. no BTF: nothing of that type
        return sorted(out), problem
    kind = kinds[0]
    needs_target = kind in ("uprobe", "uretprobe", "usdt")
    return sorted(_list_kind(kind, rest or ("" if needs_target else "*"), all_symbols)), None


def _list_kind(kind: str, rest: str, all_symbols: bool = False) -> List[Probe]:
    if kind == "tracepoint":
        return _tracepoints(rest)
    if kind in ("software", "hardware"):
        return _perf_events(kind, rest)
    if kind in ("kprobe", "kretprobe"):
        return _kprobes(kind, rest, all_symbols)
    if kind == "rawtracepoint":
        return _raw_tracepoints(rest)
    if kind in ("fentry", "fexit"):
        return _btf_functions(kind, rest)
    if kind in ("uprobe", "uretprobe"):
        return _uprobes(kind, rest)
    return _usdt(rest)


# ---------------------------------------------------------------------------------------
# -v
# ---------------------------------------------------------------------------------------

def _btf_args(btf: Any, proto: Any, ret: bool) -> List[Tuple[str, str]]:
    from pybpf.btf.resolve import type_name
    args = []
    for a in proto.args:
        args.append((type_name(btf, a.type_id), a.name or f"arg{a.index}"))
    if ret:
        args.append((type_name(btf, proto.return_type), "retval"))
    return args


def probe_details(probe: Probe) -> List[Tuple[str, str]]:
    """``(C type, name)`` pairs for ``-v``: a tracepoint's fields, a function's
    arguments (fentry/fexit from BTF, fexit with ``retval``), a raw tracepoint's
    arguments; empty when nothing is known."""
    name, kind, extra = probe
    if kind == "tracepoint":
        from pybpf.tracefs import parse_format
        group, event = name.split(":", 2)[1:]
        text = _tracefs_file(f"events/{group}/{event}/format")
        fmt = parse_format(text, group, event)
        return [(f"__{f.kind} {f.c_type}" if f.kind in ("data_loc", "rel_loc")
                 else f.c_type, f.name) for f in fmt.fields]
    if kind in ("fentry", "fexit"):
        from pybpf.btf.resolve import prototype
        btf, type_id = extra
        return _btf_args(btf, prototype(btf, type_id), kind == "fexit")
    if kind == "rawtracepoint":
        from pybpf.btf.parser import vmlinux
        from pybpf.btf.resolve import tracepoint_prototype
        btf = vmlinux()
        return _btf_args(btf, tracepoint_prototype(btf, extra), False)
    return []


def _decl_line(ctype: str, name: str) -> str:
    """``char[16]`` and ``comm`` as C declares them: ``char comm[16]``; dynamic arrays
    (``__data_loc char[]``) and everything else as ``TYPE NAME``."""
    if "[" not in ctype or ctype.startswith("__") or ctype.endswith("*"):
        return f"{ctype} {name}" if name else ctype
    base, _, dims = ctype.partition("[")
    return f"{base.rstrip()} {name}[{dims}"


def run(args: argparse.Namespace) -> int:
    """Handler of ``pybpf list``. For a bare pattern, what could be listed is printed
    before the error about a probe type this user may not read (exit status 1)."""
    probes, problem = _collect(args.pattern, args.all_symbols)
    _print(args, probes)
    if problem is not None:
        raise problem
    return 0


def _print(args: argparse.Namespace, probes: List[Probe]) -> None:
    """Write ``probes`` as ``args`` asks: names, with ``-v`` details, or JSON."""
    out = sys.stdout
    if args.json:
        records = []
        for p in probes:
            rec = {"probe": p[0], "type": p[1]}
            if args.verbose:
                rec["fields"] = [{"type": t, "name": n} for t, n in _details(p)]
            records.append(rec)
        emit_json(records, out)
        return
    if not args.verbose:
        out.write("".join(p[0] + "\n" for p in probes))
        return
    for p in probes:
        out.write(p[0] + "\n")
        for ctype, name in _details(p):
            out.write(f"    {_decl_line(ctype, name)}\n")


def _details(probe: Probe) -> List[Tuple[str, str]]:
    try:
        return probe_details(probe)
    except (OSError, LookupError, ValueError):
        return []                # a probe that vanished, or a function without BTF
