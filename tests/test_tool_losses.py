"""Overload is visible: a tool whose consumer cannot keep up reports the records it lost
the way BCC's tools do (``Possibly lost N samples`` on stderr, or ``{"lost": N}`` lines
in JSON mode), within a second of the loss and once more at exit, so that printed +
reported lost is exactly what the workload did.

The tool is tests/_lossy_tool.py (a one-page ring, a consumer that sleeps per event,
filtered in the kernel on the workload's pid); the workload is a gcc-built program that
does a known number of openat() calls when told to (after the tool is attached, it does
nothing else that opens files)."""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time

import pytest

from bpfenv import BPF_UNAVAILABLE
from progrun import ROOT, env

pytestmark = [
    pytest.mark.skipif(bool(BPF_UNAVAILABLE), reason=BPF_UNAVAILABLE),
    pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed"),
]

TOOL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_lossy_tool.py")
STORM = 3000
WORKLOAD_C = r"""
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* "ready"; then per 'g' on stdin: N x openat(PATH) + close, then "done" */
int main(int argc, char **argv)
{
    long n = atol(argv[1]);
    char c;
    printf("ready\n");
    fflush(stdout);
    while (read(0, &c, 1) == 1) {
        if (c != 'g')
            continue;
        for (long i = 0; i < n; i++) {
            int fd = openat(AT_FDCWD, argv[2], O_RDONLY);
            if (fd >= 0)
                close(fd);
        }
        printf("done\n");
        fflush(stdout);
    }
    return 0;
}
"""
LOST = re.compile(r"^Possibly lost (\d+) samples$")


@pytest.fixture(scope="module")
def workload_exe(tmp_path_factory) -> str:
    d = tmp_path_factory.mktemp("losses")
    src, exe = d / "storm.c", d / "storm"
    src.write_text(WORKLOAD_C)
    subprocess.run(["gcc", "-O2", "-o", str(exe), str(src)], check=True)
    return str(exe)


class Workload:
    """The storm program, waiting for 'g'."""

    def __init__(self, exe: str, path: str, n: int) -> None:
        self.proc = subprocess.Popen([exe, str(n), path], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline() == "ready\n"

    def storm(self) -> None:
        self.proc.stdin.write("g")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline() == "done\n"

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


class LossyTool:
    """tests/_lossy_tool.py tracing ``pid``; collects stdout and stderr lines."""

    def __init__(self, pid: int, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, TOOL, str(pid), *args], cwd=ROOT,
                                     env=env(), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        self.out: list = []
        self.err: list = []
        self._partial = {self.proc.stdout.fileno(): b"", self.proc.stderr.fileno(): b""}

    def pump(self, seconds: float) -> None:
        """Read what the tool writes for ``seconds``."""
        end = time.monotonic() + seconds
        fds = [f for f in self._partial]
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return
            ready, _, _ = select.select(fds, [], [], left)
            for fd in ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    fds.remove(fd)
                    continue
                data = self._partial[fd] + chunk
                *lines, self._partial[fd] = data.split(b"\n")
                into = self.out if fd == self.proc.stdout.fileno() else self.err
                into.extend(line.decode() for line in lines)
            if not fds:
                return

    def wait_for(self, cond, what: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            if self.proc.poll() is not None:
                self.pump(0.5)
                raise AssertionError(f"the tool ended ({self.proc.returncode}) before the "
                                     f"{what}:\n" + "\n".join(self.err))
            assert time.monotonic() < deadline, f"no {what}: out={self.out[-5:]} " \
                f"err={self.err}"
            self.pump(0.1)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 30
        while self.proc.poll() is None and time.monotonic() < deadline:
            self.pump(0.1)
        self.pump(0.5)                     # what is left in the pipes
        rc = self.proc.wait(1)
        return rc

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()


def _reported(lines: list) -> list:
    """The N of each loss report on stderr; every stderr line must be one."""
    counts = []
    for line in lines:
        m = LOST.match(line)
        assert m, f"unexpected stderr line {line!r}"
        counts.append(int(m.group(1)))
    return counts


def _printed(tool: LossyTool, pid: int) -> int:
    return sum(1 for line in tool.out if line == f"open {pid}")


@pytest.fixture
def storm_target(workload_exe, tmp_path):
    w = Workload(workload_exe, str(tmp_path / "storm-target"), STORM)
    yield w
    w.close()


def test_losses_are_reported_while_running_and_add_up(storm_target):
    """Two storms: each one's loss is reported within about a second, while the tool
    still runs; in the end printed + reported == every open the workload made."""
    pid = storm_target.proc.pid
    tool = LossyTool(pid)
    try:
        tool.wait_for(lambda: "OPENS" in tool.out, "header")
        for storms in (1, 2):
            storm_target.storm()
            tool.wait_for(lambda: _printed(tool, pid) + sum(_reported(tool.err))
                          == storms * STORM, f"accounting of storm {storms}")
            assert len(_reported(tool.err)) >= storms    # a report per storm at least
        before_stop = list(tool.err)
        assert tool.stop() == 0
    finally:
        tool.kill()
    lost = _reported(tool.err)
    assert tool.err == before_stop          # nothing left to report at exit
    assert sum(lost) > 0 and _printed(tool, pid) > 0
    assert _printed(tool, pid) + sum(lost) == 2 * STORM


@pytest.mark.parametrize("mode", ["stderr", "json"])
def test_loss_of_the_last_moments_is_reported_at_exit(storm_target, mode):
    """With the periodic check an hour apart, only the report at exit can tell of the
    storm's loss: it does, with the exact number (stderr, or a JSON line on stdout)."""
    pid = storm_target.proc.pid
    args = ["--loss-interval", "3600"] + (["--json"] if mode == "json" else [])
    tool = LossyTool(pid, *args)
    header = '{"attached": true}' if mode == "json" else "OPENS"
    try:
        tool.wait_for(lambda: header in tool.out, "header")
        storm_target.storm()
        tool.pump(0.2)
        assert tool.err == []               # no report yet
        assert tool.stop() == 0
    finally:
        tool.kill()
    if mode == "json":
        assert tool.err == []
        records = [json.loads(line) for line in tool.out if line]
        printed = sum(1 for r in records if r.get("pid") == pid)
        lost = [r["lost"] for r in records if "lost" in r]
        assert len(lost) == 1 and all(set(r) == {"lost"} for r in records if "lost" in r)
        assert records[-1] == {"lost": lost[0]}   # after every event
    else:
        lost = _reported(tool.err)
        printed = _printed(tool, pid)
        assert len(lost) == 1
    assert lost[0] > 0
    assert printed + lost[0] == STORM
