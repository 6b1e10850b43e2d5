"""The map commands of ``bpf()``, complete: creation with every attribute, element
operations, iteration by key, batches and freezing.

Functions take and return ``bytes`` (keys and values already laid out as the map wants);
:mod:`pybpf.maps` builds the typed, dict-like objects on top. Absence is not an error at
this level: lookups return None, deletes return False, :func:`map_get_next_key` returns
None after the last key.

:class:`ElemOps` is the fast path for one map: preallocated buffers and attribute block,
so that a lookup or an update costs one ``bpf()`` call and a copy.
"""

from __future__ import annotations

import ctypes
import enum
import errno as _errno
import _thread
from typing import NamedTuple, Optional, Tuple, Union

from .._enum import enum_of
from .bpf import (
    MAP_TYPE_SINCE, Cmd, MapFlags, MapType, _syscall_fn, addr_of, bpf,
    kernel_at_least, name_bytes, syscall_number,
)
from .errors import BPFError, NotSupportedError, bpf_error, check_unsigned
from .fd import FD, FdLike, fd_number

__all__ = [
    "ElemFlags", "ENOTSUPP", "MapCreateAttr", "MapElemAttr", "BatchAttr", "map_create",
    "map_lookup_elem", "map_update_elem", "map_delete_elem", "map_get_next_key",
    "map_lookup_and_delete_elem", "map_freeze", "BatchChunk", "map_lookup_batch",
    "map_update_batch", "map_delete_batch", "batch_unsupported", "batch_token_size",
    "ElemOps", "split_chunk",
]

_u32 = ctypes.c_uint32
_s32 = ctypes.c_int32
_u64 = ctypes.c_uint64

#: The kernel-internal ``ENOTSUPP`` (524; not ``EOPNOTSUPP``), which reaches user space
#: when a map type lacks an operation (batches on a queue, an LPM trie, ...).
ENOTSUPP = 524

BytesLike = Union[bytes, bytearray, memoryview]


@enum_of(enum.IntFlag)
class ElemFlags:
    """``flags`` of the element commands (``BPF_MAP_UPDATE_ELEM`` and, for ``LOCK``,
    ``BPF_MAP_LOOKUP_ELEM``) and ``elem_flags`` of the batch commands."""

    ANY = 0        #: BPF_ANY: create or replace
    NOEXIST = 1    #: BPF_NOEXIST: create only (EEXIST if present)
    EXIST = 2      #: BPF_EXIST: replace only (ENOENT if absent)
    LOCK = 4       #: BPF_F_LOCK: take the value's ``bpf_spin_lock`` (Linux 5.1)


class MapElemAttr(ctypes.Structure):
    """``union bpf_attr`` as used by ``BPF_MAP_*_ELEM`` (32 bytes). ``key`` and
    ``value`` (or ``next_key``) are user-space addresses."""

    _c_name_ = "union bpf_attr"
    _fields_ = [
        ("map_fd", _u32),
        ("_pad0", _u32),          # key is an __aligned_u64
        ("key", _u64),
        ("value", _u64),          # also next_key for BPF_MAP_GET_NEXT_KEY
        ("flags", _u64),
    ]


class MapCreateAttr(ctypes.Structure):
    """``union bpf_attr`` as used by ``BPF_MAP_CREATE``, with every member up to Linux
    6.18."""

    _c_name_ = "union bpf_attr"
    _newer_fields_ = {"value_type_btf_obj_fd": (6, 9), "map_token_fd": (6, 9),
                      "excl_prog_hash": (6, 18), "excl_prog_hash_size": (6, 18)}
    _fields_ = [
        ("map_type", _u32),
        ("key_size", _u32),
        ("value_size", _u32),
        ("max_entries", _u32),
        ("map_flags", _u32),
        ("inner_map_fd", _u32),
        ("numa_node", _u32),
        ("map_name", ctypes.c_char * 16),
        ("map_ifindex", _u32),
        ("btf_fd", _u32),
        ("btf_key_type_id", _u32),
        ("btf_value_type_id", _u32),
        ("btf_vmlinux_value_type_id", _u32),
        ("map_extra", _u64),
        ("value_type_btf_obj_fd", _s32),
        ("map_token_fd", _s32),
        ("excl_prog_hash", _u64),
        ("excl_prog_hash_size", _u32),
        ("_pad0", _u32),
    ]


