"""The types of the shared IR: fixed-width integers with C semantics, arrays, and
struct layouts (shared by both front ends: :mod:`pybpf.dsl` and :mod:`pybpf.bpftrace`).

Each type (:data:`u8` ... :data:`i64`) is an :class:`IntType`: its width and signedness
drive code generation (wrap-around after arithmetic, signed or unsigned division, shifts
and comparisons). Calling a type wraps a Python int into its range, in Python and in a
compiled program alike (``u8(300) == 44``, ``i8(200) == -56``).

The usual arithmetic conversions follow C on a platform with 32-bit ``int``: operands
narrower than 32 bits are promoted to ``i32``; then the operand of lower rank is converted
to the other's type, and when ranks are equal and signedness differs, the unsigned type
wins (``u32 + i32 -> u32``); ``i64`` can hold every ``u32``, so ``u32 + i64 -> i64``.
"""

from __future__ import annotations

from typing import Any, Dict, NamedTuple, Tuple

__all__ = [
    "IntType", "ArrayType", "char", "sizeof", "alignof", "is_struct",
    "u8", "u16", "u32", "u64", "i8", "i16", "i32", "i64",
    "INT_TYPES", "int_type", "promote", "common_type", "literal_type",
    "Field", "Layout", "c_layout", "ctype_of",
]


class IntType:
    """A fixed-width integer type: ``name``, ``bits`` (8, 16, 32 or 64), ``signed``.
    ``T[N]`` is an array of ``N`` of them (``char[16]``, ``u64[4]``)."""

    __slots__ = ("name", "bits", "signed")

    def __init__(self, name: str, bits: int, signed: bool) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "bits", bits)
        object.__setattr__(self, "signed", signed)

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError("integer types are immutable")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IntType) and (self.bits, self.signed) == \
            (other.bits, other.signed) and (self.name == "char") == (other.name == "char")

    def __hash__(self) -> int:
        return hash((self.bits, self.signed, self.name == "char"))

    def __getitem__(self, count: int) -> "ArrayType":
        return ArrayType(self, count)

    @property
    def size(self) -> int:
        """The size in bytes."""
        return self.bits // 8

    @property
    def align(self) -> int:
        """The alignment in bytes (the size, as on x86-64 and in BPF)."""
        return self.bits // 8

    def __call__(self, value: int) -> int:
        """``value`` wrapped into this type's range (C conversion)."""
        return self.wrap(value)

    def wrap(self, value: int) -> int:
        """``value`` modulo 2**bits, as a signed or unsigned number."""
        value &= (1 << self.bits) - 1
        if self.signed and value >> (self.bits - 1):
            value -= 1 << self.bits
        return value

    def check(self, value: Any, name: str) -> int:
        """``value`` when it is a value of this type; else
        :class:`~pybpf.syscall.errors.OutOfRangeError` naming ``name``, the value and
        the range (a ``TypeError`` for a non-integer). Nothing is wrapped silently."""
        from ..syscall.errors import check_range
        return check_range(name, value, self.min, self.max, self.name)

    @property
    def min(self) -> int:
        """The smallest value of the type."""
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def max(self) -> int:
        """The largest value of the type."""
        return (1 << (self.bits - (1 if self.signed else 0))) - 1

    def contains(self, other: "IntType") -> bool:
        """True if every value of ``other`` is a value of this type."""
        return self.min <= other.min and other.max <= self.max

    def __repr__(self) -> str:
        return self.name


u8 = IntType("u8", 8, False)
u16 = IntType("u16", 16, False)
u32 = IntType("u32", 32, False)
u64 = IntType("u64", 64, False)
i8 = IntType("i8", 8, True)
i16 = IntType("i16", 16, True)
i32 = IntType("i32", 32, True)
i64 = IntType("i64", 64, True)

#: one byte of text: ``char[16]`` is a string field (decoded to ``str`` in user space)
char = IntType("char", 8, False)

#: the types by name
INT_TYPES: Dict[str, IntType] = {t.name: t for t in (u8, u16, u32, u64, i8, i16, i32, i64)}

_INTS = {(1, False): u8, (2, False): u16, (4, False): u32, (8, False): u64,
         (1, True): i8, (2, True): i16, (4, True): i32, (8, True): i64}


def int_type(size: int, signed: bool) -> IntType:
    """The integer type of ``size`` bytes (1, 2, 4, 8)."""
    return _INTS[(size, signed)]


