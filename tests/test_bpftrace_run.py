"""Differential tests of ``pybpf.bpftrace.session.run`` against the installed bpftrace
0.17: the same program, run by both on the same deterministic workload (a gcc-built
program, tests/bpftrace_run/btwork.c: known opens, reads of known sizes, uprobe target
calls, USDT probes), must print the same stdout, after normalising only what
legitimately differs (other processes' events in system-wide one-liners, hash-order
ties).

Each run uses bpftrace's own handshake (``__BPFTRACE_NOTIFY_PROBES_ATTACHED`` on
stderr): the workload starts once the probes are attached; programs without
``exit()`` are stopped with SIGINT, as a user would.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from typing import Callable, List, Optional, Tuple

import pytest

from bpftrace_tools.harness import start_attached

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SRC = os.path.join(HERE, "bpftrace_run")

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(shutil.which("bpftrace") is None, reason="needs bpftrace 0.17"),
]


#: the workload's name (its comm), unique to this test process: a program that filters
#: by comm sees this run's workload only, not one another test run has on the machine
COMM = f"btw{os.getpid()}"[:15]


def for_this_run(text: str) -> str:
    """``text`` with the workload's comm (``"btwork"`` in the programs) made :data:`COMM`."""
    return text.replace('"btwork"', f'"{COMM}"')


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> dict:
    """The workload binary and its data file (2500 known bytes)."""
    if shutil.which("gcc") is None:
        pytest.skip("needs gcc")
    d = tmp_path_factory.mktemp("btwork")
    binary = str(d / COMM)
    subprocess.run(["gcc", "-O1", "-g", "-o", binary, os.path.join(SRC, "btwork.c")],
                   check=True)
    data = str(d / "data.txt")
    with open(data, "wb") as fh:
        fh.write(bytes((i % 26) + 97 for i in range(2500)))
    return {"BIN": binary, "DATA": data, "DIR": str(d)}


def _run(cmd: List[str], workload: Optional[List[str]], sigint: bool,
         env: dict) -> Tuple[bytes, bytes, int]:
    p, err, _ = start_attached(cmd, env)
    if workload:
        subprocess.run(workload, check=False)
    out = e2 = None
    if sigint:
        # bpftrace 0.17 may miss a SIGINT that comes too early: repeat it
        for _ in range(10):
            time.sleep(0.3)
            p.send_signal(signal.SIGINT)
            try:
                out, e2 = p.communicate(timeout=3)
                break
            except subprocess.TimeoutExpired:
                continue
    if out is None:
        try:
            out, e2 = p.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            out, e2 = p.communicate()
    return out, err + e2, p.returncode


def both(program: str, work: dict, *, workload: bool = True, sigint: bool = False,
         params: Tuple[str, ...] = (), json: bool = False) -> Tuple[str, str]:
    """(bpftrace's stdout, ours) for ``program`` ({BIN}/{DATA} filled in)."""
    text = for_this_run(program.replace("{BIN}", work["BIN"]).replace("{DATA}",
                                                                      work["DATA"]))
    path = os.path.join(work["DIR"], "prog.bt")
    with open(path, "w") as fh:
        fh.write(text)
    wl = [work["BIN"], work["DATA"]] if workload else None
    fmt = ["-f", "json"] if json else []
    theirs, terr, trc = _run(["bpftrace", *fmt, path, *params], wl, sigint, dict(os.environ))
    env = dict(os.environ, PYTHONPATH=ROOT)
    ours, oerr, orc = _run([sys.executable, os.path.join(SRC, "run_helper.py"), *fmt,
                            path, *params], wl, sigint, env)
    assert orc == trc, (orc, trc, oerr.decode()[-2000:])
    return theirs.decode("latin-1"), ours.decode("latin-1")


def only(pattern: str) -> Callable[[str], str]:
    """Keep the lines matching ``pattern`` (system-wide programs see other processes)."""
    rx = re.compile(pattern)
    return lambda text: "\n".join(l for l in text.split("\n") if rx.search(l))


