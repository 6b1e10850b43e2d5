#!/usr/bin/env python3
"""``pybpf list 'tracepoint:*'`` against ``bpftrace -l 'tracepoint:*'``, as whole processes.

usage: sudo python3 benchmarks/cli_list.py [--repeat 21]

Each round starts every command once, in turn (interleaved, so that a slow spell of the
machine hits all of them alike), output to a pipe that is read to the end; the wall time
from the parent is recorded. Reported: the median of each, and the ratio to bpftrace.

* ``pybpf``: the ``pybpf`` console script as an installed package has it (a launcher
  that imports ``re`` and ``sys`` and calls ``pybpf.cli.main``), with this
  interpreter's full start-up (site packages and their ``.pth`` files);
* ``pybpf -S``: the same launcher under ``python3 -S`` (no site packages): the
  command's own cost plus a bare interpreter start. On the development machine a
  sandbox ``.pth`` file imports ``certifi`` in every interpreter (~22 ms, more than
  half of bpftrace's whole run), which is why both are shown;
* ``python3 -m pybpf``: the module form (adds ``runpy``);
* bytecode is cached as for an installed package (see :func:`environment`);
* ``python3 -c pass`` and ``python3 -S -c pass``: the interpreter alone, for scale.

Target (issue "cli"): pybpf in at most half of bpftrace's time. Both outputs are
checked to be the same lines before timing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from typing import Dict, List

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PATTERN = "tracepoint:*"
#: the console-script launcher (written by main())
LAUNCHER = os.path.join("/tmp", f"pybpf-bench-launcher-{os.getuid()}.py")
LAUNCHER_TEXT = """import re
import sys
from pybpf.cli import main
sys.exit(main())
"""


def commands() -> Dict[str, List[str]]:
    """The command lines timed, by label."""
    py = sys.executable
    cmds = {
        "pybpf": [py, LAUNCHER, "list", PATTERN],
        "pybpf -S": [py, "-S", LAUNCHER, "list", PATTERN],
        "python3 -m pybpf": [py, "-m", "pybpf", "list", PATTERN],
        "python3 -c pass": [py, "-c", "pass"],
        "python3 -S -c pass": [py, "-S", "-c", "pass"],
    }
    bpftrace = shutil.which("bpftrace")
    if bpftrace:
        cmds["bpftrace"] = [bpftrace, "-l", PATTERN]
    return cmds


def environment() -> Dict[str, str]:
    """The package from this checkout, with its bytecode cached (in a private prefix)
    as an installed package would have it, even where ``PYTHONDONTWRITEBYTECODE`` is
    set."""
    env = dict(os.environ, PYTHONPATH=ROOT,
               PYTHONPYCACHEPREFIX=os.path.join("/tmp", f"pybpf-bench-pycache-{os.getuid()}"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def once(cmd: List[str]) -> float:
    """Wall time of one run, output read to the end."""
    env = environment()
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
                   check=True)
    return time.perf_counter() - start


def main() -> int:
    """Run the benchmark and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=21)
    args = ap.parse_args()
    with open(LAUNCHER, "w", encoding="ascii") as fh:
        fh.write(LAUNCHER_TEXT)
    cmds = commands()
    env = environment()
    ours = subprocess.run(cmds["pybpf"], capture_output=True, env=env, check=True).stdout
    if "bpftrace" in cmds:
        theirs = subprocess.run(cmds["bpftrace"], capture_output=True, check=True).stdout
        same = set(ours.splitlines()) == set(theirs.splitlines())
        print(f"outputs: {len(ours.splitlines())} lines (pybpf), "
              f"{len(theirs.splitlines())} (bpftrace), "
              f"{'identical' if ours == theirs else 'same set' if same else 'DIFFERENT'}")
    else:
        print("bpftrace is not installed: pybpf only")
    for cmd in cmds.values():                     # warm the page cache
        once(cmd)
    times: Dict[str, List[float]] = {k: [] for k in cmds}
    for _ in range(args.repeat):
        for label, cmd in cmds.items():
            times[label].append(once(cmd))
    base = statistics.median(times["bpftrace"]) if "bpftrace" in times else None
    print(f"{'command':22} {'median ms':>10} {'min ms':>8} {'vs bpftrace':>12}")
    for label, values in times.items():
        med = statistics.median(values)
        ratio = f"{med / base:.2f}x" if base else "-"
        print(f"{label:22} {med * 1e3:10.1f} {min(values) * 1e3:8.1f} {ratio:>12}")
    if base:
        for label in ("pybpf", "pybpf -S"):
            ratio = statistics.median(times[label]) / base
            print(f"{label} / bpftrace = {ratio:.2f} (target <= 0.5): "
                  f"{'met' if ratio <= 0.5 else 'NOT met'}")
        floor = statistics.median(times["python3 -c pass"]) / base
        if floor > 0.5:
            print(f"note: this interpreter's bare start-up (python3 -c pass) is already "
                  f"{floor:.2f}x bpftrace's whole run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
