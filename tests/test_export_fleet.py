"""A fleet of ``pybpf export`` processes behind one Prometheus: two exporters on two
loopback addresses (127.0.0.1 and 127.0.0.2), scraped as two ``instance`` labels, and
the fleet-wide PromQL a dashboard would run over them."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

from tests.promharness import Exporter, Prometheus

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to load BPF programs"),
]
pytest.importorskip("prometheus_client")

OPENS = 31          # the workload's successful opens


@pytest.fixture(scope="module")
def fleet():
    """Two exporters ("host-a" on 127.0.0.1, "host-b" on 127.0.0.2) and a Prometheus
    that labels each with its own ``instance``."""
    exporters = []
    prom = None
    try:
        for host in ("127.0.0.1", "127.0.0.2"):
            exporters.append(Exporter("opens", "syscalls", host=host))
        groups = [{"targets": [exporters[0].address], "labels": {"instance": "host-a"}},
                  {"targets": [exporters[1].address], "labels": {"instance": "host-b"}}]
        prom = Prometheus(static_configs=groups)
        assert prom.wait_for('sum(up{job="pybpf"})', lambda v: v == 2.0) == 2.0, \
            prom.log_text()
        yield prom, [e.address for e in exporters]
    finally:
        if prom is not None:
            prom.stop()
        for exporter in exporters:
            exporter.stop()


def test_two_instances_are_scraped_under_their_own_labels(fleet) -> None:
    prom, addresses = fleet
    by_instance = {r["metric"]["instance"]: float(r["value"][1])
                   for r in prom.query('count by (instance) (up{job="pybpf"})')}
    assert by_instance == {"host-a": 1.0, "host-b": 1.0}
    targets = prom.api("targets")["activeTargets"]
    assert sorted((t["scrapeUrl"], t["labels"]["instance"], t["health"])
                  for t in targets) == sorted([
                      (f"http://{addresses[0]}/metrics", "host-a", "up"),
                      (f"http://{addresses[1]}/metrics", "host-b", "up")])
    # each instance serves its own build info and both exporters' programs
    assert prom.value('count(count by (instance) (pybpf_exporter_build_info))') == 2
    for inst in ("host-a", "host-b"):
        assert prom.value(f'pybpf_exporter_programs_loaded{{instance="{inst}"}}') == 4


def test_fleet_sums_one_workload_seen_twice(fleet) -> None:
    """One process with a unique comm opens /dev/null 31 times. Both exporters trace
    the same kernel, so each instance reports 31 and the fleet-wide sum by comm is
    62: the query a dashboard runs across hosts adds the instances up."""
    prom, _ = fleet
    comm = "pbf" + uuid.uuid4().hex[:10]
    code = ("import ctypes, os, sys\n"
            "ctypes.CDLL(None).prctl(15, sys.argv[1].encode(), 0, 0, 0)\n"
            "for _ in range(int(sys.argv[2])):\n"
            "    os.close(os.open('/dev/null', os.O_RDONLY))\n")
    subprocess.run([sys.executable, "-c", code, comm, str(OPENS)], check=True,
                   timeout=60)
    total = f'sum by (comm) (pybpf_opens_total{{comm="{comm}"}})'
    assert prom.wait_for(total, lambda v: v is not None and v >= 2 * OPENS) == 2 * OPENS
    prom.wait_scrapes(2)                 # later scrapes must not count more
    assert prom.value(total) == 2 * OPENS
    per_instance = {r["metric"]["instance"]: float(r["value"][1]) for r in prom.query(
        f'sum by (instance) (pybpf_opens_total{{comm="{comm}"}})')}
    assert per_instance == {"host-a": OPENS, "host-b": OPENS}
    series = prom.query(f'pybpf_opens_total{{comm="{comm}"}}')
    assert sorted((s["metric"]["instance"], s["metric"]["result"]) for s in series) == \
        [("host-a", "ok"), ("host-b", "ok")]
    assert prom.value(f'count by (comm) (pybpf_opens_total{{comm="{comm}"}})') == 2
