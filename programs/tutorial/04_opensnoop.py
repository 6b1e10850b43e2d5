#!/usr/bin/env python3
"""Lesson 4, global variables: a filter set from the command line at load time.

``TARGET_PID = const(u32, 0)`` declares a read-only global: its value is written into
the program's ``.rodata`` map when the tool loads it (``consts={"TARGET_PID": ...}``).
The verifier then knows the value, so with no ``-p`` the filter is pruned away; the
same compiled code serves every command line.
"""

from pybpf.dsl import const, pid, probe_read_user_str, tracepoint, u32
from pybpf.tooling import ToolParser, load_tool, run_tool, tool_main

TARGET_PID = const(u32, 0)


@tracepoint("syscalls:sys_enter_openat")
def openat_entry(args):
    if TARGET_PID and pid() != TARGET_PID:
        return 0
    path = probe_read_user_str(args.filename, 128)
    print(f"Process ID: {pid()} enter sys openat: {path}")
    return 0


def main(argv=None) -> int:
    parser = ToolParser("04_opensnoop", "Trace openat() with a PID filter")
    parser.add_argument("-p", "--pid", type=int, default=0, help="trace this PID only")
    args = parser.parse_args(argv)
    with load_tool(__name__, consts={"TARGET_PID": args.pid}) as mod:
        print("Tracing openat()... Hit Ctrl-C to end.")
        run_tool(mod)
    return 0


if __name__ == "__main__":
    tool_main(main)
