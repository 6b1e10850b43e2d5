"""Ring buffers (``BPF_MAP_TYPE_RINGBUF``): creation only; reading is done by the ring
buffer reader."""

from __future__ import annotations

import mmap
from typing import Any

from ..syscall.bpf import MapType
from .keyless import KeylessMap
from .spec import MapSpec

__all__ = ["RingBuf"]


class RingBuf(KeylessMap):
    """A multi-producer ring buffer that programs write with ``bpf_ringbuf_output`` or
    ``bpf_ringbuf_reserve``/``submit`` (``BPF_MAP_TYPE_RINGBUF``, Linux 5.8).

    ``RingBuf(size=256 * 1024)``: the size in bytes (``max_entries``) must be a power of
    two and a multiple of the page size. It has no keys or values; a reader maps it.
    """

    map_types = (MapType.RINGBUF,)
    spec_defaults = {"key": 0, "value": 0}
    instead = "a ring buffer reader"

    @classmethod
    def _spec_from_kwargs(cls, kwargs: dict) -> MapSpec:
        size = kwargs.pop("size", None)
        if size is not None:
            if "max_entries" in kwargs:
                raise TypeError("RingBuf(): give size= or max_entries=, not both")
            kwargs["max_entries"] = size
        return super()._spec_from_kwargs(kwargs)

    def _prepare_spec(self, spec: MapSpec) -> MapSpec:
        spec = super()._prepare_spec(spec)
        size = spec.max_entries
        if spec.value_size:
            raise ValueError(f"{spec.label}: a ring buffer has no value type")
        if size <= 0 or size & (size - 1) or size % mmap.PAGESIZE:
            raise ValueError(f"{spec.label}: the size ({size} bytes) must be a power of two "
                             f"and a multiple of the page size ({mmap.PAGESIZE})")
        return spec

    @property
    def size(self) -> int:
        """The data area's size in bytes."""
        return self.max_entries

    def pop(self, *args: Any) -> Any:  # type: ignore[override]
        """Not available: read with a ring buffer reader."""
        self._no_keys()

    def clear(self) -> None:
        """Not available: read with a ring buffer reader."""
        self._no_keys()

    def __contains__(self, value: Any) -> bool:
        self._no_keys()
