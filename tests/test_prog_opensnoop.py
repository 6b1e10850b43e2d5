"""programs/opensnoop.py: a child process opens known files (present, missing, for
writing, through openat2) in a fresh directory; the lines are checked for its pid, comm,
fd or errno, flags and path, each filter is exercised, and the events are compared with
bpftrace's on the same tracepoints.

The child waits for a word on stdin before it opens anything, so its pid is known when
the tool starts and the tool filters on it in the kernel: another process opening files
at a high rate (a benchmark) would otherwise fill the ring buffer faster than Python
reads it, and events would be dropped.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import pytest

from bpfenv import needs_bpf
from btrun import Bpftrace, needs_bpftrace
from progrun import ROOT, Tool, programs_loaded

pytestmark = needs_bpf

HEADER = "PID    COMM               FD ERR PATH"
PROGS = ["opensnoop_openat", "opensnoop_openat2", "opensnoop_openat_ret",
         "opensnoop_openat2_ret"]
OPENER = """
import ctypes, json, os, sys
d = sys.argv[1]
sys.stdin.readline()                    # wait until the tracer runs
out = {"exists": os.open(d + "/exists", os.O_RDONLY)}
try:
    os.open(d + "/missing", os.O_RDONLY)
except FileNotFoundError:
    pass
out["written"] = os.open(d + "/written", os.O_WRONLY | os.O_CREAT, 0o600)
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
how = (ctypes.c_uint64 * 3)(os.O_RDONLY | os.O_CLOEXEC, 0, 0)
out["exists2"] = libc.syscall(437, -100, (d + "/exists2").encode(), ctypes.byref(how), 24)
print(json.dumps(out))
"""


@pytest.fixture
def files():
    """A fresh directory everyone can use, with a short path (bpftrace strings)."""
    d = tempfile.mkdtemp(prefix="opensnoop-")
    os.chmod(d, 0o777)
    for name in ("exists", "exists2"):
        with open(os.path.join(d, name), "w") as f:
            f.write("x")
        os.chmod(os.path.join(d, name), 0o644)
    yield d
    shutil.rmtree(d)


class Opener:
    """The child process: started at once, opening the files of ``d`` at :meth:`go`."""

    def __init__(self, d):
        self.proc = subprocess.Popen([sys.executable, "-c", OPENER, d], text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.pid = self.proc.pid

    def go(self):
        """Open the files; returns {name: fd}."""
        out, _ = self.proc.communicate("go\n", timeout=30)
        assert self.proc.returncode == 0
        time.sleep(0.3)
        return json.loads(out)


def _rows(out, d, col=0):
    """(pid, comm, fd, err, path) of the lines about files in ``d``; ``col``: leading
    columns (time, uid) to skip."""
    rows = []
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 5 + col and f[-1].startswith(d + "/"):
            rows.append((int(f[col]), f[col + 1], int(f[col + 2]), int(f[col + 3]), f[-1]))
    return rows


def test_opensnoop_sees_a_childs_opens(files):
    child = Opener(files)
    tool = Tool("opensnoop", "-p", child.pid, header=HEADER)
    fds = child.go()
    rc, out, err = tool.stop()
    assert rc == 0, err
    got = {r[4]: r for r in _rows(out, files)}
    assert all(r[0] == child.pid and r[1].startswith("python") for r in got.values()), out
    assert {p: (r[2], r[3]) for p, r in got.items()} == {
        files + "/exists": (fds["exists"], 0), files + "/missing": (-1, 2),
        files + "/written": (fds["written"], 0), files + "/exists2": (fds["exists2"], 0)}
    assert not programs_loaded(PROGS)


def test_opensnoop_failed_only_with_time_uid_flags(files):
    child = Opener(files)
    tool = Tool("opensnoop", "-x", "-T", "-U", "-e", "-p", child.pid,
                header="TIME(s)       UID   PID    COMM               FD ERR FLAGS    PATH")
    child.go()
    rc, out, err = tool.stop()
    assert rc == 0, err
    lines = [line.split() for line in out.splitlines()[1:] if line.strip()]
    assert all(int(f[5]) != 0 and f[4] == "-1" for f in lines), out
    mine = [f for f in lines if f[-1].startswith(files)]
    assert len(mine) == 1 and mine[0][-1] == files + "/missing", out
    t, uid, pid, comm, fd, errno, flags, _ = mine[0]
    assert re.match(r"\d+\.\d{9}$", t) and uid == "0" and pid == str(child.pid)
    assert errno == "2" and flags == f"{os.O_RDONLY | os.O_CLOEXEC:08o}"


def test_opensnoop_uid_and_name_filters(files):
    tool = Tool("opensnoop", "-U", "-u", 65534, "-n", "cat", header="UID   PID")
    subprocess.run(["sh", "-c", f"cat {files}/exists {files}/missing; echo > {files}/written"],
                   user=65534, capture_output=True, timeout=30)
    subprocess.run(["cat", f"{files}/exists2"], capture_output=True, timeout=30)   # root
    time.sleep(0.3)
    rc, out, err = tool.stop()
    assert rc == 0, err
    lines = [line.split() for line in out.splitlines()[1:] if line.strip()]
    assert lines and all(f[0] == "65534" and f[2] == "cat" for f in lines), out
    assert {(r[1], r[3], r[4]) for r in _rows(out, files, col=1)} == {
        ("cat", 0, files + "/exists"), ("cat", 2, files + "/missing")}, out


def test_opensnoop_pid_and_flag_filters(files):
    tool = Tool("opensnoop", "-p", os.getpid(), "-f", "O_WRONLY", "-e", header="FLAGS")
    Opener(files).go()                                          # another process
    with open(os.path.join(files, "exists")):                   # read-only: filtered
        pass
    with open(os.path.join(files, "mine"), "w"):
        pass
    time.sleep(0.3)
    rc, out, err = tool.stop()
    assert rc == 0, err
    lines = [line.split() for line in out.splitlines()[1:] if line.strip()]
    assert lines and all(f[0] == str(os.getpid()) and int(f[4], 8) & os.O_WRONLY
                         for f in lines), out
    assert [f[-1] for f in lines if f[-1].startswith(files)] == [files + "/mine"]


def test_opensnoop_tid_filter(files):
    go, done = threading.Event(), threading.Event()
    tids = []

    def worker():
        tids.append(threading.get_native_id())
        go.wait(30)
        with open(os.path.join(files, "exists2")):
            pass
        done.set()

    t = threading.Thread(target=worker)
    t.start()
    while not tids:
        time.sleep(0.01)
    tool = Tool("opensnoop", "-t", tids[0], header="TID    COMM")
    with open(os.path.join(files, "exists")):                   # main thread: filtered
        pass
    go.set()
    done.wait(30)
    t.join()
    time.sleep(0.3)
    rc, out, err = tool.stop()
    assert rc == 0, err
    lines = [line.split() for line in out.splitlines()[1:] if line.strip()]
    assert [(f[0], f[-1]) for f in lines] == [(str(tids[0]), files + "/exists2")], out


def test_opensnoop_duration(files):
    child = Opener(files)
    tool = Tool("opensnoop", "-d", 2, "-p", child.pid, header=HEADER)
    child.go()
    rc = tool.proc.wait(timeout=30)                             # -d: ends by itself
    out = "".join(tool.lines) + tool.proc.stdout.read()
    assert rc == 0, tool.proc.stderr.read()
    assert len(_rows(out, files)) == 4, out


def test_opensnoop_bad_flag_is_a_usage_error():
    for flag in ("O_NOPE", "O_RDONLY"):
        proc = subprocess.run([sys.executable, "programs/opensnoop.py", "-f", flag],
                              cwd=ROOT, capture_output=True, text=True, timeout=30)
        assert proc.returncode == 2 and "usage:" in proc.stderr, proc.stderr


@needs_bpftrace
def test_opensnoop_matches_bpftrace(files):
    child = Opener(files)
    script = """
