"""Exporter modules: finding them (a built-in NAME or a FILE), importing them, checking
their ``METRICS`` against their maps, and loading their programs.

An exporter module is a file in the pybpf language (maps and decorated programs, as in
``programs/``) with a module-level ``METRICS = [...]`` list of :mod:`pybpf.export.metrics`
declarations and, optionally, ``CONSTS = {...}``: the load-time constants passed to
:func:`pybpf.dsl.load`. Its docstring's first line is what ``pybpf export --list``
shows.
"""

from __future__ import annotations

import importlib
import os
import sys
import types
from typing import Any, Dict, List, Optional, Tuple

from .metrics import Histogram, Metric

__all__ = ["BUILTIN_PACKAGE", "builtin_exporters", "ExporterModule", "BoundMetric",
           "find_exporter"]

#: where the built-in exporters live, one module each
BUILTIN_PACKAGE = "pybpf.export.builtin"


def builtin_exporters() -> List[Tuple[str, str]]:
    """``(name, first docstring line)`` of each built-in exporter, sorted by name."""
    import ast
    folder = os.path.join(os.path.dirname(os.path.abspath(__file__)), "builtin")
    out = []
    for entry in sorted(os.listdir(folder)):
        if not entry.endswith(".py") or entry.startswith("_"):
            continue
        with open(os.path.join(folder, entry)) as f:
            doc = ast.get_docstring(ast.parse(f.read())) or ""
        out.append((entry[:-3], (doc.strip().splitlines() or [""])[0]))
    return out


class BoundMetric:
    """A metric checked against its module: the ``map_name`` it reads, the key field
    holding a histogram's slot (``bucket_field``, None for a scalar key) and the name
    of its ``sum_map``."""

    def __init__(self, metric: Metric, map_name: str, bucket_field: Optional[str],
                 sum_map: Optional[str]) -> None:
        self.metric = metric
        self.map_name = map_name
        self.bucket_field = bucket_field
        self.sum_map = sum_map


