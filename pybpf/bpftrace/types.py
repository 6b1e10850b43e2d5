"""bpftrace 0.17's type model: what the semantic analyser gives every expression.

A :class:`SizedType` is one value's type, with bpftrace's kinds (``kind``):

=============== =====================================================================
``none``        no value (statements, unknown things; errors name it ``none``)
``integer``     ``bits`` wide (8/16/32/64; 1 for a bool), ``signed`` or not
``pointer``     to ``elem`` (``void *`` points at ``none``), always 8 bytes
``record``      a C ``struct``/``union`` called ``name`` (its layout: ``struct``)
``array``       ``count`` elements of ``elem`` (C arrays of non-``char``)
``string``      ``string[N]``: N bytes including the NUL (``char`` arrays, ``str()``)
``buffer``      ``buf()``'s result: N bytes, the first holding the length
``tuple``       ``(a, b, ...)``: ``struct`` holds the element types and offsets
``hist`` ...    map aggregations: ``hist lhist count sum min max avg stats``
``kstack``      ``kstack``/``ustack`` (``stack``: limit and mode), 8 bytes (a stack id)
``ksym`` ...    values formatted in user space: ``ksym usym probe username inet
                timestamp mac_address cgroup_path strerror``
``stack_mode``  ``bpftrace``/``perf`` (an argument of ``kstack``/``ustack``)
=============== =====================================================================

Besides the kind, a type carries what bpftrace's ``SizedType`` carries and its typed
AST dump (``bpftrace -d``) prints: ``ctx`` (the value is, or is inside, the probe's
context: it cannot be stored or used as a map key), ``addrspace`` (``kernel``, ``user``
or ``none``: which ``probe_read`` a later dereference uses), and the flags ``is_tparg``
(tracepoint ``args``), ``is_funcarg`` (kfunc/uprobe ``args``, ``funcarg_idx``) and
``is_internal``. ``str()`` is bpftrace's spelling (``unsigned int64``, ``string[16]``,
``struct task_struct *``, ``(int64,string[3])``); :meth:`SizedType.dump` is the
``type[...]`` text of ``bpftrace -d``.

Types are mutable (bpftrace updates them in place: a string grows, an address space is
set); :meth:`SizedType.copy` before changing a shared one.
"""

from __future__ import annotations

from typing import Callable, List, Optional, Tuple

from .._records import field, record

__all__ = [
    "SizedType", "Struct", "Field", "Bitfield", "STRING_SIZE", "COMM_SIZE",
    "MAX_STACK_SIZE", "DEFAULT_STACK_SIZE", "AGGREGATIONS", "INT_CASTS",
    "create_none", "create_int", "create_uint", "create_integer", "create_int64",
    "create_uint64", "create_bool", "create_string", "create_buffer", "create_array",
    "create_pointer", "create_record", "create_tuple", "create_stack", "create_stack_mode",
    "create_aggregation", "create_simple", "tuple_struct", "node_type", "typestr",
]

#: bpftrace 0.17's default ``BPFTRACE_STRLEN`` and the literal string limit + 1
STRING_SIZE = 64
#: ``comm``'s size
COMM_SIZE = 16
#: ``kstack(N)``/``ustack(N)`` limits
MAX_STACK_SIZE = 1024
DEFAULT_STACK_SIZE = 127
#: kinds only a map can hold, assigned whole (``@x = count()``)
AGGREGATIONS = ("hist", "lhist", "count", "sum", "min", "max", "avg", "stats")
#: the integer cast names: bits and signedness
INT_CASTS = {
    "uint8": (8, False), "int8": (8, True), "uint16": (16, False), "int16": (16, True),
    "uint32": (32, False), "int32": (32, True), "uint64": (64, False), "int64": (64, True),
}
#: the kinds bpftrace stores as byte arrays
_BYTE_ARRAYS = ("string", "usym", "inet", "buffer", "timestamp", "mac_address",
                "cgroup_path")
_TYPESTR = {"stack_mode": "stack mode"}


