"""Metric declarations for exporter modules: :class:`Counter`, :class:`Gauge` and
:class:`Histogram`, each naming the map it reads and how the map's key becomes labels.

Plain data and pure functions (standard library only): :func:`counter_series` and
:func:`histogram_series` turn ``(key, value)`` pairs read from a map into Prometheus
series, so they can be checked without a kernel. The collector
(:mod:`pybpf.export.collector`) reads the maps and hands the series to
``prometheus_client``.

Labels
------
``labels`` is a list; each entry is one of

* ``"name"``: the label ``name`` is the key field ``name`` (or the whole key when the
  key is a scalar), shown with ``str()`` (bytes as text up to the first NUL);
* ``("name", decoder)``: the same, shown with ``decoder(value)``;
* ``("name", "field")`` or ``("name", "field", decoder)``: the label ``name`` comes from
  key field ``field``.

Key fields that no label names are summed away: two keys that differ only there (or
whose labels decode to the same text) make one series whose value is their sum.

Histograms
----------
The bucket is the key's last field (a ``Struct`` key: ``bucket_field`` names another),
or the whole key of an ``ArrayMap``/``Histogram`` map. With ``buckets="log2"`` slot
``i`` holds the values ``v`` with ``v.bit_length() == i`` (what ``log2(v)`` gives in a
program: slot 0 is the value 0, slot ``i`` is ``[2**(i-1), 2**i)``), exported as the
bucket ``le = 2**i * unit_scale``. With ``buckets=Linear(step, count)`` slot ``i``
holds ``[i*step, (i+1)*step)``, exported as ``le = (i+1)*step * unit_scale``. Slots past
the last bucket count only in ``+Inf``. ``_count`` is the number of values. ``_sum``
is exact when ``sum_map`` names a map holding the sum of the raw values per label set
(keyed by the same label fields, or any key for a histogram without labels); without
it, ``_sum`` is an estimate that puts every value at its slot's midpoint (slot 0: 0).
"""

from __future__ import annotations

import re
from typing import Any, Callable, Dict, Iterable, List, NamedTuple, Optional, Sequence, \
    Tuple, Union

__all__ = ["Label", "Linear", "Metric", "Counter", "Gauge", "Histogram",
           "label_of", "counter_series", "histogram_series", "bucket_bounds",
           "slot_midpoints"]

#: a label decoder: the raw key field (an int or bytes) -> the label's text
Decoder = Callable[[Any], str]
#: a label value tuple (one string per label, in the declared order)
LabelValues = Tuple[str, ...]

_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


class Label(NamedTuple):
    """One label: its ``name``, the key ``field`` it comes from (None: the field called
    ``name``, or the whole key when the key is a scalar) and its ``decoder``."""

    name: str
    field: Optional[str] = None
    decoder: Optional[Decoder] = None


class Linear(NamedTuple):
    """Linear histogram buckets: ``count`` slots of width ``step`` starting at 0."""

    step: float
    count: int


def label_of(entry: Union[str, Sequence[Any], Label]) -> Label:
    """The :class:`Label` an entry of a ``labels=`` list stands for (see the module
    docstring); ``ValueError`` for anything else."""
    if isinstance(entry, Label):
        out = entry
    elif isinstance(entry, str):
        out = Label(entry)
    elif isinstance(entry, (tuple, list)) and 1 <= len(entry) <= 3 \
            and isinstance(entry[0], str):
        rest = list(entry[1:])
        field = rest.pop(0) if rest and isinstance(rest[0], str) else None
        decoder = rest.pop(0) if rest else None
        if rest or (decoder is not None and not callable(decoder)):
            raise ValueError(f"bad label {entry!r}: write 'name', (name, decoder), "
                             "(name, field) or (name, field, decoder)")
        out = Label(entry[0], field, decoder)
    else:
        raise ValueError(f"bad label {entry!r}: write 'name', (name, decoder), "
                         "(name, field) or (name, field, decoder)")
    if not _LABEL.match(out.name) or out.name.startswith("__") or out.name == "le":
        raise ValueError(f"bad label name {out.name!r}: letters, digits and _, not "
                         "starting with a digit or __, and not 'le'")
    return out


class Metric:
    """What every declaration has: the metric ``name``, its ``help`` text, the ``map``
    it reads (the map declared in the module, or its name), its ``labels``, the Struct
    field of a Struct value to read (``value``), ``unit_scale`` (values are multiplied
    by it; None: exported as they are) and ``skip_zero`` (True: keys whose value is 0
    make no series, for an array indexed by a sparse number such as a syscall's, where
    every index exists from the start; a hash map has a key only once it was counted)."""

    kind = "untyped"

    def __init__(self, name: str, help: str, map: Any,
                 labels: Iterable[Union[str, Sequence[Any], Label]] = (), *,
                 value: Optional[str] = None,
                 unit_scale: Optional[float] = None, skip_zero: bool = False) -> None:
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(f"bad metric name {name!r}: letters, digits, _ and :, not "
                             "starting with a digit")
        if not isinstance(help, str) or not help:
            raise ValueError(f"metric {name}: give a help text")
        self.name = name
        self.help = help
        self.map = map
        self.labels: List[Label] = [label_of(e) for e in labels]
        names = [lab.name for lab in self.labels]
        if len(set(names)) != len(names):
            raise ValueError(f"metric {name}: a label name is used twice ({names})")
        self.value = value
        self.unit_scale = unit_scale
        self.skip_zero = bool(skip_zero)

    @property
    def label_names(self) -> List[str]:
        """The label names, in order."""
        return [lab.name for lab in self.labels]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class Counter(Metric):
    """A counter: each map value is a running total (``m[k] += 1`` in a program).
    Prometheus names it ``NAME`` with ``_total`` (added if missing)."""

    kind = "counter"


