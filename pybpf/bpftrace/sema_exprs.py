"""The semantic analyser's rules for builtins and operators (bpftrace 0.17).

Functions of an :class:`~pybpf.bpftrace.semantic.Analyser` ``a``, one per node kind:
builtins per probe type, binary and unary operators (signedness, pointer arithmetic,
string and integer-array comparison), the ternary operator, field and tuple access,
array indexing and casts. Facts of 0.17 kept here:

* every binary operator's result is 64 bits wide, signed only when both operands are
  (a shift takes its left operand's sign); pointer +/- integer stays a pointer;
* unary ``-``/``~`` give a 64-bit integer of the operand's sign, ``!`` an unsigned
  integer of the operand's size, ``*`` of an integer ``unsigned int64``;
* a ternary is ``string[64]`` for strings, ``int64``-wide with its left arm's sign for
  integers;
* ``pid``/``tid`` and the other counters are ``unsigned int64``, ``cpid`` ``unsigned
  int32``, ``comm`` ``string[16]``, ``argN``/``retval`` ``unsigned int64``.
"""

from __future__ import annotations

from typing import Any, Dict

from . import ast as A
from .types import (INT_CASTS, SizedType, create_int64, create_integer, create_none,
                    create_pointer, create_record, create_simple, create_stack,
                    create_string, create_uint, create_uint64, node_type as _ty, typestr)

__all__ = ["builtin", "binop", "unop", "ternary", "field_access", "tuple_access",
           "array_access", "cast", "UNOP_NAMES"]

COMPARISONS = ("==", "!=", "<=", ">=", "<", ">")
#: how 0.17 names unary operators in messages
UNOP_NAMES = {"*": "dereference", "~": "~", "!": "!", "-": "-", "++": "++", "--": "--"}
_COUNTERS = ("nsecs", "elapsed", "pid", "tid", "cgroup", "uid", "gid", "cpu", "rand",
             "numaid")


# -- builtins ---------------------------------------------------------------------------

def _ctx(a: Any, e: A.Builtin) -> None:
    from .semantic import progtype
    first = a.aps[0]
    bt = progtype(first.kind)
    for ap in a.aps:
        bt2 = progtype(ap.kind)
        if bt != bt2:
            a.err(e.loc, f"ctx cannot be used in different BPF program types: {bt} and {bt2}")
    if bt == "BPF_PROG_TYPE_KPROBE":
        t = create_pointer(a.structs.record("struct pt_regs"), "kernel")
        t.ctx = True
        e.ty = t                                        # type: ignore[attr-defined]
    elif bt == "BPF_PROG_TYPE_TRACEPOINT":
        a.err(e.loc, "Use args instead of ctx in tracepoint")
    elif bt == "BPF_PROG_TYPE_PERF_EVENT":
        t = create_pointer(a.structs.record("struct bpf_perf_event_data"), "kernel")
        t.ctx = True
        e.ty = t                                        # type: ignore[attr-defined]
    elif bt == "BPF_PROG_TYPE_TRACING" and first.kind == "iter":
        name = {"task": "struct bpf_iter__task",
                "task_file": "struct bpf_iter__task_file"}.get(first.func, "")
        if not name:
            a.err(e.loc, f"unsupported iter type: {first.func}")
        t = create_pointer(a.structs.record(name), "kernel")
        t.ctx = True
        e.ty = t                                        # type: ignore[attr-defined]
    else:
        a.err(e.loc, "invalid program type")


def _args_tracepoint(a: Any, ap: Any, e: A.Builtin) -> None:
    matches = a.matches(ap)
    if not matches:
        return
    category, _, event = matches[0].partition(":")
    st = a.structs.tracepoint(category, event)
    from .structs import tracepoint_struct_name
    t = create_pointer(create_record(tracepoint_struct_name(category, event), st),
                       "user" if ap.target == "syscalls" else "kernel")
    t.ctx = True
    t.is_tparg = True
    e.ty = t                                            # type: ignore[attr-defined]


