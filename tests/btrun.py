"""Running a bpftrace one-liner next to a tool in tests: start it, wait until it has
attached, stop it with SIGINT and return what it printed."""

import os
import shutil
import subprocess
import time
import weakref

import pytest

needs_bpftrace = pytest.mark.skipif(shutil.which("bpftrace") is None,
                                    reason="bpftrace is not installed")


#: seconds to wait for bpftrace to end after a SIGINT before sending another
RESEND = 15.0


def _kill(proc):
    if proc.poll() is None:
        proc.kill()
        proc.wait()


class Bpftrace:
    """``bpftrace -e SCRIPT`` running with pipes, attached once the constructor returns."""

    def __init__(self, script, timeout=60.0, options=()):
        """``options``: more bpftrace arguments (``("-p", pid)``: uprobes in that process
        only, not in every process mapping the file)."""
        self.proc = subprocess.Popen(["bpftrace", *map(str, options), "-e", script],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        weakref.finalize(self, _kill, self.proc)     # never outlive a failing test
        deadline = time.monotonic() + timeout
        self.head = []
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.head.append(line)
            if line.startswith("Attaching"):
                # bpftrace says so before it attaches: wait until it holds a loaded
                # program, then a little more for the attachment itself
                while time.monotonic() < deadline and not self._holds_program():
                    time.sleep(0.05)
                time.sleep(0.3)
                return
        self.proc.kill()
        out, err = self.proc.communicate()
        raise AssertionError(f"bpftrace did not attach: {''.join(self.head)}{out}{err}")

    def _holds_program(self):
        """True once bpftrace holds a BPF program and a perf event or link."""
        kinds = set()
        try:
            for fd in os.listdir(f"/proc/{self.proc.pid}/fd"):
                try:
                    kinds.add(os.readlink(f"/proc/{self.proc.pid}/fd/{fd}"))
                except OSError:
                    pass
        except OSError:
            return True
        return "anon_inode:bpf-prog" in kinds and bool(
            kinds & {"anon_inode:[perf_event]", "anon_inode:bpf_link"})

    def _misses(self):
        """Events bpftrace's programs skipped so far (``recursion_misses``: a
        perf-event tracepoint program does not run while another BPF program runs on
        the same CPU, which other tests' tools make likely)."""
        # read in this process (pybpf's Program.from_id), not with a bpftool child: a
        # child of the test process would show up in the tracers' output
        from pybpf.program import Program
        ids = set()
        try:
            for fd in os.listdir(f"/proc/{self.proc.pid}/fdinfo"):
                try:
                    with open(f"/proc/{self.proc.pid}/fdinfo/{fd}") as f:
                        ids.update(int(line.split()[1]) for line in f
                                   if line.startswith("prog_id:"))
                except OSError:
                    pass
        except OSError:
            return 0
        total = 0
        for prog_id in ids:
            try:
                with Program.from_id(prog_id) as prog:
                    total += prog.info().recursion_misses
            except OSError:
                pass
        return total

    def stop(self, timeout=60.0):
        """SIGINT, wait; returns everything printed after the Attaching line.
        ``missed`` tells how many events bpftrace's programs skipped. The SIGINT is sent
        again every :data:`RESEND` seconds without an exit (bpftrace 0.17 sometimes
        misses one: seen in about 1 run in 10 of tests/test_prog_tutorial2.py)."""
        self.missed = self._misses()
        deadline = time.monotonic() + timeout
        while True:
            self.proc.send_signal(2)
            try:
                out, err = self.proc.communicate(
                    timeout=max(0.1, min(RESEND, deadline - time.monotonic())))
                break
            except subprocess.TimeoutExpired:
                if time.monotonic() < deadline:
                    continue
            self.proc.kill()
            out, err = self.proc.communicate()
            raise AssertionError(f"bpftrace did not stop on SIGINT: {out}{err}")
        assert self.proc.returncode == 0, err
        return out


def agree(bt, ok, detail):
    """Assert a comparison with bpftrace ``bt`` (stopped) holds; when it does not and
    bpftrace skipped events, skip the test instead: the comparison is void."""
    if ok:
        return
    if bt.missed:
        pytest.skip(f"bpftrace skipped {bt.missed} events (other BPF programs were "
                    f"running): cannot compare ({detail})")
    raise AssertionError(detail)


def loaded_ids(tool, names):
    """The ids of the BPF programs the running ``tool`` (a progrun.Tool) holds, checked
    to be called ``names`` (cut to 15 characters): read from its descriptors'
    ``/proc/PID/fdinfo`` (``prog_id:``), so other processes' programs never count."""
    import json
    pid = tool.proc.pid
    ids = set()
    for fd in os.listdir(f"/proc/{pid}/fdinfo"):
        try:
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                for line in f:
                    if line.startswith("prog_id:"):
                        ids.add(int(line.split()[1]))
        except OSError:
            pass
    if shutil.which("bpftool") is not None:
        out = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True,
                             text=True, timeout=30).stdout
        shown = {p["id"]: p.get("name", "") for p in json.loads(out or "[]")}
        assert {shown.get(i) for i in ids} == {n[:15] for n in names}, (ids, shown)
    return ids


def assert_unloaded(ids, timeout=5.0):
    """Assert the BPF programs ``ids`` (from :func:`loaded_ids`) are gone once the tool
    exited. The kernel frees a program a little after its last descriptor closes, so
    this waits up to ``timeout``."""
    deadline = time.monotonic() + timeout
    left = set(ids)
    while left and time.monotonic() < deadline:
        left = {i for i in left if subprocess.run(
            ["bpftool", "prog", "show", "id", str(i)], capture_output=True,
            timeout=30).returncode == 0}
        if left:
            time.sleep(0.1)
    assert not left, f"programs left loaded: {sorted(left)}"
