"""The ``prometheus_client`` collector: reads the exporters' maps at scrape time and
turns them into metric families, with the exporter's own health metrics.

Per scrape, each map is read once (:meth:`~pybpf.maps.Map.snapshot`: batch lookups
where the kernel has them, integer keys unpacked in one go, other keys left as their
raw bytes), whatever number of metrics use it. What a key decodes to (its label values,
and a histogram's slot) is cached per metric by the raw key, across scrapes, so a key
is decoded once, not once per scrape; the cache is bounded and starts afresh every
:data:`CACHE_SCRAPES` scrapes (decoders that look names up, such as disks, see
changes). Samples go straight into the metric families, one label dict per series
kept across scrapes. A metric with more label sets than
``max_series`` exports ``max_series`` of them: those it exported at the previous scrape
first (so series do not come and go), then the largest; each scrape adds the number it
left out to ``pybpf_exporter_series_dropped_total{metric=...}``.

``prometheus_client`` is imported when a scrape runs, not when this module is.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from .metrics import Histogram, LabelValues, bucket_bounds, label_values, slot_midpoints
from .module import BoundMetric, ExporterModule

__all__ = ["BPFCollector", "DEFAULT_MAX_SERIES"]

#: the default per-metric series limit
DEFAULT_MAX_SERIES = 10000
#: decoded keys are forgotten after this many scrapes (one hour at a 15 s interval)
CACHE_SCRAPES = 240


class _Snapshot:
    """One map read once in a scrape: parallel ``keys`` (ints, or raw bytes) and
    ``values`` (decoded; per-CPU values as lists), and the ``map`` to decode keys."""

    __slots__ = ("map", "keys", "values")

    def __init__(self, m: Any) -> None:
        self.map = m
        self.keys, self.values = m.snapshot()


class _KeyCache:
    """Per metric: raw key -> what it decodes to, and label values -> label dict."""

    __slots__ = ("decoded", "dicts", "limit")

    def __init__(self, limit: int) -> None:
        self.decoded: Dict[Any, Any] = {}
        self.dicts: Dict[LabelValues, Dict[str, str]] = {}
        self.limit = limit

    def trim(self) -> None:
        if len(self.decoded) > self.limit:
            self.decoded.clear()
        if len(self.dicts) > self.limit:
            self.dicts.clear()


def _go_float(value: float) -> str:
    from prometheus_client.utils import floatToGoString
    return floatToGoString(value)


class BPFCollector:
    """Collects the metrics of loaded :class:`ExporterModule` s (register it with a
    ``prometheus_client.CollectorRegistry``)."""

    def __init__(self, exporters: Sequence[ExporterModule],
                 max_series: int = DEFAULT_MAX_SERIES) -> None:
        if max_series < 1:
            raise ValueError(f"the series limit must be 1 or more, not {max_series}")
        self.exporters = list(exporters)
        self.max_series = max_series
        self.dropped: Dict[str, float] = {}
        self.read_errors: Dict[Tuple[str, str], float] = {}
        self._kept: Dict[str, set] = {}
        self._caches: Dict[Tuple[str, str], _KeyCache] = {}
        self._scrapes = 0
        self._lock = threading.Lock()
        for ex in self.exporters:
            for bm in ex.metrics:
                self.dropped.setdefault(bm.metric.name, 0.0)

    def describe(self) -> List[Any]:
        """Nothing up front: the families are known only once the maps are read."""
        return []

    # -- reading ----------------------------------------------------------------------
    def _read(self, ex: ExporterModule, name: str, cache: Dict[Tuple[str, str], Any]
              ) -> Optional[_Snapshot]:
        key = (ex.name, name)
        if key not in cache:
            try:
                cache[key] = _Snapshot(ex.loaded[name])
            except (OSError, ValueError, KeyError):
                self.read_errors[key] = self.read_errors.get(key, 0.0) + 1
                cache[key] = None
        return cache[key]

    def _cache(self, ex: ExporterModule, bm: BoundMetric) -> _KeyCache:
        key = (ex.name, bm.metric.name)
        kc = self._caches.get(key)
        if kc is None:
            kc = self._caches[key] = _KeyCache(max(4 * self.max_series, 65536))
        return kc

    @staticmethod
    def _numbers(values: List[Any], field: Optional[str]) -> List[Any]:
        """The values as numbers: a Struct value's ``field``, per-CPU lists added up."""
        if field is not None:
            values = [getattr(v, field) for v in values]
        if values and isinstance(values[0], (list, tuple)):
            values = [sum(v) for v in values]
        return values

    def _counter_series(self, bm: BoundMetric, snap: _Snapshot,
                        kc: _KeyCache) -> Dict[LabelValues, Any]:
        m = bm.metric
        decoded = kc.decoded
        decode_key = snap.map.decode_key
        out: Dict[LabelValues, Any] = {}
        get = out.get
        skip = m.skip_zero
        for raw, value in zip(snap.keys, self._numbers(snap.values, m.value)):
            if skip and not value:
                continue
            labels = decoded.get(raw)
            if labels is None:
                key = raw if isinstance(raw, int) else decode_key(raw)
                labels = decoded[raw] = label_values(m.labels, key)
            out[labels] = get(labels, 0) + value
        scale = m.unit_scale
        if scale is not None:
            return {k: float(v) * scale for k, v in out.items()}
        return {k: float(v) for k, v in out.items()}

    def _histogram_series(self, bm: BoundMetric, snap: _Snapshot,
                          kc: _KeyCache) -> Dict[LabelValues, List[float]]:
        m = bm.metric
        assert isinstance(m, Histogram)
        decoded = kc.decoded
        decode_key = snap.map.decode_key
        field = bm.bucket_field
        slots = m.slots
        out: Dict[LabelValues, List[float]] = {}
        for raw, count in zip(snap.keys, self._numbers(snap.values, None)):
            if not count:
                continue
            hit = decoded.get(raw)
            if hit is None:
                key = raw if isinstance(raw, int) else decode_key(raw)
                slot = int(key if field is None else getattr(key, field))
                hit = decoded[raw] = (label_values(m.labels, key),
                                      min(max(slot, 0), slots))
            labels, slot = hit
            counts = out.get(labels)
            if counts is None:
                counts = out[labels] = [0.0] * (slots + 1)
            counts[slot] += count
        return out

    def _limit(self, name: str, series: Dict[LabelValues, Any],
               weight: Any) -> Dict[LabelValues, Any]:
        if len(series) <= self.max_series:
            self._kept[name] = set(series)
            return series
        kept = self._kept.get(name, set())
        chosen = [k for k in series if k in kept][:self.max_series]
        if len(chosen) < self.max_series:
            have = set(chosen)
            rest = sorted((k for k in series if k not in have), key=weight, reverse=True)
            chosen += rest[:self.max_series - len(chosen)]
        self.dropped[name] = self.dropped.get(name, 0.0) + len(series) - len(chosen)
        self._kept[name] = set(chosen)
        return {k: series[k] for k in chosen}

    def _family(self, ex: ExporterModule, bm: BoundMetric,
                cache: Dict[Tuple[str, str], Any]) -> Optional[Any]:
        from prometheus_client.core import (
            CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily,
        )
        from prometheus_client.samples import Sample
        m = bm.metric
        snap = self._read(ex, bm.map_name, cache)
        if snap is None:
            return None
        kc = self._cache(ex, bm)
        names = m.label_names
        dicts = kc.dicts

        def label_dict(labels: LabelValues) -> Dict[str, str]:
            d = dicts.get(labels)
            if d is None:
                d = dicts[labels] = dict(zip(names, labels))
            return d

        if not isinstance(m, Histogram):
            series = self._counter_series(bm, snap, kc)
            series = self._limit(m.name, series, series.__getitem__)
            cls = CounterMetricFamily if m.kind == "counter" else GaugeMetricFamily
            fam = cls(m.name, m.help, labels=names)
            # what add_metric() appends, without its per-sample dict and name building
            name = fam.name + "_total" if m.kind == "counter" else fam.name
            fam.samples.extend([Sample(name, label_dict(labels), value, None, None)
                                for labels, value in series.items()])
            return fam
        hist = self._histogram_series(bm, snap, kc)
        hist = self._limit(m.name, hist, lambda k: sum(hist[k]))
        sums = self._sums(ex, bm, cache)
        bounds = [_go_float(b) for b in bucket_bounds(m)] + ["+Inf"]
        mids = slot_midpoints(m)
        scale = 1.0 if m.unit_scale is None else m.unit_scale
        fam = HistogramMetricFamily(m.name, m.help, labels=m.label_names)
        for labels, counts in hist.items():
            running, buckets = 0.0, []
            for bound, count in zip(bounds, counts):
                running += count
                buckets.append((bound, running))
            buckets[-1] = ("+Inf", running)
            if sums is not None:
                total = sums.get(labels, 0.0)
            else:
                total = sum(c * mid for c, mid in zip(counts, mids))
            fam.add_metric(list(labels), buckets, total * scale)
        return fam

    def _sums(self, ex: ExporterModule, bm: BoundMetric,
              cache: Dict[Tuple[str, str], Any]) -> Optional[Dict[LabelValues, float]]:
        if bm.sum_map is None:
            return None
        snap = self._read(ex, bm.sum_map, cache)
        out: Dict[LabelValues, float] = {}
        if snap is None:
            return out
        labelled = bool(bm.metric.labels)
        for raw, v in zip(snap.keys, self._numbers(snap.values, None)):
            if labelled:
                key = raw if isinstance(raw, int) else snap.map.decode_key(raw)
                labels = label_values(bm.metric.labels, key)
            else:
                labels = ()
            out[labels] = out.get(labels, 0.0) + float(v)
        return out

    # -- the scrape -------------------------------------------------------------------
    def collect(self) -> Iterable[Any]:
        """One scrape: every declared metric, then the health metrics."""
        from prometheus_client.core import (
            CounterMetricFamily, GaugeMetricFamily,
        )
        start = time.perf_counter()
        families: List[Any] = []
        with self._lock:
            self._scrapes += 1
            for kc in self._caches.values():
                if self._scrapes % CACHE_SCRAPES == 0:
                    kc.decoded.clear()
                    kc.dicts.clear()
                else:
                    kc.trim()
            cache: Dict[Tuple[str, str], Any] = {}
            for ex in self.exporters:
                if ex.loaded is None or ex.loaded.closed:
                    continue
                for bm in ex.metrics:
                    fam = self._family(ex, bm, cache)
                    if fam is not None:
                        families.append(fam)
            dropped = CounterMetricFamily(
                "pybpf_exporter_series_dropped", "Series left out because a metric had "
                "more label sets than --max-series, summed over scrapes.",
                labels=["metric"])
            for name, count in sorted(self.dropped.items()):
                dropped.add_metric([name], count)
            errors = CounterMetricFamily(
                "pybpf_exporter_map_read_errors", "Failed reads of a BPF map during "
                "scrapes.", labels=["exporter", "map"])
            for ex in self.exporters:
                for bm in ex.metrics:
                    for name in (bm.map_name, bm.sum_map):
                        if name is not None:
                            self.read_errors.setdefault((ex.name, name), 0.0)
            for (ex_name, map_name), count in sorted(self.read_errors.items()):
                errors.add_metric([ex_name, map_name], count)
        lost = CounterMetricFamily(
            "pybpf_exporter_lost_events", "Records of a ring buffer or perf buffer that "
            "never reached user space.", labels=["exporter", "map"])
        programs = 0
        for ex in self.exporters:
            if ex.loaded is None or ex.loaded.closed:
                continue
            programs += len(ex.loaded.programs)
            for name in ex.event_maps():
                lost.add_metric([ex.name, name], float(ex.loaded.lost(name)))
        loaded = GaugeMetricFamily("pybpf_exporter_programs_loaded",
                                   "BPF programs this exporter has loaded.", programs)
        from .. import __version__
        build = GaugeMetricFamily("pybpf_exporter_build_info", "The pybpf version and "
                                  "the running kernel (always 1).",
                                  labels=["version", "kernel"])
        build.add_metric([__version__, os.uname().release], 1)
        families += [dropped, errors, lost, loaded, build]
        families.append(GaugeMetricFamily(
            "pybpf_exporter_scrape_duration_seconds", "Time this scrape took to read the "
            "maps and build the metrics.", time.perf_counter() - start))
        return families
