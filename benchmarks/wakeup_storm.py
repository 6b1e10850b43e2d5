#!/usr/bin/env python3
"""The ring buffer wake-up policy under a storm: ``programs/opensnoop.py -p PID`` traces a
C load generator doing N openat+close as fast as it can (benchmarks/peers/loadgen.c),
with the DSL's adaptive wake-up rule swapped for each variant, interleaved with untraced
runs. Per variant, medians of the rounds: the workload's wall time and CPU time against
untraced, the BPF programs' ns per run (``BPF_ENABLE_STATS``), lines printed, records
reported lost (``Possibly lost N samples``) and the tool's CPU time.

Variants (the rule an adaptive producer applies to choose its submit flags):
``old`` force a wake-up on every record while the ring is at least a quarter full (the
rule before the crossing rule); ``crossing`` the current rule (force only for the record
that makes the fill level cross a quarter); ``none`` never force; ``flags0`` flags 0 (the
kernel wakes the reader when it has caught up).

    sudo python3 benchmarks/wakeup_storm.py [--rounds 3] [--calls 1000000]
        [--variants old,crossing,none,flags0]

The machine is shared in development: wall times are noisy, the CPU times and the
programs' ns per run less so. Needs root, gcc.
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

#: run as ``python3 -c WRAPPER VARIANT ROOT opensnoop-args...``: opensnoop with the
#: DSL's adaptive rule replaced by VARIANT ("crossing" keeps the compiler's own)
WRAPPER = r'''
import sys
variant, root = sys.argv[1], sys.argv[2]
sys.path.insert(0, root)
from pybpf.compiler import blocks as B
from pybpf.compiler import types as T
from pybpf.compiler.ir import MapFd

def flags(self, ref, size, reserved=False):
    if getattr(ref.decl, "wakeup", "per_event") != "adaptive":
        return 0
    if variant == "none":
        return 1
    if variant == "flags0":
        return 0
    avail = self.vreg(T.u64)
    self.emit("helper", dst=avail, name="ringbuf_query", args=(MapFd(ref.name), 0))
    out = self.vreg(T.u64)
    done = self.label("wake")
    self.emit("mov", dst=out, a=1)
    self.emit("branch", name="ult", a=avail, b=max(1, ref.decl.max_entries // 4),
              target=done)
    self.emit("mov", dst=out, a=2)
    self.emit("label", name=done)
    return out

if variant != "crossing":
    B.BlocksMixin.wakeup_flags = flags
from programs import opensnoop
from pybpf.tooling import tool_main
tool_main(lambda: opensnoop.main(sys.argv[3:]))
'''


def compile_loadgen(workdir: str) -> str:
    exe = os.path.join(workdir, "loadgen")
    subprocess.run(["gcc", "-O2", "-o", exe, os.path.join(ROOT, "benchmarks", "peers",
                                                            "loadgen.c")], check=True)
    return exe


def prog_ids(pid: int) -> List[int]:
    """The ids of the BPF programs process ``pid`` holds."""
    ids = set()
    for fd in os.listdir(f"/proc/{pid}/fdinfo"):
        try:
            with open(f"/proc/{pid}/fdinfo/{fd}") as fh:
                for line in fh:
                    if line.startswith("prog_id:"):
                        ids.add(int(line.split()[1]))
        except OSError:
            pass
    return sorted(ids)


def prog_stats(ids: List[int]) -> Dict[int, tuple]:
    """``{id: (run_time_ns, run_cnt)}``."""
    from pybpf.syscall.objects import get_fd_by_id, prog_info
    out = {}
    for i in ids:
        with get_fd_by_id("prog", i) as fd:
            info = prog_info(fd, map_ids=False)
        out[i] = (info.run_time_ns, info.run_cnt)
    return out


def one(exe: str, variant: str, calls: int, workdir: str) -> dict:
    """One run: untraced, or traced by opensnoop with ``variant``."""
    lg = subprocess.Popen([exe, str(calls)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          text=True)
    assert lg.stdout.readline().strip() == "ready"
    if variant == "untraced":
        lg.stdin.write("g")
        lg.stdin.flush()
        wall = float(lg.stdout.readline())
        _, _, ru = os.wait4(lg.pid, 0)
        lg.returncode = 0
        return {"wall": wall, "cpu": ru.ru_utime + ru.ru_stime}
    out_path, err_path = os.path.join(workdir, "out"), os.path.join(workdir, "err")
    with open(out_path, "w") as out, open(err_path, "w") as err:
        tool = subprocess.Popen([sys.executable, "-c", WRAPPER, variant, ROOT, "-p",
                                 str(lg.pid)], stdout=out, stderr=err, cwd=ROOT)
    deadline = time.monotonic() + 120
    while True:                         # ping (an open of /dev/zero) until it shows
        lg.stdin.write("p")
        lg.stdin.flush()
        time.sleep(0.05)
        with open(out_path) as fh:
            if "/dev/zero" in fh.read():
                break
        if tool.poll() is not None or time.monotonic() > deadline:
            with open(err_path) as fh:
                raise SystemExit(f"opensnoop did not start: {fh.read()}")
    ids = prog_ids(tool.pid)
    before = prog_stats(ids)
    lg.stdin.write("g")
    lg.stdin.flush()
    wall = float(lg.stdout.readline())
    _, _, lru = os.wait4(lg.pid, 0)
    lg.returncode = 0
    after = prog_stats(ids)
    time.sleep(0.3)
    tool.send_signal(signal.SIGINT)
    _, _, tru = os.wait4(tool.pid, 0)
    tool.returncode = 0
    with open(out_path) as fh:
        lines = sum(1 for line in fh if "/dev/null" in line)
    with open(err_path) as fh:
        lost = sum(int(n) for n in re.findall(r"^Possibly lost (\d+) samples$", fh.read(),
                                              re.M))
    per_run = sorted(((after[i][0] - before[i][0]) / (after[i][1] - before[i][1]))
                     for i in ids if after[i][1] - before[i][1] >= calls // 2)
    return {"wall": wall, "cpu": lru.ru_utime + lru.ru_stime, "lines": lines, "lost": lost,
            "tool_cpu": tru.ru_utime + tru.ru_stime,
            "entry_ns": per_run[0] if per_run else 0.0,
            "exit_ns": per_run[-1] if per_run else 0.0}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--calls", type=int, default=1000000)
    ap.add_argument("--variants", default="old,crossing,none,flags0")
    args = ap.parse_args()
    variants = ["untraced"] + args.variants.split(",")
    from pybpf.syscall import progs
    stats_fd = progs.enable_stats()         # run_time_ns/run_cnt while it is open
    results: Dict[str, List[dict]] = {v: [] for v in variants}
    head = machine_head() + [load_line()]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            exe = compile_loadgen(tmp)
            for r in range(args.rounds):
                for v in variants:
                    results[v].append(one(exe, v, args.calls, tmp))
                    print(f"round {r + 1} {v}: {results[v][-1]}", file=sys.stderr)
    finally:
        stats_fd.close()
    med = {v: {k: statistics.median(x[k] for x in results[v]) for k in results[v][0]}
           for v in variants}
    base = med["untraced"]
    print("\n".join(head))
    print(f"- {args.calls} openat+close, opensnoop -p PID to a file; medians of "
          f"{args.rounds}; untraced {base['wall']:.2f} s wall, {base['cpu']:.2f} CPU-s\n")
    print("| variant | workload wall | workload CPU | exit prog ns/run | entry prog "
          "ns/run | printed | reported lost | tool CPU-s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for v in variants[1:]:
        m = med[v]
        print(f"| {v} | {m['wall'] / base['wall']:.2f}x | {m['cpu'] / base['cpu']:.2f}x | "
              f"{m['exit_ns']:.0f} | {m['entry_ns']:.0f} | {m['lines']:.0f} | "
              f"{m['lost']:.0f} | {m['tool_cpu']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
