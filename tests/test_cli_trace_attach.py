"""``pybpf trace`` beside bpftrace 0.17 on three things its kprobe tools need (issue 19,
the guest's XF_ENUM/XF_SKIP/XF_STATUS): enum constants named as identifiers, attach
points that cannot be attached (skipped or fatal, as 0.17 decides), and the exit
status of each kind of failure. Every case runs both as commands
(``bpftrace -e`` and ``python3 -m pybpf trace -e``) and compares status, stdout and
stderr, with the machine's noise taken out (the helpers of tests/test_cli_trace.py).

This machine has no kprobes: the kprobe cases see libbcc's complaint about the missing
``kprobe_events`` file, which pybpf prints too. bpftrace 0.17 also tries to remove, at
the end, the events of the kprobes it skipped and, on such a kernel, reports that it
cannot (``open(.../kprobe_events)`` and ``ERROR: failed to detach probe: ...``); a
kernel with kprobe events has nothing to remove, and pybpf does not print those lines:
they are taken out of bpftrace's stderr here.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from typing import Tuple

import pytest

from test_cli_trace import BPFTRACE, ROOT, _env, _norm, needs_oracle

_DETACH = re.compile(r"^open\([^)]*kprobe_events\): [^\n]*\n"
                     r"|^ERROR: failed to detach probe: [^\n]*\n", re.M)


def _run(cmd, program: str) -> Tuple[int, str, str]:
    res = subprocess.run([*cmd, "-e", program], capture_output=True, text=True,
                         timeout=120, cwd=ROOT, stdin=subprocess.DEVNULL,
                         env=dict(_env(), PYTHONPATH=ROOT))
    return res.returncode, res.stdout, _DETACH.sub("", _norm(res.stderr))


def both(program: str, *options: str) -> Tuple[Tuple[int, str, str], Tuple[int, str, str]]:
    """(pybpf trace's (status, stdout, stderr), bpftrace's) for ``program``, each given
    ``options`` first."""
    assert BPFTRACE is not None
    return (_run([sys.executable, "-m", "pybpf", "trace", *options], program),
            _run([BPFTRACE, *options], program))


# ---------------------------------------------------------------------------------------
# enum constants as identifiers: the included headers' values, else the kernel BTF's
# ---------------------------------------------------------------------------------------

#: the kernel's TCP states as a header of the test's own (the kernel's own
#: ``net/tcp_states.h`` is not installed on every machine), found through ``-I``; its
#: TCP_MAX_STATES is the header's, not the kernel BTF's (which may know more states)
TCP_STATES_H = """#ifndef TEST_TCP_STATES_H
#define TEST_TCP_STATES_H
enum {
\tTCP_ESTABLISHED = 1,
\tTCP_SYN_SENT, TCP_SYN_RECV, TCP_FIN_WAIT1, TCP_FIN_WAIT2, TCP_TIME_WAIT,
\tTCP_CLOSE, TCP_CLOSE_WAIT, TCP_LAST_ACK, TCP_LISTEN, TCP_CLOSING,
\tTCP_NEW_SYN_RECV,
\tTCP_MAX_STATES  /* one past the last state */
};
#endif
"""

ENUM_PROGRAMS = {
    # net/tcp_states.h, as tcplife.bt uses it (the test's own, see TCP_STATES_H)
    "tcp-states": '#include <net/tcp_states.h>\nBEGIN { printf("%d %d %d %d\\n", '
                  'TCP_CLOSE, TCP_FIN_WAIT1, TCP_LAST_ACK, TCP_MAX_STATES + 1); exit(); }',
    "in-comparison": '#include <net/tcp_states.h>\nBEGIN { $s = 5; if ($s < TCP_FIN_WAIT1) '
                     '{ printf("before\\n"); } else { printf("after\\n"); } exit(); }',
    "map-key": '#include <net/tcp_states.h>\nBEGIN { @[TCP_LISTEN] = count(); exit(); }',
    # no #include: bpftrace offers every enum of the kernel's BTF
    "btf-only": 'BEGIN { printf("%d %d\\n", TCP_CLOSE, BPF_MAP_TYPE_HASH); exit(); }',
    # a header enumerator that the header also #defines to itself
    "self-define": '#include <linux/in.h>\nBEGIN { printf("%d %d\\n", IPPROTO_TCP, '
                   'IPPROTO_UDP); exit(); }',
    "preamble-anonymous": 'enum { FOO = 3, BAZ };\nenum bar { BAR = 9 };\n'
                          'BEGIN { printf("%d %d %d\\n", FOO, BAZ, BAR); exit(); }',
    "unknown": '#include <net/tcp_states.h>\nBEGIN { printf("%d\\n", NOT_AN_ENUMERATOR); '
               'exit(); }',
    # a header that is nowhere: clang's fatal error, at its line of bpftrace's
    # definitions.h (after the BTF header's line and the #define's)
    "missing-header": '#define X 1\n  #include   "pybpf_test/none.h"\nBEGIN { exit(); }',
    # bpftrace's built-in headers are found in the quoted form too
    "quoted-builtin": '#include "stddef.h"\nBEGIN { printf("%d\\n", TCP_CLOSE); exit(); }',
}


@needs_oracle
@pytest.mark.parametrize("program", list(ENUM_PROGRAMS.values()), ids=list(ENUM_PROGRAMS))
def test_enum_identifier_like_bpftrace(program: str, tmp_path) -> None:
    (tmp_path / "net").mkdir()
    (tmp_path / "net" / "tcp_states.h").write_text(TCP_STATES_H)
    mine, theirs = both(program, "-I", str(tmp_path))
    assert mine == theirs
    if "unknown" in program or "NOT_AN" in program:
        assert mine[0] == 1 and "ERROR: Unknown identifier: 'NOT_AN_ENUMERATOR'" in mine[2]
    elif "none.h" in program:
        assert mine[0] == 1
        assert mine[2] == ("definitions.h:3:12: fatal error: 'pybpf_test/none.h' file "
                           "not found\n")
    else:
        assert mine[0] == 0 and mine[1].startswith("Attaching 1 probe...\n"), mine


def test_header_enumerators_read_from_the_header(tmp_path) -> None:
    """Values come from the header text (implicit, explicit, expressions of earlier
    enumerators and macros), only for the names the program uses."""
    from pybpf.bpftrace.headers import header_symbols
    (tmp_path / "a.h").write_text(
        "#define BASE 0x10\n#include \"b.h\"\n"
        "enum colour { RED = BASE, GREEN, BLUE = GREEN << 2, /* c */ LAST };\n")
    (tmp_path / "b.h").write_text("enum { ONE = 1, TWO, CAST = (int)3, AFTER };\n"
                                  "#define USES_TWO (TWO + 1)\n")
    macros, enums = header_symbols(["a.h"], {"RED", "GREEN", "BLUE", "LAST", "TWO",
                                             "CAST", "AFTER", "USES_TWO"},
                                   [str(tmp_path)])
    assert enums == {"RED": 16, "GREEN": 17, "BLUE": 68, "LAST": 69, "TWO": 2}
    assert macros == {"USES_TWO": "(TWO + 1)"}


def test_header_reads_follow_the_files(tmp_path) -> None:
    """Headers are read and include names resolved once per process while the files
    and directories keep their identity: a header rewritten in place, replaced by a new
    file of the same size, a header appearing earlier in the search order or going
    away, or an included directory replaced, is looked at again, never answered from
    the old reading. (Time stamps are set in the past after each change, so that the
    answers are kept: a fresh time stamp is not trusted.) A dangling link that comes to
    life is followed."""
    from pybpf.bpftrace import headers
    from pybpf.bpftrace.headers import header_symbols
    first, second = tmp_path / "first", tmp_path / "second"
    for d in (first, second, second / "sub"):
        d.mkdir()
    a = second / "a.h"
    a.write_text('#define WIDTH 8\n#include "sub/b.h"\nenum { RED = 1, GREEN };\n')
    (second / "sub" / "b.h").write_text("#define DEPTH 3\n")
    want = {"WIDTH", "DEPTH", "GREEN"}
    dirs = [str(first), str(second)]
    step = [0]

    def symbols():
        # what changed since the last step gets a time stamp in the past (a new one each
        # step); what did not keeps its own, so kept answers are only dropped for a change
        step[0] += 1
        now = time.time_ns()
        when = now - 1000 * 10**9 + step[0] * 10**9
        for p in [tmp_path, *tmp_path.rglob("*")]:
            if now - os.lstat(p).st_mtime_ns < 100 * 10**9:
                os.utime(p, ns=(when, when), follow_symlinks=False)
        got = header_symbols(["a.h"], want, dirs)
        assert header_symbols(["a.h"], want, dirs) == got      # the kept answers
        return got
    assert symbols() == ({"WIDTH": "8", "DEPTH": "3"}, {"GREEN": 2})
    assert str(a) in headers._SCANS                            # kept, not read again
    # rewritten in place, another size
    a.write_text('#define WIDTH 16\n#include "sub/b.h"\nenum { RED = 10, GREEN };\n')
    assert symbols() == ({"WIDTH": "16", "DEPTH": "3"}, {"GREEN": 11})
    # replaced by a new file (another inode) of the same size
    new = second / "a.h.new"
    new.write_text('#define WIDTH 32\n#include "sub/b.h"\nenum { RED = 20, GREEN };\n')
    os.replace(new, a)
    assert symbols() == ({"WIDTH": "32", "DEPTH": "3"}, {"GREEN": 21})
    # the included directory replaced by another one
    os.rename(second / "sub", tmp_path / "old-sub")
    (second / "sub").mkdir()
    (second / "sub" / "b.h").write_text("#define DEPTH 4\n")
    assert symbols() == ({"WIDTH": "32", "DEPTH": "4"}, {"GREEN": 21})
    # an a.h earlier in the search order now hides the one in ``second``
    (first / "a.h").write_text("#define WIDTH 64\n#define DEPTH 5\nenum { GREEN = 7 };\n")
    assert symbols() == ({"WIDTH": "64", "DEPTH": "5"}, {"GREEN": 7})
    (first / "a.h").unlink()
    assert symbols() == ({"WIDTH": "32", "DEPTH": "4"}, {"GREEN": 21})
    # the include goes away
    (second / "sub" / "b.h").unlink()
    assert symbols() == ({"WIDTH": "32"}, {"GREEN": 21})
    # a dangling link earlier in the search order comes to life (its directory stays
    # as it was): followed, as clang follows it
    os.symlink(tmp_path / "later.h", first / "a.h")
    assert symbols() == ({"WIDTH": "32"}, {"GREEN": 21})
    (tmp_path / "later.h").write_text("#define WIDTH 128\n")
    assert symbols() == ({"WIDTH": "128"}, {})


# ---------------------------------------------------------------------------------------
# attach points that cannot be attached: skipped or fatal as 0.17 decides
# ---------------------------------------------------------------------------------------

ATTACH_PROGRAMS = {
    # one of several kprobe attach points (biolatency's blk_account_io_start pair): a
    # warning per probe that fails, the run goes on (even with none attached)
    "kprobe-several": "kprobe:vfs_read, kprobe:pybpf_no_such_function { } "
                      "BEGIN { exit(); }",
    # the only attach point of a probe (mdflush's md_flush_request): fatal, status 255
    "kprobe-one": "kprobe:pybpf_no_such_function { } BEGIN { exit(); }",
    "kretprobe-one": "kretprobe:pybpf_no_such_function { } BEGIN { exit(); }",
    # a missing tracepoint among several: a semantic warning, libbcc's line, no probe
    "tracepoint-several": "tracepoint:syscalls:sys_enter_nanosleep, "
                          "tracepoint:syscalls:sys_enter_pybpf_none { } BEGIN { exit(); }",
    # ... but with a program of its own (the probe builtin) it has no code: fatal
    "tracepoint-several-split": "tracepoint:syscalls:sys_enter_pybpf_none, "
                                "tracepoint:syscalls:sys_enter_nanosleep "
                                "{ printf(\"%s\\n\", probe); } BEGIN { exit(); }",
    # alone, a missing tracepoint is a semantic error (status 1)
    "tracepoint-one": "tracepoint:syscalls:sys_enter_pybpf_none { } BEGIN { exit(); }",
    # a uprobe function that is not in the binary matches nothing: no probe, no message
    "uprobe-several": "uprobe:/bin/sh:pybpf_no_such_function, uprobe:/bin/sh:main { } "
                      "BEGIN { exit(); }",
    "uprobe-one": "uprobe:/bin/sh:pybpf_no_such_function { } BEGIN { exit(); }",
}


@needs_oracle
@pytest.mark.parametrize("program", list(ATTACH_PROGRAMS.values()), ids=list(ATTACH_PROGRAMS))
def test_attach_failure_like_bpftrace(program: str) -> None:
    mine, theirs = both(program)
    assert mine == theirs


@needs_oracle
def test_kprobes_skipped_then_probes_run() -> None:
    """After the skipped kprobes the other probes run: interval's exit() ends it."""
    mine, theirs = both("kprobe:vfs_read, kprobe:pybpf_no_such_function { } "
                        'interval:ms:100 { printf("tick\\n"); exit(); }')
    assert mine == theirs
    assert mine[0] == 0 and mine[1] == "Attaching 3 probes...\ntick\n\n\n"
    assert mine[2].count(", skipping.\n") == 2


