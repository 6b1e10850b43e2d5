"""irq: time spent in hard interrupt handlers (by name) and softirqs (by vector).

pybpf_hardirq_seconds_total{irq_name} and pybpf_softirq_seconds_total{vector}:

``irq:irq_handler_entry`` keeps the time and the handler's name on this CPU (a per-CPU
slot: handlers do not nest on one CPU); ``irq:irq_handler_exit`` adds the nanoseconds
since to that name's total. ``irq:softirq_entry``/``softirq_exit`` do the same per
softirq vector (``net_rx``, ``timer``, ...). The totals are exported in seconds.
"""

from pybpf.dsl import HashMap, PerCPUArrayMap, Struct, char, ktime_ns, \
    probe_read_kernel_str, tracepoint, u32, u64
from pybpf.export import Counter, decoders


class Running(Struct):
    ts: u64
    name: char[32]


class Name(Struct):
    name: char[32]


hard_now = PerCPUArrayMap(Running, 1)              # the handler running on this CPU
hard_ns = HashMap(Name, u64, max_entries=1024)     # handler name -> total ns
soft_now = PerCPUArrayMap(u64, 1)                  # softirq entry time on this CPU
soft_ns = HashMap(u32, u64, max_entries=16)        # vector -> total ns


@tracepoint("irq:irq_handler_entry")
def export_hirq_in(args):
    r = hard_now.get(0)
    if r is None:
        return 0
    n = Name()                                     # zeroed: it becomes a map key
    n.name = probe_read_kernel_str(args.name)
    r.name = n.name
    r.ts = ktime_ns()
    return 0


@tracepoint("irq:irq_handler_exit")
def export_hirq_out(args):
    r = hard_now.get(0)
    if r is None or r.ts == 0:
        return 0
    delta = ktime_ns() - r.ts
    r.ts = 0
    n = Name()
    n.name = r.name
    hard_ns[n] += delta
    return 0


@tracepoint("irq:softirq_entry")
def export_sirq_in(args):
    soft_now[0] = ktime_ns()
    return 0


@tracepoint("irq:softirq_exit")
def export_sirq_out(args):
    t = soft_now.get(0)
    if t is None or t[0] == 0:
        return 0
    delta = ktime_ns() - t[0]
    t[0] = 0
    soft_ns[u32(args.vec)] += delta
    return 0


METRICS = [
    Counter("pybpf_hardirq_seconds_total", "Time spent in hard interrupt handlers, by "
            "handler name.", hard_ns, labels=[("irq_name", "name", decoders.comm)],
            unit_scale=1e-9),
    Counter("pybpf_softirq_seconds_total", "Time spent in softirqs, by vector.", soft_ns,
            labels=[("vector", decoders.names(decoders.SOFTIRQ_VECTORS))],
            unit_scale=1e-9),
]
