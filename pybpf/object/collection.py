"""Creating an object's maps and loading its programs: :class:`Collection`, which owns
(and closes) everything, and auto-attach from section names."""

from __future__ import annotations

import warnings
from typing import Any, Dict, List, Optional, Tuple

from .._records import replace
from ..maps.base import Map
from ..program import Program
from .spec import ObjectSpec

__all__ = ["Collection", "load_collection", "AUTO_ATTACH_KINDS"]

#: section kinds :meth:`Collection.attach_all` attaches; the others need parameters
#: (an interface, a socket, a perf event) or are run, not attached
AUTO_ATTACH_KINDS = ("tracepoint", "raw_tp", "kprobe", "kretprobe", "uprobe", "uretprobe",
                     "tp_btf", "fentry", "fexit", "fmod_ret", "lsm", "iter")


class Collection:
    """The live maps and programs of an object: ``maps[name]`` (global data maps by
    section name, ``".rodata"``), ``programs[name]`` (by function name), ``links``
    (from :meth:`attach_all`). ``close()`` (or ``with``) closes links, programs and
    maps."""

    def __init__(self, spec: ObjectSpec) -> None:
        self.spec = spec
        self.maps: Dict[str, Map] = {}
        self.programs: Dict[str, Program] = {}
        self.links: List[Any] = []

    def close(self) -> None:
        """Close every link, program and map (idempotent)."""
        for link in reversed(self.links):
            link.close()
        self.links = []
        for prog in self.programs.values():
            prog.close()
        for m in self.maps.values():
            m.close()

    def __enter__(self) -> "Collection":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"<Collection programs={sorted(self.programs)} "
                f"maps={sorted(self.maps)}>")

    def attach(self, name: str) -> Any:
        """Attach program ``name`` as its section name says and return the link (kept
        in :attr:`links`). ``ValueError`` for sections that need parameters (``xdp``,
        ``tc``, ``socket``, ``perf_event``, ``syscall``, a bare ``kprobe``...)."""
        from .. import link as _link
        info = self.spec.program_info[name]
        prog = self.programs[name]
        kind, target = info.kind.kind, info.kind.target
        if kind not in AUTO_ATTACH_KINDS or (not target and kind != "iter"):
            raise ValueError(f"program {name!r} (section {info.section!r}) cannot be "
                             f"attached from its section name alone")
        if kind == "tracepoint":
            group, _, event = target.partition("/")
            if not event:
                raise ValueError(f"section {info.section!r}: expected tracepoint/GROUP/NAME")
            lnk = _link.attach_tracepoint(prog, group, event)
        elif kind == "raw_tp":
            lnk = _link.attach_raw_tracepoint(prog, target)
        elif kind in ("kprobe", "kretprobe"):
            symbol, _, off = target.partition("+")
            fn = _link.attach_kprobe if kind == "kprobe" else _link.attach_kretprobe
            lnk = fn(prog, symbol, offset=int(off, 0)) if off else fn(prog, symbol)
        elif kind in ("uprobe", "uretprobe"):
            binary, sep, symbol = target.rpartition(":")
            if not sep or not binary:
                raise ValueError(f"section {info.section!r}: expected "
                                 f"{kind}/BINARY:FUNCTION")
            symbol, _, off = symbol.partition("+")
            lnk = _link.attach_uprobe(prog, binary, symbol or None,
                                      offset=int(off, 0) if off else 0,
                                      retprobe=kind == "uretprobe")
        elif kind == "iter":
            lnk = _link.attach_iter(prog, target=target)
        else:
            lnk = _link.attach_tracing(prog, kind=kind, target=target)
        self.links.append(lnk)
        return lnk

    def attach_all(self) -> Tuple[List[str], List[str]]:
        """Attach every program that can be attached from its section name alone;
        returns (attached names, skipped names). Skipped: XDP, tc, socket, perf_event,
        syscall programs and sections without a target."""
        done, skipped = [], []
        for name, info in self.spec.program_info.items():
            kind = info.kind
            if kind.kind not in AUTO_ATTACH_KINDS or (not kind.target and kind.kind != "iter"):
                skipped.append(name)
                continue
            self.attach(name)
            done.append(name)
        return done, skipped


