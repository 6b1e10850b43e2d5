"""Maps, variables and assignments in bpftrace 0.17's semantic analysis, the stages
before it (kfunc/uprobe argument resolution, tracepoint format files) and the
resource pass after it.

* A map's value type is fixed by its first assignment in the program's order (``@x++``
  on an unknown map makes it ``int64``); integers are stored as 64 bits, strings and
  tuples grow to the longest string assigned; a different kind is "Type mismatch".
* A map's key types are fixed by its first keyed use after the first pass; integer keys
  are widened to 64 bits and compared unsigned (0.17 inserts a cast), string keys grow.
* A ``$variable`` is typed by its first assignment in the probe (0.17's scope is the
  whole probe); a later assignment must have the same type (records by name, strings
  and tuples may differ in string sizes).
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Tuple

from . import ast as A
from .errors import Diagnostic
from .types import SizedType, create_none, create_tuple, create_uint, node_type as _ty

__all__ = ["visit_map", "assign_map_type", "assign_map", "assign_var", "resolve_fields",
           "tracepoint_formats", "collect", "update_string_size", "key_list"]


def key_list(types: List[SizedType]) -> str:
    """``[unsigned int64, string[16]]``: key types as 0.17 lists them."""
    return "[" + ", ".join(str(t) for t in types) + "]"


def update_string_size(t: SizedType, new: SizedType) -> Tuple[bool, SizedType]:
    """Grow the strings of stored type ``t`` to fit ``new``: (changed, type)."""
    if t.kind == "string" and new.kind == "string" and t.size != new.size:
        t = t.copy()
        t.set_size(max(t.size, new.size))
        return True, t
    if t.kind == "tuple" and new.kind == "tuple" and len(t.fields) == len(new.fields):
        changed, elems = False, []
        for a, b in zip(t.fields, new.fields):
            c, e = update_string_size(a.type, b.type)
            changed = changed or c
            elems.append(e)
        if changed:
            return True, create_tuple(elems)
    return False, t


# -- maps -------------------------------------------------------------------------------

def visit_map(a: Any, e: A.Map) -> None:
    """``visit(Map)``: key checks (and 64-bit casts), key types, the map's type."""
    key: List[SizedType] = []
    for i in range(len(e.keys)):
        k = e.keys[i]
        a.expr(k)
        t = _ty(k)
        if t.is_int() and t.size < 8:
            c = A.Cast("int64" if t.signed else "uint64", 0, k, loc=e.loc, span=k.span)
            c.implicit = True                           # type: ignore[attr-defined]
            a.expr(c)
            e.keys[i] = k = c
        elif t.ctx:
            a.err(e.loc, "context cannot be used as a map key")
        elif t.kind == "tuple":
            a.err(e.loc, "tuple cannot be used as a map key. Try a multi-key associative "
                         "array instead (eg `@map[$1, $2] = ...)`.")
        if a.final and _ty(k).is_none():
            a.err(k.loc, "Invalid expression for assignment: ")
        kt = _ty(k)
        key.append(create_uint(kt.size * 8) if kt.is_int() else kt.copy())
    if a.pass_ > 1 and not getattr(e, "skip_key_validation", False):
        _update_key_type(a, e, key)
    found = a.map_val.get(e.name)
    if found is not None:
        e.ty = found.copy()                             # type: ignore[attr-defined]
    else:
        if a.final:
            a.err(e.loc, f"Undefined map: {e.name}")
        e.ty = create_none()                            # type: ignore[attr-defined]
    e.key_type = [t.copy() for t in a.map_key.get(e.name, [])]  # type: ignore[attr-defined]


