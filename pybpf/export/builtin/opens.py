"""opens: files opened, by command name and result.

pybpf_opens_total{comm, result}:

The exit tracepoints of open(), openat() and openat2() count each call under the
calling task's command name and its result: 0 for a descriptor, else the negative
errno (exported as ``ok`` or the error's name, e.g. ``ENOENT``).
"""

from pybpf.dsl import HashMap, Struct, char, comm, i32, tracepoint, u64
from pybpf.export import Counter, decoders


class Open(Struct):
    comm: char[16]
    ret: i32


opens = HashMap(Open, u64, max_entries=10240)        # (comm, 0 or -errno) -> calls


def count(ret: i32) -> i32:
    k = Open()
    k.comm = comm()
    if ret < 0:
        k.ret = ret
    opens[k] += 1
    return 0


@tracepoint("syscalls:sys_exit_open")
def export_open(args):
    return count(i32(args.ret))


@tracepoint("syscalls:sys_exit_openat")
def export_openat(args):
    return count(i32(args.ret))


@tracepoint("syscalls:sys_exit_openat2")
def export_openat2(args):
    return count(i32(args.ret))


METRICS = [
    Counter("pybpf_opens_total", "Calls of open(), openat() and openat2(), by command "
            "name and result (ok or the errno name).", opens,
            labels=[("comm", decoders.comm), ("result", "ret", decoders.result)]),
]
