"""Errors raised while building or running a program in :mod:`pybpf.vm`.

Every error is a :class:`VMError`. Once the machine knows which instruction was executing,
it fills in :attr:`VMError.index` (position in the instruction list), :attr:`VMError.pc`
(8-byte slot index, what the kernel verifier calls ``insn``) and
:attr:`VMError.instruction`, and the message starts with
``instruction N (disassembly):``.
"""

from __future__ import annotations

from typing import Any, Optional

__all__ = ["VMError", "MemoryFault", "HelperError", "StepLimitExceeded", "ProgramError"]


class VMError(RuntimeError):
    """A program could not be run, or went wrong while running.

    ``reason`` is the bare explanation; ``str()`` adds the instruction once it is known.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.index: Optional[int] = None
        self.pc: Optional[int] = None
        self.instruction: Any = None

    def locate(self, index: int, pc: int, instruction: Any, text: str) -> "VMError":
        """Attach the failing instruction (its list index, slot and disassembly ``text``)."""
        self.index = index
        self.pc = pc
        self.instruction = instruction
        where = f"instruction {index}" + (f" (slot {pc})" if pc != index else "")
        self.args = (f"{where} ({text}): {self.reason}",)
        return self


class ProgramError(VMError):
    """The program is not runnable as given: an invalid encoding, a jump outside the
    program or into the middle of a ``lddw``, a write to r10, an unknown map."""


class MemoryFault(VMError):
    """A load or store outside every memory region, out of a region's bounds, or a store
    into a read-only region. ``address`` and ``size`` describe the access."""

    def __init__(self, reason: str, address: int = 0, size: int = 0) -> None:
        super().__init__(reason)
        self.address = address
        self.size = size


class HelperError(VMError):
    """A helper call the VM cannot perform (unknown id, bad map argument, ...)."""


class StepLimitExceeded(VMError):
    """The program ran more instructions than the machine's ``max_steps`` allows."""
