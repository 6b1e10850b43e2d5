"""Kprobes and kretprobes (``BPF_PROG_TYPE_KPROBE`` on kernel functions), and
``kprobe_multi`` links.

**Mechanisms, in order.** (1) The kprobe PMU (Linux 4.17): ``perf_event_open`` with
``attr.type`` from ``/sys/bus/event_source/devices/kprobe/type``, the function name in
``config1`` and the offset (or an address) in ``config2``; the return-probe bit is where
``format/retprobe`` says. (2) ``kprobe_events`` in tracefs: a ``p:pybpf/pybpf_<pid>_<n>``
(or ``r<maxactive>:``) line appended (never truncating the file), its id opened as a
tracepoint event, the line deleted again when the link closes; ``pybpf probes cleanup``
removes what a killed process left. ``maxactive`` (how many concurrent returns a
kretprobe tracks) exists only in (2). Either way the program is attached by
:mod:`pybpf.link.perf_link`.

**Errors.** :class:`KprobesUnavailableError` when the kernel has neither mechanism
(``CONFIG_KPROBES=n``); :class:`UnknownFunctionError` (a :class:`LookupError`) with close
matches from ``/proc/kallsyms`` for a function that does not exist;
:class:`BlacklistedFunctionError` for one kprobes may not touch. Before anything else,
:class:`ValueError` names an offset (32 bits into a function), an address or cookie (64
bits) or a ``maxactive`` (0..4096) out of range.

**System calls.** :func:`syscall_function` maps ``"openat"`` to the kernel's entry point
for it on this architecture (``__x64_sys_openat`` on x86-64, ``__arm64_sys_openat``,
...; ``sys_openat`` on kernels before 4.17).

**kprobe_multi** (Linux 5.18, ``CONFIG_FPROBE``): :func:`attach_kprobe_multi` attaches one
program to many functions at once (names or a glob over
``available_filter_functions``); the program must be loaded with
``expected_attach_type = TRACE_KPROBE_MULTI``.
"""

from __future__ import annotations

import errno as _errno
import fnmatch
import os
from typing import Dict, List, Optional, Sequence, Set, Tuple, Union

from .. import tracefs as _tracefs
from ..errors import UnknownNameError, close_matches
from ..syscall import perf as _perf
from ..syscall import progs as _progs
from ..syscall.bpf import AttachType
from ..syscall.errors import BPFError, NotSupportedError
from ..syscall.fd import FD, FdLike
from ._ranges import U32_MAX, U64_MAX, check_range
from .base import Link
from .perf_link import attach_perf_event_fd

__all__ = ["attach_kprobe", "attach_kretprobe", "attach_kprobe_multi", "syscall_function",
           "kprobes_available", "KprobesUnavailableError", "UnknownFunctionError",
           "BlacklistedFunctionError", "kernel_functions", "SYSCALL_PREFIXES",
           "KPROBE_MODES", "kprobe_pmu"]

#: ``mode`` values: PMU then tracefs, or force one
KPROBE_MODES = ("auto", "pmu", "legacy")

#: the prefix of system-call entry points per architecture (Linux 4.17 and later)
SYSCALL_PREFIXES: Dict[str, Tuple[str, ...]] = {
    "x86_64": ("__x64_sys_", "__ia32_sys_"),
    "aarch64": ("__arm64_sys_",),
    "s390x": ("__s390x_sys_", "__s390_sys_"),
    "riscv64": ("__riscv_sys_",),
    "loongarch64": ("sys_",),
    "ppc64le": ("sys_",),
    "i686": ("__ia32_sys_",),
    "armv7l": ("sys_",),
}


class KprobesUnavailableError(NotSupportedError):
    """This kernel has no kprobes at all (no kprobe PMU, no ``kprobe_events``)."""

    def __init__(self) -> None:
        super().__init__("kprobes", errnum=_errno.EOPNOTSUPP)
        self.strerror = ("kprobes: this kernel has no kprobe PMU and no kprobe_events "
                         "(CONFIG_KPROBES=n)")


class UnknownFunctionError(UnknownNameError):
    """A kernel function that does not exist (``matches`` lists close names)."""


class BlacklistedFunctionError(ValueError):
    """A kernel function that kprobes refuse (listed in the kprobe blacklist, or in a
    section the kernel never probes)."""


def kprobe_pmu() -> Optional[Tuple[int, int]]:
    """(PMU type, retprobe bit) of the kprobe PMU, or None."""
    pmu = _perf.pmu_type("kprobe")
    if pmu is None:
        return None
    ret = _perf.pmu_format("kprobe", "retprobe")
    return pmu, (ret[1] if ret else 0)


def _kprobe_events_path() -> Optional[str]:
    try:
        path = os.path.join(_tracefs.tracefs_root(), "kprobe_events")
    except OSError:
        return None
    return path if os.path.exists(path) else None