tracepoint:syscalls:sys_enter_openat /pid == PID/ { @f[tid] = args->filename; }
tracepoint:syscalls:sys_enter_openat2 /pid == PID/ { @f[tid] = args->filename; }
tracepoint:syscalls:sys_exit_openat, tracepoint:syscalls:sys_exit_openat2 /@f[tid]/ {
  printf("EV %d %d %s\\n", pid, args->ret, str(@f[tid])); delete(@f[tid]); }
END { clear(@f); }
""".replace("PID", str(child.pid))
    bt = Bpftrace(script)
    tool = Tool("opensnoop", "-p", child.pid, header=HEADER)
    time.sleep(1.0)                     # bpftrace prints "Attaching" before it attaches
    child.go()
    rc, out, err = tool.stop()
    theirs = {(int(f[1]), int(f[2]), f[3]) for f in
              (line.split() for line in bt.stop().splitlines())
              if len(f) == 4 and f[0] == "EV"}
    assert rc == 0, err
    ours = {(r[0], r[2] if r[2] >= 0 else -r[3], r[4]) for r in _rows(out, "")}
    assert ours == theirs, (out, theirs)
    assert len([p for _, _, p in ours if p.startswith(files + "/")]) == 4


class Pinger:
    """Opens ``path`` every 50 ms in a thread until stopped: gives a tool without a
    header (--json) an event that says it is attached."""

    def __init__(self, path):
        self.path, self.stop = path, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.wait(0.05):
            with open(self.path):
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def test_opensnoop_json(files):
    with Pinger(os.path.join(files, "exists")):
        tool = Tool("opensnoop", "--json", "-U", "-e", "-p", os.getpid(), header='"path": ')
    fds = {}
    fds["written"] = os.open(os.path.join(files, "written"), os.O_WRONLY | os.O_CREAT, 0o600)
    with pytest.raises(FileNotFoundError):
        os.open(os.path.join(files, "missing"), os.O_RDONLY)
    os.close(fds["written"])
    time.sleep(0.3)
    rc, out, err = tool.stop()
    assert rc == 0, err
    objs = [json.loads(line) for line in out.splitlines()]
    assert all(list(o) == ["uid", "pid", "comm", "fd", "err", "flags", "path"] for o in objs)
    mine = {o["path"]: o for o in objs if o["path"] != os.path.join(files, "exists")}
    assert {p: (o["pid"], o["uid"], o["fd"], o["err"], o["flags"])
            for p, o in mine.items() if p.startswith(files)} == {       # os.open: O_CLOEXEC
        files + "/written": (os.getpid(), os.getuid(), fds["written"], 0,
                             os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC),
        files + "/missing": (os.getpid(), os.getuid(), -1, 2, os.O_RDONLY | os.O_CLOEXEC)}, out


def _reference_lines(events, args):
    """BCC opensnoop's columns, one f-string per event (the tool's former printer), from
    decoded events: the oracle of the batch printer's formatting."""
    first, out = [], []
    for e in events:
        if args.name and args.name not in e.comm:
            continue
        line = ""
        if args.timestamp:
            if not first:
                first.append(e.ts_ns)
            line += f"{(e.ts_ns - first[0]) / 1e9:<14.9f}"
        if args.print_uid:
            line += f"{e.uid:<6}"
        fd, err = (e.ret, 0) if e.ret >= 0 else (-1, -e.ret)
        who = e.id & 0xffffffff if args.tid else e.id >> 32
        line += f"{who:<6} {e.comm:<16} {fd:>4} {err:>3} "
        if args.extended_fields:
            line += f"{e.flags:08o} "
        out.append(line + e.path + "\n")
    return "".join(out).encode()


