#!/usr/bin/env python3
"""Lesson 16, entry/return latency: how long vfs_read() takes, as a histogram.

``@kprobe("vfs_read")`` runs when the kernel function is entered and
``@kretprobe("vfs_read")`` when it returns. The entry stores the time under the
thread's id (a thread is in one ``vfs_read`` at a time); the return takes it out,
adds the microseconds to a log2 histogram and deletes the slot. User space prints the
histogram every ``interval`` seconds and clears it, as BCC's lesson does. (fentry/fexit,
lesson 3, see the entry's arguments at the return and need no map.)

It needs kprobes (``CONFIG_KPROBES``): a kernel without them refuses with one line,
``16_vfsreadlat: kprobes: this kernel has no kprobe PMU and no kprobe_events``; the
tests run it in the vmtest stage.

``pybpf compile --disasm -f do_return programs/tutorial/16_vfsreadlat.py``, the key line::

    ; programs/tutorial/16_vfsreadlat.py:86      dist[log2((ktime_ns() - ts[0]) // 1000)] += 1
        12: call 0x5
        13: r1 = r0
        14: r2 = *(u64 *)(r6 + 0x0)
        15: r1 -= r2
        16: r1 /= 0x3e8
        17: r2 = r1
        18: r1 = 0x0
        19: r3 = r2
        20: r3 >>= 0x20
        21: if r3 == 0x0 goto +0x2
        22: r2 = r3
        23: r1 += 0x20
        24: r3 = r2
        25: r3 >>= 0x10
        26: if r3 == 0x0 goto +0x2
        27: r2 = r3
        28: r1 += 0x10
        29: r3 = r2
        30: r3 >>= 0x8
        31: if r3 == 0x0 goto +0x2
        32: r2 = r3
        33: r1 += 0x8
        34: r3 = r2
        35: r3 >>= 0x4
        36: if r3 == 0x0 goto +0x2
        37: r2 = r3
        38: r1 += 0x4
        39: r3 = r2
        40: r3 >>= 0x2
        41: if r3 == 0x0 goto +0x2
        42: r2 = r3
        43: r1 += 0x2
        44: r3 = r2
        45: r3 >>= 0x1
        46: if r3 == 0x0 goto +0x2
        47: r2 = r3
        48: r1 += 0x1
        49: r1 += r2
        50: *(u32 *)(r10 - 0x8) = w1
        51: ld_pseudo	r1, 0x1, 0x0
        53: r2 = r10
        54: r2 += -0x8
        55: call 0x1
        56: r1 = r0
        57: if r1 == 0x0 goto +0x2
        58: r2 = 0x1
        59: lock *(u64 *)(r1 + 0x0) += r2
"""

from pybpf.dsl import HashMap, Histogram, kprobe, kretprobe, ktime_ns, log2, tid, u32, u64
from pybpf.events.histogram import Log2Histogram
from pybpf.tooling import (
    ToolParser, load_tool, positive_int, positive_seconds, run_tool, take_log2, tool_main,
)

start = HashMap(u32, u64, max_entries=10240)
dist = Histogram()


@kprobe("vfs_read")
def do_entry(ctx):
    start[tid()] = ktime_ns()
    return 0


@kretprobe("vfs_read")
def do_return(ctx):
    ts = start.get(tid())
    if ts is None:
        return 0                      # entered before tracing began
    dist[log2((ktime_ns() - ts[0]) // 1000)] += 1
    del start[tid()]
    return 0


def main(argv=None) -> int:
    parser = ToolParser("16_vfsreadlat", "Summarize vfs_read() latency as histograms")
    parser.add_argument("interval", nargs="?", type=positive_seconds, default=5.0,
                        help="seconds between histograms (default 5)")
    parser.add_argument("count", nargs="?", type=positive_int, help="number of histograms")
    args = parser.parse_args(argv)
    with load_tool(__name__) as mod:
        def show() -> None:
            print(Log2Histogram(take_log2(mod["dist"])).bcc("usecs"), end="")
        print("Tracing vfs_read()... Hit Ctrl-C to end.")
        run_tool(mod, interval=args.interval, count=args.count, on_interval=show)
    return 0


if __name__ == "__main__":
    tool_main(main)
