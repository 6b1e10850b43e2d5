"""The interpreter as a conformance backend (see :mod:`pybpf.conformance.runner`).

``VMBackend().run(program, mem)`` runs a conformance test body on a fresh
:class:`~pybpf.vm.machine.Machine` and returns the full 64-bit r0. The conformance runner
treats an ``OSError`` as "the program failed", so a :class:`~pybpf.vm.errors.VMError`
is re-raised as :class:`VMRunError`, an ``OSError`` that keeps the original as
``__cause__`` and ``vm_error``.
"""

from __future__ import annotations

import errno
from typing import Dict, Optional, Sequence

from pybpf.asm.instruction import Instruction

from .errors import VMError
from .machine import Machine

__all__ = ["VMBackend", "VMRunError"]


class VMRunError(OSError):
    """A program failed in the interpreter (``vm_error`` is the :class:`VMError`)."""

    def __init__(self, error: VMError) -> None:
        super().__init__(errno.EINVAL, str(error))
        self.vm_error = error

    def __str__(self) -> str:
        return f"vm: {self.vm_error}"


class VMBackend:
    """Runs conformance programs on the interpreter. It implements every instruction the
    suite uses, so ``skips`` is empty; ``max_steps`` bounds each run."""

    name = "vm"
    skips: Dict[str, str] = {}

    def __init__(self, max_steps: Optional[int] = 10_000_000) -> None:
        self.max_steps = max_steps

    def run(self, body: Sequence[Instruction], mem: bytes = b"") -> int:
        """Run ``body`` with r1 = ``mem``, r2 = its length; return the 64-bit r0."""
        try:
            vm = Machine(body, mem=mem)
            return vm.run(self.max_steps)
        except VMError as exc:
            raise VMRunError(exc) from exc
