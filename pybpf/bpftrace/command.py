"""The ``bpftrace`` command, drop-in: what ``pybpf trace``, the ``pybpf-bpftrace``
console script and ``python3 -m pybpf.bpftrace`` run.

:func:`trace_main` does what bpftrace 0.17's ``main()`` does with a command line
(:mod:`pybpf.bpftrace.options` reads it): ``--help``, ``--version``, ``--info``,
``-l``/``-lv`` (:mod:`pybpf.bpftrace.listing`), reading the program (``-e``, FILE or
``-``), the front half (:func:`pybpf.bpftrace.session.front`: bpftrace's located errors,
its warnings unless ``--no-warnings``), ``-d``/``-dd`` (the typed tree after each pass,
:mod:`pybpf.bpftrace.typed_dump`), and otherwise :func:`pybpf.bpftrace.session.run`.
Messages and exit statuses are bpftrace's: 1 for usage and program errors, 255 for a
program file that cannot be opened or a ``-c`` command that cannot be started.

The hand-over to the runtime: ``run(source, filename, opts, stdout=, stderr=)`` is
called after :func:`front` succeeded, with the :class:`FrontResult` in
``opts.extras["front"]`` (run may use it rather than analyse again) and, with ``-c``,
the command's words (program resolved on ``PATH``) in ``opts.extras["command_argv"]``.
``--emit-elf`` is left to ``run`` (a dry run that writes the object). Before the front
half, the program is looked up in the cache of compiled programs
(:mod:`pybpf.bpftrace.cache`): on a hit ``run`` gets the stored module in
``opts.extras["lowered"]`` and a stand-in front result, and nothing is parsed,
analysed or compiled; on a miss ``opts.extras["cache_pending"]`` stores the module
once its programs loaded.

:func:`console_main` wraps :func:`trace_main` for a process: a user error the runtime
raises (``OSError``, ``ValueError``, ``LookupError``) becomes one ``ERROR:`` line with
status 1, Ctrl-C status 130; ``PYBPF_DEBUG=1`` (or ``pybpf --debug trace``) shows
tracebacks instead.
"""

from __future__ import annotations

import os
import sys
from typing import List, Mapping, Optional, Sequence, TextIO

from .options import BPFTRACE_VERSION, CommandLineError, parse_command_line, usage_text

__all__ = ["trace_main", "console_main", "version_line", "read_program"]

#: the ``AST after:`` sections ``-d`` prints after a successful analysis, in order
_TYPED_PASSES = ("Semantic", "NodeCounter", "ResourceAnalyser")


def version_line() -> str:
    """``-V``'s line: bpftrace's shape (``bpftrace vX.Y.Z``, which harnesses match with
    ``bpftrace v(\\d+)\\.(\\d+)\\.(\\d+)``) with pybpf's version after it."""
    from pybpf import __version__
    return f"bpftrace {BPFTRACE_VERSION} (pybpf {__version__})"