def _update_key_type(a: Any, e: A.Map, new: List[SizedType]) -> None:
    old = a.map_key.get(e.name)
    if old is None:
        a.map_key[e.name] = new
        return
    valid = len(old) == len(new)
    if valid:
        for i, (o, n) in enumerate(zip(old, new)):
            if o.kind == "string" and n.kind == "string":
                grown = o.copy()
                grown.set_size(max(o.size, n.size))
                old[i] = grown
            elif o != n:
                valid = False
                break
    if not valid:
        a.err(e.loc, f"Argument mismatch for {e.name}: trying to access with arguments: "
                     f"{key_list(new)} when map expects arguments: {key_list(old)}")


def assign_map_type(a: Any, m: A.Map, t: SizedType) -> None:
    """0.17's ``assign_map_type``: the first type sticks, the kind must not change."""
    name = m.name
    mt = a.map_val.get(name)
    if mt is None:
        stored = t.copy()
        if stored.is_int():
            stored.set_size(8)
        a.map_val[name] = stored
        return
    if mt.is_none():
        if a.final:
            a.err(m.loc, f"Undefined map: {name}")
        else:
            mt = a.map_val[name] = t.copy()
    elif mt.kind != t.kind:
        a.err(m.loc, f"Type mismatch for {name}: trying to assign value of type '{t}' when "
                     f"map already contains a value of type '{mt}")
    if mt.kind in ("string", "tuple"):
        a.map_val[name] = update_string_size(mt, t)[1]


def _compound(s: Any, target: A.Expr) -> A.Expr:
    if s.op is None:
        return s.value
    b = getattr(s, "binop", None)
    if b is None:
        b = A.Binop(target, s.op, s.value, loc=s.op_loc, span=s.span)
        s.binop = b
    return b


def assign_map(a: Any, s: A.AssignMap) -> None:
    """``@m[k] = v`` (and ``@m op= v``)."""
    expr = _compound(s, s.map)
    a.expr(s.map)
    a.expr(expr)
    t = _ty(expr)
    assign_map_type(a, s.map, t)
    name = s.map.name
    stored = a.map_val[name]
    if t.kind == "record":
        have = stored.name if stored.kind == "record" else ""
        if have and have != t.name:
            a.err(s.loc, f"Type mismatch for {name}: trying to assign value of type "
                         f"'{t.name}' when map already contains a value of type '{have}''")
        else:
            stored = a.map_val[name] = t.copy()
            stored.is_internal = True
    elif t.kind == "string":
        if stored.size < t.size:
            a.warn(s.loc, f"String size mismatch: {stored.size} < {t.size}. The value may "
                          "be truncated.")
    elif t.kind == "buffer":
        if stored.size != t.size:
            msg = f"Buffer size mismatch: {stored.size} != {t.size}."
            if stored.size < t.size:
                a.warn(s.loc, msg + " The value may be truncated.")
            else:
                a.err(s.loc, msg)
    elif t.ctx:
        a.err(s.loc, "context cannot be assigned to a map")
    elif t.kind == "tuple":
        if a.final and not t.fits_into(stored):
            a.err(s.loc, f"Tuple type mismatch: {stored} != {t}.")
    elif t.kind == "array":
        if stored == t:
            stored.is_internal = True
        else:
            a.err(s.loc, f"Array type mismatch: {stored} != {t}.")
    if a.final and t.is_none():
        a.err(expr.loc, f"Invalid expression for assignment: {t.kind}")


