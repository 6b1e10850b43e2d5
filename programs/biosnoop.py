#!/usr/bin/env python3
"""biosnoop: trace block device I/O with the process, disk, sector, size and latency of
each request, like BCC's biosnoop.

Requests are keyed by device and first sector. ``block:block_io_start`` fires in the
context of the task that created the request: its pid and comm are kept (a request
issued without it is credited to the task issuing it). ``block:block_rq_insert`` (-Q)
and ``block:block_rq_issue`` add their times; ``block:block_rq_complete`` sends one
event per request.
"""

import json

from pybpf.dsl import (
    HashMap, RingBuf, Struct, char, comm, const, ktime_ns, pid, tracepoint, u32, u64,
)
from pybpf.tooling import (
    ToolParser, disk_name, load_tool, run_tool, text_of, tool_main, write_lines,
)


class Rq(Struct):
    dev: u64
    sector: u64


class Req(Struct):
    insert_ns: u64
    issue_ns: u64
    pid: u32
    comm: char[16]


class Done(Struct):
    ts_ns: u64
    lat_ns: u64
    queue_ns: u64
    sector: u64
    pid: u32
    bytes: u32
    dev: u32
    comm: char[16]
    rwbs: char[10]


events = RingBuf(Done, size=256 * 1024)
reqs = HashMap(Rq, Req, max_entries=10240)
QUEUED = const(u32, 0)
DEV_FILTER = const(u32, 0)
TARGET_DEV = const(u32, 0)


@tracepoint("block:block_io_start")
def block_io_start(args):
    if DEV_FILTER and args.dev != TARGET_DEV:
        return 0
    k = Rq()
    k.dev = args.dev
    k.sector = args.sector
    reqs[k] = Req(pid=pid(), comm=comm())
    return 0


@tracepoint("block:block_rq_insert")
def block_rq_insert(args):
    if QUEUED == 0:
        return 0
    k = Rq()
    k.dev = args.dev
    k.sector = args.sector
    r = reqs.get(k)
    if r:
        r.insert_ns = ktime_ns()
    return 0


@tracepoint("block:block_rq_issue")
def block_rq_issue(args):
    if DEV_FILTER and args.dev != TARGET_DEV:
        return 0
    k = Rq()
    k.dev = args.dev
    k.sector = args.sector
    r = reqs.get(k)
    if r:
        r.issue_ns = ktime_ns()
        return 0
    reqs[k] = Req(issue_ns=ktime_ns(), pid=pid(), comm=comm())   # no block_io_start: the issuer
    return 0


@tracepoint("block:block_rq_complete")
def block_rq_complete(args):
    k = Rq()
    k.dev = args.dev
    k.sector = args.sector
    r = reqs.get(k)
    if r is None:
        return 0
    if r.issue_ns == 0:
        return 0                           # not issued yet (a partial completion?)
    e = Done()
    e.ts_ns = ktime_ns()
    e.lat_ns = e.ts_ns - r.issue_ns
    if r.insert_ns:
        e.queue_ns = r.issue_ns - r.insert_ns
    e.sector = args.sector
    e.pid = r.pid
    e.comm = r.comm
    e.bytes = args.nr_sector * 512
    e.dev = args.dev
    e.rwbs = args.rwbs
    del reqs[k]
    events.output(e)
    return 0


def disk_dev(name: str) -> int:
    """The kernel dev_t of block device ``name`` (``sda``, ``loop0``)."""
    with open(f"/sys/class/block/{name}/dev") as f:
        major, minor = (int(x) for x in f.read().split(":"))
    return major << 20 | minor


def column_header(args) -> str:
    """The header line, as BCC prints it for these options."""
    head = (f"{'TIME(s)':<11} {'COMM':<14} {'PID':<7} {'DISK':<9} {'T':<1} "
            f"{'SECTOR':<10} {'BYTES':<7} ")
    return head + ("QUE(ms) " if args.queue else "") + f"{'LAT(ms)':>7}"


def batch_printer(args):
    """The callback of ``mod.on("events", ..., rows=True)``: one line (or JSON object)
    per request, a batch written in one block. Times count from the first request
    shown; a disk's name is looked up in sysfs once per batch."""
    first = []

    def show(rows) -> None:
        if rows and not first:
            first.append(rows[0][0])
        disks = {}
        lines = []
        for ts, lat, queue, sector, pid, size, dev, comm, rwbs in rows:
            disk = disks.get(dev)
            if disk is None:
                disk = disks[dev] = disk_name(dev)
            rw = "W" if b"W" in rwbs.partition(b"\0")[0] else "R"
            elapsed = (ts - first[0]) / 1e9
            if args.json:
                obj = {"time(s)": round(elapsed, 6), "comm": text_of(comm), "pid": pid,
                       "disk": disk, "t": rw, "sector": sector, "bytes": size}
                if args.queue:
                    obj["que(ms)"] = round(queue / 1e6, 2)
                obj["lat(ms)"] = round(lat / 1e6, 2)
                lines.append(json.dumps(obj))
                continue
            line = (f"{elapsed:<11.6f} {text_of(comm):<14.14} {pid:<7} {disk:<9} {rw:<1} "
                    f"{sector:<10} {size:<7} ")
            if args.queue:
                line += f"{queue / 1e6:7.2f} "
            lines.append(line + f"{lat / 1e6:7.2f}")
        write_lines(lines)

    return show


def main(argv=None) -> int:
    parser = ToolParser("biosnoop", "Trace block I/O", examples=[
        "./biosnoop           # trace all block I/O",
        "./biosnoop -Q        # include OS queued time",
        "./biosnoop -d sdc    # trace sdc only",
    ])
    parser.add_argument("-Q", "--queue", action="store_true",
                        help="include OS queued time")
    parser.add_argument("-d", "--disk", type=str, help="trace this disk only")
    parser.add_argument("--json", action="store_true",
                        help="one JSON object per request (NDJSON), keys: the columns")
    args = parser.parse_args(argv)
    try:
        target = disk_dev(args.disk) if args.disk else 0
    except OSError:
        parser.error(f"no such disk: {args.disk}")

    consts = {"QUEUED": args.queue, "DEV_FILTER": bool(args.disk), "TARGET_DEV": target}
    with load_tool(__name__, consts=consts) as mod:
        mod.on("events", batch_printer(args), rows=True)
        run_tool(mod, header=None if args.json else column_header(args), json_lost=args.json)
    return 0


if __name__ == "__main__":
    tool_main(main)
