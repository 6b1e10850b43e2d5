"""programs/cachestat.py: on an ext4 file system made in a loop device (vmtest stage),
a file of known size is written and fsynced, dropped from the cache (fadvise), read
cold and read again; each phase runs under its own cachestat, and its rows are summed.
Here (no kprobes) the tool must stop with one line naming them and leave nothing
loaded."""

import os
import re
import subprocess
import sys
import time

import pytest

import progrun
from bpfenv import needs_bpf
from loopdev import Ext4Mount
from progrun import Tool, programs_loaded
from pybpf.link.kprobe import kprobes_available

pytestmark = needs_bpf
NO_KPROBES = kprobes_available()
PROGRAMS = ["count_accessed", "count_added", "count_accounted", "count_accounted_tp",
            "count_buffer_dirty"]
HEADER = "    HITS   MISSES  DIRTIES HITRATIO   BUFFERS_MB  CACHED_MB"
PAGES = 1024                                    # a 4 MiB file of 4 KiB pages
ROW = re.compile(r"^(?:\d\d:\d\d:\d\d )?\s*(\d+)\s+(\d+)\s+(\d+)\s+([\d.]+)%\s+(\d+)\s+(\d+)$")


def _phase(work, *flags):
    """Run ``work()`` under ``cachestat 1``; returns (hits, misses, dirties) summed over
    the rows printed, and the output."""
    tool = Tool("cachestat", *flags, "1", header="HITRATIO", timeout=120)
    work()
    time.sleep(2.5)                            # a row printed after the work ended
    rc, out, err = tool.stop(timeout=120)
    assert rc == 0, err
    rows = [ROW.match(line) for line in out.splitlines()[1:]]
    assert rows and all(rows), out
    sums = [sum(int(m.group(i)) for m in rows) for i in (1, 2, 3)]
    return sums, out


@pytest.mark.vmtest
@pytest.mark.skipif(bool(NO_KPROBES), reason=NO_KPROBES)
def test_cachestat_cold_warm_and_dirty():
    with Ext4Mount() as mnt:
        path = os.path.join(mnt.path, "data")
        block = os.urandom(4096)

        def write():
            with open(path, "wb") as f:
                for _ in range(PAGES):
                    f.write(block)
                f.flush()
                os.fsync(f.fileno())

        def drop_and_read():
            fd = os.open(path, os.O_RDONLY)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            while os.read(fd, 1 << 16):
                pass
            os.close(fd)

        def read():
            with open(path, "rb") as f:
                while f.read(1 << 16):
                    pass

        (_, _, dirties), out = _phase(write, "-T")
        print(out)
        assert out.splitlines()[0] == "TIME     " + HEADER, out
        assert dirties >= PAGES, out                 # a buffer per block, one or more a page
        (hits, misses, _), out = _phase(drop_and_read)
        print(out)
        assert out.splitlines()[0] == HEADER, out
        assert misses >= PAGES // 2, out             # the cold read adds the pages
        (hits, misses, _), out = _phase(read)
        print(out)
        assert hits >= PAGES and hits > 4 * misses, out
    assert not programs_loaded(PROGRAMS)


def test_cachestat_needs_kprobes():
    """Where kprobes are missing: one line naming them, nothing left loaded; where they
    work: the header and one row per interval."""
    proc = subprocess.run([sys.executable, "programs/cachestat.py", "1", "1"],
                          cwd=progrun.ROOT, env=progrun.env(), capture_output=True,
                          text=True, timeout=120)
    if not NO_KPROBES:
        assert proc.returncode == 0, proc.stderr
        lines = proc.stdout.splitlines()
        assert lines[0] == HEADER and len(lines) == 2 and ROW.match(lines[1]), proc.stdout
        return
    assert proc.returncode == 1 and proc.stdout == "", proc.stdout
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("cachestat: kprobes: ") \
        and "kprobe" in proc.stderr, proc.stderr
    assert not programs_loaded(PROGRAMS)
