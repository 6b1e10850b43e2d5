"""Test programs for the event readers: a raw tracepoint on ``sys_enter`` that, for one
thread and one system call, emits ``per_hit`` records of 24 bytes
``(seq, pid_tgid, k)`` through a ring buffer or a perf buffer. ``seq`` comes from an
atomic counter (u64 0 of the ``counters`` array map; u64 1 is the drop counter)."""

from __future__ import annotations

import ctypes
import os
import platform
import select
import threading
from typing import Any, List, Optional

from pybpf.asm import R0, R1, R2, R3, R6, R7, R8, R10, Instruction
from pybpf.asm.builder import (
    DW, Label, atomic_fetch_add, build, call, exit_, ja, jeq, jne, jset, ld_map_fd,
    ld_map_value, ldx, mov, mov32, rsh, st, stx,
)
from pybpf.events import wakeup as wk
from pybpf.maps import ArrayMap
from pybpf.program import ProgramSpec
from pybpf.syscall import progs
from pybpf.syscall.bpf import ProgType

NR_GETPID = {"x86_64": 39, "aarch64": 172}.get(platform.machine(), 39)
NR_GETPPID = {"x86_64": 110, "aarch64": 173}.get(platform.machine(), 110)
NR_OPENAT = {"x86_64": 257, "aarch64": 56}.get(platform.machine(), 257)
RECORD = "=QQQ"
RECORD_SIZE = 24


class Event(ctypes.Structure):
    _fields_ = [("seq", ctypes.c_uint64), ("pid_tgid", ctypes.c_uint64),
                ("k", ctypes.c_uint64)]


def counters_map() -> ArrayMap:
    return ArrayMap(key=ctypes.c_uint32, value=16, max_entries=1, name="counters")


def program(out: str, target: Any, counters: Any, *, per_hit: int = 1,
            wakeup: Any = None, tid: Optional[int] = None, nr: int = NR_GETPID,
            discard_odd: bool = False, filter_tgid: bool = False,
            size: int = RECORD_SIZE) -> List[Instruction]:
    """``out``: "ringbuf", "reserve" (reserve+submit, discarding odd seq when
    ``discard_odd``) or "perf". ``size`` (>= 24, a multiple of 8): bytes per record,
    the ones after the first 24 zero."""
    if size < RECORD_SIZE or size % 8 or size > 128:
        raise ValueError(size)
    tid = threading.get_native_id() if tid is None else tid
    code: List[Any] = [
        mov(R6, R1),
        ldx(DW, R2, R1, 8), jne(R2, nr, "out"),
        call("get_current_pid_tgid"), mov(R7, R0),
    ]
    if filter_tgid:
        code += [mov(R2, R0), rsh(R2, 32), jne(R2, tid, "out")]
    else:
        code += [mov32(R2, R0), jne(R2, tid, "out")]
    for k in range(per_hit):
        code += [ld_map_value(R1, counters, 0), mov(R2, 1),
                 atomic_fetch_add(DW, R1, 0, R2), mov(R8, R2)]
        if out == "reserve":
            code += [ld_map_fd(R1, target), mov(R2, RECORD_SIZE), mov(R3, 0),
                     call("ringbuf_reserve"), jeq(R0, 0, f"drop{k}"),
                     stx(DW, R0, 0, R8), stx(DW, R0, 8, R7), st(DW, R0, 16, k),
                     mov(R8, R0)]
            # r8 now holds the record pointer (the seq is stored in it)
            if discard_odd:
                code += [ldx(DW, R2, R8, 0), jset(R2, 1, f"disc{k}")]
            code += wk.ringbuf_submit(R8, 0) + [ja(f"next{k}")]
            code += [Label(f"disc{k}")] + wk.ringbuf_discard(R8, 0) + [ja(f"next{k}")]
            code += [Label(f"drop{k}")] + wk.count_drop(counters, 1)
            code += [Label(f"next{k}"), mov(R0, 0)]
            continue
        code += [stx(DW, R10, -size, R8), stx(DW, R10, -size + 8, R7),
                 st(DW, R10, -size + 16, k)]
        code += [st(DW, R10, off, 0) for off in range(-size + 24, 0, 8)]
        if out == "ringbuf":
            code += wk.ringbuf_output(target, -size, size, wakeup, drops=counters,
                                      drop_index=1)
        elif out == "perf":
            code += wk.perf_event_output(R6, target, -size, size, drops=counters,
                                         drop_index=1)
        else:
            raise ValueError(out)
    code += [Label("out"), mov(R0, 0), exit_()]
    return build(code)


class Attached:
    """A loaded program attached to raw tracepoint sys_enter; closes both."""

    def __init__(self, code: List[Instruction], name: str = "ev_test") -> None:
        self.prog = ProgramSpec(ProgType.RAW_TRACEPOINT, code, name=name).load()
        try:
            self.link = progs.raw_tracepoint_open(self.prog, "sys_enter")
        except BaseException:
            self.prog.close()
            raise

    def close(self) -> None:
        self.link.close()
        self.prog.close()

    def __enter__(self) -> "Attached":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def fmt_of(size: int) -> str:
    """The struct format of a ``size``-byte record."""
    return RECORD + (f"{size - RECORD_SIZE}x" if size > RECORD_SIZE else "")


def lost(counters: Any) -> int:
    """The program's drop counter."""
    raw = counters.get(0) or bytes(16)
    return int.from_bytes(bytes(raw)[8:16], "little")


def fds() -> set:
    return set(os.listdir("/proc/self/fd"))


def usable() -> str:
    if os.geteuid() != 0:
        return "needs root"
    try:
        from pybpf.maps import RingBuf
        RingBuf(size=4096).close()
    except OSError as exc:
        return f"no ring buffers here: {exc}"
    return ""


def count_wakeups(run: Any, reader: Any, crossings: int, per_fill: int) -> int:
    """Fill a ring with ``per_fill`` records (``run()`` posts one) without consuming,
    then consume everything (``reader``, a RingBufReader), ``crossings`` times; returns
    how many times the reader was woken. An edge-triggered epoll instance on the ring,
    asked after every record, is ready once per wake-up since the previous question
    (the kernel's irq_work runs before the posting system call returns)."""
    ep = select.epoll()
    ep.register(reader.fileno(), select.EPOLLIN | select.EPOLLET)
    wakeups = 0
    try:
        for _ in range(crossings):
            for _ in range(per_fill):
                run()
                wakeups += len(ep.poll(0))
            wakeups += len(ep.poll(0.05))          # a late one, if any
            got = reader.consume()
            assert got == per_fill, f"consumed {got} of {per_fill} records"
    finally:
        ep.close()
    return wakeups


def trigger(n: int, call: Any = os.getpid) -> None:
    """``n`` getpid() (or ``call``) system calls from this thread."""
    for _ in range(n):
        call()
