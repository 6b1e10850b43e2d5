"""The error raised for Python that the pybpf language does not support."""

from __future__ import annotations

from typing import Optional

from ...asm.instruction import SourceLocation

__all__ = ["CompileError"]


class CompileError(Exception):
    """A compile-time error with its location (``file:line:col``) and a suggestion."""

    def __init__(self, message: str, loc: Optional[SourceLocation] = None,
                 suggestion: str = "") -> None:
        self.message = message
        self.loc = loc
        self.suggestion = suggestion
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.loc.file}:{self.loc.line}:{self.loc.column}: " if self.loc else ""
        text = f"{where}error: {self.message}"
        if self.loc and self.loc.text:
            text += f"\n    {self.loc.text.strip()}"
        if self.suggestion:
            text += f"\n  hint: {self.suggestion}"
        return text
