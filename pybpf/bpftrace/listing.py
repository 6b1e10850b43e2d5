"""``bpftrace -l [search]`` and ``-lv``: the probes a search names, printed as bpftrace
0.17 prints them.

The search is read the way bpftrace reads it: none or ``*`` is ``*:*``; a word
starting with ``struct``/``union``/``enum`` (without ``:``) lists BTF types; anything
else is parsed as attach points (``'t:sched:*, k:vfs_*'``; a block is "unexpected
listing query format"), through the attach-point parser and checks of
:mod:`pybpf.bpftrace.probes` in listing mode, then each attach point's matches
(:func:`pybpf.bpftrace.probe_match.matches_for`) are printed as ``provider:match``, in
attach-point order. 0.17's quirks are kept: ``software:*`` prints ``software:*:``,
``BEGIN`` prints ``special::``, ``profile:hz:99`` prints ``profile:``, a wildcard
provider's expansions come after the other attach points.

With ``verbose`` (``-lv``): a tracepoint's own fields as its tracefs ``format`` spells
them, a kfunc's BTF arguments and ``retval``, an iterator's context, a uprobe's DWARF
parameters (``No DWARF found`` otherwise).
"""

from __future__ import annotations

from .._records import field, record
from typing import Dict, List, Optional

from .errors import BpftraceError, render_diagnostic
from .parser import parse_listing
from .probe_match import _kfunc_fallback_lines, matches_for, tracefs_file
from .probes import AttachPoint, ProbeEnv, check_attach_points, parse_attach_points

__all__ = ["Listing", "list_probes", "listing_lines", "tracepoint_params",
           "kfunc_params", "uprobe_params", "ITER_PARAMS"]

#: ``-lv`` lines of the iterators
ITER_PARAMS: Dict[str, List[str]] = {
    "task": ["struct task_struct * task"],
    "task_file": ["struct task_struct * task", "int fd", "struct file * file"],
}


@record
class Listing:
    """What ``bpftrace -l`` prints: ``lines`` on stdout, ``messages`` on stderr
    (warnings, rendered like bpftrace's), and the exit ``status``."""

    lines: List[str] = field(default_factory=list)
    messages: List[str] = field(default_factory=list)
    status: int = 0


def _warn(env: ProbeEnv, out: Listing) -> None:
    out.messages += [f"WARNING: {w}" for w in env.warnings]
    env.warnings.clear()


def list_probes(search: Optional[str] = None, verbose: bool = False,
                env: Optional[ProbeEnv] = None) -> Listing:
    """The output of ``bpftrace -l [search]`` (``-lv`` with ``verbose``). Raises
    :class:`~pybpf.bpftrace.errors.BpftraceError` for what bpftrace refuses (syntax,
    attach points, checks: ``str()`` is bpftrace's message; ``fatal`` set where
    bpftrace aborts) and ExpansionError where 0.17 dies of an exception (a kfunc
    wildcard without a readable ``available_filter_functions``)."""
    env = env or ProbeEnv(listing=True)
    env.listing = True
    out = Listing()
    search = "*:*" if not search or search == "*" else search
    if ":" not in search and search.startswith(("struct", "union", "enum")):
        out.lines = _list_types(search, verbose)
        return out
    prog = parse_listing(search)
    probes = parse_attach_points(prog, env, search)
    for aps in probes:                    # bpftrace's list_modules()
        for ap in aps:
            if ap.kind in ("kfunc", "kretfunc") and ap.need_expansion and \
                    not env.has_kfunc():
                _kfunc_fallback_lines()
    try:
        warnings = check_attach_points(probes, env, search)
    except BpftraceError as err:
        for w in getattr(err, "warnings", []):
            out.messages.append(render_diagnostic(w, search, "stdin"))
        raise
    out.messages += [render_diagnostic(w, search, "stdin") for w in warnings]
    for aps in probes:
        for ap in aps:
            _list_one(ap, env, verbose, out)
    return out


def _list_one(ap: AttachPoint, env: ProbeEnv, verbose: bool, out: Listing) -> None:
    matches = matches_for(ap, env)
    _warn(env, out)
    params: Dict[str, List[str]] = {}
    kind = ap.kind
    if verbose:
        if kind == "tracepoint":
            params = tracepoint_params(matches, out)
        elif kind in ("kfunc", "kretfunc"):
            params = kfunc_params(matches)
        elif kind == "iter":
            params = ITER_PARAMS
        elif kind == "uprobe":
            params = uprobe_params(matches, out)
    name = "special" if kind == "special" else ap.provider
    for m in matches:
        out.lines.append(f"{name}:{m}")
        if verbose:
            out.lines += ["    " + p for p in params.get(m, [])]


