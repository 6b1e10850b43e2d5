"""``pybpf run NAME|FILE [ARGS...]``: run a tool from ``programs/`` or a user's Python
file as ``__main__``, under the command line's error handling.

A NAME is looked up, in order, in the directories of ``$PYBPF_PROGRAMS``
(``os.pathsep``-separated), in the ``programs/`` directory next to the ``pybpf``
package (a source checkout), and in an installed ``pybpf_programs`` package. A FILE (a
path that exists, or any argument with ``/`` or ending in ``.py``) is run directly.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import List

from pybpf.cli.common import add_parser, examples

__all__ = ["register", "run", "program_dirs", "available_programs", "resolve_program"]

#: pybpf.program.LOG_FILE_ENV and pybpf.dsl.cache.NO_CACHE_ENV, spelled here so that
#: starting a tool does not import those modules before the tool needs them
LOG_FILE_ENV = "PYBPF_VERIFIER_LOG"
NO_CACHE_ENV = "PYBPF_NO_CACHE"

EXAMPLES = examples(
    ("pybpf run execsnoop", "programs/execsnoop.py (when that tool exists)"),
    ("pybpf run ./mytool.py -p 42", "your script, with sys.argv = ['./mytool.py', '-p', '42']"),
    ("pybpf --debug run mytool.py", "a traceback instead of one line on errors"),
    ("pybpf run --verifier-log v.txt mytool.py", "a refused program's whole verifier log "
                                                 "in v.txt"),
    ("PYBPF_PROGRAMS=~/tools pybpf run NAME", "look for tools in ~/tools first"),
    ("pybpf run --no-cache NAME", "compile the tool's programs even if cached "
                                  "(also: PYBPF_NO_CACHE=1)"),
    note="The file runs as __main__ (like python3 FILE): an error pybpf raises in it\n"
         "(OSError, ValueError, LookupError, a compile error) is printed as one line\n"
         "with exit status 1, an exception its top level raises as one line at its\n"
         "file:line:col, and sys.exit(N) in it becomes the exit status.")


def register(sub: "argparse._SubParsersAction") -> None:
    """Add the ``run`` subcommand."""
    p = add_parser(sub, "run", help="run a tool from programs/ or a Python file",
                   description="Run tool NAME (programs/NAME.py) or Python FILE as "
                               "__main__ with ARGS as its sys.argv[1:].",
                   epilog=EXAMPLES)
    p.add_argument("--verifier-log", metavar="FILE",
                   help="write the whole verifier log of a program the kernel refuses to "
                        "FILE (errors show its first and last lines)")
    p.add_argument("--no-cache", action="store_true",
                   help="compile the programs even when the cache of compiled programs "
                        "has them (and do not store them); also PYBPF_NO_CACHE=1")
    p.add_argument("target", metavar="NAME|FILE", help="a tool's name or a Python file")
    p.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS",
                   help="arguments for the tool")
    p.set_defaults(handler=run)


def program_dirs() -> List[str]:
    """The directories searched for tool NAME, in order (existing ones only):
    ``$PYBPF_PROGRAMS``, then ``programs/`` beside the running ``pybpf`` package (a
    source checkout: its tools match its pybpf), then the installed ``pybpf_programs``
    (an older installed copy never shadows a checkout's tools)."""
    dirs = [d for d in os.environ.get("PYBPF_PROGRAMS", "").split(os.pathsep) if d]
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    dirs.append(os.path.join(os.path.dirname(package), "programs"))
    import importlib.util
    try:
        spec = importlib.util.find_spec("pybpf_programs")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        dirs += list(spec.submodule_search_locations)
    seen: List[str] = []
    for d in dirs:
        d = os.path.expanduser(d)
        if os.path.isdir(d) and d not in seen:
            seen.append(d)
    return seen


def available_programs() -> List[str]:
    """The tool names found in :func:`program_dirs`, sorted."""
    names = set()
    for d in program_dirs():
        for entry in os.listdir(d):
            if entry.endswith(".py") and not entry.startswith(("_", ".")):
                names.add(entry[:-3])
    return sorted(names)


def resolve_program(target: str) -> str:
    """The file for ``target`` (a path or a tool name); LookupError naming the tools
    that exist when there is none."""
    if os.path.isfile(target):
        return target
    if os.path.isdir(target):
        raise IsADirectoryError(f"{target}: is a directory; run expects a tool name "
                                "(pybpf run --help lists where tools are found) or a "
                                "Python file using pybpf")
    if "/" in target or target.endswith(".py"):
        raise FileNotFoundError(f"no such file: {target}")
    for d in program_dirs():
        path = os.path.join(d, target + ".py")
        if os.path.isfile(path):
            return path
    names = available_programs()
    raise LookupError(f"no tool named {target!r} (available: "
                      f"{', '.join(names) if names else 'none yet'})")


def _syntax_error(exc: SyntaxError, path: str) -> Exception:
    """``FILE:LINE:COL: error: SyntaxError: message`` as a one-line error; when the file
    is the one given to ``run``, a hint that it must be a Python program."""
    from pybpf.dsl.userfile import syntax_error
    hint = ""
    if os.path.abspath(str(exc.filename)) == os.path.abspath(path):
        hint = "pybpf run expects a Python program using pybpf, or a tool name"
    return syntax_error(exc, hint)


def _run_main(path: str) -> None:
    """Run ``path`` as ``__main__``. A ``.py`` file runs from its cached bytecode
    (``__pycache__``, as an import would: ``runpy.run_path`` compiles the source on every
    start, a few ms of a tool's start-up); anything else goes through ``runpy``."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("__main__", path) \
        if path.endswith(".py") else None
    if spec is None or spec.loader is None:
        import runpy
        runpy.run_path(path, run_name="__main__")
        return
    module = importlib.util.module_from_spec(spec)
    saved = sys.modules.get("__main__")
    sys.modules["__main__"] = module
    try:
        spec.loader.exec_module(module)
    finally:
        if saved is not None:
            sys.modules["__main__"] = saved


def run(args: argparse.Namespace) -> int:
    """Handler of ``pybpf run``: the tool's exit status."""
    path = resolve_program(args.target)
    saved = {name: os.environ.get(name) for name in (LOG_FILE_ENV, NO_CACHE_ENV)}
    if getattr(args, "verifier_log", None):
        os.environ[LOG_FILE_ENV] = os.path.abspath(args.verifier_log)
    if getattr(args, "no_cache", False):
        os.environ[NO_CACHE_ENV] = "1"
    old_argv = sys.argv[:]
    sys.argv = [path, *args.args]
    script_dir = os.path.dirname(os.path.abspath(path))
    sys.path.insert(0, script_dir)
    try:
        _run_main(path)
    except SyntaxError as exc:
        if args.debug or exc.filename is None:
            raise
        raise _syntax_error(exc, path) from None
    except Exception as exc:
        # raised while the file's top level ran (a map declared with wrong arguments, a
        # Struct field that is not a pybpf type): one line at the user's line
        if args.debug:
            raise
        from pybpf.dsl.userfile import top_level_error
        located = top_level_error(exc, top_level_only=True)
        if located is None or located is exc:
            raise
        raise located from None
    except SystemExit as exc:
        code = exc.code
        if code is None:
            return 0
        if isinstance(code, int):
            return code
        print(code, file=sys.stderr)
        return 1
    finally:
        sys.argv = old_argv
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if sys.path and sys.path[0] == script_dir:
            del sys.path[0]
    return 0
