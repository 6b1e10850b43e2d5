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
"""

from __future__ import annotations

from ..syscall.bpf import MapFlags, MapType
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
from .spec import MapSpec, Pinning, type_name
from .stack_trace import BuildIdFrame, StackTraceMap

__all__ = [
    "Map", "MapSpec", "Pinning", "MapClosedError", "ElemFlags", "MapFlags", "MapType",
    "HashMap", "LRUHashMap", "ArrayMap", "PerCPUHashMap", "LRUPerCPUHashMap",
    "PerCPUArrayMap", "LPMTrieMap", "LPMKey", "QueueMap", "StackMap", "StackTraceMap",
    "BuildIdFrame", "PerfEventArray", "RingBuf", "ProgArray", "ArrayOfMaps", "HashOfMaps",
    "CgroupArray", "BloomFilter", "FdArrayMap", "KeylessMap", "Codec", "PerCPUCodec",
    "possible_cpus", "type_name", "BPFFS_ROOT", "ensure_bpffs", "DEFAULT_CHUNK",
]


def _load_all() -> None:
    """Every map class is registered once this package is imported (it is, by now)."""
