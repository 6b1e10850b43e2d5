"""Wildcards in attach points, matched the way bpftrace 0.17 matches them, and the lists
they are matched against.

bpftrace's matcher (``wildcard_match`` in its ``src/utils.cpp``) is not a glob: the
pattern is split on ``*`` into pieces that must occur in order, each at its first
occurrence after the previous one, the first at the start unless the pattern starts
with ``*`` and the last at the end unless it ends with ``*``. The search is not
backtracked, so ``*ab`` does not match ``abab``. ``[`` and ``]`` make
:func:`~pybpf.bpftrace.probes.has_wildcard` true but match themselves. Matches are a
sorted set, and kernel functions with ``.part.`` in their names are dropped.

Candidates, one string per line as bpftrace builds them: ``category:event`` from
tracefs's ``available_events`` (tracepoints); function names from
``available_filter_functions`` (kprobes; module suffixes dropped); ``path:function``
from a file's ELF symbols (uprobes); ``path:provider:name`` from its USDT notes;
``name:`` for software and hardware events; ``module:function`` from BTF for kfuncs
(traceable functions with at most six arguments); ``task`` and ``task_file`` for
iterators. :func:`matches_for` is bpftrace's ``get_matches_for_ap``;
:func:`expand_attach_point` turns a parsed attach point into the concrete ones that
are attached (bpftrace's ``add_probe``).
"""

from __future__ import annotations

import os
from typing import Dict, FrozenSet, Iterable, List, Optional, Sequence, Set, Tuple

from .probes import (PROBE_LIST, SOFTWARE_EVENTS, HARDWARE_EVENTS, AttachPoint,
                     PerfEvent, ProbeEnv, has_wildcard,
                     resolve_binary_path)

__all__ = ["wildcard_tokens", "wildcard_match", "match_lines", "expand_provider",
           "kernel_function_lines", "tracepoint_lines", "uprobe_lines", "usdt_lines",
           "kfunc_lines", "matches_for", "expand_attach_point", "tracefs_file",
           "ITERATORS", "ExpansionError"]

#: the iterators bpftrace 0.17 knows
ITERATORS = ("task", "task_file")
_TRACEFS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")


class ExpansionError(ValueError):
    """A wildcard that cannot be expanded (bpftrace's message)."""


def wildcard_tokens(pattern: str) -> Tuple[List[str], bool, bool]:
    """(pieces between ``*``, starts with ``*``, ends with ``*``)."""
    if not pattern:
        return [], False, False
    return ([t for t in pattern.split("*") if t], pattern[0] == "*",
            pattern[-1] == "*")


def wildcard_match(text: str, tokens: Sequence[str], start: bool, end: bool) -> bool:
    """bpftrace's ordered-substring match of ``text`` against ``tokens`` (see the
    module docstring)."""
    if not tokens:
        return start or end or text == ""
    pos = 0
    if not start and not text.startswith(tokens[0]):
        return False
    for tok in tokens:
        found = text.find(tok, pos)
        if found < 0:
            return False
        pos = found + len(tok)
    return end or pos == len(text)


def match_lines(pattern: str, lines: Iterable[str], strip_module: bool = False
                ) -> List[str]:
    """The lines matching ``pattern``, sorted and unique, without ``.part.`` variants;
    ``strip_module`` first drops a trailing `` [module]``."""
    if "*" not in pattern and not strip_module:
        # no wildcard: the match is equality (see wildcard_match), tested in C
        return [pattern] if ".part." not in pattern and pattern in lines else []
    tokens, start, end = wildcard_tokens(pattern)
    out: Set[str] = set()
    for line in lines:
        if strip_module and line.endswith("]"):
            idx = line.rfind(" [")
            if idx >= 0:
                line = line[:idx]
        if wildcard_match(line, tokens, start, end) and ".part." not in line:
            out.add(line)
    return sorted(out)


