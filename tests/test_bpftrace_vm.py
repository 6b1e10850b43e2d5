"""bpftrace probe types this machine cannot run (kprobe/kretprobe, kfunc/kretfunc, iter),
run by ``pybpf.bpftrace.session.run`` in the second-kernel stage (scripts/vmtest.sh:
Debian's 6.1 kernel under QEMU), with real effects: the test's own ``-c`` child makes a
known number of calls, and the counts, arguments and return values must be what the
kernel saw. Where the guest can run the installed bpftrace 0.17 too, its output must be
the same.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.vmtest,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

#: a child that sleeps 5 times (each sleep is one do_nanosleep) and closes fd 12345
#: (not open: EBADF) 3 times
CHILD = ("import os, time\n"
         "for _ in range(5): time.sleep(0.001)\n"
         "for _ in range(3):\n"
         "    try: os.close(12345)\n"
         "    except OSError: pass\n")


def _kprobes() -> str:
    from pybpf.link.kprobe import kprobes_available
    return kprobes_available()


def _tracing() -> bool:
    from pybpf.bpftrace.probes import _tracing_loads
    return _tracing_loads()


def child_script(tmp_path) -> str:
    path = tmp_path / "child.py"
    path.write_text(CHILD)
    return f"{sys.executable} {path}"


def run(program: str, command: str = "", params=()) -> str:
    """session.run in this process; its stdout (the exit status must be 0)."""
    from pybpf.bpftrace.session import TraceOptions, run as bt_run
    out, err = io.StringIO(), io.StringIO()
    opts = TraceOptions(params=list(params))
    if command:
        opts.command = command
    rc = bt_run(program, "vm.bt", opts, stdout=out, stderr=err)
    assert rc == 0, err.getvalue()
    return out.getvalue()


def bpftrace(program: str, command: str = "", params=()) -> str:
    """The installed bpftrace's stdout for the same run, or "" when it cannot run here."""
    if shutil.which("bpftrace") is None:
        return ""
    argv = ["bpftrace"] + (["-c", command] if command else []) + ["-e", program, *params]
    try:
        res = subprocess.run(argv, capture_output=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return res.stdout.decode("latin-1") if res.returncode == 0 else ""


def check_same(program: str, ours: str, command: str = "", params=(),
               keep: str = "") -> None:
    """Our output is bpftrace's (on the lines matching ``keep`` when given: the Python
    child's own start-up closes a varying number of descriptors)."""
    theirs = bpftrace(program, command, params)
    if theirs:
        if keep:
            rx = re.compile(keep)
            ours, theirs = ([l for l in x.splitlines() if rx.search(l)]
                            for x in (ours, theirs))
        assert ours == theirs


@pytest.mark.skipif(bool(_kprobes()), reason="needs kprobes")
def test_kprobe_counts_the_childs_nanosleeps(tmp_path):
    cmd = child_script(tmp_path)
    prog = "kprobe:do_nanosleep /pid == cpid/ { @n = count(); }"
    out = run(prog, cmd)
    assert out == "Attaching 1 probe...\n\n\n@n: 5\n"
    check_same(prog, out, cmd)


@pytest.mark.skipif(bool(_kprobes()), reason="needs kprobes")
def test_kretprobe_retval_and_kprobe_args(tmp_path):
    cmd = child_script(tmp_path)
    prog = ("kprobe:close_fd /pid == cpid/ { @fd[arg0] = count(); } "
            "kretprobe:close_fd /pid == cpid/ { @ret[(int32)retval] = count(); }")
    out = run(prog, cmd)
    assert "@fd[12345]: 3\n" in out
    assert "@ret[-9]: 3\n" in out                      # EBADF
    assert out.startswith("Attaching 2 probes...\n")
    check_same(prog, out, cmd, keep=r"^Attaching|12345|-9")


@pytest.mark.skipif(bool(_kprobes()), reason="needs kprobes")
def test_kprobe_wildcard_and_probe_names(tmp_path):
    cmd = child_script(tmp_path)
    prog = "kprobe:do_nanosleep*,kprobe:close_fd /pid == cpid/ { @[probe] = count(); }"
    out = run(prog, cmd)
    assert "@[kprobe:do_nanosleep]: 5\n" in out
    assert out.startswith("Attaching 2 probes...\n")
    check_same(prog, out, cmd, keep=r"^Attaching|nanosleep")


@pytest.mark.skipif(not _tracing(), reason="needs fentry/fexit (BPF tracing programs)")
def test_kfunc_args_and_kretfunc_retval(tmp_path):
    cmd = child_script(tmp_path)
    prog = ("kfunc:close_fd /pid == cpid/ { @fd[args->fd] = count(); } "
            "kretfunc:close_fd /pid == cpid/ { @ret[args->fd, retval] = count(); }")
    out = run(prog, cmd)
    assert "@fd[12345]: 3\n" in out
    assert "@ret[12345, -9]: 3\n" in out
    check_same(prog, out, cmd, keep=r"^Attaching|12345")


@pytest.mark.skipif(not _tracing(), reason="needs BPF iterators")
def test_iter_task_lists_this_process():
    me = os.getpid()
    prog = 'iter:task { if (ctx->task->pid == $1) { printf("%s %d\\n", ctx->task->comm, ctx->task->pid); } }'
    out = run(prog, params=[str(me)])
    with open(f"/proc/{me}/comm") as fh:
        comm = fh.read().strip()
    assert out == f"Attaching 1 probe...\n{comm} {me}\n\n\n"
    check_same(prog, out, params=[str(me)])


@pytest.mark.skipif(not _tracing(), reason="needs BPF iterators")
def test_iter_task_file_sees_a_known_fd():
    me = os.getpid()
    fd = os.open("/dev/null", os.O_RDONLY)
    high = os.dup2(fd, 777)
    try:
        prog = 'iter:task_file { if (ctx->task->pid == $1 && ctx->fd == 777) { printf("fd %d\\n", ctx->fd); } }'
        out = run(prog, params=[str(me)])
    finally:
        os.close(high)
        os.close(fd)
    assert out == "Attaching 1 probe...\nfd 777\n\n\n"
