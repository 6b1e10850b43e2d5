"""``pybpf exec``: assemble a program, run it once in the kernel, print r0."""

from __future__ import annotations

import argparse

__all__ = ["register"]

EXAMPLES = """examples:
  sudo pybpf exec examples/answer.s --mem "2a 00 00 00"
  sudo pybpf exec --dialect ubpf test.asm
  sudo pybpf exec --vm prog.s              (no kernel: the reference interpreter)

The program runs as a subprogram of a small XDP program through BPF_PROG_TEST_RUN:
r1 points at the input memory (--mem), r2 holds its length, and the full 64-bit r0 it
returns is printed in hex.
"""


def register(sub: "argparse._SubParsersAction") -> None:
    """Add the ``exec`` subcommand."""
    p = sub.add_parser("exec", help="run a program once in the kernel and print r0",
                       description="Assemble a BPF program and run it once with "
                       "BPF_PROG_TEST_RUN; print the 64-bit r0.", epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", help="assembly source, or raw bytes with --dialect raw ('-' for stdin)")
    p.add_argument("--dialect", choices=("llvm", "ubpf", "raw"), default="llvm",
                   help="input format (default: llvm)")
    p.add_argument("--mem", default="", help="input memory as hex bytes, e.g. '01 02 03'")
    p.add_argument("--vm", action="store_true",
                   help="run on pybpf's interpreter instead of the kernel")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Handler of ``pybpf exec``."""
    import sys

    from pybpf.conformance.__main__ import parse_hex

    mem = parse_hex(args.mem)
    name = "<stdin>" if args.file == "-" else args.file
    if args.dialect == "raw":
        from pybpf.asm import decode
        data = sys.stdin.buffer.read() if args.file == "-" else open(args.file, "rb").read()
        program = decode(data)
    else:
        from pybpf.asm.assembler import assemble
        text = sys.stdin.read() if args.file == "-" else open(args.file, encoding="utf-8").read()
        program = assemble(text, dialect=args.dialect, file=name)
    if args.vm:
        from pybpf.vm import Machine
        r0 = Machine(program, mem=mem).run()
    else:
        from pybpf.conformance.kernel import KernelRunner, kernel_unavailable
        why = kernel_unavailable()
        if why:
            raise PermissionError(f"cannot run in the kernel: {why} (try --vm)")
        r0 = KernelRunner().run(program, mem)
    print(f"{r0 & 0xFFFFFFFFFFFFFFFF:#x}")
    return 0
