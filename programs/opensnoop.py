#!/usr/bin/env python3
"""opensnoop: trace open() calls (openat and openat2), with the fd or the error.

The enter tracepoint keeps the path and flags per thread in a hash map; the exit
tracepoint adds the result and sends the record on a ring buffer. Filters on pid, tid,
uid, flags and failures are load-time constants, so the verifier removes the ones not
used; the name filter runs in user space, as BCC's does.

    pybpf run opensnoop                 # every open
    pybpf run opensnoop -p 181 -x       # failed opens of process 181
"""

import os
import sys
import time

from pybpf.dsl import (
    HashMap, RingBuf, Struct, char, comm, const, i32, ktime_ns, pid, pid_tgid,
    probe_read_user, probe_read_user_str, tid, tracepoint, u32, u64, uid,
)
from pybpf.tooling import ToolParser, errno_name, load_tool, run_tool


class Event(Struct):
    ts: u64
    pid: u32
    tid: u32
    uid: u32
    ret: i32
    flags: u64
    comm: char[16]
    path: char[256]


events = RingBuf(Event, size=1024 * 1024)
pending = HashMap(u64, Event, max_entries=10240)

TARGET_PID = const(u32, 0)      # 0: any process
TARGET_TID = const(u32, 0)      # 0: any thread
FILTER_UID = const(u32, 0)      # 1: only TARGET_UID
TARGET_UID = const(u32, 0)
FLAG_MASK = const(u64, 0)       # non-zero: only opens with one of these flags
FAILED_ONLY = const(u32, 0)


def remember(path: u64, flags: u64) -> int:
    if TARGET_PID and pid() != TARGET_PID:
        return 0
    if TARGET_TID and tid() != TARGET_TID:
        return 0
    if FILTER_UID and uid() != TARGET_UID:
        return 0
    if FLAG_MASK and (flags & FLAG_MASK) == 0:
        return 0
    e = Event()
    e.pid = pid()
    e.tid = tid()
    e.uid = uid()
    e.flags = flags
    e.comm = comm()
    e.path = probe_read_user_str(path)
    pending[pid_tgid()] = e
    return 0


def report(ret: i32) -> int:
    e = pending.get(pid_tgid())
    if e is None:
        return 0
    if not FAILED_ONLY or ret < 0:
        e.ret = ret
        e.ts = ktime_ns()
        events.output(e)
    del pending[pid_tgid()]
    return 0


@tracepoint("syscalls:sys_enter_openat")
def openat_enter(args):
    return remember(args.filename, args.flags)


@tracepoint("syscalls:sys_exit_openat")
def openat_exit(args):
    return report(args.ret)


@tracepoint("syscalls:sys_enter_openat2")
def openat2_enter(args):
    return remember(args.filename, probe_read_user(args.how, u64))   # open_how.flags


@tracepoint("syscalls:sys_exit_openat2")
def openat2_exit(args):
    return report(args.ret)


_FLAG_NAMES = {name: getattr(os, name) for name in dir(os)
               if name.startswith("O_") and isinstance(getattr(os, name), int)}


def parse_flag(text: str) -> int:
    """``O_WRONLY`` (or ``WRONLY``) -> its value."""
    name = text.upper()
    name = name if name.startswith("O_") else "O_" + name
    if name not in _FLAG_NAMES:
        raise SystemExit(f"opensnoop: unknown open flag {text!r}")
    return _FLAG_NAMES[name]


def main(argv=None) -> int:
    p = ToolParser("opensnoop", "Trace open() syscalls", [
        "./opensnoop                # trace all open() syscalls",
        "./opensnoop -T             # include timestamps",
        "./opensnoop -U             # include UID",
        "./opensnoop -x             # only show failed opens",
        "./opensnoop -p 181         # only trace PID 181",
        "./opensnoop -t 123         # only trace TID 123",
        "./opensnoop -u 1000        # only trace UID 1000",
        "./opensnoop -d 10          # trace for 10 seconds only",
        "./opensnoop -n main        # only print process names containing \"main\"",
        "./opensnoop -e             # show extended fields",
        "./opensnoop -f O_WRONLY -f O_RDWR  # only print calls for writing"])
    p.add_argument("-T", "--timestamp", action="store_true", help="include timestamp on output")
    p.add_argument("-U", "--print-uid", action="store_true", help="print UID column")
    p.add_argument("-x", "--failed", action="store_true", help="only show failed opens")
    p.add_argument("-p", "--pid", type=int, help="trace this PID only")
    p.add_argument("-t", "--tid", type=int, help="trace this TID only")
    p.add_argument("-u", "--uid", type=int, help="trace this UID only")
    p.add_argument("-d", "--duration", type=float, help="total duration of trace in seconds")
    p.add_argument("-n", "--name", help="only print process names containing this name")
    p.add_argument("-e", "--extended_fields", action="store_true", help="show extended fields")
    p.add_argument("-f", "--flag_filter", action="append", default=[],
                   help="filter on flags argument (e.g., O_WRONLY)")
    args = p.parse_args(argv)
    mask = 0
    for f in args.flag_filter:
        mask |= parse_flag(f)
    if args.flag_filter and mask == 0:          # O_RDONLY is 0: match "no access bits"
        mask = 0
    consts = {"TARGET_PID": args.pid or 0, "TARGET_TID": args.tid or 0,
              "FILTER_UID": int(args.uid is not None), "TARGET_UID": args.uid or 0,
              "FLAG_MASK": mask, "FAILED_ONLY": int(args.failed)}
    with load_tool(__name__, consts=consts) as mod:
        first_ts = [0]

        def show(e: Event) -> None:
            if args.name and args.name not in e.comm:
                return
            fd, err = (-1, -e.ret) if e.ret < 0 else (e.ret, 0)
            line = ""
            if args.timestamp:
                first_ts[0] = first_ts[0] or e.ts
                line += "%-14.9f" % ((e.ts - first_ts[0]) / 1e9)
            if args.print_uid:
                line += "%-6d" % e.uid
            line += "%-6d %-16s %4d %3d " % (e.tid if args.tid else e.pid, e.comm, fd, err)
            if args.extended_fields:
                line += "%08o " % e.flags
            print(line + e.path)

        mod.on("events", show)
        head = ""
        if args.timestamp:
            head += "%-14s" % "TIME(s)"
        if args.print_uid:
            head += "%-6s" % "UID"
        head += "%-6s %-16s %4s %3s " % ("TID" if args.tid else "PID", "COMM", "FD", "ERR")
        if args.extended_fields:
            head += "%-8s " % "FLAGS"
        print(head + "PATH")
        run_tool(mod, duration=args.duration)
    return 0


if __name__ == "__main__":
    sys.exit(main())
