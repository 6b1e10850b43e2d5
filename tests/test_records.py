"""pybpf._records against the standard library's dataclasses (the oracle): the
same class declared both ways behaves the same (construction, defaults, factories,
``==``, ``repr``, hashing, frozen assignment, ``__post_init__``, copies, errors)."""

from __future__ import annotations

import copy
import dataclasses
from typing import List, Optional

import pytest

from pybpf import _records as records


def _pair(frozen: bool):
    out = []
    for deco, fld in ((dataclasses.dataclass(frozen=frozen), dataclasses.field),
                      (records.record(frozen=frozen), records.field)):
        @deco
        class Base:
            a: int
            b: Optional[str] = None

        @deco
        class Node(Base):
            c: List[int] = fld(default_factory=list)
            d: int = fld(default=7, compare=False, repr=False)
            e: float = 0.5

            def __post_init__(self) -> None:
                object.__setattr__(self, "a", self.a * 2)
        out.append(Node)
    return out


def _hash(o: object) -> object:
    try:
        return hash(o)
    except TypeError:
        return "unhashable"


CALLS = [((1,), {}), ((1, "x"), {}), ((1,), {"c": [3]}), ((), {"a": 4, "d": 9}),
         ((1, "x", [2], 5, 1.5), {}), ((float("nan"),), {})]
BAD = [((), {}), ((1,), {"a": 2}), ((1, 2, 3, 4, 5, 6), {}), ((1,), {"zz": 1})]


@pytest.mark.parametrize("frozen", [False, True])
def test_records_behave_as_dataclasses(frozen: bool) -> None:
    dc, rc = _pair(frozen)
    for args, kw in CALLS:
        x, y = dc(*args, **kw), rc(*args, **kw)
        nan = bool(args) and args[0] != args[0]
        assert repr(x).split("(", 1)[1] == repr(y).split("(", 1)[1]
        assert vars(x) == vars(y) or nan
        x2, y2 = dc(*args, **kw), rc(*args, **kw)
        assert (x == x2) == (y == y2)
        assert (x == x) == (y == y)                     # identity first, as tuples
        assert (x != x2) == (y != y2)
        assert dc(1, d=1) == dc(1, d=2) and rc(1, d=1) == rc(1, d=2)   # compare=False
        assert dc(1) != dc(2) and rc(1) != rc(2)
        assert rc(1).c is not rc(1).c                   # a new list each time
        assert copy.copy(y) == y and copy.deepcopy(y) == y
        if frozen:
            assert (_hash(x) == _hash(x2)) == (_hash(y) == _hash(y2))
            assert (_hash(x) == "unhashable") == (_hash(y) == "unhashable")
            assert _hash(rc(1, c=())) == _hash(rc(1, c=()))   # hashable when its fields are
            with pytest.raises(dataclasses.FrozenInstanceError):
                y.a = 5                                 # type: ignore[misc]
        else:
            with pytest.raises(TypeError):
                hash(y)
            y.a = 5
            assert y.a == 5
    for args, kw in BAD:
        with pytest.raises(TypeError):
            dc(*args, **kw)
        with pytest.raises(TypeError):
            rc(*args, **kw)


def test_record_refuses_a_required_field_after_a_default() -> None:
    with pytest.raises(TypeError):
        @records.record
        class Bad:
            a: int = 1
            b: int
