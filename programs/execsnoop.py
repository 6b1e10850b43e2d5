#!/usr/bin/env python3
"""execsnoop: trace new processes through exec() syscalls, like BCC's execsnoop.

At the entry of execve() the program sends one ``ARG`` event per argument (the file
name first, then argv[1:], then ``...`` if there were more than --max-args); at the
exit it sends a ``RET`` event with the new command name, the result and the parent's
pid, read from ``current_task().real_parent.tgid`` through BTF. A ring buffer keeps
the events in order across CPUs (exec may move the task to another CPU), so user
space gathers the arguments per pid and prints one line at the ``RET``.
"""

import json
import re
import time

from pybpf.dsl import (
    RingBuf, Struct, char, comm, const, current_task, i32, pid, probe_read_user,
    probe_read_user_str, tracepoint, u8, u32, u64, uid,
)
from pybpf.tooling import (
    ToolParser, load_tool, pid_number, positive_int, run_tool, text_of, tool_main,
    uid_number, write_lines,
)

EVENT_ARG, EVENT_RET = 0, 1
ARGS_LIMIT = 128                # the most arguments the program can send (--max-args)


class Event(Struct):
    pid: u32
    ppid: u32
    uid: u32
    retval: i32
    type: u32
    comm: char[16]
    arg: char[128]


events = RingBuf(Event, size=1024 * 1024)

MAX_ARGS = const(u32, 20)
FILTER_UID = const(u8, 0)
TARGET_UID = const(u32, 0)
TARGET_PPID = const(u32, 0)


def wanted() -> u32:
    if FILTER_UID and uid() != TARGET_UID:
        return 0
    if TARGET_PPID and current_task().real_parent.tgid != TARGET_PPID:
        return 0
    return 1


@tracepoint("syscalls:sys_enter_execve")
def execsnoop_enter(args):
    if not wanted():
        return 0
    e = Event()
    e.pid = pid()
    e.type = EVENT_ARG
    e.arg = probe_read_user_str(args.filename)
    events.output(e)
    for i in range(1, ARGS_LIMIT):
        ptr = probe_read_user(args.argv + i * 8, u64)
        if ptr == 0:
            return 0
        if i >= MAX_ARGS:
            e.arg = "..."               # more arguments than --max-args
            events.output(e)
            return 0
        e.arg = probe_read_user_str(ptr)
        events.output(e)
    return 0


@tracepoint("syscalls:sys_exit_execve")
def execsnoop_exit(args):
    if not wanted():
        return 0
    e = Event()
    e.pid = pid()
    e.ppid = u32(current_task().real_parent.tgid)
    e.uid = uid()
    e.retval = i32(args.ret)
    e.type = EVENT_RET
    e.comm = comm()
    events.output(e)
    return 0


def column_header(args) -> str:
    """The header line, as BCC prints it for these options."""
    header = f"{'TIME':<9}" if args.time else ""
    header += f"{'TIME(s)':<8}" if args.timestamp else ""
    header += f"{'UID':<6}" if args.print_uid else ""
    return header + f"{'PCOMM':<16} {'PID':<7} {'PPID':<7} {'RET':>3} ARGS"


def batch_printer(args):
    """The callback of ``mod.on("events", ..., rows=True)``: gathers each process's
    ``ARG`` records and, at its ``RET``, formats one line (or JSON object); a batch is
    written in one block."""
    start = time.time()
    argvs = {}                                  # pid -> the arguments seen so far
    name = re.compile(args.name).search if args.name else None
    line_re = re.compile(args.line).search if args.line else None

    def show(rows) -> None:
        lines = []
        for pid, ppid, uid, retval, kind, raw_comm, arg in rows:
            if kind == EVENT_ARG:
                words = argvs.get(pid)
                if words is None:
                    words = argvs[pid] = []
                words.append(text_of(arg))
                continue
            words = argvs.pop(pid, [])
            if retval != 0 and not args.fails:
                continue
            comm = text_of(raw_comm)
            if args.quote:
                words = ['"' + w.replace('"', '\\"') + '"' for w in words]
            text = " ".join(words).replace("\n", "\\n")
            if name is not None and not name(comm):
                continue
            if line_re is not None and not line_re(text):
                continue
            if args.json:
                lines.append(json_line(args, start, uid, comm, pid, ppid, retval, text))
                continue
            line = ""
            if args.time:
                line += f"{time.strftime('%H:%M:%S'):<9}"
            if args.timestamp:
                line += f"{time.time() - start:<8.3f}"
            if args.print_uid:
                line += f"{uid:<6}"
            shown_ppid = str(ppid) if ppid > 0 else "?"
            lines.append(line + f"{comm:<16} {pid:<7} {shown_ppid:<7} {retval:>3} {text}")
        write_lines(lines)

    return show