def builtin(a: Any, e: A.Builtin) -> None:
    """``visit(Builtin)``: the type of a builtin in this probe, or an error."""
    from .semantic import find_addrspace
    name = e.name
    if name == "ctx":
        _ctx(a, e)
    elif name in _COUNTERS:
        e.ty = create_uint64()                          # type: ignore[attr-defined]
        if name == "cgroup" and not a.opts.has("get_current_cgroup_id"):
            a.err(e.loc, "BPF_FUNC_get_current_cgroup_id is not available for your "
                         "kernel version")
    elif name == "curtask":
        e.ty = create_pointer(a.structs.record("struct task_struct"),  # type: ignore
                              "kernel")
    elif name == "retval":
        kind = a.single_provider_type()
        if kind in ("kretprobe", "uretprobe"):
            e.ty = create_uint64()                      # type: ignore[attr-defined]
        elif kind in ("kfunc", "kretfunc"):
            found = a.ap_args.get("$retval")
            if found is not None:
                e.ty = found.copy()                     # type: ignore[attr-defined]
            else:
                a.err(e.loc, "Can't find a field $retval")
        else:
            hint = " (try to use args->ret instead)" if kind == "tracepoint" else ""
            a.err(e.loc, "The retval builtin can only be used with 'kretprobe' and "
                         f"'uretprobe' and 'kfunc' probes{hint}")
        t = _ty(e).copy()
        t.addrspace = find_addrspace(kind)
        e.ty = t                                        # type: ignore[attr-defined]
    elif name in ("kstack", "ustack"):
        e.ty = create_stack(name == "kstack")           # type: ignore[attr-defined]
    elif name == "comm":
        t = create_string(16)
        t.addrspace = "kernel"
        e.ty = t                                        # type: ignore[attr-defined]
    elif name == "func":
        for ap in a.aps:
            if ap.kind in ("kprobe", "kretprobe"):
                e.ty = create_simple("ksym")            # type: ignore[attr-defined]
            elif ap.kind in ("uprobe", "uretprobe"):
                e.ty = create_simple("usym")            # type: ignore[attr-defined]
            else:
                a.err(e.loc, f"The func builtin can not be used with '{ap.provider}' probes")
    elif len(name) == 4 and name.startswith("arg") and name[3].isdigit():
        space = find_addrspace(a.aps[0].kind) if a.aps else "none"
        for ap in a.aps:
            if ap.kind not in ("kprobe", "uprobe", "usdt", "rawtracepoint"):
                a.err(e.loc, f"The {name} builtin can only be used with 'kprobes', "
                             "'uprobes' and 'usdt' probes")
        if int(name[3]) > 5:
            a.err(e.loc, f"x86_64 doesn't support {name}")
        t = create_uint64()
        t.addrspace = space
        e.ty = t                                        # type: ignore[attr-defined]
    elif len(name) == 5 and name.startswith("sarg") and name[4].isdigit():
        space = find_addrspace(a.aps[0].kind) if a.aps else "none"
        for ap in a.aps:
            if ap.kind not in ("kprobe", "uprobe"):
                a.err(e.loc, f"The {name} builtin can only be used with 'kprobes' and "
                             "'uprobes' probes")
            if a.final and (ap.address or ap.func_offset):
                a.warn(e.loc, "Using an address offset with the sargX built-in can"
                              "lead to unexpected behavior ")
        t = create_uint64()
        t.addrspace = space
        e.ty = t                                        # type: ignore[attr-defined]
    elif name == "probe":
        e.ty = create_simple("probe")                   # type: ignore[attr-defined]
        a.need_expansion[a.pi] = True
    elif name == "username":
        e.ty = create_simple("username")                # type: ignore[attr-defined]
    elif name == "cpid":
        if not a.opts.has_child:
            a.err(e.loc, "cpid cannot be used without child command")
        e.ty = create_uint(32)                          # type: ignore[attr-defined]
    elif name == "args":
        for ap in a.aps:
            if ap.kind == "tracepoint":
                a.need_expansion[a.pi] = True
                _args_tracepoint(a, ap, e)
        kind = a.single_provider_type()
        if kind == "tracepoint":
            pass
        elif kind in ("kfunc", "kretfunc", "uprobe"):
            rec = "struct uprobe_args" if kind == "uprobe" else "struct kfunc"
            t = create_pointer(create_record(rec, a.structs.lookup(rec)),
                               "user" if kind == "uprobe" else "kernel")
            t.ctx = True
            t.is_funcarg = True
            e.ty = t                                    # type: ignore[attr-defined]
        else:
            a.err(e.loc, "The args builtin can only be used with tracepoint/kfunc/uprobe"
                         f"probes ({kind} used here)")
    else:
        e.ty = create_none()                            # type: ignore[attr-defined]
        a.err(e.loc, f"Unknown builtin variable: '{name}'")