def _argv_text(text: str) -> str:
    """An argument as Python decoded it (undecodable bytes as surrogates) back to text
    the lexer takes (invalid UTF-8 replaced)."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def read_program(path: str, stdin: Optional[TextIO] = None) -> str:
    """The program in FILE ``path`` or, for ``-``, standard input read line by line with
    a newline after each line, as bpftrace reads it. OSError when the file cannot be
    read."""
    if path == "-":
        stream = stdin if stdin is not None else sys.stdin
        if stream is None:
            return ""
        data = stream.buffer.read() if hasattr(stream, "buffer") else stream.read()
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        return "".join(line + "\n" for line in text.splitlines())
    with open(path, "rb") as fh:
        return fh.read().decode("utf-8", "replace")


def _print_error(err: BaseException, stderr: TextIO, no_warnings: bool) -> None:
    """A :class:`~pybpf.bpftrace.errors.BpftraceError` as bpftrace prints it: the
    warnings gathered before it, then its diagnostics."""
    from .errors import render_diagnostic
    diags = list(getattr(err, "warnings", None) or []) + list(err.diagnostics)
    for d in diags:
        if not (no_warnings and d.level == "WARNING"):
            stderr.write(render_diagnostic(d, err.source, err.filename) + "\n")


def _print_warnings(result: object, stderr: TextIO, no_warnings: bool) -> None:
    from .errors import render_diagnostic
    env = getattr(result, "env", None)
    if not no_warnings:
        for w in getattr(env, "warnings", None) or []:
            stderr.write(f"WARNING: {w}\n")
    for d in result.analysis.warnings:                       # type: ignore[attr-defined]
        if not (no_warnings and d.level == "WARNING"):
            stderr.write(render_diagnostic(d, result.source,  # type: ignore[attr-defined]
                                           result.filename) + "\n")  # type: ignore


def _section(name: str, tree: str) -> str:
    return f"\nAST after: {name}\n-------------------\n{tree}\n"


def _dry_run(source: str, filename: str, opts: object, stdout: TextIO, stderr: TextIO
             ) -> int:
    """``-d``/``-dd``: the tree after parsing, then after each later pass, as bpftrace
    0.17 prints them, stopping where the analysis fails (the error's ``stage``: before
    the passes no tree, in them the parser's tree, in the resource pass also the
    Semantic and NodeCounter trees); where bpftrace then prints LLVM IR, pybpf prints
    each program's disassembly (:func:`.emit.disassembly`)."""
    from .errors import BpftraceError
    from .parser import parse_program
    from .probes import ProbeEnv, parse_attach_points
    from .session import front
    from .typed_dump import dump_program
    o = opts                                                    # type: ignore[assignment]
    parsed = ""
    try:
        program = parse_program(source, filename, headers=True,
                                include_dirs=list(o.include_dirs) or None,
                                include_files=o.includes, allow_for=o.extensions)
        env = ProbeEnv(params=o.params, pid=o.pid, has_child=o.command is not None,
                       extensions=o.extensions, command=o.command)
        attach_points = parse_attach_points(program, env, source, filename)
        # bpftrace's parser has already put the positional parameters in attach points
        parsed = _section("parser", dump_program(program, attach_points))
    except BpftraceError:
        pass                                   # front() reports it, as bpftrace does
    try:
        result = front(source, filename, o)
    except BpftraceError as err:
        stage = getattr(err, "stage", "before")
        if stage in ("passes", "resources"):
            stdout.write(parsed)
        if stage == "resources":
            tree = dump_program(err.program, err.attach_points)  # type: ignore
            stdout.write("".join(_section(n, tree) for n in _TYPED_PASSES[:2]))
        stdout.flush()
        _print_error(err, stderr, o.no_warnings)
        return 1
    stdout.write(parsed)
    _print_warnings(result, stderr, o.no_warnings)
    tree = dump_program(result.program, result.attach_points)
    stdout.write("".join(_section(name, tree) for name in _TYPED_PASSES))
    # where bpftrace prints its LLVM IR: pybpf's instructions (documented difference)
    from ..compiler.errors import CompileError
    from .emit import disassembly
    from .lower import lower_program
    try:
        mod = lower_program(result, o)
    except CompileError as exc:
        from .session import compile_error_text
        stdout.flush()
        stderr.write(compile_error_text(exc, source, filename) + "\n")
        return 1
    except OSError as exc:             # e.g. tracepoint formats unreadable without root
        stdout.flush()
        stderr.write(f"WARNING: no disassembly: {exc}\n")
        return 0
    stdout.write(disassembly(mod))
    return 0


def _list(cmd: object, stdout: TextIO, stderr: TextIO) -> int:
    from .errors import BpftraceError
    from .listing import list_probes
    from .probe_match import ExpansionError
    from .probes import ProbeEnv
    o = cmd.options                                            # type: ignore[attr-defined]
    env = ProbeEnv(listing=True, pid=o.pid, has_child=o.command is not None)
    try:
        listing = list_probes(cmd.search, o.verbose, env)       # type: ignore[attr-defined]
    except BpftraceError as err:
        _print_error(err, stderr, o.no_warnings)
        return 1
    except ExpansionError as err:
        stderr.write(f"ERROR: {err}\n")                # bpftrace 0.17 aborts here
        return 1
    for msg in listing.messages:
        if not (o.no_warnings and "WARNING: " in msg.split("\n", 1)[0]):
            stderr.write(msg + "\n")
    if listing.lines:
        stdout.write("\n".join(listing.lines) + "\n")
    return listing.status


