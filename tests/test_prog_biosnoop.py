"""programs/biosnoop.py: O_DIRECT reads at known offsets through a loop device give one
line each with this process's pid and comm, the disk, R, the sector and the size;
compared with bpftrace on block_rq_complete for the same device."""

import os
import re
import time

from bpfenv import needs_bpf
from btrun import Bpftrace, agree, assert_unloaded, loaded_ids, needs_bpftrace
from loopdev import LoopDevice, needs_loop
from progrun import Tool

pytestmark = [needs_bpf, needs_loop]

HEADER = "TIME(s)     COMM           PID     DISK      T SECTOR     BYTES   LAT(ms)"
OFFSETS = [i * 131072 for i in range(1, 17)]
# let the tool print the last events before SIGINT: a Ctrl-C that lands while the
# reader hands a ring buffer batch to the callback can drop that batch
SETTLE = 0.3
PROGS = ["block_io_start", "block_rq_insert", "block_rq_issue", "block_rq_complete"]
LINE = re.compile(r"^(\d+\.\d{6}) +(.{1,14}?) +(\d+) +(\S+) +([RW]) +(\d+) +(\d+) +"
                  r"(?:(\d+\.\d\d) +)?(\d+\.\d\d)$")


def _mine(out, disk):
    rows = [LINE.match(line) for line in out.splitlines()]
    return [m.groups() for m in rows if m and m.group(4) == disk]


def test_biosnoop_direct_reads():
    comm = open("/proc/self/comm").read().strip()[:14]
    with LoopDevice() as loop:
        tool = Tool("biosnoop", header=HEADER)
        ids = loaded_ids(tool, PROGS)
        sectors = loop.read_direct(OFFSETS)
        time.sleep(SETTLE)
        rc, out, err = tool.stop()
    assert rc == 0, err
    rows = [r for r in _mine(out, loop.name) if r[2] == str(os.getpid())]
    assert sorted(int(r[5]) for r in rows) == sectors, out
    for r in rows:
        assert r[1] == comm and r[4] == "R" and r[6] == "65536" and float(r[8]) >= 0
    times = [float(r[0]) for r in rows]
    assert times == sorted(times)
    assert_unloaded(ids)


def test_biosnoop_disk_filter_and_queue():
    with LoopDevice() as loop:
        tool = Tool("biosnoop", "-Q", "-d", loop.name, header="QUE(ms) LAT(ms)")
        sectors = loop.read_direct(OFFSETS[:4])
        time.sleep(SETTLE)
        rc, out, err = tool.stop()
    assert rc == 0, err
    rows = [LINE.match(line) for line in out.splitlines()[1:] if line.strip()]
    assert all(m and m.group(4) == loop.name and m.group(8) for m in rows), out
    assert {int(m.group(6)) for m in rows} >= set(sectors)


@needs_bpftrace
def test_biosnoop_matches_bpftrace():
    with LoopDevice() as loop:
        bt = Bpftrace(f"tracepoint:block:block_rq_complete /args->dev == {loop.dev}/ "
                      f"{{ printf(\"EV %d %d\\n\", args->sector, args->nr_sector * 512); }}")
        tool = Tool("biosnoop", "-d", loop.name, header=HEADER)
        loop.read_direct(OFFSETS)
        time.sleep(SETTLE)
        rc, out, err = tool.stop()
        bt_out = bt.stop()
    assert rc == 0, err
    theirs = {(int(s), int(n)) for s, n in re.findall(r"^EV (\d+) (\d+)$", bt_out, re.M)}
    ours = {(int(r[5]), int(r[6])) for r in _mine(out, loop.name)}
    assert len(ours) >= len(OFFSETS), out
    agree(bt, ours <= theirs, (ours, theirs))
