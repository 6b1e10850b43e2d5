"""The bpftrace front end against the installed bpftrace 0.17 (the oracle; skipped,
naming it, without bpftrace or root):

* operator precedence and associativity: expressions evaluated by bpftrace
  (``printf("%lld")`` in a BEGIN probe) and by a constant evaluator over our tree with
  bpftrace 0.17's integer rules (int64 literals; a result is signed only when both
  operands are; ``/``, ``%`` and ``>>`` unsigned; casts truncate and extend by the cast's
  sign; unary ``-``/``~`` work at the operand's width; a ternary takes its left branch's
  sign);
* syntax errors: the same ``FILE:LINE:COL-COL`` for every error bpftrace prints, the same
  lexical and grammar-rule messages, and for bison's "syntax error, unexpected X[,
  expecting ...]" the same unexpected token (the expected list comes from bison's LALR
  tables, which a recursive-descent parser does not have, so it is not compared);
* programs bpftrace parses (``-d`` prints "AST after: parser") parse here;
* node locations: where bpftrace's semantic errors point is where our nodes say.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
from typing import Callable, List, Tuple

import pytest

from pybpf.bpftrace import ast as A
from pybpf.bpftrace.errors import BpftraceSyntaxError
from pybpf.bpftrace.parser import parse, parse_expression

BPFTRACE = shutil.which("bpftrace")
pytestmark = [
    pytest.mark.skipif(BPFTRACE is None, reason="bpftrace is not installed "
                                                "(apt-get install bpftrace)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="running bpftrace needs root"),
]

_DIAG = re.compile(r"^(stdin:\d+(?::\d+-\d+|-\d+)): (ERROR|WARNING): (.*)$")
M64 = (1 << 64) - 1


def run_bpftrace(*args: str, timeout: float = 60) -> Tuple[str, str]:
    """stdout and stderr of bpftrace (killed after ``timeout``: a program that parsed may
    go on running)."""
    assert BPFTRACE is not None
    proc = subprocess.Popen([BPFTRACE, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return out, err


def bpftrace_errors(err: str, levels: Tuple[str, ...] = ("ERROR",)) -> List[Tuple[str, str]]:
    """(``stdin:L:C-C``, message) of the located diagnostics bpftrace printed."""
    out = []
    for line in err.splitlines():
        m = _DIAG.match(line)
        if m and m.group(2) in levels:
            out.append((m.group(1), m.group(3)))
    return out


# --- the evaluator ---------------------------------------------------------------------

class Skip(Exception):
    """The expression has no defined value (shift >= 64, division by zero)."""


_CASTS = {f"{s}int{b}": (b, s == "") for b in (8, 16, 32, 64) for s in ("", "u")}


def ext(v: Tuple[int, int, bool]) -> int:
    value, bits, signed = v
    if signed and value >> (bits - 1) & 1:
        return (value - (1 << bits)) & M64
    return value


def s64(x: int) -> int:
    return x - (1 << 64) if x >> 63 else x


def ev(e: A.Expr) -> Tuple[int, int, bool]:
    """(value, width, signed) of a constant expression under bpftrace 0.17's rules."""
    if isinstance(e, A.Integer):
        return e.value & M64, 64, True
    if isinstance(e, A.Cast):
        bits, signed = _CASTS[e.type_name]
        return ext(ev(e.expr)) & ((1 << bits) - 1), bits, signed
    if isinstance(e, A.Unop):
        v = ev(e.expr)
        mask = (1 << v[1]) - 1               # - and ~ work at the operand's width
        if e.op == "-":
            return -v[0] & mask, v[1], v[2]
        if e.op == "~":
            return ~v[0] & mask, v[1], v[2]
        assert e.op == "!"
        return int(v[0] == 0), v[1], False
    if isinstance(e, A.Ternary):
        c, left, right = ev(e.cond), ev(e.left), ev(e.right)
        chosen = left if ext(c) else right
        return ext((chosen[0], chosen[1], left[2])), 64, left[2]
    assert isinstance(e, A.Binop), e
    lv, rv = ev(e.left), ev(e.right)
    a, b = ext(lv), ext(rv)
    signed = lv[2] and rv[2]
    op = e.op
    if op in ("<<", ">>"):
        if b >= 64:
            raise Skip
        return ((a << b) & M64 if op == "<<" else a >> b), 64, lv[2]
    if op in ("/", "%"):
        if b == 0:
            raise Skip
        return (a // b if op == "/" else a % b), 64, signed
    if op in ("<", "<=", ">", ">="):
        x, y = (s64(a), s64(b)) if signed else (a, b)
        res = {"<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y}[op]
        return int(res), 64, signed
    res = {"+": a + b, "-": a - b, "*": a * b, "&": a & b, "|": a | b, "^": a ^ b,
           "==": int(a == b), "!=": int(a != b), "&&": int(bool(a) and bool(b)),
           "||": int(bool(a) or bool(b))}[op]
    return res & M64, 64, signed


# --- the corpus ------------------------------------------------------------------------

HANDWRITTEN = [
    "1 + 2 * 3", "(1 + 2) * 3", "10 - 3 - 2", "100 / 10 / 5", "7 % 4 * 3", "2 * 7 % 4",
    "1 << 2 + 1", "(1 << 2) + 1", "256 >> 2 >> 1", "1 < 2 == 1", "3 > 2 > 1",
    "1 == 2 == 0", "5 & 3 == 3", "(5 & 3) == 3", "6 | 1 ^ 3", "6 ^ 3 & 5", "1 | 2 & 3",
    "0 || 1 && 0", "(0 || 1) && 0", "1 ? 2 : 3", "0 ? 2 : 3 ? 4 : 5", "1 + 1 ? 7 : 8",
    "0 ? 1 : 2 + 3", "-1 - -1", "-5 / 2", "-7 % 3", "-1 >> 60", "-1 < 0", "-1 < 1",
    "(uint64)-1 < 1", "-1 > (uint8)1", "~0 == -1", "!5 + 1", "!0 * 3", "-(3) * -(2)",
    "(uint8)300 + 0", "(int8)200 + 0", "(uint16)-1 + 0", "(int32)0xffffffff + 0",
    "(uint32)-1 >> 1", "(int8)-1 >> 4", "2e3 + 1_000 + 017 + 0x10",
    "0xffffffffffffffff == -1", "1 << 63 >> 63", "9223372036854775807 + 1 < 0",
    "3 - 2 + 1", "24 / 4 * 3", "1 < 2 < 3", "2 != 2 == 0", "8 >> 1 << 2",
    "1 ? 0 ? 5 : 6 : 7", "1 && 2 || 0 && 0", "1 & 3 | 4 ^ 6", "!(1 < 2) || ~1 == -2",
    "(int16)40000 * (uint8)3", "(uint8)(1 + 255) + 0", "- -5", "~-1 + 0",
]

_ATOMS = ["0", "1", "2", "3", "7", "9", "10", "100", "255", "256", "65535", "-1", "-3",
          "-128", "0xffffffff", "0x7fffffffffffffff", "1_000", "2e3", "017", "0x10"]
_OPS = ["+", "-", "*", "/", "%", "<<", ">>", "<", "<=", ">", ">=", "==", "!=", "&", "|",
        "^", "&&", "||"]


def _gen(rng: random.Random, depth: int) -> str:
    r = rng.random()
    if depth == 0 or r < 0.25:
        return rng.choice(_ATOMS)
    if r < 0.70:
        return f"{_gen(rng, depth - 1)} {rng.choice(_OPS)} {_gen(rng, depth - 1)}"
    if r < 0.80:
        return f"({_gen(rng, depth - 1)})"
    if r < 0.88:
        return f"({rng.choice(list(_CASTS))})({_gen(rng, depth - 1)})"
    if r < 0.94:
        op = rng.choice(["-", "~", "!"])
        return f"{op} ({_gen(rng, depth - 1)})"
    return f"{_gen(rng, depth - 1)} ? {_gen(rng, depth - 1)} : {_gen(rng, depth - 1)}"


def corpus() -> List[Tuple[str, int]]:
    rng = random.Random(19)
    out: List[Tuple[str, int]] = []
    texts = list(HANDWRITTEN)
    while len(texts) < len(HANDWRITTEN) + 600:
        texts.append(_gen(rng, 4))
    for text in texts:
        full = f"({text}) + 0"
        try:
            out.append((full, s64(ev(parse_expression(full))[0])))
        except Skip:
            continue
    return out


def test_precedence_against_bpftrace() -> None:
    cases = corpus()
    assert len(cases) > 400
    mismatches = []
    for i in range(0, len(cases), 60):
        batch = cases[i:i + 60]
        body = " ".join(f'printf("%lld\\n", {text});' for text, _ in batch)
        out, err = run_bpftrace("-e", f"BEGIN {{ {body} exit(); }}")
        lines = out.splitlines()
        assert lines and lines[0].startswith("Attaching"), err
        got = lines[1:1 + len(batch)]
        assert len(got) == len(batch), err
        for (text, want), line in zip(batch, got):
            if int(line) != want:
                mismatches.append((text, line, want))
    assert not mismatches, mismatches[:10]


REJECT = [
    "BEGIN { $x = ; }", "BEGIN {$x=1+;}", "BEGIN {\n\t$x = 1 +  ;\n}\n",
    "BEGIN { $x = ,; }", "BEGIN { if (1) {} ; }", "BEGIN { ; }",
    "BEGIN { $x = (foo) + 1; }", "BEGIN { $x = (struct foo *)0; $y = ; }",
    "BEGIN { $x = count; }", "BEGIN { $x = 1 }}", "BEGIN", "BEGIN { for ($x : @m) {} }",
    'BEGIN { $x = "a\nb"; }', "BEGIN { $x = 08; }", "BEGIN { $x = 10e2; }",
    "BEGIN { $x = 1e17; }", "BEGIN { $x = $0; }", "BEGIN { $t.0 = 1; }",
    "BEGIN { pid++; }", "BEGIN { ++comm; }", "BEGIN { foo(1); }", "BEGIN { pid(); }",
    "BEGIN { /* x", "BEGIN {} // x", "BEGIN { $x = 1 ? 2 :3; }", "BEGIN { $x = -1--1; }",
    "BEGIN { $x = 'c'; }", 'BEGIN { $x = "\\q"; }', 'BEGIN { $x = "\\777"; }',
    "BEGIN { $a = $b = 1; }", "BEGIN { ($x) = 1; }", "BEGIN { $x++ = 1; }",
    "BEGIN { @x[] = 1; }", "BEGIN { $x = (uint8 *) ; }", "BEGIN { $x = (uint8 * 2); }",
    "BEGIN { $x = 1 2; }", "BEGIN { $x.y = 1; }", "BEGIN { $x = $y->1; }",
    "BEGIN { if 1 { } }", "BEGIN { if (1) { } else ; }", "BEGIN { while (1) ; }",
    "BEGIN { unroll($x) { } }", "BEGIN { @x[1 = 2; }", "BEGIN { printf(\"a\" }",
    "BEGIN { $x = # }", "kprobe:f / pid == 1 { }", "BEGIN,$# { }",
    "BEGIN { $x = 1; }\nEND { $y = 2 }\ni:s:1 { $z = 3 +; }",
    "#include <linux/sched.h>\nBEGIN {}\n#define X 1\n", "BEGIN { $x = 1 $ 2; }",
    "BEGIN { $x = @; @ = ; }", "BEGIN { $x = 1 + + 2; }", "BEGIN { $x = (1, ); }",
    "BEGIN { $x = \"abc }", "BEGIN { $x = (struct a) ; }", "BEGIN { $x = $$; }",
    "BEGIN { @x-- --; }", "BEGIN { $x = a.b.c(); }", "BEGIN { $x = 0x; }",
    "BEGIN { break }; END { $x += ; }", "BEGIN { $x = 1 ? 2 ; }",
]


def _ours(src: str) -> List[Tuple[str, str]]:
    try:
        parse(src)
    except BpftraceSyntaxError as err:
        return err.prefixes()
    return []


def _same_message(theirs: str, ours: str) -> bool:
    if theirs.startswith("syntax error, unexpected "):
        return ours.split(", expecting")[0] == theirs.split(", expecting")[0]
    return theirs == ours


@pytest.mark.parametrize("src", REJECT)
def test_syntax_errors_where_bpftrace_reports_them(src: str) -> None:
    _, err = run_bpftrace("-e", src)
    theirs = bpftrace_errors(err)
    assert theirs, err
    ours = _ours(src)
    assert [loc for loc, _ in ours] == [loc for loc, _ in theirs], (ours, theirs)
    for (_, t), (_, o) in zip(theirs, ours):
        assert _same_message(t, o), (t, o)


ACCEPT = [
    "BEGIN { $x = 1; $y = $x ? 2 : 3; printf(\"%d %d\\n\", $x, $y); exit(); }",
    "BEGIN { @m[1, \"a\"] = 2; @m[2, \"b\"] += 3; @n++; --@n; exit(); }",
    "BEGIN { $t = (1, \"two\", 3); printf(\"%d\\n\", $t.0); exit(); }",
    "BEGIN { $i = 0; while ($i < 3) { $i++; if ($i == 2) { continue } } exit(); }",
    "BEGIN { unroll(3) { @c = count(); } exit() }",
    "BEGIN { if (1) { $x = 1 } else if (2) { $x = 2 } else { $x = 3 } exit(); }",
    "BEGIN { $p = (struct task_struct *)curtask; $x = $p->pid; exit(); }",
    "BEGIN { $x = (uint8)1 + (int16)-2; $s = sizeof(struct task_struct); exit(); }",
    "t:syscalls:sys_enter_openat,\nt:syscalls:sys_enter_open /pid == 1/ { @[comm] = "
    "count(); }\nEND { clear(@); }",
    "#!/usr/bin/bpftrace\n// comment\n/* block\ncomment */\nBEGIN { printf(\"\\x41\\101\\n\");"
    " exit(); }",
    "#define FOO 3\nstruct s { int a; char b[FOO]; };\nBEGIN { $x = FOO * 2; exit(); }",
    "profile:hz:99 { @[kstack(perf, 3)] = count(); } interval:s:1 { exit(); }",
    "BEGIN { $x = -1 >> 1; $y = !$x; $z = ~$x; $w = *curtask; exit(); }",
    "kprobe:do_nanosleep { @[kstack] = count(); } kretprobe:do_nanosleep { @r = retval }",
    "BEGIN { @a[1] = 1; delete(@a[1]); print(@a, 10, 2); zero(@a); exit() }",
    "BEGIN { $x = 2e3 + 1_000 + 0x10 + 017 + 5ULL; return; }",
]


@pytest.mark.parametrize("src", ACCEPT)
def test_programs_bpftrace_parses_parse(src: str) -> None:
    out, err = run_bpftrace("-d", "-e", src, timeout=30)
    assert "AST after: parser" in out, err
    parse(src)


LOCATED: List[Tuple[str, Callable[[A.Program], object]]] = [
    ('BEGIN { $x = "a" + 1; }',
     lambda p: p.probes[0].body[0].value.left.loc + p.probes[0].body[0].value.right.loc),
    ('BEGIN { printf("%d\\n"); }', lambda p: p.probes[0].body[0].expr.loc),
    ('BEGIN { $x = (uint8)"a"; }', lambda p: p.probes[0].body[0].value.loc),
    ("BEGIN {   $y = $x; }", lambda p: p.probes[0].body[0].value.loc),
    ('BEGIN { @m[1] = 1;\n  @m["a"] = 2; }', lambda p: p.probes[0].body[1].map.loc),
    ('BEGIN { $x = 1; $x = "s"; }', lambda p: p.probes[0].body[1].loc),
    ("BEGIN { $t = (1, 2); $x = $t.5; }", lambda p: p.probes[0].body[1].value.loc),
    ('BEGIN { $x = 1 ? "a" : 2; }', lambda p: p.probes[0].body[0].value.loc),
    ("BEGIN {\n\tunroll(0) { } }", lambda p: p.probes[0].body[0].loc),
    ("BEGIN{$x=ksym(1,2)}", lambda p: p.probes[0].body[0].value.loc),
    ("BEGIN { $x = (struct foo *)0; $y = ksym(1, 2); }",
     lambda p: p.probes[0].body[1].value.loc),
    ('BEGIN { if ("a") { } }', lambda p: p.probes[0].body[0].loc),
    ("BEGIN {},   kprobe:nonexistent_fn2 { }", lambda p: p.probes[1].attach_points[1].loc),
]


@pytest.mark.parametrize("src,pick", LOCATED, ids=[s for s, _ in LOCATED])
def test_node_locations_match_bpftrace_errors(src: str, pick) -> None:
    _, err = run_bpftrace("-e", src, timeout=20)
    theirs = bpftrace_errors(err, ("ERROR", "WARNING"))
    assert theirs, err
    assert f"stdin:{pick(parse(src))}" in [loc for loc, _ in theirs]