def listing_lines(search: Optional[str] = None, verbose: bool = False,
                  env: Optional[ProbeEnv] = None) -> List[str]:
    """Only the stdout lines of :func:`list_probes`."""
    return list_probes(search, verbose, env).lines


# ---------------------------------------------------------------------------------------
# -v
# ---------------------------------------------------------------------------------------

def tracepoint_params(matches: List[str], out: Optional[Listing] = None
                      ) -> Dict[str, List[str]]:
    """``category:event`` -> its fields as the ``format`` file writes them (the text
    between ``field:`` and ``;``), without the common fields; like bpftrace, an
    unreadable format file reports an error and gives no fields at all."""
    params: Dict[str, List[str]] = {}
    for tp in matches:
        category, _, event = tp.partition(":")
        try:
            _path, text = tracefs_file(f"events/{category}/{event}/format")
        except OSError as exc:
            if out is not None:
                out.messages.append("ERROR: tracepoint format file not found: "
                                    f"{exc.filename}")
            return {}
        lines = text.split("\n")
        i = 0
        while i < len(lines) and lines[i]:
            i += 1
        for line in lines[i:]:
            if line.startswith("\tfield:"):
                col = line.index(":") + 1
                params.setdefault(tp, []).append(line[col:line.find(";")])
    return params


def kfunc_params(matches: List[str]) -> Dict[str, List[str]]:
    """``module:function`` -> ``TYPE NAME`` per BTF argument, then ``TYPE retval``
    unless the function returns void."""
    from pybpf.btf.format import Kind
    from pybpf.btf.parser import load_module, vmlinux
    from pybpf.btf.resolve import prototype, type_name
    params: Dict[str, List[str]] = {}
    by_mod: Dict[str, List[str]] = {}
    for m in matches:
        mod, _, fn = m.partition(":")
        by_mod.setdefault(mod, []).append(fn)
    for mod, funcs in by_mod.items():
        try:
            btf = vmlinux() if mod == "vmlinux" else load_module(mod)
        except (OSError, ValueError):
            continue
        for fn in funcs:
            try:
                proto = prototype(btf, btf.type_id(fn, Kind.FUNC))
            except (LookupError, ValueError):
                continue
            lines = [f"{type_name(btf, a.type_id)} {a.name}" for a in proto.args]
            if proto.return_type:
                lines.append(f"{type_name(btf, proto.return_type)} retval")
            params[f"{mod}:{fn}"] = lines
    return params


def uprobe_params(matches: List[str], out: Optional[Listing] = None
                  ) -> Dict[str, List[str]]:
    """``path:function`` -> ``TYPE NAME`` per DWARF formal parameter, typed as
    bpftrace's DWARF reader names types (``char*``, ``const char*``, ``struct s*``);
    a file without DWARF gets bpftrace's warning once."""
    from .dwarf_params import DwarfParams
    params: Dict[str, List[str]] = {}
    readers: Dict[str, Optional[DwarfParams]] = {}
    try:
        for m in matches:
            path, _, fn = m.rpartition(":")
            if path not in readers:
                readers[path] = DwarfParams.open(path)
                if readers[path] is None and out is not None:
                    out.messages.append(f'WARNING: No DWARF found for "{path}", cannot '
                                        "show parameter info")
            reader = readers[path]
            if reader is not None:
                params[m] = reader.function_params(fn)
    finally:
        for reader in readers.values():
            if reader is not None:
                reader.close()
    return params


def _list_types(search: str, verbose: bool) -> List[str]:
    """``-l 'struct task_*'``: the names of BTF structs, unions and enums matching
    (``verbose`` is not supported: the names only)."""
    from pybpf.btf.format import Kind
    from pybpf.btf.parser import vmlinux
    from .probe_match import match_lines
    btf = vmlinux()
    names = set()
    for kind, word in ((Kind.STRUCT, "struct"), (Kind.UNION, "union"), (Kind.ENUM, "enum")):
        for type_id in btf.ids_of_kind(kind):
            name = btf.name_of(type_id)
            if name:
                names.add(f"{word} {name}")
    return match_lines(search, names)