@record
class Bitfield:
    """How to read a bit-field: ``read_bytes`` from the field's offset, shift right by
    ``rshift``, mask with ``mask``."""

    read_bytes: int
    rshift: int
    mask: int


@record
class Field:
    """A member of a record or an element of a tuple: ``offset`` in bytes; ``bitfield``
    for bit-fields; ``is_data_loc`` for a tracepoint's ``__data_loc`` field."""

    name: str
    type: "SizedType"
    offset: int
    bitfield: Optional[Bitfield] = None
    is_data_loc: bool = False


class Struct:
    """A record's or a tuple's layout: ``size`` and ``align`` in bytes, ``fields`` in order.

    A record's fields may come later (``loader``, called once on first use: kernel
    structs are read from BTF only when a program looks inside them)."""

    def __init__(self, size: int, fields: Optional[List[Field]] = None, align: int = 1,
                 padded: bool = False,
                 loader: Optional[Callable[["Struct"], None]] = None) -> None:
        self.size, self.align, self.padded = size, align, padded
        self._fields: List[Field] = list(fields or [])
        self._names = {f.name: f for f in reversed(self._fields)}
        self._loader = loader

    @property
    def fields(self) -> List[Field]:
        """The fields (loaded on first use)."""
        if self._loader is not None:
            loader, self._loader = self._loader, None
            loader(self)
        return self._fields

    def add_field(self, f: Field) -> None:
        """Append ``f`` unless a field of that name exists (bpftrace's ``AddField``)."""
        if f.name not in self._names:
            self._fields.append(f)
            self._names[f.name] = f

    def has_field(self, name: str) -> bool:
        """Is there a field called ``name``?"""
        self.fields                                   # noqa: B018 - loads them
        return name in self._names

    def field(self, name: str) -> Field:
        """The field called ``name`` (``KeyError`` if none)."""
        self.fields                                   # noqa: B018 - loads them
        return self._names[name]

    def same_layout(self, other: "Struct") -> bool:
        """bpftrace's ``Struct ==``: size, alignment, padding and equal fields."""
        if self.size != other.size or self.align != other.align or \
                self.padded != other.padded or len(self.fields) != len(other.fields):
            return False
        return all(a.name == b.name and a.offset == b.offset and a.type == b.type
                   and a.bitfield == b.bitfield and a.is_data_loc == b.is_data_loc
                   for a, b in zip(self.fields, other.fields))


