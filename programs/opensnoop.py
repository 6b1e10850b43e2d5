#!/usr/bin/env python3
"""opensnoop: trace open() calls system-wide, with the fd or the error, like BCC's
opensnoop.

One program at the exit tracepoint of openat() (and one of openat2()) does all the
work: the call's result is in the tracepoint's context, and its arguments (the path
pointer, the flags) are read back from the user registers the kernel saved at the call's
entry (``syscall_arg()``, Linux 5.15). There is no entry program and no map of calls in
flight, which halves what a traced open costs. The path is read at the exit, when the
kernel has just copied it, so the page is present (at the entry it may not be). The
filters (-p, -t, -u, -f, -x) are load-time constants: without them the verifier prunes
their tests away; the name filter (-n) runs in user space, as BCC's does. The
timestamp is the call's return.

    pybpf run opensnoop                 # every open
    pybpf run opensnoop -p 181 -x       # failed opens of process 181
"""

import json
import os
import re
import struct

from pybpf.dsl import (
    RingBuf, Struct, char, comm, const, i32, ktime_ns, pid, pid_tgid, probe_read_user,
    probe_read_user_str, syscall_arg, tid, tracepoint, u8, u32, u64, uid,
)
from pybpf.tooling import (
    Memo, ToolParser, load_tool, pid_number, positive_seconds, run_tool, text_of,
    tid_number, tool_main, uid_number, write_lines,
)


class Event(Struct):
    ts_ns: u64
    id: u64
    uid: u32
    ret: i32
    flags: u32
    comm: char[16]
    path: char[256]


events = RingBuf(Event, size=1024 * 1024)

TARGET_PID = const(u32, 0)      # 0: any process
TARGET_TID = const(u32, 0)      # 0: any thread
FILTER_UID = const(u8, 0)       # 1: only TARGET_UID
TARGET_UID = const(u32, 0)
FLAGS_MASK = const(u32, 0)      # non-zero: only opens with one of these flags
FAILED_ONLY = const(u8, 0)


def wanted(ret: i32) -> u8:
    """1 if the filters that need no argument let this call through."""
    if TARGET_PID and pid() != TARGET_PID:
        return 0
    if TARGET_TID and tid() != TARGET_TID:
        return 0
    if FILTER_UID and uid() != TARGET_UID:
        return 0
    if FAILED_ONLY and ret >= 0:
        return 0
    return 1


def send(ret: i32, flags: u64) -> i32:
    """Send the event of the open that returned ``ret``, if its flags pass -f."""
    if FLAGS_MASK and (flags & FLAGS_MASK) == 0:
        return 0
    e = Event()
    e.ts_ns = ktime_ns()
    e.id = pid_tgid()
    e.uid = uid()
    e.ret = ret
    e.flags = u32(flags)
    e.comm = comm()
    e.path = probe_read_user_str(syscall_arg(1))
    events.output(e)
    return 0


@tracepoint("syscalls:sys_exit_openat")
def opensnoop_openat_ret(args):
    ret = i32(args.ret)
    if not wanted(ret):
        return 0
    return send(ret, syscall_arg(2))                    # openat(dfd, path, flags, mode)


@tracepoint("syscalls:sys_exit_openat2")
def opensnoop_openat2_ret(args):
    ret = i32(args.ret)
    if not wanted(ret):
        return 0
    return send(ret, probe_read_user(syscall_arg(2), u64))     # open_how.flags


def flag_value(text: str) -> int:
    """argparse type: the value of ``O_WRONLY`` (or ``wronly``), from ``os``."""
    name = text.upper() if text.upper().startswith("O_") else "O_" + text.upper()
    value = getattr(os, name, None)
    if not isinstance(value, int):
        raise ValueError(text)
    return value


#: the fields before the path that make up the repeating part of a line: read as one
#: ``bytes`` value, they key the memo of formatted text
LINE_KEY = ("id", "uid", "ret", "flags", "comm")
_NEEDS_ESCAPE = re.compile(rb'[^\x20-\x7e]|["\\]').search


def consts_of(args, mask: int) -> dict:
    """The load-time constants for the parsed options."""
    return {"TARGET_PID": args.pid, "TARGET_TID": args.tid,
            "FILTER_UID": args.uid is not None, "TARGET_UID": args.uid or 0,
            "FLAGS_MASK": mask, "FAILED_ONLY": args.failed}


