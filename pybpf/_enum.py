"""Enum classes built at import for less: a tool's start imports about thirty of the
kernel's enums (``bpf_cmd``, map and program types, perf types, opcodes), and Python's
class statement spends some 20 µs per member building them.

:func:`enum_of` turns a plain class body into an enum of the given kind. On Python 3.11
and later it uses the standard library's own fast builder (``enum._simple_enum``, which
the standard library uses for its enums, e.g. ``re`` flags): about half the time, the same
class (``tests/test_enums.py`` compares each with one built the usual way through
``enum._test_simple_enum``). Earlier Pythons build the usual way.
"""

from __future__ import annotations

import enum
import types
from typing import Any, Callable, Type

__all__ = ["enum_of"]

_SIMPLE = getattr(enum, "_simple_enum", None)


def enum_of(kind: Type[enum.Enum]) -> Callable[[type], Any]:
    """A class decorator: the decorated class (no bases, members in its body) becomes an
    enum of ``kind`` (``enum.IntEnum``, ``enum.IntFlag``, ``enum.Enum``) with the same
    name, members, methods and docstring."""
    def build(cls: type) -> Any:
        if _SIMPLE is not None:
            return _SIMPLE(kind)(cls)
        body = {k: v for k, v in cls.__dict__.items() if k not in ("__dict__", "__weakref__")}
        made = types.new_class(cls.__name__, (kind,), exec_body=lambda ns: _fill(ns, body))
        made.__qualname__ = cls.__qualname__
        return made
    return build


def _fill(namespace: Any, body: dict) -> None:
    for name, value in body.items():
        namespace[name] = value
