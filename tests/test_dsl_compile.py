"""pybpf.dsl: each construct compiled, run in the kernel (XDP test_run, the conformance
harness for 64-bit results) and on pybpf.vm; compile errors with their locations; the
disassembly interleaved with the source; ``pybpf compile``."""

from __future__ import annotations

import inspect
import os
import textwrap
from typing import Any, Callable

import pytest

from bpfenv import BPF_UNAVAILABLE, needs_bpf
from pybpf.compiler.types import common_type, literal_type
from pybpf.dsl import (
    CompileError, bpf, compile_function, compile_source, const, cpu, i8, i32, i64,
    ktime_ns, pid, program, tgid, tid, u8, u16, u32, u64,
)
from pybpf.syscall.errors import OutOfRangeError
from pybpf.vm.backend import VMBackend

HERE = os.path.abspath(__file__)
LIMIT = const(u32, 1000)
SCALE = 3


def run_both(fn: Callable[..., Any]) -> int:
    """The 64-bit result of ``fn`` compiled: on the VM, and in the kernel when possible
    (both must agree)."""
    compiled = compile_function(fn)
    got = VMBackend().run(compiled.instructions)
    if not BPF_UNAVAILABLE:
        from pybpf.conformance.kernel import KernelRunner
        assert KernelRunner().run(compiled.instructions) == got
    return got


def as_i64(v: int) -> int:
    return v - (1 << 64) if v >> 63 else v


# -- types ---------------------------------------------------------------------------------
def test_types_wrap_and_conversions() -> None:
    assert u8(300) == 44 and i8(200) == -56 and u64(-1) == 2**64 - 1
    assert common_type(u8, u8) == i32 and common_type(u32, i32) == u32
    assert common_type(u32, i64) == i64 and common_type(u64, i64) == u64
    assert common_type(i8, u16) == i32
    assert literal_type(5) == i32 and literal_type(2**40) == i64 and literal_type(2**63) == u64
    assert const(u8, 255).value == 255 and const(i8, -128).value == -128
    for t, bad in ((u8, 257), (u8, -1), (i8, 128), (u32, 2**32), (i64, 2**63)):
        with pytest.raises(OutOfRangeError, match=rf"const\({t.name}\) default={bad} is "
                                                  rf"out of range: {t.name} {t.min}\.\.{t.max}"):
            const(t, bad)
    with pytest.raises(TypeError):
        const(int, 1)                       # type: ignore[arg-type]


# -- constructs ----------------------------------------------------------------------------
def p_locals(ctx):
    x: u8 = 250
    y = x + 10                  # i32: C promotion
    z: u8 = u8(x + 10)          # an explicit conversion wraps
    return y * 1000 + z


def test_locals_annotated_and_inferred() -> None:
    assert run_both(p_locals) == 260 * 1000 + 4


