"""The ``pybpf`` command line.

Each subcommand lives in its own module that exposes ``register(subparsers)``; the module
is imported only to build the parser, and heavy work is imported inside the handler.
Exit codes: 0 success, 1 a user error (one line on stderr; ``--debug`` shows the
traceback), 2 a usage error (argparse).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional

__all__ = ["main", "build_parser", "CliError"]

#: subcommand modules, in the order ``--help`` lists them
COMMAND_MODULES = (
    "pybpf.cli.asm_cmds",
    "pybpf.cli.exec_cmd",
    "pybpf.cli.vm_cmd",
    "pybpf.cli.features_cmd",
    "pybpf.cli.prog_cmd",
    "pybpf.cli.map_cmd",
    "pybpf.cli.btf_cmd",
    "pybpf.cli.probes_cmd",
)


class CliError(Exception):
    """A user error: printed as one line, exit status 1."""


def build_parser() -> argparse.ArgumentParser:
    """The complete argparse tree (also used to generate shell completions)."""
    parser = argparse.ArgumentParser(
        prog="pybpf", description="A pure-Python eBPF toolkit.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    from pybpf import __version__
    parser.add_argument("--version", action="version", version=f"pybpf {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of the ``pybpf`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except (CliError, OSError, ValueError, KeyError) as exc:
        if args.debug:
            raise
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"pybpf {args.command}: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
