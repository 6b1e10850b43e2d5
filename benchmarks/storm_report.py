"""The tables, verdicts and RESULTS.md section of benchmarks/storm.py."""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional

from peers import med

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "RESULTS.md")
START = "<!-- pybpf storm: written by benchmarks/storm.py -->"
END = "<!-- end of pybpf storm -->"

TARGET_SLOWDOWN = 1.3
TARGET_RATIO = 2.0              # events printed, against bpftrace's
TARGET_AGG_SLOWDOWN = 1.15      # syscount
TARGET_FIRST_MS = 50.0
TARGET_RSS_MB = 25.0
GOAL_LINES_PER_CPU_S = 1_000_000


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def _runs(xs: List[Any], fmt: str = "{:,}") -> str:
    return ", ".join(fmt.format(x) for x in xs)


def _untraced_line(res: Dict[str, Any]) -> str:
    base = res["untraced"]
    return (f"untraced workload: median {med(base):.3f} s (runs: "
            + _runs(base, "{:.3f}") + ")")


def storm_table(res: Dict[str, Any], variants: List[Any], events: int, rounds: int,
                main: str, peer: Optional[str], storm: bool) -> List[str]:
    """A traced-workload table (opensnoop, steady rate, execsnoop) and its verdicts;
    ``storm``: as fast as possible (else a steady rate: the targets differ)."""
    base = med(res["untraced"])
    steady = [] if storm else [
        "At a steady rate the untraced workload takes events / rate seconds; a slowdown "
        "above 1.00x means that, traced, it could not keep the rate.", ""]
    lines = steady + [f"{events:,} events per run; median of {rounds} round(s); "
                      + _untraced_line(res), "",
             "| tracer | slowdown | workload (s) | printed | lost (counted) | "
             "printed + lost | consumer CPU-s | printed lines per CPU-s | consumer "
             "wake-ups | peak RSS (MB) |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    notes: List[str] = []
    for v in variants:
        r = res.get(v.name, {})
        if "skipped" in r:
            lines.append(f"| {v.name} | skipped: {r['skipped']} | | | | | | | | |")
            continue
        runs = r.get("runs", [])
        if not runs:
            lines.append(f"| {v.name} | failed: {r.get('error', '?')[:120]!r} "
                         "| | | | | | | | |")
            continue
        lost = "n/a (none reported)" if v.lost_re is None else \
            f"{med([x['lost'] for x in runs]):,.0f}"
        total = "" if v.lost_re is None else \
            f"{med([x['printed'] + x['lost'] for x in runs]):,.0f}"
        rate = med([x["printed"] / x["cpu"] if x["cpu"] > 0 else float("inf") for x in runs])
        lines.append(f"| {v.name} | {med([x['workload'] for x in runs]) / base:.2f}x | "
                     f"{med([x['workload'] for x in runs]):.3f} | "
                     f"{med([x['printed'] for x in runs]):,.0f} | {lost} | {total} | "
                     f"{med([x['cpu'] for x in runs]):.2f} | {rate:,.0f} | "
                     f"{med([x['wakeups'] for x in runs]):,.0f} | "
                     f"{med([x['rss_mb'] for x in runs]):.1f} |")
        bad = [x for x in runs if x["bad"]]
        if bad:
            notes.append(f"- {v.name}: lines naming the workload but with a wrong field: "
                         f"{_runs([x['bad'] for x in runs])} (first: `{bad[0]['first_bad']}`)")
        if any(x["failed"] for x in runs):
            notes.append(f"- {v.name}: failed execs in the workload: "
                         + _runs([x["failed"] for x in runs]))
        for x in runs:
            if x.get("note"):
                notes.append(f"- {v.name}: {x['note'][:300]}")
        if r.get("error"):
            notes.append(f"- {v.name}: a run failed: {r['error'][:300]}")
    lines += ["", "Buffers: " + "; ".join(f"{v.name}: {v.buffers}" for v in variants) + "."]
    verdicts: List[str] = []
    runs = res.get(main, {}).get("runs", [])
    if runs:
        slow = [x["workload"] / base for x in runs]
        complete = all(x["printed"] + max(x["lost"], 0) == events for x in runs)
        if storm:
            verdicts.append(f"- target ({main}: slowdown <= {TARGET_SLOWDOWN}x): "
                            f"{_verdict(med(slow) <= TARGET_SLOWDOWN)} (median "
                            f"{med(slow):.2f}x; runs {_runs(slow, '{:.2f}x')})")
            verdicts.append(f"- target ({main}: printed + lost = {events:,} in every run): "
                            f"{_verdict(complete)} (printed {_runs([x['printed'] for x in runs])};"
                            f" lost {_runs([x['lost'] for x in runs])})")
        else:
            ok = all(x["lost"] == 0 and x["printed"] == events for x in runs)
            verdicts.append(f"- target ({main}: 0 lost, all {events:,} printed, every run): "
                            f"{_verdict(ok)} (printed {_runs([x['printed'] for x in runs])}; "
                            f"lost {_runs([x['lost'] for x in runs])})")
        peer_runs = res.get(peer, {}).get("runs", []) if peer else []
        if peer_runs:
            ratio = med([x["printed"] for x in runs]) / max(
                1, med([x["printed"] for x in peer_runs]))
            everything = all(x["printed"] == events for x in runs + peer_runs)
            verdicts.append(f"- target ({main}: printed >= {TARGET_RATIO:.0f}x {peer}'s): "
                            + (f"met ({ratio:.2f}x, but both printed every event: "
                               "nothing to double)" if everything and ratio < TARGET_RATIO
                               else f"{_verdict(ratio >= TARGET_RATIO)} ({ratio:.2f}x)"))
        elif peer:
            verdicts.append(f"- target ({main}: printed >= {TARGET_RATIO:.0f}x {peer}'s): "
                            f"not measured ({peer} did not run)")
        if storm and main.endswith("opensnoop"):
            rate = med([x["printed"] / x["cpu"] for x in runs if x["cpu"] > 0] or [0])
            verdicts.append(f"- goal ({main}: >= {GOAL_LINES_PER_CPU_S:,} lines per consumer "
                            f"CPU-s to a file): {_verdict(rate >= GOAL_LINES_PER_CPU_S)} "
                            f"({rate:,.0f})")
    elif main in res:
        verdicts.append(f"- {main} did not run: targets not measured")
    return lines + ([""] + verdicts if verdicts else []) + ([""] + notes if notes else [])


def syscount_table(res: Dict[str, Any], variants: List[Any], events: int,
                   rounds: int) -> List[str]:
    """In-kernel aggregation: slowdown and the openat calls the tracer counted."""
    base = med(res["untraced"])
    lines = [f"{events:,} openat+close per run; median of {rounds} round(s); "
             + _untraced_line(res), "",
             "| tracer | slowdown | workload (s) | openat counted | consumer CPU-s | "
             "peak RSS (MB) |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    notes: List[str] = []
    for v in variants:
        r = res.get(v.name, {})
        if "skipped" in r:
            lines.append(f"| {v.name} | skipped: {r['skipped']} | | | | |")
            continue
        runs = r.get("runs", [])
        if not runs:
            lines.append(f"| {v.name} | failed: {r.get('error', '?')[:120]!r} | | | | |")
            continue
        lines.append(f"| {v.name} | {med([x['workload'] for x in runs]) / base:.2f}x | "
                     f"{med([x['workload'] for x in runs]):.3f} | "
                     f"{_runs([x['counted'] for x in runs])} | "
                     f"{med([x['cpu'] for x in runs]):.2f} | "
                     f"{med([x['rss_mb'] for x in runs]):.1f} |")
        for x in runs:
            if x.get("note"):
                notes.append(f"- {v.name}: {x['note'][:300]}")
    lines += ["", "Maps: " + "; ".join(f"{v.name}: {v.buffers}" for v in variants) + "."]
    verdicts = []
    runs = res.get("pybpf syscount", {}).get("runs", [])
    if runs:
        slow = [x["workload"] / base for x in runs]
        verdicts.append(f"- target (pybpf syscount: slowdown <= {TARGET_AGG_SLOWDOWN}x): "
                        f"{_verdict(med(slow) <= TARGET_AGG_SLOWDOWN)} (median "
                        f"{med(slow):.2f}x; runs {_runs(slow, '{:.2f}x')})")
        ok = all(x["counted"] == events for x in runs)
        verdicts.append(f"- pybpf syscount counted every openat ({events:,}) in every run: "
                        f"{'yes' if ok else 'NO'} ({_runs([x['counted'] for x in runs])})")
    return lines + ([""] + verdicts if verdicts else []) + ([""] + notes if notes else [])


def startup_table(res: Dict[str, Any], runs: int) -> List[str]:
    lines = [f"Median of {runs} run(s); a background process opens a file every 1 ms and "
             "every tracer traces its pid only; stdout a pipe, Python unbuffered (as in "
             "peers.py)", "",
             "| tracer | first event (ms) | runs (ms) | CPU ms by then | peak RSS (MB) | "
             "cache files after |", "| --- | ---: | --- | ---: | ---: | ---: |"]
    for name, r in res.items():
        if "skipped" in r:
            lines.append(f"| {name} | skipped: {r['skipped']} | | | | |")
        elif not r["first_ms"]:
            lines.append(f"| {name} | failed: {r.get('error', '')[:120]!r} | | | | |")
        else:
            cache = _runs(sorted(set(r["cache_files"]))) if r["cache_files"] else ""
            lines.append(f"| {name} | {med(r['first_ms']):.1f} | "
                         f"{_runs(r['first_ms'], '{:.0f}')} | {med(r['cpu_ms']):.1f} | "
                         f"{med(r['rss_mb']):.1f} | {cache} |")
    warm = res.get("pybpf opensnoop, warm cache", {})
    verdicts = []
    if warm.get("first_ms"):
        first, rss = med(warm["first_ms"]), med(warm["rss_mb"])
        verdicts.append(f"- target (pybpf opensnoop, warm cache: first event <= "
                        f"{TARGET_FIRST_MS:.0f} ms): {_verdict(first <= TARGET_FIRST_MS)} "
                        f"({first:.1f} ms wall; {med(warm['cpu_ms']):.1f} ms of CPU by then)")
        verdicts.append(f"- target (pybpf opensnoop: peak RSS <= {TARGET_RSS_MB:.0f} MB): "
                        f"{_verdict(rss <= TARGET_RSS_MB)} ({rss:.1f} MB)")
        if not any(warm["cache_files"]):
            verdicts.append("- the cache directory stayed empty: this pybpf has no compile "
                            "cache (or does not use $PYBPF_CACHE_DIR), so warm = cold")
    cold = res.get("pybpf opensnoop, cold cache", {})
    if cold.get("first_ms"):
        verdicts.append(f"- cold cache (reported, no target): {med(cold['first_ms']):.1f} ms")
    return lines + ([""] + verdicts if verdicts else [])


NOTES = """How these are measured:

- Every traced run has a fresh load generator (`benchmarks/peers/stormgen.c`) and a fresh
  tracer limited to it (by pid; execsnoop by parent pid). The tracer's stdout is a file
  (block-buffered, as `tool > file`), its stderr another. The harness knows the tracer is
  live when one of its "pings" (opens of /dev/zero, or execs with the argument
  `storm-ping`, sent in bursts so that a block-buffered tool flushes) reaches the file;
  then the workload goes. Pings are not counted.
- **Slowdown** is the workload's own time (CLOCK_MONOTONIC around its loop) over the
  median of the untraced runs, interleaved with the traced ones round by round.
- **Printed** counts the output lines that end in the workload's path (opensnoop) or
  argument (`storm-go`, execsnoop); each must also match the tool's format with the
  right pid, fd and error (else it is reported as a bad line). **Lost (counted)** is the
  sum of what the tracer itself reports: "Possibly lost N samples" (pybpf's tools; BCC's
  default lost-callback message), "Lost N events" (bpftrace), the drop counter of the
  libbpf tracer (printed at its exit). Each report counts the records lost since the
  one before (pybpf's and BCC's as bpftrace's), so they are summed. A printed + lost
  below the event count means events vanished without being counted.
- **Consumer wake-ups**: the tracer's voluntary context switches (all threads, from
  /proc/PID/task/*/status) from the start of the workload to just before SIGINT: how
  often it slept (in poll/epoll) and was woken again.
- **Peak RSS** is the tracer's VmHWM just before it is stopped (not `wait4`'s
  `ru_maxrss`, which Linux carries over exec: a child of the Python harness would show
  at least the harness's RSS).
- **Consumer CPU-s**: the tracer's utime + stime from the start of the workload (from
  /proc/PID/stat) to its exit (`wait4`), which includes draining after the workload; the
  tracer gets SIGINT once its output file and CPU time have not grown for 0.5 s. The BPF
  programs run in the workload's context: their cost is in the slowdown.
- Programs: pybpf's opensnoop runs one program at sys_exit_openat (+ openat2), which
  reads the path and flags back from the registers saved at the call's entry
  (`syscall_arg()`); bpftrace's opensnoop.bt (same printf) and BCC's opensnoop (here on
  tracepoints: `peers/bcc_storm.py`; opensnoop-bpfcc itself attaches kprobes/fentry,
  refused on this machine) pair sys_enter/sys_exit in a hash map. The libbpf C tracer (`peers/libbpf_open.c -b`) sends one 88-byte record
  at sys_enter_openat only (comm, 64 bytes of path): a lower bound for the cost.
  pybpf's execsnoop sends one record per argument and one at the exit (BCC's design),
  filtered by parent pid (`-P`); bpftrace's execsnoop.bt (sys_enter_execve only, with
  `/curtask->real_parent->tgid == PID/`) two records at the entry, a printf and a join,
  which can interleave with another exec's under load (they then show as bad lines);
  the BCC exec tracer here one record at the entry (file name and argv[1]), filtered by
  the parent's command name (BCC compiles against this machine's older kernel headers,
  so it cannot read task_struct safely). The exec'd program's argument is on the
  child's stack: a string in the parent's .rodata sits in a file-backed page that fork
  does not map into the child, and no tracer could read it at the exec.
- syscount: pybpf's counts per syscall number at the raw tracepoint sys_exit (a per-CPU
  array indexed by the number, a hash map for numbers beyond it);
  bpftrace's `@[args->id] = count()` at sys_enter (a per-CPU map). "openat counted" is
  the tool's own figure for openat, which must equal the workload's calls. The harness
  knows these tracers are attached from their banner (bpftrace prints it from BEGIN,
  after attaching; pybpf's syscount runs with PYTHONUNBUFFERED=1, its output is a few
  lines).
- Start-up: peers.py's method (`peers.Tracer`): fork+exec of the tracer to its first
  event line through a pipe; "CPU ms by then" is the tracer's CPU time (all threads,
  /proc/PID/task/*/schedstat) when that line arrives: on a loaded machine the wall time
  also counts the time it waited for a CPU. Warm cache: `$PYBPF_CACHE_DIR` filled
  by a run before; cold: a fresh empty `$PYBPF_CACHE_DIR` each run. All pybpf runs of
  this benchmark use a cache directory of their own, never ~/.cache.
- The machine has 2 CPUs, shared with other work (see the load averages): tracer,
  workload and the rest compete for them, which makes every figure noisy.
""".splitlines()


def write_results(lines: List[str], argv: List[str], took: float) -> None:
    """Replace (or append) the storm section of benchmarks/RESULTS.md."""
    cmd = "sudo python3 benchmarks/storm.py " + " ".join(
        a for a in argv if a != "--write-results")
    section = [START, "", "# pybpf tools under a storm, and their start-up", "",
               "Produced by `benchmarks/storm.py` (issue 20, [storm]). To reproduce "
               "(Debian 12, root; `--install` links the kernel headers BCC needs):", "",
               "```", cmd.strip() + " --write-results", "```", "",
               f"Full run, {took:.0f} s:", ""] + lines + ["", *NOTES, END]
    text = open(RESULTS).read() if os.path.exists(RESULTS) else ""
    head, sep, rest = text.partition(START)
    tail = rest.partition(END)[2] if sep else ""
    if not sep:
        head = head.rstrip("\n") + "\n\n"
    with open(RESULTS, "w") as f:
        f.write(head + "\n".join(section) + tail.rstrip("\n") + "\n")
    print(f"wrote {RESULTS}")
