"""The error of a program a compiler refuses: what, where and what to do instead. Both
front ends raise it (the Python language for Python it does not support, the shared
blocks and back end for what the kernel would refuse); a front end may subclass it to
print in its own format."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:        # annotations only: a cached tool's start does not import the assembler
    from ..asm.instruction import SourceLocation

__all__ = ["CompileError"]


class CompileError(Exception):
    """A compile-time error with its location (``file:line:col``) and a suggestion.

    ``str()`` is three lines (``file:line:col: error: message``, the source line, the
    hint): what a traceback or a REPL shows. :attr:`headline` is the same on one line,
    the hint in parentheses: what the command line prints."""

    #: the command line reports it as one line (exit status 1), not as a traceback
    user_error = True

    def __init__(self, message: str, loc: Optional[SourceLocation] = None,
                 suggestion: str = "") -> None:
        self.message = message
        self.loc = loc
        self.suggestion = suggestion
        super().__init__(str(self))

    @property
    def headline(self) -> str:
        """``file:line:col: error: message (hint: ...)`` on one line."""
        where = f"{self.loc.file}:{self.loc.line}:{self.loc.column}: " if self.loc else ""
        text = f"{where}error: {' '.join(self.message.split())}"
        if self.suggestion:
            text += f" (hint: {' '.join(self.suggestion.split())})"
        return text

    def __str__(self) -> str:
        where = f"{self.loc.file}:{self.loc.line}:{self.loc.column}: " if self.loc else ""
        text = f"{where}error: {self.message}"
        if self.loc and self.loc.text:
            text += f"\n    {self.loc.text.strip()}"
        if self.suggestion:
            text += f"\n  hint: {self.suggestion}"
        return text
