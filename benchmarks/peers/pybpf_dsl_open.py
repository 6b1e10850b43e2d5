#!/usr/bin/env python3
"""The openat tracer of pybpf_open.py written in pybpf's language (pybpf.dsl), for
benchmarks/peers.py: the same 88-byte record (tgid, comm, 64 bytes of path) on a ring
buffer with adaptive wake-ups, so the DSL compiler's output can be set beside the
builder's and clang's.

usage: python3 benchmarks/peers/pybpf_dsl_open.py [--pid TGID] [--count]

Prints ``comm filename`` per openat call until SIGINT; with ``--count`` only the first,
then on SIGINT prints ``received N lost M`` (M: the records the full ring refused,
counted by the program; the consumer takes whole batches).
"""

import time

T0 = time.monotonic()

import argparse  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))

from pybpf.dsl import RingBuf, Struct, char, comm, const, pid, probe_read_user_str, \
    tracepoint, u32  # noqa: E402
from pybpf.tooling import load_tool  # noqa: E402


class Event(Struct):
    pid: u32
    pad: u32
    comm: char[16]
    filename: char[64]


events = RingBuf(Event, size=256 * 1024)
TGID = const(u32, 0)        # 0: every process


@tracepoint("syscalls:sys_enter_openat")
def peers_dsl_open(args):
    if TGID and pid() != TGID:
        return 0
    e = Event()
    e.pid = pid()
    e.pad = 0
    e.comm = comm()
    e.filename = probe_read_user_str(args.filename)
    events.output(e)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pid", type=int, default=0)
    ap.add_argument("--count", action="store_true")
    args = ap.parse_args()
    if args.count:              # the throughput test's ring size (class-level: before load)
        global events
        events = RingBuf(Event, size=8 << 20)
    t_import = time.monotonic()
    count = [0]
    write, flush = sys.stdout.write, sys.stdout.flush

    def on_event(raw: bytes) -> None:
        if not args.count or count[0] == 0:
            c = raw[8:24].split(b"\0", 1)[0].decode("utf-8", "replace")
            f = raw[24:88].split(b"\0", 1)[0].decode("utf-8", "replace")
            write(f"{c} {f}\n")
            flush()
        count[0] += 1

    signal.signal(signal.SIGINT, signal.default_int_handler)
    mod = load_tool(__name__, consts={"TGID": args.pid})
    t_load = time.monotonic()
    sys.stderr.write("pybpf-phases: imports %.1f compile+load+attach %.1f\n"
                     % (1e3 * (t_import - T0), 1e3 * (t_load - t_import)))
    sys.stderr.flush()
    if args.count:
        def on_batch(records: list) -> None:
            if count[0] == 0:
                on_event(records[0])
                count[0] -= 1
            count[0] += len(records)
        mod.on("events", on_batch, decode=False, batch=True)
    else:
        mod.on("events", on_event, decode=False)
    try:
        while True:
            mod.poll(0.1)
    except KeyboardInterrupt:
        pass
    try:
        while mod.poll(0):
            pass
    except KeyboardInterrupt:
        pass
    if args.count:
        write(f"received {count[0]} lost {mod.lost('events')}\n")
        flush()
    mod.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
