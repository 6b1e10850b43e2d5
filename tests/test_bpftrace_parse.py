"""The bpftrace front end without running bpftrace: bpftrace's own tools parse and
round-trip through the printer, tokens and the tree have bpftrace 0.17's shape (the
facts here were checked against bpftrace 0.17 on this machine; the differential tests
against the running binary are in test_bpftrace_oracle.py), the preamble reader."""

from __future__ import annotations

import glob
import subprocess

import pytest

from pybpf.bpftrace import ast as A
from pybpf.bpftrace.errors import BpftraceSyntaxError, Location
from pybpf.bpftrace.lexer import tokenize
from pybpf.bpftrace.parser import parse, parse_expression, parse_program
from pybpf.bpftrace.printer import format_program


def _tool_files():
    try:
        out = subprocess.run(["dpkg", "-L", "bpftrace"], capture_output=True, text=True,
                             timeout=30).stdout.split()
    except (OSError, subprocess.SubprocessError):
        out = []
    files = sorted(f for f in out if f.endswith(".bt")) or sorted(glob.glob("/usr/sbin/*.bt"))
    return files


TOOLS = _tool_files()


@pytest.mark.skipif(not TOOLS, reason="bpftrace's tools are not installed "
                                      "(apt-get install bpftrace)")
@pytest.mark.parametrize("path", TOOLS, ids=lambda p: p.rsplit("/", 1)[-1])
def test_official_tool_parses_and_round_trips(path: str) -> None:
    with open(path) as f:
        source = f.read()
    prog = parse_program(source, path)
    assert prog.probes and any(p.body for p in prog.probes)
    text = format_program(prog)
    again = parse_program(text, "printed")
    assert again == prog
    assert format_program(again) == text


def kinds(src: str):
    return [(t.kind, t.value) for t in tokenize(src).tokens[:-1]]


def test_attach_points_are_glued_from_expression_tokens() -> None:
    assert kinds("kprobe:fn+0x10") == [("IDENT", "kprobe"), ("PATH", ":fn"), ("PLUS", None),
                                       ("INT", 16)]
    assert kinds("uprobe:/bin/bash:readline") == [("IDENT", "uprobe"),
                                                  ("PATH", ":/bin/bash"),
                                                  ("PATH", ":readline")]
    prog = parse('kprobe:fn+0x10, uprobe:/bin/bash:readline,\ntracepoint:syscalls:sys_enter_*,'
                 'profile:hz:99, uprobe:"/a b":f, i:s:$1 { }')
    raws = [ap.raw for ap in prog.probes[0].attach_points]
    assert raws == ["kprobe:fn+16", "uprobe:/bin/bash:readline",
                    "tracepoint:syscalls:sys_enter_*", "profile:hz:99", 'uprobe:"/a b":f',
                    "i:s:$1"]
    assert prog.probes[0].attach_points[0].provider == "kprobe"


def test_words_builtins_calls_and_single_digit_args() -> None:
    assert kinds("arg0 arg9 arg10 sarg3 pid pidx kstack count if ifx perf") == [
        ("BUILTIN", "arg0"), ("BUILTIN", "arg9"), ("IDENT", "arg10"), ("BUILTIN", "sarg3"),
        ("BUILTIN", "pid"), ("IDENT", "pidx"), ("CALL_BUILTIN", "kstack"),
        ("CALL", "count"), ("IF", None), ("IDENT", "ifx"), ("STACK_MODE", "perf")]
    assert kinds("$x $1 $# @ @m") == [("VAR", "$x"), ("PARAM", "$1"), ("PARAMCOUNT", None),
                                      ("MAP", "@"), ("MAP", "@m")]


@pytest.mark.parametrize("text,value", [
    ("10", 10), ("1_000_000", 1000000), ("0x1F", 31), ("017", 15), ("2e3", 2000),
    ("9e16", 9 * 10 ** 16), ("5u", 5), ("5ULL", 5), ("7l", 7), ("0xffffffffffffffff", -1),
])
def test_integer_literals(text: str, value: int) -> None:
    assert kinds(text) == [("INT", value)]


