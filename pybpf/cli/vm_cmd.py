"""``pybpf vm run``: execute a program in the built-in interpreter, no kernel needed."""

from __future__ import annotations

import argparse
import sys
from typing import List

__all__ = ["register"]

RUN_EXAMPLES = """examples:
  pybpf vm run examples/answer.s --mem "2a 00 00 00"     prints 0x2a
  pybpf vm run examples/answer.s --mem "01 02" --trace  every instruction and what it changed
  pybpf vm run --dialect ubpf test.asm                   uBPF syntax (mov %r0, 1)
  pybpf vm run --dialect raw prog.bin                    raw little-endian instructions

r1 points at the input memory and r2 holds its length. The result (r0) is printed in hex
on the last line; bpf_trace_printk output goes to stderr.
"""


def register(sub: "argparse._SubParsersAction") -> None:
    """Add the ``vm`` subcommand and its ``run`` action."""
    p = sub.add_parser("vm", help="run programs in the built-in interpreter (no kernel)",
                       description="A reference BPF interpreter: run and step through "
                                   "programs without a kernel or root.",
                       epilog=RUN_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = p.add_subparsers(dest="vm_command", metavar="ACTION")
    actions.required = True
    r = actions.add_parser("run", help="run a program and print r0",
                           description="Run a BPF program in the interpreter and print the "
                                       "value of r0 at exit.",
                           epilog=RUN_EXAMPLES,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("file", help="the program ('-' for stdin)")
    r.add_argument("--mem", default="", metavar="HEX",
                   help="input memory as hex bytes, e.g. '2a 00 00 00'")
    r.add_argument("--dialect", choices=("llvm", "ubpf", "raw"), default="llvm",
                   help="llvm (r0 = 1), ubpf (mov %%r0, 1) or raw instruction bytes "
                        "(default: llvm)")
    r.add_argument("--trace", action="store_true",
                   help="print every executed instruction with the registers it changed")
    r.add_argument("--max-steps", type=int, default=None, metavar="N",
                   help="stop after N instructions (default: 50 million)")
    r.set_defaults(handler=run_vm)


def _parse_mem(text: str) -> bytes:
    cleaned = text.replace(",", " ").strip()
    if cleaned.lower().startswith("0x") and " " not in cleaned:
        cleaned = cleaned[2:]
    try:
        return bytes.fromhex(cleaned)
    except ValueError as exc:
        raise ValueError(f"--mem: not hex bytes ({exc})") from None


def _load_program(path: str, dialect: str) -> List:
    from pybpf.asm import decode
    from pybpf.asm.assembler import assemble
    from pybpf.cli.common import read_input, read_input_text

    if dialect == "raw":
        return decode(read_input(path))
    text, name = read_input_text(path), "<stdin>" if path == "-" else path
    return assemble(text, dialect=dialect, file=name)


def run_vm(args: argparse.Namespace) -> int:
    """Handler of ``pybpf vm run``."""
    from pybpf.cli import CliError
    from pybpf.vm import Machine, VMError

    mem = _parse_mem(args.mem)
    program = _load_program(args.file, args.dialect)
    if not program:
        raise CliError("the program is empty")
    out = sys.stdout
    try:
        vm = Machine(program, mem=mem)
        if args.max_steps is not None:
            vm.max_steps = args.max_steps
        if args.trace:
            for record in vm.trace():
                out.write(record.format() + "\n")
            result = vm.get_register(0)
        else:
            result = vm.run()
    except VMError as exc:
        for line in getattr(locals().get("vm"), "printk", []):
            print(f"printk: {line.rstrip()}", file=sys.stderr)
        raise CliError(str(exc)) from exc
    for line in vm.printk:
        print(f"printk: {line.rstrip()}", file=sys.stderr)
    if args.trace:
        out.write(f"{vm.steps} instructions executed\n")
    out.write(f"{result:#x}\n")
    out.flush()
    return 0
