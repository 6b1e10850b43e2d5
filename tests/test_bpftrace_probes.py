"""The probe layer of the bpftrace front end (``pybpf.bpftrace.probes``,
``probe_match``, ``listing``) against the installed bpftrace 0.17, the oracle:

* ``-l``/``-lv`` listings, stdout line for line and the warnings on stderr, for
  patterns across providers (tracepoints, uprobes and USDT of a gcc-built binary with
  ``sys/sdt.h`` probes and DWARF, bash, libc by short name, software, hardware,
  iterators, bare searches, kprobes and kfuncs as this machine refuses them);
* a corpus of bad attach points: the same ``stdin:L:C-C: ERROR: ...`` blocks;
* a corpus of good attach points: what bpftrace's ``-d`` AST dump shows after its
  parser and after its semantic analysis, against :meth:`AttachPoint.name`;
* wildcard expansion for attaching against ``-l`` of the same spec.

bpftrace runs only with ``-l`` or ``-d`` (nothing is attached). Skipped, naming it,
without bpftrace or root.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from typing import List, Tuple

import pytest

from pybpf.bpftrace.errors import BpftraceError
from pybpf.bpftrace.listing import list_probes
from pybpf.bpftrace.parser import parse
from pybpf.bpftrace.probe_match import (ExpansionError, expand_attach_point,
                                        match_lines, wildcard_match, wildcard_tokens)
from pybpf.bpftrace.probes import (AttachPoint, AttachPointError, ProbeEnv,
                                   check_attach_points, parse_attach_points, to_uint)

BPFTRACE = shutil.which("bpftrace")
needs_oracle = pytest.mark.skipif(
    BPFTRACE is None or os.geteuid() != 0,
    reason="needs bpftrace 0.17 (apt-get install bpftrace) and root")
_NOISE = ("couldn't set RLIMIT_MEMLOCK",)
_PREFIX = "Error while reading traceable functions from "

C_SOURCE = r"""
#include <sys/sdt.h>
struct point { int x, y; };
union u { int a; long b; };
enum color { RED, GREEN };
typedef unsigned long ulong_t;
__attribute__((noinline)) int abab(int a) { return a + 1; }
__attribute__((noinline)) int ab(int a) { return a + 2; }
__attribute__((noinline)) long worker_add(long a, const char *s, struct point *p,
    union u v, enum color c, ulong_t n, void *vp, const void *cvp, char *const cp,
    char **pp) {
  DTRACE_PROBE2(pybpf_test, start, a, n);
  DTRACE_PROBE(pybpf_test, tick);
  DTRACE_PROBE(other_ns, tick);
  return a + (long)n + (s ? s[0] : 0) + (p ? p->x : 0) + v.a + c + (vp != 0)
         + (cvp != 0) + (cp != 0) + (pp != 0);
}
__attribute__((noinline)) void worker_void(void) { DTRACE_PROBE1(pybpf_test, done, 1); }
int main(int argc, char **argv) {
  struct point p = {1, 2}; union u v = {3};
  long r = worker_add(argc, argv[0], &p, v, GREEN, 5, 0, 0, 0, argv);
  worker_void(); abab(1); ab(2);
  return (int)(r & 1);
}
"""


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A gcc-built binary with DWARF and USDT probes in two providers."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    d = tmp_path_factory.mktemp("btprobe")
    src, exe = d / "t.c", d / "tprobes"
    src.write_text(C_SOURCE)
    res = subprocess.run(["gcc", "-g", "-O1", "-o", str(exe), str(src)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot build the USDT target (systemtap-sdt-dev?): {res.stderr}")
    return str(exe)


def bpftrace(*args: str) -> Tuple[List[str], List[str], int]:
    """(stdout lines, stderr lines without this machine's start-up noise, status)."""
    assert BPFTRACE is not None
    res = subprocess.run([BPFTRACE, *args], capture_output=True, text=True, timeout=120)
    text = re.sub(_PREFIX + r"\S+: [A-Za-z ]*?(?=ERROR|WARNING|stdin|FATAL|$)", "",
                  res.stderr)
    err = [ln for ln in text.splitlines() if not any(n in ln for n in _NOISE)]
    # an abort is -6 here and 134 in a shell
    return res.stdout.splitlines(), err, 134 if res.returncode == -6 else res.returncode


# ---------------------------------------------------------------------------------------
# without the oracle: the matcher's and the number parser's rules
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("text,pattern,expected", [
    ("abab", "*ab", False),            # first occurrence, no backtracking
    ("ab", "*ab", True), ("xaby", "*ab*", True), ("vfs_read", "vfs_*", True),
    ("vfs_read", "*read", True), ("vfs_read", "vfs_read", True),
    ("vfs_read", "vfs_rea", False), ("a[b]c", "a[b]*", True), ("abc", "a[b]c", False),
    ("syscalls:sys_enter_read", "*:*read", True), ("anything", "*", True),
])
def test_wildcard_match_is_bpftraces(text: str, pattern: str, expected: bool) -> None:
    tokens, start, end = wildcard_tokens(pattern)
    assert wildcard_match(text, tokens, start, end) is expected


def test_match_lines_sorted_unique_without_part_variants() -> None:
    lines = ["b_fn [mod]", "a_fn", "a_fn", "c_fn.part.0", "d"]
    assert match_lines("*_fn", lines, strip_module=True) == ["a_fn", "b_fn"]


@pytest.mark.parametrize("text,value", [
    ("99", 99), ("0x10", 16), ("010", 8), ("1_000", 1000), ("1e3", 1000), ("5ul", 5),
    ("-1", (1 << 64) - 1), ("0", 0),
])
def test_to_uint_accepts(text: str, value: int) -> None:
    assert to_uint(text) == value


@pytest.mark.parametrize("text,message", [
    ("abc", "stoull"), ("1x", "Found trailing non-numeric characters"),
    ("99999999999999999999", "stoull"),
    ("12e3", "Coefficient part of scientific literal must be in range (0,9), got: 12"),
    ("1e17", "Exponent will overflow integer range: 17"),
])
def test_to_uint_refuses_with_bpftraces_message(text: str, message: str) -> None:
    with pytest.raises(AttachPointError) as info:
        to_uint(text)
    assert str(info.value) == message


def test_positional_parameters_in_attach_points() -> None:
    prog = parse('uprobe:$1:$2, tracepoint:"sched":$3 { }')
    env = ProbeEnv(params=["/bin/bash", "readline", "sched_switch"])
    aps = parse_attach_points(prog, env)[0]
    assert [a.name() for a in aps] == ["uprobe:/bin/bash:readline",
                                       "tracepoint:sched:sched_switch"]


def test_rawtracepoint_is_an_extension() -> None:
    prog = parse("rawtracepoint:sched_switch, rt:sys_enter { }")
    with pytest.raises(BpftraceError) as info:
        parse_attach_points(prog, ProbeEnv())
    assert str(info.value) == "FATAL: Invalid probe type made it to attachpoint parser"
    aps = parse_attach_points(prog, ProbeEnv(extensions=True))[0]
    assert [(a.provider, a.func) for a in aps] == [("rawtracepoint", "sched_switch"),
                                                   ("rawtracepoint", "sys_enter")]
    assert check_attach_points([aps], ProbeEnv(extensions=True)) == []


def test_attach_point_fields() -> None:
    prog = parse("k:f+0x10, profile:hz:99, s:cs:10, w:0x1000:4:rw, U:/x:ns:p, "
                 "it:task:/sys/fs/bpf/p { }")
    aps = parse_attach_points(prog, ProbeEnv())[0]
    k, p, s, w, u, it = aps
    assert (k.provider, k.func, k.func_offset) == ("kprobe", "f", 16)
    assert (p.provider, p.target, p.freq) == ("profile", "hz", 99)
    assert (s.provider, s.target, s.freq) == ("software", "cs", 10)
    assert (w.address, w.len, w.mode) == (0x1000, 4, "rw")
    assert (u.target, u.ns, u.func) == ("/x", "ns", "p")
    assert (it.func, it.pin) == ("task", "/sys/fs/bpf/p")
    assert isinstance(k, AttachPoint) and k.loc.col == 1


# ---------------------------------------------------------------------------------------
# listings against bpftrace -l / -lv
# ---------------------------------------------------------------------------------------

LISTINGS = [
    "tracepoint:syscalls:*open*", "t:sched:sched_sw*", "tracepoint:*:*kcompactd*",
    "t:syscalls:sys_enter_read,t:syscalls:sys_exit_read", "*sleep*", "*:sys_enter_read",
    "software:*", "hardware:*", "s:*", "h:cyc*", "software:cpu*,hardware:cpu*",
    "uprobe:/bin/bash:read*", "uprobe:/bin/bash:*readline*", "u*:/bin/bash:readline",
    "uprobe:libc:mallo*", "uprobe:bash:read*", "uprobe:/bin/bash:0x10", "BEGIN", "END",
    "BEGIN:*", "profile:hz:99", "interval:s:1", "iter:*", "iter:foo",
    "kprobe:vfs_read*", "kr:vfs_read", "t:syscalls:sys_enter_read,*:sys_enter_read,k:x",
    " t:sched:sched_switch", 'tracepoint:"sched":sched_switch', "tracepoint:nosuch:*",
]
TARGET_LISTINGS = [
    "uprobe:{t}:*", "uprobe:{t}:*ab", "uprobe:{t}:worker*", "usdt:{t}:*",
    "usdt:{t}:pybpf_test:*", "usdt:{t}:*:tick", "U:{t}:other_ns:tick",
    "usdt:{d}/tprob*:*", "uprobe:{d}/tpro*:ma*",
]
VERBOSE = [
    "tracepoint:syscalls:sys_enter_openat", "t:sched:sched_switch",
    "tracepoint:syscalls:sys_*_execve", "iter:*", "uprobe:/bin/bash:readline",
]
TARGET_VERBOSE = ["uprobe:{t}:worker*", "uprobe:{t}:main", "uprobe:{t}:*"]


def _ours(search: str, verbose: bool) -> Tuple[List[str], List[str], int]:
    try:
        res = list_probes(search, verbose)
    except BpftraceError as err:
        return [], str(err).split("\n"), 134 if getattr(err, "fatal", False) else 1
    return res.lines, "\n".join(res.messages).split("\n") if res.messages else [], 0


def _compare(search: str, verbose: bool) -> None:
    out, err, status = bpftrace("-lv" if verbose else "-l", search)
    assert _ours(search, verbose) == (out, err, status)


@needs_oracle
@pytest.mark.parametrize("search", LISTINGS)
def test_listing_as_bpftrace(search: str) -> None:
    _compare(search, False)


@needs_oracle
@pytest.mark.parametrize("search", TARGET_LISTINGS)
def test_listing_of_a_built_target_as_bpftrace(search: str, target: str) -> None:
    _compare(search.format(t=target, d=os.path.dirname(target)), False)


@needs_oracle
@pytest.mark.parametrize("search", VERBOSE)
def test_verbose_listing_as_bpftrace(search: str) -> None:
    _compare(search, True)


@needs_oracle
@pytest.mark.parametrize("search", TARGET_VERBOSE)
def test_verbose_dwarf_listing_as_bpftrace(search: str, target: str) -> None:
    _compare(search.format(t=target), True)


def test_verbose_uprobe_listing_closes_its_files(target: str) -> None:
    """-lv reads the target's DWARF from an open file: it must be closed when the
    listing returns, not later by the cyclic garbage collector."""
    import gc

    def fds() -> List[str]:
        return sorted(os.listdir("/proc/self/fd"))

    gc.collect()
    gc.disable()
    try:
        before = fds()
        res = list_probes(f"uprobe:{target}:worker*", True)
        after = fds()
    finally:
        gc.enable()
    assert any("worker" in line for line in res.lines)
    assert after == before


@needs_oracle
@pytest.mark.parametrize("search", [
    "kprobe:f { }", "kprobe:f /1/ { }", "$1", "i:*", "p:*", "w:*", "usdt:*", "uprobe:*",
    "usdt:/bin/bash", "BEGIN:x", "uprobe:/nonexist:foo", "uprobe:libnope:foo",
    "iter:task", "iter:task_file", "kretfunc:vfs_read", "kfunc:vmlinux:vfs_read",
    "foo:bar", "foo", "tracepoint:a",
])
def test_listing_errors_as_bpftrace(search: str) -> None:
    _compare(search, False)


def test_kfunc_wildcard_without_function_list() -> None:
    """0.17 dies of an uncaught exception here (status 134, the message after
    ``what():``); we raise the same message as an ExpansionError."""
    if ProbeEnv().has_kfunc():
        pytest.skip("kfuncs load here")
    try:
        open("/sys/kernel/tracing/available_filter_functions").close()
        pytest.skip("available_filter_functions is readable here")
    except PermissionError:
        pass
    with pytest.raises(ExpansionError) as info:
        list_probes("kfunc:*vfs_read*")
    if BPFTRACE is not None and os.geteuid() == 0:
        _out, err, status = bpftrace("-l", "kfunc:*vfs_read*")
        assert status == 134
        assert err[-1] == "  what():  " + str(info.value)


# ---------------------------------------------------------------------------------------
# programs: bad attach points and good ones, against bpftrace -d
# ---------------------------------------------------------------------------------------

BAD = [
    "foo:bar { }", "profile:xx:99 {}", "software:nope {}", "profile:hz {}",
    "interval:99 {}", "profile:hz:abc {}", "tracepoint:a {}", "tracepoint:a:b:c {}",
    "iter:foo {}", "iter:task {}", "usdt:/bin/bash:a:b:c {}", "BEGIN:x {}",
    "BEGIN{}\n BEGIN:x, END:y {}", "BEGIN{} $1 {}",
    "BEGIN, software:nope:1x, profile:ms:1:2, hardware:x:10, software:cpu:y {}",
    "kprobe:a:b {}", "kretprobe:f+1 {}", "kprobe:f+1+2 {}", "kprobe:f+ {}",
    "kprobe:f+x {}", "uretprobe:/bin/bash:f+4 {}", "uprobe:/bin/bash {}",
    "uprobe:/bin/bash:f+1+2 {}", "uprobe:/bin/ba*:0x10 {}", "hardware:nope {}",
    "hardware:* {}", "software:cpu* {}", "software {}", "s:cs:1:2 {}", "p:s:0 {}",
    "profile:ms:1e20 {}", "interval:xs:1 {}", "interval:s:x {}", "w:0:8:w {}",
    "w:0x1000:3:w {}", "w:0x1000:8:q {}", "w:0x1000:8:rr {}", "w:0x1000:8:r {}",
    "w:0x1000:8 {}", "w:f+arg1:8:w {}", "w:f+x:8:w {}", "w:f+1+2:8:w {}",
    "aw:0x1000:8:w {}", "kfunc:vfs_read {}", "fr:vmlinux:vfs_read {}",
    "kfunc:a:b:c {}", "it:task:a:b {}", "it:task* {}", "uprobe:/nonexist:f {}",
    "usdt:/nonexist:p {}", "BEGIN {}\nBEGIN {}", "END {} END {}",
    "t:sched:sched_switch, profile:hz:0 {}", "*:foo:bar {}", "[k]probe:f {}",
    "k*:/x:f {}", "u:$1:f {}", "u:/bin/bash:$1x {}", "uprobe:/bin/bash:\"a:b\"+0x {}",
]


def _our_errors(prog: str, env: ProbeEnv) -> List[str]:
    try:
        aps = parse_attach_points(parse(prog), env, prog)
        check_attach_points(aps, env, prog)
    except BpftraceError as err:
        return str(err).split("\n")
    return []


@needs_oracle
@pytest.mark.parametrize("prog", BAD)
def test_bad_attach_points_as_bpftrace(prog: str) -> None:
    _out, err, status = bpftrace("-d", "-e", prog)
    assert status != 0
    assert _our_errors(prog, ProbeEnv()) == err


GOOD = (
    "BEGIN, END, kprobe:vfs_read, kr:vfs_read, k:do_sys_open+0x10, kprobe:vfs_*, "
    "uprobe:/bin/bash:readline, ur:/bin/bash:readline, u:/bin/bash:readline+4, "
    "uprobe:/bin/bash:0x1234, uprobe:libc:malloc, uprobe:bash:readline, "
    "usdt:{t}:pybpf_test:start, U:{t}:tick, usdt:{t}:*:tick, "
    "tracepoint:syscalls:sys_enter_read, t:sched:sched_sw*, t:*openat, "
    "profile:hz:99, p:s:1, p:ms:10, profile:us:1_000, interval:s:1, i:ms:100, "
    "i:hz:2, interval:us:1e3, software:cpu-clock:1000, s:cs, s:faults:1000, "
    "s:page-faults, hardware:cycles:1000000, h:branches, h:cache-misses, "
    "watchpoint:0x10000000:8:w, w:0x1000:4:rw, w:0x1000:2:wr, "
    "uprobe:\"/bin/bash\":\"readline\", software:*:* { }"
)


def _dump(text: str, stage: str) -> List[str]:
    lines = text.split("\n")
    start = lines.index(f"AST after: {stage}") + 3
    out = []
    for line in lines[start:]:
        if not line.startswith(" ") or line.startswith("  "):
            break
        out.append(line[1:])
    return out


@needs_oracle
def test_good_attach_points_as_bpftrace_resolves_them(target: str) -> None:
    prog = GOOD.replace("{t}", target).replace("software:*:* ", "")
    assert BPFTRACE is not None
    res = subprocess.run([BPFTRACE, "-d", "-e", prog], capture_output=True, text=True,
                         timeout=120)
    env = ProbeEnv()
    aps = parse_attach_points(parse(prog), env, prog)
    assert [a.name() for a in aps[0]] == _dump(res.stdout, "parser")
    check_attach_points(aps, env, prog)
    assert [a.name() for a in aps[0]] == _dump(res.stdout, "Semantic")
    assert len(aps[0]) == 37


# ---------------------------------------------------------------------------------------
# expansion for attaching, against -l of the same spec
# ---------------------------------------------------------------------------------------

@needs_oracle
@pytest.mark.parametrize("spec", [
    "tracepoint:syscalls:sys_enter_open*", "t:sched:sched_wak*", "uprobe:{t}:worker*",
    "usdt:{t}:*:tick", "usdt:{t}:pybpf_test:*", "uprobe:/bin/bash:*readline*",
])
def test_expansion_names_as_bpftrace_lists_them(spec: str, target: str) -> None:
    spec = spec.format(t=target)
    env = ProbeEnv()
    aps = parse_attach_points(parse(spec + " { }"), env)
    check_attach_points(aps, env)
    names = [c.name() for c in expand_attach_point(aps[0][0], env)]
    out, _err, _ = bpftrace("-l", spec)
    assert names and names == out


def test_usdt_without_namespace_matching_two_is_refused(target: str) -> None:
    env = ProbeEnv()
    aps = parse_attach_points(parse(f"usdt:{target}:tick {{ }}"), env)
    with pytest.raises(ExpansionError) as info:
        expand_attach_point(aps[0][0], env)
    assert str(info.value) == (f"namespace for usdt:{target}:tick not specified, "
                               "matched 2 probes")
    aps = parse_attach_points(parse(f"usdt:{target}:start {{ }}"), env)
    [one] = expand_attach_point(aps[0][0], env)
    assert (one.ns, one.func) == ("pybpf_test", "start")


@pytest.mark.skipif(shutil.which("gcc") is None, reason="no gcc")
def test_uprobe_without_wildcard_follows_a_rebuilt_library(tmp_path) -> None:
    """A uprobe named without wildcard expands to itself when the library defines the
    function and to nothing when it does not; the answers kept for speed (symbol
    lookups, function names per file) follow the library when it is rebuilt in place.
    bpftrace -l of the same spec is the oracle when installed."""
    lib = tmp_path / "libpybpfexp.so"

    def build(*names: str) -> None:
        src = tmp_path / "lib.c"
        src.write_text("".join(f"int {n}(int x) {{ return x + {i}; }}\n"
                               for i, n in enumerate(names)))
        out = tmp_path / "new.so"
        subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(out), str(src)], check=True)
        os.replace(out, lib)

    def expand(func: str) -> List[str]:
        env = ProbeEnv()
        aps = parse_attach_points(parse(f"uprobe:{lib}:{func} {{ }}"), env)
        return [c.name() for c in expand_attach_point(aps[0][0], env)]

    build("pybpf_exp_a")
    assert expand("pybpf_exp_a") == [f"uprobe:{lib}:pybpf_exp_a"]
    assert expand("pybpf_exp_b") == []
    build("pybpf_exp_a", "pybpf_exp_b")
    assert expand("pybpf_exp_b") == [f"uprobe:{lib}:pybpf_exp_b"]
    build("pybpf_exp_b")
    assert expand("pybpf_exp_a") == []
    if BPFTRACE is not None:
        for func in ("pybpf_exp_a", "pybpf_exp_b"):
            out, _err, _ = bpftrace("-l", f"uprobe:{lib}:{func}")
            assert out == expand(func), func
