"""programs/sigsnoop.py: the child of test_prog_killsnoop.py sends known signals; by
default every generated signal shows (the child's SIGUSR1 to itself, its SIGCHLD to us
at exit), with -k the kill() family's syscalls with their results; compared with
bpftrace on signal:signal_generate."""

import os
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
