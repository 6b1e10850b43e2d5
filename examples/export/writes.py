"""writes: bytes written by command name, and a histogram of write() sizes.

Serve it with ``sudo pybpf export examples/export/writes.py`` (add built-in names to
serve them from the same process).
"""

from pybpf.dsl import HashMap, Histogram, Struct, char, comm, log2, tracepoint, u64
from pybpf.export import Counter, Histogram as PromHistogram, decoders


class Writer(Struct):
    comm: char[16]


written = HashMap(Writer, u64, max_entries=4096)     # command name -> bytes written
sizes = Histogram()                                  # log2(bytes) -> write() calls


@tracepoint("syscalls:sys_exit_write")
def export_write(args):
    if args.ret <= 0:                    # failed or empty writes count nowhere
        return 0
    w = Writer()
    w.comm = comm()
    written[w] += u64(args.ret)
    sizes[log2(u64(args.ret))] += 1
    return 0


METRICS = [
    Counter("example_written_bytes_total", "Bytes written with write(), by command name.",
            written, labels=[("comm", decoders.comm)]),
    PromHistogram("example_write_size_bytes", "Sizes of successful write() calls.",
                  sizes, slots=32),
]
