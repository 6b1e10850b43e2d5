"""``Map``: a live map, owning its file descriptor, used like a dict.

The machinery every map family shares lives here: creation from a
:class:`~pybpf.maps.spec.MapSpec` (and reuse of a pinned map), opening by fd, id or pin
path, the element operations through one preallocated set of buffers, iteration that
survives concurrent deletes, batch operations with a fallback, pinning, freezing, and the
closing rules (a closed map raises :class:`MapClosedError` and never touches the
descriptor number again, which the kernel may have handed to something else).
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os
import struct
import warnings
from typing import (
    TYPE_CHECKING, Any, ClassVar, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple,
    Type, Union,
)

from ..syscall import maps as _sys
from ..syscall.bpf import MapType
from ..syscall.errors import BPFError
from ..syscall.fd import FD
from .bpffs import BPFFS_ROOT, ensure_bpffs, prepare_pin_path
from .codec import Codec, TypeSpec, type_size
from .spec import MapSpec, Pinning, type_name

if TYPE_CHECKING:
    from ..syscall.objects import MapInfo


def _objects() -> Any:
    """:mod:`pybpf.syscall.objects` (info, pins, ids), imported when first needed: it is
    not on the path of creating a map, and its import is a few ms of a tool's start."""
    from ..syscall import objects
    return objects


__all__ = ["Map", "MapClosedError", "ElemFlags", "DEFAULT_CHUNK"]

ElemFlags = _sys.ElemFlags

#: elements per batch call when reading or writing a whole map
DEFAULT_CHUNK = 8192

_MISSING: Any = object()
# what a codec's fast packer raises for input its full packer converts or explains
_PACK_ERRORS = (struct.error, TypeError, OverflowError, ValueError)


class MapClosedError(ValueError):
    """An operation on a map after :meth:`Map.close`."""


