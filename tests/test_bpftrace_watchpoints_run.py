"""Differential tests of function-form watchpoints (``watchpoint:FUNC+argN:LEN:MODE``,
``asyncwatchpoint:...``): the same program run by the installed bpftrace 0.17 and by
``pybpf.bpftrace.session.run`` (tests/bpftrace_run/run_helper.py) on the gcc-built
workload tests/bpftrace_run/btwatch.c (``-c`` or ``-p``) must print the same stdout
and stderr (bpftrace's memlock noise left out) and end with the same status. The
hardware breakpoints come from the kernel's ``breakpoint`` PMU (x86-64: 4 debug
registers per thread, so the 5th address runs out).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from typing import Tuple

import pytest

from test_bpftrace_run import ROOT, SRC, _run

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(shutil.which("bpftrace") is None, reason="needs bpftrace 0.17"),
    pytest.mark.skipif(not os.path.exists("/sys/bus/event_source/devices/breakpoint"),
                       reason="needs the breakpoint PMU"),
]


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> dict:
    """The workload binary (gcc -O1 -g)."""
    if shutil.which("gcc") is None:
        pytest.skip("needs gcc")
    d = tmp_path_factory.mktemp("btwatch")
    binary = str(d / "btwatch")
    subprocess.run(["gcc", "-O1", "-g", "-o", binary, os.path.join(SRC, "btwatch.c")],
                   check=True)
    return {"BIN": binary, "DIR": str(d)}


def _errors(stderr: str) -> str:
    return "\n".join(l for l in stderr.splitlines() if "RLIMIT_MEMLOCK" not in l)


def both(program: str, work: dict, options: Tuple[str, ...]
         ) -> Tuple[Tuple[str, str, int], Tuple[str, str, int]]:
    """((stdout, stderr, status) of bpftrace, the same of ours); ``{BIN}`` in the
    program and ``options`` is the workload."""
    path = os.path.join(work["DIR"], "prog.bt")
    with open(path, "w") as fh:
        fh.write(program.replace("{BIN}", work["BIN"]))
    opts = [o.replace("{BIN}", work["BIN"]) for o in options]
    res = []
    for argv, env in ((["bpftrace", *opts, path], dict(os.environ)),
                      ([sys.executable, os.path.join(SRC, "run_helper.py"), *opts, path],
                       dict(os.environ, PYTHONPATH=ROOT))):
        out, err, rc = _run(argv, None, False, env)
        res.append((out.decode("latin-1"), _errors(err.decode("latin-1")), rc))
    return res[0], res[1]


ONE = "w:watch_one+arg0:8:w"
TWO = "w:watch_two+arg1:8:w"

# (id, program, options, text ours must print on stdout or stderr): compared on stdout,
# stderr, status
CASES = [
    # the same address twice is set once, a new one is added: 5 writes seen
    ("repeat-and-new", ONE + ' { printf("%s %d\\n", probe, pid == cpid); }',
     ("-c", "{BIN} 0"), "watchpoint:{BIN}:watch_one:8:w 1\n"),
    # argN > 0 is in the probe's name
    ("arg1-name", TWO + ' { printf("%s\\n", probe); }', ("-c", "{BIN} 2"),
     "watchpoint:{BIN}:watch_two:1:8:w\n"),
    # 4 debug registers: slot[0], slot[1], many[0], many[1]; then 4 refusals
    ("out-of-registers", ONE + " { @one = count(); } " + TWO + " { @two = count(); }",
     ("-c", "{BIN} 6"), "Failed to attach watchpoint probe. You are out of watchpoint "
     "registers.\n"),
    ("async", "aw:watch_one+arg0:8:w { @one = count(); } "
     "asyncwatchpoint:watch_two+arg1:4:w { @two = count(); }", ("-c", "{BIN} 2"),
     "\n\n@one: 5\n@two: 2\n"),
    # two functions; watch_two's arg0 is 0 (ignored: 0.17's first "previous address"
    # is the argument number), then 1, an address the kernel refuses: async goes on
    ("wildcard", 'aw:watch_*+arg0:8:w { @[probe] = count(); }', ("-c", "{BIN} 2"),
     "@[asyncwatchpoint:{BIN}:watch_one:8:w]: 5\n"),
    ("json", ONE + ' { printf("%s\\n", probe); }', ("-f", "json", "-c", "{BIN} 0"),
     '{"type": "attached_probes", "data": {"probes": 1}}\n'),
    ("json-out-of-registers", TWO + ' { @ = count(); }', ("-f", "json", "-c", "{BIN} 5"),
     '{"type": "lost_events", "data": "Failed to attach watchpoint probe. You are out of '
     'watchpoint registers."}\n'),
    ("read-write", 'w:watch_one+arg0:8:rw { @ = count(); }', ("-c", "{BIN} 0"), "@: "),
    # unwatch(): at the 2nd call (same address) slot[0] goes: 2 + slot[1]'s 1 write
    ("unwatch-same", 'u:{BIN}:watch_one { @n = @n + 1; if (@n == 2) { unwatch(arg0); } } '
     + ONE + " { @hits = count(); }", ("-c", "{BIN} 0"), "@hits: 3\n"),
    # at the 3rd call, after the setup probe (program order): slot[1] is the last
    # address, and unwatch(slot[1]) takes slot[0]'s breakpoint too (0.17 keeps one
    # address per watchpoint)
    ("unwatch-last", ONE + " { @hits = count(); } "
     "u:{BIN}:watch_one { @n = @n + 1; if (@n == 3) { unwatch(arg0); } }",
     ("-c", "{BIN} 0"), "@hits: 3\n"),
    # ... and an earlier address alone matches nothing
    ("unwatch-earlier", ONE + " { @hits = count(); } "
     "u:{BIN}:watch_one { @n = @n + 1; if (@n == 3) { unwatch(arg0 - 8); } }",
     ("-c", "{BIN} 0"), "@hits: 5\n"),
    # before the setup probe: slot[0] (the last address then) goes, slot[1] is set
    ("unwatch-before-setup", "u:{BIN}:watch_one { @n = @n + 1; if (@n == 3) "
     "{ unwatch(arg0 - 8); } } " + ONE + " { @hits = count(); }", ("-c", "{BIN} 0"),
     "@hits: 4\n"),
    ("no-such-function", 'w:no_such_function+arg0:8:w { @ = count(); }',
     ("-c", "{BIN} 0"), "No probes to attach\n"),
    ("async-bad-address", 'aw:watch_two+arg0:8:w { @ = count(); }', ("-c", "{BIN} 3"),
     "asyncwatchpoint:{BIN}:watch_two:8:w: Invalid argument\n"
     "Unable to attach real watchpoint probe\nERROR: "),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_differential(case, work):
    name, program, options, expect = case
    theirs, ours = both(program, work, options)
    assert ours == theirs
    assert expect.replace("{BIN}", work["BIN"]) in ours[0] + ours[1] + "\n"


# refused before running: bpftrace's located errors
ERRORS = [
    ("no-pid-or-command", ONE + " { @ = count(); }", ()),
    ("arg-out-of-range", "w:watch_one+arg6:8:w { @ = count(); }", ("-c", "{BIN}")),
    ("arg-not-a-number", "w:watch_one+argx:8:w { @ = count(); }", ("-c", "{BIN}")),
    ("arg-missing", "w:watch_one+ar:8:w { @ = count(); }", ("-c", "{BIN}")),
    ("two-pluses", "w:watch_one+arg0+1:8:w { @ = count(); }", ("-c", "{BIN}")),
    ("bad-length", "aw:watch_one+arg0:3:w { @ = count(); }", ("-c", "{BIN}")),
    ("bad-mode", "w:watch_one+arg0:8:ww { @ = count(); }", ("-c", "{BIN}")),
    ("mode-x86-refuses", "w:watch_one+arg0:8:rx { @ = count(); }", ("-p", "1")),
]


@pytest.mark.parametrize("case", ERRORS, ids=[c[0] for c in ERRORS])
def test_errors(case, work):
    name, program, options = case
    theirs, ours = both(program, work, options)
    assert ours == theirs
    assert ours[2] == 1 and "ERROR: " in ours[1]


def test_sync_refused_address(work):
    """A sync watchpoint the kernel refuses (address 1): 0.17's two messages, the
    process continued; bpftrace then aborts (SIGABRT), pybpf ends with status 1."""
    theirs, ours = both('w:watch_two+arg0:8:w { @ = count(); }', work, ("-c", "{BIN} 2"))
    assert ours[:2] == theirs[:2]
    assert ours[1].endswith("ERROR: Error attaching probe: watchpoint:" + work["BIN"]
                            + ":watch_two:8:w: Invalid argument\n"
                            "Unable to attach real watchpoint probe")
    assert theirs[2] == -6 and ours[2] == 1


def _with_pid(program: str, work: dict, who: str) -> Tuple[str, int]:
    """``-p``: the workload waits 1 s before its first call (stdout, pid as PID)."""
    target = subprocess.Popen([work["BIN"], "2", "1000"])
    try:
        path = os.path.join(work["DIR"], "pid.bt")
        with open(path, "w") as fh:
            fh.write(program)
        argv = (["bpftrace"] if who == "bpftrace" else
                [sys.executable, os.path.join(SRC, "run_helper.py")])
        env = dict(os.environ, PYTHONPATH=ROOT)
        p = subprocess.run(argv + ["-p", str(target.pid), path], capture_output=True,
                           env=env, timeout=60)
        target.wait(timeout=30)
        return p.stdout.decode().replace(str(target.pid), "PID"), p.returncode
    finally:
        if target.poll() is None:
            target.kill()
            target.wait()


def test_pid(work):
    """``-p``: the function is looked up in ``/proc/PID/exe`` (the probe's name says
    so); the run ends with the process."""
    program = (ONE + ' { @[probe] = count(); } ' + TWO + ' { @[probe] = count(); }')
    ours = _with_pid(program, work, "pybpf")
    theirs = _with_pid(program, work, "bpftrace")
    assert ours == theirs
    assert "@[watchpoint:/proc/PID/exe:watch_two:1:8:w]: 2\n" in ours[0]


def _fds() -> set:
    return set(os.listdir("/proc/self/fd"))


def test_nothing_left(work, capfd):
    """In this process: every breakpoint, uprobe, program and map fd is released at the
    end of the run, and the workload was continued each time (it ran to its end)."""
    from pybpf.bpftrace.session import TraceOptions, run
    before = _fds()
    opts = TraceOptions(command=f"{work['BIN']} 6", buffering="none")
    rc = run(ONE + " { @one = count(); } " + TWO + " { @two = count(); }", "stdin", opts)
    out = capfd.readouterr().out
    assert rc == 0
    assert out.endswith("@one: 5\n@two: 2\n")
    assert out.count("out of watchpoint registers") == 4
    assert _fds() == before
    with pytest.raises(ChildProcessError):                # ended, reaped by the run
        os.waitpid(opts.extras["cpid"], os.WNOHANG)


def test_exit_ends_the_stopped_process(work, capfd):
    """``exit()`` in a uprobe that runs before the setup probe: the setup record comes
    after the exit record and is dropped, while the setup probe has stopped the
    process. The run's end does not leave it stopped: the ``-c`` child is ended and
    reaped with the run, as bpftrace 0.17 ends its child (nothing left, stopped or
    not)."""
    from pybpf.bpftrace.session import TraceOptions, run
    opts = TraceOptions(command=f"{work['BIN']} 0")
    rc = run(f"u:{work['BIN']}:watch_one {{ exit(); }} " + ONE + " { @h = count(); }",
             "stdin", opts)
    assert rc == 0
    assert capfd.readouterr().out.startswith("Attaching 2 probes...\n")
    cpid = opts.extras["cpid"]
    with pytest.raises(ChildProcessError):                # ended, reaped by the run
        os.waitpid(cpid, os.WNOHANG | os.WUNTRACED)
    assert not os.path.exists(f"/proc/{cpid}")
