#!/usr/bin/env python3
"""Lesson 9, histograms: summarise in the kernel, print once.

Instead of an event per context switch, the kernel counts: the time a task waited on
the run queue (from its wake-up to the switch that runs it) goes into a log2
histogram, ``hist[log2(usecs)] += 1`` on an array of 64 counters. User space reads the
array at the end and prints it as BCC does. BTF tracepoints (``@tp_btf``) give typed
arguments: ``ctx.p.pid``, ``ctx.next.pid``.
"""

from pybpf.dsl import HashMap, Histogram, ktime_ns, log2, tp_btf, u32, u64
from pybpf.events.histogram import Log2Histogram
from pybpf.tooling import ToolParser, load_tool, run_tool, tool_main

start = HashMap(u32, u64, max_entries=10240)
hist = Histogram()


@tp_btf("sched_wakeup")
def wakeup(ctx):
    start[u32(ctx.p.pid)] = ktime_ns()
    return 0


@tp_btf("sched_switch")
def switch(ctx):
    t = start.get(u32(ctx.next.pid))
    if t is None:
        return 0
    hist[log2((ktime_ns() - t[0]) // 1000)] += 1
    del start[u32(ctx.next.pid)]
    return 0


def main(argv=None) -> int:
    parser = ToolParser("09_runqlat", "Summarize run queue latency as a histogram")
    parser.add_argument("duration", nargs="?", type=int, help="seconds to trace")
    args = parser.parse_args(argv)
    with load_tool(__name__) as mod:
        print("Tracing run queue latency... Hit Ctrl-C to end.")
        run_tool(mod, duration=args.duration)
        print(Log2Histogram(mod["hist"]).bcc("usecs"), end="")
    return 0


if __name__ == "__main__":
    tool_main(main)
