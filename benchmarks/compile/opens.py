"""openat enter/exit paired, sent on a ring buffer (the equivalent of opens.bpf.c)."""
from pybpf.dsl import (
    HashMap, RingBuf, Struct, char, comm, const, i32, pid, pid_tgid, probe_read_user_str,
    tracepoint, u32, u64,
)


class Event(Struct):
    pid: u32
    ret: i32
    comm: char[16]
    path: char[160]


events = RingBuf(Event, size=256 * 1024)
start = HashMap(u64, Event, max_entries=10240)
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
    return 0


@tracepoint("syscalls:sys_exit_openat")
def leave(args):
    p = start.get(pid_tgid())
    if p is None:
        return 0
    p.ret = i32(args.ret)
    events.output(p)
    del start[pid_tgid()]
    return 0
