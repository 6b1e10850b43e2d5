"""programs/trace.py against the gcc-built workload of tracerwork: the openat
tracepoint's file names, malloc's sizes (uprobe, %d of a 64-bit value truncated as
BCC's int), a filter, failed mallocs (uretprobe, retval), -t/-T columns, -M, -U stacks,
two probes at once; BCC's trace on the same workload prints the same lines (its %s of a
tracepoint's user pointer excepted); a kprobe is one typed line here. Nothing stays
loaded."""

import re
import subprocess
import sys
import time

import pytest

import tracerwork
from bpfenv import needs_bpf
from progrun import ROOT, Tool, env, programs_loaded
from pybpf.link.kprobe import kprobes_available

pytestmark = needs_bpf
HEADER = "PID     TID     COMM            FUNC"
OPENAT = 't:syscalls:sys_enter_openat "%s", args->filename'


def _trace(*args, child=None):
    child = child or tracerwork.start()
    tool = Tool("trace", "-p", child.pid, *args, header="PID")
    tracerwork.go(child, keep=True)
    time.sleep(0.3)
    try:
        rc, out, err = tool.stop()
    finally:
        tracerwork.end(child)
    return rc, out, err, child.pid


def rows(text):
    """(pid, tid, comm, func, message) of each event line."""
    return [m.groups()[:4] + (m.group(5).strip(),) for m in re.finditer(
        r"^(?:\S+ )?(\d+) +(\d+) +(\S+) +(\S+) ?(.*)$", text, re.M)]


def test_tracepoint_string_field():
    rc, out, err, pid = _trace(OPENAT)
    assert rc == 0, err
    assert out.startswith(f"{HEADER}             -\n")
    assert rows(out) == [(str(pid), str(pid), "work", "sys_enter_openat",
                          f"/tmp/pybpf-tracer-{i}") for i in range(2)]
    assert not programs_loaded(["probe0"])


def test_uprobe_argument_as_int():
    rc, out, err, pid = _trace('p:c:malloc "%d", arg1')
    assert rc == 0, err
    sizes = [r[4] for r in rows(out) if r[3] == "malloc"]
    # 100..106, then 0x7fffffffffff as a C int (-1), and stdio's buffer (4096)
    assert sizes[:8] == [str(100 + i) for i in range(7)] + ["-1"], out
    assert all(r[0] == r[1] == str(pid) and r[2] == "work" for r in rows(out))


def test_filter_and_64_bit_conversion():
    rc, out, err, pid = _trace('p:c:malloc (arg1 > 104 && arg1 < 0x1000) "size %lu", arg1')
    assert rc == 0, err
    assert [r[4] for r in rows(out)] == ["size 105", "size 106"], out


def test_return_probe_with_retval_filter():
    rc, out, err, pid = _trace("r:c:malloc (retval == 0)")
    assert rc == 0, err
    assert out.startswith(HEADER + "             \n")       # no format: no '-' column
    assert rows(out) == [(str(pid), str(pid), "work", "malloc", "")], out


def test_two_probes_and_timestamps():
    rc, out, err, pid = _trace("-t", OPENAT, 'r:c:malloc (retval == 0) "ret=%d", retval')
    assert rc == 0, err
    assert out.startswith("TIME     " + HEADER)
    lines = [line for line in out.splitlines()[1:] if line.strip()]
    assert len(lines) == 3, out
    assert all(re.match(r"\d+\.\d{6} ", line) for line in lines), out
    assert sorted(r[4] for r in rows(out)) == ["/tmp/pybpf-tracer-0",
                                               "/tmp/pybpf-tracer-1", "ret=0"]


def test_max_events_and_user_stack():
    child = tracerwork.start()
    tool = Tool("trace", "-U", "-M", "2", "-p", child.pid,
                f'{tracerwork.binary()}:fc_leaf "x=%d", arg1', header="PID")
    tracerwork.go(child, keep=True)
    out, err = tool.proc.communicate(timeout=60)      # -M: it ends by itself
    tracerwork.end(child)
    assert tool.proc.returncode == 0, err
    text = "".join(tool.lines) + out
    assert [r[4] for r in rows(text)] == ["x=0", "x=1"], text
    stacks = re.findall(r"^        (\S+)\+0x[0-9a-f]+ \[work\]$", text, re.M)
    assert stacks[:3] == ["fc_leaf", "fc_mid", "main"], text


