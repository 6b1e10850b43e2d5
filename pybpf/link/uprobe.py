"""Uprobes, uretprobes and USDT probes (``BPF_PROG_TYPE_KPROBE`` programs on user code).

**Targets.** ``binary`` is a path, a command on ``$PATH`` (``"bash"``) or a library
name (``"c"``, ``"libc"``, ``"readline"``: :func:`pybpf.elf.libs.resolve_library`,
through the libraries process ``pid`` has mapped first); with only a ``pid`` the
process's executable. The location is a ``symbol`` (``"malloc"`` or ``"malloc+0x10"``,
from ``.symtab`` or ``.dynsym``: :class:`pybpf.elf.symbols.ElfFile`), a virtual
``address``, or a raw file ``offset``.

**Mechanisms, in order.** (1) The uprobe PMU (Linux 4.17): ``perf_event_open`` with
``attr.type`` from ``/sys/bus/event_source/devices/uprobe/type``, the path in
``config1``, the offset in ``config2``, the return-probe and reference-counter bits
where its ``format/`` files say. (2) ``uprobe_events`` in tracefs, with a
``pybpf_<pid>_<n>`` event that the link deletes again. Either way the program is
attached by :mod:`pybpf.link.perf_link`. ``pid`` limits hits to one process.
``ref_ctr_offset`` (4.20) is the file offset of a USDT semaphore that the kernel
increments while the probe exists.

**Checks first.** Offsets, addresses, pids and cookies that their kernel fields cannot
hold, and a resolved file offset beyond the end of the file, raise :class:`ValueError`
naming the value and its range before tracefs or ``perf_event_open`` is touched.
"""

from __future__ import annotations

import errno as _errno
import os
from typing import List, Optional, Tuple

from ..elf import libs as _libs
from ..elf.symbols import ElfFile, parse_symbol_spec
from ..syscall import perf as _perf
from ..syscall.errors import NotSupportedError
from ..syscall.fd import FD, FdLike
from ._ranges import LOFF_T_MAX, U64_MAX, check_pid, check_range
from .base import Link, MultiLink
from .perf_link import attach_perf_event_fd

__all__ = ["attach_uprobe", "attach_uretprobe", "attach_usdt", "resolve_uprobe",
           "uprobe_pmu", "UPROBE_MODES"]

#: ``mode`` values: try the PMU then tracefs, or force one
UPROBE_MODES = ("auto", "pmu", "legacy")


def uprobe_pmu() -> Optional[Tuple[int, int, Optional[Tuple[str, int, int]]]]:
    """(PMU type, retprobe bit, ref_ctr_offset field) of the uprobe PMU, or None."""
    pmu = _perf.pmu_type("uprobe")
    if pmu is None:
        return None
    ret = _perf.pmu_format("uprobe", "retprobe")
    return pmu, (ret[1] if ret else 0), _perf.pmu_format("uprobe", "ref_ctr_offset")


def resolve_uprobe(binary: str = "", symbol: Optional[str] = None, *, offset: int = 0,
                   address: Optional[int] = None, pid: Optional[int] = None
                   ) -> Tuple[str, int]:
    """``(path, file offset)`` of a uprobe location (see the module doc for the forms).
    A negative offset after a symbol (``"malloc+-8"``) is a :class:`ValueError`. Raises
    :class:`~pybpf.elf.libs.UnknownLibraryError` or
    :class:`~pybpf.elf.symbols.UnknownSymbolError` (both :class:`LookupError`, with close
    matches)."""
    path = _libs.resolve_binary(binary, pid)
    if symbol is None and address is None:
        return path, offset
    with ElfFile(path) as elf:
        if address is not None:
            return path, elf.file_offset(address) + offset
        assert symbol is not None
        name, extra = parse_symbol_spec(symbol)
        check_range("offset", extra, 0, LOFF_T_MAX, f"the offset in {symbol!r}", True)
        return path, elf.file_offset(elf.symbol(name).value) + extra + offset


def _check_in_file(path: str, offset: int) -> None:
    """The resolved ``offset`` lies inside the file ``path`` (the kernel refuses one
    past its end), else :class:`ValueError` naming the offset and the file's range."""
    try:
        size = os.stat(path).st_size
    except OSError:
        return                        # resolve_binary found it; let the kernel say why
    if not 0 <= offset < size:
        shown = f"{offset:#x}" if offset >= 0 else f"-{-offset:#x}"
        raise ValueError(f"uprobe offset {shown} is out of range: a file offset in "
                         f"{path} must be 0x0..{size - 1:#x} (its size is {size} bytes)")


def _open_pmu(path: str, offset: int, retprobe: bool, pid: int,
              ref_ctr_offset: int) -> Optional[FD]:
    pmu = uprobe_pmu()
    if pmu is None:
        return None
    pmu_type, ret_bit, ref_field = pmu
    config = (1 << ret_bit) if retprobe else 0
    if ref_ctr_offset:
        if ref_field is None:
            raise NotSupportedError("uprobe reference counters (ref_ctr_offset)", (4, 20))
        _, first, width = ref_field
        if ref_ctr_offset >= (1 << width):
            raise ValueError(f"ref_ctr_offset {ref_ctr_offset:#x} does not fit in "
                             f"{width} bits")
        config |= ref_ctr_offset << first
    attr = _perf.probe_attr(pmu_type, name=os.fsencode(path), addr_or_offset=offset,
                            config=config)
    return _perf.perf_event_open(attr, pid=pid if pid >= 0 else -1,
                                 cpu=-1 if pid >= 0 else 0)


