"""Errors of the object layer shared by several packages (tracefs, ELF, attach).

:class:`UnknownNameError` is raised for a name that does not exist (a tracepoint, a
kernel function, a symbol in a binary, a library) and lists the closest names that do;
:func:`close_matches` finds them quickly even among 200,000 candidates. System-call
errors are in :mod:`pybpf.syscall.errors`.
"""

from __future__ import annotations

from typing import List, Sequence

__all__ = ["UnknownNameError", "close_matches"]


class UnknownNameError(LookupError):
    """A name that does not exist. ``what`` says what kind of name (``"tracepoint"``,
    ``"kernel function"``, ``"symbol"``, ``"library"``), ``name`` is what was asked for,
    ``matches`` the closest existing names (maybe none) and ``detail`` where it was
    looked for."""

    def __init__(self, what: str, name: str, matches: Sequence[str] = (),
                 detail: str = "") -> None:
        self.what, self.name, self.matches, self.detail = what, name, list(matches), detail
        text = f"unknown {what} {name!r}"
        if detail:
            text += f" ({detail})"
        if self.matches:
            text += "; close matches: " + ", ".join(self.matches)
        super().__init__(text)

    def __str__(self) -> str:
        return str(self.args[0])


def close_matches(name: str, candidates: Sequence[str], n: int = 5,
                  cutoff: float = 0.6) -> List[str]:
    """Up to ``n`` candidates most like ``name``: :mod:`difflib` matches first, then
    names that contain ``name``. Large candidate lists (``/proc/kallsyms`` has 200,000
    names) are first narrowed to names of similar length sharing a 3-character run."""
    import difflib              # only on this (error) path: it is slow to import
    low = name.lower()
    if len(candidates) > 5000:
        keys = {low[i:i + 3] for i in range(max(1, len(low) - 2))}
        pool = [c for c in candidates if abs(len(c) - len(name)) <= max(3, len(name) // 2)
                and any(k in c.lower() for k in keys)]
    else:
        pool = list(candidates)
    fuzzy = difflib.get_close_matches(name, pool, n=n, cutoff=cutoff)
    contained = sorted((c for c in candidates if len(low) >= 3 and low in c.lower()),
                       key=len)[:n]
    out: List[str] = []
    for item in fuzzy + contained:
        if item not in out and item != name:
            out.append(item)
    return out[:n]
