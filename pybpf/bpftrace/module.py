"""What lowering a bpftrace program gives the runtime (:mod:`.lower` makes it,
:mod:`.runtime` runs it, :mod:`.cache` keeps it between runs): the record classes of a
lowered module and the names the runtime needs, without the compiler (a cached
program's run never imports the front half or the compiler's back end).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from .._records import field, record
from .types import SizedType

__all__ = ["LoweredModule", "LoweredProgram", "Site", "MapLayout", "EVENTS_MAP",
           "ELAPSED_MAP", "JOIN_ARGS", "JOIN_ARG_SIZE", "full_name"]

#: ``join()``'s record: this many arguments of this many bytes after the site id
JOIN_ARGS, JOIN_ARG_SIZE = 16, 1024

#: the ring buffer of async actions
EVENTS_MAP = "bt_events"
#: one u64: the ktime_get_ns() of the run's start (``elapsed``)
ELAPSED_MAP = "bt_elapsed"


@record
class Site:
    """One async action in the code: ``kind`` (printf, exit, time, clear, ...), the
    ``probe`` index, ``fmt`` (format text or map name), ``args`` as (type, offset) in
    the record, ``size`` of the record, ``extra`` (print's top/div...)."""

    id: int
    kind: str
    probe: int
    fmt: Optional[str]
    args: List[Tuple[SizedType, int]]
    size: int
    extra: Any = None


@record
class MapLayout:
    """A bpftrace map as stored: ``name`` (``@x``), ``bpf_name``, ``kind`` (its value
    kind), ``keys`` (types and offsets), ``key_size`` (user key), ``value`` type,
    ``value_size``, ``per_cpu``, ``array`` (scalar count map: a per-CPU array)."""

    name: str
    bpf_name: str
    kind: str
    keys: List[Tuple[SizedType, int]]
    key_size: int
    value: SizedType
    value_size: int
    per_cpu: bool
    lhist: Optional[Tuple[int, int, int]] = None
    array: bool = False

    @property
    def full_key_size(self) -> int:
        """The BPF key size (hist/lhist/avg/stats keys end with an 8-byte index)."""
        if self.array:
            return 4
        extra = 8 if self.kind in ("hist", "lhist", "avg", "stats") else 0
        return max(self.key_size, 8 if not self.keys else 0) + extra

    @property
    def scalar(self) -> bool:
        """A map without keys (``@x``)."""
        return not self.keys


@record
class LoweredProgram:
    """One BPF program: ``name``, the ``probe`` index, the attach points it serves
    (expanded), its program type name and instructions."""

    name: str
    probe: int
    attach: List[Any]
    prog_type: str
    provider: str
    instructions: List[Any]
    #: bpftrace 0.17's ELF section name: ``s_<probe>_<n>`` (``--emit-elf``)
    section: str = ""
    #: attached at run time, not with the rest (the breakpoint of a function-form
    #: watchpoint, set where its setup program says: :mod:`.watchpoints`)
    deferred: bool = False
    #: the source-line BTF ``(blob, func_info, line_info)`` built already (a program
    #: from the cache of compiled programs), else None: built at load
    btf: Optional[Tuple[bytes, bytes, bytes]] = None


@record
class LoweredModule:
    """Everything the runtime loads: programs, maps (declarations in ``unit``),
    ``layouts`` by bpftrace name, async ``sites``, ``probe_names`` (ids of the
    ``probe`` builtin) and the stack maps."""

    programs: List[LoweredProgram]
    unit: Any
    layouts: Dict[str, MapLayout]
    sites: List[Site]
    probe_names: List[str]
    stack_maps: Dict[str, str] = field(default_factory=dict)
    strlen: int = 64
    #: function-form watchpoints by id: (breakpoint program's name, attach point)
    watchpoints: List[Tuple[str, Any]] = field(default_factory=list)


def full_name(ap: Any) -> str:
    """The ``probe`` builtin's text for an expanded attach point."""
    p = ap.provider
    if p in ("BEGIN", "END"):
        return p
    if p == "tracepoint":
        return f"tracepoint:{ap.target}:{ap.func}"
    if p in ("profile", "interval"):
        return f"{p}:{ap.target}:{ap.freq}"
    if p in ("software", "hardware"):
        return f"{p}:{ap.target}:{ap.freq}" if ap.freq else f"{p}:{ap.target}"
    if p in ("uprobe", "uretprobe"):
        return f"{p}:{ap.target}:{ap.func}" if ap.func else f"{p}:{ap.target}:{ap.address}"
    if p == "usdt":
        return f"usdt:{ap.target}:{ap.ns}:{ap.func}" if ap.ns else f"usdt:{ap.target}:{ap.func}"
    if p in ("kprobe", "kretprobe", "kfunc", "kretfunc"):
        return f"{p}:{ap.func}"
    if p in ("watchpoint", "asyncwatchpoint"):
        return ap.name()
    return ap.raw
