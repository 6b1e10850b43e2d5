"""The cache of compiled ``pybpf trace`` programs (pybpf/bpftrace/cache.py), on the real
kernel: a hit prints what the miss printed (and what bpftrace 0.17 prints), the key
changes with the source, the options, the kernel and pybpf, a changed tracepoint
format is a miss, uncacheable programs are not stored, a damaged entry is compiled
again, and a hit imports neither the front half nor the compiler's back end."""

from __future__ import annotations

import io
import marshal
import os
import shutil
import subprocess
import sys
import time

import pytest

from pybpf import _cache as S
from pybpf.bpftrace import cache as C
from pybpf.bpftrace.command import trace_main

from test_bpftrace_run import ROOT, _run, for_this_run, work  # noqa: F401 - fixture

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

#: what a hit must not import (the assembler neither: a cached program is loaded from
#: its stored bytes)
HEAVY = ("pybpf.bpftrace.parser", "pybpf.bpftrace.semantic", "pybpf.bpftrace.lower",
         "pybpf.compiler.backend", "pybpf.asm.encoding")
#: runs trace_main in a process and reports the cache's counters and HEAVY's imports
HELPER = ("import sys\n"
          "from pybpf.bpftrace.command import trace_main\n"
          "from pybpf.bpftrace import cache\n"
          "rc = trace_main(sys.argv[1:])\n"
          f"heavy = sorted(m for m in {HEAVY!r} if m in sys.modules)\n"
          "sys.stderr.write('CACHE %s %s\\n' % (cache.STATS['hits'], ','.join(heavy)))\n"
          "sys.exit(rc)\n")


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    d = str(tmp_path / "cache")
    monkeypatch.setenv("PYBPF_CACHE_DIR", d)
    monkeypatch.delenv("PYBPF_NO_CACHE", raising=False)
    return d


@pytest.fixture
def ticker():
    """A process opening /dev/null every millisecond: its pid."""
    p = subprocess.Popen([sys.executable, "-c",
                          "import os, time\n"
                          "while True:\n"
                          "    os.close(os.open('/dev/null', os.O_RDONLY)); time.sleep(0.001)"])
    time.sleep(0.2)
    yield p.pid
    p.kill()
    p.wait()


def entries(d):
    return sorted(f for f in os.listdir(d) if f.endswith(".pbt")) if os.path.isdir(d) else []


def trace(*argv):
    """(status, stdout, stderr, counter changes) of trace_main(argv) in this process."""
    before = dict(C.STATS)
    out, err = io.StringIO(), io.StringIO()
    rc = trace_main(list(argv), stdout=out, stderr=err)
    delta = {k: v - before[k] for k, v in C.STATS.items() if v != before[k]}
    return rc, out.getvalue(), err.getvalue(), delta


BEGIN_PROG = ('BEGIN { @c[comm] = count(); @h = hist(5); @t = (1, "a"); '
              'printf("hi %d %s\\n", $1, "x"); exit(); } END { print(@h); }')
OPENAT = 'tracepoint:syscalls:sys_enter_openat /pid == $1/ { printf("%s\\n", str(args->filename)); exit(); }'


def test_hit_prints_what_the_miss_printed(cache_dir):
    first = trace("-e", BEGIN_PROG, "5")
    assert first[0] == 0 and first[3] == {"misses": 1, "stores": 1}, first
    assert len(entries(cache_dir)) == 1
    second = trace("-e", BEGIN_PROG, "5")
    assert second[3] == {"hits": 1}
    assert second[:3] == first[:3]
    assert "hi 5 x\n" in second[1] and "@t: (1, a)\n" in second[1]


