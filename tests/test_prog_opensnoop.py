"""programs/opensnoop.py against a workload that opens known files, and against
bpftrace's equivalent one-liner."""

import os
import shutil
import signal
import subprocess
import time

import pytest

from bpfenv import needs_bpf
from progrun import Tool, programs_loaded

HEADER = "PID    COMM               FD ERR PATH"
PROGRAMS = ("openat_enter", "openat_exit", "openat2_enter", "openat2_exit")


def _workload(tmp_path, tag: str) -> tuple:
    """Open an existing and a missing file from a child process; (pid, good, missing)."""
    good = tmp_path / f"{tag}-exists"
    good.write_text("x")
    missing = tmp_path / f"{tag}-missing"
    code = (f"import os\nfd = os.open({str(good)!r}, os.O_RDONLY)\n"
            f"try:\n    os.open({str(missing)!r}, os.O_RDONLY)\nexcept OSError:\n    pass\n")
    child = subprocess.run(["python3", "-c", f"import os; print(os.getpid())\n{code}"],
                           capture_output=True, text=True, check=True)
    return int(child.stdout), str(good), str(missing)


def _rows(out: str, tmp_path) -> list:
    rows = []
    for line in out.splitlines():
        parts = line.split(None, 4)
        if len(parts) == 5 and parts[4].startswith(str(tmp_path)):
            rows.append((int(parts[0]), parts[1], int(parts[2]), int(parts[3]), parts[4]))
    return rows


@needs_bpf
def test_opensnoop_shows_fd_and_errno(tmp_path) -> None:
    tool = Tool("opensnoop", header=HEADER)
    pid, good, missing = _workload(tmp_path, "os1")
    time.sleep(0.3)
    rc, out, err = tool.stop()
    assert rc == 0, err
    rows = [r for r in _rows(out, tmp_path) if r[0] == pid]
    assert [(r[1], r[4]) for r in rows] == [("python3", good), ("python3", missing)], out
    assert rows[0][2] >= 3 and rows[0][3] == 0          # an fd, no error
    assert rows[1][2] == -1 and rows[1][3] == 2          # ENOENT
    assert not programs_loaded(PROGRAMS)


@needs_bpf
def test_opensnoop_filters(tmp_path) -> None:
    tool = Tool("opensnoop", "-x", "-T", "-U", "-n", "python", header="TIME(s)")
    pid, good, missing = _workload(tmp_path, "os2")
    time.sleep(0.3)
    rc, out, err = tool.stop(signal.SIGTERM)
    assert rc == 0, err
    mine = [line.split() for line in out.splitlines() if str(tmp_path) in line]
    assert len(mine) == 1 and mine[0][-1] == missing, out   # -x: only the failure
    time_s, uid, p = float(mine[0][0]), int(mine[0][1]), int(mine[0][2])
    assert time_s >= 0 and uid == os.getuid() and p == pid
    tool = Tool("opensnoop", "-p", os.getpid(), header=HEADER)
    other, _, _ = _workload(tmp_path, "os3")
    with open(tmp_path / "os2-exists"):
        pass
    time.sleep(0.3)
    rc, out, err = tool.stop()
    assert rc == 0, err
    assert {r[0] for r in _rows(out, tmp_path)} == {os.getpid()}, out


@needs_bpf
@pytest.mark.skipif(shutil.which("bpftrace") is None, reason="bpftrace is not installed")
def test_opensnoop_agrees_with_bpftrace() -> None:
    import tempfile
    from pathlib import Path
    tmp_path = Path(tempfile.mkdtemp(prefix="bt"))     # bpftrace strings: <= 64 bytes
    script = ('tracepoint:syscalls:sys_enter_openat /str(args->filename) == "%s"/ '
              '{ printf("%%d %%s\\n", pid, str(args->filename)); }')
    good = tmp_path / "bt-exists"
    good.write_text("x")
    bt = subprocess.Popen(["bpftrace", "-e", script % good], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    tool = Tool("opensnoop", header=HEADER)
    try:
        line = bt.stdout.readline()                # "Attaching 1 probe..."
        assert "Attaching" in line, line + bt.stderr.read()
        pids = []
        for _ in range(3):
            child = subprocess.run(["python3", "-c", f"import os; print(os.getpid()); "
                                    f"open({str(good)!r}).close()"], capture_output=True,
                                   text=True, check=True)
            pids.append(int(child.stdout))
        time.sleep(0.5)
    finally:
        bt.send_signal(signal.SIGINT)
        bt_out, _ = bt.communicate(timeout=30)
        rc, out, err = tool.stop()
    theirs = {int(line.split()[0]) for line in bt_out.splitlines()
              if line.endswith(str(good))}
    ours = {r[0] for r in _rows(out, tmp_path) if r[4] == str(good)}
    shutil.rmtree(tmp_path)
    assert ours == theirs == set(pids), (out, bt_out)