def expand_provider(query: str, parts: Sequence[str], env: ProbeEnv) -> List[str]:
    """The providers a wildcard provider stands for: the user-space ones (uprobe, usdt)
    with ``-p`` or when the next part is a path, else the kernel ones (kprobe,
    tracepoint, software, hardware, iter, and kfunc when kfuncs load here); never the
    return probes, profile, interval, watchpoints, BEGIN or END."""
    user = bool(env.pid) or (len(parts) >= 2 and "/" in parts[1])
    names = []
    for name, _abbr, kind in PROBE_LIST:
        if "ret" in name:
            continue
        is_user = kind in ("uprobe", "uretprobe", "usdt")
        if user:
            if is_user:
                names.append(name)
        elif kind == "kfunc":
            if env.has_kfunc():
                names.append(name)
        elif not is_user and kind not in ("interval", "profile", "watchpoint",
                                          "asyncwatchpoint", "special"):
            names.append(name)
    if not has_wildcard(query):
        return [query]
    return match_lines(query, names)


# ---------------------------------------------------------------------------------------
# sources
# ---------------------------------------------------------------------------------------

def tracefs_file(name: str) -> Tuple[str, str]:
    """(path, text) of a tracefs file; OSError (with ``filename``) when unreadable. Where
    tracefs is mounted at neither usual place, it is mounted (as root; bpftrace itself
    would find no tracepoint then)."""
    try:
        return _read_first(name, _TRACEFS)
    except FileNotFoundError as missing:
        from pybpf.tracefs import tracefs_root
        try:
            return _read_first(name, (tracefs_root(),))
        except OSError:
            raise missing from None


def _read_first(name: str, roots: Sequence[str]) -> Tuple[str, str]:
    """(path, text) of ``name`` under the first of ``roots`` that has it."""
    first: Optional[OSError] = None
    for root in roots:
        path = os.path.join(root, name)
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                return path, fh.read()
        except FileNotFoundError as exc:
            first = first or exc
        except OSError as exc:
            if exc.filename is None:
                exc.filename = path
            raise
    assert first is not None
    raise first


def kernel_function_lines() -> List[str]:
    """The lines of ``available_filter_functions`` (``func`` or ``func [module]``)."""
    return [ln for ln in tracefs_file("available_filter_functions")[1].splitlines() if ln]


def tracepoint_lines() -> List[str]:
    """``category:event`` for every tracepoint (``available_events``)."""
    return tracefs_file("available_events")[1].split()


def _symbols_error(exc: OSError) -> str:
    return f"Could not read symbols from {exc.filename}: {os.strerror(exc.errno or 0)}"


#: path -> (the function names read, their sorted ``path:function`` lines)
_UPROBE_LINES: Dict[str, Tuple[FrozenSet[str], List[str]]] = {}


def uprobe_lines(target: str, env: ProbeEnv) -> List[str]:
    """``path:function`` for the functions of ``target`` (a glob is expanded first).
    The lines of a file are built once while its (cached) names stay the same."""
    from pybpf.elf.functions import function_name_set
    if not target:
        return []
    paths = resolve_binary_path(target) if "*" in target else [target]
    out: List[str] = []
    for path in paths:
        try:
            names = function_name_set(path)
        except (OSError, ValueError):
            env.warnings.append(f"Could not list function symbols: {path}")
            continue
        known = _UPROBE_LINES.get(path)
        if known is None or known[0] is not names:
            if len(_UPROBE_LINES) >= 64:
                _UPROBE_LINES.pop(next(iter(_UPROBE_LINES)))
            known = _UPROBE_LINES[path] = (names, [f"{path}:{n}" for n in sorted(names)])
        out += known[1]
    return out


def usdt_lines(target: str, env: ProbeEnv) -> List[str]:
    """``path:provider:name`` for the USDT probes of ``target`` (or of process
    ``env.pid``: its executable and mapped libraries, through ``/proc/PID/root``)."""
    from pybpf.elf.usdt import usdt_probes
    if env.pid:
        from pybpf.elf.libs import proc_maps
        root = f"/proc/{env.pid}/root"
        paths = []
        for entry in proc_maps(env.pid):
            if entry.path.startswith("/") and root + entry.path not in paths:
                paths.append(root + entry.path)
    elif target:
        paths = resolve_binary_path(target) if "*" in target else [target]
    else:
        paths = []
    out = []
    for path in paths:
        try:
            probes = usdt_probes(path)
        except (OSError, ValueError):
            continue
        out += [f"{path}:{p.provider}:{p.name}" for p in probes]
    return out


