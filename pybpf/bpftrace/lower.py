"""Lowering an analysed bpftrace program to the shared compiler (:mod:`pybpf.compiler`).

:func:`lower_program` takes the front half's result (:class:`~.session.FrontResult`)
and returns a :class:`LoweredModule`: one BPF program per probe (or per attach point
when the probe needs one per match: ``probe`` or tracepoint ``args`` in it), the maps,
and the async action sites the runtime (:mod:`.runtime`) decodes.

Decisions (how this front end stores what bpftrace 0.17 stores):

* **maps**: key = the key expressions packed in order (integers 8 bytes, strings
  their size, tuples their layout); a scalar map has one 8-byte zero key. count, sum,
  min, max, avg, stats, hist and lhist live in ``PERCPU_HASH`` maps of 8-byte values
  (updated without atomics, reduced in user space); hist/lhist keys end with the
  8-byte bucket index, avg/stats keys with 0 (count) or 1 (total); min stores
  ``0xffffffff - v`` and keeps the largest, as 0.17 does. Other maps are ``HASH`` maps
  of the value's bytes (integers 8 bytes). Every map holds
  ``BPFTRACE_MAP_KEYS_MAX`` entries.
* **async actions** travel through one ring buffer (adaptive wake-up, drops counted):
  a record is an 8-byte site id then the arguments, each at its own aligned offset
  (integers widened to 8 bytes); :class:`Site` tells the runtime the layout.
* **BEGIN/END** are raw tracepoint programs the runtime runs once with
  ``BPF_PROG_TEST_RUN`` in its own process (so ``pid``/``comm`` are the tracer's, as in
  bpftrace, whose BEGIN runs in bpftrace itself).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from .._nogc import gc_paused
from ..asm.instruction import SourceLocation
from ..compiler import types as T
from ..compiler.backend import link_program, lower_function
from ..compiler.blocks import MapRef
from ..compiler.errors import CompileError
from ..compiler.ir import FrameAddr, Function, MapFd, Operand, PtrType, VReg
from ..compiler.lowering import Lowering
from ..compiler.maps import ArrayMap, HashMap, MapDecl, PerCPUArrayMap, PerCPUHashMap, RingBuf, StackTraceMap
from ..compiler.memory import CtxRef, Place
from ..compiler.unit import Unit
from . import ast as A
from .lower_checks import HelperCheckMixin
from .lower_exprs import ExprMixin
from .lower_probes import ProbeContextMixin, _usdt_locations, _watch_func, _watch_setup
from .module import (ELAPSED_MAP, EVENTS_MAP, LoweredModule, LoweredProgram, MapLayout,
                     Site, full_name as _full_name)
from .types import SizedType

__all__ = ["lower_program", "LoweredModule", "LoweredProgram", "Site", "MapLayout",
           "EVENTS_MAP", "ELAPSED_MAP"]

_AGGS = ("count", "sum", "min", "max", "avg", "stats", "hist", "lhist")


def _type_size(t: SizedType) -> int:
    """Bytes a value of ``t`` takes in a key, a map value or a record."""
    if t.kind in ("integer", "pointer") or t.is_aggregation() or t.kind in (
            "kstack", "ustack", "ksym", "username", "probe", "strerror"):
        return 8
    return max(t.size, 1)


def _align(off: int, size: int) -> int:
    a = 8 if size >= 8 else size if size in (1, 2, 4) else 1
    return (off + a - 1) // a * a


class ModuleBuilder:
    """State shared by the programs of one bpftrace program."""

    def __init__(self, front: Any, opts: Any) -> None:
        self.front = front
        self.opts = opts
        self.analysis = front.analysis
        self.unit = Unit()
        self.layouts: Dict[str, MapLayout] = {}
        self.sites: List[Site] = []
        self.probe_names: List[str] = []
        self.stack_maps: Dict[str, str] = {}
        self.events = MapRef(self._declare(EVENTS_MAP, RingBuf(
            T.u8[8], _ring_size(opts.perf_rb_pages), name=EVENTS_MAP)), EVENTS_MAP)
        for name, info in self.analysis.maps.items():
            self.layouts[name] = self._layout(name, info)

    def _declare(self, name: str, decl: MapDecl) -> MapDecl:
        self.unit.maps[name] = decl
        self.unit.map_names[id(decl)] = name
        return decl

    def _layout(self, name: str, info: Any) -> MapLayout:
        keys: List[Tuple[SizedType, int]] = []
        off = 0
        for kt in info.key:
            size = _type_size(kt)
            keys.append((kt, off))
            off += size
        kind = info.value.kind
        bpf = "AT_" + (name[1:] or "_")
        bpf = bpf[:15]
        n = 1
        while bpf in self.unit.maps:
            n += 1
            bpf = f"{bpf[:12]}_{n}"
        lay = MapLayout(name, bpf, kind, keys, off, info.value,
                        8 if kind in _AGGS else _type_size(info.value),
                        kind in _AGGS, info.lhist)
        lay.array = kind == "count" and not keys
        maxn = self.opts.map_keys_max
        if lay.array:
            decl: MapDecl = PerCPUArrayMap(T.u64, 1, name=bpf)
        elif lay.per_cpu:
            decl = PerCPUHashMap(T.u8[lay.full_key_size], T.u64, maxn, name=bpf)
        else:
            decl = HashMap(T.u8[lay.full_key_size], T.u8[lay.value_size], maxn, name=bpf)
        self._declare(bpf, decl)
        return lay

    def map_ref(self, name: str) -> MapRef:
        lay = self.layouts[name]
        return MapRef(self.unit.maps[lay.bpf_name], lay.bpf_name)

    def elapsed_ref(self) -> MapRef:
        if ELAPSED_MAP not in self.unit.maps:
            self._declare(ELAPSED_MAP, ArrayMap(T.u64, 1, name=ELAPSED_MAP))
        return MapRef(self.unit.maps[ELAPSED_MAP], ELAPSED_MAP)

    def stack_ref(self, kernel: bool, limit: int) -> MapRef:
        name = f"bt_{'k' if kernel else 'u'}stack_{limit}"[:15]
        if name not in self.unit.maps:
            self._declare(name, StackTraceMap(4096, limit, name=name))
            self.stack_maps[name] = "kstack" if kernel else "ustack"
        return MapRef(self.unit.maps[name], name)

    def add_site(self, kind: str, probe: int, fmt: Optional[str],
                 types: List[SizedType], extra: Any = None) -> Site:
        off = 8
        args = []
        for t in types:
            size = _type_size(t)
            off = _align(off, size)
            args.append((t, off))
            off += size
        site = Site(len(self.sites), kind, probe, fmt, args, (off + 7) // 8 * 8, extra)
        self.sites.append(site)
        return site

    def probe_id(self, name: str) -> int:
        if name not in self.probe_names:
            self.probe_names.append(name)
        return self.probe_names.index(name)


def _ring_size(pages: int) -> int:
    """The ring's bytes: ``BPFTRACE_PERF_RB_PAGES`` pages per CPU in bpftrace, here one
    ring of that many pages times the CPU count (a power of two)."""
    import os
    want = max(pages, 1) * 4096 * max(os.cpu_count() or 1, 1)
    size = 4096
    while size < want:
        size *= 2
    return size


class ProbeLowering(HelperCheckMixin, ProbeContextMixin, ExprMixin, Lowering):
    """One program: a probe's predicate and statements (for one attach point, or for
    all of them)."""

    def __init__(self, mb: ModuleBuilder, index: int, probe: A.Probe, ap: Any,
                 name: str) -> None:
        fn = Function(name, [], T.i64, is_entry=True)
        Lowering.__init__(self, fn, mb.unit, None)
        self.mb = mb
        self.index = index
        self.probe = probe
        self.ap = ap
        self.provider = ap.provider
        self.vars: Dict[str, Any] = {}
        self.loops: List[Tuple[str, str]] = []
        self.filename = mb.front.filename
        self.lines = mb.front.source.splitlines()

    def error(self, message: str, node: Any, suggestion: str = "") -> CompileError:
        """A compile error at ``node`` (``bt_loc``: its bpftrace location, for a
        bpftrace-style message)."""
        exc = CompileError(message, self.where(node), suggestion)
        exc.bt_loc = getattr(node, "loc", None)                # type: ignore[attr-defined]
        return exc

    def where(self, node: Any) -> SourceLocation:
        loc = getattr(node, "loc", None)
        line = getattr(loc, "line", 1) or 1
        text = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
        return SourceLocation(self.filename, line, getattr(loc, "col", 0), text)

    # -- the program ------------------------------------------------------------------
    def compile(self) -> Function:
        """The IR of the whole probe."""
        self.loc = self.where(self.probe)
        reg = self.vreg(PtrType(None, "ctx"), local=True)
        self.emit("param", dst=reg, a=0)
        self.ctx = CtxRef(reg)
        done = self.label("done")
        if self.probe.pred is not None:
            self.loc = self.where(self.probe.pred)
            self.open_scope()
            self.branch_on(self.probe.pred.expr, done, False)
            self.close_scope()
        ended = self.block(self.probe.body)
        if not ended or self.probe.pred is not None:
            self.emit("label", name=done)
            self.emit("ret", a=0)
        if hasattr(self, "_iter_end"):
            self.emit("label", name=self._iter_end)
            self.emit("ret", a=0)
        return self.fn

    # -- statements -------------------------------------------------------------------
    def block(self, stmts: List[A.Stmt]) -> bool:
        """Lower statements; True when control never reaches the end."""
        for s in stmts:
            if self.stmt(s):
                return True
        return False

    def stmt(self, s: A.Stmt) -> bool:
        """Lower one statement; True when control does not continue after it."""
        self.loc = self.where(s)
        self.push_node(s)
        self.open_scope()           # the statement's keys, strings, records: its own
        try:
            return self._stmt(s)
        finally:
            self.close_scope()
            self.pop_node()

    def _stmt(self, s: A.Stmt) -> bool:
        if isinstance(s, A.ExprStatement):
            e = s.expr
            if isinstance(e, A.Call) and e.name == "exit":
                self.async_call(e)
                self.emit("ret", a=0)
                return True
            self.expr(e)
            return False
        if isinstance(s, A.AssignVar):
            self.assign_var(s)
            return False
        if isinstance(s, A.AssignMap):
            self.assign_map(s)
            return False
        if isinstance(s, A.If):
            return self.if_stmt(s)
        if isinstance(s, A.Unroll):
            n = s.count.value if isinstance(s.count, A.Integer) else \
                int(self.mb.opts.params[s.count.n - 1])
            for _ in range(n):
                if self.block(s.body):
                    return True
            return False
        if isinstance(s, A.While):
            return self.while_stmt(s)
        if isinstance(s, A.Jump):
            if s.kind == "return":
                self.emit("ret", a=0)
            elif not self.loops:
                raise self.error(f"{s.kind} outside a loop", s)
            else:
                top, end = self.loops[-1]
                self.emit("jump", target=end if s.kind == "break" else top)
            return True
        raise self.error(f"statement {type(s).__name__} is not supported yet", s)

    def if_stmt(self, s: A.If) -> bool:
        other, end = self.label("else"), self.label("endif")
        self.open_scope()
        self.branch_on(s.cond, other, False)
        self.close_scope()
        then_out = self.block(s.then)
        if not then_out:
            self.emit("jump", target=end)
        self.emit("label", name=other)
        else_out = self.block(s.orelse) if s.orelse else False
        if then_out and else_out:
            return True
        self.emit("label", name=end)
        return False

    def while_stmt(self, s: A.While) -> bool:
        if _never_ends(s):
            raise self.error("this loop never ends: its condition is always true and "
                             "nothing in it leaves it (break, return or exit()), and "
                             "the kernel refuses programs that may not end", s)
        top, end = self.label("while"), self.label("wend")
        first = len(self.fn.ops)
        self.emit("label", name=top)
        self.open_scope()           # evaluated afresh at each turn
        self.branch_on(s.cond, end, False)
        self.close_scope()
        self.loops.append((top, end))
        if not self.block(s.body):
            self.emit("jump", target=top)
        self.loops.pop()
        self.fn.loops.append((first, len(self.fn.ops) - 1))
        self.fn.loop_bounds.append((top, 100, self.loc))
        self.emit("label", name=end)
        # every variable may be live across the back edge
        for v in self.vars.values():
            if isinstance(v, VReg):
                self.local_ids.add(v.id)
        return False

    # -- variables --------------------------------------------------------------------
    def assign_var(self, s: A.AssignVar) -> None:
        value_node = getattr(s, "binop", None) or s.value_expr()
        t = self.mb.analysis.probes[self.index].variables.get(s.var.name) or s.var.ty
        v = self.expr(value_node)
        name = s.var.name
        if isinstance(v, Place):
            dst = self.vars.get(name)
            if dst is None:
                size = _type_size(t)
                dst = Place(None, self.alloc(size, keep=True), T.u8[size], "stack")
                self.vars[name] = dst
            self.zero(dst)
            self.copy(dst, v, s)
            return
        it = self.int_type(t)
        reg = self.vars.get(name)
        if reg is None:
            reg = self.vreg(it, local=True)
            self.vars[name] = reg
        self.convert_into(reg, self.convert(v, it))

    # -- maps -------------------------------------------------------------------------
    def map_key(self, m: A.Map, lay: MapLayout, extra: Optional[Operand] = None) -> Any:
        """The key of ``m`` in the frame (plus the 8-byte index ``extra``); a helper
        argument."""
        if lay.array:
            off = self.temp("akey", 4)
            self.emit("store", base=None, off=off, size=4, a=0)
            return FrameAddr(off)
        size = lay.full_key_size
        elems = m.keys
        if len(elems) == 1 and len(lay.keys) > 1 and isinstance(elems[0], A.Tuple):
            elems = elems[0].elems
        if extra is None and len(lay.keys) == 1 and len(elems) == 1 \
                and _type_size(lay.keys[0][0]) == size:
            v = self.expr(elems[0])          # a string or tuple already in the frame
            if self.whole_frame_place(v, size):
                return FrameAddr(v.off)
            off = self.alloc(size)
            key = Place(None, off, T.u8[size], "stack")
            self.zero(key)
            self.store_evaluated(key, v, elems[0], lay.keys[0][0])
            return FrameAddr(off)
        off = self.alloc(size)
        key = Place(None, off, T.u8[size], "stack")
        self.zero(key)
        for (kt, koff), e in zip(lay.keys, elems):
            self.open_scope()                # each element's temporaries: until copied
            self.store_value(key.at(koff, T.u8[_type_size(kt)]), e, kt)
            self.close_scope()
        if extra is not None:
            self.store_u64(off + size - 8, extra)
        return FrameAddr(off)

    def store_u64(self, off: int, v: Operand) -> None:
        """Store 8 bytes at frame offset ``off``, byte by byte when it is not 8-aligned
        (keys such as ``string[2]`` + slot index; the verifier refuses misaligned
        stack stores)."""
        if off % 8 == 0:
            self.emit("store", base=None, off=off, size=8,
                      a=self.materialize(self.convert(v, T.u64), T.u64))
            return
        if isinstance(v, int):
            for i, b in enumerate((v & (2 ** 64 - 1)).to_bytes(8, "little")):
                self.emit("store", base=None, off=off + i, size=1, a=b)
            return
        r = self.vreg(T.u64)
        self.emit("mov", dst=r, a=self.materialize(self.convert(v, T.u64), T.u64))
        for i in range(8):
            self.emit("store", base=None, off=off + i, size=1, a=r)
            if i < 7:
                self.emit("binop", name="rsh", dst=r, a=r, b=8)

    def whole_frame_place(self, v: Any, size: int) -> bool:
        """Is ``v`` a place of exactly ``size`` bytes in the frame, every byte written
        (frame places are zeroed before they are filled), so that a helper may read
        it as a key or value where it is?"""
        return isinstance(v, Place) and v.base is None and v.space == "stack" \
            and v.bitfield is None and self.object_size(v.type) == size

    def store_value(self, dst: Place, e: A.Expr, t: SizedType) -> None:
        """Evaluate ``e`` into ``dst`` (an 8-byte integer, or the bytes of an aggregate)."""
        self.store_evaluated(dst, self.expr(e), e, t)

    def store_evaluated(self, dst: Place, v: Any, e: A.Expr, t: SizedType) -> None:
        """Store ``v``, the value of ``e``, into ``dst`` (see :meth:`store_value`)."""
        if isinstance(v, Place):
            self.copy(Place(dst.base, dst.off, T.u8[min(_type_size(t), dst.type.count)],
                            dst.space), v, e)
        else:
            et = self.int_type(getattr(e, "ty", None) or t)
            v = self.convert(v, et)
            v64 = self.convert(v, T.i64 if et.signed else T.u64)
            if dst.base is None and dst.off % 8:
                self.store_u64(dst.off, v64)       # packed after an odd-sized key
                return
            self.emit("store", base=dst.base, off=dst.off, size=8,
                      a=self.materialize(v64, T.u64))

    def assign_map(self, s: A.AssignMap) -> None:
        m = s.map
        lay = self.mb.layouts[m.name]
        value = s.value
        if isinstance(value, A.Call) and value.name in _AGGS:
            self.aggregate(m, lay, value)
            return
        value_node = getattr(s, "binop", None) or s.value_expr()
        v = self.expr(value_node)
        key = self.map_key(m, lay)
        if self.whole_frame_place(v, lay.value_size):
            # a string, tuple or record already in the frame: the helper copies it
            self.map_update_elem(self.mb.map_ref(m.name), key, FrameAddr(v.off))
            return
        voff = self.alloc(lay.value_size)
        vplace = Place(None, voff, T.u8[lay.value_size], "stack")
        if isinstance(v, Place):
            self.zero(vplace)
            self.copy(vplace, v, s)
        else:
            et = self.int_type(value_node.ty)
            v = self.convert(self.convert(v, et), T.i64 if et.signed else T.u64)
            self.emit("store", base=None, off=voff, size=8,
                      a=self.materialize(v, T.u64))
        self.map_update_elem(self.mb.map_ref(m.name), key, FrameAddr(voff))

    def map_read(self, m: A.Map) -> Any:
        """``@m[k]``: an integer (0 when absent) or a frame place (zeros when absent)."""
        lay = self.mb.layouts[m.name]
        if lay.kind in ("hist", "lhist"):
            raise self.error(f"reading a {lay.kind}() map is not supported", m)
        # as bpftrace 0.17: this CPU's raw value (min: stored as 0xffffffff - v, turned
        # back when printed); avg/stats: the count slot (0.17 reads the slot named by
        # the stack bytes after the key: 0 for a scalar map)
        key = self.map_key(m, lay, 0 if lay.kind in ("avg", "stats") else None)
        ptr = self.map_lookup(self.mb.map_ref(m.name), key)
        miss, end = self.label("miss"), self.label("read")
        if lay.kind in _AGGS or m.ty.kind in ("integer", "pointer"):
            out = self.vreg(T.i64 if (m.ty.signed or lay.kind in _AGGS) else T.u64)
            self.emit("mov", dst=out, a=0)
            self.emit("branch", name="eq", a=ptr, b=0, target=end)
            raw = self.vreg(T.u64)
            self.emit("load", dst=raw, base=ptr, off=0, size=8)
            self.emit("mov", dst=out, a=raw)
            self.emit("label", name=end)
            self.local_ids.add(out.id)
            if m.ty.kind == "integer" and lay.kind not in _AGGS:
                return self.convert(out, self.int_type(m.ty))
            return out
        size = lay.value_size
        dst = Place(None, self.alloc(size), T.u8[size], "stack")
        self.zero(dst)
        self.emit("branch", name="eq", a=ptr, b=0, target=miss)
        self.copy(dst, Place(VReg(ptr.id, PtrType(T.u8[size], "map")), 0, T.u8[size], "map"), m)
        self.emit("label", name=miss)
        return dst

    def aggregate(self, m: A.Map, lay: MapLayout, call: A.Call) -> None:
        """``@m[k] = count()/sum(v)/...`` into the per-CPU map."""
        self.push_node(call)                  # bpftrace's helper errors name the call
        try:
            self._aggregate(m, lay, call)
        finally:
            self.pop_node()

    def _aggregate(self, m: A.Map, lay: MapLayout, call: A.Call) -> None:
        ref = self.mb.map_ref(m.name)
        kind = call.name
        if kind == "count":
            self.add_to(ref, self.map_key(m, lay), 1)
            return
        v = self.int_arg(call.args[0])
        if kind == "sum":
            self.add_to(ref, self.map_key(m, lay), v)
        elif kind in ("avg", "stats"):
            self.add_to(ref, self.map_key(m, lay, 0), 1)
            self.add_to(ref, self.map_key(m, lay, 1), v)
        elif kind == "hist":
            self.add_to(ref, self.map_key(m, lay, self.hist_index(v)), 1)
        elif kind == "lhist":
            lo, hi, step = lay.lhist  # type: ignore[misc]
            self.add_to(ref, self.map_key(m, lay, self.lhist_index(v, lo, hi, step)), 1)
        elif kind in ("min", "max"):
            if kind == "min":
                n = self.vreg(T.i64)
                self.emit("mov", dst=n, a=0xFFFFFFFF)
                self.emit("binop", name="sub", dst=n, a=n, b=v)
                v = n
            self.keep_max(ref, self.map_key(m, lay), v)

    def add_to(self, ref: MapRef, key: Any, v: Operand) -> None:
        """value(key) += v, inserting v when absent."""
        ptr = self.map_lookup(ref, key)
        miss, end = self.label("new"), self.label("added")
        self.emit("branch", name="eq", a=ptr, b=0, target=miss)
        cur = self.vreg(T.u64)
        self.emit("load", dst=cur, base=ptr, off=0, size=8)
        self.emit("binop", name="add", dst=cur, a=cur, b=self.convert(v, T.u64))
        self.emit("store", base=ptr, off=0, size=8, a=cur)
        self.emit("jump", target=end)
        self.emit("label", name=miss)
        voff = self.temp("aggval", 8)
        self.emit("store", base=None, off=voff, size=8,
                  a=self.materialize(self.convert(v, T.u64), T.u64))
        self.map_update_elem(ref, key, FrameAddr(voff))
        self.emit("label", name=end)

    def keep_max(self, ref: MapRef, key: Any, v: Operand) -> None:
        """value(key) = v when v > value (signed); an absent value counts as 0, as in
        bpftrace 0.17 (so ``max()`` of negative values stores nothing)."""
        ptr = self.map_lookup(ref, key)
        miss, end = self.label("new"), self.label("kept")
        sv = self.vreg(T.i64, local=True)
        self.convert_into(sv, self.convert(v, T.i64))
        self.emit("branch", name="eq", a=ptr, b=0, target=miss)
        cur = self.vreg(T.i64)
        self.emit("load", dst=cur, base=ptr, off=0, size=8)
        self.emit("branch", name="sge", a=cur, b=sv, target=end)
        self.emit("store", base=ptr, off=0, size=8, a=sv)
        self.emit("jump", target=end)
        self.emit("label", name=miss)
        self.emit("branch", name="sle", a=sv, b=0, target=end)
        voff = self.temp("aggval", 8)
        self.emit("store", base=None, off=voff, size=8, a=sv)
        self.map_update_elem(ref, key, FrameAddr(voff))
        self.emit("label", name=end)

    def hist_index(self, v: Operand) -> VReg:
        """bpftrace 0.17's hist bucket: 0 negative, 1 zero, 2 + floor(log2 v) (shift
        ladder 16..1, so at most 33)."""
        x = self.vreg(T.i64, local=True)
        self.convert_into(x, self.convert(v, T.i64))
        r = self.vreg(T.u64, local=True)
        end = self.label("hend")
        self.emit("mov", dst=r, a=0)
        self.emit("branch", name="slt", a=x, b=0, target=end)
        self.emit("mov", dst=r, a=1)
        self.emit("branch", name="eq", a=x, b=0, target=end)
        self.emit("mov", dst=r, a=2)
        for s in (16, 8, 4, 2, 1):
            skip = self.label("hs")
            lim = self.load_const(1 << s, None, T.i64) if (1 << s) >= 1 << 31 else 1 << s
            self.emit("branch", name="slt", a=x, b=lim, target=skip)
            self.emit("binop", name="rsh", dst=x, a=x, b=s)
            self.emit("binop", name="add", dst=r, a=r, b=s)
            self.emit("label", name=skip)
        self.emit("label", name=end)
        return r

    def lhist_index(self, v: Operand, lo: int, hi: int, step: int) -> VReg:
        """The lhist bucket of ``v`` (see :func:`.values.lhist_bucket`)."""
        x = self.vreg(T.i64, local=True)
        self.convert_into(x, self.convert(v, T.i64))
        r = self.vreg(T.u64, local=True)
        end, over = self.label("lend"), self.label("lover")
        self.emit("mov", dst=r, a=0)
        self.emit("branch", name="slt", a=x, b=self.load_const(lo, None, T.i64), target=end)
        self.emit("branch", name="sgt", a=x, b=self.load_const(hi, None, T.i64), target=over)
        self.emit("mov", dst=r, a=x)
        self.emit("binop", name="sub", dst=r, a=r, b=self.load_const(lo, None, T.i64))
        self.emit("binop", name="udiv", dst=r, a=r, b=self.load_const(step, None, T.u64))
        self.emit("binop", name="add", dst=r, a=r, b=1)
        self.emit("jump", target=end)
        self.emit("label", name=over)
        self.emit("mov", dst=r, a=1 + (hi - lo) // step)
        self.emit("label", name=end)
        return r

    # -- async actions ----------------------------------------------------------------
    def send_record(self, kind: str, fmt: Optional[str], args: List[A.Expr],
                    types: Optional[List[SizedType]] = None, extra: Any = None) -> None:
        """Send one async record: site id then ``args`` evaluated and packed."""
        types = types if types is not None else [a.ty for a in args]
        site = self.mb.add_site(kind, self.index, fmt, types, extra)
        off = self.alloc(site.size)
        rec = Place(None, off, T.u8[site.size], "stack")
        self.zero(rec)
        self.emit("store", base=None, off=off, size=8, a=site.id)
        for (t, aoff), a in zip(site.args, args):
            # each argument straight into the record: its temporaries (a str()
            # buffer, a string constant) are free again for the next one
            self.open_scope()
            v = self.expr(a)
            size = _type_size(t)
            if isinstance(v, Place):
                self.copy(rec.at(aoff, T.u8[size]), v, a)
            else:
                et = self.int_type(a.ty) if a.ty.kind == "integer" else T.u64
                v64 = self.convert(self.convert(v, et), T.i64 if et.signed else T.u64)
                self.emit("store", base=None, off=off + aoff, size=8,
                          a=self.materialize(v64, T.u64))
            self.close_scope()
        self.ring_output(self.mb.events, FrameAddr(off), site.size)


@gc_paused
def lower_program(front: Any, opts: Any) -> LoweredModule:
    """Lower every probe of ``front`` (a :class:`~.session.FrontResult`)."""
    from .probe_match import expand_attach_point
    mb = ModuleBuilder(front, opts)
    programs: List[LoweredProgram] = []
    walks: Dict[str, int] = {}
    numbers: Dict[str, int] = {}
    watchpoints: List[Tuple[str, Any]] = []
    for index, info in enumerate(front.analysis.probes):
        probe = info.probe
        expanded: List[Any] = []
        for ap in front.attach_points[index]:
            expanded.extend(expand_attach_point(ap, front.env) if _expands(ap)
                            else [ap])
        if not expanded:
            continue
        expanded = _usdt_locations(expanded, front.env, opts)
        split = info.need_expansion or _differs(expanded) or expanded[0].kind == "usdt" \
            or any(_watch_func(ap) for ap in expanded)
        orig = ",".join(ap.name() for ap in front.attach_points[index])
        for ap in expanded:       # for attach.py's rule on what a failed attach skips
            ap.orig_name, ap.own_program = orig, split
        groups = [[ap] for ap in expanded] if split else [expanded]
        key = ",".join(_full_name(ap) for ap in front.attach_points[index])
        for g, aps in enumerate(groups):
            name = f"p{index}_{g}"
            numbers[key] = numbers.get(key, 0) + 1
            label = _full_name(aps[0]) if split else key
            low = ProbeLowering(mb, index, probe, aps[0], name)
            low.probe_name = _full_name(aps[0])
            ir = low.compile()
            compiled = lower_function(ir, walks)
            insns = link_program([compiled])
            from .semantic import progtype
            programs.append(LoweredProgram(name, index, aps, progtype(_kind(aps[0])),
                                           aps[0].provider, insns,
                                           f"s_{label}_{numbers[key]}",
                                           deferred=_watch_func(aps[0])))
            if _watch_func(aps[0]):
                programs.append(_watch_setup(mb, index, probe, aps[0], name, walks,
                                             len(watchpoints),
                                             f"s_{label}_wp_setup_{numbers[key]}"))
                watchpoints.append((name, aps[0]))
    mod = LoweredModule(programs, mb.unit, mb.layouts, mb.sites, mb.probe_names,
                        mb.stack_maps, opts.strlen)
    mod.strftime_fmts = getattr(mb, "strftime_fmts", [])      # type: ignore[attr-defined]
    mod.watchpoints = watchpoints
    mod.cgroup_filters = getattr(mb, "cgroup_filters", [])    # type: ignore[attr-defined]
    return mod


def _never_ends(s: A.While) -> bool:
    """Is ``s`` a ``while`` whose condition is a nonzero constant and whose body has no
    ``break`` of its own, no ``return`` and no ``exit()`` (the verifier would reject
    the program as an infinite loop)?"""
    if not (isinstance(s.cond, A.Integer) and s.cond.value != 0):
        return False

    def leaves(stmts: List[Any], nested: bool) -> bool:
        for st in stmts:
            if isinstance(st, A.Jump) and (st.kind == "return"
                                           or (st.kind == "break" and not nested)):
                return True
            if isinstance(st, A.ExprStatement) and isinstance(st.expr, A.Call) \
                    and st.expr.name == "exit":
                return True
            if isinstance(st, A.If) and (leaves(st.then, nested)
                                         or leaves(st.orelse or [], nested)):
                return True
            if isinstance(st, A.Unroll) and leaves(st.body, nested):
                return True
            if isinstance(st, (A.While, A.For)) and leaves(st.body, True):
                return True
        return False

    return not leaves(s.body, False)


def _expands(ap: Any) -> bool:
    """Does ``ap`` go through bpftrace's matcher: wildcards, and uprobe functions that
    are not symbols of the target (a C++ name may match several), but not a function
    spelled as an address (``uretprobe:bin:0x1139``, resolved when attaching)?"""
    if ap.need_expansion:
        return True
    if ap.kind in ("uprobe", "uretprobe") and ap.func:
        from .semantic import stoll
        return stoll(ap.func) is None
    return ap.kind in ("watchpoint", "asyncwatchpoint") and bool(ap.func)


def _kind(ap: Any) -> str:
    if ap.provider in ("BEGIN", "END"):
        return "special"
    return ap.provider


def _differs(aps: List[Any]) -> bool:
    """Attach points of different kinds need their own programs."""
    return len({_kind(a) for a in aps}) > 1