class BatchAttr(ctypes.Structure):
    """``union bpf_attr`` member ``batch``, used by ``BPF_MAP_*_BATCH`` (Linux 5.6)."""

    _c_name_ = "union bpf_attr"
    _c_member_ = "batch"
    _fields_ = [
        ("in_batch", _u64),
        ("out_batch", _u64),
        ("keys", _u64),
        ("values", _u64),
        ("count", _u32),
        ("map_fd", _u32),
        ("elem_flags", _u64),
        ("flags", _u64),
    ]


# ---------------------------------------------------------------------------------------
# creation
# ---------------------------------------------------------------------------------------

def _type_label(map_type: int) -> str:
    try:
        return MapType(map_type).name.lower()
    except ValueError:
        return str(int(map_type))


def map_create(map_type: int, key_size: int, value_size: int, max_entries: int, *,
               flags: int = 0, name: str = "", inner_map_fd: Optional[FdLike] = None,
               numa_node: Optional[int] = None, ifindex: int = 0,
               btf_fd: Optional[FdLike] = None, btf_key_type_id: int = 0,
               btf_value_type_id: int = 0, btf_vmlinux_value_type_id: int = 0,
               value_type_btf_obj_fd: Optional[FdLike] = None, map_extra: int = 0,
               token_fd: Optional[FdLike] = None,
               excl_prog_hash: Optional[bytes] = None) -> FD:
    """Create a map (``BPF_MAP_CREATE``) and return its owned descriptor.

    * ``inner_map_fd``: for map-in-map types, a map the inner maps must resemble;
    * ``numa_node``: allocate on that NUMA node (sets ``BPF_F_NUMA_NODE``; Linux 4.14);
    * ``ifindex``: offload to that network device;
    * ``btf_fd`` with ``btf_key_type_id``/``btf_value_type_id``: describe key and value
      with BTF (Linux 4.18); ``btf_vmlinux_value_type_id`` for struct_ops maps (5.6),
      from the BTF object ``value_type_btf_obj_fd`` (sets ``BPF_F_VTYPE_BTF_OBJ_FD``; 6.9);
    * ``map_extra``: the type's extra parameter, e.g. the number of hash functions of a
      bloom filter (Linux 5.16);
    * ``token_fd``: a BPF token granting the right (sets ``BPF_F_TOKEN_FD``; Linux 6.9);
    * ``excl_prog_hash``: SHA-256 of the only program allowed to use the map (6.18).

    A map type this kernel predates raises
    :class:`~pybpf.syscall.errors.NotSupportedError` naming the release that added it.
    """
    for field, number in (("key_size", key_size), ("value_size", value_size),
                          ("max_entries", max_entries), ("flags", flags),
                          ("ifindex", ifindex)):
        check_unsigned(field, number)
    check_unsigned("map_extra", map_extra, 64)
    attr = MapCreateAttr(map_type=map_type, key_size=key_size, value_size=value_size,
                             max_entries=max_entries, map_flags=flags,
                             map_name=name_bytes(name), map_ifindex=ifindex,
                             btf_key_type_id=btf_key_type_id,
                             btf_value_type_id=btf_value_type_id,
                             btf_vmlinux_value_type_id=btf_vmlinux_value_type_id,
                             map_extra=map_extra)
    if inner_map_fd is not None:
        attr.inner_map_fd = fd_number(inner_map_fd)
    if numa_node is not None:
        attr.map_flags |= MapFlags.NUMA_NODE
        attr.numa_node = numa_node
    if btf_fd is not None:
        attr.btf_fd = fd_number(btf_fd)
    if value_type_btf_obj_fd is not None:
        attr.map_flags |= MapFlags.VTYPE_BTF_OBJ_FD
        attr.value_type_btf_obj_fd = fd_number(value_type_btf_obj_fd)
    if token_fd is not None:
        attr.map_flags |= MapFlags.TOKEN_FD
        attr.map_token_fd = fd_number(token_fd)
    hash_buf = None
    if excl_prog_hash is not None:
        hash_buf = ctypes.create_string_buffer(bytes(excl_prog_hash), len(excl_prog_hash))
        attr.excl_prog_hash = ctypes.addressof(hash_buf)
        attr.excl_prog_hash_size = len(excl_prog_hash)
    try:
        num = bpf(Cmd.MAP_CREATE, attr)
    except NotSupportedError:
        raise
    except OSError as exc:
        since = MAP_TYPE_SINCE.get(map_type)
        if exc.errno == _errno.EINVAL and since is not None and not kernel_at_least(*since):
            raise NotSupportedError(f"map type {_type_label(map_type)}", since,
                                    errnum=exc.errno, command="BPF_MAP_CREATE") from None
        if exc.errno == _errno.E2BIG:
            # no field newer than this kernel is set (bpf() reports those as
            # NotSupportedError): the kernel refused the size of the map
            raise BPFError(exc.errno, f"a {_type_label(map_type)} map of max_entries "
                           f"{max_entries} (key {key_size} bytes, value {value_size} bytes)"
                           " is too large for this map type", command="BPF_MAP_CREATE",
                           hint="the kernel caps each type's entry count and key and value "
                           "sizes, and the memory of its tables (a hash map's bucket "
                           "table must stay under 4 GiB): lower max_entries") from None
        raise
    return FD(num, "map")


