"""programs/sigsnoop.py: the child of test_prog_killsnoop.py sends known signals; by
default every generated signal shows (the child's SIGUSR1 to itself, its SIGCHLD to us
at exit), with -k the kill() family's syscalls with their results; compared with
bpftrace on signal:signal_generate."""

import os
import re
import signal
import time

from bpfenv import needs_bpf
from btrun import Bpftrace, needs_bpftrace
from progrun import Tool, programs_loaded
from test_prog_killsnoop import _expected, _missing_pid, _send

pytestmark = needs_bpf

SIG_HEADER = "TIME     PID     COMM             SIG       TPID    RESULT"
SIGSNOOP_PROGS = ["sigsnoop_generate"] + [
    f"sigsnoop_kill{ret}__sys_{side}_{call}" for ret, side in (("", "enter"), ("_ret", "exit"))
    for call in ("kill", "tkill", "tgkill")]


def _sig_rows(out, pid):
    rows = []
    for line in out.splitlines():
        f = line.split()
        if len(f) == 6 and f[1] == str(pid):
            assert f[2].startswith("python"), line
            rows.append((int(f[1]), f[3], int(f[4]), f[5]))
    return sorted(rows)


def test_sigsnoop_sees_generated_signals():
    bad = _missing_pid()
    tool = Tool("sigsnoop", header=SIG_HEADER)
    pid = _send(bad)
    rc, out, err = tool.stop()
    assert rc == 0, err
    rows = _sig_rows(out, pid)
    assert (pid, "10", pid, "0") in rows, out             # SIGUSR1 to itself
    assert (pid, "17", os.getpid(), "0") in rows, out     # SIGCHLD to us at its exit
    assert not any(r[2] == bad for r in rows), out        # no target: nothing generated
    assert not programs_loaded(SIGSNOOP_PROGS)


def test_sigsnoop_kill_mode_pairs_syscalls():
    bad = _missing_pid()
    tool = Tool("sigsnoop", "-k", "-n", header=SIG_HEADER)
    pid = _send(bad)
    rc, out, err = tool.stop()
    assert rc == 0, err
    expected = sorted((p, {0: "N/A", 10: "SIGUSR1", 15: "SIGTERM"}[s], t,
                       "ESRCH" if r else "0") for p, s, t, r in _expected(pid, bad))
    assert _sig_rows(out, pid) == expected, out


def test_sigsnoop_failed_and_signal_filters():
    bad = _missing_pid()
    tool = Tool("sigsnoop", "-k", "-x", "-s", "15", "-p", os.getpid(), header=SIG_HEADER)
    _send(bad)                                             # another sender: filtered out
    try:
        os.kill(bad, signal.SIGTERM)
    except ProcessLookupError:
        pass
    os.kill(os.getpid(), 0)                                # succeeds: filtered out
    time.sleep(0.3)
    rc, out, err = tool.stop()
    assert rc == 0, err
    lines = [line.split() for line in out.splitlines()[1:] if line.strip()]
    assert [f[1:2] + f[3:] for f in lines] == [[str(os.getpid()), "15", str(bad), "ESRCH"]]


@needs_bpftrace
def test_sigsnoop_matches_bpftrace():
    bt = Bpftrace('tracepoint:signal:signal_generate '
                  '{ printf("EV %d %d %d\\n", pid, args->pid, args->sig); }')
    tool = Tool("sigsnoop", header=SIG_HEADER)
    pid = _send(_missing_pid())
    rc, out, err = tool.stop()
    theirs = {(int(f[1]), f[3], int(f[2])) for f in
              (line.split() for line in bt.stop().splitlines())
              if len(f) == 4 and f[0] == "EV" and f[1] == str(pid)}
    assert rc == 0, err
    ours = {(p, s, t) for p, s, t, _ in _sig_rows(out, pid)}
    assert ours == theirs and len(ours) >= 2


def test_sigsnoop_batch_printer_formats_like_one_line_per_event(monkeypatch):
    """Odd records (those of killsnoop's identity test: the same event layout) through
    the batch printer, with and without -n, give the bytes the tool's former per-event
    printer gives."""
    import types
    from rowsharness import batch_output, freeze_clock, program, reference_output
    from test_prog_killsnoop import _odd_kills
    from pybpf.tooling import errno_name
    sigsnoop = program("sigsnoop")
    freeze_clock(monkeypatch)
    raws = _odd_kills(sigsnoop.Signal)
    for name in (False, True):
        args = types.SimpleNamespace(name=name, json=False)

        def show_one(s):                                    # the former printer
            sig = sigsnoop.signal_name(s.sig) if args.name else str(s.sig)
            result = "0" if s.ret == 0 else errno_name(s.ret)
            return (f"{time.strftime('%H:%M:%S'):<8} {s.pid:<7} {s.comm:<16} {sig:<9} "
                    f"{s.tpid:<7} {result:>6}")

        got = batch_output(monkeypatch, sigsnoop, sigsnoop.batch_printer(args), raws,
                           items=sigsnoop.ROW_ITEMS)
        assert got == reference_output(show_one, sigsnoop.Signal, raws), vars(args)


def test_sigsnoop_json():
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
        tool = Tool("sigsnoop", "--json", "-k", "-n", "-p", os.getpid(), header='"comm": ')
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
    assert set(mine[:-1]) == {(me, comm, "N/A", me, 0)}, out   # the pings
    assert mine[-1] == (me, comm, "SIGTERM", bad, -3), out