def test_source_and_options_change_the_key(cache_dir, ticker):
    trace("-e", BEGIN_PROG, "5")
    # another $1: a miss, and its own output (not the stored program's)
    rc, out, _, delta = trace("-e", BEGIN_PROG, "6")
    assert delta == {"misses": 1, "stores": 1} and "hi 6 x\n" in out
    # another source
    rc, out, _, delta = trace("-e", BEGIN_PROG.replace("\"hi ", "\"ho "), "5")
    assert delta == {"misses": 1, "stores": 1} and "ho 5 x\n" in out
    # -p, BPFTRACE_STRLEN, -f json
    assert trace("-p", str(ticker), "-e", BEGIN_PROG, "5")[3] == {"misses": 1, "stores": 1}
    rc, out, _, delta = trace("-f", "json", "-e", BEGIN_PROG, "5")
    assert delta == {"misses": 1, "stores": 1} and '{"type": "printf"' in out
    os.environ["BPFTRACE_STRLEN"] = "32"
    try:
        assert trace("-e", BEGIN_PROG, "5")[3] == {"misses": 1, "stores": 1}
    finally:
        del os.environ["BPFTRACE_STRLEN"]
    assert len(entries(cache_dir)) == 6
    # and each of them hits now
    assert trace("-e", BEGIN_PROG, "6")[3] == {"hits": 1}
    assert trace("-p", str(ticker), "-e", BEGIN_PROG, "5")[3] == {"hits": 1}


def test_kernel_or_pybpf_identity_changes_the_key(cache_dir, monkeypatch):
    trace("-e", BEGIN_PROG, "5")
    assert trace("-e", BEGIN_PROG, "5")[3] == {"hits": 1}
    monkeypatch.setitem(S.MEMO, "kernel", dict(S.kernel_identity(), release="9.9.9-other"))
    assert trace("-e", BEGIN_PROG, "5")[3] == {"misses": 1, "stores": 1}
    key = "pybpf:" + ",".join(C._PARTS)
    S.pybpf_identity(C._PARTS)
    monkeypatch.setitem(S.MEMO, key, "0.0.0:" + "1" * 32)
    assert trace("-e", BEGIN_PROG, "5")[3] == {"misses": 1, "stores": 1}
    assert len(entries(cache_dir)) == 3


def _rewrite(path, change):
    """Apply ``change`` to an entry's document (marshal's), keeping its frame valid."""
    with open(path, "rb") as fh:
        doc, code = S.unframe(fh.read(), C._MAGIC, C.FORMAT)
    d = marshal.loads(doc)
    change(d)
    with open(path, "wb") as fh:
        fh.write(S.frame(C._MAGIC, C.FORMAT, marshal.dumps(d), code))


def test_tracepoint_format_is_a_dependency(cache_dir, ticker):
    first = trace("-e", OPENAT, str(ticker))
    assert first[0] == 0 and first[1].endswith("/dev/null\n\n\n"), first
    (name,) = entries(cache_dir)
    path = os.path.join(cache_dir, name)
    with open(path, "rb") as fh:
        doc = marshal.loads(S.unframe(fh.read(), C._MAGIC, C.FORMAT)[0])
    deps = [p for p, _ in doc["deps"]]
    assert any(p.endswith("events/syscalls/sys_enter_openat/format") for p in deps), deps
    assert trace("-e", OPENAT, str(ticker))[3] == {"hits": 1}

    def stale(d):                        # the format changed since the entry was made
        d["deps"][0][1] = "0" * 64
    _rewrite(path, stale)
    rc, out, _, delta = trace("-e", OPENAT, str(ticker))
    assert delta == {"rejected": 1, "misses": 1, "stores": 1} and out == first[1]
    assert trace("-e", OPENAT, str(ticker))[3] == {"hits": 1}