def _open_legacy(path: str, offset: int, retprobe: bool, pid: int, ref_ctr_offset: int,
                 what: str) -> Tuple[FD, str]:
    from .. import tracefs as _tracefs
    real = os.path.realpath(path)
    _tracefs.validate_probe_target(real, "path")
    event = _tracefs.unique_event_name(what)
    location = f"{real}:{offset:#x}" + (f"({ref_ctr_offset:#x})" if ref_ctr_offset else "")
    ev_id = _tracefs.add_probe_event("uprobe", "r" if retprobe else "p", event, location)
    try:
        fd = _perf.perf_event_open(_perf.tracepoint_attr(ev_id),
                                   pid=pid if pid >= 0 else -1, cpu=-1 if pid >= 0 else 0)
    except BaseException:
        _tracefs.remove_probe_event("uprobe", event)
        raise
    return fd, event


def attach_uprobe(prog: FdLike, binary: str = "", symbol: Optional[str] = None, *,
                  offset: int = 0, address: Optional[int] = None, retprobe: bool = False,
                  pid: int = -1, ref_ctr_offset: int = 0, cookie: int = 0,
                  mode: str = "auto", use_link: Optional[bool] = None) -> Link:
    """Attach a kprobe-type program to user code: ``attach_uprobe(p, "c", "malloc")``,
    ``attach_uprobe(p, "/bin/bash", "readline", retprobe=True)``,
    ``attach_uprobe(p, pid=1234, symbol="main")``, ``attach_uprobe(p, path,
    offset=0x1139)``.

    ``mode`` is ``"auto"`` (PMU, else tracefs), ``"pmu"`` or ``"legacy"``. ``pid`` >= 0
    fires only in that process. ``cookie`` needs Linux 5.15.
    """
    if mode not in UPROBE_MODES:
        raise ValueError(f"mode must be one of {UPROBE_MODES}, not {mode!r}")
    check_range("offset", offset, 0, LOFF_T_MAX, "a uprobe file offset", True)
    if address is not None:
        check_range("address", address, 0, U64_MAX, "a uprobe address", True)
    check_pid(pid)
    check_range("ref_ctr_offset", ref_ctr_offset, 0, LOFF_T_MAX,
                "a reference counter file offset", True)
    check_range("cookie", cookie, 0, U64_MAX, "a bpf_cookie", True)
    lookup_pid = pid if pid >= 0 else None
    path, off = resolve_uprobe(binary, symbol, offset=offset, address=address,
                               pid=lookup_pid)
    _check_in_file(path, off)
    kind = "uretprobe" if retprobe else "uprobe"
    where = symbol or (f"{address:#x}" if address is not None else f"{off:#x}")
    target = f"{path}:{where}" + (f" pid {pid}" if pid >= 0 else "")
    details = {"path": path, "offset": off, "pid": pid}
    event = None
    undo = []
    if mode in ("auto", "pmu"):
        event = _open_pmu(path, off, retprobe, pid, ref_ctr_offset)
        if event is None and mode == "pmu":
            raise NotSupportedError("the uprobe PMU", (4, 17), errnum=_errno.ENOENT,
                                    detail="no /sys/bus/event_source/devices/uprobe")
        details["mode"] = "pmu"
    if event is None:
        from .. import tracefs as _tracefs
        event, name = _open_legacy(path, off, retprobe, pid, ref_ctr_offset,
                                   (symbol or "").partition("+")[0])
        details.update(mode="legacy", event=f"{_tracefs.GROUP}/{name}")
        undo.append(lambda: _tracefs.remove_probe_event("uprobe", name))
    return attach_perf_event_fd(prog, event, kind=kind, target=target, cookie=cookie,
                                undo=undo, use_link=use_link, details=details)


def attach_uretprobe(prog: FdLike, binary: str = "", symbol: Optional[str] = None,
                     **kwargs: object) -> Link:
    """:func:`attach_uprobe` with ``retprobe=True``."""
    return attach_uprobe(prog, binary, symbol, retprobe=True, **kwargs)  # type: ignore[arg-type]


def attach_usdt(prog: FdLike, binary: str, name: str, provider: Optional[str] = None, *,
                pid: int = -1, mode: str = "auto", cookie: int = 0) -> MultiLink:
    """Attach to every site of USDT probe ``provider:name`` in ``binary`` (a
    ``"provider:name"`` string is accepted as ``name``), with the probe's semaphore
    counted by the kernel while attached (Linux 4.20). Returns one link for all sites;
    ``link.details["probes"]`` are the :class:`~pybpf.elf.usdt.UsdtProbe` objects (with
    each argument's size and location)."""
    from ..elf import usdt as _usdt
    check_pid(pid)
    if provider is None and ":" in name:
        provider, _, name = name.partition(":")
    path = _libs.resolve_binary(binary, pid if pid >= 0 else None)
    probes = _usdt.find_usdt(path, provider, name)
    links: List[Link] = []
    try:
        for probe in probes:
            links.append(attach_uprobe(prog, path, offset=probe.offset, pid=pid,
                                       ref_ctr_offset=probe.semaphore_offset, mode=mode,
                                       cookie=cookie))
    except BaseException:
        for link in links:
            link.close()
        raise
    return MultiLink("usdt", f"{path}:{probes[0].full_name}", links,
                     details={"probes": probes, "path": path})
