#!/usr/bin/env python3
"""pybpf trace (bpftrace's language without LLVM) side by side with bpftrace 0.17 in one
run (issue 19's performance targets; needs root, gcc and bpftrace).

usage: sudo python3 benchmarks/trace.py [--quick] [--write-results]
            [--sections startup,cost,storm,compile] [--runs 5] [--rounds 3]
            [--cost-events 200000] [--events 1000000] [--tool PATH]

pybpf runs the program through ``pybpf.bpftrace.session.run``: by the command line
``python3 -m pybpf trace`` when it exists (``pybpf/cli/trace_cmd.py``), and always by the
small runner ``peers/pybpf_trace.py`` (``session.run`` in a fresh ``python3`` process).
Every figure is a median; within a round the tracers take turns (interleaved).

1. **startup**: from exec of the tracer to its first event line (read through a pipe),
   and its peak RSS (``VmHWM``) then, for ``tracepoint:syscalls:sys_enter_openat /pid ==
   TICKER/ { printf(...) }`` with ``peers/ticker.c`` opening a file every ms. Both
   print each line as it comes (``-B line``; bpftrace's default on a pipe). Targets:
   pybpf's time <= 0.6x bpftrace's, its peak RSS <= 1/4 of bpftrace's. The CLI also
   runs in a plain virtual environment (:func:`plain_venv`), beside the interpreter
   alone there: a start without the base installation's ``.pth`` files.
2. **cost**: ns per run of the program (``kernel.bpf_stats_enabled=1``, restored after;
   ``run_time_ns / run_cnt`` of the busiest program in the tracer's
   ``/proc/PID/fdinfo``, before and after) of a printf program and a ``count()`` program
   on ``peers/loadgen.c``'s ``--cost-events`` openat calls, filtered by pid. Target:
   pybpf's <= 0.5x bpftrace's, for each program. The same predicate with an empty body
   is measured too: what both tracers' programs pay before their bodies (dispatch,
   bpf_stats' clock reads, the pid helper); each body's own cost, above that, is
   reported beside the target.
3. **storm**: ``--events`` openat+close from ``peers/stormgen.c`` as fast as it can, the
   printf program filtered by its pid, stdout to a file (each tracer's default
   buffering). Events printed and lost (``Lost N events``), the workload's slowdown
   against untraced runs interleaved with the traced ones, events printed per second.
   Target: pybpf prints at least bpftrace's count with at most its slowdown.
4. **compile**: parse + check + compile of the largest of bpftrace's own tools
   (``dpkg -L bpftrace``, by size; ``--tool`` for another) that pybpf compiles, in
   ``--compile-processes`` fresh interpreters one after the other: in each, the first
   (cold) run and the median of the warm ones, broken down into parse, headers, attach
   points, analysis, expansion, lowering and backend, beside a fixed pure-Python loop
   timed in the same process (this machine gives a process a speed that can differ by
   ~1.7x from the next one's, for its whole life: one process's figure is not enough).
   Larger tools that do not compile are named with their error. Target: <= 20 ms (the
   median of the processes' warm medians).
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import peers                                   # benchmarks/peers.py
import storm                                   # benchmarks/storm.py
from machine import load_line, machine_head
from peers import PACKAGES, Variant, med

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)                      # this checkout's pybpf, not an installed one
PY = sys.executable
RUNNER = os.path.join(HERE, "peers", "pybpf_trace.py")
CLI = os.path.join(ROOT, "pybpf", "cli", "trace_cmd.py")
RESULTS = os.path.join(HERE, "RESULTS.md")
START = "<!-- pybpf trace: written by benchmarks/trace.py -->"
END = "<!-- end of pybpf trace -->"

#: the start-up row of the interpreter alone (not a tracer: no target)
PYTHON_ALONE = "python3 alone (prints a line: the interpreter's start)"
TARGET_FIRST_RATIO = 0.6
TARGET_RSS_RATIO = 0.25
TARGET_COST_RATIO = 0.5
TARGET_COMPILE_MS = 20.0

PRINTF = ('tracepoint:syscalls:sys_enter_openat /pid == {pid}/ '
          '{{ printf("%s %s\\n", comm, str(args->filename)); }}')
READY = 'BEGIN {{ printf("ready\\n"); }} '
COUNT = 'tracepoint:syscalls:sys_enter_openat /pid == {pid}/ {{ @ = count(); }}'
#: the predicate alone: what every program above pays before its body (the tracepoint's
#: dispatch, bpf_stats' own clock reads, the pid helper), to report each body's cost
BASELINE = 'tracepoint:syscalls:sys_enter_openat /pid == {pid}/ {{ }}'
BASELINE_LABEL = "predicate only"
SKIP = ("Attaching ", "ready")
CLI_NAME = "pybpf trace (CLI)"


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def tracers(program: Callable[[Dict[str, Any]], str], buffering: Optional[str]
            ) -> List[Tuple[str, Callable[[Dict[str, Any]], List[str]]]]:
    """(name, argv(ctx)) of pybpf's ways to run ``program(ctx)`` and bpftrace's."""
    b = ["-B", buffering] if buffering else []
    out = [("pybpf trace (session.run)", lambda c: [PY, RUNNER, *b, "-e", program(c)])]
    if os.path.exists(CLI):
        out.append((CLI_NAME,
                    lambda c: [PY, "-m", "pybpf", "trace", *b, "-e", program(c)]))
    if os.path.exists(PACKAGES["bpftrace"]):
        out.append(("bpftrace", lambda c: ["bpftrace", *b, "-e", program(c)]))
    return out


# -- 1. start-up --------------------------------------------------------------------------

def run_startup(ctx: Dict[str, Any], runs: int) -> Dict[str, Any]:
    ticker = subprocess.Popen([ctx["ticker"]], stdin=subprocess.DEVNULL)
    c = dict(ctx, pid=ticker.pid)
    variants = [Variant(name, argv, group=name, skip=SKIP)
                for name, argv in tracers(lambda x: PRINTF.format(pid=x["pid"]), "line")]
    # the CLI's cache of compiled programs: warm (run 0 fills it) and off (compiles)
    for v in list(variants):
        if v.name == CLI_NAME:
            v.name = CLI_NAME + ", warm cache"
            variants.insert(variants.index(v) + 1, Variant(
                CLI_NAME + ", PYBPF_NO_CACHE=1", v.argv, group=v.group, skip=SKIP,
                env={"PYBPF_NO_CACHE": "1"}))
    # the interpreter's own start (with this machine's site), for what pybpf adds to it
    alone = ["-c", "import time; print('line', flush=True); time.sleep(60)"]
    variants.append(Variant(PYTHON_ALONE, lambda c: [PY, *alone], group="python"))
    # the same interpreter in a virtual environment: the CLI (warm cache) and python alone
    venv = plain_venv()
    if venv and os.path.exists(CLI):
        variants.append(Variant(VENV_CLI, lambda c: [venv, "-m", "pybpf", "trace", "-B",
                                                     "line", "-e", PRINTF.format(pid=c["pid"])],
                                group=VENV_CLI, skip=SKIP))
        variants.append(Variant(VENV_ALONE, lambda c: [venv, *alone], group="venv python"))
    res: Dict[str, Any] = {v.name: {"first_ms": [], "rss_mb": [], "cpu_ms": []}
                           for v in variants}
    try:
        for i in range(runs + 1):           # run 0 warms the page cache; not kept
            for v in variants:
                t = peers.Tracer(v, c)
                ok = t.got_first.wait(60)
                rss = peers.peak_rss_mb(t.proc.pid)
                t.stop()
                r = res[v.name]
                if not ok or t.first_at is None:
                    r["error"] = (t.stderr_text() or t.output_tail())[-300:]
                    print(f"  {v.name}: no event line: {r['error']}", flush=True)
                elif i:
                    r["first_ms"].append((t.first_at - t.t0) * 1e3)
                    r["rss_mb"].append(rss)
                    r["cpu_ms"].append(t.first_cpu_ms or 0.0)
                    r["example"] = t.first
    finally:
        ticker.kill()
        ticker.wait()
    return res


VENV_CLI = CLI_NAME + " in a venv, warm cache"
VENV_ALONE = "python3 alone in a venv"


def plain_venv() -> Optional[str]:
    """The python3 of a virtual environment (``python3 -m venv --without-pip``, removed
    at exit) that sees this checkout and pyelftools and nothing else of the base
    installation: its start runs no ``.pth`` file of the base's site-packages. (This
    machine's base runs one at every start that imports ``certifi`` and
    ``importlib.resources``, 20-50 ms a process: not Python's own start, nor pybpf's.)
    None when no venv can be made."""
    import shutil
    try:
        import elftools
    except ImportError:
        return None
    where = tempfile.mkdtemp(prefix="pybpf-bench-venv-")
    atexit.register(shutil.rmtree, where, True)
    if subprocess.run([PY, "-m", "venv", "--without-pip", where],
                      capture_output=True).returncode:
        return None
    python = os.path.join(where, "bin", "python3")
    purelib = subprocess.run([python, "-c", "import sysconfig; "
                              "print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True).stdout.strip()
    os.symlink(os.path.dirname(elftools.__file__), os.path.join(purelib, "elftools"))
    with open(os.path.join(purelib, "pybpf-checkout.pth"), "w") as fh:
        fh.write(ROOT + "\n")
    return python


def startup_table(res: Dict[str, Any], runs: int) -> List[str]:
    lines = [f"Exec to the first event line of `{PRINTF.format(pid='TICKER')}` "
             f"(`-B line`), peak RSS then; median of {runs} run(s). The CLI runs with its "
             "cache of compiled programs warm (filled by a first run, not kept) and "
             "with `PYBPF_NO_CACHE=1` (parse, analysis and compile at every start); "
             "session.run does not use the cache. The venv rows run the same interpreter "
             "in a virtual environment that sees this checkout and pyelftools only: "
             "its start runs none of the base installation's `.pth` files (this "
             "machine's base runs one that imports `certifi` and "
             "`importlib.resources` at every start: neither Python's own start nor "
             "pybpf's).", "",
             "| tracer | first event (ms) | runs (ms) | CPU by then (ms) | peak RSS (MB) |",
             "| --- | ---: | --- | ---: | ---: |"]
    for name, r in res.items():
        if not r["first_ms"]:
            lines.append(f"| {name} | failed: {r.get('error', '')[:100]!r} | | | |")
            continue
        lines.append(f"| {name} | {med(r['first_ms']):.1f} | "
                     + ", ".join(f"{x:.0f}" for x in r["first_ms"])
                     + f" | {med(r['cpu_ms']):.1f} | {med(r['rss_mb']):.1f} |")
    bt = res.get("bpftrace", {})
    lines.append("")
    for name, r in res.items():
        if name in ("bpftrace", PYTHON_ALONE, VENV_ALONE) or not r["first_ms"]:
            continue
        py = res.get(VENV_ALONE if name == VENV_CLI else PYTHON_ALONE, {})
        if not bt.get("first_ms"):
            lines.append(f"- {name}: bpftrace did not run: no ratio")
            continue
        tr = med(r["first_ms"]) / med(bt["first_ms"])
        rr = med(r["rss_mb"]) / med(bt["rss_mb"])
        lines.append(f"- target ({name}: first event <= {TARGET_FIRST_RATIO}x bpftrace's): "
                     f"{_verdict(tr <= TARGET_FIRST_RATIO)} ({tr:.2f}x)")
        lines.append(f"- target ({name}: peak RSS <= 1/4 of bpftrace's): "
                     f"{_verdict(rr <= TARGET_RSS_RATIO)} ({rr:.2f}x)")
        if py.get("first_ms"):
            where = "in the venv" if name == VENV_CLI else "the base interpreter"
            own = med(r["first_ms"]) - med(py["first_ms"])
            lines.append(f"  - of its {med(r['first_ms']):.1f} ms, {med(py['first_ms']):.1f} "
                         f"are python3's own start ({where}); pybpf's part, "
                         f"{own:.1f} ms, is {own / med(bt['first_ms']):.2f}x bpftrace's time")
    return lines


# -- 2. kernel-side cost ------------------------------------------------------------------

def prog_stats(pid: int) -> Dict[int, Tuple[int, int]]:
    """prog_id -> (run_time_ns, run_cnt) of every BPF program among ``pid``'s fds."""
    out: Dict[int, Tuple[int, int]] = {}
    base = f"/proc/{pid}/fdinfo"
    try:
        names = os.listdir(base)
    except OSError:
        return out
    for name in names:
        try:
            with open(os.path.join(base, name)) as fh:
                text = fh.read()
        except OSError:
            continue
        info = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        if "prog_id" in info and "run_cnt" in info:      # a program (a link has no stats)
            out[int(info["prog_id"])] = (int(info.get("run_time_ns", 0)),
                                         int(info.get("run_cnt", 0)))
    return out


