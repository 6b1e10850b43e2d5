"""Differential tests of bpftrace 0.17's builtins, functions and map functions:
``pybpf.bpftrace.session.run`` against the installed bpftrace on the same
deterministic workload (tests/bpftrace_run/btfuncs.c, built with frame pointers:
known opens and reads, uprobe targets with register and stack arguments, a global for
``uaddr()``, an exec with known arguments, a signal to itself, and a pause before it
exits so user symbols still resolve while events are read).

Each case batches many checks into one program (CPUs are shared). Normalised: only
addresses (a PIE and the libraries load at random places) and, in lost-event runs, the
counts. Programs never print values that tie in hash order (kernel hash maps are seeded
at random, so bpftrace itself prints ties in a different order from run to run).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from typing import Dict, Optional, Sequence, Tuple

import pytest

from test_bpftrace_run import COMM, ROOT, SRC, _run, for_this_run

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(shutil.which("bpftrace") is None, reason="needs bpftrace 0.17"),
]


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> dict:
    """The workload binary (frame pointers kept) and its data file (2500 known bytes)."""
    if shutil.which("gcc") is None:
        pytest.skip("needs gcc")
    d = tmp_path_factory.mktemp("btfuncs")
    binary = str(d / COMM)
    subprocess.run(["gcc", "-O1", "-g", "-fno-omit-frame-pointer", "-o", binary,
                    os.path.join(SRC, "btfuncs.c")], check=True)
    data = str(d / "data.txt")
    with open(data, "wb") as fh:
        fh.write(bytes((i % 26) + 97 for i in range(2500)))
    return {"BIN": binary, "DATA": data, "DIR": str(d)}


def both(program: str, work: dict, *, mode: Optional[str] = "l", sigint: bool = False,
         opts: Sequence[str] = (), params: Sequence[str] = (),
         env: Optional[Dict[str, str]] = None, workload: Optional[list] = None
         ) -> Tuple[Tuple[str, str], Tuple[str, str]]:
    """((bpftrace's stdout, ours), (bpftrace's stderr, ours)) for ``program``
    ({BIN}/{DATA} filled in); ``mode`` is the workload's mode letters (x: exec,
    s: signal, l: linger) or None for no workload; exit statuses must agree."""
    text = for_this_run(program.replace("{BIN}", work["BIN"]).replace("{DATA}",
                                                                      work["DATA"]))
    path = os.path.join(work["DIR"], "prog.bt")
    with open(path, "w") as fh:
        fh.write(text)
    wl = workload or ([work["BIN"], work["DATA"], mode] if mode is not None else None)
    base = dict(os.environ, **(env or {}))
    theirs, terr, trc = _run(["bpftrace", *opts, path, *params], wl, sigint, base)
    ours, oerr, orc = _run([sys.executable, os.path.join(SRC, "run_helper.py"), *opts,
                            path, *params], wl, sigint, dict(base, PYTHONPATH=ROOT))
    assert orc == trc, (orc, trc, oerr.decode()[-2000:], terr.decode()[-2000:])
    terr = b"".join(l for l in terr.splitlines(True) if b"RLIMIT_MEMLOCK" not in l)
    return ((theirs.decode("latin-1"), ours.decode("latin-1")),
            (terr.decode("latin-1"), oerr.decode("latin-1")))


_ADDR = re.compile(r"0x[0-9a-f]+|(?<=\t)[0-9a-f]{6,16}(?= )")


def addrs(text: str) -> str:
    """Addresses (hex, and perf-mode stack addresses) replaced by ADDR."""
    return _ADDR.sub("ADDR", text)


UPROBE_EXIT = 'tracepoint:sched:sched_process_exit /comm == "btwork"/ { exit(); }'

CASES = [
    # (id, program, options for both(), normalise addresses)
    ("builtins-begin",
     r'BEGIN { printf("%d %d %d %s %d %d %s %d %d\n", numaid, elapsed < 5000000000, '
     r'rand >= 0, username, uid, gid, str($2), $1, $#); '
     r'printf("%d %d %d %d\n", cgroup, sizeof(int32), sizeof(struct task_struct), '
     r'curtask > 0); @u[username] = count(); print(username); exit(); }',
     {"mode": None, "params": ("7", "hello")}, False),
    ("builtins-tracepoint",
     r'tracepoint:syscalls:sys_enter_read /comm == "btwork"/ { @same[pid == tid] = count(); '
     r'@c[comm, probe, uid] = count(); @fd = max(args->fd); @cpu = cpu < 4096; '
     r'@n = sum(args->count); printf("%s %s %d\n", comm, probe, args->count); } ' + UPROBE_EXIT,
     {}, False),
    ("builtins-uprobe",
     r'uprobe:{BIN}:many_args { printf("%d %d %d %d %d %d %d %d\n", arg0, arg1, arg2, arg3, '
     r'arg4, arg5, sarg0, sarg1); printf("%s|%s|%s\n", func, usym(reg("ip")), '
     r'ustack(perf, 3)); print(ustack(2)); @g = *(int64 *)uaddr("bt_global"); '
     r'printf("%x\n", *(uint64 *)uptr(uaddr("bt_global"))); } '
     r'uretprobe:{BIN}:many_args { printf("ret %d %s\n", retval, probe); } '
     r'uprobe:{BIN}:work_fn /arg0 < 3/ { @s[ustack] = count(); @one[ustack(1), arg0] = sum(arg0); '
     r'@f[func] = count(); } ' + UPROBE_EXIT, {}, True),
    ("kstack",
     r'tracepoint:syscalls:sys_enter_read /comm == "btwork"/ { @[kstack] = count(); '
     r'@k1[kstack(1)] = count(); @kp[kstack(perf, 2)] = count(); '
     r'@kb[kstack(bpftrace, 3)] = count(); printf("%s|%s\n", kstack(2), ksym(kaddr("vfs_read"))); '
     r'} ' + UPROBE_EXIT, {}, True),
    ("join-text",
     r'tracepoint:syscalls:sys_enter_execve /comm == "btwork"/ { join(args->argv); '
     r'join(args->argv, ","); join(args->argv, ""); } ' + UPROBE_EXIT, {"mode": "x"}, False),
    ("join-json",
     r'tracepoint:syscalls:sys_enter_execve /comm == "btwork"/ { join(args->argv, "--"); } '
     + UPROBE_EXIT, {"mode": "x", "opts": ("-f", "json")}, False),
    ("buf",
     r'uprobe:{BIN}:take_buf { printf("%r|%rx|%rh|%r|%r\n", buf(arg0, 10), buf(arg0, 3), '
     r'buf(arg0, arg1), buf(arg0, 0), buf(arg0, 100)); @b[buf(arg0, 4)] = count(); '
     r'@c = buf(arg0, 2); print(buf(arg0, 6)); $a = buf(arg0, 7); print($a); } ' + UPROBE_EXIT,
     {}, False),
    ("buf-json",
     r'uprobe:{BIN}:take_buf { printf("%r|%rx|%rh\n", buf(arg0, 10), buf(arg0, 3), '
     r'buf(arg0, arg1)); @b[buf(arg0, 4)] = count(); @c = buf(arg0, 2); print(buf(arg0, 6)); } '
     + UPROBE_EXIT, {"opts": ("-f", "json")}, False),
    ("map-functions",
     r'BEGIN { $i = 1; while ($i <= 6) { @c[$i] = count(); $j = 0; while ($j < $i) '
     r'{ @c[$i] = count(); $j++; } @s[$i % 3] = sum($i * 10); @a["k", $i] = avg($i * 3); '
     r'@mi[$i > 3] = min($i); @ma = max($i); @st[$i & 1] = stats($i); @h[$i > 2] = hist($i * 100); '
     r'@l = lhist($i * 7, 0, 50, 10); @v[$i] = $i * 3; $i++; } print(@c, 3); print(@s, 0, 10); '
     r'print(@a, 2, 2); print(@h, 1, 2); print(@st); print(@l); delete(@c[6]); delete(@v[2]); '
     r'delete(@ma); @z = sum(5); @z2[1, "a"] = 3; zero(@z); zero(@z2); print(@z); print(@z2); '
     r'print(@c); print(@a); clear(@v); print(@v); exit(); }',
     {"mode": None}, False),
    ("map-reads",
     r'BEGIN { @c = count(); @c = count(); @s = sum(5); @m = min(2); @M = max(7); '
     r'@st = stats(4); @st = stats(10); @a = avg(3); @k[1, "a"] = count(); @k[1, "a"] = count(); '
     r'@km[3] = min(5); $c = @c; $s = @s; $m = @m; $M = @M; $st = @st; $a = @a; '
     r'$k = @k[1, "a"]; $km = @km[3]; $no = @k[2, "b"]; print($c); print($s); print($m); '
     r'print($M); print($st); print($a); print($k); print($km); print($no); @x = $m; @y = $c; '
     r'@mm = min(-5); $mm = @mm; print($mm); exit(); }', {"mode": None}, False),
    ("map-functions-json",
     r'BEGIN { $i = 1; while ($i <= 6) { @c[$i] = count(); $j = 0; while ($j < $i) '
     r'{ @c[$i] = count(); $j++; } @a["k", $i] = avg($i * 3); @st[$i & 1] = stats($i); '
     r'@h[$i > 2] = hist($i * 100); @l = lhist($i * 7, 0, 50, 10); @v[$i] = $i * 3; $i++; } '
     r'print(@c, 3); print(@a, 2, 2); print(@h, 1, 2); print(@st); print(@l); delete(@v[2]); '
     r'print(@v); exit(); }', {"mode": None, "opts": ("-f", "json")}, False),
    ("json-actions",
     r'BEGIN { printf("p %d %s\n", 1, "two"); time("%Y\n"); cat("{DATA}"); '
     r'system("echo sys %d", 3); print(5); print("s"); print((1, "t")); @m[1, "a"] = 2; '
     r'@h = hist(5); @l = lhist(3, 0, 10, 5); @st = stats(7); @av = avg(9); @c = count(); '
     r'print(@m); print(@h); print(@st); print(@av); exit(); }',
     {"mode": None, "opts": ("--unsafe", "-f", "json")}, False),
    ("text-actions",
     r'BEGIN { printf("p %d %s\n", 1, "two"); time("%Y\n"); cat("{DATA}"); '
     r'system("echo sys %d %s", 3, "x"); printf("after\n"); '
     r'print(strftime("%Y", nsecs)); exit(); }', {"mode": None, "opts": ("--unsafe",)}, False),
    ("signal",
     r'uprobe:{BIN}:many_args { signal("SIGUSR1"); } uprobe:{BIN}:take_buf { signal(10); } '
     r'tracepoint:signal:signal_generate /args->sig == 10 && comm == "btwork"/ '
     r'{ printf("sig %d %d\n", args->sig, args->errno); } ' + UPROBE_EXIT,
     {"opts": ("--unsafe",)}, False),
    ("cgroup",
     r'BEGIN { printf("%s|%s|%s|%s|%s\n", cgroup_path(cgroup), cgroup_path(1, "unified"), '
     r'cgroup_path(1, "c*"), cgroup_path(12345678), cgroup_path(1, "*e*")); '
     r'print(cgroup_path(1, "pids")); printf("%d\n", cgroupid("/tmp")); exit(); }',
     {"mode": None}, False),
    ("functions",
     r'BEGIN { printf("%s %s %s\n", ntop(0x0100007f), ntop(pton("fe80::1")), ntop(2, 0x0200a8c0)); '
     r'printf("%x %x %x\n", bswap((uint64)0x0102030405060708), bswap((uint32)0x12345678), '
     r'bswap((uint16)0x1234)); printf("%d %d %d %d\n", strncmp("hello", "help", 3), '
     r'strncmp("hello", "help", 4), strcontains("hello", "ll"), strcontains("hello", "lx")); '
     r'printf("%s %s\n", strerror(2), strerror(13)); printf("%d\n", sizeof(uint16)); debugf("pybpf-debugf %d", 5); '
     r'printf("%s\n", ksym(kaddr("vfs_read"))); @n[ntop(0x0100007f)] = 2; '
     r'exit(); }', {"mode": None}, False),
    ("output-file", r'BEGIN { printf("to file\n"); @x = 1; @h = hist(3); exit(); } '
     r'END { printf("end\n"); }', {"mode": None}, False),
    ("map-keys-max", r'BEGIN { $i = 0; while ($i < 6) { @k[$i] = $i; @m[$i, "x"] = $i * 2; '
     r'@c[$i] = sum($i); $i++; } exit(); }',
     {"mode": None, "env": {"BPFTRACE_MAP_KEYS_MAX": "3"}}, False),
]


#: bpftrace 0.17 now and then fails to read a stack back from its own stack map (seen
#: once in CI: "ERROR: failed to look up stack id 114755 (pid 25243): -9"); such a run
#: of the oracle is repeated rather than compared
ORACLE_GLITCH = "failed to look up stack id"


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_funcs(case, work, tmp_path):
    _, program, options, normalise = case
    options = dict(options)
    files = None
    if case[0] == "output-file":
        files = (str(tmp_path / "theirs.txt"), str(tmp_path / "ours.txt"))
    if files:
        # -o FILE: one file per tracer; stdout keeps only the two exit newlines
        (t_out, o_out), _ = _both_files(program, work, files)
        assert o_out == t_out == "\n\n"
        with open(files[0]) as a, open(files[1]) as b:
            theirs, ours = a.read(), b.read()
        assert "to file\nend\n@h: \n[2, 4)" in ours
    else:
        for _ in range(3):
            (theirs, ours), (terr, oerr) = both(program, work, **options)
            if ORACLE_GLITCH not in terr:
                break                   # else bpftrace itself failed: run both again
        assert oerr == terr
    if normalise:
        theirs, ours = addrs(theirs), addrs(ours)
    assert ours == theirs
    assert ours.strip()


def _both_files(program: str, work: dict, files: Tuple[str, str]):
    text = for_this_run(program.replace("{BIN}", work["BIN"]).replace("{DATA}",
                                                                      work["DATA"]))
    path = os.path.join(work["DIR"], "prog.bt")
    with open(path, "w") as fh:
        fh.write(text)
    t, _, trc = _run(["bpftrace", "-o", files[0], path], None, False, dict(os.environ))
    o, e, orc = _run([sys.executable, os.path.join(SRC, "run_helper.py"), "-o", files[1],
                      path], None, False, dict(os.environ, PYTHONPATH=ROOT))
    assert orc == trc == 0, e.decode()
    return (t.decode(), o.decode()), None


ERRORS = [
    ("override", r'tracepoint:syscalls:sys_enter_openat { override(1); }', ()),
    ("path", r'tracepoint:syscalls:sys_enter_openat { printf("%s", path(args->filename)); }', ()),
    ("system-safe", r'BEGIN { system("echo hi"); exit(); }', ()),
    ("signal-safe", r'uprobe:{BIN}:many_args { signal(10); }', ()),
    ("kaddr-unknown", r'BEGIN { printf("%d\n", kaddr("no_such_symbol_pybpf")); exit(); }', ()),
    ("cgroupid-unknown", r'BEGIN { printf("%d\n", cgroupid("/nonexistent")); exit(); }', ()),
    ("cgroupid-not-cgroupfs", r'BEGIN { printf("%d\n", cgroupid("/sys/fs/cgroup/")); }', ()),
    ("avg-arith", r'BEGIN { @a = avg(1); print(@a + 1); }', ()),
    ("count-printf", r'BEGIN { @c = count(); printf("%d\n", @c); }', ()),
]


@pytest.mark.parametrize("case", ERRORS, ids=[c[0] for c in ERRORS])
def test_errors(case, work):
    """What bpftrace refuses (before or while compiling) is refused with its text."""
    _, program, opts = case
    (theirs, ours), (terr, oerr) = both(program, work, mode=None, opts=opts)
    assert ours == theirs == ""
    assert oerr == terr
    assert "ERROR" in oerr


def test_debugf_reaches_trace_buffer(work):
    """debugf() writes to the kernel's trace buffer (bpf_trace_printk), not stdout."""
    trace = "/sys/kernel/tracing/trace"
    if not os.path.exists(trace):
        trace = "/sys/kernel/debug/tracing/trace"
    if not os.path.exists(trace):
        pytest.skip("no tracefs")
    marker = f"pybpf-debugf-{os.getpid()}"
    (theirs, ours), _ = both(f'BEGIN {{ debugf("{marker} %d %s", 42, "s"); exit(); }}', work,
                             mode=None)
    assert ours == theirs
    with open(trace, errors="replace") as fh:
        lines = [l for l in fh if marker in l]
    # one line from bpftrace, one from us
    assert len(lines) >= 2 and all(l.rstrip().endswith(f"{marker} 42 s") for l in lines)


