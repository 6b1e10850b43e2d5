"""Attach decorators: each names where a program runs, which gives its program type,
its context fields (:mod:`pybpf.compiler.context`) and how :func:`pybpf.dsl.load`
attaches it.

==========================================  ===============================================
decorator                                   context fields (``ctx.<name>``)
==========================================  ===============================================
``@tracepoint("syscalls:sys_enter_openat")`` the event's fields (``format`` file)
``@raw_tracepoint("sched_switch")``         ``arg0``.., and the BTF names (``next``, ...)
``@tp_btf("sched_switch")``                 the same, typed pointers (Linux 5.5)
``@kprobe("do_unlinkat")``                  arguments by name (BTF), ``arg0``..``arg5``
``@kretprobe("do_unlinkat")``               ``retval`` too
``@uprobe("c:malloc")``                     ``arg0``..``arg5`` (``"binary:symbol"``)
``@uretprobe("bash:readline")``             ``retval``
``@usdt("binary:provider:name")``           ``arg0``.. as the probe's notes describe
``@fentry("do_unlinkat")``                  arguments by name (Linux 5.5)
``@fexit("do_unlinkat")``                   arguments and ``retval``
``@perf_event(frequency=49)``               ``sample_period``, ``addr`` (CPU sampling)
``@socket_filter``, ``@xdp``, ``@tc``       ``__sk_buff`` / ``xdp_md`` fields
==========================================  ===============================================

Each decorator returns the function unchanged, with its :class:`ProgramKind` recorded
(:func:`kinds_of`). Decorators stack: one function attached at several points becomes
one program per point, each compiled against its own context (``args.pid`` is at a
different offset in each tracepoint's record). :func:`retarget` replaces a function's
attach points at run time (a tool that finds its target from its arguments).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, TypeVar

if TYPE_CHECKING:         # contexts are built when a program is compiled: a cached tool's
    from ..compiler.context import Context     # start does not import them

__all__ = [
    "ProgramKind", "tracepoint", "raw_tracepoint", "tp_btf", "kprobe", "kretprobe",
    "uprobe", "uretprobe", "usdt", "fentry", "fexit", "perf_event", "socket_filter", "xdp",
    "tc", "kind_of", "kinds_of", "program_name", "retarget", "DecoratorError",
]

F = TypeVar("F", bound=Callable[..., Any])


class ProgramKind:
    """Where a program runs: ``decorator`` name, ``target`` text, program ``type`` (a
    :class:`pybpf.syscall.bpf.ProgType` name), ``section`` (its libbpf ``SEC()`` name) and
    keyword ``options`` for attaching."""

    def __init__(self, decorator: str, target: str, type: str, section: str,
                 **options: Any) -> None:
        self.decorator = decorator
        self.target = target
        self.type = type
        self.section = section
        self.options = options
        self._context: Optional[Context] = None

    def __repr__(self) -> str:
        return f"@{self.decorator}({self.target!r})" if self.target else f"@{self.decorator}"

    @property
    def tracing(self) -> bool:
        """True for BTF-attached programs loaded against a target (fentry/fexit/tp_btf)."""
        return self.decorator in ("fentry", "fexit", "tp_btf")

    def context(self) -> Context:
        """The context description (built on first use: it may read tracefs or BTF)."""
        if self._context is None:
            self._context = self._build_context()
            self._context.listing = self._listing()
        return self._context

    def _listing(self) -> str:
        """The ``pybpf list -v`` command showing this attach point's fields, or ""."""
        d, t = self.decorator, self.target
        if d == "tracepoint":
            return f"pybpf list -v 'tracepoint:{t}'"
        if d in ("raw_tracepoint", "tp_btf"):
            return f"pybpf list -v 'rawtracepoint:{t.partition(':')[2] or t}'"
        if d in ("kprobe", "kretprobe", "fentry", "fexit") and ":" not in t:
            return f"pybpf list -v 'fentry:{t.split('+')[0]}'"
        return ""

    def _proto(self) -> Any:
        from ..btf import prototype, vmlinux
        from ..btf.errors import BTFError
        try:
            return prototype(vmlinux(), self.target.split("+")[0])
        except (BTFError, OSError, LookupError):
            return None

    def _tp_proto(self) -> Any:
        from ..btf import vmlinux
        from ..btf.errors import BTFError
        from ..btf.resolve import tracepoint_prototype
        try:
            return tracepoint_prototype(vmlinux(), self.target.split(":")[-1])
        except (BTFError, OSError, LookupError):
            return None

    def _build_context(self) -> Context:
        from ..compiler.context import (
            PERF_EVENT_FIELDS, SKB_FIELDS, XDP_FIELDS, fixed_context, pt_regs_context,
            slot_context, tracepoint_context, usdt_context,
        )
        from ..compiler.types import u64
        d, t = self.decorator, self.target
        if d == "tracepoint":
            group, _, name = t.partition(":")
            return tracepoint_context(group, name)
        if d in ("raw_tracepoint", "tp_btf"):
            return slot_context(f"{d} {t}", self._tp_proto())
        if d in ("kprobe", "kretprobe"):
            return pt_regs_context(f"{d} {t}", self._proto(), ret=d == "kretprobe")
        if d == "usdt":
            binary, _, probe = t.partition(":")
            return usdt_context(f"usdt {t}", binary, probe, self.options.get("pid", -1))
        if d in ("uprobe", "uretprobe"):
            return pt_regs_context(f"{d} {t}", None, ret=d == "uretprobe")
        if d in ("fentry", "fexit"):
            proto = self._proto()
            ret = proto.ret_ctx_offset if (proto is not None and d == "fexit") else None
            return slot_context(f"{d} {t}", proto, retval=ret)
        if d == "perf_event":
            return fixed_context("perf_event", PERF_EVENT_FIELDS,
                                 {n: u64 for n in PERF_EVENT_FIELDS})
        if d == "xdp":
            return fixed_context("xdp", XDP_FIELDS)
        return fixed_context(d, SKB_FIELDS)

    def check_target(self) -> None:
        """Check that the attach point exists on this kernel: a tracepoint in tracefs, a
        raw tracepoint's name, a kernel function (BTF, or ``/proc/kallsyms`` for
        kprobes). Raises :class:`~pybpf.errors.UnknownNameError` with the closest
        names, ``ValueError`` for a malformed name; ``OSError`` when the kernel's lists
        cannot be read. Other kinds (uprobes, USDT, packets) are not checked here."""
        from ..errors import UnknownNameError, close_matches
        d, t = self.decorator, self.target
        if d == "tracepoint":
            from ..tracefs import event_id
            event_id(t)
        elif d in ("raw_tracepoint", "tp_btf"):
            from ..link.raw_tracepoint import raw_tracepoint_names
            from ..tracefs import UnknownTracepointError
            name = t.partition(":")[2] if ":" in t else t
            names = raw_tracepoint_names()
            if name not in names:
                raise UnknownTracepointError("raw tracepoint", name,
                                             close_matches(name, names))
        elif d in ("kprobe", "kretprobe", "fentry", "fexit"):
            name = t.split("+")[0]
            in_btf = _btf_function(name)
            if ":" in name or in_btf:                   # "module:function": loader checks
                return
            if d.startswith("f") and in_btf is None:
                return                  # no BTF at all: loading says so, not a name
            from ..link.kprobe import kernel_functions
            funcs = kernel_functions()                  # kprobes' list; the suggestions
            if d.startswith("k") and (name in funcs or (not funcs and in_btf is None)):
                return
            raise UnknownNameError("kernel function", name,
                                   close_matches(name, sorted(funcs)),
                                   "not in the kernel's BTF" if d.startswith("f")
                                   else "not in /proc/kallsyms")

    def attach(self, prog: Any) -> Any:
        """Attach the loaded ``prog`` here; returns the link (None for programs that
        user code attaches itself: socket filters, and xdp/tc without an interface)."""
        from .. import link as L
        d, t, o = self.decorator, self.target, self.options
        if d == "tracepoint":
            return L.attach_tracepoint(prog, t)
        if d == "raw_tracepoint":
            return L.attach_raw_tracepoint(prog, t)
        if d in ("tp_btf", "fentry", "fexit"):
            return L.attach_tracing(prog)
        if d in ("kprobe", "kretprobe"):
            return L.attach_kprobe(prog, t, retprobe=d == "kretprobe")
        if d in ("uprobe", "uretprobe"):
            binary, _, symbol = t.rpartition(":")
            return L.attach_uprobe(prog, binary, symbol, retprobe=d == "uretprobe",
                                   pid=o.get("pid", -1))
        if d == "usdt":
            binary, _, probe = t.partition(":")
            return L.attach_usdt(prog, binary, probe, pid=o.get("pid", -1))
        if d == "perf_event":
            return L.attach_perf_event(prog, sample_freq=o.get("frequency", 49))
        if d == "xdp" and o.get("iface"):
            return L.attach_xdp(prog, o["iface"])
        if d == "tc" and o.get("iface"):
            return L.attach_tc(prog, o["iface"], o.get("direction", "ingress"))
        return None


