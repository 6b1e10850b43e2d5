"""Tracepoints: attach by name, count hits of a workload the test runs, both attach
paths (bpf_link and PERF_EVENT_IOC_SET_BPF), unknown names, 500 attach/detach cycles."""

from __future__ import annotations

import os

import pytest

from pybpf.link.base import Link
from pybpf.link.tracepoint import attach_tracepoint, tracepoint_format
from pybpf.syscall.bpf import ProgType

from linkutil import NoLeaks, counter_map, counting_program, root_reason

pytestmark = pytest.mark.skipif(bool(root_reason()), reason=root_reason())


@pytest.fixture(scope="module")
def prog_and_counts():
    counts = counter_map()
    prog = counting_program(ProgType.TRACEPOINT, counts, tgid=os.getpid(), name="tp_count")
    yield prog, counts
    prog.close()
    counts.close()


@pytest.mark.parametrize("use_link", [True, False], ids=["bpf_link", "ioctl"])
def test_counts_syscalls_of_this_process(prog_and_counts, use_link):
    prog, counts = prog_and_counts
    counts[0] = 0
    with attach_tracepoint(prog, "syscalls:sys_enter_getppid", use_link=use_link) as link:
        assert isinstance(link, Link)
        assert link.details["via"] == ("bpf_link" if use_link else "ioctl")
        for _ in range(200):
            os.getppid()
    assert counts[0] == 200
    for _ in range(10):
        os.getppid()                      # detached: no more hits
    assert counts[0] == 200


def test_group_and_name_separately(prog_and_counts):
    prog, counts = prog_and_counts
    counts[0] = 0
    link = attach_tracepoint(prog, "syscalls", "sys_enter_getppid")
    os.getppid()
    link.detach()
    assert counts[0] == 1 and link.closed


def test_unknown_tracepoint_lists_close_matches(prog_and_counts):
    prog, _ = prog_and_counts
    with NoLeaks():
        with pytest.raises(LookupError, match="sys_enter_getppid"):
            attach_tracepoint(prog, "syscalls:sys_enter_getpid_")
        with pytest.raises(ValueError):
            attach_tracepoint(prog, "syscalls:sys_enter getppid")
        with pytest.raises(ValueError):
            attach_tracepoint(prog, "../../syscalls:x")


def test_format_gives_field_offsets():
    fmt = tracepoint_format("syscalls:sys_enter_openat")
    assert fmt.args.filename.kind == "pointer" and fmt.args.filename.size == 8
    assert fmt.offset_of("flags") > fmt.offset_of("filename")
    exec_fmt = tracepoint_format("sched:sched_process_exec")
    assert exec_fmt.args.filename.kind == "data_loc" and exec_fmt.args.filename.is_string


def test_cycles_leave_nothing(prog_and_counts):
    """200 attach/hit/detach cycles (not 500), alternating the two attach paths: each
    detach of a BPF program from a tracepoint event waits for an RCU grace period in
    the kernel (40-80 ms here, measured), so 500 cycles take 20-40 s."""
    prog, counts = prog_and_counts
    counts[0] = 0
    with NoLeaks():
        for i in range(200):
            link = attach_tracepoint(prog, "syscalls:sys_enter_getppid",
                                     use_link=bool(i % 2))
            os.getppid()
            link.close()
    assert counts[0] == 200
