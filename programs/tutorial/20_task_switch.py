#!/usr/bin/env python3
"""Lesson 20, a struct as a map key: count context switches by (previous, next) pid.

``sched:sched_switch`` fires each time a CPU stops running one task (``prev_pid``)
and starts another (``next_pid``). ``Pair(prev_pid=..., next_pid=...)`` is an 8-byte
key built on the BPF stack, ``switches[k] += 1`` counts it (the map inserts the pair
on first sight), and user space reads every pair back at the end, keys decoded into
``Pair`` objects. pid 0 is each CPU's idle task. ``-p PID`` counts only the switches
from or to that task (a thread id: the tracepoint's "pid" is the kernel's task id).

``pybpf compile --disasm -f switch programs/tutorial/20_task_switch.py``, the key line::

    ; programs/tutorial/20_task_switch.py:51      switches[k] += 1
        38: ld_pseudo	r1, 0x1, 0x0
        40: r2 = r10
        41: r2 += -0x8
        42: call 0x1
        43: r1 = r0
        44: if r1 == 0x0 goto +0x3
        45: r2 = 0x1
        46: lock *(u64 *)(r1 + 0x0) += r2
        47: goto +0x9
        48: *(u64 *)(r10 - 0x10) = 0x1
        49: ld_pseudo	r1, 0x1, 0x0
        51: r2 = r10
        52: r2 += -0x8
        53: r3 = r10
        54: r3 += -0x10
        55: r4 = 0x1
        56: call 0x2
"""

from pybpf.dsl import HashMap, Struct, const, tracepoint, u32, u64
from pybpf.tooling import ToolParser, load_tool, pid_number, run_tool, tool_main, whole_seconds


class Pair(Struct):
    prev_pid: u32
    next_pid: u32


switches = HashMap(Pair, u64, max_entries=10240)
TARGET = const(u32, 0)


@tracepoint("sched:sched_switch")
def switch(args):
    if TARGET and args.prev_pid != TARGET and args.next_pid != TARGET:
        return 0
    k = Pair(prev_pid=u32(args.prev_pid), next_pid=u32(args.next_pid))
    switches[k] += 1
    return 0


def main(argv=None) -> int:
    parser = ToolParser("20_task_switch", "Count context switches by (prev, next) pid")
    parser.add_argument("-p", "--pid", type=pid_number, default=0,
                        help="only switches from or to this task")
    parser.add_argument("duration", nargs="?", type=whole_seconds, help="seconds to trace")
    args = parser.parse_args(argv)
    with load_tool(__name__, consts={"TARGET": args.pid}) as mod:
        print("Tracing context switches... Hit Ctrl-C to end.")
        run_tool(mod, duration=args.duration)
        rows = sorted((k.prev_pid, k.next_pid, int(n)) for k, n in mod["switches"].items())
        for prev, nxt, n in rows:
            print(f"task_switch[{prev:>5}->{nxt:>5}]={n}")
    return 0


if __name__ == "__main__":
    tool_main(main)