CASES = [
    # (id, program, options)
    ("printf-ints", r'BEGIN { printf("%d %u %x %X %o %5d|%-5d|%05d %c %%\n", -1, -1, 255, 255, 8, 42, 42, 7, 65); exit(); }', {}),
    ("printf-strings", r'BEGIN { printf("[%s] [%10s] [%-6s] [%.2s]\n", "abc", "right", "left", "cut"); exit(); }', {}),
    ("arith", r'BEGIN { $a = -7; $b = (uint32)5; printf("%d %d %d %d %d %d\n", $a / 2, $a % 2, $a >> 1, $a < $b, -1 > 0, 3 * 4 + 2 - 1); printf("%d %d %d %d\n", 6 & 3, 6 | 3, 6 ^ 3, 1 << 10); printf("%d %d %d\n", ~0, !5, -(3)); exit(); }', {}),
    ("casts", r'BEGIN { printf("%d %d %d %u\n", (int8)300, (uint8)-1, (int16)70000, (uint32)-2); exit(); }', {}),
    ("maps-values", r'BEGIN { @a = 1; @b["x"] = 2; @c[1, "y"] = 3; @d = (1, "two", -3); @e = "str"; @f[-5] = -6; exit(); }', {}),
    ("aggregations", r'BEGIN { $i = 0; while ($i < 100) { @h = hist($i); @l = lhist($i, 0, 100, 10); @c[$i > 10] = count(); @s = sum($i); @a = avg($i); @mi = min($i); @ma = max($i); @st = stats($i); $i++; } exit(); }', {}),
    ("agg-negative", r'BEGIN { @s = sum(-5); @mi = min(-3); @ma = max(-2); @a = avg(-10); @h = hist(-1); @h = hist(0); @h = hist(3); exit(); }', {}),
    ("control-flow", r'BEGIN { $s = "abc"; if ($s == "abc") { printf("eq\n"); } else { printf("ne\n"); } printf("%s\n", $s != "abd" ? "yes" : "no"); $i = 0; while (1) { $i++; if ($i == 3) { continue; } if ($i > 5) { break; } printf("i=%d\n", $i); } unroll(3) { printf("u\n"); } exit(); }', {}),
    ("print-clear-zero-delete", r'BEGIN { @a[1] = 10; @a[2] = 20; @a[3] = 30; print(@a, 2); print(@a, 0, 10); delete(@a[2]); print(@a); clear(@a); @b[7] = count(); zero(@b); print(1234); print("text"); print((1, "t")); exit(); }', {}),
    ("exit-stops-probe", r'BEGIN { printf("before\n"); exit(); printf("after\n"); } END { printf("end\n"); }', {}),
    ("positional", r'BEGIN { printf("%d %s %d\n", $1, str($2), $#); exit(); }', {"params": ("5", "hello")}),
    ("tracepoint-openat", r'tracepoint:syscalls:sys_enter_openat /comm == "btwork"/ { $f = str(args->filename); if ($f == "{DATA}") { printf("%s %s %d\n", comm, $f, args->flags); @opens[$f] = count(); } } tracepoint:syscalls:sys_exit_read /comm == "btwork"/ { @bytes = hist(args->ret); @sizes = lhist(args->ret, 0, 3000, 500); @total = sum(args->ret); @r[args->ret >= 1000] = count(); } tracepoint:sched:sched_process_exit /comm == "btwork"/ { exit(); }', {}),
    ("tracepoint-builtins", r'tracepoint:syscalls:sys_enter_close /comm == "btwork"/ { @c[comm, probe] = count(); @u[uid, gid] = count(); $x = pid == tid; @same = $x; @cpuok = cpu < 4096; } tracepoint:sched:sched_process_exit /comm == "btwork"/ { exit(); }', {}),
    ("uprobe", r'uprobe:{BIN}:work_fn { printf("%d %s\n", arg0, str(arg1)); @n[str(arg1)] = sum(arg0); } uretprobe:{BIN}:work_fn { @ret = lhist(retval, 0, 40, 5); } tracepoint:sched:sched_process_exit /comm == "btwork"/ { exit(); }', {}),
    ("uprobe-func", r'uprobe:{BIN}:work_fn { @[func] = count(); } tracepoint:sched:sched_process_exit /comm == "btwork"/ { exit(); }', {}),
    ("usdt", r'usdt:{BIN}:btwork:tick { @u = count(); } tracepoint:sched:sched_process_exit /comm == "btwork"/ { exit(); }', {}),
    ("map-read-tuples", r'BEGIN { @x[1] = 1; @x[2] = 2; if (@x[1] == 1) { printf("map read %d %d\n", @x[2], @x[3]); } $t = (1, "a", (int8)-2); printf("%d %s %d\n", $t.0, $t.1, $t.2); @t = $t; exit(); }', {}),
    ("functions", r'BEGIN { printf("%s %s\n", ntop(0x0100007f), ntop(pton("::1"))); printf("%x %x\n", bswap((uint32)0x12345678), bswap((uint16)0x1234)); printf("%d %d\n", strncmp("hello", "help", 3), strncmp("hello", "help", 4)); printf("%s\n", strftime("%Y-%m", nsecs)); printf("%s\n", strerror(2)); exit(); }', {}),
    ("interval", r'interval:ms:50 { @i++; if (@i == 3) { exit(); } }', {"workload": False}),
    ("profile", r'profile:hz:99 /cpu == 0/ { printf("tick\n"); exit(); }', {"workload": False}),
    ("software", r'software:cpu-clock:1000000 /cpu == 0/ { printf("sw\n"); exit(); }', {"workload": False}),
    ("sigint-end", r'BEGIN { printf("hello world\n"); @b = 1; } END { printf("bye\n"); }', {"workload": False, "sigint": True}),
    ("json-maps", r'BEGIN { @a = 1; @b["x"] = 2; @c[1, "y"] = 3; @h = hist(5); @l = lhist(3, 0, 10, 5); @s = stats(7); @v = avg(9); printf("p %d\n", 1); print((1, "a")); exit(); }', {"json": True}),
    ("json-printf-escapes", 'BEGIN { printf("a\\"b\\\\c\\t%s %d %c \u00e9 %5s|%-3d|\\n", "x\\"y", -3, 66, "r", 7); printf("%s %u\\n", "tab\\there", 4); printf("no args\\n"); exit(); }', {"json": True}),
    ("json-tracepoint", r'tracepoint:syscalls:sys_exit_read /comm == "btwork"/ { @r = hist(args->ret); printf("%d\n", args->ret); } tracepoint:sched:sched_process_exit /comm == "btwork"/ { exit(); }', {"json": True}),
]

