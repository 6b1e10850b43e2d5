"""Common ground of maps without keys (queues, stacks, bloom filters, ring buffers): the
dict-like operations raise a ``TypeError`` that says what to use instead."""

from __future__ import annotations

from typing import Any, NoReturn

from .base import Map
from .spec import MapSpec

__all__ = ["KeylessMap"]


class KeylessMap(Map):
    """A map with ``key_size`` 0. :attr:`instead` names the operations it offers."""

    spec_defaults = {"key": 0}
    #: what to use instead of the dict operations, for messages
    instead = "push(), pop() and peek()"

    def _prepare_spec(self, spec: MapSpec) -> MapSpec:
        spec = super()._prepare_spec(spec)
        if spec.key_size != 0:
            raise ValueError(f"{spec.label}: this map type has no keys (key must be 0, "
                             f"not {spec.key_size} bytes)")
        return spec

    def _no_keys(self, *args: Any, **kwargs: Any) -> NoReturn:
        """Not available: this map type has no keys (see :attr:`instead`)."""
        raise TypeError(f"{self.spec.label} has no keys: use {self.instead}")

    __getitem__ = __setitem__ = __delitem__ = _no_keys
    lookup = get = update = keys = items = values = _no_keys
    lookup_batch = lookup_and_delete_batch = update_batch = delete_batch = _no_keys

    def __iter__(self) -> NoReturn:
        self._no_keys()

    def __len__(self) -> NoReturn:
        raise TypeError(f"{self.spec.label} cannot be counted from user space")

    def __bool__(self) -> bool:
        return True
