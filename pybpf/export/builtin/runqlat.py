"""runqlat: how long runnable tasks wait on a CPU's run queue, as a histogram.

pybpf_runqueue_latency_seconds:

A task joins a run queue when it is woken (``sched_wakeup``, ``sched_wakeup_new``) or
switched out while still runnable (``sched_switch`` with ``prev_state`` 0: preempted);
the time is kept per thread id. When ``sched_switch`` puts that thread on a CPU, the
nanoseconds it waited go into a log2 histogram, and their exact total into ``_sum``.
The raw tracepoints hand over the ``task_struct`` pointers (``ctx.p``, ``ctx.prev``,
``ctx.next``), as in ``programs/runqlat.py``.
"""

from pybpf.dsl import ArrayMap, HashMap, Histogram, ktime_ns, log2, raw_tracepoint, u32, \
    u64
from pybpf.export import Histogram as PromHistogram

TASK_RUNNING = 0

queued = HashMap(u32, u64, max_entries=10240)    # thread id -> time it became runnable
waits = Histogram()                              # log2(ns waited) -> tasks
waited_ns = ArrayMap(u64, 1)                     # the total of all waits, in ns


def enqueue(tid: u32) -> u32:
    if tid != 0:                                 # not the idle task
        queued[tid] = ktime_ns()
    return 0


@raw_tracepoint("sched_wakeup")
def export_wakeup(ctx):
    return enqueue(u32(ctx.p.pid))


@raw_tracepoint("sched_wakeup_new")
def export_wakenew(ctx):
    return enqueue(u32(ctx.p.pid))


@raw_tracepoint("sched_switch")
def export_switch(ctx):
    if ctx.prev_state == TASK_RUNNING:
        enqueue(u32(ctx.prev.pid))
    tid = u32(ctx.next.pid)
    t = queued.get(tid)
    if t is None:
        return 0
    delta = ktime_ns() - t[0]
    del queued[tid]
    waits[log2(delta)] += 1
    waited_ns[u32(0)] += delta
    return 0


METRICS = [
    PromHistogram("pybpf_runqueue_latency_seconds", "Time runnable tasks waited on a "
                  "run queue before running on a CPU.", waits, unit_scale=1e-9,
                  sum_map=waited_ns, slots=40),
]
