from pybpf.dsl import *

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
    e.ppid = task.real_parent.tgid
    e.comm = task.comm
    for i in range(4):
        ptr = probe_read_user(args.argv + i * 8, u64)
        if ptr == 0:
            break
        e.arg = probe_read_user_str(ptr)
        e.argn = i
        execs.output(e)
    return 0

@tp_btf("sched_wakeup")
def wake(ctx):
    start[ctx.p.pid] = ktime_ns()
    return 0

@raw_tracepoint("sched_switch")
def switch(ctx):
    nxt = ctx.next
    t = start.get(nxt.pid)
    if t:
        delta = ktime_ns() - t[0]
        hist[log2(delta // 1000)] += 1
    return 0