# bpftrace's docs/tutorial_one_liners.md, unchanged; system-wide, so compared on the
# workload's lines (their counts come from the deterministic workload)
ONE_LINERS = [
    ("ol-hello", r'BEGIN { printf("hello world\n"); }', None),
    ("ol-openat", r"tracepoint:syscalls:sys_enter_openat { printf(\"%s %s\n\", comm, str(args->filename)); }".replace('\\"', '"'), "btwork"),
    ("ol-syscall-count", r"tracepoint:raw_syscalls:sys_enter { @[comm] = count(); }", r"^@\[btwork\]"),
    ("ol-read-sum", r"tracepoint:syscalls:sys_exit_read /args->ret/ { @[comm] = sum(args->ret); }", r"^@\[btwork\]"),
    ("ol-read-hist", r"tracepoint:syscalls:sys_exit_read /pid == cpid/ { @bytes = hist(args->ret); }", None),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_differential(case, work):
    # profile/software programs filter on one CPU: with one ring for all CPUs, another
    # CPU's record may come before the exit record (bpftrace reads per-CPU buffers)
    _, program, options = case
    theirs, ours = both(program, work, **options)
    if "func" in program:               # a PIE's addresses differ from run to run
        theirs, ours = (re.sub(r"0x[0-9a-f]+", "ADDR", x) for x in (theirs, ours))
    assert ours == theirs


def _sort_ties(text: str) -> str:
    return text


@pytest.mark.parametrize("case", ONE_LINERS, ids=[c[0] for c in ONE_LINERS])
def test_one_liners(case, work):
    _, program, keep = case
    if "cpid" in program:
        pytest.skip("-c runs are covered by test_command")
    theirs, ours = both(program, work, sigint=True)
    if keep:
        keep = keep.replace("btwork", COMM)
        theirs, ours = only(keep)(theirs), only(keep)(ours)
    assert ours == theirs
    assert ours.strip(), "the workload's lines are missing"


def test_command(work):
    """``-c CMD``: the child runs once attached, the run ends with it, ``cpid`` is its pid."""
    program = ("tracepoint:syscalls:sys_exit_read /pid == cpid/ { @bytes = hist(args->ret); "
               "@n = count(); }")
    path = os.path.join(work["DIR"], "cmd.bt")
    with open(path, "w") as fh:
        fh.write(program)
    cmd = f"{work['BIN']} {work['DATA']}"
    theirs = subprocess.run(["bpftrace", "-c", cmd, path], capture_output=True, timeout=60)
    ours = subprocess.run([sys.executable, os.path.join(SRC, "run_helper.py"), "-c", cmd,
                           path], capture_output=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=ROOT))
    assert ours.returncode == theirs.returncode
    assert ours.stdout == theirs.stdout
    assert b"@n: " in ours.stdout


