"""``pybpf explain``: what the verifier saw of each program of a file, per source line.

Loads the programs of a pybpf Python file, an assembly file or a BPF ELF object with
the verifier's full log (:mod:`pybpf.explain`), then prints, under each source line,
the instructions it became and before each visit of an instruction the registers and
stack slots that changed, the branches taken up and the paths pruned, the JIT-ed size,
and for a refused program the path to the failure, the complaint and its source line.
``--json OUT`` writes the whole structure.
"""

from __future__ import annotations

import argparse
import sys

from pybpf.cli.common import add_parser, examples

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, TextIO

__all__ = ["register", "run", "render"]

EXAMPLES = examples(
    ("pybpf explain prog.py", "each program of prog.py, per Python line"),
    ("pybpf explain prog.py -f count", "only the function named count"),
    ("pybpf explain prog.s --type socket_filter", "an assembly file, as a socket filter"),
    ("pybpf explain prog.o --json prog.json", "a clang-built object, and the data as JSON"),
    ("pybpf explain prog.s --html prog.html", "and the page: click an instruction"),
    ("pybpf explain prog.s --trace pkt.bin", "and a run on pybpf.vm with pkt.bin as packet"),
    note="Each visit of an instruction shows what changed before it (the state the\n"
         "verifier carried in); 'pN' is the path (0: the first; a branch the verifier\n"
         "took up later starts a new one). Exit status 0 when every program could be\n"
         "explained, refused or not.")


def register(sub: "argparse._SubParsersAction") -> None:
    """Add the ``explain`` subcommand."""
    p = add_parser(sub, "explain", help="show what the verifier sees of each program",
                   description="Load the programs of FILE (a pybpf Python file, a .s "
                               "assembly file or a BPF ELF object) with the verifier's "
                               "full log and show, per source line, the instructions, the "
                               "register and stack state before each, the branches "
                               "explored and pruned, the JIT-ed size and, for a refused "
                               "program, the failing path.", epilog=EXAMPLES)
    p.add_argument("file", metavar="FILE", help="FILE.py, FILE.s or FILE.o")
    p.add_argument("-f", "--function", metavar="NAME", help="only this program")
    p.add_argument("--type", default="xdp", metavar="TYPE",
                   help="program type of an assembly file or of a Python function "
                        "without an attach decorator (default: xdp)")
    p.add_argument("--json", metavar="OUT", help="write the whole structure as JSON to "
                   "OUT ('-': standard output, instead of the text)")
    p.add_argument("--html", metavar="OUT.html", help="also write the page: one "
                   "self-contained HTML file, the state panel on click")
    p.add_argument("--trace", metavar="INPUT", help="also run each program on pybpf.vm "
                   "with the bytes of file INPUT as its input (the packet of an xdp or "
                   "socket_filter program, else the context) and show the registers "
                   "after each step beside what the verifier assumed")
    p.set_defaults(handler=run)


