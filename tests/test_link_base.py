"""Link ownership and cleanup: close/detach/with, garbage collection, and a process that
is interrupted (SIGINT, SIGTERM) mid-run leaves nothing attached; one killed with
SIGKILL leaves its tracefs probes, which ``pybpf probes cleanup`` removes; a forked
child does not undo its parent's probes."""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
import textwrap
import warnings

import pytest

from pybpf.link.base import Link, close_all, open_links
from pybpf.link.raw_tracepoint import attach_raw_tracepoint
from pybpf.link.uprobe import attach_uprobe
from pybpf.syscall import objects
from pybpf.syscall.bpf import ProgType

from linkutil import NoLeaks, counter_map, counting_program, probe_events_text, root_reason

pytestmark = pytest.mark.skipif(bool(root_reason()), reason=root_reason())
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = textwrap.dedent(r"""
    import json, os, signal, sys, time
    # as an interactive Python starts, even when this test runs as a background job
    # (whose SIGINT starts ignored, and pybpf keeps an ignored SIGINT ignored)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.path.insert(0, sys.argv[1])
    from linkutil import counter_map, counting_program
    from pybpf.link.raw_tracepoint import attach_raw_tracepoint
    from pybpf.link.tracepoint import attach_tracepoint
    from pybpf.link.uprobe import attach_uprobe
    from pybpf.syscall.bpf import ProgType
    if sys.argv[2] == "chain":
        def mine(signum, frame):
            print("own handler ran", flush=True)
            sys.exit(3)
        signal.signal(signal.SIGTERM, mine)
    counts = counter_map()
    kp = counting_program(ProgType.KPROBE, counts)
    kp2 = counting_program(ProgType.KPROBE, counts)
    tp = counting_program(ProgType.TRACEPOINT, counts)
    raw = counting_program(ProgType.RAW_TRACEPOINT, counts)
    links = [attach_uprobe(kp, "c", "getpid", mode="legacy"),
             attach_uprobe(kp2, "c", "getppid"),
             attach_tracepoint(tp, "syscalls:sys_enter_getppid", use_link=True),
             attach_raw_tracepoint(raw, "sys_enter")]
    info = {"events": [l.details.get("event") for l in links if l.details.get("event")],
            "link_ids": [l.info().id for l in links if l.is_bpf_link]}
    print(json.dumps(info), flush=True)
    while True:
        time.sleep(0.05)
""")


def _start(mode: str = "plain") -> tuple:
    child = subprocess.Popen([sys.executable, "-c", CHILD, os.path.dirname(__file__), mode],
                             stdout=subprocess.PIPE, text=True, cwd=ROOT)
    line = child.stdout.readline()
    assert line, "the child did not start"
    return child, json.loads(line)


def _link_exists(link_id: int) -> bool:
    try:
        objects.link_get_fd_by_id(link_id).close()
        return True
    except OSError:
        return False


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_process_leaves_nothing_attached(signum):
    child, info = _start()
    try:
        assert info["events"] and all(e.split("/")[1] in probe_events_text(child.pid)
                                      for e in info["events"])
        assert all(_link_exists(i) for i in info["link_ids"])
        child.send_signal(signum)
        child.wait(15)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signum          # the signal still ends the process
    assert probe_events_text(child.pid) == ""
    assert not any(_link_exists(i) for i in info["link_ids"])


def test_signal_handlers_chain_to_the_previous_one():
    child, info = _start("chain")
    assert info["events"] and probe_events_text(child.pid)
    try:
        child.send_signal(signal.SIGTERM)
        out, _ = child.communicate(timeout=15)
    finally:
        child.kill()
        child.wait()
    assert "own handler ran" in out and child.returncode == 3
    assert probe_events_text(child.pid) == ""


