#!/usr/bin/env python3
"""runqlat: summarize scheduler run queue latency as a histogram, like BCC's runqlat.

A task becomes runnable when it is woken (``sched_wakeup``, ``sched_wakeup_new``) or
when it is switched out while still runnable (``sched_switch`` with ``prev_state`` 0,
i.e. preempted): the time is stored per thread id. When ``sched_switch`` puts it on a
CPU, the time it waited is counted in a log2 histogram: one for everything, or one per
process (-P) or per thread (-L) with a ``(id, slot)`` key. The raw tracepoints give the
``task_struct`` pointers by their BTF names (``ctx.p``, ``ctx.prev``, ``ctx.next``).
"""

from pybpf.dsl import (
    HashMap, Histogram, Struct, const, ktime_ns, i32, log2, raw_tracepoint, u32, u64,
)
from pybpf.events.histogram import Log2Histogram, bcc_sections
from pybpf.tooling import (
    ToolParser, add_interval_args, comm_of, load_tool, pid_number, run_tool,
    summary_heading, take_keyed_log2, take_log2, tool_main,
)

TASK_RUNNING = 0


class IdSlot(Struct):
    id: u32
    slot: u32


start = HashMap(u32, u64, max_entries=10240)     # thread id -> time it became runnable
hist = Histogram()
hists = HashMap(IdSlot, u64, max_entries=10240)  # -P / -L: (tgid or tid, slot) -> count
TARGET_PID = const(u32, 0)
UNIT_NS = const(u64, 1000)
PER_ID = const(u32, 0)          # 0: one histogram, 1: per process, 2: per thread


def enqueue(tgid: i32, tid: i32) -> u32:
    if tid == 0:
        return 0                          # the idle task
    if TARGET_PID and tgid != TARGET_PID:
        return 0
    start[u32(tid)] = ktime_ns()
    return 0


@raw_tracepoint("sched_wakeup")
def sched_wakeup(ctx):
    return enqueue(ctx.p.tgid, ctx.p.pid)


@raw_tracepoint("sched_wakeup_new")
def sched_wakeup_new(ctx):
    return enqueue(ctx.p.tgid, ctx.p.pid)


@raw_tracepoint("sched_switch")
def sched_switch(ctx):
    prev = ctx.prev
    if ctx.prev_state == TASK_RUNNING:       # preempted: back on the run queue
        enqueue(prev.tgid, prev.pid)
    nxt = ctx.next
    tid = u32(nxt.pid)
    t = start.get(tid)
    if t is None:
        return 0
    delta = (ktime_ns() - t[0]) // UNIT_NS
    del start[tid]
    if PER_ID:
        k = IdSlot()
        k.id = u32(nxt.tgid) if PER_ID == 1 else tid
        k.slot = log2(delta)
        hists[k] += 1
    else:
        hist[log2(delta)] += 1
    return 0


def main(argv=None) -> int:
    parser = ToolParser("runqlat", "Summarize run queue (scheduler) latency as a histogram",
                        examples=[
                            "./runqlat            # summarize run queue latency as a histogram",
                            "./runqlat 1 10       # print 1 second summaries, 10 times",
                            "./runqlat -mT 1      # 1s summaries, milliseconds, and timestamps",
                            "./runqlat -P         # show each PID separately",
                            "./runqlat -p 185     # trace PID 185 only",
                        ])
    parser.add_argument("-T", "--timestamp", action="store_true",
                        help="include timestamp on output")
    parser.add_argument("-m", "--milliseconds", action="store_true",
                        help="millisecond histogram")
    parser.add_argument("-P", "--pids", action="store_true",
                        help="print a histogram per process ID")
    parser.add_argument("-L", "--tids", action="store_true",
                        help="print a histogram per thread ID")
    parser.add_argument("-p", "--pid", type=pid_number, default=0, help="trace this PID only")
    add_interval_args(parser)
    args = parser.parse_args(argv)
    label, unit_ns = ("msecs", 1000000) if args.milliseconds else ("usecs", 1000)
    per_id = 1 if args.pids else 2 if args.tids else 0

    def summary(mod) -> None:
        summary_heading(args.timestamp)
        if per_id:
            per = take_keyed_log2(mod["hists"], lambda k: k.id)
            print(bcc_sections(per, label, "pid" if per_id == 1 else "tid",
                               section_print_fn=lambda i: f"{i} {comm_of(i)}".rstrip()),
                  end="")
        else:
            print(Log2Histogram(take_log2(mod["hist"])).bcc(label), end="")

    consts = {"TARGET_PID": args.pid, "UNIT_NS": unit_ns, "PER_ID": per_id}
    with load_tool(__name__, consts=consts) as mod:
        run_tool(mod, interval=args.interval, count=args.count,
                 summary=lambda: summary(mod),
                 header="Tracing run queue latency... Hit Ctrl-C to end.")
    return 0


if __name__ == "__main__":
    tool_main(main)
