"""The VM's address space: a set of bounded regions and 64-bit pointers into them.

A pointer is a plain 64-bit integer, so programs can add to it, compare it, spill it to
the stack and load it back exactly as in the kernel. Each region owns a 4 GiB window of
the address space, ``[id << 32, (id + 1) << 32)``, and its bytes start in the middle of
that window, at ``(id << 32) + 0x80000000``. An address therefore always says which region
it was derived from (``address >> 32``), even when it has strayed a little before the start
or past the end, and a fault can say "8 bytes before the start of the stack of frame 1"
instead of naming a neighbour. Address 0 and everything below the first window belong to
no region, so a NULL dereference is reported as such.

Region kinds: ``stack`` (512 bytes per call frame), ``mem`` (the input memory / packet),
``ctx`` (a context structure), ``map_value``, ``ringbuf_record``, and two kinds that hold
no bytes: ``map`` (the value of a map pointer) and ``code`` (function pointers, from
``lddw`` with pseudo source 4).
"""

from __future__ import annotations

from typing import Dict, Iterator, Optional, Union

from .errors import MemoryFault

__all__ = ["Region", "Memory", "WINDOW_SHIFT", "REGION_OFFSET"]

#: ``address >> WINDOW_SHIFT`` is the id of the region an address belongs to
WINDOW_SHIFT = 32
#: where a region's bytes start inside its window
REGION_OFFSET = 0x80000000

_M64 = (1 << 64) - 1


class Region:
    """A contiguous, bounded piece of memory.

    ``data`` is the backing store (``bytearray`` or a writable ``memoryview``); ``base``
    the address of its first byte and ``end`` one past its last; ``name`` appears in error
    messages; ``kind`` is one of the kinds in the module docstring; ``owner`` is what the
    region belongs to (a map, for map values), if anything.
    """

    __slots__ = ("id", "name", "kind", "data", "base", "end", "size", "writable", "owner")

    def __init__(self, rid: int, name: str, kind: str, data: Union[bytearray, memoryview],
                 writable: bool = True, owner: object = None) -> None:
        self.id = rid
        self.name = name
        self.kind = kind
        self.data = data
        self.size = len(data)
        self.base = (rid << WINDOW_SHIFT) + REGION_OFFSET
        self.end = self.base + self.size
        self.writable = writable
        self.owner = owner

    def __repr__(self) -> str:
        return (f"Region({self.name!r}, kind={self.kind!r}, base={self.base:#x}, "
                f"size={self.size}{'' if self.writable else ', read-only'})")

    def contains(self, address: int, size: int = 1) -> bool:
        """True if ``size`` bytes at ``address`` lie inside the region."""
        return self.base <= address and address + size <= self.end