def test_damaged_entry_is_compiled_again(cache_dir):
    first = trace("-e", BEGIN_PROG, "5")
    (name,) = entries(cache_dir)
    path = os.path.join(cache_dir, name)
    with open(path, "r+b") as fh:
        data = bytearray(fh.read())
        data[len(data) // 2] ^= 0xFF                  # one flipped byte
        fh.seek(0)
        fh.write(data)
    rc, out, err, delta = trace("-e", BEGIN_PROG, "5")
    assert delta == {"rejected": 1, "misses": 1, "stores": 1}
    assert (rc, out) == first[:2]
    with open(path, "r+b") as fh:                     # truncated
        fh.truncate(100)
    assert trace("-e", BEGIN_PROG, "5")[3] == {"rejected": 1, "misses": 1, "stores": 1}

    def foreign(d):                                   # a record class not allowed
        d["sites"][0]["r"] = "Popen"
    _rewrite(path, foreign)
    rc, out, err, delta = trace("-e", BEGIN_PROG, "5")
    assert delta == {"rejected": 1, "misses": 1, "stores": 1} and out == first[1]
    assert trace("-e", BEGIN_PROG, "5")[3] == {"hits": 1}


def test_uncacheable_programs_are_not_stored(cache_dir, ticker):
    wild = 'tracepoint:syscalls:sys_enter_opena* /pid == $1/ { printf("%s\\n", str(args->filename)); exit(); }'
    rc, out, err, delta = trace("-e", wild, str(ticker))
    assert rc == 0 and out.endswith("/dev/null\n\n\n"), err
    assert delta.get("stores") is None and entries(cache_dir) == []
    inc = '#include <linux/types.h>\nBEGIN { printf("inc\\n"); exit(); }'
    rc, out, err, delta = trace("-e", inc)
    assert rc == 0 and "inc\n" in out and entries(cache_dir) == []
    rc, out, err, delta = trace("-e", 'BEGIN { printf("%s\\n", ksym(kaddr("vfs_read"))); exit(); }')
    assert "vfs_read" in out and entries(cache_dir) == []
    # a warning (bpftrace's "Addrspace mismatch": a user string compared with a literal)
    warned = ('tracepoint:syscalls:sys_enter_openat /pid == $1/ { $f = str(args->filename); '
              'if ($f == "/dev/null") { printf("w\\n"); exit(); } }')
    rc, out, err, delta = trace("-e", warned, str(ticker))
    assert rc == 0 and "WARNING: Addrspace mismatch" in err and "w\n" in out
    assert delta.get("uncacheable") == 1 and entries(cache_dir) == []
    os.environ["PYBPF_NO_CACHE"] = "1"
    try:
        assert trace("-e", BEGIN_PROG, "5")[0] == 0 and entries(cache_dir) == []
    finally:
        del os.environ["PYBPF_NO_CACHE"]
    assert trace("-e", BEGIN_PROG, "5")[3] == {"misses": 1, "stores": 1}


def _miss_then_hit(helper: str, tag: str, cache_dir: str, ticker: int):
    """Run ``helper`` on OPENAT twice in fresh processes (a miss, then a hit): the words
    after ``tag`` on each one's last stderr line (padded with "")."""
    env = dict(os.environ, PYTHONPATH=ROOT, PYBPF_CACHE_DIR=cache_dir)
    cmd = [sys.executable, "-c", helper, "-e", OPENAT, str(ticker)]
    runs = [subprocess.run(cmd, capture_output=True, env=env, timeout=60) for _ in range(2)]
    for r in runs:
        assert r.returncode == 0, r.stderr
        assert r.stdout == b"Attaching 1 probe...\n/dev/null\n\n\n"
    return [r.stderr.decode().rsplit(tag + " ", 1)[1].split() + [""] for r in runs]


def test_hit_imports_no_front_half_or_back_end(cache_dir, ticker):
    miss, hit = _miss_then_hit(HELPER, "CACHE", cache_dir, ticker)
    assert miss[0] == "0" and miss[1] == ",".join(sorted(HEAVY))   # the check can fail
    assert hit[0] == "1" and hit[1] == ""


#: what a hit has not imported yet when it prints its first event: the printers of
#: values, maps and JSON, the general printf formatter and the value decoder (a printf
#: site with a fast formatter needs none of them), json (entries are marshal's),
#: shutil (only -c looks up a program), signal.py (the C module does)
LATE = ("json", "shutil", "signal", "pybpf.bpftrace.output", "pybpf.bpftrace.values",
        "pybpf.bpftrace.json_output", "pybpf.bpftrace.printf", "pybpf.bpftrace.decode")
#: runs trace_main in a process and reports which of LATE pybpf had imported at the
#: first line the program printed (not those the interpreter's start imported)
FIRST_LINE = ("import io, sys\n"
              "before = set(sys.modules)\n"
              "from pybpf.bpftrace.command import trace_main\n"
              "seen = []\n"
              "class Out(io.StringIO):\n"
              "    def write(self, s):\n"
              "        if '/dev/null' in s and not seen:\n"
              f"            seen.append(sorted(m for m in {LATE!r}\n"
              "                               if m in sys.modules and m not in before))\n"
              "        return super().write(s)\n"
              "out = Out()\n"
              "rc = trace_main(sys.argv[1:], stdout=out)\n"
              "sys.stdout.write(out.getvalue())\n"
              "sys.stderr.write('LATE %s %s\\n' % (len(seen), ','.join(seen[0] if seen else [])))\n"
              "sys.exit(rc)\n")


def test_hit_prints_its_first_event_before_importing_the_printers(cache_dir, ticker):
    miss, hit = _miss_then_hit(FIRST_LINE, "LATE", cache_dir, ticker)
    assert miss[0] == "1" and "json" in miss[1].split(",")       # the check can fail
    assert hit[0] == "1" and hit[1] == ""


@pytest.mark.skipif(shutil.which("bpftrace") is None, reason="needs bpftrace 0.17")
def test_hit_matches_bpftrace(work, cache_dir):  # noqa: F811 - the fixture
    program = for_this_run(
        'tracepoint:syscalls:sys_enter_openat /comm == "btwork"/ { '
        'printf("%s %d\\n", str(args->filename), args->flags); '
        '@opens = count(); } '
        'tracepoint:syscalls:sys_exit_read /comm == "btwork"/ { @bytes = hist(args->ret); '
        '@total = sum(args->ret); } '
        'tracepoint:sched:sched_process_exit /comm == "btwork"/ { exit(); }')
    path = os.path.join(work["DIR"], "cached.bt")
    with open(path, "w") as fh:
        fh.write(program)
    wl = [work["BIN"], work["DATA"]]
    theirs, _, trc = _run(["bpftrace", path], wl, False, dict(os.environ))
    env = dict(os.environ, PYTHONPATH=ROOT, PYBPF_CACHE_DIR=cache_dir)
    outs = []
    for _ in range(2):
        out, err, rc = _run([sys.executable, "-c", HELPER, path], wl, False, env)
        assert rc == trc == 0, err[-2000:]
        outs.append((out, err.decode().rsplit("CACHE ", 1)[1].split()[0]))
    assert [o[1] for o in outs] == ["0", "1"]          # a miss, then a hit
    assert outs[0][0] == outs[1][0] == theirs
    assert b"@bytes:" in theirs


def test_entry_that_fails_to_load_is_dropped(cache_dir):
    first = trace("-e", BEGIN_PROG, "5")
    (name,) = entries(cache_dir)
    path = os.path.join(cache_dir, name)
    with open(path, "rb") as fh:
        doc, code = S.unframe(fh.read(), C._MAGIC, C.FORMAT)
    # the first instruction becomes `exit` with r0 unset: the verifier refuses it
    code = b"\x95" + bytes(7) + code[8:]
    with open(path, "wb") as fh:
        fh.write(S.frame(C._MAGIC, C.FORMAT, doc, code))
    rc, out, err, delta = trace("-e", BEGIN_PROG, "5")
    assert delta == {"hits": 1} and rc == 1 and "ERROR" in err
    assert entries(cache_dir) == []                    # dropped: the next run compiles
    assert trace("-e", BEGIN_PROG, "5")[:2] == first[:2]
    assert trace("-e", BEGIN_PROG, "5")[3] == {"hits": 1}
