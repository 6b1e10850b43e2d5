"""programs/exitsnoop.py: children of the test exit with a known status, are killed by
a known signal, live a known time or end a thread first; the lines are checked for
pid, parent pid, tid, age and the decoded exit, and compared with bpftrace's view of
the same tracepoint."""

import os
import re
import signal
import subprocess
import sys
import time

from bpfenv import needs_bpf
from btrun import Bpftrace, needs_bpftrace
from progrun import Tool, programs_loaded

pytestmark = needs_bpf

HEADER = "PCOMM            PID     PPID    TID     AGE(s)  EXIT_CODE"
ME = str(os.getpid())
WAITER = """
import sys, threading, time
sys.stdin.readline()
t = threading.Thread(target=time.sleep, args=(0.1,))
t.start()
t.join()
sys.exit(int(sys.argv[1]))
"""


def _workload():
    """Three children: exit 3, SIGKILL, 0 after 0.3 s; {pid: (comm, expected EXIT_CODE)}."""
    out = {}
    for argv, expect in ((["sh", "-c", "exit 3"], "code 3"),
                         (["sh", "-c", "kill -9 $$"], "signal 9 (SIGKILL)"),
                         (["sh", "-c", "sleep 0.3; exit 0"], "0")):
        child = subprocess.Popen(argv)
        child.wait(timeout=30)
        out[str(child.pid)] = ("sh", expect)
    time.sleep(0.3)
    return out


def _rows(out, skip=0):
    """{pid: fields} of the event lines (``skip`` leading columns dropped)."""
    rows = {}
    for line in out.splitlines()[1:]:
        f = line.split(None, 5 + skip)[skip:]
        if len(f) == 6:
            rows.setdefault(f[1], []).append(f)
    return rows


def test_exitsnoop_decodes_exits():
    tool = Tool("exitsnoop", header=HEADER)
    children = _workload()
    rc, out, err = tool.stop()
    assert rc == 0, err
    rows = _rows(out)
    for pid, (comm, code) in children.items():
        assert len(rows.get(pid, [])) == 1, out
        f = rows[pid][0]
        assert (f[0], f[2], f[3], f[5]) == (comm, ME, pid, code), f
    assert float(rows[max(children, key=int)][0][4]) >= 0.29          # sleep 0.3
    assert not programs_loaded(["exitsnoop_exit"])


def test_exitsnoop_failed_only_with_time_and_label():
    tool = Tool("exitsnoop", "-x", "-t", "--label", "exit",
                header="TIME-")
    children = _workload()
    rc, out, err = tool.stop()
    assert rc == 0, err
    assert out.splitlines()[0].split()[1:3] == ["LABEL", "PCOMM"]
    rows = _rows(out, skip=2)
    lines = [line.split() for line in out.splitlines()[1:] if line.strip()]
    assert all(re.match(r"\d\d:\d\d:\d\d\.\d{3}$", f[0]) and f[1] == "exit" for f in lines)
    assert all(f[5] != "0" for fs in rows.values() for f in fs), out
    shown = {pid for pid in children if pid in rows}
    assert shown == {pid for pid, (_, code) in children.items() if code != "0"}, out


def test_exitsnoop_pid_filter_and_threads():
    child = subprocess.Popen([sys.executable, "-c", WAITER, "7"], stdin=subprocess.PIPE)
    pid = str(child.pid)
    tool = Tool("exitsnoop", "-p", pid, "--per-thread", header=HEADER)
    _workload()                                                     # other processes
    child.communicate(b"go\n", timeout=30)
    time.sleep(0.3)
    rc, out, err = tool.stop(signal.SIGTERM)
    assert rc == 0, err
    lines = [line.split(None, 5) for line in out.splitlines()[1:] if line.strip()]
    assert [f[1] for f in lines] == [pid, pid], out                 # the thread, then main
    thread, main = lines
    assert thread[3] != pid and thread[5] == "0" and main[3] == pid and main[5] == "code 7"


