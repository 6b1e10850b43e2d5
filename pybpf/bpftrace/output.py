"""bpftrace 0.17's text output: maps, histograms, print(), time(), join() and notices.

Everything here is a pure function from decoded values (:mod:`pybpf.bpftrace.values`)
to the exact text bpftrace 0.17 writes to stdout; the runtime feeds it what it reads
from BPF maps and ring-buffer records. :class:`MapData` describes one map as the runtime
reads it; :func:`map_entries` puts its entries in bpftrace's order (shared with the JSON
writer in :mod:`pybpf.bpftrace.json_output`):

* count, sum and integer maps by value (``std::sort``: ties in libstdc++'s order, see
  :mod:`~pybpf.bpftrace.cxxsort`), signed or unsigned as the map is; min and max by
  value; every other map by key, last key element first, stably (integer keys compared
  as unsigned, strings with ``strncmp``, other key types not at all);
* hist/lhist maps by key bytes, then by total count; avg/stats maps by key bytes, then
  by average;
* ``print(@m, top)`` keeps the last ``top`` entries (avg honours it, stats does not);
  ``div`` divides count/sum/min/max/int values, hist counts and avg values.

Layouts: ``@m[k1, k2]: v`` one per line and a newline after the map (an empty map is a
blank line); hist/lhist maps put each histogram under ``@m[k]: `` with a blank line
between entries; avg/stats maps end with an extra blank line. Maps of ``kstack``,
``ustack``, ``ksym``, ``usym`` and ``inet`` values are joined without newlines, as in
bpftrace. At exit bpftrace prints two newlines, then every map in name order
(:func:`exit_maps_text`).
"""

from __future__ import annotations

import struct
import time as _time
from .._records import field, record
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from .cxxsort import cxx_sort
from .notices import attached_probes_text, lost_events_text
from .values import M64, Int, Pointer, Str, Value, c_div, wrap

__all__ = ["MapData", "map_entries", "map_text", "hist_text", "lhist_text",
           "hist_label", "lhist_label", "value_text", "exit_maps_text",
           "attached_probes_text", "lost_events_text", "time_text", "join_text",
           "helper_error_text", "hist_prepare", "lhist_prepare", "HIST_BUCKETS",
           "LHIST_BUCKETS", "MAP_KINDS"]

#: the kinds of map :class:`MapData` describes
MAP_KINDS = ("count", "sum", "min", "max", "avg", "stats", "hist", "lhist", "value")
#: buckets bpftrace keeps per hist / lhist key
HIST_BUCKETS, LHIST_BUCKETS = 65, 1002
_BAR = 52
_NO_DELIM = frozenset({"kstack", "ustack", "ksym", "usym", "inet"})

Key = Tuple[Value, ...]


@record
class MapData:
    """One bpftrace map as the runtime read it.

    ``entries`` are ``(key, value)`` in the kernel's iteration order (``key`` a tuple of
    values, empty for a scalar map). ``value`` depends on ``kind``:

    * ``count``/``sum``/``min``/``max``: the reduced integer (see
      :func:`~pybpf.bpftrace.values.reduce_sum` and friends); ``signed`` tells whether a
      sum is signed (count and max are unsigned, min signed);
    * ``avg``/``stats``: ``(count, total)``;
    * ``hist``/``lhist``: bucket counts, a sequence or a ``{index: count}`` mapping
      (``lhist`` gives ``(lo, hi, step)`` in ``lhist``);
    * ``value``: a :class:`~pybpf.bpftrace.values.Value` (``@m = expr``).
    """

    name: str
    kind: str
    entries: List[Tuple[Key, object]] = field(default_factory=list)
    signed: bool = False
    lhist: Optional[Tuple[int, int, int]] = None

    def __post_init__(self) -> None:
        if self.kind not in MAP_KINDS:
            raise ValueError(f"unknown map kind {self.kind!r}")
        if self.kind == "lhist" and self.lhist is None:
            raise ValueError("an lhist map needs lhist=(min, max, step)")

    @property
    def keyed(self) -> bool:
        """Whether the map has keys (``@m[k]``) rather than one value (``@m``)."""
        return any(len(k) for k, _ in self.entries)

    def value_kind(self) -> str:
        """bpftrace's type name of the map's values (``count``, ``hist``, ``string``...)."""
        if self.kind != "value":
            return self.kind
        for _, v in self.entries:
            return getattr(v, "kind", "integer")
        return "none"


