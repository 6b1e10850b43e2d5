#!/usr/bin/env python3
"""pybpf export: scrape time, idle CPU, memory and the cost to a traced workload
(needs root, gcc and prometheus_client).

usage: sudo python3 benchmarks/export.py [--series 10000] [--scrapes 20]
                                         [--idle-seconds 30] [--calls 2000000]
                                         [--rounds 5] [--write-results]

(a) **Scrape time**: a synthetic exporter file (one hash map, one counter with one
    label) is served by ``pybpf export FILE``; the benchmark then finds the map through
    the exporter's file descriptors and fills it from user space with ``--series`` keys,
    and times ``--scrapes`` GETs of /metrics with urllib (median; target <= 100 ms for
    10,000 series).
(b) **Idle CPU** of ``pybpf export`` with every built-in exporter (whatever
    ``pybpf export --list`` shows, so new built-ins are picked up), from
    ``/proc/PID/stat`` utime+stime over ``--idle-seconds``: once with no scrape, once
    with a scrape every 15 s (target < 0.5 % of one CPU). The BPF programs run in the
    traced tasks' context and are not counted here: this is the exporter process.
(c) **Memory**: VmHWM of that process after both idle phases (target <= 40 MB).
(d) **Workload slowdown**: a C program (built here with gcc) makes ``--calls``
    getppid() system calls; untraced runs interleave with runs traced by
    ``pybpf export syscalls`` (started before, stopped after each traced run);
    median of ``--rounds`` each (target <= 1.1x).

``--write-results`` puts the table into the "pybpf export" section of
benchmarks/RESULTS.md (the rest of the file is left as it is).
"""

from __future__ import annotations

import argparse
import os
import re
import select
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Dict, List, Optional, Tuple

from machine import load_line, machine_head   # benchmarks/machine.py

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

RESULTS = os.path.join(HERE, "RESULTS.md")
START = "<!-- pybpf export: written by benchmarks/export.py -->"
END = "<!-- end of pybpf export -->"
TARGETS = {"scrape_ms": 100.0, "idle_cpu_pct": 0.5, "rss_mb": 40.0, "slowdown": 1.1}
CLK_TCK = os.sysconf("SC_CLK_TCK")

SYNTHETIC = '''\
"""benchseries: a map filled from user space, one series per key."""
from pybpf.dsl import HashMap, tracepoint, u32, u64
from pybpf.export import Counter

bench_series = HashMap(u32, u64, max_entries={entries})


@tracepoint("syscalls:sys_enter_lseek")
def export_bench(args):
    if args.fd == 987654:                 # a descriptor nobody has: never counts
        bench_series[u32(0)] += 1
    return 0


METRICS = [Counter("bench_series_total", "Synthetic series filled by the benchmark.",
                   bench_series, labels=["key"])]
'''

