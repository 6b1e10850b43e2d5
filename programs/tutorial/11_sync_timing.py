#!/usr/bin/env python3
"""Lesson 11, state between two events: the time since the previous sync().

A program keeps nothing from one run to the next; a map does. ``last`` is a hash map
with one key (0): each ``sync()`` reads the time the previous one stored there,
prints the gap if it is under a second, and stores its own time for the next. The
kernel's monotonic clock is ``ktime_ns()`` (``bpf_ktime_get_ns``). ``sync()`` is
traced at its tracepoint ``syscalls:sys_enter_sync`` (BCC's lesson puts a kprobe on
the syscall's kernel function; this one runs where kprobes do not exist).

``last.get(0)`` returns a pointer to the stored value or None: the compiler refuses a
use of the pointer before the ``None`` check (the verifier would refuse it later).

``pybpf compile --disasm -f do_sync programs/tutorial/11_sync_timing.py``, the key line::

    ; programs/tutorial/11_sync_timing.py:37      ts = last.get(0)
        15: *(u32 *)(r10 - 0x8) = 0x0
        16: ld_pseudo	r1, 0x1, 0x0
        18: r2 = r10
        19: r2 += -0x8
        20: call 0x1
        21: r2 = r0
"""

from pybpf.dsl import HashMap, const, ktime_ns, pid, tracepoint, u32, u64
from pybpf.tooling import ToolParser, pid_number, load_tool, run_tool, tool_main

last = HashMap(u32, u64, max_entries=1)
TARGET_PID = const(u32, 0)


@tracepoint("syscalls:sys_enter_sync")
def do_sync(args):
    if TARGET_PID and pid() != TARGET_PID:
        return 0
    now = ktime_ns()
    ts = last.get(0)
    if ts is not None:
        delta = now - ts[0]
        if delta < 1000000000:
            print(f"multiple syncs detected, last {delta // 1000000} ms ago")
    last[0] = now
    return 0


def main(argv=None) -> int:
    parser = ToolParser("11_sync_timing", "Print the time between quick sync() calls")
    parser.add_argument("-p", "--pid", type=pid_number, default=0, help="trace this PID only")
    args = parser.parse_args(argv)
    with load_tool(__name__, consts={"TARGET_PID": args.pid}) as mod:
        print("Tracing for quick sync's... Ctrl-C to end")
        run_tool(mod)
    return 0


if __name__ == "__main__":
    tool_main(main)
