"""State shared by every function compiled for one module: the maps its programs use,
its load-time constants (laid out in one ``.rodata`` value), its print sites (records
formatted in user space) and the drop counters of its ring buffers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, NamedTuple, Optional, Tuple

if TYPE_CHECKING:        # annotations only: a cached tool's start does not import the assembler
    from ..asm.instruction import SourceLocation

__all__ = ["Unit", "PrintSite", "PRINT_MAP", "RODATA_MAP", "DROPS_MAP", "DEFAULTS_MAP"]

#: the ring buffer that carries print() records to user space
PRINT_MAP = "__pybpf_print"
#: the frozen array map holding load-time constants
RODATA_MAP = ".rodata"
#: per-CPU counters of records a full ring buffer refused, one slot per ring
DROPS_MAP = "__pybpf_drops"
#: one per-CPU scratch value: where ``m.setdefault(k)`` points when the map is full
DEFAULTS_MAP = "__pybpf_default"
#: how many rings a module can count drops for
MAX_RINGS = 64


class PrintSite(NamedTuple):
    """One print site (the DSL's ``print()`` call): its ``id``, the ``parts`` (literal
    ``str``, or ``(kind, offset, size, signed, spec, conversion)`` with ``kind``
    ``"int"`` or ``"str"``), the record ``size`` and where it is (``loc``)."""

    id: int
    parts: Tuple[Any, ...]
    size: int
    loc: Optional[SourceLocation]
    end: str = "\n"


class Unit:
    """Module-wide compile state. ``rodata``: load-time constants are read from the
    ``.rodata`` map (else compiled in)."""

    def __init__(self, rodata: bool = False) -> None:
        self.rodata = rodata
        self.maps: Dict[str, Any] = {}                 # map name -> declaration
        self.map_names: Dict[int, str] = {}            # id(declaration) -> name
        self.consts: Dict[str, Tuple[Any, int]] = {}    # name -> (const, offset)
        self.rodata_size = 0
        self.prints: List[PrintSite] = []
        self.drop_slots: Dict[str, int] = {}           # ring name -> slot in DROPS_MAP

    def drop_slot(self, ring: str) -> int:
        """The slot of ring buffer ``ring`` in the drop counters (adds the map)."""
        if ring not in self.drop_slots:
            if DROPS_MAP not in self.maps:
                from .maps import PerCPUArrayMap
                from .types import u64
                decl = PerCPUArrayMap(u64, MAX_RINGS, name=DROPS_MAP)
                self.maps[DROPS_MAP] = decl
                self.map_names[id(decl)] = DROPS_MAP
            if len(self.drop_slots) >= MAX_RINGS:
                raise ValueError(f"more than {MAX_RINGS} ring buffers in one module")
            self.drop_slots[ring] = len(self.drop_slots)
        return self.drop_slots[ring]

    def defaults_map(self, size: int) -> str:
        """The per-CPU scratch map for ``setdefault()`` misses, at least ``size`` bytes
        a value (added, or grown, here); returns its name."""
        old = self.maps.get(DEFAULTS_MAP)
        if old is None or old.value.count < size:
            from .maps import PerCPUArrayMap
            from .types import u8
            decl = PerCPUArrayMap(u8[max(size, old.value.count if old else 0)], 1,
                                  name=DEFAULTS_MAP)
            self.maps[DEFAULTS_MAP] = decl
            self.map_names[id(decl)] = DEFAULTS_MAP
        return DEFAULTS_MAP

    def map_name(self, decl: Any, global_name: str) -> str:
        """The map name of ``decl`` (first seen as global ``global_name``)."""
        key = id(decl)
        if key not in self.map_names:
            name = (decl.name or global_name)[:15]
            base, n = name, 1
            while name in self.maps and self.maps[name] is not decl:
                n += 1
                name = f"{base[:13]}_{n}"
            self.map_names[key] = name
            self.maps[name] = decl
        return self.map_names[key]

    def const_offset(self, name: str, c: Any) -> int:
        """The ``.rodata`` offset of constant ``name`` (allocated on first use); ``c``
        has the constant's integer ``type`` (a :class:`pybpf.dsl.types.Const`)."""
        if name not in self.consts:
            size = c.type.bits // 8
            off = (self.rodata_size + size - 1) // size * size
            self.consts[name] = (c, off)
            self.rodata_size = off + size
        return self.consts[name][1]

    def add_print(self, parts: Tuple[Any, ...], size: int, loc: Optional[SourceLocation],
                  end: str = "\n") -> PrintSite:
        """Register a print site."""
        site = PrintSite(len(self.prints), parts, size, loc, end)
        self.prints.append(site)
        return site
