#!/usr/bin/env python3
"""Cold-process uprobe attach: pybpf against bpftrace, both on libc's malloc (needs root).

usage: sudo python3 benchmarks/attach.py [--repeat 5]

Each run starts a fresh process and measures, from the parent, the wall time until the
probe is in effect:

* pybpf: ``python3 -c`` that imports pybpf, creates a counter map, loads a counting
  kprobe-type program, resolves ``libc``/``malloc`` (ld.so.cache, ELF hash table) and
  attaches the uprobe, then prints ``attached``;
* pybpf, lean: the same program built as bytes and loaded through
  :mod:`pybpf.syscall`, attached with :mod:`pybpf.link.uprobe`, under ``python3 -S``
  (no site packages: the start-up every Python tool can have);
* bpftrace: ``uprobe:libc:malloc /!@hit/ { @hit = 1; printf("attached\\n"); }``: the
  line is printed on the first malloc after the probe is attached (a thread of this
  benchmark calls malloc continuously so that the first hit comes at once), so the time
  includes a few milliseconds of perf-buffer polling that count against bpftrace;
* also reported: bpftrace with ``BEGIN { exit(); }`` run to completion (its whole
  start-up, compile and exit, which does not prove the uprobe was attached).

Target (issue "attach"): pybpf in at most a third of bpftrace's time. The median of
``--repeat`` runs is reported, and the ratio bpftrace / pybpf.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from typing import List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

PYBPF_CHILD = r"""
import time
t0 = time.perf_counter()
import ctypes
from pybpf.asm import R0, R1, R2, R10
from pybpf.asm.builder import DW, W, Label, add, atomic_add, build, call, exit_, jeq, \
    ld_map_fd, mov, stx
from pybpf.link.uprobe import attach_uprobe, resolve_uprobe
from pybpf.maps import ArrayMap
from pybpf.program import ProgramSpec
from pybpf.syscall.bpf import ProgType
t1 = time.perf_counter()
counts = ArrayMap(value=ctypes.c_uint64, max_entries=1)
prog = ProgramSpec(ProgType.KPROBE, build([
    mov(R1, 0), stx(W, R10, -4, R1), mov(R2, R10), add(R2, -4),
    ld_map_fd(R1, counts), call("map_lookup_elem"), jeq(R0, 0, "out"),
    mov(R1, 1), atomic_add(DW, R0, 0, R1), Label("out"), mov(R0, 0), exit_()]),
    name="malloc_count").load()
