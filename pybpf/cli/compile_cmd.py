"""``pybpf compile FILE [--disasm]``: compile the ``@pybpf.dsl.bpf`` functions of a file.

Without options it prints one line per program (name and instruction count); with
``--disasm`` the instructions interleaved with the Python lines they come from. A
compile error, a syntax error in FILE, an exception its top level raises, and an attach
point this kernel does not have are each printed as one line, ``file:line:col: error:
message (hint: ...)`` (exit 1; ``--debug`` for the traceback).
"""

from __future__ import annotations

import argparse
import sys

from pybpf.cli.common import add_parser, error_line, examples

__all__ = ["register", "run"]

EXAMPLES = examples(
    ("pybpf compile prog.py", "each @bpf function of prog.py: name and size"),
    ("pybpf compile prog.py --disasm", "instructions under the Python lines they come from"),
    ("pybpf compile prog.py -f count", "only the function named count"),
    ("pybpf compile prog.py -o prog.o", "an ELF object for bpftool / llvm-objdump"))


def register(sub: "argparse._SubParsersAction") -> None:
    """Add the ``compile`` subcommand."""
    p = add_parser(sub, "compile", help="compile the pybpf.dsl programs of a Python file",
                   description="Compile the programs of FILE (functions decorated with "
                               "@pybpf.dsl.bpf or an attach decorator such as "
                               "@tracepoint) to BPF.", epilog=EXAMPLES)
    p.add_argument("file", metavar="FILE", help="a Python file")
    p.add_argument("--disasm", action="store_true",
                   help="print the instructions interleaved with the Python source")
    p.add_argument("-f", "--function", metavar="NAME", help="only this function")
    p.add_argument("-o", "--output", metavar="OBJ",
                   help="write the decorated programs, their maps and constants as a BPF "
                        "ELF object (bpftool prog loadall and llvm-objdump read it)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Handler of ``pybpf compile``."""
    import os

    from pybpf.cli import CliError
    from pybpf.dsl import CompileError, compile_function, functions_in_file
    if not os.path.exists(args.file):
        raise CliError(f"{args.file}: no such file")
    fns = functions_in_file(args.file)
    if args.function:
        fns = [f for f in fns if f.__name__ == args.function]
    if not fns:
        raise CliError(f"{args.file}: no function decorated with @pybpf.dsl.bpf"
                       + (f" named {args.function!r}" if args.function else ""))
    from pybpf.dsl.attach import kind_of
    from pybpf.dsl.loader import compile_module
    compiled_list = []
    status = 0
    kinded = [f for f in fns if kind_of(f) is not None]
    try:
        if kinded:
            spec = compile_module(kinded)
            compiled_list += [(p.program, repr(p.kind)) for p in spec.programs.values()]
            if args.output:
                spec.write_object(args.output)
    except CompileError as exc:
        if args.debug:
            raise
        print(error_line("compile", exc), file=sys.stderr)
        status = 1
    for fn in fns:
        if kind_of(fn) is not None:
            continue
        try:
            compiled_list.append((compile_function(fn), ""))
        except CompileError as exc:
            if args.debug:
                raise
            print(error_line("compile", exc), file=sys.stderr)
            status = 1
    for compiled, where in compiled_list:
        if args.disasm:
            if where:
                print(f"; {where}")
            sys.stdout.write(compiled.disasm())
            print()
        else:
            print(f"{compiled.name}: {len(compiled)} instructions" + (f" ({where})" if where else ""))
    return status