class ExporterModule:
    """One exporter: its ``name``, the imported Python ``module``, its ``metrics`` bound
    to its maps, its ``consts``, and once :meth:`load` ran, the ``loaded`` module."""

    def __init__(self, name: str, module: types.ModuleType) -> None:
        self.name = name
        self.module = module
        declared = getattr(module, "METRICS", None)
        where = getattr(module, "__file__", name)
        if not isinstance(declared, (list, tuple)) or not declared:
            raise ValueError(f"{where}: no METRICS list: an exporter module declares "
                             "METRICS = [Counter(...), ...] next to its programs "
                             "(pybpf export --help shows the pattern)")
        for m in declared:
            if not isinstance(m, Metric):
                raise ValueError(f"{where}: METRICS holds {m!r}, not a Counter, Gauge "
                                 "or Histogram")
        consts = getattr(module, "CONSTS", None) or {}
        if not isinstance(consts, dict):
            raise ValueError(f"{where}: CONSTS must be a dict of constant name -> int")
        self.consts: Dict[str, int] = dict(consts)
        from ..dsl.maps import MapDecl
        self._decls: Dict[str, Any] = {k: v for k, v in vars(module).items()
                                       if isinstance(v, MapDecl)}
        self.metrics = [self._bind(m) for m in declared]
        self.loaded: Any = None

    # -- checking ---------------------------------------------------------------------
    def _map_name(self, metric: Metric, ref: Any, what: str) -> str:
        if isinstance(ref, str):
            if ref not in self._decls:
                raise ValueError(f"exporter {self.name}: metric {metric.name}: no map "
                                 f"{ref!r} (maps: {', '.join(self._decls) or 'none'})")
            return ref
        for name, decl in self._decls.items():
            if decl is ref:
                return name
        raise ValueError(f"exporter {self.name}: metric {metric.name}: its {what} is not a "
                         "map declared at the top level of the module")

    def _bind(self, metric: Metric) -> BoundMetric:
        from ..dsl.structs import fields_of
        map_name = self._map_name(metric, metric.map, "map")
        decl = self._decls[map_name]
        if not getattr(decl, "keyed", True) or decl.key is None:
            raise ValueError(f"exporter {self.name}: metric {metric.name}: map {map_name} "
                             "has no keys to read (use a hash or array map)")
        try:
            fields = list(fields_of(decl.key))
        except (TypeError, AttributeError, KeyError):
            fields = []
        where = f"exporter {self.name}: metric {metric.name}: map {map_name}"
        bucket = None
        if isinstance(metric, Histogram):
            if fields:
                bucket = metric.bucket_field or fields[-1]
                if bucket not in fields:
                    raise ValueError(f"{where} has no key field {bucket!r} (fields: "
                                     f"{', '.join(fields)})")
            elif metric.bucket_field:
                raise ValueError(f"{where} has a scalar key: it is the slot, drop "
                                 "bucket_field")
        for lab in metric.labels:
            if fields:
                field = lab.field or lab.name
                if field not in fields:
                    raise ValueError(f"{where} has no key field {field!r} for label "
                                     f"{lab.name!r} (fields: {', '.join(fields)})")
                if field == bucket:
                    raise ValueError(f"{where}: field {field!r} is the histogram's "
                                     "slot; it cannot be a label too")
            elif bucket is None and isinstance(metric, Histogram):
                raise ValueError(f"{where}: its scalar key is the slot, so the "
                                 "histogram can have no labels")
            elif lab.field is not None:
                raise ValueError(f"{where} has a scalar key, no field {lab.field!r}")
        if not fields and len(metric.labels) > 1:
            raise ValueError(f"{where} has a scalar key: give one label at most")
        if metric.value is not None and metric.value not in fields_of(decl.value):
            raise ValueError(f"{where}: its value has no field {metric.value!r}")
        sum_map = None
        if isinstance(metric, Histogram) and metric.sum_map is not None:
            sum_map = self._map_name(metric, metric.sum_map, "sum_map")
        return BoundMetric(metric, map_name, bucket, sum_map)

    # -- life ---------------------------------------------------------------------------
    def load(self) -> Any:
        """Compile, load and attach the module's programs (:func:`pybpf.dsl.load` with
        ``CONSTS``); returns the :class:`~pybpf.dsl.loader.LoadedModule`."""
        from ..dsl import load
        name = self.module.__name__
        added = name not in sys.modules
        if added:
            sys.modules[name] = self.module
        try:
            self.loaded = load(self.module, consts=self.consts or None)
        finally:
            if added:
                sys.modules.pop(name, None)
        return self.loaded

    def event_maps(self) -> List[str]:
        """The module's ring buffers and perf event arrays (their losses are exported)."""
        from ..dsl.maps import PerfEventArray, RingBuf
        return [n for n, d in self._decls.items() if isinstance(d, (RingBuf, PerfEventArray))]

    def close(self) -> None:
        """Detach and release everything :meth:`load` made (idempotent)."""
        if self.loaded is not None:
            self.loaded.close()


def _import_file(path: str) -> types.ModuleType:
    from ..dsl.userfile import import_user_file
    module: types.ModuleType = import_user_file(path, "_pybpf_export_")
    return module


def find_exporter(target: str) -> ExporterModule:
    """The exporter ``target`` names: a file (a path that exists, or one with ``/`` or
    ending in ``.py``) or a built-in name; ``LookupError`` listing the built-in names
    when there is none."""
    if os.path.isfile(target):
        return ExporterModule(os.path.splitext(os.path.basename(target))[0],
                              _import_file(target))
    if "/" in target or target.endswith(".py"):
        raise FileNotFoundError(f"no such file: {target}")
    names = [n for n, _ in builtin_exporters()]
    if target not in names:
        raise LookupError(f"no exporter named {target!r} (built-in: {', '.join(names)}; "
                          "or give a FILE)")
    return ExporterModule(target, importlib.import_module(f"{BUILTIN_PACKAGE}.{target}"))
