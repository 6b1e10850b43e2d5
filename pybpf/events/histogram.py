"""Histograms: counting in the kernel, printing like BCC and bpftrace, and JSON.

**Slots.** A program counts values into an array map of u64 counters indexed by slot:

* log2 slots: slot 0 holds the value 0 and slot ``s >= 1`` the values in
  ``[2**(s-1), 2**s)``, so 65 slots cover every u64 (:func:`log2_slot` computes the slot
  without a loop);
* linear slots for ``[lo, hi)`` in steps of ``step``: slot 0 holds values below ``lo``,
  slot ``i`` (1..n) the values in ``[lo + (i-1)*step, lo + i*step)``, slot n+1 those at
  or above ``hi`` (:func:`linear_slot`).

:func:`increment_slot` adds one to a slot of the map. In Python, :class:`Log2Histogram`
and :class:`LinearHistogram` hold the counts (from a list or read from the map) and
print them.

**Layouts.** BCC (``print_log2_hist``/``print_linear_hist``)::

         usecs               : count     distribution
             0 -> 1          : 3        |*                                       |
             2 -> 3          : 120      |****************************************|

with a ``\\n<section header> = <key>`` line before each key of a keyed histogram; the
log2 rows run from the first row to the last non-zero one (BCC puts 0 and 1 in one row),
in a wider layout when values reach past 2**32. bpftrace (``hist``/``lhist``)::

    @usecs:
    [2, 4)               120 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|

from the first to the last non-zero slot, labels with K/M/G suffixes, each map followed
by an empty line. JSON: ``{"type": "hist", "data": {"@name": [{"min": 2, "max": 3,
"count": 120}, ...]}}`` (bounds inclusive; keyed maps nest one level more).
"""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Union

from ..asm import Instruction, Reg
from ..asm.builder import (
    DW, W, add, atomic_add, call, div, jeq, jge, jlt, ld_map_fd, mov, rsh, stx, sub,
)

__all__ = [
    "LOG2_SLOTS", "log2_slot_of", "linear_slot_of", "Log2Histogram", "LinearHistogram",
    "bcc_log2", "bcc_linear", "bcc_sections", "bpftrace_log2", "bpftrace_linear",
    "log2_buckets", "linear_buckets", "to_json", "log2_slot", "linear_slot",
    "increment_slot", "BCC_STARS", "BPFTRACE_BAR",
]

#: log2 slots needed for any u64 (0, then one per power of two)
LOG2_SLOTS = 65
#: width of BCC's star column
BCC_STARS = 40
#: width of bpftrace's bar column
BPFTRACE_BAR = 52


# ---------------------------------------------------------------------------------------
# Slots in Python (the same rules as the kernel-side blocks)
# ---------------------------------------------------------------------------------------

def log2_slot_of(value: int) -> int:
    """The log2 slot of a non-negative integer (0 for 0, else ``bit_length``)."""
    return int(value).bit_length() if value > 0 else 0


def linear_slot_of(value: int, lo: int, hi: int, step: int) -> int:
    """The linear slot of ``value`` for ``[lo, hi)`` in steps of ``step``."""
    if value < lo:
        return 0
    if value >= hi:
        return _nlinear(lo, hi, step) + 1
    return (value - lo) // step + 1