def _btf_function(name: str) -> Optional[bool]:
    """True if the kernel's BTF has function ``name``, False if not, None without BTF."""
    from ..btf import vmlinux
    from ..btf.errors import BTFError
    try:
        btf = vmlinux()
    except (BTFError, OSError):
        return None
    return any(True for _ in btf.ids(name, "func"))


class DecoratorError(TypeError):
    """An attach decorator used without its parentheses or with a wrong argument;
    ``hint`` says how to write it."""

    def __init__(self, message: str, hint: str) -> None:
        self.hint = hint
        super().__init__(message)


def _target(decorator: str, value: Any, example: str) -> str:
    """``value`` if it is a string; else the decorator was used without its argument
    (``@tracepoint`` for ``@tracepoint("group:name")``): a DecoratorError saying so."""
    if isinstance(value, str):
        return value
    if callable(value):
        raise DecoratorError(f"@{decorator} is used without parentheses",
                             f"write {example}")
    raise DecoratorError(f"@{decorator} takes a string, not {value!r}", f"write {example}")


def _mark(kind: ProgramKind) -> Callable[[F], F]:
    def deco(fn: F) -> F:
        # stacked decorators (applied bottom-up) attach one function at several points:
        # each becomes its own program, compiled against that point's context
        kinds = [kind] + list(getattr(fn, "__pybpf_kinds__", ()))
        fn.__pybpf_kinds__ = kinds          # type: ignore[attr-defined]
        fn.__pybpf_kind__ = kinds[0]        # type: ignore[attr-defined]
        fn.__pybpf_program__ = True         # type: ignore[attr-defined]
        return fn
    return deco


