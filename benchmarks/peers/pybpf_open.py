#!/usr/bin/env python3
"""pybpf's openat tracer for benchmarks/peers.py (needs root).

usage: python3 benchmarks/peers/pybpf_open.py [--pid TGID] [--out ring|perf]
                                              [--wakeup adaptive|per_event] [--count]

Prints ``comm filename`` per openat call (the "minimal program" of the start-up test)
until SIGINT. With ``--count`` it prints only the first event (so the caller knows the
probe is live), counts the rest, and on SIGINT drains the buffer and prints
``received N lost M``. ``--pid`` keeps only that process's calls, in the kernel.
"""

from __future__ import annotations

import time

T0 = time.monotonic()

import argparse  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pybpf_prog as pp  # noqa: E402
from pybpf.events import Poller, RingBufReader  # noqa: E402
from pybpf.events.perfbuf import PerfBufReader  # noqa: E402
from pybpf.link import attach_tracepoint  # noqa: E402
from pybpf.maps import ArrayMap, PerfEventArray, RingBuf  # noqa: E402
from pybpf.program import ProgramSpec  # noqa: E402
from pybpf.syscall.bpf import ProgType  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pid", type=int)
    ap.add_argument("--out", choices=("ring", "perf"), default="ring")
    ap.add_argument("--wakeup", default="adaptive")
    ap.add_argument("--count", action="store_true")
    ap.add_argument("--ring-kb", type=int,
                    help="ring buffer size (default 256 KiB; 8 MiB with --count)")
    args = ap.parse_args()
    ring_bytes = args.ring_kb * 1024 if args.ring_kb else \
        (pp.RING_BYTES if args.count else 256 * 1024)
    t_import = time.monotonic()

    stop = [False]

    def on_sigint(signum: int, frame: object) -> None:
        stop[0] = True
    signal.signal(signal.SIGINT, on_sigint)

    count = [0]
    write = sys.stdout.write
    flush = sys.stdout.flush

    if args.count:
        def batch(records: list) -> None:
            if count[0] == 0 and records:
                write(pp.event_line(records[0]) + "\n")
                flush()
            count[0] += len(records)
    else:
        def batch(records: list) -> None:
            count[0] += len(records)
            write("".join(pp.event_line(r) + "\n" for r in records))
            flush()

    drops = ArrayMap(value=8, max_entries=1, name="drops")
    if args.out == "perf":
        target = PerfEventArray(name="events")
        reader = PerfBufReader(target, batch_callback=batch, record=pp.EVENT,
                               pages=pp.PERF_PAGES, wakeup=args.wakeup)
    else:
        target = RingBuf(size=ring_bytes, name="events")
        reader = RingBufReader(target, batch_callback=batch, record=pp.EVENT,
                               wakeup=args.wakeup, drops=(drops, 0))
    t_maps = time.monotonic()
    code = pp.build_program(args.out, target, drops, args.pid, args.wakeup)
    prog = ProgramSpec(ProgType.TRACEPOINT, code, name="peers_open").load()
    t_load = time.monotonic()
    link = attach_tracepoint(prog, "syscalls", "sys_enter_openat")
    t_attach = time.monotonic()
    # where the start-up goes, for benchmarks/peers.py (ms since the script started)
    sys.stderr.write("pybpf-phases: imports %.1f maps+reader %.1f build+load %.1f "
                     "attach %.1f\n" % tuple(1e3 * (b - a) for a, b in (
                         (T0, t_import), (t_import, t_maps), (t_maps, t_load),
                         (t_load, t_attach))))
    sys.stderr.flush()
    poller = Poller([reader])
    try:
        while not stop[0]:
            poller.poll(0.1)
    except (BrokenPipeError, KeyboardInterrupt):
        pass
    link.close()
    while poller.consume():
        pass
    if args.count:
        lost = reader.lost or 0
        try:
            write(f"received {count[0]} lost {lost}\n")
            flush()
        except BrokenPipeError:
            pass
    poller.close()
    reader.close()
    prog.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
