"""``python3 -m pybpf.conformance``: two ways to run conformance programs.

Plugin mode (the protocol of bpf_conformance's runner)::

    echo 'b7 00 00 00 2a 00 00 00 95 00 00 00 00 00 00 00' | python3 -m pybpf.conformance [MEM]

The program's bytes come as hex on stdin (space separated or not), the input memory as
hex in the first argument (further arguments are the runner's plugin options, accepted
and ignored). r0 is printed in hex without ``0x``; on failure the exit status is 1 and
the reason goes to stderr.

Corpus mode::

    python3 -m pybpf.conformance --corpus DIR [--verbose]

assembles every ``DIR/*.data`` with pybpf's uBPF assembler, runs it and compares with
its ``-- result`` or ``-- error``; prints a line per failure and ``N passed, N failed, N
skipped``; exits 1 if anything failed.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import List, Optional

from ..asm.encoding import decode
from ..asm.errors import AsmError
from .runner import FAIL, Backend, run_corpus, skip_reason

__all__ = ["main", "parse_hex"]


def parse_hex(text: str) -> bytes:
    """Bytes from hex text: ``"b7 00 2a"``, ``"b7002a"`` or ``"0xb7 0x00"``; whitespace
    and commas separate tokens, a token of more than two digits is a run of bytes."""
    out = bytearray()
    for token in re.split(r"[\s,]+", text.strip()):
        if not token:
            continue
        digits = token[2:] if token.lower().startswith("0x") else token
        if not re.fullmatch(r"[0-9a-fA-F]+", digits):
            raise ValueError(f"{token!r} is not hex")
        if len(digits) % 2:
            if len(digits) == 1:
                digits = "0" + digits
            else:
                raise ValueError(f"{token!r} has an odd number of hex digits")
        out += bytes.fromhex(digits)
    return bytes(out)


def _backend(args: argparse.Namespace) -> Backend:
    if args.vm:  # pybpf's interpreter: no kernel, no root
        from ..vm.backend import VMBackend
        return VMBackend()
    from .kernel import KernelRunner, kernel_unavailable
    reason = kernel_unavailable()
    if reason is not None:
        raise SystemExit(f"pybpf.conformance: cannot use the kernel: {reason}")
    return KernelRunner()


def _plugin(args: argparse.Namespace) -> int:
    try:
        code = parse_hex(sys.stdin.read())
        mem = parse_hex(args.memory or "")
    except ValueError as exc:
        print(f"invalid input: {exc}", file=sys.stderr)
        return 1
    if not code:
        print("no program on stdin", file=sys.stderr)
        return 1
    try:
        program = decode(code)
    except AsmError as exc:
        print(f"invalid program: {exc}", file=sys.stderr)
        return 1
    backend = _backend(args)
    reason = skip_reason(program, backend.skips)
    if reason is not None:
        print(f"unsupported: {reason}", file=sys.stderr)
        return 1
    try:
        value = backend.run(program, mem)
    except OSError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    print(f"{value:x}")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python3 -m pybpf.conformance",
        description="Run BPF conformance programs in this kernel: as a bpf_conformance "
                    "plugin (program hex on stdin, memory hex as argument) or over a "
                    "corpus directory.")
    parser.add_argument("memory", nargs="?", default="",
                        help="plugin mode: input memory as hex bytes")
    parser.add_argument("--corpus", metavar="DIR",
                        help="run every DIR/*.data file and print a summary")
    parser.add_argument("--vm", action="store_true",
                        help="run on pybpf's interpreter (pybpf.vm) instead of the kernel")
    parser.add_argument("--verbose", "-v", action="store_true",
                        help="with --corpus: also list passes and skips, and whole errors")
    args, _plugin_options = parser.parse_known_args(argv)
    if args.corpus:
        outcomes = run_corpus(args.corpus, _backend(args), verbose=args.verbose)
        return 1 if any(o.status == FAIL for o in outcomes) else 0
    return _plugin(args)


if __name__ == "__main__":
    sys.exit(main())
