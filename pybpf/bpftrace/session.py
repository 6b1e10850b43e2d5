"""One run of a bpftrace program: the options it runs with, the front half (parse,
attach points, semantic analysis) and, later, the run itself.

This module is the meeting point of ``pybpf trace``'s two halves:

* the command line (:mod:`pybpf.cli.trace_cmd`) turns bpftrace's options and
  environment variables into a :class:`TraceOptions` and calls :func:`run`;
* the compiler and runtime (lowering to :mod:`pybpf.compiler`, loading, attaching,
  reading events and printing maps) sit behind :func:`run`.

:func:`front` is the part both share: the program text to an analysed program, with
bpftrace's errors (:class:`~pybpf.bpftrace.errors.BpftraceError`) for anything wrong.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, TextIO

from .._nogc import gc_paused
from .._records import field, record

__all__ = ["TraceOptions", "FrontResult", "front", "run", "default_rb_pages",
           "MIN_RING_BYTES"]


@record
class TraceOptions:
    """Everything a bpftrace run depends on besides the program text, named after
    bpftrace 0.17's options (``bpftrace --help``) and environment variables.

    Command line: ``output_format`` (``-f text|json``), ``output_path`` (``-o FILE``),
    ``buffering`` (``-B none|line|full``; None: line when stdout is a tty, else full
    as bpftrace's C stdio would), ``include_dirs`` (``-I``), ``includes``
    (``--include``), ``unsafe`` (``--unsafe``), ``quiet`` (``-q``: no "Attaching"
    line), ``verbose`` (``-v``), ``debug`` (``-d``/``-dd``: 1 or 2), ``pid`` (``-p``),
    ``command`` (``-c CMD``), ``usdt_file_activation``, ``no_warnings``,
    ``helper_check_level`` (``-k``/``-kk``: 1 or 2), ``emit_elf`` (``--emit-elf FILE``),
    ``params`` (the arguments after the program: ``$1``...).

    Environment (bpftrace's defaults): ``strlen`` (``BPFTRACE_STRLEN``, 64, at most
    200), ``map_keys_max`` (``BPFTRACE_MAP_KEYS_MAX``, 4096), ``max_probes``
    (``BPFTRACE_MAX_PROBES``, 512), ``perf_rb_pages`` (``BPFTRACE_PERF_RB_PAGES``, 64;
    unset, at least enough for a 2 MiB ring: :func:`default_rb_pages`),
    ``cat_bytes_max`` (``BPFTRACE_CAT_BYTES_MAX``, 10240), ``no_user_symbols``,
    ``cache_user_symbols`` (``BPFTRACE_CACHE_USER_SYMBOLS``; None: bpftrace's default,
    on with ``-c`` or when ASLR is off), ``vmlinux``
    (``BPFTRACE_VMLINUX``), ``btf`` (``BPFTRACE_BTF``: a BTF file instead of the
    kernel's).

    ``notify_attached`` is bpftrace's test handshake: when the environment has
    ``__BPFTRACE_NOTIFY_PROBES_ATTACHED``, bpftrace prints ``__BPFTRACE_NOTIFY_PROBES_ATTACHED``
    on stderr once every probe is attached.

    ``extensions`` accepts what bpftrace 0.17 refuses but later releases run:
    ``rawtracepoint:event`` probes (0.18) with ``arg0``..., ``offsetof(struct x, f)``
    and ``offsetof(expr, f)`` (0.18); ``for ($kv : @map)`` (0.21) is parsed and refused
    with a located error. The command line sets it from ``PYBPF_TRACE_EXTENSIONS=1``.
    """

    output_format: str = "text"
    output_path: Optional[str] = None
    buffering: Optional[str] = None
    include_dirs: List[str] = field(default_factory=list)
    includes: List[str] = field(default_factory=list)
    unsafe: bool = False
    quiet: bool = False
    verbose: bool = False
    debug: int = 0
    pid: Optional[int] = None
    command: Optional[str] = None
    usdt_file_activation: bool = False
    no_warnings: bool = False
    helper_check_level: int = 0
    emit_elf: Optional[str] = None
    params: List[str] = field(default_factory=list)
    strlen: int = 64
    map_keys_max: int = 4096
    max_probes: int = 512
    perf_rb_pages: int = field(default_factory=lambda: default_rb_pages())
    cat_bytes_max: int = 10240
    no_user_symbols: bool = False
    cache_user_symbols: Optional[bool] = None
    vmlinux: Optional[str] = None
    btf: Optional[str] = None
    notify_attached: bool = False
    extensions: bool = False
    extras: Dict[str, Any] = field(default_factory=dict)


#: the least size of the event ring when ``BPFTRACE_PERF_RB_PAGES`` is not set
MIN_RING_BYTES = 2 << 20


def default_rb_pages() -> int:
    """``BPFTRACE_PERF_RB_PAGES`` when it is not set: bpftrace's 64 pages per CPU, or
    more on a machine with fewer than 8 CPUs, so that the one ring all CPUs share
    (:mod:`.lower` sizes it pages x CPUs) holds at least :data:`MIN_RING_BYTES`:
    bpftrace's perf buffer gives each CPU 64 pages of its own, and a printf storm
    from one CPU fills a small shared ring while the reader is descheduled."""
    ncpus = max(os.cpu_count() or 1, 1)
    return max(64, -(-MIN_RING_BYTES // (4096 * ncpus)))


@record
class FrontResult:
    """The program after the front half: ``program`` (the typed tree),
    ``attach_points`` (per probe, the parsed attach points), ``analysis``
    (:class:`~pybpf.bpftrace.semantic.Analysis`), and the ``env``
    (:class:`~pybpf.bpftrace.probes.ProbeEnv`) it was checked in."""

    source: str
    filename: str
    program: Any
    attach_points: List[Any]
    analysis: Any
    env: Any


@gc_paused
def front(source: str, filename: str, opts: TraceOptions) -> FrontResult:
    """Parse, read the preamble (with the macros of included headers, as bpftrace's
    clang pass provides them), parse the attach points and analyse ``source``; raises
    :class:`~pybpf.bpftrace.errors.BpftraceError` as bpftrace reports it."""
    from .parser import parse_program
    from .probes import ProbeEnv, parse_attach_points
    from .semantic import SemaOptions, analyse
    env = ProbeEnv(params=opts.params, pid=opts.pid, has_child=opts.command is not None,
                   extensions=opts.extensions, command=opts.command)
    program = parse_program(source, filename, headers=True,
                            include_dirs=list(opts.include_dirs) or None,
                            include_files=opts.includes, allow_for=opts.extensions)
    attach_points = parse_attach_points(program, env, source, filename)
    sema = SemaOptions(unsafe=opts.unsafe, strlen=opts.strlen,
                       has_child=opts.command is not None, extensions=opts.extensions)
    analysis = analyse(program, attach_points, env, sema, source=source, filename=filename)
    return FrontResult(source, filename, program, attach_points, analysis, env)


def run(source: str, filename: str, opts: TraceOptions, *,
        stdout: Optional[TextIO] = None, stderr: Optional[TextIO] = None) -> int:
    """Run the program as ``bpftrace`` would and return its exit status: compile, load,
    attach (printing ``Attaching N probes...`` unless ``quiet``), run until ``exit()``,
    Ctrl-C/SIGTERM or the ``-c`` command's end, run ``END``, print the maps, detach
    (:mod:`pybpf.bpftrace.runtime` has the order). Errors in the program are printed
    as bpftrace prints them (exit status 1)."""
    import sys
    from .errors import BpftraceError
    err = stderr or sys.stderr
    out_stream = stdout or default_stdout()
    opened = None
    child = None
    try:
        result = opts.extras.get("front")
        if result is None:                 # not analysed by the command line yet
            try:
                result = front(source, filename, opts)
            except BpftraceError as exc:
                err.write(str(exc).rstrip("\n") + "\n")
                return 1
            if not opts.no_warnings:
                from .errors import render_diagnostic
                for w in result.analysis.warnings:
                    err.write(render_diagnostic(w, source, filename) + "\n")
        if opts.command is not None:
            from .runtime import fork_child
            child = fork_child(opts.extras.get("command_argv") or opts.command)
            opts.extras["cpid"] = child[0]
        mod = opts.extras.get("lowered")           # a cached program (:mod:`.cache`)
        pending = opts.extras.get("cache_pending") if mod is None else None
        if mod is None:
            from .lower import lower_program
            from ..compiler.errors import CompileError
            try:
                mod = lower_program(result, opts)
            except CompileError as exc:
                if hasattr(exc, "status"):           # a bpftrace message, unlocated
                    err.write(f"ERROR: {exc.message}\n")
                    return exc.status                  # type: ignore[attr-defined]
                err.write(compile_error_text(exc, source, filename) + "\n")
                return 1
            finally:
                if pending is not None:
                    pending.stop()
            if pending is not None and result.env.warnings:
                pending.refuse("warnings")
        for w in result.env.warnings:                # found while matching probes
            err.write(f"WARNING: {w}\n")
        result.env.warnings.clear()
        if opts.emit_elf is not None:                # a dry run, as in bpftrace
            from .emit import write_elf
            write_elf(mod, opts.emit_elf)
            return 0
        if opts.output_path:
            opened = open(opts.output_path, "w", encoding="latin-1")
            out_stream = opened
        from .attach import AttachFailure
        from .runtime import Output, Runtime, release_child
        from .errors import WatchpointAbort
        out = Output(out_stream, "full" if opened is not None else opts.buffering)
        rt = Runtime(result, mod, opts, out)
        rt.err = err
        if opened is not None:
            rt.console = Output(stdout or default_stdout(), opts.buffering)
        rt.install_signals()
        try:
            try:
                rt.load()
            except Exception:
                _forget(opts.extras.get("cache_entry"))   # a cached module: rebuilt next
                raise
            if pending is not None:                  # the kernel took it: keep it
                pending.store(result, mod)
            rt.open_reader()
            n = rt.probe_count()
            if n == 0:
                if not opts.quiet:
                    out.write("No probes to attach\n")
                return 1
            if n > opts.max_probes:
                err.write(f"ERROR: Can't attach to {n} probes because it exceeds the "
                          f"current limit of {opts.max_probes} probes.\nYou can increase "
                          "the limit through the BPFTRACE_MAX_PROBES environment "
                          "variable, but BE CAREFUL since a high number of probes "
                          "attached can cause your system to crash.\n")
                return 1
            if not opts.quiet:
                from .notices import attached_probes_json, attached_probes_text
                out.write(attached_probes_json(n) if opts.output_format == "json"
                          else attached_probes_text(n), endl=True)
            rt.run_special("BEGIN")                 # bpftrace: BEGIN, then attach
            try:
                rt.attach()
            except AttachFailure as exc:
                out.flush()
                for note in exc.notes:
                    err.write(note + "\n")
                err.write(f"ERROR: {exc}\n")
                return 255
            if child is not None:
                rt.child = child[0]
                release_child(child[1])
                child = None
            if opts.notify_attached:
                out.flush()
                err.write("__BPFTRACE_NOTIFY_PROBES_ATTACHED\n")      # bpftrace: stderr
                err.flush()
            if rt.has_iter:
                rt.run_iter()
            else:
                rt.wait()
            rt.finish()
        except KeyboardInterrupt:
            rt.finish()
        except AttachFailure as exc:
            for note in exc.notes:
                err.write(note + "\n")
            err.write(f"ERROR: {exc}\n")
            return 255
        except WatchpointAbort:                      # its messages are out already
            return 1
        except Exception as exc:
            err.write(f"ERROR: {exc}\n")
            return 1
        finally:
            rt.close()
            out.flush()             # before Ctrl-C may interrupt again (bpftrace ignores it)
            rt.restore_signals()
        return 0
    finally:
        if child is not None:
            import os
            import signal
            try:
                os.kill(child[0], signal.SIGKILL)
                os.waitpid(child[0], 0)
            except OSError:
                pass
        if opened is not None:
            opened.close()


def _forget(path: Optional[str]) -> None:
    """Remove the cache entry a run's module came from (it failed to load)."""
    if path:
        try:
            os.unlink(path)
        except OSError:
            pass


def compile_error_text(exc: Any, source: str, filename: str) -> str:
    """A lowering error as bpftrace prints its errors: located
    (``stdin:1:9-14: ERROR: message``, the source line and marks) when the error
    names a node of the program, else ``ERROR: ...`` on one line."""
    loc = getattr(exc, "bt_loc", None)
    if loc is None:
        return f"ERROR: {exc}"
    from .errors import Diagnostic, render_diagnostic
    msg = " ".join(exc.message.split())
    if exc.suggestion:
        msg += f" ({' '.join(exc.suggestion.split())})"
    return render_diagnostic(Diagnostic(loc, msg), source, filename)


def default_stdout() -> TextIO:
    """Standard output (a seam for tests)."""
    import sys
    return sys.stdout


def env_flag(name: str) -> bool:
    """A bpftrace boolean environment variable: set to ``1`` (bpftrace's rule)."""
    return os.environ.get(name, "") == "1"
