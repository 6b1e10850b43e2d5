"""pybpf.events.trace_pipe: parsing fixed lines, and reading bpf_trace_printk output of a
program triggered by this thread."""

from __future__ import annotations

import io
import os
import random
import sys
import threading

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from _event_progs import NR_GETPID, Attached, usable  # noqa: E402
from pybpf.asm import R0, R1, R2, R3, R10  # noqa: E402
from pybpf.asm.builder import (  # noqa: E402
    DW, Label, add, build, call, exit_, jne, ldx, lddw, mov, mov32, stx,
)
from pybpf.events import trace_pipe as tp  # noqa: E402

LINES = [
    ("            python3-4242    [001] d..31  5309.815233: bpf_trace_printk: hello 7",
     ("python3", 4242, 1, "d..31", 5309.815233, "hello 7")),
    ("           <...>-12  [000] .... 12.500000: bpf_trace_printk: x",
     ("<...>", 12, 0, "....", 12.5, "x")),
    ("  my task-name-77 (     77) [003] ...1. 99.000001: bpf_trace_printk: a: b",
     ("my task-name", 77, 3, "...1.", 99.000001, "a: b")),
    ("          sshd-900     [002]   123.456789: bpf_trace_printk: no flags",
     ("sshd", 900, 2, "", 123.456789, "no flags")),
]


@pytest.mark.parametrize("line,want", LINES)
def test_parse_line(line, want) -> None:
    got = tp.parse_line(line)
    assert got is not None
    assert tuple(got[:6]) == want
    assert got.event == "bpf_trace_printk"


def test_parse_line_rejects_notices() -> None:
    assert tp.parse_line("CPU:1 [LOST 12 EVENTS]") is None
    assert tp.parse_line("") is None
    assert tp.parse_line("  x-1 [000] .... 1.0: bpf_trace_printk: ").message == ""


def test_fields_from_a_file(tmp_path) -> None:
    path = tmp_path / "pipe"
    path.write_text("\n".join(line for line, _ in LINES) + "\nCPU:0 [LOST 1 EVENTS]\n")
    with tp.TracePipe(str(path)) as pipe:
        fields = list(pipe.fields(timeout=0.05))
        assert pipe.readline(0.01) is None
    assert [tuple(f[:6]) for f in fields] == [want for _, want in LINES]


def _stack_string(text: bytes, end: int = 0) -> tuple:
    """Instructions storing ``text`` (NUL-padded to 8 bytes) below r10+end; its offset."""
    data = text + b"\0" * (-len(text) % 8 or 8)
    start = end - len(data)
    code = []
    for i in range(0, len(data), 8):
        code += [lddw(R1, int.from_bytes(data[i:i + 8], "little")),
                 stx(DW, R10, start + i, R1)]
    return code, start, len(text) + 1


_WHY = usable()


@pytest.mark.skipif(bool(_WHY), reason=_WHY)
def test_trace_printk_output_is_read_and_parsed() -> None:
    try:
        tp.trace_pipe_path()
    except OSError as exc:
        pytest.skip(str(exc))
    token = random.randrange(1 << 30)
    fmt = f"pybpf-tp {token} %d".encode()
    store, offset, size = _stack_string(fmt)
    tid = threading.get_native_id()
    code = build([
        ldx(DW, R2, R1, 8), jne(R2, NR_GETPID, "out"),
        call("get_current_pid_tgid"), mov32(R2, R0), jne(R2, tid, "out"),
        *store,                                   # the format string on the stack
        mov(R1, R10), add(R1, offset), mov(R2, size), mov32(R3, R0),   # fmt, size, tid
        call("trace_printk"),
        Label("out"), mov(R0, 0), exit_(),
    ])
    with tp.TracePipe() as pipe:
        with Attached(code, name="tp_test"):
            for _ in range(3):
                os.getpid()
        found = []
        for fields in pipe.fields(timeout=3.0):
            if f"pybpf-tp {token} " in fields.message:
                found.append(fields)
                if len(found) == 3:
                    break
    assert len(found) == 3
    for f in found:
        assert f.pid == tid
        assert f.message == f"pybpf-tp {token} {tid}"
        assert f.cpu >= 0 and f.timestamp > 0
        assert f.event == "bpf_trace_printk"


def test_trace_print_prints_lines(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(tp, "trace_pipe_path", lambda: str(tmp_path / "trace_pipe"))
    (tmp_path / "trace_pipe").write_text(LINES[0][0] + "\n" + LINES[1][0] + "\n")
    out = io.StringIO()
    tp.trace_print("{task} {pid}: {message}", timeout=0.05, file=out)
    assert out.getvalue() == "python3 4242: hello 7\n<...> 12: x\n"