class ArrayType:
    """``count`` elements of ``elem`` (an integer type, a struct or another array).
    Arrays of :data:`char` are strings."""

    __slots__ = ("elem", "count")

    def __init__(self, elem: Any, count: int) -> None:
        if not isinstance(count, int) or isinstance(count, bool) or count <= 0:
            raise TypeError(f"an array needs a positive int length, not {count!r}")
        if not (isinstance(elem, (IntType, ArrayType)) or is_struct(elem)):
            raise TypeError(f"array elements must be integer types, arrays or Structs, "
                            f"not {elem!r}")
        self.elem = elem
        self.count = count

    @property
    def size(self) -> int:
        """The size in bytes."""
        return sizeof(self.elem) * self.count

    @property
    def align(self) -> int:
        """The alignment in bytes (the element's)."""
        return alignof(self.elem)

    @property
    def is_string(self) -> bool:
        """True for ``char[N]``."""
        return isinstance(self.elem, IntType) and self.elem.name == "char"

    def __getitem__(self, count: int) -> "ArrayType":
        return ArrayType(self, count)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ArrayType) and (self.elem, self.count) == (other.elem, other.count)

    def __hash__(self) -> int:
        return hash((self.elem, self.count))

    def __repr__(self) -> str:
        return f"{self.elem!r}[{self.count}]"


def is_struct(t: Any) -> bool:
    """True for a struct type: a class with a ``__pybpf_layout__`` (a :class:`Layout`)
    and a ``ctype()`` class method, such as :class:`pybpf.dsl.structs.Struct`
    subclasses."""
    return isinstance(t, type) and hasattr(t, "__pybpf_layout__")


class Field(NamedTuple):
    """One member of a struct: ``name``, language ``type``, byte ``offset``."""

    name: str
    type: Any
    offset: int


class Layout(NamedTuple):
    """A struct's fields, size and alignment (C layout: natural alignment, the size
    rounded up to the largest alignment, as clang lays out the struct for BPF)."""

    fields: Tuple[Field, ...]
    size: int
    align: int

    def field(self, name: str) -> Field:
        """The field called ``name`` (KeyError if none)."""
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)


def c_layout(members: Any) -> Layout:
    """The C layout of ``members``, ``(name, type)`` pairs of language types in order."""
    fields = []
    offset = 0
    align = 1
    for name, t in members:
        a = alignof(t)
        offset = (offset + a - 1) // a * a
        fields.append(Field(name, t, offset))
        offset += sizeof(t)
        align = max(align, a)
    size = (offset + align - 1) // align * align
    return Layout(tuple(fields), size, align)


def ctype_of(t: Any) -> Any:
    """The ctypes type of a language type (``char[N]`` -> ``c_char * N``; a struct:
    its ``ctype()``)."""
    if isinstance(t, IntType):
        import ctypes                   # only for ctypes views (a compile needs none)
        if t.name == "char":
            return ctypes.c_char
        return getattr(ctypes, f"c_{'' if t.signed else 'u'}int{t.bits}")
    if isinstance(t, ArrayType):
        return ctype_of(t.elem) * t.count
    if is_struct(t):
        return t.ctype()
    raise TypeError(f"{t!r} is not a pybpf.dsl type")


def sizeof(t: Any) -> int:
    """The size in bytes of a language type (integer, array or Struct)."""
    if isinstance(t, (IntType, ArrayType)):
        return t.size
    if is_struct(t):
        return t.__pybpf_layout__.size
    raise TypeError(f"{t!r} is not a pybpf.dsl type")


def alignof(t: Any) -> int:
    """The alignment in bytes of a language type."""
    if isinstance(t, (IntType, ArrayType)):
        return t.align
    if is_struct(t):
        return t.__pybpf_layout__.align
    raise TypeError(f"{t!r} is not a pybpf.dsl type")


def promote(t: IntType) -> IntType:
    """The integer promotion: types narrower than ``int`` become ``i32``."""
    return i32 if t.bits < 32 else t


def common_type(a: IntType, b: IntType) -> IntType:
    """The usual arithmetic conversions of C (see the module docstring)."""
    a, b = promote(a), promote(b)
    if a == b:
        return a
    if a.signed == b.signed:
        return a if a.bits > b.bits else b
    uns, sig = (a, b) if not a.signed else (b, a)
    if uns.bits >= sig.bits:
        return uns
    return sig            # a wider signed type holds every value of the unsigned one


def literal_type(value: int) -> IntType:
    """The type of a non-negative integer literal: the first of i32, i64, u64 that holds it."""
    for t in (i32, i64, u64):
        if t.min <= value <= t.max:
            return t
    raise OverflowError(f"integer literal {value} does not fit in 64 bits")


def type_table() -> Tuple[IntType, ...]:
    """All eight integer types, unsigned first, narrowest first."""
    return (u8, u16, u32, u64, i8, i16, i32, i64)
