"""programs/bootstrap.py: the test execs /bin/sh children that exit with known codes
after known times; the lines are checked for pid, parent, file name, exit code and
duration, -d is checked to keep only the long-lived one, and the exec and exit events
are compared with bpftrace's view of the same tracepoints."""

import json
import os
import subprocess
import time

from bpfenv import needs_bpf
from btrun import Bpftrace, agree, needs_bpftrace
from progrun import Tool, programs_loaded

pytestmark = needs_bpf

HEADER = "TIME     EVENT COMM             PID     PPID    FILENAME/EXIT CODE"
ME = str(os.getpid())
# (script, exit code, lifetime in seconds)
CHILDREN = (("exit 3", 3, 0.0), ("sleep 0.4; exit 5", 5, 0.4), ("exit 0", 0, 0.0))


def _workload():
    """Runs the children; {pid: (exit code, lifetime)}."""
    out = {}
    for script, code, life in CHILDREN:
        child = subprocess.Popen(["/bin/sh", "-c", script])
        assert child.wait(timeout=30) == code
        out[str(child.pid)] = (code, life)
    time.sleep(0.3)
    return out


def _events(out):
    """{(pid, event): fields} of our children's lines (parent: this test)."""
    got = {}
    for line in out.splitlines()[1:]:
        f = line.split(None, 5)
        if len(f) == 6 and f[4] == ME:
            got.setdefault((f[3], f[1]), []).append(f)
    return got


def test_bootstrap_exec_and_exit():
    tool = Tool("bootstrap", header=HEADER)
    children = _workload()
    rc, out, err = tool.stop()
    assert rc == 0, err
    got = _events(out)
    for pid, (code, life) in children.items():
        (ex,) = got[(pid, "EXEC")]
        assert ex[2] == "sh" and ex[5] == "/bin/sh", ex
        (end,) = got[(pid, "EXIT")]
        assert end[2] == "sh" and end[5].startswith(f"[{code}] ("), end
        ms = int(end[5].split("(")[1].rstrip("ms)"))
        assert life * 1000 <= ms < life * 1000 + 5000, end
    assert len(got) == 2 * len(children), out
    assert not programs_loaded(["handle_exec", "handle_exit"])


def test_bootstrap_min_duration():
    tool = Tool("bootstrap", "-d", "300", header=HEADER)
    children = _workload()
    rc, out, err = tool.stop()
    assert rc == 0, err
    lines = [line.split() for line in out.splitlines()[1:] if line.strip()]
    assert all(f[1] == "EXIT" for f in lines), out            # no exec events with -d
    assert all(int(f[6].strip("(ms)")) >= 300 for f in lines), out
    long = [pid for pid, (_, life) in children.items() if life >= 0.3]
    assert sorted(_events(out)) == [(pid, "EXIT") for pid in long], out
    assert _events(out)[(long[0], "EXIT")][0][5].startswith("[5] (")


class _Pinger:
    """Runs ``true`` every 50 ms until the block ends: gives a tool without a header
    (--json) a line that says it is attached, on an idle machine too."""

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


def test_bootstrap_json_and_verbose():
    with _Pinger():
        tool = Tool("bootstrap", "--json", "-v", header='"event": ', timeout=30)
    children = _workload()
    rc, out, err = tool.stop()
    assert rc == 0, err
    assert "handle_exec" in err and "sched:sched_process_exit" in err
    objs = [json.loads(line) for line in out.splitlines() if line.strip()]
    mine = [o for o in objs if str(o["pid"]) in children and o["ppid"] == int(ME)]
    execs = {str(o["pid"]): o["filename"] for o in mine if o["event"] == "EXEC"}
    exits = {str(o["pid"]): o["exit_code"] for o in mine if o["event"] == "EXIT"}
    assert execs == {pid: "/bin/sh" for pid in children}
    assert exits == {pid: code for pid, (code, _) in children.items()}


@needs_bpftrace
def test_bootstrap_matches_bpftrace():
    bt = Bpftrace(
        "tracepoint:sched:sched_process_exec /curtask->real_parent->tgid == " + ME + "/ "
        '{ printf("EXEC %d %s\\n", pid, str(args->filename)); } '
        "tracepoint:sched:sched_process_exit /curtask->real_parent->tgid == " + ME
        + " && curtask->pid == curtask->tgid/ "
        '{ printf("EXIT %d [%d]\\n", pid, (curtask->exit_code >> 8) & 0xff); }')
    tool = Tool("bootstrap", header=HEADER)
    children = _workload()
    rc, out, err = tool.stop()
    assert rc == 0, err
    their_out = bt.stop()
    theirs = {(f[1], f[0], f[2]) for f in (line.split() for line in their_out.splitlines())
              if len(f) == 3 and f[0] in ("EXEC", "EXIT") and f[1] in children}
    ours = {(pid, kind, fs[0][5].split(" ")[0]) for (pid, kind), fs in _events(out).items()
            if pid in children}
    assert len(ours) == 2 * len(children), out
    agree(bt, ours == theirs, (out, their_out))
