"""pybpf.events.wakeup: the program-side wake-up building blocks, checked in the kernel.

The flags the adaptive block computes are read back from a map after a test run; the
wake-ups themselves are observed with an epoll instance registered on the ring buffer
while it was empty (epoll reports it only when a producer wakes it). To count wake-ups
one by one, the epoll instance is edge-triggered and asked after every record: it is
ready once per wake-up of the ring's wait queue since the previous question (the
kernel's ``irq_work`` runs before the test run returns to user space).
"""

from __future__ import annotations

import os
import select
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from _event_progs import (  # noqa: E402
    RECORD, Attached, count_wakeups, counters_map, program, trigger, usable,
)
from pybpf.asm import R0, R1, R2, R3, R4, R6, R9, R10
from pybpf.asm.builder import (
    DW, Label, add, build, call, exit_, jlt, jne, ld_map_fd, ld_map_value, mov, st, stx,
)
from pybpf.events import RingBufReader
from pybpf.events import wakeup as wk
from pybpf.maps import ArrayMap, RingBuf
from pybpf.program import ProgramSpec
from pybpf.syscall.bpf import ProgType

_WHY = usable()
kernel = pytest.mark.skipif(bool(_WHY), reason=_WHY)

RING = 16384              # threshold at a quarter: 4096 bytes, 128 records of 32 bytes


@pytest.fixture
def counters():
    m = counters_map()
    yield m
    m.close()


def _flags_now(rb: RingBuf, policy: str, reserved: bool = False) -> int:
    """Run the wakeup_flags block for a 24-byte record once (raw tracepoint test run);
    return its result."""
    with ArrayMap(value=8, max_entries=1) as out:
        code = build(wk.wakeup_flags(R9, rb, policy, record_size=24, reserved=reserved) +
                     [ld_map_value(R1, out, 0), stx(DW, R1, 0, R9), mov(R0, 0), exit_()])
        with ProgramSpec(ProgType.RAW_TRACEPOINT, code, name="wk_flags").load() as prog:
            prog.test_run(ctx=bytes(16))
        return int.from_bytes(out.get(0), "little")


@kernel
def test_adaptive_flags_force_only_at_the_crossing(counters) -> None:
    """Threshold 4096 bytes, records of 32 bytes in the ring: only the record posted at
    4064 bytes (4064 + 32 reaches 4096) forces; below and above, no wake-up."""
    with RingBuf(size=RING) as rb:
        assert _flags_now(rb, "adaptive") == wk.BPF_RB_NO_WAKEUP
        assert _flags_now(rb, "per_event") == 0
        assert _flags_now(rb, "none") == wk.BPF_RB_NO_WAKEUP
        with Attached(program("ringbuf", rb, counters, wakeup="none")):
            trigger(126)                                   # 4032 bytes: far below
            assert _flags_now(rb, "adaptive") == wk.BPF_RB_NO_WAKEUP
            trigger(1)                                     # 4064: the next one crosses
            assert _flags_now(rb, "adaptive") == wk.BPF_RB_FORCE_WAKEUP
            assert _flags_now(rb, "adaptive", reserved=True) == wk.BPF_RB_NO_WAKEUP
            trigger(1)                                     # 4096: at the threshold
            assert _flags_now(rb, "adaptive") == wk.BPF_RB_NO_WAKEUP
            assert _flags_now(rb, "adaptive", reserved=True) == wk.BPF_RB_FORCE_WAKEUP
            trigger(200)                                   # 10496: well above
            assert _flags_now(rb, "adaptive") == wk.BPF_RB_NO_WAKEUP
            assert _flags_now(rb, "adaptive", reserved=True) == wk.BPF_RB_NO_WAKEUP
        with RingBufReader(rb) as reader:
            assert reader.consume() == 328
        assert _flags_now(rb, "adaptive") == wk.BPF_RB_NO_WAKEUP