# ---------------------------------------------------------------------------------------
# element commands
# ---------------------------------------------------------------------------------------

def _buf(data: Optional[BytesLike]) -> Optional[ctypes.Array]:
    if data is None:
        return None
    raw = bytes(data)
    return ctypes.create_string_buffer(raw, len(raw))


def _elem(cmd: Cmd, fd: FdLike, key: Optional[ctypes.Array], value: Optional[ctypes.Array],
          flags: int = 0) -> None:
    attr = MapElemAttr(map_fd=fd_number(fd), key=addr_of(key), value=addr_of(value),
                       flags=flags)
    bpf(cmd, attr)


def map_lookup_elem(fd: FdLike, key: Optional[BytesLike], value_size: int, *,
                    flags: int = 0) -> Optional[bytes]:
    """The value under ``key`` (``BPF_MAP_LOOKUP_ELEM``), or None when absent.
    ``value_size`` is the whole size the kernel writes (for per-CPU maps: the padded
    value size times the number of possible CPUs). ``flags``: :attr:`ElemFlags.LOCK`.
    Queues, stacks and bloom filters take no key (``None``: peek)."""
    vbuf = ctypes.create_string_buffer(value_size)
    try:
        _elem(Cmd.MAP_LOOKUP_ELEM, fd, _buf(key), vbuf, flags)
    except OSError as exc:
        if exc.errno == _errno.ENOENT:
            return None
        raise
    return vbuf.raw


def map_update_elem(fd: FdLike, key: Optional[BytesLike], value: BytesLike,
                    flags: int = ElemFlags.ANY) -> None:
    """Store ``value`` under ``key`` (``BPF_MAP_UPDATE_ELEM``). ``flags``:
    :class:`ElemFlags`. Queues and stacks take no key (push); for them ``EXIST``
    overwrites the oldest element when full."""
    _elem(Cmd.MAP_UPDATE_ELEM, fd, _buf(key), _buf(value), flags)


def map_delete_elem(fd: FdLike, key: BytesLike) -> bool:
    """Delete ``key`` (``BPF_MAP_DELETE_ELEM``): True if it was there, False if not."""
    try:
        _elem(Cmd.MAP_DELETE_ELEM, fd, _buf(key), None)
    except OSError as exc:
        if exc.errno == _errno.ENOENT:
            return False
        raise
    return True


