#!/usr/bin/env python3
"""``pybpf explain`` on the tools of programs/: wall time of the whole command.

usage: python3 benchmarks/explain.py [--repeat 5] [TOOL ...]

Runs ``python3 -m pybpf explain programs/TOOL.py`` (text output to /dev/null) as a
user would, ``--repeat`` times per tool, and prints the median and the spread, with the
size of the verifier's walk (instructions processed, from ``--json``). Bytecode caching
is left on (``PYTHONDONTWRITEBYTECODE`` is removed from the environment), as an installed
pybpf has it. Target (issue 23): under 2 s on the largest tool; execsnoop has the
longest walk (its bounded argument loop: about 6,400 processed instructions).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def _env() -> dict:
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def run_once(path: str, json_out: str = "") -> float:
    """Wall seconds of one ``pybpf explain`` of ``path``."""
    cmd = [sys.executable, "-m", "pybpf", "explain", path]
    if json_out:
        cmd += ["--json", json_out]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=_env())
    return time.perf_counter() - t


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("tools", nargs="*", help="tool names (default: all)")
    args = parser.parse_args()
    files = sorted(glob.glob(os.path.join(ROOT, "programs", "*.py")))
    if args.tools:
        files = [f for f in files if os.path.basename(f)[:-3] in args.tools]
    print(f"{'tool':<14} {'processed':>9} {'median s':>9} {'min s':>7} {'max s':>7}")
    for path in files:
        name = os.path.basename(path)[:-3]
        with tempfile.NamedTemporaryFile(suffix=".json") as tmp:
            try:
                run_once(path, tmp.name)           # warm-up, writes the bytecode cache
            except subprocess.CalledProcessError:
                continue            # no decorated programs (built at run time)
            data = json.load(open(tmp.name))
        processed = sum((p["trace"] or {}).get("stats", {}).get("processed", 0)
                        for p in data["programs"])
        times = [run_once(path) for _ in range(args.repeat)]
        print(f"{name:<14} {processed:>9} {statistics.median(times):>9.2f} "
              f"{min(times):>7.2f} {max(times):>7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
