#!/usr/bin/env python3
"""Lesson 8, ring buffers: one buffer shared by all CPUs.

``RingBuf(Event)`` replaces the per-CPU buffers of lesson 7: events from every CPU come
out of one ring in the order they were written, with less memory. The program is the
same (``events.output(e)``, ``mod.on(...)``). It runs when a process exits and reads
the exit code and the start time from the task through BTF.
"""

from pybpf.dsl import (
    RingBuf, Struct, char, comm, current_task, ktime_ns, pid, tid, tracepoint, u32, u64,
)
from pybpf.tooling import ToolParser, load_tool, run_tool, tool_main


class Event(Struct):
    duration_ns: u64
    pid: u32
    ppid: u32
    exit_code: u32
    comm: char[16]


events = RingBuf(Event, size=256 * 1024)


@tracepoint("sched:sched_process_exit")
def process_exit(args):
    if pid() != tid():
        return 0                      # a thread, not the whole process
    task = current_task()
    e = Event()
    e.pid = pid()
    e.ppid = u32(task.real_parent.tgid)
    e.exit_code = u32((task.exit_code >> 8) & 0xFF)
    e.duration_ns = ktime_ns() - task.start_time
    e.comm = comm()
    events.output(e)
    return 0


def main(argv=None) -> int:
    ToolParser("08_exitsnoop", "Trace process exits through a ring buffer").parse_args(argv)
    with load_tool(__name__) as mod:
        mod.on("events", lambda e: print(f"{e.comm:<16} {e.pid:<7} {e.ppid:<7} "
                                         f"{e.exit_code:<4} {e.duration_ns / 1e6:.2f}"))
        print(f"{'COMM':<16} {'PID':<7} {'PPID':<7} {'EXIT':<4} MS")
        run_tool(mod)
    return 0


if __name__ == "__main__":
    tool_main(main)
