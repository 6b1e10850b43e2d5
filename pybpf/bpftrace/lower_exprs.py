"""Expressions of a bpftrace probe lowered to the shared IR (mixed into
:class:`pybpf.bpftrace.lower.ProbeLowering`).

An expression lowers to an integer operand (integers and pointers, normalized to the
node's type) or to a :class:`~pybpf.compiler.memory.Place` (strings, tuples, records,
arrays, buffers, usym/inet/timestamp values: bytes somewhere, usually the frame).
Arithmetic follows bpftrace 0.17's generated code: 64-bit operations, unsigned ``/``
and ``%``, logical ``>>``, comparisons signed only when both sides are signed.
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional

from ..compiler import types as T
from ..compiler.ir import FrameAddr, Operand, PtrType, VReg
from ..compiler.memory import Place
from . import ast as A
from .types import SizedType

__all__ = ["ExprMixin", "PT_REGS", "ARG_REGS"]

#: x86-64 ``struct pt_regs`` offsets by register name
PT_REGS = {"r15": 0, "r14": 8, "r13": 16, "r12": 24, "bp": 32, "bx": 40, "r11": 48,
           "r10": 56, "r9": 64, "r8": 72, "ax": 80, "cx": 88, "dx": 96, "si": 104,
           "di": 112, "orig_ax": 120, "ip": 128, "cs": 136, "flags": 144, "sp": 152,
           "ss": 160}
#: the registers of arg0..arg5
ARG_REGS = ("di", "si", "dx", "cx", "r8", "r9")
_NEGATE = {"eq": "ne", "ne": "eq", "slt": "sge", "sge": "slt", "sgt": "sle", "sle": "sgt",
           "ult": "uge", "uge": "ult", "ugt": "ule", "ule": "ugt"}
_CMP = {"==": "eq", "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge"}
_ARITH = {"+": "add", "-": "sub", "*": "mul", "/": "udiv", "%": "umod", "&": "and",
          "|": "or", "^": "xor", "<<": "lsh", ">>": "rsh"}


def _size(t: SizedType) -> int:
    from .lower import _type_size
    return _type_size(t)


class ExprMixin:
    """Expression lowering (see the module docstring)."""

    # -- types ------------------------------------------------------------------------
    def int_type(self, t: Optional[SizedType]) -> T.IntType:
        """The IR integer type of a bpftrace type (64-bit unsigned for the rest)."""
        if t is not None and t.kind == "integer" and t.bits in (8, 16, 32, 64):
            return T.int_type(t.bits // 8, t.signed)
        if t is not None and t.kind in ("sum", "min", "max", "avg", "count"):
            return T.i64
        return T.u64

    def int_arg(self, e: A.Expr) -> Operand:
        """``e`` as a 64-bit integer operand (sign kept)."""
        v = self.expr(e)
        if isinstance(v, Place):
            raise self.error("an integer is needed here", e)
        t = self.int_type(e.ty)
        return self.convert(self.convert(v, t), T.i64 if t.signed else T.u64)

    def space_of(self, t: SizedType) -> str:
        """Where a pointer of type ``t`` points (``user`` or ``kernel``)."""
        if t.addrspace == "user":
            return "user"
        if t.addrspace == "kernel":
            return "kernel"
        return "user" if self.provider in ("uprobe", "uretprobe", "usdt") else "kernel"

    def frame_place(self, size: int) -> Place:
        """A zeroed area of the frame."""
        p = Place(None, self.alloc(size), T.u8[size], "stack")
        self.zero(p)
        return p

    def store_bytes(self, p: Place, data: bytes) -> None:
        """Literal bytes into frame place ``p``."""
        pos = 0
        while pos < len(data):
            step = 4 if len(data) - pos >= 4 and (p.off + pos) % 4 == 0 else 1
            chunk = int.from_bytes(data[pos:pos + step], "little")
            if chunk >= 1 << (8 * step - 1):
                chunk -= 1 << (8 * step)
            if chunk:
                self.emit("store", base=p.base, off=p.off + pos, size=step, a=chunk)
            pos += step

    # -- expressions ------------------------------------------------------------------
    def expr(self, e: A.Expr) -> Any:
        """Lower ``e``: an operand or a place."""
        if isinstance(e, A.Integer):
            return self.load_const(e.value, e, T.i64 if e.value < 0 or e.value >= 1 << 31 else None)
        if isinstance(e, A.String):
            size = max(_size(e.ty), len(e.value) + 1)
            p = self.frame_place(size)
            self.store_bytes(p, e.value)
            return p
        if isinstance(e, A.PositionalParameter):
            return self.positional(e)
        if isinstance(e, A.Builtin):
            return self.builtin(e)
        if isinstance(e, A.Variable):
            v = self.vars.get(e.name)
            if v is None:
                raise self.error(f"variable {e.name} used before assignment", e)
            return v
        if isinstance(e, A.Map):
            return self.map_read(e)
        if isinstance(e, A.Call):
            return self.call(e)
        if isinstance(e, A.Binop):
            return self.binop(e)
        if isinstance(e, A.Unop):
            return self.unop(e)
        if isinstance(e, A.Ternary):
            return self.ternary(e)
        if isinstance(e, A.FieldAccess):
            return self.field_access(e)
        if isinstance(e, A.TupleAccess):
            p = self.expr(e.expr)
            f = e.expr.ty.fields[e.index]
            return self.load_at(p.at(f.offset, T.u8[max(f.type.size, 1)]), f.type, e)
        if isinstance(e, A.ArrayAccess):
            return self.array_access(e)
        if isinstance(e, A.Cast):
            return self.cast(e)
        if isinstance(e, A.Tuple):
            p = self.frame_place(max(e.ty.size, 1))
            for f, x in zip(e.ty.fields, e.elems):
                self.open_scope()            # the element's temporaries: until copied
                self.store_elem(p.at(f.offset, T.u8[max(f.type.size, 1)]), x, f.type)
                self.close_scope()
            return p
        if isinstance(e, A.Identifier):
            v = getattr(e, "value", None)
            if isinstance(v, int):
                return self.load_const(v, e, T.i64 if v < 0 or v >= 1 << 31 else None)
        raise self.error(f"{type(e).__name__} expressions are not supported yet", e)

    def store_elem(self, dst: Place, e: A.Expr, t: SizedType) -> None:
        """A tuple element: integers with their own size, aggregates copied."""
        v = self.expr(e)
        if isinstance(v, Place):
            self.copy(dst, v, e)
        else:
            it = self.int_type(t)
            self.emit("store", base=dst.base, off=dst.off, size=it.bits // 8,
                      a=self.materialize(self.convert(v, it), it))

    def load_at(self, p: Place, t: SizedType, node: Any) -> Any:
        """The value of type ``t`` at ``p``: a number, or the place itself."""
        if t.kind == "integer" and t.bits in (8, 16, 32, 64):
            return self.read(Place(p.base, p.off, self.int_type(t), p.space), node)
        if t.kind == "integer":
            return self.read(Place(p.base, p.off, T.u8, p.space), node)
        if t.kind == "pointer" or t.kind in ("ksym", "kstack", "ustack", "username",
                                             "probe", "strerror"):
            return self.read(Place(p.base, p.off, T.u64, p.space), node)
        return Place(p.base, p.off, T.u8[max(_size(t), 1)], p.space)

    def positional(self, e: A.PositionalParameter) -> Any:
        params = self.mb.opts.params
        if e.is_count:
            return len(params)
        text = params[e.n - 1] if e.n <= len(params) else ""
        if e.ty.kind == "integer":
            from .semantic import stoll
            v = stoll(text) if text else 0
            return self.load_const(v or 0, e, T.i64 if (v or 0) < 0 or (v or 0) >= 1 << 31 else None)
        p = self.frame_place(max(_size(e.ty), len(text) + 1))
        self.store_bytes(p, text.encode("latin-1", "replace"))
        return p

    # -- builtins ---------------------------------------------------------------------
    def helper_call(self, name: str, *args: Any, t: T.IntType = T.u64) -> VReg:
        dst = self.vreg(t)
        self.emit("helper", dst=dst, name=name, args=tuple(args))
        return dst

    def ctx_reg(self, name: str) -> VReg:
        """A ``pt_regs`` register of the context (kprobes, uprobes, perf events)."""
        v = self.vreg(T.u64)
        self.emit("load", dst=v, base=self.ctx.reg, off=PT_REGS[name], size=8)
        return v

    def builtin(self, e: A.Builtin) -> Any:
        n = e.name
        if n in ("pid", "tid"):
            v = self.helper_call("get_current_pid_tgid")
            if n == "pid":
                r = self.vreg(T.u64)
                self.emit("binop", name="rsh", dst=r, a=v, b=32)
                return r
            r = self.vreg(T.u32)
            self.emit("norm", dst=r, a=v)
            return VReg(r.id, T.u64)
        if n in ("uid", "gid", "username"):
            v = self.helper_call("get_current_uid_gid")
            if n == "gid":
                r = self.vreg(T.u64)
                self.emit("binop", name="rsh", dst=r, a=v, b=32)
                return r
            r = self.vreg(T.u32)
            self.emit("norm", dst=r, a=v)
            return VReg(r.id, T.u64)
        if n == "nsecs":
            return self.helper_call("ktime_get_ns")
        if n == "elapsed":
            now = self.helper_call("ktime_get_ns")
            ref = self.mb.elapsed_ref()
            off = self.temp("akey", 4)
            self.emit("store", base=None, off=off, size=4, a=0)
            ptr = self.map_lookup(ref, FrameAddr(off))
            out = self.vreg(T.u64, local=True)
            end = self.label("el")
            self.emit("mov", dst=out, a=0)
            self.emit("branch", name="eq", a=ptr, b=0, target=end)
            start = self.vreg(T.u64)
            self.emit("load", dst=start, base=ptr, off=0, size=8)
            self.emit("mov", dst=out, a=now)
            self.emit("binop", name="sub", dst=out, a=out, b=start)
            self.emit("label", name=end)
            return out
        if n == "cpu":
            return self.helper_call("get_smp_processor_id")
        if n == "numaid":
            return self.helper_call("get_numa_node_id")
        if n == "rand":
            return self.helper_call("get_prandom_u32")
        if n == "cgroup":
            return self.helper_call("get_current_cgroup_id")
        if n == "curtask":
            return self.helper_call("get_current_task")
        if n == "comm":
            p = self.frame_place(16)
            self.emit("helper", name="get_current_comm", args=(FrameAddr(p.off), 16))
            return p
        if n == "args" or n == "ctx":
            return VReg(self.ctx.reg.id, T.u64, True)
        if n.startswith("arg") and n[3:].isdigit():
            if self.provider == "usdt":
                return self.usdt_arg(int(n[3:]), e)         # type: ignore[attr-defined]
            return self.ctx_reg(ARG_REGS[int(n[3:])])
        if n.startswith("sarg") and n[4:].isdigit():
            sp = self.ctx_reg("sp")
            addr = self.vreg(T.u64)
            self.emit("mov", dst=addr, a=sp)
            self.emit("binop", name="add", dst=addr, a=addr, b=8 * (int(n[4:]) + 1))
            return self.read(Place(addr, 0, T.u64, self.space_of(e.ty)), e)
        if n == "retval":
            return self.ctx_reg("ax")
        if n == "func":
            ip = self.ctx_reg("ip")
            if e.ty.kind == "usym":
                return self.usym_place(ip)
            return ip
        if n == "probe":
            return self.mb.probe_id(self.probe_name)
        if n == "cpid":
            return self.mb.opts.extras.get("cpid", 0)
        if n in ("kstack", "ustack"):
            return self.stack(e.ty)
        raise self.error(f"builtin {n} is not supported yet", e)

    def usym_place(self, addr: Operand) -> Place:
        """A usym value: the address and the process id (symbolized in user space)."""
        p = self.frame_place(16)
        self.emit("store", base=None, off=p.off, size=8, a=self.materialize(addr, T.u64))
        pid = self.helper_call("get_current_pid_tgid")
        self.emit("binop", name="rsh", dst=pid, a=pid, b=32)
        self.emit("store", base=None, off=p.off + 8, size=8, a=pid)
        return p

    def stack(self, t: SizedType) -> VReg:
        """A stack id (low 32 bits; ustack: the pid above), or -1 in the id for none."""
        kernel = t.kind == "kstack"
        ref = self.mb.stack_ref(kernel, t.stack_limit)
        sid = self.stack_id(ref, self.ctx.reg, not kernel)
        low32 = self.vreg(T.u32)
        self.emit("norm", dst=low32, a=sid)
        out = self.vreg(T.u64)
        self.emit("mov", dst=out, a=VReg(low32.id, T.u64))
        if not kernel:
            pid = self.helper_call("get_current_pid_tgid")
            self.emit("binop", name="rsh", dst=pid, a=pid, b=32)
            self.emit("binop", name="lsh", dst=pid, a=pid, b=32)
            self.emit("binop", name="or", dst=out, a=out, b=pid)
        return out

    # -- operators --------------------------------------------------------------------
    def cond_of(self, op: str, signed: bool) -> str:
        c = _CMP[op]
        if c in ("eq", "ne"):
            return c
        return ("s" if signed else "u") + c

    def branch_on(self, e: A.Expr, target: str, when: bool) -> None:
        """Jump to ``target`` when the truth of ``e`` is ``when``."""
        if isinstance(e, A.Unop) and e.op == "!":
            self.branch_on(e.expr, target, not when)
            return
        if isinstance(e, A.Binop) and e.op in ("&&", "||"):
            is_and = e.op == "&&"
            if is_and != when:
                # (a && b) false: a false or b false; (a || b) true: a true or b true
                self.branch_on(e.left, target, when)
                self.branch_on(e.right, target, when)
            else:
                skip = self.label("sc")
                self.branch_on(e.left, skip, not when)
                self.branch_on(e.right, target, when)
                self.emit("label", name=skip)
            return
        if isinstance(e, A.Binop) and e.op in _CMP:
            lt, rt = e.left.ty, e.right.ty
            if lt.kind != "integer" and lt.kind != "pointer" and e.op in ("==", "!="):
                self.string_equal(e, target, when if e.op == "==" else not when)
                return
            a = self.int_arg(e.left)
            b = self.int_arg(e.right)
            signed = lt.signed and rt.signed and lt.kind == "integer" and rt.kind == "integer"
            c = self.cond_of(e.op, signed)
            if not when:
                c = _NEGATE[c]
            a = self.materialize(a, T.i64 if signed else T.u64)
            if isinstance(b, int) and not 0 <= b < 1 << 31:
                b = self.materialize(b, T.i64)
            self.emit("branch", name=c, a=a, b=b, target=target)
            return
        v = self.expr(e)
        if isinstance(v, Place):
            raise self.error("a condition must be an integer", e)
        v = self.materialize(self.convert(v, self.int_type(e.ty)))
        self.emit("branch", name="ne" if when else "eq", a=v, b=0, target=target)

    def string_equal(self, e: A.Binop, target: str, when: bool) -> None:
        """Jump when (the two strings are equal) is ``when``: bytes compared up to the
        first NUL or the shorter size."""
        left, right = e.left, e.right
        if isinstance(left, A.String) and not isinstance(right, A.String):
            left, right = right, left
        a = self.expr(left)
        if isinstance(right, A.String):
            data = right.value.split(b"\0")[0] + b"\0"
            n = min(a.type.count, len(data))
            if len(data) > a.type.count:
                data = data[:a.type.count]      # a full buffer equals its prefix
            self.string_compare(a, data[:n], when, target, e)
            return
        b = self.expr(right)
        a = self.readable_string(a, "strcmp", e)
        b = self.readable_string(b, "strcmp2", e)
        n = min(a.type.count, b.type.count)
        fail = target if not when else self.label("sne")
        done = self.label("seq")
        for i in range(n):
            x = self.read(a.at(i, T.u8), e)
            y = self.read(b.at(i, T.u8), e)
            self.emit("branch", name="ne", a=x, b=y, target=fail)
            self.emit("branch", name="eq", a=x, b=0, target=done)
        self.emit("label", name=done)
        if when:
            self.emit("jump", target=target)
            self.emit("label", name=fail)

    def bool_of(self, e: A.Expr) -> VReg:
        """0/1 of a condition."""
        return self.bool_value(lambda target, when: self.branch_on(e, target, when))

    def binop(self, e: A.Binop) -> Any:
        if e.op in _CMP or e.op in ("&&", "||"):
            return VReg(self.bool_of(e).id, T.u64)
        a = self.int_arg(e.left)
        b = self.int_arg(e.right)
        rt = self.int_type(e.ty)
        dst = self.vreg(T.i64 if rt.signed else T.u64)
        self.emit("mov", dst=dst, a=a)
        if e.op in ("/", "%"):
            ok = self.label("div")
            bb = self.materialize(b, T.u64)
            self.emit("branch", name="ne", a=bb, b=0, target=ok)
            # bpftrace 0.17 divides by zero as LLVM's udiv does in BPF: the result is 0
            self.emit("mov", dst=bb, a=1)
            self.emit("mov", dst=dst, a=0) if e.op == "/" else None
            self.emit("label", name=ok)
            b = bb
        if isinstance(b, int) and not 0 <= b < 1 << 31:
            b = self.materialize(b, T.i64)
        self.emit("binop", name=_ARITH[e.op], dst=dst, a=dst, b=b)
        return self.convert(dst, rt)

    def unop(self, e: A.Unop) -> Any:
        op = e.op
        if op == "!":
            r = self.vreg(T.u64)
            v = self.bool_of(e.expr)
            self.emit("mov", dst=r, a=v)
            self.emit("binop", name="xor", dst=r, a=r, b=1)
            return r
        if op in ("-", "~"):
            v = self.int_arg(e.expr)
            r = self.vreg(T.i64)
            self.emit("mov", dst=r, a=v)
            if op == "-":
                self.emit("neg", dst=r, a=r)
            else:
                self.emit("binop", name="xor", dst=r, a=r, b=-1)
            return self.convert(r, self.int_type(e.ty))
        if op == "*":
            p = self.int_arg(e.expr)
            pt = e.expr.ty
            elem = pt.elem if pt.kind == "pointer" and pt.elem is not None else e.ty
            space = "ctx" if pt.ctx else self.space_of(pt)
            base = self.materialize(p, T.u64)
            return self.load_at(Place(base, 0, T.u8[max(_size(elem), 1)], space), elem, e)
        if op in ("++", "--"):
            return self.increment(e)
        raise self.error(f"operator {op} is not supported yet", e)

    def increment(self, e: A.Unop) -> Any:
        delta = 1 if e.op == "++" else -1
        target = e.expr
        if isinstance(target, A.Variable):
            reg = self.vars[target.name]
            old = self.vreg(reg.type)
            self.emit("mov", dst=old, a=reg)
            self.emit("binop", name="add", dst=reg, a=reg, b=delta)
            self.emit("norm", dst=reg, a=reg) if reg.type.bits < 64 else None
            return old if e.is_post else reg
        if isinstance(target, A.Map):
            lay = self.mb.layouts[target.name]
            if lay.kind in ("count", "sum"):
                self.add_to(self.mb.map_ref(target.name), self.map_key(target, lay), delta)
                return 0
            old = self.map_read(target)
            new = self.vreg(T.i64)
            self.emit("mov", dst=new, a=old)
            self.emit("binop", name="add", dst=new, a=new, b=delta)
            key = self.map_key(target, lay)
            voff = self.temp("incval", 8)
            self.emit("store", base=None, off=voff, size=8, a=new)
            self.map_update_elem(self.mb.map_ref(target.name), key, FrameAddr(voff))
            return old if e.is_post else new
        raise self.error("++/-- needs a variable or a map", e)

    def ternary(self, e: A.Ternary) -> Any:
        other, end = self.label("tf"), self.label("tend")
        if e.ty.kind in ("integer", "pointer") or e.ty.kind == "none":
            out = self.vreg(self.int_type(e.ty), local=True)
            self.branch_on(e.cond, other, False)
            if e.ty.kind != "none":
                self.convert_into(out, self.convert(self.int_arg(e.left), out.type))
            else:
                self.expr(e.left)
            self.emit("jump", target=end)
            self.emit("label", name=other)
            if e.ty.kind != "none":
                self.convert_into(out, self.convert(self.int_arg(e.right), out.type))
            else:
                self.expr(e.right)
            self.emit("label", name=end)
            return out
        size = max(_size(e.ty), 1)
        out_p = Place(None, self.alloc(size), T.u8[size], "stack")
        self.zero(out_p)
        self.branch_on(e.cond, other, False)
        self.copy(out_p, self.expr(e.left), e)
        self.emit("jump", target=end)
        self.emit("label", name=other)
        self.copy(out_p, self.expr(e.right), e)
        self.emit("label", name=end)
        return out_p

    # -- memory -----------------------------------------------------------------------
    def record_place(self, e: A.Expr) -> Place:
        """Where the record value ``e`` lives."""
        v = self.expr(e)
        if isinstance(v, Place):
            return v
        raise self.error("a record is needed here", e)

    def field_access(self, e: A.FieldAccess) -> Any:
        base_t = e.expr.ty
        if e.arrow or base_t.kind == "pointer":
            rec = base_t.elem
            p = self.int_arg(e.expr)
            space = "ctx" if base_t.ctx else self.space_of(base_t)
            if space == "ctx":
                base = self.ctx.reg
            else:
                base = self.materialize(p, T.u64)
            place = Place(base, 0, T.u8[max(rec.size, 1)], space)
        else:
            rec = base_t
            place = self.record_place(e.expr)
        f = rec.struct.field(e.field)
        if getattr(base_t, "is_tparg", False) and self.provider == "tracepoint":
            f = self.tracepoint_field(f, e)
        fp = Place(place.base, place.off + f.offset, T.u8[max(f.type.size, 1)], place.space)
        if f.is_data_loc:
            loc = self.read(Place(fp.base, fp.off, T.u32, fp.space), e)
            ptr = self.vreg(T.u64)
            self.emit("mov", dst=ptr, a=loc)
            self.emit("binop", name="and", dst=ptr, a=ptr, b=0xFFFF)
            self.emit("binop", name="add", dst=ptr, a=ptr, b=VReg(self.ctx.reg.id, T.u64))
            return ptr
        if f.bitfield is not None:
            bf = f.bitfield
            raw = self.read(Place(fp.base, fp.off, T.int_type(bf.read_bytes, False)
                                  if bf.read_bytes in (1, 2, 4, 8) else T.u64, fp.space), e)
            r = self.vreg(T.u64)
            self.emit("mov", dst=r, a=raw)
            if bf.rshift:
                self.emit("binop", name="rsh", dst=r, a=r, b=bf.rshift)
            self.emit("binop", name="and", dst=r, a=r, b=self.load_const(bf.mask, e, T.u64)
                      if bf.mask >= 1 << 31 else bf.mask)
            return self.convert(r, self.int_type(f.type))
        return self.load_at(fp, f.type, e)

    def tracepoint_field(self, f: Any, e: A.FieldAccess) -> Any:
        """``args->field`` in the record of this program's own tracepoint: a probe with
        several tracepoints gets one program each, and the field may sit at another
        offset in each (``filename`` of sys_enter_statx and sys_enter_newstat)."""
        st = self.mb.front.analysis.structs.tracepoint(self.ap.target, self.ap.func)
        try:
            mine = st.field(e.field) if st is not None else None
        except KeyError:
            mine = None
        if mine is None:
            return f
        if mine.type.size != f.type.size or mine.type.kind != f.type.kind:
            raise self.error(f"args->{e.field} has another type in "
                             f"{self.ap.target}:{self.ap.func}", e)
        return mine

    def array_access(self, e: A.ArrayAccess) -> Any:
        t = e.expr.ty
        elem = t.elem
        esize = max(_size(elem), 1) if elem.kind != "integer" else max(elem.size, 1)
        if t.kind == "pointer":
            p = self.int_arg(e.expr)
            space = self.space_of(t)
        else:
            base = self.expr(e.expr)
            if isinstance(e.index, A.Integer):
                return self.load_at(base.at(e.index.value * esize, T.u8[esize]), elem, e)
            p = self.addr_reg(base)
            space = "kernel" if base.space in ("stack", "map", "ctx") else base.space
        i = self.int_arg(e.index)
        addr = self.vreg(T.u64)
        self.emit("mov", dst=addr, a=i)
        self.emit("binop", name="mul", dst=addr, a=addr, b=esize)
        self.emit("binop", name="add", dst=addr, a=addr, b=p)
        return self.load_at(Place(addr, 0, T.u8[esize], space), elem, e)

    def cast(self, e: A.Cast) -> Any:
        v = self.expr(e.expr)
        if isinstance(v, Place):
            if e.ty.kind == "integer":
                return self.read(Place(v.base, v.off, self.int_type(e.ty), v.space), e)
            return v
        if e.ty.kind == "integer":
            src = self.int_type(e.expr.ty)
            return self.convert(self.convert(v, src), self.int_type(e.ty))
        return self.convert(v, T.u64)

    # -- calls ------------------------------------------------------------------------
    def call(self, e: A.Call) -> Any:
        from .lower_calls import lower_call
        return lower_call(self, e)

    def async_call(self, e: A.Call) -> None:
        from .lower_calls import lower_call
        lower_call(self, e)
