"""The one-liners of bpftrace 0.17's docs/tutorial_one_liners.md and README.md (issue 19,
"Must show"), unchanged but for a pid, run by bpftrace and by pybpf's ``session.run``
on the same workload (tests/bpftrace_tools/toolwork.c, comm ``toolwork``, or reads by
this test process): the header lines must be identical and the data lines must have the
same column structure (tests/bpftrace_tools/harness.py: values, keys, bars and stack
frames normalised), on the workload's own lines where the one-liner prints per event.

Kprobe one-liners (this machine has no kprobes) belong to the second-kernel stage
(tests/test_bpftrace_vm_tools.py, ``scripts/vmtest.sh``):

* tutorial lesson 6: ``kretprobe:vfs_read { @bytes = lhist(retval, 0, 2000, 200); }``
* lesson 7: ``kprobe:vfs_read { @start[tid] = nsecs; } kretprobe:vfs_read /@start[tid]/
  { @ns[comm] = hist(nsecs - @start[tid]); delete(@start[tid]); }``
* lesson 12: ``kprobe:vfs_open { printf("open path: %s\\n", str(((struct path
  *)arg0)->dentry->d_name.name)); }``

Lesson 1 (``bpftrace -l``) is the listing, covered by tests/test_bpftrace_listing.py.
"""

from __future__ import annotations

import os
import shutil

import pytest

from bpftrace_tools.harness import build_toolwork, run_both, shapes, split

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(shutil.which("bpftrace") is None, reason="needs bpftrace 0.17"),
]

SELF = "{SELF}"                         # this test process's pid (its reads are the workload)

#: (id, program, regex of the data lines compared (None: all), the workload must make it
#: print, seconds before SIGINT, xfail reason)
ONE_LINERS = [
    ("tut-hello", r'BEGIN { printf("hello world\n"); }', None, False, 0.3, None),
    ("tut-openat", r'tracepoint:syscalls:sys_enter_openat { printf("%s %s\n", comm, str(args->filename)); }', "toolwork", True, 0.5, None),
    ("tut-syscalls-by-comm", r'tracepoint:raw_syscalls:sys_enter { @[comm] = count(); }', r"^@\[toolwork\]", True, 0.5, None),
    ("tut-read-hist", 'tracepoint:syscalls:sys_exit_read /pid == ' + SELF + '/ { @bytes = hist(args->ret); }', None, True, 0.3, None),
    ("tut-sched-probes", r'tracepoint:sched:sched* { @[probe] = count(); } interval:s:5 { exit(); }', None, True, 6.0, None),
    # (a stack whose bucket is taken fails get_stackid, in bpftrace too: "@[]: N" lines
    # come and go with hash collisions, so they are left out)
    ("tut-profile-kstack", r'profile:hz:99 { @[kstack] = count(); }', r"^(?!@\[\]: )", True, 1.0, None),
    ("tut-switch-kstack", r'tracepoint:sched:sched_switch { @[kstack] = count(); }', r"^(?!@\[\]: )", True, 0.5, None),
    ("tut-block-hist", r'tracepoint:block:block_rq_issue { @ = hist(args->bytes); }', None, True, 0.5, None),
    ("readme-open", r'tracepoint:syscalls:sys_enter_open { printf("%s %s\n", comm, str(args->filename)); }', "toolwork", True, 0.5, None),
    ("readme-read-sum", r'tracepoint:syscalls:sys_exit_read /args->ret/ { @[comm] = sum(args->ret); }', r"^@\[toolwork\]", True, 0.5, None),
    ("readme-read-hist", r'tracepoint:syscalls:sys_exit_read { @[comm] = hist(args->ret); }', None, True, 0.5, None),
    ("readme-rates", r'tracepoint:raw_syscalls:sys_enter { @ = count(); } interval:s:1 { print(@); clear(@); }', None, True, 1.3, None),
    ("readme-block-printf", r'tracepoint:block:block_rq_issue { printf("%d %s %d\n", pid, comm, args->bytes); }', "toolwork", True, 0.5, None),
    ("readme-faults", r'software:faults:1 { @[comm] = count(); }', r"^@\[toolwork\]", True, 0.5, None),
    ("readme-llc-misses", r'hardware:cache-misses:1000000 { @[comm, pid] = count(); }', None, False, 0.3, None),
    ("readme-ustack", r'profile:hz:99 /pid == 189/ { @[ustack] = count(); }', None, False, 0.5, None),
    ("readme-cgroup", r'tracepoint:syscalls:sys_enter_openat /cgroup == cgroupid("/sys/fs/cgroup/unified/mycg")/ { printf("%s\n", str(args->filename)); }', None, False, 0.3, None),
]


@pytest.fixture(scope="module")
def toolwork(tmp_path_factory):
    if shutil.which("gcc") is None:
        pytest.skip("needs gcc")
    return build_toolwork(str(tmp_path_factory.mktemp("toolwork")))


def _reads() -> None:
    """This process reads /etc/passwd in 1, 10, 100 and 1000-byte pieces."""
    for size in (1, 10, 100, 1000):
        fd = os.open("/etc/passwd", os.O_RDONLY)
        os.read(fd, size)
        os.close(fd)


def params():
    for case in ONE_LINERS:
        reason = case[-1]
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        yield pytest.param(*case[1:-1], id=case[0], marks=marks)


@pytest.mark.parametrize("program,keep,data,settle", list(params()))
def test_one_liner(program, keep, data, settle, toolwork, tmp_path):
    path = str(tmp_path / "one.bt")
    with open(path, "w") as fh:
        fh.write(program.replace(SELF, str(os.getpid())))
    work = _reads if SELF in program else toolwork
    (tout, terr, trc), (oout, oerr, orc) = run_both(path, work, settle)
    assert orc == trc, (orc, trc, oerr[-1500:], terr[-1500:])
    if trc != 0:                        # refused by both (no PMU, no such cgroup...)
        assert oerr.strip(), "session.run refused the program without a word"
        return
    head = 1                            # "Attaching N probes..." (and BEGIN's line)
    th, td = split(tout, head)
    oh, od = split(oout, head)
    assert oh == th, "header lines differ"
    ts, os_ = shapes(td, keep), shapes(od, keep)
    if data:
        assert ts, f"bpftrace printed no data lines: {tout[-1500:]}"
        assert os_, f"session.run printed no data lines: {oout[-1500:]}"
    if ts and os_:
        assert os_ == ts, "column structure differs"
