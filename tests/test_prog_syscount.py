"""programs/syscount.py: a child makes known numbers of umask() calls and failing
close() calls; counts by syscall (-p PID), failures (-x, -e EBADF), latency (-L), by
process (-P), and the whole per-syscall table compared with bpftrace."""

import re
import subprocess
import sys

import pytest

from bpfenv import needs_bpf
from btrun import Bpftrace, agree, assert_unloaded, loaded_ids, needs_bpftrace
from progrun import ROOT, Tool

pytestmark = needs_bpf

UMASKS, BAD_CLOSES = 300, 120
CHILD = f"""
import os, sys
sys.stdin.readline()
for i in range({UMASKS}):
    os.umask(0o22)
for i in range({BAD_CLOSES}):
    try:
        os.close(9999)
    except OSError:
        pass
"""
PROGS = ["sys_enter", "sys_exit"]
HEADER = "syscalls, printing top"


def _child():
    return subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE,
                            text=True)


def _traced(*flags):
    """Run the tool with ``flags`` + ``-p CHILD`` over the child's work; its stdout."""
    child = _child()
    try:
        tool = Tool("syscount", *flags, "-p", child.pid, header=HEADER)
        ids = loaded_ids(tool, PROGS if "-L" in flags else ["sys_exit"])   # entry: -L only
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.wait(timeout=30) == 0
        rc, out, err = tool.stop()
    finally:
        child.kill()
    assert rc == 0, err
    assert out.rstrip().endswith("Detaching...")
    assert_unloaded(ids)
    return child.pid, out


def _rows(out):
    return {m.group(1): [int(m.group(2))] + [float(x) for x in m.groups()[2:] if x]
            for m in re.finditer(r"^(\S+(?: +\S+)??) +(\d+)(?: +(\d+\.\d+))?$", out, re.M)}


def test_syscount_counts_by_syscall():
    _, out = _traced("-T", "50")
    assert "SYSCALL                   COUNT\n" in out
    rows = _rows(out)
    assert rows["umask"] == [UMASKS] and rows["close"][0] >= BAD_CLOSES, out
    assert re.search(r"^\[\d\d:\d\d:\d\d\]$", out, re.M)


def test_syscount_failures_and_errno():
    _, out = _traced("-x")
    assert out.startswith("Tracing failed syscalls, printing top 10...")
    rows = _rows(out)
    assert rows["close"] == [BAD_CLOSES] and "umask" not in rows, out
    _, out = _traced("-e", "EBADF")
    assert _rows(out)["close"] == [BAD_CLOSES], out
    _, out = _traced("-e", "EPERM")
    assert "close" not in _rows(out), out


def test_syscount_latency_and_process():
    _, out = _traced("-L", "-T", "50")
    assert "SYSCALL                   COUNT        TIME (us)\n" in out
    count, usecs = _rows(out)["umask"]
    assert count == UMASKS and usecs > 0
    pid, out = _traced("-P")
    assert "PID    COMM               COUNT\n" in out
    line = next(line for line in out.splitlines() if line.startswith(f"{pid:<6d} "))
    assert int(line.split()[-1]) >= UMASKS + BAD_CLOSES, out


def test_syscount_duration_and_list():
    proc = subprocess.run([sys.executable, "programs/syscount.py", "-d", "1", "-T", "3"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Tracing syscalls, printing top 3... for 1 seconds.")
    assert proc.stdout.count("SYSCALL                   COUNT") == 1
    listed = subprocess.run([sys.executable, "programs/syscount.py", "-l"],
                            capture_output=True, text=True, timeout=60, cwd=ROOT).stdout
    assert listed.startswith("# ") and "\numask\n" in listed and "\nopenat\n" in listed


def _names():
    """{number: name} from the kernel headers (skip without them)."""
    try:
        with open("/usr/include/x86_64-linux-gnu/asm/unistd_64.h") as f:
            return {int(n): name for name, n in
                    re.findall(r"^#define __NR_(\w+) (\d+)$", f.read(), re.M)}
    except OSError:
        pytest.skip("no unistd_64.h to name bpftrace's syscall numbers")


@needs_bpftrace
def test_syscount_matches_bpftrace():
    names = _names()
    child = _child()
    try:
        bt = Bpftrace(f"tracepoint:raw_syscalls:sys_exit /pid == {child.pid}/ "
                      f"{{ @[args->id] = count(); }}")
        tool = Tool("syscount", "-T", "500", "-p", child.pid, header=HEADER)
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.wait(timeout=30) == 0
        rc, out, err = tool.stop()
        bt_out = bt.stop()
    finally:
        child.kill()
    assert rc == 0, err
    theirs = {names.get(int(k), f"[unknown: {k}]"): int(n)
              for k, n in re.findall(r"^@\[(\d+)\]: (\d+)$", bt_out, re.M)}
    ours = {k: v[0] for k, v in _rows(out).items() if k != "SYSCALL"}
    assert ours["umask"] == UMASKS
    agree(bt, ours == theirs, (ours, theirs))
