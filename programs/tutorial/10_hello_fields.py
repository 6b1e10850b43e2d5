#!/usr/bin/env python3
"""Lesson 10, trace_pipe fields: the parts of a ``trace_printk`` line, one by one.

Each ``trace_printk`` line in the trace pipe carries more than the message: the kernel
adds the task's name and pid, the CPU, flags and a timestamp.
:meth:`pybpf.events.trace_pipe.TracePipe.fields` parses a line into a
:class:`~pybpf.events.trace_pipe.TraceFields` (``task``, ``pid``, ``cpu``, ``flags``,
``timestamp``, ``message``), as BCC's ``trace_fields()`` does, and the tool prints the
columns it wants. The kernel records only the pid: the name comes from its small cache
of recent task names, and is ``<...>`` when the cache has lost that pid. The program
runs at the entry of ``clone()`` and ``clone3()`` (the two ways a process forks; the
tracepoints stand in for a kprobe on ``sys_clone``).

The trace pipe is one per machine: every tracer's ``trace_printk`` lines arrive in
it, and the first reader consumes them. So it suits debugging; tools use ``print()``
(lesson 2 on), which pybpf sends through a ring buffer the tool owns, with the same
fields read by the program itself (``pid()``, ``comm()``, ``ktime_ns()``).

Below, the message is built on the stack (with the newline ``trace_printk`` adds)
and ``call 0x6`` is the helper ``bpf_trace_printk``.

``pybpf compile --disasm -f hello programs/tutorial/10_hello_fields.py``, the key line::

    ; programs/tutorial/10_hello_fields.py:48      trace_printk("Hello, World!")
        13: *(u32 *)(r10 - 0x10) = 0x6c6c6548
        14: *(u32 *)(r10 - 0xc) = 0x57202c6f
        15: *(u32 *)(r10 - 0x8) = 0x646c726f
        16: *(u16 *)(r10 - 0x4) = 0xa21
        17: *(u8 *)(r10 - 0x2) = 0x0
        18: r1 = r10
        19: r1 += -0x10
        20: r2 = 0xf
        21: call 0x6
"""

from pybpf.dsl import const, pid, trace_printk, tracepoint, u32
from pybpf.events.trace_pipe import TracePipe
from pybpf.tooling import ToolParser, pid_number, load_tool, running, tool_main

TARGET_PID = const(u32, 0)


@tracepoint("syscalls:sys_enter_clone")
@tracepoint("syscalls:sys_enter_clone3")
def hello(args):
    if TARGET_PID and pid() != TARGET_PID:
        return 0
    trace_printk("Hello, World!")
    return 0


def main(argv=None) -> int:
    parser = ToolParser("10_hello_fields", "Print the fields of each clone() trace line")
    parser.add_argument("-p", "--pid", type=pid_number, default=0, help="trace this PID only")
    args = parser.parse_args(argv)
    with load_tool(__name__, consts={"TARGET_PID": args.pid}), TracePipe() as pipe, \
            running():
        print(f"{'TIME(s)':<18} {'COMM':<16} {'PID':<6} MESSAGE")
        for f in pipe.fields():
            if f.message == "Hello, World!":
                print(f"{f.timestamp:<18.9f} {f.task:<16} {f.pid:<6} {f.message}")
    return 0


if __name__ == "__main__":
    tool_main(main)
