#!/usr/bin/env python3
"""The tools under a storm, and at start-up: pybpf beside bpftrace, BCC and libbpf
(issue [storm]; needs root, gcc, Linux 5.8+).

usage: sudo python3 benchmarks/storm.py [--quick] [--write-results] [--install]
            [--sections opensnoop,steady,execsnoop,syscount,startup] [--only REGEX]
            [--rounds 3] [--events 1000000] [--rate 100000] [--steady-seconds 3]
            [--execs 5000] [--startup-runs 5] [--json FILE]

Every traced run starts a fresh load generator (``peers/stormgen.c``) and a fresh
tracer limited to it, waits until the tracer shows it is live (bursts of "ping" events
on another path, until one reaches the tracer's output file), then lets the workload
go; untraced runs of the same workload are interleaved with the traced ones, round by
round, and every figure is a median over ``--rounds``. A tracer's stdout goes to a
file (a block-buffered file, as ``tool > file``), its stderr to another.

1. **opensnoop storm**: ``--events`` openat+close of one file, as fast as possible,
   traced by ``pybpf run opensnoop -p PID`` (one program at the exit), bpftrace's
   opensnoop.bt (entry and exit, filtered by pid), BCC's opensnoop design on
   tracepoints (``peers/bcc_storm.py``) and the libbpf C tracer
   (``peers/libbpf_open.c -b``, entry only). Workload slowdown, events printed (lines
   naming the workload's file), events counted lost (what the tracer reports),
   consumer CPU seconds. Targets: pybpf slowdown <= 1.3x, printed +
   lost = events, printed >= 2x bpftrace's.
2. **steady rate**: ``--rate`` opens/s for ``--steady-seconds``; target: pybpf loses 0
   and prints all.
3. **execsnoop storm**: ``--execs`` fork + exec of a tiny static program
   (``peers/stormtrue.c``): ``pybpf run execsnoop -P PID``, bpftrace's execsnoop.bt
   filtered by parent, BCC's (``peers/bcc_storm.py exec``). Same columns and targets.
4. **syscount** (in-kernel aggregation) on the opensnoop storm: ``pybpf run syscount
   -p PID`` and bpftrace's ``@[args->id] = count()``: slowdown (target <= 1.15x) and the
   openat calls each one counted (must be ``--events``).
5. **start-up**: exec of ``pybpf run opensnoop`` to its first event line, with a warm
   compile cache (a run before fills ``$PYBPF_CACHE_DIR``), a cold one (a fresh empty
   ``$PYBPF_CACHE_DIR`` per run) and ``PYBPF_NO_CACHE=1``; its CPU time by then (less
   sensitive to a loaded machine than the wall time); peak RSS (VmHWM); bpftrace's
   one-liner and the libbpf C tracer beside it (``peers.py``'s start-up machinery: a
   pipe, and ``peers/ticker.c`` opening a file every ms; each tracer traces only the
   ticker's pid, so other work on the machine does not flood it). Targets: warm <= 50
   ms, RSS <= 25 MB.

A peer that is missing (bpftrace, python3-bpfcc with linked kernel headers, clang +
bpftool + libbpf-dev for the C tracer) is named and its row skipped. Every tracer is
stopped with SIGINT (SIGKILL to its process group if it does not end), at exit too.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import peers                                   # benchmarks/peers.py
from peers import BCC_PYTHON, PACKAGES, Tracer, Variant
from storm_report import startup_table, storm_table, syscount_table, write_results

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PEERS = os.path.join(HERE, "peers")
BCC_STORM = os.path.join(PEERS, "bcc_storm.py")
PY = sys.executable

LOST_PYBPF = r"Possibly lost (\d+) samples"      # pybpf's tools, and BCC's own message
LOST_BPFTRACE = r"Lost (\d+) events"
LOST_LIBBPF = r"received \d+ lost (\d+)"          # libbpf_open -b, at exit on stderr


def pybpf(*args: Any) -> List[str]:
    """``pybpf run TOOL ARGS``, as ``python3 -m pybpf`` (no shell wrapper in the way)."""
    return [PY, "-m", "pybpf", "run"] + [str(a) for a in args]


def bpftrace_needed() -> Tuple[str, ...]:
    return (PACKAGES["bpftrace"],)


# -- the participants ---------------------------------------------------------------------

class Storm:
    """A tracer of one workload process: ``argv(ctx)`` (ctx has ``pid``, the built
    executables and paths); ``needs``: files (or ctx keys) that must exist; ``lost_re``:
    the tracer's reports of lost events (in its stderr or stdout; None: it has none);
    ``line``: ``line(ctx)`` is a bytes regex every workload line must match in full (a
    wrong field under load shows as a "bad line"); ``ready``: how the harness knows it is
    live: "ping" (an open of /dev/zero reaches the output file), "exec" (an exec with
    the argument ``storm-ping`` does) or a bytes regex of a banner; ``counted``: ``counted(ctx)`` a bytes regex with the number of workload calls
    an aggregating tracer counted; ``buffers``: a note for the tables."""

    def __init__(self, name: str, argv: Callable[[Dict[str, Any]], List[str]], *,
                 needs: Tuple[str, ...] = (), lost_re: Optional[str] = None,
                 line: Optional[Callable[[Dict[str, Any]], bytes]] = None,
                 ready: Any = "ping", env: Optional[Dict[str, str]] = None,
                 counted: Optional[Callable[[Dict[str, Any]], bytes]] = None,
                 buffers: str = "") -> None:
        self.name, self.argv, self.needs, self.lost_re = name, argv, needs, lost_re
        self.line, self.ready, self.env, self.counted = line, ready, env or {}, counted
        self.buffers = buffers

    def missing(self, ctx: Dict[str, Any]) -> Optional[str]:
        for need in self.needs:
            if need == "bcc-headers":
                if not peers._headers_linked(f"/lib/modules/{os.uname().release}"):
                    return ("kernel headers for BCC not linked under /lib/modules/"
                            f"{os.uname().release} (run with --install)")
                continue
            path = ctx.get(need, need)
            if not isinstance(path, str) or not os.path.exists(path):
                pkg = [k for k, f in PACKAGES.items() if f == need]
                if pkg:
                    return f"{pkg[0]} not installed (apt-get install {pkg[0]})"
                if need == "libbpf_open":
                    return "the libbpf C tracer was not built (needs clang-19, bpftool, " \
                           "libbpf-dev)"
                return f"{need} missing"
        return None


def _esc(ctx: Dict[str, Any], key: str) -> bytes:
    return re.escape(str(ctx[key]).encode())


BT_OPEN = ('tracepoint:syscalls:sys_enter_openat /pid == {pid}/ '
           '{{ @filename[tid] = args->filename; }} '
           'tracepoint:syscalls:sys_exit_openat /@filename[tid]/ '
           '{{ $ret = args->ret; $fd = $ret >= 0 ? $ret : -1; '
           '$errno = $ret >= 0 ? 0 : - $ret; '
           'printf("%-6d %-16s %4d %3d %s\\n", pid, comm, $fd, $errno, '
           'str(@filename[tid])); delete(@filename[tid]); }} '
           'END {{ clear(@filename); }}')
BT_EXEC = ('tracepoint:syscalls:sys_enter_execve /curtask->real_parent->tgid == {pid}/ '
           '{{ printf("%-10u %-5d ", elapsed / 1e6, pid); join(args->argv); }}')
BT_COUNT = ('BEGIN {{ printf("Tracing\\n"); }} '
            'tracepoint:raw_syscalls:sys_enter /pid == {pid}/ {{ @[args->id] = count(); }}')


def _open_line(c: Dict[str, Any]) -> bytes:     # PID COMM FD ERR PATH
    return b"%d +stormgen +\\d+ +0 %s\n" % (c["pid"], _esc(c, "target"))


OPENSNOOP: List[Storm] = [
    Storm("pybpf opensnoop", lambda c: pybpf("opensnoop", "-p", c["pid"]),
          lost_re=LOST_PYBPF, line=_open_line,
          buffers="1 MiB ring buffer (the tool's)"),
    Storm("bpftrace opensnoop.bt", lambda c: ["bpftrace", "-e", BT_OPEN.format(pid=c["pid"])],
          needs=bpftrace_needed(), lost_re=LOST_BPFTRACE, line=_open_line,
          buffers="perf buffer, 64 pages per CPU (bpftrace's default)"),
    Storm("BCC opensnoop (tracepoints)",
          lambda c: [BCC_PYTHON, BCC_STORM, "open", "--pid", str(c["pid"])],
          needs=(PACKAGES["python3-bpfcc"], "bcc-headers"), lost_re=LOST_PYBPF,
          line=_open_line, buffers="perf buffer, 64 pages per CPU (opensnoop-bpfcc's)"),
    Storm("libbpf C (entry only)",
          lambda c: [c["libbpf_open"], "-b", "-r", "1024", "-p", str(c["pid"])],
          needs=("libbpf_open",), lost_re=LOST_LIBBPF,
          line=lambda c: b"stormgen %s\n" % _esc(c, "target"),
          buffers="1 MiB ring buffer, adaptive wake-up, 5 ms poll"),
]

EXECSNOOP: List[Storm] = [
    Storm("pybpf execsnoop", lambda c: pybpf("execsnoop", "-P", c["pid"]),
          lost_re=LOST_PYBPF, ready="exec",
          line=lambda c: b"stormtrue +\\d+ +%d +0 %s storm-go\n" % (c["pid"],
                                                                    _esc(c, "stormtrue")),
          buffers="1 MiB ring buffer (the tool's)"),
    Storm("bpftrace execsnoop.bt", lambda c: ["bpftrace", "-e", BT_EXEC.format(pid=c["pid"])],
          needs=bpftrace_needed(), lost_re=LOST_BPFTRACE, ready="exec",
          line=lambda c: b"\\d+ +\\d+ +%s storm-go\n" % _esc(c, "stormtrue"),
          buffers="perf buffer, 64 pages per CPU (bpftrace's default)"),
    Storm("BCC execsnoop (tracepoint, 1 event)",
          lambda c: [BCC_PYTHON, BCC_STORM, "exec", "--comm", "stormgen"],
          needs=(PACKAGES["python3-bpfcc"], "bcc-headers"), lost_re=LOST_PYBPF,
          ready="exec", line=lambda c: b"stormgen +\\d+ +%s storm-go\n" % _esc(c, "stormtrue"),
          buffers="perf buffer, 64 pages per CPU"),
]

SYSCOUNT: List[Storm] = [
    Storm("pybpf syscount", lambda c: pybpf("syscount", "-p", c["pid"]),
          ready=rb"Tracing", env={"PYTHONUNBUFFERED": "1"},
          counted=lambda c: rb"(?m)^openat +(\d+)",
          buffers="per-CPU array by syscall number (in-kernel counts, read at exit)"),
    Storm("bpftrace @[args->id] = count()",
          lambda c: ["bpftrace", "-e", BT_COUNT.format(pid=c["pid"])],
          needs=bpftrace_needed(), ready=rb"Tracing",
          counted=lambda c: rb"@\[%d\]: (\d+)" % c["openat_nr"],
          buffers="per-CPU hash map (bpftrace's count())"),
]


# -- a workload and a tracer writing to a file --------------------------------------------

class Gen:
    """``stormgen`` started and waiting for its go."""

    def __init__(self, ctx: Dict[str, Any], args: List[str]) -> None:
        self.proc = subprocess.Popen([ctx["stormgen"]] + args, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE)
        GENS.append(self)
        if self.proc.stdout.readline() != b"ready\n":    # type: ignore[union-attr]
            raise RuntimeError("the load generator did not start")

    def send(self, c: bytes) -> None:
        self.proc.stdin.write(c)            # type: ignore[union-attr]
        self.proc.stdin.flush()             # type: ignore[union-attr]

    def go(self, limit: float = 900.0) -> Tuple[float, int]:
        """Run the workload: its seconds and the number of failed execs (RuntimeError if
        it has not ended within ``limit`` seconds: a tracer that blocks it)."""
        self.send(b"g")
        ready, _, _ = select.select([self.proc.stdout], [], [], limit)
        if not ready:
            self.close()
            raise RuntimeError(f"the workload did not end within {limit:.0f} s")
        out = self.proc.stdout.readline().split()          # type: ignore[union-attr]
        self.close()
        if len(out) != 2:
            raise RuntimeError("the load generator failed")
        return float(out[0]), int(out[1])

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None and not pipe.closed:
                pipe.close()
        if self in GENS:
            GENS.remove(self)


GENS: List[Gen] = []
RAW: Dict[str, Any] = {}                # every section's results, for --json
TRACERS: List["FileTracer"] = []


class FileTracer:
    """A tracer whose stdout and stderr are files in ``workdir``."""

    def __init__(self, v: Storm, ctx: Dict[str, Any], workdir: str) -> None:
        self.v = v
        self.out_path = os.path.join(workdir, "out")
        self.err_path = os.path.join(workdir, "err")
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(v.argv(ctx), stdout=out, stderr=err,
                                         stdin=subprocess.DEVNULL, cwd=ROOT,
                                         env=dict(os.environ, **ctx["env"], **v.env),
                                         start_new_session=True)
        TRACERS.append(self)
        self.rusage: Any = None
        self.status = -1

    def err_text(self) -> str:
        with open(self.err_path, "rb") as fh:
            return fh.read().decode("utf-8", "replace")

    def out_has(self, pattern: bytes) -> bool:
        with open(self.out_path, "rb") as fh:
            return re.search(pattern, fh.read()) is not None

    def wait_ready(self, gen: Gen, how: Any) -> None:
        """Ping (or wait for the banner) until the output file shows the tracer live."""
        deadline = time.monotonic() + 60
        mark = {"ping": rb" /dev/zero\n", "exec": rb" storm-ping\n"}.get(how, how)
        burst = {"ping": b"P", "exec": b"e" * 32}.get(how)
        while not self.out_has(mark):
            if peers.process_exited(self.proc.pid) or time.monotonic() > deadline:
                raise RuntimeError(f"{self.v.name} did not start: "
                                   + self.err_text().strip()[-400:])
            if burst:
                gen.send(burst)
            time.sleep(0.2)

    def wait_quiet(self, limit: float = 180.0) -> None:
        """Until the output file and the tracer's CPU time stop growing for 0.5 s."""
        last: Tuple[int, float] = (-1, -1.0)
        quiet_since = time.monotonic()
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            now = (os.path.getsize(self.out_path), peers.cpu_seconds(self.proc.pid))
            if now[0] != last[0] or now[1] - last[1] > 0.015:
                last, quiet_since = now, time.monotonic()
            elif time.monotonic() - quiet_since >= 0.5:
                return
            time.sleep(0.1)

    def stop(self, timeout: float = 60.0) -> None:
        if self.rusage is None and self in TRACERS:
            status, self.rusage = peers.stop_process(self.proc.pid, timeout)
            self.status = status
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)    # anything it left behind
            except (ProcessLookupError, PermissionError):
                pass
        if self in TRACERS:
            TRACERS.remove(self)


