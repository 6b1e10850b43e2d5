"""Pieces shared by the two assembly dialects: numbers, locations and linking."""

from __future__ import annotations

import re
from typing import List, Optional, Sequence

from .errors import AssemblyError, InvalidInstruction, LinkError
from .instruction import Instruction, SourceLocation
from .program import link

__all__ = ["parse_number", "finish", "strip_comment"]

_NUMBER = re.compile(r"[+-]?(0[xX][0-9a-fA-F]+|0[bB][01]+|0[oO][0-7]+|\d+)\Z")


def parse_number(token: str) -> Optional[int]:
    """An integer literal (decimal, 0x hex, 0b binary, 0o octal, optional sign) or None."""
    token = token.strip()
    if not _NUMBER.match(token):
        return None
    return int(token, 0) if not re.match(r"[+-]?0\d", token) else int(token, 10)


def strip_comment(line: str, markers: Sequence[str]) -> str:
    """``line`` without its trailing comment (the earliest of ``markers``)."""
    cut = len(line)
    for m in markers:
        i = line.find(m)
        if 0 <= i < cut:
            cut = i
    return line[:cut]


def finish(instructions: List[Instruction], *, long_jumps: bool = False,
           validate: bool = True) -> List[Instruction]:
    """Validate and link parsed instructions, turning every problem into an
    :class:`AssemblyError` located at the instruction's source line.

    ``validate=False`` skips the per-instruction encoding check, for parsers that only
    ever build valid encodings (it is the slowest step of assembling large programs).
    """
    if validate:
        for ins in instructions:
            try:
                ins.validate()
            except InvalidInstruction as exc:
                raise _located(str(exc), ins.source) from None
    try:
        return link(instructions, long_jumps=long_jumps)
    except LinkError as exc:
        raise _located(exc.message, getattr(exc.instruction, "source", None)) from None


def _located(message: str, source: Optional[SourceLocation]) -> AssemblyError:
    if source is None:
        return AssemblyError(message)
    return AssemblyError(message, file=source.file, line=source.line, column=source.column,
                         text=source.text)
