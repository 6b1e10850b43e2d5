"""Program arrays: the jump tables of tail calls (``BPF_MAP_TYPE_PROG_ARRAY``)."""

from __future__ import annotations

from ..syscall.bpf import MapType
from .fdarray import FdArrayMap

__all__ = ["ProgArray"]


class ProgArray(FdArrayMap):
    """A table of programs for ``bpf_tail_call`` (``BPF_MAP_TYPE_PROG_ARRAY``, Linux
    4.2). Store a program (anything with ``fileno()``, or an fd number) at an index;
    reading an index gives the program's id. All programs must have the type of the
    first program that uses the map."""

    map_types = (MapType.PROG_ARRAY,)
    holds = "program"
