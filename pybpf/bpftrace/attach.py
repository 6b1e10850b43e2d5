"""Loading and attaching the programs of a bpftrace run, as bpftrace 0.17 does it, with
its error messages (``ERROR: Error attaching probe: 'kprobe:f'`` and the rest; the run
then ends with status 255, bpftrace's -1).

What 0.17 does per provider (``src/attached_probe.cpp``, ``src/bpftrace.cpp``):

* **order**: BEGIN runs first; then the probes whose kernel hooks fire in attach order
  (kretprobe, kretfunc, tracepoint, profile, interval, watchpoint, hardware) are
  attached forwards, then the others (kprobe, uprobe, uretprobe, usdt, software, kfunc,
  iter) backwards, so that probes on one event run in program order.
* **failures that are skipped**: a kprobe or tracepoint whose name differs from its
  probe's full name (one of several attach points, or a wildcard's match) is skipped
  when it cannot be attached: libbcc's line, then for kprobes
  ``WARNING: could not attach probe kprobe:f, skipping.``; the run goes on even with
  nothing attached. A tracepoint with a program of its own (the probe uses ``probe``)
  had no code generated in 0.17: ``Code not generated for probe: ...``, fatal.
* **uprobe/uretprobe**: the function is looked up with its size in ``.symtab`` and
  ``.dynsym``; a size of 0 or an offset past the end is ``Offset outside the function
  bounds``; an address is resolved to the function that contains it; any offset inside
  a function is refused (Debian's 0.17 is built without the disassembler that checks
  instruction boundaries: ``Can't check if uprobe is in proper place ...``, even with
  ``--unsafe``). 0.17 attaches uprobes to every process, also with ``-p``.
* **usdt**: every site (location) of the probe is its own probe; the semaphore is
  counted by the kernel (``ref_ctr_offset``, Linux 4.20), so ``--usdt-file-activation``
  changes nothing on such kernels; with ``-p`` (or ``-c``) only that process is traced.
* **profile** on every CPU, **interval** on CPU 0 (``hz`` is a frequency, ``s``/``ms``/
  ``us`` a period of CPU clock); **software**/**hardware** on every CPU, the count
  or the event's default period.
* **watchpoint** (absolute address): a ``PERF_TYPE_BREAKPOINT`` event of the mode's
  type on every CPU, or on the ``-p``/``-c`` process. The function form
  (``FUNC+argN``) attaches a setup uprobe here (:func:`attach_watch_setup`); its
  breakpoints are set while the program runs (:func:`attach_watchpoint_at`,
  :mod:`.watchpoints`).
* **kfunc/kretfunc/iter**: ``BPF_PROG_TYPE_TRACING`` programs loaded against the
  function's (``bpf_iter_<name>``'s) BTF id; iter output is read from the iterator.
"""

from __future__ import annotations

import errno as _errno
import os
from typing import Any, Dict, List, Optional, Tuple

__all__ = ["AttachFailure", "load_program", "attach_order", "attach_point",
           "uprobe_offset", "FORWARD_KINDS"]

#: kinds whose hooks run in the order of attachment (0.17's ``attach_reverse`` false)
FORWARD_KINDS = ("kretprobe", "kretfunc", "tracepoint", "profile", "interval",
                 "watchpoint", "asyncwatchpoint", "hardware", "rawtracepoint")