def map_get_next_key(fd: FdLike, key: Optional[BytesLike], key_size: int) -> Optional[bytes]:
    """The key after ``key`` (``BPF_MAP_GET_NEXT_KEY``); ``key=None`` gives the first.
    None after the last. For a hash map whose ``key`` is absent (deleted meanwhile), the
    kernel answers with the first key again."""
    nbuf = ctypes.create_string_buffer(key_size)
    try:
        _elem(Cmd.MAP_GET_NEXT_KEY, fd, _buf(key), nbuf)
    except OSError as exc:
        if exc.errno == _errno.ENOENT:
            return None
        raise
    return nbuf.raw


def map_lookup_and_delete_elem(fd: FdLike, key: Optional[BytesLike], value_size: int, *,
                               flags: int = 0) -> Optional[bytes]:
    """Remove and return a value (``BPF_MAP_LOOKUP_AND_DELETE_ELEM``), or None if there
    is none: a queue's or stack's next element with ``key=None`` (Linux 4.20), or the
    value of ``key`` in a hash map (Linux 5.14)."""
    vbuf = ctypes.create_string_buffer(value_size)
    try:
        _elem(Cmd.MAP_LOOKUP_AND_DELETE_ELEM, fd, _buf(key), vbuf, flags)
    except OSError as exc:
        if exc.errno == _errno.ENOENT:
            return None
        raise
    return vbuf.raw


def map_freeze(fd: FdLike) -> None:
    """Make the map read-only for user space (``BPF_MAP_FREEZE``, Linux 5.2); programs
    may still write unless the map has ``BPF_F_RDONLY_PROG``. Fails with ``EBUSY`` while
    a writable memory mapping of the map exists."""
    attr = MapElemAttr(map_fd=fd_number(fd))
    bpf(Cmd.MAP_FREEZE, attr)


# ---------------------------------------------------------------------------------------
# batches
# ---------------------------------------------------------------------------------------

class BatchChunk(NamedTuple):
    """One ``BPF_MAP_LOOKUP[_AND_DELETE]_BATCH`` answer: ``count`` keys and values laid
    end to end, and the token to pass as ``in_batch`` for the next chunk (None once the
    map has been walked to its end)."""

    count: int
    keys: bytes
    values: bytes
    next_batch: Optional[bytes]


def batch_unsupported(exc: BaseException) -> bool:
    """True if ``exc`` means "this kernel or this map type has no batch operations"
    (``ENOTSUPP``, ``EOPNOTSUPP``, or the kernel predating the commands)."""
    if isinstance(exc, NotSupportedError):
        return True
    return isinstance(exc, OSError) and exc.errno in (ENOTSUPP, _errno.EOPNOTSUPP)


def batch_token_size(key_size: int) -> int:
    """Room for an ``in_batch``/``out_batch`` token: hash maps use a 4-byte bucket
    index, arrays a key."""
    return max(key_size, 8)


def map_lookup_batch(fd: FdLike, key_size: int, value_size: int, count: int, *,
                     in_batch: Optional[BytesLike] = None, delete: bool = False,
                     elem_flags: int = 0, flags: int = 0) -> BatchChunk:
    """Read up to ``count`` elements from where ``in_batch`` left off (the start when
    None): ``BPF_MAP_LOOKUP_BATCH``, or ``BPF_MAP_LOOKUP_AND_DELETE_BATCH`` with
    ``delete`` (Linux 5.6; hash, per-CPU hash, LRU and array types). ``value_size`` is
    the per-element size the kernel writes (per-CPU: for all CPUs). A hash bucket larger
    than ``count`` raises ``BPFError`` ``ENOSPC``: retry with a larger ``count``."""
    keys = ctypes.create_string_buffer(key_size * count)
    values = ctypes.create_string_buffer(value_size * count)
    tok = batch_token_size(key_size)
    out_tok = ctypes.create_string_buffer(tok)
    in_tok = None
    if in_batch is not None:
        in_tok = ctypes.create_string_buffer(bytes(in_batch).ljust(tok, b"\0"), tok)
    attr = BatchAttr(in_batch=addr_of(in_tok), out_batch=ctypes.addressof(out_tok),
                     keys=ctypes.addressof(keys), values=ctypes.addressof(values),
                     count=count, map_fd=fd_number(fd), elem_flags=elem_flags, flags=flags)
    cmd = Cmd.MAP_LOOKUP_AND_DELETE_BATCH if delete else Cmd.MAP_LOOKUP_BATCH
    done = False
    try:
        bpf(cmd, attr)
    except OSError as exc:
        # ENOENT: the walk reached the end; ``count`` says how many this call copied
        if exc.errno != _errno.ENOENT:
            raise
        done = True
    n = int(attr.count)
    return BatchChunk(n, keys.raw[:n * key_size], values.raw[:n * value_size],
                      None if done else out_tok.raw)


