#!/usr/bin/env python3
"""hardirqs: summarize hard interrupt time (or counts) by handler name, like BCC's
hardirqs.

``irq:irq_handler_entry`` stores the time and the handler's name (read from the
tracepoint's dynamic ``name`` field) on this CPU; ``irq:irq_handler_exit`` adds the time
spent to the name's total, counts the event (-C), or counts the time in a log2
histogram per name (-d, key ``(name, slot)``).
"""

from pybpf.dsl import (
    HashMap, PerCPUArrayMap, Struct, char, const, cpu, ktime_ns, log2,
    probe_read_kernel_str, tracepoint, u32, u64,
)
from pybpf.events.histogram import bcc_sections
from pybpf.tooling import (
    ToolParser, add_interval_args, cpu_number, load_tool, run_tool, summary_heading,
    take_keyed_log2, tool_main,
)


class Entry(Struct):
    ts: u64
    name: char[32]


class Name(Struct):
    name: char[32]


class NameSlot(Struct):
    name: char[32]
    slot: u32


start = PerCPUArrayMap(Entry, 1)                   # the handler running on this CPU
totals = HashMap(Name, u64, max_entries=1024)       # name -> total time (or count)
dists = HashMap(NameSlot, u64, max_entries=4096)    # -d: (name, slot) -> count
UNIT_NS = const(u64, 1000)
COUNT = const(u32, 0)
DIST = const(u32, 0)
CPU_FILTER = const(u32, 0)
TARGET_CPU = const(u32, 0)


@tracepoint("irq:irq_handler_entry")
def irq_handler_entry(args):
    if CPU_FILTER and cpu() != TARGET_CPU:
        return 0
    e = start.get(0)
    if e is None:
        return 0
    n = Name()                   # zeroed: the name becomes a map key, so no stale
    n.name = probe_read_kernel_str(args.name)   # bytes may follow its NUL
    e.ts = ktime_ns()
    e.name = n.name
    return 0


@tracepoint("irq:irq_handler_exit")
def irq_handler_exit(args):
    e = start.get(0)
    if e is None or e.ts == 0:
        return 0
    delta = (ktime_ns() - e.ts) // UNIT_NS
    e.ts = 0
    if DIST:
        k = NameSlot()
        k.name = e.name
        k.slot = log2(delta)
        dists[k] += 1
        return 0
    n = Name()
    n.name = e.name
    if COUNT:
        totals[n] += 1
    else:
        totals[n] += delta
    return 0


def text(name: bytes) -> str:
    """A char[] key field (bytes, NUL-padded) as text."""
    return bytes(name).split(b"\0")[0].decode(errors="replace")


def main(argv=None) -> int:
    parser = ToolParser("hardirqs", "Summarize hard irq event time as histograms",
                        examples=[
                            "./hardirqs            # sum hard irq event time",
                            "./hardirqs -d         # show hard irq event time as histograms",
                            "./hardirqs 1 10       # print 1 second summaries, 10 times",
                            "./hardirqs -NT 1      # 1s summaries, nanoseconds, and "
                            "timestamps",
                            "./hardirqs -C         # show the number of hard irq events",
                            "./hardirqs -c 1       # sum hard irq event time on CPU 1 only",
                        ])
    parser.add_argument("-T", "--timestamp", action="store_true",
                        help="include timestamp on output")
    parser.add_argument("-N", "--nanoseconds", action="store_true",
                        help="output in nanoseconds")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("-C", "--count", action="store_true",
                      help="show event counts instead of timing")
    mode.add_argument("-d", "--dist", action="store_true",
                      help="show distributions as histograms")
    parser.add_argument("-c", "--cpu", type=cpu_number, default=None,
                        help="trace this CPU only")
    add_interval_args(parser, "outputs")
    args = parser.parse_args(argv)
    label, unit_ns = ("nsecs", 1) if args.nanoseconds else ("usecs", 1000)
    if args.count:
        label = "count"
    def summary(mod) -> None:
        summary_heading(args.timestamp)
        if args.dist:
            per = take_keyed_log2(mod["dists"], lambda k: text(k.name))
            print(bcc_sections(per, label, "hardirq", section_print_fn=str), end="")
            return
        print(f"{'HARDIRQ':<26} {'TOTAL_' + label:>11}")
        for k, value in sorted(mod["totals"].items(), key=lambda kv: int(kv[1])):
            print(f"{text(k.name):<26} {int(value):>11}")
        mod["totals"].clear()

    consts = {"UNIT_NS": unit_ns, "COUNT": args.count, "DIST": args.dist,
              "CPU_FILTER": args.cpu is not None, "TARGET_CPU": args.cpu or 0}
    with load_tool(__name__, consts=consts) as mod:
        what = "events" if args.count else "event time"
        run_tool(mod, interval=args.interval, count=args.outputs,
                 summary=lambda: summary(mod),
                 header=f"Tracing hard irq {what}... Hit Ctrl-C to end.")
    return 0


if __name__ == "__main__":
    tool_main(main)
