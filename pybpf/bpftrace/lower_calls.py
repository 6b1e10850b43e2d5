"""bpftrace 0.17's functions lowered to the shared IR: the async ones become records
in the event ring (printf, system, cat, time, print, clear, zero, exit), the others
helper calls, compile-time constants (kaddr, uaddr, cgroupid, sizeof, pton) or values
resolved in user space (ksym, usym, strftime, cgroup_path, strerror).
"""

from __future__ import annotations

import os
import signal as _signal
from typing import Any

from ..compiler import types as T
from ..compiler.ir import FrameAddr, VReg
from ..compiler.memory import Place
from . import ast as A

__all__ = ["lower_call"]

_AGGS = ("count", "sum", "min", "max", "avg", "stats", "hist", "lhist")


def _lit_int(e: A.Expr, default: int = 0) -> int:
    if isinstance(e, A.Integer):
        return e.value
    if isinstance(e, A.Unop) and e.op == "-" and isinstance(e.expr, A.Integer):
        return -e.expr.value
    return default


def _lit_str(low: Any, e: A.Expr) -> str:
    if isinstance(e, A.String):
        return e.value.decode("latin-1")
    if isinstance(e, A.PositionalParameter):
        p = low.mb.opts.params
        return p[e.n - 1] if e.n <= len(p) else ""
    raise low.error("a string literal is needed here", e)


def lower_call(low: Any, e: A.Call) -> Any:
    """Lower call ``e`` in probe lowering ``low``; its value (or 0)."""
    n = e.name
    args = e.args
    if n in ("printf", "system", "cat"):
        low.send(n, args[0].value.decode("latin-1"), args[1:])
        return 0
    if n == "exit":
        low.send("exit", None, [])
        return 0
    if n == "time":
        fmt = args[0].value.decode("latin-1") if args else "%H:%M:%S\n"
        low.send("time", fmt, [])
        return 0
    if n in ("clear", "zero"):
        low.send(n, args[0].name, [])
        return 0
    if n == "print":
        if isinstance(args[0], A.Map):
            top = _lit_int(args[1]) if len(args) > 1 else 0
            div = _lit_int(args[2]) if len(args) > 2 else 0
            low.send("print", args[0].name, [], extra=(top, div))
        else:
            low.send("print_value", None, [args[0]])
        return 0
    if n in _AGGS:
        raise low.error(f"{n}() must be assigned to a map", e)
    if n == "delete":
        m = args[0]
        lay = low.mb.layouts[m.name]
        if lay.kind in ("hist", "lhist", "avg", "stats"):
            raise low.error(f"delete() of a {lay.kind}() map entry is not supported yet", e)
        low.map_delete_elem(low.mb.map_ref(m.name), low.map_key(m, lay))
        return 0
    if n == "str":
        return _str(low, e)
    if n in ("ksym", "kptr", "uptr", "strerror"):
        return low.int_arg(args[0])
    if n == "usym":
        return low.usym_place(low.int_arg(args[0]))
    if n in ("kstack", "ustack"):
        return low.stack(e.ty)
    if n == "reg":
        from .lower_exprs import PT_REGS
        name = _lit_str(low, args[0])
        return low.ctx_reg({"ip": "ip", "sp": "sp"}.get(name, name))
    if n == "kaddr":
        return low.load_const(_kallsyms(_lit_str(low, args[0])), e, T.u64)
    if n == "uaddr":
        return low.load_const(_uaddr(low, _lit_str(low, args[0])), e, T.u64)
    if n == "cgroupid":
        return low.load_const(os.stat(_lit_str(low, args[0])).st_ino, e, T.u64)
    if n == "sizeof":
        return low.load_const(max(args[0].ty.size, 0), e)
    if n == "signal":
        a = args[0]
        if isinstance(a, A.String):
            name = a.value.decode()
            sig = int(getattr(_signal, name if name.startswith("SIG") else "SIG" + name))
        else:
            sig = low.int_arg(a)
        low.emit("helper", dst=low.vreg(T.i64), name="send_signal",
                 args=(low.materialize(low.convert(sig, T.u32), T.u32),))
        return 0
    if n == "bswap":
        bits = args[0].ty.bits if args[0].ty.kind == "integer" else 64
        v = low.int_arg(args[0])
        if bits == 8:
            return v
        return low.byte_swap(v, bits, e)
    if n == "strftime":
        fmts = low.mb.__dict__.setdefault("strftime_fmts", [])
        fmt = _lit_str(low, args[0])
        if fmt not in fmts:
            fmts.append(fmt)
        p = low.frame_place(16)
        low.emit("store", base=None, off=p.off, size=8, a=fmts.index(fmt))
        v = low.materialize(low.int_arg(args[1]), T.u64)
        low.emit("store", base=None, off=p.off + 8, size=8, a=v)
        return p
    if n == "cgroup_path":
        p = low.frame_place(16)
        v = low.materialize(low.int_arg(args[0]), T.u64)
        low.emit("store", base=None, off=p.off, size=8, a=v)
        filt = _lit_str(low, args[1]) if len(args) > 1 else ""
        fl = low.mb.__dict__.setdefault("cgroup_filters", [])
        if filt not in fl:
            fl.append(filt)
        low.emit("store", base=None, off=p.off + 8, size=8, a=fl.index(filt))
        return p
    if n == "ntop":
        return _ntop(low, e)
    if n == "macaddr":
        p = low.frame_place(8)
        src = low.expr(args[0])
        if isinstance(src, Place):
            low.copy(Place(None, p.off, T.u8[6], "stack"), Place(src.base, src.off, T.u8[6], src.space), e)
        else:
            addr = low.materialize(src, T.u64)
            low.copy(Place(None, p.off, T.u8[6], "stack"),
                     Place(addr, 0, T.u8[6], low.space_of(args[0].ty)), e)
        return p
    if n == "strncmp":
        return _strncmp(low, e)
    if n == "pton":
        import ipaddress
        data = ipaddress.ip_address(_lit_str(low, args[0])).packed
        p = low.frame_place(len(data))
        low.store_bytes(p, data)
        return p
    raise low.error(f"{n}() is not supported yet", e)


