"""process: programs executed and processes that ended, by command name.

pybpf_process_execs_total{comm} and pybpf_process_exits_total{comm, reason}:

``sched:sched_process_exec`` fires after a successful execve(), when the task already
has the new program's command name. ``sched:sched_process_exit`` fires in each exiting
thread; only the main thread's exit (thread id = process id) counts as the process
ending, under its ``exit_code``: ``ok`` (status 0), ``error`` (another status) or the
signal that ended it (``SIGKILL``).
"""

from pybpf.dsl import HashMap, Struct, char, comm, current_task, tracepoint, u32, u64
from pybpf.export import Counter, decoders


class Name(Struct):
    comm: char[16]


class Exit(Struct):
    comm: char[16]
    code: u32


execs = HashMap(Name, u64, max_entries=10240)     # command name -> successful execs
exits = HashMap(Exit, u64, max_entries=10240)     # (command name, exit code) -> exits


@tracepoint("sched:sched_process_exec")
def export_exec(args):
    k = Name()
    k.comm = comm()
    execs[k] += 1
    return 0


@tracepoint("sched:sched_process_exit")
def export_exit(args):
    task = current_task()
    if task.pid != task.tgid:
        return 0                                  # a thread, not the process
    k = Exit()
    k.comm = comm()
    k.code = u32(task.exit_code)
    exits[k] += 1
    return 0


METRICS = [
    Counter("pybpf_process_execs_total", "Successful execve() calls, by the command name "
            "of the new program.", execs, labels=[("comm", decoders.comm)]),
    Counter("pybpf_process_exits_total", "Processes that ended, by command name and "
            "reason (ok, error or the signal's name).", exits,
            labels=[("comm", decoders.comm), ("reason", "code", decoders.exit_reason)]),
]
