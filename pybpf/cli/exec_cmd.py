"""``pybpf exec``: assemble a program, run it once in the kernel, print r0."""

from __future__ import annotations

import argparse
from typing import Any, List

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


def _rejection(exc: Any, program: List[Any], name: str) -> Exception:
    """The verifier's refusal of the wrapped program as one line about the user's
    program: ``FILE:LINE:COL: verifier: COMPLAINT (instruction N: TEXT)``, N counted
    from the program's first instruction (the wrapper's are not counted)."""
    from pybpf.asm.disasm import format_instruction
    from pybpf.cli import CliError
    from pybpf.conformance.kernel import build_harness
    from pybpf.program import parse_verifier_log

    start = sum(ins.slots for ins in build_harness(0, 0, 0, []))
    _, index, complaint = parse_verifier_log(exc.log)
    complaint = "; ".join(ln.strip() for ln in complaint.splitlines() if ln.strip()) \
        or str(exc.strerror)
    slots, slot = {}, 0
    for ins in program:
        slots[slot] = ins
        slot += ins.slots
    ins = slots.get(index - start) if index is not None else None
    if ins is None:
        where = name if index is None else f"{name}: in the wrapper (instruction {index})"
        return CliError(f"{where}: verifier: {complaint} (the program runs as a "
                        "subprogram of an XDP program: r1 = input memory, r2 = its "
                        "length; --debug shows the whole log)")
    src = ins.source
    where = f"{src.file}:{src.line}:{src.column}" if src is not None and src.column else \
        f"{src.file}:{src.line}" if src is not None else name
    return CliError(f"{where}: verifier: {complaint} (instruction {index - start}: "
                    f"{format_instruction(ins)}; --debug shows the whole log)")


def run(args: argparse.Namespace) -> int:
    """Handler of ``pybpf exec``."""
    from pybpf.cli.common import read_input, read_input_text
    from pybpf.conformance.__main__ import parse_hex

    mem = parse_hex(args.mem)
    name = "<stdin>" if args.file == "-" else args.file
    if args.dialect == "raw":
        from pybpf.asm import decode
        program = decode(read_input(args.file))
    else:
        from pybpf.asm.assembler import assemble
        program = assemble(read_input_text(args.file), dialect=args.dialect, file=name)
    if args.vm:
        from pybpf.vm import Machine
        r0 = Machine(program, mem=mem).run()
    else:
        from pybpf.conformance.kernel import KernelRunner, kernel_unavailable
        why = kernel_unavailable()
        if why:
            raise PermissionError(f"cannot run in the kernel: {why} (try --vm)")
        from pybpf.syscall.errors import VerifierError
        try:
            r0 = KernelRunner().run(program, mem)
        except VerifierError as exc:
            if args.debug:
                raise
            raise _rejection(exc, program, name) from None
    print(f"{r0 & 0xFFFFFFFFFFFFFFFF:#x}")
    return 0
