"""programs/biopattern.py: O_DIRECT reads and writes of 64 KiB through a loop device the
test creates, first in sequence, then at scattered offsets, so the counts of sequential
and random requests, the percentages and the kilobytes are known; compared with the
same rule written in bpftrace on the same requests."""

import mmap
import os
import re
import time

from bpfenv import needs_bpf
from btrun import Bpftrace, agree, assert_unloaded, loaded_ids, needs_bpftrace
from loopdev import LoopDevice, needs_loop
from progrun import Tool

pytestmark = [needs_bpf, needs_loop]

HEADER = "DISK     %RND  %SEQ    COUNT     KBYTES"
SIZE = 65536
SEQ = [i * SIZE for i in range(20)]                 # 19 sequential after the first
RANDOM = [SIZE * i for i in (60, 31, 90, 7, 75, 44, 99, 12, 66, 3)]   # 10 random
SETTLE = 0.3


def _direct(loop, offsets, write):
    """O_DIRECT reads or writes of SIZE bytes at ``offsets`` on the loop device."""
    fd = os.open(loop.path, (os.O_RDWR if write else os.O_RDONLY) | os.O_DIRECT)
    buf = mmap.mmap(-1, SIZE)
    buf.write(b"x" * SIZE)
    try:
        for off in offsets:
            n = os.pwritev(fd, [buf], off) if write else os.preadv(fd, [buf], off)
            assert n == SIZE
    finally:
        os.close(fd)
        buf.close()


def _workload(loop):
    _direct(loop, SEQ, write=False)
    _direct(loop, RANDOM, write=True)
    time.sleep(SETTLE)


def _rows(out, disk, stamp=False):
    """The (%RND, %SEQ, COUNT, KBYTES) rows of ``disk``."""
    skip = 1 if stamp else 0
    return [tuple(int(x) for x in f[skip + 1:]) for f in
            (line.split() for line in out.splitlines())
            if len(f) == 5 + skip and f[skip] == disk]


def test_biopattern_known_mix():
    with LoopDevice(16 << 20) as loop:
        time.sleep(SETTLE)
        tool = Tool("biopattern", "-d", loop.name, header="Tracing block device I/O")
        ids = loaded_ids(tool, ["handle_block_rq_complete"])
        _workload(loop)
        rc, out, err = tool.stop()
    assert rc == 0, err
    assert HEADER in out
    seq, rnd = len(SEQ) - 1, len(RANDOM)
    total = seq + rnd
    assert _rows(out, loop.name) == [(rnd * 100 // total, seq * 100 // total, total,
                                      total * SIZE // 1024)], out
    assert_unloaded(ids)


def test_biopattern_intervals_and_timestamps():
    with LoopDevice(16 << 20) as loop:
        time.sleep(SETTLE)
        tool = Tool("biopattern", "-T", "-d", loop.name, "1", "3",
                    header="Tracing block device I/O")
        _direct(loop, SEQ, write=False)
        rc = tool.proc.wait(timeout=30)                 # ends by itself after 3 intervals
        _, out, err = tool.stop()
    assert rc == 0, err
    heads = [line for line in out.splitlines() if line.startswith("TIME ")]
    assert len(heads) == 3 and all(h.split() == ["TIME", "DISK", "%RND", "%SEQ", "COUNT",
                                                 "KBYTES"] for h in heads), out
    rows = _rows(out, loop.name, stamp=True)
    stamps = [line.split()[0] for line in out.splitlines() if loop.name in line.split()]
    assert all(re.match(r"\d\d:\d\d:\d\d$", s) for s in stamps), out
    # the reads may straddle an interval: each interval's first request only sets the
    # position, so at most one request per interval goes uncounted
    assert all(r[0] == 0 and r[1] == 100 for r in rows), out
    assert len(SEQ) - 3 <= sum(r[2] for r in rows) <= len(SEQ) - 1, out


def test_biopattern_bad_disk():
    import subprocess
    import sys
    from progrun import ROOT, env
    proc = subprocess.run([sys.executable, "programs/biopattern.py", "-d", "nosuchdisk0"],
                          cwd=ROOT, env=env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "no such disk: nosuchdisk0" in proc.stderr


@needs_bpftrace
def test_biopattern_matches_bpftrace():
    with LoopDevice(16 << 20) as loop:
        time.sleep(SETTLE)
        bt = Bpftrace(
            f"tracepoint:block:block_rq_complete /args->dev == {loop.dev}/ {{ "
            "if (@last > 0) { if (@last == args->sector) { @seq += 1; } else { @rnd += 1; } "
            "@bytes += args->nr_sector * 512; } "
            "@last = args->sector + args->nr_sector; } "
            'END { printf("BT %d %d %d\\n", @rnd, @seq, @bytes); clear(@last); '
            "clear(@rnd); clear(@seq); clear(@bytes); }")
        tool = Tool("biopattern", "-d", loop.name, header="Tracing block device I/O")
        _workload(loop)
        rc, out, err = tool.stop()
        their = bt.stop()
    assert rc == 0, err
    (ours,) = _rows(out, loop.name)
    m = re.search(r"^BT (\d+) (\d+) (\d+)$", their, re.M)
    assert m, their
    rnd, seq, nbytes = (int(x) for x in m.groups())
    total = rnd + seq
    theirs = (rnd * 100 // total, seq * 100 // total, total, nbytes // 1024)
    agree(bt, ours == theirs, (out, their))
