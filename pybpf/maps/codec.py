"""Keys and values: Python objects <-> the bytes a map stores.

A key or value type is one of

* a ctypes scalar type (``c_uint32``, ``c_int64``, ``c_uint8``, ``c_bool``, ``c_double``,
  ``c_char``): Python ints (floats, bytes of one char) in and out;
* a ctypes ``Structure``, ``Union`` or array type (``c_uint8 * 16``): instances in and
  out; a tuple or list (``dict`` for a structure) is converted with the type's
  constructor;
* an ``int``: a plain byte size; ``bytes`` of exactly that size in and out.

Any type also accepts a bytes-like object of exactly its size. Conversions check type and
size and raise ``TypeError``/``ValueError`` naming the map, the role and the expected
layout, before anything reaches the kernel.
"""

from __future__ import annotations

import ctypes
import struct
from typing import Any, Callable, List, Optional, Sequence, Type, Union

__all__ = ["TypeSpec", "Codec", "PerCPUCodec", "codec_for", "describe_type", "type_size"]

#: what may describe a key or value: a ctypes type or a size in bytes
TypeSpec = Union[int, Type[Any]]

_BYTES_LIKE = (bytes, bytearray, memoryview)
# ctypes scalar codes that struct understands with the same native size and meaning
_STRUCT_CODES = set("bBhHiIlLqQfd?cPnN")
# codes memoryview.cast() accepts (for fast batch decoding)
_CAST_CODES = set("bBhHiIlLqQfd?cPnN")
_INT_CODES = set("bBhHiIlLqQPnN")


def type_size(spec: TypeSpec) -> int:
    """The size in bytes that ``spec`` describes."""
    if isinstance(spec, bool):
        raise TypeError(f"a key or value type is a ctypes type or a size, not {spec!r}")
    if isinstance(spec, int):
        if spec < 0:
            raise ValueError(f"a size cannot be negative: {spec}")
        return spec
    if isinstance(spec, type) and issubclass(spec, ctypes._SimpleCData):  # type: ignore
        return ctypes.sizeof(spec)
    if isinstance(spec, type) and issubclass(spec, (ctypes.Structure, ctypes.Union,
                                                    ctypes.Array)):
        return ctypes.sizeof(spec)
    raise TypeError(f"a key or value type is a ctypes type (c_uint32, a Structure, an "
                    f"array) or a size in bytes, not {spec!r}")


def _ctype_name(ctype: Any) -> str:
    """``c_uint32`` rather than the platform alias ``c_uint``."""
    code = getattr(ctype, "_type_", None)
    if isinstance(code, str) and isinstance(ctype, type) and issubclass(
            ctype, ctypes._SimpleCData) and code in _STRUCT_CODES:  # type: ignore
        bits = ctypes.sizeof(ctype) * 8
        if code in "BHILQN":
            return f"c_uint{bits}"
        if code in "bhilqn":
            return f"c_int{bits}"
    return getattr(ctype, "__name__", repr(ctype))


def describe_type(spec: TypeSpec) -> str:
    """A short human description: ``"c_uint32 (4 bytes)"``, ``"8 bytes"``."""
    if isinstance(spec, int):
        return f"{spec} bytes"
    if isinstance(spec, type) and issubclass(spec, ctypes.Array):
        return f"{_ctype_name(spec._type_)}[{spec._length_}] ({ctypes.sizeof(spec)} bytes)"
    if isinstance(spec, type) and issubclass(spec, ctypes.Structure):
        return f"struct {spec.__name__} ({ctypes.sizeof(spec)} bytes)"
    if isinstance(spec, type) and issubclass(spec, ctypes.Union):
        return f"union {spec.__name__} ({ctypes.sizeof(spec)} bytes)"
    return f"{_ctype_name(spec)} ({type_size(spec)} bytes)"


