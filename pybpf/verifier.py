"""Verifier errors explained in terms of the program: the verifier log parsed into
instruction entries, the failing instruction and its source line, the instruction that
gave a pointer an unbounded offset (:class:`VerifierError`, raised by
:meth:`pybpf.program.ProgramSpec.load`).

Kept apart from :mod:`pybpf.program` because only a refused load needs it: a tool that
loads fine never compiles these patterns.
"""

from __future__ import annotations

import errno as _errno
import linecache
import re
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from .asm.instruction import Instruction, SourceLocation
from .syscall import errors as _errors

__all__ = ["VerifierError", "LogEntry", "parse_verifier_log", "offset_cause"]

_INSN_LINE = re.compile(r"^(\d+): \(([0-9a-f]{2})\) (.*?)(?:\s+; .*)?$")
_INSN_MENTION = re.compile(r"\binsn(?: idx)? #?(\d+)")
_NOT_COMPLAINT = re.compile(
    r"^(processed \d+ insns|verification time|stack depth|func#\d+ @\d+|\d+: R\d|"
    r"from \d+ to \d+:|Live regs|mark_precise|last_idx|regs=|parent |; |\s*$|"
    r"Validating |btf_vmlinux|\d+: \(|R\d+_?w?=)")


class LogEntry(NamedTuple):
    """One instruction line of a verifier log: the log's line number, the instruction's
    slot index, its opcode and the verifier's text for it."""

    line: int
    index: int
    opcode: int
    text: str


def parse_verifier_log(log: str) -> Tuple[List[LogEntry], Optional[int], str]:
    """Read a verifier log: the instruction lines (``12: (85) call
    bpf_map_lookup_elem#1``), the slot index of the instruction it failed at (the last
    instruction it reported, or the one an early error names: ``jump out of range from
    insn 3 to 9``; None if it names none), and its complaint (the message lines after
    that instruction, without the statistics)."""
    lines = log.rstrip("\n").split("\n") if log else []
    entries: List[LogEntry] = []
    for n, line in enumerate(lines):
        found = _INSN_LINE.match(line)
        if found:
            entries.append(LogEntry(n, int(found.group(1)), int(found.group(2), 16),
                                    found.group(3).rstrip()))
    start = entries[-1].line + 1 if entries else 0
    complaint = [ln.strip() for ln in lines[start:] if not _NOT_COMPLAINT.match(ln)]
    failing: Optional[int] = entries[-1].index if entries else None
    if failing is None:
        for line in lines:
            mention = _INSN_MENTION.search(line)
            if mention:
                failing = int(mention.group(1))
                break
    return entries, failing, "\n".join(complaint)


_FAULTING_REG = re.compile(r"\bR(\d+)\b")
_WRITE = re.compile(r"^[rw](\d+) (=|\+=|-=) (.*)$")
_REG = re.compile(r"^[rw](\d+)$")
_FILL = re.compile(r"^\*\(u64 \*\)\(r10 ([+-]\d+)\)$")
_SPILL = re.compile(r"^\*\(u64 \*\)\(r10 ([+-]\d+)\) = r(\d+)$")


def offset_cause(entries: Sequence[LogEntry], complaint: str) -> Optional[int]:
    """The slot index of the instruction that added a register to the pointer the
    verifier refused (``rX += rY``), found by walking the logged path back from the
    failing instruction through copies, constant offsets and stack spills of the
    register the complaint names first (``R3 offset is outside of the packet``); None
    when the complaint names no register or the value came from elsewhere (a load, a
    helper, a constant)."""
    found = _FAULTING_REG.search(complaint)
    if not found or not entries:
        return None
    reg: Optional[int] = int(found.group(1))
    slot: Optional[str] = None
    for entry in reversed(entries[:-1]):
        text = entry.text
        if slot is not None:
            spill = _SPILL.match(text)
            if spill and spill.group(1) == slot:
                reg, slot = int(spill.group(2)), None
            continue
        if text.startswith("call ") and reg is not None and reg <= 5:
            return None                 # r0 is the call's result, r1-r5 are clobbered
        write = _WRITE.match(text)
        if not write or int(write.group(1)) != reg:
            continue
        op, rhs = write.group(2), write.group(3)
        if op == "=":
            copy, fill = _REG.match(rhs), _FILL.match(rhs)
            if copy:
                reg = int(copy.group(1))
            elif fill:
                reg, slot = None, fill.group(1)
            else:
                return None
        elif _REG.match(rhs):
            return entry.index          # pointer += a register: the variable offset
    return None


