"""bpftrace 0.17's ``-f json`` output: one JSON object per line, exactly as 0.17 writes it.

The message types of 0.17 and their shapes (key order and spacing are bpftrace's)::

    {"type": "attached_probes", "data": {"probes": N}}
    {"type": "lost_events", "data": {"events": N}}
    {"type": "printf"|"time"|"cat"|"join"|"syscall", "data": "TEXT"}
    {"type": "value", "data": V}
    {"type": "map", "data": {"@m": V}}          {"type": "map", "data": {"@m": {"k1,k2": V, ...}}}
    {"type": "hist", "data": {"@h": [{"max": -1, "count": 1}, {"min": 0, "max": 0, "count": 2}]}}
    {"type": "stats", "data": {"@s": {"count": 2, "average": 20, "total": 40}}}   (avg: {"@a": 20})
    {"type": "helper_error", "helper": "NAME", "retcode": -14, "line": L, "col": C}

Quirks kept: strings are escaped byte by byte with bytes from 0x80 written as
``\\uffffffXX`` (:func:`~pybpf.bpftrace.values.json_escape`); multi-key map keys are
the key texts joined by ``,`` in one string; tuples are ``[a,b]`` without spaces;
timestamps, MAC addresses, cgroup paths and strerror texts are written unquoted; hist
bucket bounds come from 32-bit shifts (the ``[2G, 4G)`` bucket reads
``{"min": -2147483648, "max": 0}``); empty maps print nothing. At exit bpftrace still
prints its two bare newlines before the maps (:func:`exit_maps_json`).
"""

from __future__ import annotations

from typing import List, Optional, Sequence

from .output import (MapData, hist_prepare, lhist_prepare, map_entries, scalar_text)
from .notices import attached_probes_json, lost_events_json
from .values import M64, Int, Pointer, Value, c_div, json_escape, wrap

__all__ = ["message_json", "attached_probes_json", "lost_events_json", "value_json",
           "map_json", "hist_json", "lhist_json", "exit_maps_json", "helper_error_json",
           "MESSAGE_TYPES"]

#: the 0.17 message types that carry a string
MESSAGE_TYPES = ("printf", "time", "cat", "join", "syscall")


def message_json(kind: str, text: str) -> str:
    """A text message (printf, time, cat, join, syscall) as one JSON line."""
    return f'{{"type": "{kind}", "data": "{json_escape(text)}"}}\n'


def _value(m: Optional[MapData], value, div: int) -> str:
    if m is not None and m.kind != "value":
        return scalar_text(m, value, div)
    if isinstance(value, (Int, Pointer)) and div != 1:
        from .output import value_text
        return value_text(value, div)
    return value.json()


def value_json(value: Value) -> str:
    """``print(value)`` of a non-map value."""
    return f'{{"type": "value", "data": {value.json()}}}\n'


def _i32(x: int) -> int:
    return wrap(x, 32, True)


def hist_json(values: Sequence[int], div: int = 1) -> str:
    """One hist() histogram as bpftrace's JSON list of buckets."""
    lo, hi, _ = hist_prepare(values)
    if hi == -1:
        return "[]"
    parts = []
    for i in range(lo, hi + 1):
        if i == 0:
            head = '"max": -1, '
        elif i == 1:
            head = '"min": 0, "max": 0, '
        elif i == 2:
            head = '"min": 1, "max": 1, '
        else:
            low = _i32(1 << ((i - 2) & 31))
            high = _i32(_i32(1 << ((i - 1) & 31)) - 1)
            head = f'"min": {low}, "max": {high}, '
        parts.append("{" + head + f'"count": {(values[i] & M64) // div}' + "}")
    return "[" + ", ".join(parts) + "]"


def lhist_json(values: Sequence[int], lo: int, hi: int, step: int) -> str:
    """One lhist() histogram as bpftrace's JSON list of buckets."""
    prep = lhist_prepare(values, lo, hi, step)
    if prep is None:
        return "[]"
    buckets, start, end, _ = prep
    parts = []
    for i in range(start, end + 1):
        if i == 0:
            head = f'"max": {_i32(lo - 1)}, '
        elif i == buckets + 1:
            head = f'"min": {hi}, '
        else:
            head = f'"min": {_i32((i - 1) * step + lo)}, "max": {_i32(i * step + lo - 1)}, '
        parts.append("{" + head + f'"count": {values[i] & M64}' + "}")
    return "[" + ", ".join(parts) + "]"


def _key(key) -> str:
    if not key:
        return ""
    return '"' + json_escape(",".join(k.key_text() for k in key)) + '"'


def _keyval(key: str, val: str) -> str:
    return val if not key else key + ": " + val


def map_json(m: MapData, top: int = 0, div: int = 0) -> str:
    """``print(@m, top, div)`` / one map at exit as a JSON line ("" for an empty map)."""
    div = div or 1
    entries = map_entries(m, top)
    if not m.entries:
        return ""
    elems: List[str] = []
    if m.kind in ("hist", "lhist"):
        kind = "hist"
        for key, b in entries:
            body = hist_json(b, div) if m.kind == "hist" else lhist_json(b, *m.lhist)
            elems.append(_keyval(_key(key), body))
    elif m.kind in ("avg", "stats"):
        kind = "stats"
        for key, (count, total) in entries:
            avg = c_div(total, count) if count else 0
            if m.kind == "stats":
                body = f'{{"count": {count}, "average": {avg}, "total": {total}}}'
            else:
                body = str(c_div(avg, div))
            elems.append(_keyval(_key(key), body))
    else:
        kind = "map"
        for key, val in entries:
            elems.append(_keyval(_key(key), _value(m, val, div)))
    body = ", ".join(elems)
    if m.keyed:
        body = "{" + body + "}"
    return f'{{"type": "{kind}", "data": {{"{json_escape(m.name)}": {body}}}}}\n'


def exit_maps_json(maps: Sequence[MapData]) -> str:
    """What bpftrace ``-f json`` prints at exit: two bare newlines, then each non-empty
    map by name."""
    ordered = sorted(maps, key=lambda m: m.name.encode("latin-1"))
    return "\n\n" + "".join(map_json(m) for m in ordered)


def helper_error_json(helper: str, retcode: int, line: int, col: int) -> str:
    """A failed helper (``-k``/``-kk``) as bpftrace's ``helper_error`` line."""
    return (f'{{"type": "helper_error", "helper": "{helper}", "retcode": {retcode}, '
            f'"line": {line}, "col": {col}}}\n')
