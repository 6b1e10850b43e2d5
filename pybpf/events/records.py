"""Turning event records into Python values.

A reader is given a *record type* that says what each record holds:

* ``None``: the raw bytes (or, with ``zero_copy``, a memoryview into the ring that is
  valid only until the reader moves on);
* a :mod:`struct` format (``"<QIi"``) or a :class:`struct.Struct`: a tuple per record;
  whole batches of equal-sized records are unpacked at once with
  :meth:`struct.Struct.iter_unpack` straight from the ring's memoryview;
* a ``ctypes.Structure`` subclass: an instance per record, copied with
  ``from_buffer_copy`` (or, with ``zero_copy``, made over the ring's memory with
  ``from_buffer``);
* any other callable: called with a memoryview of each record's bytes.

:func:`make_decoder` builds the :class:`Decoder` for one of these; :func:`iter_records`
and :func:`unpack_records` are the bulk tools on their own, and
:func:`struct_format_of` derives a ``struct`` format from a plain ctypes structure so
that ctypes-described records can be decoded in bulk as tuples.

*Rows* are the fast form for tools: :func:`row_format` turns a layout (field names,
offsets and ``struct`` codes) into a format that yields, per record, a plain tuple of
the fields asked for (all by default), in declaration order, with everything else
skipped as padding, so a whole batch is one ``iter_unpack`` and no Python code runs
per record. A group of adjacent fields can come out as one ``bytes`` value (a cheap
dictionary key: see :func:`span_format` to unpack it again).
"""

from __future__ import annotations

import ctypes
import struct
from typing import Any, Callable, Iterator, List, Optional, Sequence, Tuple, Type, Union

__all__ = ["RecordType", "Decoder", "make_decoder", "struct_format_of", "iter_records",
           "unpack_records", "padded", "RowField", "RowItem", "row_format", "span_format"]

RecordType = Union[None, str, struct.Struct, Type[ctypes.Structure], Callable[[memoryview], Any]]

_ORDER_CHARS = "@=<>!"


def padded(size: int, align: int = 8) -> int:
    """``size`` rounded up to a multiple of ``align``."""
    return (size + align - 1) // align * align


def _split_order(fmt: str) -> "tuple[str, str]":
    fmt = fmt.strip()
    if fmt and fmt[0] in _ORDER_CHARS:
        return fmt[0], fmt[1:]
    return "@", fmt


def iter_records(fmt: Union[str, struct.Struct], buf: Any, *, stride: int = 0,
                 skip: int = 0) -> Iterator[tuple]:
    """Unpack ``fmt`` from every ``stride`` bytes of ``buf`` (a bytes-like object or a
    memoryview), starting ``skip`` bytes into each slot. ``stride`` 0 means the size of
    ``fmt``; ``len(buf)`` must be a multiple of it. Runs at C speed
    (:meth:`struct.Struct.iter_unpack` on a format with padding for the skipped bytes)."""
    base = fmt.format if isinstance(fmt, struct.Struct) else fmt
    order, body = _split_order(base)
    size = struct.calcsize(order + body)
    stride = stride or size
    if skip + size > stride:
        raise ValueError(f"a record of {size} bytes at offset {skip} does not fit in a "
                         f"{stride}-byte slot")
    tail = stride - skip - size
    full = struct.Struct(f"{order}{skip}x{body}{tail}x")
    if full.size != stride:
        raise ValueError(f"format {base!r} cannot be laid out in a {stride}-byte slot at "
                         f"offset {skip} (native alignment padding)")
    return full.iter_unpack(buf)


def unpack_records(fmt: Union[str, struct.Struct], buf: Any, *, stride: int = 0,
                   skip: int = 0) -> List[tuple]:
    """:func:`iter_records` as a list."""
    return list(iter_records(fmt, buf, stride=stride, skip=skip))


_CTYPES_CODES = {
    ctypes.c_int8: "b", ctypes.c_uint8: "B", ctypes.c_int16: "h", ctypes.c_uint16: "H",
    ctypes.c_int32: "i", ctypes.c_uint32: "I", ctypes.c_int64: "q", ctypes.c_uint64: "Q",
    ctypes.c_float: "f", ctypes.c_double: "d", ctypes.c_bool: "?", ctypes.c_char: "c",
}


def _code_of(ctype: Any) -> Optional[str]:
    for known, code in _CTYPES_CODES.items():
        if ctype is known:
            return code
    base = getattr(ctype, "_type_", None)
    if isinstance(base, str) and ctypes.sizeof(ctype) == struct.calcsize("=" + base):
        return base if base in "bBhHiIlLqQfd?c" else None
    return None