# ---------------------------------------------------------------------------------------
# exit statuses
# ---------------------------------------------------------------------------------------

STATUS_PROGRAMS = {
    "parse-error": ("BEGIN { exit() ", 1),
    "semantic-error": ("BEGIN { $x; }", 1),
    "type-error": ('BEGIN { @x = 1; @x = "a"; }', 1),
    "attach-error": ("kprobe:pybpf_no_such_function { }", 255),
    "exit": ("BEGIN { exit(); }", 0),
}


@needs_oracle
@pytest.mark.parametrize("program,status", list(STATUS_PROGRAMS.values()),
                         ids=list(STATUS_PROGRAMS))
def test_exit_status_like_bpftrace(program: str, status: int) -> None:
    mine, theirs = both(program)
    assert mine[0] == theirs[0] == status
    assert mine[2] == theirs[2]


@needs_oracle
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_run_helper_status_on_attach_failure(tmp_path) -> None:
    """The guest tools' harness runs ``session.run`` (tests/bpftrace_run/run_helper.py):
    a tool whose only probe cannot attach (mdflush) ends with bpftrace's 255 there
    too."""
    path = tmp_path / "one.bt"
    path.write_text('BEGIN { printf("start\\n"); }\nkprobe:pybpf_no_such_function { }\n')
    helper = os.path.join(ROOT, "tests", "bpftrace_run", "run_helper.py")
    res = subprocess.run([sys.executable, helper, str(path)], capture_output=True,
                         text=True, timeout=120, env=dict(_env(), PYTHONPATH=ROOT))
    theirs = subprocess.run([BPFTRACE, str(path)], capture_output=True, text=True,
                            timeout=120, env=_env())
    assert res.returncode == theirs.returncode == 255
    # 0.17 does not print what BEGIN printed when the attach fails
    assert res.stdout == theirs.stdout == "Attaching 2 probes...\n"
    assert res.stderr.splitlines()[-1] == theirs.stderr.splitlines()[-1] == \
        "ERROR: Error attaching probe: 'kprobe:pybpf_no_such_function'"


