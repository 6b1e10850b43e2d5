"""oom: processes the out-of-memory killer chose, by command name.

pybpf_oom_kills_total{comm}:

``oom:mark_victim`` fires when the OOM killer (system-wide or a memory cgroup's) marks
a process to be killed; the tracepoint carries the victim's command name (a
``__data_loc`` string, read with ``probe_read_kernel_str``), which is not the task
that runs the killer.
"""

from pybpf.dsl import HashMap, Struct, char, probe_read_kernel_str, tracepoint, u64
from pybpf.export import Counter, decoders


class Name(Struct):
    comm: char[16]


kills = HashMap(Name, u64, max_entries=4096)        # victim's command name -> kills


@tracepoint("oom:mark_victim")
def export_oom(args):
    k = Name()                                      # zeroed: no stale bytes in the key
    k.comm = probe_read_kernel_str(args.comm)
    kills[k] += 1
    return 0


METRICS = [
    Counter("pybpf_oom_kills_total", "Processes chosen by the out-of-memory killer, by "
            "command name.", kills, labels=[("comm", decoders.comm)]),
]