def test_sigkill_leftovers_are_removed_by_probes_cleanup(capsys):
    """The killed child's probe events stay until ``probes cleanup`` deletes them. The
    deletion names the child's pid, so a second test run on the machine (whose own killed
    child is waiting for its check) is left alone; the dry run covers every stale event."""
    from pybpf.cli import main as cli
    child, info = _start()
    child.kill()
    child.wait()
    events = [e.split("/")[1] for e in info["events"]]
    assert events and all(e in probe_events_text(child.pid) for e in events)  # still there
    assert cli(["probes", "list"]) == 0
    assert all(f"{e} " in capsys.readouterr().out for e in events)
    assert cli(["probes", "cleanup", "--dry-run"]) == 0
    assert all(f"would delete uprobe pybpf/{e} " in capsys.readouterr().out for e in events)
    assert all(e in probe_events_text(child.pid) for e in events)
    assert cli(["probes", "cleanup", "--pid", str(os.getpid())]) == 0   # alive: untouched
    assert all(e in probe_events_text(child.pid) for e in events)
    assert cli(["probes", "cleanup", "--pid", str(child.pid)]) == 0
    assert all(f"deleted uprobe pybpf/{e} " in capsys.readouterr().out for e in events)
    assert probe_events_text(child.pid) == ""


def test_close_detach_with_and_gc():
    counts = counter_map()
    raw = counting_program(ProgType.RAW_TRACEPOINT, counts)
    with NoLeaks():
        link = attach_raw_tracepoint(raw, "sys_enter")
        assert link in open_links()
        link.close()
        link.close()                                    # idempotent
        assert link.closed and link not in open_links()
        with pytest.raises(ValueError):
            link.fileno()
        with attach_raw_tracepoint(raw, "sys_enter") as link2:
            pass
        assert link2.closed
        attach_raw_tracepoint(raw, "sys_enter").detach()
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            attach_raw_tracepoint(raw, "sys_enter")      # dropped at once
            gc.collect()
        assert any(issubclass(w.category, ResourceWarning) for w in seen)
        attach_raw_tracepoint(raw, "sys_enter")
        close_all()
        assert not open_links()
    raw.close()
    counts.close()


def test_undo_errors_do_not_stop_the_rest():
    ran = []

    def bad():
        ran.append("bad")
        raise OSError(5, "boom")

    link = Link("test", "x", undo=[lambda: ran.append("first"), bad])
    with pytest.raises(OSError, match="boom"):
        link.close()
    assert ran == ["bad", "first"] and link.closed


def test_forked_child_does_not_undo_parent_probes():
    counts = counter_map()
    prog = counting_program(ProgType.KPROBE, counts)
    with attach_uprobe(prog, "c", "getpid", mode="legacy") as link:
        event = link.details["event"].split("/")[1]
        pid = os.fork()
        if pid == 0:                                    # child: exit runs atexit
            os._exit(0) if not open_links() else os._exit(1)
        _, status = os.waitpid(pid, 0)
        assert os.WEXITSTATUS(status) == 0               # the child had no links
        pid = os.fork()
        if pid == 0:
            link.close()                                 # the child's copy only
            os._exit(0)
        os.waitpid(pid, 0)
        assert event in probe_events_text()              # still the parent's
    assert event not in probe_events_text()
    prog.close()
    counts.close()


def test_hooks_from_another_thread_leave_the_signal_handlers_alone():
    """The first link made outside the main thread installs the exit hook only: signal
    handlers belong to the main thread, so SIGINT and SIGTERM keep theirs (and it
    raises nothing); made in the main thread, the link's cleanup handlers go in."""
    code = textwrap.dedent("""
        import signal, sys, threading
        from pybpf.link import base
        errors = []
        def make():
            try:
                base._install_hooks()
            except Exception as exc:
                errors.append(exc)
        t = threading.Thread(target=make)
        t.start(); t.join()
        other = (signal.getsignal(signal.SIGINT) is signal.default_int_handler,
                 signal.getsignal(signal.SIGTERM) == signal.SIG_DFL, dict(base._previous),
                 errors)
        base._hooks_installed = False
        base._install_hooks()
        main = (signal.getsignal(signal.SIGINT) is base._on_signal,
                sorted(int(s) for s in base._previous))
        print(repr((other, main)))
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == repr(((True, True, {}, []),
                                       (True, sorted([int(signal.SIGINT),
                                                      int(signal.SIGTERM)]))))
