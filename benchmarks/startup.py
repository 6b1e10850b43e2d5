#!/usr/bin/env python3
"""Start-up of ``pybpf run opensnoop``: exec to first event line, with a cold and a warm
cache of compiled programs, and peak RSS (needs root and gcc for ``peers/ticker.c``).

usage: sudo python3 benchmarks/startup.py [--runs 5] [--tool opensnoop] [--python-only]

Each run starts the command with ``Popen`` (fork + exec), reads its stdout through a
pipe and stamps the first line that is not a header with ``time.monotonic``; then it
reads the process's ``VmHWM`` (peak RSS) and sends SIGINT. ``peers/ticker.c`` opens a
file every millisecond and the tool traces only its pid (``-p``), so an attached
opensnoop has an event within ~1 ms whatever else runs on the machine. The
variants run interleaved, round by round; figures are medians (the machine is shared).
"CPU ms by then" is the CPU time the process used up to its first event (all threads,
``/proc/PID/task/*/schedstat``): close to the wall time on an idle machine, and much
less sensitive than wall time to other work competing for the CPUs.

- *cold cache*: ``PYBPF_CACHE_DIR`` is a new empty directory each run (compiles and
  stores); *warm cache*: a directory filled once before the runs (no compiler import);
  *no cache*: ``PYBPF_NO_CACHE=1`` (compiles, stores nothing).
- Python's own start, for reference: ``python3 -c pass`` and ``python3 -S -c pass``
  (exec to exit), and ``python3 -I -S`` with only this checkout on ``sys.path``.

pybpf, programs/ and this directory are byte-compiled first, as ``pip install`` does
(with ``PYTHONDONTWRITEBYTECODE`` set a checkout would recompile every module each start).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
HEADERS = (b"PID", b"TID", b"TIME", b"UID", b"COMM", b"Tracing", b"Attaching")


def build_ticker(workdir: str) -> str:
    """``peers/ticker.c`` built with gcc into ``workdir``."""
    exe = os.path.join(workdir, "ticker")
    subprocess.run(["gcc", "-O2", "-o", exe, os.path.join(HERE, "peers", "ticker.c")],
                   check=True)
    return exe


def first_event(argv: List[str], env: Dict[str, str]) -> Tuple[Optional[float], float, float]:
    """(ms from exec to the first event line or None, peak RSS in MB, CPU ms used by
    then) of one run."""
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL, env=env, cwd=ROOT,
                            start_new_session=True)
    got: List[float] = []
    done = threading.Event()

    def read() -> None:
        pending = b""
        while True:
            chunk = os.read(proc.stdout.fileno(), 1 << 16)   # type: ignore[union-attr]
            if not chunk:
                break
            if not got:
                now = time.monotonic()
                pending += chunk
                lines = pending.split(b"\n")
                pending = lines.pop()
                if any(ln and not ln.startswith(HEADERS) for ln in lines):
                    got.append(now)
                    done.set()
        done.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    done.wait(30)
    hwm = _vm_hwm(proc.pid)
    cpu = _cpu_ms(proc.pid)
    try:
        os.kill(proc.pid, signal.SIGINT)
    except ProcessLookupError:
        pass
    os.wait4(proc.pid, 0)
    proc.returncode = 0
    reader.join(5)
    proc.stdout.close()                                         # type: ignore[union-attr]
    return ((got[0] - t0) * 1e3 if got else None), hwm, cpu


def _cpu_ms(pid: int) -> float:
    """CPU time the process has used so far, in ms (all its threads, from
    ``/proc/PID/task/*/schedstat``, in ns): what the start-up costs whatever the load
    on the machine, where wall time also counts waiting for a CPU."""
    total = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/schedstat") as fh:
                total += int(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return float("nan")
    return total / 1e6


def _vm_hwm(pid: int) -> float:
    """The process's peak RSS so far in MB (``VmHWM``: its own, unlike ``wait4``'s
    ``ru_maxrss``, which also counts the parent's RSS at fork)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def exec_to_exit(argv: List[str], env: Dict[str, str]) -> Tuple[float, float, float]:
    """(ms from exec to exit, NaN, CPU ms) of a command that ends by itself."""
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, env=env)
    _, _, ru = os.wait4(proc.pid, 0)
    proc.returncode = 0
    return ((time.monotonic() - t0) * 1e3, float("nan"),
            (ru.ru_utime + ru.ru_stime) * 1e3)


def pybpf_argv(tool: str) -> List[str]:
    """``pybpf run TOOL`` through the installed console script when it sits beside this
    Python, else ``python3 -m pybpf``."""
    script = os.path.join(os.path.dirname(sys.executable), "pybpf")
    if os.path.isfile(script):
        return [sys.executable, script, "run", tool]
    return [sys.executable, "-m", "pybpf", "run", tool]


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--tool", default="opensnoop")
    ap.add_argument("--python-only", action="store_true",
                    help="only Python's own start (no root needed)")
    args = ap.parse_args(argv)
    import compileall
    for d in ("pybpf", "programs", "benchmarks"):
        compileall.compile_dir(os.path.join(ROOT, d), quiet=1)
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("PYBPF_NO_CACHE", None)
    rows: Dict[str, List[Tuple[Optional[float], float, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        warm = os.path.join(tmp, "warm")
        plain = [("python3 -c pass", [sys.executable, "-c", "pass"], env),
                 ("python3 -S -c pass", [sys.executable, "-S", "-c", "pass"], env),
                 ("python3 -I -S -c 'import pybpf.cli'",
                  [sys.executable, "-I", "-S", "-c",
                   f"import sys; sys.path.insert(0, {ROOT!r}); import pybpf.cli"], env)]
        tools = []
        if not args.python_only:
            if os.geteuid() != 0:
                sys.exit("benchmarks/startup.py needs root (or --python-only)")
            ticker = subprocess.Popen([build_ticker(tmp)], stdin=subprocess.DEVNULL)
            # only the ticker's opens: other work on the machine may open files by the
            # million, and the first event must not wait behind them
            cmd = pybpf_argv(args.tool) + ["-p", str(ticker.pid)]
            first_event(cmd, dict(env, PYBPF_CACHE_DIR=warm))     # fills the warm cache
            tools = [(f"pybpf run {args.tool}, warm cache", cmd,
                      dict(env, PYBPF_CACHE_DIR=warm)),
                     (f"pybpf run {args.tool}, cold cache", cmd, None),
                     (f"pybpf run {args.tool}, PYBPF_NO_CACHE=1", cmd,
                      dict(env, PYBPF_NO_CACHE="1"))]
        try:
            for i in range(args.runs):
                for name, cmd, e in plain:
                    rows.setdefault(name, []).append(exec_to_exit(cmd, e))
                for name, cmd, e in tools:
                    if e is None:                                  # cold: a new directory
                        e = dict(env, PYBPF_CACHE_DIR=os.path.join(tmp, f"cold{i}"))
                    rows.setdefault(name, []).append(first_event(cmd, e))
        finally:
            if tools:
                ticker.kill()
                ticker.wait()
    print(f"median of {args.runs} (load average {os.getloadavg()[0]:.2f}; the machine is "
          "shared, expect noise)")
    print("| command | ms (exec to first event, or to exit) | runs | CPU ms by then "
          "| peak RSS (MB) |")
    print("| --- | ---: | --- | ---: | ---: |")
    for name, got in rows.items():
        ms = [m for m, _, _ in got if m is not None]
        med = f"{statistics.median(ms):.1f}" if ms else "no event"
        runs = ", ".join(f"{m:.0f}" if m is not None else "-" for m, _, _ in got)
        rss = [r for _, r, _ in got if r == r]                    # not NaN
        cpu = [c for _, _, c in got if c == c]
        print(f"| {name} | {med} | {runs} | "
              f"{f'{statistics.median(cpu):.1f}' if cpu else '-'} | "
              f"{f'{statistics.median(rss):.1f}' if rss else '-'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
