"""FIFO queues and LIFO stacks: ``BPF_MAP_TYPE_QUEUE`` and ``BPF_MAP_TYPE_STACK``."""

from __future__ import annotations

from typing import Any

from ..syscall.bpf import MapType
from .base import ElemFlags
from .keyless import KeylessMap

__all__ = ["QueueMap", "StackMap"]

_MISSING: Any = object()


class QueueMap(KeylessMap):
    """A bounded FIFO queue of values (``BPF_MAP_TYPE_QUEUE``, Linux 4.20).

    :meth:`push` appends, :meth:`pop` removes the oldest, :meth:`peek` reads it. A push
    into a full queue raises ``BPFError`` ``E2BIG`` unless ``overwrite=True``, which
    drops the oldest element. ``len()`` is not available.
    """

    map_types = (MapType.QUEUE,)

    def push(self, value: Any, *, overwrite: bool = False) -> None:
        """Add ``value`` (``overwrite``: make room by dropping the oldest element)."""
        with self._locked() as ops:
            self._vc.pack_into(ops.value, 0, value)
            ops.push(ElemFlags.EXIST if overwrite else ElemFlags.ANY)

    def pop(self, default: Any = _MISSING) -> Any:  # type: ignore[override]
        """Remove and return the next element; ``default`` (or ``IndexError``) when
        empty."""
        with self._locked() as ops:
            if ops.lookup_and_delete(keyless=True):
                return self._vc.unpack(ops.value)
        if default is _MISSING:
            raise IndexError(f"pop from an empty {self.spec.label}")
        return default

    def peek(self, default: Any = _MISSING) -> Any:
        """The next element, left in place; ``default`` (or ``IndexError``) when empty."""
        with self._locked() as ops:
            if ops.peek():
                return self._vc.unpack(ops.value)
        if default is _MISSING:
            raise IndexError(f"peek into an empty {self.spec.label}")
        return default

    def clear(self) -> None:
        """Pop until empty."""
        self.drain()

    def __bool__(self) -> bool:
        return self.peek(_MISSING_VALUE) is not _MISSING_VALUE

    def drain(self) -> list:
        """Pop every element, in order."""
        out = []
        while True:
            value = self.pop(_MISSING_VALUE)
            if value is _MISSING_VALUE:
                return out
            out.append(value)


_MISSING_VALUE: Any = object()


class StackMap(QueueMap):
    """A bounded LIFO stack of values (``BPF_MAP_TYPE_STACK``, Linux 4.20): like
    :class:`QueueMap`, but :meth:`pop` and :meth:`peek` see the newest element."""

    map_types = (MapType.STACK,)