def _nlinear(lo: int, hi: int, step: int) -> int:
    if step <= 0 or hi <= lo:
        raise ValueError(f"a linear histogram needs lo < hi and step > 0 (got {lo}, {hi}, "
                         f"{step})")
    return -(-(hi - lo) // step)


# ---------------------------------------------------------------------------------------
# BCC's layout
# ---------------------------------------------------------------------------------------

def _stars(count: int, peak: int, width: int) -> str:
    if peak <= 0:
        return ""
    n = min(width, int(width * count / peak))
    text = "*" * n
    if count > peak:
        text = text[:-1] + "+"
    return text


def _bcc_log2_rows(slots: Sequence[int]) -> List[int]:
    """BCC's rows: row i (i >= 1) counts [2**(i-1), 2**i - 1], row 1 also counts 0."""
    rows = [0] + list(slots[1:]) if len(slots) > 1 else [0, 0]
    if slots:
        rows[1] = rows[1] + slots[0] if len(rows) > 1 else slots[0]
    return rows


def bcc_log2(slots: Sequence[int], val_type: str = "value", *,
             strip_leading_zero: bool = False) -> str:
    """Log2 slots as BCC's ``print_log2_hist`` prints them (empty text when every count
    is zero)."""
    rows = _bcc_log2_rows(slots)
    last = max((i for i, v in enumerate(rows) if v > 0), default=-1)
    peak = max(rows) if rows else 0
    if last <= 0:
        return ""
    if last <= 32:
        head = f"     {val_type:<19} : count     distribution\n"
        width, lw = BCC_STARS, 10
    else:
        head = f"               {val_type:<29} : count     distribution\n"
        width, lw = BCC_STARS // 2, 20
    out = [head]
    skipping = strip_leading_zero
    for i in range(1, last + 1):
        low, high = (1 << i) >> 1, (1 << i) - 1
        if low == high:
            low -= 1
        count = rows[i]
        if skipping and not count:
            continue
        skipping = False
        out.append(f"{low:>{lw}} -> {high:<{lw}} : {count:<8} "
                   f"|{_stars(count, peak, width):<{width}}|\n")
    return "".join(out)


def bcc_linear(values: Sequence[int], val_type: str = "value", *,
               strip_leading_zero: bool = False) -> str:
    """Counts indexed by value (BCC's linear histograms: ``hist.increment(value)``) as
    ``print_linear_hist`` prints them."""
    last = max((i for i, v in enumerate(values) if v > 0), default=-1)
    if last < 0:
        return ""
    peak = max(values)
    out = [f"     {val_type:<13} : count     distribution\n"]
    skipping = strip_leading_zero
    for i in range(0, last + 1):
        count = values[i]
        if skipping and not count:
            continue
        skipping = False
        out.append(f"        {i:<10} : {count:<8} |{_stars(count, peak, BCC_STARS):<{BCC_STARS}}|\n")
    return "".join(out)


def bcc_sections(hists: Mapping[Any, Sequence[int]], val_type: str = "value",
                 section_header: str = "Bucket ptr", *,
                 section_print_fn: Optional[Callable[[Any], Any]] = None,
                 bucket_sort_fn: Optional[Callable[[List[Any]], List[Any]]] = None,
                 linear: bool = False, strip_leading_zero: bool = False) -> str:
    """A keyed histogram in BCC's layout: for each key (sorted, or in the order
    ``bucket_sort_fn`` gives), a line ``\\n<section_header> = <key>`` (the key through
    ``section_print_fn``, else its ``repr``) and that key's histogram."""
    keys = list(hists)
    keys = bucket_sort_fn(keys) if bucket_sort_fn is not None else sorted(keys)
    out = []
    fmt = bcc_linear if linear else bcc_log2
    for key in keys:
        shown = section_print_fn(key) if section_print_fn is not None else repr(key)
        out.append(f"\n{section_header} = {shown}\n")
        out.append(fmt(hists[key], val_type, strip_leading_zero=strip_leading_zero))
    return "".join(out)


# ---------------------------------------------------------------------------------------
# bpftrace's layout
# ---------------------------------------------------------------------------------------

_SUFFIXES = ("", "K", "M", "G", "T", "P", "E")


def _power_label(power: int) -> str:
    return f"{1 << (power % 10)}{_SUFFIXES[power // 10]}"


def _number_label(value: int) -> str:
    if value == 0:
        return "0"
    n = 0
    while value % 1024 == 0 and n < len(_SUFFIXES) - 1:
        value //= 1024
        n += 1
    return f"{value}{_SUFFIXES[n]}"


def _bpftrace_rows(labels: Sequence[str], counts: Sequence[int]) -> str:
    nonzero = [i for i, c in enumerate(counts) if c]
    if not nonzero:
        return ""
    peak = max(counts)
    out = []
    for i in range(nonzero[0], nonzero[-1] + 1):
        bar = "@" * int(counts[i] / peak * BPFTRACE_BAR)
        out.append(f"{labels[i]:<16}{counts[i]:>8} |{bar:<{BPFTRACE_BAR}}|\n")
    return "".join(out)


def _log2_labels(n: int) -> List[str]:
    labels = []
    for s in range(n):
        if s == 0:
            labels.append("[0]")
        elif s == 1:
            labels.append("[1]")
        else:
            labels.append(f"[{_power_label(s - 1)}, {_power_label(s)})")
    return labels


def _linear_labels(lo: int, hi: int, step: int) -> List[str]:
    n = _nlinear(lo, hi, step)
    labels = [f"(..., {_number_label(lo)})"]
    for i in range(1, n + 1):
        a = lo + (i - 1) * step
        b = min(lo + i * step, hi)
        labels.append(f"[{_number_label(a)}, {_number_label(b)})")
    labels.append(f"[{_number_label(hi)}, ...)")
    return labels


def _map_title(name: str, key: Any) -> str:
    name = name if name.startswith("@") else "@" + name
    if key is None:
        return f"{name}:\n"
    shown = ", ".join(str(k) for k in key) if isinstance(key, tuple) else str(key)
    return f"{name}[{shown}]:\n"


def bpftrace_log2(slots: Union[Sequence[int], Mapping[Any, Sequence[int]]],
                  name: str = "@") -> str:
    """Log2 slots (or a mapping of keys to slots) as bpftrace prints a ``hist()`` map:
    ``@name:`` (``@name[key]:``) then the rows and an empty line."""
    if isinstance(slots, Mapping):
        return "".join(_bpftrace_one(_log2_labels(len(v)), v, name, k)
                       for k, v in sorted(slots.items()))
    return _bpftrace_one(_log2_labels(len(slots)), slots, name, None)


def bpftrace_linear(slots: Union[Sequence[int], Mapping[Any, Sequence[int]]], lo: int,
                    hi: int, step: int, name: str = "@") -> str:
    """Linear slots (or a mapping of keys to slots) as bpftrace prints an ``lhist()``
    map."""
    labels = _linear_labels(lo, hi, step)
    if isinstance(slots, Mapping):
        return "".join(_bpftrace_one(labels, v, name, k) for k, v in sorted(slots.items()))
    return _bpftrace_one(labels, slots, name, None)


def _bpftrace_one(labels: Sequence[str], counts: Sequence[int], name: str, key: Any) -> str:
    if len(counts) > len(labels):
        raise ValueError(f"{len(counts)} slots, but the layout has {len(labels)}")
    return _map_title(name, key) + _bpftrace_rows(labels, counts) + "\n"


# ---------------------------------------------------------------------------------------
# JSON
# ---------------------------------------------------------------------------------------

def log2_buckets(slots: Sequence[int]) -> List[Dict[str, int]]:
    """The non-empty log2 slots as ``{"min", "max", "count"}`` (inclusive bounds)."""
    out = []
    for s, count in enumerate(slots):
        if count:
            lo = 0 if s == 0 else 1 << (s - 1)
            hi = 0 if s == 0 else (1 << s) - 1
            out.append({"min": lo, "max": hi, "count": int(count)})
    return out


def linear_buckets(slots: Sequence[int], lo: int, hi: int,
                   step: int) -> List[Dict[str, Any]]:
    """The non-empty linear slots as ``{"min", "max", "count"}``; the open ends have
    ``min`` or ``max`` None."""
    n = _nlinear(lo, hi, step)
    out = []
    for i, count in enumerate(slots):
        if not count:
            continue
        if i == 0:
            bucket: Dict[str, Any] = {"min": None, "max": lo - 1}
        elif i == n + 1:
            bucket = {"min": hi, "max": None}
        else:
            bucket = {"min": lo + (i - 1) * step, "max": min(lo + i * step, hi) - 1}
        bucket["count"] = int(count)
        out.append(bucket)
    return out


def to_json(name: str, hist: Any, *, indent: Optional[int] = None) -> str:
    """A histogram (or a mapping of keys to histograms) as JSON text:
    ``{"type": "hist", "data": {"@name": buckets}}``; keyed:
    ``{"@name": {"key": buckets, ...}}``."""
    title = name if name.startswith("@") else "@" + name
    if isinstance(hist, Mapping):
        data: Any = {str(k): v.buckets() for k, v in sorted(hist.items())}
    else:
        data = hist.buckets()
    return json.dumps({"type": "hist", "data": {title: data}}, indent=indent)


# ---------------------------------------------------------------------------------------
# Histogram objects
# ---------------------------------------------------------------------------------------

def _read_counts(source: Any, slots: int) -> List[int]:
    if isinstance(source, (list, tuple)):
        counts = [int(c) for c in source]
    elif hasattr(source, "values") and hasattr(source, "keys"):   # an array map
        slots = max(slots, int(getattr(source, "max_entries", 0)))
        counts = [0] * slots
        for key, value in source.items():
            index = int(key.value) if hasattr(key, "value") else int(key)
            if 0 <= index < slots:
                counts[index] = _count_of(value)
    else:
        counts = [int(c) for c in source]
    if len(counts) < slots:
        counts += [0] * (slots - len(counts))
    return counts


def _count_of(value: Any) -> int:
    if isinstance(value, list):            # per-CPU
        return sum(_count_of(v) for v in value)
    if isinstance(value, (bytes, bytearray)):
        return int.from_bytes(value[:8], "little")
    return int(getattr(value, "value", value))


class Log2Histogram:
    """Counts per log2 slot (see the module description). ``counts`` is a sequence or an
    array map (u32 keys, u64 or per-CPU u64 values) to read."""

    kind = "log2"

    def __init__(self, counts: Any = ()) -> None:
        self.counts: List[int] = _read_counts(counts, 0)

    def add(self, value: int, count: int = 1) -> None:
        """Count ``value`` (as the kernel block would)."""
        slot = log2_slot_of(value)
        if slot >= len(self.counts):
            self.counts += [0] * (slot + 1 - len(self.counts))
        self.counts[slot] += count

    def bcc(self, val_type: str = "value", *, strip_leading_zero: bool = False) -> str:
        """BCC's ``print_log2_hist`` layout."""
        return bcc_log2(self.counts, val_type, strip_leading_zero=strip_leading_zero)

    def bpftrace(self, name: str = "@") -> str:
        """bpftrace's ``hist()`` layout."""
        return bpftrace_log2(self.counts, name)

    def buckets(self) -> List[Dict[str, Any]]:
        """The non-empty buckets with inclusive bounds."""
        return log2_buckets(self.counts)

    def json(self, name: str = "@") -> str:
        """JSON text (see :func:`to_json`)."""
        return to_json(name, self)

    @property
    def total(self) -> int:
        """The number of values counted."""
        return sum(self.counts)


class LinearHistogram:
    """Counts per linear slot for ``[lo, hi)`` in steps of ``step``."""

    kind = "linear"

    def __init__(self, lo: int, hi: int, step: int, counts: Any = ()) -> None:
        self.lo, self.hi, self.step = lo, hi, step
        self.nslots = _nlinear(lo, hi, step) + 2
        self.counts: List[int] = _read_counts(counts, self.nslots)

    def add(self, value: int, count: int = 1) -> None:
        """Count ``value``."""
        self.counts[linear_slot_of(value, self.lo, self.hi, self.step)] += count

    def bcc(self, val_type: str = "value", *, strip_leading_zero: bool = False) -> str:
        """BCC's ``print_linear_hist`` layout, rows labelled with each in-range slot's
        lower bound divided by the step (BCC's keys are values); values outside
        ``[lo, hi)`` are not shown."""
        values: List[int] = []
        for i in range(1, self.nslots - 1):
            index = (self.lo + (i - 1) * self.step) // self.step
            if index >= 0:
                while len(values) <= index:
                    values.append(0)
                values[index] += self.counts[i]
        return bcc_linear(values, val_type, strip_leading_zero=strip_leading_zero)

    def bpftrace(self, name: str = "@") -> str:
        """bpftrace's ``lhist()`` layout."""
        return bpftrace_linear(self.counts, self.lo, self.hi, self.step, name)

    def buckets(self) -> List[Dict[str, Any]]:
        """The non-empty buckets with inclusive bounds (None for the open ends)."""
        return linear_buckets(self.counts, self.lo, self.hi, self.step)

    def json(self, name: str = "@") -> str:
        """JSON text (see :func:`to_json`)."""
        return to_json(name, self)

    @property
    def total(self) -> int:
        """The number of values counted."""
        return sum(self.counts)


# ---------------------------------------------------------------------------------------
# Kernel-side building blocks
# ---------------------------------------------------------------------------------------

def _reg(value: Any, what: str) -> Reg:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 9:
        raise ValueError(f"{what} must be one of r0-r9, not {value!r}")
    return Reg(value)


def log2_slot(dst: Reg, src: Reg, tmp: Reg) -> List[Instruction]:
    """Instructions that put the log2 slot of the u64 in ``src`` into ``dst``: 0 for 0,
    else ``floor(log2(src)) + 1``. No loop: six halving steps (32, 16, 8, 4, 2, 1
    bits), 33 instructions. ``src`` is clobbered; ``dst``, ``src`` and ``tmp`` must
    differ. Any kernel (no helper calls)."""
    d, s, t = _reg(dst, "dst"), _reg(src, "src"), _reg(tmp, "tmp")
    if len({d, s, t}) != 3:
        raise ValueError("dst, src and tmp must be three different registers")
    steps: List[Instruction] = []
    for shift in (32, 16, 8, 4, 2, 1):
        steps += [mov(t, s), rsh(t, shift), jeq(t, 0, 2), mov(s, t), add(d, shift)]
    return [mov(d, 0), jeq(s, 0, len(steps) + 1), mov(d, 1)] + steps


def linear_slot(dst: Reg, src: Reg, lo: int, hi: int, step: int) -> List[Instruction]:
    """Instructions that put the linear slot of the u64 in ``src`` (unsigned) for
    ``[lo, hi)`` in steps of ``step`` into ``dst`` (``dst`` != ``src``; ``src`` is
    kept). ``lo`` and ``hi`` must be non-negative 32-bit values. Any kernel (no helper
    calls; ``jlt``/``jge`` with immediates are base instructions)."""
    d, s = _reg(dst, "dst"), _reg(src, "src")
    if d == s:
        raise ValueError("dst and src must differ")
    n = _nlinear(lo, hi, step)
    if not 0 <= lo < hi <= 0x7FFFFFFF:
        raise ValueError("lo and hi must be in 0 .. 2**31-1")
    return [
        mov(d, 0), jlt(s, lo, 6),            # below: slot 0
        mov(d, n + 1), jge(s, hi, 4),        # at or above hi: slot n+1
        mov(d, s), sub(d, lo), div(d, step), add(d, 1),
    ]


def increment_slot(hist: Any, slot: Reg, *, stack_offset: int = -4,
                   count: Union[Reg, int] = 1) -> List[Instruction]:
    """Add ``count`` (1, or a register other than r0-r2) to the u64 at index ``slot``
    of array map ``hist`` (a map object or name): look the slot up and add atomically;
    an index past the map's end is ignored. Uses the 4 stack bytes at ``r10 +
    stack_offset`` and clobbers r0-r5. Any kernel with array maps (Linux 3.19)."""
    sr = _reg(slot, "slot")
    code = [stx(W, Reg.R10, stack_offset, sr), ld_map_fd(Reg.R1, hist),
            mov(Reg.R2, Reg.R10), add(Reg.R2, stack_offset), call("map_lookup_elem")]
    if isinstance(count, int):
        tail = [mov(Reg.R1, count), atomic_add(DW, Reg.R0, 0, Reg.R1)]
    else:
        c = _reg(count, "count")
        if c <= Reg.R5:
            raise ValueError("count must survive the helper call: one of r6-r9")
        tail = [atomic_add(DW, Reg.R0, 0, c)]
    return code + [jeq(Reg.R0, 0, len(tail))] + tail
