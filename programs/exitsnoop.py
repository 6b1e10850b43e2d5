#!/usr/bin/env python3
"""exitsnoop: trace process termination, like BCC's exitsnoop.

The ``sched:sched_process_exit`` tracepoint fires in the exiting task, so
``current_task()`` is the task_struct of the process that ends: its ``exit_code`` holds
the exit status (``code << 8``) or the signal that killed it (low 7 bits, 0x80 if it
dumped core), ``start_time`` its start in the same clock as ``ktime_ns()``, so the age
is one subtraction. Only the main thread's exit is a process exit (--per-thread shows
every thread).
"""

import json
import signal
import time

from pybpf.dsl import (
    RingBuf, Struct, char, comm, const, current_task, ktime_ns, tracepoint, u8, u32, u64,
)
from pybpf.tooling import (
    ToolParser, load_tool, pid_number, run_tool, text_of, tool_main, write_lines,
)


class Exit(Struct):
    start_time: u64
    exit_time: u64
    pid: u32
    tid: u32
    ppid: u32
    exit_code: u32
    sig_info: u32
    task: char[16]


events = RingBuf(Exit, size=256 * 1024)

TARGET_PID = const(u32, 0)
FAILED_ONLY = const(u8, 0)
PER_THREAD = const(u8, 0)


@tracepoint("sched:sched_process_exit")
def exitsnoop_exit(args):
    task = current_task()
    if TARGET_PID and task.tgid != TARGET_PID:
        return 0
    if not PER_THREAD and task.pid != task.tgid:
        return 0
    code = task.exit_code
    if FAILED_ONLY and code == 0:
        return 0
    e = Exit()
    e.start_time = task.start_time
    e.exit_time = ktime_ns()
    e.pid = u32(task.tgid)
    e.tid = u32(task.pid)
    e.ppid = u32(task.real_parent.tgid)
    e.exit_code = u32(code >> 8)
    e.sig_info = u32(code & 0xff)
    e.task = comm()
    events.output(e)
    return 0


def signame(sig: int) -> str:
    """``SIGKILL`` for 9 (the number if unknown)."""
    try:
        return signal.Signals(sig).name
    except ValueError:
        return str(sig)


def exit_text(exit_code: int, sig_info: int) -> str:
    """``0``, ``code 3``, ``signal 9 (SIGKILL)``, ``signal 11 (SIGSEGV), core dumped ``
    (BCC's EXIT_CODE column, trailing space included)."""
    if sig_info == 0:
        return "0" if exit_code == 0 else f"code {exit_code}"
    sig = sig_info & 0x7f
    text = f"signal {sig} ({signame(sig)})" if sig else ""
    if sig_info & 0x80:
        text += ", core dumped "
    return text


def clock_text(utc: bool) -> str:
    """The time now as ``HH:MM:SS.mmm``, local or UTC."""
    now = time.time()
    clock = time.gmtime(now) if utc else time.localtime(now)
    return f"{time.strftime('%H:%M:%S', clock)}.{int(now * 1000) % 1000:03d}"


def column_header(args) -> str:
    """The header line, as BCC prints it for these options."""
    header = ""
    if args.timestamp or args.utc:
        header += f"{'TIME-' + ('UTC' if args.utc else time.strftime('%Z')):<13}"
    header += f"{'LABEL':<7}" if args.label is not None else ""
    return header + f"{'PCOMM':<16} {'PID':<7} {'PPID':<7} {'TID':<7} {'AGE(s)':<7} EXIT_CODE"


def batch_printer(args):
    """The callback of ``mod.on("events", ..., rows=True)``: one line (or JSON object)
    per exit, a batch written in one block. The clock is read once per batch."""
    stamp = args.timestamp or args.utc
    label = "" if args.label is None else f"{args.label:<6} "

    def show(rows) -> None:
        now = clock_text(args.utc) if stamp else ""
        if args.json:
            write_lines([json_line(args, now, *row) for row in rows])
            return
        lead = (now + " " if stamp else "") + label
        write_lines([f"{lead}{text_of(task):<16} {pid:<7} {ppid:<7} {tid:<7} "
                     f"{(end - start) / 1e9:<7.2f} {exit_text(code, sig_info)}"
                     for start, end, pid, tid, ppid, code, sig_info, task in rows])

    return show


def json_line(args, now: str, start: int, end: int, pid: int, tid: int, ppid: int,
              code: int, sig_info: int, task: bytes) -> str:
    """One exit as a JSON object: the columns of these options, lowercased (``time``
    for TIME-zone); ``exit_code`` is the column's text."""
    obj = {"time": now} if now else {}
    if args.label is not None:
        obj["label"] = args.label
    obj.update(pcomm=text_of(task), pid=pid, ppid=ppid, tid=tid)
    obj["age(s)"] = round((end - start) / 1e9, 2)
    obj["exit_code"] = exit_text(code, sig_info).rstrip()
    return json.dumps(obj)


def main(argv=None) -> int:
    parser = ToolParser("exitsnoop", "Trace all process termination (exit, fatal signal)",
                        examples=[
                            "exitsnoop                # trace all process termination",
                            "exitsnoop -x             # trace only fails, exclude exit(0)",
                            "exitsnoop -t             # include timestamps (local time)",
                            "exitsnoop --utc          # include timestamps (UTC)",
                            "exitsnoop -p 181         # only trace PID 181",
                            "exitsnoop --label=exit   # label each output line with 'exit'",
                            "exitsnoop --per-thread   # trace per thread termination",
                        ])
    parser.add_argument("-t", "--timestamp", action="store_true", help="include timestamp (local time default)")
    parser.add_argument("--utc", action="store_true", help="include timestamp in UTC (-t implied)")
    parser.add_argument("-p", "--pid", type=pid_number, default=0, help="trace this PID only")
    parser.add_argument("--label", help="label each line")
    parser.add_argument("-x", "--failed", action="store_true", help="trace only fails, exclude exit(0)")
    parser.add_argument("--per-thread", action="store_true", help="trace per thread termination")
    parser.add_argument("--json", action="store_true",
                        help="one JSON object per exit (NDJSON), keys: the columns")
    args = parser.parse_args(argv)

    consts = {"TARGET_PID": args.pid, "FAILED_ONLY": args.failed,
              "PER_THREAD": args.per_thread}
    with load_tool(__name__, consts=consts) as mod:
        mod.on("events", batch_printer(args), rows=True)
        run_tool(mod, header=None if args.json else column_header(args), json_lost=args.json)
    return 0


if __name__ == "__main__":
    tool_main(main)
