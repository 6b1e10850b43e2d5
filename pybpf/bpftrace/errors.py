"""Located errors of the bpftrace front end, printed the way bpftrace 0.17 prints them.

A :class:`Location` is bpftrace's (bison's) source range: 1-based lines and columns, the
end column one past the last character. Columns count bytes of the UTF-8 source, and a
token's range starts where bpftrace's lexer last skipped white space (a 0.17 quirk: in
``$x=1+;`` the ``;`` covers columns 7-14); :mod:`pybpf.bpftrace.lexer` reproduces that.

One diagnostic renders as bpftrace does::

    stdin:1:14-15: ERROR: syntax error, unexpected ;
    BEGIN { $x = ; }
                 ~

A range over several lines prints only ``FILE:L1-L2: ERROR: message``. Program text given
with ``-e`` is named ``stdin``. A :class:`BpftraceError` carries one or more diagnostics
(bpftrace reports every lexical error it meets before the first syntax error).
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

from .._records import record

__all__ = ["Location", "Diagnostic", "BpftraceError", "BpftraceSyntaxError",
           "WatchpointAbort", "render_diagnostic"]


@record(frozen=True)
class Location:
    """A source range as bpftrace reports it: ``line``:``col`` to ``end_line``:``end_col``
    (1-based; ``end_col`` is exclusive)."""

    line: int
    col: int
    end_line: int
    end_col: int

    def __add__(self, other: "Location") -> "Location":
        """The range from the start of ``self`` to the end of ``other`` (bison's
        ``@1 + @3``)."""
        return Location(self.line, self.col, other.end_line, other.end_col)

    def __str__(self) -> str:
        if self.line < self.end_line:
            return f"{self.line}-{self.end_line}"
        return f"{self.line}:{self.col}-{self.end_col}"


@record(frozen=True)
class Diagnostic:
    """One message at one place; ``level`` is ``ERROR`` or ``WARNING``."""

    loc: Optional[Location]
    message: str
    level: str = "ERROR"


def _source_line(source: str, n: int) -> str:
    """The ``n``-th (1-based) line of ``source``, or "" past the end, like bpftrace."""
    lines = source.split("\n")
    return lines[n - 1] if 1 <= n <= len(lines) else ""


def render_diagnostic(diag: Diagnostic, source: str, filename: str) -> str:
    """``diag`` as bpftrace 0.17 prints it (no trailing newline): the ``FILE:LINE:COL-COL:``
    header, then for one-line ranges the source line (tabs as four spaces) and a marker
    line of spaces and ``~`` under the range."""
    if diag.loc is None:
        return f"{diag.level}: {diag.message}"
    loc = diag.loc
    head = f"{filename}:" if filename else ""
    msg = diag.message[:-1] if diag.message.endswith("\n") else diag.message
    if loc.line < loc.end_line:
        return f"{head}{loc.line}-{loc.end_line}: {diag.level}: {msg}"
    out = [f"{head}{loc.line}:{loc.col}-{loc.end_col}: {diag.level}: {msg}"]
    src = _source_line(source, loc.line)
    if src == "":
        return out[0]
    out.append(src.replace("\t", "    "))
    marks = []
    for x, ch in enumerate(src[:max(0, loc.end_col - 1)]):
        mark = " " if x < loc.col - 1 else "~"
        marks.append(mark * 4 if ch == "\t" else mark)
    out.append("".join(marks))
    text = "\n".join(out)
    # the lexer works on bytes (latin-1 text); show UTF-8 the way the terminal would
    return text.encode("latin-1", "replace").decode("utf-8", "replace")


class BpftraceError(Exception):
    """An error in a bpftrace program, with its diagnostics and the source they point
    into; ``str()`` is exactly what bpftrace 0.17 prints (one block per diagnostic)."""

    def __init__(self, diagnostics: Sequence[Diagnostic], source: str = "",
                 filename: str = "stdin") -> None:
        self.diagnostics: List[Diagnostic] = list(diagnostics)
        self.source, self.filename = source, filename
        super().__init__(self.diagnostics[0].message if self.diagnostics else "error")

    @property
    def loc(self) -> Optional[Location]:
        """Where the first diagnostic points (None for an unlocated error)."""
        return self.diagnostics[0].loc if self.diagnostics else None

    @property
    def message(self) -> str:
        """The first diagnostic's message, without location."""
        return self.diagnostics[0].message if self.diagnostics else ""

    def prefixes(self) -> List[Tuple[str, str]]:
        """``(FILE:LINE:COL-COL, message)`` of every diagnostic, for comparisons."""
        out = []
        for d in self.diagnostics:
            out.append((f"{self.filename}:{d.loc}" if d.loc else "", d.message))
        return out

    def __str__(self) -> str:
        return "\n".join(render_diagnostic(d, self.source, self.filename)
                         for d in self.diagnostics)


class BpftraceSyntaxError(BpftraceError):
    """The program is not in bpftrace 0.17's language: a lexical error (bad character,
    number, escape, unterminated string or comment), a syntax error at a token, or a
    construct the grammar names as an error (``Unknown function``, ``++`` on a builtin,
    assignment to a tuple element), or an unreadable C preamble line."""


class WatchpointAbort(Exception):
    """A sync watchpoint could not be set up (0.17 aborts): the run ends, status 1;
    the messages were printed already (raised by :mod:`.watchpoints`)."""
