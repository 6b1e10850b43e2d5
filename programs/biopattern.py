#!/usr/bin/env python3
"""biopattern: show random versus sequential block I/O per disk, like BCC's biopattern
(its columns: TIME always, the header once; libbpf-tools' ``-T`` is accepted).

``block:block_rq_complete`` (kernel 4.19 for its ``dev``/``sector``/``nr_sector``
fields as used here; BPF on tracepoints needs 4.7) runs for every completed request. A
hash map keyed by the disk's dev_t keeps the sector where the disk's previous request
ended: a request that starts there is sequential, any other is random (the first
request seen on a disk only sets the position, as libbpf-tools does). Counts and bytes
are added with atomic instructions; user space prints and deletes the entries every
interval (the next interval's first request on a disk again only sets its position).
"""

import argparse
import os
import time

from pybpf.dsl import HashMap, Struct, const, tracepoint, u32, u64
from pybpf.tooling import (
    ToolParser, add_interval_args, disk_name, load_tool, run_tool, tool_main,
)


class Counter(Struct):
    last_sector: u64
    bytes: u64
    sequential: u32
    random: u32


counters = HashMap(u32, Counter, max_entries=64)
FILTER_DEV = const(u32, 0)
TARGET_DEV = const(u32, 0)


@tracepoint("block:block_rq_complete")
def handle_block_rq_complete(args):
    dev = u32(args.dev)
    if FILTER_DEV and dev != TARGET_DEV:
        return 0
    c = counters.get(dev)
    if c is None:
        counters[dev] = Counter()
        c = counters.get(dev)
        if c is None:
            return 0                    # the map is full
    sector = args.sector
    if c.last_sector:
        if c.last_sector == sector:
            c.sequential += 1
        else:
            c.random += 1
        c.bytes += args.nr_sector * 512
    c.last_sector = sector + args.nr_sector
    return 0


def disk_arg(text: str) -> str:
    """argparse type for -d: the name of a block device in /sys/class/block."""
    if not text or "/" in text or text in (".", "..") \
            or not os.path.exists(f"/sys/class/block/{text}/dev"):
        raise argparse.ArgumentTypeError(
            f"no such disk: {text!r} (not in /sys/class/block; lsblk lists the disks)")
    return text


def disk_dev(name: str) -> int:
    """The kernel dev_t of block device ``name`` (``sda``, ``loop0``): major << 20 |
    minor, as the block tracepoints carry it."""
    with open(f"/sys/class/block/{name}/dev") as f:
        major, minor = (int(x) for x in f.read().split(":"))
    return major << 20 | minor


HEADER = f"{'TIME':<9} {'DISK':<7} {'%RND':>5} {'%SEQ':>5} {'COUNT':>8} {'KBYTES':>10}"


def row(disk: str, c, stamp: str) -> str:
    """One disk's line as BCC prints it: %RND rounded to the nearest integer (Python's
    ``round``, halves to even), %SEQ the rest of 100, kilobytes rounded down."""
    total = c.sequential + c.random
    rnd = int(round(c.random * 100 / total))
    return f"{stamp:<9} {disk:<7} {rnd:>5} {100 - rnd:>5} {total:>8} {c.bytes // 1024:>10}"


def summary(mod, args) -> None:
    """Print the disks' counts since the last summary and delete them."""
    table = mod["counters"]
    rows = []
    for dev, c in list(table.items()):
        try:
            del table[dev]
        except KeyError:
            pass
        if c.sequential + c.random:
            rows.append((int(dev), c))
    stamp = time.strftime("%H:%M:%S")
    for dev, c in sorted(rows):
        print(row(disk_name(dev), c, stamp))


def main(argv=None) -> int:
    parser = ToolParser("biopattern", "Show block device I/O pattern.", examples=[
        "biopattern              # show block I/O pattern",
        "biopattern 1 10         # print 1 second summaries, 10 times",
        "biopattern -T 1         # 1s summaries with timestamps",
        "biopattern -d sdc       # trace sdc only",
    ])
    parser.add_argument("-T", "--timestamp", action="store_true",
                        help="include timestamp on output (always shown, as BCC does; "
                        "accepted for libbpf-tools' command lines)")
    parser.add_argument("-d", "--disk", type=disk_arg, help="trace this disk only")
    add_interval_args(parser)
    args = parser.parse_args(argv)
    try:
        target = disk_dev(args.disk) if args.disk else 0
    except (OSError, ValueError):            # gone since the check, or an odd dev file
        parser.error(f"argument -d/--disk: no such disk: {args.disk!r} "
                     "(not in /sys/class/block)")

    with load_tool(__name__, consts={"FILTER_DEV": bool(args.disk),
                                     "TARGET_DEV": target}) as mod:
        run_tool(mod, interval=args.interval, count=args.count,
                 summary=lambda: summary(mod, args),
                 header=HEADER)
    return 0


if __name__ == "__main__":
    tool_main(main)
