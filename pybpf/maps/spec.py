"""``MapSpec``: what a map should be, independent of any kernel.

A spec is plain data (it can be built in code, compared, copied and, later, read from an
ELF file); :meth:`MapSpec.create` turns it into a live :class:`~pybpf.maps.base.Map`.
"""

from __future__ import annotations

import enum
import re
from typing import TYPE_CHECKING, Any, Optional, Union

from .._enum import enum_of
from .._records import record, replace
from ..syscall.bpf import MapType
from ..syscall.errors import check_unsigned
from .codec import TypeSpec, describe_type, type_size

if TYPE_CHECKING:  # pragma: no cover
    from ..syscall.objects import MapInfo
    from .base import Map

__all__ = ["MapSpec", "Pinning", "type_name"]

_NAME_RE = re.compile(r"[A-Za-z0-9_.]{0,15}\Z")


@enum_of(enum.Enum)
class Pinning:
    """Whether :meth:`MapSpec.create` pins the map.

    ``BY_NAME``: at ``<pin_dir>/<name>`` (``/sys/fs/bpf`` by default); when that file
    exists already the pinned map is reused, after checking it matches the spec.
    """

    NONE = "none"
    BY_NAME = "by_name"


def type_name(map_type: Union[MapType, int]) -> str:
    """The lower-case name of a map type, as bpftool prints it (``"percpu_hash"``), or
    the number for a type this library does not know."""
    try:
        return MapType(map_type).name.lower()
    except ValueError:
        return str(int(map_type))


@record
class MapSpec:
    """A map's description.

    ``key`` and ``value`` are ctypes types (``c_uint32``, a ``Structure``, an array) or
    byte sizes (see :mod:`pybpf.maps.codec`); ``flags`` are ``map_flags``
    (:class:`~pybpf.syscall.bpf.MapFlags`); ``name`` is at most 15 letters, digits, ``_``
    or ``.``; ``inner`` describes the inner maps of a map-in-map; ``map_extra`` is the
    type's extra parameter (bloom filter: number of hash functions, Linux 5.16);
    ``numa_node`` places the map on a NUMA node; ``btf`` describes the key and value
    types to the kernel with BTF built from their ctypes definitions (Linux 4.18), so
    ``bpftool map dump`` prints field names (keyless and fd-valued map types take none).
    """

    type: Union[MapType, int]
    key: TypeSpec = 0
    value: TypeSpec = 0
    max_entries: int = 0
    flags: int = 0
    name: str = ""
    pinning: Pinning = Pinning.NONE
    inner: Optional["MapSpec"] = None
    map_extra: int = 0
    numa_node: Optional[int] = None
    btf: bool = False

    def __post_init__(self) -> None:
        try:
            self.type = MapType(self.type)
        except ValueError:
            self.type = int(self.type)
        self.validate()

    @property
    def key_size(self) -> int:
        """The key size in bytes."""
        return type_size(self.key)

    @property
    def value_size(self) -> int:
        """The value size in bytes (per CPU for per-CPU maps)."""
        return type_size(self.value)

    @property
    def label(self) -> str:
        """How messages name the map: ``map 'counts' (hash)``."""
        kind = type_name(self.type)
        return f"map {self.name!r} ({kind})" if self.name else f"{kind} map"

    def validate(self) -> None:
        """Raise ``ValueError``/``TypeError`` for what no kernel accepts: a bad name, a
        key or value type that is neither a ctypes type nor a size, a negative size."""
        if not isinstance(self.name, str) or not _NAME_RE.match(self.name):
            raise ValueError(f"map name {self.name!r} must be at most 15 characters among "
                             "letters, digits, '_' and '.'")
        for field, size in (("key size", type_size(self.key)),
                            ("value size", type_size(self.value))):
            check_unsigned(f"{self.label}: {field}", size)
        check_unsigned(f"{self.label}: max_entries", self.max_entries)
        check_unsigned(f"{self.label}: flags", self.flags)
        check_unsigned(f"{self.label}: map_extra", self.map_extra, 64)
        if self.pinning is Pinning.BY_NAME and not self.name:
            raise ValueError(f"{self.label}: pinning by name needs a name")

    def copy(self, **changes: Any) -> "MapSpec":
        """A copy with ``changes`` applied."""
        return replace(self, **changes)

    def describe(self) -> str:
        """One line: type, key and value layouts, size, flags."""
        return (f"{self.label}: key {describe_type(self.key)}, value "
                f"{describe_type(self.value)}, max_entries {self.max_entries}, "
                f"flags {self.flags:#x}")

    def mismatch(self, info: "MapInfo") -> Optional[str]:
        """Why the existing map ``info`` does not match this spec, or None."""
        checks = (("type", int(self.type), int(info.type)),
                  ("key size", self.key_size, info.key_size),
                  ("value size", self.value_size, info.value_size),
                  ("max_entries", self.max_entries, info.max_entries),
                  ("flags", self.flags, info.map_flags))
        for what, want, have in checks:
            if want != have:
                return f"{what} is {have}, the spec says {want}"
        return None

    def create(self, *, pin_dir: Optional[str] = None) -> "Map":
        """Create the map (or, with :attr:`Pinning.BY_NAME`, reuse the pinned one) and
        return the live :class:`~pybpf.maps.base.Map` of the matching subclass."""
        from .base import Map
        return Map(self, pin_dir=pin_dir)