class Map:
    """A BPF map.

    Create one from a spec (``Map(spec)`` returns the subclass for the spec's type:
    :class:`~pybpf.maps.hash.HashMap`, :class:`~pybpf.maps.array.ArrayMap`, ...) or with
    the keyword form of a subclass (``HashMap(key=c_uint32, value=c_uint64,
    max_entries=1024, name="counts")``); open an existing one with :meth:`from_fd`,
    :meth:`from_id` or :meth:`open_pinned`.

    Element access follows ``dict``: ``m[k]``, ``m[k] = v``, ``del m[k]``, ``k in m``,
    :meth:`get`, :meth:`pop`, iteration over :meth:`keys`, :meth:`values`,
    :meth:`items`. An absent key raises ``KeyError``; a key or value of the wrong type or
    size raises ``TypeError``/``ValueError`` before any system call; kernel refusals
    raise :class:`~pybpf.syscall.errors.BPFError` (an ``OSError``) with errno and a hint.

    A map owns its descriptor: :meth:`close` (or ``with``) releases it, and a map that is
    garbage collected while open is closed too (with a ``ResourceWarning``). A map may
    be shared between threads: each operation takes the map's lock.
    """

    #: the map types this class handles (the first one is the keyword form's default)
    map_types: ClassVar[Tuple[int, ...]] = ()
    #: MapSpec fields the keyword form fills in when not given
    spec_defaults: ClassVar[Dict[str, Any]] = {}
    _registry: ClassVar[Dict[int, Type["Map"]]] = {}

    spec: MapSpec

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for map_type in cls.__dict__.get("map_types", ()):
            Map._registry[int(map_type)] = cls

    @staticmethod
    def class_for(map_type: Union[MapType, int]) -> Type["Map"]:
        """The :class:`Map` subclass that handles ``map_type`` (``Map`` itself for types
        without one: they get the generic dict-like behaviour)."""
        from . import load_class_module
        load_class_module(map_type)
        return Map._registry.get(int(map_type), Map)

    def __new__(cls, spec: Optional[MapSpec] = None, **kwargs: Any) -> "Map":
        if cls is Map:
            if not isinstance(spec, MapSpec):
                raise TypeError("Map() takes a MapSpec; for the keyword form use a map "
                                "class such as HashMap(key=..., value=..., max_entries=...)")
            cls = Map.class_for(spec.type)
        return object.__new__(cls)

    def __init__(self, spec: Optional[MapSpec] = None, *, pin_dir: Optional[str] = None,
                 **kwargs: Any) -> None:
        self._init_state()
        if spec is None:
            spec = self._spec_from_kwargs(dict(kwargs))
        elif kwargs:
            raise TypeError(f"{type(self).__name__}() takes a MapSpec or keyword arguments, "
                            f"not both (got {sorted(kwargs)})")
        elif not isinstance(spec, MapSpec):
            raise TypeError(f"{type(self).__name__}() takes a MapSpec, not {spec!r:.60}")
        spec = self._prepare_spec(spec)
        self._set_codecs(spec)          # all layout errors before any system call
        fd = self._create_or_reuse(spec, pin_dir)
        self._adopt(fd, spec)

    # -- construction helpers ----------------------------------------------------------

    def _init_state(self) -> None:
        self._fd: Optional[FD] = None
        self._ops: Optional[_sys.ElemOps] = None
        self._batch_ok: Optional[bool] = None
        self._pop_ok: Optional[bool] = None
        self._id: Optional[int] = None
        self.pinned_path: Optional[str] = None

    @classmethod
    def _spec_from_kwargs(cls, kwargs: Dict[str, Any]) -> MapSpec:
        if not cls.map_types:
            raise TypeError(f"{cls.__name__}() needs a MapSpec")
        kwargs.setdefault("type", cls.map_types[0])
        for name, value in cls.spec_defaults.items():
            kwargs.setdefault(name, value)
        try:
            return MapSpec(**kwargs)
        except TypeError as exc:
            raise TypeError(f"{cls.__name__}(): {exc}") from None

    def _prepare_spec(self, spec: MapSpec) -> MapSpec:
        """Check ``spec`` for this class and return it, possibly completed (subclasses
        refuse what they cannot handle with ``TypeError``/``ValueError``)."""
        if self.map_types and int(spec.type) not in self.map_types:
            raise TypeError(f"{type(self).__name__} handles "
                            f"{', '.join(type_name(t) for t in self.map_types)} maps, not "
                            f"{type_name(spec.type)}")
        return spec

    def _set_codecs(self, spec: MapSpec) -> None:
        self.spec = spec
        self._kc = self._key_codec(spec)
        self._vc = self._value_codec(spec)
        self._kpack = getattr(self._kc, "fast_pack", self._kc.pack_into)
        self._vpack = getattr(self._vc, "fast_pack", self._vc.pack_into)
        self._vunpack = self._vc.unpack

    def _key_codec(self, spec: MapSpec) -> Any:
        """The codec of keys (LPM tries override it)."""
        return Codec(spec.key, spec.label, "key")

    def _value_codec(self, spec: MapSpec) -> Any:
        """The codec of values (per-CPU and fd-holding maps override it)."""
        return Codec(spec.value, spec.label, "value")

    def _create_or_reuse(self, spec: MapSpec, pin_dir: Optional[str]) -> FD:
        path = None
        if spec.pinning is Pinning.BY_NAME:
            path = prepare_pin_path(os.path.join(pin_dir or BPFFS_ROOT, spec.name))
            if os.path.exists(path):
                fd = _objects().obj_get(path, kind="map")
                try:
                    why = spec.mismatch(_objects().map_info(fd))
                    if why:
                        raise ValueError(f"{spec.label}: the map pinned at {path} does not "
                                         f"match the spec: {why}")
                except BaseException:
                    fd.close()
                    raise
                self.pinned_path = path
                return fd
        fd = self._create_fd(spec)
        if path is not None:
            try:
                _objects().obj_pin(fd, path)
            except BaseException:
                fd.close()
                raise
            self.pinned_path = path
        return fd

    def _create_fd(self, spec: MapSpec) -> FD:
        """``BPF_MAP_CREATE`` for ``spec`` (map-in-map types override it)."""
        if not spec.btf:
            return _sys.map_create(spec.type, spec.key_size, spec.value_size,
                                   spec.max_entries, flags=spec.flags, name=spec.name,
                                   numa_node=spec.numa_node, map_extra=spec.map_extra)
        from ..btf.builder import map_btf
        described = map_btf(spec.key, spec.value)
        try:  # the map keeps its own reference to the BTF object
            return _sys.map_create(spec.type, spec.key_size, spec.value_size,
                                   spec.max_entries, flags=spec.flags, name=spec.name,
                                   numa_node=spec.numa_node, map_extra=spec.map_extra,
                                   btf_fd=described.fd, btf_key_type_id=described.key_type_id,
                                   btf_value_type_id=described.value_type_id)
        finally:
            described.close()

    def _adopt(self, fd: FD, spec: MapSpec) -> None:
        try:
            self._ops = _sys.ElemOps(fd.fileno(), spec.key_size, self._vc.size)
        except BaseException:
            fd.close()
            raise
        self._fd = fd

    @classmethod
    def from_fd(cls, fd: Union[FD, int], *, key: Optional[TypeSpec] = None,
                value: Optional[TypeSpec] = None, inner: Optional[MapSpec] = None) -> "Map":
        """The map behind ``fd``: an :class:`~pybpf.syscall.fd.FD` is taken over (closed
        with the map), an ``int`` is duplicated (the caller keeps its own).

        ``key``/``value`` give the layouts (default: bytes of the map's sizes); they must
        have the map's sizes. Called on :class:`Map`, the subclass for the map's type is
        returned.
        """
        if not isinstance(fd, FD):
            fd = FD(_dup(int(fd)), "map")
        try:
            info = _objects().map_info(fd)
            target = Map.class_for(info.type) if cls is Map else cls
            spec = _spec_from_info(info, key, value, inner)
            obj = object.__new__(target)
            obj._init_state()
            spec = obj._prepare_spec(spec)
            obj._set_codecs(spec)
        except BaseException:
            fd.close()
            raise
        obj._adopt(fd, spec)
        obj._id = info.id
        return obj

    @classmethod
    def from_id(cls, map_id: int, *, key: Optional[TypeSpec] = None,
                value: Optional[TypeSpec] = None, readonly: bool = False) -> "Map":
        """Open the map with id ``map_id`` (needs CAP_SYS_ADMIN); see :meth:`from_fd`."""
        flags = _objects().FileFlags.RDONLY if readonly else 0
        return cls.from_fd(_objects().map_get_fd_by_id(map_id, open_flags=flags), key=key,
                           value=value)

    @classmethod
    def open_pinned(cls, path: str, *, key: Optional[TypeSpec] = None,
                    value: Optional[TypeSpec] = None, readonly: bool = False) -> "Map":
        """Open the map pinned at ``path`` (``BPF_OBJ_GET``); see :meth:`from_fd`.
        ``readonly`` asks for a read-only descriptor (Linux 4.15)."""
        path = os.path.abspath(path)
        if path.startswith(BPFFS_ROOT + os.sep):
            ensure_bpffs()
        flags = _objects().FileFlags.RDONLY if readonly else 0
        m = cls.from_fd(_objects().obj_get(path, file_flags=flags, kind="map"), key=key,
                        value=value)
        m.pinned_path = path
        return m

    # -- identity ----------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The map's name (may be empty)."""
        return self.spec.name

    @property
    def type(self) -> Union[MapType, int]:
        """The map type."""
        return self.spec.type

    @property
    def key_size(self) -> int:
        """Key size in bytes."""
        return self.spec.key_size

    @property
    def value_size(self) -> int:
        """Value size in bytes (per CPU for per-CPU maps)."""
        return self.spec.value_size

    @property
    def max_entries(self) -> int:
        """Capacity."""
        return self.spec.max_entries

    @property
    def flags(self) -> int:
        """``map_flags``."""
        return self.spec.flags

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._ops is None

    @property
    def fd(self) -> FD:
        """The owned descriptor (for ``ld_map_fd`` and the like); raises
        :class:`MapClosedError` once closed."""
        if self._ops is None or self._fd is None:
            raise self._closed_error()
        return self._fd

    def fileno(self) -> int:
        """The descriptor number."""
        return self.fd.fileno()

    @property
    def id(self) -> int:
        """The kernel's id of the map (constant while it lives)."""
        if self._id is None:
            self._id = self.info().id
        return self._id

    def info(self) -> MapInfo:
        """What the kernel reports about the map (``BPF_OBJ_GET_INFO_BY_FD``)."""
        with self._locked():
            return _objects().map_info(self._fd)  # type: ignore[arg-type]

    @property
    def frozen(self) -> bool:
        """True if :meth:`freeze` was called on the map (by any process)."""
        with open(f"/proc/self/fdinfo/{self.fileno()}", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("frozen:"):
                    return line.split()[1] == "1"
        return False

    def __repr__(self) -> str:
        if self._ops is None:
            return f"<{type(self).__name__} {self.spec.label} closed>"
        return (f"<{type(self).__name__} {self.spec.label} key={self._kc.describe()} "
                f"value={self._vc.describe()} max_entries={self.max_entries} "
                f"fd={None if self._fd is None or self._fd.closed else self._fd.fileno()}>")

    # -- closing -----------------------------------------------------------------------

    def _closed_error(self) -> MapClosedError:
        label = self.spec.label if hasattr(self, "spec") else "map"
        return MapClosedError(f"{label} is closed")

    def close(self) -> None:
        """Release the descriptor (and any memory mapping); idempotent. Pins stay."""
        ops = self._ops
        if ops is not None:
            with ops.lock:
                self._ops = None
                try:
                    self._release()
                finally:
                    if self._fd is not None:
                        self._fd.close()
        elif self._fd is not None:
            self._fd.close()

    def _release(self) -> None:
        """Free what a subclass holds besides the fd (called with the lock held)."""

    def __enter__(self) -> "Map":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_ops", None) is not None:
            try:
                text = f"unclosed {self!r}"
                self.close()
            except Exception:       # a finaliser must not raise; the fd is closed anyway
                text = "unclosed map"
            warnings.warn(text, ResourceWarning, stacklevel=2)

    class _Lock:
        """Holds the map's lock for one operation and hands out its buffers.

        ``close()`` takes the same lock and clears ``_ops`` under it, so checking
        ``_ops`` again after acquiring tells whether the map was closed while we waited:
        an operation either runs on the still-open descriptor or raises
        :class:`MapClosedError`, and never reaches a number the kernel has reused.
        """

        __slots__ = ("map", "ops")

        def __init__(self, owner: "Map") -> None:
            self.map = owner

        def __enter__(self) -> _sys.ElemOps:
            ops = self.map._ops
            if ops is None:
                raise self.map._closed_error()
            ops.lock.acquire()
            if self.map._ops is not ops:        # closed while we waited
                ops.lock.release()
                raise self.map._closed_error()
            self.ops = ops
            return ops

        def __exit__(self, *exc: Any) -> None:
            self.ops.lock.release()

    def _locked(self) -> "Map._Lock":
        """``with self._locked() as ops``: the element buffers, the map known open."""
        return Map._Lock(self)

    # -- single elements ---------------------------------------------------------------

    def __getitem__(self, key: Any) -> Any:
        # the hot path: _Lock's protocol written out inline, to save a call
        ops = self._ops
        if ops is None:
            raise self._closed_error()
        with ops.lock:
            if self._ops is not ops:
                raise self._closed_error()
            try:
                self._kpack(ops.key, 0, key)
            except _PACK_ERRORS:
                self._kc.pack_into(ops.key, 0, key)     # converts, or explains
            if ops.lookup():
                return self._vunpack(ops.value)
        raise KeyError(key)

    def lookup(self, key: Any, *, flags: int = 0) -> Any:
        """The value under ``key`` (``KeyError`` if absent). ``flags``:
        :attr:`ElemFlags.LOCK` reads under the value's spin lock (Linux 5.1)."""
        with self._locked() as ops:
            self._kc.pack_into(ops.key, 0, key)
            if ops.lookup(flags):
                return self._vc.unpack(ops.value)
        raise KeyError(key)

    def get(self, key: Any, default: Any = None, *, flags: int = 0) -> Any:
        """The value under ``key``, or ``default``."""
        with self._locked() as ops:
            self._kc.pack_into(ops.key, 0, key)
            if ops.lookup(flags):
                return self._vc.unpack(ops.value)
        return default

    def __setitem__(self, key: Any, value: Any) -> None:
        ops = self._ops
        if ops is None:
            raise self._closed_error()
        with ops.lock:
            if self._ops is not ops:
                raise self._closed_error()
            try:
                self._kpack(ops.key, 0, key)
            except _PACK_ERRORS:
                self._kc.pack_into(ops.key, 0, key)
            try:
                self._vpack(ops.value, 0, value)
            except _PACK_ERRORS:
                self._vc.pack_into(ops.value, 0, value)
            try:
                if ops.update():
                    return
            except BPFError as exc:
                raise self._explain(exc) from None
        raise KeyError(key)

    def update(self, key: Any, value: Any, flags: int = ElemFlags.ANY) -> None:
        """Store ``value`` under ``key``. ``flags`` (:class:`ElemFlags`): ``NOEXIST``
        (create only: ``BPFError`` ``EEXIST`` if present), ``EXIST`` (replace only:
        ``KeyError`` if absent), ``LOCK`` (under the value's spin lock, Linux 5.1)."""
        with self._locked() as ops:
            self._kc.pack_into(ops.key, 0, key)
            self._vc.pack_into(ops.value, 0, value)
            try:
                if ops.update(flags):
                    return
            except BPFError as exc:
                raise self._explain(exc) from None
        raise KeyError(key)

    def _explain(self, exc: BPFError) -> BPFError:
        """``exc`` from a failed update, with the map's own reason when it has one."""
        if exc.errno in (_errno.EPERM, _errno.EACCES) and self._fd is not None:
            try:
                frozen = self.frozen
            except OSError:
                frozen = False
            if frozen:
                return type(exc)(exc.errno, f"{self.spec.label} is frozen: user space "
                                 "cannot change it", command=exc.command)
        if exc.errno == _errno.E2BIG:
            exc.hint = f"{self.spec.label} is full ({self.max_entries} entries), or an " \
                       "array index is out of range"
        return exc

    def __delitem__(self, key: Any) -> None:
        with self._locked() as ops:
            self._kc.pack_into(ops.key, 0, key)
            if ops.delete():
                return
        raise KeyError(key)

    def __contains__(self, key: Any) -> bool:
        with self._locked() as ops:
            self._kc.pack_into(ops.key, 0, key)
            return ops.lookup()

    def pop(self, key: Any, default: Any = _MISSING) -> Any:
        """Remove ``key`` and return its value (``default``, or ``KeyError``, if absent).
        Atomic (``BPF_MAP_LOOKUP_AND_DELETE_ELEM``) for hash maps on Linux 5.14+; a
        lookup then a delete where the kernel lacks it."""
        with self._locked() as ops:
            self._kc.pack_into(ops.key, 0, key)
            found: Optional[bool] = None
            if self._pop_ok is not False:
                try:
                    found = ops.lookup_and_delete()
                    self._pop_ok = True
                except OSError as exc:
                    if exc.errno not in (_errno.EINVAL, _errno.EOPNOTSUPP, _sys.ENOTSUPP):
                        raise
                    self._pop_ok = False
            if found is None:
                found = ops.lookup() and ops.delete()
            if found:
                return self._vc.unpack(ops.value)
        if default is _MISSING:
            raise KeyError(key)
        return default

    # -- iteration ---------------------------------------------------------------------

    def _next_raw(self, prev: Optional[bytes]) -> Optional[bytes]:
        with self._locked() as ops:
            if prev is None:
                found = ops.next(first=True)
            else:
                ops.key[:len(prev)] = prev
                found = ops.next()
            return ops.next_key.raw[:self.key_size] if found else None

    def _exists_raw(self, key: bytes) -> bool:
        with self._locked() as ops:
            ops.key[:len(key)] = key
            return ops.lookup()

    def _lookup_raw(self, key: bytes) -> Optional[Any]:
        with self._locked() as ops:
            ops.key[:len(key)] = key
            if ops.lookup():
                return self._vc.unpack(ops.value)
            return _MISSING

    def _walk_raw(self) -> Iterator[bytes]:
        """Every key once, as bytes, with ``BPF_MAP_GET_NEXT_KEY``.

        When the key we stand on is deleted, the kernel answers the next-key request with
        the first key of the map. We notice that as a key we already gave out, step back
        to the newest given-out key that still exists and continue from there (each key
        is checked once), so deletes during the walk neither repeat nor skip survivors.
        A map rewritten faster than it can be walked ends the walk early rather than
        loop: the walk stops after about four idle steps per entry.
        """
        seen = set()
        trail: List[bytes] = []
        prev: Optional[bytes] = None
        idle = 0
        limit = 4 * max(self.max_entries, 1) + 64
        while True:
            nxt = self._next_raw(prev)
            if nxt is None:
                return
            if nxt not in seen:
                seen.add(nxt)
                trail.append(nxt)
                yield nxt
                prev = nxt
                continue
            idle += 1
            if idle > limit:
                return
            if trail and prev == trail[-1] and not self._exists_raw(prev):
                trail.pop()
                while trail and not self._exists_raw(trail[-1]):
                    trail.pop()
                prev = trail[-1] if trail else None
            else:
                prev = nxt          # a key given out already: step over it

    def keys(self) -> Iterator[Any]:
        """Iterate over the keys (one ``BPF_MAP_GET_NEXT_KEY`` each). Deleting keys,
        including the current one, while iterating is safe; keys added meanwhile may or
        may not be seen."""
        decode = self._kc.decode
        for raw in self._walk_raw():
            yield decode(raw)

    def __iter__(self) -> Iterator[Any]:
        return self.keys()

    def items(self) -> Iterator[Tuple[Any, Any]]:
        """Iterate over ``(key, value)`` pairs: read :data:`DEFAULT_CHUNK` at a time with
        batch lookups where the kernel has them (Linux 5.6, hash and array types), else
        key by key. Safe against concurrent deletes like :meth:`keys`, with one
        difference: a chunk is a snapshot, so an element deleted after its chunk was
        read is still yielded."""
        yield from self._items(DEFAULT_CHUNK)

    def values(self) -> Iterator[Any]:
        """Iterate over the values (see :meth:`items`)."""
        for _, value in self._items(DEFAULT_CHUNK):
            yield value

    def _items(self, chunk: int) -> Iterator[Tuple[Any, Any]]:
        if self._batch_ok is not False:
            batches = self._raw_batches(chunk, delete=False)
            try:
                first = next(batches, None)
            except OSError as exc:
                if not self._batch_failure(exc):
                    raise
            else:
                if first is not None:
                    yield from self._decode_chunk(first)
                    for piece in batches:
                        yield from self._decode_chunk(piece)
                return
        kdecode = self._kc.decode
        for raw in self._walk_raw():
            value = self._lookup_raw(raw)
            if value is not _MISSING:         # deleted since the walk saw it
                yield kdecode(raw), value

    def __len__(self) -> int:
        """The number of elements: a walk over the map (batched where possible), not a
        stored count. ``list(m)`` calls it too, to size the list."""
        if self._batch_ok is not False:
            try:
                return sum(c.count for c in self._raw_batches(DEFAULT_CHUNK, delete=False))
            except OSError as exc:
                if not self._batch_failure(exc):
                    raise
        return sum(1 for _ in self._walk_raw())

    def __bool__(self) -> bool:
        return self._next_raw(None) is not None

    # -- batches -----------------------------------------------------------------------

    def _batch_failure(self, exc: BaseException) -> bool:
        """Record that batches do not work here if ``exc`` says so; False if ``exc`` is
        another error."""
        if _sys.batch_unsupported(exc) or (
                self._batch_ok is None and getattr(exc, "errno", None) == _errno.EINVAL):
            self._batch_ok = False
            return True
        return False

    def _raw_batches(self, chunk: int, delete: bool) -> Iterator[_sys.BatchChunk]:
        count = max(1, min(chunk, self.max_entries or 1))
        token: Optional[bytes] = None
        while True:
            with self._locked():
                try:
                    piece = _sys.map_lookup_batch(self._fd, self.key_size,  # type: ignore
                                                  self._vc.size, count, in_batch=token,
                                                  delete=delete)
                except OSError as exc:
                    # a hash bucket holds more elements than `count`: ask for more
                    if exc.errno == _errno.ENOSPC and count < (1 << 20):
                        count *= 2
                        continue
                    raise
            self._batch_ok = True
            if piece.count:
                yield piece
            if piece.next_batch is None:
                return
            token = piece.next_batch

    def _decode_chunk(self, piece: _sys.BatchChunk) -> List[Tuple[Any, Any]]:
        keys = self._kc.decode_many(piece.keys, piece.count)
        values = self._vc.decode_many(piece.values, piece.count)
        return list(zip(keys, values))

    def snapshot(self, chunk_size: int = DEFAULT_CHUNK) -> Tuple[List[Any], List[Any]]:
        """Every element as two parallel lists ``(keys, values)``, for readers that
        decode keys themselves (and may cache what they make of them): a key is an
        ``int`` when the key type is an integer, else its raw ``bytes``
        (:meth:`decode_key` gives the key object); values are decoded as :meth:`items`
        does. Read :data:`DEFAULT_CHUNK` at a time with batch lookups where the kernel
        has them, else key by key."""
        kc = self._kc
        int_keys = bool(getattr(kc, "is_int", False))
        keys: List[Any] = []
        values: List[Any] = []
        if self._batch_ok is not False:
            try:
                for piece in self._raw_batches(chunk_size, delete=False):
                    n = piece.count
                    if int_keys:
                        keys.extend(kc.decode_many(piece.keys, n))
                    else:
                        ks = self.key_size
                        raw = bytes(piece.keys[:n * ks])
                        keys.extend([raw[i:i + ks] for i in range(0, n * ks, ks)])
                    values.extend(self._vc.decode_many(piece.values, n))
                return keys, values
            except OSError as exc:
                if keys or not self._batch_failure(exc):
                    raise
        for raw in self._walk_raw():
            value = self._lookup_raw(raw)
            if value is not _MISSING:
                keys.append(kc.decode(raw) if int_keys else raw)
                values.append(value)
        return keys, values

    def decode_key(self, raw: bytes) -> Any:
        """The key object of ``raw``, the bytes of one key (see :meth:`snapshot`)."""
        return self._kc.decode(raw)

    def lookup_batch(self, chunk_size: int = DEFAULT_CHUNK) -> List[Tuple[Any, Any]]:
        """Every ``(key, value)`` pair, read ``chunk_size`` elements per
        ``BPF_MAP_LOOKUP_BATCH`` (Linux 5.6), or key by key where batches are missing."""
        return list(self._items(chunk_size))

    def lookup_and_delete_batch(self, chunk_size: int = DEFAULT_CHUNK
                                ) -> List[Tuple[Any, Any]]:
        """Remove every element and return the ``(key, value)`` pairs
        (``BPF_MAP_LOOKUP_AND_DELETE_BATCH``, Linux 5.6, hash types). Without batches:
        key by key, each lookup followed by a delete (not atomic)."""
        out: List[Tuple[Any, Any]] = []
        if self._batch_ok is not False:
            try:
                for piece in self._raw_batches(chunk_size, delete=True):
                    out.extend(self._decode_chunk(piece))
                return out
            except OSError as exc:
                if out or not self._batch_failure(exc):
                    raise
        kdecode = self._kc.decode
        for raw in self._walk_raw():
            with self._locked() as ops:
                ops.key[:len(raw)] = raw
                if ops.lookup():
                    value = self._vc.unpack(ops.value)
                    if ops.delete():
                        out.append((kdecode(raw), value))
        return out

    def _pack_all(self, codec: Any, objs: List[Any]) -> bytes:
        size = codec.size
        buf = (ctypes.c_char * max(size * len(objs), 1))()
        pack = codec.pack_into
        for i, obj in enumerate(objs):
            pack(buf, i * size, obj)
        return buf.raw[:size * len(objs)]

    def update_batch(self, items: Union[Mapping[Any, Any], Iterable[Tuple[Any, Any]]],
                     flags: int = ElemFlags.ANY, chunk_size: int = DEFAULT_CHUNK) -> int:
        """Store many pairs (a mapping or ``(key, value)`` pairs) with
        ``BPF_MAP_UPDATE_BATCH`` (Linux 5.6), or one by one where batches are missing.
        Every pair is converted before the first call. Returns the number stored."""
        pairs = list(items.items()) if isinstance(items, Mapping) else list(items)
        if not pairs:
            return 0
        keys = self._pack_all(self._kc, [k for k, _ in pairs])
        values = self._pack_all(self._vc, [v for _, v in pairs])
        return self._store_raw(keys, values, len(pairs), flags, chunk_size,
                               lambda i: pairs[i][0])

    def _store_raw(self, keys: bytes, values: bytes, count: int, flags: int,
                   chunk_size: int, key_of: Any = None) -> int:
        """Store ``count`` packed pairs: batched, or one by one."""
        ks, vs = self.key_size, self._vc.size
        done = 0
        if self._batch_ok is not False:
            try:
                while done < count:
                    n = min(chunk_size, count - done)
                    with self._locked():
                        _sys.map_update_batch(self._fd,  # type: ignore[arg-type]
                                              keys[done * ks:(done + n) * ks],
                                              values[done * vs:(done + n) * vs], n,
                                              elem_flags=flags)
                    self._batch_ok = True
                    done += n
                return done
            except OSError as exc:
                if done or not self._batch_failure(exc):
                    raise
        for i in range(count):
            with self._locked() as ops:
                ops.key[:ks] = keys[i * ks:(i + 1) * ks]
                ops.value[:vs] = values[i * vs:(i + 1) * vs]
                if not ops.update(flags):
                    raise KeyError(key_of(i) if key_of else keys[i * ks:(i + 1) * ks])
        return count

    def delete_batch(self, keys: Iterable[Any], chunk_size: int = DEFAULT_CHUNK) -> int:
        """Delete many keys (``BPF_MAP_DELETE_BATCH``, Linux 5.6, or one by one). A
        missing key raises ``KeyError`` after the keys before it were deleted."""
        objs = list(keys)
        if not objs:
            return 0
        raw = self._pack_all(self._kc, objs)
        ks = self.key_size
        done = 0
        if self._batch_ok is not False:
            try:
                while done < len(objs):
                    n = min(chunk_size, len(objs) - done)
                    with self._locked():
                        try:
                            _sys.map_delete_batch(self._fd,  # type: ignore[arg-type]
                                                  raw[done * ks:(done + n) * ks], n)
                        except BPFError as exc:
                            if exc.errno == _errno.ENOENT:
                                missing = done + getattr(exc, "processed", 0)
                                raise KeyError(objs[missing]) from None
                            raise
                    self._batch_ok = True
                    done += n
                return done
            except OSError as exc:
                if done or not self._batch_failure(exc):
                    raise
        for i in range(len(objs)):
            with self._locked() as ops:
                ops.key[:ks] = raw[i * ks:(i + 1) * ks]
                if not ops.delete():
                    raise KeyError(objs[i])
        return len(objs)

    def clear(self) -> None:
        """Delete every element (batched where possible)."""
        if self._batch_ok is not False:
            try:
                for _ in self._raw_batches(DEFAULT_CHUNK, delete=True):
                    pass
                return
            except OSError as exc:
                if not self._batch_failure(exc):
                    raise
        for raw in self._walk_raw():
            with self._locked() as ops:
                ops.key[:len(raw)] = raw
                ops.delete()

    # -- whole-map operations ----------------------------------------------------------

    def pin(self, path: str) -> None:
        """Pin the map at ``path`` in a BPF file system (mounted at ``/sys/fs/bpf`` if
        needed; missing directories are created). The pin outlives this object: remove it
        with :meth:`unpin` or ``os.unlink``."""
        path = prepare_pin_path(path)
        with self._locked():
            _objects().obj_pin(self._fd, path)  # type: ignore[arg-type]
        self.pinned_path = path

    def unpin(self, path: Optional[str] = None) -> None:
        """Remove the pin at ``path`` (default: where :meth:`pin` put it)."""
        target = path or self.pinned_path
        if target is None:
            raise ValueError(f"{self.spec.label} is not pinned")
        os.unlink(target)
        if target == self.pinned_path:
            self.pinned_path = None

    def freeze(self) -> None:
        """Make the map read-only for user space (``BPF_MAP_FREEZE``, Linux 5.2);
        programs can still write it unless created with ``BPF_F_RDONLY_PROG``."""
        with self._locked():
            _sys.map_freeze(self._fd)  # type: ignore[arg-type]


def _dup(fd: int) -> int:
    import fcntl
    return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 0)


def _spec_from_info(info: MapInfo, key: Optional[TypeSpec], value: Optional[TypeSpec],
                    inner: Optional[MapSpec]) -> MapSpec:
    spec = MapSpec(type=info.type, key=info.key_size if key is None else key,
                   value=info.value_size if value is None else value,
                   max_entries=info.max_entries, flags=info.map_flags, name=info.name,
                   inner=inner, map_extra=info.map_extra)
    for role, given, actual in (("key", key, info.key_size), ("value", value,
                                                              info.value_size)):
        if given is not None and type_size(given) != actual:
            raise ValueError(f"{spec.label}: its {role} size is {actual} bytes, but the "
                             f"{role} type given has {type_size(given)}")
    return spec
