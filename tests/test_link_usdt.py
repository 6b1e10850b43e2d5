"""USDT: a test binary with SDT notes (sys/sdt.h from systemtap-sdt-dev) and a
semaphore. Listing probes and their arguments, attaching (the kernel raises the
semaphore, so the guarded probe sites run), counting hits, reading an argument."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from pybpf.asm import R0, R1, R2, R6, R10
from pybpf.asm.builder import DW, W, Label, add, atomic_add, build, call, exit_, jeq, \
    ld_map_fd, ldx, mov, stx
from pybpf.elf.usdt import UnknownProbeError, parse_args, usdt_probes
from pybpf.link.uprobe import attach_usdt
from pybpf.program import ProgramSpec
from pybpf.syscall.bpf import ProgType

from linkutil import NoLeaks, counter_map, counting_program, root_reason

SOURCE = r"""
#define _SDT_HAS_SEMAPHORES 1
#include <sys/sdt.h>
#include <stdio.h>
#include <stdlib.h>
unsigned short pybpf_tick_semaphore __attribute__((unused)) __attribute__((section(".probes")));
unsigned short pybpf_plain_semaphore __attribute__((unused)) __attribute__((section(".probes")));
volatile long sink;
int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 1, guarded = 0;
    for (long i = 1; i <= n; i++) {
        if (pybpf_tick_semaphore) {
            DTRACE_PROBE2(pybpf, tick, i, 42);
            guarded++;
        }
        STAP_PROBE1(pybpf, plain, i * 2);
        sink += i;
    }
    printf("%d\n", guarded);
    return 0;
}
"""


def _sdt_reason() -> str:
    if shutil.which("gcc") is None:
        return "gcc is not installed"
    out = subprocess.run(["gcc", "-E", "-x", "c", "-"], input="#include <sys/sdt.h>\n",
                         capture_output=True, text=True)
    return "" if out.returncode == 0 else "sys/sdt.h missing (apt-get install " \
                                          "systemtap-sdt-dev)"


REASON = _sdt_reason()
pytestmark = pytest.mark.skipif(bool(REASON), reason=REASON)


@pytest.fixture(scope="module")
def binary(tmp_path_factory):
    d = tmp_path_factory.mktemp("usdt")
    (d / "u.c").write_text(SOURCE)
    subprocess.run(["gcc", "-O2", "-o", str(d / "usdt"), str(d / "u.c")], check=True)
    return str(d / "usdt")


def test_lists_probes_and_arguments(binary):
    probes = {p.full_name: p for p in usdt_probes(binary)}
    assert set(probes) == {"pybpf:tick", "pybpf:plain"}
    tick = probes["pybpf:tick"]
    assert tick.semaphore and tick.semaphore_offset > 0
    assert probes["pybpf:plain"].semaphore != tick.semaphore
    assert len(tick.args) == 2
    first, second = tick.args
    assert first.size == 8 and first.signed
    assert (second.kind, second.value, second.size) == ("const", 42, 4)
    if first.kind == "reg":
        assert first.pt_regs_offset is not None


def test_argument_parser_forms():
    a, b, c, d = parse_args("-4@-20(%rbp) 8@%rax 4@$5 8@16(%rsp,%rdx,8)")
    assert (a.size, a.signed, a.kind, a.reg, a.offset) == (4, True, "mem", "rbp", -20)
    assert (b.kind, b.reg, b.pt_regs_offset) == ("reg", "rax", 80)
    assert (c.kind, c.value) == ("const", 5)
    assert (d.reg, d.index, d.scale, d.offset) == ("rsp", "rdx", 8, 16)
    (e,) = parse_args("-4@[sp, 16]")
    assert (e.kind, e.reg, e.offset) == ("mem", "sp", 16)
    assert parse_args("4@%edi")[0].reg == "rdi"


@pytest.mark.skipif(bool(root_reason()), reason=root_reason())
@pytest.mark.parametrize("mode", ["pmu", "legacy"])
def test_attach_raises_semaphore_and_counts(binary, mode):
    counts = counter_map()
    with counting_program(ProgType.KPROBE, counts, name="usdt_count") as prog:
        with NoLeaks():
            with attach_usdt(prog, binary, "pybpf:tick", mode=mode) as link:
                assert link.details["probes"][0].name == "tick"
                out = subprocess.run([binary, "25"], capture_output=True, text=True,
                                     check=True).stdout
            assert int(out) == 25                 # the semaphore was up while attached
            assert counts[0] == 25
            out = subprocess.run([binary, "5"], capture_output=True, text=True).stdout
            assert int(out) == 0                  # and down again afterwards
    counts.close()


@pytest.mark.skipif(bool(root_reason()), reason=root_reason())
def test_program_reads_a_register_argument(binary):
    """Sum the first argument of pybpf:plain (i * 2) from struct pt_regs."""
    (plain,) = [p for p in usdt_probes(binary) if p.name == "plain"]
    arg = plain.args[0]
    if arg.kind != "reg" or arg.pt_regs_offset is None:
        pytest.skip(f"the compiler put the argument in {arg.text}")
    counts = counter_map()
    insns = build([
        ldx(DW, R6, R1, arg.pt_regs_offset),
        mov(R1, 0), stx(W, R10, -4, R1), mov(R2, R10), add(R2, -4),
        ld_map_fd(R1, counts), call("map_lookup_elem"), jeq(R0, 0, "out"),
        atomic_add(DW, R0, 0, R6),
        Label("out"), mov(R0, 0), exit_(),
    ])
    with ProgramSpec(ProgType.KPROBE, insns, name="usdt_arg").load() as prog:
        with attach_usdt(prog, binary, "plain", provider="pybpf"):
            subprocess.run([binary, "10"], capture_output=True, check=True)
    assert counts[0] == 2 * sum(range(1, 11))
    counts.close()


def test_unknown_probe(binary):
    with pytest.raises(UnknownProbeError, match="pybpf:tick"):
        attach_usdt(None, binary, "pybpf:tik")
