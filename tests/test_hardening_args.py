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
from cliharness import Outcome, assert_one_line_error, run
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
#: the most milliseconds whose nanoseconds fit a u64
MAX_MS = (2**64 - 1) // 1000000
#: a process that exists (the checks after parsing need one to get that far)
MY_PID = str(os.getpid())
OPENAT = "t:syscalls:sys_enter_openat()"


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
    # the tools of issue #22
    ("tcpstates", ["-L", "70000"], ["-L/--localport", "70000", "1..65535"]),
    ("tcpstates", ["-D", "0"], ["-D/--remoteport", "0", "1..65535"]),
    ("tcpstates", ["-L", "80,,81"], ["-L/--localport", "''", "not an integer", "1..65535"]),
    ("tcpstates", ["-L", ",".join(map(str, range(1, 100)))], ["-L/--localport",
                                                                "at most 64 ports"]),
    ("tcpretrans", ["-4", "-6"], ["-6/--ipv6", "not allowed with", "-4/--ipv4"]),
    ("tcpretrans", ["-c", "5"], ["unrecognized arguments", "5"]),
    ("tcpconnlat", ["inf"], ["duration_ms", "inf", f"0..{MAX_MS}"]),
    ("tcpconnlat", ["nan"], ["duration_ms", "nan", f"0..{MAX_MS}"]),
    ("tcpconnlat", ["1e30"], ["duration_ms", "1e30", f"0..{MAX_MS}", "u64"]),
    ("tcpconnlat", ["-p", "4294990579"], ["-p/--pid", PID_RANGE]),
    ("tcprtt", ["-i", "4294967297"], ["-i/--interval", "4294967297", "1..2147483"]),
    ("tcprtt", ["-d", str(2**64 + 1)], ["-d/--duration", str(2**64 + 1), "1..2147483"]),
    ("tcprtt", ["-p", "70000"], ["-p/--lport", "70000", "1..65535"]),
    ("tcprtt", ["-A", "1.2.3.300"], ["-A/--raddr", "'1.2.3.300'", "IPv4 or IPv6"]),
    ("tcpaccept", ["-P", "70000"], ["-P/--port", "70000", "1..65535"]),
    ("tcpaccept", ["-P", "80,x"], ["-P/--port", "'x'", "not an integer"]),
    ("tcpaccept", ["-p", "0"], ["-p/--pid", "0", PID_RANGE]),
    ("bootstrap", ["-d", "-1"], ["-d/--duration", "-1", f"0..{2**64 // 1000000 - 1}"]),
    ("bootstrap", ["-d", str(2**64)], ["-d/--duration", str(2**64),
                                        f"0..{2**64 // 1000000 - 1}"]),
    ("biopattern", ["-d", "nosuchdisk"], ["-d/--disk", "'nosuchdisk'", "/sys/class/block"]),
    ("biopattern", ["-d", "../block/loop0"], ["-d/--disk", "no such disk"]),
    ("biopattern", ["0"], ["interval", "0", "1..2147483"]),
    ("biopattern", ["1", "0"], ["count", "0", "1 or more"]),
    ("tcpktcount", ["-i", "nosuchif0"], ["-i/--interface", "'nosuchif0'", "/sys/class/net"]),
    ("tcpktcount", ["-i", "x" * 16], ["-i/--interface", "x" * 16, "1..15 characters"]),
    ("tcpktcount", ["-i", "lo", "--mode", "tc"], ["--mode", "invalid choice", "'tcx'"]),
    ("tcpktcount", ["-i", "lo", "0"], ["interval", "0", "1..2147483"]),
    ("memleak", ["-c", "nosuchcommand_xyz"], ["-c/--command", "'nosuchcommand_xyz'",
                                              "not found in $PATH"]),
    ("memleak", ["-c", "/etc/passwd"], ["-c/--command", "not an executable file"]),
    ("memleak", ["-c", ""], ["-c/--command", "empty command"]),
    ("memleak", ["-p", MY_PID, "-o", "-1"], ["-o/--older", "-1", f"0..{MAX_MS}"]),
    ("memleak", ["-p", MY_PID, "-z", "100", "-Z", "10"], ["-z/--min-size", "100",
                                                          "-Z/--max-size", "10"]),
    ("memleak", ["-p", MY_PID, "-Z", str(2**64)], ["-Z/--max-size", f"0..{2**64 - 1}"]),
    ("memleak", ["-p", MY_PID, "-s", "0"], ["-s/--sample-rate", "0", f"1..{2**64 - 1}"]),
    ("memleak", ["-p", MY_PID, "-O", "nosuchlib_xyz"], ["-O/--obj", "'nosuchlib_xyz'",
                                                        "unknown library"]),
    ("memleak", ["-p", MY_PID, "-O", "/etc/passwd"], ["-O/--obj", "not an ELF file"]),
    ("funccount", ["-c", str(LAST_CPU + 1), "vfs_read"], ["-c/--cpu", f"0..{LAST_CPU}"]),
    ("funccount", ["-d", "99999999999", "vfs_read"], ["-d/--duration", "1..2147483"]),
    ("funccount", ["-p", "0", "vfs_read"], ["-p/--pid", PID_RANGE]),
    ("stackcount", ["-D", "0", "vfs_read"], ["-D/--duration", "0", "1..2147483"]),
    ("stackcount", ["-c", "-1", "vfs_read"], ["-c/--cpu", f"0..{LAST_CPU}"]),
    ("stackcount", ["-p", "4294990579", "vfs_read"], ["-p/--pid", PID_RANGE]),
    ("trace", ["-Z", "465", "do_nanosleep"], ["-Z/--string-size", "465", "1..464",
                                             "512-byte BPF stack"]),
    ("trace", ["-Z", "99999999999", "do_nanosleep"], ["-Z/--string-size", "1..464"]),
    ("trace", ["-b", "3", "do_nanosleep"], ["-b/--buffer-pages", "3", "power of two",
                                           "1..524288"]),
    ("trace", ["-b", "1048576", "do_nanosleep"], ["-b/--buffer-pages", "1..524288"]),
    ("trace", ["-L", "4294990579", "do_nanosleep"], ["-L/--tid", PID_RANGE]),
    ("argdist", ["-i", "99999999999", "-C", OPENAT], ["-i/--interval", "1..2147483"]),
    ("argdist", ["-d", "0", "-C", OPENAT], ["-d/--duration", "0", "1..2147483"]),
    ("argdist", ["-n", "0", "-C", OPENAT], ["-n/--number", "0", "1 or more"]),
    ("argdist", ["-t", "0", "-C", OPENAT], ["-t/--tid", PID_RANGE]),
    # the lessons of programs/tutorial/ that take arguments
    ("tutorial.10_hello_fields", ["-p", "-5"], ["-p/--pid", "-5", PID_RANGE]),
    ("tutorial.11_sync_timing", ["-p", "4294990579"], ["-p/--pid", PID_RANGE]),
    ("tutorial.12_sync_count", ["-p", "0"], ["-p/--pid", "0", PID_RANGE]),
    ("tutorial.14_hello_perf_output", ["-p", "abc"], ["-p/--pid", "'abc'", "not an integer"]),
    ("tutorial.15_bitehist", ["0"], ["duration", "0", "1..2147483"]),
    ("tutorial.15_bitehist", ["-d", "nosuchdisk"], ["-d/--disk", "'nosuchdisk'"]),
    ("tutorial.16_vfsreadlat", ["nan"], ["interval", "nan", SECONDS]),
    ("tutorial.16_vfsreadlat", ["1", "0"], ["count", "0", "1 or more"]),
    ("tutorial.18_strlen_count", ["-p", "0"], ["-p/--pid", "0", PID_RANGE]),
    ("tutorial.19_usdt", ["/nonexistent/server"], ["binary", "'/nonexistent/server'",
                                                   "no such file", "gcc"]),
    ("tutorial.20_task_switch", ["-p", "-1"], ["-p/--pid", "-1", PID_RANGE]),
    ("tutorial.20_task_switch", ["--", "-3"], ["duration", "-3", "1..2147483"]),
]


