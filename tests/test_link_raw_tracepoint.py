"""Raw tracepoints: count hits, unknown names with close matches, 500 cycles."""

from __future__ import annotations

import os

import pytest

from pybpf.link.raw_tracepoint import attach_raw_tracepoint
from pybpf.syscall.bpf import ProgType

from linkutil import NoLeaks, counter_map, counting_program, root_reason

pytestmark = pytest.mark.skipif(bool(root_reason()), reason=root_reason())


@pytest.fixture(scope="module")
def prog_and_counts():
    counts = counter_map()
    prog = counting_program(ProgType.RAW_TRACEPOINT, counts, tgid=os.getpid(),
                            name="rawtp_count")
    yield prog, counts
    prog.close()
    counts.close()


def test_counts_syscalls(prog_and_counts):
    prog, counts = prog_and_counts
    counts[0] = 0
    with attach_raw_tracepoint(prog, "sys_enter") as link:
        assert link.is_bpf_link and link.info().type.name == "RAW_TRACEPOINT"
        for _ in range(100):
            os.getppid()
    hits = counts[0]
    assert hits >= 100
    os.getppid()
    assert counts[0] == hits


def test_unknown_name(prog_and_counts):
    prog, _ = prog_and_counts
    with pytest.raises(LookupError, match="sched_switch"):
        attach_raw_tracepoint(prog, "sched_swich")
    with pytest.raises(ValueError):
        attach_raw_tracepoint(prog, "sys_enter\n")


def test_500_cycles_leave_nothing(prog_and_counts):
    prog, _ = prog_and_counts
    with NoLeaks():
        for _ in range(500):
            attach_raw_tracepoint(prog, "sched:sched_switch").close()
