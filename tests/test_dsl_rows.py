"""Rows: ``mod.on(name, fn, rows=...)`` hands a tool plain tuples decoded a batch at a
time. A program run with BPF_PROG_TEST_RUN sends known records through a ring buffer
and a perf event array; the rows are checked against the values the program wrote and
against the per-record decoder (``Struct.from_bytes``) on the same records. The format
builder itself is checked against ``struct`` and the Struct layout.
"""

import struct

import pytest

from bpfenv import needs_bpf
from pybpf.dsl import PerfEventArray, RingBuf, Struct, char, compile_module, i32, u8, u16, u64, xdp
from pybpf.events.records import row_format, span_format


class Rec(Struct):
    a: u8
    b: u64
    name: char[8]
    c: i32
    bytes4: u8[4]
    tail: u16


ring = RingBuf(Rec, size=64 * 1024)
perf = PerfEventArray(Rec)
COUNT = 40


@xdp()
def emit_rows(ctx):
    r = Rec()
    for i in range(COUNT):
        r.a = u8(i)
        r.b = u64(i) * 1000003 + 0x100000000
        r.c = 0 - i
        r.tail = u16(65535 - i)
        r.bytes4[1] = u8(i)
        if i % 2:
            r.name = "longnam"         # 7 bytes and the NUL
        else:
            r.name = "ab"
        ring.output(r)
        perf.output(r)
    return 2


def _expected(i):
    name = b"longnam" if i % 2 else b"ab"
    return i, i * 1000003 + 0x100000000, name, -i, bytes([0, i, 0, 0]), 65535 - i


@needs_bpf
@pytest.mark.parametrize("mapname", ["ring", "perf"])
def test_rows_are_the_fields_in_declaration_order(mapname):
    batches, plain = [], []
    with compile_module([emit_rows]).load(attach=False) as mod:
        mod.on(mapname, batches.append, rows=True)
        mod.programs["emit_rows"].test_run(bytes(64))
        mod.poll(0.5)
    rows = [r for b in batches for r in b]
    assert all(type(b) is list for b in batches)
    assert len(rows) == COUNT
    for i, row in enumerate(rows):
        a, b, name, c, four, tail = row
        assert (a, b, c, four, tail) == (i, i * 1000003 + 0x100000000, -i,
                                         bytes([0, i, 0, 0]), 65535 - i)
        assert len(name) == 8 and name.partition(b"\0")[0] == _expected(i)[2]
    # the same records through the per-record decoder
    with compile_module([emit_rows]).load(attach=False) as mod:
        mod.on(mapname, plain.append)
        mod.programs["emit_rows"].test_run(bytes(64))
        mod.poll(0.5)
    assert [(e.a, e.b, e.name, e.c, bytes(e.bytes4), e.tail) for e in plain] == \
        [(a, b, n.partition(b"\0")[0].decode(), c, f, t) for a, b, n, c, f, t in rows]


@needs_bpf
@pytest.mark.parametrize("mapname", ["ring", "perf"])
def test_records_sent_before_on_are_received(mapname):
    """A program that runs between load and on() (a tool's attached tracepoint firing
    before the tool names its callback) loses nothing: a perf event array has its
    buffers from the load on (before, its output found no perf event and the records
    vanished uncounted), a ring buffer keeps its records until read."""
    rows = []
    with compile_module([emit_rows]).load(attach=False) as mod:
        mod.programs["emit_rows"].test_run(bytes(64))          # before any reader
        mod.on(mapname, rows.extend, rows=("a",))
        mod.poll(0.5)
        assert mod.lost(mapname) == 0
    assert [r[0] for r in rows] == list(range(COUNT))


@needs_bpf
def test_rows_with_chosen_fields_and_a_group():
    batches = []
    with compile_module([emit_rows]).load(attach=False) as mod:
        mod.on("ring", batches.extend, rows=(("b", "name"), "c", "tail"))
        mod.programs["emit_rows"].test_run(bytes(64))
        mod.poll(0.5)
    assert len(batches) == COUNT
    unpack_group = struct.Struct(Rec.span_format(("b", "name"))).unpack
    for i, (group, c, tail) in enumerate(batches):
        assert len(group) == 16                               # b (8) + name (8)
        b, name = unpack_group(group)
        exp = _expected(i)
        assert (b, name.partition(b"\0")[0], c, tail) == (exp[1], exp[2], exp[3], exp[5])


def test_row_format_follows_the_struct_layout():
    fields = Rec.row_fields()
    assert [f[0] for f in fields] == ["a", "b", "name", "c", "bytes4", "tail"]
    fmt = Rec.row_format()
    assert struct.calcsize(fmt) == Rec.size()
    raw = Rec(a=7, b=2**63 + 5, name="hi", c=-3, bytes4=[1, 2, 3, 4], tail=9).to_bytes()
    assert struct.unpack(fmt, raw) == (7, 2**63 + 5, b"hi" + bytes(6), -3,
                                       bytes([1, 2, 3, 4]), 9)
    assert struct.unpack(Rec.row_format(["c"]), raw) == (-3,)
    (group,) = struct.unpack(Rec.row_format([("name", "c")]), raw)
    assert struct.unpack(Rec.span_format(["name", "c"]), group) == (b"hi" + bytes(6), -3)


def test_row_format_refuses_what_it_cannot_give():
    fields = Rec.row_fields()
    with pytest.raises(KeyError, match="no field 'nope'"):
        row_format(fields, Rec.size(), ["nope"])
    with pytest.raises(ValueError, match="declaration order"):
        row_format(fields, Rec.size(), ["c", "a"])
    with pytest.raises(ValueError, match="not adjacent"):
        row_format(fields, Rec.size(), [("a", "c")])
    with pytest.raises(ValueError, match="declaration order"):
        row_format(fields, Rec.size(), [("a", "b"), "b"])
    with pytest.raises(KeyError):
        span_format(fields, ["a", "zz"])
