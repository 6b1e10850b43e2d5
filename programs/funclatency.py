#!/usr/bin/env python3
"""funclatency: time a function and print the latency distribution, like BCC's
funclatency.

The target comes from the command line, so the two programs are decorated at run time:
``retarget(enter, uprobe("c:malloc"))`` and ``retarget(leave, uretprobe(...))`` for a
user function (``library:function`` or ``/path/binary:function``), ``kprobe(name)`` and
``kretprobe(name)`` for a kernel function. The entry stores a timestamp per
thread; the return computes the delta and counts it in a log2 histogram.
"""

from pybpf.dsl import (
    ArrayMap, HashMap, Histogram, const, kprobe, kretprobe, ktime_ns, log2, pid,
    pid_tgid, retarget, u32, u64, uprobe, uretprobe,
)
from pybpf.events.histogram import Log2Histogram
from pybpf.tooling import (
    ToolParser, load_tool, pid_number, run_tool, summary_heading, tool_main,
    whole_seconds,
)

start = HashMap(u64, u64, max_entries=10240)
hist = Histogram()
totals = ArrayMap(u64, 2)              # [0]: sum of latencies, [1]: number of calls
TARGET_PID = const(u32, 0)
UNIT_NS = const(u64, 1)


def enter(ctx):
    if TARGET_PID and pid() != TARGET_PID:
        return 0
    start[pid_tgid()] = ktime_ns()
    return 0


def leave(ctx):
    t = start.get(pid_tgid())
    if t is None:
        return 0
    delta = (ktime_ns() - t[0]) // UNIT_NS
    del start[pid_tgid()]
    hist[log2(delta)] += 1
    totals[0] += delta
    totals[1] += 1
    return 0


def main(argv=None) -> int:
    parser = ToolParser("funclatency", "Time functions and print latency as a histogram",
                        examples=[
                            "./funclatency do_sys_open       # time the do_sys_open() "
                            "kernel function",
                            "./funclatency c:read            # time the read() C library "
                            "function",
                            "./funclatency -u vfs_read       # time vfs_read(), in "
                            "microseconds",
                            "./funclatency -m do_nanosleep   # time do_nanosleep(), in "
                            "milliseconds",
                            "./funclatency -i 2 -d 10 c:open # output every 2 seconds, "
                            "for duration 10s",
                            "./funclatency -p 181 vfs_read   # time process 181 only",
                            "./funclatency /usr/bin/bash:readline  # a binary's function",
                        ])
    parser.add_argument("-p", "--pid", type=pid_number, default=0, help="trace this PID only")
    parser.add_argument("-i", "--interval", type=whole_seconds,
                        help="summary interval, in seconds")
    parser.add_argument("-d", "--duration", type=whole_seconds,
                        help="total duration of trace, in seconds")
    parser.add_argument("-T", "--timestamp", action="store_true",
                        help="include timestamp on output")
    unit = parser.add_mutually_exclusive_group()
    unit.add_argument("-u", "--microseconds", action="store_true",
                      help="microsecond histogram")
    unit.add_argument("-m", "--milliseconds", action="store_true",
                      help="millisecond histogram")
    parser.add_argument("pattern", help="function to trace: FUNC (kernel), LIB:FUNC or "
                        "/PATH/BIN:FUNC (user)")
    args = parser.parse_args(argv)

    if ":" in args.pattern:
        upid = args.pid or -1
        retarget(enter, uprobe(args.pattern, pid=upid))
        retarget(leave, uretprobe(args.pattern, pid=upid))
    else:
        retarget(enter, kprobe(args.pattern))
        retarget(leave, kretprobe(args.pattern))
    label, unit_ns = ("msecs", 1000000) if args.milliseconds else \
        ("usecs", 1000) if args.microseconds else ("nsecs", 1)

    def summary(mod, final: bool = False) -> None:
        if final and args.interval and not mod["totals"][1]:
            return                    # nothing since the last interval's summary
        summary_heading(args.timestamp)
        print(Log2Histogram(mod["hist"]).bcc(label), end="")
        total, count = mod["totals"][0], mod["totals"][1]
        if count:
            print(f"\navg = {total // count} {label}, total: {total} {label}, "
                  f"count: {count}\n")
        for i in range(64):
            mod["hist"][i] = 0
        mod["totals"][0] = mod["totals"][1] = 0

    with load_tool(__name__, consts={"TARGET_PID": args.pid, "UNIT_NS": unit_ns}) as mod:
        run_tool(mod, interval=args.interval, duration=args.duration,
                 on_interval=lambda: summary(mod),
                 header=f'Tracing 1 functions for "{args.pattern}"... Hit Ctrl-C to end.')
        summary(mod, final=True)
        print("Detaching...")
    return 0


if __name__ == "__main__":
    tool_main(main)