@pytest.mark.parametrize("text,message", [
    ("08", "Found trailing non-numeric characters"),
    ("10e2", "Coefficient part of scientific literal must be in range (0,9), got: 10"),
    ("1e17", "Exponent will overflow integer range: 17"),
    ("99999999999999999999", "stoull"),
])
def test_bad_integer_literals(text: str, message: str) -> None:
    res = tokenize(text)
    assert [d.message for _, d in res.errors] == [message]


def test_strings_and_escapes() -> None:
    assert kinds(r'"a\n\t\r\"\\\0\101\x41\x4"') == [
        ("STRING", b'a\n\t\r"\\\x00AA\x04')]
    errs = [d.message for _, d in tokenize(r'"\q \777"').errors]
    assert errs == ["invalid escape character '\\q'",
                    "octal escape sequence out of range '\\777'"]
    assert [d.message for _, d in tokenize("'c'").errors] == ["invalid character '''"] * 2


def test_comments_predicate_end_and_path_quirk() -> None:
    assert kinds("/* x */ a // y\nb") == [("IDENT", "a"), ("IDENT", "b")]
    # a // comment without a newline after it is two slashes (bpftrace 0.17 does this)
    assert [k for k, _ in kinds("a //")] == ["IDENT", "ENDPRED", "DIV"]
    assert [k for k, _ in kinds("/pid/ {")][-2:] == ["ENDPRED", "LBRACE"]
    assert [k for k, _ in kinds("/pid / 2/{")] == ["DIV", "BUILTIN", "DIV", "INT",
                                                   "ENDPRED", "LBRACE"]
    assert kinds("1 ? 2 :3")[-1] == ("PATH", ":3")


def test_locations_follow_bpftrace() -> None:
    toks = tokenize("BEGIN {$x=1+;}").tokens
    semi = [t for t in toks if t.kind == "SEMI"][0]
    assert semi.loc == Location(1, 7, 1, 14) and (semi.col, semi.end_col) == (13, 14)
    # a struct cast shifts later columns by one, as in bpftrace
    toks = tokenize("$x = (struct foo *)0; $y").tokens
    assert toks[-2].loc == Location(1, 24, 1, 26)
    toks = tokenize("a\n\tb").tokens
    assert toks[1].loc == Location(2, 2, 2, 3)


def test_precedence_and_associativity() -> None:
    def shape(e: A.Expr) -> str:
        if isinstance(e, A.Binop):
            return f"({shape(e.left)} {e.op} {shape(e.right)})"
        if isinstance(e, A.Unop):
            return f"({e.op}{shape(e.expr)})"
        if isinstance(e, A.Ternary):
            return f"({shape(e.cond)} ? {shape(e.left)} : {shape(e.right)})"
        if isinstance(e, A.Cast):
            return f"(({e.type_name}){shape(e.expr)})"
        if isinstance(e, A.Integer):
            return str(e.value)
        return e.name  # type: ignore[attr-defined]
    cases = {
        "1 + 2 * 3": "(1 + (2 * 3))", "1 - 2 - 3": "((1 - 2) - 3)",
        "1 << 2 + 3": "(1 << (2 + 3))", "1 < 2 == 3 > 4": "((1 < 2) == (3 > 4))",
        "1 & 2 == 2": "(1 & (2 == 2))", "1 | 2 ^ 3 & 4": "(1 | (2 ^ (3 & 4)))",
        "1 || 2 && 3": "(1 || (2 && 3))", "1 ? 2 : 3 ? 4 : 5": "(1 ? 2 : (3 ? 4 : 5))",
        "-1 - -2": "(-1 - -2)", "-$x * 2": "((-$x) * 2)", "!$x == 0": "((!$x) == 0)",
        "(uint8)$x + 1": "(((uint8)$x) + 1)", "~-1": "(~-1)", "$a ? $b : $c + 1":
        "($a ? $b : ($c + 1))",
    }
    for src, want in cases.items():
        assert shape(parse_expression(src)) == want, src