# ---------------------------------------------------------------------------------------
# the -c child does not outlive the run
# ---------------------------------------------------------------------------------------

@needs_oracle
def test_a_child_still_running_at_the_end_is_ended(tmp_path):
    """``-c CMD`` whose command is still running when the program exits: bpftrace 0.17
    ends it with the run; so does pybpf trace (no process left behind)."""
    left = {}
    for name, cmd in (("pybpf", [sys.executable, "-m", "pybpf", "trace"]),
                      ("bpftrace", [BPFTRACE])):
        pidfile = tmp_path / f"{name}.pid"
        script = tmp_path / f"{name}.sh"           # -c is split at spaces, no quoting
        script.write_text(f"echo $$ > {pidfile}\nexec /bin/sleep 60\n")
        child = f"/bin/sh {script}"
        res = subprocess.run([*cmd, "-c", child, "-e",
                              'interval:ms:300 { printf("done\\n"); exit(); }'],
                             capture_output=True, text=True, timeout=120, cwd=ROOT,
                             stdin=subprocess.DEVNULL, env=dict(_env(), PYTHONPATH=ROOT))
        assert res.returncode == 0 and "done" in res.stdout, (name, res.stderr)
        pid = int(pidfile.read_text())
        try:
            with open(f"/proc/{pid}/stat") as fh:
                state = fh.read().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            state = "gone"
        left[name] = state
    assert left == {"pybpf": "gone", "bpftrace": "gone"}


