"""Perf event arrays: where ``bpf_perf_event_output`` writes and ``bpf_perf_event_read``
reads (``BPF_MAP_TYPE_PERF_EVENT_ARRAY``). The reader of the output is another module."""

from __future__ import annotations

from ..syscall.bpf import MapType
from .fdarray import WriteOnlyFdArray
from .percpu import possible_cpus
from .spec import MapSpec

__all__ = ["PerfEventArray"]


class PerfEventArray(WriteOnlyFdArray):
    """A table of perf event descriptors, usually one per CPU
    (``BPF_MAP_TYPE_PERF_EVENT_ARRAY``, Linux 4.3). ``max_entries`` defaults to the
    number of possible CPUs. Store a perf event fd (from ``perf_event_open``) at an
    index; the kernel does not let user space read the slots back (lookups raise
    ``BPFError``), but ``del`` empties one. ``BPF_F_PRESERVE_ELEMS`` (Linux 5.10) keeps
    the events when the creating process closes the map."""

    map_types = (MapType.PERF_EVENT_ARRAY,)
    holds = "perf event"

    @classmethod
    def _spec_from_kwargs(cls, kwargs: dict) -> MapSpec:
        kwargs.setdefault("max_entries", possible_cpus())
        return super()._spec_from_kwargs(kwargs)
