"""``pybpf trace`` (and the ``bpftrace`` drop-in: ``python3 -m pybpf.bpftrace``,
``pybpf-bpftrace``) against the installed bpftrace 0.17, the oracle, for everything
that runs no program: usage errors and exit statuses, ``-l``/``-lv``, program errors
through ``-e``, FILE and ``-``, positional parameters, environment variables, ``-d``,
``--info``'s shape and ``-h``'s. Then the command line read into ``TraceOptions``
(no oracle needed), the wrappers, and the runs that pass once ``session.run`` exists
(the same output as bpftrace).

Compared: exit status, stdout, and stderr after removing what bpftrace prints about
this machine rather than the command (its RLIMIT_MEMLOCK complaint, unreadable
``available_filter_functions``) and replacing the usage text (ours is in pybpf's
words) with a marker. Differences kept on purpose are tested separately (documented in
docs/trace.md): the version line, a ``-p`` pid without a process, a bad ``BPFTRACE_BTF``
(bpftrace crashes), ``-c`` with a program found twice on a merged-/usr PATH.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import pytest

from pybpf.bpftrace import session
from pybpf.bpftrace.command import trace_main, version_line
from pybpf.bpftrace.options import (
    CommandLineError, GetoptError, LONG_OPTIONS, SHORT_OPTIONS, getopt_long,
    parse_command_line, parse_u64,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BPFTRACE = shutil.which("bpftrace")
needs_oracle = pytest.mark.skipif(
    BPFTRACE is None or os.geteuid() != 0,
    reason="needs root and bpftrace 0.17 (apt-get install bpftrace)")


_NOISE = re.compile(
    r"ERROR: Unknown error -1: couldn't set RLIMIT_MEMLOCK[^\n]*\n?"
    r"|Error while reading traceable functions from [^\n]*?Operation not permitted"
    r"|WARNING: Could not read symbols from [^\n]*\n?")
_USAGE = re.compile(r"^USAGE:\n.*", re.S | re.M)

Result = Tuple[int, str, str]


def _env(extra: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("BPFTRACE_", "__BPFTRACE_")) and k != "POSIXLY_CORRECT"}
    env.update(extra or {})
    return env


def _norm(err: str) -> str:
    return _USAGE.sub("<USAGE>", _NOISE.sub("", err))


def oracle(args: Sequence[str], env: Optional[Mapping[str, str]] = None,
           stdin: str = "") -> Result:
    assert BPFTRACE is not None
    # argv[0] "bpftrace", as a shell calls it (glibc's messages start with it)
    res = subprocess.run(["bpftrace", *args], executable=BPFTRACE, input=stdin,
                         capture_output=True, text=True, timeout=120, env=_env(env),
                         cwd=ROOT)
    return res.returncode, res.stdout, _norm(res.stderr)


def ours(args: Sequence[str], env: Optional[Mapping[str, str]] = None,
         stdin: str = "") -> Result:
    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        status = trace_main(list(args), stdout=out, stderr=err, stdin=io.StringIO(stdin),
                            environ=_env(env))
    finally:
        os.chdir(cwd)
    return status, out.getvalue(), _norm(err.getvalue())


def _dry(out: str) -> str:
    """bpftrace -d's (-dd's) stdout up to its LLVM IR (pybpf prints its disassembly
    there instead)."""
    return re.split(r"^(?:; ModuleID|Before optimization\n|Disassembly\n)", out, 1,
                    re.M)[0]


#: a program file with a type error on its second line (relative to the checkout)
BAD = "tests/data/trace_bad.bt"


# ---------------------------------------------------------------------------------------
# bad command lines: the same message, usage text and exit status as bpftrace
# ---------------------------------------------------------------------------------------

SYN = "BEGIN{"                       # a syntax error: valid command lines stop there
USAGE_CASES: List[List[str]] = [
    [], ["-x"], ["--bogus"], ["--bogus=1"], ["-e"], ["--include"], ["--emit-elf"],
    ["-o"], ["-p"], ["-c"], ["-B"], ["-f"], ["-I"], ["--u"], ["--i"], ["--e", "x"],
    ["--emit", "-e", "x"], ["--info=x"], ["--in=x", "-e", SYN], ["--t"],
    ["--test", "foo", "-e", "x"], ["--help=1"], ["-kkk"], ["-k", "-k", "-k"],
    ["-ddd", "-e", SYN], ["-d", "-d", "-d"], ["-B", "foo"], ["-Bfoo"], ["-B", "line", "-e", SYN],
    ["-Bnone", "-e", SYN], ["-B", "full", "-e", SYN], ["-f", "xml", "-e", "x"],
    ["-f", "", "-e", SYN], ["-f", "json", "-e", SYN], ["-v", "-d", "-e", "x"],
    ["-dv", "-e", "x"], ["-e", SYN, "-d", "-v"], ["-c", "x", "-p", "1", "-e", "x"],
    ["-f", "xml", "-c", "x", "-p", "1"], ["-c", "x", "-p", "1", "-v", "-d"],
    ["-l", "a", "b"], ["-l", "*", "b"], ["/nonexistent/prog.bt"], ["-q"], ["-v"],
    ["-o", "/nonexistent/dir/out", "-e", "x"],
    ["-f", "xml", "-o", "/nonexistent/dir/out", "-e", "x"],
    ["-p", "abc", "-e", "x"], ["-p", "-5", "-e", "x"], ["-p", "0", "-e", "x"],
    ["-p", "-0", "-e", "x"], ["-p", "1x", "-e", "x"], ["-p", "1 ", "-e", "x"],
    ["-p", "0x10", "-e", "x"], ["-p", " ", "-e", "x"], ["-p", "4194305", "-e", "x"],
    ["-p", "3000000000", "-e", "x"], ["-p", "99999999999999999999", "-e", "x"],
    ["-p", " 1", "-e", SYN], ["-p", "+1", "-e", SYN], ["-p", "00001", "-e", SYN],
    ["-p", "1", "-e", SYN], ["-p", "", "-e", SYN], ["-p", "abc", "/nonexistent"],
    ["-p", "abc", "-l"], ["-c", "/nonexistent/cmd", "-e", SYN],
    ["-c", "nosuchcommand_pybpf", "-e", SYN], ["-c", "nosuchcommand_pybpf", "-l"],
    ["-c", "", "-e", SYN], ["-e", ""], ["-e", "", BAD], ["-e", SYN, "-5"],
    ["-e", SYN, "--", "-5"], ["--", "-e", "x"], [BAD, "-d"], [BAD, "--", "-d"],
    ["-e", "BEGIN{}", "-d", "-e", SYN], ["-q", "-e", SYN], ["--no-warnings", "-e", SYN],
    ["--unsafe", "-e", SYN], ["--usdt-file-activation", "-e", SYN], ["--btf", "-e", SYN],
    ["-b", "-e", SYN], ["--include=", "-e", SYN], ["-I", "/nonexistent", "-e", SYN],
    ["-k", "-e", SYN], ["-kk", "-e", SYN], ["-kd", "-e", SYN], ["-x", "--info"],
    ["-x", "-V"], ["-Vx"], ["-V", "-x"], ["-hx"], ["-h"], ["--help"], ["--h"],
    ["-e", SYN, "-h"], ["-x", "-h"], ["--test", "semantic", "-e", SYN],
    ["--unsafe=1"], ["--emit-elf=x", "-e", SYN], ["-o", "", "-e", SYN],
]


@needs_oracle
@pytest.mark.parametrize("args", USAGE_CASES, ids=lambda a: " ".join(a) or "<none>")
def test_command_line_like_bpftrace(args: List[str]) -> None:
    want = oracle(args)
    if args[:1] in (["-Vx"], ["-V"]):
        assert want[1].startswith("bpftrace v0.17.0")
        want = (want[0], version_line() + "\n", want[2])
    assert ours(args) == want


@needs_oracle
def test_version_line_keeps_bpftrace_shape() -> None:
    status, out, _ = oracle(["--version"])
    assert status == 0
    mine = ours(["--version"])
    assert mine[0] == 0 and mine[1].startswith(out.rstrip("\n") + " (pybpf ")
    assert re.match(r"bpftrace v(\d+)\.(\d+)\.(\d+)", mine[1])
    assert ours(["-V"]) == ours(["--vers"]) == mine


@needs_oracle
def test_output_file_created_before_program_errors(tmp_path) -> None:
    for runner, name in ((oracle, "theirs"), (ours, "mine")):
        path = tmp_path / name
        path.write_text("old")
        assert runner(["-o", str(path), "-e", SYN])[0] == 1
        assert path.read_text() == ""


def test_pid_without_process_names_it() -> None:
    # bpftrace 0.17 says "ERROR: : No such process"
    status, _, err = ours(["-p", "4194304", "-e", SYN])
    assert status == 1 and err == "ERROR: pid 4194304: No such process (-p needs a " \
                                  "running process)\n"


def test_command_found_on_path_once() -> None:
    # bpftrace 0.17 refuses 'true' on a merged-/usr system (found twice on PATH)
    status, _, err = ours(["-c", "true", "-e", SYN])
    assert status == 1 and "syntax error" in err


# ---------------------------------------------------------------------------------------
# environment variables
# ---------------------------------------------------------------------------------------

ENV_CASES: List[Tuple[str, str]] = [
    (var, val)
    for var in ("BPFTRACE_STRLEN", "BPFTRACE_MAP_KEYS_MAX", "BPFTRACE_MAX_PROBES",
                "BPFTRACE_PERF_RB_PAGES", "BPFTRACE_CAT_BYTES_MAX",
                "BPFTRACE_MAX_BPF_PROGS", "BPFTRACE_LOG_SIZE", "BPFTRACE_NODE_MAX")
    for val in ("abc", "", "  ", "12x", "0", " 5", "+5", "0x10", "5 6", "-0", "--1",
                "99999999999999999999", "18446744073709551616", "\t7")
] + [("BPFTRACE_STRLEN", v) for v in ("200", "201", "-1", "18446744073709551615",
                                      "-18446744073709551615", "64")] + [
    (var, val)
    for var in ("BPFTRACE_NO_CPP_DEMANGLE", "BPFTRACE_NO_USER_SYMBOLS",
                "BPFTRACE_CACHE_USER_SYMBOLS")
    for val in ("0", "1", "2", "", "yes", " 1")
] + [("BPFTRACE_VMLINUX", "/nonexistent"), ("BPFTRACE_BTF", "/sys/kernel/btf/vmlinux"),
     ("__BPFTRACE_NOTIFY_PROBES_ATTACHED", "1")]


@needs_oracle
@pytest.mark.parametrize("var,value", ENV_CASES, ids=lambda v: repr(v))
def test_environment_like_bpftrace(var: str, value: str) -> None:
    assert ours(["-e", SYN], {var: value}) == oracle(["-e", SYN], {var: value})


@needs_oracle
def test_environment_checked_after_format_before_pid() -> None:
    env = {"BPFTRACE_STRLEN": "300"}
    for args in (["-f", "xml", "-e", "x"], ["-p", "abc", "-e", "x"],
                 ["-l", "tracepoint:sched:sched_switch"],
                 ["-o", "/nonexistent/dir/x", "-e", "x"]):
        assert ours(args, env) == oracle(args, env)


@pytest.mark.parametrize("value", ["/nonexistent", "", "/etc/passwd"])
def test_bad_btf_file_is_an_error(value: str) -> None:
    # bpftrace 0.17 dies of SIGSEGV on these
    status, out, err = ours(["-e", SYN], {"BPFTRACE_BTF": value})
    assert status == 1 and out == ""
    assert err.startswith("ERROR: BPFTRACE_BTF: ") and err.count("\n") == 1


# ---------------------------------------------------------------------------------------
# program errors: -e, FILE, stdin, positional parameters
# ---------------------------------------------------------------------------------------

PROGRAM_ERRORS = [
    "x", "BEGIN", "BEGIN{", "BEGIN { @x = ; }", "BEGIN { $x; }", "BEGIN { @x = 1 + \"a\"; }",
    "BEGIN { printf(1); }", "BEGIN { nosuchfunc(); }", "BEGIN { @x = count(1); }",
    "BEGIN { exit(1, 2); }", "tracepoint:nomatch:* { }", "tracepoint:sched:nosuch { }",
    "BEGIN { system(\"ls\"); }", "BEGIN { @x = lhist(1, 10, 0, 1); }",
    "BEGIN { $a = 1; $a = \"s\"; }", "interval:s:abc { }", "BEGIN { @x[1] = 1; @x = 2; }",
    "tracepoint:sched:sched_switch { args->nosuch; }", "BEGIN { \"abc\" \"x\"; }",
    "BEGIN { @ = 1 }\nEND { $y = @z; }", "uprobe:/nonexistent/bin:main { }",
    "BEGIN { printf(\"%d %d\\n\", 1); }", "BEGIN { @x = kstack(-1); }",
    "BEGIN { $x = 1 }\n\n BEGIN { $x; }",
    "tracepoint:syscall:sys_enter_openat { }",          # error, then a warning
    "BEGIN { exit(); @a = 1; $y; }",                    # warning, then the error
    "BEGIN { if (-1 < (uint32)2) { $y; } }",
]


@needs_oracle
@pytest.mark.parametrize("prog", PROGRAM_ERRORS)
def test_program_error_through_e(prog: str) -> None:
    assert ours(["-e", prog]) == oracle(["-e", prog])


@needs_oracle
@pytest.mark.parametrize("prog", PROGRAM_ERRORS[:12])
def test_program_error_through_stdin(prog: str) -> None:
    assert ours(["-"], stdin=prog) == oracle(["-"], stdin=prog)


@needs_oracle
@pytest.mark.parametrize("prog", PROGRAM_ERRORS[:12])
def test_program_error_through_file(prog: str, tmp_path) -> None:
    path = tmp_path / "prog.bt"
    path.write_text(prog)
    assert ours([str(path)]) == oracle([str(path)])


@needs_oracle
def test_program_error_in_file_with_options_after_it() -> None:
    for args in ([BAD], [BAD, "-q"], [BAD, "a", "b"], ["--no-warnings", BAD]):
        assert ours(args) == oracle(args)


POSITIONAL = [
    (["-e", "tracepoint:syscalls:$1 { $x; }", "sys_enter_openat"]),
    (["-e", "tracepoint:$1:$2 { $x; }", "syscalls", "sys_enter_read"]),
    (["-e", "tracepoint:$1:$2 { }", "syscalls"]),
    (["-e", "tracepoint:syscalls:sys_enter_$1 { $x; }", "nosuch"]),
    (["-e", "BEGIN { @x = $1 + $2; $y; }", "1", "two"]),
    (["-e", "BEGIN { @x = $3; $y; }", "1"]),
    (["-e", "BEGIN { @x = $#; $y; }", "a", "b", "c"]),
    (["-e", "BEGIN { @x = str($1); $y; }", "hello"]),
    (["-d", "-e", "tracepoint:syscalls:sys_enter_$1 { @x = $2; }", "openat", "5"]),
    (["-d", "-e", "BEGIN { @x = $1; @y = $#; }", "7", "8", "9"]),
    (["-d", "-e", "uprobe:$1:main { @x = 1; }", "/bin/bash"]),
]


@needs_oracle
@pytest.mark.parametrize("args", POSITIONAL, ids=lambda a: " ".join(a))
def test_positional_parameters_like_bpftrace(args: List[str]) -> None:
    want = oracle(args)
    want = (want[0], _dry(want[1]), want[2])
    mine = ours(args)
    assert (mine[0], _dry(mine[1]), mine[2]) == want


# ---------------------------------------------------------------------------------------
# -d: the typed tree after each pass
# ---------------------------------------------------------------------------------------

DRY = [
    "BEGIN { @x = 1; printf(\"hi %d\\n\", 1 + 2); }",
    "tracepoint:sched:sched_switch { @[args->prev_comm] = count(); $x = (uint8)1; "
    "if ($x > 0) { print(@); } }",
    "tracepoint:syscalls:sys_enter_read /comm == \"bash\"/ { @b = hist(args->count); "
    "@s[tid] = stats(args->count); }",
    "BEGIN { $i = 0; while ($i < 3) { $i++; } @t = (1, \"a\"); exit(); }",
    "interval:s:1 { time(\"%H\\n\"); @c = lhist(rand % 10, 0, 10, 1); }",
    "BEGIN { @x = 1 + \"a\"; }",                      # parser tree, then the error
    "BEGIN { $x; }",
    "BEGIN {",                                         # no tree at all
    "kprobe:vfs_read { @[kstack] = hist(arg2); }",
    "BEGIN { $x = 1; }",
    "BEGIN { exit(); @a = 1; }",                        # warnings on stderr
    "BEGIN { @a = -1 < (uint32)2; debugf(\"x\"); }",
    "tracepoint:syscall:sys_enter_openat,tracepoint:syscalls:sys_enter_read { }",
    "tracepoint:syscall:sys_enter_openat { }",          # fails before the parser's tree
    "BEGIN { @x = lhist(1, 0, 10, 1); @x = lhist(2, 0, 20, 1); }",  # in the resource pass
    "BEGIN { @x = lhist(1, 0, 10, 20); }",
]


@needs_oracle
@pytest.mark.parametrize("prog", DRY)
@pytest.mark.parametrize("flag", ["-d", "-dd"])
def test_dry_run_like_bpftrace(prog: str, flag: str) -> None:
    status, out, err = oracle([flag, "-e", prog])
    mine = ours([flag, "-e", prog])
    assert (mine[0], _dry(mine[1]), mine[2]) == (status, _dry(out), err)
    if status == 0:                    # then pybpf's disassembly where LLVM IR was
        assert "\n\nDisassembly\n-------------------\ns_" in mine[1]


@needs_oracle
@pytest.mark.parametrize("prog", DRY[-6:] + ["BEGIN { exit(); @a = 1; $y; }"])
def test_no_warnings(prog: str) -> None:
    args = ["--no-warnings", "-d", "-e", prog]
    status, out, err = oracle(args)
    mine = ours(args)
    assert (mine[0], _dry(mine[1]), mine[2]) == (status, _dry(out), err)


# ---------------------------------------------------------------------------------------
# -l and -lv through the command line
# ---------------------------------------------------------------------------------------

LISTINGS = [
    ["-l", "tracepoint:sched:sched_switch"], ["-lv", "tracepoint:sched:sched_switch"],
    ["-l", "-v", "tracepoint:syscalls:sys_enter_openat"],
    ["-v", "-l", "tracepoint:syscalls:sys_enter_open*"], ["-l", "t:sched:sched_wak*"],
    ["-l", "tracepoint:nomatch:*"], ["-l", "BEGIN{"], ["-l", "software:*"],
    ["-l", "BEGIN"], ["-l", "tracepoint:sched:sched_switch", "-q"],
    ["tracepoint:sched:sched_process_*", "-l"], ["-l", "kprobe:vfs_read"],
    ["-l", "uprobe:/bin/bash:readline"], ["-lv", "uprobe:/bin/bash:readline"],
    ["-l", "hardware:*"], ["-l", "tracepoint:sched:sched_switch,tracepoint:sched:sched_wakeup"],
    ["-l", "profile:hz:99"], ["-l", "iter:*"], ["-l", "-e", SYN, "tracepoint:sched:sched_switch"],
    ["--no-warnings", "-l", "kprobe:vfs_read"],
]


@needs_oracle
@pytest.mark.parametrize("args", LISTINGS, ids=lambda a: " ".join(a))
def test_listing_like_bpftrace(args: List[str]) -> None:
    assert ours(args) == oracle(args)


@needs_oracle
@pytest.mark.parametrize("args", [["-l", "foo:bar"], ["-l", "nomatch"],
                                  ["-e", "foo:bar { }"], ["-d", "-e", "foo:bar { }"]])
def test_unknown_provider(args: List[str]) -> None:
    # bpftrace 0.17 prints the FATAL line, then aborts (SIGABRT); we exit with 1
    status, out, err = ours(args)
    assert (status, out) == (1, "")
    assert err == "FATAL: Invalid probe type made it to attachpoint parser\n"
    theirs = oracle(args)
    assert theirs[0] == -6 and theirs[2] == err


# ---------------------------------------------------------------------------------------
# --info and -h: the same sections and keys
# ---------------------------------------------------------------------------------------

def _shape(report: str) -> List[Tuple[str, List[str]]]:
    sections: List[Tuple[str, List[str]]] = []
    for line in report.splitlines():
        if line and not line.startswith(" "):
            sections.append((line, []))
        elif line.strip():
            sections[-1][1].append(line.split(":")[0].strip())
    return sections


@needs_oracle
def test_info_has_bpftrace_sections_and_keys() -> None:
    want = oracle(["--info"])
    got = ours(["--info"])
    assert (got[0], got[1]) == (want[0], want[1]) == (0, "")
    assert _shape(got[2]) == _shape(want[2])
    assert got[2].endswith("\n\n") and want[2].endswith("\n\n")
    assert got[2].splitlines()[:3] == want[2].splitlines()[:3]          # System: uname


def test_info_answers_are_this_machines() -> None:
    from pybpf import features
    report = ours(["--info"])[2]
    kprobes = bool(features.probe(features.feature("misc.kprobe_pmu")))
    assert f"  kprobe: {'yes' if kprobes else 'no'}\n" in report
    assert "(pybpf " in report


def _help_shape(text: str) -> Tuple[List[str], List[str], List[str]]:
    heads = [ln for ln in text.splitlines() if ln.endswith(":") and not ln.startswith(" ")]
    opts = re.findall(r"^    (-[\w-]+)", text, re.M)
    env = re.findall(r"^    (BPFTRACE_\w+)", text, re.M)
    return heads, opts, env


@needs_oracle
@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help_like_bpftrace(flag: str) -> None:
    assert BPFTRACE is not None
    want = subprocess.run(["bpftrace", flag], executable=BPFTRACE, capture_output=True,
                          text=True, timeout=60)
    out, err = io.StringIO(), io.StringIO()
    assert trace_main([flag], stdout=out, stderr=err) == want.returncode == 0
    assert out.getvalue() == want.stdout == ""
    assert _help_shape(err.getvalue()) == _help_shape(want.stderr)
    assert err.getvalue().splitlines()[:4] == want.stderr.splitlines()[:4]


# ---------------------------------------------------------------------------------------
# the command line read into TraceOptions (no oracle needed)
# ---------------------------------------------------------------------------------------

def test_every_option_lands_in_trace_options(tmp_path) -> None:
    out = tmp_path / "out.txt"
    cmd = parse_command_line(
        ["-q", "-v", "-B", "none", "-f", "json", "-o", str(out), "-I", "d1", "-Id2",
         "--include", "a.h", "--include=b.h", "--unsafe", "--no-warnings",
         "--usdt-file-activation", "-kk", "--emit-elf", "x.o", "-e", "BEGIN {}", "p1",
         "p2", "--", "-3"], {})
    o = cmd.options
    assert cmd.action == "run" and cmd.program == "BEGIN {}" and cmd.path is None
    assert (o.quiet, o.verbose, o.buffering, o.output_format, o.output_path) == \
        (True, True, "none", "json", str(out))
    assert (o.include_dirs, o.includes) == (["d1", "d2"], ["a.h", "b.h"])
    assert (o.unsafe, o.no_warnings, o.usdt_file_activation) == (True, True, True)
    assert (o.helper_check_level, o.emit_elf, o.debug) == (2, "x.o", 0)
    assert o.params == ["p1", "p2", "-3"]
    assert out.exists()


def test_defaults_and_file_program() -> None:
    cmd = parse_command_line(["prog.bt", "a", "b"], {})
    o = cmd.options
    assert (cmd.action, cmd.path, cmd.program, o.params) == ("run", "prog.bt", None,
                                                             ["a", "b"])
    assert (o.output_format, o.output_path, o.buffering, o.quiet, o.debug) == \
        ("text", None, None, False, 0)
    assert (o.strlen, o.map_keys_max, o.max_probes, o.perf_rb_pages, o.cat_bytes_max) == \
        (64, 4096, 512, session.default_rb_pages(), 10240)
    # bpftrace's 64 pages per CPU, more when the CPUs are few (a 2 MiB ring at least)
    ncpus = os.cpu_count() or 1
    assert o.perf_rb_pages >= 64 and o.perf_rb_pages * 4096 * ncpus >= 2 << 20
    assert o.notify_attached is False and o.pid is None and o.command is None


def test_operands_move_after_options_unless_posixly_correct() -> None:
    assert parse_command_line(["prog.bt", "-q", "x"], {}).options.quiet is True
    cmd = parse_command_line(["prog.bt", "-q", "x"], {"POSIXLY_CORRECT": "1"})
    assert cmd.options.quiet is False and cmd.options.params == ["-q", "x"]


def test_debug_levels_and_listing() -> None:
    assert parse_command_line(["-dd", "-e", "x"], {}).options.debug == 2
    cmd = parse_command_line(["-lv", "tracepoint:sched:*"], {})
    assert (cmd.action, cmd.search, cmd.options.verbose) == ("list", "tracepoint:sched:*",
                                                             True)
    assert parse_command_line(["-l", "*"], {}).search is None
    assert parse_command_line(["-l"], {}).search is None


def test_pid_and_command() -> None:
    me = os.getpid()
    assert parse_command_line(["-p", str(me), "-e", "x"], {}).options.pid == me
    cmd = parse_command_line(["-c", "sleep 1", "-e", "x"], {"PATH": "/usr/bin:/bin"})
    assert cmd.options.command == "sleep 1"
    assert os.path.basename(cmd.command_argv[0]) == "sleep" and cmd.command_argv[1:] == ["1"]
    assert cmd.options.extras["command_argv"] == cmd.command_argv
    assert cmd.options.cache_user_symbols is True                  # -c turns the cache on


def test_environment_into_options() -> None:
    env = {"BPFTRACE_STRLEN": "128", "BPFTRACE_MAP_KEYS_MAX": "100",
           "BPFTRACE_MAX_PROBES": "7", "BPFTRACE_PERF_RB_PAGES": "16",
           "BPFTRACE_CAT_BYTES_MAX": "99", "BPFTRACE_NO_USER_SYMBOLS": "1",
           "BPFTRACE_CACHE_USER_SYMBOLS": "0", "BPFTRACE_VMLINUX": "/boot/vmlinux",
           "BPFTRACE_BTF": "/sys/kernel/btf/vmlinux", "BPFTRACE_NO_CPP_DEMANGLE": "1",
           "BPFTRACE_MAX_BPF_PROGS": "3", "BPFTRACE_LOG_SIZE": "1000",
           "__BPFTRACE_NOTIFY_PROBES_ATTACHED": ""}
    if not os.path.exists("/sys/kernel/btf/vmlinux"):
        del env["BPFTRACE_BTF"]
    o = parse_command_line(["-e", "x"], env).options
    assert (o.strlen, o.map_keys_max, o.max_probes, o.perf_rb_pages, o.cat_bytes_max) == \
        (128, 100, 7, 16, 99)
    assert (o.no_user_symbols, o.cache_user_symbols, o.vmlinux) == (True, False,
                                                                    "/boot/vmlinux")
    assert o.btf == env.get("BPFTRACE_BTF")
    assert o.notify_attached is True                     # set, whatever its value
    assert o.extras["no_cpp_demangle"] is True
    assert (o.extras["max_bpf_progs"], o.extras["log_size"]) == (3, 1000)


@pytest.mark.parametrize("text,value", [
    ("0", 0), ("42", 42), (" 5", 5), ("\t7", 7), ("+5", 5), ("12x", 12), ("5 6", 5),
    ("0x10", 0), ("-0", 0), ("-1", 2**64 - 1), ("18446744073709551615", 2**64 - 1),
    ("-18446744073709551615", 1), ("", None), ("  ", None), ("abc", None), ("--1", None),
    ("18446744073709551616", None), ("-18446744073709551616", None), ("+", None),
])
def test_u64_as_cpp_reads_it(text: str, value: Optional[int]) -> None:
    assert parse_u64(text) == value


def test_getopt_messages_and_order() -> None:
    got = []
    with pytest.raises(GetoptError) as exc:
        for pair in getopt_long(["-qv", "-Bnone", "--unsa", "-x", "-V"], SHORT_OPTIONS,
                                LONG_OPTIONS):
            got.append(pair)
    assert got == [("q", None), ("v", None), ("B", "none"), ("--unsafe", None)]
    assert exc.value.text == "bpftrace: invalid option -- 'x'" and exc.value.usage
    with pytest.raises(CommandLineError) as exc2:
        parse_command_line(["--emit", "x"], {})
    assert exc2.value.text == ("bpftrace: option '--emit' is ambiguous; possibilities: "
                               "'--emit-llvm' '--emit-elf'")


# ---------------------------------------------------------------------------------------
# the wrappers: pybpf trace, python3 -m pybpf.bpftrace, the pybpf-bpftrace script
# ---------------------------------------------------------------------------------------

def _proc(cmd: List[str], args: List[str]) -> Result:
    env = _env({"PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")})
    res = subprocess.run(cmd + args, capture_output=True, text=True, timeout=120,
                         env=env, cwd=ROOT)
    return res.returncode, res.stdout, _norm(res.stderr)


WRAPPED = [["-e", "BEGIN { $x; }"], ["-x"], [BAD], ["/nonexistent.bt"],
           ["-d", "-e", "BEGIN { @x = 1; }"], ["-V"],
           ["-l", "tracepoint:sched:sched_switch"]]


@pytest.mark.parametrize("args", WRAPPED, ids=lambda a: " ".join(a))
def test_module_wrapper_behaves_like_trace(args: List[str]) -> None:
    assert _proc([sys.executable, "-m", "pybpf.bpftrace"], args) == ours(args)


@pytest.mark.parametrize("args", WRAPPED, ids=lambda a: " ".join(a))
def test_pybpf_trace_behaves_the_same(args: List[str]) -> None:
    status, out, err = _proc([sys.executable, "-m", "pybpf", "trace"], args)
    want = ours(args)
    assert (status, out) == want[:2]
    # getopt's messages and the usage text name the command as it was called
    assert err.replace("pybpf trace", "bpftrace") == want[2]


def test_console_script_declared_and_callable() -> None:
    with open(os.path.join(ROOT, "pyproject.toml")) as fh:
        text = fh.read()
    m = re.search(r'^pybpf-bpftrace = "([\w.]+):(\w+)"$', text, re.M)
    assert m, "pyproject.toml declares the pybpf-bpftrace script"
    status = _proc([sys.executable, "-c",
                    f"import sys; sys.argv[0] = 'bpftrace'; "
                    f"from {m.group(1)} import {m.group(2)}; {m.group(2)}()"],
                   ["-e", "BEGIN { $x; }"])
    assert status == ours(["-e", "BEGIN { $x; }"])
    installed = shutil.which("pybpf-bpftrace")
    if installed:
        assert _proc([installed], ["-x"]) == ours(["-x"])


# ---------------------------------------------------------------------------------------
# runs: the same output as bpftrace
# ---------------------------------------------------------------------------------------

def _run_both(args: List[str], env: Optional[Mapping[str, str]] = None
              ) -> Tuple[Result, Result]:
    mine = ours(args, env)
    return mine, oracle(args, env)


@needs_oracle
def test_run_begin_printf_exit() -> None:
    mine, theirs = _run_both(["-e", 'BEGIN { printf("hi\\n"); exit(); }'])
    assert mine == theirs == (0, "Attaching 1 probe...\nhi\n\n\n", "")


@needs_oracle
def test_run_quiet_json() -> None:
    args = ["-q", "-f", "json", "-e", 'BEGIN { printf("hi\\n"); @x = 5; exit(); }']
    mine, theirs = _run_both(args)
    assert mine == theirs
    assert mine[1] == ('{"type": "printf", "data": "hi\\n"}\n\n\n'
                       '{"type": "map", "data": {"@x": 5}}\n')


@needs_oracle
def test_run_output_file(tmp_path) -> None:
    prog = 'BEGIN { printf("hi\\n"); exit(); }'
    mine = ours(["-o", str(tmp_path / "mine"), "-e", prog])
    theirs = oracle(["-o", str(tmp_path / "theirs"), "-e", prog])
    assert mine == theirs
    assert (tmp_path / "mine").read_text() == (tmp_path / "theirs").read_text() == \
        "Attaching 1 probe...\nhi\n"


@needs_oracle
def test_run_command_and_strlen() -> None:
    args = ["-q", "-c", "/bin/cat /nonexistent", "-e",
            "tracepoint:syscalls:sys_enter_openat /pid == cpid/ "
            "{ printf(\"%s|\\n\", str(args->filename)); exit(); }"]
    mine, theirs = _run_both(args, {"BPFTRACE_STRLEN": "5"})
    assert (mine[0], mine[1]) == (theirs[0], theirs[1]) == (0, "/etc|\n\n\n")


@needs_oracle
def test_run_positional_parameters() -> None:
    args = ["-e", 'BEGIN { printf("%d %s\\n", $1 + 1, str($2)); exit(); }', "41", "two"]
    mine, theirs = _run_both(args)
    assert mine == theirs


@needs_oracle
def test_run_notify_attached() -> None:
    env = {"__BPFTRACE_NOTIFY_PROBES_ATTACHED": "1"}
    mine, theirs = _run_both(["-e", 'BEGIN { printf("hi\\n"); exit(); }'], env)
    assert mine == theirs
    assert "__BPFTRACE_NOTIFY_PROBES_ATTACHED\n" in mine[2]     # 0.17: on stderr