# ---------------------------------------------------------------------------------------
# tracefs not mounted
# ---------------------------------------------------------------------------------------

@needs_oracle
@pytest.mark.skipif(os.geteuid() != 0 or not __import__("shutil").which("unshare"),
                    reason="needs root and util-linux's unshare (a private mount namespace)")
def test_tracepoints_found_where_tracefs_is_not_mounted(tmp_path):
    """Where tracefs is mounted at neither usual place, bpftrace 0.17 finds no tracepoint
    (``tracepoint not found``); pybpf trace mounts it, as pybpf's own tools do, and runs.
    Both run in a mount namespace of the test's own, where tracefs is unmounted first
    (the machine's mounts are untouched); a wildcard and ``-l`` are looked up there too."""
    probe = "tracepoint:syscalls:sys_enter_openat"
    prog = probe + ' /pid == cpid/ { printf("%s\\n", str(args->filename)); }'
    wild = probe + '* /pid == cpid/ { printf("%s\\n", probe); exit(); }'
    mine = f"{sys.executable} -m pybpf trace"
    script = tmp_path / "run.sh"
    script.write_text(f"""
umount /sys/kernel/tracing 2>/dev/null; umount /sys/kernel/debug/tracing 2>/dev/null
test -d /sys/kernel/tracing/events && exit 90
test -d /sys/kernel/debug/tracing/events && exit 91
{BPFTRACE} -e '{prog}' -c '/bin/cat /etc/hostname' > {tmp_path}/theirs.out 2>&1
echo $? > {tmp_path}/theirs.rc
{mine} -e '{prog}' -c '/bin/cat /etc/hostname' > {tmp_path}/mine.out 2>&1
echo $? > {tmp_path}/mine.rc
umount /sys/kernel/tracing
{mine} -e '{wild}' -c '/bin/cat /etc/hostname' > {tmp_path}/wild.out 2>&1
umount /sys/kernel/tracing
{mine} -l '{probe}*' > {tmp_path}/list.out 2>&1
""")
    res = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh",
                          str(script)], capture_output=True, text=True, timeout=180,
                         cwd=ROOT, env=dict(_env(), PYTHONPATH=ROOT))
    assert res.returncode == 0, (res.returncode, res.stderr)
    theirs = (tmp_path / "theirs.out").read_text()
    assert (tmp_path / "theirs.rc").read_text().strip() == "1"
    assert f"ERROR: tracepoint not found: {probe[len('tracepoint:'):]}" in theirs
    out = (tmp_path / "mine.out").read_text()
    assert (tmp_path / "mine.rc").read_text().strip() == "0", out
    assert out.startswith("Attaching 1 probe...\n") and "\n/etc/hostname\n" in out, out
    wild_out = (tmp_path / "wild.out").read_text()
    assert wild_out.startswith("Attaching 2 probes...\n") and f"\n{probe}\n" in wild_out, \
        wild_out
    assert (tmp_path / "list.out").read_text().split() == [probe, probe + "2"]
