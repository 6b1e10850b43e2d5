"""The bpftrace runtime's output layer against the installed bpftrace 0.17 (the oracle).

Each test writes one bpftrace program (BEGIN only, so nothing depends on other
processes) that fills maps with known values and calls printf/print/time/strftime/join/
ntop, runs it with text and ``-f json`` output, and feeds the same logical values to
:mod:`pybpf.bpftrace.printf`, :mod:`~pybpf.bpftrace.output` and
:mod:`~pybpf.bpftrace.json_output`: the whole stdout must be identical, byte for byte.
Only the current time (time()) and the boot time behind strftime() are taken from
bpftrace's own output. Skipped, naming why, without bpftrace or root.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from typing import Dict, List, Sequence, Tuple

import pytest

from pybpf.bpftrace import json_output as J
from pybpf.bpftrace import output as O
from pybpf.bpftrace.printf import FormatStringError, check_format, format_printf
from pybpf.bpftrace.values import (Buf, Int, Str, Tuple as VTuple, hist_bucket,
                                   lhist_bucket, ntop, reduce_min, strftime_text)

BPFTRACE = shutil.which("bpftrace")
pytestmark = [
    pytest.mark.skipif(BPFTRACE is None, reason="bpftrace is not installed "
                                                "(apt-get install bpftrace)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="running bpftrace needs root"),
]


def run_bt(prog: str, fmt: str = "text") -> str:
    """bpftrace's stdout (latin-1 text) for ``prog``; fails on a non-zero exit."""
    args = [BPFTRACE, "-e", prog] + (["-f", "json"] if fmt == "json" else [])
    proc = subprocess.run(args, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode("latin-1")[-3000:]
    return proc.stdout.decode("latin-1")


def bt_errors(prog: str) -> List[str]:
    """The messages of bpftrace's located ERROR lines for a program it refuses."""
    proc = subprocess.run([BPFTRACE, "-e", prog], capture_output=True, timeout=120)
    assert proc.returncode != 0
    out = []
    for line in proc.stderr.decode("latin-1").splitlines():
        if line.startswith("stdin:") and ": ERROR: " in line:
            out.append(line.split(": ERROR: ", 1)[1])
    return out


def lit(s: str) -> str:
    """A Python latin-1 string as a bpftrace string literal."""
    out = []
    for ch in s:
        c = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif c < 32 or c >= 127:
            out.append("\\x%02x" % c)
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def diff_msg(want: str, got: str) -> str:
    """The first differing line, for assertion messages."""
    a, b = want.splitlines(), got.splitlines()
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f"line {i + 1}:\n bpftrace: {x!r}\n     ours: {y!r}"
    return f"lengths differ: bpftrace {len(a)} lines, ours {len(b)}"


def same(ours: str, theirs: str) -> None:
    """Assert our text is bpftrace's."""
    assert theirs == ours, diff_msg(theirs, ours)


# --- printf --------------------------------------------------------------------------

_TYPES = [("int8", 8, True), ("uint8", 8, False), ("int16", 16, True),
          ("uint16", 16, False), ("int32", 32, True), ("uint32", 32, False),
          ("int64", 64, True), ("uint64", 64, False)]
_INTS = [0, 1, -1, 7, 42, -42, 65, 127, 128, 255, 256, -129, 1000, 65535, 65536, -65536,
         0x7FFFFFFF, -0x80000000, 0x80000000, 0xFFFFFFFF, 0x100000000, 0x123456789ABC,
         -0x123456789ABC, 0x7FFFFFFFFFFFFFFF, -0x7FFFFFFFFFFFFFFF]


def _int_arg(rng: random.Random) -> Tuple[str, Int]:
    v = rng.choice(_INTS)
    lit_ = str(v) if v >= 0 else f"-{-v}"
    if rng.random() < 0.4:
        return lit_, Int(v)
    name, bits, signed = rng.choice(_TYPES)
    return f"({name}){lit_}", Int(v, bits, signed)


def _int_spec(rng: random.Random) -> str:
    conv = rng.choice("duoxXpc")
    length = "" if conv == "c" else rng.choice(["", "", "hh", "h", "l", "ll", "j", "z", "t"])
    flag = rng.choice(["", "", "-", "0", "-0"])
    width = rng.choice(["", "", "1", "5", "12", "24"])
    if flag.endswith("0") and not width:
        width = "8"
    prec = rng.choice(["", "", "", ".0", ".3", ".12"])
    return f"%{flag}{width}{prec}{length}{conv}"


_STRS = ["", "a", "hello world", "tab\there", "\xc3\xa9t\xc3\xa9", "x" * 40, "100%"]


def printf_corpus(seed: int, n: int) -> List[Tuple[str, List[str], list]]:
    """``(format, bpftrace argument expressions, our values)`` triples."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        k = rng.choice([1, 1, 2, 3])
        fmt, exprs, vals = "", [], []
        for _ in range(k):
            fmt += rng.choice(["", "[", " v=", "%%", "ab%%y "])
            if rng.random() < 0.75:
                fmt += _int_spec(rng)
                e, v = _int_arg(rng)
            else:
                flag = rng.choice(["", "-"])
                width = rng.choice(["", "3", "15"])
                prec = rng.choice(["", "", ".0", ".2", ".8"])
                fmt += f"%{flag}{width}{prec}s"
                s = rng.choice(_STRS)
                e, v = lit(s), Str(s)
            exprs.append(e)
            vals.append(v)
        fmt += rng.choice(["]\n", "\n", " %%\n", "|%i\n"])
        out.append((fmt, exprs, vals))
    # formats with special handling
    out += [
        ("100%%\n", [], []), ("%% %d %% %s\n", ["5", '"x"'], [Int(5), Str("x")]),
        ("%%d is %d\n", ["3", "4"], [Int(3), Int(4)]), ("%5%d\n", ["3"], [Int(3)]),
        ("[%c]\n", ["0"], [Int(0)]), ("a%cb\n", ["0x141"], [Int(0x141)]),
        ("%r|%rx|%rh\n", ['buf("ab\\x01\\xff ~", 6)'] * 3, [Buf(b"ab\x01\xff ~")] * 3),
        ("%10r|%-3rx|%r\n", ['buf("ab", 2)'] * 3, [Buf(b"ab")] * 3),
        ("%s %d\n", ['"a%db"', "7"], [Str("a%db"), Int(7)]),
        ("no newline", [], []), ("\n", [], []),
        ("%p %p %20p %-20p|\n", ["0", "4096", "0", "4096"],
         [Int(0), Int(4096), Int(0), Int(4096)]),
    ]
    return out


def _printf_program(corpus) -> str:
    stmts = []
    for fmt, exprs, _ in corpus:
        stmts.append("printf(" + ", ".join([lit(fmt)] + exprs) + ");")
    return "BEGIN {\n" + "\n".join(stmts) + "\nexit(); }"


@pytest.mark.parametrize("seed", [1, 2])
def test_printf_corpus_text_and_json(seed):
    corpus = printf_corpus(seed, 300)
    prog = _printf_program(corpus)
    ours = [format_printf(fmt, vals) for fmt, _, vals in corpus]
    same(O.attached_probes_text(1) + "".join(ours) + "\n\n", run_bt(prog))
    same(J.attached_probes_json(1) + "".join(J.message_json("printf", t) for t in ours)
         + "\n\n", run_bt(prog, "json"))


def test_printf_checks_match_bpftrace_errors():
    """What the semantic check refuses, with bpftrace's messages, in bpftrace's order."""
    cases = [
        ('"%d %d\\n"', ["1"], ["integer"]),
        ('"%d\\n"', ["1", "2"], ["integer", "integer"]),
        ('"%s\\n"', ["1"], ["integer"]),
        ('"%d\\n"', ['"x"'], ["string"]),
        ('"%-5.3lx %r\\n"', ["1", '"s"'], ["integer", "string"]),
        ('"%rx\\n"', ["5"], ["integer"]),
        ('"%i\\n"', ["5"], ["integer"]),
        ('"100%%\\n"', ["5"], ["integer"]),
        ('"%s %s\\n"', ['"a"', "(1, 2)"], ["string", "tuple"]),
        ('"%s\\n"', ["ntop(0)"], ["inet"]),
        ('"%d\\n"', ["ntop(0)"], ["inet"]),
    ]
    prog = "BEGIN {\n" + "\n".join(
        f"printf({', '.join([f] + a)});" for f, a, _ in cases) + "\n}"
    want = bt_errors(prog)
    ours = []
    for f, _, kinds in cases:
        fmt = f[1:-1].replace("\\n", "\n")
        try:
            check_format(fmt, kinds)
        except FormatStringError as e:
            ours.append(e.message)
    assert want == ours


# --- maps ----------------------------------------------------------------------------

class Filler:
    """Map updates written as bpftrace statements and mirrored as MapData."""

    def __init__(self) -> None:
        self.stmts: List[str] = []
        self.maps: Dict[str, O.MapData] = {}
        self.state: Dict[str, dict] = {}

    def _state(self, name: str, kind: str, **kw) -> dict:
        if name not in self.maps:
            self.maps[name] = O.MapData(name, kind, **kw)
            self.state[name] = {}
        return self.state[name]

    @staticmethod
    def _key(key: Sequence) -> Tuple[str, tuple]:
        exprs, vals = [], []
        for k in key:
            if isinstance(k, str):
                exprs.append(lit(k))
                vals.append(Str(k))
            else:
                exprs.append(str(k) if k >= 0 else f"-{-k}")
                vals.append(Int(k))
        return ("[" + ", ".join(exprs) + "]" if exprs else ""), tuple(vals)

    def agg(self, name: str, kind: str, key: Sequence, v: int = 0, lh=None) -> None:
        ks, kv = self._key(key)
        st = self._state(name, kind, signed=kind == "sum", lhist=lh)
        vs = str(v) if v >= 0 else f"-{-v}"
        if kind == "count":
            self.stmts.append(f"{name}{ks} = count();")
            st[kv] = st.get(kv, 0) + 1
        elif kind == "sum":
            self.stmts.append(f"{name}{ks} = sum({vs});")
            st[kv] = st.get(kv, 0) + v
        elif kind == "max":
            self.stmts.append(f"{name}{ks} = max({vs});")
            if v >= st.get(kv, 0):        # stored when >= the old value (0 if none)
                st[kv] = v
        elif kind == "min":
            self.stmts.append(f"{name}{ks} = min({vs});")
            inv = 0xFFFFFFFF - v
            if inv >= st.get(kv, 0):
                st[kv] = inv
        elif kind in ("avg", "stats"):
            self.stmts.append(f"{name}{ks} = {kind}({vs});")
            c, t = st.get(kv, (0, 0))
            st[kv] = (c + 1, t + v)
        elif kind == "hist":
            self.stmts.append(f"{name}{ks} = hist({vs});")
            b = st.setdefault(kv, {})
            i = hist_bucket(v)
            b[i] = b.get(i, 0) + 1
        elif kind == "lhist":
            lo, hi, step = lh
            self.stmts.append(f"{name}{ks} = lhist({vs}, {lo}, {hi}, {step});")
            b = st.setdefault(kv, {})
            i = lhist_bucket(v, lo, hi, step)
            b[i] = b.get(i, 0) + 1

    def assign(self, name: str, key: Sequence, expr: str, value) -> None:
        ks, kv = self._key(key)
        st = self._state(name, "value")
        self.stmts.append(f"{name}{ks} = {expr};")
        st[kv] = value

    def print_(self, name: str, top: int = 0, div: int = 0) -> Tuple[str, str]:
        """A print() statement now; returns our (text, json) for it."""
        args = [name] + ([str(top)] if top or div else []) + ([str(div)] if div else [])
        self.stmts.append(f"print({', '.join(args)});")
        m = self.snapshot(name)
        return O.map_text(m, top, div), J.map_json(m, top, div)

    def snapshot(self, name: str) -> O.MapData:
        m = self.maps[name]
        entries = []
        for k, v in self.state[name].items():
            if m.kind == "min":
                v = reduce_min([v])
            entries.append((k, v))
        return O.MapData(m.name, m.kind, entries, m.signed, m.lhist)

    def program(self) -> str:
        return "BEGIN {\n" + "\n".join(self.stmts) + "\nexit(); }"

    def exit_output(self) -> Tuple[str, str]:
        maps = [self.snapshot(n) for n in self.maps]
        return O.exit_maps_text(maps), J.exit_maps_json(maps)


def _distinct(rng: random.Random, n: int, lo: int, hi: int) -> List[int]:
    return rng.sample(range(lo, hi), n)


def test_aggregation_maps(tmp_path):
    """count/sum/min/max/avg/stats, scalar and keyed (int, string, multi-key), printed
    at exit and through print(@m, top, div), text and JSON."""
    rng = random.Random(7)
    f = Filler()
    prints_text, prints_json = [], []
    f.agg("@cscalar", "count", ())
    f.agg("@cscalar", "count", ())
    # count: key k gets k+1 counts (no ties)
    for k in range(6):
        for _ in range(k + 1):
            f.agg("@c", "count", (k * 1000 - 2500,))
    sums = _distinct(rng, 12, -5000, 5000)
    for i, s in enumerate(sums):
        f.agg("@s", "sum", (f"k{i:02d}",), s)
        f.agg("@s", "sum", (f"k{i:02d}",), 7)
    for i, v in enumerate(_distinct(rng, 8, 0, 10 ** 6)):
        f.agg("@mx", "max", (i, f"n{i}"), v)
        f.agg("@mx", "max", (i, f"n{i}"), v // 2)
    for i, v in enumerate(_distinct(rng, 8, -10 ** 6, 10 ** 6)):
        f.agg("@mn", "min", (i,), v)
        f.agg("@mn", "min", (i,), v + 10)
    f.agg("@mnscalar", "min", (), -77)
    f.agg("@mxneg", "max", (), -5)             # never stored: prints as an empty map
    for i in range(7):
        for v in _distinct(rng, 3, -900, 900):
            f.agg("@a", "avg", (f"s{i}",), v)
            f.agg("@st", "stats", (i * 3 - 9,), v)
    f.agg("@ascalar", "avg", (), 10)
    f.agg("@ascalar", "avg", (), 31)
    for name, top, div in [("@c", 3, 0), ("@s", 4, 10), ("@s", 0, 3), ("@mx", 2, 7),
                           ("@mn", 3, 2), ("@a", 2, 3), ("@st", 2, 5), ("@cscalar", 0, 0),
                           ("@ascalar", 0, 4), ("@mxneg", 0, 0)]:
        t, j = f.print_(name, top, div)
        prints_text.append(t)
        prints_json.append(j)
    tail_t, tail_j = f.exit_output()
    prog = f.program()
    same(O.attached_probes_text(1) + "".join(prints_text) + tail_t, run_bt(prog))
    same(J.attached_probes_json(1) + "".join(prints_json) + tail_j, run_bt(prog, "json"))


def test_hist_and_lhist_maps():
    """hist and lhist distributions (negatives, zero, K/M/G/T-sized values, ties in
    totals ordered by key bytes), print with top and div, text and JSON."""
    rng = random.Random(11)
    f = Filler()
    dists = [
        [0, 1, 2, 3, 4, 1000, 1023, 1024],
        [-5, -1, 0, 0, 7, 7, 7, 100000],
        [2 ** 20, 2 ** 30 + 5, 2 ** 31, 2 ** 33, 2 ** 40 + 1, 2 ** 50],
        [rng.randrange(0, 5000) for _ in range(40)],
        [rng.randrange(-100, 3000000) for _ in range(30)],
        [123456789] * 5 + [1],
    ]
    for i, d in enumerate(dists):
        for v in d:
            f.agg("@h", "hist", (i,), v)
            f.agg("@hs", "hist", (f"d{i % 3}", i * 256), v)
    for v in dists[3] + [-3]:
        f.agg("@hscalar", "hist", (), v)
    lhists = [(0, 100, 10), (3, 50, 7), (0, 4096, 1024), (1024, 3 * 1048576, 1048576),
              (0, 2048, 512), (5, 12, 3)]
    for i, lh in enumerate(lhists):
        lo, hi, step = lh
        name = f"@l{i}"
        for k in range(3):
            for _ in range(k + 2):
                for v in (rng.randrange(lo - step * 2, hi + step * 2) for _ in range(6)):
                    f.agg(name, "lhist", (k,), v, lh)
    f.agg("@lone", "lhist", (), 5, (0, 10, 1))
    prints_text, prints_json = [], []
    for name, top, div in [("@h", 2, 0), ("@h", 0, 3), ("@hs", 3, 2), ("@l1", 1, 0),
                           ("@l2", 0, 5), ("@hscalar", 0, 2)]:
        t, j = f.print_(name, top, div)
        prints_text.append(t)
        prints_json.append(j)
    tail_t, tail_j = f.exit_output()
    prog = f.program()
    same(O.attached_probes_text(1) + "".join(prints_text) + tail_t, run_bt(prog))
    same(J.attached_probes_json(1) + "".join(prints_json) + tail_j, run_bt(prog, "json"))


def test_value_maps_and_print_values():
    """Maps assigned plain values (ints sorted by value; strings, tuples, inet values
    by key: unsigned int keys, strncmp'd strings), print(value), text and JSON."""
    rng = random.Random(5)
    f = Filler()
    for i, v in enumerate(_distinct(rng, 10, -10 ** 9, 10 ** 9)):
        f.assign("@i", (i - 4,), str(v) if v >= 0 else f"-{-v}", Int(v))
    for k in [5, -3, 0, 2 ** 40, -(2 ** 40), 77]:
        s = f"v{k:+014d}"      # one length: bpftrace 0.17 mislays tuple fields otherwise
        kv = str(k) if k >= 0 else f"-{-k}"
        f.assign("@str", (k,), lit(s), Str(s))
        f.assign("@tup", (f"key{kv}", k), f'({kv}, "x{s}", -1)',
                 VTuple((Int(k), Str("x" + s), Int(-1))))
    for w in ["b", "a", "ab", "", "\xc3\xa9", "Z"]:
        f.assign("@sk", (w,), lit(w.upper() + "!"), Str(w.upper() + "!"))
    f.assign("@ip", (1,), "ntop(0x0100007f)", ntop(bytes([127, 0, 0, 1])))
    f.assign("@ip", (2,), 'ntop(pton("fe80::1:2"))',
             ntop(bytes.fromhex("fe800000000000000000000000010002")))
    f.assign("@ip6", (), 'ntop(pton("2001:db8::ff00:42:8329"))',
             ntop(bytes.fromhex("20010db8000000000000ff0000428329")))
    texts, jsons = [], []
    for name, top, div in [("@i", 3, 0), ("@i", 0, 1000), ("@str", 2, 0), ("@tup", 0, 0),
                           ("@sk", 0, 0)]:
        t, j = f.print_(name, top, div)
        texts.append(t)
        jsons.append(j)
    for expr, val in [("5", Int(5)), ("-5", Int(-5)), ('"s p"', Str("s p")),
                      ('(1, "two", (int8)-3)', VTuple((Int(1), Str("two"), Int(-3, 8)))),
                      ("(uint32)-1", Int(-1, 32, False)), ("ntop(0x04030201)",
                                                           ntop(bytes([1, 2, 3, 4])))]:
        f.stmts.append(f"print({expr});")
        texts.append(O.value_text(val) + "\n")
        jsons.append(J.value_json(val))
    tail_t, tail_j = f.exit_output()
    prog = f.program()
    same(O.attached_probes_text(1) + "".join(texts) + tail_t, run_bt(prog))
    same(J.attached_probes_json(1) + "".join(jsons) + tail_j, run_bt(prog, "json"))


def test_time_strftime_join():
    """strftime() (with %f) from known nanoseconds, time() and join(); the boot time and
    the current second are taken from bpftrace's output, nothing else."""
    fmts = ["%Y-%m-%d %H:%M:%S", "%H:%M:%S.%f", "%f", "%a %b %e %j %%f %%", "x%fy%fz"]
    nss = [0, 1000, 999999000, 10 ** 12 + 123456000, 86400 * 10 ** 9 * 400]
    stmts = ['printf("%s\\n", strftime("%s.%f", 0));']
    for fm in fmts:
        for ns in nss:
            stmts.append(f'printf("%s|\\n", strftime({lit(fm)}, {ns}));')
    stmts.append('time("%Y=%H\\n");')
    stmts.append('time();')
    prog = "BEGIN {\n" + "\n".join(stmts) + "\nexit(); }"
    out = run_bt(prog)
    lines = out.split("\n")
    assert lines[0] == "Attaching 1 probe..."
    sec, us = lines[1].split(".")
    boot = int(sec) * 10 ** 9 + int(us) * 1000
    from pybpf.bpftrace.values import boot_realtime_ns
    assert abs(boot_realtime_ns() - boot) < 5_000_000      # the same measurement
    want = [strftime_text(fm, ns, boot) + "|" for fm in fmts for ns in nss]
    assert lines[2:2 + len(want)] == want
    # time(): the same strftime of "now" as bpftrace's second (taken from its line)
    t1, t2 = lines[2 + len(want)], lines[3 + len(want)]
    import time as _t
    now = _t.time()
    cands = {O.time_text("%Y=%H\n", now + d) for d in range(-120, 2)}
    assert t1 + "\n" in cands
    assert O.time_text("%H:%M:%S\n", 0) is not None and len(t2) == 8 and t2[2] == ":"
    json_out = run_bt(prog, "json").split("\n")
    assert json_out[0] == J.attached_probes_json(1).rstrip("\n")
    assert json_out[2:2 + len(want)] == [J.message_json("printf", w + "\n").rstrip("\n")
                                         for w in want]
    assert json_out[2 + len(want)].startswith('{"type": "time", "data": "')


def test_join_against_bpftrace():
    """join() of a process's argv through a tracepoint on execve (of a copy of
    /bin/true at a path of its own, so other processes' execs do not match)."""
    import tempfile
    args = ["a b", "", "ignored"]
    tmpdir = tempfile.mkdtemp(prefix="bj")     # bpftrace literals: at most 63 bytes
    exe = os.path.join(tmpdir, "t")
    shutil.copy("/bin/true", exe)
    prog = ('tracepoint:syscalls:sys_enter_execve /str(args->filename) == "%s"/ '
            '{ join(args->argv); join(args->argv, ","); exit(); }' % exe)
    proc = subprocess.Popen([BPFTRACE, "-e", prog], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        head = proc.stdout.readline()
        assert head == b"Attaching 1 probe...\n"
        import time as _t
        for _ in range(100):
            subprocess.run([exe, "x", "yy z"] + args, check=False)
            if proc.poll() is not None:
                break
            _t.sleep(0.1)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmpdir, ignore_errors=True)
    argv = [exe, "x", "yy z"] + args
    want = O.join_text(argv) + "\n" + O.join_text(argv, ",") + "\n" + "\n\n"
    same(want, out.decode("latin-1"))


# --- stacks --------------------------------------------------------------------------

_STACK_C = r"""
#include <unistd.h>
__attribute__((noinline)) int leaf(int x) { return x * 3 + (int)getpid() % 2; }
__attribute__((noinline)) int mid(int x) { return leaf(x + 1) + 1; }
__attribute__((noinline)) int top(int x) { return mid(x + 2) + 2; }
__attribute__((noinline)) void done(void) { __asm__ volatile(""); }
int main(void) {
    volatile int n1 = 1, n2 = 2, n3 = 3;
    int s = 0, i;
    for (i = 0; i < n1; i++) s += top(i);
    for (i = 0; i < n2; i++) s += top(i);
    for (i = 0; i < n3; i++) s += top(i);
    done();
    sleep(1);
    return s == 12345;
}
"""


def _func_symbols(path: str):
    from elftools.elf.elffile import ELFFile
    with open(path, "rb") as f:
        syms = [(s["st_value"], s["st_size"], s.name)
                for s in ELFFile(f).get_section_by_name(".symtab").iter_symbols()
                if s["st_info"]["type"] == "STT_FUNC" and s["st_size"] > 0]
    return syms


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")
def test_ustack_bpftrace_and_perf_modes(tmp_path):
    """ustack values and map keys in bpftrace and perf modes, resolved while the target
    lives (print() from a probe) and unresolved after it exited (maps at exit). The
    frames' addresses are read from bpftrace's perf-mode hex column; their symbols come
    from the binary's symbol table (pyelftools), independently of bpftrace."""
    from pybpf.bpftrace.values import Frame, Stack
    src, exe = tmp_path / "t.c", str(tmp_path / "t")
    src.write_text(_STACK_C)
    subprocess.run(["gcc", "-O1", "-static", "-no-pie", "-fno-omit-frame-pointer", "-o",
                    exe, str(src)], check=True)
    prog = ("uprobe:%s:leaf { @[ustack] = count(); @p[ustack(perf)] = count(); "
            "@v = ustack(perf, 3); printf(\"%%s|\\n\", ustack(perf)); } "
            "uprobe:%s:done { print(@); print(@p); print(@v); }" % (exe, exe))
    proc = subprocess.run([BPFTRACE, "-e", prog, "-c", exe], capture_output=True,
                          timeout=120)
    out = proc.stdout.decode("latin-1")
    syms = _func_symbols(exe)

    def resolve(addr: int, alive: bool) -> Frame:
        for value, size, name in syms:
            if alive and value <= addr < value + size:
                return Frame(addr, name, addr - value, exe)
        return Frame(addr)

    # the raw stacks, in the order the printf lines show them
    raw = []
    for block in out.split("|\n")[:-1]:
        addrs = [int(line.split()[0], 16) for line in block.splitlines()
                 if line.startswith("\t")]
        if addrs:
            raw.append(addrs)
    assert len(raw) == 6, out
    ids = {}
    for a in raw:
        ids.setdefault(tuple(a), len(ids))
    counts = {k: sum(1 for a in raw if tuple(a) == k) for k in ids}
    assert sorted(counts.values()) == [1, 2, 3]

    def stack(addrs, mode, alive, limit=None):
        frames = tuple(resolve(a, alive) for a in addrs[:limit])
        return Stack(frames, user=True, mode=mode, stack_id=ids[tuple(addrs)])

    def maps(alive):
        m1 = O.MapData("@", "count", [((stack(list(k), "bpftrace", alive),), c)
                                      for k, c in counts.items()])
        m2 = O.MapData("@p", "count", [((stack(list(k), "perf", alive),), c)
                                       for k, c in counts.items()])
        m3 = O.MapData("@v", "value", [((), stack(raw[-1], "perf", alive, 3))])
        return [m1, m2, m3]

    want = O.attached_probes_text(2)
    want += "".join(format_printf("%s|\n", [stack(a, "perf", True)]) for a in raw)
    want += "".join(O.map_text(m) for m in maps(True))
    want += O.exit_maps_text(maps(False))
    same(want, out)


_SORT_CPP = r"""
#include <algorithm>
#include <cstdio>
#include <utility>
#include <vector>
int main() {
    int n;
    while (scanf("%d", &n) == 1) {
        std::vector<std::pair<long, int>> v;
        for (int i = 0; i < n; i++) { long x; scanf("%ld", &x); v.push_back({x, i}); }
        std::sort(v.begin(), v.end(), [](auto &a, auto &b) { return a.first < b.first; });
        for (auto &p : v) printf("%d ", p.second);
        printf("\n");
    }
}
"""


@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is not installed")
def test_cxx_sort_matches_libstdcxx(tmp_path):
    """Ties come out of our std::sort in the order g++'s libstdc++ puts them (sizes
    around the 16-element insertion-sort threshold, few and many distinct values,
    sorted/reversed/organ-pipe inputs)."""
    from pybpf.bpftrace.cxxsort import cxx_sort
    src, exe = tmp_path / "s.cpp", str(tmp_path / "s")
    src.write_text(_SORT_CPP)
    subprocess.run(["g++", "-O2", "-o", exe, str(src)], check=True)
    rng = random.Random(3)
    cases = [[rng.randrange(k) for _ in range(n)]
             for n in (0, 1, 2, 5, 16, 17, 20, 33, 64, 100, 257, 1000)
             for k in (1, 2, 3, 10, 10 ** 6) for _ in range(3)]
    cases += [list(range(300)), list(range(300, 0, -1)), [i % 7 for i in range(500)],
              list(range(100)) + list(range(100, 0, -1))]
    inp = "".join(f"{len(c)} " + " ".join(map(str, c)) + "\n" for c in cases)
    out = subprocess.run([exe], input=inp, capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert len(out) == len(cases)
    for c, line in zip(cases, out):
        items = list(enumerate(c))
        cxx_sort(items, lambda a, b: a[1] < b[1])
        assert [i for i, _ in items] == [int(x) for x in line.split()], c