def map_update_batch(fd: FdLike, keys: BytesLike, values: BytesLike, count: int, *,
                     elem_flags: int = 0, flags: int = 0) -> int:
    """Store ``count`` key/value pairs laid end to end (``BPF_MAP_UPDATE_BATCH``, Linux
    5.6) and return ``count``. On failure the raised ``BPFError`` has ``processed``: how
    many pairs were stored before the error."""
    kbuf = _buf(keys)
    vbuf = _buf(values)
    attr = BatchAttr(keys=addr_of(kbuf), values=addr_of(vbuf), count=count,
                     map_fd=fd_number(fd), elem_flags=elem_flags, flags=flags)
    try:
        bpf(Cmd.MAP_UPDATE_BATCH, attr)
    except BPFError as exc:
        exc.processed = int(attr.count)     # type: ignore[attr-defined]
        raise
    return int(attr.count)


def map_delete_batch(fd: FdLike, keys: BytesLike, count: int, *, elem_flags: int = 0,
                     flags: int = 0) -> int:
    """Delete ``count`` keys laid end to end (``BPF_MAP_DELETE_BATCH``, Linux 5.6) and
    return how many were deleted. A missing key stops the batch with ``ENOENT``; the
    raised ``BPFError`` has ``processed``."""
    kbuf = _buf(keys)
    attr = BatchAttr(keys=addr_of(kbuf), count=count, map_fd=fd_number(fd),
                     elem_flags=elem_flags, flags=flags)
    try:
        bpf(Cmd.MAP_DELETE_BATCH, attr)
    except BPFError as exc:
        exc.processed = int(attr.count)     # type: ignore[attr-defined]
        raise
    return int(attr.count)


# ---------------------------------------------------------------------------------------
# the fast path
# ---------------------------------------------------------------------------------------

