#!/usr/bin/env python3
"""bootstrap: trace process starts (exec) and exits, with each process's lifetime, like
libbpf-bootstrap's ``bootstrap`` example.

``sched:sched_process_exec`` (kernel 3.4) fires in the task that just exec'd a new
program: the file name is the tracepoint's ``__data_loc`` string, the exec time goes
into a hash map keyed by pid. ``sched:sched_process_exit`` fires in the exiting task:
only the main thread's exit counts (a process exit); the duration is the time since the
exec the map saw (a process that exec'd before the tool started shows none), the exit
code is ``task->exit_code >> 8`` read through BTF (``current_task()``, kernel 5.5 for
BTF-typed task access). ``-d MIN_MS`` shows only exits of processes that lived at least
that long, and no exec events, as the example does. Needs a ring buffer (kernel 5.8).
"""

import json
import sys
import time

from pybpf.dsl import (
    HashMap, RingBuf, Struct, char, comm, const, current_task, ktime_ns,
    probe_read_kernel_str, tracepoint, u8, u32, u64,
)
from pybpf.tooling import (
    ToolParser, int_range, load_tool, run_tool, text_of, tool_main, write_lines,
)


class Event(Struct):
    duration_ns: u64
    pid: u32
    ppid: u32
    exit_code: u32
    exit_event: u8
    comm: char[16]
    filename: char[127]


events = RingBuf(Event, size=256 * 1024)
exec_start = HashMap(u32, u64, max_entries=8192)
MIN_DURATION_NS = const(u64, 0)


@tracepoint("sched:sched_process_exec")
def handle_exec(args):
    task = current_task()
    p = u32(task.tgid)
    exec_start[p] = ktime_ns()
    if MIN_DURATION_NS:
        return 0                        # with -d only exits are shown
    e = Event()
    e.pid = p
    e.ppid = u32(task.real_parent.tgid)
    e.comm = comm()
    e.filename = probe_read_kernel_str(args.filename)
    events.output(e)
    return 0


@tracepoint("sched:sched_process_exit")
def handle_exit(args):
    task = current_task()
    if task.pid != task.tgid:
        return 0                        # a thread, not the process
    p = u32(task.tgid)
    duration = u64(0)
    start = exec_start.get(p)
    if start is not None:
        duration = ktime_ns() - start[0]
        del exec_start[p]
    elif MIN_DURATION_NS:
        return 0                        # lifetime unknown: not shown with -d
    if MIN_DURATION_NS and duration < MIN_DURATION_NS:
        return 0
    e = Event()
    e.exit_event = 1
    e.duration_ns = duration
    e.pid = p
    e.ppid = u32(task.real_parent.tgid)
    e.exit_code = u32((task.exit_code >> 8) & 0xff)
    e.comm = comm()
    events.output(e)
    return 0


HEADER = f"{'TIME':<8} {'EVENT':<5} {'COMM':<16} {'PID':<7} {'PPID':<7} FILENAME/EXIT CODE"


def last_column(exit_event: int, exit_code: int, duration_ns: int, filename: bytes) -> str:
    """``/usr/bin/ls`` for an exec; ``[3] (250ms)`` for an exit (no duration part when
    the exec was not seen)."""
    if not exit_event:
        return text_of(filename)
    text = f"[{exit_code}]"
    return text + f" ({duration_ns // 1000000}ms)" if duration_ns else text


def batch_printer(args):
    """The callback of ``mod.on("events", ..., rows=True)``: one line (or JSON object)
    per event; the clock (local time, seconds) is read once per batch."""

    def show(rows) -> None:
        now = time.strftime("%H:%M:%S")
        lines = []
        for duration, pid, ppid, code, is_exit, task, filename in rows:
            kind = "EXIT" if is_exit else "EXEC"
            if args.json:
                obj = {"time": now, "event": kind, "comm": text_of(task), "pid": pid,
                       "ppid": ppid}
                if is_exit:
                    obj.update(exit_code=code, duration_ms=duration // 1000000
                               if duration else None)
                else:
                    obj["filename"] = text_of(filename)
                lines.append(json.dumps(obj))
                continue
            lines.append(f"{now:<8} {kind:<5} {text_of(task):<16} {pid:<7} {ppid:<7} "
                         + last_column(is_exit, code, duration, filename))
        write_lines(lines)

    return show


def main(argv=None) -> int:
    parser = ToolParser("bootstrap", "BPF bootstrap demo application: trace process "
                        "start and exits, and show how long processes ran",
                        examples=["bootstrap            # every exec and exit",
                                  "bootstrap -d 100     # exits of processes that ran "
                                  "100 ms or more"])
    parser.add_argument("-d", "--duration", type=int_range(0, 2**64 // 1000000 - 1,
                                                            "a duration (ms)"),
                        default=0, metavar="DURATION-MS",
                        help="minimum process duration (ms) to report")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="verbose debug output (programs and attach points, stderr)")
    parser.add_argument("--json", action="store_true",
                        help="one JSON object per event (NDJSON), keys: the columns")
    args = parser.parse_args(argv)

    with load_tool(__name__, consts={"MIN_DURATION_NS": args.duration * 1000000}) as mod:
        if args.verbose:
            for name, prog in mod.spec.programs.items():
                print(f"bootstrap: loaded {name} ({prog.kind!r}, "
                      f"{len(prog.instructions)} instructions)", file=sys.stderr)
        mod.on("events", batch_printer(args), rows=True)
        run_tool(mod, header=None if args.json else HEADER, json_lost=args.json)
    return 0


if __name__ == "__main__":
    tool_main(main)