class Memory:
    """All regions of one machine. ``readable`` and ``writable`` map a region id to the
    :class:`Region`; the machine's load and store code looks addresses up there directly,
    and calls :meth:`fault` to explain a failed access."""

    def __init__(self) -> None:
        self.regions: Dict[int, Region] = {}
        self.readable: Dict[int, Region] = {}
        self.writable: Dict[int, Region] = {}
        self.freed: Dict[int, Region] = {}
        self._next_id = 1

    # -- regions ----------------------------------------------------------------------
    def map(self, name: str, kind: str, data: Union[bytes, bytearray, memoryview, int],
            *, writable: bool = True, accessible: bool = True, owner: object = None,
            low: bool = False) -> Region:
        """Create a region. ``data`` is its initial contents (copied unless it is a
        ``bytearray`` or ``memoryview``, which are used in place) or a size in bytes
        (zero-filled). An ``accessible=False`` region has an address but cannot be read or
        written (map handles, code pointers). ``low``: place it in window 0, where its
        addresses fit in 32 bits (for a context whose fields are 32-bit pointers, such as
        ``xdp_md.data``); one region at most."""
        if isinstance(data, int):
            store: Union[bytearray, memoryview] = bytearray(data)
        elif isinstance(data, (bytearray, memoryview)):
            store = data
        else:
            store = bytearray(data)
        if len(store) > REGION_OFFSET:
            raise ValueError(f"region {name!r} is larger than 2 GiB")
        if low:
            if 0 in self.regions:
                raise ValueError("the low window already holds "
                                 f"{self.regions[0].name}")
            region = Region(0, name, kind, store, writable, owner)
        else:
            region = Region(self._next_id, name, kind, store, writable, owner)
            self._next_id += 1
        self.regions[region.id] = region
        if accessible:
            self.readable[region.id] = region
            if writable:
                self.writable[region.id] = region
        return region

    def unmap(self, region: Region) -> None:
        """Remove a region; later accesses through pointers into it fault as use-after-free."""
        rid = region.id
        if self.regions.pop(rid, None) is None:
            return
        self.readable.pop(rid, None)
        self.writable.pop(rid, None)
        if region.kind != "stack":
            self.freed[rid] = region
        else:  # frames come and go constantly; remember only their name
            self.freed[rid] = Region(rid, region.name, "stack", b"", False)

    def region_of(self, address: int) -> Optional[Region]:
        """The live region whose window holds ``address`` (in bounds or not), or None."""
        return self.regions.get((address & _M64) >> WINDOW_SHIFT)

    def __iter__(self) -> Iterator[Region]:
        return iter(list(self.regions.values()))

    # -- checked access (helpers, debuggers) --------------------------------------------
    def read(self, address: int, size: int, what: str = "read") -> bytes:
        """``size`` bytes at ``address``; raises :class:`MemoryFault` unless all are in
        one readable region."""
        address &= _M64
        region = self.readable.get(address >> WINDOW_SHIFT)
        if region is None or size < 0 or not region.base <= address <= region.end - size:
            raise self.fault(address, size, what)
        start = address - region.base
        return bytes(region.data[start:start + size])

    def write(self, address: int, data: bytes, what: str = "write") -> None:
        """Store ``data`` at ``address``; raises :class:`MemoryFault` unless it fits in one
        writable region."""
        address &= _M64
        size = len(data)
        region = self.writable.get(address >> WINDOW_SHIFT)
        if region is None or not region.base <= address <= region.end - size:
            raise self.fault(address, size, what, store=True)
        start = address - region.base
        region.data[start:start + size] = data

    def read_cstring(self, address: int, limit: int, what: str = "string") -> bytes:
        """The bytes at ``address`` up to (not including) a NUL or ``limit`` bytes; the
        first byte must be readable, and the string ends at the end of its region."""
        address &= _M64
        region = self.readable.get(address >> WINDOW_SHIFT)
        if region is None or not region.base <= address < region.end:
            raise self.fault(address, 1, what)
        start = address - region.base
        chunk = bytes(region.data[start:start + max(limit, 0)])
        nul = chunk.find(b"\0")
        return chunk if nul < 0 else chunk[:nul]

    # -- explaining faults --------------------------------------------------------------
    def fault(self, address: int, size: int, access: str = "read",
              store: bool = False) -> MemoryFault:
        """A :class:`MemoryFault` that says why ``size`` bytes at ``address`` could not be
        accessed (``access`` names the operation: "read", "write", "atomic", ...)."""
        address &= _M64
        rid = address >> WINDOW_SHIFT
        what = f"{access} of {size} byte{'s' if size != 1 else ''} at {address:#x}"
        region = self.regions.get(rid) if address >= 0x1000 else None
        if region is None:
            dead = self.freed.get(rid)
            if dead is not None:
                reason = f"{what}: {dead.name} no longer exists (use after free or return)"
            elif address < 0x1000:
                reason = f"{what}: NULL pointer dereference"
            else:
                reason = f"{what}: the address is not in any memory region"
            return MemoryFault(reason, address, size)
        if region.id not in self.readable:
            if region.kind == "map":
                reason = f"{what}: {region.name} is a map handle, not memory (use a map helper)"
            else:
                reason = f"{what}: {region.name} holds no data that can be accessed"
            return MemoryFault(reason, address, size)
        offset = address - region.base
        if store and not region.writable:
            reason = f"{what}: {region.name} is read-only"
        elif offset < 0:
            reason = (f"{what}: {-offset} byte{'s' if offset != -1 else ''} before the start "
                      f"of {region.name} ({region.size} bytes at {region.base:#x})")
        else:
            reason = (f"{what}: out of bounds of {region.name} (offset {offset}, "
                      f"size {region.size})")
        return MemoryFault(reason, address, size)
