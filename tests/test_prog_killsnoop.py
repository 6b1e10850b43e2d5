"""programs/killsnoop.py: a child process sends known signals with kill(), tgkill() and
tkill(), to itself and to a pid that does not exist; the lines are checked field by
field, and against bpftrace on the same tracepoints. The workload is shared with
test_prog_sigsnoop.py."""

import os
import platform
import signal
import subprocess
import sys
import time

from bpfenv import needs_bpf
from btrun import Bpftrace, needs_bpftrace
from progrun import Tool, programs_loaded

pytestmark = needs_bpf

KILL_HEADER = "TIME      PID     COMM             SIG  TPID     RESULT"
KILLSNOOP_PROGS = [f"killsnoop_{side}__sys_{side}_{call}" for side in ("entry", "exit")
                   for call in ("kill", "tkill", "tgkill")]
SENDER = """
import ctypes, os, platform, signal, sys, threading
signal.signal(signal.SIGUSR1, lambda *a: None)
os.kill(os.getpid(), signal.SIGUSR1)                  # kill(): delivered, 0
try:
    os.kill(int(sys.argv[1]), signal.SIGTERM)         # kill(): ESRCH
except ProcessLookupError:
    pass
signal.pthread_kill(threading.get_ident(), 0)         # tgkill(): a probe, 0
if platform.machine() == "x86_64":
    ctypes.CDLL(None, use_errno=True).syscall(200, threading.get_native_id(), 0)   # tkill
"""


def _missing_pid():
    pid = 4000000
    while os.path.exists(f"/proc/{pid}"):
        pid -= 1
    return pid


def _send(bad):
    child = subprocess.Popen([sys.executable, "-c", SENDER, str(bad)])
    assert child.wait(timeout=30) == 0
    time.sleep(0.3)
    return child.pid


def _expected(pid, bad):
    rows = [(pid, 10, pid, 0), (pid, 15, bad, -3), (pid, 0, pid, 0)]
    if platform.machine() == "x86_64":
        rows.append((pid, 0, pid, 0))
    return sorted(rows)


def _kill_rows(out, pid):
    rows = []
    for line in out.splitlines():
        f = line.split()
        if len(f) == 6 and f[1] == str(pid):
            assert f[2].startswith("python"), line
            rows.append((int(f[1]), int(f[3]), int(f[4]), int(f[5])))
    return sorted(rows)


def test_killsnoop_signals_of_a_child():
    bad = _missing_pid()
    tool = Tool("killsnoop", header=KILL_HEADER)
    pid = _send(bad)
    rc, out, err = tool.stop()
    assert rc == 0, err
    assert _kill_rows(out, pid) == _expected(pid, bad), out
    assert not programs_loaded(KILLSNOOP_PROGS)


def test_killsnoop_filters_and_names():
    bad = _missing_pid()
    tool = Tool("killsnoop", "-x", "-n", "-s", "TERM", header="SIG       TPID")
    pid = _send(bad)
    rc, out, err = tool.stop()
    assert rc == 0, err
    lines = [line.split() for line in out.splitlines()[1:] if line.strip()]
    assert all(f[3] == "SIGTERM" and int(f[5]) < 0 for f in lines), out
    assert [f[1:] for f in lines if f[1] == str(pid)] == \
        [[str(pid), f[2], "SIGTERM", str(bad), "-3"] for f in lines if f[1] == str(pid)]
    assert any(f[1] == str(pid) for f in lines), out


def test_killsnoop_target_pid_filter():
    bad = _missing_pid()
    tool = Tool("killsnoop", "-T", bad, header=KILL_HEADER)
    pid = _send(bad)
    rc, out, err = tool.stop(signal.SIGTERM)                # SIGTERM ends it cleanly too
    assert rc == 0, err
    lines = [line.split() for line in out.splitlines()[1:] if line.strip()]
    assert [(int(f[1]), int(f[3]), int(f[4]), int(f[5])) for f in lines] == \
        [(pid, 15, bad, -3)], out


def test_killsnoop_sender_pid_filter():
    tool = Tool("killsnoop", "-p", os.getpid(), header=KILL_HEADER)
    _send(_missing_pid())                                   # not us: not shown
    os.kill(os.getpid(), 0)
    time.sleep(0.3)
    rc, out, err = tool.stop()
    assert rc == 0, err
    lines = [line.split() for line in out.splitlines()[1:] if line.strip()]
    assert lines and all(f[1] == str(os.getpid()) for f in lines), out
    mine = [f[3:] for f in lines if f[4] != str(tool.proc.pid)]   # not stop()'s SIGINT
    assert mine == [["0", str(os.getpid()), "0"]], out


@needs_bpftrace
def test_killsnoop_matches_bpftrace():
    bad = _missing_pid()
    bt = Bpftrace("tracepoint:syscalls:sys_enter_kill,tracepoint:syscalls:sys_enter_tkill,"
                  "tracepoint:syscalls:sys_enter_tgkill "
                  '{ printf("EV %d %d %d\\n", pid, args->pid, args->sig); }')
    tool = Tool("killsnoop", header=KILL_HEADER)
    pid = _send(bad)
    rc, out, err = tool.stop()
    theirs = sorted((int(f[1]), int(f[3]), int(f[2])) for f in
                    (line.split() for line in bt.stop().splitlines())
                    if len(f) == 4 and f[0] == "EV" and f[1] == str(pid))
    assert rc == 0, err
    ours = [r[:3] for r in _kill_rows(out, pid)]              # (pid, sig, tpid)
    assert ours == theirs == [r[:3] for r in _expected(pid, bad)]
