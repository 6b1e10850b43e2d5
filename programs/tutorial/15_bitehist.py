#!/usr/bin/env python3
"""Lesson 15, a log2 histogram of sizes: block I/O in kilobytes.

Lesson 9 counted latencies; the same ``Histogram`` counts any value. Each request
issued to a disk adds one to the slot of its size's power of two:
``dist[log2(args.bytes // 1024)] += 1``, so 64 KiB requests land in the ``64 -> 127``
row. ``log2`` is computed in the kernel with a few shifts and compares (there is no
log instruction), and the array is read once at the end and printed as BCC does
(``print_log2_hist("kbytes")``). ``-d DISK`` keeps one disk's requests, through a
load-time constant holding the disk's device number.

``pybpf compile --disasm -f rq_issue programs/tutorial/15_bitehist.py``, the key line::

    ; programs/tutorial/15_bitehist.py:75      dist[log2(args.bytes // 1024)] += 1
        12: w1 = *(u32 *)(r6 + 0x1c)
        13: r1 /= 0x400
        14: r2 = r1
        15: r1 = 0x0
        16: r3 = r2
        17: r3 >>= 0x20
        18: if r3 == 0x0 goto +0x2
        19: r2 = r3
        20: r1 += 0x20
        21: r3 = r2
        22: r3 >>= 0x10
        23: if r3 == 0x0 goto +0x2
        24: r2 = r3
        25: r1 += 0x10
        26: r3 = r2
        27: r3 >>= 0x8
        28: if r3 == 0x0 goto +0x2
        29: r2 = r3
        30: r1 += 0x8
        31: r3 = r2
        32: r3 >>= 0x4
        33: if r3 == 0x0 goto +0x2
        34: r2 = r3
        35: r1 += 0x4
        36: r3 = r2
        37: r3 >>= 0x2
        38: if r3 == 0x0 goto +0x2
        39: r2 = r3
        40: r1 += 0x2
        41: r3 = r2
        42: r3 >>= 0x1
        43: if r3 == 0x0 goto +0x2
        44: r2 = r3
        45: r1 += 0x1
        46: r1 += r2
        47: *(u32 *)(r10 - 0x8) = w1
        48: ld_pseudo	r1, 0x1, 0x0
        50: r2 = r10
        51: r2 += -0x8
        52: call 0x1
        53: r1 = r0
        54: if r1 == 0x0 goto +0x2
        55: r2 = 0x1
        56: lock *(u64 *)(r1 + 0x0) += r2
"""

import argparse
import os

from pybpf.dsl import Histogram, const, log2, tracepoint, u32
from pybpf.events.histogram import Log2Histogram
from pybpf.tooling import ToolParser, load_tool, run_tool, tool_main, whole_seconds

dist = Histogram()
DEV = const(u32, 0)                   # 0: every disk


@tracepoint("block:block_rq_issue")
def rq_issue(args):
    if DEV and args.dev != DEV:
        return 0
    dist[log2(args.bytes // 1024)] += 1
    return 0


def disk_dev(name: str) -> int:
    """The kernel's dev_t (major << 20 | minor) of block device ``name`` (``loop0``)."""
    try:
        with open(f"/sys/class/block/{os.path.basename(name)}/dev") as f:
            major, minor = (int(x) for x in f.read().split(":"))
    except OSError:
        raise LookupError(f"no block device {name!r} in /sys/class/block") from None
    return major << 20 | minor


def disk_arg(text: str) -> str:
    """argparse type for -d: a block device that :func:`disk_dev` finds."""
    try:
        disk_dev(text)
    except (LookupError, ValueError) as exc:
        raise argparse.ArgumentTypeError(f"{exc} (lsblk lists the disks)") from None
    return text


def main(argv=None) -> int:
    parser = ToolParser("15_bitehist", "Summarize block I/O sizes as a log2 histogram")
    parser.add_argument("-d", "--disk", type=disk_arg, help="this disk only (loop0, sda)")
    parser.add_argument("duration", nargs="?", type=whole_seconds, help="seconds to trace")
    args = parser.parse_args(argv)
    consts = {"DEV": disk_dev(args.disk) if args.disk else 0}
    with load_tool(__name__, consts=consts) as mod:
        print("Tracing block I/O... Hit Ctrl-C to end.")
        run_tool(mod, duration=args.duration)
        print(Log2Histogram(mod["dist"]).bcc("kbytes"), end="")
    return 0


if __name__ == "__main__":
    tool_main(main)
