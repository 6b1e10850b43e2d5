"""Shared memory mappings made with libc's ``mmap`` through ctypes.

The ring buffer's producer page and data area may only be mapped read-only, and Python's
:mod:`mmap` objects do not let ctypes build structures over read-only memory. A
:class:`Mapping` maps a range of a descriptor itself and exposes it as a ctypes array of
bytes, so that memoryviews and zero-copy ctypes structures (``from_buffer``) can be made
over it. Every such view keeps the array alive, and the memory is unmapped when the array
goes away: immediately after :meth:`Mapping.close` when nothing else refers to it, else
when the last view is dropped. A view therefore never points at unmapped memory.
"""

from __future__ import annotations

import ctypes
import mmap as _mmap
import os
import weakref
from typing import Any, Optional

from ..syscall.fd import FdLike, fd_number

__all__ = ["Mapping", "PAGE_SIZE"]

#: the system's page size
PAGE_SIZE = _mmap.PAGESIZE

_libc: Optional[ctypes.CDLL] = None


def _lib() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        lib = ctypes.CDLL(None, use_errno=True)
        lib.mmap.restype = ctypes.c_void_p
        lib.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                             ctypes.c_int, ctypes.c_long]
        lib.munmap.restype = ctypes.c_int
        lib.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        _libc = lib
    return _libc


def _unmap(addr: int, length: int) -> None:
    _lib().munmap(addr, length)


class Mapping:
    """``length`` bytes of descriptor ``fd`` from ``offset``, mapped shared, read-only
    unless ``writable``.

    :attr:`array` is a ``ctypes.c_char`` array over the memory (do not write through it
    when the mapping is read-only: the process would get ``SIGSEGV``); :meth:`view`
    gives memoryviews (read-only ones for read-only mappings).
    """

    __slots__ = ("length", "writable", "array", "address", "_finalizer", "__weakref__")

    def __init__(self, fd: FdLike, length: int, offset: int = 0, *,
                 writable: bool = False) -> None:
        prot = _mmap.PROT_READ | (_mmap.PROT_WRITE if writable else 0)
        lib = _lib()
        addr = lib.mmap(None, length, prot, _mmap.MAP_SHARED, fd_number(fd), offset)
        if addr is None or addr == ctypes.c_void_p(-1).value:
            err = ctypes.get_errno()
            raise OSError(err, f"mmap of {length} bytes at offset {offset}: "
                               f"{os.strerror(err)}")
        self.length = length
        self.writable = writable
        self.address = int(addr)
        self.array: Optional[ctypes.Array] = (ctypes.c_char * length).from_address(addr)
        self._finalizer = weakref.finalize(self.array, _unmap, int(addr), length)

    def view(self, fmt: str = "B") -> memoryview:
        """A memoryview of the whole mapping in ``struct`` format ``fmt`` (``"B"``,
        ``"I"``, ``"Q"``); read-only for a read-only mapping."""
        if self.array is None:
            raise ValueError("operation on a closed mapping")
        mv = memoryview(self.array).cast("B")
        if fmt != "B":
            mv = mv.cast(fmt)
        return mv if self.writable else mv.toreadonly()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self.array is None

    @property
    def unmapped(self) -> bool:
        """True once the memory is really unmapped (no view is left)."""
        return not self._finalizer.alive

    def close(self) -> None:
        """Drop this object's reference: the memory is unmapped now if no view or
        structure made from it is alive, else when the last one goes."""
        self.array = None

    def __enter__(self) -> "Mapping":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