def p_arith(ctx) -> i64:
    a: i32 = -7
    b: u32 = 7
    c: i64 = -100
    return (a // 2) * 1000000 + (a % 2) * 10000 + (c >> 2) + (b << 3) - (~b & 0xff) + (-a)


def test_arithmetic_c_semantics() -> None:
    want = (-3) * 1000000 + (-1) * 10000 + (-25) + 56 - ((~7 & 0xFFFFFFFF) & 0xff) + 7
    assert as_i64(run_both(p_arith)) == want


def p_compare(ctx):
    a: u32 = 1
    b: i32 = -1
    c: i32 = 5
    r = 0
    if a < b:                   # u32 comparison: -1 becomes 0xffffffff
        r += 1
    if b < c < 10:
        r += 10
    if b < c < 3:
        r += 100
    if not (a == 1 and c == 4) or c > 100:
        r += 1000
    if a == 2 or c == 5:
        r += 10000
    return r + (a < c) + (c != 5) * 7 + (not c)


def test_comparisons_chained_boolean_logic() -> None:
    assert run_both(p_compare) == 11011 + 1


def p_if(ctx):
    x: u32 = 7
    if x > 10:
        return 1
    elif x > 5:
        y = 2
    else:
        y = 3
    return y * 10 + (100 if x == 7 else 200)


def test_if_elif_else_early_return_ifexp() -> None:
    assert run_both(p_if) == 120


def p_loops(ctx):
    total: u64 = 0
    for i in range(5):                      # unrolled
        if i == 3:
            continue
        total += i
    for j in range(100):                    # a bounded loop
        if j == 50:
            break
        if j % 2 == 0:
            continue
        total += j
    for k in range(10, 0, -3):              # 10 7 4 1
        total += k * 1000
    return total


def test_for_range_unrolled_and_bounded() -> None:
    assert run_both(p_loops) == (0 + 1 + 2 + 4) + sum(range(1, 50, 2)) + 22000


def square(v: u32) -> u64:
    return v * v                            # u32 * u32 wraps in 32 bits


def mix(a: u64, b: u8, c: i32) -> u64:
    return a + b - c + square(b)


def p_calls(ctx):
    return mix(square(70000), 3, -4)


def test_bpf_to_bpf_calls() -> None:
    sq = (70000 * 70000) & 0xFFFFFFFF
    assert run_both(p_calls) == sq + 3 + 4 + 9
    compiled = compile_function(p_calls)
    assert [f.name for f in compiled.functions] == ["p_calls", "square", "mix"]


def p_consts(ctx):
    return LIMIT * SCALE + u8(0x1ff) + i8(200)


def test_const_globals_and_conversions() -> None:
    assert run_both(p_consts) == 3000 + 0xff - 56


def p_spill(ctx) -> u64:
    a: u64 = 1
    b: u64 = 2
    c: u64 = 3
    d: u64 = 4
    e: u64 = 5
    f: u64 = 6
    g: u64 = 7
    h: u64 = 8
    i: u64 = 9
    j: u64 = 10
    k: u64 = 11
    m: u64 = square(12)
    return a + b * c + d * e + f * g + h * i + j * k + m + a * k + b * j + c * i


def test_register_spilling() -> None:
    assert run_both(p_spill) == 1 + 6 + 20 + 42 + 72 + 110 + 144 + 11 + 20 + 27
    compiled = compile_function(p_spill)
    assert compiled.functions[0].stack > 0          # some locals live on the stack


def p_helpers(ctx):
    t0 = ktime_ns()
    t1 = ktime_ns()
    ok = 0
    if t1 >= t0:
        ok += 1
    if cpu() < 4096:
        ok += 2
    if pid() == tgid() and tid() > 0:
        ok += 4
    return ok


def p_pid(ctx):
    return pid()


@needs_bpf
def test_helpers_in_the_kernel() -> None:
    with program(p_helpers) as prog:
        assert prog.test_run(bytes(14)).retval == 7
    with program(p_pid, type="xdp") as prog:
        assert prog.test_run(bytes(14)).retval == os.getpid()


def test_every_instruction_has_a_python_line() -> None:
    compiled = compile_function(p_loops)
    lines, start = inspect.getsourcelines(p_loops)
    for ins in compiled.instructions:
        assert ins.source is not None and ins.source.file == HERE
        assert start <= ins.source.line < start + len(lines)
        assert ins.source.text.strip() in "".join(lines)
    assert set(compiled.source_map) == set(range(sum(i.slots for i in compiled.instructions)))


def test_disasm_interleaves_source() -> None:
    text = compile_function(p_calls).disasm()
    assert text.startswith("p_calls:")
    assert "def p_calls(ctx):" in text.splitlines()[0]
    assert "return mix(square(70000), 3, -4)" in text
    assert "square:" in text and "mix:" in text
    assert "call " in text and "exit" in text
    assert any(line.lstrip().startswith("0: ") for line in text.splitlines())


def test_compile_source_and_size() -> None:
    compiled = compile_source("def f(ctx):\n    x: u32 = 1\n    return x + 2\n", "f")
    assert VMBackend().run(compiled.instructions) == 3
    assert len(compiled) <= 6          # r1 = 1; r2 = r1; r2 += 2; w2 = w2; r0 = r2; exit


# -- compile errors -------------------------------------------------------------------------
def _error(src: str) -> CompileError:
    with pytest.raises(CompileError) as info:
        compile_source(textwrap.dedent(src), "f", filename="<err>")
    return info.value


@pytest.mark.parametrize("src, line, col, words", [
    ("def f(ctx):\n    x = 1.5\n    return 0\n", 2, 9, "floating point"),
    ("def f(ctx):\n    while True:\n        pass\n", 2, 5, "while loops"),
    ("def f(ctx):\n    return 'a'\n", 2, 12, "string literal"),
    ("def f(ctx):\n    return nothere\n", 2, 12, "unknown name"),
    ("def f(ctx):\n    y += 1\n    return y\n", 2, 5, "not defined"),
    ("def f(ctx):\n    return 3 / 2\n", 2, 12, "Div"),
    ("def f(ctx):\n    return nofn()\n", 2, 12, "unknown function"),
    ("def f(ctx):\n    n: u32 = 3\n    for i in range(n):\n        pass\n", 3, 20, "constant"),
    ("def f(ctx):\n    for x in [1, 2]:\n        pass\n", 2, 14, "range"),
    ("def f(ctx):\n    try:\n        pass\n    except Exception:\n        pass\n", 2, 5,
     "Try statements"),
    ("def f(ctx):\n    x: float = 1\n", 2, 8, "annotation"),
    ("def g(a):\n    return a\ndef f(ctx):\n    return g(1)\n", 1, 7, "type annotation"),
    ("def f(ctx):\n    return ktime_ns(1)\n", 2, 12, "no arguments"),
    ("def f(ctx):\n    x: u8 = 1\n    x: u16 = 2\n", 3, 5, "already"),
    ("def f(ctx):\n    return ctx\n", 2, 12, "context"),
    ("def f(ctx, other):\n    return 0\n", 1, 1, "one parameter"),
    ("def f(ctx):\n    return u8(1, 2)\n", 2, 12, "one value"),
    # literals that do not fit where they go (C would cut them silently)
    ("def f(ctx):\n    x: u8 = 1000\n    return x\n", 2, 13,
     "1000 does not fit in 'x', a u8 (0..255)"),
    ("def f(ctx):\n    x: u8 = 0\n    x = 256\n    return x\n", 3, 9,
     "256 does not fit in 'x', a u8 (0..255)"),
    ("def f(ctx):\n    x: i8 = -129\n    return x\n", 2, 13, "a i8 (-128..127)"),
    ("def f(ctx):\n    x: u32 = -1\n    return x\n", 2, 14,
     "-1 does not fit in 'x', a u32 (0..4294967295)"),
])
def test_compile_errors_have_locations(src: str, line: int, col: int, words: str) -> None:
    err = _error(src)
    assert words in err.message, err
    assert err.loc is not None and (err.loc.file, err.loc.line, err.loc.column) == \
        ("<err>", line, col), err
    assert str(err).startswith(f"<err>:{line}:{col}: error: ")



# -- maps: setdefault, null facts, atomic updates ------------------------------------------
from pybpf.dsl import Struct  # noqa: E402


# (made with type(): this module's annotations are strings)
MapVal = type("MapVal", (Struct,), {"__annotations__": {"n": u64, "small": u16}})
OtherVal = type("OtherVal", (Struct,), {"__annotations__": {"x": u32}})


_MAPS = ("m = HashMap(u32, MapVal)\npc = PerCPUHashMap(u32, MapVal)\n"
         "c64 = HashMap(u32, u64)\nc8 = HashMap(u32, u8)\nring = RingBuf(MapVal)\n")


def _map_error(body: str) -> CompileError:
    with pytest.raises(CompileError) as info:
        compile_source(_MAPS + body, "f", filename="<err>",
                       namespace={"MapVal": MapVal, "OtherVal": OtherVal})
    return info.value


@pytest.mark.parametrize("body, line, col, message", [
    ("def f(ctx):\n    c = m.setdefault(1)\n    c.small += 1\n    return 0\n", 8, 5,
     "c.small is a u16: BPF has atomic updates of 32- and 64-bit values only, and a plain "
     "one on a shared map value loses updates other CPUs make at the same time"),
    ("def f(ctx):\n    c = m.setdefault(1)\n    c.n *= 2\n    return 0\n", 8, 5,
     "'*=' on a shared map value cannot be atomic: an update another CPU makes in between "
     "would be lost"),
    ("def f(ctx):\n    c64[1] <<= 1\n    return 0\n", 7, 5,
     "'<<=' on a shared map value cannot be atomic: an update another CPU makes in between "
     "would be lost"),
    ("def f(ctx):\n    c8[1] += 1\n    return 0\n", 7, 5,
     "c8[1] is a u8: BPF has atomic updates of 32- and 64-bit values only, and a plain "
     "one on a shared map value loses updates other CPUs make at the same time"),
    ("def f(ctx):\n    return c64.get(1)[0]\n", 7, 12, "this map value may be None"),
    # a reassignment in one branch undoes the check made before the if
    ("def f(ctx):\n    c = m.get(1)\n    if c is None:\n        return 0\n"
     "    if cpu():\n        c = m.get(2)\n    return c.n\n", 12, 12, "'c' may be None here"),
    # an insert without the re-check leaves c unchecked
    ("def f(ctx):\n    c = m.get(1)\n    if c is None:\n        m[1] = MapVal()\n"
     "        c = m.get(1)\n    return c.n\n", 11, 12, "'c' may be None here"),
    # a check inside a loop that 'continue' can skip does not hold after it
    ("def f(ctx):\n    c = m.get(1)\n    for i in range(3):\n        if i == 1:\n"
     "            continue\n        if c is None:\n            return 0\n    return c.n\n",
     13, 12, "'c' may be None here"),
    ("def f(ctx):\n    c = m.setdefault()\n    return 0\n", 7, 9,
     "setdefault() takes a key and an optional default value"),
    ("def f(ctx):\n    c = m.setdefault(1, 5)\n    return 0\n", 7, 25,
     "map 'm' stores 'MapVal' values"),
    ("def f(ctx):\n    c = c8.setdefault(1, 300)\n    return 0\n", 7, 26,
     "300 does not fit in a value of map 'c8', a u8 (0..255)"),
    ("def f(ctx):\n    m[1] = OtherVal()\n    return 0\n", 7, 12,
     "map 'm' stores 'MapVal' values"),
    ("def f(ctx):\n    with ring.reserve() as e:\n        c = m.setdefault(1)\n    return 0\n",
     8, 13, "setdefault() inside a 'with ....reserve()' block"),
    # a pointer into a hash map after a store or delete on that map (any key)
    ("def f(ctx):\n    p = c64.get(1)\n    if p is None:\n        return 0\n"
     "    c64[1] = 5\n    return p[0]\n", 11, 12,
     "'p' may point to an element of 'c64' replaced on line 10 "
     "(storing into a hash map replaces the element and frees the old one): it may read a freed or reused element"),
    ("def f(ctx):\n    p = m.setdefault(1)\n    del m[2]\n    p.n = 1\n    return 0\n",
     9, 5, "'p' may point to an element of 'm' replaced on line 8 (a delete frees the "
     "element): it may read a freed or reused element"),
    # stale on one branch is stale after the if
    ("def f(ctx):\n    p = m.setdefault(1)\n    if cpu():\n        m[3] = MapVal()\n"
     "    p.n += 1\n    return 0\n", 10, 5,
     "'p' may point to an element of 'm' replaced on line 9 (storing into a hash map replaces the element and frees the old one): it may read a freed or reused element"),
    # a loop's store reaches the next iteration's read (a loop too long to unroll)
    ("def f(ctx):\n    p = c64.setdefault(1)\n    x: u64 = 0\n    for i in range(100):\n"
     "        x += p[0]\n        c64[i] = 1\n    return x\n", 10, 14,
     "'p' may point to an element of 'c64' replaced on line 11 (storing into a hash map replaces the element and frees the old one): it may read a freed or reused element"),
    # and an unrolled one's, and after a break
    ("def f(ctx):\n    p = c64.setdefault(1)\n    for i in range(3):\n"
     "        if i == 1:\n            del c64[i]\n            break\n    return p[0]\n",
     12, 12, "'p' may point to an element of 'c64' replaced on line 10 (a delete frees "
     "the element): it may read a freed or reused element"),
    # a copy is as stale as the pointer it copies
    ("def f(ctx):\n    p = pc.setdefault(1)\n    pc[2] = MapVal()\n    q = p\n"
     "    if q:\n        return q.n\n    return 0\n", 11, 16,
     "'q' may point to an element of 'pc' replaced on line 8 (storing into a hash map replaces the element and frees the old one): it may read a freed or reused element"),
])
def test_map_idiom_errors(body: str, line: int, col: int, message: str) -> None:
    err = _map_error(body)
    assert err.message == message, err
    assert err.loc is not None and (err.loc.file, err.loc.line, err.loc.column) == \
        ("<err>", line, col), err


_STALE_MAPS = ("c64 = HashMap(u32, u64)\nlru = LRUHashMap(u32, u64)\n"
               "arr = ArrayMap(u64, 4)\n")


@pytest.mark.parametrize("body, line, col, message, hint", [
    # a call of a function that stores into (or deletes from) the map, at any depth
    ("def g(k: u32) -> u32:\n    del c64[k]\n    return 0\n"
     "def h(k: u32) -> u32:\n    return g(k)\n"
     "def f(ctx):\n    p = c64.setdefault(1)\n    h(2)\n    return p[0]\n", 12, 12,
     "'p' may point to an element of 'c64' replaced on line 11 (h() deletes from it): it "
     "may read a freed or reused element", "look it up again after line 11: "
     "p = c64.get(...)"),
    # an LRU map may evict any element to make room for a new key
    ("def f(ctx):\n    p = lru.setdefault(1)\n    lru[2] += 1\n    return p[0]\n", 7, 12,
     "'p' may point to an element of 'lru' replaced on line 6 (an insert into an LRU map "
     "may evict any element to make room): it may read a freed or reused element",
     "look it up again after line 6: p = lru.get(...)"),
])
def test_stale_pointer_errors(body: str, line: int, col: int, message: str,
                              hint: str) -> None:
    with pytest.raises(CompileError) as info:
        compile_source(_STALE_MAPS + body, "f", filename="<err>")
    err = info.value
    assert (err.message, err.suggestion) == (message, hint), err
    assert err.loc is not None and (err.loc.file, err.loc.line, err.loc.column) == \
        ("<err>", line, col), err


@pytest.mark.parametrize("body", [
    # looked up again after the store
    "def f(ctx):\n    p = c64.setdefault(1)\n    c64[1] = 5\n    p = c64.setdefault(1)\n"
    "    return p[0]\n",
    # in-place updates and inserts of a plain hash map replace nothing
    "def f(ctx):\n    p = c64.setdefault(1)\n    c64[1] += 5\n    p[0] += 1\n"
    "    q = c64.setdefault(2)\n    return p[0] + q[0]\n",
    # an array map updates in place; a store into another map does not matter
    "def f(ctx):\n    p = arr.get(1)\n    if p is None:\n        return 0\n"
    "    arr[1] = 5\n    lru[1] = 2\n    return p[0]\n",
    # a store on a branch that returns does not reach the read
    "def f(ctx):\n    p = c64.setdefault(1)\n    if cpu():\n        c64[1] = 5\n"
    "        return 0\n    return p[0]\n",
    # a loop that looks up again after its store
    "def f(ctx):\n    x: u64 = 0\n    for i in range(100):\n        c64[i] = 1\n"
    "        p = c64.setdefault(1)\n        x += p[0]\n    return x\n",
    # a called function that only reads the map
    "def g(k: u32) -> u64:\n    return c64[k]\n"
    "def f(ctx):\n    p = c64.setdefault(1)\n    g(2)\n    return p[0]\n",
])
def test_pointers_that_stay_valid(body: str) -> None:
    assert compile_source(_STALE_MAPS + body, "f", filename="<ok>")


@pytest.mark.parametrize("body", [
    # per-CPU values and reserved records are private: plain updates of any width
    "def f(ctx):\n    c = pc.setdefault(1)\n    c.small += 1\n    c.n *= 3\n    return 0\n",
    "def f(ctx):\n    with ring.reserve() as e:\n        e.small += 1\n        e.n <<= 2\n"
    "    return 0\n",
    # setdefault() is never None, even without a local
    "def f(ctx):\n    m.setdefault(3).n += 1\n    return m.setdefault(4).n\n",
    "def f(ctx):\n    c = m.get(1)\n    return c.n if c else 0\n",
    "def f(ctx):\n    c = m.get(1)\n    if not c:\n        m[1] = MapVal(n=1)\n"
    "        c = m.get(1)\n        if not c:\n            return 0\n    else:\n"
    "        c.n += 1\n    return c.n\n",
    "def f(ctx):\n    for i in range(20):\n        c = m.get(u32(i))\n        if c is None:\n"
    "            continue\n        c.n += 1\n    return 0\n",
])
def test_map_idioms_compile(body: str) -> None:
    compiled = compile_source(_MAPS + body, "f", filename="<ok>",
                              namespace={"MapVal": MapVal, "OtherVal": OtherVal})
    assert compiled.instructions


def test_atomic_updates_are_atomic_instructions() -> None:
    from pybpf.asm.opcodes import AtomicOp, Class, Mode
    compiled = compile_source(
        _MAPS + "def f(ctx):\n    c = m.setdefault(1)\n    c.n += 1\n    c.n -= 2\n"
        "    c.n |= 4\n    c.n &= 5\n    c.n ^= 6\n    return 0\n", "f", filename="<ok>",
        namespace={"MapVal": MapVal, "OtherVal": OtherVal})
    atomics = [i.imm for i in compiled.instructions
               if i.opcode & 0x07 == Class.STX and i.opcode & 0xE0 == Mode.ATOMIC]
    assert atomics == [AtomicOp.ADD, AtomicOp.ADD, AtomicOp.OR, AtomicOp.AND, AtomicOp.XOR]

def test_recursion_is_an_error() -> None:
    err = _error("def g(n: u32) -> u32:\n    return g(n)\ndef f(ctx):\n    return g(1)\n")
    assert "recursion" in err.message and "g -> g" in err.message
    assert "hint:" in str(err)
    err = _error("def a(n: u32) -> u32:\n    return b(n)\ndef b(n: u32) -> u32:\n"
                 "    return a(n)\ndef f(ctx):\n    return a(1)\n")
    assert "a -> b -> a" in err.message


def real_file_error(ctx):
    return 1.5


def test_error_location_in_a_real_file() -> None:
    with pytest.raises(CompileError) as info:
        compile_function(real_file_error)
    line = inspect.getsourcelines(real_file_error)[1] + 1
    assert str(info.value).startswith(f"{HERE}:{line}:12: error: floating point")
    assert "return 1.5" in str(info.value)


def test_dead_code_after_return_is_dropped() -> None:
    compiled = compile_source("def f(ctx):\n    if 1:\n        return 1\n    else:\n"
                              "        return 2\n    return 3\n", "f")
    assert VMBackend().run(compiled.instructions) == 1


# -- the command line ---------------------------------------------------------------------
def test_cli_compile_disasm(tmp_path: Any, capsys: Any) -> None:
    from pybpf.cli import main
    path = tmp_path / "prog.py"
    path.write_text("from pybpf.dsl import bpf, u32\n\n@bpf\ndef count(ctx):\n"
                    "    x: u32 = 41\n    return x + 1\n\ndef helper_not_marked(ctx):\n"
                    "    return 0\n")
    assert main(["compile", str(path), "--disasm"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("count:") and "x: u32 = 41" in out and "return x + 1" in out
    assert "helper_not_marked" not in out
    assert main(["compile", str(path)]) == 0
    assert capsys.readouterr().out.startswith("count: ")
    bad = tmp_path / "bad.py"
    bad.write_text("from pybpf.dsl import bpf\n\n@bpf\ndef f(ctx):\n    return 1.5\n")
    assert main(["compile", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:5:12: error: floating point" in err


@bpf
def decorated(ctx):
    return 5


def test_decorated_function_lines() -> None:
    compiled = compile_function(decorated)
    line = inspect.getsourcelines(decorated)[1]          # the decorator's line
    assert compiled.instructions[0].source.line == line + 2
    assert compiled.functions[0].ir.loc.line == line + 1


def p_too_long(ctx):
    t: u64 = 0
    for i in range(3000000):
        t += i
    return t


def test_too_long_loop_is_refused_before_the_verifier() -> None:
    """The verifier used to refuse this after a million instructions; the compiler
    refuses it at the loop's line (the kernel's own refusals keep their Python line:
    tests/test_dsl_programs.py)."""
    with pytest.raises(CompileError) as info:
        compile_function(p_too_long)
    line = inspect.getsourcelines(p_too_long)[1]
    assert str(info.value).startswith(
        f"{HERE}:{line + 2}:5: error: this loop makes the verifier walk about 12,000,000 "
        "instructions (3,000,000 iterations x 4)")


def test_moves_are_folded() -> None:
    compiled = compile_function(p_calls)
    entry = compiled.functions[0].instructions
    assert len(entry) <= 12
    assert str(entry[-2]).startswith("call") and str(entry[-1]) == "exit"   # r1 = r0; r0 = r1 folded


# -- types of values, locals and pointers (docs/language.md, "Types") -----------------------
from pybpf.dsl import HashMap, RingBuf, Struct, char  # noqa: E402

Start = type("Start", (Struct,), {"__annotations__": {"ts": u64, "tag": char[4],
                                                      "name": char[16]}})
TYPES_NS = {"Start": Start, "counts": HashMap(u32, u64), "starts": HashMap(u32, Start)}


def _type_error(src: str) -> CompileError:
    with pytest.raises(CompileError) as info:
        compile_source(src, "f", filename="<types>", namespace=TYPES_NS)
    return info.value


_GET = "def f(ctx):\n    p = counts.get(1)\n"
_SGET = "def f(ctx):\n    p = starts.get(1)\n"
_PTR = "'p' is a pointer to a map value (u64), not a number"


@pytest.mark.parametrize("src, line, col, message, hint", [
    # 1. pointers are never numbers
    (_GET + "    e = Start()\n    e.ts = p\n", 4, 12, _PTR, "did you mean p[0], the u64"),
    (_GET + "    return ktime_ns() - p\n", 3, 25, _PTR, "did you mean p[0]"),
    (_GET + "    if p > 5:\n        return 1\n", 3, 8, _PTR, "'p is None'"),
    (_GET + "    if p == 0:\n        return 1\n", 3, 8, _PTR, "'p is None'"),
    (_GET + "    counts[2] = p\n", 3, 17, _PTR, "did you mean p[0]"),
    (_GET + "    print(p)\n", 3, 11, _PTR, "did you mean p[0]"),
    (_GET + "    return p\n", 3, 12, _PTR, "did you mean p[0]"),
    (_GET + "    x: u64 = p\n", 3, 14, _PTR, "did you mean p[0]"),
    (_GET + "    p += 1\n", 3, 5, _PTR, "did you mean p[0]"),
    (_SGET + "    return g(p)\ndef g(v: u64) -> u64:\n    return v\n", 3, 14,
     "'p' is a pointer to a map value (Start), not a number", "did you mean p.ts? (Start has "
     "ts, tag, name)"),
    ("def f(ctx):\n    t = current_task()\n    return t + 1\n", 3, 12,
     "'t' is a kernel pointer (struct task_struct), not a number", "u64(t)"),
    # 2. locals: widening, annotations
    ("def f(ctx):\n    x: u32 = 0\n    x = ktime_ns()\n", 3, 5,
     "'x' is a u32 (annotated on line 2); here it gets a u64, which it cannot hold",
     "convert explicitly: u32(...), or annotate 'x' with a type that holds a u64"),
    ("def f(ctx):\n    x: u32 = ktime_ns()\n", 2, 5,
     "'x' is a u32; here it gets a u64, which it cannot hold", "convert explicitly"),
    ("def f(ctx):\n    x: u8 = 0\n    x += 1\n", 3, 5,
     "'x' is a u8 (annotated on line 2); here it gets an i32, which it cannot hold",
     "u8(...)"),
    ("def f(ctx):\n    x = i64(-1)\n    x = ktime_ns()\n", 3, 5,
     "'x' gets an i64 on line 2 and a u64 here: no integer type holds both",
     "annotate 'x' on line 2"),
    ("def f(ctx):\n    x = -1\n    if ktime_ns():\n        x = ktime_ns()\n", 4, 9,
     "'x' gets the literal -1 on line 2 and a u64 here: no integer type holds both",
     "annotate 'x' on line 2"),
    # 3. a local keeps one kind of value
    ("def f(ctx):\n    s = Start()\n    s = starts.get(1)\n", 3, 5,
     "'s' holds a Start struct from line 2; here it gets a pointer from starts.get()",
     "use another name"),
    (_SGET + "    p = 5\n", 3, 5, "'p' holds a pointer from starts.get() from line 2; here "
     "it gets an i32 number", "use another name"),
    ("def f(ctx):\n    n = 0\n    n = Start()\n", 3, 5,
     "'n' holds an i32 number from line 2; here it gets a Start struct", "use another name"),
    ("def f(ctx):\n    s = Start()\n    s = 1\n", 3, 5,
     "'s' holds a Start struct from line 2; here it gets an i32 number", "use another name"),
    ("def f(ctx):\n    x: u8 = 1\n    x: u16 = 2\n", 3, 5,
     "'x' is already declared: it holds a u8 number from line 2", "declare a local once"),
    # 4. arrays and strings are never cut silently
    ("def f(ctx):\n    e = Start()\n    e.tag = 'abcd'\n", 3, 13,
     "the string 'abcd' (4 bytes and a NUL) does not fit in a char[4]", "char[5] or more"),
    ("def f(ctx):\n    e = Start()\n    e.tag = e.name\n", 3, 13,
     "a char[16] string does not fit in a char[4] string: it would be cut",
     "copy a part explicitly: e.name[:4]"),
    ("def f(ctx):\n    e = Start()\n    e.tag = e.name[2:20]\n", 3, 20,
     "[2:20] is not a part of a char[16]", "bounds in 0..16"),
    ("def f(ctx):\n    e = Start()\n    n: u32 = 2\n    e.tag = e.name[n:]\n", 4, 20,
     "slice bounds must be constant integers", "literals"),
    ("def f(ctx):\n    e = Start()\n    e.name = e.ts\n", 3, 14,
     "cannot store a u64 number into a char[16] string", "fields or elements"),
])
def test_type_errors_have_locations(src: str, line: int, col: int, message: str,
                                    hint: str) -> None:
    err = _type_error(src)
    assert err.message == message, err
    assert hint in err.suggestion, err
    assert err.loc is not None and (err.loc.file, err.loc.line, err.loc.column) == \
        ("<types>", line, col), err


def test_widening_recompiles_without_duplicate_print_sites() -> None:
    """A widened local recompiles its function: print sites are registered once."""
    from pybpf.compiler.unit import Unit
    from pybpf.dsl.compiler import compile_functions
    from pybpf.dsl import compile_source as cs  # noqa: F401
    src = ("def f(ctx):\n    x = 0\n    print(x)\n    x = ktime_ns()\n    print(x)\n"
           "    return 0\n")
    from pybpf.dsl import _module_from_source  # type: ignore[attr-defined]
    fn = _module_from_source(src, "<widen>", None).f
    unit = Unit()
    funcs, _ = compile_functions(fn, unit)
    assert [site.id for site in unit.prints] == [0, 1]
    assert [site.loc.line for site in unit.prints] == [3, 5]   # type: ignore[union-attr]
    assert all(p[3] is False for site in unit.prints for p in site.parts
               if isinstance(p, tuple))             # both print x as the u64 it became


# -- limits: stack along call chains, instructions the verifier walks ---------------------
CHAIN = '''\
from pybpf.dsl import Struct, u8, u64, xdp

class Big(Struct):
    a: u64
    pad: u8[{pad}]

def h(x: u64) -> u64:
    b = Big()
    b.a = x
    return b.a + 1

def g(x: u64) -> u64:
    b = Big()
    b.a = h(x)
    return b.a

@xdp()
def f(ctx):
    b = Big()
    b.a = g(1)
    return b.a
'''


def test_call_chain_stack_is_checked(tmp_path: Any) -> None:
    """Three frames of 160 bytes (480) compile; of 168 bytes each counts 192 (rounded
    up to 32 as the kernel may) and the chain is refused at the call that goes over."""
    from pybpf.dsl import compile_module
    ok = tmp_path / "chain_ok.py"
    ok.write_text(CHAIN.format(pad=152))
    compile_module(str(ok))
    bad = tmp_path / "chain_bad.py"
    bad.write_text(CHAIN.format(pad=160))
    with pytest.raises(CompileError) as info:
        compile_module(str(bad))
    err = info.value
    assert (err.loc.file, err.loc.line, err.loc.column) == (str(bad), 14, 11)
    assert err.message == (
        f"the call chain f -> g -> h needs 576 bytes of stack; the kernel allows 512 for a "
        f"whole chain, each frame rounded up to 32 bytes (f at {bad}:18: 168 bytes, counted "
        f"192; g at {bad}:12: 168 bytes, counted 192; h at {bad}:7: 168 bytes, counted 192)")
    assert "ring.reserve()" in err.suggestion and "PerCPUArrayMap" in err.suggestion


def test_call_chain_frames_are_counted() -> None:
    src = "".join(f"def g{i}(x: u64) -> u64:\n    return g{i + 1}(x) + 1\n" for i in range(8))
    src += "def g8(x: u64) -> u64:\n    return x\n\ndef f(ctx):\n    return g0(1)\n"
    err = _error(src)
    assert (err.loc.line, err.loc.column) == (14, 12)
    assert err.message == ("the call chain f -> g0 -> g1 -> g2 -> g3 -> g4 -> g5 -> g6 -> "
                           "g7 has 9 frames; BPF allows 8")


@pytest.mark.parametrize("src, line, col, message", [
    ("def f(ctx):\n    t: u64 = 0\n    for i in range(300000):\n        t += ktime_ns()\n"
     "    return t\n", 3, 5,
     "this loop makes the verifier walk about 1,500,000 instructions (300,000 iterations "
     "x 5); it gives up at 1,000,000"),
    # nested loops multiply: the outer loop is named
    ("def f(ctx):\n    t: u64 = 0\n    for i in range(1000):\n        for j in range(1000):\n"
     "            t += ktime_ns()\n    return t\n", 3, 5,
     "this loop makes the verifier walk about 5,004,000 instructions (1,000 iterations x "
     "5,004); it gives up at 1,000,000"),
    # each call walks its callee again
    ("def g(x: u64) -> u64:\n    t: u64 = x\n    for i in range(150000):\n"
     "        t += ktime_ns()\n    return t\n\ndef f(ctx):\n    return g(1) + g(2)\n", 7, 1,
     "f makes the verifier walk about 1,500,016 instructions (its loops and the functions "
     "it calls, each call walked again); it gives up at 1,000,000"),
])
def test_loops_the_verifier_cannot_finish(src: str, line: int, col: int,
                                          message: str) -> None:
    err = _error(src)
    assert (err.loc.file, err.loc.line, err.loc.column) == ("<err>", line, col)
    assert err.message == message
    assert err.suggestion


def test_loop_under_the_walk_limit_compiles() -> None:
    compile_source("def f(ctx):\n    t: u64 = 0\n    for i in range(190000):\n"
                   "        t += ktime_ns()\n    return t\n", "f")


# -- stores follow the annotated-local rule (docs/language.md, "Types") ---------------------
Rec8 = type("Rec8", (Struct,), {"__annotations__": {"a": u8, "c": u32, "arr": u8[4]}})
_STORE_NS = {"Rec8": Rec8, "h32": HashMap(u32, u32), "hs": HashMap(u32, Rec8),
             "ring": RingBuf(Rec8)}
_X32 = "def f(ctx):\n    x: u32 = 300\n"
_X64 = "def f(ctx):\n    x: u64 = 300\n"
_CUT8 = "cut it explicitly: u8(x), or widen the field"


@pytest.mark.parametrize("src, line, col, message, hint", [
    (_X64 + "    h32[1] = x\n", 3, 14, "a u64 does not fit in a value of map 'h32', a u32",
     "cut it explicitly: u32(x), or declare the map with a wider value type"),
    (_X32 + "    p = hs.setdefault(1)\n    p.a = x\n", 4, 11,
     "a u32 does not fit in field 'a' of Rec8, a u8", _CUT8),
    (_X32 + "    r = Rec8()\n    r.a = x\n", 4, 11,
     "a u32 does not fit in field 'a' of Rec8, a u8", _CUT8),
    (_X32 + "    with ring.reserve() as e:\n        e.a = x\n", 4, 15,
     "a u32 does not fit in field 'a' of Rec8, a u8", _CUT8),
    (_X32 + "    hs[1] = Rec8(a=x)\n", 3, 20, "a u32 does not fit in field 'a' of Rec8, a u8",
     _CUT8),
    (_X32 + "    r = Rec8()\n    r.arr[1] = x\n", 4, 16,
     "a u32 does not fit in an element of r.arr, a u8",
     "cut it explicitly: u8(x), or widen the array's element type"),
    (_X32 + "    r = Rec8()\n    for i in range(4):\n        r.arr[i] = x\n", 5, 20,
     "a u32 does not fit in an element of r.arr, a u8", "u8(x)"),
    (_X64 + "    p = h32.setdefault(1)\n    p[0] = x\n", 4, 12,
     "a u64 does not fit in the map value 'p' points to, a u32",
     "cut it explicitly: u32(x), or widen the map's value type"),
    ("def f(ctx):\n    x: i64 = -1\n    return h32[x]\n", 3, 16,
     "an i64 does not fit in a key of map 'h32', a u32",
     "cut it explicitly: u32(x), or declare the map with a wider key type"),
    ("def f(ctx):\n    x: i64 = -1\n    return x in h32\n", 3, 12,
     "an i64 does not fit in a key of map 'h32', a u32", "u32(x)"),
    (_X64 + "    p = h32.setdefault(1, x)\n", 3, 27,
     "a u64 does not fit in a value of map 'h32', a u32", "u32(x)"),
    ("def g(v: u32) -> u32:\n    return v\ndef f(ctx):\n    return g(ktime_ns())\n", 4, 14,
     "a u64 does not fit in parameter 'v' of g(), a u32",
     "cut it explicitly: u32(ktime_ns()), or widen the parameter"),
    ("def f(ctx) -> u32:\n    return ktime_ns()\n", 2, 12,
     "a u64 does not fit in the return type, a u32",
     "cut it explicitly: u32(ktime_ns()), or declare a wider return type"),
    (_X32 + "    r = Rec8()\n    r.a = 300\n", 4, 11,
     "300 does not fit in field 'a' of Rec8, a u8 (0..255)", "a wider type than u8"),
    # a range() loop's variable counts by its values: -1 is no u32 key
    ("def f(ctx):\n    for i in range(-1, 3):\n        h32[i] = 1\n    return 0\n", 3, 13,
     "an i32 does not fit in a key of map 'h32', a u32", "u32(i)"),
])
def test_stores_that_do_not_fit_are_refused(src: str, line: int, col: int, message: str,
                                            hint: str) -> None:
    with pytest.raises(CompileError) as info:
        compile_source(src, "f", filename="<store>", namespace=_STORE_NS)
    err = info.value
    assert err.message == message, err
    assert hint in err.suggestion, err
    assert err.loc is not None and (err.loc.file, err.loc.line, err.loc.column) == \
        ("<store>", line, col), err


@pytest.mark.parametrize("body", [
    "    h32[1] = u32(x)\n    return 0\n",           # an explicit cut
    "    r = Rec8()\n    r.c = u8(x)\n    r.a = u8(x)\n    return 0\n",   # a u8 into a u32
    "    hs[u32(x)] = Rec8(a=u8(x), c=x)\n    return 0\n",
    "    y: u8 = 7\n    return h32[y]\n",               # a u8 key into a u32 key
    # the variable of a constant range() loop counts by its values (0..3, 0..199)
    "    for i in range(4):\n        h32[i] = 1\n    return 0\n",
    "    for i in range(200):\n        h32[i] = i\n        r = Rec8(a=i)\n    return 0\n",
])
def test_stores_that_fit_compile(body: str) -> None:
    compile_source(_X64.replace("u64", "u32") + body, "f", namespace=_STORE_NS)