def wakeups(pid: int) -> int:
    """Voluntary context switches of every thread of a live process so far: the times it
    went to sleep (in poll/epoll, mostly) and was woken again."""
    total = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/status") as fh:
                    for line in fh:
                        if line.startswith("voluntary_ctxt_switches:"):
                            total += int(line.split()[1])
            except (OSError, ValueError, IndexError):
                pass
    except OSError:
        pass
    return total


def _cleanup() -> None:
    for t in list(TRACERS):
        try:
            t.stop(timeout=3)
        except Exception:
            pass
    for g in list(GENS):
        try:
            g.close()
        except Exception:
            pass
    peers._cleanup()


def scan(path: str, marker: bytes, line_re: Optional[bytes]) -> Tuple[int, int, str, bytes]:
    """Lines ending in ``marker``, how many of them do not match ``line_re``, the first
    such line, and the other lines (banners, pings, loss reports; at most 1 MB)."""
    printed = bad = 0
    first_bad = ""
    rest: List[bytes] = []
    size = 0
    match = re.compile(line_re).fullmatch if line_re else None
    with open(path, "rb") as fh:
        for line in fh:
            if line.endswith(marker):
                printed += 1
                if match is not None and match(line) is None:
                    bad += 1
                    first_bad = first_bad or line.decode("utf-8", "replace").rstrip()
            elif size < 1 << 20:
                rest.append(line)
                size += len(line)
    return printed, bad, first_bad, b"".join(rest)


