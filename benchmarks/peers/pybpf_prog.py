"""The openat tracer that benchmarks/peers.py runs for pybpf, written with the low-level
builder (the DSL will write the same list of instructions one day: swap
:func:`build_program` for its output).

On ``syscalls:sys_enter_openat`` the program sends one 88-byte record::

    struct event { u32 pid; u32 pad; char comm[16]; char filename[64]; };

(the tgid, the task's command, and the first 64 bytes of the path: what bpftrace's
``printf("%s %s\\n", comm, str(args->filename))`` prints), through a ring buffer with a
wake-up policy (:mod:`pybpf.events.wakeup`) or a perf buffer. With ``tgid`` set, the
program keeps only that process's calls (the throughput test's in-kernel filter).
``benchmarks/peers/open.bpf.c`` is the same program in C for clang.
"""

from __future__ import annotations

import os
import sys
from typing import Any, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from pybpf.asm import R0, R1, R2, R3, R6, R7, R10  # noqa: E402
from pybpf.asm.builder import (  # noqa: E402
    DW, W, Label, add, build, call, exit_, jne, ldx, mov, rsh, st, stx,
)
from pybpf.events import wakeup as wk  # noqa: E402

#: the record, as a struct format (pid, pad, comm, filename)
EVENT = "=II16s64s"
EVENT_SIZE = 88
#: offset of ``const char *filename`` in the sys_enter_openat record (tracefs format)
FILENAME_OFFSET = 24
RING_BYTES = 8 << 20
PERF_PAGES = 512


def build_program(out: str, target: Any, drops: Any = None, tgid: Optional[int] = None,
                  wakeup: Any = "adaptive") -> List[Any]:
    """sys_enter_openat -> ``struct event`` to ``target`` (a RingBuf when ``out`` is
    "ring", a PerfEventArray when "perf"); failures counted in array map ``drops``."""
    code: List[Any] = [
        mov(R6, R1),
        call("get_current_pid_tgid"), mov(R7, R0), rsh(R7, 32),
    ]
    if tgid is not None:
        code.append(jne(R7, tgid, "out"))
    code += [
        stx(W, R10, -88, R7), st(W, R10, -84, 0),
        mov(R1, R10), add(R1, -80), mov(R2, 16), call("get_current_comm"),
        ldx(DW, R3, R6, FILENAME_OFFSET),
        mov(R1, R10), add(R1, -64), mov(R2, 64), call("probe_read_user_str"),
    ]
    if out == "perf":
        code += wk.perf_event_output(R6, target, -88, EVENT_SIZE, drops=drops)
    else:
        code += wk.ringbuf_output(target, -88, EVENT_SIZE, wakeup, drops=drops)
    code += [Label("out"), mov(R0, 0), exit_()]
    return build(code)


def event_line(record: Any) -> str:
    """``comm filename``, as the bpftrace one-liner prints it."""
    comm = record[2].split(b"\0", 1)[0].decode("utf-8", "replace")
    path = record[3].split(b"\0", 1)[0].decode("utf-8", "replace")
    return f"{comm} {path}"