def assign_var(a: Any, s: A.AssignVar) -> None:
    """``$v = e`` (and ``$v op= e``)."""
    expr = _compound(s, s.var)
    a.expr(expr)
    name = s.var.name
    table: Dict[str, SizedType] = a.variables[a.pi]
    found = table.get(name)
    t = _ty(expr)
    if isinstance(expr, A.Builtin) and expr.name == "args" and t.is_funcarg:
        a.err(s.loc, "args cannot be assigned to a variable")
    if found is not None:
        if found.is_none():
            if a.final:
                a.err(s.loc, f"Undefined variable: {name}")
            else:
                table[name] = t.copy()
        elif (found.kind == "string" and t.kind == "string") or \
                (found.kind == "tuple" and t.kind == "tuple"):
            table[name] = update_string_size(found, t)[1]
        elif not found.same_type(t):
            a.err(s.loc, f"Type mismatch for {name}: trying to assign value of type '{t}' "
                         f"when variable already contains a value of type '{found}'")
    else:
        table[name] = t.copy()
    stored = table[name]
    s.var.ty = stored.copy()                            # type: ignore[attr-defined]
    if t.kind == "record":
        have = stored.name if stored.kind == "record" else ""
        if t.name != have:
            a.err(s.loc, f"Type mismatch for {name}: trying to assign value of type "
                         f"'{t.name}' when variable already contains a value of type "
                         f"'{stored}")
    elif t.kind == "string":
        if stored.size < t.size:
            a.warn(s.loc, f"String size mismatch: {stored.size} != {t.size}. The value may "
                          "be truncated.")
    elif t.kind == "buffer":
        if stored.size != t.size:
            tail = (". The value may be truncated." if stored.size < t.size
                    else ". The value may contain garbage.")
            a.warn(s.loc, f"Buffer size mismatch: {stored.size} != {t.size}{tail}")
    elif t.kind == "tuple":
        if a.final and not t.fits_into(stored):
            a.err(s.loc, f"Tuple type mismatch: {stored} != {t}.")
    if a.final and t.is_none():
        a.err(expr.loc, "Invalid expression for assignment: none")


# -- the stages before the semantic passes -----------------------------------------------

def _uprobe_args(a: Any, target: str, func: str) -> Optional[Dict[str, SizedType]]:
    """A uprobe function's parameters from DWARF (types from their C spelling)."""
    from .dwarf_params import DwarfParams
    dwarf = DwarfParams.open(target)
    if dwarf is None:
        return None
    try:
        params = dwarf.function_params(func)
    finally:
        dwarf.close()
    out: Dict[str, SizedType] = {}
    for i, text in enumerate(params):
        tname, _, pname = text.rpartition(" ")
        t = a.structs.c_type(tname).copy()
        t.is_funcarg, t.funcarg_idx = True, i
        out.setdefault(pname, t)
    return out


def resolve_fields(a: Any) -> None:
    """0.17's field analyser: kfunc arguments from BTF and uprobe arguments from DWARF
    for probes that use ``args`` or ``retval`` (errors stop the run)."""
    from .probe_match import ExpansionError, matches_for
    diags: List[Diagnostic] = []
    for pi, probe in enumerate(a.program.probes):
        aps = a.aps_all[pi] if pi < len(a.aps_all) else []
        for _use in a.arg_uses[pi]:
            args: Dict[str, SizedType] = {}
            for ap in aps:
                if ap.kind not in ("kfunc", "kretfunc", "uprobe"):
                    continue
                if ap.need_expansion:
                    try:
                        matches = matches_for(ap, a.env)
                    except ExpansionError as exc:
                        a.say(str(exc))
                        break
                    first = True
                    for m in matches:
                        target, _, func = m.rpartition(":")
                        got: Optional[Dict[str, SizedType]]
                        if ap.kind == "uprobe":
                            got = _uprobe_args(a, target, func)
                            if got is None:
                                a.warn(ap.loc, f"No debuginfo found for {target}")
                                got = {}
                        else:
                            try:
                                got = a.structs.kfunc_args(
                                    func, ap.kind == "kretfunc",
                                    lambda f: f in a.env.traceable_functions())
                            except ValueError as exc:
                                a.warn(None, f"kfunc:{ap.func}: {exc}")
                                continue
                        if first:
                            args = got
                        elif list(got) != list(args):
                            diags.append(Diagnostic(
                                ap.loc, "Probe has attach points with mixed arguments"))
                            break
                        first = False
                elif ap.kind == "uprobe":
                    got = _uprobe_args(a, ap.target, ap.func)
                    if got is None:
                        diags.append(Diagnostic(ap.loc, f"No debuginfo found for {ap.target}"))
                    else:
                        args = got
                else:
                    try:
                        args = a.structs.kfunc_args(
                            ap.func, ap.kind == "kretfunc",
                            lambda f: f in a.env.traceable_functions())
                    except ValueError as exc:
                        msg = str(exc)
                        if "traceable" in msg and not a.env.traceable_functions():
                            from pybpf.tracefs import tracefs_root
                            msg = ("could not read traceable functions from "
                                   f"{tracefs_root(mount=False)}/available_filter_functions"
                                   " (is tracefs mounted?)")
                        diags.append(Diagnostic(ap.loc, f"kfunc:{ap.func}: {msg}"))
                        break
                if a.probe_args[pi] and list(a.probe_args[pi]) != list(args):
                    diags.append(Diagnostic(ap.loc,
                                            "Probe has attach points with mixed arguments"))
                elif not a.probe_args[pi]:
                    a.probe_args[pi] = args
    if diags:
        a.fail(diags)


