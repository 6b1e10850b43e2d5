"""Event and value structs: one class declares the layout a BPF program writes and the
Python object user space reads.

::

    class Event(Struct):
        pid: u32
        ret: i32
        comm: char[16]

A subclass gets C layout (natural alignment, size rounded up to the largest alignment,
as clang lays out the same struct for BPF). In a program, ``e = Event()`` is a zeroed
struct on the BPF stack; in Python, ``Event.from_bytes(raw)`` decodes a record into an
``Event`` whose ``char[N]`` fields are ``str`` (up to the first NUL), integer arrays are
lists and nested structs are their classes; ``Event.ctype()`` is the matching
``ctypes.Structure`` (used for map keys and values). ``Event.row_format()`` is the
``struct`` format of the fast path for tools: plain tuples decoded a batch at a time
(see :meth:`Struct.row_format` and :meth:`pybpf.dsl.loader.LoadedModule.on`).
"""

from __future__ import annotations

import ctypes
import struct as _struct
from typing import Any, Dict, List, Optional, Tuple, Type

from ..compiler.types import (
    ArrayType, Field, IntType, Layout, c_layout, ctype_of, is_struct, sizeof,
)

__all__ = ["Struct", "Field", "Layout", "ctype_of", "FieldTypeError"]


class FieldTypeError(TypeError):
    """A :class:`Struct` field whose type is not a pybpf.dsl type: ``struct_name`` and
    ``field`` say which (the error is reported at that field's line), ``hint`` what to
    write instead."""

    def __init__(self, struct_name: str, field: str, message: str, hint: str) -> None:
        self.struct_name, self.field, self.hint = struct_name, field, hint
        super().__init__(f"{struct_name}.{field}: {message}")


def _type_name(t: Any) -> str:
    return getattr(t, "__name__", None) or repr(t)


def _layout(cls: type) -> Layout:
    members: List[Tuple[str, Any]] = []
    for name, t in cls.__dict__.get("__annotations__", {}).items():
        if isinstance(t, str):
            raise FieldTypeError(cls.__name__, name, f"the type is the string {t!r}",
                                 "write the type itself: remove 'from __future__ import "
                                 "annotations' from the module")
        if not (isinstance(t, (IntType, ArrayType)) or is_struct(t)):
            kinds = "u8..u64, i8..i64, char[N], T[N] or a Struct"
            hint = (f"BPF has no floating point: use an integer type ({kinds})"
                    if t is float else f"use {kinds}")
            raise FieldTypeError(cls.__name__, name,
                                 f"{_type_name(t)} is not a pybpf.dsl type", hint)
        members.append((name, t))
    return c_layout(members)


_FORMATS = {(8, False): "B", (16, False): "H", (32, False): "I", (64, False): "Q",
            (8, True): "b", (16, True): "h", (32, True): "i", (64, True): "q"}


class Struct:
    """Base class of structs shared by programs and user space (see the module doc)."""

    __pybpf_layout__: Layout = Layout((), 0, 1)
    __pybpf_ctype__: Optional[type] = None
    __pybpf_decoder__: Any = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.__pybpf_layout__ = _layout(cls)
        cls.__pybpf_ctype__ = None
        cls.__pybpf_decoder__ = None

    def __init__(self, **values: Any) -> None:
        for f in self.__pybpf_layout__.fields:
            setattr(self, f.name, values.pop(f.name, _default(f.type)))
        if values:
            raise TypeError(f"{type(self).__name__} has no field(s) {', '.join(values)}")

    def __repr__(self) -> str:
        inner = ", ".join(f"{f.name}={getattr(self, f.name)!r}"
                          for f in self.__pybpf_layout__.fields)
        return f"{type(self).__name__}({inner})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and all(
            getattr(self, f.name) == getattr(other, f.name)
            for f in self.__pybpf_layout__.fields)

    @classmethod
    def size(cls) -> int:
        """The size in bytes."""
        return cls.__pybpf_layout__.size

    @classmethod
    def ctype(cls) -> type:
        """The matching ``ctypes.Structure`` (built once)."""
        if cls.__pybpf_ctype__ is None:
            members = [(f.name, ctype_of(f.type)) for f in cls.__pybpf_layout__.fields]
            ct = type(cls.__name__, (ctypes.Structure,), {"_fields_": members})
            if ctypes.sizeof(ct) != cls.size():       # pragma: no cover - layout invariant
                raise AssertionError(f"{cls.__name__}: ctypes size {ctypes.sizeof(ct)} "
                                     f"!= {cls.size()}")
            cls.__pybpf_ctype__ = ct
        return cls.__pybpf_ctype__

    @classmethod
    def from_bytes(cls, raw: Any, offset: int = 0) -> Any:
        """Decode one record (``bytes``/``memoryview``, at least ``size()`` bytes)."""
        if cls.__pybpf_decoder__ is None:
            cls.__pybpf_decoder__ = _decoder(cls)
        return cls.__pybpf_decoder__(raw, offset)

    @classmethod
    def row_fields(cls) -> Tuple[Tuple[str, int, str], ...]:
        """Each field as ``(name, offset, struct code)``: integers by their size and
        sign (``"Q"``, ``"i"``...), ``char[N]`` as ``"Ns"`` (raw bytes, NUL padding
        included), other arrays and nested structs as raw ``"Ns"`` bytes too."""
        out = []
        for f in cls.__pybpf_layout__.fields:
            if isinstance(f.type, IntType):
                code = _FORMATS[(f.type.bits, f.type.signed)]
            else:
                code = f"{sizeof(f.type)}s"
            out.append((f.name, f.offset, code))
        return tuple(out)

    @classmethod
    def row_format(cls, items: Optional[Any] = None) -> str:
        """The ``struct`` format that unpacks one record into a plain tuple of the
        fields named in ``items`` (default: all), in declaration order; a tuple of
        adjacent names gives their bytes as one value (a cheap dictionary key). See
        :func:`pybpf.events.records.row_format`."""
        from ..events.records import row_format
        return row_format(cls.row_fields(), cls.size(), items)

    @classmethod
    def span_format(cls, names: Any) -> str:
        """The ``struct`` format of the bytes of the adjacent fields ``names`` as
        :meth:`row_format` gives them for a group: one value per field."""
        from ..events.records import span_format
        return span_format(cls.row_fields(), list(names))

    def to_bytes(self) -> bytes:
        """Encode this struct in its C layout."""
        buf = bytearray(self.size())
        _encode(type(self), self, buf, 0)
        return bytes(buf)


