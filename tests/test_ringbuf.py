"""pybpf.events.ringbuf (and the poller and records) against the running kernel.

A raw tracepoint program on sys_enter, filtered to this thread's getpid() calls, emits
records ``(seq, pid_tgid, k)`` into a ring buffer; the tests check that the reader
receives exactly what was sent (or that the program counted the rest as lost), through
wrap-around, discards, zero-copy decoding, several rings in one poller, and asyncio.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import os
import struct
import sys
import threading
import warnings

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from _event_progs import (  # noqa: E402
    NR_GETPPID, RECORD, Attached, Event, counters_map, fds, fmt_of, lost, program, trigger, usable,
)
from pybpf.events import Poller, RingBufReader  # noqa: E402
from pybpf.events.records import make_decoder, struct_format_of, unpack_records  # noqa: E402
from pybpf.maps import RingBuf  # noqa: E402

_WHY = usable()
kernel = pytest.mark.skipif(bool(_WHY), reason=_WHY)


@pytest.fixture
def counters():
    m = counters_map()
    yield m
    m.close()


def _drain(reader: RingBufReader, want: int, sink: list, rounds: int = 200) -> None:
    for _ in range(rounds):
        if len(sink) >= want:
            return
        sink.extend(reader.read(0.05))


# -- exact delivery ------------------------------------------------------------------------

@kernel
@pytest.mark.parametrize("policy", ["adaptive", "per_event", "none"])
def test_every_event_arrives_once(counters, policy) -> None:
    n_calls, per_hit = 2500, 8
    with RingBuf(size=1 << 20) as rb, \
            Attached(program("ringbuf", rb, counters, per_hit=per_hit, wakeup=policy)), \
            RingBufReader(rb, record=RECORD, wakeup=policy) as reader:
        trigger(n_calls)
        got: list = []
        _drain(reader, n_calls * per_hit, got)
    n = n_calls * per_hit
    assert [r[0] for r in got] == list(range(n))
    assert {r[1] & 0xFFFFFFFF for r in got} == {threading.get_native_id()}
    assert [r[2] for r in got[:per_hit]] == list(range(per_hit))
    assert lost(counters) == 0
    assert reader.received == n


@kernel
def test_callback_and_ctypes_records(counters) -> None:
    seen: list = []
    with RingBuf(size=1 << 16) as rb, \
            Attached(program("ringbuf", rb, counters, per_hit=2, wakeup="per_event")), \
            RingBufReader(rb, seen.append, record=Event, wakeup="per_event") as reader:
        trigger(100)
        while len(seen) < 200:
            assert reader.poll(2.0) > 0
    assert all(isinstance(e, Event) for e in seen)
    assert [e.seq for e in seen] == list(range(200))
    assert [e.k for e in seen[:4]] == [0, 1, 0, 1]


@kernel
def test_full_ring_counts_the_lost_exactly(counters) -> None:
    n = 1000                                     # 32 KB of records for a 4 KB ring
    with RingBuf(size=4096) as rb, \
            Attached(program("ringbuf", rb, counters)), \
            RingBufReader(rb, record=RECORD, drops=(counters, 1)) as reader:
        trigger(n)
        got = reader.read(0)
        assert reader.read(0) == []
        assert reader.lost == lost(counters)
    assert 0 < len(got) < n
    assert len(got) + lost(counters) == n
    assert [r[0] for r in got] == list(range(len(got)))   # the first ones fit, in order


@kernel
@pytest.mark.parametrize("size", [24, 40])
def test_wrap_around_small_ring(counters, size) -> None:
    # 4 KB ring; 40-byte records are 48 bytes with their header: one straddles the end
    # of the data area on every lap (the double mapping makes it contiguous)
    fmt = fmt_of(size)
    got: list = []
    with RingBuf(size=4096) as rb, \
            Attached(program("ringbuf", rb, counters, size=size)), \
            RingBufReader(rb, record=fmt, wakeup="per_event") as reader:
        for _ in range(40):
            trigger(50)
            got += reader.read(0)
        assert reader.consumer_pos == reader.producer_pos
        assert reader.consumer_pos > 10 * 4096
    assert [r[0] for r in got] == list(range(2000))
    assert lost(counters) == 0


@kernel
def test_wrap_around_generic_walk(counters) -> None:
    # raw bytes are sliced from one copy of the span; a wrapping record is still whole
    got: list = []
    with RingBuf(size=4096) as rb, \
            Attached(program("ringbuf", rb, counters, size=40)), \
            RingBufReader(rb, got.append) as reader:
        for _ in range(30):
            trigger(37)
            reader.consume()
    assert len(got) == 30 * 37
    assert all(len(b) == 40 for b in got)
    assert [struct.unpack_from("=Q", b)[0] for b in got] == list(range(30 * 37))


@kernel
@pytest.mark.parametrize("record", [RECORD, None])
def test_discarded_records_are_skipped(counters, record) -> None:
    got: list = []
    with RingBuf(size=1 << 16) as rb, \
            Attached(program("reserve", rb, counters, per_hit=3, discard_odd=True)), \
            RingBufReader(rb, batch_callback=got.extend, record=record) as reader:
        for _ in range(20):
            trigger(25)
            reader.consume()
        assert reader.consumer_pos == reader.producer_pos
    seqs = [r[0] if record else struct.unpack_from("=Q", r)[0] for r in got]
    assert seqs == list(range(0, 20 * 25 * 3, 2))


@kernel
def test_zero_copy_views_and_structures(counters) -> None:
    seqs: list = []
    kinds: set = set()

    def on_view(view) -> None:
        kinds.add(type(view).__name__)
        assert view.readonly
        seqs.append(struct.unpack_from("=Q", view)[0])

    with RingBuf(size=1 << 14) as rb, Attached(program("ringbuf", rb, counters)):
        with RingBufReader(rb, on_view, zero_copy=True) as reader:
            trigger(10)
            reader.consume()
            maps = reader.mappings
        assert seqs == list(range(10)) and kinds == {"memoryview"}
        gc.collect()
        assert all(m.unmapped for m in maps)
        events: list = []
        with RingBufReader(rb, lambda e: events.append((e.seq, e.k)), record=Event,
                           zero_copy=True) as reader:
            trigger(5)
            reader.consume()
    assert events == [(s, 0) for s in range(10, 15)]


@kernel
def test_views_outlive_close_safely(counters) -> None:
    kept: list = []
    with RingBuf(size=1 << 14) as rb, Attached(program("ringbuf", rb, counters)):
        reader = RingBufReader(rb, kept.append, zero_copy=True)
        trigger(3)
        reader.consume()
        maps = reader.mappings
        reader.close()
    assert not maps[1].unmapped                      # a view is still alive
    assert struct.unpack_from("=Q", kept[0])[0] == 0  # and still readable
    kept.clear()
    gc.collect()
    assert all(m.unmapped for m in maps)


@kernel
def test_callback_error_keeps_the_rest(counters) -> None:
    got: list = []

    def cb(rec) -> None:
        if rec[0] == 3 and not got.count("boom"):
            got.append("boom")
            raise RuntimeError("boom")
        got.append(rec[0])

    with RingBuf(size=1 << 14) as rb, Attached(program("ringbuf", rb, counters)), \
            RingBufReader(rb, cb, record=RECORD) as reader:
        trigger(8)
        with pytest.raises(RuntimeError):
            reader.consume()
        reader.consume()
    assert got == [0, 1, 2, "boom", 4, 5, 6, 7]


# -- waiting -----------------------------------------------------------------------------

@kernel
def test_poller_over_two_rings() -> None:
    c1, c2 = counters_map(), counters_map()
    got1: list = []
    got2: list = []
    try:
        with RingBuf(size=1 << 16) as r1, RingBuf(size=1 << 16) as r2, \
                Attached(program("ringbuf", r1, c1, wakeup="per_event")), \
                Attached(program("ringbuf", r2, c2, per_hit=2)), \
                RingBufReader(r1, batch_callback=got1.extend, record=RECORD,
                              wakeup="per_event") as a, \
                RingBufReader(r2, batch_callback=got2.extend, record=RECORD) as b:
            with Poller([a, b]) as poller:
                assert poller.poll(0) == 0
                trigger(300)
                for _ in range(100):
                    if len(got1) == 300 and len(got2) == 600:
                        break
                    poller.poll(0.1)
                assert isinstance(poller.fileno(), int)
            assert not a.closed and not b.closed
    finally:
        c1.close()
        c2.close()
    assert [r[0] for r in got1] == list(range(300))
    assert [r[0] for r in got2] == list(range(600))


@kernel
def test_poll_times_out_and_read_iter(counters) -> None:
    with RingBuf(size=1 << 14) as rb, Attached(program("ringbuf", rb, counters)), \
            RingBufReader(rb, record=RECORD) as reader:
        assert reader.poll(0.02) == 0
        assert reader.read(0.02) == []
        trigger(3)
        it = iter(reader)
        assert [next(it)[0] for _ in range(3)] == [0, 1, 2]


@kernel
def test_asyncio_consumer_via_fileno(counters) -> None:
    n = 500
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
            for _ in range(n // 50):
                trigger(50, os.getppid)    # asyncio itself calls getpid()
                await asyncio.sleep(0.001)
            await asyncio.wait_for(done, 10)
        finally:
            loop.remove_reader(reader.fileno())

    with RingBuf(size=1 << 16) as rb, \
            Attached(program("ringbuf", rb, counters, wakeup="per_event", nr=NR_GETPPID)), \
            RingBufReader(rb, batch_callback=got.extend, record=RECORD,
                          wakeup="per_event") as reader:
        asyncio.run(main())
    assert [r[0] for r in got] == list(range(n))


# -- resources ---------------------------------------------------------------------------

@kernel
def test_descriptors_and_mappings_released(counters) -> None:
    with RingBuf(size=1 << 14) as rb:
        before = fds()
        reader = RingBufReader(rb)
        assert fds() != before
        reader.poll(0)                       # creates its epoll too
        maps = reader.mappings
        reader.close()
        reader.close()
        assert fds() == before
        assert all(m.unmapped for m in maps)
        with pytest.raises(ValueError):
            reader.consume()
        reader = RingBufReader(rb)
        maps = reader.mappings
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            del reader
            gc.collect()
        assert any(issubclass(w.category, ResourceWarning) for w in caught)
        assert fds() == before
        assert all(m.unmapped for m in maps)


@kernel
def test_reader_outlives_the_map_object(counters) -> None:
    rb = RingBuf(size=1 << 14)
    with Attached(program("ringbuf", rb, counters)):
        reader = RingBufReader(rb, record=RECORD)
        rb.close()
        trigger(4)
        assert [r[0] for r in reader.read(0)] == [0, 1, 2, 3]
        reader.close()


@kernel
def test_not_a_ring_buffer() -> None:
    from pybpf.maps import ArrayMap
    before = fds()
    with ArrayMap(value=8, max_entries=3) as m:
        with pytest.raises((ValueError, OSError)):
            RingBufReader(m)
    assert fds() == before


# -- records (no kernel) -------------------------------------------------------------------

def test_struct_format_of_ctypes() -> None:
    class Rec(ctypes.Structure):
        _fields_ = [("a", ctypes.c_uint8), ("b", ctypes.c_uint32), ("name", ctypes.c_char * 5),
                    ("v", ctypes.c_int16 * 2), ("d", ctypes.c_double)]

    fmt = struct_format_of(Rec)
    assert struct.calcsize(fmt) == ctypes.sizeof(Rec)
    r = Rec(7, 99, b"abc", (ctypes.c_int16 * 2)(-1, 2), 1.5)
    assert struct.unpack(fmt, bytes(r)) == (7, 99, b"abc\0\0", -1, 2, 1.5)


def test_unpack_records_with_headers() -> None:
    raw = b"".join(struct.pack("=II", 8, 0) + struct.pack("=Ii", i, -i) for i in range(5))
    assert unpack_records("=Ii", raw, stride=16, skip=8) == [(i, -i) for i in range(5)]
    dec = make_decoder("=Ii")
    assert dec.bulk(memoryview(raw), 16, 8) == [(i, -i) for i in range(5)]
    assert make_decoder(None).bulk(memoryview(raw), 16, 8, 8)[1] == struct.pack("=Ii", 1, -1)
    with pytest.raises(TypeError):
        make_decoder(3.5)     # type: ignore[arg-type]