def tracepoint_formats(a: Any) -> None:
    """0.17's tracepoint format parser: each tracepoint attach point needs a format file
    (``tracepoint not found: cat:ev``; a warning when its probe has other attach
    points). Tracefs is mounted where it is not (bpftrace would find no tracepoint)."""
    from pybpf.tracefs import tracefs_root
    try:
        root = os.path.join(tracefs_root(), "events")
    except OSError:
        root = "/sys/kernel/tracing/events"
    for pi, _probe in enumerate(a.program.probes):
        aps = a.aps_all[pi] if pi < len(a.aps_all) else []
        for ap in aps:
            if ap.kind != "tracepoint":
                continue
            cat, ev = ap.target, ap.func
            path = os.path.join(root, cat, ev, "format")
            if any(c in cat + ev for c in "*?["):
                import glob
                if not glob.glob(path):
                    diags = [Diagnostic(ap.loc, f"tracepoints not found: {cat}:{ev}")]
                    if cat == "syscall":
                        diags.append(Diagnostic(ap.loc, f"Did you mean syscalls:{ev}?"))
                    a.fail(diags)
                continue
            if os.path.exists(path):
                continue
            msg = f"tracepoint not found: {cat}:{ev}"
            if len(aps) == 1:
                diags = [Diagnostic(ap.loc, msg)]
                if cat == "syscall":
                    diags.append(Diagnostic(ap.loc, f"Did you mean syscalls:{ev}?",
                                            "WARNING"))
                a.fail(diags)
            a.warn(ap.loc, msg)
            if cat == "syscall":
                a.warn(ap.loc, f"Did you mean syscalls:{ev}?")


# -- the resource pass ------------------------------------------------------------------

def collect(a: Any) -> Any:
    """The resource pass: async actions and their formats, lhist bounds, stack and
    helper maps; then the :class:`~pybpf.bpftrace.semantic.Analysis`."""
    from .semantic import Analysis, AsyncAction, MapInfo, ProbeInfo
    actions: List[AsyncAction] = []
    lhist: Dict[str, Tuple[int, int, int]] = {}
    stacks: List[Tuple[str, int, str]] = []
    diags: List[Diagnostic] = []
    flags = {"elapsed": False, "join": False}

    def visit(n: Any, pi: int) -> None:
        if isinstance(n, list):
            for x in n:
                visit(x, pi)
            return
        if not isinstance(n, A.Node):
            return
        if isinstance(n, A.Map):
            visit(n.keys, pi)
            return
        if isinstance(n, (A.AssignMap, A.AssignVar)):
            visit(n.map if isinstance(n, A.AssignMap) else n.var, pi)
            visit(getattr(n, "binop", None) or n.value, pi)
            return
        if isinstance(n, A.FieldAccess) and getattr(n, "deref", None) is not None:
            visit(n.deref, pi)
            return
        for v in list(vars(n).values()):
            if isinstance(v, (A.Node, list)):
                visit(v, pi)
        if isinstance(n, A.Builtin):
            if n.name == "elapsed":
                flags["elapsed"] = True
            elif n.name in ("kstack", "ustack"):
                _add_stack(stacks, _ty(n))
        elif isinstance(n, A.Call):
            _call_resource(a, n, pi, actions, lhist, stacks, diags, flags)

    for pi, probe in enumerate(a.program.probes):
        visit([probe.pred, probe.body], pi)
    if diags:
        a.fail(diags)
    maps = {name: MapInfo(name, list(a.map_key.get(name, [])), t, lhist.get(name))
            for name, t in sorted(a.map_val.items())}
    probes = [ProbeInfo(p, a.aps_all[i] if i < len(a.aps_all) else [],
                        dict(a.variables[i]), dict(a.probe_args[i]), a.need_expansion[i])
              for i, p in enumerate(a.program.probes)]
    return Analysis(a.program, probes, maps, actions, list(a.warnings), a.structs,
                    stacks, flags["elapsed"], flags["join"])


