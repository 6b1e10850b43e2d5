"""Running a tool of programs/ as a subprocess in tests: start it, wait for its header,
stop it with SIGINT, and check it left no BPF program behind."""

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
        deadline = time.monotonic() + timeout
        while not any(header in line for line in self.lines):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                out, err = self.proc.communicate()
                raise AssertionError(f"{name}: no header {header!r}; rc={self.proc.returncode}"
                                     f"\nstdout: {''.join(self.lines)}{out}\nstderr: {err}")
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.5)
            if ready:
                line = self.proc.stdout.readline()
                if line:
                    self.lines.append(line)

    def stop(self, sig=signal.SIGINT, timeout=30.0):
        """Send ``sig``, wait; returns (returncode, all stdout text, stderr text)."""
        self.proc.send_signal(sig)
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, "".join(self.lines) + out, err


def programs_loaded(names):
    """The names among ``names`` (BPF program names, cut to 15 characters) that bpftool
    still lists."""
    try:
        out = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True,
                             text=True, timeout=30).stdout
    except FileNotFoundError:
        return set()
    loaded = {p.get("name", "") for p in json.loads(out or "[]")}
    return {n for n in names if n[:15] in loaded}
