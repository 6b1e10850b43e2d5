#!/usr/bin/env python3
"""opensnoop: trace open() calls system-wide, with the fd or the error, like BCC's
opensnoop.

The entry tracepoints of openat() and openat2() save the path pointer and the flags in
a hash map keyed by thread; the exit tracepoint finds them, reads the path (the kernel
has just copied it, so the page is present: at the entry it may not be) and sends an
event with the result: a file descriptor, or a negative errno. The filters (-p, -t, -u,
-f, -x) are load-time constants: without them the verifier prunes their tests away;
the name filter (-n) runs in user space, as BCC's does.

    pybpf run opensnoop                 # every open
    pybpf run opensnoop -p 181 -x       # failed opens of process 181
"""

import os

from pybpf.dsl import (
    HashMap, RingBuf, Struct, char, comm, const, i32, ktime_ns, pid, pid_tgid,
    probe_read_user, probe_read_user_str, tid, tracepoint, u8, u32, u64, uid,
)
from pybpf.tooling import (
    ToolParser, load_tool, pid_number, positive_seconds, run_tool, tid_number,
    tool_main, uid_number,
)


class Start(Struct):
    ts_ns: u64
    filename: u64
    flags: u64


class Event(Struct):
    ts_ns: u64
    id: u64
    uid: u32
    ret: i32
    flags: u32
    comm: char[16]
    path: char[256]


starts = HashMap(u64, Start, max_entries=10240)
events = RingBuf(Event, size=1024 * 1024)

TARGET_PID = const(u32, 0)      # 0: any process
TARGET_TID = const(u32, 0)      # 0: any thread
FILTER_UID = const(u8, 0)       # 1: only TARGET_UID
TARGET_UID = const(u32, 0)
FLAGS_MASK = const(u32, 0)      # non-zero: only opens with one of these flags
FAILED_ONLY = const(u8, 0)


def trace_entry(filename: u64, flags: u64) -> i32:
    if TARGET_PID and pid() != TARGET_PID:
        return 0
    if TARGET_TID and tid() != TARGET_TID:
        return 0
    if FILTER_UID and uid() != TARGET_UID:
        return 0
    if FLAGS_MASK and (flags & FLAGS_MASK) == 0:
        return 0
    starts[pid_tgid()] = Start(ts_ns=ktime_ns(), filename=filename, flags=flags)
    return 0


def trace_exit(ret: i32) -> i32:
    s = starts.get(pid_tgid())
    if s is None:
        return 0                    # filtered out at the entry, or began before us
    if not FAILED_ONLY or ret < 0:
        e = Event()
        e.ts_ns = s.ts_ns
        e.id = pid_tgid()
        e.uid = uid()
        e.ret = ret
        e.flags = u32(s.flags)
        e.comm = comm()
        e.path = probe_read_user_str(s.filename)
        events.output(e)
    del starts[pid_tgid()]
    return 0


@tracepoint("syscalls:sys_enter_openat")
def opensnoop_openat(args):
    return trace_entry(args.filename, args.flags)


@tracepoint("syscalls:sys_enter_openat2")
def opensnoop_openat2(args):
    return trace_entry(args.filename, probe_read_user(args.how, u64))   # open_how.flags


@tracepoint("syscalls:sys_exit_openat")
def opensnoop_openat_ret(args):
    return trace_exit(i32(args.ret))


@tracepoint("syscalls:sys_exit_openat2")
def opensnoop_openat2_ret(args):
    return trace_exit(i32(args.ret))


def flag_value(text: str) -> int:
    """argparse type: the value of ``O_WRONLY`` (or ``wronly``), from ``os``."""
    name = text.upper() if text.upper().startswith("O_") else "O_" + text.upper()
    value = getattr(os, name, None)
    if not isinstance(value, int):
        raise ValueError(text)
    return value


def main(argv=None) -> int:
    parser = ToolParser("opensnoop", "Trace open() syscalls", examples=[
        "./opensnoop                        # trace all open() syscalls",
        "./opensnoop -T                     # include timestamps",
        "./opensnoop -U                     # include UID",
        "./opensnoop -x                     # only show failed opens",
        "./opensnoop -p 181                 # only trace PID 181",
        "./opensnoop -t 123                 # only trace TID 123",
        "./opensnoop -u 1000                # only trace UID 1000",
        "./opensnoop -d 10                  # trace for 10 seconds only",
        "./opensnoop -n main                # only print process names containing \"main\"",
        "./opensnoop -e                     # show extended fields",
        "./opensnoop -f O_WRONLY -f O_RDWR  # only print calls for writing",
    ])
    parser.add_argument("-T", "--timestamp", action="store_true",
                        help="include timestamp on output")
    parser.add_argument("-U", "--print-uid", action="store_true", help="print UID column")
    parser.add_argument("-x", "--failed", action="store_true", help="only show failed opens")
    parser.add_argument("-p", "--pid", type=pid_number, default=0, help="trace this PID only")
    parser.add_argument("-t", "--tid", type=tid_number, default=0, help="trace this TID only")
    parser.add_argument("-u", "--uid", type=uid_number, default=None, help="trace this UID only")
    parser.add_argument("-d", "--duration", type=positive_seconds, default=None,
                        help="total duration of trace in seconds")
    parser.add_argument("-n", "--name", help="only print process names containing this name")
    parser.add_argument("-e", "--extended_fields", action="store_true",
                        help="show extended fields")
    parser.add_argument("-f", "--flag_filter", action="append", default=[], type=flag_value,
                        help="filter on flags argument (e.g., O_WRONLY)")
    args = parser.parse_args(argv)
    mask = 0
    for value in args.flag_filter:
        mask |= value
    if args.flag_filter and mask == 0:
        parser.error("O_RDONLY is 0 and cannot be filtered on (try -f O_WRONLY -f O_RDWR)")

    first = []

    def show(e: Event) -> None:
        if args.name and args.name not in e.comm:
            return
        line = ""
        if args.timestamp:
            if not first:
                first.append(e.ts_ns)
            line += f"{(e.ts_ns - first[0]) / 1e9:<14.9f}"
        if args.print_uid:
            line += f"{e.uid:<6}"
        fd, err = (e.ret, 0) if e.ret >= 0 else (-1, -e.ret)
        who = e.id & 0xffffffff if args.tid else e.id >> 32
        line += f"{who:<6} {e.comm:<16} {fd:>4} {err:>3} "
        if args.extended_fields:
            line += f"{e.flags:08o} "
        print(line + e.path)

    consts = {"TARGET_PID": args.pid, "TARGET_TID": args.tid,
              "FILTER_UID": args.uid is not None, "TARGET_UID": args.uid or 0,
              "FLAGS_MASK": mask, "FAILED_ONLY": args.failed}
    with load_tool(__name__, consts=consts) as mod:
        mod.on("events", show)
        header = f"{'TIME(s)':<14}" if args.timestamp else ""
        header += f"{'UID':<6}" if args.print_uid else ""
        header += f"{'TID' if args.tid else 'PID':<6} {'COMM':<16} {'FD':>4} {'ERR':>3} "
        header += f"{'FLAGS':<9}" if args.extended_fields else ""
        run_tool(mod, duration=args.duration, header=header + "PATH")
    return 0


if __name__ == "__main__":
    tool_main(main)
