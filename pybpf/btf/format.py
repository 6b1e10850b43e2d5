"""The BTF wire format as constants: the header, the kinds, and the layout of each kind's
trailing records.

A BTF blob is a header, a type section and a string section. Each type is a 12-byte
record (``name_off``, ``info``, ``size_or_type``) followed by a kind-specific tail; type
ids count the records from 1 (0 is ``void``). ``info`` packs ``vlen`` (bits 0-15), the
kind (bits 24-28) and ``kind_flag`` (bit 31). All fields are in the blob's byte order,
which the magic number tells (0xEB9F read in native order).

Kernel versions (BTF itself and ``BPF_BTF_LOAD`` are Linux 4.18): FUNC and FUNC_PROTO
4.20; VAR and DATASEC 5.2; ``kind_flag`` bitfield offsets 4.20; FLOAT 5.13; DECL_TAG 5.16;
TYPE_TAG 5.17; ENUM64 and signed enums 6.0.
"""

from __future__ import annotations

import enum
import struct
from typing import Dict, Optional, Tuple

from .._enum import enum_of

__all__ = [
    "MAGIC", "VERSION", "HEADER", "HEADER_SIZE", "TYPE_HEADER", "TYPE_HEADER_SIZE", "Kind",
    "KIND_NAMES", "KIND_SINCE", "kind_from_name", "IntEncoding", "FuncLinkage",
    "VarLinkage", "FIXED_WORDS", "WORDS_PER_ITEM", "MAX_VLEN", "MAX_KIND",
    "info_word", "unpack_info", "FUNC_INFO", "LINE_INFO", "line_col", "LINE_COL_BITS",
]

#: the magic number, as a native-order 16-bit value at offset 0
MAGIC = 0xEB9F
#: the only format version
VERSION = 1

#: ``struct btf_header``: magic, version, flags, hdr_len, type_off, type_len, str_off,
#: str_len (offsets are relative to the end of the header)
HEADER = struct.Struct("<HBBIIIII")
HEADER_SIZE = HEADER.size          # 24

#: the common part of every type record: name_off, info, size or type
TYPE_HEADER = struct.Struct("<III")
TYPE_HEADER_SIZE = TYPE_HEADER.size

#: the largest ``vlen`` (16 bits)
MAX_VLEN = 0xFFFF


@enum_of(enum.IntEnum)
class Kind:
    """``BTF_KIND_*``: what a type record describes."""

    UNKN = 0          # only id 0, void
    INT = 1
    PTR = 2
    ARRAY = 3
    STRUCT = 4
    UNION = 5
    ENUM = 6
    FWD = 7
    TYPEDEF = 8
    VOLATILE = 9
    CONST = 10
    RESTRICT = 11
    FUNC = 12
    FUNC_PROTO = 13
    VAR = 14
    DATASEC = 15
    FLOAT = 16
    DECL_TAG = 17
    TYPE_TAG = 18
    ENUM64 = 19


#: the largest kind this module knows
MAX_KIND = max(Kind)

#: lower-case kind names, as accepted by :func:`kind_from_name` and printed in listings
KIND_NAMES: Dict[int, str] = {k: k.name.lower() for k in Kind}
KIND_NAMES[Kind.UNKN] = "void"

#: the first Linux release whose BTF loader accepts each kind
KIND_SINCE: Dict[int, Tuple[int, int]] = {
    Kind.INT: (4, 18), Kind.PTR: (4, 18), Kind.ARRAY: (4, 18), Kind.STRUCT: (4, 18),
    Kind.UNION: (4, 18), Kind.ENUM: (4, 18), Kind.FWD: (4, 18), Kind.TYPEDEF: (4, 18),
    Kind.VOLATILE: (4, 18), Kind.CONST: (4, 18), Kind.RESTRICT: (4, 18),
    Kind.FUNC: (4, 20), Kind.FUNC_PROTO: (4, 20), Kind.VAR: (5, 2), Kind.DATASEC: (5, 2),
    Kind.FLOAT: (5, 13), Kind.DECL_TAG: (5, 16), Kind.TYPE_TAG: (5, 17),
    Kind.ENUM64: (6, 0),
}

