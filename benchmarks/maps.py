#!/usr/bin/env python3
"""Map operations from Python against bpftool, on the running kernel (needs root).

usage: sudo python3 benchmarks/maps.py [--ops 200000] [--entries 100000] [--repeat 3]

* single elements: ``m[k]`` and ``m[k] = v`` on a hash map and an array map (u32 keys,
  u64 values), in operations per second; beside them ``bpftool map lookup`` and
  ``bpftool map update`` run as one process per operation, which is what a shell script
  gets;
* a whole map: a hash map of ``--entries`` elements read back by pybpf (batch lookups
  into typed Python values, the raw batch layer, and the key-by-key walk that kernels
  without batches get), against ``bpftool map dump id N`` (text and ``--json``) run as a
  whole process on the same map.

Target (issue 3): all 100,000 entries read in under 0.5 s. The best of ``--repeat`` runs
is reported; ratios are pybpf's speed over bpftool's.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from ctypes import c_uint32, c_uint64
from typing import Callable, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

from pybpf.maps import ArrayMap, HashMap, Map  # noqa: E402
from pybpf.syscall import maps as sysmaps  # noqa: E402

TARGET_SECONDS = 0.5


def best_of(repeat: int, fn: Callable[[], object]) -> float:
    """The shortest of ``repeat`` timings of ``fn()``, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def bpftool_path() -> Optional[str]:
    return shutil.which("bpftool") or next(
        (p for p in ("/usr/sbin/bpftool", "/sbin/bpftool") if os.path.exists(p)), None)


def hex_words(data: bytes) -> List[str]:
    return [f"0x{b:02x}" for b in data]


def single_ops(m: Map, ops: int, repeat: int) -> Tuple[float, float]:
    size = m.max_entries
    for i in range(size):
        m[i] = i

    def lookups() -> None:
        for i in range(ops):
            m[i % size]

    def updates() -> None:
        for i in range(ops):
            m[i % size] = i

    return ops / best_of(repeat, lookups), ops / best_of(repeat, updates)


def bpftool_single(tool: str, m: Map, runs: int) -> Tuple[float, float]:
    key = hex_words((1).to_bytes(4, "little"))
    value = hex_words((7).to_bytes(8, "little"))
    lookup = [tool, "map", "lookup", "id", str(m.id), "key", *key]
    update = [tool, "map", "update", "id", str(m.id), "key", *key, "value", *value]

    def run(cmd: List[str]) -> float:
        start = time.perf_counter()
        for _ in range(runs):
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        return runs / (time.perf_counter() - start)

    return run(lookup), run(update)


def row(label: str, ours: float, theirs: Optional[float], unit: str) -> str:
    ratio = f"{ours / theirs:10.1f}x" if theirs else f"{'-':>11}"
    their_text = f"{theirs:14,.0f}" if theirs else f"{'n/a':>14}"
    return f"  {label:<28}{ours:14,.0f}{their_text}{ratio}  {unit}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ops", type=int, default=200_000, help="single-element operations")
    parser.add_argument("--entries", type=int, default=100_000, help="entries in the big map")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measure (best kept)")
    parser.add_argument("--bpftool-runs", type=int, default=20,
                        help="bpftool processes per single-element measure")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root (bpf())", file=sys.stderr)
        return 1
    tool = bpftool_path()

    print(f"single elements ({args.ops:,} operations, best of {args.repeat}); bpftool: one "
          "process per operation")
    print(f"  {'':<28}{'pybpf':>14}{'bpftool':>14}{'ratio':>11}")
    for cls in (HashMap, ArrayMap):
        with cls(key=c_uint32, value=c_uint64, max_entries=1024, name="bench") as m:
            look, upd = single_ops(m, args.ops, args.repeat)
            their_look, their_upd = (bpftool_single(tool, m, args.bpftool_runs)
                                     if tool else (None, None))
            kind = cls.__name__
            print(row(f"{kind} lookup", look, their_look, "ops/s"))
            print(row(f"{kind} update", upd, their_upd, "ops/s"))

    n = args.entries
    print(f"\nreading a {n:,}-entry hash map (u32 -> u64), best of {args.repeat}")
    with HashMap(key=c_uint32, value=c_uint64, max_entries=n, name="bench_big") as m:
        fill = best_of(1, lambda: m.update_batch((i, i * 3) for i in range(n)))
        print(f"  filled with update_batch in {fill:.3f} s")
        results: List[Tuple[str, float, int]] = []

        def typed() -> None:
            got = m.lookup_batch()
            assert len(got) == n
        results.append(("pybpf lookup_batch() (typed)", best_of(args.repeat, typed), n))

        def as_dict() -> None:
            assert len(dict(m.items())) == n
        results.append(("pybpf dict(m.items())", best_of(args.repeat, as_dict), n))

        def raw() -> None:
            count, token = 0, None
            while True:
                piece = sysmaps.map_lookup_batch(m.fd, 4, 8, 8192, in_batch=token)
                count += piece.count
                if piece.next_batch is None:
                    break
                token = piece.next_batch
            assert count == n
        results.append(("pybpf raw batches (bytes)", best_of(args.repeat, raw), n))

        def walk() -> None:
            m._batch_ok = False
            try:
                assert sum(1 for _ in m.items()) == n
            finally:
                m._batch_ok = None
        results.append(("pybpf key walk (no batches)", best_of(1, walk), n))

        bpftool_times: List[Tuple[str, float]] = []
        if tool:
            for label, extra in (("bpftool map dump", []), ("bpftool map dump --json",
                                                            ["--json"])):
                cmd = [tool, "map", "dump", "id", str(m.id), *extra]
                bpftool_times.append((label, best_of(args.repeat, lambda c=cmd: subprocess.run(
                    c, check=True, stdout=subprocess.DEVNULL))))
        reference = bpftool_times[0][1] if bpftool_times else None
        print(f"  {'':<30}{'seconds':>10}{'entries/s':>14}{'vs bpftool dump':>18}")
        for label, seconds, count in results:
            ratio = f"{reference / seconds:16.1f}x" if reference else f"{'-':>17}"
            print(f"  {label:<30}{seconds:10.3f}{count / seconds:14,.0f}{ratio}")
        for label, seconds in bpftool_times:
            ratio = f"{reference / seconds:16.1f}x" if reference else ""
            print(f"  {label:<30}{seconds:10.3f}{n / seconds:14,.0f}{ratio}")
        verdict = "met" if results[0][1] < TARGET_SECONDS else "MISSED"
        print(f"\ntarget: {n:,} entries in under {TARGET_SECONDS} s with batches: {verdict} "
              f"({results[0][1]:.3f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
