#!/usr/bin/env python3
"""pybpf.dsl against clang: compile time and code size.

usage: python3 benchmarks/compile.py [--repeat 5]

1. Compile time of every tool in programs/ (in process: the first compile, which reads
   tracefs formats and BTF, then the median of warm compiles; clang needs a process
   anyway). Target (issue 7): a 300-line program in at most 50 ms.
2. Instruction counts (8-byte slots, per program) of three programs written twice: in
   pybpf's language (benchmarks/compile/NAME.py) and in C (NAME.bpf.c, compiled with
   clang-19 -O2 -g -target bpf; clang is a benchmark-only oracle). Both versions are then
   loaded into the kernel, so both are checked to pass the verifier. Target: pybpf within
   1.3x of clang's instruction count.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from pybpf.dsl import compile_module  # noqa: E402

PAIRS = ("count", "opens", "syslat")
CLANG = shutil.which("clang-19") or shutil.which("clang")


def timed_compile(path: str, repeat: int) -> Tuple[float, float, int]:
    """(first compile ms, median warm ms, instructions) for a Python file."""
    t = time.perf_counter()
    spec = compile_module(path)
    first = (time.perf_counter() - t) * 1000
    warm = []
    for _ in range(repeat):
        t = time.perf_counter()
        compile_module(path)
        warm.append((time.perf_counter() - t) * 1000)
    n = sum(sum(i.slots for i in p.instructions) for p in spec.programs.values())
    return first, statistics.median(warm), n


def tools(repeat: int) -> None:
    files = sorted(glob.glob(os.path.join(ROOT, "programs", "*.py")))
    files = [f for f in files if not os.path.basename(f).startswith("_")]
    print("== compile time of programs/ (ms; first includes reading tracefs/BTF) ==")
    print(f"{'tool':<14} {'lines':>5} {'programs':>8} {'insns':>6} {'first':>8} {'warm':>8}")
    for path in files:
        name = os.path.basename(path)[:-3]
        try:
            first, warm, n = timed_compile(path, repeat)
            spec = compile_module(path)
        except Exception as exc:                    # a tool needing a target argument
            print(f"{name:<14} skipped: {type(exc).__name__}: {str(exc).splitlines()[0]}")
            continue
        lines = sum(1 for _ in open(path))
        print(f"{name:<14} {lines:>5} {len(spec.programs):>8} {n:>6} {first:>8.1f} {warm:>8.1f}")
    # a synthetic 300-line program: many small programs and maps in one module
    body = ["from pybpf.dsl import *", "", "counts = HashMap(u32, u64)",
            "hist = Histogram()", ""]
    i = 0
    while len(body) < 300:
        body += ["@tracepoint('syscalls:sys_enter_getpid')", f"def p{i}(args):",
                 f"    x: u64 = pid() * {i + 3}",
                 "    if x > 100 and tid() != 7:", f"        counts[pid()] += {i + 1}",
                 "    else:", "        hist[log2(x)] += 1", "    return 0", ""]
        i += 1
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write("\n".join(body) + "\n")
    try:
        first, warm, n = timed_compile(f.name, repeat)
    finally:
        os.unlink(f.name)
    print(f"{'synthetic':<14} {len(body):>5} {i:>8} {n:>6} {first:>8.1f} {warm:>8.1f}"
          f"   target <= 50 ms: {'met' if warm <= 50 else 'MISSED'} (warm)")


def clang_counts(src: str) -> Tuple[Dict[str, int], float, str]:
    from pybpf.object import read_object
    out = tempfile.mktemp(suffix=".o")
    t = time.perf_counter()
    subprocess.run([CLANG, "-O2", "-g", "-target", "bpf", "-c", src, "-o", out], check=True)
    ms = (time.perf_counter() - t) * 1000
    spec = read_object(out)
    counts = {n: sum(i.slots for i in p.instructions) for n, p in spec.programs.items()}
    return counts, ms, out


def verify(pybpf_spec, obj: str) -> str:
    """Load both versions (without attaching): 'ok' or the first error."""
    try:
        pybpf_spec.load(attach=False).close()
    except Exception as exc:
        return f"pybpf: {exc}".splitlines()[0]
    try:
        from pybpf.object import read_object
        from pybpf.object.collection import load_collection
        load_collection(read_object(obj)).close()
    except Exception as exc:
        return f"clang: {exc}".splitlines()[0]
    return "both load"


def sizes(repeat: int) -> None:
    print("\n== instructions: pybpf vs clang -O2 (slots per program) ==")
    if CLANG is None:
        print("clang not installed (apt-get install clang-19): skipped")
        return
    total_p = total_c = 0
    print(f"{'program':<20} {'pybpf':>6} {'clang':>6} {'ratio':>6}  {'pybpf ms':>8} "
          f"{'clang ms':>8}  verifier")
    for name in PAIRS:
        py = os.path.join(HERE, "compile", name + ".py")
        first, warm, _ = timed_compile(py, repeat)
        spec = compile_module(py)
        ccounts, cms, obj = clang_counts(os.path.join(HERE, "compile", name + ".bpf.c"))
        status = verify(spec, obj) if os.geteuid() == 0 else "not root: not loaded"
        os.unlink(obj)
        pyc = {n: sum(i.slots for i in p.instructions) for n, p in spec.programs.items()}
        for (pn, pcount), (cn, ccount) in zip(pyc.items(), ccounts.items()):
            total_p += pcount
            total_c += ccount
            print(f"{name + '.' + pn:<20} {pcount:>6} {ccount:>6} {pcount / ccount:>6.2f}  "
                  f"{warm:>8.1f} {cms:>8.1f}  {status}")
            warm = cms = 0.0
    ratio = total_p / total_c
    print(f"{'total':<20} {total_p:>6} {total_c:>6} {ratio:>6.2f}   target <= 1.3x: "
          f"{'met' if ratio <= 1.3 else 'MISSED'}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    tools(args.repeat)
    sizes(args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