class _Paint:
    """ANSI colours, or none."""

    def __init__(self, on: bool) -> None:
        self.on = on

    def __call__(self, code: str, text: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.on and text else text


def _colour_wanted(out: "TextIO") -> bool:
    import os
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(out, "isatty", None)
    return bool(isatty and isatty())


def _short_path(path: str) -> str:
    import os
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return rel if not rel.startswith("..") else path


def _ranges(indexes: "List[int]", slots: "Any" = ()) -> str:
    """``0-6 8-17 19-21`` for instruction indexes in order (``slots``: the indexes
    that start an instruction; the second slot of a ``lddw`` does not break a run)."""
    parts: List[str] = []
    start = prev = None
    for i in indexes:
        if start is None:
            start = prev = i
        elif i == prev + 1 or (i == prev + 2 and prev + 1 not in slots):
            prev = i
        else:
            parts.append(f"{start}" if start == prev else f"{start}-{prev}")
            start = prev = i
    if start is not None:
        parts.append(f"{start}" if start == prev else f"{start}-{prev}")
    return " ".join(parts)


def render(report: "Any", out: "TextIO", paint: "Optional[_Paint]" = None) -> None:
    """Write ``report`` (a :class:`pybpf.explain.ProgramReport`) as text."""
    from pybpf.asm.disasm import format_instruction
    paint = paint or _Paint(False)
    trace = report.trace
    head = f"program {report.name} ({report.kind or report.type}): "
    insns = len(report.instructions)
    if report.accepted:
        head += paint("32", "accepted") + f", {insns} instructions, JIT-ed " \
            f"{report.jited_len} bytes (translated {report.xlated_len})"
    elif trace is None:
        head += paint("31;1", "not loaded") + f", {insns} instructions"
    else:
        head += paint("31;1", "refused") + f", {insns} instructions"
    out.write(paint("1", head) + "\n")
    if not report.accepted and report.error and (
            trace is None or trace.failure is None
            or report.error not in trace.failure.complaint):
        out.write(paint("31", f"  {report.error}") + "\n")
    if trace is not None and trace.stats:
        stats = ", ".join(f"{k} {v}" for k, v in trace.stats.items() if k != "limit")
        out.write(f"  verifier: {stats}\n")
    if trace is None:
        out.write("  (no verifier log: the kernel did not get to verifying it)\n\n")
        return
    by_index: Dict[int, List[Any]] = {}
    for v in trace.visits:
        by_index.setdefault(v.index, []).append(v)
    by_seq = {v.seq: v for v in trace.visits}
    prev_in_path: Dict[int, Any] = {}
    previous: Dict[int, Any] = {}           # seq -> the visit whose state it follows
    for v in trace.visits:
        before = prev_in_path.get(v.path)
        if before is None:
            parent = trace.paths.get(v.path)
            before = by_seq.get(parent) if parent is not None else None
        previous[v.seq] = before
        prev_in_path[v.path] = v
    branches_from: Dict[int, List[Any]] = {}
    orphans: Dict[int, List[Any]] = {}      # branches whose queuing visit is unknown
    for b in trace.branches:
        if b.parent is not None:
            branches_from.setdefault(b.parent, []).append(b)
        else:
            orphans.setdefault(b.source, []).append(b)
    prunes_at: Dict[int, List[Any]] = {}
    for p in trace.prunes:
        prunes_at.setdefault(p.index, []).append(p)
    fail = trace.failure
    on_path = set(fail.path) if fail else set()
    groups = [(f"{_short_path(ln.file)}:{ln.line}", ln.text, ln.indexes)
              for ln in report.lines]
    sourced = {i for ln in report.lines for i in ln.indexes}
    loose = [i for i in sorted(report.instructions) if i not in sourced]
    if loose:
        groups.append(("(no source line)", "", loose))
    for where, text, indexes in groups:
        out.write(paint("36", where) + ("  " + paint("1", text) if text else "") + "\n")
        for index in indexes:
            ins = report.instructions[index]
            mark = paint("31", ">") if index in on_path else " "
            visits = by_index.get(index, [])
            for v in visits:
                prev = previous.get(v.seq)
                if prev is not None and prev.before.frame != v.before.frame:
                    changes = [f"frame{v.before.frame}:"] + v.before.changed_from(None)
                else:
                    changes = v.before.changed_from(prev.before if prev is not None
                                                    else None)
                if changes:
                    out.write(f"          {paint('2', f'p{v.path}')} "
                              f"{paint('32', ' '.join(changes))}\n")
            text = visits[0].text if visits else format_instruction(ins)
            note = "" if visits or index in prunes_at else paint("2", "   (not reached)")
            out.write(f" {mark}{index:5}: {text}{note}\n")
            for v in visits:
                for b in branches_from.get(v.seq, []):
                    what = "pruned at once" if b.pruned else f"walked as p{b.path}"
                    out.write(paint("33", f"          p{v.path}: branch {b.source} -> "
                                          f"{b.target} queued, {what}") + "\n")
                if fail is not None and v.seq == fail.seq:
                    last = fail.complaint.splitlines()[-1] if fail.complaint else "?"
                    out.write(paint("31;1", f"          p{v.path}: refused here: {last}")
                              + "\n")
            for b in orphans.get(index, []):
                what = "pruned at once" if b.pruned else f"walked as p{b.path}"
                out.write(paint("33", f"          branch {b.source} -> {b.target} "
                                      f"taken up, {what}") + "\n")
            for p in prunes_at.get(index, []):
                src = f" (from {p.source})" if p.source is not None else ""
                out.write(paint("33", f"          p{p.path} pruned{src}: safe, a state "
                                      f"already proved here covers it") + "\n")
    if fail is not None:
        out.write(paint("31;1", f"refused at instruction {fail.index}") + "\n")
        src = report.source_of(fail.index) if fail.index is not None else None
        if src is not None:
            from pybpf.explain import source_text
            out.write(f"  {_short_path(src.file)}:{src.line}: {source_text(src)}\n")
        for line in fail.complaint.splitlines():
            out.write(paint("31", f"  verifier: {line}") + "\n")
        out.write(f"  path: {_ranges(fail.path, report.instructions)}\n")
        lines: List[str] = []
        for _, loc in report.failure_lines():
            if loc is not None and (not lines or lines[-1] != str(loc.line)):
                lines.append(str(loc.line))
        if lines:
            out.write(f"  source lines on the path: {' -> '.join(lines)}\n")
    out.write("\n")


def run(args: argparse.Namespace) -> int:
    """Handler of ``pybpf explain``."""
    import os
    import platform

    from pybpf.cli import CliError
    from pybpf.explain import explain_file
    if not os.path.exists(args.file):
        raise CliError(f"{args.file}: no such file (give FILE.py, FILE.s or FILE.o)")
    from pybpf.syscall.bpf import ProgType
    if args.type.upper() not in ProgType.__members__:
        raise CliError(f"--type {args.type}: not a program type (e.g. xdp, "
                       "socket_filter, kprobe, tracepoint)")
    # compile, assembly and object errors carry their own one-line form (``headline``,
    # ``user_error``): the command line's handler prints them
    runs = {}
    if args.trace:
        from pybpf.explain_trace import TraceInputError, read_input, run_report
        try:
            packet = read_input(args.trace)
        except TraceInputError as exc:
            raise CliError(str(exc)) from None
    reports = explain_file(args.file, function=args.function, prog_type=args.type)
    if args.trace:
        for r in reports:
            try:
                runs[r.name] = run_report(r, packet)
            except TraceInputError as exc:
                raise CliError(str(exc)) from None
    if args.json or args.html:
        import json
        data = {"file": args.file, "kernel": platform.release(),
                "programs": [dict(r.to_dict(), **({"run": runs[r.name].to_dict()}
                                                  if r.name in runs else {}))
                             for r in reports]}
    if args.html:
        from pybpf.explain_html import render_page
        with open(args.html, "w", encoding="utf-8") as fh:
            fh.write(render_page(data))
    if args.json:
        if args.json == "-":
            json.dump(data, sys.stdout)
            sys.stdout.write("\n")
            return 0
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(data, fh)
    paint = _Paint(_colour_wanted(sys.stdout))
    for report in reports:
        render(report, sys.stdout, paint)
        if report.name in runs:
            runs[report.name].render(report, sys.stdout, paint)
    return 0