def traced(ctx: Dict[str, Any], v: Storm, gen_args: List[str],
           marker: bytes) -> Dict[str, Any]:
    gen = Gen(ctx, gen_args)
    work = tempfile.mkdtemp(dir=ctx["tmp"])
    t: Optional[FileTracer] = None
    try:
        c = dict(ctx, pid=gen.proc.pid)
        t = FileTracer(v, c, work)
        t.wait_ready(gen, v.ready)
        time.sleep(0.3)                     # the last pings drained
        cpu0 = peers.cpu_seconds(t.proc.pid)
        wake0 = wakeups(t.proc.pid)
        secs, failed = gen.go()
        t.wait_quiet()
        rss = peers.peak_rss_mb(t.proc.pid)
        woken = wakeups(t.proc.pid) - wake0
        t.stop()
        if t.rusage is None:
            raise RuntimeError(f"{v.name}: lost track of the process")
        cpu = t.rusage.ru_utime + t.rusage.ru_stime - cpu0
        printed, bad, first_bad, rest = scan(t.out_path, marker,
                                             v.line(c) if v.line else None)
        err = t.err_text()
        text = rest.decode("utf-8", "replace") + "\n" + err
        lost = sum(int(n) for n in re.findall(v.lost_re, text)) if v.lost_re else -1
        res = {"workload": secs, "printed": printed, "lost": lost, "cpu": cpu,
               "bad": bad, "first_bad": first_bad, "failed": failed,
               "status": t.status, "rss_mb": rss, "wakeups": woken}
        if v.counted:
            m = re.search(v.counted(c), rest)
            res["counted"] = int(m.group(1)) if m else -1
            if not m:
                res["note"] = (rest.decode("utf-8", "replace") + err).strip()[-300:]
        if os.WIFSIGNALED(t.status) or (os.WIFEXITED(t.status)
                                        and os.WEXITSTATUS(t.status) not in (0, 130)):
            res["note"] = f"exit status {t.status:#x}: " + err.strip()[-300:]
        return res
    finally:
        if t is not None:
            t.stop(timeout=10)
        gen.close()
        shutil.rmtree(work, ignore_errors=True)


