"""The three verifier lessons of programs/tutorial/ say what the kernel does: each
refused version is refused by this kernel at the instruction (and source line) its
lesson names, with the complaint it quotes; each fix loads; and the mistakes the lessons
say pybpf's language refuses at compile time are refused there, with the quoted error.
Every program is loaded and closed again (the process holds no program fd after)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bpfenv import needs_bpf

ROOT = Path(__file__).resolve().parent.parent
TUTORIAL = ROOT / "programs" / "tutorial"


def _prog_fds() -> int:
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            n += os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:bpf-prog"
        except OSError:
            pass
    return n


@pytest.fixture
def no_leak():
    before = _prog_fds()
    yield
    assert _prog_fds() == before


def _explain(name: str, function=None):
    from pybpf.explain import explain_file
    return explain_file(str(TUTORIAL / name), function=function)


def _refused_at(report, index: int, line_text: str, complaint: str) -> None:
    assert not report.accepted and report.trace is not None
    fail = report.trace.failure
    assert fail.index == index and fail.path[-1] == index
    from pybpf.explain import source_text
    assert source_text(report.source_of(index)).startswith(line_text)
    assert complaint in fail.complaint


@needs_bpf
def test_null_check_lesson(no_leak) -> None:
    [refused] = _explain("verifier_null_check_refused.s")
    _refused_at(refused, 11, "r1 = *(u32 *)(r0 + 4)", "R0 invalid mem access 'sock_or_null'")
    assert refused.trace.failure.path == list(range(12))
    state = refused.trace.visits_of(11)[-1].before
    assert state.regs[0].type == "sock_or_null"
    [fixed] = _explain("verifier_null_check_fixed.s")
    assert fixed.accepted and fixed.jited_len > 0
    assert [v.before.regs[0].type for v in fixed.trace.visits_of(13)] == ["sock"]
    [count] = _explain("verifier_null_check.py")
    assert count.accepted


@needs_bpf
def test_packet_bounds_lesson(no_leak) -> None:
    refused, fixed = _explain("verifier_packet_bounds.py")
    assert (refused.name, fixed.name) == ("unbounded", "bounded")
    _refused_at(refused, 21, "return b.b", "R1 offset is outside of the packet")
    assert refused.trace.failure.complaint.startswith("invalid access to packet")
    assert fixed.accepted
    # the lesson's point: after the check, r=0 unbounded, r=1 bounded (path p2)
    read = {r.name: [v for v in r.trace.visits if v.text.startswith("if r1 == 0x0")
                     and v.path == 2][0].before.regs[1] for r in (refused, fixed)}
    assert read["unbounded"].fields["r"] == 0 and read["unbounded"].umax == 0xFFFFFFFF
    assert read["bounded"].fields["r"] == 1 and read["bounded"].bounds["umax"] == 255


@needs_bpf
def test_loop_bound_lesson(no_leak) -> None:
    [refused] = _explain("verifier_loop_bound_refused.s")
    _refused_at(refused, 6, "r6 += 1", "infinite loop detected at insn 6")
    fail = refused.trace.failure
    assert fail.path == [0, 1, 2, 3, 4, 5, 6, 7, 6, 7, 6]
    assert [str(v.before.regs[6].short()) for v in refused.trace.visits_of(6)] == \
        ["scalar()", "scalar(umin=1)"]
    [fixed] = _explain("verifier_loop_bound.py")
    assert fixed.accepted


def test_language_refuses_at_compile_time(tmp_path) -> None:
    """What two lessons quote: the unchecked lookup and the while loop do not compile."""
    from pybpf.dsl import compile_function, functions_in_file
    src = tmp_path / "mistakes.py"
    src.write_text(textwrap.dedent("""\
        from pybpf.dsl import HashMap, Struct, bpf, u32, u64

        counts = HashMap(u32, u64, max_entries=4)

        @bpf
        def unchecked(ctx):
            v = counts.get(u32(0))
            v[0] += 1
            return 2

        @bpf
        def loop(ctx):
            i = u32(0)
            while i < 10:
                i += 1
            return 2
        """))
    fns = {f.__name__: f for f in functions_in_file(str(src))}
    with pytest.raises(Exception, match="'v' may be None here"):
        compile_function(fns["unchecked"])
    with pytest.raises(Exception, match="while loops are not supported"):
        compile_function(fns["loop"])


@needs_bpf
def test_lesson_writes_pages(tmp_path) -> None:
    out = subprocess.run([sys.executable, str(TUTORIAL / "verifier_loop_bound.py"),
                          "--html", str(tmp_path)], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=120)
    assert out.returncode == 0, out.stderr
    assert "infinite loop detected at insn 6" in out.stdout
    page = (tmp_path / "verifier_loop_bound_refused.html").read_text()
    assert 'class="insn on-path failed" data-prog="0" data-insn="6"' in page
    assert (tmp_path / "verifier_loop_bound.html").exists()
