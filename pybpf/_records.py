"""Plain record classes made without :mod:`dataclasses`' cost at import time (and
without importing it: ``dataclasses`` imports :mod:`inspect`, ``ast``, ``dis`` and
``tokenize``, several ms of a tool's start).

``@dataclass`` writes each class's ``__init__``, ``__repr__`` and ``__eq__`` as source
and compiles it, and inspects every (string) annotation: about half a millisecond per
class. ``pybpf trace`` defines some sixty record classes (syntax-tree nodes, values,
preamble items) on its way to the first event, and a tool loads maps and programs
through specs (:class:`~pybpf.maps.spec.MapSpec`, :class:`~pybpf.program.ProgramSpec`,
the tracefs records), so :func:`record` gives the same
classes from shared, generic methods, compiling only an ``__init__``, when a class is
first instantiated:

* fields are the class's annotations in order (a base's first), each with its class
  attribute as default or a :func:`field` (``default``, ``default_factory``,
  ``compare``, ``repr``);
* ``__init__`` takes them positionally or by name, as dataclasses do (a missing or
  unknown argument is a ``TypeError``); ``__post_init__`` is called when defined; a
  class that writes its own ``__init__`` keeps it;
* ``__eq__`` compares the ``compare`` fields of two objects of the same class,
  ``__repr__`` shows the ``repr`` fields; a mutable record is unhashable, a
  ``frozen`` one refuses assignment (:class:`dataclasses.FrozenInstanceError`) and
  hashes its ``compare`` fields.

:func:`replace` is :func:`dataclasses.replace` for records. Only these features are
provided: no ordering, ``ClassVar``, ``InitVar``, keyword-only fields, ``__slots__`` or
:func:`dataclasses.fields` support.
"""

from __future__ import annotations

from operator import attrgetter
from typing import Any, Callable, List, Optional, Tuple

__all__ = ["record", "field", "replace"]

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


_FACTORY: Any = object()


def _compile_init(spec: _Spec, post_init: bool) -> Callable[..., None]:
    """``__init__`` for ``spec`` written out and compiled (what dataclasses make, without
    their inspection of each annotation), storing into the instance's dict."""
    params, body = ["self"], []
    env: dict = {"_FACTORY": _FACTORY}
    for i, (name, default, factory, _c, _r) in enumerate(spec):
        if factory is not None:
            env[f"_f{i}"] = factory
            params.append(f"{name}=_FACTORY")
            body.append(f"    __d[{name!r}] = _f{i}() if {name} is _FACTORY else {name}")
        else:
            if default is not _MISSING:
                env[f"_d{i}"] = default
                params.append(f"{name}=_d{i}")
            else:
                params.append(name)
            body.append(f"    __d[{name!r}] = {name}")
    if post_init:
        body.append("    self.__post_init__()")
    src = (f"def __init__({', '.join(params)}):\n    __d = self.__dict__\n"
           + "\n".join(body) + "\n")
    exec(compile(src, "<record __init__>", "exec"), env)       # noqa: S102 - our source
    return env["__init__"]


def _make_init(klass: type, spec: _Spec, post_init: bool) -> Callable[..., None]:
    """A first ``__init__`` that compiles the real one and puts it in its place: a class
    costs nothing until it is first instantiated."""
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        real = _compile_init(spec, post_init)
        real.__qualname__ = f"{klass.__qualname__}.__init__"
        klass.__init__ = real                                  # type: ignore[misc]
        real(self, *args, **kwargs)
    return __init__


def record(cls: Optional[type] = None, *, frozen: bool = False) -> Any:
    """Make ``cls`` a record class (see the module docstring); ``@record`` or
    ``@record(frozen=True)``."""
    def wrap(klass: type) -> type:
        spec = _spec_of(klass)
        klass._record_fields = spec                          # type: ignore[attr-defined]
        compared = tuple(f[0] for f in spec if f[3])
        shown = tuple(f[0] for f in spec if f[4])
        if "__init__" not in klass.__dict__:       # a hand-written one is kept
            init = _make_init(klass, spec, hasattr(klass, "__post_init__"))
            init.__qualname__ = f"{klass.__qualname__}.__init__"
            klass.__init__ = init                            # type: ignore[misc]

        def __repr__(self: Any) -> str:
            return (f"{type(self).__qualname__}("
                    + ", ".join(f"{n}={getattr(self, n)!r}" for n in shown) + ")")

        get = attrgetter(*compared) if len(compared) > 1 else \
            (lambda o: (getattr(o, compared[0]),)) if compared else (lambda o: ())

        def __eq__(self: Any, other: Any) -> Any:
            if other.__class__ is self.__class__:   # as tuples compare (identity first)
                return get(self) == get(other)
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
                return hash(get(self))
            klass.__setattr__ = __setattr__                  # type: ignore[assignment]
            klass.__delattr__ = __delattr__                  # type: ignore[assignment]
            if "__hash__" not in klass.__dict__ or klass.__dict__["__hash__"] is None:
                klass.__hash__ = __hash__                    # type: ignore[assignment]
        elif klass.__dict__.get("__hash__") is None:       # mutable: unhashable
            klass.__hash__ = None                            # type: ignore[assignment]
        return klass
    return wrap(cls) if cls is not None else wrap


def replace(obj: Any, **changes: Any) -> Any:
    """A copy of the record ``obj`` with ``changes`` applied, made through its
    ``__init__`` (so ``__post_init__`` checks it again), as :func:`dataclasses.replace`."""
    names = [f[0] for f in type(obj)._record_fields]
    unknown = set(changes) - set(names)
    if unknown:
        raise TypeError(f"{type(obj).__name__} has no field {', '.join(sorted(unknown))}")
    values = {n: getattr(obj, n) for n in names}
    values.update(changes)
    return type(obj)(**values)