def load_collection(spec: ObjectSpec, *, programs: Optional[List[str]] = None,
                    pin_dir: Optional[str] = None, log_level: int = 1) -> Collection:
    """Create the maps of ``spec`` (global data written, ``.rodata`` frozen), load its
    programs (or only those named in ``programs``) and return the :class:`Collection`.
    On any failure everything created so far is closed before the error propagates."""
    coll = Collection(spec)
    btf_fd = None
    try:
        for name, mspec in spec.maps.items():
            coll.maps[name] = mspec.create(pin_dir=pin_dir)
        for name, data in spec.data.items():
            m = data.map_spec.create()
            coll.maps[name] = m
            m[0] = bytes(data.initial)
            if data.readonly:
                m.freeze()
        _fill_values(spec, coll, "map")
        btf_fd = _load_btf(spec)
        wanted = programs if programs is not None else list(spec.programs)
        for name in wanted:
            pspec = spec.programs[name]
            info = spec.program_info[name]
            if btf_fd is not None and pspec.btf is None and not pspec.func_info \
                    and not pspec.line_info and (info.func_info or info.line_info):
                pspec = replace(pspec, btf=btf_fd, func_info=info.func_info,
                                line_info=info.line_info)
            if info.kind.kind in ("tp_btf", "fentry", "fexit", "fmod_ret", "lsm", "iter"):
                prog = _load_tracing(spec, name, pspec, coll.maps, log_level)
            else:
                prog = pspec.load(maps=coll.maps, log_level=log_level)
            prog.spec = spec.programs[name]         # not the copy holding the BTF fd
            coll.programs[name] = prog
        _fill_values(spec, coll, "prog")
    except BaseException:
        coll.close()
        raise
    finally:
        if btf_fd is not None:
            btf_fd.close()          # the programs keep their own references
    return coll


def _load_btf(spec: ObjectSpec) -> Any:
    """The object's BTF loaded (an owned FD), or None when the object has none or the
    kernel refuses it (then the programs load without func_info/line_info, with a
    warning)."""
    if spec.btf is None or not any(p.func_info or p.line_info
                                   for p in spec.program_info.values()):
        return None
    from ..syscall.progs import btf_load
    try:
        return btf_load(spec.btf)
    except OSError as exc:
        warnings.warn(f"the kernel refused the object's BTF, programs load without "
                      f"source lines: {exc}", RuntimeWarning, stacklevel=3)
        return None


def _fill_values(spec: ObjectSpec, coll: Collection, what: str) -> None:
    """Store the initial ``.values`` of kind ``what`` (``"map"``: maps of maps;
    ``"prog"``: prog arrays, for the programs loaded)."""
    for map_name, values in spec.map_values.items():
        target = coll.maps[map_name]
        for index, (kind, name) in sorted(values.items()):
            if kind != what:
                continue
            source: Any = coll.maps.get(name) if kind == "map" else coll.programs.get(name)
            if source is None:
                if kind == "prog":
                    continue                # not loaded (programs=[...])
                raise KeyError(f"map {map_name!r}: .values[{index}] names map {name!r}, "
                               f"which the object does not define")
            target[index] = source


def _load_tracing(spec: ObjectSpec, name: str, pspec: Any, maps: Dict[str, Map],
                  log_level: int) -> Program:
    from ..link.tracing import tracing_spec
    from ..syscall.fd import FD
    info = spec.program_info[name]
    tspec = tracing_spec(info.kind.kind, info.kind.target, pspec.instructions,
                         name=pspec.name, license=pspec.license)
    tspec.source_lines = False
    tspec.btf, tspec.func_info, tspec.line_info = pspec.btf, pspec.func_info, \
        pspec.line_info
    try:
        return tspec.load(maps=maps, log_level=log_level)
    finally:
        if isinstance(tspec.attach_btf_obj, FD):
            tspec.attach_btf_obj.close()
