"""Plain record classes made without :mod:`dataclasses`' cost at import time.

``@dataclass`` writes each class's ``__init__``, ``__repr__`` and ``__eq__`` as source
and compiles it, and inspects every (string) annotation: about half a millisecond per
class. ``pybpf trace`` defines some sixty record classes (syntax-tree nodes, values,
preamble items) on its way to the first event, so :func:`record` gives the same
classes from shared, generic methods instead, with no compiling:

* fields are the class's annotations in order (a base's first), each with its class
  attribute as default or a :func:`field` (``default``, ``default_factory``,
  ``compare``, ``repr``);
* ``__init__`` takes them positionally or by name, as dataclasses do (a missing or
  unknown argument is a ``TypeError``); ``__post_init__`` is called when defined;
* ``__eq__`` compares the ``compare`` fields of two objects of the same class,
  ``__repr__`` shows the ``repr`` fields; a mutable record is unhashable, a
  ``frozen`` one refuses assignment (:class:`dataclasses.FrozenInstanceError`) and
  hashes its ``compare`` fields.

Only these features are provided: no ordering, ``ClassVar``, ``InitVar``, keyword-only
fields, ``__slots__`` or :func:`dataclasses.fields` support.
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Tuple

__all__ = ["record", "field"]

_MISSING: Any = object()


class _Field:
    """What :func:`field` returns: a field's options, read by :func:`record`."""

    __slots__ = ("default", "factory", "compare", "repr")

    def __init__(self, default: Any, factory: Optional[Callable[[], Any]], compare: bool,
                 repr: bool) -> None:                     # noqa: A002 - dataclass's name
        self.default, self.factory, self.compare, self.repr = default, factory, compare, repr


def field(*, default: Any = _MISSING, default_factory: Optional[Callable[[], Any]] = None,
          compare: bool = True, repr: bool = True) -> Any:  # noqa: A002
    """A field's default (or a factory called for each object) and whether it takes part
    in ``==`` and in ``repr`` (as :func:`dataclasses.field`)."""
    return _Field(default, default_factory, compare, repr)


# (name, default, factory, compare, repr) of each field, in order
_Spec = Tuple[Tuple[str, Any, Optional[Callable[[], Any]], bool, bool], ...]


def _spec_of(cls: type) -> _Spec:
    inherited: List[Any] = []
    for base in reversed(cls.__mro__[1:]):
        for item in base.__dict__.get("_record_fields", ()):
            inherited = [f for f in inherited if f[0] != item[0]] + [item]
    own = []
    for name in cls.__dict__.get("__annotations__", {}):
        value = cls.__dict__.get(name, _MISSING)
        if isinstance(value, _Field):
            item = (name, value.default, value.factory, value.compare, value.repr)
            if value.default is _MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, value.default)
        else:
            item = (name, value, None, True, True)
        if any(f[0] == name for f in inherited):     # redefined: keeps its place
            inherited = [item if f[0] == name else f for f in inherited]
        else:
            own.append(item)
    spec = tuple(inherited + own)
    seen_default = False
    for name, default, factory, _c, _r in spec:
        if default is not _MISSING or factory is not None:
            seen_default = True
        elif seen_default:
            raise TypeError(f"non-default argument {name!r} follows default argument")
    return spec


def _make_init(spec: _Spec, post_init: bool) -> Callable[..., None]:
    known = frozenset(f[0] for f in spec)
    count = len(spec)

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if len(args) > count:
            raise TypeError(f"{type(self).__name__}() takes {count} arguments, "
                            f"{len(args)} given")
        d = self.__dict__
        for i, (name, default, factory, _c, _r) in enumerate(spec):
            if i < len(args):
                if name in kwargs:
                    raise TypeError(f"{type(self).__name__}() got multiple values for "
                                    f"argument {name!r}")
                d[name] = args[i]
            elif name in kwargs:
                d[name] = kwargs[name]
            elif factory is not None:
                d[name] = factory()
            elif default is not _MISSING:
                d[name] = default
            else:
                raise TypeError(f"{type(self).__name__}() missing required argument: "
                                f"{name!r}")
        for k in kwargs:
            if k not in known:
                raise TypeError(f"{type(self).__name__}() got an unexpected keyword "
                                f"argument {k!r}")
        if post_init:
            self.__post_init__()
    return __init__


def record(cls: Optional[type] = None, *, frozen: bool = False) -> Any:
    """Make ``cls`` a record class (see the module docstring); ``@record`` or
    ``@record(frozen=True)``."""
    def wrap(klass: type) -> type:
        spec = _spec_of(klass)
        klass._record_fields = spec                          # type: ignore[attr-defined]
        compared = tuple(f[0] for f in spec if f[3])
        shown = tuple(f[0] for f in spec if f[4])
        init = _make_init(spec, hasattr(klass, "__post_init__"))
        init.__qualname__ = f"{klass.__qualname__}.__init__"
        klass.__init__ = init                                # type: ignore[misc]

        def __repr__(self: Any) -> str:
            return (f"{type(self).__qualname__}("
                    + ", ".join(f"{n}={getattr(self, n)!r}" for n in shown) + ")")

        def __eq__(self: Any, other: Any) -> Any:
            if other.__class__ is self.__class__:   # as tuples compare (identity first)
                return tuple([getattr(self, n) for n in compared]) == \
                    tuple([getattr(other, n) for n in compared])
            return NotImplemented

        if "__repr__" not in klass.__dict__:
            klass.__repr__ = __repr__                        # type: ignore[assignment]
        if "__eq__" not in klass.__dict__:
            klass.__eq__ = __eq__                            # type: ignore[assignment]
        if frozen:
            def __setattr__(self: Any, name: str, value: Any) -> None:
                from dataclasses import FrozenInstanceError
                raise FrozenInstanceError(f"cannot assign to field {name!r}")

            def __delattr__(self: Any, name: str) -> None:
                from dataclasses import FrozenInstanceError
                raise FrozenInstanceError(f"cannot delete field {name!r}")

            def __hash__(self: Any) -> int:
                return hash(tuple(getattr(self, n) for n in compared))
            klass.__setattr__ = __setattr__                  # type: ignore[assignment]
            klass.__delattr__ = __delattr__                  # type: ignore[assignment]
            if "__hash__" not in klass.__dict__ or klass.__dict__["__hash__"] is None:
                klass.__hash__ = __hash__                    # type: ignore[assignment]
        elif klass.__dict__.get("__hash__") is None:       # mutable: unhashable
            klass.__hash__ = None                            # type: ignore[assignment]
        return klass
    return wrap(cls) if cls is not None else wrap