t2 = time.perf_counter()
resolve_uprobe("libc", "malloc")
t3 = time.perf_counter()
link = attach_uprobe(prog, "libc", "malloc")
t4 = time.perf_counter()
print("attached", flush=True)
print("import %.1f load %.1f resolve %.1f attach %.1f ms" % (
    (t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3, (t4 - t3) * 1e3), flush=True)
"""

# the same program through the system-call layer only: no assembler, no map classes
PYBPF_LEAN_CHILD = r"""
import time
t0 = time.perf_counter()
import struct
from pybpf.syscall.bpf import MapType, ProgType
from pybpf.syscall.maps import map_create
from pybpf.syscall.progs import prog_load
from pybpf.link.uprobe import attach_uprobe
t1 = time.perf_counter()
counts = map_create(MapType.ARRAY, 4, 8, 1)
ins = lambda op, dst=0, src=0, off=0, imm=0: struct.pack("<BBhi", op, src << 4 | dst, off, imm)
code = b"".join([ins(0xB7, 1), ins(0x63, 10, 1, -4), ins(0xBF, 2, 10), ins(0x07, 2, imm=-4),
                 ins(0x18, 1, 1, imm=counts.fileno()), ins(0), ins(0x85, imm=1),
                 ins(0x15, 0, off=2), ins(0xB7, 1, imm=1), ins(0xDB, 0, 1), ins(0xB7, 0),
                 ins(0x95)])
prog = prog_load(ProgType.KPROBE, code, license="GPL", name="malloc_count")
t2 = time.perf_counter()
link = attach_uprobe(prog, "libc", "malloc")
t3 = time.perf_counter()
print("attached", flush=True)
print("import %.1f load %.1f resolve+attach %.1f ms" % (
    (t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3), flush=True)
"""

BPFTRACE_HIT = 'uprobe:libc:malloc /!@hit/ { @hit = 1; printf("attached\\n"); }'
BPFTRACE_BEGIN = 'uprobe:libc:malloc { @ = count(); } BEGIN { exit(); }'


def _until_line(cmd: List[str], marker: str, env: Optional[dict] = None,
                timeout: float = 60.0) -> "tuple[float, str]":
    """Seconds from spawning ``cmd`` until it prints a line containing ``marker``;
    the process is then killed. Returns (seconds, the rest of its first lines)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, env=env, cwd=ROOT)
    extra = ""
    try:
        assert proc.stdout is not None
        while True:
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError(f"{cmd[0]} ended without printing {marker!r}")
            if marker in line:
                elapsed = time.perf_counter() - start
                break
            if time.perf_counter() - start > timeout:
                raise TimeoutError(cmd[0])
        if cmd[0].endswith("python3") or "python" in os.path.basename(cmd[0]):
            extra = proc.stdout.readline().strip()
    finally:
        proc.kill()
        proc.wait()
    return elapsed, extra


def _run_to_end(cmd: List[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
                   cwd=ROOT)
    return time.perf_counter() - start


class _MallocStorm:
    """A thread that calls malloc/free all the time, so a fresh malloc uprobe fires at
    once."""

    def __init__(self) -> None:
        self.libc = ctypes.CDLL("libc.so.6")
        self.libc.malloc.restype = ctypes.c_void_p
        self.libc.free.argtypes = [ctypes.c_void_p]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        malloc, free = self.libc.malloc, self.libc.free
        while not self.stop.is_set():
            free(malloc(32))
            time.sleep(0.0002)

    def __enter__(self) -> "_MallocStorm":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root", file=sys.stderr)
        return 2
    python = os.path.realpath(sys.executable)
    env = dict(os.environ, PYTHONPATH=ROOT)
    bpftrace = shutil.which("bpftrace")

    _until_line([python, "-c", PYBPF_CHILD], "attached", env)        # warm the page cache
    pybpf_times, details = [], []
    for _ in range(args.repeat):
        t, extra = _until_line([python, "-c", PYBPF_CHILD], "attached", env)
        pybpf_times.append(t)
        details.append(extra)
    full = statistics.median(pybpf_times)
    print(f"pybpf    cold process -> uprobe libc:malloc attached: {full * 1e3:7.1f} ms "
          f"(median of {args.repeat}; {details[len(details) // 2]})")
    lean_runs = [_until_line([python, "-S", "-c", PYBPF_LEAN_CHILD], "attached", env)
                 for _ in range(args.repeat)]
    lean_runs.sort()
    py = lean_runs[len(lean_runs) // 2][0]
    print(f"pybpf    the same, syscall layer + link, python -S:   {py * 1e3:7.1f} ms "
          f"({lean_runs[len(lean_runs) // 2][1]})")
    print(f"         Python start-up alone: "
          f"{statistics.median(_run_to_end([python, '-c', 'pass']) for _ in range(3)) * 1e3:.1f} ms")
    if bpftrace is None:
        print("bpftrace is not installed (apt-get install bpftrace): no comparison")
        return 0
    with _MallocStorm():
        _until_line([bpftrace, "-e", BPFTRACE_HIT], "attached")       # warm
        bt_times = [_until_line([bpftrace, "-e", BPFTRACE_HIT], "attached")[0]
                    for _ in range(args.repeat)]
    bt = statistics.median(bt_times)
    begin = statistics.median(_run_to_end([bpftrace, "-e", BPFTRACE_BEGIN])
                              for _ in range(args.repeat))
    version = subprocess.run([bpftrace, "--version"], capture_output=True,
                             text=True).stdout.strip()
    print(f"bpftrace cold process -> first malloc hit printed:   {bt * 1e3:7.1f} ms "
          f"(median of {args.repeat}; {version})")
    print(f"bpftrace with BEGIN {{ exit() }}, start to exit:     {begin * 1e3:7.1f} ms")
    for label, value in (("full API", full), ("lean", py)):
        ratio = bt / value
        print(f"ratio bpftrace / pybpf ({label}): {ratio:.2f}x (target: at least 3x) -> "
              f"{'met' if ratio >= 3 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
