"""The ``.data`` files of the BPF conformance suite.

A file is a sequence of sections, each opened by a line ``-- NAME``; lines before the
first section are comments (``#``) or blank:

* ``-- asm``: the program in the uBPF dialect (:mod:`pybpf.asm.ubpf_asm`);
* ``-- raw``: the program as words, one per line: a 64-bit little-endian value
  (``0x0000000000000095``) or eight hex bytes (``95 00 00 00 00 00 00 00``);
* ``-- mem``: hex bytes of the input memory;
* ``-- result``: the expected 64-bit r0 (``0x`` hex, else decimal);
* ``-- error``: the program is expected to fail (the text, possibly empty, says how);
* ``-- c`` and ``-- no register offset``: informational.

Anything else after ``--`` is an error, as are a file without a program or without an
expected outcome.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple, Union

from ..asm.encoding import decode
from ..asm.instruction import Instruction

__all__ = ["CorpusError", "ConformanceCase", "parse_case", "load_case", "iter_corpus",
           "SECTIONS"]

#: section names and whether their content is used by runners
SECTIONS: Dict[str, bool] = {
    "asm": True, "raw": True, "mem": True, "result": True, "error": True,
    "c": False, "no register offset": False,
}

_HEX_BYTE = re.compile(r"[0-9a-fA-F]{1,2}\Z")


class CorpusError(ValueError):
    """A malformed ``.data`` file; the message starts with ``file:line``."""

    def __init__(self, message: str, file: str = "<input>", line: int = 0) -> None:
        self.message = message
        self.file = file
        self.line = line
        super().__init__(f"{file}:{line}: {message}" if line else f"{file}: {message}")


class ConformanceCase:
    """One parsed test file.

    ``asm`` is the assembly text padded with blank lines so that its line numbers are
    those of the file (errors point into the ``.data`` file); ``raw`` the encoded program
    of a ``-- raw`` section; ``mem`` the input memory; ``result`` the expected r0 (None
    when an error is expected); ``error`` the expected error text (None when a result is
    expected; may be ``""``).
    """

    __slots__ = ("path", "asm", "raw", "mem", "result", "error", "c_source")

    def __init__(self, path: str, *, asm: Optional[str] = None, raw: Optional[bytes] = None,
                 mem: bytes = b"", result: Optional[int] = None, error: Optional[str] = None,
                 c_source: Optional[str] = None) -> None:
        self.path = path
        self.asm = asm
        self.raw = raw
        self.mem = mem
        self.result = result
        self.error = error
        self.c_source = c_source

    @property
    def name(self) -> str:
        """The file name without directory and ``.data``."""
        base = os.path.basename(self.path)
        return base[:-5] if base.endswith(".data") else base

    @property
    def expects_error(self) -> bool:
        """True if the program is expected to fail rather than return a value."""
        return self.error is not None

    def program(self) -> List[Instruction]:
        """The program: the ``-- asm`` section assembled, else the ``-- raw`` section
        decoded (with the encoding rules checked). Raises
        :class:`~pybpf.asm.errors.AsmError` subclasses."""
        if self.asm is not None:
            from ..asm.ubpf_asm import assemble
            return assemble(self.asm, file=self.path)
        assert self.raw is not None
        return decode(self.raw)

    def raw_program(self) -> Optional[List[Instruction]]:
        """The ``-- raw`` section decoded, or None if there is none."""
        return None if self.raw is None else decode(self.raw)

    def __repr__(self) -> str:
        want = f"error={self.error!r}" if self.expects_error else f"result={self.result:#x}"
        return f"<ConformanceCase {self.name} {want}>"


def _strip(line: str) -> str:
    i = line.find("#")
    return (line if i < 0 else line[:i]).strip()


def parse_case(text: str, path: str = "<input>") -> ConformanceCase:
    """Parse the text of a ``.data`` file; raises :class:`CorpusError`."""
    lines = text.splitlines()
    sections: Dict[str, Tuple[int, List[Tuple[int, str]]]] = {}
    current: Optional[str] = None
    for number, line in enumerate(lines, 1):
        if line.startswith("--"):
            name = line[2:].strip()
            if name not in SECTIONS:
                raise CorpusError(f"unknown section '-- {name}' (known: "
                                  f"{', '.join('-- ' + s for s in SECTIONS)})", path, number)
            if name in sections:
                raise CorpusError(f"section '-- {name}' appears twice (first on line "
                                  f"{sections[name][0]})", path, number)
            sections[name] = (number, [])
            current = name
            continue
        if current is None:
            if line.strip() and not line.lstrip().startswith("#"):
                raise CorpusError("text before the first section (expected a '-- asm', "
                                  "'-- raw', ... line or a # comment)", path, number)
            continue
        sections[current][1].append((number, line))

    case = ConformanceCase(path)
    if "asm" in sections:
        body = sections["asm"][1]
        padded = [""] * len(lines)
        for number, line in body:
            padded[number - 1] = line
        case.asm = "\n".join(padded) + "\n"
    if "raw" in sections:
        case.raw = _parse_raw(sections["raw"][1], path)
    if "mem" in sections:
        case.mem = _parse_mem(sections["mem"][1], path)
    if "c" in sections:
        case.c_source = "\n".join(line for _, line in sections["c"][1])
    if "error" in sections:
        case.error = "\n".join(line.strip() for _, line in sections["error"][1]
                               if line.strip())
    if "result" in sections:
        case.result = _parse_result(sections["result"], path)

    has_program = (case.asm is not None and any(_strip(ln) for _, ln in sections["asm"][1])) \
        or bool(case.raw)
    if not has_program:
        raise CorpusError("the file has no program (expected a non-empty '-- asm' or "
                          "'-- raw' section)", path)
    if case.result is None and case.error is None:
        raise CorpusError("the file has no expected outcome (expected a '-- result' or "
                          "'-- error' section)", path)
    if case.result is not None and case.error is not None:
        raise CorpusError("the file has both '-- result' and '-- error'", path,
                          sections["error"][0])
    return case


def _parse_result(section: Tuple[int, List[Tuple[int, str]]], path: str) -> Optional[int]:
    start, body = section
    values = [(n, _strip(line)) for n, line in body if _strip(line)]
    if not values:
        raise CorpusError("empty '-- result' section (expected a number)", path, start)
    if len(values) > 1:
        raise CorpusError("'-- result' holds more than one value", path, values[1][0])
    number, token = values[0]
    try:
        value = int(token[2:], 16) if token.lower().startswith("0x") else int(token, 10)
    except ValueError:
        raise CorpusError(f"result {token!r} is not a number (expected 0x hex or decimal)",
                          path, number) from None
    if not -(1 << 63) <= value < (1 << 64):
        raise CorpusError(f"result {token} does not fit in 64 bits", path, number)
    return value & 0xFFFFFFFFFFFFFFFF


def _parse_raw(body: List[Tuple[int, str]], path: str) -> bytes:
    out = bytearray()
    for number, line in body:
        tokens = _strip(line).split()
        if not tokens:
            continue
        if len(tokens) == 8 and all(_HEX_BYTE.match(t) for t in tokens):
            out += bytes(int(t, 16) for t in tokens)
            continue
        for token in tokens:
            try:
                value = int(token[2:], 16) if token.lower().startswith("0x") else int(token)
            except ValueError:
                raise CorpusError(f"raw word {token!r} is not a number (expected a 64-bit "
                                  "0x value or eight hex bytes per line)", path, number) from None
            if not 0 <= value < (1 << 64):
                raise CorpusError(f"raw word {token} does not fit in 64 bits", path, number)
            out += value.to_bytes(8, "little")
    return bytes(out)


def _parse_mem(body: List[Tuple[int, str]], path: str) -> bytes:
    out = bytearray()
    for number, line in body:
        for token in _strip(line).split():
            if not _HEX_BYTE.match(token):
                raise CorpusError(f"memory byte {token!r} is not one or two hex digits",
                                  path, number)
            out.append(int(token, 16))
    return bytes(out)


def load_case(path: Union[str, "os.PathLike[str]"]) -> ConformanceCase:
    """Read and parse one ``.data`` file."""
    p = Path(path)
    return parse_case(p.read_text(encoding="utf-8"), str(p))


def iter_corpus(directory: Union[str, "os.PathLike[str]"]) -> Iterator[Path]:
    """The ``.data`` files of ``directory`` (or the file itself), sorted by name."""
    p = Path(directory)
    if p.is_file():
        yield p
        return
    yield from sorted(p.glob("*.data"))