class Codec:
    """Conversion for one key or value type.

    ``pack_into(buf, offset, obj)`` writes ``obj`` into a writable buffer;
    ``unpack(buf, offset)`` reads one back; ``encode``/``decode`` work on ``bytes``;
    ``decode_many(raw, count)`` splits ``count`` packed items (batch answers).
    ``owner`` (e.g. ``"map 'counts'"``) and ``role`` (``"key"``) go into error messages.
    """

    def __init__(self, spec: TypeSpec, owner: str = "map", role: str = "value") -> None:
        self.spec = spec
        self.size = type_size(spec)
        self.owner = owner
        self.role = role
        self.ctype: Optional[type] = None if isinstance(spec, int) else spec
        self._struct: Optional[struct.Struct] = None
        self._cast: Optional[str] = None
        code = getattr(spec, "_type_", None) if self._is_simple() else None
        if code is not None:
            if not isinstance(code, str) or code not in _STRUCT_CODES:
                raise TypeError(f"{owner}: {role} type {describe_type(spec)} is not supported "
                                "(pointers and wide characters cannot be stored in a map)")
            self._struct = struct.Struct("@" + code)
            if self._struct.size != self.size:      # pragma: no cover - exotic platform
                raise TypeError(f"{owner}: {role} type {spec!r} has no struct equivalent")
            if code in _CAST_CODES:
                self._cast = code
        self.is_int = code is not None and code in _INT_CODES
        self.pack_into: Callable[[Any, int, Any], None] = self._choose_packer()
        #: the quickest packer: may raise struct.error/TypeError/OverflowError for input
        #: that ``pack_into`` would convert or explain; call ``pack_into`` then
        self.fast_pack: Callable[[Any, int, Any], None] = (
            self._struct.pack_into if self._struct is not None else self.pack_into)
        if self._struct is not None:
            unpack_from = self._struct.unpack_from

            def unpack(buf: Any, offset: int = 0) -> Any:
                return unpack_from(buf, offset)[0]
            self.unpack = unpack  # type: ignore[method-assign]

    def _is_simple(self) -> bool:
        return isinstance(self.spec, type) and issubclass(
            self.spec, ctypes._SimpleCData)  # type: ignore[attr-defined]

    def describe(self) -> str:
        """The expected layout, for messages."""
        return describe_type(self.spec)

    # -- errors ------------------------------------------------------------------------

    def error(self, obj: Any, why: str = "") -> Exception:
        """The exception for an ``obj`` that does not convert: ``ValueError`` for a wrong
        size or range, ``TypeError`` for a wrong type."""
        head = f"{self.owner}: {self.role} must be {self.describe()}"
        if isinstance(obj, _BYTES_LIKE):
            return ValueError(f"{head}, got {len(memoryview(obj).cast('B'))} bytes")
        if why:
            return ValueError(f"{head}: {why}")
        return TypeError(f"{head}, got {type(obj).__name__} {obj!r:.60}")

    # -- packing -----------------------------------------------------------------------

    def _choose_packer(self) -> Callable[[Any, int, Any], None]:
        if self._struct is not None:
            return self._pack_scalar
        if self.ctype is not None:
            return self._pack_ctype
        return self._pack_bytes

    def _raw_into(self, buf: Any, offset: int, obj: Any) -> bool:
        """Copy a bytes-like ``obj`` of exactly the right size; False otherwise."""
        if isinstance(obj, _BYTES_LIKE):
            view = memoryview(obj).cast("B")
            if len(view) == self.size:
                memoryview(buf).cast("B")[offset:offset + self.size] = view
                return True
        return False

    def _pack_scalar(self, buf: Any, offset: int, obj: Any) -> None:
        try:
            self._struct.pack_into(buf, offset, obj)  # type: ignore[union-attr]
            return
        except (struct.error, TypeError, OverflowError) as exc:
            failure = exc
        if isinstance(obj, ctypes._SimpleCData) and type(obj) is self.spec:  # type: ignore
            self._struct.pack_into(buf, offset, obj.value)  # type: ignore[union-attr]
            return
        if self._raw_into(buf, offset, obj):
            return
        if self.is_int and isinstance(obj, int) and not isinstance(obj, bool):
            low, high = _int_range(self._struct)  # type: ignore[arg-type]
            raise self.error(obj, f"{obj} is out of range [{low}, {high}]") from None
        if isinstance(obj, float) and self.is_int:
            raise self.error(obj) from None
        raise self.error(obj, "" if not isinstance(obj, (int, float)) else str(failure)) \
            from None

    def _pack_ctype(self, buf: Any, offset: int, obj: Any) -> None:
        ctype = self.ctype
        if type(obj) is not ctype:
            if self._raw_into(buf, offset, obj):
                return
            obj = self._coerce(obj)
        ctypes.memmove(ctypes.addressof(buf) + offset, ctypes.addressof(obj), self.size)

    def _coerce(self, obj: Any) -> Any:
        ctype = self.ctype
        assert ctype is not None
        if isinstance(obj, ctype):          # a subclass instance
            return obj
        try:
            if isinstance(obj, dict) and issubclass(ctype, (ctypes.Structure, ctypes.Union)):
                return ctype(**obj)
            if isinstance(obj, (tuple, list)):
                return ctype(*obj)
        except (TypeError, ValueError, IndexError, AttributeError) as exc:
            raise self.error(obj, f"cannot build it from {obj!r:.60}: {exc}") from None
        raise self.error(obj)

    def _pack_bytes(self, buf: Any, offset: int, obj: Any) -> None:
        if not self._raw_into(buf, offset, obj):
            raise self.error(obj)

    def encode(self, obj: Any) -> bytes:
        """``obj`` as ``size`` bytes."""
        if not self.size:
            if obj not in (None, b""):
                raise self.error(obj)
            return b""
        buf = (ctypes.c_char * self.size)()
        self.pack_into(buf, 0, obj)
        return buf.raw

    # -- unpacking ---------------------------------------------------------------------

    def unpack(self, buf: Any, offset: int = 0) -> Any:
        """The object stored at ``offset`` of ``buf``."""
        if self._struct is not None:
            return self._struct.unpack_from(buf, offset)[0]
        if self.ctype is not None:
            return self.ctype.from_buffer_copy(buf, offset)
        return bytes(memoryview(buf).cast("B")[offset:offset + self.size])

    def decode(self, raw: Any) -> Any:
        """The object in ``raw`` (exactly ``size`` bytes)."""
        return self.unpack(raw, 0)

    def decode_many(self, raw: Any, count: int, stride: int = 0) -> List[Any]:
        """``count`` objects packed every ``stride`` bytes (default: ``size``) in ``raw``."""
        stride = stride or self.size
        if self._cast is not None and stride == self.size:
            return memoryview(raw).cast("B")[:count * stride].cast(self._cast).tolist()
        unpack = self.unpack
        return [unpack(raw, i * stride) for i in range(count)]


