"""Bloom filters (``BPF_MAP_TYPE_BLOOM_FILTER``)."""

from __future__ import annotations

from typing import Any

from ..syscall.bpf import MapType
from .keyless import KeylessMap
from .spec import MapSpec

__all__ = ["BloomFilter"]


class BloomFilter(KeylessMap):
    """A bloom filter over values (``BPF_MAP_TYPE_BLOOM_FILTER``, Linux 5.16).

    :meth:`push` adds a value; ``value in bf`` is False when the value was certainly
    never added and True when it probably was. Values cannot be removed or listed.
    ``hashes`` (1-15, default 5) is the number of hash functions (``map_extra``);
    ``max_entries`` sizes the bit array for that many values.

    ``BloomFilter(value=c_uint32, max_entries=1000, hashes=3)``
    """

    map_types = (MapType.BLOOM_FILTER,)
    instead = "push() and `in`"

    @classmethod
    def _spec_from_kwargs(cls, kwargs: dict) -> MapSpec:
        hashes = kwargs.pop("hashes", None)
        if hashes is not None:
            if "map_extra" in kwargs:
                raise TypeError("BloomFilter(): give hashes= or map_extra=, not both")
            if not isinstance(hashes, int) or not 1 <= hashes <= 15:
                raise ValueError(f"BloomFilter(): hashes must be 1..15, not {hashes!r}")
            kwargs["map_extra"] = hashes
        return super()._spec_from_kwargs(kwargs)

    def _prepare_spec(self, spec: MapSpec) -> MapSpec:
        spec = super()._prepare_spec(spec)
        if spec.value_size == 0:
            raise ValueError(f"{spec.label}: a bloom filter needs a value type")
        return spec

    @property
    def hashes(self) -> int:
        """Number of hash functions (0 means the kernel's default, 5)."""
        return self.spec.map_extra & 0xF

    def push(self, value: Any) -> None:
        """Add ``value``."""
        with self._locked() as ops:
            self._vc.pack_into(ops.value, 0, value)
            ops.push()

    def __contains__(self, value: Any) -> bool:
        with self._locked() as ops:
            self._vc.pack_into(ops.value, 0, value)
            return ops.peek()

    def pop(self, *args: Any) -> Any:  # type: ignore[override]
        """Not available: nothing can be removed from a bloom filter."""
        raise TypeError(f"{self.spec.label}: nothing can be removed from a bloom filter")

    def clear(self) -> None:
        """Not available: nothing can be removed from a bloom filter."""
        raise TypeError(f"{self.spec.label}: nothing can be removed from a bloom filter")