# -- binary operators -------------------------------------------------------------------

def _binop_int(a: Any, e: A.Binop) -> None:
    left, right = e.left, e.right
    lt, rt = _ty(left), _ty(right)
    lsign, rsign = lt.signed, rt.signed
    if lsign != rsign:
        llit, rlit = a.is_literal(left), a.is_literal(right)
        if lsign and not rsign and llit and (a.int_literal(left) or 0) >= 0:
            lsign = False
        elif not lsign and rsign and rlit and (a.int_literal(right) or 0) >= 0:
            rsign = False
        elif e.op in COMPARISONS:
            a.warn(e.loc, f"comparison of integers of different signs: '{lt}' and '{rt}' "
                          "can lead to undefined behavior")
        elif e.op in ("+", "-", "*", "/", "%"):
            a.warn(e.loc, f"arithmetic on integers of different signs: '{lt}' and '{rt}' "
                          "can lead to undefined behavior")
    if e.op in ("/", "%"):
        if lsign and a.is_literal(left) and (a.int_literal(left) or 0) >= 0:
            lsign = False
        if rsign and a.is_literal(right) and (a.int_literal(right) or 0) >= 0:
            rsign = False
        if lsign or rsign:
            a.warn(e.loc, f"signed operands for '{e.op}' can lead to undefined behavior "
                          "(cast to unsigned to silence warning)")
    if a.func_ == "str":
        pos, off = left, right
        if not isinstance(pos, A.PositionalParameter):
            pos, off = right, left
        if isinstance(pos, A.PositionalParameter):
            length = len(a.param(pos.n, True))
            if not isinstance(off, A.Integer) or e.op != "+" or off.value < 0 or \
                    off.value > length:
                a.err(e.loc + right.loc, "only addition of a single constant less or equal "
                                         f"to the length of ${pos.n} (which is {length}) "
                                         "is allowed inside str()")


def _binop_array(a: Any, e: A.Binop) -> None:
    lt, rt = _ty(e.left), _ty(e.right)
    if e.op not in ("==", "!="):
        a.err(e.loc, f"The {e.op} operator cannot be used on arrays.")
    if lt.num_elements != rt.num_elements:
        a.err(e.loc, "Only arrays of same size support comparison operators.")
    if lt.elem is None or not lt.elem.is_int() or lt != rt:
        a.err(e.loc, "Only arrays of same sized integer support comparison operators.")


def _binop_ptr(a: Any, e: A.Binop) -> None:
    lt, rt = _ty(e.left), _ty(e.right)
    left_is_ptr = lt.is_ptr()
    ptr, other = (lt, rt) if left_is_ptr else (rt, lt)
    compare = e.op in COMPARISONS

    def invalid() -> None:
        a.err(e.loc, f"The {e.op} operator can not be used on expressions of types "
                     f"{lt}, {rt}")
    if other.is_ptr():
        if compare:
            e.ty = create_uint(64)                      # type: ignore[attr-defined]
            if a.final and lt.elem != rt.elem:
                a.warn(e.left.loc + e.right.loc,
                       f"comparison of distinct pointer types ('{lt.elem}, '{rt.elem}')")
        else:
            invalid()
    elif other.is_int():
        if e.op == "-" and not left_is_ptr:
            invalid()
        elif e.op in ("+", "-"):
            e.ty = create_pointer(ptr.elem, ptr.addrspace)  # type: ignore[attr-defined]
        elif compare:
            e.ty = create_int64()                       # type: ignore[attr-defined]
        else:
            invalid()
    else:
        invalid()


