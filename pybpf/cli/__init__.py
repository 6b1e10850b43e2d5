"""The ``pybpf`` command line.

Each subcommand lives in its own module that exposes ``register(subparsers)``; the module
is imported only to build the parser, and heavy work is imported inside the handler.
Exit codes: 0 success, 1 a user error (one line on stderr; ``--debug`` shows the
traceback), 2 a usage error (argparse).
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:                  # typing and argparse cost start-up time: annotations only
    import argparse
    from typing import Any, List, Optional

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
    "pybpf.cli.list_cmd",
    "pybpf.cli.run_cmd",
    "pybpf.cli.trace_cmd",
    "pybpf.cli.compile_cmd",
    "pybpf.cli.explain_cmd",
    "pybpf.cli.export_cmd",
    "pybpf.cli.completion_cmd",
)

#: each command name and alias -> the module that registers it (lets ``main`` build only
#: the parser of the command being run; ``tests/test_cli.py`` checks it against the tree)
COMMANDS = {
    "asm": "pybpf.cli.asm_cmds", "disasm": "pybpf.cli.asm_cmds",
    "exec": "pybpf.cli.exec_cmd", "vm": "pybpf.cli.vm_cmd",
    "features": "pybpf.cli.features_cmd", "info": "pybpf.cli.features_cmd",
    "prog": "pybpf.cli.prog_cmd", "map": "pybpf.cli.map_cmd", "btf": "pybpf.cli.btf_cmd",
    "probes": "pybpf.cli.probes_cmd", "list": "pybpf.cli.list_cmd",
    "ls": "pybpf.cli.list_cmd", "run": "pybpf.cli.run_cmd",
    "trace": "pybpf.cli.trace_cmd",
    "compile": "pybpf.cli.compile_cmd", "explain": "pybpf.cli.explain_cmd",
    "export": "pybpf.cli.export_cmd",
    "completion": "pybpf.cli.completion_cmd",
}


EXAMPLES = """examples:
  pybpf list 'tracepoint:syscalls:sys_enter_open*'   probes, as bpftrace -l lists them
  pybpf info                                         what this kernel supports
  pybpf prog list                                    loaded programs (bpftool prog list)
  pybpf run NAME|FILE [ARGS...]                      a tool from programs/ or your script
  pybpf trace -e 'PROGRAM' | FILE                    a bpftrace program (bpftrace's options)
  pybpf COMMAND --help                               each command's options and examples

Exit status: 0 on success, 1 on an error (one line on stderr; --debug shows the
traceback), 2 on a usage error.
"""


class CliError(Exception):
    """A user error: printed as one line, exit status 1."""


def build_parser(only: Optional[str] = None) -> argparse.ArgumentParser:
    """The complete argparse tree (also used to generate shell completions); with
    ``only`` (a command name), a tree with just the module of that command."""
    import argparse
    import importlib
    parser = argparse.ArgumentParser(
        prog="pybpf", description="A pure-Python eBPF toolkit.", epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    from pybpf import __version__
    parser.add_argument("--version", action="version", version=f"pybpf {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in ((COMMANDS[only],) if only in COMMANDS else COMMAND_MODULES):
        importlib.import_module(name).register(sub)
    return parser


def _command_of(argv: List[str]) -> Optional[str]:
    """The command named in ``argv`` (the first word that is not a global option), or
    None (help, version, or an unknown word: the full parser handles those)."""
    for word in argv:
        if word in ("--debug",):
            continue
        return word if word in COMMANDS else None
    return None


def _plain_list(argv: List[str]) -> Any:
    """The parsed arguments of a plain ``list [PATTERN]`` (no options), without
    building argparse: importing argparse and creating its formatters is half of the
    command's start-up, and discovery is what people run most. Anything else (options,
    ``--help``, more words) goes through the parser, which gives the same namespace."""
    if not argv or argv[0] not in ("list", "ls") or len(argv) > 2 or any(
            word.startswith("-") or not word for word in argv[1:]):
        return None
    from types import SimpleNamespace

    from pybpf.cli import list_cmd
    return SimpleNamespace(command=argv[0], debug=False, verbose=False, json=False,
                           all_symbols=False,
                           pattern=argv[1] if len(argv) > 1 else None,
                           handler=list_cmd.run)


def _plain_run(argv: List[str]) -> Any:
    """The parsed arguments of ``[--debug] run [--no-cache] [--verifier-log FILE] TARGET
    [ARGS...]`` spelled out in full, without building the parser: a tool's start is
    what this command is for (issue 20), and the tool builds its own parser anyway.
    Anything else (``--help``, ``--opt=value``, abbreviations, a missing or dashed
    target) goes through the parser, which gives the same namespace."""
    i, debug = 0, False
    if argv[:1] == ["--debug"]:
        i, debug = 1, True
    if argv[i:i + 1] != ["run"]:
        return None
    i += 1
    no_cache, verifier_log = False, None
    while i < len(argv):
        if argv[i] == "--no-cache":
            no_cache, i = True, i + 1
        elif argv[i] == "--verifier-log" and i + 1 < len(argv) \
                and argv[i + 1][:1] not in ("-", ""):
            verifier_log, i = argv[i + 1], i + 2
        else:
            break
    if i >= len(argv) or argv[i][:1] in ("-", ""):
        return None
    from types import SimpleNamespace

    from pybpf.cli import run_cmd
    return SimpleNamespace(debug=debug, command="run", verifier_log=verifier_log,
                           no_cache=no_cache, target=argv[i], args=argv[i + 1:],
                           handler=run_cmd.run)


def _trace(argv: List[str]) -> Optional[int]:
    """``[--debug] trace ARGS...`` runs without argparse: bpftrace's own command line
    follows ``trace`` (:mod:`pybpf.cli.trace_cmd`). None for anything else."""
    debug = False
    for i, word in enumerate(argv):
        if word == "--debug":
            debug = True
            continue
        if word != "trace":
            return None
        from pybpf.cli import trace_cmd
        return trace_cmd.main(argv[i + 1:], debug=debug)
    return None


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of the ``pybpf`` console script."""
    if argv is None:
        argv = sys.argv[1:]
    status = _trace(argv)
    if status is not None:
        return status
    args = _plain_list(argv) or _plain_run(argv)
    if args is None:
        args = build_parser(only=_command_of(argv)).parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except SystemExit:
        raise
    except Exception as exc:
        from pybpf.cli.common import USER_ERRORS, error_line
        if args.debug or not (isinstance(exc, (CliError,) + USER_ERRORS)
                              or getattr(exc, "user_error", False)):
            raise
        print(error_line(args.command, exc), file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
