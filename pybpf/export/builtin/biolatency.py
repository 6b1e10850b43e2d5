"""biolatency: block device I/O latency, per disk and operation, as a histogram.

pybpf_block_io_latency_seconds{disk, op}:

``block:block_rq_issue`` keeps the time a request goes to the device, keyed by its
device and first sector; ``block:block_rq_complete`` puts the nanoseconds it took into
a log2 histogram keyed by the disk's ``dev_t`` (exported as its name, e.g. ``sda``),
the operation (the first letter of ``rwbs`` after a flush flag: read, write, discard,
flush, ...) and the slot, and adds them to the exact ``_sum``. Requests issued before
the exporter started are not counted.
"""

from pybpf.dsl import HashMap, Struct, ktime_ns, log2, tracepoint, u32, u64
from pybpf.export import Histogram, decoders

FLUSH = 70                                    # 'F': a preflush ahead of the operation


class Rq(Struct):
    dev: u64
    sector: u64


class DiskOp(Struct):
    dev: u32
    op: u32


class DiskOpSlot(Struct):
    dev: u32
    op: u32
    slot: u32


issued = HashMap(Rq, u64, max_entries=10240)           # request -> time issued
latency = HashMap(DiskOpSlot, u64, max_entries=4096)   # (disk, op, log2 ns) -> requests
latency_ns = HashMap(DiskOp, u64, max_entries=1024)    # (disk, op) -> total ns


@tracepoint("block:block_rq_issue")
def export_rq_issue(args):
    k = Rq()
    k.dev = args.dev
    k.sector = args.sector
    issued[k] = ktime_ns()
    return 0


@tracepoint("block:block_rq_complete")
def export_rq_done(args):
    k = Rq()
    k.dev = args.dev
    k.sector = args.sector
    t = issued.get(k)
    if t is None:
        return 0
    delta = ktime_ns() - t[0]
    del issued[k]
    op = u32(args.rwbs[0])
    if op == FLUSH and args.rwbs[1] != 0:
        op = u32(args.rwbs[1])
    h = DiskOpSlot()
    h.dev = args.dev
    h.op = op
    h.slot = log2(delta)
    latency[h] += 1
    s = DiskOp()
    s.dev = args.dev
    s.op = op
    latency_ns[s] += delta
    return 0


METRICS = [
    Histogram("pybpf_block_io_latency_seconds", "Time block I/O requests took from "
              "issue to the device until completion, by disk and operation.", latency,
              labels=[("disk", "dev", decoders.disk), ("op", decoders.block_op)],
              unit_scale=1e-9, sum_map=latency_ns, slots=40),
]
