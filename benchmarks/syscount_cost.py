#!/usr/bin/env python3
"""The kernel-side cost of ``pybpf run syscount`` (issue #20 [storm]; needs root, gcc,
Linux 5.8+), for one or more checkouts of pybpf side by side.

usage: sudo python3 benchmarks/syscount_cost.py [--rounds 5] [--events 300000]
            [--flags=-L] NAME=CHECKOUT [NAME=CHECKOUT ...]

Each round, for each checkout in turn: ``peers/stormgen.c`` (built once with gcc) is
started, ``pybpf run syscount -p PID FLAGS`` from that checkout attaches to it, run-time
statistics are switched on with ``BPF_ENABLE_STATS`` (on only while this script holds
the descriptor: ``kernel.bpf_stats_enabled`` is left as it was), the workload makes
``--events`` openat+close, and the tool's programs' ``run_time_ns`` / ``run_cnt`` (from
``/proc/PID/fdinfo``) give the nanoseconds per run. The programs run for every process's
system calls (they return at once for the others), so the runs include the rest of the
machine's calls. Also printed: the workload's CPU time (user + system, from its rusage),
less sensitive to other work on the machine than its wall time. Figures are medians over
``--rounds``; the openat count the tool printed must be ``--events`` (not shown with -P).
With -L the nanoseconds are per run of either program (entry and exit).
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
from typing import Dict, List, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from pybpf.syscall.progs import enable_stats  # noqa: E402


def prog_stats(pid: int) -> Dict[int, Tuple[int, int]]:
    """{program id: (run_time_ns, run_cnt)} for the programs ``pid`` holds."""
    out = {}
    for fd in os.listdir(f"/proc/{pid}/fdinfo"):
        try:
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                info = f.read()
        except OSError:
            continue
        m = re.search(r"^prog_id:\s+(\d+)", info, re.M)
        if m and "run_time_ns" in info:
            out[int(m.group(1))] = (int(re.search(r"run_time_ns:\s+(\d+)", info).group(1)),
                                    int(re.search(r"run_cnt:\s+(\d+)", info).group(1)))
    return out


def one_run(gen_exe: str, target: str, checkout: str, events: int,
            flags: List[str]) -> Tuple[float, float, int]:
    """(ns per program run, workload CPU seconds, openat calls the tool counted)."""
    gen = subprocess.Popen([gen_exe, "open", str(events), target], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, text=True)
    tool = None
    try:
        assert gen.stdout.readline().strip() == "ready"
        env = dict(os.environ, PYTHONPATH=checkout, PYTHONUNBUFFERED="1")
        tool = subprocess.Popen([sys.executable, "-m", "pybpf", "run", "syscount", "-p",
                                 str(gen.pid), *flags], stdout=subprocess.PIPE, text=True,
                                env=env, cwd=checkout)     # -m puts the cwd first on the path
        assert tool.stdout.readline().startswith("Tracing"), "syscount did not start"
        time.sleep(0.3)
        with enable_stats():
            before = prog_stats(tool.pid)
            gen.stdin.write("g")
            gen.stdin.flush()
            gen.stdout.readline()
            after = prog_stats(tool.pid)
        _, _, usage = os.wait4(gen.pid, 0)
        tool.send_signal(signal.SIGINT)
        out = tool.communicate(timeout=60)[0]
    finally:
        for proc in (gen, tool):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    ns = sum(after[i][0] - before.get(i, (0, 0))[0] for i in after)
    runs = sum(after[i][1] - before.get(i, (0, 0))[1] for i in after)
    m = re.search(r"(?m)^openat +(\d+)", out)
    return ns / max(runs, 1), usage.ru_utime + usage.ru_stime, int(m.group(1)) if m else -1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--events", type=int, default=300000)
    ap.add_argument("--flags", default="", help="more syscount flags, e.g. --flags=-L")
    ap.add_argument("checkouts", nargs="+", metavar="NAME=CHECKOUT")
    args = ap.parse_args()
    variants = [c.split("=", 1) for c in args.checkouts]
    with tempfile.TemporaryDirectory(prefix="syscount-cost-") as tmp:
        gen_exe = os.path.join(tmp, "stormgen")
        subprocess.run(["gcc", "-O2", "-o", gen_exe,
                        os.path.join(HERE, "peers", "stormgen.c")], check=True)
        target = os.path.join(tmp, "target")
        open(target, "w").close()
        res: Dict[str, List[Tuple[float, float, int]]] = {name: [] for name, _ in variants}
        for _ in range(args.rounds):
            for name, checkout in variants:
                res[name].append(one_run(gen_exe, target, os.path.abspath(checkout),
                                         args.events, args.flags.split()))
    print(f"{args.events:,} openat+close, syscount -p PID {args.flags}; "
          f"medians of {args.rounds} rounds")
    for name, runs in res.items():
        ns = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        counted = ("n/a (-P)" if "-P" in args.flags.split() else
                   "all" if all(r[2] == args.events for r in runs) else [r[2] for r in runs])
        print(f"{name:12s} {ns:7.1f} ns/run (runs {', '.join(f'{r[0]:.0f}' for r in runs)})"
              f"  workload CPU {cpu:.3f} s  openat counted {counted}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