def cost_once(ctx: Dict[str, Any], name: str, argv: Callable[[Dict[str, Any]], List[str]],
              events: int) -> Dict[str, Any]:
    """One traced run of the load generator: the busiest program's ns per run."""
    load = peers.Load(ctx["loadgen"], events)
    t: Optional[peers.Tracer] = None
    try:
        t = peers.Tracer(Variant(name, argv, group=name, skip=("Attaching ",)),
                         dict(ctx, pid=load.proc.pid))
        if not t.got_first.wait(60):        # the BEGIN line: every probe is attached
            raise RuntimeError(f"{name} did not start: "
                               + (t.stderr_text() or t.output_tail())[-300:])
        before = prog_stats(t.proc.pid)
        load.go()
        last, still = -1, time.monotonic()
        while time.monotonic() - still < 0.5:       # until the printed lines stop
            if t.lines != last:
                last, still = t.lines, time.monotonic()
            time.sleep(0.05)
        after = prog_stats(t.proc.pid)
        deltas = [(a[1] - before.get(p, (0, 0))[1], a[0] - before.get(p, (0, 0))[0], p)
                  for p, a in after.items()]
        runs, ns, prog_id = max(deltas) if deltas else (0, 0, 0)
        size = peers._prog_size(prog_id) if prog_id else "?"
        if runs <= 0:
            raise RuntimeError(f"{name}: no program ran")
        return {"ns": ns / runs, "runs": runs, "size": size}
    finally:
        if t is not None:
            t.stop(timeout=30)
        load.close()