def untraced(ctx: Dict[str, Any], gen_args: List[str]) -> float:
    return Gen(ctx, gen_args).go()[0]


def run_storm(label: str, ctx: Dict[str, Any], variants: List[Storm], gen_args: List[str],
              marker: bytes, rounds: int) -> Dict[str, Any]:
    """Interleaved: per round, per tracer, an untraced run then a traced one."""
    res: Dict[str, Any] = {"untraced": []}
    live = []
    for v in variants:
        why = v.missing(ctx)
        if why:
            res[v.name] = {"skipped": why}
            print(f"  {v.name}: skipped: {why}", flush=True)
        else:
            res[v.name] = {"runs": []}
            live.append(v)
    untraced(ctx, gen_args[:1] + [str(min(int(gen_args[1]), 1000))] + gen_args[2:])  # warm
    for r in range(rounds):
        for v in live:
            res["untraced"].append(untraced(ctx, gen_args))
            try:
                run = traced(ctx, v, gen_args, marker)
                res[v.name]["runs"].append(run)
                print(f"  round {r + 1}, {v.name}: {run['workload']:.3f} s, printed "
                      f"{run['printed']:,}, lost {run['lost']:,}"
                      + (f", counted {run['counted']:,}" if "counted" in run else "")
                      + f", CPU {run['cpu']:.2f} s, {run['wakeups']:,} wake-ups"
                      + (f", {run['bad']:,} bad lines" if run["bad"] else "")
                      + (f" ({run['note']})" if run.get("note") else ""), flush=True)
            except RuntimeError as exc:
                res[v.name]["error"] = str(exc)
                print(f"  round {r + 1}, {v.name}: {exc}", flush=True)
    res["untraced"].append(untraced(ctx, gen_args))
    RAW[label] = res
    return res