def binop(a: Any, e: A.Binop) -> None:
    """``visit(Binop)``."""
    a.expr(e.left)
    a.expr(e.right)
    lt, rt = _ty(e.left), _ty(e.right)
    if lt.is_ptr() or rt.is_ptr():
        _binop_ptr(a, e)
        return
    signed = lt.signed and rt.signed
    if e.op in ("<<", ">>"):
        signed = lt.signed
    t = create_integer(64, signed)
    la, ra = lt.addrspace, rt.addrspace
    if la != ra and la != "none" and ra != "none":
        if a.final:
            a.warn(e.loc, "Addrspace mismatch")
        t.addrspace = "none"
    else:
        t.addrspace = la if la != "none" else ra
    e.ty = t                                            # type: ignore[attr-defined]
    if not a.final:
        return
    if lt.is_int() and rt.is_int():
        _binop_int(a, e)
    elif lt.kind == "array" and rt.kind == "array":
        _binop_array(a, e)
    elif lt.kind != rt.kind:
        a.err(e.left.loc + e.right.loc,
              f"Type mismatch for '{e.op}': comparing '{lt}' with '{rt}'")
    elif e.op not in ("==", "!="):
        a.err(e.loc, f"The {e.op} operator can not be used on expressions of types "
                     f"{lt}, {rt}")
    elif e.op == "==" and a.is_literal(e.left) != a.is_literal(e.right):
        lit, other = (e.left, e.right) if a.is_literal(e.left) else (e.right, e.left)
        lit_len = len(a.string_literal(lit).encode("latin-1"))
        str_len = _ty(other).num_elements
        if lit_len > str_len:
            a.warn(e.left.loc + e.right.loc, "The literal is longer than the variable "
                   f"string (size={str_len}), condition will always be false")


# -- unary operators --------------------------------------------------------------------

def unop(a: Any, e: A.Unop) -> None:
    """``visit(Unop)``."""
    name = UNOP_NAMES[e.op]
    if e.op in ("++", "--"):
        if not isinstance(e.expr, (A.Map, A.Variable)):
            a.err(e.loc, f"The {name} operator must be applied to a map or variable")
        if isinstance(e.expr, A.Map) and e.expr.name not in a.map_val:
            from .sema_maps import assign_map_type
            assign_map_type(a, e.expr, create_int64())
    a.expr(e.expr)
    t = _ty(e.expr)
    ptr_ok = e.op in ("++", "--", "*")
    if a.final and not t.is_int() and not (t.is_ptr() and ptr_ok):
        a.err(e.loc, f"The {name} operator can not be used on expressions of type '{t}'")
    if e.op == "*":
        if t.is_ptr():
            r = t.elem.copy() if t.elem is not None else create_none()
            if t.ctx:
                r.ctx = True
                r.is_funcarg, r.is_tparg = t.is_funcarg, t.is_tparg
            r.addrspace = t.addrspace
            e.ty = r                                    # type: ignore[attr-defined]
        elif t.kind == "record":
            a.err(e.loc, f"Can not dereference struct/union of type '{t.name}'. It is not "
                         "a pointer.")
        elif t.is_int():
            e.ty = create_uint64()                      # type: ignore[attr-defined]
    elif e.op == "!":
        if t.size not in (0, 1, 2, 4, 8):
            a.err(e.loc, f"The {name} operator can not be used on expressions of type '{t}'")
        else:
            e.ty = create_uint(8 * t.size)              # type: ignore[attr-defined]
    elif t.is_ptr() and ptr_ok:
        e.ty = t                                        # type: ignore[attr-defined]
    else:
        e.ty = create_integer(64, t.signed)             # type: ignore[attr-defined]