def test_statements_and_postfix_forms() -> None:
    prog = parse("BEGIN { @m[1, \"a\"] += 2; $t = (1, 2); $v = $t.1; @x++; --$y;"
                 " $p->f.g[3]; unroll(3) { @i++ } while ($i < 3) { $i++; if ($i) { break }"
                 " else if ($j) { continue } else { return } } }")
    body = prog.probes[0].body
    assert isinstance(body[0], A.AssignMap) and body[0].op == "+"
    assert len(body[0].map.keys) == 2
    assert isinstance(body[1].value, A.Tuple)                # type: ignore[attr-defined]
    assert isinstance(body[2].value, A.TupleAccess)          # type: ignore[attr-defined]
    assert isinstance(body[3].expr, A.Unop) and body[3].expr.is_post  # type: ignore
    e = body[5].expr                                         # type: ignore[attr-defined]
    assert isinstance(e, A.ArrayAccess) and isinstance(e.expr, A.FieldAccess)
    assert e.expr.expr.arrow and e.expr.expr.field == "f"
    assert isinstance(body[6], A.Unroll) and isinstance(body[7], A.While)
    nested = body[7].body[1]                                 # type: ignore[attr-defined]
    assert isinstance(nested, A.If) and isinstance(nested.orelse[0], A.If)


def test_for_loop_only_on_request() -> None:
    with pytest.raises(BpftraceSyntaxError) as err:
        parse("BEGIN { for ($kv : @m) { } }")
    assert err.value.prefixes()[0][0] == "stdin:1:9-12"
    prog = parse("BEGIN { for ($kv : @m) { print($kv.0) } }", allow_for=True)
    assert isinstance(prog.probes[0].body[0], A.For)


def test_error_rendering_shape() -> None:
    with pytest.raises(BpftraceSyntaxError) as err:
        parse("BEGIN {\n\t$x = 1 +  ;\n}\n", "/tmp/t1.bt")
    assert str(err.value) == ("/tmp/t1.bt:2:12-13: ERROR: syntax error, unexpected ;\n"
                              "    $x = 1 +  ;\n"
                              "              ~")


def test_preamble_defines_structs_and_conditionals(tmp_path) -> None:
    src = ("#define N 16\n#define M (N*2 + 1) // c\n#ifndef BPFTRACE_HAVE_BTF\n"
           "#include <linux/sched.h>\n#else\n#include <sys/socket.h>\n#endif\n"
           "struct foo { int a; char name[M]; struct bar *b, **c; unsigned int f : 3;\n"
           "  union { int x; long y; }; };\nenum e { A, B = N, C };\n"
           "BEGIN { printf(\"%d\\n\", M); }\n")
    prog = parse_program(src)
    pre = prog.preamble
    assert [i.path for i in pre.includes] == ["sys/socket.h"]       # type: ignore
    assert pre.constants == {"N": 16, "M": 33, "A": 0, "B": 16, "C": 17}  # type: ignore
    fields = pre.structs["struct foo"].fields                         # type: ignore
    assert [(f.name, f.type.base, f.type.pointer, f.type.array, f.bits) for f in fields] == [
        ("a", "int", 0, [], None), ("name", "char", 0, [33], None),
        ("b", "struct bar", 1, [], None), ("c", "struct bar", 2, [], None),
        ("f", "unsigned int", 0, [], 3), ("", "union", 0, [], None)]
    arg = prog.probes[0].body[0].expr.args[1]                         # type: ignore
    assert isinstance(arg, A.Binop) and arg.op == "+"                 # M was expanded
    no_btf = parse_program(src, btf=False).preamble
    assert [i.path for i in no_btf.includes] == ["linux/sched.h"]     # type: ignore


@pytest.mark.parametrize("src,where,message", [
    ("#define F(x) x\nBEGIN {}", "stdin:1:1-15", "function-like macro F()"),
    ("#pragma once\nBEGIN {}", "stdin:1:1-13", "unsupported preprocessor directive"),
    ("struct s {\n  int (*fn)(void);\n};\nBEGIN {}", "stdin:2:1-19",
     "function pointer fields"),
    ("#ifdef X\nBEGIN {}", "stdin:1:1-9", "unterminated #if"),
])
def test_preamble_errors_name_the_line(src: str, where: str, message: str) -> None:
    with pytest.raises(BpftraceSyntaxError) as err:
        parse_program(src)
    loc, msg = err.value.prefixes()[0]
    assert loc == where and message in msg
