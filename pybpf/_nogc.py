"""Python's cyclic garbage collector paused while a compiler runs.

A compile makes tens of thousands of short-lived objects (tokens, tree nodes, types,
instructions). Each 700 of them set off a collection of the young objects, every tenth
of those a pass over older ones, and now and then one over everything the process holds:
~10% of a ``pybpf trace`` compile. The compiler frees
most of what it makes by reference counting, so the collector finds little: it is
paused for the compile and resumed after it, and the cycles it left are collected as
usual from then on."""

from __future__ import annotations

import functools
import gc
from typing import Any, Callable, TypeVar

__all__ = ["gc_paused"]

F = TypeVar("F", bound=Callable[..., Any])


def gc_paused(fn: F) -> F:
    """``fn``, run with the cyclic garbage collector off (on again after it, if it was
    on before: nested calls leave it to the outermost)."""
    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        if not gc.isenabled():
            return fn(*args, **kwargs)
        gc.disable()
        try:
            return fn(*args, **kwargs)
        finally:
            gc.enable()
    return run  # type: ignore[return-value]
