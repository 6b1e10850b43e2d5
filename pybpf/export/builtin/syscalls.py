"""syscalls: system calls by name, and failed ones by name and errno.

pybpf_syscalls_total{syscall} and pybpf_syscall_errors_total{syscall, errno}:

``raw_syscalls:sys_exit`` counts every call that returns, system-wide, by its number;
a call that returns a negative value also counts under its number and errno.
"""

from pybpf.dsl import HashMap, Struct, tracepoint, u32, u64
from pybpf.export import Counter, decoders


class Failure(Struct):
    nr: u32
    err: u32


calls = HashMap(u32, u64, max_entries=1024)          # syscall number -> calls
failures = HashMap(Failure, u64, max_entries=8192)   # (number, errno) -> failed calls


@tracepoint("raw_syscalls:sys_exit")
def export_sys_exit(args):
    nr = u32(args.id)
    calls[nr] += 1
    if args.ret < 0:
        f = Failure()
        f.nr = nr
        f.err = u32(0 - args.ret)
        failures[f] += 1
    return 0


METRICS = [
    Counter("pybpf_syscalls_total", "System calls that returned, by name.", calls,
            labels=[("syscall", decoders.syscall)]),
    Counter("pybpf_syscall_errors_total", "System calls that failed, by name and error.",
            failures, labels=[("syscall", "nr", decoders.syscall),
                              ("errno", "err", decoders.errno)]),
]
