"""The ``prometheus_client`` collector: reads the exporters' maps at scrape time and
turns them into metric families, with the exporter's own health metrics.

Per scrape, each map is read once (``items()``: batch lookups where the kernel has
them), whatever number of metrics use it. A metric with more label sets than
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

from .metrics import (
    Histogram, LabelValues, bucket_bounds, counter_series, histogram_series,
    label_values, slot_midpoints,
)
from .module import BoundMetric, ExporterModule

__all__ = ["BPFCollector", "DEFAULT_MAX_SERIES"]

#: the default per-metric series limit
DEFAULT_MAX_SERIES = 10000


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
        self._lock = threading.Lock()
        for ex in self.exporters:
            for bm in ex.metrics:
                self.dropped.setdefault(bm.metric.name, 0.0)

    def describe(self) -> List[Any]:
        """Nothing up front: the families are known only once the maps are read."""
        return []

    # -- reading ----------------------------------------------------------------------
    def _items(self, ex: ExporterModule, name: str, cache: Dict[Tuple[str, str], Any]
               ) -> Optional[List[Tuple[Any, Any]]]:
        key = (ex.name, name)
        if key not in cache:
            try:
                cache[key] = list(ex.loaded[name].items())
            except (OSError, ValueError, KeyError):
                self.read_errors[key] = self.read_errors.get(key, 0.0) + 1
                cache[key] = None
        return cache[key]

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
        m = bm.metric
        items = self._items(ex, bm.map_name, cache)
        if items is None:
            return None
        if not isinstance(m, Histogram):
            series = counter_series(m, items)
            series = self._limit(m.name, series, lambda k: series[k])
            cls = CounterMetricFamily if m.kind == "counter" else GaugeMetricFamily
            fam = cls(m.name, m.help, labels=m.label_names)
            for labels, value in series.items():
                fam.add_metric(list(labels), value)
            return fam
        hist = histogram_series(m, items, bm.bucket_field)
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
        items = self._items(ex, bm.sum_map, cache) or []
        out: Dict[LabelValues, float] = {}
        for key, value in items:
            labels = label_values(bm.metric.labels, key) if bm.metric.labels else ()
            v = value if not isinstance(value, (list, tuple)) else sum(value)
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
