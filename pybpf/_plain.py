"""Plain data classes for the start-up path, without :mod:`dataclasses`.

``dataclasses`` imports :mod:`inspect` (and with it ``ast``, ``dis``, ``tokenize``) and
builds each class by generating and compiling source: several milliseconds before a
tool's first event. The few specs a tool creates on its way to the first event
(:class:`~pybpf.maps.spec.MapSpec`, :class:`~pybpf.program.ProgramSpec`, the tracefs
records, :class:`~pybpf.events.wakeup.Wakeup`) derive from :class:`PlainData` instead,
which gives what those classes used from ``@dataclass``: an ``__init__`` taking the
annotated fields in order (positionally or by name, with the class attribute as the
default, :class:`factory` for a fresh mutable one), ``__post_init__``, ``__repr__``,
``__eq__`` over the fields, ``frozen=True`` (read-only, hashable) and :meth:`replace`.
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar, Dict, Tuple

__all__ = ["PlainData", "factory", "FrozenInstanceError"]


class FrozenInstanceError(AttributeError):
    """Assignment to a field of a ``frozen=True`` :class:`PlainData`."""


class factory:
    """A field default made fresh for each instance: ``fields: List[int] =
    factory(list)``."""

    __slots__ = ("make",)

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make


class PlainData:
    """Base of a plain data class: subclass it and annotate the fields (``class
    P(PlainData, frozen=True)`` for a read-only, hashable one)."""

    _fields: ClassVar[Tuple[str, ...]] = ()
    _defaults: ClassVar[Dict[str, Any]] = {}
    _frozen: ClassVar[bool] = False

    def __init_subclass__(cls, frozen: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        names: list = []
        defaults: Dict[str, Any] = {}
        for klass in reversed(cls.__mro__):
            for name, hint in klass.__dict__.get("__annotations__", {}).items():
                if name.startswith("_") or "ClassVar" in str(hint):
                    continue
                if name not in names:
                    names.append(name)
                if name in klass.__dict__:
                    defaults[name] = klass.__dict__[name]
        cls._fields = tuple(names)
        cls._defaults = defaults
        cls._frozen = frozen
        cls.__hash__ = PlainData._hash if frozen else None   # type: ignore[assignment]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        fields = self._fields
        name = type(self).__name__
        if len(args) > len(fields):
            raise TypeError(f"{name}() takes {len(fields)} arguments, {len(args)} given")
        values = dict(zip(fields, args))
        for key, value in kwargs.items():
            if key not in fields:
                raise TypeError(f"{name}() got an unexpected keyword argument {key!r}")
            if key in values:
                raise TypeError(f"{name}() got multiple values for argument {key!r}")
            values[key] = value
        setter = object.__setattr__
        for field in fields:
            if field in values:
                value = values[field]
            elif field in self._defaults:
                value = self._defaults[field]
                if isinstance(value, factory):
                    value = value.make()
            else:
                raise TypeError(f"{name}() missing required argument {field!r}")
            setter(self, field, value)
        post = getattr(self, "__post_init__", None)
        if post is not None:
            post()

    def _values(self) -> Tuple[Any, ...]:
        return tuple(getattr(self, f) for f in self._fields)

    def __repr__(self) -> str:
        inner = ", ".join(f"{f}={getattr(self, f)!r}" for f in self._fields)
        return f"{type(self).__qualname__}({inner})"

    def __eq__(self, other: Any) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()

    def _hash(self) -> int:
        return hash(self._values())

    def __setattr__(self, name: str, value: Any) -> None:
        if self._frozen and name in self._fields:
            raise FrozenInstanceError(f"cannot assign to field {name!r}")
        object.__setattr__(self, name, value)

    def replace(self, **changes: Any) -> Any:
        """A copy with ``changes`` applied (through ``__init__``, so
        ``__post_init__`` checks it again)."""
        values = {f: getattr(self, f) for f in self._fields}
        values.update(changes)
        return type(self)(**values)