def _add_stack(stacks: List[Tuple[str, int, str]], t: SizedType) -> None:
    key = (t.kind, t.stack_limit, t.stack_mode)
    if key not in stacks:
        stacks.append(key)


def _call_resource(a: Any, n: A.Call, pi: int, actions: List[Any],
                   lhist: Dict[str, Tuple[int, int, int]], stacks: List[Any],
                   diags: List[Diagnostic], flags: Dict[str, bool]) -> None:
    from .semantic import AsyncAction
    f = n.name
    if f in ("printf", "system", "cat", "debugf"):
        types = []
        for x in n.args[1:]:
            t = _ty(x).copy()
            if not t.is_aggregate() and t.kind != "timestamp":
                t.set_size(8)
            types.append(t)
        fmt = n.args[0].value.decode("latin-1") if isinstance(n.args[0], A.String) else ""
        actions.append(AsyncAction(f, n, pi, fmt, types))
    elif f == "join":
        flags["join"] = True
        delim = a.string_literal(n.args[1]) if len(n.args) > 1 else " "
        actions.append(AsyncAction("join", n, pi, delim, [_ty(n.args[0])]))
    elif f == "lhist":
        bounds = tuple(a.int_literal(x) or 0 for x in n.args[1:4])
        name = a.assigned_map.get(id(n))
        if name is not None:
            if name in lhist and lhist[name] != bounds:
                diags.append(Diagnostic(n.loc,
                                        "Different lhist bounds in a single map unsupported"))
            else:
                lhist[name] = bounds                    # type: ignore[assignment]
    elif f == "time":
        fmt = a.string_literal(n.args[0]) if n.args else "%H:%M:%S\n"
        actions.append(AsyncAction("time", n, pi, fmt))
    elif f == "strftime":
        actions.append(AsyncAction("strftime", n, pi, a.string_literal(n.args[0]),
                                   [_ty(n.args[1])]))
    elif f == "print":
        arg = n.args[0]
        if isinstance(arg, A.Map):
            actions.append(AsyncAction("print", n, pi, arg.name,
                                       [_ty(x) for x in n.args[1:]]))
        else:
            actions.append(AsyncAction("print_non_map", n, pi, None, [_ty(arg)]))
    elif f in ("clear", "zero"):
        arg = n.args[0]
        actions.append(AsyncAction(f, n, pi, arg.name if isinstance(arg, A.Map) else None))
    elif f == "exit":
        actions.append(AsyncAction("exit", n, pi))
    elif f in ("kstack", "ustack"):
        _add_stack(stacks, _ty(n))
    elif f == "cgroup_path":
        filt = a.string_literal(n.args[1]) if len(n.args) > 1 else "*"
        actions.append(AsyncAction("cgroup_path", n, pi, filt))