def json_line(args, start: float, uid: int, comm: str, pid: int, ppid: int, retval: int,
              text: str) -> str:
    """One event as a JSON object: the columns of these options, lowercased; an unknown
    parent pid is null."""
    obj = {}
    if args.time:
        obj["time"] = time.strftime("%H:%M:%S")
    if args.timestamp:
        obj["time(s)"] = round(time.time() - start, 3)
    if args.print_uid:
        obj["uid"] = uid
    obj.update(pcomm=comm, pid=pid, ppid=ppid if ppid > 0 else None, ret=retval, args=text)
    return json.dumps(obj)


def main(argv=None) -> int:
    parser = ToolParser("execsnoop", "Trace exec() syscalls", examples=[
        "./execsnoop                      # trace all exec() syscalls",
        "./execsnoop -x                   # include failed exec()s",
        "./execsnoop -T                   # include time (HH:MM:SS)",
        "./execsnoop -U                   # include UID",
        "./execsnoop -u 1000              # only trace UID 1000",
        "./execsnoop -t                   # include timestamps",
        "./execsnoop -q                   # add \"quotemarks\" around arguments",
        "./execsnoop -n main              # only print command lines containing \"main\"",
        "./execsnoop -l tpkg              # only print command where arguments contains \"tpkg\"",
        "./execsnoop -P 181               # only trace new processes whose parent PID is 181",
        "./execsnoop --max-args 5         # show at most 5 arguments",
    ])
    parser.add_argument("-T", "--time", action="store_true", help="include time column on output (HH:MM:SS)")
    parser.add_argument("-t", "--timestamp", action="store_true", help="include timestamp on output")
    parser.add_argument("-x", "--fails", action="store_true", help="include failed exec()s")
    parser.add_argument("-u", "--uid", type=uid_number, default=None, help="trace this UID only")
    parser.add_argument("-q", "--quote", action="store_true",
                        help="Add quotemarks (\") around arguments.")
    parser.add_argument("-n", "--name", help="only print commands matching this name (regex), any arg")
    parser.add_argument("-l", "--line", help="only print commands where arg contains this line (regex)")
    parser.add_argument("-U", "--print-uid", action="store_true", help="print UID column")
    parser.add_argument("--max-args", type=positive_int, default=20,
                        help="maximum number of arguments parsed and displayed, defaults to 20")
    parser.add_argument("-P", "--ppid", type=pid_number, default=0,
                        help="trace this parent PID only")
    parser.add_argument("--json", action="store_true",
                        help="one JSON object per event (NDJSON), keys: the columns")
    args = parser.parse_args(argv)
    if args.max_args >= ARGS_LIMIT:
        parser.error(f"argument --max-args: {args.max_args} is out of range: must be "
                     f"1..{ARGS_LIMIT - 1}")

    consts = {"MAX_ARGS": args.max_args, "FILTER_UID": args.uid is not None,
              "TARGET_UID": args.uid or 0, "TARGET_PPID": args.ppid}
    with load_tool(__name__, consts=consts) as mod:
        mod.on("events", batch_printer(args), rows=True)
        run_tool(mod, header=None if args.json else column_header(args), json_lost=args.json)
    return 0


if __name__ == "__main__":
    tool_main(main)