# -- start-up -----------------------------------------------------------------------------

def _startup_variants(ctx: Dict[str, Any]) -> List[Tuple[Variant, str]]:
    skip = ("PID", "TIME", "COMM", "Tracing", "Attaching", "Possibly")
    cmd = lambda c: pybpf("opensnoop", "-p", c["pid"])               # noqa: E731
    return [
        (Variant("pybpf opensnoop, warm cache", cmd, group="pybpf", skip=skip), "warm"),
        (Variant("pybpf opensnoop, cold cache", cmd, group="pybpf", skip=skip), "cold"),
        (Variant("pybpf opensnoop, PYBPF_NO_CACHE=1", cmd, group="pybpf", skip=skip,
                 env={"PYBPF_NO_CACHE": "1"}), "none"),
        (Variant("python3 alone (prints a line: the interpreter's start)",
                 lambda c: [PY, "-c", "import time; print('line', flush=True); "
                            "time.sleep(60)"], group="python"), ""),
        (Variant("bpftrace one-liner", lambda c: ["bpftrace", "-e",
                                                  peers.FILTERED.format(pid=c["pid"])],
                 group="bpftrace", needs=bpftrace_needed(), skip=peers.BPFTRACE_SKIP), ""),
        (Variant("libbpf C (clang object)", lambda c: [c["libbpf_open"], "-p", str(c["pid"])],
                 group="libbpf", needs=("libbpf_open",)), ""),
    ]


