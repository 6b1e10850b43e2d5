"""A log2 histogram of syscall latency in usecs (the equivalent of syslat.bpf.c)."""
from pybpf.dsl import HashMap, Histogram, ktime_ns, log2, tid, tracepoint, u32, u64

start = HashMap(u32, u64, max_entries=10240)
hist = Histogram(65)


@tracepoint("raw_syscalls:sys_enter")
def sys_enter(args):
    start[tid()] = ktime_ns()
    return 0


@tracepoint("raw_syscalls:sys_exit")
def sys_exit(args):
    ts = start.get(tid())
    if ts is None:
        return 0
    hist[log2((ktime_ns() - ts[0]) // 1000)] += 1
    del start[tid()]
    return 0
