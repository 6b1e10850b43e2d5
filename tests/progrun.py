"""Running a tool of programs/ as a subprocess in tests: start it, wait for its header,
stop it with SIGINT, and check it left no BPF program behind."""

import codecs
import json
import os
import select
import signal
import subprocess
import sys
import time
import weakref

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def env():
    """The environment for a tool: this checkout's pybpf first on the import path."""
    e = dict(os.environ)
    e["PYTHONPATH"] = ROOT + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    return e


def _kill(proc):
    if proc.poll() is None:
        proc.kill()
        proc.wait()


class Tool:
    """``programs/NAME.py ARGS`` running with pipes; ``lines`` holds the stdout read."""

    def __init__(self, name, *args, header, timeout=30.0):
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join("programs", name + ".py"), *map(str, args)],
            cwd=ROOT, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # a failing test must not leave the tool running (and attached) for the next ones
        weakref.finalize(self, _kill, self.proc)
        self.lines = []
        # read from the descriptor, not the text stream: a readline() would leave the
        # lines that came in the same read in the stream's buffer, where neither select()
        # nor communicate() sees them (a header of two lines written at once)
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        partial = ""
        deadline = time.monotonic() + timeout
        while not any(header in line for line in self.lines):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                out, err = self.proc.communicate()
                raise AssertionError(f"{name}: no header {header!r}; rc={self.proc.returncode}"
                                     f"\nstdout: {''.join(self.lines)}{partial}{out}"
                                     f"\nstderr: {err}")
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.5)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if chunk:
                    *done, partial = (partial + decoder.decode(chunk)).split("\n")
                    self.lines += [line + "\n" for line in done]
        if partial:
            self.lines.append(partial)       # the start of a line still being written

    def stop(self, sig=signal.SIGINT, timeout=30.0):
        """Send ``sig``, wait; returns (returncode, all stdout text, stderr text)."""
        self.proc.send_signal(sig)
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, "".join(self.lines) + out, err


def _programs_held_by_processes() -> set:
    """The ids of the BPF programs that a live process holds through a program or link
    descriptor (``prog_id`` in /proc/PID/fdinfo)."""
    held = set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            fds = os.listdir(f"/proc/{pid}/fdinfo")
        except OSError:
            continue
        for fd in fds:
            try:
                with open(f"/proc/{pid}/fdinfo/{fd}") as fh:
                    info = fh.read()
            except OSError:
                continue
            for line in info.splitlines():
                if line.startswith("prog_id:"):
                    held.add(int(line.split()[1]))
    return held


def programs_loaded(names, settle: float = 3.0):
    """The names among ``names`` (BPF program names, cut to 15 characters) of programs
    that bpftool still lists although no live process holds them: left pinned or
    attached by a tool that has ended. Programs of other tracers (another test run of
    the same tool) are held by their processes and do not count. A program freed after
    its process exits may linger for an RCU grace period: asked again for ``settle``
    seconds."""
    deadline = time.monotonic() + settle
    while True:
        try:
            out = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True,
                                 text=True, timeout=30, check=True).stdout
        except FileNotFoundError:
            raise AssertionError("bpftool (the oracle of loaded programs) is not "
                                 "installed: .ci/run installs Debian's bpftool") from None
        wanted = {n[:15]: n for n in names}
        listed = [(p["id"], wanted[p["name"]]) for p in json.loads(out or "[]")
                  if p.get("name", "") in wanted]
        held = _programs_held_by_processes() if listed else set()
        left = {name for prog_id, name in listed if prog_id not in held}
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)