def _cache_files(path: str) -> int:
    return sum(len(files) for _, _, files in os.walk(path))


def run_startup(ctx: Dict[str, Any], runs: int, only: Optional[str]) -> Dict[str, Any]:
    """peers.py's start-up measurement (peers.Tracer: a pipe, the first event line, its
    CPU time by then, VmHWM) with the compile cache warm, cold and off."""
    res: Dict[str, Any] = {}
    variants = []
    for v, cache in _startup_variants(ctx):
        if only and not re.search(only, v.name):
            continue
        why = v.missing(ctx)
        res[v.name] = {"skipped": why} if why else {"first_ms": [], "cpu_ms": [], "rss_mb": [],
                                                    "cache_files": []}
        if why:
            print(f"  {v.name}: skipped: {why}", flush=True)
        else:
            variants.append((v, cache))
    warm = os.path.join(ctx["tmp"], "cache-warm")
    ticker = subprocess.Popen([ctx["ticker"]], stdin=subprocess.DEVNULL)
    ctx = dict(ctx, pid=ticker.pid)         # every tracer traces the ticker only
    try:
        for i in range(runs + 1):           # run 0 fills the warm cache, and is not kept
            for v, cache in variants:
                if i == 0 and cache != "warm":
                    continue
                cold = tempfile.mkdtemp(dir=ctx["tmp"], prefix="cache-cold-")
                if cache:
                    v.env = dict(v.env, PYBPF_CACHE_DIR=warm if cache == "warm" else cold)
                t = Tracer(v, ctx)
                ok = t.got_first.wait(60)
                rss = peers.peak_rss_mb(t.proc.pid)
                t.stop()
                r = res[v.name]
                if i and ok and t.first_at is not None:
                    r["first_ms"].append((t.first_at - t.t0) * 1e3)
                    r["cpu_ms"].append(t.first_cpu_ms or 0.0)
                    r["rss_mb"].append(rss)
                    r["example"] = t.first
                    if cache:
                        r["cache_files"].append(_cache_files(v.env["PYBPF_CACHE_DIR"]))
                elif not ok:
                    r["error"] = (t.stderr_text() or t.output_tail())[-300:]
                    print(f"  {v.name}: no event line: {r['error']}", flush=True)
                shutil.rmtree(cold, ignore_errors=True)
    finally:
        ticker.kill()
        ticker.wait()
    RAW["startup"] = res
    return res


# -- building and main --------------------------------------------------------------------