class ElemOps:
    """Element commands on one map through preallocated buffers.

    ``key`` and ``value`` are writable ctypes buffers of the map's key size and of the
    size the kernel reads or writes per value; callers fill them, call an operation and
    read the result back. ``lock`` serialises users (ctypes releases the GIL during the
    call, so two threads must not share the buffers). Every method returns False when
    the kernel answers ``ENOENT`` and raises ``BPFError`` for other errors. ``fd`` must
    stay open while the object is used: the owner checks before each call.
    """

    __slots__ = ("key", "value", "next_key", "lock", "_attr", "_next_attr", "_del_attr",
                 "_ref", "_next_ref", "_del_ref", "_fn", "_nr", "_size", "_key_addr",
                 "_value_addr")

    def __init__(self, fd: int, key_size: int, value_size: int) -> None:
        self.key = ctypes.create_string_buffer(max(key_size, 1))
        self.value = ctypes.create_string_buffer(max(value_size, 1))
        self.next_key = ctypes.create_string_buffer(max(key_size, 1))
        self.lock = _thread.allocate_lock()
        self._key_addr = ctypes.addressof(self.key) if key_size else 0
        self._value_addr = ctypes.addressof(self.value)
        self._attr = MapElemAttr(map_fd=fd, key=self._key_addr, value=self._value_addr)
        self._next_attr = MapElemAttr(map_fd=fd, key=self._key_addr,
                                      value=ctypes.addressof(self.next_key))
        # the kernel wants every field after ``key`` zero for a delete
        self._del_attr = MapElemAttr(map_fd=fd, key=self._key_addr)
        self._ref = ctypes.byref(self._attr)
        self._next_ref = ctypes.byref(self._next_attr)
        self._del_ref = ctypes.byref(self._del_attr)
        self._fn = _syscall_fn()
        self._nr = syscall_number("bpf")
        self._size = ctypes.sizeof(MapElemAttr)

    def _call(self, cmd: int, ref: object) -> bool:
        fn, nr, size = self._fn, self._nr, self._size
        while True:
            if fn(nr, cmd, ref, size) >= 0:
                return True
            err = ctypes.get_errno()
            if err == _errno.ENOENT:
                return False
            if err != _errno.EINTR:
                raise bpf_error("BPF_" + Cmd(cmd).name, err)

    def lookup(self, flags: int = 0) -> bool:
        """``value`` = the value under ``key``; False if absent."""
        self._attr.flags = flags
        if self._fn(self._nr, 1, self._ref, self._size) >= 0:   # BPF_MAP_LOOKUP_ELEM
            return True
        return self._failed(Cmd.MAP_LOOKUP_ELEM, self._ref)

    def update(self, flags: int = 0) -> bool:
        """Store ``value`` under ``key``; False (``ENOENT``) with ``EXIST`` and no key."""
        self._attr.flags = flags
        if self._fn(self._nr, 2, self._ref, self._size) >= 0:   # BPF_MAP_UPDATE_ELEM
            return True
        return self._failed(Cmd.MAP_UPDATE_ELEM, self._ref)

    def _failed(self, cmd: int, ref: object) -> bool:
        """After a failed call: False for ENOENT, retry after EINTR, else raise."""
        err = ctypes.get_errno()
        if err == _errno.EINTR:
            return self._call(cmd, ref)
        if err == _errno.ENOENT:
            return False
        raise bpf_error("BPF_" + Cmd(cmd).name, err)

    def delete(self) -> bool:
        """Delete ``key``; False if absent."""
        return self._call(Cmd.MAP_DELETE_ELEM, self._del_ref)

    def lookup_and_delete(self, flags: int = 0, keyless: bool = False) -> bool:
        """Pop into ``value`` (the element under ``key``, or with ``keyless`` the next
        element of a queue or stack); False if there is none."""
        self._attr.flags = flags
        self._attr.key = 0 if keyless else self._key_addr
        try:
            return self._call(Cmd.MAP_LOOKUP_AND_DELETE_ELEM, self._ref)
        finally:
            self._attr.key = self._key_addr

    def peek(self) -> bool:
        """Keyless lookup (queue, stack): ``value`` = the next element; False if empty."""
        self._attr.flags = 0
        self._attr.key = 0
        try:
            return self._call(Cmd.MAP_LOOKUP_ELEM, self._ref)
        finally:
            self._attr.key = self._key_addr

    def push(self, flags: int = 0) -> bool:
        """Keyless update (queue, stack, bloom filter) of ``value``."""
        self._attr.flags = flags
        self._attr.key = 0
        try:
            return self._call(Cmd.MAP_UPDATE_ELEM, self._ref)
        finally:
            self._attr.key = self._key_addr

    def next(self, first: bool = False) -> bool:
        """``next_key`` = the key after ``key`` (the first with ``first``); False at the
        end."""
        self._next_attr.key = 0 if first else self._key_addr
        return self._call(Cmd.MAP_GET_NEXT_KEY, self._next_ref)


def split_chunk(raw: bytes, size: int, count: int) -> Tuple[bytes, ...]:
    """``raw`` cut into ``count`` pieces of ``size`` bytes."""
    return tuple(raw[i * size:(i + 1) * size] for i in range(count))
