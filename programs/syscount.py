#!/usr/bin/env python3
"""syscount: summarize system call counts and latencies, like BCC's syscount.

The raw tracepoint ``sys_exit`` counts each system call by its number, or by process
(-P); with -L, the raw ``sys_enter`` stores the entry time per thread and the exit adds
the time spent. -x keeps only failed calls, -e ERRNO only those failing with ERRNO.
Raw tracepoints run the program straight from the kernel's hook; the tracefs ones
(``raw_syscalls:sys_exit``) first build a perf record of the arguments, which costs every
system call on the machine about 8% more in a storm of opens (measured). The raw exit
hook has the result but not the number: ``syscall_nr()`` reads it from the registers
the kernel saved at the call's entry (Linux 5.15).

By number (the default), the counts and times go to a per-CPU array indexed by the
syscall number: no hashing, no atomic instruction, no contention between CPUs, and user
space adds up the CPUs' values. A number beyond the array (``NR_SLOTS``: x32 calls, a
future kernel's new calls, -1 for a call that was skipped) is counted in the hash map
``by_key`` instead, so nothing is dropped. -P counts in ``by_key`` by process id.

Syscall names come from the kernel's table in
``/usr/include/x86_64-linux-gnu/asm/unistd_64.h`` (the x86-64 ``__NR_*`` numbers) when
that header is installed, else from a small built-in table of common calls; ``-l``
says which table is in use.
"""

import errno
import time

from pybpf.dsl import (
    HashMap, PerCPUArrayMap, Struct, const, i32, i64, ktime_ns, pid, pid_tgid,
    raw_tracepoint, syscall_nr, u32, u64,
)
from pybpf.syscalls import UNISTD, syscall_table
from pybpf.tooling import (
    ToolParser, comm_of, load_tool, pid_number, positive_int, run_tool, tool_main,
    whole_seconds,
)

#: slots of the per-CPU array: above every x86-64 syscall number (the table ends in
#: the 460s in Linux 6.18); larger numbers are counted in ``by_key``
NR_SLOTS = 512


class Stat(Struct):
    count: u64                  # calls
    ns: u64                     # -L: time spent in them


per_nr = PerCPUArrayMap(Stat, max_entries=NR_SLOTS)   # syscall number -> Stat, per CPU
by_key = HashMap(u32, Stat, max_entries=10240)        # pid (-P), or a number >= NR_SLOTS
start = HashMap(u64, u64, max_entries=10240)          # -L: thread -> entry time
TARGET_PID = const(u32, 0)
BY_PROCESS = const(u32, 0)
LATENCY = const(u32, 0)
FAILED = const(u32, 0)
ERRNO = const(i32, 0)


@raw_tracepoint("sys_enter")
def sys_enter(args):                # loaded only for -L: every system call pays for it
    if TARGET_PID and pid() != TARGET_PID:
        return 0
    start[pid_tgid()] = ktime_ns()
    return 0


@raw_tracepoint("sys_exit")
def sys_exit(args):                 # sys_exit(struct pt_regs *regs, long ret)
    if TARGET_PID and pid() != TARGET_PID:
        return 0
    ret = i64(args.arg1)
    if FAILED and ret >= 0:
        return 0
    if ERRNO and ret != -ERRNO:
        return 0
    spent: u64 = 0
    if LATENCY:
        thread = pid_tgid()
        t = start.get(thread)
        if t is None:
            return 0
        spent = ktime_ns() - t[0]
        del start[thread]
    key = u32(syscall_nr())
    if BY_PROCESS:
        key = pid()
    else:
        s = per_nr.get(key)         # None when the number is beyond the array
        if s:
            s.count += 1            # this CPU's own slot: plain load and store
            if LATENCY:
                s.ns += spent
            return 0
    h = by_key.setdefault(key)
    h.count += 1                    # shared by the CPUs: atomic adds
    if LATENCY:
        h.ns += spent
    return 0


def errno_value(text: str) -> int:
    """``EPERM`` or ``1`` -> 1."""
    if text.isdigit():
        return int(text)
    value = getattr(errno, text.upper(), None)
    if not isinstance(value, int):
        raise ValueError(f"unknown errno {text!r}")
    return value


