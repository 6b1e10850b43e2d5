"""Stopping a tool: SIGINT and SIGTERM end it within a deadline and leave nothing
attached even when nobody reads its output (a write blocked on a full pipe); a second
signal ends it at once; a signal during loading gives 128 + its number; an ignored SIGINT
stays ignored; a closed standard output is a one-line error, and a reader that goes away
mid-run ends the tool quietly.

The tools trace a workload process of the test that opens files in a loop, filtered
with ``-p`` so only its events show: the pipe fills within moments."""

from __future__ import annotations

import fcntl
import os
import re
import select
import signal
import subprocess
import sys
import termios
import textwrap
import time

import pytest

from cliharness import Outcome, assert_one_line_error
from linkutil import probe_events_text, root_reason
from progrun import ROOT, env, programs_loaded

pytestmark = pytest.mark.skipif(bool(root_reason()), reason=root_reason())

TESTS = os.path.dirname(os.path.abspath(__file__))
#: the stop deadline the tools promise (tooling.STOP_GRACE is well below it)
DEADLINE = 2.0
OPENSNOOP_PROGRAMS = ["opensnoop_openat", "opensnoop_openat2", "opensnoop_openat_ret",
                      "opensnoop_openat2_ret"]
UPROBE_PROGRAM = "hardsig_count"

#: a tool as a user would write one, with opensnoop's programs plus a uprobe attached
#: the tracefs way (``mode="legacy"``), so a stop must also delete a tracefs probe. argv:
#: tests dir, pid to trace, stop grace in seconds ("" for the default)
TRACEFS_TOOL = textwrap.dedent(r"""
    import sys
    sys.path.insert(0, sys.argv[1])
    from linkutil import counter_map, counting_program
    import pybpf.tooling as tooling
    from pybpf.link.uprobe import attach_uprobe
    from pybpf.syscall.bpf import ProgType
    import programs.opensnoop
    if sys.argv[3]:
        tooling.STOP_GRACE = float(sys.argv[3])
    with tooling.load_tool("programs.opensnoop", consts={"TARGET_PID": int(sys.argv[2])}) as mod:
        prog = counting_program(ProgType.KPROBE, counter_map(), name="hardsig_count")
        link = attach_uprobe(prog, "c", "getpid", mode="legacy")    # closed by the stop
        mod.on("events", lambda e: print(e.comm, e.ret, e.path))
        tooling.run_tool(mod, header="HEADER")
""")


@pytest.fixture
def workload():
    """A process that opens /dev/null in a loop; its pid."""
    proc = subprocess.Popen([sys.executable, "-c", "import os\nwhile True:\n"
                             "    os.close(os.open('/dev/null', os.O_RDONLY))"])
    yield proc.pid
    proc.kill()
    proc.wait()


def _small_pipe() -> tuple:
    """A pipe of one page (it fills after a hundred events): (read end, write end)."""
    r, w = os.pipe()
    fcntl.fcntl(r, fcntl.F_SETPIPE_SZ, 4096)
    return r, w


def _start(argv: list, stdout: int, **kw) -> subprocess.Popen:
    """``argv`` (after the interpreter) from the checkout with ``stdout`` (closed here)
    and stderr a pipe."""
    proc = subprocess.Popen([sys.executable, *argv], cwd=ROOT, env=env(), stdout=stdout,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, **kw)
    os.close(stdout)
    return proc


def _read_header(proc: subprocess.Popen, rfd: int, header: bytes) -> bytes:
    """Read from ``rfd`` until the line holding ``header`` is complete; what was read."""
    got = b""
    deadline = time.monotonic() + 60
    while not (header in got and got.index(header) < got.rfind(b"\n")):
        ready, _, _ = select.select([rfd], [], [], 0.5)
        if ready:
            chunk = os.read(rfd, 4096)
            got += chunk
            if chunk:
                continue
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            _, err = proc.communicate()
            raise AssertionError(f"no header {header!r}: rc={proc.returncode}\n"
                                 f"stdout: {got!r}\nstderr: {err}")
    return got