def ternary(a: Any, e: A.Ternary) -> None:
    """``visit(Ternary)``."""
    a.expr(e.cond)
    a.expr(e.left)
    a.expr(e.right)
    cond, lhs, rhs = _ty(e.cond).kind, _ty(e.left).kind, _ty(e.right).kind
    if a.final:
        if lhs != rhs:
            a.err(e.loc, "Ternary operator must return the same type: have "
                         f"'{typestr(lhs)}' and '{typestr(rhs)}'")
        if cond != "integer":
            a.err(e.loc, f"Invalid condition in ternary: {typestr(cond)}")
    if lhs == "string":
        e.ty = create_string(64)                        # type: ignore[attr-defined]
    elif lhs == "integer":
        e.ty = create_integer(64, _ty(e.left).signed)   # type: ignore[attr-defined]
    elif lhs == "none":
        e.ty = create_none()                            # type: ignore[attr-defined]
    else:
        a.err(e.loc, f"Ternary return type unsupported {typestr(lhs)}")


# -- field, tuple and array access ------------------------------------------------------

def _access(a: Any, e: Any, base: SizedType, fieldname: str, index: int) -> None:
    """bpftrace's ``visit(FieldAccess)`` after its operand was visited (``base`` is its
    type); ``index`` >= 0 for ``t.N``."""
    if base.is_ptr():
        a.err(e.loc, f"Can not access field '{fieldname}' on type '{base}'. Try "
                     "dereferencing it first, or using '->'")
        return
    if base.kind not in ("record", "tuple"):
        if a.final:
            what = f"field '{fieldname}'" if fieldname else f"index {index}"
            a.err(e.loc, f"Can not access {what} on expression of type '{base}'")
        return
    if base.is_funcarg:
        found = a.ap_args.get(fieldname)
        if found is not None:
            t = found.copy()
            t.addrspace = base.addrspace
            e.ty = t
            if a.final and t.is_none():
                a.err(e.loc, f"{fieldname} has unsupported type")
        else:
            a.err(e.loc, f"Can't find function parameter {fieldname}")
        return
    if base.kind == "tuple":
        if index < 0:
            a.err(e.loc, "Tuples must be indexed with a constant and non-negative integer")
            return
        n = len(base.fields)
        if index >= n and a.final:
            a.err(e.loc, f"Invalid tuple index: {index}. Found {n} elements in tuple.")
        if index < n:
            e.ty = base.fields[index].type
        return
    if not a.structs.has(base.name) and base.struct is None:
        a.err(e.loc, f"Unknown struct/union: '{base.name}'")
        return
    structs: Dict[str, Any] = {}
    if base.is_tparg:
        from .structs import tracepoint_struct_name
        for ap in a.aps:
            if ap.kind != "tracepoint":
                continue
            for m in a.matches(ap):
                cat, _, ev = m.partition(":")
                structs[tracepoint_struct_name(cat, ev)] = a.structs.tracepoint(cat, ev)
    else:
        structs[base.name] = base.struct
    for name in sorted(structs):
        st = structs[name]
        if st is None or not st.has_field(fieldname):
            a.err(e.loc, f"Struct/union of type '{name}' does not contain a field named "
                         f"'{fieldname}'")
            continue
        f = st.field(fieldname)
        t = f.type.copy()
        if base.ctx and t.kind in ("array", "record"):
            t.ctx = True
        t.is_internal = base.is_internal
        t.addrspace = base.addrspace
        e.ty = t
        if base.is_tparg and f.offset < 8:
            a.err(e.loc, "BPF does not support accessing common tracepoint fields")


