"""Prometheus exporters for BPF programs (``pybpf export``).

An exporter module is a pybpf-language file (maps and decorated programs) that also
declares, at the top level, which maps become which metrics::

    from pybpf.dsl import HashMap, tracepoint, u32, u64
    from pybpf.export import Counter, decoders

    counts = HashMap(u32, u64, max_entries=1024)      # syscall number -> calls

    @tracepoint("raw_syscalls:sys_exit")
    def count_exit(args):
        counts[u32(args.id)] += 1
        return 0

    METRICS = [Counter("mytool_syscalls_total", "System calls by name.", counts,
                       labels=[("syscall", decoders.syscall)])]
    CONSTS = {}            # optional: load-time constants for pybpf.dsl.load

``pybpf export FILE`` (or a built-in NAME from :mod:`pybpf.export.builtin`) loads it
and serves the metrics, reading the maps at each scrape. This package needs
``prometheus_client`` only to serve (``pip install 'pybpf[export]'``): the declarations
import nothing beyond the standard library.
"""

from . import decoders
from .metrics import Counter, Gauge, Histogram, Label, Linear

__all__ = ["Counter", "Gauge", "Histogram", "Label", "Linear", "decoders"]
