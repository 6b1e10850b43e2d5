"""``pybpf trace [options] FILE | - | -e PROG [ARGS...]``: bpftrace 0.17's language and
command line without LLVM (:mod:`pybpf.bpftrace.command`).

The arguments after ``trace`` are read exactly as bpftrace reads its own (glibc
``getopt_long``, bpftrace's options, environment variables, messages and exit
statuses), so ``main()`` hands them over without argparse; the parser registered here
only makes ``trace`` appear in ``pybpf --help`` and in shell completion.
``pybpf trace -h`` prints bpftrace's usage text (on stderr, as bpftrace does).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, List

from pybpf.cli.common import add_parser, examples

if TYPE_CHECKING:                   # argparse only for pybpf --help: not on every run
    import argparse

__all__ = ["register", "main", "EXAMPLES"]

EXAMPLES = examples(
    ("pybpf trace -e 'tracepoint:syscalls:sys_enter_openat { printf(\"%s\\n\", comm); }'",
     "a one-liner, as bpftrace -e runs it"),
    ("pybpf trace /usr/sbin/opensnoop.bt", "one of bpftrace's tools"),
    ("pybpf trace -l 'tracepoint:sched:*'", "list probes (bpftrace -l)"),
    ("pybpf trace -d -e 'BEGIN { @x = 1; }'", "the typed tree (bpftrace -d)"),
    ("pybpf trace --info", "what this kernel supports (bpftrace --info)"),
    ("pybpf trace -h", "every option and environment variable"),
    note="Drop-in for scripts written for bpftrace: the pybpf-bpftrace command (and\n"
         "python3 -m pybpf.bpftrace) behaves the same; put it first on PATH as bpftrace\n"
         "with: mkdir -p ~/.local/pybpf-bin && ln -sf \"$(command -v pybpf-bpftrace)\" "
         "~/.local/pybpf-bin/bpftrace\n"
         "       && export PATH=~/.local/pybpf-bin:$PATH     (see docs/trace.md)")


def register(sub: "argparse._SubParsersAction") -> None:
    """Add the ``trace`` subcommand (for ``--help`` and completion; ``main`` runs it)."""
    import argparse
    p = add_parser(sub, "trace", help="run bpftrace programs (bpftrace's command line)",
                   description="Run a bpftrace program (FILE, - for standard input, or "
                               "-e PROG) with bpftrace 0.17's options; pybpf trace -h "
                               "lists them.",
                   epilog=EXAMPLES)
    p.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS",
                   help="bpftrace's options, the program, its positional parameters")
    p.set_defaults(handler=_from_namespace)


def _from_namespace(args: argparse.Namespace) -> int:
    return main(list(args.args), debug=args.debug)


def main(argv: List[str], *, debug: bool = False) -> int:
    """Run ``pybpf trace ARGV`` and return the exit status (``--debug``: tracebacks)."""
    from pybpf.bpftrace.command import console_main
    return console_main(argv, debug=debug or None, prog="pybpf trace")