def column_header(args) -> str:
    """The header line, as BCC prints it for these options."""
    header = f"{'TIME(s)':<14}" if args.timestamp else ""
    header += f"{'UID':<6}" if args.print_uid else ""
    header += f"{'TID' if args.tid else 'PID':<6} {'COMM':<16} {'FD':>4} {'ERR':>3} "
    header += f"{'FLAGS':<9}" if args.extended_fields else ""
    return header + "PATH"


def row_items(args) -> tuple:
    """The event fields the printer reads: the timestamp only with -T."""
    return (("ts_ns",) if args.timestamp else ()) + (LINE_KEY, "path")


def json_string(raw: bytes) -> bytes:
    """``raw`` (UTF-8 text) as a JSON string."""
    if _NEEDS_ESCAPE(raw) is None:
        return b'"' + raw + b'"'
    return json.dumps(raw.decode("utf-8", "replace")).encode()


def batch_printer(args):
    """The callback of ``mod.on(..., rows=row_items(args))``: formats a batch of events
    and writes it in one block. The part of a line before the path (and the -n test)
    is computed once per distinct (id, uid, ret, flags, comm) and kept in a memo."""
    key_of = struct.Struct(Event.span_format(LINE_KEY)).unpack

    def text_prefix(key: bytes):
        ident, uid, ret, flags, raw_comm = key_of(key)
        comm = text_of(raw_comm)
        if args.name and args.name not in comm:
            return None
        line = f"{uid:<6}" if args.print_uid else ""
        fd, err = (ret, 0) if ret >= 0 else (-1, -ret)
        who = ident & 0xffffffff if args.tid else ident >> 32
        line += f"{who:<6} {comm:<16} {fd:>4} {err:>3} "
        if args.extended_fields:
            line += f"{flags:08o} "
        return line.encode()

    def json_prefix(key: bytes):
        ident, uid, ret, flags, raw_comm = key_of(key)
        comm = text_of(raw_comm)
        if args.name and args.name not in comm:
            return None
        obj = {"uid": uid} if args.print_uid else {}
        obj["tid" if args.tid else "pid"] = ident & 0xffffffff if args.tid else ident >> 32
        obj["comm"] = comm
        obj["fd"], obj["err"] = (ret, 0) if ret >= 0 else (-1, -ret)
        if args.extended_fields:
            obj["flags"] = flags
        return json.dumps(obj)[1:-1].encode() + b', "path": '

    prefix = Memo(json_prefix if args.json else text_prefix)
    first = []
    nul = b"\0"

    def timed(rows):
        if args.name:
            rows = [r for r in rows if prefix[r[1]] is not None]
        if rows and not first:
            first.append(rows[0][0])
        t0 = first[0] if first else 0
        if args.json:
            return [b'{"time(s)": %.9f, ' % ((ts - t0) / 1e9) + prefix[k]
                    + json_string(p.partition(nul)[0]) + b"}" for ts, k, p in rows]
        return [b"%-14.9f" % ((ts - t0) / 1e9) + prefix[k] + p.partition(nul)[0]
                for ts, k, p in rows]

    def show(rows) -> None:
        if args.timestamp:
            lines = timed(rows)
        elif args.json:
            lines = [b"{" + pre + json_string(p.partition(nul)[0]) + b"}"
                     for k, p in rows if (pre := prefix[k]) is not None]
        elif args.name:
            lines = [pre + p.partition(nul)[0] for k, p in rows
                     if (pre := prefix[k]) is not None]
        else:
            lines = [prefix[k] + p.partition(nul)[0] for k, p in rows]
        write_lines(lines)

    return show


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
    parser.add_argument("--json", action="store_true",
                        help="one JSON object per event (NDJSON), keys: the columns")
    args = parser.parse_args(argv)
    mask = 0
    for value in args.flag_filter:
        mask |= value
    if args.flag_filter and mask == 0:
        parser.error("O_RDONLY is 0 and cannot be filtered on (try -f O_WRONLY -f O_RDWR)")

    with load_tool(__name__, consts=consts_of(args, mask)) as mod:
        mod.on("events", batch_printer(args), rows=row_items(args))
        header = None if args.json else column_header(args)
        run_tool(mod, duration=args.duration, header=header, json_lost=args.json)
    return 0


if __name__ == "__main__":
    tool_main(main)
