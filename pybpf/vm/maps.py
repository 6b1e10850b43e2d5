"""In-memory BPF maps for the VM: hash, array and ring buffer.

They behave like their kernel counterparts as seen from a program: fixed key and value
sizes, ``max_entries``, the update flags ``BPF_ANY``/``BPF_NOEXIST``/``BPF_EXIST`` and the
kernel's negative errno results. From Python they are small mappings::

    counts = HashMap(key_size=4, value_size=8, max_entries=16, name="counts")
    counts[7] = 1                  # ints are packed little-endian to the key/value size
    counts[7]                      # -> b'\\x01\\x00...' (bytes of value_size)
    counts.get_int(7)              # -> 1

A value returned by ``map_lookup_elem`` is a pointer to the stored bytes themselves, so a
program that increments through it changes the map, as in the kernel.
"""

from __future__ import annotations

from typing import Dict, Iterator, List, Optional, Tuple, Union

__all__ = [
    "BpfMap", "HashMap", "ArrayMap", "RingBuf", "BPF_ANY", "BPF_NOEXIST", "BPF_EXIST",
    "EPERM", "ENOENT", "E2BIG", "EAGAIN", "EFAULT", "EEXIST", "EINVAL", "ENOSPC",
]

BPF_ANY = 0
BPF_NOEXIST = 1
BPF_EXIST = 2

EPERM = 1
ENOENT = 2
E2BIG = 7
EAGAIN = 11
EFAULT = 14
EEXIST = 17
EINVAL = 22
ENOSPC = 28

KeyLike = Union[bytes, bytearray, memoryview, int]


def _pack(value: KeyLike, size: int, what: str) -> bytes:
    if isinstance(value, int) and not isinstance(value, bool):
        return (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        if len(data) != size:
            raise ValueError(f"{what} must be {size} bytes, not {len(data)}")
        return data
    raise TypeError(f"{what} must be bytes or an int, not {type(value).__name__}")


class BpfMap:
    """Common part of the key/value maps. Subclasses implement :meth:`lookup`,
    :meth:`update`, :meth:`delete` and :meth:`keys`."""

    map_type = "unspec"

    def __init__(self, key_size: int, value_size: int, max_entries: int,
                 name: Optional[str] = None) -> None:
        if key_size <= 0 or value_size <= 0 or max_entries <= 0:
            raise ValueError("key_size, value_size and max_entries must be positive")
        self.key_size = key_size
        self.value_size = value_size
        self.max_entries = max_entries
        self.name = name or self.map_type

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, key_size={self.key_size}, "
                f"value_size={self.value_size}, max_entries={self.max_entries})")

    # -- the program's view (kernel semantics) -------------------------------------------
    def lookup(self, key: bytes) -> Optional[bytearray]:
        """The live value store for ``key`` (``key_size`` bytes), or None."""
        raise NotImplementedError

    def update(self, key: bytes, value: bytes, flags: int = BPF_ANY) -> int:
        """Insert or replace; 0 or a negative errno, as the kernel's helper returns."""
        raise NotImplementedError

    def delete(self, key: bytes) -> int:
        """Remove ``key``; 0 or a negative errno."""
        raise NotImplementedError

    def keys(self) -> List[bytes]:
        """The keys present, in insertion (hash) or index (array) order."""
        raise NotImplementedError

    # -- Python conveniences --------------------------------------------------------------
    def key(self, key: KeyLike) -> bytes:
        """``key`` as ``key_size`` bytes (ints are packed little-endian)."""
        return _pack(key, self.key_size, "key")

    def value(self, value: KeyLike) -> bytes:
        """``value`` as ``value_size`` bytes (ints are packed little-endian)."""
        return _pack(value, self.value_size, "value")

    def __getitem__(self, key: KeyLike) -> bytes:
        found = self.lookup(self.key(key))
        if found is None:
            raise KeyError(key)
        return bytes(found)

    def __setitem__(self, key: KeyLike, value: KeyLike) -> None:
        err = self.update(self.key(key), self.value(value))
        if err:
            raise OSError(-err, f"{self.name}: update failed with errno {-err}")

    def __delitem__(self, key: KeyLike) -> None:
        if self.delete(self.key(key)):
            raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        try:
            return self.lookup(self.key(key)) is not None  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return False

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())

    def get_int(self, key: KeyLike, default: Optional[int] = None) -> Optional[int]:
        """The value for ``key`` read as a little-endian unsigned int, or ``default``."""
        found = self.lookup(self.key(key))
        return default if found is None else int.from_bytes(found, "little")

    def items(self) -> List[Tuple[bytes, bytes]]:
        """(key, value) pairs as bytes."""
        out = []
        for k in self.keys():
            v = self.lookup(k)
            if v is not None:
                out.append((k, bytes(v)))
        return out


