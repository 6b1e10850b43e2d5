"""The probe patterns of BCC's generic tracers (funccount, stackcount), parsed and
expanded into attach targets.

A pattern is ``[TYPE:][LIBRARY:]NAME`` (BCC's forms):

=====================  ==================================================
``vfs_*``              kernel functions (kprobes); same as ``p::vfs_*``
``c:malloc``           functions of library ``c`` (uprobes); ``p:c:malloc``
``/path/bin:read*``    functions of a binary (uprobes)
``t:sched:sched_*``    tracepoints (``group:event``)
``u:/path/bin:probe``  USDT probes of a binary or library
=====================  ==================================================

``*`` is the only wildcard unless ``regexp`` is set, when NAME is a Python regular
expression (matched from the start of the name, as BCC does). A malformed pattern is a :class:`ProbeSpecError`
(one line naming the column); a kernel-function pattern on a kernel without kprobes is
a :class:`KprobesNeededError` naming the missing feature.
"""

from __future__ import annotations

import re
from typing import List, NamedTuple, Optional

from pybpf.link.kprobe import KprobesUnavailableError, kernel_functions, kprobes_available

__all__ = ["ProbeSpecError", "KprobesNeededError", "Pattern", "Target", "parse_pattern",
           "expand", "MAX_PROBES"]

#: the most probes one run attaches (BCC's limit, ``BPF.get_probe_limit()``)
MAX_PROBES = 1000

_STT_FUNC, _STT_GNU_IFUNC = 2, 10


class ProbeSpecError(ValueError):
    """A malformed probe spec: ``spec`` (the text), ``column`` (1-based) and ``hint``;
    the message is one line: ``probe 'x:y:z:w': column 7: too many ':' parts``."""

    def __init__(self, spec: str, column: int, problem: str, hint: str = "") -> None:
        self.spec = spec
        self.column = column
        self.problem = problem
        self.hint = hint
        text = f"probe {spec!r}: column {column}: {problem}"
        super().__init__(text + (f" ({hint})" if hint else ""))


class KprobesNeededError(KprobesUnavailableError):
    """A kernel-function spec on a kernel without kprobes: names the spec and the
    missing feature, with the kinds of probe that do work."""

    def __init__(self, spec: str, why: str) -> None:
        super().__init__()
        self.spec = spec
        self.strerror = (f"probe {spec!r} needs kprobes, which this kernel lacks ({why}); "
                         "tracepoints (t:GROUP:EVENT), uprobes (LIB:FUNC) and USDT "
                         "(u:LIB:PROBE) work")

    def __str__(self) -> str:
        return self.strerror


class Pattern(NamedTuple):
    """A parsed pattern: ``kind`` is ``"p"`` (functions), ``"t"`` (tracepoints) or
    ``"u"`` (USDT); ``library`` is ``""`` for the kernel; ``name`` the NAME text;
    ``regex`` the compiled matcher; ``text`` the whole pattern."""

    kind: str
    library: str
    name: str
    regex: "re.Pattern[str]"
    text: str

    @property
    def kernel(self) -> bool:
        """True for kernel functions (kprobes) and tracepoints."""
        return self.kind == "t" or (self.kind == "p" and not self.library)


class Target(NamedTuple):
    """One attach point: ``kind`` (``kprobe``, ``uprobe``, ``tracepoint``, ``usdt``),
    the ``name`` a report shows, and where: ``path`` and file ``offset`` (uprobe),
    ``path`` and ``provider`` (usdt); the tracepoint or function is ``name``."""

    kind: str
    name: str
    path: str = ""
    offset: int = 0
    provider: str = ""


def _glob(text: str, spec: str, column: int, regexp: bool) -> "re.Pattern[str]":
    if not text:
        raise ProbeSpecError(spec, column, "the name to match is empty",
                             "write a name or a pattern such as 'vfs_*'")
    if regexp:
        try:
            return re.compile(text)
        except re.error as exc:
            raise ProbeSpecError(spec, column + (exc.pos or 0),
                                 f"bad regular expression: {exc.msg}") from None
    return re.compile("^" + ".*".join(re.escape(p) for p in text.split("*")) + "$")


