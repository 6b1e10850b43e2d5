"""programs/execsnoop.py: the test process execs known commands (one that fails); the
lines are checked for pid, parent pid, command name, result and arguments, the flags
are exercised, and the events are compared with bpftrace's on the same tracepoint.
The tool filters on the parent pid (-P, in the kernel) so that other work on the
machine does not matter."""

import os
import re
import subprocess
import sys
import time

import pytest

from bpfenv import needs_bpf
from btrun import Bpftrace, needs_bpftrace
from progrun import ROOT, Tool, programs_loaded

pytestmark = needs_bpf

HEADER = "PCOMM            PID     PPID    RET ARGS"
ME = str(os.getpid())


def _run(*argv, user=None):
    """Exec ``argv`` in a child of this process; its pid (None if exec failed)."""
    try:
        child = subprocess.Popen(list(argv), stdout=subprocess.DEVNULL, user=user)
    except FileNotFoundError:
        return None
    child.wait(timeout=30)
    return child.pid


def _lines(out, skip=1):
    return [line.split(None, 4 + skip) for line in out.splitlines()[1:] if line.strip()]


def test_execsnoop_shows_execs_with_args():
    tool = Tool("execsnoop", "-P", ME, header=HEADER)
    pid = _run("/bin/echo", "uniq-exec-1", "a b", "c")
    _run("/nonexistent-uniq-exec")                          # fails: not shown without -x
    time.sleep(0.3)
    rc, out, err = tool.stop()
    assert rc == 0, err
    lines = [line.split(None, 4) for line in out.splitlines()[1:] if line.strip()]
    assert ["echo", str(pid), ME, "0", "/bin/echo uniq-exec-1 a b c"] in lines, out
    assert not any("nonexistent" in f[-1] for f in lines), out
    assert not programs_loaded(["execsnoop_enter", "execsnoop_exit"])


def test_execsnoop_failed_quoted_truncated_timestamped():
    tool = Tool("execsnoop", "-P", ME, "-x", "-t", "-U", "-q", "--max-args", 3,
                header="TIME(s) UID   " + HEADER)
    pid = _run("/bin/echo", "uniq-exec-2", "x", "y", "z")
    _run("/nonexistent-uniq-exec")
    time.sleep(0.3)
    rc, out, err = tool.stop()
    assert rc == 0, err
    lines = [line.split(None, 6) for line in out.splitlines()[1:] if line.strip()]
    assert all(re.match(r"\d+\.\d{3}$", f[0]) and f[1] == "0" and f[4] == ME
               for f in lines), out
    assert ["echo", str(pid), ME, "0", '"/bin/echo" "uniq-exec-2" "x" "..."'] in \
        [f[2:] for f in lines], out
    failed = [f for f in lines if "nonexistent" in f[-1]]
    assert [(f[2][:6], f[5], f[6]) for f in failed] == \
        [("python", "-2", '"/nonexistent-uniq-exec"')], out


def test_execsnoop_time_and_regex_filters():
    tool = Tool("execsnoop", "-P", ME, "-T", "-n", "^echo$", "-l", "uniq-exec-3",
                header="TIME     " + HEADER)
    pid = _run("/bin/echo", "uniq-exec-3")
    _run("/bin/echo", "other")                              # -l: filtered out
    _run("/bin/true", "uniq-exec-3")                        # -n: filtered out
    time.sleep(0.3)
    rc, out, err = tool.stop()
    assert rc == 0, err
    lines = [line.split(None, 5) for line in out.splitlines()[1:] if line.strip()]
    assert len(lines) == 1 and re.match(r"\d\d:\d\d:\d\d$", lines[0][0]), out
    assert lines[0][1:] == ["echo", str(pid), ME, "0", "/bin/echo uniq-exec-3"]


def test_execsnoop_uid_filter():
    tool = Tool("execsnoop", "-u", 65534, "-U", header="UID   " + HEADER)
    _run("/bin/echo", "as-root")                            # filtered out
    pid = _run("/bin/echo", "uniq-exec-4", user=65534)
    time.sleep(0.3)
    rc, out, err = tool.stop()
    assert rc == 0, err
    lines = [line.split(None, 5) for line in out.splitlines()[1:] if line.strip()]
    assert lines and all(f[0] == "65534" for f in lines), out
    assert ["65534", "echo", str(pid), ME, "0", "/bin/echo uniq-exec-4"] in lines


@pytest.mark.parametrize("tool", ["execsnoop", "opensnoop", "exitsnoop", "killsnoop",
                                  "sigsnoop", "bashreadline"])
def test_tools_run_through_pybpf_run(tool):
    proc = subprocess.run([sys.executable, "-m", "pybpf", "run", tool, "-h"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith(f"usage: {tool} "), proc.stderr


@needs_bpftrace
def test_execsnoop_matches_bpftrace():
    bt = Bpftrace(f"tracepoint:syscalls:sys_exit_execve /curtask->real_parent->tgid == {ME}/ "
                  '{ printf("EV %d %d %d %s\\n", pid, curtask->real_parent->tgid, args->ret, '
                  "comm); }")
    tool = Tool("execsnoop", "-x", "-P", ME, header=HEADER)
    time.sleep(1.0)                     # bpftrace prints "Attaching" before it attaches
    pids = [_run("/bin/echo", "bt"), _run("/bin/true"), _run("/bin/sh", "-c", "exit 0")]
    _run("/nonexistent-uniq-exec")
    time.sleep(0.3)
    rc, out, err = tool.stop()
    bt_out = bt.stop()
    theirs = {tuple(f[1:]) for f in (line.split() for line in bt_out.splitlines())
              if len(f) == 5 and f[0] == "EV" and f[1] != str(tool.proc.pid)}
    assert rc == 0, err
    ours = {(f[1], f[2], f[3], f[0]) for f in _lines(out, 0)}
    assert ours == theirs, (out, theirs)
    assert {p for p, _, r, _ in ours if r == "0"} == {str(p) for p in pids}


def test_execsnoop_json():
    import json
    import threading
    stop = threading.Event()

    def ping():                       # events until the tool (no header in JSON) is live
        while not stop.wait(0.05):
            _run("/bin/true", "ping")

    pinger = threading.Thread(target=ping, daemon=True)
    pinger.start()
    try:
        tool = Tool("execsnoop", "-P", ME, "-x", "-U", "--json", header='"pcomm": ')
    finally:
        stop.set()
        pinger.join()
    pid = _run("/bin/echo", "uniq-exec-json", 'q"uote', "new\nline")
    _run("/nonexistent-uniq-exec-json")
    time.sleep(0.3)
    rc, out, err = tool.stop()
    assert rc == 0, err
    objs = [json.loads(line) for line in out.splitlines()]
    assert all(list(o) == ["uid", "pcomm", "pid", "ppid", "ret", "args"] for o in objs), out
    mine = [o for o in objs if "uniq-exec-json" in o["args"]]
    assert mine[0] == {"uid": os.getuid(), "pcomm": "echo", "pid": pid, "ppid": int(ME),
                       "ret": 0, "args": '/bin/echo uniq-exec-json q"uote new\\nline'}, out
    assert [(o["ppid"], o["ret"], o["args"]) for o in mine[1:]] == [
        (int(ME), -2, "/nonexistent-uniq-exec-json")], out