def _int_range(st: struct.Struct) -> tuple:
    bits = st.size * 8
    if st.format[-1] in "bhilqn":
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


class PerCPUCodec:
    """Values of per-CPU maps: one entry per possible CPU, each padded to 8 bytes.

    Python side: a list with exactly ``ncpus`` items of the element type.
    """

    def __init__(self, element: Codec, ncpus: int) -> None:
        self.element = element
        self.ncpus = ncpus
        self.stride = (element.size + 7) & ~7
        self.size = self.stride * ncpus
        self.owner = element.owner
        self.role = element.role

    def describe(self) -> str:
        """The expected layout, for messages."""
        return (f"a list of {self.ncpus} values (one per possible CPU), each "
                f"{self.element.describe()}")

    def pack_into(self, buf: Any, offset: int, objs: Sequence[Any]) -> None:
        """Write one value per CPU at ``offset``."""
        if not isinstance(objs, (list, tuple)):
            raise TypeError(f"{self.owner}: {self.role} must be {self.describe()}, got "
                            f"{type(objs).__name__}")
        if len(objs) != self.ncpus:
            raise ValueError(f"{self.owner}: {self.role} must be {self.describe()}, got "
                             f"{len(objs)} values")
        pack = self.element.pack_into
        stride = self.stride
        for i, obj in enumerate(objs):
            pack(buf, offset + i * stride, obj)

    def encode(self, objs: Sequence[Any]) -> bytes:
        """The values as ``size`` bytes."""
        buf = (ctypes.c_char * max(self.size, 1))()
        self.pack_into(buf, 0, objs)
        return bytes(buf)[:self.size]

    def unpack(self, buf: Any, offset: int = 0) -> List[Any]:
        """The per-CPU list stored at ``offset``."""
        return self.element.decode_many(memoryview(buf).cast("B")[offset:offset + self.size],
                                        self.ncpus, self.stride)

    def decode(self, raw: Any) -> List[Any]:
        """The per-CPU list in ``raw``."""
        return self.unpack(raw, 0)

    def decode_many(self, raw: Any, count: int, stride: int = 0) -> List[List[Any]]:
        """``count`` per-CPU lists packed end to end."""
        stride = stride or self.size
        return [self.unpack(raw, i * stride) for i in range(count)]


def codec_for(spec: TypeSpec, owner: str, role: str) -> Codec:
    """A :class:`Codec` for ``spec``."""
    return Codec(spec, owner, role)