def run_cost(ctx: Dict[str, Any], events: int, rounds: int) -> Dict[str, Any]:
    programs = {"printf": READY + PRINTF, "count()": READY + COUNT,
                BASELINE_LABEL: READY + BASELINE}
    res: Dict[str, Any] = {}
    with open(peers.STATS) as fh:
        old = fh.read().strip()
    try:
        with open(peers.STATS, "w") as fh:
            fh.write("1")
        for _ in range(rounds):
            for label, text in programs.items():
                for name, argv in tracers(lambda c, t=text: t.format(pid=c["pid"]), "line"):
                    r = res.setdefault(label, {}).setdefault(name, {"ns": [], "runs": []})
                    try:
                        got = cost_once(ctx, name, argv, events)
                    except RuntimeError as exc:
                        r["error"] = str(exc)
                        print(f"  {label}, {name}: {exc}", flush=True)
                        continue
                    r["ns"].append(got["ns"])
                    r["runs"].append(got["runs"])
                    r["size"] = got["size"]
    finally:
        with open(peers.STATS, "w") as fh:
            fh.write(old)
    res["restored"] = old
    return res


def cost_table(res: Dict[str, Any], events: int, rounds: int) -> List[str]:
    lines = [f"ns per program run (kernel.bpf_stats_enabled=1, restored to "
             f"{res.get('restored')}), {events:,} openat calls by the filtered process "
             f"(the counts include other processes' cheap runs); median of {rounds} "
             "round(s)", "",
             "| program | tracer | ns per run | runs (ns) | runs counted | "
             "xlated / jited bytes |", "| --- | --- | ---: | --- | ---: | ---: |"]
    verdicts = []
    base = res.get(BASELINE_LABEL, {})
    for label, by in res.items():
        if label == "restored":
            continue
        for name, r in by.items():
            if not r["ns"]:
                lines.append(f"| {label} | {name} | failed: {r.get('error', '')[:100]!r} "
                             "| | | |")
                continue
            lines.append(f"| {label} | {name} | {med(r['ns']):.0f} | "
                         + ", ".join(f"{x:.0f}" for x in r["ns"])
                         + f" | {med(r['runs']):,.0f} | {r.get('size', '')} |")
        bt = by.get("bpftrace", {}).get("ns")
        for name, r in by.items():
            if name != "bpftrace" and r["ns"] and bt:
                ratio = med(r["ns"]) / med(bt)
                if label == BASELINE_LABEL:
                    verdicts.append(f"- {label}, {name}: {ratio:.2f}x bpftrace's (the "
                                    "cost every program pays before its body)")
                    continue
                verdicts.append(f"- target ({label}, {name}: <= {TARGET_COST_RATIO}x "
                                f"bpftrace's ns per run): "
                                f"{_verdict(ratio <= TARGET_COST_RATIO)} ({ratio:.2f}x)")
                ours0 = base.get(name, {}).get("ns")
                bt0 = base.get("bpftrace", {}).get("ns")
                if ours0 and bt0 and med(bt) > med(bt0):
                    body = (med(r["ns"]) - med(ours0)) / (med(bt) - med(bt0))
                    verdicts.append(f"  - the body alone (ns per run above the "
                                    f"{BASELINE_LABEL} program): {body:.2f}x bpftrace's "
                                    f"({med(r['ns']) - med(ours0):.0f} vs "
                                    f"{med(bt) - med(bt0):.0f} ns)")
    return lines + [""] + verdicts