def _str(low: Any, e: A.Call) -> Any:
    arg = e.args[0]
    if getattr(e, "is_literal", False) and isinstance(arg, A.PositionalParameter):
        text = _lit_str(low, arg).encode("latin-1", "replace")[:max(e.ty.size, 1) - 1]
        p = low.frame_place(max(e.ty.size, 1))
        low.store_bytes(p, text)
        return p
    if arg.ty.kind == "string":
        v = low.expr(arg)
        if isinstance(v, Place):
            return v
    size = max(e.ty.size, 1)
    p = low.frame_place(size)
    ptr = low.materialize(low.int_arg(arg), T.u64)
    space = low.space_of(e.ty if e.ty.addrspace != "none" else arg.ty)
    fn = "probe_read_user_str" if space == "user" else "probe_read_kernel_str"
    if len(e.args) > 1:
        n = low.int_arg(e.args[1])
        cnt = low.vreg(T.u64, local=True)
        low.emit("mov", dst=cnt, a=n)
        ok = low.label("strn")
        low.emit("branch", name="ule", a=cnt, b=size - 1, target=ok)
        low.emit("mov", dst=cnt, a=size - 1)
        low.emit("label", name=ok)
        low.emit("binop", name="add", dst=cnt, a=cnt, b=1)
        low.emit("helper", dst=low.vreg(T.i64), name=fn, args=(FrameAddr(p.off), cnt, ptr))
    else:
        low.emit("helper", dst=low.vreg(T.i64), name=fn, args=(FrameAddr(p.off), size, ptr))
    return p


def _ntop(low: Any, e: A.Call) -> Any:
    args = e.args
    if len(args) == 2:
        af = low.int_arg(args[0])
        src_e = args[1]
    else:
        af = None
        src_e = args[0]
    p = low.frame_place(24)
    t = src_e.ty
    v = low.expr(src_e)
    if isinstance(v, Place):
        n = min(max(t.size, 1), 16)
        low.copy(Place(None, p.off + 8, T.u8[n], "stack"), Place(v.base, v.off, T.u8[n], v.space), e)
        fam = 2 if n == 4 else 10
    else:
        low.emit("store", base=None, off=p.off + 8, size=4,
                 a=low.materialize(low.convert(v, T.u32), T.u32))
        fam = 2
    if af is None:
        low.emit("store", base=None, off=p.off, size=8, a=fam)
    else:
        low.emit("store", base=None, off=p.off, size=8, a=low.materialize(af, T.u64))
    return p


def _strncmp(low: Any, e: A.Call) -> Any:
    a = low.readable_string(low.expr(e.args[0]), "sc1", e)
    b = low.readable_string(low.expr(e.args[1]), "sc2", e)
    limit = _lit_int(e.args[2])
    n = min(limit, a.type.count, b.type.count)
    out = low.vreg(T.u64, local=True)
    low.emit("mov", dst=out, a=1)
    differ, same = low.label("sdiff"), low.label("ssame")
    for i in range(n):
        x = low.read(a.at(i, T.u8), e)
        y = low.read(b.at(i, T.u8), e)
        low.emit("branch", name="ne", a=x, b=y, target=differ)
        low.emit("branch", name="eq", a=x, b=0, target=same)
    low.emit("label", name=same)
    low.emit("mov", dst=out, a=0)
    low.emit("label", name=differ)
    return out


def _kallsyms(name: str) -> int:
    with open("/proc/kallsyms") as fh:
        for line in fh:
            parts = line.split()
            if len(parts) >= 3 and parts[2] == name:
                return int(parts[0], 16)
    return 0


def _uaddr(low: Any, name: str) -> int:
    from ..elf.symbols import ElfFile
    with ElfFile(low.ap.target) as elf:
        for s in elf.find_symbols(name):
            if s.value:
                return int(s.value)
    return 0
