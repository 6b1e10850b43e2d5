"""Probe-type contexts for :mod:`.lower` (a mixin of its ``ProbeLowering``): where
each probe type finds its arguments, as bpftrace 0.17 reads them.

* usdt ``argN``: from the probe site's note (register, memory at register +
  displacement (+ index * scale), or a constant), sign- or zero-extended from its size;
  every site is its own program (0.17 compiles and counts each location).
* kfunc/kretfunc ``args->x`` and ``retval``, rawtracepoint ``argN``: 64-bit slots of the
  context; uprobe ``args->x`` (DWARF): the parameter's register.
* iter: context fields are read directly and a NULL one ends the program (the
  iterator's last call); ``printf`` writes to the iterator with ``bpf_seq_printf``.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from ..compiler import types as T
from ..compiler.errors import CompileError
from ..compiler.ir import FrameAddr, PtrType
from ..compiler.memory import CtxRef, Place
from . import ast as A
from .types import SizedType

__all__ = ["ProbeContextMixin"]


class ProbeContextMixin:
    """Probe-type contexts (see the module docstring); mixed before
    :class:`~.lower_exprs.ExprMixin`."""

    def usdt_arg(self, i: int, node: Any) -> Any:
        """``argN`` of a usdt probe: read as its site's note says (a register, memory
        at register + displacement (+ index * scale), or a constant), then sign- or
        zero-extended to 64 bits from its size, as 0.17 does."""
        from ..compiler.context import Context, CtxField
        site = getattr(self.ap, "usdt_site", None)
        if site is None or i >= len(site.args):
            ns = self.ap.ns
            err = CompileError(f"couldn't get argument {i} for {self.ap.target}:{ns}:"
                               f"{self.ap.func}", None)
            err.status = 254                         # type: ignore[attr-defined]
            raise err
        a = site.args[i]
        t = T.int_type(a.size, a.signed) if a.size in (1, 2, 4, 8) else T.u64
        if a.kind == "const":
            f = CtxField(f"arg{i}", "const", t.wrap(a.value), t)
        elif a.pt_regs_offset is None:
            raise self.error(f"usdt argument {i} ({a.text}) uses register {a.reg!r}, "
                             "which cannot be read from pt_regs", node)
        elif a.kind == "reg":
            f = CtxField(f"arg{i}", "load", a.pt_regs_offset, t)
        else:
            from ..elf.usdt import PT_REGS_OFFSETS, _canonical_reg
            index = PT_REGS_OFFSETS.get(_canonical_reg(a.index), -1) if a.index else -1
            f = CtxField(f"arg{i}", "umem", 0, (t, a.pt_regs_offset, a.offset, index,
                                                a.scale))

        class _Kind:
            def context(self) -> Context:
                return Context("usdt", [f])

        saved, self.kind = self.kind, _Kind()
        try:
            v = self.ctx_field(self.ctx, f"arg{i}", node)
        finally:
            self.kind = saved
        return self.convert(self.convert(v, t), T.i64 if a.signed else T.u64)

    # -- probe contexts (kfunc/kretfunc, iter, rawtracepoint, uprobe args) -------------
    def builtin(self, e: A.Builtin) -> Any:
        """Builtins whose place depends on the probe type; the rest as
        :meth:`ExprMixin.builtin`: kfunc/kretfunc ``retval`` is the slot after the
        arguments (the context is an array of 64-bit slots), rawtracepoint ``argN`` the
        N-th slot."""
        n = e.name
        if n == "retval" and self.provider in ("kfunc", "kretfunc"):
            return self.ctx_slot(getattr(e.ty, "funcarg_idx", 0), e.ty, e)
        if n.startswith("arg") and n[3:].isdigit() and self.provider == "rawtracepoint":
            return self.ctx_slot(int(n[3:]), e.ty, e)
        return super().builtin(e)  # type: ignore[misc]

    def ctx_slot(self, i: int, t: SizedType, node: Any) -> Any:
        """The 64-bit context slot ``i`` read directly (tracing and raw tracepoint
        programs), as a value of ``t``."""
        raw = self.read(Place(self.ctx.reg, 8 * i, T.u64, "ctx"), node)
        if t.kind == "integer" and t.bits in (8, 16, 32, 64):
            return self.convert(raw, self.int_type(t))
        return raw

    def field_access(self, e: A.FieldAccess) -> Any:
        """``args->name`` of kfunc/kretfunc probes (context slot of the parameter) and
        of uprobes (the parameter's register); an iter context field, which ends the
        program when it is NULL (the iterator's last call), as 0.17 does."""
        base_t = e.expr.ty
        if getattr(base_t, "is_funcarg", False) and isinstance(e.expr, A.Builtin):
            idx = getattr(e.ty, "funcarg_idx", 0)
            if self.provider in ("kfunc", "kretfunc"):
                return self.ctx_slot(idx, e.ty, e)
            from .lower_exprs import ARG_REGS
            raw = self.ctx_reg(ARG_REGS[idx])
            if e.ty.kind == "integer" and e.ty.bits in (8, 16, 32, 64):
                return self.convert(raw, self.int_type(e.ty))
            return raw
        v = super().field_access(e)  # type: ignore[misc]
        if self.provider == "iter" and getattr(base_t, "ctx", False) \
                and not isinstance(v, Place):
            self.emit("branch", name="eq", a=self.materialize(v, T.u64), b=0,
                      target=self.iter_end())
        return v

    def iter_end(self) -> str:
        """A label that returns 0 (iter programs stop on a NULL context field)."""
        if not hasattr(self, "_iter_end"):
            self._iter_end = self.label("iterend")
        return self._iter_end

    def seq_printf(self, fmt: str, args: List[A.Expr]) -> None:
        """``printf`` in an iter probe: ``bpf_seq_printf`` into the iterator's output
        (every argument one 64-bit slot; strings by address), as 0.17 does."""
        values = [self.expr(a) for a in args]
        data = self.temp("seqdata", max(8 * len(args), 8))
        for i, (v, a) in enumerate(zip(values, args)):
            if isinstance(v, Place):
                v = self.addr_reg(v)
            else:
                et = self.int_type(a.ty) if a.ty.kind == "integer" else T.u64
                v = self.convert(self.convert(v, et), T.i64 if et.signed else T.u64)
            self.emit("store", base=None, off=data + 8 * i, size=8,
                      a=self.materialize(v, T.u64))
        raw = fmt.encode("latin-1") + b"\0"
        fp = self.frame_place((len(raw) + 7) // 8 * 8)
        self.store_bytes(fp, raw)
        meta = self.read(Place(self.ctx.reg, 0, T.u64, "ctx"), None)
        seq = self.vreg(T.u64)
        self.emit("load", dst=seq, base=meta, off=0, size=8)
        self.helper_call("seq_printf", seq, FrameAddr(fp.off), len(raw),
                         FrameAddr(data) if args else 0, 8 * len(args))

    def compile_watch_setup(self, wp_id: int) -> Any:
        """The uprobe program of a function-form watchpoint (``watchpoint:FUNC+argN``),
        as 0.17 builds it: unless the watchpoint is async, stop the traced process
        (``bpf_send_signal(SIGSTOP)``, Linux 5.3; the runtime continues it once the
        breakpoint is set), then send a ``watchpoint`` record holding argument N, the
        address the runtime puts the hardware breakpoint of watchpoint ``wp_id`` on."""
        import signal as _signal
        from .lower_exprs import ARG_REGS
        from .types import create_uint64
        reg = self.vreg(PtrType(None, "ctx"), local=True)
        self.emit("param", dst=reg, a=0)
        self.ctx = CtxRef(reg)
        if not self.ap.is_async:
            self.emit("helper", dst=self.vreg(T.i64), name="send_signal",
                      args=(self.materialize(self.convert(int(_signal.SIGSTOP), T.u32),
                                             T.u32),))
        addr = self.ctx_reg(ARG_REGS[self.ap.address])
        site = self.mb.add_site("watchpoint", self.index, None, [create_uint64()], wp_id)
        off = self.alloc(site.size)
        self.emit("store", base=None, off=off, size=8, a=site.id)
        self.emit("store", base=None, off=off + 8, size=8, a=addr)
        self.ring_output(self.mb.events, FrameAddr(off), site.size)
        self.emit("ret", a=0)
        return self.fn

    def send(self, kind: str, fmt: Optional[str], args: List[A.Expr],
             types: Optional[List[SizedType]] = None, extra: Any = None) -> None:
        """An async action; ``printf`` of iter probes goes to the iterator instead."""
        if kind == "printf" and self.provider == "iter":
            self.seq_printf(fmt or "", args)
            return
        self.send_record(kind, fmt, args, types, extra)


def _usdt_locations(aps: List[Any], env: Any, opts: Any) -> List[Any]:
    """Each usdt attach point becomes one per site of its probe (0.17 counts and
    compiles every location on its own: their arguments may live in different
    places); ``usdt_index``/``usdt_site`` say which."""
    out: List[Any] = []
    for ap in aps:
        if ap.kind != "usdt":
            out.append(ap)
            continue
        from .attach import usdt_sites
        pid = opts.pid or opts.extras.get("cpid", 0) or 0
        try:
            sites = usdt_sites(ap, pid)
        except (OSError, ValueError, LookupError):
            sites = []
        for i, site in enumerate(sites or [None]):
            c = ap.copy()
            c.usdt_index, c.usdt_site = i, site       # type: ignore[attr-defined]
            out.append(c)
    return out


def _watch_func(ap: Any) -> bool:
    """Is ``ap`` a function-form watchpoint (``watchpoint:FUNC+argN:LEN:MODE``)?"""
    return ap.kind in ("watchpoint", "asyncwatchpoint") and bool(ap.func)


def _watch_setup(mb: Any, index: int, probe: A.Probe, ap: Any, body: str,
                 walks: Dict[str, int], wp_id: int, section: str) -> Any:
    """The setup uprobe of watchpoint ``wp_id`` (its breakpoint runs program ``body``):
    one of bpftrace's probes, counted and attached with the uprobes."""
    from ..compiler.backend import link_program, lower_function
    from .lower import LoweredProgram, ProbeLowering
    setup = ap.copy()
    setup.wp_setup = True                                    # type: ignore[attr-defined]
    name = f"{body}_wp"
    low = ProbeLowering(mb, index, probe, setup, name)
    insns = link_program([lower_function(low.compile_watch_setup(wp_id), walks)])
    return LoweredProgram(name, index, [setup], "BPF_PROG_TYPE_KPROBE", "uprobe", insns,
                          section)
