"""Running conformance cases on a backend and judging the outcome."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import (
    Callable, Dict, List, NamedTuple, Optional, Protocol, Sequence, Set, TextIO, Union,
)

from ..asm.errors import AsmError
from ..asm.instruction import Form, Instruction
from ..asm.opcodes import Source
from .corpus import ConformanceCase, CorpusError, iter_corpus, load_case

__all__ = ["Backend", "Outcome", "skip_reason", "program_features", "SPECIAL_FEATURES",
           "run_case", "run_file", "run_corpus", "PASS", "FAIL", "SKIP"]

PASS, FAIL, SKIP = "pass", "fail", "skip"


class Backend(Protocol):
    """What runs programs: the kernel (:class:`~pybpf.conformance.kernel.KernelRunner`),
    later an interpreter. ``skips`` maps the features it cannot run (Form names and
    :data:`SPECIAL_FEATURES` names) to the reason."""

    name: str
    skips: Dict[str, str]

    def run(self, body: Sequence[Instruction], mem: bytes = b"") -> int:
        """Run ``body`` with ``mem`` as input memory and return the 64-bit r0."""
        ...


class Outcome(NamedTuple):
    """The verdict on one file: ``status`` is ``"pass"``, ``"fail"`` or ``"skip"``;
    ``message`` says why (the mismatch, the error, the skip reason); ``value`` is the r0
    the program returned, if it ran."""

    name: str
    status: str
    message: str = ""
    value: Optional[int] = None


_SHIFTS = {"lsh": 64, "rsh": 64, "arsh": 64, "lsh32": 32, "rsh32": 32, "arsh32": 32}


def _shift_imm_out_of_range(ins: Instruction, form: Form) -> bool:
    width = _SHIFTS.get(form.name)
    return width is not None and not ins.opcode & Source.X and not 0 <= ins.imm < width


#: Features of a program that are not an instruction :class:`Form`, by name, with the
#: test that finds them in one instruction. Backends name them in their ``skips``.
SPECIAL_FEATURES: Dict[str, Callable[[Instruction, Form], bool]] = {
    "shift_imm_out_of_range": _shift_imm_out_of_range,
}


def program_features(program: Sequence[Instruction]) -> Set[str]:
    """The features ``program`` uses: the Form name of every instruction plus the names
    of :data:`SPECIAL_FEATURES` that apply."""
    found: Set[str] = set()
    for ins in program:
        try:
            form = ins.form
        except AsmError:
            continue
        found.add(form.name)
        for name, test in SPECIAL_FEATURES.items():
            if test(ins, form):
                found.add(name)
    return found


def skip_reason(program: Sequence[Instruction], skips: Dict[str, str]) -> Optional[str]:
    """The reason to skip ``program`` on a backend with these ``skips`` (feature name ->
    reason, see :func:`program_features`), or None."""
    features = program_features(program)
    for name, reason in skips.items():
        if name in features:
            return reason
    return None


def run_case(case: ConformanceCase, backend: Backend) -> Outcome:
    """Assemble (or decode) ``case``, run it on ``backend`` and compare with its
    ``-- result`` or ``-- error``. An expected error passes when the assembler, the
    decoder, the verifier or the run fails in any way (a kernel cannot reproduce the
    suite's error texts)."""
    name = case.name
    try:
        program = case.program()
    except AsmError as exc:
        if case.expects_error:
            return Outcome(name, PASS, f"rejected as expected: {exc}")
        return Outcome(name, FAIL, f"does not assemble: {exc}")
    if not program:
        return Outcome(name, FAIL, "the program is empty")
    reason = skip_reason(program, backend.skips)
    if reason is not None:
        return Outcome(name, SKIP, reason)
    try:
        value = backend.run(program, case.mem)
    except OSError as exc:
        if case.expects_error:
            return Outcome(name, PASS, f"rejected as expected: {exc}")
        return Outcome(name, FAIL, f"{backend.name} failed: {exc}")
    if case.expects_error:
        return Outcome(name, FAIL, f"expected an error ({case.error or 'any'}) but the "
                                   f"program returned {value:#x}", value)
    assert case.result is not None
    if value != case.result:
        return Outcome(name, FAIL, f"returned {value:#x}, expected {case.result:#x}", value)
    return Outcome(name, PASS, "", value)


def run_file(path: Union[str, Path], backend: Backend) -> Outcome:
    """:func:`run_case` on a file; a malformed file is a failure."""
    try:
        case = load_case(path)
    except (CorpusError, OSError, UnicodeDecodeError) as exc:
        return Outcome(Path(path).stem, FAIL, f"cannot read the test: {exc}")
    return run_case(case, backend)


def run_corpus(directory: Union[str, Path], backend: Backend, *, verbose: bool = False,
               out: Optional[TextIO] = None) -> List[Outcome]:
    """Run every ``.data`` file of ``directory``, print to ``out`` (default stdout) a
    line per failure (and per pass and skip with ``verbose``) and a summary ``N passed, N
    failed, N skipped``."""
    if out is None:
        out = sys.stdout
    outcomes: List[Outcome] = []
    for path in iter_corpus(directory):
        outcome = run_file(path, backend)
        outcomes.append(outcome)
        if outcome.status == FAIL or verbose:
            first, _, rest = outcome.message.partition("\n")
            line = f"{outcome.status.upper()} {outcome.name}"
            if outcome.message:
                line += f": {first}"
            if verbose and rest:
                line += "\n" + "\n".join("    " + ln for ln in rest.split("\n"))
            print(line, file=out)
    counts = {s: sum(1 for o in outcomes if o.status == s) for s in (PASS, FAIL, SKIP)}
    print(f"{counts[PASS]} passed, {counts[FAIL]} failed, {counts[SKIP]} skipped", file=out)
    return outcomes
