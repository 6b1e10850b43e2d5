"""programs/tutorial/: each lesson runs against a small workload of the test's own and
prints the expected line. Lessons 2 and 3 (kprobes, fentry) run in the vmtest stage."""

import os
import pty
import select
import subprocess
import sys
import tempfile
import time

import pytest

from bpfenv import needs_bpf
from progrun import ROOT, Tool, env, programs_loaded
from pybpf.link.kprobe import kprobes_available

pytestmark = needs_bpf
NO_KPROBES = kprobes_available()


def _child(code):
    """A Python child that runs ``code`` once the test writes a line to it."""
    return subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.readline()\n" + code],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def _go(child):
    child.stdin.write("go\n")
    child.stdin.flush()
    out = child.communicate(timeout=30)[0]
    assert child.returncode == 0
    return out


def _lesson(name, *args, header, workload, timeout=30):
    tool = Tool(f"tutorial/{name}", *args, header=header, timeout=timeout)
    result = workload()
    time.sleep(0.5)
    rc, out, err = tool.stop(timeout=timeout)
    assert rc == 0, err
    return out, result


def test_01_hello_trace_printk():
    child = _child("import os\nfor _ in range(3): os.write(1, b'x')")
    out, _ = _lesson("01_hello", "-p", child.pid, header="Tracing write()",
                     workload=lambda: _go(child))
    assert f"BPF triggered from PID {child.pid}." in out
    assert not programs_loaded(["handle_write"])


def _unlink_workload():
    fd, path = tempfile.mkstemp(prefix="tut_unlink_", dir="/tmp")
    os.close(fd)
    child = _child(f"import os; os.unlink({path!r})")
    _go(child)
    return child.pid, path


@pytest.mark.vmtest
@pytest.mark.skipif(bool(NO_KPROBES), reason=NO_KPROBES)
def test_02_kprobe_unlink():
    out, (pid, path) = _lesson("02_kprobe_unlink", header="Tracing do_unlinkat",
                               workload=_unlink_workload, timeout=120)
    assert f"KPROBE ENTRY pid = {pid}, filename = {path}" in out, out
    assert f"KPROBE EXIT: pid = {pid}, ret = 0" in out, out


def _fentry_reason():
    from pybpf.dsl import load
    try:
        load(os.path.join(ROOT, "programs/tutorial/03_fentry_unlink.py"), attach=False).close()
    except OSError as exc:
        return f"fentry/fexit programs cannot be loaded on this kernel ({exc})"
    return ""


@pytest.mark.vmtest
def test_03_fentry_unlink():
    reason = _fentry_reason()
    if reason:
        pytest.skip(reason)
    out, (pid, path) = _lesson("03_fentry_unlink", header="Tracing do_unlinkat",
                               workload=_unlink_workload, timeout=120)
    assert f"fentry: pid = {pid}, filename = {path}" in out, out
    assert f"fexit: pid = {pid}, filename = {path}, ret = 0" in out, out


def test_04_opensnoop_global_pid_filter():
    path = f"/tmp/tut_open_{os.getpid()}"
    child = _child(f"open({path!r}, 'w').close()")
    out, _ = _lesson("04_opensnoop", "-p", child.pid, header="Tracing openat",
                     workload=lambda: _go(child))
    os.unlink(path)
    assert f"Process ID: {child.pid} enter sys openat: {path}" in out
    lines = [line for line in out.splitlines() if line.startswith("Process ID:")]
    assert all(line.startswith(f"Process ID: {child.pid} ") for line in lines)


def _bash_session():
    pid, fd = pty.fork()
    if pid == 0:                                   # pragma: no cover (child)
        os.execvp("bash", ["bash", "--norc", "--noprofile", "-i"])

    def drain(seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if select.select([fd], [], [], 0.1)[0]:
                try:
                    os.read(fd, 4096)
                except OSError:
                    return
    drain(0.5)
    os.write(fd, b"echo tutorial_readline_42\n")
    drain(0.5)
    os.write(fd, b"exit\n")
    drain(0.3)
    os.waitpid(pid, 0)
    os.close(fd)
    return pid


def test_05_bashreadline_uretprobe():
    out, pid = _lesson("05_bashreadline", header="PID     COMM", workload=_bash_session)
    assert f"{pid:<7} {'bash':<16} echo tutorial_readline_42" in out, out


def test_06_sigsnoop_hash_map():
    child = _child("import os, signal\nsignal.signal(signal.SIGUSR1, lambda *a: None)\n"
                   "os.kill(os.getpid(), signal.SIGUSR1)")
    out, _ = _lesson("06_sigsnoop", header="Tracing kill", workload=lambda: _go(child))
    assert f"sent signal 10 to PID {child.pid}, ret = 0" in out, out
    assert [line for line in out.splitlines() if line.startswith(f"PID {child.pid:<7} ")]


def test_07_execsnoop_perf_event_array():
    child = _child("import subprocess; subprocess.run(['/bin/true'])")
    out, _ = _lesson("07_execsnoop", header="PID     PPID", workload=lambda: _go(child))
    rows = [line.split() for line in out.splitlines()]
    assert any(r[1] == str(child.pid) and r[4] == "/bin/true" for r in rows if len(r) == 5), out


def test_08_exitsnoop_ring_buffer():
    child = _child("import subprocess; print(subprocess.Popen(['sh', '-c', 'exit 3']).pid)\n")

    def work():
        return int(_go(child))
    out, pid = _lesson("08_exitsnoop", header="COMM             PID", workload=work)
    rows = [line.split() for line in out.splitlines()]
    assert ["sh", str(pid), str(child.pid), "3"] in [r[:4] for r in rows], out


def test_09_runqlat_histogram():
    r = subprocess.run([sys.executable, "programs/tutorial/09_runqlat.py", "1"],
                       cwd=ROOT, env=env(),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "     usecs               : count     distribution\n" in r.stdout
    assert "         0 -> 1          : " in r.stdout
