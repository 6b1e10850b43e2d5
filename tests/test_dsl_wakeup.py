"""The wake-up policy in programs compiled by pybpf.dsl: ``events.output()`` and
``with events.reserve()`` force a wake-up only when the ring's fill level crosses the
threshold (pybpf.events.wakeup), counted as real reader wake-ups (an edge-triggered
epoll instance, see tests/_event_progs.count_wakeups). XDP programs run with
BPF_PROG_TEST_RUN post one record per run."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from _event_progs import count_wakeups, usable  # noqa: E402
from pybpf.dsl import RingBuf, Struct, compile_module, u64, xdp  # noqa: E402

_WHY = usable()
RING = 16384              # threshold at a quarter: 4096 bytes, 128 records of 32 bytes


class Triple(Struct):
    a: u64
    b: u64
    c: u64


wake_ring = RingBuf(Triple, size=RING)


@xdp()
def wake_output(ctx):
    t = Triple()
    t.a = 1
    wake_ring.output(t)
    return 2


@xdp()
def wake_reserve(ctx):
    with wake_ring.reserve() as t:
        t.a = 2
    return 2


@pytest.mark.skipif(bool(_WHY), reason=_WHY)
@pytest.mark.parametrize("fn", [wake_output, wake_reserve], ids=["output", "reserve"])
def test_dsl_events_wake_once_per_crossing(fn) -> None:
    """5 crossings (fill with 200 records, the 128th reaches a quarter, then consume
    all): 5 reader wake-ups; the previous rule woke the reader once per record at or
    above the threshold (360 here)."""
    with compile_module([fn]).load(attach=False) as mod:
        got: list = []
        reader = mod.on("wake_ring", got.append)
        prog = mod.programs[fn.__name__]
        assert count_wakeups(lambda: prog.test_run(bytes(64)), reader, 5, 200) == 5
        assert len(got) == 1000 and {e.a for e in got} == {1 if fn is wake_output else 2}
        assert mod.lost("wake_ring") == 0
