"""programs/hardirqs.py: fsync'd writes to the root disk raise its completion
interrupts; counts, times and histograms by handler name, checked against
/proc/interrupts and bpftrace over windows that contain the tool's."""

import os
import re
import tempfile

from bpfenv import needs_bpf
from btrun import Bpftrace, agree, assert_unloaded, loaded_ids, needs_bpftrace
from progrun import Tool

pytestmark = needs_bpf

PROGS = ["irq_handler_entry", "irq_handler_exit"]


def disk_writes(n=20):
    """``n`` fsync'd 4 KiB writes to a file on the root file system (disk interrupts)."""
    with tempfile.NamedTemporaryFile(dir="/var/tmp") as f:
        for i in range(n):
            os.pwrite(f.fileno(), os.urandom(4096), i * 4096)
            os.fsync(f.fileno())


def proc_interrupts():
    """{handler name: count over CPUs} from /proc/interrupts (numbered irqs only)."""
    out = {}
    with open("/proc/interrupts") as f:
        ncpu = len(f.readline().split())
        for line in f:
            parts = line.split()
            if not parts[0].rstrip(":").isdigit() or len(parts) < ncpu + 2:
                continue
            counts = sum(int(c) for c in parts[1:ncpu + 1])
            for name in parts[-1].split(","):
                out[name] = out.get(name, 0) + counts
    return out


def _table(out, header):
    lines = out.splitlines()
    i = lines.index(header)
    rows = {}
    for line in lines[i + 1:]:
        m = re.match(r"^(\S+)\s+(\d+)$", line)
        if not m:
            break
        assert m.group(1) not in rows, f"{m.group(1)} twice (stale bytes in the key?)"
        rows[m.group(1)] = int(m.group(2))
    return rows


def test_hardirqs_counts_match_proc_interrupts():
    before = proc_interrupts()
    tool = Tool("hardirqs", "-C", header="Tracing hard irq events... Hit Ctrl-C to end.")
    ids = loaded_ids(tool, PROGS)
    disk_writes()
    rc, out, err = tool.stop()
    after = proc_interrupts()
    assert rc == 0, err
    rows = _table(out, "HARDIRQ                    TOTAL_count")
    assert sum(rows.values()) >= 10, out      # completions of the fsyncs
    for name, n in rows.items():
        assert 0 < n <= after.get(name, 0) - before.get(name, 0), (name, out)
    assert_unloaded(ids)


def test_hardirqs_time_and_dist():
    tool = Tool("hardirqs", header="Tracing hard irq event time... Hit Ctrl-C to end.")
    disk_writes()
    rc, out, err = tool.stop()
    assert rc == 0, err
    rows = _table(out, "HARDIRQ                    TOTAL_usecs")
    assert rows, out

    tool = Tool("hardirqs", "-d", "-N", header="Tracing hard irq event time...")
    ids = loaded_ids(tool, PROGS)
    disk_writes()
    rc, out, err = tool.stop()
    assert rc == 0, err
    names = re.findall(r"^hardirq = (\S+)\n     nsecs               : count", out, re.M)
    assert names and set(names) <= set(proc_interrupts()), out
    assert_unloaded(ids)


@needs_bpftrace
def test_hardirqs_matches_bpftrace():
    bt = Bpftrace("tracepoint:irq:irq_handler_entry { @[str(args->name)] = count(); }")
    tool = Tool("hardirqs", "-C", header="Tracing hard irq events...")
    disk_writes()
    rc, out, err = tool.stop()
    theirs = {k: int(n) for k, n in re.findall(r"@\[(\S+)\]: (\d+)", bt.stop())}
    assert rc == 0, err
    ours = _table(out, "HARDIRQ                    TOTAL_count")
    assert ours
    agree(bt, set(ours) <= set(theirs) and all(ours[k] <= theirs[k] for k in ours),
          (ours, theirs))
