"""Per-CPU maps: one value per possible CPU under each key.

``BPF_MAP_TYPE_PERCPU_HASH`` and ``BPF_MAP_TYPE_PERCPU_ARRAY`` (Linux 4.6),
``BPF_MAP_TYPE_LRU_PERCPU_HASH`` (Linux 4.10). From user space a value is a list with
one entry per *possible* CPU (``/sys/devices/system/cpu/possible``, which may count CPUs
that are offline or absent); the kernel lays them out 8-byte aligned, which the
conversion handles.
"""

from __future__ import annotations

from typing import Any

from ..syscall.bpf import MapType
from .array import ArrayMap
from .base import Map
from .codec import Codec, PerCPUCodec
from .spec import MapSpec

__all__ = ["possible_cpus", "parse_cpu_list", "PerCPUHashMap", "LRUPerCPUHashMap",
           "PerCPUArrayMap"]

# the CPU lists live in the syscall layer (perf buffers need them without the maps)
from ..syscall.cpus import parse_cpu_list, possible_cpus  # noqa: E402


class _PerCPU(Map):
    def _value_codec(self, spec: MapSpec) -> Any:
        return PerCPUCodec(Codec(spec.value, spec.label, "value"), possible_cpus())

    @property
    def ncpus(self) -> int:
        """Entries per value: the number of possible CPUs."""
        return self._vc.ncpus  # type: ignore[no-any-return]

    def sum(self, key: Any) -> Any:
        """The per-CPU values of ``key`` added up (integer or float values)."""
        return sum(self[key])


class PerCPUHashMap(_PerCPU):
    """A hash table with a value per CPU (``BPF_MAP_TYPE_PERCPU_HASH``, Linux 4.6)."""

    map_types = (MapType.PERCPU_HASH,)


class LRUPerCPUHashMap(_PerCPU):
    """An LRU hash table with a value per CPU (``BPF_MAP_TYPE_LRU_PERCPU_HASH``,
    Linux 4.10)."""

    map_types = (MapType.LRU_PERCPU_HASH,)


class PerCPUArrayMap(_PerCPU, ArrayMap):
    """An array with a value per CPU (``BPF_MAP_TYPE_PERCPU_ARRAY``, Linux 4.6). It
    cannot be memory-mapped."""

    map_types = (MapType.PERCPU_ARRAY,)
