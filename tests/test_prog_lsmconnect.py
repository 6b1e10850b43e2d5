"""programs/lsmconnect.py: in the vmtest stage (a kernel with BPF LSM) connect() to the
denied address fails with EPERM and shows as one line with this process's pid and comm,
while another address connects; after the tool ends the denied address connects again.
Here (LSM programs refused) the tool must stop with one line naming BPF LSM and leave
nothing loaded."""

import os
import socket
import subprocess
import sys
import time

import pytest

import progrun
from bpfenv import needs_bpf, refused_here
from progrun import Tool, programs_loaded
from pybpf.syscall.bpf import ProgType

sys.path.insert(0, os.path.join(progrun.ROOT, "programs"))
from lsmconnect import bpf_lsm_missing  # noqa: E402

pytestmark = needs_bpf
NO_LSM = refused_here(ProgType.LSM, "LSM")
NOT_ACTIVE = bpf_lsm_missing() and "BPF LSM not in the kernel's lsm= list: " + \
    bpf_lsm_missing()
DENIED, OTHER = "127.0.0.2", "127.0.0.3"        # both reach the loopback interface


def _connect(address, port):
    """None if connect() succeeded, else the errno."""
    with socket.socket() as s:
        try:
            s.connect((address, port))
        except OSError as exc:
            return exc.errno
    return None


@pytest.mark.vmtest
@pytest.mark.skipif(bool(NO_LSM), reason=NO_LSM)
@pytest.mark.skipif(bool(NOT_ACTIVE), reason=NOT_ACTIVE)
def test_lsmconnect_denies_and_reports():
    with socket.socket() as listener:
        listener.bind(("0.0.0.0", 0))
        listener.listen(16)
        port = listener.getsockname()[1]
        assert _connect(DENIED, port) is None
        tool = Tool("lsmconnect", "-a", DENIED, header="DADDR", timeout=120)
        try:
            assert _connect(DENIED, port) == 1                 # EPERM
            assert _connect(OTHER, port) is None
            assert _connect(DENIED, port) == 1
            time.sleep(1.0)
        finally:
            rc, out, err = tool.stop(timeout=120)
        print(out)
        assert rc == 0, err
        assert _connect(DENIED, port) is None                  # detached
    with open("/proc/self/comm") as f:
        me = f.read().strip()
    lines = out.splitlines()
    assert lines[:2] == [f"Denying connect() to {DENIED}... Hit Ctrl-C to end.",
                         "TIME     PID     COMM             DADDR           DPORT"], out
    rows = [line.split() for line in lines[2:] if line.strip()]
    assert [r[1:] for r in rows] == [[str(os.getpid()), me, DENIED, str(port)]] * 2, out
    assert not programs_loaded(["deny_connect"])


def test_lsmconnect_needs_bpf_lsm():
    """Where LSM programs are refused or BPF LSM is off: one line naming BPF LSM,
    nothing left loaded; where it works: the banner."""
    proc = subprocess.Popen([sys.executable, "programs/lsmconnect.py", "-a", DENIED],
                            cwd=progrun.ROOT, env=progrun.env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:              # BPF LSM works here: it runs
        proc.send_signal(2)
        out, err = proc.communicate(timeout=60)
        assert out.startswith(f"Denying connect() to {DENIED}"), out
        return
    assert NO_LSM or NOT_ACTIVE, (out, err)
    assert proc.returncode == 1 and out == "", out
    assert err.count("\n") == 1 and err.startswith("lsmconnect: BPF LSM"), err
    assert not programs_loaded(["deny_connect"])