def kprobes_available() -> str:
    """Why kprobes cannot be used here, or ``""`` if they can."""
    if kprobe_pmu() is not None or _kprobe_events_path() is not None:
        return ""
    return str(KprobesUnavailableError())


_kallsyms: Optional[Set[str]] = None


def kernel_functions() -> Set[str]:
    """Names of the kernel's text symbols (``/proc/kallsyms``, read once)."""
    global _kallsyms
    if _kallsyms is None:
        names = set()
        try:
            with open("/proc/kallsyms", encoding="ascii", errors="replace") as fh:
                for line in fh:
                    parts = line.split()
                    if len(parts) >= 3 and parts[1] in "tTwW":
                        names.add(parts[2])
        except OSError:
            pass
        _kallsyms = names
    return _kallsyms


def syscall_function(name: str) -> str:
    """The kernel function behind system call ``name`` on this architecture (as BCC's
    ``get_syscall_fnname``): the first of ``SYSCALL_PREFIXES`` + name that exists, else
    ``sys_`` + name (kernels before 4.17)."""
    _tracefs.validate_name(name, "system call name")
    funcs = kernel_functions()
    for prefix in SYSCALL_PREFIXES.get(os.uname().machine, ()) + ("sys_",):
        if prefix + name in funcs:
            return prefix + name
    return "sys_" + name


def _blacklisted(symbol: str) -> bool:
    for root in ("/sys/kernel/debug", "/sys/kernel/tracing/.."):
        try:
            with open(os.path.join(root, "kprobes", "blacklist"), encoding="ascii") as fh:
                return any(line.split()[-1] == symbol for line in fh if line.strip())
        except OSError:
            continue
    return False


def _explain(exc: OSError, symbol: Optional[str]) -> None:
    """Turn an attach failure into the distinct errors of this module."""
    if symbol is None:
        return
    funcs = kernel_functions()
    if funcs and symbol not in funcs:
        raise UnknownFunctionError("kernel function", symbol,
                                   close_matches(symbol, sorted(funcs)),
                                   detail="not in /proc/kallsyms") from None
    if exc.errno in (_errno.EINVAL, _errno.ENOENT) and _blacklisted(symbol):
        raise BlacklistedFunctionError(f"kernel function {symbol!r} is on the kprobe "
                                       f"blacklist: kprobes cannot be placed on it") from None
    if exc.errno == _errno.EADDRNOTAVAIL:
        raise BPFError(exc.errno, f"several kernel functions are called {symbol!r}",
                       command="kprobe", hint="give the address of the one you mean") from None


def _open_pmu(symbol: Optional[str], address: int, offset: int, retprobe: bool
              ) -> Optional[FD]:
    pmu = kprobe_pmu()
    if pmu is None:
        return None
    pmu_type, ret_bit = pmu
    attr = _perf.probe_attr(pmu_type, name=symbol.encode() if symbol else None,
                            addr_or_offset=offset if symbol else address + offset,
                            config=(1 << ret_bit) if retprobe else 0)
    try:
        return _perf.perf_event_open(attr, pid=-1, cpu=0)
    except OSError as exc:
        _explain(exc, symbol)
        raise


def _open_legacy(symbol: Optional[str], address: int, offset: int, retprobe: bool,
                 maxactive: int) -> Tuple[FD, str]:
    if symbol is not None:
        _tracefs.validate_probe_target(symbol, "kernel function")
        location = f"{symbol}+{offset}" if offset else symbol
    else:
        location = f"{address + offset:#x}"
    ptype = ("r" + (str(maxactive) if maxactive else "")) if retprobe else "p"
    name = _tracefs.unique_event_name(symbol or f"{address:x}")
    try:
        ev_id = _tracefs.add_probe_event("kprobe", ptype, name, location)
    except NotSupportedError:
        raise                       # no kprobe_events: nothing to explain
    except OSError as exc:
        _explain(exc, symbol)
        raise
    try:
        fd = _perf.perf_event_open(_perf.tracepoint_attr(ev_id), pid=-1, cpu=0)
    except BaseException:
        _tracefs.remove_probe_event("kprobe", name)
        raise
    return fd, name


