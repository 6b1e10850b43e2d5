#!/usr/bin/env python3
"""Lesson 6, hash maps: keep state from a system call's entry to its exit.

The entry of kill() knows the target and the signal, the exit knows the result. A
``HashMap`` keyed by thread id carries the entry's ``Signal`` record to the exit:
``signals[tid()] = s`` stores a copy, ``signals.get(tid())`` returns a pointer to it (or
None: the exit of a call that began before tracing), ``del signals[tid()]`` frees the
slot.
"""

from pybpf.dsl import HashMap, Struct, char, comm, i32, pid, tid, tracepoint, u32
from pybpf.tooling import ToolParser, load_tool, run_tool, tool_main


class Signal(Struct):
    pid: u32
    tpid: u32
    sig: i32
    comm: char[16]


signals = HashMap(u32, Signal, max_entries=10240)


@tracepoint("syscalls:sys_enter_kill")
def kill_entry(args):
    s = Signal()
    s.pid = pid()
    s.tpid = u32(args.pid)
    s.sig = i32(args.sig)
    s.comm = comm()
    signals[tid()] = s
    return 0


@tracepoint("syscalls:sys_exit_kill")
def kill_exit(args):
    s = signals.get(tid())
    if s is None:
        return 0
    ret = args.ret
    print(f"PID {s.pid:<7} {s.comm:<16} sent signal {s.sig} to PID {s.tpid}, ret = {ret}")
    del signals[tid()]
    return 0


def main(argv=None) -> int:
    ToolParser("06_sigsnoop", "Trace signals sent with kill()").parse_args(argv)
    with load_tool(__name__) as mod:
        print("Tracing kill()... Hit Ctrl-C to end.")
        run_tool(mod)
    return 0


if __name__ == "__main__":
    tool_main(main)