def _wait_blocked(proc: subprocess.Popen, rfd: int) -> None:
    """Wait until the tool sleeps in a write to its full stdout pipe."""
    deadline = time.monotonic() + 60
    while True:
        with open(f"/proc/{proc.pid}/wchan") as f:
            wchan = f.read()
        queued = fcntl.ioctl(rfd, termios.FIONREAD, b"\0\0\0\0")
        if "pipe_write" in wchan and int.from_bytes(queued, sys.byteorder) > 3000:
            return
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"the tool never blocked on its output ({wchan})"
        time.sleep(0.05)


def _stop_within(proc: subprocess.Popen, seconds: float) -> None:
    """Wait for ``proc`` to end, at most ``seconds``."""
    try:
        proc.wait(seconds)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"still running {seconds} s after the stop request") from None


def _end(proc: subprocess.Popen) -> None:
    """Kill ``proc`` if a failed check left it running, and delete the tracefs probes
    that SIGKILL leaves (``pybpf probes cleanup --pid``)."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    if proc.returncode == -signal.SIGKILL:
        subprocess.run([sys.executable, "-m", "pybpf", "probes", "cleanup", "--pid",
                        str(proc.pid)], cwd=ROOT, env=env(), capture_output=True, timeout=60)


def _signal_bits(pid: int, field: str) -> int:
    """A signal mask of /proc/PID/status (``SigCgt``: caught, ``SigIgn``: ignored)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1], 16)
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def _has(bits: int, signum: int) -> bool:
    """Whether the mask ``bits`` holds ``signum``."""
    return bool(bits >> (signum - 1) & 1)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stop_with_blocked_output_ends_in_time_and_detaches(workload, signum):
    rfd, wfd = _small_pipe()
    proc = _start(["-c", TRACEFS_TOOL, TESTS, str(workload), ""], wfd)
    try:
        _read_header(proc, rfd, b"HEADER")
        assert probe_events_text(proc.pid), "the tool made no tracefs probe"
        _wait_blocked(proc, rfd)
        proc.send_signal(signum)
        _stop_within(proc, DEADLINE)
        err = proc.stderr.read()
    finally:
        _end(proc)
        os.close(rfd)
    assert proc.returncode == 0, err          # a stop request while running: exit 0
    assert "Traceback" not in err, err
    assert probe_events_text(proc.pid) == ""
    assert programs_loaded(OPENSNOOP_PROGRAMS + [UPROBE_PROGRAM]) == set()


def test_pybpf_run_opensnoop_with_blocked_output_stops(workload):
    """The reviewer's case: ``pybpf run opensnoop`` into a pipe nobody reads."""
    rfd, wfd = _small_pipe()
    proc = _start(["-m", "pybpf", "run", "opensnoop", "-p", str(workload)], wfd)
    try:
        _read_header(proc, rfd, b"PATH")
        _wait_blocked(proc, rfd)
        proc.send_signal(signal.SIGTERM)
        _stop_within(proc, DEADLINE)
        err = proc.stderr.read()
    finally:
        _end(proc)
        os.close(rfd)
    # the events the blocked tool could not take are reported lost, as BCC's tools do;
    # nothing else is said
    assert proc.returncode == 0 and _only_loss_reports(err), err
    assert programs_loaded(OPENSNOOP_PROGRAMS) == set()


def _only_loss_reports(err: str) -> bool:
    """True when every line of ``err`` is a ``Possibly lost N samples`` report."""
    return all(re.fullmatch(r"Possibly lost \d+ samples", line)
               for line in err.splitlines())


def test_second_signal_ends_at_once(workload):
    """With the grace period made an hour, only the second request can end the tool."""
    rfd, wfd = _small_pipe()
    proc = _start(["-c", TRACEFS_TOOL, TESTS, str(workload), "3600"], wfd)
    try:
        _read_header(proc, rfd, b"HEADER")
        _wait_blocked(proc, rfd)
        proc.send_signal(signal.SIGTERM)
        # the first request was taken (the run loop's flag) but the write blocks again
        _wait_blocked(proc, rfd)
        proc.send_signal(signal.SIGTERM)
        _stop_within(proc, DEADLINE)
        err = proc.stderr.read()
    finally:
        _end(proc)
        os.close(rfd)
    assert proc.returncode == 0, err
    assert probe_events_text(proc.pid) == ""
    assert programs_loaded(OPENSNOOP_PROGRAMS + [UPROBE_PROGRAM]) == set()


