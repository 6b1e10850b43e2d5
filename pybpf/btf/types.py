"""Small immutable records for BTF types, made by :class:`pybpf.btf.parser.BTF` only for
the types that are asked for.

Every record has ``id`` (its type id in the BTF it came from), ``kind`` (a
:class:`~pybpf.btf.format.Kind`) and ``name`` (``""`` for anonymous types). Types that
refer to another type keep its id in ``type``; members, parameters and the like are
named tuples. Records compare equal when all their fields are equal (ids included).
"""

from __future__ import annotations

from typing import Any, Iterator, NamedTuple, Tuple

from .format import IntEncoding, Kind

__all__ = [
    "BtfType", "Void", "Int", "Ptr", "Array", "Member", "Struct", "Union", "EnumValue",
    "Enum", "Fwd", "Typedef", "Volatile", "Const", "Restrict", "TypeTag", "Func", "Param",
    "FuncProto", "Var", "VarSecinfo", "Datasec", "Float", "DeclTag", "Composite",
    "Modifier", "VOID", "referenced",
]


class BtfType:
    """The base of every type record (BTF is Linux 4.18).

    Records are immutable; ``fields()`` yields (field name, value) pairs for
    listings, ``replace(**changes)`` returns a modified copy.
    """

    __slots__ = ("id", "name")
    #: the record's kind; each subclass sets it (ENUM and ENUM64 share :class:`Enum`)
    kind: Kind = Kind.UNKN
    _fields: Tuple[str, ...] = ()

    def __init__(self, id: int, name: str = "", **fields: Any) -> None:
        object.__setattr__(self, "id", id)
        object.__setattr__(self, "name", name)
        for key in self._fields:
            object.__setattr__(self, key, fields.pop(key))
        if fields:
            raise TypeError(f"{type(self).__name__}: unknown fields {sorted(fields)}")

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} records are immutable")

    def __delattr__(self, key: str) -> None:
        raise AttributeError(f"{type(self).__name__} records are immutable")

    def fields(self) -> Iterator[Tuple[str, Any]]:
        """(name, value) of the kind-specific fields, in order."""
        for key in self._fields:
            yield key, getattr(self, key)

    def replace(self, **changes: Any) -> "BtfType":
        """A copy with some fields changed (``id`` and ``name`` included)."""
        values = dict(self.fields())
        values.update({k: v for k, v in changes.items() if k not in ("id", "name")})
        return type(self)(changes.get("id", self.id), changes.get("name", self.name),
                          **values)

    def _key(self) -> Tuple[Any, ...]:
        return (type(self), self.kind, self.id, self.name) + tuple(
            getattr(self, k) for k in self._fields)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BtfType) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        extra = "".join(f", {k}={v!r}" for k, v in self.fields())
        return f"{type(self).__name__}(id={self.id}, name={self.name!r}{extra})"

    @property
    def kind_name(self) -> str:
        """The kind in lower case (``"struct"``)."""
        return "void" if self.kind == Kind.UNKN else self.kind.name.lower()


class Void(BtfType):
    """Type id 0: ``void`` (never stored in a blob)."""

    __slots__ = ()
    kind = Kind.UNKN


#: the one ``void``
VOID = Void(0, "")


class Int(BtfType):
    """An integer type: ``size`` bytes, ``bits`` of them used starting at ``bit_offset``,
    and ``encoding`` flags (:class:`~pybpf.btf.format.IntEncoding`)."""

    __slots__ = ("size", "encoding", "bit_offset", "bits")
    kind = Kind.INT
    _fields = ("size", "encoding", "bit_offset", "bits")
    size: int
    encoding: IntEncoding
    bit_offset: int
    bits: int

    @property
    def signed(self) -> bool:
        """True for signed integers."""
        return bool(self.encoding & IntEncoding.SIGNED)

    @property
    def is_char(self) -> bool:
        """True for character types."""
        return bool(self.encoding & IntEncoding.CHAR)

    @property
    def is_bool(self) -> bool:
        """True for ``_Bool``."""
        return bool(self.encoding & IntEncoding.BOOL)


class Ptr(BtfType):
    """A pointer to ``type``."""

    __slots__ = ("type",)
    kind = Kind.PTR
    _fields = ("type",)
    type: int


class Array(BtfType):
    """``nelems`` elements of ``type``, indexed by ``index_type``."""

    __slots__ = ("type", "index_type", "nelems")
    kind = Kind.ARRAY
    _fields = ("type", "index_type", "nelems")
    type: int
    index_type: int
    nelems: int


class Member(NamedTuple):
    """A struct or union member: name (``""`` for an anonymous struct/union member),
    type id, offset in bits from the start of the aggregate, and the bitfield width
    (0 when it is not a bitfield)."""

    name: str
    type: int
    bit_offset: int
    bitfield_size: int = 0

    @property
    def offset(self) -> int:
        """The byte offset (rounded down for bitfields)."""
        return self.bit_offset // 8


class Composite(BtfType):
    """The common shape of :class:`Struct` and :class:`Union`: ``size`` bytes,
    ``members`` in order."""

    __slots__ = ("size", "members")
    _fields = ("size", "members")
    size: int
    members: Tuple[Member, ...]

    def member(self, name: str) -> Member:
        """The member called ``name`` (direct members only); ``KeyError`` if none."""
        for m in self.members:
            if m.name == name:
                return m
        raise KeyError(name)