# -- 3. printf storm ----------------------------------------------------------------------

def storm_variants() -> List[storm.Storm]:
    line = lambda c: b"stormgen %s\n" % storm._esc(c, "target")      # noqa: E731
    out = []
    for name, argv in tracers(lambda c: PRINTF.format(pid=c["pid"]), None):
        out.append(storm.Storm(name, argv, lost_re=storm.LOST_BPFTRACE, line=line,
                               needs=(PACKAGES["bpftrace"],) if name == "bpftrace" else (),
                               buffers="perf buffer, 64 pages per CPU" if name == "bpftrace"
                               else "one ring buffer, max(64 pages x CPUs, 2 MiB)"))
    return out


def storm_table(res: Dict[str, Any], variants: List[storm.Storm], events: int,
                rounds: int) -> List[str]:
    base = med(res["untraced"])
    lines = [f"{events:,} openat+close, printf per call, stdout to a file; median of "
             f"{rounds} round(s); untraced workload median {base:.3f} s", "",
             "| tracer | printed | lost | printed + lost | slowdown | workload (s) | "
             "printed per workload s | printed per tracer CPU s | peak RSS (MB) |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    got: Dict[str, Tuple[float, float]] = {}
    for v in variants:
        r = res.get(v.name, {})
        runs = r.get("runs", [])
        if not runs:
            lines.append(f"| {v.name} | failed: {r.get('skipped') or r.get('error', '?')!r:.120} "
                         "| | | | | | | |")
            continue
        printed = med([x["printed"] for x in runs])
        slow = med([x["workload"] for x in runs]) / base
        got[v.name] = (printed, slow)
        lines.append(
            f"| {v.name} | {printed:,.0f} | {med([x['lost'] for x in runs]):,.0f} | "
            f"{med([x['printed'] + max(x['lost'], 0) for x in runs]):,.0f} | {slow:.2f}x | "
            f"{med([x['workload'] for x in runs]):.3f} | "
            f"{med([x['printed'] / x['workload'] for x in runs]):,.0f} | "
            f"{med([x['printed'] / x['cpu'] if x['cpu'] > 0 else 0 for x in runs]):,.0f} | "
            f"{med([x['rss_mb'] for x in runs]):.1f} |")
        for x in runs:
            if x.get("bad"):
                lines.append(f"  - {v.name}: {x['bad']} malformed lines "
                             f"(first: `{x['first_bad']}`)")
            if x.get("note"):
                lines.append(f"  - {v.name}: {x['note'][:200]}")
    lines.append("")
    bt = got.get("bpftrace")
    for name, (printed, slow) in got.items():
        if name == "bpftrace":
            continue
        if bt is None:
            lines.append(f"- target ({name}: >= bpftrace's events, <= its slowdown): "
                         "not measured (bpftrace did not run)")
            continue
        ok = printed >= bt[0] and slow <= bt[1]
        lines.append(f"- target ({name}: printed >= bpftrace's, slowdown <= bpftrace's): "
                     f"{_verdict(ok)} ({printed:,.0f} vs {bt[0]:,.0f} printed; "
                     f"{slow:.2f}x vs {bt[1]:.2f}x)")
    return lines


# -- 4. compile time ----------------------------------------------------------------------

def bpftrace_tools() -> List[str]:
    """bpftrace's own tools, largest first (``dpkg -L bpftrace``)."""
    try:
        out = subprocess.run(["dpkg", "-L", "bpftrace"], capture_output=True, text=True,
                             timeout=30).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return []
    tools = [p for p in out if p.endswith(".bt") and os.path.isfile(p)]
    return sorted(tools, key=os.path.getsize, reverse=True)


def compile_phases(path: str) -> Dict[str, float]:
    """One parse + check + compile of ``path`` in this process, per phase in ms (the
    phases are timed by wrapping the functions session.front and lower_program call)."""
    from pybpf.bpftrace import headers, lower, parser, probe_match, probes, semantic
    from pybpf.bpftrace.session import TraceOptions
    spent: Dict[str, float] = {}

    def timed(mod: Any, attr: str, key: str) -> Callable[[], None]:
        orig = getattr(mod, attr)

        def wrap(*a: Any, **k: Any) -> Any:
            t = time.perf_counter()
            try:
                return orig(*a, **k)
            finally:
                spent[key] = spent.get(key, 0.0) + (time.perf_counter() - t) * 1e3
        setattr(mod, attr, wrap)
        return lambda: setattr(mod, attr, orig)

    undo = [timed(headers, "header_symbols", "headers"),
            timed(probe_match, "expand_attach_point", "expansion"),
            timed(lower, "lower_function", "backend"),
            timed(lower, "link_program", "backend")]
    try:
        with open(path) as fh:
            source = fh.read()
        opts = TraceOptions()
        env = probes.ProbeEnv(params=[], pid=None, has_child=False)
        t0 = time.perf_counter()
        prog = parser.parse_program(source, path, headers=True)
        t1 = time.perf_counter()
        aps = probes.parse_attach_points(prog, env, source, path)
        t2 = time.perf_counter()
        front = _front(source, path, prog, aps, env)
        t3 = time.perf_counter()
        lower.lower_program(front, opts)
        t4 = time.perf_counter()
    finally:
        for u in undo:
            u()
    hdr, exp, back = (spent.get(k, 0.0) for k in ("headers", "expansion", "backend"))
    return {"total": (t4 - t0) * 1e3, "parse": (t1 - t0) * 1e3 - hdr, "headers": hdr,
            "attach points": (t2 - t1) * 1e3, "analysis": (t3 - t2) * 1e3,
            "expansion": exp, "lowering": (t4 - t3) * 1e3 - exp - back, "backend": back}


def _front(source: str, path: str, prog: Any, aps: Any, env: Any) -> Any:
    from pybpf.bpftrace.semantic import SemaOptions, analyse
    from pybpf.bpftrace.session import FrontResult
    analysis = analyse(prog, aps, env, SemaOptions(unsafe=False, strlen=64, has_child=False),
                       source=source, filename=path)
    return FrontResult(source, path, prog, aps, analysis, env)


def run_compile(tool: Optional[str], warm: int) -> Dict[str, Any]:
    """Cold and warm phases of the largest tool that compiles (or ``tool``), in this
    process, and the time of :func:`reference_loop` here."""
    res: Dict[str, Any] = {"failed": []}
    for path in ([tool] if tool else bpftrace_tools()):
        try:
            cold = compile_phases(path)
        except Exception as exc:            # the tool does not compile: name it, go on
            res["failed"].append((path, os.path.getsize(path),
                                  f"{type(exc).__name__}: {str(exc).splitlines()[0]}"))
            continue
        res.update(tool=path, size=os.path.getsize(path), cold=cold,
                   warm=[compile_phases(path) for _ in range(warm)])
        break
    res["reference"] = reference_loop()
    return res


def reference_loop() -> float:
    """ms of a fixed pure-Python loop (the best of 5): the speed this process gets. On
    this machine it differs between processes by up to ~1.7x, for the whole life of a
    process, whatever the process does; a compile time is read beside it."""
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        total = 0
        for i in range(300_000):
            total += i
        best = min(best, time.perf_counter() - t)
    return best * 1e3


def run_compiles(tool: Optional[str], warm: int, processes: int) -> List[Dict[str, Any]]:
    """:func:`run_compile` in ``processes`` fresh interpreters, one after the other."""
    cmd = [sys.executable, os.path.abspath(__file__), "--compile-child", "--warm", str(warm)]
    if tool:
        cmd += ["--tool", tool]
    out = []
    for _ in range(processes):
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            raise RuntimeError(f"compile child failed: {r.stderr.strip()[-300:]}")
        out.append(json.loads(r.stdout.strip().splitlines()[-1]))
    return out


def compile_table(results: List[Dict[str, Any]]) -> List[str]:
    res = results[0]
    lines = []
    for path, size, why in res["failed"]:
        lines.append(f"- larger tool that does not compile: `{path}` ({size:,} bytes): {why}")
    if "tool" not in res:
        return lines + ["- no tool compiled: not measured"]
    keys = list(res["cold"])
    per = [{k: med([w[k] for w in r["warm"]]) for k in keys} for r in results]
    lines = [f"`{res['tool']}` ({res['size']:,} bytes), in {len(results)} fresh processes "
             f"one after the other: in each, the first run (cold: BTF, ELF symbols and "
             f"imports loaded on the way) and the median of {len(res['warm'])} more "
             f"(warm), in ms; \"reference\" is a fixed pure-Python loop timed in the same "
             f"process (the speed the process got: it varies by process on this "
             f"machine)", "",
             "| process | " + " | ".join(keys) + " | reference |",
             "| --- |" + " ---: |" * (len(keys) + 1)]
    for i, (r, p) in enumerate(zip(results, per), 1):
        lines.append(f"| {i} cold | " + " | ".join(f"{r['cold'][k]:.1f}" for k in keys)
                     + f" | {r['reference']:.1f} |")
        lines.append(f"| {i} warm | " + " | ".join(f"{p[k]:.1f}" for k in keys)
                     + f" | {r['reference']:.1f} |")
    lines.append("")
    totals = [p["total"] for p in per]
    total = med(totals)
    fastest = min(range(len(per)), key=lambda i: results[i]["reference"])
    lines.append(f"- target (parse + check + compile <= {TARGET_COMPILE_MS:.0f} ms, warm): "
                 f"{_verdict(total <= TARGET_COMPILE_MS)} (median of the processes "
                 f"{total:.1f} ms; processes {', '.join(f'{t:.1f}' for t in totals)}; in "
                 f"the process with the fastest reference loop {totals[fastest]:.1f} ms)")
    for path, size, why in res["failed"]:
        lines.append(f"- larger tool that does not compile: `{path}` ({size:,} bytes): {why}")
    return lines


# -- main ---------------------------------------------------------------------------------

def build(tmp: str) -> Dict[str, Any]:
    ctx = storm.build(tmp)                 # ticker, loadgen, stormgen, the storm's target
    return ctx


def write_results(lines: List[str], argv: List[str], took: float) -> None:
    """Replace (or append) the trace section of benchmarks/RESULTS.md."""
    cmd = "sudo python3 benchmarks/trace.py " + " ".join(
        a for a in argv if a != "--write-results")
    section = [START, "", "# pybpf trace beside bpftrace 0.17 (issue 19)", "",
               "Produced by `benchmarks/trace.py`. To reproduce (Debian 12, root, bpftrace "
               "and gcc installed):", "", "```", cmd.strip() + " --write-results", "```",
               "", f"Run of {took:.0f} s:", ""] + lines + ["", END]
    text = open(RESULTS).read() if os.path.exists(RESULTS) else ""
    head, sep, rest = text.partition(START)
    tail = rest.partition(END)[2] if sep else ""
    if not sep:
        head = head.rstrip("\n") + "\n\n"
    with open(RESULTS, "w") as fh:
        fh.write(head + "\n".join(section) + tail.rstrip("\n") + "\n")
    print(f"wrote {RESULTS}")


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="a validation run: 2 start-ups, 1 round, 50,000 calls for the "
                         "cost, a 200,000-event storm, 5 warm compiles")
    ap.add_argument("--write-results", action="store_true",
                    help="put the tables into the trace section of benchmarks/RESULTS.md")
    ap.add_argument("--sections", default="startup,cost,storm,compile")
    ap.add_argument("--runs", type=int, default=5, help="start-ups per tracer")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cost-events", type=int, default=200_000)
    ap.add_argument("--events", type=int, default=1_000_000, help="the storm's events")
    ap.add_argument("--warm", type=int, default=20, help="warm compiles")
    ap.add_argument("--tool", help="the tool to compile (default: the largest that does)")
    ap.add_argument("--compile-processes", type=int, default=5,
                    help="fresh processes that each time the compiles")
    ap.add_argument("--compile-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.compile_child:                  # one process of run_compiles: JSON out
        print(json.dumps(run_compile(args.tool, args.warm)))
        return 0
    if args.quick:
        args.runs, args.rounds, args.cost_events = 2, 1, 50_000
        args.events, args.warm, args.compile_processes = 200_000, 5, 2
    sections = [s for s in args.sections.split(",") if s]
    unknown = set(sections) - {"startup", "cost", "storm", "compile"}
    if unknown:
        sys.exit(f"unknown section(s): {', '.join(sorted(unknown))}")
    if os.geteuid() != 0:
        sys.exit("benchmarks/trace.py needs root")
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda s, f: sys.exit(143))
    atexit.register(storm._cleanup)
    import compileall                       # as pip install does (see peers.py)
    for d in ("pybpf", os.path.join("benchmarks", "peers")):
        compileall.compile_dir(os.path.join(ROOT, d), quiet=1)
    head = machine_head() + [
        f"- pybpf: Python {sys.version.split()[0]}; {peers.version(['bpftrace', '--version'])}",
        load_line(),
        "- figures are medians; the machine has 2 CPUs shared with other work, so they "
        "are noisy (compare the tracers within one run, not across runs)"]
    print("\n".join(head), flush=True)
    report: List[str] = list(head)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="pybpf-trace-") as tmp:
        # pybpf trace's cache of compiled programs: one of this run's own, never ~/.cache
        os.environ["PYBPF_CACHE_DIR"] = os.path.join(tmp, "cache")
        ctx = build(tmp)
        steps: List[Tuple[str, str, Callable[[], List[str]]]] = [
            ("startup", "1. Exec to the first event",
             lambda: startup_table(run_startup(ctx, args.runs), args.runs)),
            ("cost", "2. Kernel cost per run",
             lambda: cost_table(run_cost(ctx, args.cost_events, args.rounds),
                                args.cost_events, args.rounds)),
            ("storm", f"3. printf storm: {args.events:,} events", lambda: _storm(ctx, args)),
            ("compile", "4. Parse + check + compile of the largest tool",
             lambda: compile_table(run_compiles(args.tool, args.warm,
                                                args.compile_processes))),
        ]
        try:
            for key, title, fn in steps:
                if key not in sections:
                    continue
                print(f"\n# {title} ...", flush=True)
                lines = fn()
                report += ["", "## " + title, ""] + lines
                print("\n".join(lines), flush=True)
        except KeyboardInterrupt:
            print("\ninterrupted: every tracer stopped, nothing written", file=sys.stderr)
            return 130
    took = time.monotonic() - started
    report += ["", "Load average at the end (1/5/15 min): "
               + " / ".join(f"{x:.2f}" for x in os.getloadavg())]
    print(f"\n({took:.0f} s)")
    if args.write_results:
        write_results(report, argv, took)
    return 0


def _storm(ctx: Dict[str, Any], args: Any) -> List[str]:
    variants = storm_variants()
    target = ctx["target"]
    res = storm.run_storm("trace", ctx, variants, ["open", str(args.events), target],
                          b" " + target.encode() + b"\n", args.rounds)
    return storm_table(res, variants, args.events, args.rounds)


if __name__ == "__main__":
    sys.exit(main())
