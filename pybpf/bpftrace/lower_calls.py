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
from ..compiler.errors import CompileError
from ..compiler.ir import FrameAddr, MapFd, VReg
from ..compiler.memory import Place
from . import ast as A

__all__ = ["lower_call", "FailedToCompile", "resolve_cgroupid"]


class FailedToCompile(CompileError):
    """What bpftrace 0.17 reports as ``ERROR: Failed to compile: ...`` while generating
    code (a kernel symbol or cgroup path that does not resolve): no location."""

    def __str__(self) -> str:
        return f"Failed to compile: {self.message}"

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
    if n == "unwatch":                            # the runtime detaches (.watchpoints)
        low.send("unwatch", None, [args[0]])
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
        _delete(low, args[0])
        return 0
    if n == "join":
        _join(low, e)
        return 0
    if n == "buf":
        return _buf(low, e)
    if n == "debugf":
        _debugf(low, e)
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
        name = _lit_str(low, args[0])
        addr = _kallsyms(name)
        if not addr:
            raise FailedToCompile(f"Failed to resolve kernel symbol: {name}")
        return low.load_const(addr, e, T.u64)
    if n == "uaddr":
        return low.load_const(_uaddr(low, _lit_str(low, args[0])), e, T.u64)
    if n == "cgroupid":
        return low.load_const(resolve_cgroupid(_lit_str(low, args[0])), e, T.u64)
    if n == "sizeof":
        return low.load_const(max(args[0].ty.size, 0), e)
    if n == "offsetof":                       # extensions (0.18): a constant
        return low.load_const(int(getattr(e, "offset", 0)), e, T.u64)
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
    if n == "strcontains":
        return _strcontains(low, e)
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


def _delete(low: Any, m: A.Map) -> None:
    """``delete(@m[k])``. hist/lhist/avg/stats keys end with a slot index: every slot of
    the key is deleted (bpftrace 0.17 deletes the one slot whose index happens to be in
    the uninitialised stack bytes after the key: not reproducible)."""
    lay = low.mb.layouts[m.name]
    ref = low.mb.map_ref(m.name)
    if lay.kind in ("avg", "stats"):
        slots = 2
    elif lay.kind == "hist":
        slots = 65
    elif lay.kind == "lhist":
        lo, hi, step = lay.lhist
        slots = (hi - lo) // step + 2
    else:
        low.map_delete_elem(ref, low.map_key(m, lay))
        return
    key = low.map_key(m, lay, 0)
    idx = key.off + lay.full_key_size - 8
    for i in range(slots):
        low.store_u64(idx, i)
        low.map_delete_elem(ref, key)


def _buf(low: Any, e: A.Call) -> Any:
    """``buf(p, n)``: a length byte, then up to ``n`` bytes read from ``p``."""
    arg = e.args[0]
    size = max(e.ty.size, 1)
    cap = size - 1
    p = low.frame_place(size)
    v = low.expr(arg)
    n_lit = None
    if len(e.args) > 1:
        n_lit = _lit_int(e.args[1], -1) if isinstance(e.args[1], A.Integer) else None
    elif arg.ty.kind == "array":
        n_lit = cap
    if isinstance(v, Place) and (n_lit is not None or len(e.args) == 1):
        n = min(cap, n_lit if n_lit is not None else cap)
        if n:
            low.copy(Place(None, p.off + 1, T.u8[n], "stack"),
                     Place(v.base, v.off, T.u8[n], v.space), e)
        low.emit("store", base=None, off=p.off, size=1, a=n)
        return p
    if isinstance(v, Place):
        src = low.addr_reg(v)
        space = "kernel"
    else:
        src = low.materialize(v, T.u64)
        space = low.space_of(arg.ty)
    fn = "probe_read_user" if space == "user" else "probe_read_kernel"
    if n_lit is not None:
        n = min(cap, max(n_lit, 0))
        if n:
            low.emit("helper", dst=low.vreg(T.i64), name=fn,
                     args=(FrameAddr(p.off + 1), n, src))
        low.emit("store", base=None, off=p.off, size=1, a=n)
        return p
    cnt = low.vreg(T.u64, local=True)
    low.emit("mov", dst=cnt, a=low.int_arg(e.args[1]))
    ok = low.label("bufn")
    low.emit("branch", name="ule", a=cnt, b=cap, target=ok)
    low.emit("mov", dst=cnt, a=cap)
    low.emit("label", name=ok)
    low.emit("store", base=None, off=p.off, size=1, a=cnt)
    if cap:
        low.emit("helper", dst=low.vreg(T.i64), name=fn,
                 args=(FrameAddr(p.off + 1), cnt, src))
    return p


#: join(): arguments read and the bytes kept of each (bpftrace 0.17's defaults)
from .module import JOIN_ARG_SIZE, JOIN_ARGS  # noqa: E402 - the record layout