class Struct(Composite):
    """A ``struct``."""

    __slots__ = ()
    kind = Kind.STRUCT


class Union(Composite):
    """A ``union``."""

    __slots__ = ()
    kind = Kind.UNION


class EnumValue(NamedTuple):
    """One enumerator."""

    name: str
    value: int


class Enum(BtfType):
    """An ``enum`` of ``size`` bytes (``kind`` is ENUM, or ENUM64 for 64-bit values,
    Linux 6.0); ``signed`` says how the values are read (6.0 marks it; before, ENUM
    values are signed)."""

    __slots__ = ("size", "values", "signed", "kind")
    _fields = ("size", "values", "signed", "kind")
    size: int
    values: Tuple[EnumValue, ...]
    signed: bool

    def __init__(self, id: int, name: str = "", *, size: int = 4,
                 values: Tuple[EnumValue, ...] = (), signed: bool = False,
                 kind: Kind = Kind.ENUM) -> None:
        super().__init__(id, name, size=size, values=tuple(values), signed=signed,
                         kind=Kind(kind))

    def value(self, name: str) -> int:
        """The value of enumerator ``name``; ``KeyError`` if absent."""
        for v in self.values:
            if v.name == name:
                return v.value
        raise KeyError(name)


class Fwd(BtfType):
    """A forward declaration of a struct (``union`` False) or union."""

    __slots__ = ("union",)
    kind = Kind.FWD
    _fields = ("union",)
    union: bool


class Modifier(BtfType):
    """A type that only names or qualifies ``type``: typedef, const, volatile,
    restrict, type tag."""

    __slots__ = ("type",)
    _fields = ("type",)
    type: int


class Typedef(Modifier):
    """``typedef <type> name``."""

    __slots__ = ()
    kind = Kind.TYPEDEF


class Volatile(Modifier):
    """``volatile <type>``."""

    __slots__ = ()
    kind = Kind.VOLATILE


class Const(Modifier):
    """``const <type>``."""

    __slots__ = ()
    kind = Kind.CONST


class Restrict(Modifier):
    """``<type> restrict``."""

    __slots__ = ()
    kind = Kind.RESTRICT


class TypeTag(Modifier):
    """A type tag (``name`` is the tag, e.g. ``"rcu"``) on ``type`` (Linux 5.17)."""

    __slots__ = ()
    kind = Kind.TYPE_TAG


class Func(BtfType):
    """A function: ``type`` is its :class:`FuncProto`, ``linkage`` a
    :class:`~pybpf.btf.format.FuncLinkage` (Linux 4.20)."""

    __slots__ = ("type", "linkage")
    kind = Kind.FUNC
    _fields = ("type", "linkage")
    type: int
    linkage: int


class Param(NamedTuple):
    """A prototype's parameter (``name`` may be empty)."""

    name: str
    type: int


class FuncProto(BtfType):
    """A function prototype: ``return_type`` and ``params``; ``variadic`` when it ends
    with ``...`` (Linux 4.20)."""

    __slots__ = ("return_type", "params", "variadic")
    kind = Kind.FUNC_PROTO
    _fields = ("return_type", "params", "variadic")
    return_type: int
    params: Tuple[Param, ...]
    variadic: bool


class Var(BtfType):
    """A variable of ``type`` (Linux 5.2)."""

    __slots__ = ("type", "linkage")
    kind = Kind.VAR
    _fields = ("type", "linkage")
    type: int
    linkage: int


class VarSecinfo(NamedTuple):
    """A variable in a data section: its VAR (or FUNC) id, offset and size."""

    type: int
    offset: int
    size: int


class Datasec(BtfType):
    """A data section (``.data``, ``.bss``, ``.data..percpu``) of ``size`` bytes
    (Linux 5.2)."""

    __slots__ = ("size", "vars")
    kind = Kind.DATASEC
    _fields = ("size", "vars")
    size: int
    vars: Tuple[VarSecinfo, ...]


class Float(BtfType):
    """A floating-point type of ``size`` bytes (Linux 5.13)."""

    __slots__ = ("size",)
    kind = Kind.FLOAT
    _fields = ("size",)
    size: int


class DeclTag(BtfType):
    """A declaration tag ``name`` on ``type`` (-1 for ``component_idx``), or on its
    member or parameter number ``component_idx`` (Linux 5.16)."""

    __slots__ = ("type", "component_idx")
    kind = Kind.DECL_TAG
    _fields = ("type", "component_idx")
    type: int
    component_idx: int


def referenced(t: BtfType) -> Tuple[int, ...]:
    """The ids ``t`` refers to (for walks over the type graph)."""
    if isinstance(t, (Modifier, Ptr, Func, Var, DeclTag)):
        return (t.type,)
    if isinstance(t, Array):
        return (t.type, t.index_type)
    if isinstance(t, Composite):
        return tuple(m.type for m in t.members)
    if isinstance(t, FuncProto):
        return (t.return_type,) + tuple(p.type for p in t.params)
    if isinstance(t, Datasec):
        return tuple(v.type for v in t.vars)
    return ()
