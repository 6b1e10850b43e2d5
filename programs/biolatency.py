#!/usr/bin/env python3
"""biolatency: summarize block device I/O latency as a histogram, like BCC's
biolatency.

``block:block_rq_issue`` stores the time a request goes to the device, keyed by the
request's device and first sector (-Q: from ``block:block_rq_insert``, when it is
queued in the kernel); ``block:block_rq_complete`` counts the time it took in a log2
histogram, one for all disks or one per disk (-D, key ``(dev, slot)``).
"""

from pybpf.dsl import (
    HashMap, Histogram, Struct, const, ktime_ns, log2, tracepoint, u32, u64,
)
from pybpf.events.histogram import Log2Histogram, bcc_sections
from pybpf.tooling import (
    ToolParser, add_interval_args, disk_name, load_tool, run_tool, summary_heading,
    take_keyed_log2, take_log2, tool_main,
)


class Rq(Struct):
    dev: u64
    sector: u64


class DevSlot(Struct):
    dev: u32
    slot: u32


start = HashMap(Rq, u64, max_entries=10240)      # request -> time issued (or queued)
hist = Histogram()
hists = HashMap(DevSlot, u64, max_entries=4096)  # -D: (dev, slot) -> count
UNIT_NS = const(u64, 1000)
PER_DISK = const(u32, 0)
QUEUED = const(u32, 0)


def rq_start(dev: u64, sector: u64) -> u32:
    k = Rq()
    k.dev = dev
    k.sector = sector
    if QUEUED and k in start:
        return 0                          # -Q: timed from the insert already
    start[k] = ktime_ns()
    return 0


@tracepoint("block:block_rq_insert")
def block_rq_insert(args):
    if QUEUED:
        rq_start(args.dev, args.sector)
    return 0


@tracepoint("block:block_rq_issue")
def block_rq_issue(args):
    return rq_start(args.dev, args.sector)


@tracepoint("block:block_rq_complete")
def block_rq_complete(args):
    k = Rq()
    k.dev = args.dev
    k.sector = args.sector
    t = start.get(k)
    if t is None:
        return 0
    delta = (ktime_ns() - t[0]) // UNIT_NS
    del start[k]
    if PER_DISK:
        d = DevSlot()
        d.dev = args.dev
        d.slot = log2(delta)
        hists[d] += 1
    else:
        hist[log2(delta)] += 1
    return 0


def main(argv=None) -> int:
    parser = ToolParser("biolatency", "Summarize block device I/O latency as a histogram",
                        examples=[
                            "./biolatency            # summarize block I/O latency as a "
                            "histogram",
                            "./biolatency 1 10       # print 1 second summaries, 10 times",
                            "./biolatency -mT 1      # 1s summaries, milliseconds, and "
                            "timestamps",
                            "./biolatency -Q         # include OS queued time in I/O time",
                            "./biolatency -D         # show each disk device separately",
                        ])
    parser.add_argument("-T", "--timestamp", action="store_true",
                        help="include timestamp on output")
    parser.add_argument("-Q", "--queued", action="store_true",
                        help="include OS queued time in I/O time")
    parser.add_argument("-m", "--milliseconds", action="store_true",
                        help="millisecond histogram")
    parser.add_argument("-D", "--disks", action="store_true",
                        help="print a histogram per disk device")
    add_interval_args(parser)
    args = parser.parse_args(argv)
    label, unit_ns = ("msecs", 1000000) if args.milliseconds else ("usecs", 1000)
    def summary(mod) -> None:
        summary_heading(args.timestamp)
        if args.disks:
            per = take_keyed_log2(mod["hists"], lambda k: disk_name(k.dev))
            print(bcc_sections(per, label, "disk", section_print_fn=str), end="")
        else:
            print(Log2Histogram(take_log2(mod["hist"])).bcc(label), end="")

    consts = {"UNIT_NS": unit_ns, "PER_DISK": args.disks, "QUEUED": args.queued}
    with load_tool(__name__, consts=consts) as mod:
        run_tool(mod, interval=args.interval, count=args.count,
                 summary=lambda: summary(mod),
                 header="Tracing block device I/O... Hit Ctrl-C to end.")
    return 0


if __name__ == "__main__":
    tool_main(main)
