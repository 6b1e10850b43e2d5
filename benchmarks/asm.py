#!/usr/bin/env python3
"""Throughput of pybpf.asm: encode, decode, text assembly and disassembly.

usage: python3 benchmarks/asm.py [--sizes 1000,10000,100000,1000000] [--repeat 3]

Prints instructions per second for each operation on a program of random valid
instructions (every form LLVM 19 can express), and for text assembly the ratio against
llvm-mc-19 run as a whole process (start-up included) on the same text, since that is what
a user would otherwise run. Targets (issue 2): encode >= 1M instructions/s; text assembly
faster than llvm-mc-19 for programs up to 100k instructions.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Callable, List

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

from isa_samples import random_instruction  # noqa: E402

from pybpf.asm import Instruction, decode, encode  # noqa: E402
from pybpf.asm.disasm import format_instruction  # noqa: E402
from pybpf.asm.llvm_asm import assemble  # noqa: E402

# forms llvm-mc-19 cannot read back (LLVM19_GAPS in tests/test_llvm_differential.py)
NOT_IN_LLVM19 = ("load_acquire", "store_release")


def program(n: int, seed: int = 7) -> List[Instruction]:
    rng = random.Random(seed)
    out: List[Instruction] = []
    while len(out) < n:
        ins = random_instruction(rng)
        if ins.form.kind in NOT_IN_LLVM19 or ins.opcode == 0x18 and ins.src != 0:
            continue
        if ins.opcode == 0x85 and ins.src != 0:  # local/kfunc calls print like helper calls
            continue
        if ins.opcode == 0x06 and not -0x8000 <= ins.imm <= 0x7FFF:  # llvm-mc-19 refuses
            continue
        if ins.form.kind == "ldind" and ins.imm:  # the immediate is not printed
            continue
        out.append(ins)
    return out


def best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def llvm_mc_seconds(text: str, repeat: int) -> float:
    exe = shutil.which("llvm-mc-19")
    if exe is None:
        return float("nan")
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "p.s")
        with open(src, "w") as fh:
            fh.write(text)
        cmd = [exe, "-triple", "bpfel", "-mcpu=v4", "-filetype=obj", src, "-o",
               os.path.join(tmp, "p.o")]
        return best(lambda: subprocess.run(cmd, check=True), repeat)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000,100000,1000000")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"{'insns':>9} {'encode/s':>11} {'decode/s':>11} {'disasm/s':>11} {'asm/s':>11} "
          f"{'llvm-mc/s':>11} {'asm vs llvm-mc':>15}")
    for n in sizes:
        prog = program(n)
        data = encode(prog)
        text = "".join(format_instruction(i) + "\n" for i in prog)
        t_enc = best(lambda: encode(prog), args.repeat)
        t_dec = best(lambda: decode(data), args.repeat)
        t_dis = best(lambda: [format_instruction(i) for i in prog], args.repeat)
        t_asm = best(lambda: assemble(text), args.repeat)
        t_mc = llvm_mc_seconds(text, args.repeat)
        ratio = t_mc / t_asm
        print(f"{n:>9} {n / t_enc:>11,.0f} {n / t_dec:>11,.0f} {n / t_dis:>11,.0f} "
              f"{n / t_asm:>11,.0f} {n / t_mc:>11,.0f} {ratio:>14.2f}x"
              f"{'  (pybpf faster)' if ratio > 1 else '  (llvm-mc faster)'}")
        assert encode(assemble(text)) == data, "assembly of the disassembly must round-trip"


if __name__ == "__main__":
    main()
