"""Serving the metrics over HTTP: ``prometheus_client``'s WSGI app (which negotiates the
text format 0.0.4 or OpenMetrics from the ``Accept`` header) on a threading stdlib HTTP
server, answering only on the metrics path (anything else is 404)."""

from __future__ import annotations

import errno
import ipaddress
import socket
import threading
from socketserver import ThreadingMixIn
from typing import Any, Callable, Iterable, List, Tuple
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

__all__ = ["DEFAULT_LISTEN", "parse_listen", "require_client", "MetricsServer"]

#: loopback only unless told otherwise
DEFAULT_LISTEN = "127.0.0.1:9435"

MISSING_CLIENT = "pybpf export needs prometheus_client: pip install 'pybpf[export]'"


def require_client() -> None:
    """``ImportError`` with the install hint when ``prometheus_client`` is missing."""
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        raise ImportError(MISSING_CLIENT) from None


def parse_listen(text: str) -> Tuple[str, int, int]:
    """``HOST:PORT`` (an IPv6 host in brackets: ``[::1]:9435``) -> (host, port,
    address family); ``ValueError`` naming the expected form. The host is an IP
    address or ``localhost``."""
    usage = (f"bad --listen address {text!r}: expected HOST:PORT, e.g. 127.0.0.1:9435, "
             "0.0.0.0:9435 or [::1]:9435")
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(usage)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(usage + " (an IPv6 address goes in brackets)")
    if host == "localhost":
        host = "127.0.0.1"
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(usage) from None
    family = socket.AF_INET6 if addr.version == 6 else socket.AF_INET
    return host, int(port_text), family


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:   # no access log
        pass


def _only_path(app: Callable[..., Any], path: str) -> Callable[..., Any]:
    def serve(environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "") != path:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [f"not found: metrics are at {path}\n".encode()]
        return app(environ, start_response)
    return serve


class MetricsServer:
    """An HTTP server for ``registry`` on ``listen`` (``HOST:PORT``) at ``path``. The
    socket is bound when it is made, so a busy port fails before anything is loaded;
    :meth:`start` serves from a thread, :meth:`stop` ends it."""

    def __init__(self, registry: Any, listen: str = DEFAULT_LISTEN,
                 path: str = "/metrics") -> None:
        from prometheus_client import make_wsgi_app
        host, port, family = parse_listen(listen)
        if not path.startswith("/"):
            raise ValueError(f"bad --path {path!r}: it starts with /, e.g. /metrics")

        class Server(ThreadingMixIn, WSGIServer):
            daemon_threads = True
            address_family = family

        try:
            self.httpd = Server((host, port), _Quiet)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise OSError(f"{listen} is in use: stop what listens there or give "
                              "another address with --listen") from None
            if exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
                raise OSError(f"cannot listen on {listen}: no such local address "
                              f"({exc.strerror}); give another with --listen") from None
            if exc.errno == errno.EACCES:
                raise OSError(f"cannot listen on {listen}: permission denied (ports "
                              "below 1024 need privilege); give another with --listen"
                              ) from None
            raise
        self.httpd.set_app(_only_path(make_wsgi_app(registry), path))
        self.path = path
        self.thread: Any = None

    @property
    def address(self) -> str:
        """``host:port`` actually bound (the port chosen when 0 was asked for)."""
        host, port = self.httpd.server_address[:2]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def start(self) -> None:
        """Serve in a daemon thread."""
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.2}, daemon=True,
                                       name="pybpf-export-http")
        self.thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self.thread is not None:
            self.httpd.shutdown()
            self.thread.join(5)
            self.thread = None
        self.httpd.server_close()