def retarget(fn: F, *decorators: Callable[[F], F]) -> F:
    """Set ``fn``'s attach points to exactly those of ``decorators`` (replacing what its
    own decorators said): for tools that choose the point at run time,
    ``retarget(ret_probe, uretprobe(f"{path}:readline"))``."""
    for name in ("__pybpf_kinds__", "__pybpf_kind__"):
        if hasattr(fn, name):
            delattr(fn, name)
    for deco in reversed(decorators):
        fn = deco(fn)
    return fn


def kind_of(fn: Any) -> Optional[ProgramKind]:
    """The (first) :class:`ProgramKind` of a decorated function, or None."""
    return getattr(fn, "__pybpf_kind__", None)


def kinds_of(fn: Any) -> List[ProgramKind]:
    """Every attach point of a decorated function, in source order."""
    return list(getattr(fn, "__pybpf_kinds__", ()))


def program_name(fn_name: str, kind: ProgramKind, several: bool) -> str:
    """The program's name: the function's, with the attach point's last part appended
    when the function has several (``kill_entry`` + ``sys_enter_tkill``)."""
    if not several:
        return fn_name
    tail = re.split(r"[:/]", kind.target)[-1] if kind.target else kind.decorator
    return f"{fn_name}__{re.sub(r'[^A-Za-z0-9_]', '_', tail)}"


def tracepoint(event: str) -> Callable[[F], F]:
    """Run on tracepoint ``"group:name"`` (perf event attachment, Linux 4.7)."""
    event = _target("tracepoint", event, '@tracepoint("syscalls:sys_enter_openat")')
    group, _, name = event.partition(":")
    if not group or not name:
        raise DecoratorError(f"@tracepoint takes 'group:name', not {event!r}",
                             "write @tracepoint(\"syscalls:sys_enter_openat\"); pybpf "
                             "list 'tracepoint:*' lists them")
    return _mark(ProgramKind("tracepoint", event, "tracepoint", f"tracepoint/{group}/{name}"))


def raw_tracepoint(name: str) -> Callable[[F], F]:
    """Run on raw tracepoint ``name`` (untyped 64-bit arguments, Linux 4.17)."""
    name = _target("raw_tracepoint", name, '@raw_tracepoint("sched_switch")')
    return _mark(ProgramKind("raw_tracepoint", name, "raw_tracepoint", f"raw_tp/{name}"))


