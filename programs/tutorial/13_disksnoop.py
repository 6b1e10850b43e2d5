#!/usr/bin/env python3
"""Lesson 13, block tracepoints: the latency, size and flags of each disk request.

A request is issued to the device (``block:block_rq_issue``) and later completed
(``block:block_rq_complete``), often on another CPU and in another task's context. The
two events name the same request by its device and first sector, so a struct of both
(``Rq``) is the hash map key that links them: the issue stores its time and size, the
completion takes them out and sends one ``Done`` record with the latency. ``rwbs`` is
the kernel's flags text for the request: ``R`` read, ``W`` write, ``S`` sync, ``A``
read-ahead, ``F`` flush, ``M`` metadata.

(BCC's lesson used kprobes on the block layer's functions and a ``struct request *``
as the key; the tracepoints are the stable interface to the same events.)

``pybpf compile --disasm -f rq_issue programs/tutorial/13_disksnoop.py``, the key line::

    ; programs/tutorial/13_disksnoop.py:62      start[k] = Start(ts_ns=ktime_ns(), bytes=args.bytes)
         7: *(u64 *)(r10 - 0x20) = 0x0
         8: *(u64 *)(r10 - 0x18) = 0x0
         9: call 0x5
        10: *(u64 *)(r10 - 0x20) = r0
        11: w1 = *(u32 *)(r6 + 0x1c)
        12: *(u64 *)(r10 - 0x18) = r1
        13: ld_pseudo	r1, 0x1, 0x0
        15: r2 = r10
        16: r2 += -0x10
        17: r3 = r10
        18: r3 += -0x20
        19: r4 = 0x0
        20: call 0x2
"""

from pybpf.dsl import HashMap, RingBuf, Struct, char, ktime_ns, tracepoint, u32, u64
from pybpf.tooling import ToolParser, disk_name, load_tool, run_tool, tool_main


class Rq(Struct):
    dev: u64
    sector: u64


class Start(Struct):
    ts_ns: u64
    bytes: u64


class Done(Struct):
    ts_ns: u64
    lat_ns: u64
    bytes: u64
    dev: u32
    rwbs: char[10]


start = HashMap(Rq, Start, max_entries=10240)
events = RingBuf(Done, size=256 * 1024)


@tracepoint("block:block_rq_issue")
def rq_issue(args):
    k = Rq(dev=args.dev, sector=args.sector)
    start[k] = Start(ts_ns=ktime_ns(), bytes=args.bytes)
    return 0


@tracepoint("block:block_rq_complete")
def rq_complete(args):
    k = Rq(dev=args.dev, sector=args.sector)
    s = start.get(k)
    if s is None:
        return 0                      # issued before tracing began
    d = Done()
    d.ts_ns = ktime_ns()
    d.lat_ns = d.ts_ns - s.ts_ns
    d.bytes = s.bytes
    d.dev = args.dev
    d.rwbs = args.rwbs
    events.output(d)
    del start[k]
    return 0


def show(d) -> None:
    """One line per request: BCC's columns, then the disk and the full flags."""
    flags = d.rwbs
    kind = "W" if "W" in flags else "R"
    print(f"{d.ts_ns / 1e9:<18.6f} {kind:<2} {d.bytes:<7} {d.lat_ns / 1e6:8.2f} "
          f"{disk_name(d.dev):<8} {flags}")


def main(argv=None) -> int:
    ToolParser("13_disksnoop", "Trace block requests: size, flags, latency").parse_args(argv)
    with load_tool(__name__) as mod:
        mod.on("events", show)
        print(f"{'TIME(s)':<18} {'T':<2} {'BYTES':<7} {'LAT(ms)':>8} {'DISK':<8} FLAGS")
        run_tool(mod)
    return 0


if __name__ == "__main__":
    tool_main(main)
