"""Plain descriptions of what a BPF ELF object holds: :class:`ObjectSpec`,
:class:`GlobalData` and :class:`Variable`."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple, Union

from ..maps.spec import MapSpec
from ..program import ProgramSpec
from .sections import SectionKind

__all__ = ["ObjectSpec", "GlobalData", "Variable", "ProgramInfo"]


@dataclass
class Variable:
    """A global variable: its data section, byte offset and size there."""

    section: str
    offset: int
    size: int


@dataclass
class GlobalData:
    """A global data section (``.data``, ``.rodata``, ``.bss``, ``.data.*``,
    ``.rodata.*``), loaded as a one-entry array map. ``initial`` is its bytes
    (editable before :meth:`ObjectSpec.load`); ``readonly`` sections are frozen once
    their initial value is written."""

    section: str
    initial: bytearray
    readonly: bool
    map_spec: MapSpec


@dataclass
class ProgramInfo:
    """Where a program came from: its ELF section and what the section name means,
    and its ``func_info``/``line_info`` records from ``.BTF.ext`` (type ids and string
    offsets of :attr:`ObjectSpec.btf`; loaded with it by
    :func:`~pybpf.object.collection.load_collection`)."""

    section: str
    kind: SectionKind
    func_info: bytes = b""
    line_info: bytes = b""


@dataclass
class ObjectSpec:
    """What a BPF object describes, before anything is created in the kernel.

    ``programs`` and ``maps`` are keyed by the program's function name and the map's
    name (global data maps by their section name, ``".rodata"``); ``program_info``
    gives each program's section; ``data`` the global data sections; ``variables`` the
    global variables by name (from the object's BTF); ``license`` and
    ``kernel_version`` come from the ``license`` and ``version`` sections; ``btf`` is
    the object's BTF as the kernel accepts it (loaded with the programs, for their
    ``func_info``/``line_info``), ``externs`` the resolved ``__kconfig``/``__ksym``
    externs (:class:`~pybpf.object.externs.Extern` by name) and ``map_values`` the
    initial ``.values`` of prog arrays and maps of maps (map name -> {index: (``"prog"``
    or ``"map"``, name)}), stored once everything is loaded.
    """

    programs: Dict[str, ProgramSpec] = field(default_factory=dict)
    program_info: Dict[str, ProgramInfo] = field(default_factory=dict)
    maps: Dict[str, MapSpec] = field(default_factory=dict)
    data: Dict[str, GlobalData] = field(default_factory=dict)
    variables: Dict[str, Variable] = field(default_factory=dict)
    license: str = ""
    kernel_version: Optional[int] = None
    btf: Optional[bytes] = None
    externs: Dict[str, Any] = field(default_factory=dict)
    map_values: Dict[str, Dict[int, Tuple[str, str]]] = field(default_factory=dict)

    def set_global(self, name: str, value: Union[bytes, bytearray, int, float]) -> None:
        """Set the initial value of global variable ``name`` (e.g. a ``const volatile``
        in ``.rodata``) before :meth:`load`: bytes of the variable's size, or an int
        (little-endian, of the variable's size) or a float (4 or 8 bytes)."""
        var = self.variables.get(name)
        if var is None:
            known = ", ".join(sorted(self.variables)) or "none"
            raise KeyError(f"no global variable {name!r} (known: {known})")
        if isinstance(value, (bytes, bytearray)):
            raw = bytes(value)
        elif isinstance(value, float):
            if var.size not in (4, 8):
                raise ValueError(f"variable {name!r} has {var.size} bytes: not a float")
            raw = struct.pack("<f" if var.size == 4 else "<d", value)
        else:
            raw = int(value).to_bytes(var.size, "little", signed=value < 0)
        if len(raw) != var.size:
            raise ValueError(f"variable {name!r} has {var.size} bytes, got {len(raw)}")
        self.data[var.section].initial[var.offset:var.offset + var.size] = raw

    def load(self, **kwargs: Any) -> "Any":
        """Create the maps, load the programs and return the
        :class:`~pybpf.object.collection.Collection` owning them (see
        :func:`~pybpf.object.collection.load_collection` for the keywords)."""
        from .collection import load_collection
        return load_collection(self, **kwargs)

    def program_names(self) -> List[str]:
        """The program names in object order."""
        return list(self.programs)