def test_opensnoop_batch_printer_formats_like_one_line_per_event(monkeypatch):
    """Records with odd bytes (non-UTF-8 and non-ASCII names, bytes after the NUL, a
    path of 255 bytes, a newline) through the batch printer with every combination of
    -T/-U/-e/-t/-n give the bytes a per-event f-string printer gives."""
    import random
    import struct
    import types
    sys.path.insert(0, ROOT)
    from programs import opensnoop
    Event = opensnoop.Event
    rnd = random.Random(20)
    comms = [b"loadgen", b"w\xc3\xa9rk\xff", b"a" * 15, b"", b"x\xe2\x82"]
    paths = [b"/dev/null", b"/tmp/caf\xc3\xa9", b"/tmp/bad\xff\xfe", b"", b"/" + b"p" * 254,
             b"/tmp/\"q\\\n\t"]
    raws = []
    for i in range(1500):
        e = Event(ts_ns=10**12 + i * rnd.randint(1, 10**7),
                  id=(rnd.choice([1, 4242, 99999]) << 32) | rnd.choice([1, 7]),
                  uid=rnd.choice([0, 1000]), ret=rnd.choice([3, -2, -13, 0, 1023]),
                  flags=rnd.choice([0, 0o100101, 0o2000000]), comm=rnd.choice(comms),
                  path=rnd.choice(paths))
        raw = bytearray(e.to_bytes())
        off = Event.__pybpf_layout__.field("path").offset
        end = raw.index(0, off)
        if raw[off] and end + 9 <= off + 256 and rnd.random() < 0.5:
            raw[end + 1:end + 9] = b"garbage!"              # bytes after the NUL
        raws.append(bytes(raw))
    events = [Event.from_bytes(r) for r in raws]
    written = []
    monkeypatch.setattr(opensnoop, "write_lines", written.extend)
    for T in (False, True):
        for U in (False, True):
            for x in (False, True):
                for t in (False, True):
                    for name in (None, "w", "é", "zz"):
                        args = types.SimpleNamespace(timestamp=T, print_uid=U,
                                                     extended_fields=x, tid=t, name=name,
                                                     json=False)
                        fmt = struct.Struct(Event.row_format(opensnoop.row_items(args)))
                        show = opensnoop.batch_printer(args)
                        written.clear()
                        for k in range(0, len(raws), 400):
                            show([fmt.unpack(r) for r in raws[k:k + 400]])
                        block = b"".join(line + b"\n" for line in written)
                        block = block.decode("utf-8", "replace").encode()  # as write_lines
                        assert block == _reference_lines(events, args), vars(args)
