#!/usr/bin/env python3
"""softirqs: summarize soft interrupt time (or counts) by vector, like BCC's softirqs.

``irq:softirq_entry`` stores the time on this CPU (a per-CPU array: softirqs do not nest
on one CPU); ``irq:softirq_exit`` adds the time spent to the vector's total, counts the
event (-C), or counts the time in a log2 histogram per vector (-d, key ``(vec, slot)``).
"""

from pybpf.dsl import (
    HashMap, PerCPUArrayMap, Struct, const, cpu, ktime_ns, log2, tracepoint, u32, u64,
)
from pybpf.events.histogram import bcc_sections
from pybpf.tooling import (
    ToolParser, add_interval_args, cpu_number, load_tool, run_tool, summary_heading,
    take_keyed_log2, tool_main,
)

VECTORS = ["hi", "timer", "net_tx", "net_rx", "block", "irq_poll", "tasklet", "sched",
           "hrtimer", "rcu"]


class VecSlot(Struct):
    vec: u32
    slot: u32


start = PerCPUArrayMap(u64, 1)                  # entry time on this CPU
totals = HashMap(u32, u64, max_entries=16)       # vector -> total time (or count)
dists = HashMap(VecSlot, u64, max_entries=1024)  # -d: (vector, slot) -> count
UNIT_NS = const(u64, 1000)
COUNT = const(u32, 0)
DIST = const(u32, 0)
CPU_FILTER = const(u32, 0)
TARGET_CPU = const(u32, 0)


@tracepoint("irq:softirq_entry")
def softirq_entry(args):
    if CPU_FILTER and cpu() != TARGET_CPU:
        return 0
    start[0] = ktime_ns()
    return 0


@tracepoint("irq:softirq_exit")
def softirq_exit(args):
    t = start.get(0)
    if t is None or t[0] == 0:
        return 0
    delta = (ktime_ns() - t[0]) // UNIT_NS
    t[0] = 0
    if COUNT:
        totals[args.vec] += 1
    elif DIST:
        k = VecSlot()
        k.vec = args.vec
        k.slot = log2(delta)
        dists[k] += 1
    else:
        totals[args.vec] += delta
    return 0


def vec_name(vec: int) -> str:
    return VECTORS[vec] if vec < len(VECTORS) else str(vec)


def main(argv=None) -> int:
    parser = ToolParser("softirqs", "Summarize soft irq event time as histograms.",
                        examples=[
                            "./softirqs            # sum soft irq event time",
                            "./softirqs -C         # show the number of soft irq events",
                            "./softirqs -d         # show soft irq event time as histograms",
                            "./softirqs 1 10       # print 1 second summaries, 10 times",
                            "./softirqs -NT 1      # 1s summaries, nanoseconds, and "
                            "timestamps",
                            "./softirqs -c 1       # sum soft irq event time on CPU 1 only",
                        ])
    parser.add_argument("-T", "--timestamp", action="store_true",
                        help="include timestamp on output")
    parser.add_argument("-N", "--nanoseconds", action="store_true",
                        help="output in nanoseconds")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("-C", "--events", action="store_true",
                      help="show the number of soft irq events")
    mode.add_argument("-d", "--dist", action="store_true",
                      help="show distributions as histograms")
    parser.add_argument("-c", "--cpu", type=cpu_number, default=None,
                        help="trace this CPU only")
    add_interval_args(parser)
    args = parser.parse_args(argv)
    label, unit_ns = ("nsecs", 1) if args.nanoseconds else ("usecs", 1000)
    if args.events:
        label = "count"
    def summary(mod) -> None:
        summary_heading(args.timestamp)
        if args.dist:
            per = take_keyed_log2(mod["dists"], lambda k: k.vec)
            print(bcc_sections(per, label, "softirq", section_print_fn=vec_name), end="")
            return
        print(f"{'SOFTIRQ':<16} {'TOTAL_' + label:>11}")
        for vec, value in sorted(mod["totals"].items(), key=lambda kv: int(kv[1])):
            print(f"{vec_name(int(vec)):<16} {int(value):>11}")
        mod["totals"].clear()

    consts = {"UNIT_NS": unit_ns, "COUNT": args.events, "DIST": args.dist,
              "CPU_FILTER": args.cpu is not None, "TARGET_CPU": args.cpu or 0}
    with load_tool(__name__, consts=consts) as mod:
        what = "count" if args.events else "time"
        run_tool(mod, interval=args.interval, count=args.count,
                 summary=lambda: summary(mod),
                 header=f"Tracing soft irq event {what}... Hit Ctrl-C to end.")
    return 0


if __name__ == "__main__":
    tool_main(main)
