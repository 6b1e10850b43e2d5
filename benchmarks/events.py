#!/usr/bin/env python3
"""Events to user space: how fast pybpf's readers move a storm of events (needs root,
gcc and Linux 5.8+).

usage: sudo python3 benchmarks/events.py [--events 1000000] [--rounds 2]
                                         [--ring-mb 8] [--perf-pages 512]

A small C program (compiled here with gcc) waits for a byte on stdin, then calls
``openat("/dev/null")`` + ``close`` ``--events`` times and prints how long that took. A raw
tracepoint program on ``sys_enter`` keeps only that process's ``openat`` calls (by tgid,
in the kernel) and sends a 24-byte record (time, pid_tgid, syscall number) each. It is
traced, one run at a time, by:

* ``ringbuf-adaptive``: pybpf's ring buffer with the adaptive wake-up policy (no wake-up
  below a quarter full, a forced one above, the reader's timed poll in between);
* ``ringbuf-per-event``: the same ring buffer, flags 0 (a wake-up whenever the reader
  has caught up: once per event when it keeps pace);
* ``perfbuf``: pybpf's perf buffer (one BPF_OUTPUT event per CPU, adaptive watermark);
* ``ringbuf-adaptive-callback``: as ``ringbuf-adaptive``, but the consumer calls a Python
  function per record (each a tuple) instead of once per batch;

with untraced runs before, between and after. For each traced run: events received,
events lost (ring full: counted by the program; perf: PERF_RECORD_LOST), the consumer's
rate (events per CPU second of the tracing process), the workload's slowdown (its time
over the median untraced time) and the tracer's CPU seconds. The consumer decodes every
record into a tuple (bulk ``struct.iter_unpack``) and counts them in a batch callback
(or, for ``ringbuf-adaptive-callback``, in a per-record callback).

Target (issue events): ``ringbuf-adaptive`` receives all 1,000,000 events, 0 lost, at no
more than 1.3x workload slowdown.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from typing import Any, Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

from pybpf.asm import R0, R1, R2, R6, R7, R10  # noqa: E402
from pybpf.asm.builder import (  # noqa: E402
    DW, Label, build, call, exit_, jne, ldx, mov, rsh, stx,
)
from pybpf.events import Poller, RingBufReader  # noqa: E402
from pybpf.events import wakeup as wk  # noqa: E402
from pybpf.events.perfbuf import PerfBufReader  # noqa: E402
from pybpf.maps import ArrayMap, PerfEventArray, RingBuf  # noqa: E402
from pybpf.program import ProgramSpec  # noqa: E402
from pybpf.syscall import progs  # noqa: E402
from pybpf.syscall.bpf import ProgType  # noqa: E402

NR_OPENAT = {"x86_64": 257, "aarch64": 56, "riscv64": 56}.get(platform.machine(), 257)
RECORD = "=QQQ"
TARGET_SLOWDOWN = 1.3

LOADGEN_C = r"""
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    char go;
    struct timespec t0, t1;

    printf("ready\n");           /* past the loader's own openat calls */
    fflush(stdout);
    if (read(0, &go, 1) != 1)
        return 1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < n; i++) {
        int fd = openat(AT_FDCWD, "/dev/null", O_RDONLY);
        if (fd >= 0)
            close(fd);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("%.9f\n", (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
    return 0;
}
"""


def compile_loadgen(workdir: str) -> str:
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        sys.exit("benchmarks/events.py needs gcc (apt-get install gcc)")
    src = os.path.join(workdir, "loadgen.c")
    exe = os.path.join(workdir, "loadgen")
    with open(src, "w", encoding="ascii") as fh:
        fh.write(LOADGEN_C)
    subprocess.run([gcc, "-O2", "-o", exe, src], check=True)
    return exe


def tracer_program(out: str, target: Any, counters: Any, tgid: int,
                   wakeup: Any = None) -> list:
    """sys_enter: for openat calls of process ``tgid``, send (ktime, pid_tgid, nr)."""
    code: List[Any] = [
        mov(R6, R1),
        ldx(DW, R7, R1, 8), jne(R7, NR_OPENAT, "out"),      # r7 = syscall number
        call("get_current_pid_tgid"), mov(R2, R0), rsh(R2, 32), jne(R2, tgid, "out"),
        stx(DW, R10, -16, R0), stx(DW, R10, -8, R7),
        call("ktime_get_ns"), stx(DW, R10, -24, R0),
    ]
    if out == "perf":
        code += wk.perf_event_output(R6, target, -24, 24, drops=counters)
    else:
        code += wk.ringbuf_output(target, -24, 24, wakeup, drops=counters)
    code += [Label("out"), mov(R0, 0), exit_()]
    return build(code)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Run:
    def __init__(self, mode: str, workload: float, received: int = 0, lost: int = 0,
                 tracer_cpu: float = 0.0) -> None:
        self.mode = mode
        self.workload = workload
        self.received = received
        self.lost = lost
        self.tracer_cpu = tracer_cpu


def run_once(exe: str, events: int, mode: str, ring_mb: int, perf_pages: int) -> Run:
    child = subprocess.Popen([exe, str(events)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE)
    try:
        if child.stdout.readline() != b"ready\n":     # type: ignore[union-attr]
            raise RuntimeError("the load generator did not start")
        if mode == "untraced":
            return Run(mode, _go_and_wait(child))
        counters = ArrayMap(value=8, max_entries=1, name="drops")
        readers: List[Any] = []
        count = [0]

        def batch(records: List[Any]) -> None:
            count[0] += len(records)

        def one(record: Any) -> None:
            count[0] += 1

        try:
            if mode == "perfbuf":
                target: Any = PerfEventArray(name="events")
                reader: Any = PerfBufReader(target, batch_callback=batch, record=RECORD,
                                            pages=perf_pages)
                code = tracer_program("perf", target, counters, child.pid)
            else:
                target = RingBuf(size=ring_mb << 20, name="events")
                policy = "per_event" if mode == "ringbuf-per-event" else "adaptive"
                if mode.endswith("-callback"):
                    reader = RingBufReader(target, one, record=RECORD, wakeup=policy)
                else:
                    reader = RingBufReader(target, batch_callback=batch, record=RECORD,
                                           wakeup=policy)
                code = tracer_program("ringbuf", target, counters, child.pid, policy)
            readers.append(reader)
            prog = ProgramSpec(ProgType.RAW_TRACEPOINT, code, name="ev_bench").load()
            link = progs.raw_tracepoint_open(prog, "sys_enter")
            try:
                poller = Poller([reader])
                cpu0 = cpu_seconds()
                child.stdin.write(b"g")      # type: ignore[union-attr]
                child.stdin.flush()          # type: ignore[union-attr]
                while child.poll() is None:
                    poller.poll(0.05)
                while poller.consume():
                    pass
                tracer_cpu = cpu_seconds() - cpu0
                poller.close()
            finally:
                link.close()
                prog.close()
            workload = float(child.stdout.read().decode())   # type: ignore[union-attr]
            if mode == "perfbuf":
                lost = reader.lost
            else:
                lost = int.from_bytes(counters.get(0) or bytes(8), "little")
            return Run(mode, workload, count[0], lost, tracer_cpu)
        finally:
            for r in readers:
                r.close()
            target.close()
            counters.close()
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
        for pipe in (child.stdin, child.stdout):
            if pipe is not None:
                pipe.close()


def _go_and_wait(child: subprocess.Popen) -> float:
    child.stdin.write(b"g")                  # type: ignore[union-attr]
    child.stdin.flush()                      # type: ignore[union-attr]
    out, _ = child.communicate()
    return float(out.decode())


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--ring-mb", type=int, default=8, help="ring buffer size (MiB)")
    ap.add_argument("--perf-pages", type=int, default=512, help="perf pages per CPU")
    ap.add_argument("--modes", default="ringbuf-adaptive,ringbuf-per-event,perfbuf,"
                                        "ringbuf-adaptive-callback")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("benchmarks/events.py needs root")
    modes = [m for m in args.modes.split(",") if m]
    with tempfile.TemporaryDirectory() as tmp:
        exe = compile_loadgen(tmp)
        runs: List[Run] = []
        run_once(exe, min(args.events, 10000), "untraced", args.ring_mb, args.perf_pages)
        for _ in range(args.rounds):
            for mode in modes:
                runs.append(run_once(exe, args.events, "untraced", args.ring_mb,
                                     args.perf_pages))
                runs.append(run_once(exe, args.events, mode, args.ring_mb,
                                     args.perf_pages))
        runs.append(run_once(exe, args.events, "untraced", args.ring_mb, args.perf_pages))
    base = statistics.median(r.workload for r in runs if r.mode == "untraced")
    print(f"{args.events:,} openat calls, {args.rounds} round(s); untraced workload: median "
          f"{base:.3f} s (runs: "
          + ", ".join(f"{r.workload:.3f}" for r in runs if r.mode == "untraced") + ")")
    print(f"{'mode':<26} {'received':>10} {'lost':>9} {'consumer ev/s':>14} "
          f"{'slowdown':>9} {'tracer CPU s':>13}")
    by_mode: Dict[str, List[Run]] = {}
    for r in runs:
        if r.mode == "untraced":
            continue
        by_mode.setdefault(r.mode, []).append(r)
        rate = r.received / r.tracer_cpu if r.tracer_cpu > 0 else float("inf")
        print(f"{r.mode:<26} {r.received:>10,} {r.lost:>9,} {rate:>14,.0f} "
              f"{r.workload / base:>8.2f}x {r.tracer_cpu:>13.3f}")
    adaptive = by_mode.get("ringbuf-adaptive", [])
    if adaptive:
        ok = all(r.received == args.events and r.lost == 0 for r in adaptive)
        worst = max(r.workload / base for r in adaptive)
        verdict = "met" if ok and worst <= TARGET_SLOWDOWN else "NOT met"
        print(f"target (adaptive ring buffer: all {args.events:,} events, 0 lost, <= "
              f"{TARGET_SLOWDOWN}x): {verdict} (worst slowdown {worst:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
