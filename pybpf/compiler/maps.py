"""Map declarations: the BPF maps a module's programs use, described with the IR's
language types (:mod:`.types`). A declaration is a spec: it holds no file descriptor;
:meth:`MapDecl.spec` gives the :class:`pybpf.maps.MapSpec` that creates it. Both front
ends declare their maps with these classes (the Python language exposes them as
:mod:`pybpf.dsl.maps`, where their use in programs is described), and the shared
building blocks (:mod:`.blocks`) read their ``kind``, ``key``, ``value``, ``per_cpu``,
``max_entries`` and, for ring buffers, ``wakeup``.
"""

from __future__ import annotations

from typing import Any, Optional

from .types import IntType, sizeof, u32, u64

__all__ = [
    "MapDecl", "HashMap", "LRUHashMap", "PerCPUHashMap", "ArrayMap", "PerCPUArrayMap",
    "RingBuf", "PerfEventArray", "StackTraceMap", "Histogram", "QueueMap", "StackMap",
]


class MapDecl:
    """A map declaration: ``kind`` (a :class:`pybpf.syscall.bpf.MapType` name), ``key``
    and ``value`` language types, ``max_entries``, optional ``name``."""

    kind = "hash"
    per_cpu = False
    keyed = True

    def __init__(self, key: Any, value: Any, max_entries: int = 10240, *,
                 name: Optional[str] = None) -> None:
        for what, t in (("key", key), ("value", value)):
            if t is not None:
                sizeof(t)                          # TypeError for a non-type
        self.key = key
        self.value = value
        self.max_entries = max_entries
        self.name = name

    @property
    def int_value(self) -> bool:
        """True when values are integers (``m[k] += 1`` works)."""
        return isinstance(self.value, IntType)

    def spec(self, name: str) -> Any:
        """The :class:`pybpf.maps.MapSpec` of this map, called ``name``."""
        from ..maps.spec import MapSpec
        from ..syscall.bpf import MapType
        from .types import ctype_of
        key = ctype_of(self.key) if self.key is not None else 0
        value = ctype_of(self.value) if self.value is not None else 0
        return MapSpec(MapType[self.kind.upper()], key, value, self.max_entries,
                       name=(self.name or name)[:15])

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.key!r}, {self.value!r}, {self.max_entries})"


class HashMap(MapDecl):
    """A hash map (Linux 3.19). ``m[k] += 1`` inserts the key when absent."""

    kind = "hash"


class LRUHashMap(MapDecl):
    """A hash map that evicts the least recently used entry when full (Linux 4.10)."""

    kind = "lru_hash"


class PerCPUHashMap(MapDecl):
    """A hash map with one value per CPU (Linux 4.6): ``m[k] += 1`` needs no atomic
    operation; user space reads a list per key."""

    kind = "percpu_hash"
    per_cpu = True


class ArrayMap(MapDecl):
    """An array: keys ``0 .. max_entries-1`` (u32), all present, zero at start (Linux
    3.19)."""

    kind = "array"

    def __init__(self, value: Any, max_entries: int, *, name: Optional[str] = None) -> None:
        super().__init__(u32, value, max_entries, name=name)


class PerCPUArrayMap(ArrayMap):
    """An array with one value per CPU (Linux 4.6)."""

    kind = "percpu_array"
    per_cpu = True


class Histogram(ArrayMap):
    """A log2 histogram: 64 u64 slots, filled in a program with
    ``hist[log2(value)] += 1``, printed in user space as BCC does
    (:mod:`pybpf.events.histogram`)."""

    def __init__(self, slots: int = 64, *, name: Optional[str] = None) -> None:
        super().__init__(u64, slots, name=name)


class RingBuf(MapDecl):
    """A ring buffer of ``event`` records (a Struct), ``size`` bytes (a power of two,
    multiple of the page size; Linux 5.8; adaptive wake-ups use ``bpf_ringbuf_query``)."""

    kind = "ringbuf"
    keyed = False

    def __init__(self, event: Any, size: int = 256 * 1024, *, name: Optional[str] = None,
                 wakeup: str = "adaptive") -> None:
        super().__init__(None, None, size, name=name)
        sizeof(event)
        if wakeup not in ("adaptive", "per_event"):
            raise ValueError(f"wakeup must be 'adaptive' or 'per_event', not {wakeup!r}")
        self.event = event
        #: ``"adaptive"``: only the record that makes the ring cross a quarter full
        #: wakes the reader (the reader also polls every 5 ms; see
        #: :mod:`pybpf.events.wakeup`); ``"per_event"``: every record does
        self.wakeup = wakeup


class PerfEventArray(MapDecl):
    """A perf event array of ``event`` records: one buffer per CPU (Linux 4.4)."""

    kind = "perf_event_array"
    keyed = False

    def __init__(self, event: Any, *, name: Optional[str] = None) -> None:
        super().__init__(None, None, 0, name=name)
        sizeof(event)
        self.event = event

    def spec(self, name: str) -> Any:
        """The map spec: 4-byte keys and values, one entry per possible CPU."""
        from ..maps.percpu import possible_cpus
        from ..maps.spec import MapSpec
        from ..syscall.bpf import MapType
        return MapSpec(MapType.PERF_EVENT_ARRAY, 4, 4, possible_cpus(),
                       name=(self.name or name)[:15])


class QueueMap(MapDecl):
    """A FIFO of ``value`` items (Linux 4.20): ``q.push(v)`` in programs (0 or a negative
    error when full), ``q.pop(default)`` / ``q.peek(default)``; user space pops too."""

    kind = "queue"
    keyed = False

    def __init__(self, value: Any, max_entries: int = 1024, *, name: Optional[str] = None) -> None:
        super().__init__(None, value, max_entries, name=name)


class StackMap(QueueMap):
    """A LIFO of ``value`` items (Linux 4.20), used like :class:`QueueMap`."""

    kind = "stack"


class StackTraceMap(MapDecl):
    """Stack traces collected with ``stacks.stackid()`` (Linux 4.6): ``depth`` frames of
    u64 addresses per stack."""

    kind = "stack_trace"

    def __init__(self, max_entries: int = 10240, depth: int = 127, *,
                 name: Optional[str] = None) -> None:
        super().__init__(u32, u64[depth], max_entries, name=name)
        self.depth = depth