@pytest.mark.parametrize("tool,args,words", BAD_ARGS,
                         ids=[f"{t} {' '.join(a)}" for t, a, _ in BAD_ARGS])
def test_tool_refuses_bad_value(tool, args, words):
    """``tutorial.NAME`` runs the lesson programs/tutorial/NAME.py, whose name is NAME."""
    assert_usage_error(run(args, tool=tool), tool.rsplit(".", 1)[-1], *words)


BAD_PROBES = [
    # (tool, arguments, words): a malformed probe is one line naming the column, status 1
    ("funccount", ["x:y:z:w"], ["probe 'x:y:z:w'", "column 6", "at most 3"]),
    ("funccount", ["-r", "t:sched:["], ["column 9", "bad regular expression"]),
    ("stackcount", [""], ["probe ''", "column 1", "empty pattern"]),
    ("stackcount", ["t:sched"], ["column 1", "'t' is read as a library", "t:GROUP:EVENT"]),
    ("stackcount", ["t:nosuchgroup:nosuchevent"], ["column 15", "nothing matches"]),
    ("trace", ['t:syscalls:sys_enter_openat "%d"'], ["column 29", "1 conversions",
                                                     "0 values"]),
    ("trace", ["t:syscalls:sys_enter_openat (arg1"], ["column 29", "unbalanced '('"]),
    ("argdist", ["-C", "bad"], ["probe 'bad'", "column 1", "p:c:malloc"]),
    ("argdist", ["-H", "t:syscalls:sys_enter_openat():int:nosuch"],
     ["column 35", "unsupported 'nosuch'"]),
]


@pytest.mark.parametrize("tool,args,words", BAD_PROBES,
                         ids=[f"{t} {' '.join(a)}" for t, a, _ in BAD_PROBES])
def test_tool_refuses_bad_probe(tool, args, words):
    """Refused before anything is loaded: one line ``TOOL: probe ...: column N: ...``."""
    out = run(args, tool=tool)
    assert_one_line_error(out, *words, status=1)
    assert out.error_lines[0].startswith(f"{tool}: probe "), out.stderr
    assert out.stdout == "", out.stdout


def test_all_tools_refuse_a_pid_beyond_32_bits():
    """Every tool with a -p option: 4294990579 (23283 + 2**32) is not pid 23283."""
    for tool in ("opensnoop", "exitsnoop", "killsnoop", "sigsnoop", "runqlat", "syscount",
                 "tcpconnect", "tcplife", "profile", "tcpconnlat", "tcpaccept", "memleak",
                 "funccount", "stackcount", "trace", "argdist", "tutorial.10_hello_fields",
                 "tutorial.18_strlen_count", "tutorial.20_task_switch"):
        out = run(["-p", str(2**32 + 23283)], tool=tool)
        assert_usage_error(out, tool.rsplit(".", 1)[-1], "-p/--pid", PID_RANGE)


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