def trace_main(argv: Sequence[str], *, stdout: Optional[TextIO] = None,
               stderr: Optional[TextIO] = None, stdin: Optional[TextIO] = None,
               environ: Optional[Mapping[str, str]] = None,
               prog: str = "bpftrace") -> int:
    """Run bpftrace's command line ``argv`` (without the program name) and return the
    exit status. ``prog`` names the command in the usage text and getopt's messages.
    Program errors are printed as bpftrace prints them; errors of the runtime
    (:func:`~pybpf.bpftrace.session.run`) propagate (see :func:`console_main`)."""
    from .errors import BpftraceError
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    try:
        cmd = parse_command_line(argv, environ)
    except CommandLineError as exc:
        text = exc.text
        if text.startswith("bpftrace: "):
            text = prog + text[len("bpftrace"):]
        if text:
            err.write(text + "\n")
        if exc.usage:
            err.write(usage_text(prog))
        return exc.status
    opts = cmd.options
    if cmd.action == "help":
        err.write(usage_text(prog))
        return 0
    if cmd.action == "version":
        out.write(version_line() + "\n")
        return 0
    if cmd.action == "info":
        from .info import info_report
        err.write(info_report(version_line()[len("bpftrace "):]))
        return 0
    if cmd.action == "list":
        return _list(cmd, out, err)
    if cmd.program is not None:
        source, filename = _argv_text(cmd.program), "stdin"
    else:
        path = cmd.path or "-"
        try:
            source = read_program(path, stdin)
        except OSError as exc:
            err.write(f"ERROR: failed to open file '{path}': "
                      f"{exc.strerror or exc}\n")
            return 255
        filename = "stdin" if path == "-" else path
    opts.params = [_argv_text(p) for p in opts.params]
    if "aot" in opts.extras:
        err.write("ERROR: --aot: pybpf trace does not compile ahead of time; run the "
                  "program with pybpf trace itself\n")
        return 1
    if opts.debug:
        return _dry_run(source, filename, opts, out, err)
    from .session import run
    pending = None
    from .._cache import enabled as cache_enabled
    if cmd.emit_llvm is None and opts.emit_elf is None and cache_enabled():
        from . import cache
        hit = cache.lookup(source, filename, opts)
        if hit is not None:             # compiled before: no parser, analysis, lowering
            opts.extras["front"], opts.extras["lowered"] = hit.front, hit.module
            opts.extras["cache_entry"] = hit.path
            try:
                return int(run(source, filename, opts, stdout=out, stderr=err) or 0)
            except BpftraceError as exc:
                _print_error(exc, err, opts.no_warnings)
                return 1
        pending = cache.start(source, filename, opts)
    try:
        return _compile_and_run(cmd, source, filename, pending, out, err)
    finally:
        if pending is not None:
            pending.stop()


def _compile_and_run(cmd: object, source: str, filename: str, pending: object,
                     out: TextIO, err: TextIO) -> int:
    """The front half, then :func:`~.session.run` (which lowers, and stores the module
    through ``pending``, a :class:`.cache.Pending`, once its programs loaded)."""
    from .errors import BpftraceError
    from .session import front, run
    opts = cmd.options                                         # type: ignore[attr-defined]
    try:
        result = front(source, filename, opts)
    except BpftraceError as exc:
        _print_error(exc, err, opts.no_warnings)
        return 1
    _print_warnings(result, err, opts.no_warnings)
    emit_llvm = cmd.emit_llvm                                  # type: ignore[attr-defined]
    if emit_llvm is not None:
        err.write(f"ERROR: --emit-llvm {emit_llvm}: pybpf compiles without LLVM, so "
                  "there is no LLVM IR to write; -d prints the typed tree, --emit-elf "
                  "the compiled programs\n")
        return 1
    opts.extras["front"] = result
    if pending is not None:
        opts.extras["cache_pending"] = pending
    try:
        return int(run(source, filename, opts, stdout=out, stderr=err) or 0)
    except BpftraceError as exc:
        _print_error(exc, err, opts.no_warnings)
        return 1


def _one_line(exc: BaseException) -> str:
    headline = getattr(exc, "headline", None)
    text = headline if isinstance(headline, str) else str(exc)
    return (text.strip().splitlines() or [type(exc).__name__])[0]


def console_main(argv: Optional[List[str]] = None, *, debug: Optional[bool] = None,
                 prog: str = "bpftrace") -> int:
    """:func:`trace_main` for a process: returns the exit status. Errors the runtime
    raises for the user (``OSError``, ``ValueError``, ``LookupError``, or any exception
    marked ``user_error``) and the runtime not being built yet (``NotImplementedError``)
    are one ``ERROR:`` line on stderr with status 1; with ``debug`` (default:
    ``PYBPF_DEBUG`` set) they raise. Other exceptions are bugs and raise."""
    if argv is None:
        argv = sys.argv[1:]
    if debug is None:
        debug = bool(os.environ.get("PYBPF_DEBUG"))
    try:
        return trace_main(argv, prog=prog)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:
        if debug or not (isinstance(exc, (OSError, ValueError, LookupError,
                                          NotImplementedError))
                         or getattr(exc, "user_error", False)):
            raise
        print(f"ERROR: {_one_line(exc)}", file=sys.stderr)
        return 1


def entry_point() -> None:
    """The ``pybpf-bpftrace`` console script: bpftrace's command line, drop-in."""
    sys.exit(console_main())