@pytest.mark.skipif(bool(tracerwork.bcc_missing("trace")),
                    reason=tracerwork.bcc_missing("trace"))
@pytest.mark.parametrize("probe", [OPENAT, 'WORK:fc_other "%d", arg1',
                                   "r:WORK:fc_leaf (retval == 2)",
                                   'p:WORK:fc_other (arg1 > 2) "x %lu %x", arg1, arg1 + 9'])
def test_agrees_with_bcc(probe):
    # one run each, on the workload's own functions (see tracerwork.BCC_DIR)
    probe = probe.replace("WORK", tracerwork.binary())
    child = tracerwork.start()
    theirs = tracerwork.Bcc("trace", "-p", child.pid, probe, header="PID")
    tracerwork.go(child, keep=True)
    time.sleep(0.5)
    _, bout, berr = theirs.stop()
    tracerwork.end(child)
    rc, out, err, pid = _trace(probe)
    assert rc == 0, err
    assert out.splitlines()[0] == bout.splitlines()[0]          # the header
    mine = [r[2:] for r in rows(out)]
    bcc = [r[2:] for r in rows(bout)]
    if probe == OPENAT:
        # BCC 0.26 reads a tracepoint's %s with bpf_probe_read_kernel: a user pointer
        # gives an empty string on x86; the lines are otherwise the same
        bcc = [r[:2] + (m,) for r, m in zip(bcc, (x[2] for x in mine))] \
            if all(r[2] == "" for r in bcc) else bcc
    assert mine and mine == bcc, (out, bout, berr)


@pytest.mark.skipif(not kprobes_available(), reason="this kernel has kprobes")
def test_kprobe_is_one_typed_line_here():
    proc = subprocess.run([sys.executable, "programs/trace.py", 'p::do_sys_open "%s", arg2'],
                          cwd=ROOT, env=env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("trace: probe 'p::do_sys_open \"%s\", arg2' needs kprobes")


@pytest.mark.parametrize("probe,where", [
    ('t:syscalls:sys_enter_openat "%s", args->filenam', "column 35: "
     "syscalls:sys_enter_openat has no field 'filenam'"),
    ('p:c:malloc "%d %d", arg1', "column 12: the format has 2 conversions but 1"),
    ('p:c:malloc (strcmp(arg1, "x"))', "column 13: function calls (strcmp)"),
])
def test_bad_probe_is_a_located_line(probe, where):
    proc = subprocess.run([sys.executable, "programs/trace.py", probe], cwd=ROOT, env=env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"trace: probe {probe!r}: {where}"), proc.stderr
    assert proc.stderr.count("\n") == 1


@pytest.mark.vmtest
@pytest.mark.skipif(bool(kprobes_available()), reason="no kprobes on this kernel")
def test_kprobe_where_kprobes_exist():
    code = ("import os, sys; sys.stdin.readline()\n"
            "for i in range(3):\n    os.path.exists('/nonexistent-pybpf-%d' % i)\n"
            "    try: open('/nonexistent-pybpf-%d' % i)\n    except OSError: pass\n"
            "print('done', flush=True)")
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    tool = Tool("trace", "-p", child.pid, 'r::do_sys_openat2 (retval < 0) "%d", retval',
                header="PID", timeout=120)
    tracerwork.go(child)
    time.sleep(0.5)
    rc, out, err = tool.stop(timeout=120)
    assert rc == 0, err
    assert [r[4] for r in rows(out)] == ["-2"] * 3, out


@pytest.mark.skipif(not tracerwork.has_usdt(), reason="no sys/sdt.h: the workload has no "
                    "USDT probe")
def test_usdt_arguments():
    rc, out, err, pid = _trace(f'u:{tracerwork.binary()}:other (arg1 != 2) "%d %d", arg1, '
                               "arg2")
    assert rc == 0, err
    assert [(r[3], r[4]) for r in rows(out)] == [("other", f"{i} {10 * i}")
                                                 for i in (0, 1, 3, 4)], out
