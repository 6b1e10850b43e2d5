"""programs/funclatency.py: a child process calls libc's usleep(5000) a known number of
times (user function, uprobes); a child unlinks files (kernel function, kprobes: in the
vmtest stage). The histogram's count and bucket are checked, and the count against
bpftrace."""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from bpfenv import needs_bpf
from progrun import Tool, programs_loaded
from pybpf.elf.libs import resolve_library
from pybpf.link.kprobe import kprobes_available

pytestmark = needs_bpf
NO_KPROBES = kprobes_available()

SLEEPER = """
import ctypes, sys
libc = ctypes.CDLL(None)
sys.stdin.readline()
for _ in range(int(sys.argv[1])):
    libc.usleep(5000)
print("done", flush=True)
"""


def _sleeper():
    return subprocess.Popen([sys.executable, "-c", SLEEPER, "10"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)


def _run(child):
    child.stdin.write("go\n")
    child.stdin.flush()
    assert child.stdout.readline().strip() == "done"
    child.wait(timeout=30)


def test_funclatency_user_function_histogram():
    child = _sleeper()
    tool = Tool("funclatency", "-u", "-p", child.pid, "c:usleep",
                header='Tracing 1 functions for "c:usleep"')
    _run(child)
    time.sleep(0.2)
    rc, out, err = tool.stop()
    assert rc == 0, err
    assert "     usecs               : count     distribution" in out
    rows = {int(lo): int(n) for lo, n in
            re.findall(r"^\s+(\d+) -> \d+\s+: (\d+)", out, re.M)}
    # 10 calls of usleep(5000): none can take less than 5000 us; one may take more than
    # 8191 us on a loaded machine, so the buckets from 4096 up hold all 10, most in 4096
    assert sum(rows.values()) == 10 and sum(rows[lo] for lo in rows if lo >= 4096) == 10, out
    assert rows.get(4096, 0) >= 6, out
    assert sum(int(v) for v in rows.values()) == 10
    m = re.search(r"avg = (\d+) usecs, total: (\d+) usecs, count: 10\n", out)
    assert m and 5000 <= int(m.group(1)) < 8192, out
    assert out.rstrip().endswith("Detaching...")
    assert not programs_loaded(["enter", "leave"])


def test_funclatency_intervals_in_milliseconds():
    child = _sleeper()
    tool = Tool("funclatency", "-m", "-i", "1", "-p", child.pid, "c:usleep",
                header="Tracing 1 functions")
    _run(child)
    time.sleep(1.5)
    rc, out, err = tool.stop()
    assert rc == 0, err
    assert "     msecs               : count     distribution" in out
    assert re.search(r"^\s+4 -> 7\s+: 10\s", out, re.M), out
    assert len(re.findall(r"count: 10\n", out)) == 1          # counts reset per interval


@pytest.mark.skipif(shutil.which("bpftrace") is None, reason="bpftrace is not installed")
def test_funclatency_count_matches_bpftrace():
    child = _sleeper()
    libc = resolve_library("c", child.pid)
    bt = subprocess.Popen(["bpftrace", "-p", str(child.pid), "-e",
                           f"uretprobe:{libc}:usleep {{ @n = count(); }}"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while "Attaching" not in (bt.stdout.readline() or "") and time.monotonic() < deadline:
        pass
    tool = Tool("funclatency", "-p", child.pid, "c:usleep", header="Tracing 1 functions")
    _run(child)
    time.sleep(0.2)
    rc, out, err = tool.stop()
    bt.send_signal(2)
    bt_out, _ = bt.communicate(timeout=30)
    theirs = re.search(r"@n: (\d+)", bt_out)
    ours = re.search(r"count: (\d+)", out)
    assert theirs and ours and ours.group(1) == theirs.group(1) == "10"


@pytest.mark.vmtest
@pytest.mark.skipif(bool(NO_KPROBES), reason=NO_KPROBES)
def test_funclatency_kernel_function():
    d = tempfile.mkdtemp()
    code = ("import os, sys; sys.stdin.readline()\n"
            f"for i in range(7):\n    p = os.path.join({d!r}, str(i)); open(p, 'w').close()"
            "; os.unlink(p)\nprint('done', flush=True)")
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    tool = Tool("funclatency", "-p", child.pid, "do_unlinkat", header="Tracing 1 functions",
                timeout=120)
    _run(child)
    time.sleep(0.5)
    rc, out, err = tool.stop(timeout=120)
    os.rmdir(d)
    assert rc == 0, err
    assert "     nsecs               : count     distribution" in out
    assert re.search(r"count: 7\n", out), out
