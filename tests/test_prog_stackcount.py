"""programs/stackcount.py against the gcc-built workload of tracerwork: the getppid
tracepoint's user stack is fc_leaf <- fc_mid <- main three times (-p, -U), its kernel
stack the system-call entry (-K); a uprobe's stack (-p); folded output (-f); per
process (-P); BCC's stackcount on the same workload agrees. Nothing stays loaded."""

import re
import signal
import subprocess
import sys
import time

import pytest

import tracerwork
from bpfenv import needs_bpf
from progrun import ROOT, Tool, env, programs_loaded

pytestmark = needs_bpf
GETPPID = "t:syscalls:sys_enter_getppid"


def _stacks(*args, child=None, header="Tracing "):
    child = child or tracerwork.start()
    tool = Tool("stackcount", *args, header=header)
    tracerwork.go(child, keep=True)
    time.sleep(0.2)
    try:
        return tool.stop() + (child.pid,)
    finally:
        tracerwork.end(child)


def blocks(text):
    """The stacks printed: [(frames, count)], frames innermost first."""
    body = text.split("Hit Ctrl-C to end.", 1)[-1].split("Detaching...", 1)[0]
    found = []
    for chunk in body.strip("\n").split("\n\n"):
        lines = [line.strip() for line in chunk.strip("\n").splitlines()]
        if lines and lines[-1].isdigit():
            found.append((lines[:-1], int(lines[-1])))
    return found


def test_tracepoint_user_stack_is_the_caller_chain():
    child = tracerwork.start()
    rc, out, err, pid = _stacks("-U", "-p", child.pid, GETPPID, child=child)
    assert rc == 0, err
    assert f'Tracing 1 functions for "{GETPPID}"... Hit Ctrl-C to end.' in out
    (frames, count), = blocks(out)
    assert count == 3
    assert frames[:3] == ["fc_leaf", "fc_mid", "main"], out
    assert out.rstrip().endswith("Detaching...")
    assert not programs_loaded(["stackcount"])


def test_tracepoint_kernel_stack():
    child = tracerwork.start()
    rc, out, err, pid = _stacks("-K", "-p", child.pid, GETPPID, child=child)
    assert rc == 0, err
    (frames, count), = blocks(out)
    assert count == 3
    assert any(f.startswith("do_syscall_64") for f in frames), out
    assert "fc_leaf" not in frames


def test_uprobe_stack_at_function_entry():
    child = tracerwork.start()
    rc, out, err, pid = _stacks("-p", child.pid, f"{tracerwork.binary()}:fc_leaf",
                                child=child)
    assert rc == 0, err
    (frames, count), = blocks(out)
    assert count == 3
    # at a function's first instruction its caller's frame is not yet linked, so a
    # frame-pointer walk shows fc_leaf, then fc_mid's caller (as BCC's does)
    assert frames[0] == "fc_leaf" and "main" in frames, out


def test_folded_output():
    child = tracerwork.start()
    tool = subprocess.Popen([sys.executable, "programs/stackcount.py", "-f", "-U", "-p",
                             str(child.pid), GETPPID], cwd=ROOT, env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        tracerwork.wait_attached(tool)             # -f prints no header
        tracerwork.go(child, keep=True)
        time.sleep(0.2)
        tool.send_signal(signal.SIGINT)
        out, err = tool.communicate(timeout=60)
    finally:
        if tool.poll() is None:
            tool.kill()
        tracerwork.end(child)
    assert tool.returncode == 0, err
    assert "Tracing" not in out and "Detaching" not in out
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1, out
    assert re.fullmatch(r"work;(\S+;)*main;fc_mid;fc_leaf 3", lines[0]), out


def test_per_process_names_the_process():
    child = tracerwork.start()
    rc, out, err, pid = _stacks("-P", "-U", GETPPID, child=child)
    assert rc == 0, err
    ours = [(f, c) for f, c in blocks(out) if f and f[-1] == f"work [{pid}]"]
    assert len(ours) == 1, out
    frames, count = ours[0]
    assert count == 3 and frames[:3] == ["fc_leaf", "fc_mid", "main"]


@pytest.mark.skipif(bool(tracerwork.bcc_missing("stackcount")),
                    reason=tracerwork.bcc_missing("stackcount"))
@pytest.mark.parametrize("which", ["tracepoint", "uprobe"])
def test_agrees_with_bcc(which):
    # one run each (BCC 0.26's uprobes refuse a second uprobe at the same place)
    target = GETPPID if which == "tracepoint" else f"{tracerwork.binary()}:fc_leaf"
    child = tracerwork.start()
    theirs = tracerwork.Bcc("stackcount", "-U", "-p", child.pid, target, header="Tracing")
    tracerwork.go(child, keep=True)
    time.sleep(0.3)
    brc, bout, berr = theirs.stop()
    tracerwork.end(child)
    child = tracerwork.start()
    rc, out, err, _ = _stacks("-U", "-p", child.pid, target, child=child)
    assert rc == 0, err
    mine, bcc = blocks(out), blocks(bout)
    assert mine and mine[0][1] == 3, out
    assert mine == bcc, (out, bout, berr)


@pytest.mark.skipif(not tracerwork.has_usdt(), reason="no sys/sdt.h: the workload has no "
                    "USDT probe")
def test_usdt_probe_stack():
    child = tracerwork.start()
    rc, out, err, pid = _stacks("-U", "-p", child.pid, f"u:{tracerwork.binary()}:other",
                                child=child)
    assert rc == 0, err
    (frames, count), = blocks(out)
    assert count == 5 and frames[:2] == ["main", "__libc_start_call_main"], out