@record
class SizedType:
    """One bpftrace type (see the module docstring); ``size`` in bytes."""

    kind: str = "none"
    size: int = 0
    signed: bool = False
    bits: int = 0
    elem: Optional["SizedType"] = None
    count: int = 0
    name: str = ""
    struct: Optional[Struct] = field(default=None, repr=False)
    ctx: bool = False
    addrspace: str = "none"
    stack_limit: int = DEFAULT_STACK_SIZE
    stack_mode: str = "bpftrace"
    is_internal: bool = False
    is_tparg: bool = False
    is_funcarg: bool = False
    funcarg_idx: int = -1

    # -- copies and predicates --------------------------------------------------------
    def copy(self) -> "SizedType":
        """A copy that can be changed on its own (``elem`` and ``struct`` shared)."""
        t = SizedType.__new__(SizedType)
        t.__dict__.update(self.__dict__)
        return t

    def is_int(self) -> bool:
        """An integer (bpftrace's ``IsIntTy``)."""
        return self.kind == "integer"

    def is_ptr(self) -> bool:
        """A pointer."""
        return self.kind == "pointer"

    def is_none(self) -> bool:
        """No type."""
        return self.kind == "none"

    def is_aggregation(self) -> bool:
        """A map aggregation (count, sum, hist...)."""
        return self.kind in AGGREGATIONS

    def is_stack(self) -> bool:
        """``kstack``/``ustack``."""
        return self.kind in ("kstack", "ustack")

    def is_byte_array(self) -> bool:
        """Stored as bytes: strings, buffers, usym, inet, timestamps..."""
        return self.kind in _BYTE_ARRAYS

    def is_aggregate(self) -> bool:
        """An array, byte array, tuple or record (bpftrace's ``IsAggregate``)."""
        return self.kind in ("array", "tuple", "record") or self.is_byte_array()

    def is_printable(self) -> bool:
        """What ``print(value)`` accepts (not none, pointers, stack modes or context)."""
        return self.kind not in ("none", "pointer", "stack_mode") and not self.ctx

    @property
    def num_elements(self) -> int:
        """Elements of an array; bytes of a string."""
        if self.kind == "string":
            return self.size
        return self.count

    def set_size(self, size: int) -> None:
        """Resize (integers keep ``bits`` in step)."""
        self.size = size
        if self.kind == "integer":
            self.bits = size * 8

    # -- records and tuples -----------------------------------------------------------
    @property
    def fields(self) -> List[Field]:
        """The fields of a record or tuple ([] for an unknown record)."""
        return self.struct.fields if self.struct is not None else []

    def has_field(self, name: str) -> bool:
        """Does this record have field ``name``?"""
        return self.struct is not None and self.struct.has_field(name)

    # -- comparisons (bpftrace's IsEqual, IsSameType, FitsInto) ------------------------
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SizedType) or other.kind != self.kind:
            return False
        k = self.kind
        if k == "record":
            return self.name == other.name and self.size == other.size
        if k == "pointer":
            return self.elem == other.elem
        if k == "array":
            return self.count == other.count and self.elem == other.elem
        if k == "tuple":
            a, b = self.struct, other.struct
            return a is b or (a is not None and b is not None and a.same_layout(b))
        return self.size == other.size and self.signed == other.signed

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    __hash__ = None  # type: ignore[assignment]

    def same_type(self, other: "SizedType") -> bool:
        """bpftrace's ``IsSameType``: same kind (records by name, pointers by pointee
        kind), sizes ignored."""
        if other.kind != self.kind:
            return False
        if self.kind == "record":
            return self.name == other.name
        if self.kind == "pointer" and self.elem is not None and other.elem is not None:
            return self.elem.same_type(other.elem)
        return True

    def fits_into(self, other: "SizedType") -> bool:
        """Can a value of this type be stored where ``other`` is (strings may be
        shorter, tuple elements alike)?"""
        if self.kind == "string" and other.kind == "string":
            return self.size <= other.size
        if self.kind == "tuple" and other.kind == "tuple":
            if len(self.fields) != len(other.fields):
                return False
            return all(a.type.fits_into(b.type) for a, b in zip(self.fields, other.fields))
        return self == other

    @property
    def alignment(self) -> int:
        """bpftrace's ``GetAlignment`` (tuple layouts)."""
        if self.kind == "string":
            return 1
        if self.kind in ("tuple", "record"):
            return self.struct.align if self.struct is not None else 1
        if self.size <= 2:
            return self.size
        if self.kind == "array" and self.elem is not None:
            return self.elem.alignment
        if self.is_byte_array() or self.size <= 4:
            return 4
        return 8

    # -- text -------------------------------------------------------------------------
    def __str__(self) -> str:
        k = self.kind
        if k == "record":
            return self.name
        if k == "pointer":
            return ("(ctx) " if self.ctx else "") + f"{self.elem} *"
        if k == "integer":
            return ("" if self.signed else "unsigned ") + f"int{8 * self.size}"
        if k == "array":
            return f"{self.elem}[{self.count}]"
        if k in ("string", "buffer"):
            return f"{k}[{self.size}]"
        if k == "tuple":
            return "(" + ",".join(str(f.type) for f in self.fields) + ")"
        return _TYPESTR.get(k, k)

    def dump(self) -> str:
        """The ``type[...]`` text ``bpftrace -d`` prints after a node."""
        out = f"type[{self}, ctx: {int(self.ctx)}"
        if self.addrspace != "none":
            out += f", AS({self.addrspace})"
        return out + "]"


def typestr(kind: str) -> str:
    """A kind as bpftrace names it in messages (``stack mode``)."""
    return _TYPESTR.get(kind, kind)


# -- factories (bpftrace's Create*) -----------------------------------------------------

def create_none() -> SizedType:
    """``none``."""
    return SizedType("none", 0)