def struct_format_of(cls: Type[ctypes.Structure]) -> str:
    """A standard-size ``struct`` format (``"="`` plus explicit padding) that unpacks
    an instance of ctypes structure ``cls`` into a flat tuple, fields in order: integer
    and float fields give numbers, ``c_char`` arrays give ``bytes``, other arrays and
    nested structures give their elements in line. Bit fields and pointers raise
    :class:`TypeError`."""
    parts: List[str] = []

    def walk(ctype: Any, base: int, pos: int) -> int:
        for entry in ctype._fields_:
            if len(entry) > 2:
                raise TypeError(f"{cls.__name__}: bit field {entry[0]!r} has no struct "
                                "format")
            name, ftype = entry[0], entry[1]
            offset = base + getattr(ctype, name).offset
            if offset > pos:
                parts.append(f"{offset - pos}x")
            pos = offset
            pos = field(ftype, pos)
        return pos

    def field(ftype: Any, pos: int) -> int:
        if isinstance(ftype, type) and issubclass(ftype, (ctypes.Structure, ctypes.Union)):
            if issubclass(ftype, ctypes.Union):
                raise TypeError(f"{cls.__name__}: unions have no struct format")
            end = walk(ftype, pos, pos)
            size = ctypes.sizeof(ftype)
            if pos + size > end:
                parts.append(f"{pos + size - end}x")
            return pos + size
        if isinstance(ftype, type) and issubclass(ftype, ctypes.Array):
            if ftype._type_ is ctypes.c_char:
                parts.append(f"{ftype._length_}s")
                return pos + ftype._length_
            for _ in range(ftype._length_):
                pos = field(ftype._type_, pos)
            return pos
        code = _code_of(ftype)
        if code is None:
            raise TypeError(f"{cls.__name__}: field type {getattr(ftype, '__name__', ftype)}"
                            " has no struct format")
        parts.append(code)
        return pos + ctypes.sizeof(ftype)

    end = walk(cls, 0, 0)
    size = ctypes.sizeof(cls)
    if size > end:
        parts.append(f"{size - end}x")
    fmt = "=" + "".join(parts)
    if struct.calcsize(fmt) != size:     # pragma: no cover - a layout we misread
        raise TypeError(f"{cls.__name__}: could not derive a struct format")
    return fmt


#: one field of a row layout: (name, byte offset, ``struct`` code such as ``"Q"``,
#: ``"i"`` or ``"16s"``); the code's size is the field's size
RowField = Tuple[str, int, str]
#: what a row holds at one position: a field name, or a tuple of adjacent field names
#: taken together as one ``bytes`` value
RowItem = Union[str, Sequence[str]]


def _field_end(field: RowField) -> int:
    return field[1] + struct.calcsize("<" + field[2])


def row_format(fields: Sequence[RowField], size: int,
               items: Optional[Sequence[RowItem]] = None) -> str:
    """A little-endian ``struct`` format that unpacks a ``size``-byte record laid out as
    ``fields`` into a plain tuple with one value per entry of ``items`` (default: every
    field), in declaration order; the bytes of fields not asked for are skipped.

    An entry is a field name (its value: an ``int``, or ``bytes`` for an ``"Ns"`` code;
    ``char[N]`` strings come whole, NUL padding included: cut them with
    ``.partition(b"\0")[0]`` where they are printed), or a tuple of adjacent field
    names, whose bytes (from the first one's offset to the end of the last) come as one
    ``bytes`` value. Entries must follow the declaration order and not overlap: a
    :class:`ValueError` (or :class:`KeyError` for an unknown name) says which one
    does not."""
    by_name = {f[0]: i for i, f in enumerate(fields)}
    wanted: List[RowItem] = list(items) if items is not None else [f[0] for f in fields]
    parts: List[str] = ["<"]
    pos = 0
    last = -1
    for item in wanted:
        names = [item] if isinstance(item, str) else list(item)
        if not names:
            raise ValueError("an empty group of fields")
        for n in names:
            if n not in by_name:
                raise KeyError(f"no field {n!r} (fields: {', '.join(f[0] for f in fields)})")
        idx = [by_name[n] for n in names]
        if idx != list(range(idx[0], idx[0] + len(idx))):
            raise ValueError(f"fields {', '.join(names)} are not adjacent in declaration "
                             "order")
        if idx[0] <= last:
            raise ValueError(f"field {names[0]!r} comes before (or is part of) an earlier "
                             "entry: give the fields in declaration order")
        last = idx[-1]
        first = fields[idx[0]]
        if first[1] > pos:
            parts.append(f"{first[1] - pos}x")
        if isinstance(item, str):
            parts.append(first[2])
        else:
            parts.append(f"{_field_end(fields[idx[-1]]) - first[1]}s")
        pos = _field_end(fields[idx[-1]])
    if size > pos:
        parts.append(f"{size - pos}x")
    fmt = "".join(parts)
    if struct.calcsize(fmt) != size:
        raise ValueError(f"the fields do not fit in a {size}-byte record")
    return fmt


def span_format(fields: Sequence[RowField], names: Sequence[str]) -> str:
    """The ``struct`` format of the ``bytes`` value that :func:`row_format` gives for the
    group ``names`` (adjacent fields): one value per field, padding skipped."""
    by_name = {f[0]: f for f in fields}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise KeyError(f"no field {missing[0]!r} (fields: {', '.join(f[0] for f in fields)})")
    chosen = [by_name[n] for n in names]
    base = chosen[0][1]
    parts: List[str] = ["<"]
    pos = base
    for name, off, code in chosen:
        if off < pos:
            raise ValueError(f"field {name!r} is out of declaration order")
        if off > pos:
            parts.append(f"{off - pos}x")
        parts.append(code)
        pos = off + struct.calcsize("<" + code)
    return "".join(parts)


