"""Out-of-range arguments are refused before anything is traced.

The tools (``programs/``): a bad value ends the tool the argparse way, exit status 2,
the usage, then one ``TOOL: error: argument -X/--long: ...`` line naming the option, the
value and the allowed range; no traceback, and no header (the header is printed only
once everything is attached). A pid in range with no process gets a warning and is
traced anyway. The library: the uprobe/kprobe/USDT/perf-event attach calls raise a
:class:`ValueError` naming the argument and its range, with no descriptor and no tracefs
probe definition left behind.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess

import pytest

from bpfenv import BPF_UNAVAILABLE, needs_bpf
from cliharness import Outcome, run
from linkutil import NoLeaks, counter_map, counting_program, probe_events_text
from progrun import Tool

from pybpf.link.kprobe import attach_kprobe
from pybpf.link.perf_event import attach_perf_event
from pybpf.link.uprobe import attach_uprobe, attach_usdt
from pybpf.syscall.bpf import ProgType


def _read_int(path: str) -> int:
    with open(path) as f:
        return int(f.read().split()[0])


PID_MAX = _read_int("/proc/sys/kernel/pid_max") - 1
MAX_RATE = _read_int("/proc/sys/kernel/perf_event_max_sample_rate")
with open("/sys/devices/system/cpu/possible") as _f:
    LAST_CPU = max(int(p.split("-")[-1]) for p in _f.read().strip().split(","))
PID_RANGE = f"1..{PID_MAX}"
SECONDS = "more than 0 and at most 2147483"


def _missing_pid() -> int:
    """A pid in range that no process has now."""
    pid = PID_MAX
    while os.path.exists(f"/proc/{pid}"):
        pid -= 1
    return pid


def assert_usage_error(out: Outcome, tool: str, *words: str) -> None:
    """argparse's refusal: status 2, no traceback, nothing on stdout (nothing was
    attached: the header comes after the attach), the usage lines, and a last line
    ``TOOL: error: ...`` with every one of ``words``."""
    assert out.returncode == 2, (out.returncode, out.stderr, out.stdout[-2000:])
    assert "Traceback" not in out.stderr, out.stderr
    assert out.stdout == "", out.stdout
    lines = out.error_lines
    assert lines[0].startswith("usage:"), out.stderr
    assert all(ln.startswith((" ", "usage:")) for ln in lines[:-1]), out.stderr
    last = lines[-1]
    assert last.startswith(f"{tool}: error: "), out.stderr
    missing = [w for w in words if w.lower() not in last.lower()]
    assert not missing, (missing, last)


BAD_ARGS = [
    # (tool, arguments, words the error line must have)
    ("opensnoop", ["-p", "-5"], ["-p/--pid", "-5", PID_RANGE, "pid_max"]),
    ("opensnoop", ["-p", "999999999"], ["-p/--pid", "999999999", PID_RANGE]),
    ("opensnoop", ["-p", "4294990579"], ["-p/--pid", "4294990579", PID_RANGE]),
    ("opensnoop", ["-p", "0"], ["-p/--pid", "0", PID_RANGE]),
    ("opensnoop", ["-p", "abc"], ["-p/--pid", "'abc'", "not an integer"]),
    ("opensnoop", ["-t", "4294967296"], ["-t/--tid", "4294967296", PID_RANGE]),
    ("opensnoop", ["-u", "4294967295"], ["-u/--uid", "4294967295", "0..4294967294"]),
    ("opensnoop", ["-u", "-1"], ["-u/--uid", "-1", "0..4294967294"]),
    ("opensnoop", ["-d", "-1"], ["-d/--duration", "-1", SECONDS]),
    ("opensnoop", ["-d", "0"], ["-d/--duration", "0", SECONDS]),
    ("opensnoop", ["-d", "nan"], ["-d/--duration", "nan", SECONDS]),
    ("opensnoop", ["-d", "1e12"], ["-d/--duration", "1e12", SECONDS]),
    ("execsnoop", ["-u", "99999999999"], ["-u/--uid", "0..4294967294"]),
    ("execsnoop", ["-P", "-1"], ["-P/--ppid", "-1", PID_RANGE]),
    ("execsnoop", ["--max-args", "0"], ["--max-args", "0", "1 or more"]),
    ("execsnoop", ["--max-args", "100000"], ["--max-args", "100000", "1.."]),
    ("exitsnoop", ["-p", "4294990579"], ["-p/--pid", PID_RANGE]),
    ("killsnoop", ["-s", "999"], ["-s/--signal", "999", "1..64", "name"]),
    ("killsnoop", ["-s", "0"], ["-s/--signal", "1..64"]),
    ("killsnoop", ["-s", "NOSUCH"], ["-s/--signal", "'NOSUCH'", "not a signal", "1..64"]),
    ("killsnoop", ["-p", "-5"], ["-p/--pid", PID_RANGE]),
    ("killsnoop", ["-T", "4294967296"], ["-T/--tpid", "1..2147483647"]),
    ("sigsnoop", ["-s", "65"], ["-s/--signal", "65", "1..64"]),
    ("sigsnoop", ["-p", "4294990579"], ["-p/--pid", PID_RANGE]),
    ("runqlat", ["-p", "0"], ["-p/--pid", PID_RANGE]),
    ("runqlat", ["0"], ["interval", "0", "1..2147483"]),
    ("runqlat", ["1", "0"], ["count", "0", "1 or more"]),
    ("biolatency", ["-5"], ["interval", "-5", "1..2147483"]),
    ("biolatency", ["3000000"], ["interval", "3000000", "1..2147483"]),
    ("hardirqs", ["-c", str(LAST_CPU + 1)], ["-c/--cpu", f"0..{LAST_CPU}"]),
    ("hardirqs", ["1", "-3"], ["outputs", "-3", "1 or more"]),
    ("softirqs", ["-c", "-1"], ["-c/--cpu", f"0..{LAST_CPU}"]),
    ("syscount", ["-T", "-3"], ["-T/--top", "-3", "1 or more"]),
    ("syscount", ["-i", "0"], ["-i/--interval", "0", "1..2147483"]),
    ("syscount", ["-d", "-2"], ["-d/--duration", "-2", "1..2147483"]),
    ("syscount", ["-p", "4294990579"], ["-p/--pid", PID_RANGE]),
    ("tcpconnect", ["-P", "70000"], ["-P/--port", "70000", "1..65535"]),
    ("tcpconnect", ["-u", "4294967296"], ["-u/--uid", "0..4294967294"]),
    ("tcpconnect", ["-p", "4294990579"], ["-p/--pid", PID_RANGE]),
    ("tcplife", ["-L", "65536"], ["-L/--localport", "1..65535"]),
    ("tcplife", ["-D", "0"], ["-D/--remoteport", "1..65535"]),
    ("tcplife", ["-p", "4294990579"], ["-p/--pid", PID_RANGE]),
    ("funclatency", ["-p", "-5", "vfs_read"], ["-p/--pid", PID_RANGE]),
    ("funclatency", ["-i", "0", "vfs_read"], ["-i/--interval", "1..2147483"]),
    ("funclatency", ["-d", "-1", "vfs_read"], ["-d/--duration", "1..2147483"]),
    ("profile", ["-F", "0"], ["-F/--frequency", "0", f"1..{MAX_RATE}",
                              "perf_event_max_sample_rate"]),
    ("profile", ["-F", "100000000"], ["-F/--frequency", "100000000", f"1..{MAX_RATE}"]),
    ("profile", ["-F", "-5"], ["-F/--frequency", "-5", f"1..{MAX_RATE}"]),
    ("profile", ["-p", "4294990579"], ["-p/--pid", PID_RANGE]),
    ("profile", ["-L", "-1"], ["-L/--tid", PID_RANGE]),
    ("profile", ["-C", str(LAST_CPU + 1)], ["-C/--cpu", f"0..{LAST_CPU}"]),
    ("profile", ["0"], ["duration", "0", "1..2147483"]),
]


@pytest.mark.parametrize("tool,args,words", BAD_ARGS,
                         ids=[f"{t} {' '.join(a)}" for t, a, _ in BAD_ARGS])
def test_tool_refuses_bad_value(tool, args, words):
    assert_usage_error(run(args, tool=tool), tool, *words)


def test_all_tools_refuse_a_pid_beyond_32_bits():
    """Every tool with a -p option: 4294990579 (23283 + 2**32) is not pid 23283."""
    for tool in ("opensnoop", "exitsnoop", "killsnoop", "sigsnoop", "runqlat", "syscount",
                 "tcpconnect", "tcplife", "profile"):
        out = run(["-p", str(2**32 + 23283)], tool=tool)
        assert_usage_error(out, tool, "-p/--pid", PID_RANGE)


# -- valid values still work -----------------------------------------------------------

@needs_bpf
def test_missing_pid_warns_and_traces():
    """A pid in range with no process: one warning line, then the tool runs (-d 1)."""
    pid = _missing_pid()
    out = run(["-p", str(pid), "-d", "1"], tool="opensnoop")
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    assert out.error_lines == [f"opensnoop: warning: no process {pid} (yet): tracing it "
                               f"if it appears"], out.stderr
    assert out.stdout.startswith("PID"), out.stdout


@needs_bpf
def test_profile_valid_frequency_runs():
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        out = run(["-F", "49", "-p", str(sleeper.pid), "1"], tool="profile")
    finally:
        sleeper.kill()
        sleeper.wait()
    assert out.returncode == 0, out.stderr
    assert out.stderr == "", out.stderr
    assert f"Sampling at 49 Hertz of PID {sleeper.pid}" in out.stdout, out.stdout


KILL_HEADER = "TIME      PID     COMM             SIG"


@needs_bpf
@pytest.mark.parametrize("spelling", ["9", "KILL", "sigkill"])
def test_killsnoop_signal_by_number_or_name(spelling):
    """-s 9, -s KILL, -s sigkill: the SIGKILL is reported, the SIGTERM is not."""
    tool = Tool("killsnoop", "-s", spelling, header=KILL_HEADER)
    victims = [subprocess.Popen(["sleep", "60"]) for _ in range(2)]
    os.kill(victims[0].pid, signal.SIGTERM)
    os.kill(victims[1].pid, signal.SIGKILL)
    for v in victims:
        v.wait()
    rc, out, err = tool.stop()
    assert rc == 0, err
    rows = [ln.split() for ln in out.splitlines()[1:] if ln.strip()]
    mine = [(int(f[3]), int(f[4])) for f in rows if f[1] == str(os.getpid())]
    assert mine == [(9, victims[1].pid)], out


# -- the library -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def prog():
    if BPF_UNAVAILABLE:
        pytest.skip(BPF_UNAVAILABLE)
    counts = counter_map()
    p = counting_program(ProgType.KPROBE, counts, tgid=os.getpid(), name="hard_count")
    yield p, counts
    p.close()
    counts.close()


LIBC_SIZE_WORDS = ["uprobe offset", "0x0..", "its size is"]

BAD_UPROBES = [
    # (keyword arguments, words of the ValueError)
    (dict(offset=2**63), ["offset 0x8000000000000000", "0x0..0x7fffffffffffffff"]),
    (dict(offset=-1), ["offset -0x1", "0x0..0x7fffffffffffffff"]),
    (dict(symbol="getpid", offset=-4), ["offset -0x4", "0x0..0x7fffffffffffffff"]),
    (dict(symbol="getpid+-8"), ["offset -0x8", "'getpid+-8'"]),
    (dict(offset=2**40), ["0x10000000000"] + LIBC_SIZE_WORDS),
    (dict(symbol="getpid", offset=2**40), LIBC_SIZE_WORDS),
    (dict(symbol="getpid", pid=2**32 + os.getpid()), [f"pid {2**32 + os.getpid()}",
                                                      "0..2147483647"]),
    (dict(symbol="getpid", pid=-2), ["pid -2", "0..2147483647", "-1"]),
    (dict(address=-1), ["address -0x1", "0x0..0xffffffffffffffff"]),
    (dict(address=2**64), ["address 0x10000000000000000", "0x0..0xffffffffffffffff"]),
    (dict(symbol="getpid", cookie=2**64), ["cookie 0x10000000000000000"]),
    (dict(symbol="getpid", ref_ctr_offset=-1), ["ref_ctr_offset -0x1"]),
]


@pytest.mark.parametrize("mode", ["pmu", "legacy"])
@pytest.mark.parametrize("kwargs,words", BAD_UPROBES,
                         ids=[repr(k) for k, _ in BAD_UPROBES])
def test_attach_uprobe_refuses_out_of_range(prog, mode, kwargs, words):
    p, _ = prog
    before = probe_events_text()
    with NoLeaks():
        with pytest.raises(ValueError) as info:
            attach_uprobe(p, "c", mode=mode, **kwargs)
    message = str(info.value)
    assert all(w in message for w in words), (words, message)
    assert probe_events_text() == before


@pytest.mark.parametrize("kwargs,words", [
    (dict(symbol="vfs_read", offset=2**32), ["offset 0x100000000", "0x0..0xffffffff"]),
    (dict(symbol="vfs_read", offset=-1), ["offset -0x1", "0x0..0xffffffff"]),
    (dict(symbol="vfs_read+-4"), ["offset -0x4"]),
    (dict(address=0), ["address 0x0", "0x1..0xffffffffffffffff"]),
    (dict(address=2**64), ["address 0x10000000000000000"]),
    (dict(address=2**64 - 16, offset=32), ["offset 0x20", "0x0..0xf"]),
    (dict(symbol="vfs_read", retprobe=True, maxactive=5000), ["maxactive 5000", "0..4096"]),
    (dict(symbol="vfs_read", cookie=-1), ["cookie -0x1"]),
])
def test_attach_kprobe_refuses_out_of_range(prog, kwargs, words):
    """Checked before kprobe support is looked at, so this runs without kprobes too."""
    p, _ = prog
    before = probe_events_text()
    with NoLeaks():
        with pytest.raises(ValueError) as info:
            attach_kprobe(p, **kwargs)
    message = str(info.value)
    assert all(w in message for w in words), (words, message)
    assert probe_events_text() == before


def test_attach_usdt_and_perf_event_refuse_a_pid_beyond_32_bits(prog):
    p, _ = prog
    wide = 2**32 + os.getpid()
    with NoLeaks():
        with pytest.raises(ValueError, match=f"pid {wide} is out of range"):
            attach_usdt(p, "c", "libc:setjmp", pid=wide)
        with pytest.raises(ValueError, match=f"pid {wide} is out of range"):
            attach_perf_event(p, sample_freq=49, pid=wide)
        with pytest.raises(ValueError, match="sample_freq 0 is out of range"):
            attach_perf_event(p, sample_freq=0)


def test_valid_uprobe_offset_still_counts(prog):
    """The in-range forms still attach and count this process's getpid() calls."""
    p, counts = prog
    from pybpf.link.uprobe import resolve_uprobe
    path, off = resolve_uprobe("c", "getpid")
    getpid = ctypes.CDLL("libc.so.6").getpid
    with NoLeaks():
        for kwargs in (dict(symbol="getpid"), dict(offset=off),
                       dict(symbol="getpid", pid=os.getpid())):
            counts[0] = 0
            with attach_uprobe(p, path, **kwargs):
                for _ in range(100):
                    getpid()
            assert counts[0] >= 100, kwargs
