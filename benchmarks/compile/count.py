"""counts[pid] += 1 on every getpid() (the equivalent of count.bpf.c)."""
from pybpf.dsl import HashMap, pid, tracepoint, u32, u64

counts = HashMap(u32, u64, max_entries=10240)


@tracepoint("syscalls:sys_enter_getpid")
def count(args):
    counts[pid()] += 1
    return 0
