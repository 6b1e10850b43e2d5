"""programs/ext4slower.py: in the vmtest stage a child process opens, writes, fsyncs
and reads a file on an ext4 file system mounted from a loop device, under ext4slower
with a threshold of 0 (every operation) in its three output formats (two filtered to the
child's pid, --json not); each shows exactly the child's five operations with their type, bytes,
offset and file name, and the child's comm as /proc gives it. Here (no kprobes) the
tool must stop with one line naming them and leave nothing loaded."""

import json
import os
import re
import subprocess
import sys
import threading
import time

import pytest

import progrun
from bpfenv import needs_bpf
from loopdev import Ext4Mount
from progrun import Tool, programs_loaded
from pybpf.link.kprobe import kprobes_available

pytestmark = needs_bpf
NO_KPROBES = kprobes_available()
PROGRAMS = [f"{op}_{end}" for op in ("read", "write", "open", "fsync")
            for end in ("entry", "return")]
HEADER = "TIME     COMM           PID     T BYTES   OFF_KB   LAT(ms) FILENAME"

WORKLOAD = """
import os, sys
path = sys.argv[1]
sys.stdin.readline()
fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
os.write(fd, b"x" * 8192)
os.fsync(fd)
os.close(fd)
fd = os.open(path, os.O_RDONLY)
assert len(os.pread(fd, 4096, 4096)) == 4096
os.close(fd)
print("done", flush=True)
"""
#: (T, BYTES, OFF_KB) of the workload's operations, in order
EXPECTED = [("O", 0, 0), ("W", 8192, 0), ("S", 0, 0), ("O", 0, 0), ("R", 4096, 4)]


@pytest.mark.vmtest
@pytest.mark.skipif(bool(NO_KPROBES), reason=NO_KPROBES)
def test_ext4slower_shows_the_workloads_operations():
    with Ext4Mount() as mnt:
        path = os.path.join(mnt.path, "ext4slower-data")
        child = subprocess.Popen([sys.executable, "-c", WORKLOAD, path],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        with open(f"/proc/{child.pid}/comm") as f:
            child_comm = f.read().strip()
        plain = Tool("ext4slower", "-p", child.pid, "0", header="FILENAME", timeout=120)
        csv = Tool("ext4slower", "-j", "-p", child.pid, "0", header="ENDTIME_us",
                   timeout=120)
        stop = threading.Event()

        def ping():             # opens until the tool (no header in JSON) shows one
            while not stop.wait(0.05):
                os.close(os.open(os.path.join(mnt.path, "ping"), os.O_CREAT | os.O_RDONLY))

        pinger = threading.Thread(target=ping, daemon=True)
        pinger.start()
        try:
            js = Tool("ext4slower", "--json", "0", header='"filename": ', timeout=120)
        finally:
            stop.set()
            pinger.join()
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "done"
        child.wait(timeout=60)
        time.sleep(1.0)
        results = [t.stop(timeout=120) for t in (plain, csv, js)]
    for rc, out, err in results:
        print(out)
        assert rc == 0, err

    out = results[0][1]
    assert out.splitlines()[:2] == ["Tracing ext4 operations", HEADER], out
    rows = [line.split() for line in out.splitlines()[2:] if line.strip()]
    assert all(r[1] == child_comm and r[2] == str(child.pid) and
               r[7] == "ext4slower-data" and float(r[6]) >= 0 for r in rows), out
    assert sorted((r[3], int(r[4]), int(r[5])) for r in rows) == sorted(EXPECTED), out

    out = results[1][1]
    assert out.splitlines()[0] == "ENDTIME_us,TASK,PID,TYPE,BYTES,OFFSET_b,LATENCY_us,FILE"
    rows = sorted(line.split(",") for line in out.splitlines()[1:] if line.strip())
    assert [(r[3], int(r[4]), int(r[5]) // 1024) for r in rows] == EXPECTED, out
    assert all(r[1] == child_comm and r[2] == str(child.pid) and r[7] == "ext4slower-data"
               for r in rows), out

    out = results[2][1]
    objs = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert {o["filename"] for o in objs if o["pid"] == os.getpid()} == {"ping"}, out
    objs = [o for o in objs if o["pid"] == child.pid]         # -p is tested above
    assert sorted((o["t"], o["bytes"], o["off_kb"]) for o in objs) == sorted(EXPECTED), out
    assert all(o["comm"] == child_comm and o["pid"] == child.pid and
               o["filename"] == "ext4slower-data" and re.match(r"\d\d:\d\d:\d\d$", o["time"])
               for o in objs), out
    assert not programs_loaded(PROGRAMS)


def test_ext4slower_needs_kprobes():
    """Where kprobes are missing: one line naming them, nothing left loaded; where they
    work: the banner and header (a 10 ms threshold by default)."""
    proc = subprocess.Popen([sys.executable, "programs/ext4slower.py"], cwd=progrun.ROOT,
                            env=progrun.env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:              # kprobes work here: it runs
        proc.send_signal(2)
        out, err = proc.communicate(timeout=60)
        assert out.splitlines()[:2] == ["Tracing ext4 operations slower than 10 ms",
                                        HEADER], out
        return
    assert NO_KPROBES, (out, err)
    assert proc.returncode == 1 and out == "", out
    assert err.count("\n") == 1 and err.startswith("ext4slower: kprobes: "), err
    assert not programs_loaded(PROGRAMS)