def parse_pattern(spec: str, regexp: bool = False) -> Pattern:
    """Parse a funccount/stackcount pattern (see the module doc). Raises
    :class:`ProbeSpecError` naming the column of the fault."""
    if not spec.strip():
        raise ProbeSpecError(spec, 1, "empty pattern", "write e.g. 'c:malloc' or "
                             "'t:sched:sched_switch'")
    parts = spec.split(":")
    starts = [0]
    for p in parts[:-1]:
        starts.append(starts[-1] + len(p) + 1)
    if len(parts) == 1:
        kind, library, name, col = "p", "", parts[0], 1
    elif len(parts) == 2:
        kind, library, name, col = "p", parts[0], parts[1], starts[1] + 1
        if not library:
            raise ProbeSpecError(spec, 1, "empty library before ':'",
                                 "write LIB:FUNC, or p::FUNC for a kernel function")
    elif len(parts) == 3:
        kind, library, name, col = parts[0], parts[1], parts[2], starts[2] + 1
        if kind not in ("p", "t", "u"):
            raise ProbeSpecError(spec, 1, f"probe type must be 'p', 't' or 'u', not "
                                 f"{kind!r}", "p: function, t: tracepoint, u: USDT")
        if kind == "t":
            if not library:
                raise ProbeSpecError(spec, 3, "empty tracepoint group",
                                     "write t:GROUP:EVENT, such as t:sched:sched_switch")
            name, library, col = f"{library}:{name}", "", 3
        elif kind == "u" and not library:
            raise ProbeSpecError(spec, 3, "USDT probes need a binary or library",
                                 "write u:LIB:PROBE")
    else:
        raise ProbeSpecError(spec, starts[3], f"too many ':'-separated parts "
                             f"({len(parts)}, at most 3)", "write [TYPE:][LIB:]NAME")
    return Pattern(kind, library, name, _glob(name, spec, col, regexp), spec)


#: the probe types of a pattern's first part; a two-part pattern starting with one of
#: them and naming no library was most likely meant as TYPE:...
_TYPE_LETTERS = ("p", "r", "t", "u", "k")


def _resolve(library: str, pid: Optional[int]) -> str:
    from pybpf.elf.libs import resolve_binary, resolve_library
    if "/" in library:
        return resolve_binary(library, pid)
    try:
        return resolve_library(library, pid)
    except LookupError:
        return resolve_binary(library, pid)           # an executable in PATH ("bash")


def _user_functions(path: str, regex: "re.Pattern[str]") -> List[Target]:
    """The functions of ``path`` whose names match, one per address (an address with
    several names, and a name at several addresses, are probed once, as BCC does)."""
    from pybpf.elf.symbols import ElfFile
    seen_addr, seen_name, found = set(), set(), []
    with ElfFile(path) as elf:
        for table in (".symtab", ".dynsym"):
            for sym in elf.iter_symbols(table):
                if sym.type not in (_STT_FUNC, _STT_GNU_IFUNC) or not sym.defined \
                        or not sym.value:
                    continue
                name = sym.name.split("@", 1)[0]
                if not regex.match(name) or name in seen_name or sym.value in seen_addr:
                    continue
                seen_addr.add(sym.value)
                seen_name.add(name)
                found.append(Target("uprobe", name, path, elf.file_offset(sym.value)))
    return found


def expand(pattern: Pattern, pid: Optional[int] = None) -> List[Target]:
    """The attach points ``pattern`` matches on this machine, in a stable order.
    Raises :class:`KprobesNeededError` for kernel functions without kprobes,
    ``LookupError`` for a library that cannot be found, :class:`ProbeSpecError` when
    nothing matches or more than :data:`MAX_PROBES` do."""
    if pattern.kind == "p" and not pattern.library:
        why = kprobes_available()
        if why:
            raise KprobesNeededError(pattern.text, why.partition(": ")[2] or why)
        targets = [Target("kprobe", f) for f in sorted(kernel_functions())
                   if pattern.regex.match(f)]
    elif pattern.kind == "t":
        from pybpf.tracefs import list_events
        targets = [Target("tracepoint", e) for e in list_events("*")
                   if pattern.regex.match(e)]
    elif pattern.kind == "p":
        try:
            path = _resolve(pattern.library, pid)
        except LookupError:
            if pattern.library in _TYPE_LETTERS and pattern.text.startswith(pattern.library):
                # "t:sched" is LIB:NAME (a library named t), as in BCC: say so
                raise ProbeSpecError(pattern.text, 1, f"{pattern.library!r} is read as a "
                                     "library here (no such library): a pattern of two "
                                     "parts is LIB:NAME",
                                     "write t:GROUP:EVENT for tracepoints, u:LIB:PROBE "
                                     "for USDT, p::NAME for kernel functions") from None
            raise
        targets = _user_functions(path, pattern.regex)
    else:
        from pybpf.elf.usdt import usdt_probes
        path = _resolve(pattern.library, pid)
        names = {}
        for probe in usdt_probes(path):
            if pattern.regex.match(probe.name):
                names.setdefault(probe.name, probe.provider)
        targets = [Target("usdt", n, path, provider=p) for n, p in sorted(names.items())]
    col = len(pattern.text) - len(pattern.name.rpartition(":")[2]) + 1
    if not targets:
        raise ProbeSpecError(pattern.text, col, f"nothing matches {pattern.name!r}",
                             "pybpf list shows tracepoints and functions")
    if len(targets) > MAX_PROBES:
        raise ProbeSpecError(pattern.text, col, f"{len(targets)} probes match, at most "
                             f"{MAX_PROBES} are allowed", "narrow the pattern")
    return targets
