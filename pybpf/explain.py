"""What the verifier saw of a program, joined with the program's source: the data
behind ``pybpf explain`` (and the page a later step generates from it).

:func:`explain_file` compiles a pybpf Python file, assembles a ``.s`` file or reads a
clang-built ELF object, loads each program with the verifier's full log (level 2)
and returns one :class:`ProgramReport` per program: its instructions with their source
lines, the parsed walk of the verifier (:class:`pybpf.verifier_states.Trace`), the
JIT-ed size when the kernel accepted it and the failure when it did not. Every report
has ``to_dict()`` (plain JSON data).

A top layer, like :mod:`pybpf.export`: it uses the compiler, the object loader and the
program layer, and nothing below imports it.
"""

from __future__ import annotations

import errno
import os
import tempfile
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Tuple

from .asm.instruction import Instruction, SourceLocation
from .verifier_states import Trace, parse_states

__all__ = ["ProgramReport", "SourceLine", "explain_file", "explain_spec", "source_text",
           "LOG_LEVEL"]

#: the verifier log level used: every instruction with its state (``BPF_LOG_LEVEL2``)
LOG_LEVEL = 2
#: the first log buffer (bytes): a level 2 log of a tool with a loop runs to megabytes,
#: and each size that is too small costs a whole verification
LOG_START = 8 << 20


@dataclass
class SourceLine:
    """A source line and the instruction slots (indexes) it became, in order."""

    file: str
    line: int
    text: str
    indexes: List[int] = field(default_factory=list)

    def to_dict(self) -> Dict[str, Any]:
        """The line as JSON data."""
        return {"file": self.file, "line": self.line, "text": self.text,
                "instructions": list(self.indexes)}


@dataclass
class ProgramReport:
    """One program as the verifier saw it.

    ``name``, ``kind`` (its attach kind or ELF section), ``type`` (program type name),
    ``instructions`` (slot index -> :class:`~pybpf.asm.instruction.Instruction`),
    ``lines`` (the :class:`SourceLine` of each instruction that has one, in the order
    the code first reaches them), ``trace`` (None when the kernel refused the program
    before verifying it), ``accepted``, ``jited_len`` and ``xlated_len`` (bytes, from
    ``bpf_prog_info``; None when refused), ``error`` (the one-line error of a refused
    or failed load) and ``log`` (the whole verifier log)."""

    name: str
    kind: str
    type: str
    instructions: Dict[int, Instruction]
    lines: List[SourceLine]
    trace: Optional[Trace]
    accepted: bool
    jited_len: Optional[int] = None
    xlated_len: Optional[int] = None
    error: str = ""
    log: str = ""

    def source_of(self, index: int) -> Optional[SourceLocation]:
        """The source location of the instruction at slot ``index``."""
        ins = self.instructions.get(index)
        return ins.source if ins is not None else None

    def failure_lines(self) -> List[Tuple[int, Optional[SourceLocation]]]:
        """The failing path as (instruction index, its source location) pairs."""
        if self.trace is None or self.trace.failure is None:
            return []
        return [(i, self.source_of(i)) for i in self.trace.failure.path]

    def to_dict(self) -> Dict[str, Any]:
        """The report as JSON data: instructions as ``{"index", "text", "source"}``."""
        from .asm.disasm import format_instruction
        insns = []
        for index, ins in sorted(self.instructions.items()):
            src = ins.source
            insns.append({"index": index, "text": format_instruction(ins),
                          "source": {"file": src.file, "line": src.line,
                                     "text": source_text(src)} if src else None})
        failure = None
        if self.trace is not None and self.trace.failure is not None:
            fail = self.trace.failure
            src = self.source_of(fail.index) if fail.index is not None else None
            where = {"file": src.file, "line": src.line, "text": source_text(src)} \
                if src else None
            failure = dict(fail.to_dict(), source=where,
                           path_lines=[[i, s.line if s else None]
                                       for i, s in self.failure_lines()])
        return {"name": self.name, "kind": self.kind, "type": self.type,
                "accepted": self.accepted, "jited_len": self.jited_len,
                "xlated_len": self.xlated_len, "error": self.error,
                "instructions": insns, "lines": [ln.to_dict() for ln in self.lines],
                "trace": self.trace.to_dict() if self.trace is not None else None,
                "failure": failure}


def source_text(src: SourceLocation) -> str:
    """The text of the line ``src`` names, stripped (from the location, else the file)."""
    import linecache
    return (src.text or linecache.getline(src.file, src.line)).rstrip("\n").strip()


def _slots(instructions: List[Instruction]) -> Dict[int, Instruction]:
    table, slot = {}, 0
    for ins in instructions:
        table[slot] = ins
        slot += ins.slots
    return table


def _lines(table: Dict[int, Instruction]) -> List[SourceLine]:
    out: Dict[Tuple[str, int], SourceLine] = {}
    for index, ins in sorted(table.items()):
        src = ins.source
        if src is None:
            continue
        key = (src.file, src.line)
        if key not in out:
            out[key] = SourceLine(src.file, src.line, source_text(src))
        out[key].indexes.append(index)
    return list(out.values())


