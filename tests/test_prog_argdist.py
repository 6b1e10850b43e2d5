"""programs/argdist.py against the gcc-built workload of tracerwork: a histogram of
malloc's sizes (-H), counts per value with a filter (-C), counts of a return value
expression, a tracepoint's total calls; BCC's argdist on the same workload agrees; bad
specifiers are one located line. Nothing stays loaded."""

import re
import subprocess
import sys

import pytest

import tracerwork
from bpfenv import needs_bpf
from progrun import ROOT, env, programs_loaded
from pybpf.link.kprobe import kprobes_available

pytestmark = needs_bpf
MALLOC_SIZE = "p:c:malloc(size_t size):size_t:size"


def _argdist(*args, command=None, attached=tracerwork.wait_attached, environ=None):
    """Run argdist (or ``command``) for one 3-second interval over the workload."""
    child = tracerwork.start()
    cmd = command or [sys.executable, "programs/argdist.py"]
    tool = subprocess.Popen([*cmd, "-p", str(child.pid), "-i", "3", "-n", "1", *args],
                            cwd=ROOT, env=environ or env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        attached(tool)
        tracerwork.go(child, keep=True)
        out, err = tool.communicate(timeout=120)
    finally:
        if tool.poll() is None:
            tool.kill()
            tool.communicate()
        tracerwork.end(child)
    return tool.returncode, out, err


def histogram(text):
    """{bucket text: count} of the non-zero rows."""
    return {m.group(1): int(m.group(2)) for m in
            re.finditer(r"^\s+(\d+ -> \d+)\s+: (\d+)\s", text, re.M) if int(m.group(2))}


def counts(text):
    """{EVENT: COUNT} of the frequency tables."""
    return {m.group(2): int(m.group(1)) for m in
            re.finditer(r"^\t(\d+) +(.+)$", text, re.M)}


def test_histogram_of_sizes():
    rc, out, err = _argdist("-H", MALLOC_SIZE)
    assert rc == 0, err
    assert re.match(r"\[\d\d:\d\d:\d\d\]\n" + re.escape(MALLOC_SIZE) + "\n", out), out
    assert "               size                          : count     distribution" in out
    # 100..106, stdio's 4096-byte buffer, and 0x7fffffffffff
    assert histogram(out) == {"64 -> 127": 7, "4096 -> 8191": 1,
                              "70368744177664 -> 140737488355327": 1}, out
    assert not programs_loaded(["probe0"])


def test_counts_with_filter_and_label():
    rc, out, err = _argdist("-C", f"{MALLOC_SIZE}:size < 103#small")
    assert rc == 0, err
    assert "small\n\tCOUNT      EVENT\n" in out
    assert counts(out) == {"size = 100": 1, "size = 101": 1, "size = 102": 1}


def test_counts_of_a_return_expression_and_total_calls():
    # both probes attached before the workload goes (its getppid calls come early)
    rc, out, err = _argdist("-C", "r:c:malloc():int:retval == 0",
                            "-C", "t:syscalls:sys_enter_getppid()",
                            attached=lambda t: tracerwork.wait_attached(t, links=2))
    assert rc == 0, err
    assert counts(out) == {"retval == 0 = 0": 8, "retval == 0 = 1": 1, "total calls": 3}


@pytest.mark.skipif(bool(tracerwork.bcc_missing("argdist")),
                    reason=tracerwork.bcc_missing("argdist"))
@pytest.mark.parametrize("flag,spec", [("-H", "p:WORK:fc_other(long x):long:x"),
                                       ("-C", "p:WORK:fc_other(long x):long:x:x > 1"),
                                       ("-C", "r:WORK:fc_leaf():long:$retval")])
def test_agrees_with_bcc(flag, spec):
    # one run each, on the workload's own functions (see tracerwork.BCC_DIR)
    spec = spec.replace("WORK", tracerwork.binary())
    brc, bout, berr = _argdist(flag, spec, command=[tracerwork.BCC_PYTHON, "-u",
                                                     tracerwork.bcc_tool("argdist")],
                               attached=tracerwork.wait_perf_events,
                               environ=tracerwork.bcc_environ())
    rc, out, err = _argdist(flag, spec)
    assert rc == 0, err
    pick = histogram if flag == "-H" else counts
    assert pick(out) and pick(out) == pick(bout), (out, bout, berr)


@pytest.mark.parametrize("spec,where", [
    ("p:c", "column 1: at least the probe type, library and function signature"),
    ("p:c:malloc", "column 5: function signature 'malloc' has an invalid format"),
    ("p:c:malloc(size_t size):char*:size", "column 25: unsupported type 'char*'"),
    ("p:c:malloc(size_t size):size_t:siz", "column 32: unsupported 'siz'"),
    ("t:syscalls:sys_enter_getppid()", "column 31: histograms need an expression"),
])
def test_bad_specifier_is_a_located_line(spec, where):
    proc = subprocess.run([sys.executable, "programs/argdist.py", "-H", spec], cwd=ROOT,
                          env=env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"argdist: probe {spec!r}: {where}"), proc.stderr
    assert proc.stderr.count("\n") == 1


@pytest.mark.skipif(not kprobes_available(), reason="this kernel has kprobes")
def test_kprobe_specifier_is_one_typed_line_here():
    proc = subprocess.run([sys.executable, "programs/argdist.py", "-C",
                           "p::do_sys_open(int dfd):int:dfd"], cwd=ROOT, env=env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    assert "needs kprobes, which this kernel lacks" in proc.stderr


@pytest.mark.skipif(not tracerwork.has_usdt(), reason="no sys/sdt.h: the workload has no "
                    "USDT probe")
def test_usdt_argument_counts():
    rc, out, err = _argdist("-C", f"u:{tracerwork.binary()}:other():long,long:arg1,arg2")
    assert rc == 0, err
    assert counts(out) == {f"arg1 = {i}, arg2 = {10 * i}": 1 for i in range(5)}