def attach_kprobe(prog: FdLike, symbol: Optional[str] = None, *, offset: int = 0,
                  address: Optional[int] = None, retprobe: bool = False,
                  maxactive: int = 0, cookie: int = 0, mode: str = "auto",
                  use_link: Optional[bool] = None) -> Link:
    """Attach a kprobe program to kernel function ``symbol`` (``"do_unlinkat"``,
    ``"tcp_v4_connect+4"``) or to ``address``; a kretprobe with ``retprobe=True``.
    ``maxactive`` > 0 (kretprobes) forces the tracefs way. ``cookie`` is Linux 5.15.
    """
    if mode not in KPROBE_MODES:
        raise ValueError(f"mode must be one of {KPROBE_MODES}, not {mode!r}")
    if (symbol is None) == (address is None):
        raise ValueError("give a function name or an address (one of them)")
    if symbol is not None:
        symbol, extra = _parse_target(symbol)
        offset += extra
    if symbol is not None:
        check_range("offset", offset, 0, U32_MAX, "an offset into a kernel function", True)
    else:
        check_range("address", address, 1, U64_MAX, "a kernel address", True)
        check_range("offset", offset, 0, U64_MAX - address, f"an offset from {address:#x}",
                    True)
    check_range("cookie", cookie, 0, U64_MAX, "a bpf_cookie", True)
    check_range("maxactive", maxactive, 0, 4096, "a kretprobe's maxactive")
    if maxactive and not retprobe:
        raise ValueError("maxactive applies to kretprobes only")
    if maxactive and mode == "pmu":
        raise ValueError("maxactive needs the tracefs way (mode='legacy' or 'auto')")
    if kprobes_available():
        raise KprobesUnavailableError()
    kind = "kretprobe" if retprobe else "kprobe"
    target = (symbol or f"{address:#x}") + (f"+{offset}" if offset else "")
    details: Dict[str, object] = {}
    event = None
    undo = []
    if mode in ("auto", "pmu") and not maxactive:
        event = _open_pmu(symbol, address or 0, offset, retprobe)
        if event is None and mode == "pmu":
            raise NotSupportedError("the kprobe PMU", (4, 17), errnum=_errno.ENOENT,
                                    detail="no /sys/bus/event_source/devices/kprobe")
        details["mode"] = "pmu"
    if event is None:
        event, name = _open_legacy(symbol, address or 0, offset, retprobe, maxactive)
        details.update(mode="legacy", event=f"{_tracefs.GROUP}/{name}")
        undo.append(lambda: _tracefs.remove_probe_event("kprobe", name))
    return attach_perf_event_fd(prog, event, kind=kind, target=target, cookie=cookie,
                                undo=undo, use_link=use_link, details=details)


def attach_kretprobe(prog: FdLike, symbol: Optional[str] = None, **kwargs: object) -> Link:
    """:func:`attach_kprobe` with ``retprobe=True``."""
    return attach_kprobe(prog, symbol, retprobe=True, **kwargs)  # type: ignore[arg-type]


def _parse_target(spec: str) -> Tuple[str, int]:
    name, plus, off = spec.partition("+")
    _tracefs.validate_probe_target(name, "kernel function")
    if not plus:
        return name, 0
    try:
        return name, int(off, 0)
    except ValueError:
        raise ValueError(f"bad offset in {spec!r}: expected function+N") from None


def _filter_functions() -> List[str]:
    path = os.path.join(_tracefs.tracefs_root(), "available_filter_functions")
    with open(path, encoding="ascii", errors="replace") as fh:
        return [line.split()[0] for line in fh if line.strip()]


def attach_kprobe_multi(prog: FdLike, functions: Union[str, Sequence[str]], *,
                        retprobe: bool = False, cookies: Sequence[int] = ()) -> Link:
    """Attach one program to many kernel functions with a ``kprobe_multi`` link (Linux
    5.18). ``functions`` is a list of names or one glob (``"vfs_*"``) matched against
    ``available_filter_functions``. ``cookies`` (one per function) are read with
    ``bpf_get_attach_cookie``."""
    if isinstance(functions, str):
        pattern = functions
        names = sorted({f for f in _filter_functions() if fnmatch.fnmatchcase(f, pattern)})
        if not names:
            raise UnknownFunctionError("kernel function pattern", pattern,
                                       detail="matches nothing in available_filter_functions")
    else:
        names = list(functions)
        for name in names:
            _tracefs.validate_probe_target(name, "kernel function")
    flags = _progs.KPROBE_MULTI_RETURN if retprobe else 0
    try:
        fd = _progs.link_create(prog, AttachType.TRACE_KPROBE_MULTI,
                                kprobe_multi=_progs.KprobeMulti(syms=names,
                                                                cookies=cookies,
                                                                flags=flags))
    except OSError as exc:
        if exc.errno in (_errno.EOPNOTSUPP, _progs.ENOTSUPP) or \
                isinstance(exc, NotSupportedError):
            raise NotSupportedError("kprobe_multi links", (5, 18), errnum=exc.errno or 0,
                                    command="BPF_LINK_CREATE",
                                    detail="needs CONFIG_FPROBE") from None
        if exc.errno in (_errno.ENOENT, _errno.ESRCH, _errno.EINVAL):
            funcs = kernel_functions()
            missing = [n for n in names if funcs and n not in funcs]
            if missing:
                raise UnknownFunctionError("kernel function", missing[0],
                                           close_matches(missing[0], sorted(funcs)),
                                           detail="not in /proc/kallsyms") from None
        raise
    kind = "kretprobe_multi" if retprobe else "kprobe_multi"
    target = functions if isinstance(functions, str) else ",".join(names[:3]) + \
        ("..." if len(names) > 3 else "")
    return Link(kind, target, fd, is_bpf_link=True, details={"functions": names})