LOADGEN_C = r"""
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 2000000;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < n; i++)
        syscall(SYS_getppid);       /* not cached by libc: each one enters the kernel */
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("%.9f\n", (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
    return 0;
}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env() -> Dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = ROOT + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    return e


class Exporter:
    """``python3 -m pybpf export ARGS`` on a loopback port, up to its banner."""

    def __init__(self, *args: str) -> None:
        self.address = f"127.0.0.1:{free_port()}"
        self.argv = [sys.executable, "-m", "pybpf", "export", *args,
                     "--listen", self.address]
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(self.argv, cwd=ROOT, env=env(), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        line = ""
        deadline = time.monotonic() + 120
        while "Serving" not in line:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                raise RuntimeError(f"pybpf export {' '.join(args)} did not start: "
                                   f"{self.proc.stderr.read()}")  # type: ignore[union-attr]
            if select.select([self.proc.stdout], [], [], 0.5)[0]:
                line = self.proc.stdout.readline()  # type: ignore[union-attr]
        self.startup_s = time.perf_counter() - t0

    def scrape(self) -> Tuple[float, str]:
        """(seconds, body) of one GET /metrics."""
        t0 = time.perf_counter()
        with urllib.request.urlopen(f"http://{self.address}/metrics", timeout=30) as r:
            body = r.read().decode()
        return time.perf_counter() - t0, body

    def cpu_ticks(self) -> int:
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])          # utime, stime

    def status_kb(self, key: str) -> int:
        with open(f"/proc/{self.proc.pid}/status") as f:
            m = re.search(rf"^{key}:\s+(\d+) kB", f.read(), re.M)
        return int(m.group(1)) if m else 0

    def map_ids(self) -> List[int]:
        ids = []
        for fd in os.listdir(f"/proc/{self.proc.pid}/fdinfo"):
            try:
                with open(f"/proc/{self.proc.pid}/fdinfo/{fd}") as f:
                    m = re.search(r"^map_id:\s+(\d+)", f.read(), re.M)
            except OSError:
                continue
            if m:
                ids.append(int(m.group(1)))
        return ids

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def builtin_names() -> List[str]:
    """The built-in exporters, from ``pybpf export --list`` (first column)."""
    out = subprocess.run([sys.executable, "-m", "pybpf", "export", "--list"], cwd=ROOT,
                         env=env(), capture_output=True, text=True, check=True).stdout
    return [ln.split()[0] for ln in out.splitlines() if ln.strip()]


# -- (a) ----------------------------------------------------------------------------------

def bench_scrape(series: int, scrapes: int, workdir: str) -> Dict:
    from pybpf.maps import Map
    path = os.path.join(workdir, "benchseries.py")
    with open(path, "w") as f:
        f.write(SYNTHETIC.format(entries=max(series, 1) * 2))
    ex = Exporter(path, "--max-series", str(max(series, 10000)))
    try:
        target = None
        for map_id in ex.map_ids():
            m = Map.from_id(map_id)
            if m.name == "bench_series":
                target = m
                break
            m.close()
        if target is None:
            raise RuntimeError("the synthetic exporter's map was not found")
        t0 = time.perf_counter()
        target.update_batch([(struct.pack("<I", i), struct.pack("<Q", i * 7 + 1))
                             for i in range(series)])
        fill_s = time.perf_counter() - t0
        target.close()
        _, body = ex.scrape()                                  # warm-up
        exported = sum(1 for ln in body.splitlines() if ln.startswith("bench_series_total{"))
        times = []
        inner = []
        for _ in range(scrapes):
            t, body = ex.scrape()
            times.append(t)
            m = re.search(r"^pybpf_exporter_scrape_duration_seconds (\S+)", body, re.M)
            if m:
                inner.append(float(m.group(1)))
        return {"series": exported, "fill_s": fill_s, "times": times, "inner": inner,
                "bytes": len(body)}
    finally:
        ex.stop()


# -- (b), (c) -----------------------------------------------------------------------------

def bench_idle(names: List[str], seconds: float) -> Dict:
    ex = Exporter(*names)
    try:
        time.sleep(2)                                          # past the start-up
        rss_start = ex.status_kb("VmRSS")
        t0, c0 = time.monotonic(), ex.cpu_ticks()
        time.sleep(seconds)
        quiet = (ex.cpu_ticks() - c0) / CLK_TCK / (time.monotonic() - t0) * 100
        t0, c0 = time.monotonic(), ex.cpu_ticks()
        scrape_times = []
        next_scrape = t0
        end = t0 + seconds
        while True:
            now = time.monotonic()
            if now >= end:
                break
            if now >= next_scrape:
                scrape_times.append(ex.scrape()[0])
                next_scrape += 15.0
            time.sleep(max(0.0, min(next_scrape, end) - time.monotonic()))
        scraped = (ex.cpu_ticks() - c0) / CLK_TCK / (time.monotonic() - t0) * 100
        _, body = ex.scrape()
        series = sum(1 for ln in body.splitlines() if ln and not ln.startswith("#"))
        programs = re.search(r"^pybpf_exporter_programs_loaded (\S+)", body, re.M)
        return {"quiet_pct": quiet, "scraped_pct": scraped, "scrapes": len(scrape_times),
                "hwm_kb": ex.status_kb("VmHWM"), "rss_start_kb": rss_start,
                "startup_s": ex.startup_s, "samples": series,
                "programs": int(float(programs.group(1))) if programs else 0}
    finally:
        ex.stop()


# -- (d) ----------------------------------------------------------------------------------

def compile_loadgen(workdir: str) -> str:
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        sys.exit("benchmarks/export.py needs gcc (apt-get install gcc)")
    src = os.path.join(workdir, "getppid.c")
    exe = os.path.join(workdir, "getppid")
    with open(src, "w") as f:
        f.write(LOADGEN_C)
    subprocess.run([gcc, "-O2", "-o", exe, src], check=True)
    return exe


def run_loadgen(exe: str, calls: int) -> float:
    out = subprocess.run([exe, str(calls)], capture_output=True, text=True, check=True)
    return float(out.stdout)


def bench_slowdown(exe: str, calls: int, rounds: int) -> Dict:
    run_loadgen(exe, calls // 10)                              # warm-up
    untraced, traced = [], []
    counted = []
    for _ in range(rounds):
        untraced.append(run_loadgen(exe, calls))
        ex = Exporter("syscalls")
        try:
            _, before = ex.scrape()
            traced.append(run_loadgen(exe, calls))
            _, after = ex.scrape()
            pat = r'^pybpf_syscalls_total\{syscall="getppid"\} (\S+)'
            b = re.search(pat, before, re.M)
            a = re.search(pat, after, re.M)
            counted.append(float(a.group(1)) - (float(b.group(1)) if b else 0.0)
                           if a else 0.0)
        finally:
            ex.stop()
    untraced.append(run_loadgen(exe, calls))
    return {"untraced": untraced, "traced": traced, "counted": counted}


# -- report -------------------------------------------------------------------------------

def machine_lines() -> List[str]:
    try:
        import prometheus_client
        client = getattr(prometheus_client, "__version__", None)
        if client is None:
            from importlib.metadata import version
            client = version("prometheus_client")
    except Exception:                                          # noqa: BLE001
        client = "?"
    return machine_head() + [
        f"- Python {sys.version.split()[0]} ({sys.executable}); prometheus_client {client}",
        load_line(),
    ]


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def report(args: argparse.Namespace, names: List[str], a: Dict, idle: Dict,
           slow: Dict) -> List[str]:
    med = statistics.median
    scrape_ms = med(a["times"]) * 1e3
    inner_ms = med(a["inner"]) * 1e3 if a["inner"] else float("nan")
    base = med(slow["untraced"])
    ratio = med(slow["traced"]) / base
    hwm_mb = idle["hwm_kb"] / 1024
    lines = [
        f"Built-in exporters loaded for (b) and (c): {', '.join(names)} "
        f"({idle['programs']} BPF programs, {idle['samples']} samples per scrape; "
        f"start-up to the banner {idle['startup_s']:.2f} s).", "",
        "| measurement | result | target | verdict |",
        "| --- | ---: | ---: | --- |",
        f"| (a) scrape of {a['series']:,} series over HTTP, median of {len(a['times'])} "
        f"| {scrape_ms:.1f} ms | <= {TARGETS['scrape_ms']:.0f} ms "
        f"| {verdict(scrape_ms <= TARGETS['scrape_ms'] and a['series'] == args.series)} |",
        f"| (b) idle CPU, no scrapes, {args.idle_seconds:.0f} s | {idle['quiet_pct']:.3f} % "
        f"| < {TARGETS['idle_cpu_pct']} % | {verdict(idle['quiet_pct'] < TARGETS['idle_cpu_pct'])} |",
        f"| (b) idle CPU, a scrape every 15 s ({idle['scrapes']} in {args.idle_seconds:.0f} s) "
        f"| {idle['scraped_pct']:.3f} % | < {TARGETS['idle_cpu_pct']} % "
        f"| {verdict(idle['scraped_pct'] < TARGETS['idle_cpu_pct'])} |",
        f"| (c) peak RSS (VmHWM), every built-in | {hwm_mb:.1f} MB "
        f"| <= {TARGETS['rss_mb']:.0f} MB | {verdict(hwm_mb <= TARGETS['rss_mb'])} |",
        f"| (d) {args.calls:,} getppid() traced by `pybpf export syscalls`, median of "
        f"{len(slow['traced'])} | {ratio:.3f}x | <= {TARGETS['slowdown']}x "
        f"| {verdict(ratio <= TARGETS['slowdown'])} |",
        "",
        f"- (a) scrape times (ms): " + ", ".join(f"{t * 1e3:.0f}" for t in a["times"])
        + f"; the exporter's own time per scrape (pybpf_exporter_scrape_duration_seconds, "
        f"median) {inner_ms:.1f} ms; {a['bytes']:,} bytes per response; map filled from "
        f"user space in {a['fill_s'] * 1e3:.0f} ms (one batch update)",
        f"- (c) RSS after start-up {idle['rss_start_kb'] / 1024:.1f} MB",
        f"- (d) untraced runs (s): " + ", ".join(f"{t:.3f}" for t in slow["untraced"])
        + f" (median {base:.3f}); traced runs (s): "
        + ", ".join(f"{t:.3f}" for t in slow["traced"])
        + f" (median {med(slow['traced']):.3f}); getppid calls counted per traced run: "
        + ", ".join(f"{c:,.0f}" for c in slow["counted"]),
    ]
    return lines


NOTES = [
    "How these are measured: every figure is of the `pybpf export` process started by "
    "the benchmark as a subprocess (`python3 -m pybpf export ... --listen "
    "127.0.0.1:PORT`). CPU is utime+stime from `/proc/PID/stat` over wall time, in "
    "percent of one CPU; the BPF programs themselves run in the context of the tasks "
    "that make the system calls, so their cost shows in (d), not in (b). The scrapes of "
    "(b) are made by the benchmark with urllib, like a Prometheus with "
    "`scrape_interval: 15s`. In (d) each traced run starts a fresh exporter, runs the "
    "workload, reads the getppid counter before and after (the counts show the program "
    "saw every call), and stops it; untraced runs come before, between and after.",
]


def write_results(lines: List[str], argv: List[str], took: float,
                  machine: List[str]) -> None:
    cmd = "sudo python3 benchmarks/export.py " + " ".join(
        a for a in argv if a != "--write-results")
    section = [START, "", "# pybpf export", "",
               "Produced by `benchmarks/export.py` (issue export). To reproduce (root, "
               "gcc, `pip install 'pybpf[export]'`):", "",
               "```", cmd.strip() + " --write-results", "```", "",
               f"Full run, {took:.0f} s:", ""] + machine + [""] + lines + \
        ["", *NOTES, "", END]
    text = open(RESULTS).read() if os.path.exists(RESULTS) else ""
    head, sep, rest = text.partition(START)
    tail = rest.partition(END)[2] if sep else ""
    if not sep:
        head = head.rstrip("\n") + "\n\n"
    with open(RESULTS, "w") as f:
        f.write(head + "\n".join(section) + tail.rstrip("\n") + "\n")
    print(f"wrote {RESULTS}")


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--series", type=int, default=10000)
    ap.add_argument("--scrapes", type=int, default=20)
    ap.add_argument("--idle-seconds", type=float, default=30.0)
    ap.add_argument("--calls", type=int, default=2_000_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--write-results", action="store_true",
                    help="put the figures into benchmarks/RESULTS.md")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("benchmarks/export.py needs root")
    started = time.monotonic()
    machine = machine_lines()                      # the load average at the start
    for line in machine:
        print(line)
    names = builtin_names()
    with tempfile.TemporaryDirectory() as tmp:
        print(f"(a) scraping {args.series:,} series ...", flush=True)
        a = bench_scrape(args.series, args.scrapes, tmp)
        print(f"(b, c) idle with {', '.join(names)}: 2 x {args.idle_seconds:.0f} s ...",
              flush=True)
        idle = bench_idle(names, args.idle_seconds)
        print(f"(d) {args.rounds} rounds of {args.calls:,} getppid() ...", flush=True)
        slow = bench_slowdown(compile_loadgen(tmp), args.calls, args.rounds)
    lines = report(args, names, a, idle, slow)
    print("\n".join(lines))
    took = time.monotonic() - started
    if args.write_results:
        write_results(lines, argv, took, machine)
    return 0


if __name__ == "__main__":
    sys.exit(main())
