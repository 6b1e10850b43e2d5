"""Arrays: ``BPF_MAP_TYPE_ARRAY``, including memory-mapped ones (``BPF_F_MMAPABLE``)."""

from __future__ import annotations

import ctypes
import errno
import mmap
import struct
from typing import Any, Iterator, Optional

from ..syscall.bpf import MapFlags, MapType
from .base import DEFAULT_CHUNK, Map
from .spec import MapSpec

__all__ = ["ArrayMap"]


class ArrayMap(Map):
    """A fixed array of ``max_entries`` values indexed by ``0 .. max_entries-1``
    (``BPF_MAP_TYPE_ARRAY``, Linux 3.19). Every index always has a value (zero
    initially): elements cannot be deleted, ``len()`` is ``max_entries``, and
    :meth:`clear` is :meth:`zero`. An index out of range raises ``KeyError``.

    With ``flags=MapFlags.MMAPABLE`` (Linux 5.5) the values can be read and written
    directly through :attr:`memory`, without system calls.
    """

    map_types = (MapType.ARRAY,)
    spec_defaults = {"key": ctypes.c_uint32}

    def _init_state(self) -> None:
        super()._init_state()
        self._mm: Optional[mmap.mmap] = None
        self._mv: Optional[memoryview] = None

    def _prepare_spec(self, spec: MapSpec) -> MapSpec:
        spec = super()._prepare_spec(spec)
        if isinstance(spec.key, int) and spec.key == 4:
            spec = spec.copy(key=ctypes.c_uint32)
        if spec.key_size != 4:
            raise ValueError(f"{spec.label}: array keys are 4-byte indices (c_uint32), not "
                             f"{spec.key_size} bytes")
        return spec

    # -- dict-like behaviour of a fixed array ------------------------------------------

    def __len__(self) -> int:
        self.fd                     # noqa: B018 - raises once closed
        return self.max_entries

    def __bool__(self) -> bool:
        self.fd                     # noqa: B018
        return self.max_entries > 0

    def __contains__(self, key: Any) -> bool:
        self.fd                     # noqa: B018
        if isinstance(key, int) and not isinstance(key, bool):
            return 0 <= key < self.max_entries
        return super().__contains__(key)

    def keys(self) -> Iterator[Any]:
        """The indices ``0 .. max_entries-1``."""
        self.fd                     # noqa: B018
        return iter(range(self.max_entries))

    def __delitem__(self, key: Any) -> None:
        raise TypeError(f"{self.spec.label}: array elements cannot be deleted (assign a "
                        "zero value, or call zero())")

    def pop(self, key: Any, default: Any = None) -> Any:
        """Not available: array elements cannot be deleted."""
        raise TypeError(f"{self.spec.label}: array elements cannot be deleted")

    def delete_batch(self, keys: Any, chunk_size: int = DEFAULT_CHUNK) -> int:
        """Not available: array elements cannot be deleted."""
        raise TypeError(f"{self.spec.label}: array elements cannot be deleted")

    def lookup_and_delete_batch(self, chunk_size: int = DEFAULT_CHUNK) -> Any:
        """Not available: array elements cannot be deleted."""
        raise TypeError(f"{self.spec.label}: array elements cannot be deleted")

    def clear(self) -> None:
        """Same as :meth:`zero`: an array cannot be emptied."""
        self.zero()

    def zero(self) -> None:
        """Set every value to zero bytes (through the memory mapping when there is one,
        else with batched updates)."""
        if self._mv is not None and not self._mv.readonly:
            with self._locked():
                self._mv[:] = bytes(len(self._mv))
            return
        n = self.max_entries
        keys = struct.pack(f"={n}I", *range(n))
        self._store_raw(keys, bytes(self._vc.size * n), n, 0, DEFAULT_CHUNK)

    # -- memory mapping ----------------------------------------------------------------

    @property
    def memory(self) -> memoryview:
        """The values, memory-mapped (maps created with ``MapFlags.MMAPABLE``, Linux
        5.5): a writable ``memoryview`` of ``max_entries`` slots of :attr:`stride`
        bytes; value ``i`` starts at ``i * stride``. Read-only for a frozen map or a
        read-only descriptor. Writes are seen by programs and lookups at once.

        The view is released by :meth:`close`; slices taken from it keep the mapping
        alive until they are released themselves.
        """
        if not self.flags & MapFlags.MMAPABLE:
            raise TypeError(f"{self.spec.label} was not created with MapFlags.MMAPABLE")
        with self._locked():
            if self._mv is None:
                length = self.stride * self.max_entries
                pages = max(1, -(-length // mmap.PAGESIZE)) * mmap.PAGESIZE
                fd = self._fd.fileno()  # type: ignore[union-attr]
                try:
                    mm = mmap.mmap(fd, pages, flags=mmap.MAP_SHARED,
                                   prot=mmap.PROT_READ | mmap.PROT_WRITE)
                except OSError as exc:
                    # frozen map or read-only fd: a read-only mapping still works
                    if exc.errno not in (errno.EPERM, errno.EACCES):
                        raise
                    mm = mmap.mmap(fd, pages, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)
                self._mm = mm
                self._mv = memoryview(mm)[:length]
            return self._mv

    @property
    def stride(self) -> int:
        """Distance between two values in :attr:`memory`: the value size rounded up to 8."""
        return (self.value_size + 7) & ~7

    def _release(self) -> None:
        if self._mv is not None:
            try:
                self._mv.release()
            except BufferError:
                pass
            self._mv = None
        if self._mm is not None:
            try:
                self._mm.close()
            except BufferError:
                pass        # views still exported: the mapping goes with the last one
            self._mm = None
