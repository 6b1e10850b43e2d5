"""programs/bashreadline.py: an interactive bash on a pseudo-terminal reads known
command lines; the tool shows them with bash's pid, as bpftrace's uretprobe on the
same function does."""

import os
import pty
import select
import shutil
import sys
import time

import pytest

from bpfenv import needs_bpf
from btrun import Bpftrace, needs_bpftrace
from progrun import ROOT, Tool, programs_loaded

pytestmark = [needs_bpf, pytest.mark.skipif(shutil.which("bash") is None,
                                            reason="bash is not installed")]

HEADER = "TIME      PID     COMMAND"


def _bash(*lines):
    """Type ``lines`` (then ``exit``) into an interactive bash on a pty; its pid."""
    pid, fd = pty.fork()
    if pid == 0:                                                        # pragma: no cover
        os.execvp("bash", ["bash", "--norc", "--noprofile", "-i"])

    def drain(seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if select.select([fd], [], [], 0.05)[0]:
                try:
                    os.read(fd, 4096)
                except OSError:
                    return
    drain(0.5)
    for line in (*lines, "exit"):
        os.write(fd, (line + "\n").encode())
        drain(0.2)
    os.waitpid(pid, 0)
    os.close(fd)
    time.sleep(0.3)
    return pid


def _commands(out, pid):
    return [line.split(None, 2)[2] for line in out.splitlines()[1:]
            if len(line.split(None, 2)) == 3 and line.split()[1] == str(pid)]


def test_bashreadline_shows_typed_commands():
    tool = Tool("bashreadline", header=HEADER)
    pid = _bash("echo uniq-rl-1", "true   uniq-rl-2")
    rc, out, err = tool.stop()
    assert rc == 0, err
    assert _commands(out, pid) == ["echo uniq-rl-1", "true   uniq-rl-2", "exit"], out
    assert all(len(line.split()[0]) == 8 for line in out.splitlines()[1:] if line.strip())
    assert not programs_loaded(["bashreadline_ret"])


def test_bashreadline_finds_readline_and_takes_a_path():
    sys.path.insert(0, os.path.join(ROOT, "programs"))
    try:
        import bashreadline
        from pybpf.elf.symbols import ElfFile
        binary = bashreadline.readline_binary(shutil.which("bash"))
        with ElfFile(binary) as elf:
            assert elf.symbol("readline").value
    finally:
        sys.path.remove(os.path.join(ROOT, "programs"))
    tool = Tool("bashreadline", "-s", binary, header=HEADER)
    pid = _bash("echo uniq-rl-3")
    rc, out, err = tool.stop()
    assert rc == 0, err
    assert _commands(out, pid) == ["echo uniq-rl-3", "exit"], out


@needs_bpftrace
def test_bashreadline_matches_bpftrace():
    sys.path.insert(0, os.path.join(ROOT, "programs"))
    try:
        import bashreadline
        binary = bashreadline.readline_binary()
    finally:
        sys.path.remove(os.path.join(ROOT, "programs"))
    bt = Bpftrace(f'uretprobe:{binary}:readline {{ printf("EV %d %s\\n", pid, str(retval)); }}')
    tool = Tool("bashreadline", header=HEADER)
    time.sleep(1.0)                     # bpftrace prints "Attaching" before it attaches
    pid = _bash("echo uniq-rl-4", ": uniq-rl-5")
    rc, out, err = tool.stop()
    theirs = [line.split(None, 2)[2] for line in bt.stop().splitlines()
              if line.startswith(f"EV {pid} ")]
    assert rc == 0, err
    assert _commands(out, pid) == theirs == ["echo uniq-rl-4", ": uniq-rl-5", "exit"]
