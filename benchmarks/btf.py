#!/usr/bin/env python3
"""Cold start of pybpf.btf on the running kernel's BTF.

usage: python3 benchmarks/btf.py [--runs 7]

Each run is a fresh Python process that measures, from just before ``import pybpf.btf``
(interpreter start-up excluded) to the moment ``struct task_struct`` is materialised:

* the wall time: import, open and scan ``/sys/kernel/btf/vmlinux``, find the name,
  build the record;
* the growth of the resident set (VmRSS from /proc/self/status) over the same span.

Target (issue "btf"): at most 150 ms and 40 MB. The median and the best of ``--runs``
are printed, then, in one more fresh process, the cost of later work (a field path, a
thousand name lookups, every type materialised, the whole C header). For scale,
``bpftool btf dump file /sys/kernel/btf/vmlinux format raw | head -1`` is timed as a
whole process (libbpf parses the blob in C).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
TARGET_MS = 150.0
TARGET_MB = 40.0

COLD = r"""
import json, sys, time
def rss():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
rss0 = rss()
t0 = time.perf_counter()
import pybpf.btf
btf = pybpf.btf.vmlinux()
tid = btf.type_id("task_struct", "struct")
task = btf.type(tid)
t1 = time.perf_counter()
rss1 = rss()
assert task.size > 0
print(json.dumps({"ms": (t1 - t0) * 1000, "rss": rss1 - rss0, "types": len(btf) - 1,
                  "members": len(task.members)}))
"""

LATER = r"""
import json, time
from pybpf.btf import vmlinux
from pybpf.btf import resolve, render
out = {}
t = time.perf_counter(); btf = vmlinux(); btf.type_id("task_struct", "struct")
out["cold"] = time.perf_counter() - t
t = time.perf_counter(); resolve.field_path(btf, "task_struct.real_parent.tgid")
out["field_path"] = time.perf_counter() - t
names = ["sk_buff", "file", "inode", "cred", "mm_struct", "sock", "dentry", "path",
         "net_device", "bpf_prog"] * 100
t = time.perf_counter()
for n in names:
    btf.ids(n)
out["lookups_1000"] = time.perf_counter() - t
t = time.perf_counter()
for _ in btf.types():
    pass
out["materialise_all"] = time.perf_counter() - t
t = time.perf_counter(); text = render.render_header(btf)
out["header"] = time.perf_counter() - t
out["header_bytes"] = len(text)
print(json.dumps(out))
"""


def fresh(code: str) -> dict:
    env = dict(os.environ, PYTHONPATH=os.path.abspath(ROOT))
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, timeout=300)
    if run.returncode:
        raise SystemExit(run.stderr)
    return json.loads(run.stdout)


def bpftool_ms(runs: int) -> float:
    tool = shutil.which("bpftool")
    if tool is None:
        return float("nan")
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(f"{tool} btf dump file /sys/kernel/btf/vmlinux format raw | head -1",
                       shell=True, stdout=subprocess.DEVNULL, check=False)
        best = min(best, time.perf_counter() - start)
    return best * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    if not os.path.exists("/sys/kernel/btf/vmlinux"):
        print("no /sys/kernel/btf/vmlinux on this machine")
        return 1
    results = [fresh(COLD) for _ in range(args.runs)]
    ms = [r["ms"] for r in results]
    mb = [r["rss"] / 2 ** 20 for r in results]
    print(f"vmlinux BTF: {results[0]['types']} types, "
          f"{os.path.getsize('/sys/kernel/btf/vmlinux') / 2 ** 20:.1f} MiB")
    print(f"cold parse to first task_struct lookup ({args.runs} fresh processes):")
    print(f"  time: median {statistics.median(ms):.1f} ms, best {min(ms):.1f} ms, "
          f"worst {max(ms):.1f} ms (target {TARGET_MS:.0f} ms)")
    print(f"  RSS growth: median {statistics.median(mb):.1f} MiB, worst {max(mb):.1f} MiB "
          f"(target {TARGET_MB:.0f} MB)")
    later = fresh(LATER)
    print("later work, one fresh process:")
    print(f"  field path task_struct.real_parent.tgid: {later['field_path'] * 1000:.2f} ms")
    print(f"  1000 name lookups: {later['lookups_1000'] * 1000:.1f} ms")
    print(f"  materialise every type: {later['materialise_all'] * 1000:.0f} ms")
    print(f"  whole C header ({later['header_bytes'] / 2 ** 20:.1f} MiB): "
          f"{later['header'] * 1000:.0f} ms")
    print(f"bpftool btf dump ... format raw | head -1, whole process, best of "
          f"{args.runs}: {bpftool_ms(args.runs):.1f} ms")
    ok = statistics.median(ms) <= TARGET_MS and max(mb) <= TARGET_MB
    print("within target" if ok else "OVER TARGET")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
