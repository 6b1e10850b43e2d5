"""Errors raised by :mod:`pybpf.asm`. All derive from :class:`AsmError` and ``ValueError``."""

from __future__ import annotations

from typing import Optional

__all__ = ["AsmError", "InvalidInstruction", "DecodeError", "AssemblyError", "LinkError"]


class AsmError(ValueError):
    """Base class of every error from the instruction layer."""


class InvalidInstruction(AsmError):
    """An instruction whose fields break the encoding rules (unknown opcode, reserved bits)."""


class DecodeError(AsmError):
    """Bytes that are not a valid instruction stream; ``offset`` is the byte offset."""

    def __init__(self, offset: int, reason: str) -> None:
        super().__init__(f"byte offset {offset} (instruction {offset // 8}): {reason}")
        self.offset = offset
        self.reason = reason


class AssemblyError(AsmError):
    """A mistake in assembly text, with its location.

    ``file``, ``line`` (1-based) and ``column`` (1-based, 0 if unknown) say where; ``text``
    is the offending source line; ``expected`` says what would have been accepted.
    """

    def __init__(self, message: str, *, file: str = "<input>", line: int = 0, column: int = 0,
                 text: str = "", expected: Optional[str] = None) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.column = column
        self.text = text
        self.expected = expected
        super().__init__(self._format())

    @property
    def headline(self) -> str:
        """The first line of the message (``file:line:col: error: ...``), without the
        quoted source line and caret: what the command line prints."""
        where = f"{self.file}:{self.line}" + (f":{self.column}" if self.column else "")
        out = f"{where}: error: {self.message}"
        if self.expected:
            out += f" (expected {self.expected})"
        return out

    def _format(self) -> str:
        out = self.headline
        if self.text:
            out += f"\n    {self.text}"
            if self.column:
                out += "\n    " + " " * (self.column - 1) + "^"
        return out


class LinkError(AsmError):
    """A symbol problem found when resolving labels: undefined or duplicate label, a jump
    that does not fit its offset field. ``instruction`` is the one at fault, and the
    message starts with its source location when it has one."""

    def __init__(self, message: str, instruction: object = None) -> None:
        source = getattr(instruction, "source", None)
        super().__init__(f"{source}: {message}" if source is not None else message)
        self.message = message
        self.instruction = instruction