def _default(t: Any) -> Any:
    if isinstance(t, IntType):
        return 0
    if isinstance(t, ArrayType):
        return "" if t.is_string else [_default(t.elem) for _ in range(t.count)]
    return t()


def _encode(t: Any, value: Any, buf: bytearray, offset: int) -> None:
    if isinstance(t, IntType):
        fmt = _FORMATS[(t.bits, t.signed)]
        _struct.pack_into("<" + fmt, buf, offset, t.wrap(int(value)))
    elif isinstance(t, ArrayType):
        if t.is_string:
            data = value.encode() if isinstance(value, str) else bytes(value)
            buf[offset:offset + t.count] = data[:t.count].ljust(t.count, b"\0")
        else:
            step = sizeof(t.elem)
            for i, v in enumerate(list(value)[:t.count]):
                _encode(t.elem, v, buf, offset + i * step)
    else:
        for f in t.__pybpf_layout__.fields:
            _encode(f.type, getattr(value, f.name), buf, offset + f.offset)


def _decoder(cls: Type[Struct]) -> Any:
    """A fast decoder: one ``struct.Struct`` unpack, then strings cut at NUL and arrays
    and nested structs rebuilt."""
    parts: List[str] = ["<"]
    plan: List[Tuple[str, str, Any]] = []       # (field, kind, extra)
    pos = 0

    def flat(t: Any, base: int, name: str) -> None:
        nonlocal pos
        if base > pos:
            parts.append(f"{base - pos}x")
            pos = base
        if isinstance(t, IntType):
            parts.append(_FORMATS[(t.bits, t.signed)])
            plan.append((name, "int", None))
            pos += t.size
        elif isinstance(t, ArrayType) and t.is_string:
            parts.append(f"{t.count}s")
            plan.append((name, "str", None))
            pos += t.count
        else:
            parts.append(f"{sizeof(t)}s")
            plan.append((name, "raw", t))
            pos += sizeof(t)

    for f in cls.__pybpf_layout__.fields:
        flat(f.type, f.offset, f.name)
    if cls.size() > pos:
        parts.append(f"{cls.size() - pos}x")
    unpacker = _struct.Struct("".join(parts))
    names = [p[0] for p in plan]
    kinds = [(p[1], p[2]) for p in plan]
    simple = all(k == "int" for k, _ in kinds)
    new = object.__new__

    def decode(raw: Any, offset: int = 0) -> Any:
        values = unpacker.unpack_from(raw, offset)
        obj = new(cls)
        d = obj.__dict__
        if simple:
            d.update(zip(names, values))
            return obj
        for name, (kind, t), v in zip(names, kinds, values):
            if kind == "str":
                cut = v.find(b"\0")
                d[name] = (v if cut < 0 else v[:cut]).decode("utf-8", "replace")
            elif kind == "raw":
                d[name] = _decode_value(t, v)
            else:
                d[name] = v
        return obj

    return decode


def _decode_value(t: Any, raw: bytes) -> Any:
    if is_struct(t):
        return t.from_bytes(raw)
    if isinstance(t, ArrayType):
        step = sizeof(t.elem)
        if isinstance(t.elem, IntType):
            fmt = "<" + _FORMATS[(t.elem.bits, t.elem.signed)] * t.count
            return list(_struct.unpack(fmt, raw))
        return [_decode_value(t.elem, raw[i * step:(i + 1) * step]) for i in range(t.count)]
    raise TypeError(t)                           # pragma: no cover


def fields_of(t: Any) -> Dict[str, Field]:
    """The fields of a Struct by name."""
    return {f.name: f for f in t.__pybpf_layout__.fields}
