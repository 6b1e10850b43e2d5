"""pybpf.events.wakeup: the program-side wake-up building blocks, checked in the kernel.

The flags the adaptive block computes are read back from a map after a test run; the
wake-ups themselves are observed with an epoll instance registered on the ring buffer
while it was empty (epoll reports it only when a producer wakes it).
"""

from __future__ import annotations

import os
import select
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from _event_progs import RECORD, Attached, counters_map, program, trigger, usable  # noqa: E402
from pybpf.asm import R0, R1, R6, R9
from pybpf.asm.builder import DW, build, exit_, ld_map_value, mov, stx
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


def _flags_now(rb: RingBuf, policy: str) -> int:
    """Run the wakeup_flags block once (raw tracepoint test run); return its result."""
    with ArrayMap(value=8, max_entries=1) as out:
        code = build(wk.wakeup_flags(R9, rb, policy) +
                     [ld_map_value(R1, out, 0), stx(DW, R1, 0, R9), mov(R0, 0), exit_()])
        with ProgramSpec(ProgType.RAW_TRACEPOINT, code, name="wk_flags").load() as prog:
            prog.test_run(ctx=bytes(16))
        return int.from_bytes(out.get(0), "little")


@kernel
def test_adaptive_flags_follow_the_fill_level(counters) -> None:
    with RingBuf(size=RING) as rb:
        assert _flags_now(rb, "adaptive") == wk.BPF_RB_NO_WAKEUP
        assert _flags_now(rb, "per_event") == 0
        assert _flags_now(rb, "none") == wk.BPF_RB_NO_WAKEUP
        with Attached(program("ringbuf", rb, counters, wakeup="none")):
            trigger(127)                                   # 4064 bytes: below
            assert _flags_now(rb, "adaptive") == wk.BPF_RB_NO_WAKEUP
            trigger(1)                                     # 4096 bytes: at the threshold
            assert _flags_now(rb, "adaptive") == wk.BPF_RB_FORCE_WAKEUP
        with RingBufReader(rb) as reader:
            assert reader.consume() == 128
        assert _flags_now(rb, "adaptive") == wk.BPF_RB_NO_WAKEUP


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
        wk.wakeup_flags(R1, None, "adaptive", ring_size=4096)     # clobbered by the call
    with pytest.raises(ValueError):
        wk.wakeup_flags(R6, None, "adaptive")                     # size unknown
    code = wk.wakeup_flags(R6, None, "adaptive", ring_size=1 << 40)
    assert any(ins.opcode == 0x18 and ins.imm == 1 << 38 for ins in code)  # lddw threshold
    with pytest.raises(ValueError):
        wk.ringbuf_output(None, -8, 16, "per_event")              # not on the stack
