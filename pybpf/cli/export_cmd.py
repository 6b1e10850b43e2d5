"""``pybpf export [NAME|FILE ...]``: load exporter modules and serve their maps as
Prometheus metrics (:mod:`pybpf.export`)."""

from __future__ import annotations

import argparse
import sys

from pybpf.cli.common import add_parser, examples

__all__ = ["register", "run"]

EXAMPLES = examples(
    ("pybpf export --list", "the built-in exporters"),
    ("pybpf export syscalls opens", "serve both on http://127.0.0.1:9435/metrics"),
    ("pybpf export ./mine.py --listen 0.0.0.0:9500", "your exporter module, on every "
                                                     "interface"),
    ("pybpf export syscalls --listen '[::1]:9435'", "IPv6 loopback"),
    ("pybpf export opens --max-series 500", "at most 500 series per metric"),
    note="An exporter module is a pybpf-language file with METRICS = [Counter(...),\n"
         "Gauge(...), Histogram(...)] next to its maps (see pybpf.export). Maps are read\n"
         "at each scrape; series past --max-series are left out and counted in\n"
         "pybpf_exporter_series_dropped_total. SIGTERM or Ctrl-C detaches everything\n"
         "and exits 0. Needs prometheus_client: pip install 'pybpf[export]'.")


def register(sub: "argparse._SubParsersAction") -> None:
    """Add the ``export`` subcommand."""
    p = add_parser(sub, "export", help="serve BPF maps as Prometheus metrics",
                   description="Load exporter modules (built-in NAMEs or FILEs) and serve "
                               "their metrics over HTTP for Prometheus.",
                   epilog=EXAMPLES)
    p.add_argument("targets", nargs="*", metavar="NAME|FILE",
                   help="a built-in exporter (--list) or an exporter module file")
    p.add_argument("--listen", default="127.0.0.1:9435", metavar="HOST:PORT",
                   help="address to serve on (default 127.0.0.1:9435, loopback only)")
    p.add_argument("--path", default="/metrics",
                   help="the metrics path; others answer 404 (default /metrics)")
    p.add_argument("--list", action="store_true", help="list the built-in exporters")
    p.add_argument("--max-series", type=int, default=10000, metavar="N",
                   help="series per metric at most (default 10000)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Handler of ``pybpf export``."""
    from pybpf.cli import CliError
    from pybpf.export.module import builtin_exporters
    if args.list:
        names = builtin_exporters()
        width = max(len(n) for n, _ in names)
        for name, doc in names:
            text = doc.split(":", 1)[1].strip() if doc.startswith(name + ":") else doc
            print(f"{name:<{width}}  {text}")
        return 0
    if not args.targets:
        raise CliError("name an exporter or a FILE (pybpf export --list shows the "
                       "built-in ones)")
    if args.max_series < 1:
        raise CliError(f"--max-series must be 1 or more, not {args.max_series}")
    from pybpf.export.server import require_client
    try:
        require_client()
    except ImportError as exc:
        raise CliError(str(exc)) from None
    from pybpf.export.serve import serve
    return serve(args.targets, listen=args.listen, path=args.path,
                 max_series=args.max_series)
