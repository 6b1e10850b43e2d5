"""The compile-time shortcuts of ``pybpf trace`` give what the long way gives.

* The second scan of a program whose preamble defines macros takes the first scan's
  tokens for the lines before a macro's name (``tokenize(..., reuse=)``): its tokens
  and errors must equal a full second scan's.
* The semantic passes stop repeating once a pass left the state as it found it (bpftrace
  0.17 always runs ten): the typed tree, the warnings and the resources must equal those
  of all ten passes.

Both are checked on bpftrace's own tools (``/usr/sbin/*.bt``) and on programs made to
hit the shortcuts' edges, and each check also shows that the shortcut was taken, so it
cannot pass by never running it."""

import glob
from typing import List
import os

import pytest

from pybpf.bpftrace import lexer, parser, semantic
from pybpf.bpftrace.errors import BpftraceError
from pybpf.bpftrace.session import TraceOptions, front
from pybpf.bpftrace.typed_dump import dump_program

TOOLS = sorted(glob.glob("/usr/sbin/*.bt"))

#: programs whose macros sit where the reuse must stop or restart: a macro on the first
#: line, in a comment, a string, a predicate, a macro that expands to another, one whose
#: text opens a comment, a line with two macros, Windows line ends
MACRO_PROGRAMS = [
    "#define A 1\n#define B (A + 2)\nBEGIN { @x = A; }\n\ninterval:s:1 { @y = B; exit(); }\n",
    "#define N 5\n// N in a comment\nBEGIN { printf(\"N %d\\n\", N); }\n"
    "BEGIN\n{\n  $a = 1;\n  $b = 2;\n  @c = $a + $b + N;\n}\n",
    "#define P 42\ntracepoint:syscalls:sys_enter_openat /pid == P/\n{\n  @[comm] = count();\n}\n"
    "END { clear(@); }\n",
    "#define S /* x */ 3\nBEGIN { @a = S; @b = S * S; }\n/* a long\n comment */\n"
    "BEGIN { @c = 1; }\n",
    "#define W 7\r\nBEGIN { @a = 1; }\r\nBEGIN { @b = W; }\r\n",
    "#define X Y\n#define Y 2\nBEGIN { @a = 1;\n  @b = X; }\nBEGIN { @c = 3; }\n",
]


def _sources():
    out = []
    for path in TOOLS:
        with open(path) as fh:
            out.append((os.path.basename(path), fh.read()))
    out += [(f"macros-{i}.bt", text) for i, text in enumerate(MACRO_PROGRAMS)]
    return out


def test_second_scan_equals_a_full_scan(monkeypatch) -> None:
    calls = []
    real = parser.tokenize

    def recording(source, macros=None, reuse=None):
        calls.append((source, macros, reuse))
        return real(source, macros, reuse)

    taken = []
    real_skip = lexer._Scanner.skip_unchanged

    def counting_skip(self):
        before = len(self.out.tokens)
        real_skip(self)
        taken.append(len(self.out.tokens) - before)

    monkeypatch.setattr(parser, "tokenize", recording)
    monkeypatch.setattr(lexer._Scanner, "skip_unchanged", counting_skip)
    for name, text in _sources():
        try:
            parser.parse_program(text, name, headers=True)
        except BpftraceError:
            pass                    # a program refused: its scans are compared all the same
    second = [(s, m, r) for s, m, r in calls if r is not None]
    assert len(second) >= 10
    assert sum(taken) > 1000        # the reuse took tokens over
    for source, macros, reuse in second:
        fast = real(source, macros, reuse)
        slow = real(source, macros)
        assert [(t.kind, t.value, repr(t.loc), t.line, t.col, t.end_col)
                for t in fast.tokens] == \
            [(t.kind, t.value, repr(t.loc), t.line, t.col, t.end_col) for t in slow.tokens]
        assert [(n, str(d)) for n, d in fast.errors] == [(n, str(d)) for n, d in slow.errors]


def _analysed(name: str, text: str):
    try:
        r = front(text, name, TraceOptions())
    except BpftraceError as exc:
        return ("error", str(exc), [str(w) for w in getattr(exc, "warnings", []) or []])
    a = r.analysis
    return (dump_program(r.program, r.attach_points), [str(w) for w in a.warnings],
            repr(a.probes), repr(a.maps), repr(a.actions), repr(a.stack_types),
            a.needs_elapsed_map, a.needs_join_map)


