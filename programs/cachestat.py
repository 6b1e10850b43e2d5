#!/usr/bin/env python3
"""cachestat: page cache hits and misses per interval, like BCC's cachestat.

Four kernel functions are counted, each in a slot of a per-CPU array:

- page accesses: ``folio_mark_accessed`` (Linux 5.16 and later; the read path calls it
  for every page it copies from the cache), else ``mark_page_accessed``;
- pages added to the cache: ``filemap_add_folio`` (5.18 and later), else
  ``add_to_page_cache_lru``;
- pages dirtied: ``folio_account_dirtied`` (5.17), else ``account_page_dirtied``, else
  (the function inlined away) the tracepoint ``writeback:writeback_dirty_folio`` or
  ``writeback:writeback_dirty_page``;
- buffers dirtied: ``mark_buffer_dirty``.

The columns are derived from the counts as BCC derives them: accesses less buffer
dirties are the cache lookups (TOTAL), insertions less dirtied pages are the MISSES (a
page added because a read did not find it; a page added for a write is not a miss),
HITS = TOTAL - MISSES, and when that is negative the misses are capped to TOTAL. DIRTIES
is the buffer-dirty count. HITRATIO is HITS / TOTAL. BUFFERS_MB and CACHED_MB are
``Buffers`` and ``Cached`` of /proc/meminfo when the line is printed. This is an
estimate: the functions are called on other paths too (readahead adds pages no read
asked for yet; mmap faults and page-table scans mark pages accessed), and their meaning
shifts between kernel versions.

kprobes are needed (``CONFIG_KPROBES``): where the kernel has none the tool stops with
one line, ``cachestat: kprobes: this kernel has no kprobe PMU and no kprobe_events``.
The counters are never cleared (a count made while they were would be lost): each line
shows the totals less those of the previous line.
"""

import os
import time

from pybpf.dsl import PerCPUArrayMap, kprobe, retarget, tracepoint, u64
from pybpf.tooling import ToolParser, load_tool, positive_int, run_tool, tool_main

ACCESSED, ADDED, ACCOUNTED, BUFFER_DIRTY = 0, 1, 2, 3

counts = PerCPUArrayMap(u64, 4)


@kprobe("folio_mark_accessed")
def count_accessed(ctx):
    counts[ACCESSED] += 1
    return 0


@kprobe("filemap_add_folio")
def count_added(ctx):
    counts[ADDED] += 1
    return 0


def count_accounted(ctx):               # a kprobe, or the tracepoint below: choose_points()
    counts[ACCOUNTED] += 1
    return 0


def count_accounted_tp(args):
    counts[ACCOUNTED] += 1
    return 0


@kprobe("mark_buffer_dirty")
def count_buffer_dirty(ctx):
    counts[BUFFER_DIRTY] += 1
    return 0


def _first(names, present):
    return next((n for n in names if n in present), names[-1])


def choose_points() -> list:
    """Point the programs at the functions this kernel has (/proc/kallsyms); returns the
    names of the programs to load."""
    from pybpf.link.kprobe import kernel_functions
    have = kernel_functions()
    retarget(count_accessed, kprobe(_first(["folio_mark_accessed", "mark_page_accessed"],
                                           have)))
    retarget(count_added, kprobe(_first(["filemap_add_folio", "add_to_page_cache_lru"],
                                        have)))
    progs = ["count_accessed", "count_added", "count_buffer_dirty"]
    dirtied = [n for n in ("folio_account_dirtied", "account_page_dirtied") if n in have]
    if dirtied or not have:
        retarget(count_accounted, kprobe(dirtied[0] if dirtied else "account_page_dirtied"))
        return progs + ["count_accounted"]
    events = "/sys/kernel/tracing/events/writeback"
    tp = "writeback_dirty_folio" if os.path.isdir(f"{events}/writeback_dirty_folio") \
        else "writeback_dirty_page"
    retarget(count_accounted_tp, tracepoint(f"writeback:{tp}"))
    return progs + ["count_accounted_tp"]


def meminfo_mb() -> tuple:
    """(Buffers, Cached) of /proc/meminfo, in MiB."""
    found = {}
    with open("/proc/meminfo") as fh:
        for line in fh:
            name, _, rest = line.partition(":")
            if name in ("Buffers", "Cached"):
                found[name] = int(rest.split()[0]) / 1024
    return found.get("Buffers", 0.0), found.get("Cached", 0.0)


def derive(accessed: int, added: int, accounted: int, buffer_dirty: int) -> tuple:
    """(hits, misses, dirties, ratio) from one interval's counts, as BCC derives them."""
    total = max(accessed - buffer_dirty, 0)
    misses = max(added - accounted, 0)
    hits = total - misses
    if hits < 0:
        misses, hits = total, 0
    return hits, misses, buffer_dirty, (hits / total if total else 0.0)


def main(argv=None) -> int:
    parser = ToolParser("cachestat", "Count cache kernel function calls", examples=[
        "./cachestat             # run with default option of 1 second delay",
        "./cachestat -T          # include timestamps",
        "./cachestat 1 10        # print 1 second summaries, 10 times",
    ])
    parser.add_argument("-T", "--timestamp", action="store_true",
                        help="include timestamp on output")
    parser.add_argument("interval", nargs="?", type=positive_int, default=1,
                        help="output interval, in seconds")
    parser.add_argument("count", nargs="?", type=positive_int,
                        help="number of outputs")
    args = parser.parse_args(argv)
    programs = choose_points()
    last = [0, 0, 0, 0]

    def show() -> None:
        table = mod["counts"]
        now = [sum(int(v) for v in table[i]) for i in range(4)]
        delta = [n - b for n, b in zip(now, last)]
        last[:] = now
        hits, misses, dirties, ratio = derive(*delta)
        buffers, cached = meminfo_mb()
        stamp = f"{time.strftime('%H:%M:%S'):<8} " if args.timestamp else ""
        print(f"{stamp}{hits:8d} {misses:8d} {dirties:8d} {100 * ratio:7.2f}% "
              f"{buffers:12.0f} {cached:10.0f}")

    header = (f"{'TIME':<8} " if args.timestamp else "") + \
        f"{'HITS':>8} {'MISSES':>8} {'DIRTIES':>8} {'HITRATIO':>8} {'BUFFERS_MB':>12} " \
        f"{'CACHED_MB':>10}"
    with load_tool(__name__, programs=programs) as mod:
        run_tool(mod, interval=args.interval, count=args.count, on_interval=show,
                 header=header)
    return 0


if __name__ == "__main__":
    tool_main(main)
