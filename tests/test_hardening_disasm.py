"""``pybpf disasm FILE.o`` against ``llvm-objdump-19 -d FILE.o`` on the same object.

llvm-objdump spells loads, stores and atomics narrower than 64 bits with ``w`` registers
only when its CPU has the ``alu32`` feature (``--mcpu=v3``/``v4``, ``--mattr=+alu32``).
A BPF object does not say which ``-mcpu`` built it, so ``llvm-objdump -d FILE.o`` uses
its default CPU for every object; pybpf must print the same listing, whatever the
``-mcpu`` given to clang.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pytest

from pybpf.asm import Instruction, decode
from pybpf.asm.disasm import format_instruction

from isa_samples import TEMPLATES

ROOT = Path(__file__).resolve().parent.parent
CLANG = shutil.which("clang-19")
LLVM_OBJDUMP = shutil.which("llvm-objdump-19")
LLVM_MC = shutil.which("llvm-mc-19")

needs_clang_objdump = pytest.mark.skipif(
    CLANG is None or LLVM_OBJDUMP is None,
    reason="clang-19 and llvm-objdump-19 (the test oracles) are needed")
needs_mc_objdump = pytest.mark.skipif(
    LLVM_MC is None or LLVM_OBJDUMP is None,
    reason="llvm-mc-19 and llvm-objdump-19 (the test oracles) are needed")

# Two programs in their own sections share a subprogram in .text; a BTF-defined array
# map; 8-, 16- and 32-bit loads and stores; 32-bit arithmetic; a 32-bit atomic add.
SOURCE = r"""
#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;

struct tally {
    u32 calls;
    u32 mixed;
    u16 low;
    u8 tag;
    u8 pad;
    u64 total;
};

struct {
    __uint(type, 2);            /* BPF_MAP_TYPE_ARRAY */
    __uint(max_entries, 4);
    __type(key, u32);
    __type(value, struct tally);
} tallies SEC(".maps");

static void *(*map_lookup)(void *map, const void *key) = (void *)1;

static __attribute__((noinline)) u32 mix(struct tally *t, u32 seed)
{
    u32 v = t->mixed * 7 + seed;
    v ^= v >> 3;
    t->mixed = v;
    t->low = (u16)(v + t->low);
    t->tag = (u8)(t->tag + 1);
    __sync_fetch_and_add(&t->calls, 1);
    t->total += v;
    return v & 0xff;
}

SEC("tracepoint/syscalls/sys_enter_openat")
int on_openat(void *ctx)
{
    u32 key = 0;
    struct tally *t = map_lookup(&tallies, &key);
    if (!t)
        return 0;
    return mix(t, *(u32 *)((char *)ctx + 8)) + 1;
}

SEC("xdp")
int on_packet(void *ctx)
{
    u32 key = 1;
    struct tally *t = map_lookup(&tallies, &key);
    if (!t)
        return 2;
    return mix(t, *(u32 *)ctx) > 128 ? 1 : 2;
}

