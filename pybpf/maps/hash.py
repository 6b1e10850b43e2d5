"""Hash maps: ``BPF_MAP_TYPE_HASH`` and ``BPF_MAP_TYPE_LRU_HASH``."""

from __future__ import annotations

from ..syscall.bpf import MapType
from .base import Map

__all__ = ["HashMap", "LRUHashMap"]


class HashMap(Map):
    """A hash table (``BPF_MAP_TYPE_HASH``, Linux 3.19): any key, any value, at most
    ``max_entries`` elements (an insert into a full map raises ``BPFError`` ``E2BIG``).
    ``BPF_F_NO_PREALLOC`` allocates elements on demand.

    ``HashMap(key=c_uint32, value=c_uint64, max_entries=1024, name="counts")``
    """

    map_types = (MapType.HASH,)


class LRUHashMap(Map):
    """A hash table that evicts the least recently used element when full
    (``BPF_MAP_TYPE_LRU_HASH``, Linux 4.10). ``BPF_F_NO_COMMON_LRU`` keeps one LRU list
    per CPU."""

    map_types = (MapType.LRU_HASH,)
