"""Maps of maps: ``BPF_MAP_TYPE_ARRAY_OF_MAPS`` and ``BPF_MAP_TYPE_HASH_OF_MAPS``."""

from __future__ import annotations

import ctypes
from typing import Any

from ..syscall import maps as _sys
from ..syscall.bpf import MapType
from ..syscall.fd import FD
from .base import Map
from .fdarray import FdArrayMap, FdValueCodec
from .spec import MapSpec

__all__ = ["ArrayOfMaps", "HashOfMaps"]


class _OfMaps(Map):
    holds = "map"

    def _value_codec(self, spec: MapSpec) -> Any:
        return FdValueCodec(spec.label, "map")

    def _create_fd(self, spec: MapSpec) -> FD:
        inner = spec.inner
        if inner is None:
            raise ValueError(f"{spec.label}: a map of maps needs inner=MapSpec(...) "
                             "describing the maps it holds")
        # the kernel copies the inner map's shape from a sample map, then forgets it
        with _sys.map_create(inner.type, inner.key_size, inner.value_size,
                             inner.max_entries, flags=inner.flags,
                             map_extra=inner.map_extra) as sample:
            return _sys.map_create(spec.type, spec.key_size, spec.value_size,
                                   spec.max_entries, flags=spec.flags, name=spec.name,
                                   inner_map_fd=sample, numa_node=spec.numa_node)

    def get_map(self, key: Any) -> Map:
        """Open the map stored under ``key`` (by its id, so it needs CAP_SYS_ADMIN),
        with the key and value types of the inner spec when known. ``KeyError`` if the
        slot is empty."""
        map_id = self[key]
        inner = self.spec.inner
        if inner is None:
            return Map.from_id(map_id)
        return Map.from_id(map_id, key=inner.key, value=inner.value)


class ArrayOfMaps(_OfMaps, FdArrayMap):
    """An array whose values are maps (``BPF_MAP_TYPE_ARRAY_OF_MAPS``, Linux 4.12).
    ``inner`` (a :class:`~pybpf.maps.spec.MapSpec`) gives the shape every stored map
    must have (``BPF_F_INNER_MAP`` in its flags relaxes ``max_entries``, Linux 5.10).
    Store a map (or its fd) at an index; reading gives the stored map's id, and
    :meth:`get_map` opens it."""

    map_types = (MapType.ARRAY_OF_MAPS,)
    spec_defaults = {"key": ctypes.c_uint32, "value": 4}


class HashOfMaps(_OfMaps):
    """A hash table whose values are maps (``BPF_MAP_TYPE_HASH_OF_MAPS``, Linux 4.12);
    see :class:`ArrayOfMaps`."""

    map_types = (MapType.HASH_OF_MAPS,)
    spec_defaults = {"value": 4}

    def _prepare_spec(self, spec: MapSpec) -> MapSpec:
        spec = super()._prepare_spec(spec)
        if spec.value_size != 4:
            raise ValueError(f"{spec.label}: values are 4-byte map descriptors, not "
                             f"{spec.value_size} bytes")
        return spec
