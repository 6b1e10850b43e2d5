"""syscalls: system calls by name, and failed ones by name and errno.

pybpf_syscalls_total{syscall} and pybpf_syscall_errors_total{syscall, errno}:

The raw tracepoint ``sys_exit`` (the one under ``raw_syscalls:sys_exit``, without the
record that tracepoint fills for each call) counts every call that returns,
system-wide, by its number (``regs->orig_ax``): in a per-CPU array indexed by that
number, so a call costs an indexed add on the CPU's own copy (no hash lookup, no atomic
instruction, no cache line shared between CPUs); the collector adds the CPUs up. A call
that returns a negative value also counts under its number and errno, in a hash map.
"""

from pybpf.dsl import HashMap, PerCPUArrayMap, Struct, raw_tracepoint, u32, u64
from pybpf.export import Counter, decoders

#: syscall numbers counted: past every architecture's table (x86_64 ends near 470)
NR_SLOTS = 1024


class Failure(Struct):
    nr: u32
    err: u32


calls = PerCPUArrayMap(u64, NR_SLOTS)                 # syscall number -> calls, per CPU
failures = HashMap(Failure, u64, max_entries=8192)   # (number, errno) -> failed calls


@raw_tracepoint("sys_exit")
def export_sys_exit(ctx):
    nr = u32(ctx.regs.orig_ax)
    if nr < NR_SLOTS:
        calls[nr] += 1
    ret = ctx.ret
    if ret < 0:
        f = Failure()
        f.nr = nr
        f.err = u32(0 - ret)
        failures[f] += 1
    return 0


METRICS = [
    Counter("pybpf_syscalls_total", "System calls that returned, by name.", calls,
            labels=[("syscall", decoders.syscall)], skip_zero=True),
    Counter("pybpf_syscall_errors_total", "System calls that failed, by name and error.",
            failures, labels=[("syscall", "nr", decoders.syscall),
                              ("errno", "err", decoders.errno)]),
]