@pytest.mark.parametrize("signum,status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)],
                         ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("how", ["pybpf-run", "direct"])
def test_signal_while_loading_exits_128_plus_signal(workload, how, signum, status):
    """The tool is stopped (SIGSTOP) as soon as its stop handler is installed, which
    happens when loading starts; the signal is sent while it still has printed nothing,
    then it continues."""
    argv = (["-m", "pybpf", "run", "opensnoop"] if how == "pybpf-run"
            else [os.path.join("programs", "opensnoop.py")]) + ["-p", str(workload)]
    for _attempt in range(5):
        rfd, wfd = os.pipe()
        proc = _start(argv, wfd)
        try:
            while not _has(_signal_bits(proc.pid, "SigCgt"), signal.SIGTERM):
                assert proc.poll() is None, proc.communicate()
                time.sleep(0.001)
            proc.send_signal(signal.SIGSTOP)
            printed = select.select([rfd], [], [], 0)[0]
            if printed:                       # loaded already: not the case under test
                proc.send_signal(signal.SIGCONT)
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)
                continue
            proc.send_signal(signum)
            proc.send_signal(signal.SIGCONT)
            _stop_within(proc, 30)
            err = proc.stderr.read()
            out = os.read(rfd, 4096)
        finally:
            _end(proc)
            os.close(rfd)
        assert proc.returncode == status, err
        assert out == b"" and "Traceback" not in err, (out, err)
        assert programs_loaded(OPENSNOOP_PROGRAMS) == set()
        return
    raise AssertionError("the tool was loaded each time before it could be stopped")


