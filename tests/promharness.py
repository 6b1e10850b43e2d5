"""A real Prometheus server for tests: on 127.0.0.1 with a free port, a temporary TSDB,
and a 1 s scrape interval over the given targets (loopback addresses only). Use it as
a context manager (or the ``prometheus`` fixture of tests/test_export.py): the server
is always stopped and its directory removed."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import weakref
from typing import Dict, Iterator, List, Optional, Sequence, Tuple


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def is_loopback(target: str) -> bool:
    """Whether ``HOST:PORT`` names a loopback address (127.0.0.0/8 or [::1])."""
    host = target.rpartition(":")[0].strip("[]")
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Prometheus:
    """``prometheus`` scraping ``targets`` (``127.0.0.1:PORT`` strings) every second as
    job ``pybpf``; or, given ``static_configs`` (a list of ``{"targets": [...],
    "labels": {...}}``), those groups instead; ``rule_files`` are evaluated every
    second. Loopback targets only."""

    def __init__(self, targets: Sequence[str] = (), binary: str = "prometheus",
                 static_configs: Optional[List[Dict]] = None,
                 rule_files: Sequence[str] = ()) -> None:
        groups = static_configs if static_configs is not None else \
            [{"targets": list(targets)}]
        for group in groups:
            for t in group["targets"]:
                if not is_loopback(t):
                    raise ValueError(f"the harness scrapes loopback targets only, not {t}")
        self.dir = tempfile.mkdtemp(prefix="pybpf-prom-")
        self.port = free_port()
        config = {"global": {"scrape_interval": "1s", "scrape_timeout": "1s",
                             "evaluation_interval": "1s"},
                  "scrape_configs": [{"job_name": "pybpf",
                                      "static_configs": groups}]}
        if rule_files:
            config["rule_files"] = [os.path.abspath(f) for f in rule_files]
        path = f"{self.dir}/prometheus.yml"
        with open(path, "w") as f:
            json.dump(config, f)                     # JSON is YAML
        self.log = open(f"{self.dir}/log", "w+")
        self.proc = subprocess.Popen(
            [binary, f"--config.file={path}", f"--storage.tsdb.path={self.dir}/data",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while not self._ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError("prometheus did not start: " + self.log_text())
            time.sleep(0.2)

    def log_text(self) -> str:
        """The server's log so far."""
        try:
            with open(f"{self.dir}/log") as f:
                return f.read()[-3000:]
        except OSError:
            return ""

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready",
                                        timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def api(self, endpoint: str, **params: str) -> Dict:
        """GET ``/api/v1/ENDPOINT`` and return ``data`` (AssertionError on an error)."""
        url = f"http://127.0.0.1:{self.port}/api/v1/{endpoint}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=10) as r:
            body = json.load(r)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> List[Dict]:
        """The instant vector of ``expr``: a list of ``{"metric": {...}, "value":
        [t, "v"]}``."""
        return self.api("query", query=expr)["result"]

    def value(self, expr: str) -> Optional[float]:
        """The single value of ``expr``, or None when the vector is empty."""
        result = self.query(expr)
        assert len(result) <= 1, result
        return float(result[0]["value"][1]) if result else None

    def wait_for(self, expr: str, predicate, timeout: float = 30.0) -> Optional[float]:
        """Poll ``value(expr)`` until ``predicate(value)``; returns the last value."""
        deadline = time.monotonic() + timeout
        while True:
            v = self.value(expr)
            if predicate(v) or time.monotonic() > deadline:
                return v
            time.sleep(0.3)

    def wait_scrapes(self, count: int = 2, timeout: float = 30.0) -> None:
        """Wait until every target was scraped ``count`` more times."""
        def last() -> float:
            r = self.query("timestamp(up)")
            return min(float(x["value"][1]) for x in r) if r else 0.0
        start = last()
        deadline = time.monotonic() + timeout
        while last() < start + count * 0.99 and time.monotonic() < deadline:
            time.sleep(0.3)

    def stop(self) -> None:
        """Stop the server and remove its directory (idempotent)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "Prometheus":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()


class Exporter:
    """``pybpf export ARGS --listen HOST:PORT`` (this checkout's pybpf), running once it
    has printed its banner naming the address. ``prefix`` runs it under another command
    (``setpriv ...``). Killed when collected if still running."""

    def __init__(self, *args: str, host: str = "127.0.0.1", timeout: float = 60.0,
                 prefix: Sequence[str] = ()) -> None:
        from tests.progrun import ROOT, env
        self.port = free_port()
        self.address = f"{host}:{self.port}"
        argv = [*prefix, sys.executable, "-m", "pybpf", "export", *args,
                "--listen", self.address]
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=env(), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.pid = self.proc.pid
        weakref.finalize(self, _kill, self.proc)
        deadline = time.monotonic() + timeout
        line = ""
        while "Serving" not in line:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                _kill(self.proc)
                raise AssertionError(f"no banner from {argv}: {self.proc.stderr.read()}")
            if select.select([self.proc.stdout], [], [], 0.5)[0]:
                line = self.proc.stdout.readline()
        assert self.address in line, line

    def fetch(self, path: str = "/metrics", accept: str = "") -> tuple:
        """(status, content type, body) of a GET."""
        req = urllib.request.Request(f"http://{self.address}{path}",
                                     headers={"Accept": accept} if accept else {})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.headers["Content-Type"], r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers["Content-Type"], exc.read().decode()

    def metrics(self) -> str:
        """The text of ``/metrics``."""
        return self.fetch()[2]

    def stop(self, sig: int = signal.SIGTERM) -> tuple:
        """Send ``sig`` and wait: (exit status, stdout, stderr)."""
        self.proc.send_signal(sig)
        out, err = self.proc.communicate(timeout=60)
        return self.proc.returncode, out, err


@contextlib.contextmanager
def serving(*args: str, timeout: float = 60.0) -> Iterator[Tuple[Exporter, "Prometheus"]]:
    """``pybpf export ARGS`` scraped by a Prometheus, both up; both stopped after."""
    exporter = Exporter(*args, timeout=timeout)
    prom = Prometheus([exporter.address])
    try:
        assert prom.wait_for('up{job="pybpf"}', lambda v: v == 1.0) == 1.0, prom.log_text()
        yield exporter, prom
    finally:
        prom.stop()
        exporter.stop()