class AttachFailure(Exception):
    """A probe bpftrace fails to load or attach: ``str()`` is its ``ERROR:`` text,
    ``notes`` the lines libbcc prints on stderr before it."""

    def __init__(self, message: str, notes: Tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.notes = notes


def attach_order(programs: List[Any]) -> List[Tuple[Any, Any]]:
    """(program, attach point) pairs in bpftrace's attach order (BEGIN/END left out)."""
    pairs = [(p, ap) for p in programs if p.provider not in ("BEGIN", "END")
             and not getattr(p, "deferred", False) for ap in p.attach]
    fwd = [x for x in pairs if x[1].kind in FORWARD_KINDS and not _wp_setup(x[1])]
    rev = [x for x in pairs if x[1].kind not in FORWARD_KINDS or _wp_setup(x[1])]
    return fwd + rev[::-1]


# -- loading ---------------------------------------------------------------------------

def load_program(p: Any, maps: Dict[str, Any], name: str) -> Any:
    """Load lowered program ``p``: tracing programs (kfunc, kretfunc, iter) against
    their BTF target, the rest by program type."""
    from ..program import ProgramSpec
    from ..syscall.bpf import ProgType
    kind = p.attach[0].kind if p.attach else p.provider
    if kind in ("kfunc", "kretfunc", "iter"):
        from ..link.tracing import tracing_spec
        ap = p.attach[0]
        tk = {"kfunc": "fentry", "kretfunc": "fexit", "iter": "iter"}[kind]
        try:
            spec = tracing_spec(tk, ap.func, p.instructions, name=name)
        except LookupError:
            target = ("bpf_iter_" if kind == "iter" else "") + ap.func
            raise AttachFailure(f"No BTF found for {target}") from None
        try:
            return spec.load(maps=maps)
        except OSError as exc:
            raise AttachFailure(f"Error loading program: {_full(ap)} (try -v)",
                                (f"{exc}",)) from None
        finally:
            obj = getattr(spec, "attach_btf_obj", None)
            if obj is not None and hasattr(obj, "close"):
                obj.close()
    t = p.prog_type.replace("BPF_PROG_TYPE_", "")
    spec = ProgramSpec(ProgType[t], p.instructions, name=name)
    if getattr(p, "btf", None) is not None:
        spec.prebuilt_btf = p.btf
    return spec.load(maps=maps)


def _full(ap: Any) -> str:
    from .module import full_name
    return full_name(ap)


# -- uprobes ---------------------------------------------------------------------------

def _symbols(path: str) -> List[Any]:
    from ..elf.symbols import ElfFile
    with ElfFile(path) as elf:
        out = []
        for table in (".symtab", ".dynsym"):
            out += [s for s in elf.iter_symbols(table) if s.name and s.value]
        return out


def uprobe_offset(ap: Any, unsafe: bool) -> Tuple[int, List[str]]:
    """(file offset, warnings) of a uprobe attach point, resolved as 0.17 resolves it
    (see the module docstring); raises :class:`AttachFailure` with its message."""
    from ..elf.symbols import ElfFile
    path, kind = ap.target, ap.kind
    warnings: List[str] = []
    syms = _symbols(path)
    func_offset = ap.func_offset
    func, address = ap.func, ap.address
    if func and not any(s.name == func for s in syms):
        from .semantic import stoll
        number = stoll(func)
        if number is not None:                  # uretprobe:bin:0x1139
            func, address = "", number
    if func:
        sym = next((s for s in syms if s.name == func), None)
        if sym is None:
            raise AttachFailure(f"Could not resolve symbol: {path}:{func}")
        symbol = func
    else:
        sym = next((s for s in syms if s.value <= address < s.value + s.size), None)
        if sym is None:
            if not unsafe:
                raise AttachFailure(f"Could not resolve address: {path}:{address:#x}")
            warnings.append(f"Could not determine instruction boundary for {_full(ap)} "
                            "(binary appears stripped). Misaligned probes can lead to "
                            "tracee crashes!")
            return address, warnings
        symbol = sym.name
        func_offset = address - sym.value
    if kind == "uretprobe" and func_offset:
        raise AttachFailure("uretprobes cannot be attached at function offset. (address "
                            f"resolved to: {symbol}+{func_offset})")
    if func_offset >= sym.size:
        raise AttachFailure(f"Offset outside the function bounds ('{symbol}' size is "
                            f"{sym.size})")
    if func_offset:
        raise AttachFailure(f"Can't check if {kind} is in proper place (compiled without "
                            f"(k|u)probe offset support): {path}:{symbol}+{func_offset}")
    with ElfFile(path) as elf:
        return elf.file_offset(sym.value), warnings


# -- attaching -------------------------------------------------------------------------

def _tracefs_root() -> str:
    return "/sys/kernel/tracing" if os.path.isdir("/sys/kernel/tracing") else \
        "/sys/kernel/debug/tracing"


def _note(line: str) -> None:
    import sys
    sys.stderr.write(line + "\n")


def _kprobe_notes(exc: Optional[BaseException] = None) -> Tuple[str, ...]:
    """What libbcc prints when it cannot create a kprobe event: on a kernel without
    kprobe events, that it cannot open the control file; else why the kernel refused
    the event (a function it does not know: ``probe entry may not exist``)."""
    from ..link.kprobe import kprobes_available
    if not kprobes_available():
        errno = getattr(exc, "errno", None)
        if isinstance(exc, OSError) and errno and errno != _errno.ENOENT:
            return (f"cannot attach kprobe, {os.strerror(errno)}",)
        return ("cannot attach kprobe, probe entry may not exist",)
    return (f"create_probe_event: open({_tracefs_root()}/kprobe_events): "
            "No such file or directory",)


def attach_point(prog: Any, ap: Any, opts: Any, pid: int, warn: Any,
                 note: Optional[Any] = None) -> List[Any]:
    """Attach ``prog`` to ``ap``: the links (one attach point may need several; none
    when 0.17 would skip it, see :func:`_skippable`); ``pid`` is the ``-p``/``-c``
    process (0: none); ``warn`` prints a warning, ``note`` a bare stderr line (what
    libbcc prints; default: to ``sys.stderr``)."""
    from .. import link as L
    if note is None:
        note = _note
    from ..syscall import perf as P
    kind = ap.kind
    name = _full(ap)
    if _wp_setup(ap):
        return [attach_watch_setup(prog, ap, opts, pid)]
    try:
        if kind == "tracepoint":
            try:
                return [L.attach_tracepoint(prog, ap.target, ap.func)]
            except (OSError, LookupError):
                if not _skippable(ap):
                    raise
                if getattr(ap, "own_program", False):
                    # 0.17 generates no code for it: the run fails
                    raise AttachFailure(f"Code not generated for probe: {name} from: "
                                        f"{ap.orig_name}") from None
                # libbcc's line, then 0.17 goes on without the probe (no warning)
                note(f"open({_tracefs_root()}/events/{ap.target}/{ap.func}/id): "
                     "No such file or directory")
                return []
        if kind == "rawtracepoint":
            return [L.attach_raw_tracepoint(prog, ap.func)]
        if kind in ("profile", "interval"):
            kw: Dict[str, Any] = {}
            if ap.target == "hz":
                kw["sample_freq"] = ap.freq
            else:
                kw["sample_period"] = ap.freq * {"s": 10 ** 9, "ms": 10 ** 6,
                                                 "us": 10 ** 3}[ap.target]
            cpus = None
            if kind == "interval":
                cpus = [0]
            return [L.attach_perf_event(prog, type=P.PerfType.SOFTWARE,
                                        config=P.SwId.CPU_CLOCK, cpus=cpus, **kw)]
        if kind in ("software", "hardware"):
            from .probes import HARDWARE_EVENTS, SOFTWARE_EVENTS
            table = SOFTWARE_EVENTS if kind == "software" else HARDWARE_EVENTS
            ev = next(e for e in table if ap.target in (e.name, e.alias))
            try:
                return [L.attach_perf_event(
                    prog, type=P.PerfType.SOFTWARE if kind == "software"
                    else P.PerfType.HARDWARE, config=ev.config,
                    sample_period=ap.freq or ev.default_period)]
            except OSError as exc:
                raise AttachFailure(f"Error attaching probe: {name}", (
                    f"perf_event_open failed: {os.strerror(exc.errno or 0)}",)) from None
        if kind in ("uprobe", "uretprobe"):
            off, warnings = uprobe_offset(ap, opts.unsafe)
            for w in warnings:
                warn(w)
            return [L.attach_uprobe(prog, ap.target, offset=off,
                                    retprobe=kind == "uretprobe", pid=-1)]
        if kind == "usdt":
            return [_attach_usdt(prog, ap, pid)]
        if kind in ("kprobe", "kretprobe"):
            if kind == "kretprobe" and ap.func in _BANNED_KRETPROBES:
                raise AttachFailure(f"error: kretprobe:{ap.func} can't be used as it might "
                                    "lock up your system.")
            try:
                if _skippable(ap) and not _in_kernel(ap):
                    raise LookupError(ap.func)
                if kind == "kprobe":
                    return [L.attach_kprobe(prog, ap.func, offset=ap.func_offset)]
                return [L.attach_kretprobe(prog, ap.func)]
            except (OSError, ValueError, LookupError) as exc:
                if _skippable(ap):
                    for line in _kprobe_notes(exc):
                        note(line)
                    warn(f"could not attach probe {name}, skipping.")
                    return []
                raise AttachFailure(f"Error attaching probe: '{name}'",
                                    _kprobe_notes(exc)) from None
        if kind in ("kfunc", "kretfunc"):
            return [L.attach_tracing(prog)]
        if kind == "iter":
            return [L.attach_iter(prog)]
        if kind in ("watchpoint", "asyncwatchpoint"):
            return _attach_watchpoint(prog, ap, pid)
    except AttachFailure:
        raise
    except (OSError, ValueError, LookupError) as exc:
        raise AttachFailure(f"Error attaching probe: {name}", (str(exc),)) from None
    raise AttachFailure(f"{kind} probes are not supported by pybpf trace")


def _skippable(ap: Any) -> bool:
    """May a kprobe that fails to attach be skipped with a warning? 0.17 skips it when
    its name differs from its probe's full name (the attach points as written, joined
    with commas): a wildcard's match, or one of several attach points of a probe
    (``kprobe:blk_account_io_start,kprobe:__blk_account_io_start``). A probe of one
    attach point, named exactly, fails the run."""
    orig = getattr(ap, "orig_name", None)
    return orig is not None and orig != ap.name()


def _in_kernel(ap: Any) -> bool:
    """Can the kernel have function ``ap.func``? Asked before attaching a named one of
    several kprobe attach points (biolatency's pair, xfsdist's ``xfs_file_*`` without
    xfs), so that a missing one fails at once: the kprobe layer's error would look for
    close matches among all kernel functions, about a second each (minutes for a tool
    with several, under emulation). A wildcard's matches came from the traceable
    functions and are not checked."""
    if ap.name() not in ap.orig_name.split(","):
        return True
    from ..link.kprobe import kernel_functions
    funcs = kernel_functions()
    return not funcs or ap.func in funcs


#: 0.17 refuses these kretprobes (they may lock the system up)
_BANNED_KRETPROBES = ("_raw_spin_lock", "_raw_spin_lock_irqsave",
                      "_raw_spin_unlock_irqrestore", "queued_spin_lock_slowpath")


def usdt_sites(ap: Any, pid: int) -> List[Any]:
    """The sites (:class:`~pybpf.elf.usdt.UsdtProbe`) of a usdt attach point, in note
    order (each is one of bpftrace's probes)."""
    from ..elf.libs import resolve_binary
    from ..elf.usdt import find_usdt
    path = resolve_binary(ap.target, pid or None) if ap.target else f"/proc/{pid}/exe"
    return find_usdt(path, ap.ns or None, ap.func)


def _attach_usdt(prog: Any, ap: Any, pid: int) -> Any:
    from .. import link as L
    site = getattr(ap, "usdt_site", None)
    if site is None:
        raise AttachFailure(f"Failed to find usdt probe: {_full(ap)}")
    try:
        return L.attach_uprobe(prog, site.path, offset=site.offset,
                               pid=pid if pid else -1,
                               ref_ctr_offset=site.semaphore_offset)
    except (OSError, ValueError) as exc:
        msg = f"Error attaching probe: {_full(ap)}" + (f", to PID: {pid}" if pid else "")
        raise AttachFailure(msg, (str(exc),)) from None


def _attach_watchpoint(prog: Any, ap: Any, pid: int) -> List[Any]:
    from ..link.perf_link import attach_perf_event_fd
    from ..syscall import perf as P
    from ..syscall.cpus import online_cpus
    bp_type = 0
    for c in ap.mode:
        bp_type |= {"r": 1, "w": 2, "x": 4}[c]
    targets = [(pid, -1)] if pid >= 1 else [(-1, c) for c in online_cpus()]
    links: List[Any] = []
    try:
        for p, cpu in targets:
            attr = P.PerfEventAttr(type=P.PerfType.BREAKPOINT, config=0, disabled=1)
            attr.bp_type = bp_type
            attr.bp_addr = ap.address
            attr.bp_len = ap.len
            attr.sample_period = 1
            try:
                fd = P.perf_event_open(attr, pid=p, cpu=cpu)
            except OSError as exc:
                if exc.errno == _errno.ENOSPC:
                    raise AttachFailure("No more HW registers left") from None
                raise AttachFailure(f"Error attaching probe: {_full(ap)}: "
                                    f"{os.strerror(exc.errno or 0)}") from None
            links.append(attach_perf_event_fd(prog, fd, kind="watchpoint",
                                              target=f"{ap.address:#x}"))
    except BaseException:
        for ln in links:
            ln.close()
        raise
    return links


# -- function-form watchpoints (watchpoint:FUNC+argN:LEN:MODE) ---------------------------

def _wp_setup(ap: Any) -> bool:
    return bool(getattr(ap, "wp_setup", False))


class WatchRegistersFull(AttachFailure):
    """The CPU has no free debug register for one more breakpoint (``ENOSPC``)."""


def attach_watch_setup(prog: Any, ap: Any, opts: Any, pid: int) -> Any:
    """The setup uprobe of a function-form watchpoint, on the function's entry. Unlike
    0.17 (which puts it on every process running the binary, and then stops a
    stranger and continues the traced process), only the ``-p``/``-c`` process runs it.
    """
    from .. import link as L
    fn = ap.copy()
    fn.provider, fn.address = "uprobe", 0
    off, _warnings = uprobe_offset(fn, opts.unsafe)
    try:
        return L.attach_uprobe(prog, ap.target, offset=off, pid=pid if pid else -1)
    except (OSError, ValueError) as exc:
        raise AttachFailure(f"Error attaching probe: {_full(ap)}_wp_setup",
                            (str(exc),)) from None


def attach_watchpoint_at(prog: Any, ap: Any, pid: int, address: int) -> Any:
    """The breakpoint of a function-form watchpoint: a ``PERF_TYPE_BREAKPOINT`` event
    on ``address`` in process ``pid`` running ``prog``. Raises
    :class:`WatchRegistersFull` (``ENOSPC``) or :class:`AttachFailure` with 0.17's
    ``Error attaching probe: NAME: strerror``."""
    from ..link.perf_link import attach_perf_event_fd
    from ..syscall import perf as P
    attr = P.PerfEventAttr(type=P.PerfType.BREAKPOINT, config=0, disabled=1)
    for c in ap.mode:
        attr.bp_type |= {"r": 1, "w": 2, "x": 4}[c]
    attr.bp_addr, attr.bp_len, attr.sample_period = address, ap.len, 1
    try:
        fd = P.perf_event_open(attr, pid=pid, cpu=-1)
    except OSError as exc:
        if exc.errno == _errno.ENOSPC:
            raise WatchRegistersFull("No more HW registers left") from None
        raise AttachFailure(f"Error attaching probe: {_full(ap)}: "
                            f"{os.strerror(exc.errno or 0)}") from None
    try:
        return attach_perf_event_fd(prog, fd, kind="watchpoint", target=f"{address:#x}")
    except OSError as exc:
        raise AttachFailure(f"Error attaching probe: {_full(ap)}: "
                            f"{os.strerror(exc.errno or 0)}") from None
