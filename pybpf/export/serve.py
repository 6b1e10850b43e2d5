"""Running exporters until SIGTERM/SIGINT: what ``pybpf export`` does."""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any, List, Sequence

from .module import ExporterModule, find_exporter

__all__ = ["serve"]


def serve(targets: Sequence[str], *, listen: str, path: str = "/metrics",
          max_series: int = 10000) -> int:
    """Bind ``listen`` (so a busy port fails before anything is loaded), load the
    exporters ``targets`` names, serve until SIGTERM or SIGINT, then stop serving and
    detach everything; returns 0."""
    from prometheus_client import CollectorRegistry

    from .collector import BPFCollector
    from .server import MetricsServer
    stop = threading.Event()
    saved = {}

    def request(signum: int, frame: Any) -> None:
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        saved[signum] = signal.signal(signum, request)
    exporters: List[ExporterModule] = []
    server = None
    try:
        exporters = [find_exporter(t) for t in targets]
        names = [e.name for e in exporters]
        if len(set(names)) != len(names):
            raise ValueError(f"an exporter is named twice: {', '.join(names)}")
        registry = CollectorRegistry(auto_describe=False)
        server = MetricsServer(registry, listen, path)
        for ex in exporters:
            if stop.is_set():
                break
            ex.load()
        registry.register(BPFCollector(exporters, max_series=max_series))
        if not stop.is_set():
            server.start()
            print(f"Serving {', '.join(names)} on http://{server.address}{path} "
                  "(Ctrl-C or SIGTERM to stop)", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        if server is not None:
            server.stop()
        for ex in exporters:
            ex.close()
        for signum, handler in saved.items():
            signal.signal(signum, handler)
    return 0