_ALIASES = {"function": Kind.FUNC, "proto": Kind.FUNC_PROTO, "func-proto": Kind.FUNC_PROTO,
            "decl-tag": Kind.DECL_TAG, "type-tag": Kind.TYPE_TAG, "pointer": Kind.PTR,
            "void": Kind.UNKN}


def kind_from_name(kind: "str | int | Kind") -> Kind:
    """A :class:`Kind` from a kind, its number or its name (``"struct"``, ``"FUNC"``,
    ``"func_proto"``); raises ``ValueError`` naming the known names otherwise."""
    if isinstance(kind, Kind):
        return kind
    if isinstance(kind, int) and not isinstance(kind, bool):
        return Kind(kind)
    text = str(kind).strip().lower()
    if text in _ALIASES:
        return _ALIASES[text]
    try:
        return Kind[text.upper().replace("-", "_")]
    except KeyError:
        known = ", ".join(KIND_NAMES[k] for k in Kind if k)
        raise ValueError(f"unknown BTF kind {kind!r} (known: {known})") from None


@enum_of(enum.IntFlag)
class IntEncoding:
    """The encoding bits of an INT (bits 24-27 of its trailing word)."""

    NONE = 0
    SIGNED = 1
    CHAR = 2
    BOOL = 4


@enum_of(enum.IntEnum)
class FuncLinkage:
    """The linkage of a FUNC, kept in its ``vlen``. GLOBAL functions are verified on
    their own (Linux 5.6); EXTERN ones are resolved at load (5.9)."""

    STATIC = 0
    GLOBAL = 1
    EXTERN = 2


@enum_of(enum.IntEnum)
class VarLinkage:
    """The linkage of a VAR (its trailing word)."""

    STATIC = 0
    GLOBAL = 1   # "allocated" in the kernel's words
    EXTERN = 2


#: 32-bit words that follow the type header whatever the vlen, per kind (None for the
#: kinds this module does not know, so that arithmetic on them fails loudly)
FIXED_WORDS: Tuple[Optional[int], ...] = tuple(
    ({Kind.INT: 1, Kind.ARRAY: 3, Kind.VAR: 1, Kind.DECL_TAG: 1}.get(k, 0)  # type: ignore
     if 0 < k <= MAX_KIND else None)
    for k in range(32))

#: 32-bit words per ``vlen`` item, per kind: members (name, type, offset), enumerators
#: (name, value) or 64-bit enumerators (name, low, high), parameters (name, type),
#: section entries (type, offset, size)
WORDS_PER_ITEM: Tuple[int, ...] = tuple(
    {Kind.STRUCT: 3, Kind.UNION: 3, Kind.ENUM: 2, Kind.FUNC_PROTO: 2, Kind.DATASEC: 3,
     Kind.ENUM64: 3}.get(k, 0)  # type: ignore[call-overload]
    for k in range(32))


def info_word(kind: int, vlen: int = 0, kind_flag: bool = False) -> int:
    """Pack a type's ``info`` word."""
    if not 0 <= vlen <= MAX_VLEN:
        raise ValueError(f"vlen {vlen} does not fit in 16 bits")
    return (int(kind) << 24) | vlen | (0x80000000 if kind_flag else 0)


def unpack_info(info: int) -> Tuple[int, int, bool]:
    """(kind, vlen, kind_flag) of an ``info`` word."""
    return (info >> 24) & 0x1F, info & 0xFFFF, bool(info >> 31)


#: ``struct bpf_func_info``: instruction offset (in slots) and the FUNC's type id
FUNC_INFO = struct.Struct("<II")
#: ``struct bpf_line_info``: instruction offset, file name and line text string
#: offsets, and ``line << 10 | column``
LINE_INFO = struct.Struct("<IIII")
#: bits of ``line_col`` that hold the column
LINE_COL_BITS = 10


def line_col(line: int, column: int = 0) -> int:
    """The ``line_col`` word of a line-info record (columns beyond 1023 are cut to 1023,
    lines beyond 2**22 - 1 to that)."""
    line = max(0, min(int(line), (1 << (32 - LINE_COL_BITS)) - 1))
    column = max(0, min(int(column), (1 << LINE_COL_BITS) - 1))
    return (line << LINE_COL_BITS) | column