def build(tmp: str) -> Dict[str, Any]:
    """peers.py's pieces (ticker, libbpf_open when clang, bpftool and libbpf-dev are
    there), the load generator and the exec storm's program (static when it can be)."""
    ctx: Dict[str, Any] = dict(peers.build(tmp))
    gcc = shutil.which("gcc") or shutil.which("cc")
    ctx["stormgen"] = os.path.join(tmp, "stormgen")
    subprocess.run([gcc, "-O2", "-o", ctx["stormgen"], os.path.join(PEERS, "stormgen.c")],
                   check=True)
    ctx["stormtrue"] = os.path.join(tmp, "stormtrue")
    src = os.path.join(PEERS, "stormtrue.c")
    if subprocess.run([gcc, "-O2", "-static", "-o", ctx["stormtrue"], src],
                      stderr=subprocess.DEVNULL).returncode != 0:
        subprocess.run([gcc, "-O2", "-o", ctx["stormtrue"], src], check=True)
    ctx["target"] = os.path.join(tmp, "storm.target")
    open(ctx["target"], "w").close()
    ctx["tmp"] = tmp
    # pybpf's compile cache in the benchmark's directory, never the user's ~/.cache
    ctx["env"] = {"PYBPF_CACHE_DIR": os.path.join(tmp, "cache-storm")}
    from pybpf.syscalls import syscall_table
    ctx["openat_nr"] = next(n for n, name in syscall_table()[0].items() if name == "openat")
    return ctx


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="a validation run: 1 round, 200,000 opens, 1 s steady, 1,000 "
                         "execs, 2 start-ups")
    ap.add_argument("--install", action="store_true",
                    help="link the kernel headers BCC needs (peers.py --install's way)")
    ap.add_argument("--write-results", action="store_true",
                    help="put the tables into the storm section of benchmarks/RESULTS.md")
    ap.add_argument("--sections", default="opensnoop,steady,execsnoop,syscount,startup")
    ap.add_argument("--only", metavar="REGEX", help="only the tracers whose name matches")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--rate", type=int, default=100_000, help="steady opens per second")
    ap.add_argument("--steady-seconds", type=float, default=3.0)
    ap.add_argument("--execs", type=int, default=5_000)
    ap.add_argument("--startup-runs", type=int, default=5)
    ap.add_argument("--json", metavar="FILE",
                    help="also write every run's raw figures to FILE (JSON)")
    args = ap.parse_args(argv)
    if args.quick:
        args.rounds, args.events, args.steady_seconds = 1, 200_000, 1.0
        args.execs, args.startup_runs = 1_000, 2
    if os.geteuid() != 0:
        sys.exit("benchmarks/storm.py needs root")
    sections = [s for s in args.sections.split(",") if s]
    unknown = set(sections) - {"opensnoop", "steady", "execsnoop", "syscount", "startup"}
    if unknown:
        sys.exit(f"unknown section(s): {', '.join(sorted(unknown))}")
    peers.link_headers(args.install)       # BCC's kernel headers (only with --install)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda s, f: sys.exit(143))
    atexit.register(_cleanup)
    import compileall                       # as pip install does (see peers.py)
    for d in ("pybpf", "programs"):
        compileall.compile_dir(os.path.join(ROOT, d), quiet=1)
    for table in (OPENSNOOP, EXECSNOOP, SYSCOUNT):
        if args.only:
            table[:] = [v for v in table if re.search(args.only, v.name)]
    machine = peers.machine_lines()
    print("\n".join(machine), flush=True)
    report: List[str] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="pybpf-storm-") as tmp:
        ctx = build(tmp)
        n, target = args.events, ctx["target"]
        marker = b" " + target.encode() + b"\n"
        steady_n = int(args.rate * args.steady_seconds)
        open_args = ["open", str(n), target]
        exec_args = ["exec", str(args.execs), ctx["stormtrue"]]
        steady_args = ["open", str(steady_n), target, str(args.rate)]
        r = args.rounds

        def opensnoop() -> List[str]:
            res = run_storm("opensnoop", ctx, OPENSNOOP, open_args, marker, r)
            return storm_table(res, OPENSNOOP, n, r, "pybpf opensnoop",
                               "bpftrace opensnoop.bt", True)

        def steady() -> List[str]:
            res = run_storm("steady", ctx, OPENSNOOP, steady_args, marker, r)
            return storm_table(res, OPENSNOOP, steady_n, r, "pybpf opensnoop", None, False)

        def execsnoop() -> List[str]:
            res = run_storm("execsnoop", ctx, EXECSNOOP, exec_args, b" storm-go\n", r)
            return storm_table(res, EXECSNOOP, args.execs, r, "pybpf execsnoop",
                               "bpftrace execsnoop.bt", True)

        def syscount() -> List[str]:
            res = run_storm("syscount", ctx, SYSCOUNT, open_args, marker, r)
            return syscount_table(res, SYSCOUNT, n, r)

        def startup() -> List[str]:
            return startup_table(run_startup(ctx, args.startup_runs, args.only),
                                 args.startup_runs)

        steps: List[Tuple[str, str, Callable[[], List[str]]]] = [
            ("opensnoop", f"1. opensnoop: {n:,} openat+close as fast as possible", opensnoop),
            ("steady", f"2. opensnoop at a steady {args.rate:,} opens/s "
                       f"({args.steady_seconds:g} s)", steady),
            ("execsnoop", f"3. execsnoop: {args.execs:,} fork+exec", execsnoop),
            ("syscount", f"4. syscount (in-kernel counts): {n:,} openat+close", syscount),
            ("startup", "5. Start-up: exec to the first event line", startup),
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
        write_results(machine + report, argv, took)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"argv": argv, "machine": machine, "seconds": took, "raw": RAW}, fh,
                      indent=1, default=str)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