class HashMap(BpfMap):
    """``BPF_MAP_TYPE_HASH``: at most ``max_entries`` keys."""

    map_type = "hash"

    def __init__(self, key_size: int, value_size: int, max_entries: int,
                 name: Optional[str] = None) -> None:
        super().__init__(key_size, value_size, max_entries, name)
        self._data: Dict[bytes, bytearray] = {}

    def lookup(self, key: bytes) -> Optional[bytearray]:
        """The live value store for ``key``, or None."""
        return self._data.get(bytes(key))

    def update(self, key: bytes, value: bytes, flags: int = BPF_ANY) -> int:
        """Kernel semantics: -EEXIST for NOEXIST on a present key, -ENOENT for EXIST on a
        missing one, -E2BIG when full, -EINVAL for unknown flags."""
        if flags not in (BPF_ANY, BPF_NOEXIST, BPF_EXIST):
            return -EINVAL
        key = bytes(key)
        current = self._data.get(key)
        if current is not None:
            if flags == BPF_NOEXIST:
                return -EEXIST
            current[:] = value
            return 0
        if flags == BPF_EXIST:
            return -ENOENT
        if len(self._data) >= self.max_entries:
            return -E2BIG
        self._data[key] = bytearray(value)
        return 0

    def delete(self, key: bytes) -> int:
        """0, or -ENOENT if the key is absent."""
        return 0 if self._data.pop(bytes(key), None) is not None else -ENOENT

    def keys(self) -> List[bytes]:
        """The keys, in insertion order."""
        return list(self._data)

    def clear(self) -> None:
        """Remove every entry."""
        self._data.clear()


class ArrayMap(BpfMap):
    """``BPF_MAP_TYPE_ARRAY``: 4-byte index keys, every element exists and starts zeroed."""

    map_type = "array"

    def __init__(self, value_size: int, max_entries: int, name: Optional[str] = None,
                 key_size: int = 4) -> None:
        if key_size != 4:
            raise ValueError("array map keys are 4 bytes")
        super().__init__(key_size, value_size, max_entries, name)
        self._data: Dict[int, bytearray] = {}   # created on first touch

    def _index(self, key: bytes) -> int:
        return int.from_bytes(bytes(key)[:4], "little")

    def element(self, index: int) -> Optional[bytearray]:
        """The live store of element ``index``, or None if out of range."""
        if not 0 <= index < self.max_entries:
            return None
        store = self._data.get(index)
        if store is None:
            store = self._data[index] = bytearray(self.value_size)
        return store

    def lookup(self, key: bytes) -> Optional[bytearray]:
        """The element for a 4-byte index, or None if out of range."""
        return self.element(self._index(key))

    def update(self, key: bytes, value: bytes, flags: int = BPF_ANY) -> int:
        """Kernel semantics: -E2BIG out of range, -EEXIST for NOEXIST (elements always
        exist), -EINVAL for unknown flags."""
        if flags not in (BPF_ANY, BPF_NOEXIST, BPF_EXIST):
            return -EINVAL
        store = self.element(self._index(key))
        if store is None:
            return -E2BIG
        if flags == BPF_NOEXIST:
            return -EEXIST
        store[:] = value
        return 0

    def delete(self, key: bytes) -> int:
        """Array elements cannot be deleted: always -EINVAL."""
        return -EINVAL

    def keys(self) -> List[bytes]:
        """Every index, as 4-byte keys."""
        return [i.to_bytes(4, "little") for i in range(self.max_entries)]


class RingBuf:
    """``BPF_MAP_TYPE_RINGBUF``: records the program submits land in :attr:`records`.

    ``size`` bounds the bytes pending at once (each record costs an 8-byte header plus its
    length rounded up to 8, as in the kernel); :meth:`drain` consumes the records.
    """

    map_type = "ringbuf"
    key_size = 0
    value_size = 0

    def __init__(self, size: int = 4096, name: Optional[str] = None) -> None:
        if size <= 0:
            raise ValueError("ring buffer size must be positive")
        self.max_entries = size
        self.size = size
        self.name = name or "ringbuf"
        self.records: List[bytes] = []
        self._reserved = 0

    def __repr__(self) -> str:
        return f"RingBuf(name={self.name!r}, size={self.size}, records={len(self.records)})"

    @staticmethod
    def _cost(length: int) -> int:
        return 8 + ((length + 7) & ~7)

    def _used(self) -> int:
        return sum(self._cost(len(r)) for r in self.records) + self._reserved

    def output(self, data: bytes) -> int:
        """Append a record; 0, or -EAGAIN if it does not fit."""
        if self._used() + self._cost(len(data)) > self.size:
            return -EAGAIN
        self.records.append(bytes(data))
        return 0

    def reserve(self, length: int) -> Optional[bytearray]:
        """Space for a record that :meth:`commit` will append, or None if full."""
        if length <= 0 or self._used() + self._cost(length) > self.size:
            return None
        self._reserved += self._cost(length)
        return bytearray(length)

    def commit(self, buffer: bytearray, submit: bool = True) -> None:
        """Submit (or with ``submit=False`` discard) a reserved record."""
        self._reserved -= self._cost(len(buffer))
        if submit:
            self.records.append(bytes(buffer))

    def drain(self) -> List[bytes]:
        """The submitted records, oldest first; the buffer is emptied."""
        out, self.records = self.records, []
        return out

    def __len__(self) -> int:
        return len(self.records)
