"""pybpf.events.perfbuf against the running kernel: a raw tracepoint program on
sys_enter, filtered to this thread's getpid() calls, sends ``(seq, pid_tgid, k)``
records with ``bpf_perf_event_output``; the reader must receive each once, or count
the ones the kernel dropped (``PERF_RECORD_LOST``) exactly."""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import warnings

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from _event_progs import (  # noqa: E402
    NR_GETPPID, RECORD, Attached, Event, counters_map, fds, fmt_of, lost, program, trigger,
    usable,
)
from pybpf.events import Poller  # noqa: E402
from pybpf.events.perfbuf import PerfBufReader, online_cpus  # noqa: E402
from pybpf.maps import PerfEventArray  # noqa: E402

_WHY = usable()
pytestmark = pytest.mark.skipif(bool(_WHY), reason=_WHY)


@pytest.fixture
def counters():
    m = counters_map()
    yield m
    m.close()


@pytest.fixture
def perf_map():
    m = PerfEventArray()
    yield m
    m.close()


@pytest.mark.parametrize("policy", ["adaptive", "per_event"])
def test_every_event_arrives_once(counters, perf_map, policy) -> None:
    n_calls, per_hit = 500, 8                  # 160 KB: fits in 256 KB per CPU
    got: list = []
    with Attached(program("perf", perf_map, counters, per_hit=per_hit)), \
            PerfBufReader(perf_map, batch_callback=got.extend, record=RECORD,
                          wakeup=policy) as reader:
        assert reader.cpus == online_cpus()
        trigger(n_calls)
        for _ in range(100):
            if len(got) >= n_calls * per_hit:
                break
            reader.poll(0.05)
    assert sorted(r[0] for r in got) == list(range(n_calls * per_hit))
    assert reader.lost == 0 and lost(counters) == 0


def test_ctypes_records_and_callback(counters, perf_map) -> None:
    seen: list = []
    with Attached(program("perf", perf_map, counters, per_hit=2)), \
            PerfBufReader(perf_map, seen.append, record=Event, wakeup="per_event") as r:
        trigger(50)
        while len(seen) < 100:
            assert r.poll(2.0) > 0
    assert sorted(e.seq for e in seen) == list(range(100))
    assert all(isinstance(e, Event) for e in seen)


def test_lost_records_are_counted_exactly(counters, perf_map) -> None:
    n = 1000                                   # 40 KB of samples for 4 KB per CPU
    calls: list = []
    with Attached(program("perf", perf_map, counters)), \
            PerfBufReader(perf_map, record=RECORD, pages=1,
                          lost_callback=lambda cpu, k: calls.append((cpu, k))) as reader:
        trigger(n)
        got = reader.read(0)
        trigger(1)                             # the lost record is written once there is room
        got += reader.read(1.0)
        got += reader.read(0)
    assert reader.lost > 0
    assert len(got) + reader.lost == n + 1
    assert sum(k for _, k in calls) == reader.lost == sum(reader.lost_by_cpu.values())
    assert lost(counters) == reader.lost       # the helper failed for exactly those


@pytest.mark.parametrize("size", [24, 48])
def test_wrap_around_one_page(counters, perf_map, size) -> None:
    # 24-byte samples are 40-byte records: 4096 is no multiple of 40, records wrap
    got: list = []
    with Attached(program("perf", perf_map, counters, size=size)), \
            PerfBufReader(perf_map, batch_callback=got.extend, record=fmt_of(size),
                          pages=1) as reader:
        for _ in range(40):
            trigger(30)
            reader.consume()
    assert sorted(r[0] for r in got) == list(range(1200))
    assert reader.lost == 0


def test_wrap_around_raw_bytes(counters, perf_map) -> None:
    got: list = []
    with Attached(program("perf", perf_map, counters)), \
            PerfBufReader(perf_map, got.append, pages=1) as reader:
        for _ in range(30):
            trigger(37)
            reader.consume()
    assert len(got) == 30 * 37
    assert {len(b) for b in got} == {28}       # the kernel pads raw samples to 8 bytes
    assert sorted(int.from_bytes(b[:8], "little") for b in got) == list(range(30 * 37))


def test_asyncio_consumer_via_fileno(counters, perf_map) -> None:
    n = 400
    got: list = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def ready() -> None:
            reader.consume()
            if len(got) >= n and not done.done():
                done.set_result(None)

        loop.add_reader(reader.fileno(), ready)
        try:
            for _ in range(n // 40):
                trigger(40, os.getppid)
                await asyncio.sleep(0.001)
            await asyncio.wait_for(done, 10)
        finally:
            loop.remove_reader(reader.fileno())

    with Attached(program("perf", perf_map, counters, nr=NR_GETPPID)), \
            PerfBufReader(perf_map, batch_callback=got.extend, record=RECORD,
                          wakeup="per_event") as reader:
        asyncio.run(main())
    assert sorted(r[0] for r in got) == list(range(n))


def test_in_a_poller_with_a_ring_buffer(counters, perf_map) -> None:
    from pybpf.events import RingBufReader
    from pybpf.maps import RingBuf
    c2 = counters_map()
    a: list = []
    b: list = []
    try:
        with RingBuf(size=1 << 16) as rb, \
                Attached(program("perf", perf_map, counters)), \
                Attached(program("ringbuf", rb, c2)), \
                PerfBufReader(perf_map, batch_callback=a.extend, record=RECORD) as pr, \
                RingBufReader(rb, batch_callback=b.extend, record=RECORD) as rr, \
                Poller([pr, rr]) as poller:
            trigger(200)
            for _ in range(100):
                if len(a) == len(b) == 200:
                    break
                poller.poll(0.05)
    finally:
        c2.close()
    assert sorted(r[0] for r in a) == list(range(200))
    assert [r[0] for r in b] == list(range(200))


def test_close_releases_events_and_slots(counters, perf_map) -> None:
    before = fds()
    reader = PerfBufReader(perf_map, pages=2)
    assert len(fds()) >= len(before) + len(online_cpus())
    reader.fileno()                              # the reader's epoll
    reader.close()
    assert fds() == before
    # the slots were emptied: the program's output now fails (counted as drops)
    with Attached(program("perf", perf_map, counters)):
        trigger(5)
    assert lost(counters) == 5
    reader = PerfBufReader(perf_map)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del reader
        gc.collect()
    assert any(issubclass(w.category, ResourceWarning) for w in caught)
    assert fds() == before


def test_bad_arguments(perf_map) -> None:
    before = fds()
    with pytest.raises(ValueError):
        PerfBufReader(perf_map, pages=3)
    with pytest.raises(Exception):
        PerfBufReader(perf_map, cpus=[9999])
    assert fds() == before
