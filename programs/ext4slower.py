#!/usr/bin/env python3
"""ext4slower: ext4 reads, writes, opens and fsyncs slower than a threshold, like BCC's
ext4slower.

A kprobe at the entry of ``ext4_file_read_iter``, ``ext4_file_write_iter`` (both Linux
4.10 and later), ``ext4_file_open`` and ``ext4_sync_file`` stores the start time, the
file offset (``iocb->ki_pos``; 0 for opens and fsyncs) and the file's name (the dentry's
last component, up to 32 bytes, as the kernel keeps short names inline) under the
thread's id; a kretprobe at the return computes the latency and, when it reaches
``min_ms`` (default 10; 0 shows every operation), sends one record. BYTES is the
function's return value as an unsigned 32-bit number, as BCC shows it: the bytes read or
written, 0 for opens and fsyncs (an error shows as a large number). OFF_KB is the
offset in KiB. An operation that was under way when tracing began is not shown.

The latency measured is the file system's (page cache included), not the disk's: a
read served from the cache is fast; a write usually only dirties pages, the fsync
waits for them.

kprobes are needed (``CONFIG_KPROBES``): where the kernel has none the tool stops with
one line, ``ext4slower: kprobes: this kernel has no kprobe PMU and no kprobe_events``;
and ext4 must be in the kernel (built in or its module loaded): the tool stops naming
the missing function otherwise. The arguments are read as registers (``arg0``,
``arg1``) and typed through ``kernel_ptr(..., "kiocb")`` and ``"file"``: the kernel's
own BTF has those structs, while the functions' prototypes are in the ext4 module's BTF
where ext4 is a module (Debian's kernels), which the compiler does not read.
"""

import json
import time

from pybpf.dsl import (
    HashMap, PerfEventArray, Struct, char, comm, const, kernel_ptr, kprobe, kretprobe,
    ktime_ns, pid, probe_read_kernel_str, tid, u32, u64,
)
from pybpf.tooling import (
    ToolParser, load_tool, pid_number, run_tool, text_of, tool_main, write_lines,
)

READ, WRITE, OPEN, FSYNC = 0, 1, 2, 3
KINDS = "RWOS"


class Start(Struct):
    ts: u64
    offset: u64
    kind: u32
    pad: u32
    name: char[32]


class Event(Struct):
    ts_us: u64
    delta_us: u64
    offset: u64
    size: u32
    kind: u32
    pid: u32
    pad: u32
    comm: char[16]
    name: char[32]


start = HashMap(u32, Start, max_entries=10240)
events = PerfEventArray(Event)
TARGET_PID = const(u32, 0)
MIN_US = const(u64, 10000)


def remember(filp: u64, offset: u64, kind: u32) -> u32:
    if TARGET_PID and pid() != TARGET_PID:
        return 0
    s = Start()
    s.ts = ktime_ns()
    s.offset = offset
    s.kind = kind
    s.name = probe_read_kernel_str(kernel_ptr(filp, "file").f_path.dentry.d_name.name, 32)
    start[tid()] = s
    return 0


def finish(ret: u64) -> u32:
    s = start.get(tid())
    if s is None:
        return 0                      # entered before tracing began (or another -p)
    now = ktime_ns()
    delta_us = (now - s.ts) // 1000
    if MIN_US and delta_us < MIN_US:
        del start[tid()]
        return 0
    e = Event()
    e.ts_us = now // 1000
    e.delta_us = delta_us
    e.offset = s.offset
    e.size = u32(ret)
    e.kind = s.kind
    e.pid = pid()
    e.comm = comm()
    e.name = s.name
    del start[tid()]
    if e.name[0] == 0:
        return 0                      # no name (BCC skips these too)
    events.output(e)
    return 0


@kprobe("ext4_file_read_iter")
def read_entry(ctx):
    iocb = kernel_ptr(ctx.arg0, "kiocb")
    return remember(u64(iocb.ki_filp), u64(iocb.ki_pos), READ)