char _license[] SEC("license") = "GPL";
"""


def _build(tmp_path: Path, cpu: str) -> Path:
    src = tmp_path / "prog.c"
    src.write_text(SOURCE)
    obj = tmp_path / f"prog_{cpu}.o"
    subprocess.run([CLANG, "-target", "bpf", "-O2", f"-mcpu={cpu}", "-c", str(src),
                    "-o", str(obj)], check=True, capture_output=True)
    return obj


def _pybpf_disasm(*args: str) -> List[str]:
    run = subprocess.run([sys.executable, "-m", "pybpf", "disasm", *args], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return run.stdout.splitlines()


def _objdump(*args: str) -> List[str]:
    run = subprocess.run([LLVM_OBJDUMP, *args], capture_output=True, text=True, check=True)
    return run.stdout.splitlines()


def _code(obj: Path) -> Dict[str, List[Instruction]]:
    """Section name -> decoded instructions, for what the object contains."""
    from elftools.elf.elffile import ELFFile
    with open(obj, "rb") as fh:
        elf = ELFFile(fh)
        return {sec.name: decode(sec.data(), validate=False)
                for sec in elf.iter_sections()
                if sec["sh_type"] == "SHT_PROGBITS" and sec["sh_flags"] & 0x4
                and sec["sh_size"]}


@needs_clang_objdump
@pytest.mark.parametrize("cpu", ["v1", "v2", "v3", "v4"])
def test_object_listing_is_llvm_objdumps(tmp_path: Path, cpu: str) -> None:
    obj = _build(tmp_path, cpu)
    code = _code(obj)
    # the object has what the comparison is about
    assert set(code) == {".text", "xdp", "tracepoint/syscalls/sys_enter_openat"}
    ops = {ins.opcode for body in code.values() for ins in body}
    assert {0x61, 0x63} <= ops                      # 32-bit loads and stores
    assert {0x69, 0x6B} & ops and {0x71, 0x73} & ops  # 16- and 8-bit
    assert 0x85 in ops and any(ins.opcode == 0x85 and ins.src == 1
                               for ins in code["xdp"])  # the local call
    if cpu in ("v3", "v4"):
        assert any(op & 0x07 == 0x04 for op in ops)  # ALU32 arithmetic

    ours = _pybpf_disasm(str(obj))
    theirs = _objdump("-d", str(obj))
    assert len(ours) == len(theirs)
    for mine, llvm in zip(ours, theirs):
        assert mine == llvm

    # relocations under their instructions, as -d -r prints them (this object has no
    # CO-RE relocations, which llvm-objdump 19 also lists)
    assert _pybpf_disasm("-r", str(obj)) == _objdump("-d", "-r", str(obj))
    # --alu32 gives the text of an alu32 CPU
    assert _pybpf_disasm("--alu32", str(obj)) == _objdump("-d", "--mcpu=v3", str(obj))


def _quads(ins: Instruction) -> List[str]:
    data = ins.encode()
    return [f"\t.quad {struct.unpack_from('<Q', data, i)[0]:#018x}"
            for i in range(0, len(data), 8)]


@needs_mc_objdump
@pytest.mark.parametrize("flags,alu32", [([], False), (["--mcpu=v2"], False),
                                         (["--mattr=+alu32"], True),
                                         (["--mcpu=v3"], True)])
def test_register_spelling_of_every_form(tmp_path: Path, flags: List[str],
                                         alu32: bool) -> None:
    """Every valid encoding (one per template), printed by llvm-objdump with and without
    the alu32 feature, against format_instruction(alu32=...)."""
    seen = set()
    program: List[Instruction] = []
    for opcode, src, off, imm in TEMPLATES:
        if (opcode, src, off, imm) in seen:
            continue
        seen.add((opcode, src, off, imm))
        ins = Instruction(opcode, 1, src, off, imm)
        if format_instruction(ins) == "<unknown>":
            ins = Instruction(opcode, 0, src, off, imm)
        if format_instruction(ins) == "<unknown>":
            continue
        # load-acquire/store-release are printed as LLVM 20 does, not as LLVM 19
        if opcode & 0x07 == 0x03 and opcode & 0xE0 == 0xC0 and imm in (0x100, 0x110):
            continue
        program.append(ins)
    source = tmp_path / "all.s"
    source.write_text("\n".join(["\t.text"] + [q for ins in program for q in _quads(ins)])
                      + "\n")
    obj = tmp_path / "all.o"
    subprocess.run([LLVM_MC, "-triple", "bpfel", "-filetype=obj", str(source), "-o",
                    str(obj)], check=True, capture_output=True)
    texts: Dict[int, str] = {}
    for line in _objdump("-d", "--no-show-raw-insn", *flags, str(obj)):
        found = re.match(r"^\s*(\d+):\t(.*)$", line)
        if found:
            texts[int(found.group(1))] = found.group(2)
    pc = 0
    narrow = 0
    for ins in program:
        assert format_instruction(ins, pc=pc, section=".text", alu32=alu32) == texts[pc], \
            ins
        if ins.opcode in (0x61, 0x63, 0x69, 0x6B, 0x71, 0x73, 0xC3):
            narrow += 1
        pc += ins.slots
    assert len(texts) == len(program) and narrow > 10
