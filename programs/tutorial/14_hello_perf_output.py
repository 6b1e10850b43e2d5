#!/usr/bin/env python3
"""Lesson 14, perf buffers: events in per-CPU buffers, instead of the trace pipe.

Lesson 10's ``trace_printk`` text goes to a pipe every tracer shares. Here the program
fills a ``Data`` struct and ``events.output(data)`` copies it into this tool's own
``PerfEventArray``: one ring of pages per CPU, read with ``epoll`` by user space, where
``mod.on("events", callback)`` hands each record to ``callback`` as a ``Data``. This is
BCC's ``BPF_PERF_OUTPUT`` / ``perf_submit``. A record is written on the CPU the program
runs on, so records from different CPUs may come out of time order, and a full CPU
buffer drops records (the tool reports ``Possibly lost N samples``). The ring buffer of
lesson 8 (``RingBuf``, Linux 5.8) is one buffer shared by all CPUs and keeps the order;
the perf buffer works back to Linux 4.4.

Below, ``call 0x19`` is ``bpf_perf_event_output``; ``w3 = -0x1`` is its flags,
``BPF_F_CURRENT_CPU``: this CPU's buffer.

``pybpf compile --disasm -f hello programs/tutorial/14_hello_perf_output.py``, the key line::

    ; programs/tutorial/14_hello_perf_output.py:49      events.output(data)
        28: r1 = r6
        29: ld_pseudo	r2, 0x1, 0x0
        31: w3 = -0x1
        32: r4 = r10
        33: r4 += -0x20
        34: r5 = 0x20
        35: call 0x19
"""

from pybpf.dsl import PerfEventArray, Struct, char, comm, const, ktime_ns, pid, tracepoint, u32, u64
from pybpf.tooling import ToolParser, pid_number, load_tool, run_tool, tool_main


class Data(Struct):
    ts: u64
    pid: u32
    comm: char[16]


events = PerfEventArray(Data)
TARGET_PID = const(u32, 0)


@tracepoint("syscalls:sys_enter_clone")
@tracepoint("syscalls:sys_enter_clone3")
def hello(args):
    if TARGET_PID and pid() != TARGET_PID:
        return 0
    data = Data(ts=ktime_ns(), pid=pid(), comm=comm())
    events.output(data)
    return 0


def main(argv=None) -> int:
    parser = ToolParser("14_hello_perf_output", "Print clone() calls through a perf buffer")
    parser.add_argument("-p", "--pid", type=pid_number, default=0, help="trace this PID only")
    args = parser.parse_args(argv)
    with load_tool(__name__, consts={"TARGET_PID": args.pid}) as mod:
        mod.on("events", lambda d: print(f"{d.ts / 1e9:<18.9f} {d.comm:<16} {d.pid:<6} "
                                         "Hello, perf_output!"))
        print(f"{'TIME(s)':<18} {'COMM':<16} {'PID':<6} MESSAGE")
        run_tool(mod)
    return 0


if __name__ == "__main__":
    tool_main(main)
