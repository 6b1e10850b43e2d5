"""programs/syscount.py counts exactly, in each of its maps: a gcc-built child makes
known numbers of raw system calls, among them numbers above 400 (io_uring_setup 425,
openat2 437: slots near the end of the per-CPU array) and one beyond the array (1000,
which the kernel refuses with ENOSYS but still reports at raw_syscalls:sys_exit: the
hash-map fallback). By number (the per-CPU array), by number with -L, and by process
(-P, the hash map), every count must be what the child did: the kernel's own syscall
numbers, called directly, are the oracle."""

import os
import re
import shutil
import subprocess

import pytest

from bpfenv import needs_bpf
from btrun import assert_unloaded, loaded_ids
from progrun import Tool

pytestmark = [needs_bpf,
              pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")]

GETPPID, OPENAT2, URING, BEYOND = 311, 137, 29, 53
SOURCE = rf"""
#include <stdio.h>
#include <unistd.h>
#include <sys/syscall.h>

static int spread;                      /* argv[1]: sleep 0.4 s after each loop */

static void pause_maybe(void)
{{
    if (spread)
        usleep(400000);
}}

int main(int argc, char **argv)
{{
    char c;
    spread = argc > 1;
    printf("ready\n");
    fflush(stdout);
    if (read(0, &c, 1) != 1)            /* its exit is the first call counted */
        return 1;
    for (int i = 0; i < {GETPPID}; i++)
        syscall(110);                   /* getppid */
    pause_maybe();
    for (int i = 0; i < {OPENAT2}; i++)
        syscall(437, -100, 0, 0, 0);    /* openat2: EINVAL (no open_how) */
    pause_maybe();
    for (int i = 0; i < {URING}; i++)
        syscall(425, 0, 0);             /* io_uring_setup: EINVAL, or EPERM if disabled */
    pause_maybe();
    for (int i = 0; i < {BEYOND}; i++)
        syscall(1000);                  /* no such call: ENOSYS */
    syscall(231, 0);                    /* exit_group: never returns, so never counted */
    return 1;
}}
"""
# what the tool prints for each (the names from the kernel's x86-64 table)
EXPECTED = {"getppid": GETPPID, "openat2": OPENAT2, "io_uring_setup": URING,
            "[unknown: 1000]": BEYOND}
HEADER = "syscalls, printing top"


@pytest.fixture(scope="module")
def child_exe(tmp_path_factory):
    if os.uname().machine != "x86_64":
        pytest.skip("the child calls x86-64 syscall numbers")
    d = tmp_path_factory.mktemp("syscount")
    (d / "calls.c").write_text(SOURCE)
    exe = d / "calls"
    subprocess.run(["gcc", "-O1", "-o", str(exe), str(d / "calls.c")], check=True)
    return str(exe)


ROW = re.compile(r"^(\[unknown: \d+\]|\d+ +\S+|\w+) +(\d+)(?: +(\d+\.\d+))?$", re.M)


def _run(exe, *flags, spread=False):
    """The tool traces the child (``-p``) from before its first counted call to its
    exit; returns (child pid, {row label: [count, time...]}, the tool's output)."""
    child = subprocess.Popen([exe] + (["spread"] if spread else []), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
    try:
        assert child.stdout.readline() == "ready\n"      # blocked in read() from here
        tool = Tool("syscount", "-T", "100", *flags, "-p", child.pid, header=HEADER)
        ids = loaded_ids(tool, ["sys_enter", "sys_exit"] if "-L" in flags else ["sys_exit"])
        child.stdin.write("g")
        child.stdin.flush()
        assert child.wait(timeout=30) == 0
        rc, out, err = tool.stop()
    finally:
        child.kill()
        child.wait()
    assert rc == 0, err
    assert out.rstrip().endswith("Detaching..."), out
    assert_unloaded(ids)
    body = out.split("\n", 2)[2]            # after the Tracing line and the [time] line
    rows = {m.group(1): [int(m.group(2))] + ([float(m.group(3))] if m.group(3) else [])
            for m in ROW.finditer(body)}
    return child.pid, rows, out


def test_counts_by_number_are_exact(child_exe):
    _, rows, out = _run(child_exe)
    assert {k: v[0] for k, v in rows.items()} == {"read": 1, **EXPECTED}, out


def test_counts_and_times_by_number_are_exact(child_exe):
    _, rows, out = _run(child_exe, "-L")
    # read() was entered before the tool attached: without its entry time it is left out
    assert {k: v[0] for k, v in rows.items()} == EXPECTED, out
    assert all(v[1] > 0 for v in rows.values()), out


def test_counts_by_process_are_exact(child_exe):
    for flags in ([], ["-L"]):
        pid, rows, out = _run(child_exe, "-P", *flags)
        ours = [v for k, v in rows.items() if k.split()[0] == str(pid)]
        # every call the child returned from: read's exit (not with -L) and the loops
        total = sum(EXPECTED.values()) + (0 if flags else 1)
        assert [v[0] for v in ours] == [total] and len(rows) == 1, out
        assert not flags or ours[0][1] > 0, out


def test_interval_summaries_add_up_exactly(child_exe):
    """-i 1 over a child that spreads its calls over about 1.6 s: each summary shows the
    calls since the one before, so across the summaries (the last one printed at
    Ctrl-C) every call is counted once."""
    _, _, out = _run(child_exe, "-i", "1", spread=True)
    summaries = re.split(r"^\[\d\d:\d\d:\d\d\]$", out, flags=re.M)[1:]
    assert len(summaries) >= 2, out
    total: dict = {}
    for summary in summaries:
        for m in ROW.finditer(summary):
            total[m.group(1)] = total.get(m.group(1), 0) + int(m.group(2))
    assert {k: total.get(k) for k in EXPECTED} == EXPECTED, out