def test_in_process_releases_everything():
    """session.run in this process: the output as bpftrace's, and every fd it opened
    (maps, programs, perf events, the ring) closed, also when a program fails."""
    import gc
    import io
    from pybpf.bpftrace.session import TraceOptions, run
    gc.collect()        # an earlier test's garbage closing its fds now, not during the run
    before = sorted(os.listdir("/proc/self/fd"))
    out, err = io.StringIO(), io.StringIO()
    rc = run('BEGIN { @a = count(); printf("x\\n"); exit(); } '
             'tracepoint:syscalls:sys_enter_close { @c = count(); }', "stdin",
             TraceOptions(), stdout=out, stderr=err)
    assert rc == 0, err.getvalue()
    assert out.getvalue().startswith("Attaching 2 probes...\nx\n\n\n@a: 1\n")
    assert sorted(os.listdir("/proc/self/fd")) == before
    # a program that loads but cannot attach (no such uprobe target function)
    rc = run('uprobe:/bin/true:no_such_function_here { @x = count(); }', "stdin",
             TraceOptions(), stdout=io.StringIO(), stderr=io.StringIO())
    assert rc == 1
    assert sorted(os.listdir("/proc/self/fd")) == before


def _children(pid: int) -> List[int]:
    """The processes whose parent is ``pid``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


def test_second_sigint_while_ending(work):
    """A Ctrl-C repeated while the run is ending (END still running a slow
    ``system()``) does not cut it short: END's output and the maps print and the
    exit status is 0, as with bpftrace 0.17, which ignores signals once it is ending."""
    path = os.path.join(work["DIR"], "slow_end.bt")
    with open(path, "w") as fh:
        fh.write('BEGIN { @a = 7; } END { system("sleep 1; echo slept"); '
                 'printf("end\\n"); }')
    results = []
    for cmd, env in ((["bpftrace", "--unsafe", "-B", "full", path], dict(os.environ)),
                     ([sys.executable, "-m", "pybpf", "trace", "--unsafe", "-B", "full",
                       path], dict(os.environ, PYTHONPATH=ROOT))):
        p, _, _ = start_attached(cmd, env)
        try:
            for _ in range(20):         # bpftrace 0.17 may miss an early SIGINT: repeat
                time.sleep(0.3)
                p.send_signal(signal.SIGINT)
                deadline = time.monotonic() + 1.5
                while not _children(p.pid) and time.monotonic() < deadline:
                    time.sleep(0.02)     # until END's system() runs its shell
                if _children(p.pid):
                    break
            assert _children(p.pid), "END's system() never started"
            p.send_signal(signal.SIGINT)
            out, err = p.communicate(timeout=30)
            results.append((p.returncode, out.decode("latin-1")))
        finally:
            if p.poll() is None:        # a failed check leaves no tracer behind
                p.kill()
                p.communicate()
    (trc, tout), (orc, oout) = results
    assert orc == trc == 0, (results, err[-1000:])
    assert oout == tout
    assert "slept\n" in oout and "@a: 7\n" in oout


def test_in_process_messages_go_to_the_given_stderr():
    """session.run's ``stderr`` receives the runtime's messages (here: cat() of a
    missing file), with bpftrace's text; nothing reaches the process's stderr."""
    import contextlib
    import io
    from pybpf.bpftrace.session import TraceOptions, run
    program = 'BEGIN { cat("/nonexistent/pybpf-test"); exit(); }'
    theirs = subprocess.run(["bpftrace", "-e", program], capture_output=True, timeout=60)
    out, err, process_err = io.StringIO(), io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(process_err):
        rc = run(program, "stdin", TraceOptions(), stdout=out, stderr=err)
    assert rc == theirs.returncode == 0
    line = "ERROR: failed to open file '/nonexistent/pybpf-test': No such file or directory"
    assert line in theirs.stderr.decode()
    assert err.getvalue() == line + "\n"
    assert process_err.getvalue() == ""


def test_first_waits_are_short_then_the_ring_policy_bounds_them():
    """The reader's waits after attaching: FIRST_WAITS (1, 2, 4 ms), then 100 ms calls
    that the ring's wake-up policy cuts to its interval; a stop ends the loop."""
    from types import SimpleNamespace
    from pybpf.bpftrace.runtime import FIRST_WAITS, Runtime
    rt = Runtime.__new__(Runtime)
    rt.stop, rt.signals, rt.child = False, [], None
    rt.opts = SimpleNamespace(pid=None)
    waits: List[float] = []

    def poll(timeout: float) -> None:
        waits.append(timeout)
        rt.stop = len(waits) == 6
    rt.poll, rt.lost_notice = poll, lambda: None
    rt.wait()
    assert FIRST_WAITS == (0.001, 0.002, 0.004)
    assert waits == [0.001, 0.002, 0.004, 0.1, 0.1, 0.1]
