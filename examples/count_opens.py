#!/usr/bin/env python3
"""Count openat() calls per process for a few seconds, with no compiler anywhere.

    sudo python3 examples/count_opens.py [SECONDS]

The whole path of pybpf in one page: instructions written with the builder (each one
remembers its Python line, so a verifier complaint would point here), a hash map, a
tracepoint link, and the map read back as a dict. The language in pybpf.dsl will write the
instructions for you; this shows what it produces.
"""

from __future__ import annotations

import ctypes
import sys
import time

from pybpf.asm import R0, R1, R2, R3, R4, R10
from pybpf.asm.builder import (
    DW, Builder, add, atomic_add, call, exit_, jne, ld_map_fd, mov, rsh, stx,
)
from pybpf.link import attach_tracepoint
from pybpf.maps import HashMap
from pybpf.program import ProgramSpec
from pybpf.syscall.bpf import ProgType
from pybpf.syscall.maps import ElemFlags


def counting_program() -> list:
    """counts[tgid] += 1, creating the entry with 1 the first time."""
    b = Builder(record_source=True)
    b.emit(call("get_current_pid_tgid"), rsh(R0, 32), stx(DW, R10, -8, R0))   # key = tgid
    b.emit(mov(R2, R10), add(R2, -8), ld_map_fd(R1, "counts"), call("map_lookup_elem"))
    b.emit(jne(R0, 0, "found"))
    b.emit(mov(R1, 1), stx(DW, R10, -16, R1))                                   # value = 1
    b.emit(ld_map_fd(R1, "counts"), mov(R2, R10), add(R2, -8), mov(R3, R10), add(R3, -16))
    b.emit(mov(R4, int(ElemFlags.NOEXIST)), call("map_update_elem"))
    b.emit(mov(R0, 0), exit_())
    b.label("found")
    b.emit(mov(R1, 1), atomic_add(DW, R0, 0, R1), mov(R0, 0), exit_())        # += 1
    return b.link()


def main(argv: list) -> int:
    seconds = float(argv[1]) if len(argv) > 1 else 3.0
    with HashMap(key=ctypes.c_uint64, value=ctypes.c_uint64, max_entries=4096,
                 name="counts") as counts:
        spec = ProgramSpec(type=ProgType.TRACEPOINT, instructions=counting_program(),
                           name="count_opens")
        with spec.load(maps={"counts": counts}) as prog, \
                attach_tracepoint(prog, "syscalls", "sys_enter_openat"):
            print(f"Counting openat() for {seconds:g} s... Ctrl-C to stop early.")
            try:
                time.sleep(seconds)
            except KeyboardInterrupt:
                pass
        top = sorted(counts.items(), key=lambda kv: kv[1], reverse=True)[:10]
    print(f"{'PID':>7} {'OPENS':>8}  COMM")
    for pid, n in top:
        try:
            comm = open(f"/proc/{pid}/comm").read().strip()
        except OSError:
            comm = "?"
        print(f"{pid:>7} {n:>8}  {comm}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
