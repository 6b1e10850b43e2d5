"""``pybpf list`` against ``bpftrace -l``/``-lv`` on this machine (the oracle; skipped,
naming it, when bpftrace is not installed: ``apt-get install bpftrace``)."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import List

import pytest

from pybpf.cli import main

BPFTRACE = shutil.which("bpftrace")
pytestmark = [
    pytest.mark.skipif(BPFTRACE is None, reason="bpftrace is not installed "
                                                "(apt-get install bpftrace)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="bpftrace -l needs root"),
]


def bpftrace(*args: str) -> List[str]:
    assert BPFTRACE is not None
    res = subprocess.run([BPFTRACE, *args], capture_output=True, text=True, timeout=120)
    return [ln for ln in res.stdout.splitlines() if ln]


def ours(capsys: pytest.CaptureFixture, *args: str) -> List[str]:
    assert main(list(args)) == 0
    return [ln for ln in capsys.readouterr().out.splitlines() if ln]


def test_syscall_tracepoints_as_bpftrace_lists_them(capsys: pytest.CaptureFixture) -> None:
    theirs = bpftrace("-l", "tracepoint:syscalls:*")
    assert len(theirs) > 100
    assert ours(capsys, "list", "tracepoint:syscalls:*") == theirs


def test_every_tracepoint_in_bpftrace_order(capsys: pytest.CaptureFixture) -> None:
    # the pybpf group changes while other tests run: compare the rest
    def stable(names: List[str]) -> List[str]:
        return [n for n in names if not n.startswith("tracepoint:pybpf:")]
    assert stable(ours(capsys, "list", "tracepoint:*")) == \
        stable(bpftrace("-l", "tracepoint:*"))


@pytest.mark.parametrize("event", ["syscalls:sys_enter_openat", "syscalls:sys_exit_read",
                                   "syscalls:sys_enter_execve", "sched:sched_switch",
                                   "sched:sched_process_exec", "sched:sched_wakeup"])
def test_verbose_tracepoint_as_bpftrace(event: str, capsys: pytest.CaptureFixture) -> None:
    theirs = bpftrace("-lv", f"tracepoint:{event}")
    assert theirs and theirs[0] == f"tracepoint:{event}"
    assert ours(capsys, "list", "-v", f"tracepoint:{event}") == theirs


def test_verbose_wildcard_as_bpftrace(capsys: pytest.CaptureFixture) -> None:
    pattern = "tracepoint:syscalls:sys_enter_open*"
    assert ours(capsys, "list", "-v", pattern) == bpftrace("-lv", pattern)


@pytest.mark.skipif(not os.path.exists("/bin/bash"), reason="no /bin/bash")
def test_uprobes_of_bash_as_bpftrace(capsys: pytest.CaptureFixture) -> None:
    pattern = "uprobe:/bin/bash:*readline*"
    assert ours(capsys, "list", pattern) == bpftrace("-l", pattern)


def test_uprobes_of_libc_as_bpftrace(capsys: pytest.CaptureFixture) -> None:
    theirs = bpftrace("-l", "uprobe:libc:mal*")
    if not theirs:
        pytest.skip("this bpftrace does not resolve 'libc'")
    assert ours(capsys, "list", "uprobe:libc:mal*") == theirs
