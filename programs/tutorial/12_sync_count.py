#!/usr/bin/env python3
"""Lesson 12, a map with several keys: count the sync() calls too.

Lesson 11's map gets a second key: ``state[TS]`` holds the time of the previous
``sync()``, ``state[COUNT]`` the number of calls seen. ``state[COUNT] += 1`` looks
the key up and adds to the value in place with an atomic add (two CPUs syncing at once
both count), or inserts 1 when the key is absent (the ``call 0x2`` below,
``bpf_map_update_elem``). The count is printed with every call, and read from user
space at the end: ``mod["state"].get(COUNT, 0)``, the same map seen from Python.

``pybpf compile --disasm -f do_sync programs/tutorial/12_sync_count.py``, the key line::

    ; programs/tutorial/12_sync_count.py:48      state[COUNT] += 1
        15: *(u32 *)(r10 - 0x8) = 0x1
        16: ld_pseudo	r1, 0x1, 0x0
        18: r2 = r10
        19: r2 += -0x8
        20: call 0x1
        21: r1 = r0
        22: if r1 == 0x0 goto +0x3
        23: r2 = 0x1
        24: lock *(u64 *)(r1 + 0x0) += r2
        25: goto +0x9
        26: *(u64 *)(r10 - 0x10) = 0x1
        27: ld_pseudo	r1, 0x1, 0x0
        29: r2 = r10
        30: r2 += -0x8
        31: r3 = r10
        32: r3 += -0x10
        33: r4 = 0x1
        34: call 0x2
"""

from pybpf.dsl import HashMap, const, ktime_ns, pid, tracepoint, u32, u64
from pybpf.tooling import ToolParser, pid_number, load_tool, run_tool, tool_main

TS = 0
COUNT = 1
state = HashMap(u32, u64, max_entries=2)
TARGET_PID = const(u32, 0)


@tracepoint("syscalls:sys_enter_sync")
def do_sync(args):
    if TARGET_PID and pid() != TARGET_PID:
        return 0
    now = ktime_ns()
    state[COUNT] += 1
    n = state[COUNT]
    ts = state.get(TS)
    if ts is None:
        print(f"sync {n}: the first one seen")
    else:
        print(f"sync {n}: last {(now - ts[0]) // 1000000} ms ago")
    state[TS] = now
    return 0


def main(argv=None) -> int:
    parser = ToolParser("12_sync_count", "Count sync() calls and the time between them")
    parser.add_argument("-p", "--pid", type=pid_number, default=0, help="trace this PID only")
    args = parser.parse_args(argv)
    with load_tool(__name__, consts={"TARGET_PID": args.pid}) as mod:
        print("Tracing sync()... Ctrl-C to end")
        run_tool(mod)
        print(f"{mod['state'].get(COUNT, 0)} syncs in all")
    return 0


if __name__ == "__main__":
    tool_main(main)
