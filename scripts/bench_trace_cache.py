#!/usr/bin/env python3
"""Exec-to-first-event of ``pybpf trace`` without and with its cache of compiled
programs (pybpf/bpftrace/cache.py), runs interleaved.

A ticker process opens /dev/null every millisecond; each run starts
``python3 -m pybpf trace -e 'tracepoint:syscalls:sys_enter_openat /pid == TICKER/
{ printf("%s\\n", str(args->filename)); }'`` and times from just before the exec to
the first event line read from its stdout (a pipe), then interrupts it. ``cold``:
``PYBPF_NO_CACHE=1`` (parse, analysis, lowering, back end every time); ``warm``: a
cache directory filled by one run before the measured ones.

Usage: scripts/bench_trace_cache.py [RUNS] [BEFORE_ROOT]   (root; default 7 runs of
each; with BEFORE_ROOT, a checkout without the cache, also ``before``: that checkout's
pybpf trace, for the miss path's cost)
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


#: CPU seconds (user + system) of each run's tracer, by variant, as first_event saw them
CPU: list = []


def first_event(pid: int, env: dict) -> float:
    """Seconds from exec to the first event line (the tracer's whole CPU time, start
    to end, is appended to :data:`CPU`)."""
    prog = (f'tracepoint:syscalls:sys_enter_openat /pid == {pid}/ '
            '{ printf("%s\\n", str(args->filename)); }')
    t0 = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-m", "pybpf", "trace", "-e", prog],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    try:
        assert p.stdout is not None
        for line in p.stdout:
            if line.startswith(b"/dev/null"):
                return time.perf_counter() - t0
        raise RuntimeError("no event")
    finally:
        p.send_signal(signal.SIGINT)
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        CPU.append(usage.ru_utime + usage.ru_stime)


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    ticker = subprocess.Popen([sys.executable, "-c",
                               "import os, time\n"
                               "while True:\n"
                               "    os.close(os.open('/dev/null', os.O_RDONLY))\n"
                               "    time.sleep(0.001)"])
    cache = tempfile.mkdtemp(prefix="pybpf-bench-cache-")
    base = dict(os.environ, PYTHONPATH=ROOT, PYBPF_CACHE_DIR=cache)
    base.pop("PYBPF_NO_CACHE", None)
    envs = {"cold": dict(base, PYBPF_NO_CACHE="1"), "warm": base}
    if len(sys.argv) > 2:
        envs["before"] = dict(base, PYTHONPATH=os.path.abspath(sys.argv[2]))
    try:
        time.sleep(0.2)
        first_event(ticker.pid, envs["warm"])           # fills the cache
        times: dict = {name: [] for name in envs}
        cpu: dict = {name: [] for name in envs}
        names = list(envs)
        for i in range(runs):
            for name in names[i % len(names):] + names[:i % len(names)]:  # rotated
                times[name].append(first_event(ticker.pid, envs[name]))
                cpu[name].append(CPU[-1])
        for name, ts in times.items():
            print(f"{name}: median {statistics.median(ts) * 1000:.1f} ms to the first "
                  f"event, {statistics.median(cpu[name]) * 1000:.0f} ms CPU per run  "
                  f"(runs: {', '.join(f'{t * 1000:.0f}' for t in ts)})")
        saved = statistics.median(times["cold"]) - statistics.median(times["warm"])
        print(f"saved: {saved * 1000:.1f} ms")
    finally:
        ticker.kill()
        ticker.wait()
        import shutil
        shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    main()
