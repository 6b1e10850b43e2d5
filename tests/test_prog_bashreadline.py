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


def test_bashreadline_batch_printer_formats_like_one_line_per_event(monkeypatch):
    """Odd command lines (non-UTF-8, a cut multi-byte sequence, 80 bytes with no NUL,
    control characters, empty) through the batch printer give the bytes the tool's
    former per-event printer gives."""
    import random
    import types
    from rowsharness import after_nul, batch_output, freeze_clock, program, reference_output
    bashreadline = program("bashreadline")
    Line = bashreadline.Line
    freeze_clock(monkeypatch)
    rnd = random.Random(20)
    texts = [b"ls -l", b"echo w\xc3\xa9\xff", b"x\xe2\x82", b"", b"c" * 79, b"d" * 80,
             b"a\tb\x1b[0m", "é".encode() * 40]
    raws = [after_nul(Line(pid=rnd.choice([1, 4242, 2**32 - 1]), str=rnd.choice(texts)
                           ).to_bytes(), Line, "str") for _ in range(300)]

    def show_one(e):                                        # the former printer
        return f"{time.strftime('%H:%M:%S'):<9} {e.pid:<7} {e.str}"

    args = types.SimpleNamespace(json=False)
    got = batch_output(monkeypatch, bashreadline, bashreadline.batch_printer(args), raws)
    assert got == reference_output(show_one, Line, raws)


class _Shell:
    """An interactive bash on a pty; :meth:`type` sends a line and waits a little."""

    def __init__(self):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:                                               # pragma: no cover
            os.execvp("bash", ["bash", "--norc", "--noprofile", "-i"])
        self.drain(0.5)

    def drain(self, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if select.select([self.fd], [], [], 0.05)[0]:
                try:
                    os.read(self.fd, 4096)
                except OSError:
                    return

    def type(self, line):
        os.write(self.fd, (line + "\n").encode())
        self.drain(0.2)

    def close(self):
        self.type("exit")
        os.waitpid(self.pid, 0)
        os.close(self.fd)


def test_bashreadline_json():
    import json
    import re
    import threading
    shell = _Shell()
    stop = threading.Event()

    def ping():                     # commands until the tool (no header in JSON) is live
        while not stop.is_set():
            shell.type(": ping")

    pinger = threading.Thread(target=ping, daemon=True)
    pinger.start()
    try:
        tool = Tool("bashreadline", "--json", header='"command": ')
    finally:
        stop.set()
        pinger.join()
    shell.type("echo uniq-rl-json 'q\"uote'")
    shell.close()
    time.sleep(0.3)
    rc, out, err = tool.stop()
    assert rc == 0, err
    objs = [json.loads(line) for line in out.splitlines()]
    assert all(list(o) == ["time", "pid", "command"] for o in objs), out
    assert all(re.match(r"\d\d:\d\d:\d\d$", o["time"]) for o in objs), out
    mine = [o["command"] for o in objs if o["pid"] == shell.pid]
    assert set(mine[:-2]) == {": ping"}, out
    assert mine[-2:] == ["echo uniq-rl-json 'q\"uote'", "exit"], out