def _counting_program(rb: RingBuf, counters, *, old: bool = False) -> list:
    """A program that posts one 24-byte record per run with the adaptive policy and adds
    one to u64 0 of ``counters`` when the flags it chose were FORCE. ``old``: the
    previous rule, force whenever the ring is at or above the threshold."""
    code = [st(DW, R10, off, 0) for off in (-24, -16, -8)]
    if old:
        threshold = wk.Wakeup().threshold(RING)
        code += [ld_map_fd(R1, rb), mov(R2, wk.BPF_RB_AVAIL_DATA), call("ringbuf_query"),
                 mov(R9, wk.BPF_RB_NO_WAKEUP), jlt(R0, threshold, 1),
                 mov(R9, wk.BPF_RB_FORCE_WAKEUP),
                 ld_map_fd(R1, rb), mov(R2, R10), add(R2, -24), mov(R3, 24), mov(R4, R9),
                 call("ringbuf_output")]
    else:
        code += wk.ringbuf_output(rb, -24, 24, "adaptive", flags_reg=R9)
    code += [jne(R9, wk.BPF_RB_FORCE_WAKEUP, "out")] + wk.count_drop(counters, 0)
    code += [Label("out"), mov(R0, 0), exit_()]
    return build(code)


def _forced(counters) -> int:
    return int.from_bytes(bytes(counters.get(0))[:8], "little")


def _test_run(prog) -> None:
    prog.test_run(ctx=bytes(16))


@kernel
@pytest.mark.parametrize("old", [False, True], ids=["crossing", "old-rule"])
def test_adaptive_forces_one_wakeup_per_crossing(counters, old) -> None:
    """5 crossings of the threshold, 200 records each (the threshold is reached by the
    128th): the crossing rule forces exactly 5 wake-ups and the reader is woken exactly
    5 times; the old rule forced one per record at or above the threshold (72 per fill)
    and woke the reader far more often than once per crossing."""
    crossings, per_fill = 5, 200
    with RingBuf(size=RING) as rb, RingBufReader(rb, record=RECORD) as reader, \
            ProgramSpec(ProgType.RAW_TRACEPOINT, _counting_program(rb, counters, old=old),
                        name="wk_count").load() as prog:
        wakeups = count_wakeups(lambda: _test_run(prog), reader, crossings, per_fill)
        if old:
            assert _forced(counters) == crossings * (per_fill - 128)
            assert wakeups > crossings, wakeups
        else:
            assert _forced(counters) == crossings
            assert wakeups == crossings


def _epoll_on(reader: RingBufReader) -> select.epoll:
    ep = select.epoll()
    ep.register(reader.fileno(), select.EPOLLIN)
    return ep


@kernel
def test_adaptive_wakes_only_past_the_threshold(counters) -> None:
    with RingBuf(size=RING) as rb, \
            Attached(program("ringbuf", rb, counters, wakeup="adaptive")), \
            RingBufReader(rb, record=RECORD) as reader:
        ep = _epoll_on(reader)
        try:
            trigger(100)                                   # 3200 bytes: quiet
            assert ep.poll(0.1) == []
            trigger(40)                                    # past 4096: forced wake-up
            assert ep.poll(2.0) != []
            assert reader.consume() == 140
            assert ep.poll(0.05) == []
        finally:
            ep.close()


@kernel
def test_per_event_wakes_at_once(counters) -> None:
    with RingBuf(size=RING) as rb, \
            Attached(program("ringbuf", rb, counters, wakeup="per_event")), \
            RingBufReader(rb, wakeup="per_event") as reader:
        assert reader.interval is None
        ep = _epoll_on(reader)
        try:
            trigger(1)
            assert ep.poll(2.0) != []
            assert reader.consume() == 1
        finally:
            ep.close()


@kernel
def test_none_never_wakes_and_the_timed_poll_reads(counters) -> None:
    with RingBuf(size=RING) as rb, \
            Attached(program("ringbuf", rb, counters, wakeup="none")), \
            RingBufReader(rb, record=RECORD, wakeup=wk.Wakeup(wk.WakeupPolicy.NONE,
                                                             interval=0.01)) as reader:
        ep = _epoll_on(reader)
        try:
            trigger(300)                                   # 9600 bytes, over a quarter
            assert ep.poll(0.1) == []
        finally:
            ep.close()
        start = time.monotonic()
        got = reader.read(5.0)                             # the timed poll finds them
        assert len(got) == 300
        assert time.monotonic() - start < 1.0


@kernel
def test_adaptive_reader_bounds_latency(counters) -> None:
    with RingBuf(size=RING) as rb, \
            Attached(program("ringbuf", rb, counters)), \
            RingBufReader(rb, record=RECORD) as reader:
        assert reader.interval == wk.DEFAULT_INTERVAL
        trigger(5)
        start = time.monotonic()
        assert reader.poll(5.0) == 5
        assert time.monotonic() - start < 0.5