def _slot_table(instructions: Sequence[Instruction]) -> Dict[int, Instruction]:
    table = {}
    slot = 0
    for ins in instructions:
        table[slot] = ins
        slot += ins.slots
    return table


def _source_text(loc: SourceLocation) -> str:
    text = loc.text or linecache.getline(loc.file, loc.line)
    return text.strip()


def _where(loc: SourceLocation) -> str:
    text = _source_text(loc)
    return f"{loc.file}:{loc.line}: {text}" if text else f"{loc.file}:{loc.line}"


class VerifierError(_errors.VerifierError):
    """A program the kernel refused, explained in terms of the program's own code.

    Besides ``errno``, ``log`` (the whole verifier log) and ``hint`` of
    :class:`pybpf.syscall.errors.VerifierError`, it has ``instructions`` (as given to
    the load), ``failing_index`` (slot of the instruction the verifier stopped at, or
    None), ``failing_instruction``, ``source`` (its :class:`SourceLocation` or None) and
    ``complaint`` (the verifier's message). ``str()`` shows all of them.
    """

    def __init__(self, base: _errors.VerifierError,
                 instructions: Sequence[Instruction], name: str = "") -> None:
        super().__init__(base.errno or _errno.EINVAL, base.strerror or "",
                         command=base.command, hint=base.hint, log=base.log,
                         log_lines=getattr(base, "log_lines", None),
                         log_dropped=getattr(base, "log_dropped", 0),
                         log_file=getattr(base, "log_file", ""))
        self.instructions = list(instructions)
        self.program_name = name
        self.entries, self.failing_index, self.complaint = parse_verifier_log(base.log)
        self._slots = _slot_table(self.instructions)
        self.failing_instruction: Optional[Instruction] = (
            self._slots.get(self.failing_index) if self.failing_index is not None else None)
        self.source: Optional[SourceLocation] = (
            self.failing_instruction.source if self.failing_instruction is not None else None)
        #: the instruction that added a variable offset to the faulting pointer, when
        #: the log shows one on another line (see :func:`offset_cause`)
        self.cause_index: Optional[int] = offset_cause(self.entries, self.complaint)
        cause = self._slots.get(self.cause_index) if self.cause_index is not None else None
        self.cause: Optional[SourceLocation] = cause.source if cause is not None else None
        if self.cause is not None and self.source is not None and \
                (self.cause.file, self.cause.line) == (self.source.file, self.source.line):
            self.cause = None           # the same line: nothing more to point at

    def annotated_log(self) -> str:
        """The verifier log with, after each instruction line, the source line of that
        instruction (``    file:line: text``) when it has one."""
        lines = self.log.rstrip("\n").split("\n") if self.log else []
        by_line = {e.line: e for e in self.entries}
        out = []
        for n, line in enumerate(lines):
            out.append(line)
            entry = by_line.get(n)
            if entry is not None:
                ins = self._slots.get(entry.index)
                if ins is not None and ins.source is not None:
                    out.append("    " + _where(ins.source))
        return "\n".join(out)

    def __str__(self) -> str:
        head = _errors.BPFError.__str__(self)
        if self.program_name:
            head = f"program {self.program_name!r}: {head}"
        parts = [head]
        if self.failing_index is not None:
            ins = self.failing_instruction
            from .asm.disasm import format_instruction
            text = format_instruction(ins) if ins is not None else "(not in the program)"
            parts.append(f"  at instruction {self.failing_index}: {text}")
            if self.source is not None:
                parts.append(f"  {_where(self.source)}")
        if self.cause is not None:
            parts.append(f"  the pointer got a variable offset at instruction "
                         f"{self.cause_index} that the verifier could not bound (compare "
                         f"the offset with a constant before adding it):")
            parts.append(f"  {_where(self.cause)}")
        if self.complaint:
            parts.append("  verifier: " + self.complaint.replace("\n", "\n            "))
        lines = [ln for ln in self.log.rstrip("\n").split("\n") if ln]
        if lines:
            shown = lines[-self.TAIL_LINES:]
            notes = [f"{len(lines) - len(shown)} earlier lines in .log"] \
                if len(lines) > len(shown) else []
            if self.log_note():
                notes.append(self.log_note())
            more = f" ({'; '.join(notes)})" if notes else ""
            parts.append(f"verifier log{more}:")
            parts.extend("  " + ln for ln in shown)
        return "\n".join(parts)
