#!/usr/bin/env python3
"""Lesson 1, hello world: a program on a tracepoint that prints with trace_printk.

``@tracepoint("syscalls:sys_enter_write")`` runs the function each time a process
enters write(). ``trace_printk`` is the kernel's debug print: its lines go to the
shared trace pipe (``/sys/kernel/tracing/trace_pipe``), which user space reads here
with :class:`pybpf.events.trace_pipe.TracePipe`. (Later lessons use ``print()``, which
goes through a ring buffer owned by the tool.) This tool's own writes are skipped, or
each line it prints would trace another one.
"""

import os

from pybpf.dsl import const, pid, tracepoint, trace_printk, u32
from pybpf.events.trace_pipe import TracePipe
from pybpf.tooling import ToolParser, load_tool, running, tool_main

SELF = const(u32, 0)
TARGET_PID = const(u32, 0)


@tracepoint("syscalls:sys_enter_write")
def handle_write(args):
    if pid() == SELF or (TARGET_PID and pid() != TARGET_PID):
        return 0
    trace_printk("BPF triggered from PID %d.", pid())
    return 0


def main(argv=None) -> int:
    parser = ToolParser("01_hello", "Print a line for each write() call")
    parser.add_argument("-p", "--pid", type=int, default=0, help="trace this PID only")
    args = parser.parse_args(argv)
    consts = {"SELF": os.getpid(), "TARGET_PID": args.pid}
    with load_tool(__name__, consts=consts), TracePipe() as pipe, running():
        print("Tracing write() calls... Hit Ctrl-C to end.")
        for fields in pipe.fields():
            if "BPF triggered" in fields.message:
                print(f"{fields.task}-{fields.pid} {fields.message}")
    return 0


if __name__ == "__main__":
    tool_main(main)