class Decoder:
    """How records become Python values (see :func:`make_decoder`).

    ``size`` is the number of bytes a record must have (None: any length);
    :meth:`one` decodes one record; :meth:`bulk` decodes ``count`` records laid out
    every ``stride`` bytes of ``buf`` with the payload ``skip`` bytes into each slot,
    returning a list, or None when this decoder has no bulk form.
    """

    kind = "raw"

    def __init__(self, size: Optional[int] = None) -> None:
        self.size = size

    def one(self, buf: memoryview, offset: int, length: int) -> Any:
        """The value of the record of ``length`` bytes at ``offset`` of ``buf``."""
        return bytes(buf[offset:offset + length])

    def bulk(self, buf: memoryview, stride: int, skip: int,
             length: int = 0) -> Optional[List[Any]]:
        """Every record of ``buf`` at once (each ``length`` bytes at ``skip`` of its
        ``stride``-byte slot), or None if this decoder cannot."""
        raw = buf.tobytes()
        return [raw[o:o + length] for o in range(skip, len(raw), stride)]

    def check(self, length: int) -> None:
        """Raise :class:`ValueError` if a record of ``length`` bytes is too short."""
        if self.size is not None and length < self.size:
            raise ValueError(f"a {length}-byte record is shorter than the record type "
                             f"({self.size} bytes)")


class _ViewDecoder(Decoder):
    kind = "view"

    def one(self, buf: memoryview, offset: int, length: int) -> Any:
        return buf[offset:offset + length]

    def bulk(self, buf: memoryview, stride: int, skip: int,
             length: int = 0) -> Optional[List[Any]]:
        return [buf[o:o + length] for o in range(skip, len(buf), stride)]


class _StructDecoder(Decoder):
    kind = "struct"

    def __init__(self, fmt: Union[str, struct.Struct]) -> None:
        self.struct = fmt if isinstance(fmt, struct.Struct) else struct.Struct(fmt)
        super().__init__(self.struct.size)
        self._bulk_cache: dict = {}

    def one(self, buf: memoryview, offset: int, length: int) -> Any:
        if length < self.struct.size:
            self.check(length)
        return self.struct.unpack_from(buf, offset)

    def bulk(self, buf: memoryview, stride: int, skip: int,
             length: int = 0) -> Optional[List[Any]]:
        full = self._bulk_cache.get((stride, skip))
        if full is None:
            order, body = _split_order(self.struct.format)
            tail = stride - skip - self.struct.size
            if tail < 0:
                return None
            full = struct.Struct(f"{order}{skip}x{body}{tail}x")
            if full.size != stride:
                full = False
            self._bulk_cache[(stride, skip)] = full
        if full is False:
            return None
        return list(full.iter_unpack(buf))


class _CtypesDecoder(Decoder):
    kind = "ctypes"

    def __init__(self, cls: Type[ctypes.Structure], zero_copy: bool) -> None:
        super().__init__(ctypes.sizeof(cls))
        self.cls = cls
        self.zero_copy = zero_copy
        #: set by the reader for zero-copy decoding: (ctypes array, base offset)
        self.backing: Any = None

    def one(self, buf: memoryview, offset: int, length: int) -> Any:
        if length < self.size:          # type: ignore[operator]
            self.check(length)
        if self.zero_copy and self.backing is not None:
            array, base = self.backing
            return self.cls.from_buffer(array, base + offset)
        return self.cls.from_buffer_copy(buf, offset)

    def bulk(self, buf: memoryview, stride: int, skip: int,
             length: int = 0) -> Optional[List[Any]]:
        if self.zero_copy:
            return None
        make = self.cls.from_buffer_copy
        return [make(buf, off) for off in range(skip, len(buf), stride)]


class _CallableDecoder(Decoder):
    kind = "callable"

    def __init__(self, fn: Callable[[memoryview], Any]) -> None:
        super().__init__(None)
        self.fn = fn

    def one(self, buf: memoryview, offset: int, length: int) -> Any:
        return self.fn(buf[offset:offset + length])

    def bulk(self, buf: memoryview, stride: int, skip: int,
             length: int = 0) -> Optional[List[Any]]:
        return None


def make_decoder(record: RecordType = None, *, zero_copy: bool = False) -> Decoder:
    """The :class:`Decoder` for a record type (see the module's description).
    ``zero_copy`` makes raw records memoryviews and ctypes records structures over the
    ring's memory: valid only while the callback that receives them runs."""
    if record is None:
        return _ViewDecoder() if zero_copy else Decoder()
    if isinstance(record, Decoder):
        return record
    if isinstance(record, (str, struct.Struct)):
        return _StructDecoder(record)
    if isinstance(record, type) and issubclass(record, (ctypes.Structure, ctypes.Union)):
        return _CtypesDecoder(record, zero_copy)
    if callable(record):
        return _CallableDecoder(record)
    raise TypeError(f"a record type is None, a struct format, a ctypes structure or a "
                    f"callable, not {type(record).__name__}")
