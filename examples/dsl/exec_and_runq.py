#!/usr/bin/env python3
"""Two ideas in pybpf's language: kernel structs read through BTF (the parent of an
exec'ing task, its argv read from user memory in a bounded loop, sent on a perf buffer)
and raw tracepoints with BTF argument names feeding a log2 histogram of run-queue
latency. Run it (as root) for two seconds:

    sudo python3 examples/dsl/exec_and_runq.py
"""

from pybpf.dsl import (
    HashMap, Histogram, PerfEventArray, Struct, char, current_task, ktime_ns, load, log2,
    pid, probe_read_user, probe_read_user_str, raw_tracepoint, tracepoint, u32,
    u64,
)

class Exec(Struct):
    pid: u32
    ppid: u32
    comm: char[16]
    arg: char[32]
    argn: u32

execs = PerfEventArray(Exec)
hist = Histogram()
start = HashMap(u32, u64)

@tracepoint("syscalls:sys_enter_execve")
def on_exec(args):
    e = Exec()
    e.pid = pid()
    task = current_task()
    e.ppid = u32(task.real_parent.tgid)
    e.comm = task.comm
    for i in range(4):
        ptr = probe_read_user(args.argv + i * 8, u64)
        if ptr == 0:
            break
        e.arg = probe_read_user_str(ptr)
        e.argn = u32(i)
        execs.output(e)
    return 0

@raw_tracepoint("sched_wakeup")
def wake(ctx):
    start[u32(ctx.p.pid)] = ktime_ns()
    return 0

@raw_tracepoint("sched_switch")
def switch(ctx):
    nxt = ctx.next
    t = start.get(u32(nxt.pid))
    if t:
        delta = ktime_ns() - t[0]
        hist[log2(delta // 1000)] += 1
    return 0


if __name__ == "__main__":
    import sys
    from pybpf.events.histogram import Log2Histogram
    with load(sys.modules[__name__]) as mod:
        mod.on("execs", lambda e: print(f"{e.pid} (parent {e.ppid}, {e.comm}) "
                                        f"arg{e.argn}: {e.arg}"))
        mod.run(duration=2)
        print(Log2Histogram(mod["hist"]).bcc("usecs"), end="")