def _perf_lines(table: Sequence[PerfEvent]) -> List[str]:
    return [e.name + ":" for e in table]


def kfunc_lines(env: ProbeEnv) -> List[str]:
    """``module:function`` for the kernel functions fentry can attach to: BTF FUNCs of
    vmlinux and the modules that are traceable and take at most six arguments."""
    from pybpf.btf.format import Kind
    from pybpf.btf.parser import load_module, module_names, vmlinux
    traceable = env.traceable_functions()
    out = []
    for mod in ["vmlinux"] + [m for m in module_names() if m != "vmlinux"]:
        try:
            btf = vmlinux() if mod == "vmlinux" else load_module(mod)
        except (OSError, ValueError):
            continue
        for type_id in btf.ids_of_kind(Kind.FUNC):
            name = btf.name_of(type_id)
            if name not in traceable:
                continue
            proto = btf.type(btf.type(type_id).type)         # type: ignore[attr-defined]
            if len(getattr(proto, "params", ())) > 6:
                continue
            out.append(f"{mod}:{name}")
    return out


def _kfunc_fallback_lines() -> List[str]:
    """``available_filter_functions`` as ``module:function`` (bpftrace's source before
    BTF is read); raises ExpansionError with bpftrace's message when unreadable."""
    try:
        lines = kernel_function_lines()
    except OSError as exc:
        raise ExpansionError(_symbols_error(exc)) from None
    out = []
    for line in lines:
        if line.endswith("]") and " [" in line:
            idx = line.rfind(" [")
            out.append(f"{line[idx + 2:-1]}:{line[:idx]}")
        else:
            out.append("vmlinux:" + line)
    return out


def candidates(kind: str, target: str, env: ProbeEnv) -> Tuple[List[str], bool]:
    """(candidate lines, drop module suffixes) for a provider kind; unreadable kernel
    lists become a warning (kprobes, tracepoints) or an ExpansionError (kfuncs)."""
    if kind in ("kprobe", "kretprobe"):
        try:
            return kernel_function_lines(), True
        except OSError as exc:
            env.warnings.append(_symbols_error(exc))
            return [], True
    if kind in ("uprobe", "uretprobe", "watchpoint", "asyncwatchpoint"):
        return uprobe_lines(target, env), False
    if kind == "tracepoint":
        try:
            return tracepoint_lines(), False
        except OSError as exc:
            env.warnings.append(_symbols_error(exc))
            return [], False
    if kind == "usdt":
        return usdt_lines(target, env), False
    if kind in ("software", "hardware"):
        return _perf_lines(SOFTWARE_EVENTS if kind == "software" else HARDWARE_EVENTS), False
    if kind in ("kfunc", "kretfunc"):
        if env.has_kfunc() and os.path.exists("/sys/kernel/btf/vmlinux"):
            return kfunc_lines(env), False
        return _kfunc_fallback_lines(), False
    if kind == "iter":
        return list(ITERATORS), False
    if kind == "rawtracepoint":
        try:
            return sorted({ev.split(":", 1)[1] for ev in tracepoint_lines()}), False
        except OSError as exc:
            env.warnings.append(_symbols_error(exc))
    return [], False


def matches_for(ap: AttachPoint, env: ProbeEnv) -> List[str]:
    """bpftrace's ``get_matches_for_ap``: the sorted strings ``ap`` matches, in the
    candidates' form (``syscalls:sys_enter_read``, ``/bin/bash:readline``,
    ``vmlinux:vfs_read``, ``vfs_read``); ``target:`` alone when a provider that has
    targets has no function (software/hardware events, uprobe addresses, BEGIN);
    ``""`` for profile and interval."""
    kind = ap.kind
    if kind in ("kprobe", "kretprobe", "iter", "rawtracepoint"):
        search = ap.func
    elif kind == "usdt":
        target = ap.target
        if env.pid:
            if not target:
                target = "*"
            elif os.path.exists(target):
                target = "*" + os.path.realpath(target)
        search = f"{target}:{ap.ns or '*'}:{ap.func}"
    elif kind in ("profile", "interval"):
        return [""]
    elif kind == "invalid":
        raise ExpansionError("Wildcard matches aren't available on probe type "
                             f"'{ap.provider}'")
    else:
        if not ap.func:
            return [ap.target + ":"]
        search = f"{ap.target}:{ap.func}"
    if kind in _UPROBE_KINDS and ap.target and "*" not in search:
        return _uprobe_exact(ap, search, env)
    lines, strip = candidates(kind, ap.target, env)
    return match_lines(search, lines, strip)


