"""Differential test of the LLVM dialect against LLVM 19 itself.

About 12,000 random valid instructions, every encoding form many times, are written as
raw ``.quad`` data and assembled by ``llvm-mc-19``; ``llvm-objdump-19`` prints them.

(a) pybpf's :func:`format_instruction` must print exactly llvm-objdump's text, branch
    annotation included;
(b) pybpf's :func:`assemble` of llvm-objdump's text must give the bytes ``llvm-mc-19``
    gives for the same text (assembled in the same llvm-mc run, in a second section);
(c) and that must be the instruction we started from.

Two subprocess calls in all. What LLVM 19 cannot express, or prints ambiguously, is
listed in :data:`LLVM19_GAPS` and excluded only from the checks named there.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import struct
import subprocess
from typing import Callable, Dict, List, NamedTuple, Optional, Tuple

import pytest

from pybpf.asm.disasm import format_instruction
from pybpf.asm.encoding import encode
from pybpf.asm.errors import InvalidInstruction
from pybpf.asm.instruction import Instruction, form_of
from pybpf.asm.llvm_asm import assemble

LLVM_MC = shutil.which("llvm-mc-19")
LLVM_OBJDUMP = shutil.which("llvm-objdump-19")

pytestmark = pytest.mark.skipif(
    LLVM_MC is None or LLVM_OBJDUMP is None,
    reason="llvm-mc-19 and llvm-objdump-19 (LLVM 19) are needed for the differential test",
)

SEED = int(os.environ.get("PYBPF_DIFF_SEED", "20240919"))
COUNT = int(os.environ.get("PYBPF_DIFF_COUNT", "12000"))

#: Instructions LLVM 19 cannot express, or prints the same as another encoding.
#: name -> reason. Each is excluded only from the checks GAP_RULES gives it.
LLVM19_GAPS: Dict[str, str] = {
    "call_local": "a bpf-to-bpf call (src=1) prints as `call N` like a helper call; "
                  "llvm-mc assembles a numeric `call N` as a helper call (src=0)",
    "call_kfunc": "a kfunc call (src=2) prints as `call N` like a helper call, and its "
                  "off field (module BTF fd index) is not printed",
    "load_acquire": "load-acquire (imm 0x100, Linux 6.15) is unknown to LLVM 19: it prints "
                    "the 32/64-bit forms as `lock ... +=` and the others as <unknown>; pybpf "
                    "prints LLVM 20's `rD = load_acquire((u64 *)(rS + off))`",
    "store_release": "store-release (imm 0x110, Linux 6.15) is unknown to LLVM 19 "
                     "(<unknown>); pybpf prints LLVM 20's `store_release((u64 *)(rD + off), rS)`",
    "lddw_pseudo_high": "`ld_pseudo rD, SRC, IMM` prints only the low 32 bits: the second "
                        "slot's imm (map value offset, BTF object fd) is lost",
    "ldind_imm": "`r0 = *(u32 *)skb[rS]` does not print the immediate that the kernel adds "
                 "to rS, so ldind with imm != 0 reads back with imm 0",
    "gotol_far": "llvm-mc-19 rejects `gotol` offsets outside the signed 16-bit range "
                 "(`operand is not an identifier or 16-bit signed integer`) although "
                 "llvm-objdump prints them; pybpf accepts the whole 32-bit range",
}


class _Rule(NamedTuple):
    checks: str                                  # subset of "abc"
    applies: Callable[[Instruction, str], bool]  # (instruction, form name) -> excluded?


GAP_RULES: Dict[str, _Rule] = {
    "call_local": _Rule("bc", lambda ins, name: name == "call_local"),
    "call_kfunc": _Rule("bc", lambda ins, name: name == "call_kfunc"),
    "load_acquire": _Rule("abc", lambda ins, name: name.startswith("load_acquire")),
    "store_release": _Rule("abc", lambda ins, name: name.startswith("store_release")),
    "lddw_pseudo_high": _Rule("bc", lambda ins, name: name == "lddw" and ins.src != 0
                              and (ins.imm & (2**64 - 1)) >> 32 != 0),
    "ldind_imm": _Rule("bc", lambda ins, name: name.startswith("ldind") and ins.imm != 0),
    "gotol_far": _Rule("bc", lambda ins, name: name == "ja32"
                       and not -0x8000 <= ins.imm <= 0x7FFF),
}
assert GAP_RULES.keys() == LLVM19_GAPS.keys()


def excluded(ins: Instruction, name: str, check: str) -> Optional[str]:
    """The gap that excludes ``ins`` from ``check`` ("a", "b" or "c"), or None."""
    for gap, rule in GAP_RULES.items():
        if check in rule.checks and rule.applies(ins, name):
            return gap
    return None


# -- the generator ------------------------------------------------------------------------

def _name(fields: Tuple[int, int, int, int, int]) -> Optional[str]:
    try:
        return form_of(*fields).name
    except InvalidInstruction:
        return None


def templates() -> Dict[Tuple[int, str], Tuple[int, int, int, int, int]]:
    """One valid encoding per (opcode, form name), found by trying every opcode with
    register numbers and the field values that select forms (widths, atomic codes)."""
    found: Dict[Tuple[int, str], Tuple[int, int, int, int, int]] = {}
    offs = (0, 1, 8, 16, 32)
    imms = (0, 1, 16, 32, 64, 0x40, 0x41, 0x50, 0x51, 0xA0, 0xA1, 0xE1, 0xF1, 0x100, 0x110)
    for op in range(256):
        for dst in (0, 1):
            for src in range(11):
                for off in offs:
                    for imm in imms:
                        fields = (op, dst, src, off, imm)
                        name = _name(fields)
                        if name is not None:
                            found.setdefault((op, name), fields)
    return found


def _value(rng: random.Random, field: int, wide: bool) -> int:
    """A random candidate value for field 1 (dst), 2 (src), 3 (off) or 4 (imm)."""
    if field in (1, 2):
        return rng.randrange(16) if rng.random() < 0.1 else rng.randrange(11)
    if field == 3:
        return rng.choice((0, 1, 8, 16, 32, -1, 0x7FFF, -0x8000,
                           rng.randrange(-16, 16), rng.randrange(-0x8000, 0x8000)))
    if wide:
        return rng.choice((0, 1, 0xFFFFFFFF, 1 << 63, 2**64 - 1, 0x7FFFFFFFFFFFFFFF,
                           rng.randrange(1 << 32), rng.randrange(1 << 64)))
    return rng.choice((0, 1, -1, 16, 32, 64, 0x7FFFFFFF, -0x80000000, 0x7FFF, -0x8000,
                       rng.randrange(-16, 16), rng.randrange(-0x8000, 0x8000),
                       rng.randrange(-2**31, 2**31)))


def generate(count: int, seed: int) -> List[Instruction]:
    """``count`` valid instructions: every (opcode, form) in turn, each field then set
    to random values wherever the form stays the same."""
    rng = random.Random(seed)
    pairs = sorted(templates().items())
    out: List[Instruction] = []
    for i in range(count):
        (op, name), base = pairs[i % len(pairs)]
        fields = list(base)
        order = [1, 2, 3, 4]
        rng.shuffle(order)
        for field in order:
            for _ in range(4):
                trial = list(fields)
                trial[field] = _value(rng, field, op == 0x18)
                if _name(tuple(trial)) == name:  # type: ignore[arg-type]
                    fields = trial
                    break
        out.append(Instruction(*fields))
    return out


# -- running LLVM -------------------------------------------------------------------------

_LINE = re.compile(r"^\s*(\d+):\t(.*)$")
_ANNOTATION = re.compile(r" <[^<>]*>$")


def _quads(ins: Instruction) -> List[str]:
    data = ins.encode()
    return [f"\t.quad {struct.unpack_from('<Q', data, i)[0]:#018x}"
            for i in range(0, len(data), 8)]


class LlvmRun(NamedTuple):
    texts: Dict[int, str]   # slot address -> llvm-objdump text of .text
    asm_bytes: bytes        # llvm-mc's bytes for the text section .text.asm


def run_llvm(tmp_path, instructions: List[Instruction], asm_lines: List[str]) -> LlvmRun:
    """Assemble ``instructions`` as raw data into .text and ``asm_lines`` as assembly into
    .text.asm with one llvm-mc call, and disassemble .text with one llvm-objdump call."""
    from elftools.elf.elffile import ELFFile

    src = tmp_path / "diff.s"
    obj = tmp_path / "diff.o"
    lines = ["\t.text"]
    for ins in instructions:
        lines.extend(_quads(ins))
    lines.append('\t.section .text.asm,"ax",@progbits')
    lines.extend("\t" + line for line in asm_lines)
    src.write_text("\n".join(lines) + "\n")
    mc = subprocess.run([LLVM_MC, "-triple", "bpfel", "-mcpu=v4", "-filetype=obj",
                         str(src), "-o", str(obj)], capture_output=True, text=True)
    assert mc.returncode == 0 and not mc.stderr, f"llvm-mc-19 failed:\n{mc.stderr[:4000]}"
    dump = subprocess.run([LLVM_OBJDUMP, "-d", "--no-show-raw-insn", "--mcpu=v4",
                           "--section=.text", str(obj)], capture_output=True, text=True)
    assert dump.returncode == 0, dump.stderr
    texts: Dict[int, str] = {}
    for line in dump.stdout.splitlines():
        m = _LINE.match(line)
        if m:
            texts[int(m.group(1))] = m.group(2)
    with open(obj, "rb") as f:
        asm_bytes = ELFFile(f).get_section_by_name(".text.asm").data()
    return LlvmRun(texts, asm_bytes)


# -- the test -----------------------------------------------------------------------------

def test_generator_covers_every_form():
    instructions = generate(len(templates()) * 3, SEED)
    seen = {(ins.opcode, ins.form.name) for ins in instructions}
    assert seen == set(templates())
    names = {name for _, name in seen}
    assert len(names) >= 120  # every Form name of the ISA


def test_against_llvm19(tmp_path):
    instructions = generate(COUNT, SEED)
    names = [ins.form.name for ins in instructions]
    ours = []
    slots = []
    pc = 0
    for ins in instructions:
        slots.append(pc)
        ours.append(format_instruction(ins, pc=pc, section=".text"))
        pc += ins.slots

    # (b) needs llvm-mc to assemble llvm-objdump's text before we have it: give it our
    # text, which check (a) below proves to be llvm's for every instruction of (b).
    in_b = [i for i, ins in enumerate(instructions) if not excluded(ins, names[i], "b")]
    assert not any(excluded(instructions[i], names[i], "a") for i in in_b)
    asm_lines = [_ANNOTATION.sub("", ours[i]) for i in in_b]  # llvm-mc rejects <...>
    llvm = run_llvm(tmp_path, instructions, asm_lines)

    failures: List[str] = []
    excluded_count: Dict[str, int] = {}
    for i, ins in enumerate(instructions):
        gap = excluded(ins, names[i], "a")
        if gap:
            excluded_count[gap] = excluded_count.get(gap, 0) + 1
            continue
        theirs = llvm.texts.get(slots[i])
        if theirs != ours[i]:
            failures.append(f"(a) {ins!r} [{names[i]}]: llvm {theirs!r} != pybpf {ours[i]!r}")
    assert not failures, f"{len(failures)} text mismatches:\n" + "\n".join(failures[:40])
    assert sum(excluded_count.values()) < len(instructions) // 10, excluded_count

    # (b) pybpf assembles llvm's printed text (annotation and all) into llvm-mc's bytes.
    texts = [llvm.texts[slots[i]] for i in in_b]
    assembled = assemble("\n".join(texts), file="llvm-objdump")
    assert len(assembled) == len(in_b)
    offset = 0
    for k, i in enumerate(in_b):
        mine = encode([assembled[k]])
        theirs = llvm.asm_bytes[offset:offset + len(mine)]
        offset += len(mine)
        if mine != theirs:
            failures.append(f"(b) {texts[k]!r}: llvm-mc {theirs.hex()} != pybpf {mine.hex()}")
        elif not excluded(instructions[i], names[i], "c") and assembled[k] != instructions[i]:
            failures.append(f"(c) {texts[k]!r}: {assembled[k]!r} != {instructions[i]!r}")
    assert offset == len(llvm.asm_bytes)
    assert not failures, f"{len(failures)} mismatches:\n" + "\n".join(failures[:40])

    # Each gap really occurs, so the exclusions stay honest.
    for gap, rule in GAP_RULES.items():
        assert any(rule.applies(ins, names[i]) for i, ins in enumerate(instructions)), gap