def field_access(a: Any, e: A.FieldAccess) -> None:
    """``a.f`` and ``a->f`` (``a->f`` is ``(*a).f``: ``e.deref`` is that ``*``)."""
    if e.arrow:
        deref = getattr(e, "deref", None)
        if deref is None:
            deref = A.Unop("*", e.expr, loc=e.op_loc, span=e.span)
            e.deref = deref                             # type: ignore[attr-defined]
        unop(a, deref)
        base = _ty(deref)
    else:
        a.expr(e.expr)
        base = _ty(e.expr)
    _access(a, e, base, e.field, -1)


def tuple_access(a: Any, e: A.TupleAccess) -> None:
    """``t.N``."""
    a.expr(e.expr)
    _access(a, e, _ty(e.expr), "", e.index)


def array_access(a: Any, e: A.ArrayAccess) -> None:
    """``a[i]``: literal indices into arrays and pointers."""
    a.expr(e.expr)
    a.expr(e.index)
    t, it = _ty(e.expr), _ty(e.index)
    if a.final:
        if t.kind != "array" and not t.is_ptr():
            a.err(e.loc, "The array index operator [] can only be used on arrays and "
                         f"pointers, found {typestr(t.kind)}.")
            return
        if t.is_ptr() and (t.elem is None or t.elem.size == 0):
            a.err(e.loc, "The array index operator [] cannot be used on a pointer to an "
                         "unsized type (void *).")
        if it.is_int() and a.is_literal(e.index):
            if t.kind == "array":
                idx = a.int_literal(e.index)
                if idx is None:
                    a.err(e.loc, "invalid index expression")
                elif idx % (1 << 64) >= t.num_elements:
                    a.err(e.loc, f"the index {idx} is out of bounds for array of size "
                                 f"{t.num_elements}")
        else:
            a.err(e.loc, "The array index operator [] only accepts literal integer "
                         "indices.")
    if t.kind == "array" and t.elem is not None:
        r = t.elem.copy()
    elif t.is_ptr() and t.elem is not None:
        r = t.elem.copy()
    else:
        r = create_none()
    r.is_internal = t.is_internal
    r.addrspace = t.addrspace
    e.ty = r                                            # type: ignore[attr-defined]


# -- casts ------------------------------------------------------------------------------

def cast(a: Any, e: A.Cast) -> None:
    """``(type)expr``, ``(struct x *)expr``."""
    from .semantic import find_addrspace
    a.expr(e.expr)
    src = _ty(e.expr)
    if src.kind == "record":
        a.err(e.loc, f'Cannot cast from struct type "{src}"')
    elif src.is_none():
        a.err(e.loc, f'Cannot cast from "{src}" type')
    name = " ".join(e.type_name.split())
    if name in INT_CASTS:
        bits, signed = INT_CASTS[name]
        if e.ptr_depth:
            t = create_pointer(create_integer(bits, signed))
            if src.ctx:
                a.err(e.loc, "Integer pointer casts are not supported for type: ctx")
            if e.ptr_depth > 1:
                t = create_pointer(t)
        else:
            t = create_integer(bits, signed)
            if not src.is_int() and src.kind != "record" and not src.is_ptr() and \
                    not src.ctx:
                a.err(e.loc, f'Casts are not supported for type: "{src}"')
        t.addrspace = src.addrspace
        e.ty = t                                        # type: ignore[attr-defined]
        return
    if not a.structs.has(name):
        a.err(e.loc, f"Unknown struct/union: '{e.type_name}'")
        return
    rec = a.structs.record(name)
    if e.ptr_depth:
        t = create_pointer(rec)
        if e.ptr_depth > 1:
            t = create_pointer(t)
    else:
        a.err(e.loc, f'Cannot cast to struct type "{e.type_name}"')
        t = _ty(e).copy()
    if src.ctx:
        t.ctx = True
    t.addrspace = src.addrspace
    if t.addrspace == "none":
        t.addrspace = find_addrspace(a.single_provider_type())
    e.ty = t                                            # type: ignore[attr-defined]