_UPROBE_KINDS = ("uprobe", "uretprobe", "watchpoint", "asyncwatchpoint")


def _uprobe_exact(ap: AttachPoint, search: str, env: ProbeEnv) -> List[str]:
    """:func:`matches_for` of a user-space attach point without ``*``: a pattern without
    wildcard matches only itself, and ``target:function`` is a line of
    :func:`uprobe_lines` exactly when ``function`` is one of the target's functions, so
    the name set answers without building the lines (same warning when unreadable)."""
    from pybpf.elf.functions import function_name_set
    try:
        names = function_name_set(ap.target)
    except (OSError, ValueError):
        env.warnings.append(f"Could not list function symbols: {ap.target}")
        return []
    return [search] if ap.func in names and ".part." not in search else []


def _needs_matching(ap: AttachPoint, env: ProbeEnv) -> Tuple[bool, bool]:
    underspecified = (ap.kind == "usdt" and not has_wildcard(ap.target)
                      and not has_wildcard(ap.ns) and not has_wildcard(ap.func)
                      and (not ap.ns or bool(env.pid)))
    wild = has_wildcard(ap.func) or has_wildcard(ap.target) or has_wildcard(ap.ns)
    return ap.need_expansion and (wild or underspecified), underspecified


def expand_attach_point(ap: AttachPoint, env: ProbeEnv) -> List[AttachPoint]:
    """The concrete attach points ``ap`` stands for, in bpftrace's order (sorted
    matches), each with ``target``/``ns``/``func`` set to what is attached and
    ``need_expansion`` cleared; ``ap`` itself (copied) when it has no wildcard. A usdt
    probe without namespace matching several probes raises :class:`ExpansionError`
    (bpftrace's "namespace for ... not specified")."""
    kind = ap.kind
    if kind == "special":
        return [ap.copy()]
    needs, underspecified = _needs_matching(ap, env)
    if needs:
        matches = matches_for(ap, env)
        if underspecified and len(matches) > 1:
            raise ExpansionError(f"namespace for {ap.name()} not specified, matched "
                                 f"{len(matches)} probes")
    elif kind in _UPROBE_KINDS and ap.func and not _has_symbol(ap):
        matches = matches_for(ap, env)
    else:
        matches = None
    out: List[AttachPoint] = []
    if matches is None:
        c = ap.copy()
        c.need_expansion = False
        return [c]
    for m in matches:
        c = ap.copy()
        c.need_expansion = False
        if kind == "usdt":
            c.target, c.ns, c.func = m.split(":", 2)
        elif kind in ("tracepoint", "kfunc", "kretfunc") or kind in _UPROBE_KINDS:
            c.target, _, c.func = m.rpartition(":") if kind in _UPROBE_KINDS \
                else m.partition(":")
        else:
            c.func = m
        out.append(c)
    return out


#: (path, symbol) -> (the file's identity, has a defined symbol with an address)
_HAS_SYMBOL: Dict[Tuple[str, str], Tuple[object, bool]] = {}


def _has_symbol(ap: AttachPoint) -> bool:
    """Does ``ap.target`` define ``ap.func`` at an address? Answers are kept while the
    file stays the same (a tool names one library in many attach points)."""
    from pybpf.elf.functions import file_identity
    from pybpf.elf.symbols import ElfFile
    ident = file_identity(ap.target)
    key = (ap.target, ap.func)
    known = _HAS_SYMBOL.get(key)
    if ident is not None and known is not None and known[0] == ident:
        return known[1]
    try:
        with ElfFile(ap.target) as elf:
            found = any(s.value for s in elf.find_symbols(ap.func))
    except (OSError, ValueError, LookupError):
        found = False
    if ident is not None and file_identity(ap.target) == ident:
        if len(_HAS_SYMBOL) >= 4096:
            _HAS_SYMBOL.pop(next(iter(_HAS_SYMBOL)))
        _HAS_SYMBOL[key] = (ident, found)
    return found