@pytest.mark.parametrize("name, text", _sources(), ids=[n for n, _ in _sources()])
def test_passes_stop_at_the_same_result(monkeypatch, name, text) -> None:
    visits = []
    real_visit = semantic.Analyser.visit_probe

    def counting(self, probe):
        visits.append(self.pass_)
        return real_visit(self, probe)

    monkeypatch.setattr(semantic.Analyser, "visit_probe", counting)
    fast = _analysed(name, text)
    fast_passes = len(set(visits))
    visits.clear()
    monkeypatch.setattr(semantic, "_FIXPOINT_TRIES", 1)        # no comparisons: ten passes
    slow = _analysed(name, text)
    slow_passes = len(set(visits))
    assert fast == slow
    if fast[0] != "error" and slow_passes == semantic.NUM_PASSES:
        assert fast_passes < slow_passes            # the shortcut was taken


def _tree(node):
    """Everything of a syntax tree, locations included (``==`` on nodes leaves them out)."""
    if isinstance(node, (list, tuple)):
        return [_tree(x) for x in node]
    if isinstance(node, dict):
        return {k: _tree(v) for k, v in node.items()}
    if hasattr(node, "__dict__") and not isinstance(node, type):
        return (type(node).__name__, {k: _tree(v) for k, v in vars(node).items()})
    return node


def _parsed(name: str, text: str):
    try:
        prog = parser.parse_program(text, name, headers=True)
    except BpftraceError as exc:
        return ("error", str(exc))
    return _tree([prog.c_definitions, prog.probes, prog.span])


def test_second_parse_reuses_statements(monkeypatch) -> None:
    """The second parse (macros expanded) takes the first parse's statements made of the
    same token objects: the tree, locations included, and the errors must equal a
    second parse without them, and some must be taken."""
    taken = []
    real = parser.Parser.reused_stmt

    def counting(self, i):
        got = real(self, i)
        taken.append(got is not None)
        return got

    monkeypatch.setattr(parser.Parser, "reused_stmt", counting)
    fast = [_parsed(name, text) for name, text in _sources()]
    assert sum(taken) > 50 and not all(taken)      # taken, and refused on macro lines
    monkeypatch.setattr(parser.Parser, "reused_stmt", lambda self, i: None)
    slow = [_parsed(name, text) for name, text in _sources()]
    for (name, _), a, b in zip(_sources(), fast, slow):
        assert a == b, name
    # edited programs: a macro moved into, out of and next to statements
    edits = ["#define A 1\nBEGIN { @a = 1; @b = A; @c = 2 }\nEND { @d = A }\n",
             "#define A 1\nBEGIN { @a = 1;\n  @b = A;\n  @c = 2; if (A) { @e = 3; }\n}\n",
             "#define A (\nBEGIN { @a = 1;\n  @b = A 1);\n  @c = 2; }\n",
             "#define A 1 +\nBEGIN { @a = 1;\n  @b = A\n  2; @c = 2; }\n",
             "#define A }\nBEGIN { @a = 1;\n  if (1) { @b = 2; A\n  @c = 2; }\n",
             "#define A -\nBEGIN { @a = 1;\n  $x = 2 A\n  1; @c = (int8)$x; }\n"]
    for text in edits:
        monkeypatch.setattr(parser.Parser, "reused_stmt", counting)
        a = _parsed("e.bt", text)
        monkeypatch.setattr(parser.Parser, "reused_stmt", lambda self, i: None)
        assert a == _parsed("e.bt", text), text


def test_the_collector_is_paused_while_compiling_and_resumed_after() -> None:
    """No cyclic collection runs inside parse + analysis + lowering, even with a
    threshold that would collect at every allocation; the collector is on again after
    (and stays off when the caller had turned it off)."""
    import gc
    from pybpf.bpftrace.lower import lower_program
    with open("/usr/sbin/opensnoop.bt" if os.path.exists("/usr/sbin/opensnoop.bt")
              else TOOLS[0]) as fh:
        source = fh.read()
    seen: List[str] = []

    def record(phase: str, info: dict) -> None:
        if phase == "start":
            seen.append(phase)

    opts = TraceOptions()
    old = gc.get_threshold()
    gc.collect()
    gc.callbacks.append(record)
    try:
        gc.set_threshold(1)
        n0 = len(seen)                  # (len() and these names allocate nothing)
        result = front(source, "tool.bt", opts)
        n1 = len(seen)
        lower_program(result, opts)
        n2 = len(seen)
        inside = [n1 - n0, n2 - n1]
        assert gc.isenabled()
        [object() for _ in range(10)] and [[] for _ in range(10)]
        after = list(seen)
        gc.disable()
        lower_program(front(source, "tool.bt", opts), opts)
        assert not gc.isenabled()
        gc.enable()
    finally:
        gc.set_threshold(*old)
        gc.callbacks.remove(record)
        gc.enable()
    # at most the one the call's own argument tuple sets off, before the pause
    assert inside[0] <= 1 and inside[1] <= 1, inside
    assert len(after) > 0            # the recorder sees collections when there are some
