"""`pybpf asm`, `pybpf disasm` and `pybpf exec` as a user runs them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pybpf.cli import main
from pybpf.conformance.kernel import kernel_unavailable

ROOT = Path(__file__).resolve().parent.parent
SOURCE = """\
    r1 = 0
    call bpf_get_current_pid_tgid
    if r0 > 3 goto out
    r0 = 0x1 ll
out:
    exit
"""


def pybpf(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pybpf", *args], input=stdin, cwd=ROOT,
                          capture_output=True, timeout=60)


def test_asm_then_disasm_round_trip(tmp_path: Path) -> None:
    src = tmp_path / "p.s"
    src.write_text(SOURCE)
    out = tmp_path / "p.bin"
    assert main(["asm", str(src), "-o", str(out)]) == 0
    assert out.read_bytes().hex() == (
        "b701000000000000" "850000000e000000" "2500020003000000"
        "1800000001000000" "0000000000000000" "9500000000000000")
    listing = pybpf("disasm", str(out))
    assert listing.returncode == 0
    assert listing.stdout.decode().splitlines() == [
        "       0:\tr1 = 0x0",
        "       1:\tcall 0xe  # bpf_get_current_pid_tgid",
        "       2:\tif r0 > 0x3 goto +0x2 <.text+0x28>",
        "       3:\tr0 = 0x1 ll",
        "       5:\texit",
    ]
    # the listing assembles back to the same bytes (addresses and comments are ignored)
    again = pybpf("asm", "-", stdin=listing.stdout)
    assert again.returncode == 0 and again.stdout == out.read_bytes()


def test_ubpf_dialect_both_ways(tmp_path: Path) -> None:
    raw = pybpf("asm", "--dialect", "ubpf", "-", stdin=b"mov %r0, 42\nexit\n")
    assert raw.returncode == 0 and raw.stdout.hex() == "b70000002a0000009500000000000000"
    text = pybpf("disasm", "--dialect", "ubpf", "--hex", raw.stdout.hex())
    assert text.stdout.decode() == "mov %r0, 42\nexit\n"


def test_user_errors_are_one_line_with_exit_1() -> None:
    bad = pybpf("asm", "-", stdin=b"r1 = 0\nr11 = 1\n")
    assert bad.returncode == 1
    err = bad.stderr.decode()
    assert err.startswith("pybpf asm: <stdin>:2:1: error: register r11 does not exist")
    assert "Traceback" not in err
    bad = pybpf("disasm", "--hex", "0f 00 00 00 01 00 00 00")
    assert bad.returncode == 1 and "byte offset 0" in bad.stderr.decode()
    usage = pybpf("asm")
    assert usage.returncode == 2 and "usage:" in usage.stderr.decode()


def test_exec_on_the_interpreter() -> None:
    run = pybpf("exec", "--vm", "examples/answer.s", "--mem", "2a 01 02 00")
    assert run.returncode == 0 and run.stdout.decode().strip() == "0x2d"


@pytest.mark.skipif(kernel_unavailable() is not None, reason=f"{kernel_unavailable()}")
def test_exec_in_the_kernel() -> None:
    run = pybpf("exec", "examples/answer.s", "--mem", "2a 01 02 00")
    assert run.returncode == 0, run.stderr
    assert run.stdout.decode().strip() == "0x2d"


def test_long_jumps_flag(tmp_path: Path) -> None:
    body = "r0 = 0\n" * 40000
    src = tmp_path / "far.s"
    src.write_text(f"goto far\n{body}far:\nexit\n")
    refused = pybpf("asm", str(src))
    assert refused.returncode == 1 and "far" in refused.stderr.decode()
    ok = pybpf("asm", "--long-jumps", str(src))
    assert ok.returncode == 0 and ok.stdout[:8].hex() == "06000000409c0000"


@pytest.mark.skipif(shutil.which("clang-19") is None,
                    reason="clang-19 (test oracle, installed by .ci/run) is missing")
def test_disasm_of_an_elf_object_shows_sections_and_relocations(tmp_path: Path) -> None:
    obj = tmp_path / "subprog.o"
    subprocess.run(["clang-19", "-O2", "-g", "-target", "bpf", "-c",
                    str(ROOT / "tests/data/objects/subprog.c"), "-o", str(obj)], check=True)
    run = pybpf("disasm", "-r", str(obj))
    assert run.returncode == 0, run.stderr
    text = run.stdout.decode()
    assert "Disassembly of section .text:" in text and "Disassembly of section xdp:" in text
    assert "<triple>:" in text and "R_BPF_64_32\t.text" in text
