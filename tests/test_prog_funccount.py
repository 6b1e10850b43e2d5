"""programs/funccount.py against the gcc-built workload of tracerwork: uprobes over a
binary's functions (-p), libc's malloc, tracepoints of a process the test controls
(-p), intervals with timestamps (-T -i), regular expressions (-r); BCC's funccount on
the same workload agrees; a kernel-function pattern on a kernel without kprobes is
one typed line naming the feature. Nothing stays loaded."""

import os
import re
import signal
import subprocess
import sys
import time

import pytest

import tracerwork
from bpfenv import needs_bpf
from progrun import Tool, programs_loaded
from pybpf.link.kprobe import kprobes_available

pytestmark = needs_bpf
NO_KPROBES = kprobes_available()
HEADER = "Tracing "


def _count(*args, child=None):
    """Run funccount with ``args`` over the workload ``child`` (started here if None);
    returns (returncode, stdout, stderr)."""
    child = child or tracerwork.start()
    tool = Tool("funccount", "-p", child.pid, *args, header=HEADER)
    tracerwork.go(child)
    time.sleep(0.2)
    return tool.stop()


def test_binary_functions_counted_per_function():
    exe = tracerwork.binary()
    rc, out, err = _count(f"{exe}:fc_*")
    assert rc == 0, err
    assert f'Tracing 3 functions for "{exe}:fc_*"... Hit Ctrl-C to end.' in out
    assert f"{'FUNC':<36} {'COUNT':>8}" in out
    assert tracerwork.table(out, "FUNC") == {"fc_leaf": 3, "fc_mid": 3, "fc_other": 5}
    # least first, as BCC sorts
    assert re.search(r"^fc_(leaf|mid) +3\nfc_(leaf|mid) +3\nfc_other +5\n", out, re.M), out
    assert out.rstrip().endswith("Detaching...")
    assert not programs_loaded(["funccount"])


def test_regexp_pattern():
    rc, out, err = _count("-r", f"{tracerwork.binary()}:fc_(mid|other)$")
    assert rc == 0, err
    assert tracerwork.table(out, "FUNC") == {"fc_mid": 3, "fc_other": 5}


def test_tracepoint_of_one_process():
    # the workload's only getppid calls are fc_leaf's three; other processes filtered out
    rc, out, err = _count("t:syscalls:sys_enter_getpp*")
    assert rc == 0, err
    assert 'Tracing 1 functions for "t:syscalls:sys_enter_getpp*"' in out
    assert tracerwork.table(out, "FUNC") == {"syscalls:sys_enter_getppid": 3}


def test_tracepoint_wildcard_counts_forks():
    code = ("import os, sys; sys.stdin.readline()\n"
            "for _ in range(4):\n    p = os.fork()\n    p or os._exit(0)\n"
            "    os.waitpid(p, 0)\nprint('done', flush=True)")
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    rc, out, err = _count("t:sched:sched_process_f*", child=child)
    assert rc == 0, err
    assert "Tracing 2 functions" in out              # sched_process_fork, _free
    assert tracerwork.table(out, "FUNC").get("sched:sched_process_fork") == 4, out


def test_intervals_with_timestamps():
    child = tracerwork.start()
    tool = Tool("funccount", "-T", "-i", "1", "-p", child.pid,
                f"{tracerwork.binary()}:fc_other", header=HEADER)
    tracerwork.go(child)
    time.sleep(2.5)
    rc, out, err = tool.stop()
    assert rc == 0, err
    blocks = re.findall(r"^\d\d:\d\d:\d\d\nFUNC +COUNT\n((?:\S+ +\d+\n)*)", out, re.M)
    assert len(blocks) >= 2, out                     # one per second, and the last
    counted = [b for b in blocks if b]
    assert counted == [f"{'fc_other':<36} {5:>8}\n"], out   # reset after each interval


def test_libc_malloc_count():
    rc, out, err = _count("c:malloc")
    assert rc == 0, err
    # 8 in the loop and the failing one; stdio's buffer may add one
    assert tracerwork.table(out, "FUNC").get("malloc", 0) >= 8, out


@pytest.mark.skipif(bool(tracerwork.bcc_missing("funccount")),
                    reason=tracerwork.bcc_missing("funccount"))
# not tracepoints: BCC 0.26's funccount fails on them printing the table ('str' object has
# no attribute 'decode')
@pytest.mark.parametrize("which", ["fc_*", "-r fc_(mid|other)"])
def test_agrees_with_bcc(which):
    # one run each, one after the other, on the workload's own functions (see
    # tracerwork.BCC_DIR)
    *flags, name = which.split()
    pattern = [*flags, f"{tracerwork.binary()}:{name}"]
    child = tracerwork.start()
    theirs = tracerwork.Bcc("funccount", "-p", child.pid, *pattern, header="Tracing")
    tracerwork.go(child)
    time.sleep(0.3)
    brc, bout, berr = theirs.stop()
    rc, out, err = _count(*pattern)
    assert rc == 0, err
    mine, bcc = tracerwork.table(out, "FUNC"), tracerwork.table(bout, "FUNC")
    assert mine and mine == bcc, (out, bout, berr)


@pytest.mark.skipif(not NO_KPROBES, reason="this kernel has kprobes")
def test_kernel_function_without_kprobes_is_one_typed_line():
    proc = subprocess.run([sys.executable, "programs/funccount.py", "vfs_*"],
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          capture_output=True, text=True, timeout=60,
                          env=__import__("progrun").env())
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("funccount: probe 'vfs_*' needs kprobes"), lines
    assert "t:GROUP:EVENT" in lines[0]


@pytest.mark.vmtest
@pytest.mark.skipif(bool(NO_KPROBES), reason=NO_KPROBES)
def test_kernel_functions_where_kprobes_exist():
    # the directory is made before the tool starts: tempfile's first mkdtemp() writes
    # and unlinks a probe file of its own (a seventh do_unlinkat)
    code = ("import os, sys, tempfile; d = tempfile.mkdtemp(); print('ready', flush=True)\n"
            "sys.stdin.readline()\n"
            "for i in range(6):\n    p = os.path.join(d, str(i)); open(p, 'w').close()"
            "; os.unlink(p)\nos.rmdir(d); print('done', flush=True)")
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline() == "ready\n"
    tool = Tool("funccount", "-p", child.pid, "do_unlinkat", header=HEADER, timeout=120)
    tracerwork.go(child)
    time.sleep(0.5)
    rc, out, err = tool.stop(timeout=120)
    assert rc == 0, err
    assert tracerwork.table(out, "FUNC") == {"do_unlinkat": 6}


def test_sigterm_ends_and_detaches():
    child = tracerwork.start()
    tool = Tool("funccount", "-p", child.pid, f"{tracerwork.binary()}:fc_*", header=HEADER)
    tracerwork.go(child)
    time.sleep(0.2)
    rc, out, err = tool.stop(signal.SIGTERM)
    assert rc == 0, err
    assert tracerwork.table(out, "FUNC") == {"fc_leaf": 3, "fc_mid": 3, "fc_other": 5}
    assert not programs_loaded(["funccount"])


@pytest.mark.skipif(not tracerwork.has_usdt(), reason="no sys/sdt.h: the workload has no "
                    "USDT probe")
def test_usdt_probes():
    rc, out, err = _count(f"u:{tracerwork.binary()}:oth*")
    assert rc == 0, err
    assert tracerwork.table(out, "FUNC") == {"other": 5}