@pytest.mark.parametrize("how", ["pybpf-run", "direct"])
def test_ignored_sigint_stays_ignored(workload, how):
    argv = (["-m", "pybpf", "run", "opensnoop"] if how == "pybpf-run"
            else [os.path.join("programs", "opensnoop.py")]) + ["-p", str(workload)]
    rfd, wfd = os.pipe()
    proc = _start(argv, wfd, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        got = _read_header(proc, rfd, b"PATH")
        assert _has(_signal_bits(proc.pid, "SigIgn"), signal.SIGINT)
        assert not _has(_signal_bits(proc.pid, "SigCgt"), signal.SIGINT)
        proc.send_signal(signal.SIGINT)       # dropped by the kernel: ignored
        # still running and tracing: events keep coming after it
        got = b""
        while got.count(b"\n") < 3:
            ready = select.select([rfd], [], [], 30)[0]
            assert ready and proc.poll() is None, proc.communicate()
            got += os.read(rfd, 4096)
        assert _has(_signal_bits(proc.pid, "SigIgn"), signal.SIGINT)
        proc.send_signal(signal.SIGTERM)
        # keep reading so the stop is the orderly one
        while select.select([rfd], [], [], 30)[0] and os.read(rfd, 65536):
            pass
        _stop_within(proc, 30)
        err = proc.stderr.read()
    finally:
        _end(proc)
        os.close(rfd)
    assert proc.returncode == 0, err
    assert programs_loaded(OPENSNOOP_PROGRAMS) == set()


def _closed_stdout() -> None:
    os.close(1)


@pytest.mark.parametrize("stdout", ["closed", "read-only"])
def test_unusable_stdout_is_a_one_line_error(stdout):
    kw = ({"preexec_fn": _closed_stdout} if stdout == "closed"
          else {"stdout": open(os.devnull, "r")})
    proc = subprocess.run([sys.executable, "-m", "pybpf", "run", "opensnoop", "-d", "1"],
                          cwd=ROOT, env=env(), stderr=subprocess.PIPE, text=True,
                          stdin=subprocess.DEVNULL, timeout=60, **kw)
    if "stdout" in kw:
        kw["stdout"].close()
    assert_one_line_error(Outcome(proc.returncode, "", proc.stderr), "standard output",
                          "closed" if stdout == "closed" else "reading only")


def test_reader_going_away_ends_quietly(workload):
    """``pybpf run opensnoop | head -1``: the tool ends at its next write, status 0."""
    rfd, wfd = os.pipe()
    proc = _start(["-m", "pybpf", "run", "opensnoop", "-p", str(workload)], wfd)
    try:
        _read_header(proc, rfd, b"PATH")
        os.close(rfd)
        rfd = -1
        _stop_within(proc, 30)
        err = proc.stderr.read()
    finally:
        _end(proc)
        if rfd >= 0:
            os.close(rfd)
    assert proc.returncode == 0 and err == "", err
    assert programs_loaded(OPENSNOOP_PROGRAMS) == set()


#: a user's script on the library API: ``LoadedModule.run()`` handles the signals itself.
#: argv: pid to trace
LIBRARY_RUN = textwrap.dedent(r"""
    import sys
    import programs.opensnoop as tool
    from pybpf.dsl import load
    with load(tool, consts={"TARGET_PID": int(sys.argv[1])}) as mod:
        mod.on("events", lambda e: print(e.comm, e.ret, e.path, flush=True))
        mod.run()
        print("RUN RETURNED", file=sys.stderr, flush=True)
""")


def _read_lines(proc: subprocess.Popen, rfd: int, n: int) -> None:
    """Read until ``n`` more lines came (the process is running and tracing)."""
    got = b""
    while got.count(b"\n") < n:
        ready = select.select([rfd], [], [], 30)[0]
        assert ready and proc.poll() is None, proc.communicate()
        got += os.read(rfd, 4096)


def _drain(rfd: int) -> bytes:
    """Everything left in the pipe until its writer closes it."""
    out = b""
    while select.select([rfd], [], [], 30)[0]:
        chunk = os.read(rfd, 65536)
        if not chunk:
            break
        out += chunk
    return out


def test_library_run_keeps_an_ignored_sigint_ignored(workload):
    rfd, wfd = os.pipe()
    proc = _start(["-c", LIBRARY_RUN, str(workload)], wfd,
                  preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        _read_lines(proc, rfd, 1)                 # events come only from inside run()
        assert _has(_signal_bits(proc.pid, "SigIgn"), signal.SIGINT)
        assert not _has(_signal_bits(proc.pid, "SigCgt"), signal.SIGINT)
        proc.send_signal(signal.SIGINT)
        _read_lines(proc, rfd, 3)
        proc.send_signal(signal.SIGTERM)
        out = _drain(rfd)
        _stop_within(proc, 30)
        err = proc.stderr.read()
    finally:
        _end(proc)
        os.close(rfd)
    assert proc.returncode == 0 and "RUN RETURNED" in err, (out[-200:], err)
    assert programs_loaded(OPENSNOOP_PROGRAMS) == set()


def test_library_run_second_signal_cuts_a_blocked_callback_short(workload):
    """The first SIGTERM sets run()'s flag while a callback blocks in a write; the
    second raises in the callback, which run() takes as the end."""
    rfd, wfd = _small_pipe()
    proc = _start(["-c", LIBRARY_RUN, str(workload)], wfd)
    try:
        _read_lines(proc, rfd, 1)
        _wait_blocked(proc, rfd)
        proc.send_signal(signal.SIGTERM)
        _wait_blocked(proc, rfd)                  # the flag alone does not unblock it
        proc.send_signal(signal.SIGTERM)
        # run() returns while its output is still stuck (the script then says so on
        # stderr; it can exit only once stdout drains, as any Python program)
        ready = select.select([proc.stderr], [], [], DEADLINE)[0]
        assert ready, "run() did not return after the second signal"
        said = proc.stderr.readline()
        _drain(rfd)
        _stop_within(proc, 30)
        err = said + proc.stderr.read()
    finally:
        _end(proc)
        os.close(rfd)
    assert proc.returncode == 0 and said == "RUN RETURNED\n", err
    assert programs_loaded(OPENSNOOP_PROGRAMS) == set()