def _join(low: Any, e: A.Call) -> None:
    """``join(argv [, delim])``: a record reserved in the ring (too big for the stack):
    site id, then 16 slots of 1024 bytes, each the string of ``argv[i]`` (zeroed when
    ``argv[i]`` is NULL or unreadable: the reader stops at the first empty slot)."""
    delim = _lit_str(low, e.args[1]) if len(e.args) > 1 else " "
    site = low.mb.add_site("join", low.index, delim, [])
    size = 8 + JOIN_ARGS * JOIN_ARG_SIZE
    site.size = size
    space = low.space_of(e.args[0].ty)
    argv = low.vreg(T.u64, local=True)
    low.emit("mov", dst=argv, a=low.int_arg(e.args[0]))
    ref = low.mb.events
    from ..compiler.ir import PtrType
    ptr = low.vreg(PtrType(T.u8[size], "map", True), local=True)
    low.emit("helper", dst=ptr, name="ringbuf_reserve", args=(MapFd(ref.name), size, 0))
    full, end = low.label("ringfull"), low.label("reserved")
    low.emit("branch", name="eq", a=ptr, b=0, target=full)
    low.emit("store", base=ptr, off=0, size=8, a=site.id)
    rd = "probe_read_user" if space == "user" else "probe_read_kernel"
    rds = rd + "_str"
    slot = low.temp("joinptr", 8)
    for i in range(JOIN_ARGS):
        low.emit("store", base=None, off=slot, size=8, a=0)
        low.emit("helper", dst=low.vreg(T.i64), name=rd, args=(FrameAddr(slot), 8, argv))
        s = low.vreg(T.u64)
        low.emit("load", dst=s, base=None, off=slot, size=8)
        dst = low.vreg(T.u64)
        low.emit("addr", dst=dst, base=ptr, off=8 + i * JOIN_ARG_SIZE)
        low.emit("helper", dst=low.vreg(T.i64), name=rds, args=(dst, JOIN_ARG_SIZE, s))
        low.emit("binop", name="add", dst=argv, a=argv, b=8)
    low.ring_submit(ref, ptr, size, full, end)


def _debugf(low: Any, e: A.Call) -> None:
    """``debugf(fmt, ...)``: ``bpf_trace_printk`` (to the kernel's trace buffer, never
    to stdout); string arguments are passed by address."""
    fmt = e.args[0].value + b"\0"
    fp = low.frame_place((len(fmt) + 7) // 8 * 8)
    low.store_bytes(fp, fmt)
    vals = []
    for a in e.args[1:]:
        v = low.expr(a)
        vals.append(low.addr_reg(v) if isinstance(v, Place) else low.materialize(
            low.int_arg(a), T.u64))
    low.emit("helper", dst=low.vreg(T.i64), name="trace_printk",
             args=(FrameAddr(fp.off), len(fmt), *vals))


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


def resolve_cgroupid(path: str) -> int:
    """``cgroupid(path)``: the 8-byte file handle ``name_to_handle_at`` gives for
    ``path`` (on cgroupfs, the cgroup's id), as bpftrace 0.17 computes it; raises
    :class:`FailedToCompile` as bpftrace reports a failure."""
    import ctypes
    import errno as _errno
    libc = ctypes.CDLL(None, use_errno=True)

    class Handle(ctypes.Structure):
        _fields_ = [("bytes", ctypes.c_uint), ("type", ctypes.c_int),
                    ("id", ctypes.c_uint64)]

    h = Handle(8, 0, 0)
    mount_id = ctypes.c_int(0)
    rc = libc.name_to_handle_at(-100, path.encode(), ctypes.byref(h),
                                ctypes.byref(mount_id), 0)
    if rc < 0:
        err = ctypes.get_errno() or _errno.EINVAL
        raise FailedToCompile(f"Failed to get `cgroupid` for path: \"{path}\": "
                              f"{os.strerror(err)}")
    return h.id


def _strcontains(low: Any, e: A.Call) -> Any:
    """``strcontains(h, n)``: 1 when ``n`` (up to its NUL) occurs in ``h`` (up to its
    NUL), unrolled over the positions of ``h`` (a literal needle compares with
    constants)."""
    hay = low.readable_string(low.expr(e.args[0]), "sc1", e)
    ne = e.args[1]
    lit = ne.value.split(b"\0")[0] if isinstance(ne, A.String) else None
    needle = None if lit is not None else low.readable_string(low.expr(ne), "sc2", e)
    out = low.vreg(T.u64, local=True)
    found, done = low.label("scfound"), low.label("scdone")
    low.emit("mov", dst=out, a=0)
    hsize = hay.type.count
    nsize = len(lit) if lit is not None else needle.type.count
    for i in range(hsize if lit is None or lit else 0):
        nxt = low.label("scnext")
        for j in range(nsize):
            if lit is not None:
                if i + j >= hsize:
                    low.emit("jump", target=nxt)
                    break
                h = low.read(hay.at(i + j, T.u8), e)
                low.emit("branch", name="ne", a=h, b=lit[j], target=nxt)
                continue
            c = low.read(needle.at(j, T.u8), e)
            low.emit("branch", name="eq", a=c, b=0, target=found)
            if i + j >= hsize:
                low.emit("jump", target=nxt)
                break
            h = low.read(hay.at(i + j, T.u8), e)
            low.emit("branch", name="ne", a=h, b=c, target=nxt)
        else:
            low.emit("jump", target=found)
        low.emit("label", name=nxt)
        h0 = low.read(hay.at(i, T.u8), e)
        low.emit("branch", name="eq", a=h0, b=0, target=done)
    if lit is None or lit:
        low.emit("jump", target=done)
    low.emit("label", name=found)
    low.emit("mov", dst=out, a=1)
    low.emit("label", name=done)
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
