"""``pybpf asm`` and ``pybpf disasm``: text <-> raw instruction bytes."""

from __future__ import annotations

import argparse
import sys
from typing import BinaryIO, TextIO

__all__ = ["register"]

ASM_EXAMPLES = """examples:
  pybpf asm prog.s -o prog.bin             LLVM syntax (r0 = 1) to raw bytes
  pybpf asm --dialect ubpf test.asm -o t.bin   uBPF syntax (mov %r0, 1)
  echo 'r0 = 42' | pybpf asm - | xxd       from stdin to stdout
"""

DISASM_EXAMPLES = """examples:
  pybpf disasm prog.bin                    llvm-objdump style listing
  pybpf disasm --hex 'b7 00 00 00 2a 00 00 00 95 00 00 00 00 00 00 00'
  pybpf disasm --dialect ubpf prog.bin     uBPF syntax
  pybpf disasm prog.o                      an ELF object, as llvm-objdump -d prog.o
  pybpf disasm -r prog.o                   ... with relocations (llvm-objdump -d -r)
  pybpf disasm --alu32 prog.o              w registers in 32-bit loads/stores (--mcpu=v3)
"""


def register(sub: "argparse._SubParsersAction") -> None:
    """Add the ``asm`` and ``disasm`` subcommands."""
    p = sub.add_parser("asm", help="assemble text into raw instruction bytes",
                       description="Assemble BPF text into raw little-endian instructions.",
                       epilog=ASM_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", help="assembly source ('-' for stdin)")
    p.add_argument("--dialect", choices=("llvm", "ubpf"), default="llvm",
                   help="input syntax (default: llvm)")
    p.add_argument("-o", "--output", default="-", help="output file (default: stdout)")
    p.add_argument("--long-jumps", action="store_true",
                   help="turn out-of-range unconditional jumps into gotol")
    p.set_defaults(handler=run_asm)

    d = sub.add_parser("disasm", help="disassemble raw instruction bytes",
                       description="Print raw BPF instructions as text (llvm-objdump -d).",
                       epilog=DISASM_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = d.add_mutually_exclusive_group(required=True)
    src.add_argument("file", nargs="?", help="raw instruction bytes or a BPF ELF object "
                     "('-' for stdin)")
    src.add_argument("--hex", help="the instructions as hex digits instead of a file")
    d.add_argument("--dialect", choices=("llvm", "ubpf"), default="llvm",
                   help="output syntax (default: llvm)")
    d.add_argument("--no-comments", action="store_true", help="omit helper-name comments")
    d.add_argument("--alu32", action=argparse.BooleanOptionalAction, default=None,
                   help="spell loads, stores and atomics narrower than 64 bits with w "
                   "registers, as llvm-objdump does with --mcpu=v3/v4 or --mattr=+alu32 "
                   "(default: on for raw bytes, like --mcpu=v4; off for an ELF object, "
                   "like llvm-objdump -d, which has nothing in the object to go by)")
    d.add_argument("-r", "--reloc", action="store_true",
                   help="ELF object: show the ELF relocations under their instructions "
                   "(llvm-objdump -d -r; its CO-RE lines from .BTF.ext are not shown)")
    d.set_defaults(handler=run_disasm)


def _parse_hex(text: str) -> bytes:
    """The bytes of ``--hex`` TEXT (spaces and commas ignored); ValueError naming the
    first non-hex character, or the odd digit count."""
    digits = "".join(text.replace(",", " ").split())
    for pos, char in enumerate(digits):
        if char not in "0123456789abcdefABCDEF":
            raise ValueError(f"--hex: {char!r} (digit {pos + 1}) is not a hex digit; give "
                             "bytes as pairs of 0-9/a-f, e.g. 'b7 00 00 00 2a 00 00 00'")
    if len(digits) % 2:
        raise ValueError(f"--hex: {len(digits)} hex digits is an odd count: each byte "
                         "needs two digits (write 0x0b as '0b')")
    return bytes.fromhex(digits)


def run_asm(args: argparse.Namespace) -> int:
    """Handler of ``pybpf asm``."""
    from pybpf.asm import encode
    from pybpf.asm.assembler import assemble
    from pybpf.cli.common import read_input_text

    name = "<stdin>" if args.file == "-" else args.file
    program = assemble(read_input_text(args.file), dialect=args.dialect, file=name,
                       long_jumps=args.long_jumps)
    data = encode(program)
    if args.output == "-":
        out: BinaryIO = sys.stdout.buffer
        out.write(data)
        out.flush()
    else:
        with open(args.output, "wb") as fh:
            fh.write(data)
    return 0


def run_disasm(args: argparse.Namespace) -> int:
    """Handler of ``pybpf disasm``."""
    from pybpf.asm import decode
    from pybpf.asm.disasm import disassemble
    from pybpf.cli.common import read_input

    if args.hex is not None:
        data = _parse_hex(args.hex)
    else:
        data = read_input(args.file)
    if data[:4] == b"\x7fELF":          # a BPF object file: what llvm-objdump -d prints
        from pybpf.object.disasm import disasm_object
        name = "<stdin>" if args.hex is None and args.file == "-" else \
            "--hex" if args.hex is not None else args.file
        sys.stdout.write(disasm_object(data, name=name, relocations=args.reloc,
                                       alu32=bool(args.alu32)))
        return 0
    alu32 = True if args.alu32 is None else args.alu32
    program = decode(data)
    out: TextIO = sys.stdout
    if args.dialect == "ubpf":
        from pybpf.asm.ubpf_asm import format_ubpf
        for ins in program:
            out.write(format_ubpf(ins) + "\n")
    else:
        out.write(disassemble(program, helper_comments=not args.no_comments,
                              alu32=alu32))
        if not out.isatty():
            out.flush()
    return 0