def explain_spec(spec: Any, *, maps: Optional[Dict[str, Any]] = None, kind: str = "",
                 name: str = "") -> ProgramReport:
    """Load :class:`~pybpf.program.ProgramSpec` ``spec`` with a level 2 log and report
    what the verifier saw; the program is closed again. ``maps`` as for
    :meth:`~pybpf.program.ProgramSpec.load`."""
    from .program import VerifierError
    from .syscall.bpf import ProgType
    try:
        type_name = ProgType(spec.type).name.lower()
    except ValueError:
        type_name = str(spec.type)
    table = _slots(list(spec.instructions))
    report = ProgramReport(name or spec.name, kind, type_name, table, _lines(table), None,
                           False)
    fd, path = tempfile.mkstemp(prefix="pybpf-explain-", suffix=".log")
    os.close(fd)
    try:
        try:
            prog = spec.load(maps=maps, log_level=LOG_LEVEL, verifier_log=True,
                             log_size=LOG_START, log_file=path)
        except VerifierError as exc:
            with open(path, encoding="utf-8", errors="replace") as fh:
                log = fh.read() or exc.log
            report.log = log
            report.error = _one_line(exc)
            if exc.errno == errno.ENOSPC:
                # the log outgrew the largest buffer: the walk shown stops where it was cut
                report.error = ("the verifier log did not fit in the largest buffer "
                                "(ENOSPC): the walk is shown up to where it was cut")
            if log.strip():
                report.trace = parse_states(log, refused=True)
            return report
        except OSError as exc:
            report.error = _one_line(exc)
            return report
        with prog:
            report.accepted = True
            report.log = prog.verifier_log
            report.trace = parse_states(prog.verifier_log, refused=False)
            info = prog.info()
            report.jited_len = info.jited_prog_len
            report.xlated_len = info.xlated_prog_len
    finally:
        os.unlink(path)
    return report


def _one_line(exc: BaseException) -> str:
    complaint = getattr(exc, "complaint", "")
    if complaint:
        return complaint.split("\n")[-1]
    return str(exc).split("\n")[0]


def _python_programs(path: str, function: Optional[str], prog_type: str
                     ) -> Iterator[ProgramReport]:
    from .dsl import compile_function, functions_in_file
    from .dsl.attach import kind_of
    from .dsl.loader import LoadedModule, compile_module
    fns = functions_in_file(path)
    if function:
        fns = [f for f in fns if f.__name__ == function]
    if not fns:
        raise LookupError(f"{path}: no function decorated with @pybpf.dsl.bpf"
                          + (f" named {function!r}" if function else "")
                          + " (decorate the program with @bpf or an attach decorator)")
    kinded = [f for f in fns if kind_of(f) is not None]
    if kinded:
        module = compile_module(kinded)
        with LoadedModule(module, programs=[], attach=False) as loaded:
            for name, prog in module.programs.items():
                yield explain_spec(prog.spec(), maps=loaded.maps, kind=repr(prog.kind),
                                   name=name)
    for fn in fns:
        if kind_of(fn) is None:
            compiled = compile_function(fn)
            yield explain_spec(compiled.spec(prog_type), kind=prog_type,
                               name=compiled.name)


def _assembly_program(path: str, prog_type: str) -> Iterator[ProgramReport]:
    from .asm.assembler import assemble
    from .program import ProgramSpec
    from .syscall.bpf import ProgType
    with open(path, encoding="utf-8") as fh:
        instructions = assemble(fh.read(), file=path)
    name = os.path.splitext(os.path.basename(path))[0][:15]
    yield explain_spec(ProgramSpec(ProgType[prog_type.upper()], instructions, name=name),
                       kind=prog_type, name=name)


def _object_programs(path: str, function: Optional[str]) -> Iterator[ProgramReport]:
    from ._records import replace
    from .object import load_collection, read_object
    from .object.collection import _load_btf
    spec = read_object(path)
    names = [n for n in spec.programs if function in (None, n)]
    if not names:
        raise LookupError(f"{path}: no program"
                          + (f" named {function!r}" if function else "")
                          + f" (programs: {', '.join(spec.programs) or 'none'})")
    with load_collection(spec, programs=[]) as coll:
        btf = _load_btf(spec)
        try:
            for name in names:
                pspec, info = spec.programs[name], spec.program_info[name]
                if btf is not None and (info.func_info or info.line_info):
                    pspec = replace(pspec, btf=btf, func_info=info.func_info,
                                    line_info=info.line_info)
                yield explain_spec(pspec, maps=coll.maps, kind=info.section, name=name)
        finally:
            if btf is not None:
                btf.close()


def explain_file(path: str, *, function: Optional[str] = None,
                 prog_type: str = "xdp") -> List[ProgramReport]:
    """Load each program of ``path`` (a pybpf Python file, a ``.s`` assembly file or a
    BPF ELF object; ``function``: only that one) with the full verifier log and report
    what the verifier saw. ``prog_type`` is the program type of assembly files and of
    Python functions without an attach decorator."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file")
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic == b"\x7fELF":
        return list(_object_programs(path, function))
    if path.endswith((".s", ".S", ".asm")):
        name = os.path.splitext(os.path.basename(path))[0][:15]
        if function not in (None, name):
            raise LookupError(f"{path}: an assembly file is one program, named {name!r} "
                              f"after the file, not {function!r} (leave out -f)")
        return list(_assembly_program(path, prog_type))
    if path.endswith(".py"):
        return list(_python_programs(path, function, prog_type))
    raise ValueError(f"{path}: not a Python file, an assembly file (.s) or a BPF ELF "
                     "object; give FILE.py, FILE.s or FILE.o")
