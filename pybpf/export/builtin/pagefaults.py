"""pagefaults: page faults by command name and the mode they happened in.

pybpf_page_faults_total{comm, kind}:

``exceptions:page_fault_user`` fires for a fault in user mode, ``page_fault_kernel``
for one in kernel mode (a system call touching a user buffer not yet mapped, for
instance); both run in the faulting task, counted under its command name. Faults that
``get_user_pages()`` resolves without an exception are not seen.
"""

from pybpf.dsl import HashMap, Struct, char, comm, i32, tracepoint, u32, u64
from pybpf.export import Counter, decoders

USER, KERNEL = 0, 1


class Fault(Struct):
    comm: char[16]
    kind: u32


faults = HashMap(Fault, u64, max_entries=10240)     # (command name, kind) -> faults


def count(kind: u32) -> i32:
    k = Fault()
    k.comm = comm()
    k.kind = kind
    faults[k] += 1
    return 0


@tracepoint("exceptions:page_fault_user")
def export_pf_user(args):
    return count(USER)


@tracepoint("exceptions:page_fault_kernel")
def export_pf_kern(args):
    return count(KERNEL)


METRICS = [
    Counter("pybpf_page_faults_total", "Page faults, by command name and the mode they "
            "happened in (user or kernel).", faults,
            labels=[("comm", decoders.comm), ("kind", decoders.names(["user", "kernel"]))]),
]
