#!/usr/bin/env python3
"""openat() calls paired from entry to exit, in pybpf's language: a struct built on the
stack, a hash map keyed by thread, a ring buffer of results, a load-time pid filter and
a print(). Run it (as root) to watch this machine's opens for two seconds:

    sudo python3 examples/dsl/open_pairs.py
"""

from pybpf.dsl import (
    HashMap, RingBuf, Struct, char, comm, const, i32, load, pid, pid_tgid,
    probe_read_user_str, tracepoint, u32, u64,
)

class Event(Struct):
    pid: u32
    ret: i32
    comm: char[16]
    path: char[64]

events = RingBuf(Event, size=256 * 1024)
start = HashMap(u64, Event, max_entries=10240)
counts = HashMap(u32, u64)
TARGET_PID = const(u32, 0)

@tracepoint("syscalls:sys_enter_openat")
def enter(args):
    if TARGET_PID and pid() != TARGET_PID:
        return 0
    e = Event()
    e.pid = pid()
    e.comm = comm()
    e.path = probe_read_user_str(args.filename)
    start[pid_tgid()] = e
    counts[pid()] += 1
    return 0

@tracepoint("syscalls:sys_exit_openat")
def exit_(args):
    p = start.get(pid_tgid())
    if p is None:
        return 0
    p.ret = i32(args.ret)
    events.output(p)
    print(f"pid {p.pid} ret {p.ret:>4} {p.path!r}")
    del start[pid_tgid()]
    return 0


if __name__ == "__main__":
    import sys
    with load(sys.modules[__name__]) as mod:
        mod.on("events", lambda e: None)        # the records; print() shows each one
        mod.run(duration=2)