def main(argv=None) -> int:
    parser = ToolParser("syscount", "Summarize syscall counts and latencies.", examples=[
        "./syscount           # summarize all syscalls by syscall",
        "./syscount -P        # summarize all syscalls by process",
        "./syscount -x        # summarize only failed syscalls",
        "./syscount -e EPERM  # summarize only syscalls that failed with EPERM",
        "./syscount -L        # show latency (time spent) too",
        "./syscount -p 181    # trace PID 181 only",
        "./syscount -i 1 -d 5 # print 1 second summaries for 5 seconds",
    ])
    parser.add_argument("-p", "--pid", type=pid_number, default=0, help="trace only this pid")
    parser.add_argument("-i", "--interval", type=whole_seconds,
                        help="print summary at this interval (seconds)")
    parser.add_argument("-d", "--duration", type=whole_seconds,
                        help="total duration of trace, in seconds")
    parser.add_argument("-T", "--top", type=positive_int, default=10,
                        help="print only the top syscalls by count or latency")
    parser.add_argument("-x", "--failures", action="store_true",
                        help="trace only failed syscalls (return < 0)")
    parser.add_argument("-e", "--errno", type=str,
                        help="trace only syscalls that return this error (numeric or "
                        "EPERM, etc.)")
    parser.add_argument("-L", "--latency", action="store_true",
                        help="collect syscall latency")
    parser.add_argument("-m", "--milliseconds", action="store_true",
                        help="display latency in milliseconds (default: microseconds)")
    parser.add_argument("-P", "--process", action="store_true",
                        help="count by process and not by syscall")
    parser.add_argument("-l", "--list", action="store_true",
                        help=f"print list of recognized syscalls and exit (from {UNISTD} "
                        "if present, else a built-in table)")
    args = parser.parse_args(argv)
    names, source = syscall_table()
    if args.list:
        print(f"# {len(names)} syscalls from {source}")
        for number in sorted(names):
            print(names[number])
        return 0
    try:
        err = errno_value(args.errno) if args.errno else 0
    except ValueError as exc:
        parser.error(str(exc))
    if args.duration and not args.interval:
        args.interval = args.duration

    def label(key: int) -> str:
        if args.process:
            return f"{key:<6d} {comm_of(key) or '[unknown]':<15}"
        return names.get(key, f"[unknown: {key}]")

    seen: dict = {}                 # per-CPU array slot -> [calls, ns] summed so far

    def collect() -> dict:
        """{number or pid: [calls, ns]} since the last summary, the CPUs added up. The
        array is never zeroed (a call counted while it was would be lost): a slot's
        figures are its totals less those of the last summary. The hash is emptied
        element by element as it is read."""
        found: dict = {}
        if not args.process:
            for k, per_cpu in mod["per_nr"].items():
                total = [sum(v.count for v in per_cpu), sum(v.ns for v in per_cpu)]
                before = seen.get(k, (0, 0))
                if total[0] != before[0]:
                    found[int(k)] = [total[0] - before[0], total[1] - before[1]]
                    seen[k] = total
        for k, v in mod["by_key"].lookup_and_delete_batch():
            if int(k) != 0xFFFFFFFF:
                found[int(k)] = [int(v.count), int(v.ns)]
        return found

    def print_stats() -> None:
        print(f"[{time.strftime('%H:%M:%S')}]")
        col = "PID    COMM" if args.process else "SYSCALL"
        found = collect()
        if args.latency:
            unit, div = ("ms", 1e6) if args.milliseconds else ("us", 1e3)
            print(f"{col:<22} {'COUNT':>8} {'TIME (' + unit + ')':>16}")
            for k in sorted(found, key=lambda k: -found[k][1])[:args.top]:
                t = found[k][1] / div
                shown = f"{t:16.6f}" if args.milliseconds else f"{t:16.3f}"
                print(f"{label(k):<22} {found[k][0]:>8} {shown}")
        else:
            print(f"{col:<22} {'COUNT':>8}")
            for k in sorted(found, key=lambda k: -found[k][0])[:args.top]:
                print(f"{label(k):<22} {found[k][0]:>8}")
        print()

    ticks = [0]

    def tick() -> None:
        ticks[0] += 1
        print_stats()

    consts = {"TARGET_PID": args.pid, "BY_PROCESS": args.process,
              "LATENCY": args.latency, "FAILED": args.failures, "ERRNO": err}
    entry = None if args.latency else ["sys_exit"]
    with load_tool(__name__, consts=consts, programs=entry) as mod:
        failed = "failed " if args.failures else ""
        until = f"for {args.duration} seconds." if args.duration else "Ctrl+C to quit."
        run_tool(mod, interval=args.interval, duration=args.duration, on_interval=tick,
                 header=f"Tracing {failed}syscalls, printing top {args.top}... {until}")
        if not (args.duration and ticks[0] * args.interval >= args.duration):
            print_stats()                 # Ctrl-C: the last summary
        print("Detaching...")
    return 0


if __name__ == "__main__":
    tool_main(main)
