"""The conformance corpus on the interpreter: every file gives its ``-- result`` (or fails
as its ``-- error`` says), with nothing skipped."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CORPUS = (REPO / ".." / "shared" / "conformance").resolve()
TESTS = sorted((CORPUS / "tests").glob("*.data"))

pytestmark = pytest.mark.skipif(
    not TESTS, reason=f"the conformance corpus is not at {CORPUS}/tests (../shared/conformance "
                      "relative to the repository)")

conformance = pytest.importorskip("pybpf.conformance",
                                  reason="pybpf.conformance (corpus parser) is not available")
pytest.importorskip("pybpf.asm.ubpf_asm", reason="the uBPF assembler is not available")

from pybpf.vm.backend import VMBackend, VMRunError  # noqa: E402

BACKEND = VMBackend()


@pytest.mark.parametrize("path", TESTS, ids=[p.name for p in TESTS])
def test_corpus_file_on_the_vm(path: Path) -> None:
    case = conformance.load_case(path)
    outcome = conformance.run_case(case, BACKEND)
    assert outcome.status == conformance.PASS, outcome.message
    if not case.expects_error:
        assert outcome.value == case.result


def test_whole_corpus_summary() -> None:
    out = io.StringIO()
    outcomes = conformance.run_corpus(CORPUS / "tests", BACKEND, out=out)
    assert len(outcomes) == len(TESTS)
    assert out.getvalue().splitlines()[-1] == f"{len(TESTS)} passed, 0 failed, 0 skipped"


def test_raw_sections_agree_with_the_assembly() -> None:
    """Files with both ``-- asm`` and ``-- raw`` run the same on the VM either way."""
    checked = 0
    for path in TESTS:
        case = conformance.load_case(path)
        raw = case.raw_program()
        if raw is None or case.asm is None:
            continue
        assert BACKEND.run(raw, case.mem) == BACKEND.run(case.program(), case.mem), path.name
        checked += 1
    assert checked > 0


def test_a_failing_program_is_an_oserror_for_the_runner() -> None:
    from pybpf.asm.ubpf_asm import assemble
    with pytest.raises(VMRunError, match=r"vm: instruction 0 .*out of bounds of input memory"):
        BACKEND.run(assemble("ldxdw %r0, [%r1]\nexit"), b"\x01")
    case = conformance.parse_case("-- asm\nldxdw %r0, [%r1]\nexit\n-- error\nanything\n",
                                  "oob.data")
    assert conformance.run_case(case, BACKEND).status == conformance.PASS


def test_plugin_and_corpus_modes_with_vm_flag() -> None:
    code = "b7 00 00 00 2a 00 00 00 0f 20 00 00 00 00 00 00 95 00 00 00 00 00 00 00"
    done = subprocess.run([sys.executable, "-m", "pybpf.conformance", "--vm", "01 02 03"],
                          input=code, capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "2d\n"                                  # 0x2a + len(mem)
    done = subprocess.run([sys.executable, "-m", "pybpf.conformance", "--vm", "--corpus",
                           str(CORPUS / "tests")], capture_output=True, text=True, cwd=REPO,
                          timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1] == f"{len(TESTS)} passed, 0 failed, 0 skipped"
