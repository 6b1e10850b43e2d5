"""programs/biolatency.py: O_DIRECT reads through a loop device are counted in the
per-disk histogram (-D); compared with bpftrace counting completions on that device."""

import re

from bpfenv import needs_bpf
from btrun import Bpftrace, agree, assert_unloaded, loaded_ids, needs_bpftrace
from loopdev import LoopDevice, needs_loop
from progrun import Tool

pytestmark = [needs_bpf, needs_loop]

HEADER = "Tracing block device I/O... Hit Ctrl-C to end."
OFFSETS = [i * 131072 for i in range(1, 17)]
PROGS = ["block_rq_insert", "block_rq_issue", "block_rq_complete"]


def _sections(out):
    """{disk: total count} of a -D output."""
    totals, disk = {}, None
    for line in out.splitlines():
        m = re.match(r"disk = (\S+)$", line)
        if m:
            disk = m.group(1)
            totals[disk] = 0
        m = re.match(r"\s*\d+ -> \d+\s*: (\d+)", line)
        if m and disk is not None:
            totals[disk] += int(m.group(1))
    return totals


def test_biolatency_per_disk():
    with LoopDevice() as loop:
        tool = Tool("biolatency", "-D", header=HEADER)
        ids = loaded_ids(tool, PROGS)
        loop.read_direct(OFFSETS)
        rc, out, err = tool.stop()
    assert rc == 0, err
    assert _sections(out).get(loop.name, 0) >= len(OFFSETS), out
    assert f"\ndisk = {loop.name}\n     usecs               : count     distribution\n" in out
    assert_unloaded(ids)


def test_biolatency_single_histogram_ms():
    with LoopDevice() as loop:
        tool = Tool("biolatency", "-m", "-Q", header=HEADER)
        loop.read_direct(OFFSETS)
        rc, out, err = tool.stop()
    assert rc == 0, err
    rows = re.findall(r"^\s+(\d+) -> (\d+)\s+: (\d+)\s+\|", out, re.M)
    assert "     msecs               : count     distribution" in out
    assert sum(int(c) for _, _, c in rows) >= len(OFFSETS)


@needs_bpftrace
def test_biolatency_matches_bpftrace():
    with LoopDevice() as loop:
        bt = Bpftrace(f"tracepoint:block:block_rq_complete /args->dev == {loop.dev}/ "
                      f"{{ @n = count(); }}")
        tool = Tool("biolatency", "-D", header=HEADER)
        loop.read_direct(OFFSETS)
        rc, out, err = tool.stop()
        theirs = int(re.search(r"@n: (\d+)", bt.stop()).group(1))
    assert rc == 0, err
    ours = _sections(out).get(loop.name, 0)
    assert ours >= len(OFFSETS)
    agree(bt, ours <= theirs, (ours, theirs))