class Gauge(Metric):
    """A gauge: each map value is a current level that may go down."""

    kind = "gauge"


class Histogram(Metric):
    """A histogram filled by a program (``hist[log2(v)] += 1``, or a hash map whose key
    ends with the slot); see the module docstring for buckets, ``_sum`` and
    ``sum_map``. ``slots`` bounds the log2 buckets exported (64: all of them)."""

    kind = "histogram"

    def __init__(self, name: str, help: str, map: Any,
                 labels: Iterable[Union[str, Sequence[Any], Label]] = (), *,
                 buckets: Union[str, Linear] = "log2",
                 unit_scale: Optional[float] = None,
                 bucket_field: Optional[str] = None,
                 sum_map: Any = None, slots: int = 64) -> None:
        super().__init__(name, help, map, labels, unit_scale=unit_scale)
        if buckets != "log2" and not isinstance(buckets, Linear):
            raise ValueError(f"metric {name}: buckets is 'log2' or Linear(step, count), "
                             f"not {buckets!r}")
        if isinstance(buckets, Linear) and (buckets.step <= 0 or buckets.count < 1):
            raise ValueError(f"metric {name}: Linear needs a positive step and count")
        if not 1 <= slots <= 65:
            raise ValueError(f"metric {name}: slots is 1..65, not {slots}")
        self.buckets = buckets
        self.bucket_field = bucket_field
        self.sum_map = sum_map
        self.slots = buckets.count if isinstance(buckets, Linear) else slots


# ----------------------------------------------------------------------------------------
# from map contents to series
# ----------------------------------------------------------------------------------------

def _text(raw: Any) -> str:
    if isinstance(raw, (bytes, bytearray)):
        cut = raw.find(b"\0")
        return bytes(raw if cut < 0 else raw[:cut]).decode("utf-8", "replace")
    return str(int(raw)) if isinstance(raw, bool) else str(raw)


def _number(value: Any, field: Optional[str]) -> float:
    if field is not None:
        value = getattr(value, field)
    if isinstance(value, (list, tuple)):          # per-CPU values
        return float(sum(_number(v, None) for v in value))
    return float(value)


def _field(key: Any, lab: Label) -> Any:
    if lab.field is None and isinstance(key, (int, bytes)):
        return key
    return getattr(key, lab.field or lab.name)


def label_values(labels: Sequence[Label], key: Any) -> LabelValues:
    """The label texts of one map key."""
    return tuple((lab.decoder or _text)(_field(key, lab)) for lab in labels)


def counter_series(metric: Metric, items: Iterable[Tuple[Any, Any]]
                   ) -> Dict[LabelValues, float]:
    """``{label values: value}`` for a counter or gauge, keys that decode to the same
    labels summed, values scaled by ``unit_scale``."""
    out: Dict[LabelValues, float] = {}
    skip = metric.skip_zero
    for key, value in items:
        number = _number(value, metric.value)
        if skip and not number:
            continue
        labels = label_values(metric.labels, key)
        out[labels] = out.get(labels, 0.0) + number
    if metric.unit_scale is not None:
        out = {k: v * metric.unit_scale for k, v in out.items()}
    return out


def histogram_series(metric: Histogram, items: Iterable[Tuple[Any, Any]],
                     bucket_field: Optional[str]) -> Dict[LabelValues, List[float]]:
    """``{label values: [count per slot]}`` (``metric.slots`` slots plus one for the
    values past the last bucket) from ``(key, count)`` pairs; ``bucket_field`` is the
    key field holding the slot (None: the key is the slot)."""
    out: Dict[LabelValues, List[float]] = {}
    for key, value in items:
        slot = int(key if bucket_field is None else getattr(key, bucket_field))
        count = _number(value, None)
        if not count:
            continue
        labels = label_values(metric.labels, key)
        counts = out.get(labels)
        if counts is None:
            counts = out[labels] = [0.0] * (metric.slots + 1)
        counts[min(max(slot, 0), metric.slots)] += count
    return out


def bucket_bounds(metric: Histogram) -> List[float]:
    """The upper bound (``le``) of each slot's bucket, scaled."""
    scale = 1.0 if metric.unit_scale is None else metric.unit_scale
    if isinstance(metric.buckets, Linear):
        return [(i + 1) * metric.buckets.step * scale for i in range(metric.slots)]
    return [float(2 ** i) * scale for i in range(metric.slots)]


def slot_midpoints(metric: Histogram) -> List[float]:
    """The value that stands for each slot in an estimated ``_sum`` (unscaled): a log2
    slot's midpoint (``1.5 * 2**(i-1)``, 0 for slot 0), a linear slot's centre; the
    overflow slot counts at the last bucket's bound."""
    if isinstance(metric.buckets, Linear):
        step = metric.buckets.step
        mids = [(i + 0.5) * step for i in range(metric.slots)]
        return mids + [metric.slots * step]
    mids = [0.0] + [1.5 * 2 ** (i - 1) for i in range(1, metric.slots)]
    return mids + [float(2 ** metric.slots) if metric.slots < 65 else 2.0 ** 64]