def tp_btf(name: str) -> Callable[[F], F]:
    """Run on BTF tracepoint ``name`` (typed arguments, Linux 5.5)."""
    name = _target("tp_btf", name, '@tp_btf("sched_switch")')
    return _mark(ProgramKind("tp_btf", name, "tracing", f"tp_btf/{name}"))


def kprobe(function: str) -> Callable[[F], F]:
    """Run at the entry of kernel function ``function`` (``"name"`` or ``"name+off"``)."""
    function = _target("kprobe", function, '@kprobe("do_unlinkat")')
    return _mark(ProgramKind("kprobe", function, "kprobe", f"kprobe/{function}"))


def kretprobe(function: str) -> Callable[[F], F]:
    """Run when kernel function ``function`` returns (``ctx.retval``)."""
    function = _target("kretprobe", function, '@kretprobe("do_unlinkat")')
    return _mark(ProgramKind("kretprobe", function, "kprobe", f"kretprobe/{function}"))


def uprobe(target: str, *, pid: int = -1) -> Callable[[F], F]:
    """Run at ``"binary:symbol"`` (``"c:malloc"``, ``"/bin/bash:readline"``)."""
    target = _target("uprobe", target, '@uprobe("c:malloc")')
    return _mark(ProgramKind("uprobe", target, "kprobe", f"uprobe/{target}", pid=pid))


def uretprobe(target: str, *, pid: int = -1) -> Callable[[F], F]:
    """Run when user function ``"binary:symbol"`` returns (``ctx.retval``)."""
    target = _target("uretprobe", target, '@uretprobe("c:malloc")')
    return _mark(ProgramKind("uretprobe", target, "kprobe", f"uretprobe/{target}", pid=pid))


def usdt(target: str, *, pid: int = -1) -> Callable[[F], F]:
    """Run at USDT probe ``"binary:provider:name"``."""
    target = _target("usdt", target, '@usdt("binary:provider:name")')
    return _mark(ProgramKind("usdt", target, "kprobe", f"usdt/{target}", pid=pid))


def fentry(function: str) -> Callable[[F], F]:
    """Run at the entry of kernel function ``function`` through BTF (Linux 5.5)."""
    function = _target("fentry", function, '@fentry("do_unlinkat")')
    return _mark(ProgramKind("fentry", function, "tracing", f"fentry/{function}"))


def fexit(function: str) -> Callable[[F], F]:
    """Run when ``function`` returns, with its arguments and ``retval`` (Linux 5.5)."""
    function = _target("fexit", function, '@fexit("do_unlinkat")')
    return _mark(ProgramKind("fexit", function, "tracing", f"fexit/{function}"))


def perf_event(frequency: int = 49) -> Callable[[F], F]:
    """Run on a CPU-clock sampling event on every CPU, ``frequency`` times a second."""
    if callable(frequency):
        raise DecoratorError("@perf_event is used without parentheses",
                             "write @perf_event() or @perf_event(frequency=99)")
    return _mark(ProgramKind("perf_event", "", "perf_event", "perf_event",
                             frequency=frequency))


def socket_filter(fn: F) -> F:
    """A socket filter: attach it to a socket yourself (``pybpf.link.attach_socket_filter``)."""
    return _mark(ProgramKind("socket_filter", "", "socket_filter", "socket"))(fn)


def xdp(iface: str = "") -> Callable[[F], F]:
    """An XDP program, attached to ``iface`` when given."""
    iface = _target("xdp", iface, '@xdp(), or @xdp("eth0") to attach to eth0')
    return _mark(ProgramKind("xdp", iface, "xdp", "xdp", iface=iface))


def tc(iface: str = "", direction: str = "ingress") -> Callable[[F], F]:
    """A tc classifier (``sched_cls``), attached to ``iface``'s ``direction`` when given."""
    iface = _target("tc", iface, '@tc(), or @tc("eth0") to attach to eth0')
    return _mark(ProgramKind("tc", iface, "sched_cls", "tc", iface=iface, direction=direction))


#: attach type names by decorator, for tracing programs loaded against BTF targets
TRACING_KINDS: Dict[str, str] = {"fentry": "fentry", "fexit": "fexit", "tp_btf": "tp_btf"}
