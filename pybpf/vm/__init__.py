"""pybpf.vm: a reference interpreter for BPF programs, no kernel needed.

It runs any :mod:`pybpf.asm` program with RFC 9669 semantics, checks every memory access
against bounded regions (stack frames, input memory, context, map values), implements the
common helpers over in-memory maps, and can single-step with a record of what each
instruction changed. It is a second, independent implementation of the ISA to test the
kernel, the assemblers and the compiler against, and a way to learn BPF without root.

::

    from pybpf.asm import R0, R1
    from pybpf.asm.builder import build, ldx, add, exit_, W
    from pybpf.vm import Machine

    vm = Machine(build([ldx(W, R0, R1, 0), add(R0, 1), exit_()]), mem=b"\\x29\\0\\0\\0")
    assert vm.run() == 42
    vm.reset()
    for record in vm.trace():
        print(record.format())

See :mod:`pybpf.vm.machine` for the exact semantics and the choices made where the RFC
leaves room (``callx``, helper clobbers, legacy packet loads).
"""

from __future__ import annotations

from .errors import HelperError, MemoryFault, ProgramError, StepLimitExceeded, VMError
from .helpers import HELPERS, Environment
from .machine import (
    CLOBBERED, DEFAULT_MAX_STEPS, MAX_FRAMES, STACK_SIZE, Machine, TraceRecord, format_trace,
    run,
)
from .maps import ArrayMap, BpfMap, HashMap, RingBuf
from .memory import Memory, Region

__all__ = [
    "Machine", "TraceRecord", "run", "format_trace", "VMError", "ProgramError", "MemoryFault",
    "HelperError", "StepLimitExceeded", "Environment", "HELPERS", "BpfMap", "HashMap",
    "ArrayMap", "RingBuf", "Memory", "Region", "CLOBBERED", "STACK_SIZE", "MAX_FRAMES",
    "DEFAULT_MAX_STEPS",
]
