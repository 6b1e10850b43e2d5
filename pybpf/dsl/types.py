"""Fixed-width integer types of the pybpf language, with C semantics.

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

from typing import Dict, NamedTuple, Tuple

__all__ = [
    "IntType", "Const", "const", "u8", "u16", "u32", "u64", "i8", "i16", "i32", "i64",
    "INT_TYPES", "promote", "common_type", "literal_type",
]


class IntType(NamedTuple):
    """A fixed-width integer type: ``name``, ``bits`` (8, 16, 32 or 64), ``signed``."""

    name: str
    bits: int
    signed: bool

    def __call__(self, value: int) -> int:
        """``value`` wrapped into this type's range (C conversion)."""
        return self.wrap(value)

    def wrap(self, value: int) -> int:
        """``value`` modulo 2**bits, as a signed or unsigned number."""
        value &= (1 << self.bits) - 1
        if self.signed and value >> (self.bits - 1):
            value -= 1 << self.bits
        return value

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

#: the types by name
INT_TYPES: Dict[str, IntType] = {t.name: t for t in (u8, u16, u32, u64, i8, i16, i32, i64)}


class Const(NamedTuple):
    """A load-time constant declared with :func:`const`.

    In this version it is a compile-time constant: its ``value`` is compiled into the
    program. Patching at load time (a global in a ``.rodata`` map) comes with the loader.
    """

    type: IntType
    value: int


def const(type: IntType, value: int) -> Const:
    """Declare a constant of ``type`` (a load-time constant; compiled in for now)."""
    if not isinstance(type, IntType):
        raise TypeError(f"const() needs an integer type such as u32, not {type!r}")
    return Const(type, type.wrap(value))


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
