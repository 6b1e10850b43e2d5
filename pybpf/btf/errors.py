"""Errors of :mod:`pybpf.btf`."""

from __future__ import annotations

from typing import Sequence, Tuple

__all__ = ["BTFError", "BTFFormatError", "TypeNotFoundError", "AmbiguousTypeError",
           "FieldError"]


class BTFError(Exception):
    """The base of every error raised by :mod:`pybpf.btf`."""


class BTFFormatError(BTFError, ValueError):
    """A BTF blob that is malformed: bad magic, sections outside the blob, a record that
    runs past the type section, a kind this parser does not know."""


class TypeNotFoundError(BTFError, KeyError):
    """No type (or function, enumerator, attach target) has the name asked for."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "type not found"


class AmbiguousTypeError(BTFError, KeyError):
    """More than one type matches a name (a ``KeyError``: the name does not pick one
    type). ``candidates`` lists them as (where, type id, kind name) tuples; ``where`` is
    ``"vmlinux"``, a module's name or empty."""

    def __init__(self, message: str, candidates: Sequence[Tuple[str, int, str]] = ()) -> None:
        super().__init__(message)
        self.candidates = list(candidates)

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "ambiguous name"


class FieldError(BTFError, KeyError):
    """A field path that does not resolve: no such member, a member that is not a struct
    or pointer to one, an index into something that is not an array or pointer."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "bad field path"