def _buckets(value, size: int) -> List[int]:
    out = [0] * size
    if isinstance(value, Mapping):
        for i, c in value.items():
            out[i] = c & M64
    else:
        for i, c in enumerate(value):
            out[i] = c & M64
    return out


def _sort_by_key(entries: list) -> None:
    if not entries:
        return
    key0 = entries[0][0]
    for pos in range(len(key0) - 1, -1, -1):
        arg = key0[pos]
        if isinstance(arg, Int):
            nbytes = 8 if arg.bits == 64 else 4
            entries.sort(key=lambda e, p=pos, n=nbytes: int.from_bytes(
                e[0][p].key_bytes().ljust(n, b"\0")[:n], "little"))
        elif isinstance(arg, Str):
            entries.sort(key=lambda e, p=pos: e[0][p].key_bytes().split(b"\0", 1)[0])


def _num(value: int, signed: bool) -> int:
    return wrap(value, 64, signed)


def map_entries(m: MapData, top: int = 0) -> list:
    """The entries of ``m`` in the order bpftrace prints them, cut to the last ``top``
    (0: all). hist/lhist values come back as full bucket lists, avg/stats values as
    ``(count, total)``."""
    kind = m.kind
    if kind in ("hist", "lhist"):
        size = HIST_BUCKETS if kind == "hist" else LHIST_BUCKETS
        merged: Dict[bytes, Tuple[Key, List[int]]] = {}
        for key, val in m.entries:
            kb = b"".join(k.key_bytes() for k in key)
            merged[kb] = (key, _buckets(val, size))
        items = [merged[kb] for kb in sorted(merged)]
        totals = [(key, b, sum(b) & M64) for key, b in items]
        cxx_sort(totals, lambda a, b: a[2] < b[2])
        out = [(k, b) for k, b, _ in totals]
    elif kind in ("avg", "stats"):
        merged2: Dict[bytes, Tuple[Key, Tuple[int, int]]] = {}
        for key, (count, total) in m.entries:
            kb = b"".join(k.key_bytes() for k in key)
            merged2[kb] = (key, (wrap(count, 64, True), wrap(total, 64, True)))
        avgs = []
        for kb in sorted(merged2):
            key, (count, total) = merged2[kb]
            avgs.append((key, (count, total), c_div(total, count) if count else 0))
        cxx_sort(avgs, lambda a, b: a[2] < b[2])
        out = [(k, v) for k, v, _ in avgs]
        if kind == "stats":
            return out
    else:
        out = list(m.entries)
        if kind in ("count", "sum") or (kind == "value" and m.value_kind() == "integer"):
            signed = m.signed if kind == "sum" else (
                kind == "value" and bool(out) and getattr(out[0][1], "signed", False))
            vals = {id(e): _num(_intval(e[1]), signed) for e in out}
            cxx_sort(out, lambda a, b: vals[id(a)] < vals[id(b)])
        elif kind == "min":
            cxx_sort(out, lambda a, b: wrap(a[1], 64, True) < wrap(b[1], 64, True))
        elif kind == "max":
            cxx_sort(out, lambda a, b: a[1] & M64 < b[1] & M64)
        else:
            _sort_by_key(out)
    if top and len(out) > top:
        out = out[len(out) - top:]
    return out


def _intval(v) -> int:
    return v.value if isinstance(v, (Int, Pointer)) else int(v)