@kernel
def test_drop_counter_block(counters) -> None:
    with RingBuf(size=4096) as rb, Attached(program("ringbuf", rb, counters)):
        trigger(200)                                       # 6400 bytes for 4096
        with RingBufReader(rb, drops=(counters, 1)) as reader:
            assert reader.consume() + reader.lost == 200
            assert reader.lost > 0


def test_policy_objects() -> None:
    assert wk.as_wakeup(None).policy is wk.WakeupPolicy.ADAPTIVE
    assert wk.as_wakeup("per_event").reader_interval is None
    assert wk.as_wakeup("none").reader_interval == wk.DEFAULT_INTERVAL
    assert wk.Wakeup(interval=0.1).reader_interval == 0.1
    assert wk.Wakeup(fraction=0.5).threshold(1 << 20) == 1 << 19
    with pytest.raises(ValueError):
        wk.Wakeup(fraction=0)
    with pytest.raises(ValueError):
        wk.Wakeup(interval=-1)
    with pytest.raises(TypeError):
        wk.as_wakeup(3)                 # type: ignore[arg-type]
    assert [str(i) for i in wk.wakeup_flags(R6, None, "per_event")] == \
        [str(mov(R6, 0))]
    with pytest.raises(ValueError):
        wk.wakeup_flags(R1, None, "adaptive", ring_size=4096, record_size=8)  # clobbered
    with pytest.raises(ValueError):
        wk.wakeup_flags(R6, None, "adaptive", record_size=8)      # ring size unknown
    with pytest.raises(ValueError):
        wk.wakeup_flags(R6, None, "adaptive", ring_size=4096)     # record size unknown
    code = wk.wakeup_flags(R6, None, "adaptive", ring_size=1 << 40, record_size=24)
    assert any(ins.opcode == 0x18 and ins.imm == (1 << 38) - 32 for ins in code)  # lddw low
    with pytest.raises(ValueError):
        wk.ringbuf_output(None, -8, 16, "per_event")              # not on the stack


def test_crossing_window_arithmetic() -> None:
    """The window of fill levels (read before posting) at which a record forces."""
    assert wk.record_footprint(24) == 32 and wk.record_footprint(1) == 16
    assert wk.record_footprint(0) == 8 and wk.record_footprint(300) == 312
    assert wk.adaptive_window(16384, 24) == (4064, 4096)
    assert wk.adaptive_window(16384, 24, reserved=True) == (4096, 4128)
    assert wk.adaptive_window(16384, 24, 0.5) == (8160, 8192)
    assert wk.adaptive_window(4096, 2000) == (0, 1024)           # one record crosses
    assert wk.Wakeup(fraction=0.5).window(16384, 24) == (8160, 8192)
    with pytest.raises(ValueError):
        wk.record_footprint(-1)



@kernel
@pytest.mark.parametrize("policy", ["adaptive", "per_event"])
def test_poller_waits_for_wakeups_not_for_data(counters, policy) -> None:
    """A ring buffer's descriptor is readable whenever the ring holds data. A poller over
    an adaptive reader (timed poll) must not wake for that: once it has been woken and
    has consumed, records posted quietly leave it asleep until a forced wake-up or its
    interval (so a storm gathers into large batches instead of a busy loop of tiny
    ones). A per-event reader keeps the level-triggered wait: it has no timed poll."""
    from pybpf.events import Poller
    with RingBuf(size=RING) as rb, \
            Attached(program("ringbuf", rb, counters, wakeup=policy)), \
            RingBufReader(rb, record=RECORD, wakeup=policy) as reader, \
            Poller([reader]) as poller:
        watch = select.epoll()
        watch.register(poller.fileno(), select.EPOLLIN)
        try:
            trigger(140)                       # adaptive: crosses 4096 bytes, one wake-up
            assert watch.poll(2.0) != []
            assert poller.poll(2.0) == 140
            trigger(10)                        # quiet for adaptive; per-event wakes
            readable = watch.poll(0.05) != []
            assert readable == (policy == "per_event"), (policy, readable)
            assert reader.available > 0        # the data is there either way
            assert poller.poll(1.0) == 10      # adaptive: found by the timed poll
        finally:
            watch.close()
