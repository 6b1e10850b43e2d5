"""Perf events: cpu-clock sampling at 49 Hz on every CPU (like BCC's profile), a
per-task sampling event, hardware counters (or a clean NotSupportedError without a
PMU), a counter array read by a program, attach/detach cycles."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from pybpf.asm import R0, R1, R2, R3, R4, R7, R10
from pybpf.asm.builder import (
    DW, W, Label, add, atomic_add, build, call, exit_, jeq, jne, ld_map_fd, lddw, ldx, mov,
    stx,
)
from pybpf.link.perf_event import (
    BPF_F_CURRENT_CPU, CounterArray, attach_perf_event, online_cpus,
)
from pybpf.link.tracepoint import attach_tracepoint
from pybpf.program import ProgramSpec
from pybpf.syscall import perf
from pybpf.syscall.bpf import ProgType
from pybpf.syscall.errors import NotSupportedError

from linkutil import NoLeaks, counter_map, counting_program, root_reason

pytestmark = pytest.mark.skipif(bool(root_reason()), reason=root_reason())


def _per_cpu_counter(counts):
    """counts[smp_processor_id()] += 1"""
    return ProgramSpec(ProgType.PERF_EVENT, build([
        call("get_smp_processor_id"), stx(W, R10, -4, R0),
        mov(R2, R10), add(R2, -4), ld_map_fd(R1, counts), call("map_lookup_elem"),
        jeq(R0, 0, "out"), mov(R1, 1), atomic_add(DW, R0, 0, R1),
        Label("out"), mov(R0, 0), exit_(),
    ]), name="profile").load()


def _busy_on_every_cpu(cpus, seconds: float) -> None:
    code = ("import os, sys, time; os.sched_setaffinity(0, {int(sys.argv[1])}); "
            f"end = time.monotonic() + {seconds}\nwhile time.monotonic() < end: pass")
    workers = [subprocess.Popen([sys.executable, "-c", code, str(c)]) for c in cpus]
    for w in workers:
        w.wait()


def test_profile_49hz_on_every_cpu():
    cpus = online_cpus()
    counts = counter_map(max(cpus) + 1)
    with _per_cpu_counter(counts) as prog:
        with NoLeaks():
            with attach_perf_event(prog, sample_freq=49) as link:
                assert len(link) == len(cpus)
                _busy_on_every_cpu(cpus, 1.0)
    per_cpu = [counts[c] for c in cpus]
    # about 49 per CPU per second (an idle CPU may skip ticks, so every CPU is kept busy)
    assert all(n >= 20 for n in per_cpu), per_cpu
    assert sum(per_cpu) <= 49 * len(cpus) * 3, per_cpu
    counts.close()


def test_task_clock_for_one_process():
    counts = counter_map()
    prog = counting_program(ProgType.PERF_EVENT, counts, name="taskclk")
    with prog:
        with attach_perf_event(prog, type=perf.PerfType.SOFTWARE,
                               config=perf.SwId.TASK_CLOCK, sample_period=1_000_000,
                               pid=os.getpid()):
            end = time.monotonic() + 0.2
            while time.monotonic() < end:       # burn ~200 ms of this task's CPU
                pass
    assert 50 <= counts[0] <= 1000, counts[0]   # one sample per ms of CPU time
    counts.close()


def test_hardware_counters_or_clean_not_supported():
    counts = counter_map()
    prog = counting_program(ProgType.PERF_EVENT, counts, name="hw")
    with prog, NoLeaks():
        try:
            link = attach_perf_event(prog, type=perf.PerfType.HARDWARE,
                                     config=perf.HwId.CPU_CYCLES, sample_period=100_000)
        except NotSupportedError as exc:
            assert "hardware" in str(exc)
        else:
            with link:
                sum(range(2_000_000))
            assert counts[0] > 0
    counts.close()


def test_counter_array_read_by_a_program():
    """A tracepoint program reads this CPU's task-clock counter from a
    PERF_EVENT_ARRAY with bpf_perf_event_read_value and stores it."""
    counts = counter_map()
    with CounterArray(perf.PerfType.SOFTWARE, perf.SwId.CPU_CLOCK) as counters:
        insns = build([
            ld_map_fd(R1, counters.map), lddw(R2, BPF_F_CURRENT_CPU),
            mov(R3, R10), add(R3, -24), mov(R4, 24),
            call("perf_event_read_value"), jne(R0, 0, "out"),
            ldx(DW, R7, R10, -24),
            mov(R1, 0), stx(W, R10, -28, R1), mov(R2, R10), add(R2, -28),
            ld_map_fd(R1, counts), call("map_lookup_elem"), jeq(R0, 0, "out"),
            stx(DW, R0, 0, R7),
            Label("out"), mov(R0, 0), exit_(),
        ])
        with ProgramSpec(ProgType.TRACEPOINT, insns, name="readctr").load() as prog:
            with attach_tracepoint(prog, "syscalls:sys_enter_getppid"):
                os.getppid()
        assert counts[0] > 0
        assert counters.read(online_cpus()[0]) > 0
    counts.close()
    try:
        CounterArray().close()                 # hardware cycles: a PMU or a clean error
    except NotSupportedError as exc:
        assert "hardware" in str(exc)


def test_cycles_leave_nothing():
    """500 cycles of one per-CPU event set with its program attached and detached."""
    counts = counter_map()
    prog = counting_program(ProgType.PERF_EVENT, counts, name="cycles")
    with prog, NoLeaks():
        for i in range(500):
            attach_perf_event(prog, sample_period=10_000_000, use_link=bool(i % 2)).close()
    counts.close()