def scalar_text(m: MapData, value, div: int) -> str:
    """A count/sum/min/max/value entry's value as bpftrace prints it (after ``div``)."""
    kind = m.kind
    if kind == "count":
        return str((value & M64) // div)
    if kind == "sum":
        v = wrap(value, 64, m.signed)
        return str(c_div(v, div) if m.signed else v // div)
    if kind == "min":
        return str(c_div(wrap(value, 64, True), div))
    if kind == "max":
        return str((value & M64) // div)
    return value_text(value, div)


def value_text(value: Value, div: int = 1) -> str:
    """A value as bpftrace prints a map value or ``print(value)`` (integers divided by
    ``div`` with the value's own width and sign, as bpftrace does)."""
    if isinstance(value, Int):
        if div == 1:
            return value.text()
        d = wrap(div, value.bits, True) if value.signed else div & ((1 << value.bits) - 1)
        if d == 0:
            return value.text()
        if value.signed:
            return str(wrap(c_div(value.value, d), value.bits, True))
        return str(value.value // d)
    if isinstance(value, Pointer):
        return str(c_div(wrap(value.value, 64, True), div))
    return value.text()


def hist_label(power: int) -> str:
    """A power of two as hist bucket labels show it: ``512``, ``1K``, ``2M``, ``4G``..."""
    suffix = ""
    for limit, s in ((40, "T"), (30, "G"), (20, "M"), (10, "K")):
        if power >= limit:
            suffix, power = s, power - limit
            break
    return str(wrap(1 << (power & 31), 32, True)) + suffix


def lhist_label(number: int) -> str:
    """An lhist bound as its labels show it: a K or M suffix only for exact multiples
    of 1024 or 1048576."""
    if number == 0:
        return "0"
    if number % 1048576 == 0:
        return f"{c_div(number, 1048576)}M"
    if number % 1024 == 0:
        return f"{c_div(number, 1024)}K"
    return str(number)


def _f32(x: float) -> float:
    return struct.unpack("f", struct.pack("f", x))[0]


def _bar(count: int, max_value: int) -> str:
    # bpftrace computes count / (float)max * 52 in single precision, then truncates
    q = _f32(_f32(float(count)) / _f32(float(max_value))) if max_value else float("inf")
    w = _f32(q * _BAR)
    width = int(w) if w == w and abs(w) < 1e9 else 0
    return "@" * max(0, width)


def hist_prepare(values: Sequence[int]) -> Tuple[int, int, int]:
    """(first, last, max) over the buckets as bpftrace computes them (counts read as
    32-bit ints); first is -1 when every bucket is empty."""
    lo = hi = -1
    mx = 0
    for i, c in enumerate(values):
        v = wrap(c, 32, True)
        if v > 0:
            if lo == -1:
                lo = i
            hi = i
        if v > mx:
            mx = v
    return lo, hi, mx


def lhist_prepare(values: Sequence[int], lo: int, hi: int, step: int
                  ) -> Optional[Tuple[int, int, int, int]]:
    """(buckets, start, end, max) of an lhist as bpftrace computes them, or None when
    it prints nothing."""
    max_index, mx = -1, 0
    buckets = c_div(hi - lo, step)
    for i, c in enumerate(values):
        v = wrap(c, 32, True)
        if v != 0:
            max_index = i
        if v > mx:
            mx = v
    if max_index == -1:
        return None
    start, end = -1, 0
    for i in range(0, buckets + 2):
        if values[i] > 0:
            if start == -1:
                start = i
            end = i
    return buckets, max(start, 0), end, mx


def _line(header: str, count: int, bar: str) -> str:
    return f"{header:<16}{count:>8} |{bar:<{_BAR}}|\n"


def hist_text(values: Sequence[int], div: int = 1) -> str:
    """One hist() histogram's lines (empty when every bucket is zero)."""
    lo, hi, mx = hist_prepare(values)
    if hi == -1:
        return ""
    out = []
    for i in range(lo, hi + 1):
        if i == 0:
            header = "(..., 0)"
        elif i == 1:
            header = "[0]"
        elif i == 2:
            header = "[1]"
        else:
            header = f"[{hist_label(i - 2)}, {hist_label(i - 1)})"
        out.append(_line(header, (values[i] & M64) // div, _bar(values[i], mx)))
    return "".join(out)


def lhist_text(values: Sequence[int], lo: int, hi: int, step: int) -> str:
    """One lhist() histogram's lines (bpftrace ignores ``div`` for lhist)."""
    prep = lhist_prepare(values, lo, hi, step)
    if prep is None:
        return ""
    buckets, start, end, mx = prep
    out = []
    for i in range(start, end + 1):
        if i == 0:
            header = f"(..., {lhist_label(lo)})"
        elif i == buckets + 1:
            header = f"[{lhist_label(hi)}, ...)"
        else:
            header = f"[{lhist_label((i - 1) * step + lo)}, {lhist_label(i * step + lo)})"
        out.append(_line(header, values[i] & M64, _bar(values[i], mx)))
    return "".join(out)


def _key_label(m: MapData, key: Key) -> str:
    if not key:
        return m.name
    return m.name + "[" + ", ".join(k.key_text() for k in key) + "]"


def map_text(m: MapData, top: int = 0, div: int = 0) -> str:
    """``print(@m, top, div)`` (and one map at exit) in bpftrace 0.17's text layout."""
    div = div or 1
    entries = map_entries(m, top)
    if m.kind in ("hist", "lhist"):
        elems = []
        for key, b in entries:
            body = hist_text(b, div) if m.kind == "hist" else lhist_text(b, *m.lhist)
            elems.append(_key_label(m, key) + ": \n" + body)
        return "\n".join(elems) + "\n"
    if m.kind in ("avg", "stats"):
        elems = []
        for key, (count, total) in entries:
            avg = c_div(total, count) if count else 0
            if m.kind == "stats":
                text = f"count {count}, average {avg}, total {total}"
            else:
                text = str(c_div(avg, div))
            elems.append(_key_label(m, key) + ": " + text)
        return "\n".join(elems) + "\n\n"
    delim = "" if m.value_kind() in _NO_DELIM else "\n"
    elems = [_key_label(m, key) + ": " + scalar_text(m, val, div) for key, val in entries]
    return delim.join(elems) + "\n"


def exit_maps_text(maps: Sequence[MapData]) -> str:
    """What bpftrace prints at exit: two newlines, then every map by name."""
    ordered = sorted(maps, key=lambda m: m.name.encode("latin-1"))
    return "\n\n" + "".join(map_text(m) for m in ordered)




def time_text(fmt: str = "%H:%M:%S\n", when: Optional[float] = None) -> Optional[str]:
    """``time(fmt)``: the local time now (or at ``when``) through C ``strftime``; None
    when it produces nothing (bpftrace then logs "strftime returned 0")."""
    tm = _time.localtime(when if when is not None else _time.time())
    try:
        text = _time.strftime(fmt, tm) if fmt else ""
    except (ValueError, UnicodeError):
        return None
    if not text or len(text) >= 1024:
        return None
    return text


def join_text(args: Sequence[str], delim: str = " ") -> str:
    """``join(argv, delim)`` without its newline: the arguments up to the first empty
    one, separated by ``delim``."""
    out = []
    for a in args:
        if not a:
            break
        out.append(a)
    return delim.join(out)


def helper_error_text(helper: str, retcode: int, loc, source: str,
                      filename: str = "stdin") -> str:
    """The warning bpftrace prints (on stdout) when a helper failed under ``-k``:
    ``FILE:L:C-C: WARNING: Failed to HELPER: strerror (ret)`` with the source line."""
    import os
    from .errors import Diagnostic, render_diagnostic
    if retcode < 0:
        msg = f"Failed to {helper}: {os.strerror(-retcode)} ({retcode})"
    else:
        msg = f"Failed to {helper}: {retcode}"
    return render_diagnostic(Diagnostic(loc, msg, "WARNING"), source, filename) + "\n"
