"""Fixed-width integer types of the pybpf language, with C semantics, and load-time
constants.

The types themselves are the shared compiler's (:mod:`pybpf.compiler.types`, where the
conversion rules are described): each type (:data:`u8` ... :data:`i64`) is an
:class:`IntType` whose width and signedness drive code generation (wrap-around after
arithmetic, signed or unsigned division, shifts and comparisons). Calling a type wraps
a Python int into its range, in Python and in a compiled program alike (``u8(300) ==
44``, ``i8(200) == -56``); ``T[N]`` is an array (``char[16]`` is a string). They are
re-exported here because this is where the language's users import them from.

What is the Python language's own: :func:`const` declarations (:class:`Const`).
"""

from __future__ import annotations

from typing import NamedTuple

from ..compiler.types import (
    ArrayType, IntType, char, i8, i16, i32, i64, sizeof, u8, u16, u32, u64,
)

__all__ = [
    "IntType", "ArrayType", "Const", "const", "char", "sizeof",
    "u8", "u16", "u32", "u64", "i8", "i16", "i32", "i64",
]


class Const(NamedTuple):
    """A load-time constant declared with :func:`const`: a program loaded through
    :func:`pybpf.dsl.load` reads it from a frozen ``.rodata`` map whose value is set at
    load time (``load(..., consts={"NAME": 42})``), so the verifier still sees a constant
    and prunes the branches it makes dead; a program compiled alone
    (:func:`~pybpf.dsl.compile_function`) has ``value`` compiled in."""

    type: IntType
    value: int


def const(type: IntType, value: int) -> Const:
    """Declare a load-time constant of ``type`` with a default ``value`` (which must
    be a value of ``type``: ``const(u8, 1000)`` raises
    :class:`~pybpf.syscall.errors.OutOfRangeError`)."""
    if not isinstance(type, IntType):
        raise TypeError(f"const() needs an integer type such as u32, not {type!r}")
    return Const(type, type.check(value, f"const({type.name}) default"))