def create_integer(bits: int, signed: bool) -> SizedType:
    """An integer of ``bits`` (a bool is 1 bit, 0 bytes, as in bpftrace)."""
    return SizedType("integer", bits // 8, signed, bits)


def create_int(bits: int) -> SizedType:
    """A signed integer."""
    return create_integer(bits, True)


def create_uint(bits: int) -> SizedType:
    """An unsigned integer."""
    return create_integer(bits, False)


def create_int64() -> SizedType:
    """``int64``."""
    return create_integer(64, True)


def create_uint64() -> SizedType:
    """``unsigned int64``."""
    return create_integer(64, False)


def create_bool() -> SizedType:
    """A one-bit unsigned integer."""
    return create_integer(1, False)


def create_string(size: int) -> SizedType:
    """``string[size]``."""
    return SizedType("string", size)


def create_buffer(size: int) -> SizedType:
    """``buffer[size]``."""
    return SizedType("buffer", size)


def create_array(count: int, elem: SizedType) -> SizedType:
    """``elem[count]``."""
    return SizedType("array", count * elem.size, elem=elem, count=count)


def create_pointer(pointee: SizedType, addrspace: str = "none") -> SizedType:
    """A pointer to ``pointee``."""
    return SizedType("pointer", 8, elem=pointee, addrspace=addrspace)


def create_record(name: str, struct: Optional[Struct]) -> SizedType:
    """Record ``name`` (``struct task_struct``); size 0 when the layout is unknown."""
    return SizedType("record", struct.size if struct is not None else 0, name=name,
                     struct=struct)


def tuple_struct(elems: List[SizedType]) -> Struct:
    """The layout of a tuple of ``elems``: C-like alignment and padding."""
    offset, align, padded = 0, 1, False
    fields: List[Field] = []
    for t in elems:
        a = max(t.alignment, 1)
        align = max(align, a)
        pad = (a - offset % a) % a
        padded = padded or pad > 0
        offset += pad
        fields.append(Field("", t, offset))
        offset += t.size
    offset += (align - offset % align) % align
    return Struct(offset, fields, align, padded)


def create_tuple(elems: List[SizedType]) -> SizedType:
    """A tuple of ``elems``."""
    s = tuple_struct(elems)
    return SizedType("tuple", s.size, struct=s)


def create_stack(kernel: bool, limit: int = DEFAULT_STACK_SIZE,
                 mode: str = "bpftrace") -> SizedType:
    """``kstack``/``ustack`` with a frame limit and a print mode."""
    return SizedType("kstack" if kernel else "ustack", 8, stack_limit=limit,
                     stack_mode=mode)


def create_stack_mode(mode: str = "bpftrace") -> SizedType:
    """A stack mode value (``bpftrace``/``perf``)."""
    return SizedType("stack_mode", 0, stack_mode=mode)


def create_aggregation(kind: str, signed: bool = False) -> SizedType:
    """``count sum min max avg stats`` (8 bytes, signed as their argument) and ``hist
    lhist``."""
    return SizedType(kind, 8, signed)


#: sizes of the other value kinds (bpftrace's factories)
_SIMPLE_SIZES = {"probe": 8, "username": 8, "usym": 16, "ksym": 8, "timestamp": 16,
                 "mac_address": 6, "cgroup_path": 16, "strerror": 8, "inet": 24}


def create_simple(kind: str, size: Optional[int] = None) -> SizedType:
    """``probe username usym ksym timestamp mac_address cgroup_path strerror inet``."""
    t = SizedType(kind, _SIMPLE_SIZES[kind] if size is None else size)
    if kind in ("inet", "mac_address"):
        t.is_internal = True
    return t


def int_cast(name: str) -> Optional[Tuple[int, bool]]:
    """``uint8`` ... ``int64`` -> (bits, signed); None for other names."""
    return INT_CASTS.get(name)


def node_type(node: object) -> SizedType:
    """The type the analyser gave ``node`` (``node.ty``; ``none`` until it has one)."""
    t = getattr(node, "ty", None)
    if t is None:
        t = create_none()
        setattr(node, "ty", t)
    return t
