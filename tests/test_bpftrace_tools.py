"""bpftrace's own tools, unchanged, under pybpf's ``session.run`` (issue 19, "Must show").

Every tool the Debian bpftrace package installs (``dpkg -L bpftrace | grep '\\.bt$'``)
that bpftrace 0.17 itself runs on this kernel is started under bpftrace and under
``session.run`` (tests/bpftrace_run/run_helper.py) with bpftrace's attach handshake; a
gcc-built workload (tests/bpftrace_tools/toolwork.c, comm ``toolwork``: opens, stats,
kill, sync, setuid, nanosleep, fork + exec, a thread, getaddrinfo, O_DIRECT writes) runs
once the probes are attached, and both get SIGINT about a second later. The header lines
(``Attaching N probes...`` and what BEGIN prints) must be identical; the data lines must
have the same column structure (tests/bpftrace_tools/harness.py's ``shape``: values
normalised), taken from the workload's own lines where the tool prints per event
(system-wide tools see every other process too).

Not run on this host:

* bpftrace 0.17 cannot run them here either: ``loads.bt`` (kernel symbol ``avenrun``
  is not in /proc/kallsyms: "Failed to resolve kernel symbol"), ``runqlen.bt`` (this
  kernel's ``struct cfs_rq`` has no ``nr_running``).
* kprobe-based (this machine has no kprobes; tests/test_bpftrace_vm_tools.py runs them
  in the second-kernel stage, ``scripts/vmtest.sh``): biolatency, biosnoop, biostacks,
  capable, dcsnoop, mdflush, oomkill, swapin, tcpaccept, tcpconnect, tcplife,
  tcpretrans, tcpsynbl, undump, vfscount, vfsstat, xfsdist.

A tool that fails under ``session.run`` for a feature pybpf lacks is an
``xfail(strict=True)`` naming the feature: it fails loudly once the feature lands.
"""

from __future__ import annotations

import os
import shutil
import time
from typing import Callable, Optional

import pytest

from bpftrace_tools.harness import build_toolwork, clang_header_refusal, run_both, shapes, split

HERE = os.path.dirname(os.path.abspath(__file__))

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(shutil.which("bpftrace") is None, reason="needs bpftrace 0.17"),
]

#: name -> (header lines, regex picking the data lines to compare (None: all), whether
#: the workload must make it print, xfail reason)
TOOLS = {
    "bashreadline": (3, r"toolwork-bash", True, None),
    "bitesize": (2, None, True, None),
    "cpuwalk": (2, None, True, None),
    "execsnoop": (2, r"toolwork", True, None),     # the workload's own exec line
    "gethostlatency": (3, r"toolwork", True, None),
    "killsnoop": (3, r"toolwork", True, None),
    "naptime": (3, r"toolwork", True, None),
    "opensnoop": (3, r"toolwork", True, None),
    "pidpersec": (2, None, True, None),
    "runqlat": (2, None, True, None),
    "setuids": (3, r"toolwork", True, None),
    "ssllatency": (2, None, False, None),
    "sslsnoop": (3, None, False, None),
    "statsnoop": (3, r"toolwork", True, None),
    "syncsnoop": (3, r"toolwork", True, None),
    "syscount": (2, None, True, None),
    "tcpdrop": (3, None, False, None),
    "threadsnoop": (2, r"toolwork", False, None),
    "writeback": (3, r" sync ", False, None),      # the workload's sync(), if any
}


@pytest.fixture(scope="module")
def toolwork(tmp_path_factory) -> Callable[[], None]:
    """Runs the gcc-built workload (its files in a temporary directory on disk)."""
    if shutil.which("gcc") is None:
        pytest.skip("needs gcc")
    return build_toolwork(str(tmp_path_factory.mktemp("toolwork")))


def bash_readline() -> None:
    """An interactive bash on a pseudo-terminal runs one command (readline returns it)."""
    import pty
    import select
    pid, fd = pty.fork()
    if pid == 0:
        os.execv("/bin/bash", ["bash", "--norc", "--noprofile", "-i"])
    try:
        os.write(fd, b"echo toolwork-bash\nexit\n")
        while select.select([fd], [], [], 10)[0]:
            try:
                if not os.read(fd, 4096):
                    break
            except OSError:             # EIO: the child closed the terminal
                break
    finally:
        os.close(fd)
        os.waitpid(pid, 0)


def busy(work: Callable[[], None], seconds: float = 0.5) -> Callable[[], None]:
    """``work``, then this process on a CPU for ``seconds``: cpuwalk samples only
    non-idle tasks (``/pid/``), and the workload mostly sleeps, so on an idle machine a
    99 Hz sampler could see no task at all in the run."""
    def run() -> None:
        work()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            pass
    return run


def tool_params():
    for name, (head, keep, data, reason) in TOOLS.items():
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        yield pytest.param(name, head, keep, data, id=name, marks=marks)


def check(theirs, ours, head: int, keep: Optional[str], data: bool) -> None:
    (tout, terr, trc), (oout, oerr, orc) = theirs, ours
    clang = clang_header_refusal(terr) if trc not in (0, None) else None
    if clang:                   # not a tool bpftrace itself can run on this machine
        pytest.xfail(f"bpftrace's clang parse of the headers refuses it on this machine "
                     f"({clang}); pybpf does not model that parse (pybpf's status: "
                     f"{orc})")
    assert trc in (0, None) or trc == orc, (trc, terr[-1000:])
    assert orc == trc, (orc, trc, oerr[-2000:])
    th, td = split(tout, head)
    oh, od = split(oout, head)
    assert oh == th, "header lines differ"
    ts, os_ = shapes(td, keep), shapes(od, keep)
    if data:
        assert ts, f"bpftrace printed no data lines: {tout[-1500:]}"
        assert os_, f"session.run printed no data lines: {oout[-1500:]}"
    if ts and os_:
        assert os_ == ts, "column structure differs"


@pytest.mark.parametrize("name,head,keep,data", list(tool_params()))
def test_tool(name, head, keep, data, toolwork):
    path = f"/usr/sbin/{name}.bt"
    if not os.path.exists(path):
        pytest.skip(f"{path} not installed")
    work = bash_readline if name == "bashreadline" else toolwork
    if name == "cpuwalk":
        work = busy(work)
    settle = 1.3 if name in ("pidpersec", "cpuwalk") else 0.8
    check(*run_both(path, work, settle), head, keep, data)