def test_lost_events(work):
    """A ring overflowing (BPFTRACE_PERF_RB_PAGES=1, a storm of events): ``Lost N
    events`` notices in the stream, as bpftrace prints them (the counts vary)."""
    program = ('tracepoint:syscalls:sys_enter_getppid /comm == "stormy"/ '
               '{ printf("%s %s %s %d\\n", comm, comm, comm, nsecs); }')
    storm = [sys.executable, "-c", "import os, ctypes\n"
             "ctypes.CDLL(None).prctl(15, b'stormy', 0, 0, 0)\n"
             "for i in range(1000000): os.getppid()"]
    for fmt, rx in (((), r"^Lost \d+ events$"),
                    (("-f", "json"), r'^\{"type": "lost_events", "data": \{"events": \d+\}\}$')):
        # whether a reader falls behind depends on scheduling: a run in which one of
        # the two kept up shows no notice to compare, so up to three runs are made
        for attempt in range(3):
            (theirs, ours), _ = both(program, work, sigint=True, opts=fmt, workload=storm,
                                     env={"BPFTRACE_PERF_RB_PAGES": "1"})
            if all(re.search(rx, text, re.M) for text in (theirs, ours)):
                break
        # a reader that kept up in all three runs has no notice to show; the one that
        # fell behind must print bpftrace's notice, and neither may print anything else
        lost = [who for who, text in (("bpftrace", theirs), ("pybpf", ours))
                if re.search(rx, text, re.M)]
        assert lost, (theirs[:300], ours[:300])
        for text in (theirs, ours):
            other = [l for l in text.splitlines()
                     if l and "stormy" not in l and not re.match(rx, l)]
            assert len(other) == 1, other[:5]         # the attached-probes line
