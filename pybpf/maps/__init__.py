"""pybpf.maps: BPF maps as Python objects.

A :class:`MapSpec` describes a map; a :class:`Map` is a live one that owns its file
descriptor and behaves like a ``dict`` (``m[k]``, ``m[k] = v``, ``del m[k]``, ``in``,
iteration, :meth:`~Map.get`, :meth:`~Map.update` with flags) plus batches, pinning and
freezing. One class per family:

=====================  =========================================================
:class:`HashMap`       hash, and :class:`LRUHashMap`
:class:`ArrayMap`      array, memory-mappable with ``MapFlags.MMAPABLE``
per-CPU                :class:`PerCPUHashMap`, :class:`LRUPerCPUHashMap`,
                       :class:`PerCPUArrayMap` (values: one per possible CPU)
:class:`LPMTrieMap`    longest-prefix match (:class:`LPMKey`)
:class:`QueueMap`      FIFO, and :class:`StackMap` (LIFO): push / pop / peek
:class:`StackTraceMap` stacks from ``bpf_get_stackid``
:class:`PerfEventArray` perf event fds (output reader: elsewhere)
:class:`RingBuf`       ring buffer (creation; reader: elsewhere)
:class:`ProgArray`     programs for tail calls
:class:`ArrayOfMaps`   maps of maps, and :class:`HashOfMaps`
:class:`CgroupArray`   cgroups
:class:`BloomFilter`   push and ``in``
=====================  =========================================================

``Map(spec)`` picks the class from the spec's type; other map types get the generic
``Map`` behaviour.

The classes are imported on first use (``from pybpf.maps import HashMap`` imports
``pybpf.maps.hash`` only), and ``Map(spec)`` imports the one module that handles the
spec's type: a tool that creates a ring buffer and an array does not pay for the other
families at start-up.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Dict, List

from .._lazy import lazy_exports
from ..syscall.bpf import MapFlags, MapType
from .spec import MapSpec, Pinning, type_name

if TYPE_CHECKING:  # pragma: no cover
    from .array import ArrayMap
    from .base import DEFAULT_CHUNK, ElemFlags, Map, MapClosedError
    from .bloom import BloomFilter
    from .bpffs import BPFFS_ROOT, ensure_bpffs
    from .cgroup import CgroupArray
    from .codec import Codec, PerCPUCodec
    from .fdarray import FdArrayMap
    from .hash import HashMap, LRUHashMap
    from .keyless import KeylessMap
    from .lpm import LPMKey, LPMTrieMap
    from .of_maps import ArrayOfMaps, HashOfMaps
    from .percpu import LRUPerCPUHashMap, PerCPUArrayMap, PerCPUHashMap, possible_cpus
    from .perf import PerfEventArray
    from .prog_array import ProgArray
    from .queue import QueueMap, StackMap
    from .ringbuf import RingBuf
    from .stack_trace import BuildIdFrame, StackTraceMap

__all__ = [
    "Map", "MapSpec", "Pinning", "MapClosedError", "ElemFlags", "MapFlags", "MapType",
    "HashMap", "LRUHashMap", "ArrayMap", "PerCPUHashMap", "LRUPerCPUHashMap",
    "PerCPUArrayMap", "LPMTrieMap", "LPMKey", "QueueMap", "StackMap", "StackTraceMap",
    "BuildIdFrame", "PerfEventArray", "RingBuf", "ProgArray", "ArrayOfMaps", "HashOfMaps",
    "CgroupArray", "BloomFilter", "FdArrayMap", "KeylessMap", "Codec", "PerCPUCodec",
    "possible_cpus", "type_name", "BPFFS_ROOT", "ensure_bpffs", "DEFAULT_CHUNK",
]

#: the module that defines each public name imported on first use
_HOME: Dict[str, str] = {
    "ArrayMap": "array", "Map": "base", "DEFAULT_CHUNK": "base", "ElemFlags": "base",
    "MapClosedError": "base", "BloomFilter": "bloom", "BPFFS_ROOT": "bpffs",
    "ensure_bpffs": "bpffs", "CgroupArray": "cgroup", "Codec": "codec",
    "PerCPUCodec": "codec", "FdArrayMap": "fdarray", "HashMap": "hash",
    "LRUHashMap": "hash", "KeylessMap": "keyless", "LPMKey": "lpm", "LPMTrieMap": "lpm",
    "ArrayOfMaps": "of_maps", "HashOfMaps": "of_maps", "LRUPerCPUHashMap": "percpu",
    "PerCPUArrayMap": "percpu", "PerCPUHashMap": "percpu", "possible_cpus": "percpu",
    "PerfEventArray": "perf", "ProgArray": "prog_array", "QueueMap": "queue",
    "StackMap": "queue", "RingBuf": "ringbuf", "BuildIdFrame": "stack_trace",
    "StackTraceMap": "stack_trace",
}

#: the module whose class handles each map type (the classes' ``map_types``; a test
#: checks the two agree)
_MODULE_OF_TYPE: Dict[int, str] = {
    MapType.ARRAY: "array", MapType.BLOOM_FILTER: "bloom",
    MapType.CGROUP_ARRAY: "cgroup", MapType.HASH: "hash", MapType.LRU_HASH: "hash",
    MapType.LPM_TRIE: "lpm", MapType.ARRAY_OF_MAPS: "of_maps",
    MapType.HASH_OF_MAPS: "of_maps", MapType.PERCPU_HASH: "percpu",
    MapType.LRU_PERCPU_HASH: "percpu", MapType.PERCPU_ARRAY: "percpu",
    MapType.PERF_EVENT_ARRAY: "perf", MapType.PROG_ARRAY: "prog_array",
    MapType.QUEUE: "queue", MapType.STACK: "queue", MapType.RINGBUF: "ringbuf",
    MapType.STACK_TRACE: "stack_trace",
}


__getattr__ = lazy_exports(__name__, _HOME, globals())


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(__all__))


def load_class_module(map_type: int) -> None:
    """Import the module whose :class:`Map` subclass handles ``map_type`` (it registers
    itself on import); nothing for a type without one."""
    home = _MODULE_OF_TYPE.get(int(map_type))
    if home is not None:
        importlib.import_module(f"{__name__}.{home}")


def _load_all() -> None:
    """Import every map class (each registers the types it handles)."""
    for home in sorted(set(_HOME.values())):
        importlib.import_module(f"{__name__}.{home}")
