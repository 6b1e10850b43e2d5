"""programs/killsnoop.py: a child process sends known signals with kill(), tgkill() and
tkill(), to itself and to a pid that does not exist; the lines are checked field by
field, and against bpftrace on the same tracepoints. The workload is shared with
test_prog_sigsnoop.py."""

import os
import platform
import re
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


def _odd_kills(event):
    """Records with odd values: non-UTF-8 and 16-byte names, negative and extreme target
    pids, unnamed and negative signals, unknown and positive results."""
    import random
    from rowsharness import ODD_COMMS, after_nul
    rnd = random.Random(20)
    return [after_nul(event(
        pid=rnd.choice([1, 4242, 2**32 - 1]), tpid=rnd.choice([1, -1, -4242, 2**31 - 1, -2**31]),
        sig=rnd.choice([0, 9, 15, 34, 64, 65, 200, -1]),
        ret=rnd.choice([0, -3, -1, -4095, -99999, 5]),
        comm=rnd.choice(ODD_COMMS)).to_bytes(), event, "comm") for _ in range(600)]


def test_killsnoop_batch_printer_formats_like_one_line_per_event(monkeypatch):
    """Odd records through the batch printer, with and without -n, give the bytes the
    tool's former per-event printer gives."""
    import types
    from rowsharness import batch_output, freeze_clock, program, reference_output
    killsnoop = program("killsnoop")
    freeze_clock(monkeypatch)
    raws = _odd_kills(killsnoop.Kill)
    for name in (False, True):
        args = types.SimpleNamespace(name=name, json=False)

        def show_one(k):                                    # the former printer
            sig = f"{killsnoop.signal_name(k.sig):<9}" if args.name else f"{k.sig:<4}"
            return (f"{time.strftime('%H:%M:%S'):<9} {k.pid:<7} {k.comm:<16} {sig} "
                    f"{k.tpid:<8} {k.ret}")

        got = batch_output(monkeypatch, killsnoop, killsnoop.batch_printer(args), raws,
                           items=killsnoop.ROW_ITEMS)
        assert got == reference_output(show_one, killsnoop.Kill, raws), vars(args)


def test_killsnoop_json():
    import json
    import threading
    bad = _missing_pid()
    stop = threading.Event()

    def ping():                     # lines until the tool (no header in JSON) is live
        while not stop.wait(0.05):
            os.kill(os.getpid(), 0)

    pinger = threading.Thread(target=ping, daemon=True)
    pinger.start()
    try:
        tool = Tool("killsnoop", "--json", "-n", "-p", os.getpid(), header='"comm": ')
    finally:
        stop.set()
        pinger.join()
    try:
        os.kill(bad, signal.SIGTERM)
    except ProcessLookupError:
        pass
    time.sleep(0.3)
    rc, out, err = tool.stop()
    assert rc == 0, err
    objs = [json.loads(line) for line in out.splitlines()]
    assert all(list(o) == ["time", "pid", "comm", "sig", "tpid", "result"] for o in objs), out
    assert all(re.match(r"\d\d:\d\d:\d\d$", o["time"]) for o in objs), out
    comm = open("/proc/self/comm").read().strip()
    mine = [(o["pid"], o["comm"], o["sig"], o["tpid"], o["result"]) for o in objs
            if o["tpid"] != tool.proc.pid]                  # not stop()'s SIGINT
    me = os.getpid()
    assert set(mine[:-1]) == {(me, comm, "0", me, 0)}, out   # the pings
    assert mine[-1] == (me, comm, "SIGTERM", bad, -3), out
