#!/usr/bin/env python3
"""The per-event tools before and after the rows fast path (``mod.on(..., rows=...)``,
one write per batch) under a storm: a C load generator does N ignored ``kill(getpid(),
SIGUSR1)`` (for sigsnoop, killsnoop) or N ``fork()`` + ``_exit()`` (for exitsnoop) as
fast as it can, or at ``--rate`` calls per second, traced by the tool writing to a file.
The tool's file at ``--before`` (a git revision: by default the last one with the
per-event printers) runs interleaved with the working tree's. Per variant, medians of
the rounds: lines printed, records reported lost (``Possibly lost N samples``), the
tool's CPU time from the storm's start until its output stopped growing, and lines
printed per CPU-second.

    sudo python3 benchmarks/tool_rows.py [--tool sigsnoop] [--rounds 3] [--calls 200000]
        [--rate 0] [--before 9f22ef2]

sigsnoop and killsnoop filter on the workload's pid in the kernel (-p); exitsnoop's
children have pids of their own, so it traces every exit (other processes add a few).
The machine is shared in development: the CPU times are noisy, take the medians.
Needs root, gcc.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.machine import load_line, machine_head  # noqa: E402

#: the last commit whose tools printed one event at a time
BEFORE = "9f22ef2"
LOADGEN_C = r"""
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* argv: k|f N RATE. "ready"; on a byte on stdin: N calls (k: kill(self, SIGUSR1),
   ignored; f: fork + _exit(0) + wait), RATE per second (0: as fast as possible);
   then "done" */
int main(int argc, char **argv)
{
    char mode = argv[1][0], c;
    long n = atol(argv[2]), rate = atol(argv[3]);
    struct timespec t0, now;
    signal(SIGUSR1, SIG_IGN);
    printf("ready\n");
    fflush(stdout);
    if (read(0, &c, 1) != 1)
        return 1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < n; i++) {
        if (rate) {
            double due = (double)i / rate;
            do
                clock_gettime(CLOCK_MONOTONIC, &now);
            while ((now.tv_sec - t0.tv_sec) + (now.tv_nsec - t0.tv_nsec) / 1e9 < due);
        }
        if (mode == 'k') {
            kill(getpid(), SIGUSR1);
        } else {
            pid_t p = fork();
            if (p == 0)
                _exit(0);
            waitpid(p, NULL, 0);
        }
    }
    printf("done\n");
    fflush(stdout);
    return 0;
}
"""
LOST = re.compile(r"^Possibly lost (\d+) samples$", re.M)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_stable(path: str, quiet: float = 0.5, limit: float = 120.0) -> None:
    """Wait until the file ``path`` has not grown for ``quiet`` seconds."""
    size, since, end = -1, time.monotonic(), time.monotonic() + limit
    while time.monotonic() < end:
        now = os.path.getsize(path)
        if now != size:
            size, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
        time.sleep(0.05)


def one_run(tool: str, script: str, exe: str, calls: int, rate: int, tmp: str) -> Dict:
    """One storm traced by ``script``: lines, lost, CPU-s."""
    mode = "f" if tool == "exitsnoop" else "k"
    work = subprocess.Popen([exe, mode, str(calls), str(rate)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert work.stdout.readline().strip() == "ready"
    out_path = os.path.join(tmp, "out.txt")
    args = [] if tool == "exitsnoop" else ["-p", str(work.pid)]
    env = dict(os.environ, PYTHONPATH=ROOT)
    with open(out_path, "w") as out, open(os.path.join(tmp, "err.txt"), "w+") as err:
        proc = subprocess.Popen([sys.executable, script, *args], stdout=out, stderr=err,
                                env=env, cwd=ROOT)
        try:
            deadline = time.monotonic() + 60
            while os.path.getsize(out_path) == 0:         # the header: attached
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{script} did not start")
                time.sleep(0.02)
            cpu0 = cpu_seconds(proc.pid)
            work.stdin.write("g")
            work.stdin.flush()
            assert work.stdout.readline().strip() == "done"
            work.stdin.close()
            work.wait(timeout=60)
            wait_stable(out_path)
            cpu = cpu_seconds(proc.pid) - cpu0
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        err.seek(0)
        lost = sum(int(n) for n in LOST.findall(err.read()))
    with open(out_path, "rb") as f:
        lines = f.read().count(b"\n") - 1
    return {"lines": lines, "lost": lost, "cpu": cpu}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tool", default="sigsnoop",
                        choices=["sigsnoop", "killsnoop", "exitsnoop"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=200000)
    parser.add_argument("--rate", type=int, default=0, help="calls per second, 0: no limit")
    parser.add_argument("--before", default=BEFORE, help="the git revision to compare with")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tool-rows-") as tmp:
        src, exe = os.path.join(tmp, "loadgen.c"), os.path.join(tmp, "loadgen")
        with open(src, "w") as f:
            f.write(LOADGEN_C)
        subprocess.run(["gcc", "-O2", "-o", exe, src], check=True)
        old = os.path.join(tmp, f"{args.tool}_before.py")
        with open(old, "w") as f:
            f.write(subprocess.run(["git", "show", f"{args.before}:programs/{args.tool}.py"],
                                   cwd=ROOT, capture_output=True, text=True,
                                   check=True).stdout)
        variants = {f"before ({args.before})": old,
                    "rows": os.path.join(ROOT, "programs", f"{args.tool}.py")}
        runs: Dict[str, List[Dict]] = {name: [] for name in variants}
        for _ in range(args.rounds):
            for name, script in variants.items():
                runs[name].append(one_run(args.tool, script, exe, args.calls, args.rate, tmp))
    for line in machine_head() + [load_line()]:
        print(line)
    rate = f"{args.rate}/s" if args.rate else "as fast as possible"
    print(f"\n{args.tool}: {args.calls} calls, {rate}; medians of {args.rounds}\n")
    print("| variant | lines | lost | tool CPU-s | lines per CPU-s | runs (lines/CPU-s) |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for name, rs in runs.items():
        per = [r["lines"] / r["cpu"] if r["cpu"] else float("inf") for r in rs]
        print(f"| {name} | {statistics.median(r['lines'] for r in rs):.0f} "
              f"| {statistics.median(r['lost'] for r in rs):.0f} "
              f"| {statistics.median(r['cpu'] for r in rs):.2f} "
              f"| {statistics.median(per):,.0f} | {', '.join(f'{p:,.0f}' for p in per)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