@kprobe("ext4_file_write_iter")
def write_entry(ctx):
    iocb = kernel_ptr(ctx.arg0, "kiocb")
    return remember(u64(iocb.ki_filp), u64(iocb.ki_pos), WRITE)


@kprobe("ext4_file_open")
def open_entry(ctx):
    return remember(ctx.arg1, 0, OPEN)


@kprobe("ext4_sync_file")
def fsync_entry(ctx):
    return remember(ctx.arg0, 0, FSYNC)


@kretprobe("ext4_file_read_iter")
def read_return(ctx):
    return finish(u64(ctx.retval))


@kretprobe("ext4_file_write_iter")
def write_return(ctx):
    return finish(u64(ctx.retval))


@kretprobe("ext4_file_open")
def open_return(ctx):
    return finish(u64(ctx.retval))


@kretprobe("ext4_sync_file")
def fsync_return(ctx):
    return finish(u64(ctx.retval))


def column_header(args) -> str:
    """The banner and column header, as BCC prints them for these options."""
    if args.csv:
        return "ENDTIME_us,TASK,PID,TYPE,BYTES,OFFSET_b,LATENCY_us,FILE"
    banner = "Tracing ext4 operations" + \
        (f" slower than {args.min_ms} ms" if args.min_ms else "")
    return banner + "\n" + (f"{'TIME':<8} {'COMM':<14} {'PID':<7} T {'BYTES':<7} "
                            f"{'OFF_KB':<8} {'LAT(ms)':>7} FILENAME")


def batch_printer(args):
    """The callback of ``mod.on("events", ..., rows=True)``: one line per operation
    (a CSV row with -j, a JSON object with --json); the wall clock is read per batch."""

    def show(rows) -> None:
        wall = time.strftime("%H:%M:%S")
        lines = []
        for ts_us, delta_us, offset, size, kind, p, _, task, name in rows:
            task, name, t = text_of(task), text_of(name), KINDS[kind]
            if args.json:
                lines.append(json.dumps({"time": wall, "comm": task, "pid": p, "t": t,
                                         "bytes": size, "off_kb": offset // 1024,
                                         "lat(ms)": round(delta_us / 1000, 2),
                                         "filename": name}))
            elif args.csv:
                lines.append(f"{ts_us},{task},{p},{t},{size},{offset},{delta_us},{name}")
            else:
                lines.append(f"{wall:<8} {task:<14.14} {p:<7} {t} {size:<7} "
                             f"{offset // 1024:<8} {delta_us / 1000:7.2f} {name}")
        write_lines(lines)

    return show


def main(argv=None) -> int:
    parser = ToolParser("ext4slower", "Trace common ext4 file operations slower than a "
                        "threshold", examples=[
                            "./ext4slower             # trace operations slower than 10 ms "
                            "(default)",
                            "./ext4slower 1           # trace operations slower than 1 ms",
                            "./ext4slower -j 1        # ... 1 ms, parsable output (csv)",
                            "./ext4slower 0           # trace all operations (warning: "
                            "verbose)",
                            "./ext4slower -p 185      # trace PID 185 only",
                        ])
    parser.add_argument("-j", "--csv", action="store_true",
                        help="just print fields: comma-separated values")
    parser.add_argument("-p", "--pid", type=pid_number, default=0, help="trace this PID only")
    parser.add_argument("--json", action="store_true",
                        help="one JSON object per operation (NDJSON), keys: the columns")
    parser.add_argument("min_ms", nargs="?", type=int, default=10,
                        help="minimum I/O duration to trace, in ms (default 10)")
    args = parser.parse_args(argv)
    if args.min_ms < 0:
        parser.error(f"min_ms must be 0 or more, not {args.min_ms}")
    consts = {"TARGET_PID": args.pid, "MIN_US": args.min_ms * 1000}
    with load_tool(__name__, consts=consts) as mod:
        mod.on("events", batch_printer(args), rows=True)
        run_tool(mod, header=None if args.json else column_header(args),
                 json_lost=args.json)
    return 0


if __name__ == "__main__":
    tool_main(main)
