#!/usr/bin/env python3
"""Lesson 7, perf event arrays: send structured events to user space.

An ``Event`` Struct is both the record the program fills and the Python object user
space gets. ``events = PerfEventArray(Event)`` is one buffer per CPU;
``events.output(e)`` copies the record into the current CPU's buffer, and
``mod.on("events", callback)`` decodes each record into an ``Event`` for the callback.
``current_task().real_parent.tgid`` reads the parent's pid through BTF.
"""

from pybpf.dsl import (
    PerfEventArray, Struct, char, comm, current_task, pid, probe_read_user_str, tracepoint,
    u32, uid,
)
from pybpf.tooling import ToolParser, load_tool, run_tool, tool_main


class Event(Struct):
    pid: u32
    ppid: u32
    uid: u32
    comm: char[16]
    filename: char[64]


events = PerfEventArray(Event)


@tracepoint("syscalls:sys_enter_execve")
def execve_entry(args):
    e = Event()
    e.pid = pid()
    e.ppid = u32(current_task().real_parent.tgid)
    e.uid = uid()
    e.comm = comm()
    e.filename = probe_read_user_str(args.filename)
    events.output(e)
    return 0


def main(argv=None) -> int:
    ToolParser("07_execsnoop", "Trace execve() through a perf event array").parse_args(argv)
    with load_tool(__name__) as mod:
        mod.on("events", lambda e: print(f"{e.pid:<7} {e.ppid:<7} {e.uid:<7} "
                                         f"{e.comm:<16} {e.filename}"))
        print(f"{'PID':<7} {'PPID':<7} {'UID':<7} {'COMM':<16} FILENAME")
        run_tool(mod)
    return 0


if __name__ == "__main__":
    tool_main(main)
