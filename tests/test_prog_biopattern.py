"""programs/biopattern.py: O_DIRECT reads and writes of 64 KiB through a loop device the
test creates, first in sequence, then at scattered offsets, so the counts of sequential
and random requests, the percentages and the kilobytes are known; compared with the
same rule written in bpftrace, and with BCC's biopattern, on the same requests."""

import mmap
import os
import re
import time

import pytest

from bpfenv import needs_bpf
from btrun import Bpftrace, agree, assert_unloaded, loaded_ids, needs_bpftrace
from loopdev import LoopDevice, needs_loop
from progrun import Tool
import tracerwork

pytestmark = [needs_bpf, needs_loop]

HEADER = "TIME      DISK     %RND  %SEQ    COUNT     KBYTES"
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


def _rows(out, disk):
    """The (%RND, %SEQ, COUNT, KBYTES) rows of ``disk``."""
    return [tuple(int(x) for x in f[2:]) for f in (line.split() for line in out.splitlines())
            if len(f) == 6 and f[1] == disk]


def _expect(rnd, seq, nbytes):
    """The row BCC prints for these counts."""
    r = int(round(rnd * 100 / (rnd + seq)))
    return (r, 100 - r, rnd + seq, nbytes // 1024)


def test_biopattern_known_mix():
    with LoopDevice(16 << 20) as loop:
        time.sleep(SETTLE)
        tool = Tool("biopattern", "-d", loop.name, header=HEADER)
        ids = loaded_ids(tool, ["handle_block_rq_complete"])
        _workload(loop)
        rc, out, err = tool.stop()
    assert rc == 0, err
    seq, rnd = len(SEQ) - 1, len(RANDOM)
    assert _rows(out, loop.name) == [_expect(rnd, seq, (rnd + seq) * SIZE)], out
    assert _rows(out, loop.name) == [(34, 66, 29, 1856)]
    assert_unloaded(ids)


def test_biopattern_intervals_and_timestamps():
    with LoopDevice(16 << 20) as loop:
        time.sleep(SETTLE)
        tool = Tool("biopattern", "-T", "-d", loop.name, "1", "3", header=HEADER)
        _direct(loop, SEQ, write=False)
        rc = tool.proc.wait(timeout=30)                 # ends by itself after 3 intervals
        _, out, err = tool.stop()
    assert rc == 0, err
    heads = [line for line in out.splitlines() if line.startswith("TIME ")]
    assert heads == [HEADER], out                       # once, as BCC prints it
    rows = _rows(out, loop.name)
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
    assert proc.returncode == 2 \
        and "argument -d/--disk: no such disk: 'nosuchdisk0'" in proc.stderr, proc.stderr


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
        tool = Tool("biopattern", "-d", loop.name, header=HEADER)
        _workload(loop)
        rc, out, err = tool.stop()
        their = bt.stop()
    assert rc == 0, err
    (ours,) = _rows(out, loop.name)
    m = re.search(r"^BT (\d+) (\d+) (\d+)$", their, re.M)
    assert m, their
    rnd, seq, nbytes = (int(x) for x in m.groups())
    agree(bt, ours == _expect(rnd, seq, nbytes), (out, their))


BCC = "/usr/sbin/biopattern-bpfcc"


@pytest.mark.skipif(bool(tracerwork.bcc_missing("biopattern")),
                    reason=tracerwork.bcc_missing("biopattern"))
def test_biopattern_matches_bcc():
    import subprocess
    with LoopDevice(16 << 20) as loop:
        time.sleep(SETTLE)
        theirs = subprocess.Popen(["/usr/bin/python3", BCC, "-d", loop.name],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env=tracerwork.bcc_environ())
        try:
            head = theirs.stdout.readline()             # printed once attached
            assert head.split() == HEADER.split(), (head, theirs.stderr.read())
            tool = Tool("biopattern", "-d", loop.name, header=HEADER)
            _workload(loop)
            rc, out, err = tool.stop()
        finally:
            theirs.send_signal(2)
            their_out, their_err = theirs.communicate(timeout=60)
    assert rc == 0, err
    assert _rows(out, loop.name) == _rows(their_out, loop.name) == [(34, 66, 29, 1856)], \
        (out, their_out, their_err)
