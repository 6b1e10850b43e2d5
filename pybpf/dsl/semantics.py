"""A reference evaluator of the language's integer semantics, for differential tests.

It is written independently of the compiler (no code in common with
:mod:`pybpf.dsl.types` or :mod:`pybpf.dsl.compiler`): values are ``(type name, int)``
pairs, and every operation follows the C rules for a platform with 32-bit ``int``, plus
the language's definitions of what C leaves undefined: signed overflow wraps, division
by zero gives 0, modulo by zero gives the dividend, ``MIN // -1`` wraps to ``MIN`` (and
``MIN % -1`` is 0), shift counts are reduced modulo the width of the promoted left
operand, and ``>>`` of a negative value is arithmetic.
"""

from __future__ import annotations

from typing import Tuple

__all__ = ["Value", "wrap", "convert", "binary", "unary", "compare", "truth", "WIDTH"]

#: a typed value: (type name such as "u8" or "i64", value in the type's range)
Value = Tuple[str, int]

#: bit width of each type name
WIDTH = {"u8": 8, "u16": 16, "u32": 32, "u64": 64, "i8": 8, "i16": 16, "i32": 32, "i64": 64}


def _signed(name: str) -> bool:
    return name[0] == "i"


def wrap(name: str, value: int) -> int:
    """``value`` reduced into type ``name`` (two's complement for signed types)."""
    bits = WIDTH[name]
    value %= 1 << bits
    if _signed(name) and value >= 1 << (bits - 1):
        value -= 1 << bits
    return value


def convert(v: Value, name: str) -> Value:
    """C conversion of ``v`` to type ``name``."""
    return (name, wrap(name, v[1]))


def _promoted(name: str) -> str:
    return "i32" if WIDTH[name] < 32 else name


def _usual(a: str, b: str) -> str:
    a, b = _promoted(a), _promoted(b)
    if a == b:
        return a
    rank_a, rank_b = WIDTH[a], WIDTH[b]
    if _signed(a) == _signed(b):
        return a if rank_a >= rank_b else b
    unsigned, signed = (b, a) if _signed(a) else (a, b)
    if WIDTH[unsigned] >= WIDTH[signed]:
        return unsigned
    # the signed type is wider, so it represents every value of the unsigned one
    return signed


def _trunc_div(x: int, y: int) -> int:
    q = abs(x) // abs(y)
    return q if (x >= 0) == (y >= 0) else -q


def binary(op: str, a: Value, b: Value) -> Value:
    """``a op b`` for op in + - * // % & | ^ << >>."""
    if op in ("<<", ">>"):
        t = _promoted(a[0])
        x = wrap(t, a[1])
        count = b[1] % WIDTH[t]
        if op == "<<":
            return (t, wrap(t, x << count))
        return (t, wrap(t, x >> count))   # Python's >> is arithmetic for negatives
    t = _usual(a[0], b[0])
    x, y = wrap(t, a[1]), wrap(t, b[1])
    if op == "+":
        r = x + y
    elif op == "-":
        r = x - y
    elif op == "*":
        r = x * y
    elif op == "//":
        r = 0 if y == 0 else _trunc_div(x, y)
    elif op == "%":
        r = x if y == 0 else x - _trunc_div(x, y) * y
    elif op == "&":
        r = x & y
    elif op == "|":
        r = x | y
    elif op == "^":
        r = x ^ y
    else:
        raise ValueError(f"unknown operator {op}")
    return (t, wrap(t, r))


def unary(op: str, a: Value) -> Value:
    """``-a``, ``~a``, ``not a``."""
    if op == "not":
        return ("i32", int(a[1] == 0))
    t = _promoted(a[0])
    x = wrap(t, a[1])
    if op == "-":
        return (t, wrap(t, -x))
    if op == "~":
        return (t, wrap(t, ~x))
    raise ValueError(f"unknown operator {op}")


def compare(op: str, a: Value, b: Value) -> Value:
    """``a op b`` for op in == != < <= > >=: an i32 0 or 1."""
    t = _usual(a[0], b[0])
    x, y = wrap(t, a[1]), wrap(t, b[1])
    r = {"==": x == y, "!=": x != y, "<": x < y, "<=": x <= y, ">": x > y,
         ">=": x >= y}[op]
    return ("i32", int(r))


def truth(a: Value) -> bool:
    """The truth of a value (non-zero)."""
    return a[1] != 0