@needs_bpftrace
def test_exitsnoop_matches_bpftrace():
    bt = Bpftrace(f"tracepoint:sched:sched_process_exit /curtask->real_parent->tgid == {ME} "
                  "&& curtask->pid == curtask->tgid/ "
                  '{ printf("EV %d %d\\n", pid, curtask->exit_code); }')
    tool = Tool("exitsnoop", header=HEADER)
    time.sleep(1.0)                     # bpftrace prints "Attaching" before it attaches
    children = _workload()
    rc, out, err = tool.stop()
    theirs = {}
    for f in (line.split() for line in bt.stop().splitlines()):
        if len(f) == 3 and f[0] == "EV" and f[1] != str(tool.proc.pid):
            code = int(f[2])
            theirs[f[1]] = (f"code {code >> 8}" if code >> 8 else "0") if code & 0x7f == 0 \
                else f"signal {code & 0x7f}"
    assert rc == 0, err
    ours = {pid: fs[0][5].split(" (")[0] for pid, fs in _rows(out).items() if fs[0][2] == ME}
    assert ours == theirs and set(ours) == set(children), (out, theirs)


def _reference_line(args, e):
    """The tool's former per-event printer (one f-string per exit), the oracle of the
    batch printer's formatting."""
    from rowsharness import program
    exitsnoop = program("exitsnoop")
    line = ""
    if args.timestamp or args.utc:
        now = time.time()
        clock = time.gmtime(now) if args.utc else time.localtime(now)
        line += f"{time.strftime('%H:%M:%S', clock)}.{int(now * 1000) % 1000:03d} "
    if args.label is not None:
        line += f"{args.label:<6} "
    age = (e.exit_time - e.start_time) / 1e9
    line += f"{e.task:<16} {e.pid:<7} {e.ppid:<7} {e.tid:<7} {age:<7.2f} "
    return line + exitsnoop.exit_text(e.exit_code, e.sig_info)


def test_exitsnoop_batch_printer_formats_like_one_line_per_event(monkeypatch):
    """Odd exits (non-UTF-8 and 16-byte names, huge pids, a negative age, every signal
    and core bit, codes up to 255) through the batch printer with every combination of
    -t/--utc/--label give the bytes the per-event printer gives."""
    import random
    import types
    from rowsharness import ODD_COMMS, after_nul, batch_output, freeze_clock, program, \
        reference_output
    exitsnoop = program("exitsnoop")
    Exit = exitsnoop.Exit
    freeze_clock(monkeypatch)
    rnd = random.Random(20)
    raws = []
    for i in range(600):
        start = rnd.choice([0, 10**9, 2**64 - 1, 5 * 10**12])
        sig_info = rnd.choice([0, 0, 9, 11 | 0x80, 0x80, 64, 127])
        raws.append(after_nul(Exit(
            start_time=start, exit_time=(start + rnd.randint(-10**9, 10**11)) % 2**64,
            pid=rnd.choice([1, 4242, 2**32 - 1]), tid=rnd.choice([1, 4243, 2**31]),
            ppid=rnd.choice([0, 1, 99999]), exit_code=rnd.choice([0, 0, 1, 3, 255]),
            sig_info=sig_info, task=rnd.choice(ODD_COMMS)).to_bytes(), Exit, "task"))
    for stamp, utc in ((False, False), (True, False), (False, True), (True, True)):
        for label in (None, "", "exit", "a-long-label"):
            args = types.SimpleNamespace(timestamp=stamp, utc=utc, label=label, json=False)
            got = batch_output(monkeypatch, exitsnoop, exitsnoop.batch_printer(args), raws)
            assert got == reference_output(lambda e: _reference_line(args, e), Exit, raws), \
                vars(args)


class _Pinger:
    """Runs ``true`` every 50 ms until the block ends: gives a tool without a header
    (--json) a line that says it is attached."""

    def __init__(self):
        import threading
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop.wait(0.05):
            subprocess.run(["true"])

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def test_exitsnoop_json():
    import json
    with _Pinger():
        tool = Tool("exitsnoop", "--json", "-t", "--label", "ex", header='"pcomm": ')
    children = _workload()
    rc, out, err = tool.stop()
    assert rc == 0, err
    objs = [json.loads(line) for line in out.splitlines()]
    assert all(list(o) == ["time", "label", "pcomm", "pid", "ppid", "tid", "age(s)",
                           "exit_code"] for o in objs), out
    assert all(re.match(r"\d\d:\d\d:\d\d\.\d{3}$", o["time"]) and o["label"] == "ex"
               for o in objs)
    mine = {str(o["pid"]): o for o in objs if str(o["pid"]) in children}
    assert {pid: (o["pcomm"], o["ppid"], o["tid"], o["exit_code"]) for pid, o in mine.items()} \
        == {pid: (comm, int(ME), int(pid), code) for pid, (comm, code) in children.items()}
    ages = [mine[pid]["age(s)"] for pid in sorted(children, key=int)]
    assert all(isinstance(a, float) for a in ages) and ages[2] >= 0.29, ages   # sleep 0.3
