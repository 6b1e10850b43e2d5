"""The conformance corpus in this kernel: every file passes except the declared skips."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from pybpf.asm import Instruction, slot_count
from pybpf.asm.ubpf_asm import assemble
from pybpf.conformance import (
    FAIL, KERNEL_SKIPS, PASS, SKIP, KernelRunner, build_harness, kernel_unavailable,
    load_case, run_case, run_corpus,
)
from pybpf.conformance.__main__ import main, parse_hex
from pybpf.syscall import VerifierError

# the corpus lives beside the repository: ../shared/conformance
CORPUS = (Path(__file__).resolve().parent.parent / ".." / "shared" / "conformance").resolve()
TESTS = sorted((CORPUS / "tests").glob("*.data"))

_why_not = kernel_unavailable()
pytestmark = [
    pytest.mark.skipif(_why_not is not None, reason=f"kernel backend unavailable: {_why_not}"),
    pytest.mark.skipif(not TESTS, reason="conformance corpus not present"),
]

# The files this kernel cannot run, and the KERNEL_SKIPS feature that excludes each.
EXPECTED_SKIPS = {
    "callx.data": "callx",
    **{f"{op}{bits}-imm-{kind}.data": "shift_imm_out_of_range"
       for op in ("lsh", "rsh", "arsh") for bits in (32, 64) for kind in ("high", "neg")},
}

RUNNER = KernelRunner()


@pytest.mark.parametrize("path", TESTS, ids=[p.name for p in TESTS])
def test_corpus_file_in_kernel(path: Path) -> None:
    outcome = run_case(load_case(path), RUNNER)
    if path.name in EXPECTED_SKIPS:
        assert outcome.status == SKIP, outcome
        assert outcome.message == KERNEL_SKIPS[EXPECTED_SKIPS[path.name]]
        pytest.skip(outcome.message)
    assert outcome.status == PASS, outcome.message


def test_skips_are_honest() -> None:
    """Each declared limitation really is one: the kernel refuses the feature."""
    for feature, body in {"callx": "mov %r2, 5\ncall %r2\nmov %r0, 1\nexit",
                          "shift_imm_out_of_range": "mov %r0, 1\nlsh32 %r0, 60\nexit"}.items():
        assert feature in KERNEL_SKIPS
        with pytest.raises(VerifierError) as info:
            RUNNER.run(assemble(body))
        assert info.value.log, feature
    # while the register forms of out-of-range shifts run and are masked (RFC 9669)
    assert RUNNER.run(assemble("mov %r0, 0x11\nmov %r7, 60\nlsh32 %r0, %r7\nexit")) == 0x10000000


def test_whole_corpus_summary() -> None:
    out = io.StringIO()
    outcomes = run_corpus(CORPUS / "tests", RUNNER, out=out)
    assert out.getvalue().splitlines()[-1] == (
        f"{len(TESTS) - len(EXPECTED_SKIPS)} passed, 0 failed, {len(EXPECTED_SKIPS)} skipped")
    assert sum(o.status == FAIL for o in outcomes) == 0


def test_negative_files_rejected_by_the_kernel() -> None:
    # error.data reads r0 before writing it: the verifier refuses
    case = load_case(CORPUS / "negative" / "error.data")
    with pytest.raises(VerifierError) as info:
        RUNNER.run(case.program(), case.mem)
    assert "R0 !read_ok" in info.value.log
    outcome = run_case(case, RUNNER)
    assert outcome.status == PASS and "rejected as expected" in outcome.message
    # mov64 with off=1 is Linux's addr_space_cast; the kernel refuses spaces 0 -> 0, as
    # pybpf's decoder does (checked in test_ubpf_asm.py)
    body = [Instruction(0xBF, 1, 2, 1, 0x0), Instruction(0xB7), Instruction(0x95)]
    with pytest.raises(VerifierError) as info:
        RUNNER.run(body)  # built directly, not decoded
    assert "addr_space_cast insn can only convert between" in info.value.log
    # all 64 bits of r0 are compared, not only the 32 an XDP program returns
    outcome = run_case(load_case(CORPUS / "negative" / "incorrect_return_value_high_bits.data"),
                       RUNNER)
    assert outcome.status == FAIL
    assert outcome.message == "returned 0x8877665544332211, expected 0x8977665544332211"


def test_harness_layout() -> None:
    body = assemble("mov %r0, 7\nexit")
    program = build_harness(3, 4, 5, body)
    assert program[-2:] == body
    main_slots = slot_count(program[:-2])
    calls = [i for i, ins in enumerate(program) if ins.is_local_call]
    assert len(calls) == 1
    call_slot = slot_count(program[:calls[0]])
    assert call_slot + 1 + program[calls[0]].imm == main_slots
    maps = [ins for ins in program if ins.opcode == 0x18]
    assert [(m.src, m.imm) for m in maps] == [(1, 3), (1, 4)]


def test_runner_values() -> None:
    assert RUNNER.run(assemble("lddw %r0, 0x8877665544332211\nexit")) == 0x8877665544332211
    assert RUNNER.run(assemble("mov %r0, %r2\nexit"), b"\x01" * 40) == 40
    assert RUNNER.run(assemble("ldxb %r0, [%r1+3]\nexit"), bytes(range(10))) == 3
    # the input memory is writable, as in the suite
    assert RUNNER.run(assemble("stb [%r1+1], 9\nldxh %r0, [%r1]\nexit"), b"\x01\x02") == 0x0901
    # a program with local calls and exits of its own
    prog = assemble("call local f\nadd %r0, 1\nexit\nf:\nmov %r0, 41\nexit")
    assert RUNNER.run(prog) == 42


def test_parse_hex() -> None:
    assert parse_hex("b7 00  2a") == b"\xb7\x00\x2a"
    assert parse_hex("b7002a\n") == b"\xb7\x00\x2a"
    assert parse_hex("0xb7, 0x0") == b"\xb7\x00"
    assert parse_hex("") == b""
    with pytest.raises(ValueError):
        parse_hex("zz")


def _plugin(stdin: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pybpf.conformance", *args], input=stdin,
                          capture_output=True, text=True, timeout=60)


def test_plugin_protocol() -> None:
    # as bpf_conformance calls it: memory hex (double spaced) in argv[1], options in
    # argv[2], the program's bytes as hex on stdin, r0 in hex on stdout
    code = "79 10 02 00 00 00 00 00  95 00 00 00 00 00 00 00\n"
    mem = "aa  bb  11  22  33  44  55  66  77  88  cc  dd  "
    done = _plugin(code, mem, "--some-plugin-option")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "8877665544332211"
    # failures: non-zero exit, the reason on stderr
    done = _plugin("4f a0 00 00 00 00 00 00 95 00 00 00 00 00 00 00\n")   # or r0, r10
    assert done.returncode != 0 and "R0 !read_ok" in done.stderr and not done.stdout
    done = _plugin("07 00 01 00 01 00 00 00 95 00 00 00 00 00 00 00")
    assert done.returncode != 0 and "add does not use off" in done.stderr
    done = _plugin("8d 02 00 00 00 00 00 00 95 00 00 00 00 00 00 00")
    assert done.returncode != 0 and "register-indirect" in done.stderr


def test_corpus_command_line(capsys: pytest.CaptureFixture) -> None:
    status = main(["--corpus", str(CORPUS / "tests" / "callx.data"), "--verbose"])
    out = capsys.readouterr().out
    assert status == 0
    assert out.splitlines() == [f"SKIP callx: {KERNEL_SKIPS['callx']}",
                                "0 passed, 0 failed, 1 skipped"]
    status = main(["--corpus", str(CORPUS / "negative" / "invalid_label.data")])
    out = capsys.readouterr().out
    assert status == 1
    assert out.startswith("FAIL invalid_label: does not assemble: ")
    assert "undefined label 'NOT_A_LABEL'" in out
    assert out.endswith("0 passed, 1 failed, 0 skipped\n")
