"""programs/tcpconnect.py: connects on loopback (IPv4 and IPv6) from a child process,
checked against the tool's lines and against bpftrace on the same tracepoint."""

import os
import re
import shutil
import socket
import subprocess
import sys
import time

import pytest

from bpfenv import needs_bpf
from progrun import Tool, programs_loaded

pytestmark = needs_bpf

HEADER = "PID    COMM         IP SADDR            DADDR            DPORT"
CLIENT = """
import socket, sys
for fam, host, port in ((socket.AF_INET, '127.0.0.1', int(sys.argv[1])),
                        (socket.AF_INET6, '::1', int(sys.argv[2]))):
    c = socket.socket(fam)
    c.connect((host, port))
    c.close()
"""


def _listeners():
    s4 = socket.socket()
    s4.bind(("127.0.0.1", 0))
    s4.listen()
    s6 = socket.socket(socket.AF_INET6)
    s6.bind(("::1", 0))
    s6.listen()
    return s4, s6


def _connect_from_child(p4, p6):
    child = subprocess.Popen([sys.executable, "-c", CLIENT, str(p4), str(p6)])
    assert child.wait(timeout=30) == 0
    return child.pid


def test_tcpconnect_sees_loopback_connects():
    s4, s6 = _listeners()
    p4, p6 = s4.getsockname()[1], s6.getsockname()[1]
    tool = Tool("tcpconnect", header=HEADER)
    pid = _connect_from_child(p4, p6)
    time.sleep(0.5)
    rc, out, err = tool.stop()
    assert rc == 0, err
    mine = [line.split() for line in out.splitlines() if line.startswith(f"{pid} ")]
    assert mine and all(m[1].startswith("python") for m in mine), out
    assert [m[2:] for m in mine] == [["4", "127.0.0.1", "127.0.0.1", str(p4)],
                                     ["6", "::1", "::1", str(p6)]], out
    assert not programs_loaded(["tcp_connect"])


def test_tcpconnect_port_filter_and_timestamps():
    s4, s6 = _listeners()
    p4, p6 = s4.getsockname()[1], s6.getsockname()[1]
    tool = Tool("tcpconnect", "-t", "-P", p6, header="TIME(s)  PID")
    pid = _connect_from_child(p4, p6)
    time.sleep(0.5)
    rc, out, err = tool.stop()
    assert rc == 0, err
    lines = [line for line in out.splitlines()[1:] if line.strip()]
    assert all(line.split()[-1] == str(p6) for line in lines), out
    mine = [line.split() for line in lines if line.split()[1] == str(pid)]
    assert len(mine) == 1 and mine[0][3:6] == ["6", "::1", "::1"]
    assert re.match(r"\d+\.\d{3}$", mine[0][0])


def test_tcpconnect_pid_filter():
    s4, s6 = _listeners()
    p4, p6 = s4.getsockname()[1], s6.getsockname()[1]
    tool = Tool("tcpconnect", "-p", os.getpid(), header=HEADER)
    _connect_from_child(p4, p6)                 # another process: not shown
    c = socket.create_connection(("127.0.0.1", p4))
    c.close()
    time.sleep(0.5)
    rc, out, err = tool.stop()
    assert rc == 0, err
    events = [line.split() for line in out.splitlines()[1:] if line.strip()]
    assert events and all(e[0] == str(os.getpid()) for e in events), out
    assert [e[2:] for e in events] == [["4", "127.0.0.1", "127.0.0.1", str(p4)]]


def test_tcpconnect_uid_column_and_filter():
    s4, s6 = _listeners()
    p4, p6 = s4.getsockname()[1], s6.getsockname()[1]
    shown = Tool("tcpconnect", "-U", "-u", os.getuid(), header="UID    PID")
    hidden = Tool("tcpconnect", "-u", os.getuid() + 4242, header=HEADER)
    pid = _connect_from_child(p4, p6)
    time.sleep(0.5)
    rc, out, err = shown.stop()
    assert rc == 0, err
    rows = [line.split() for line in out.splitlines()[1:]]
    assert [r[0] for r in rows if r[1] == str(pid)] == [str(os.getuid())] * 2, out
    rc, out, err = hidden.stop()
    assert rc == 0, err
    assert out.strip() == HEADER


@pytest.mark.skipif(shutil.which("bpftrace") is None, reason="bpftrace is not installed")
def test_tcpconnect_matches_bpftrace():
    s4, s6 = _listeners()
    p4, p6 = s4.getsockname()[1], s6.getsockname()[1]
    script = ("tracepoint:sock:inet_sock_set_state /args->newstate == 2 && "
              "args->protocol == 6/ { printf(\"EV %d %d %d\\n\", pid, args->family, "
              "args->dport); }")
    bt = subprocess.Popen(["bpftrace", "-e", script], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    tool = Tool("tcpconnect", header=HEADER)
    deadline = time.monotonic() + 30
    while "Attaching" not in (bt.stdout.readline() or "") and time.monotonic() < deadline:
        pass
    pid = _connect_from_child(p4, p6)
    time.sleep(0.5)
    rc, out, err = tool.stop()
    bt.send_signal(2)
    bt_out, _ = bt.communicate(timeout=30)
    assert rc == 0, err
    fam = {"2": "4", "10": "6"}
    theirs = {(e[1], fam[e[2]], e[3]) for e in (line.split() for line in bt_out.splitlines())
              if len(e) == 4 and e[0] == "EV" and e[1] == str(pid)}
    ours = {(e[0], e[2], e[5]) for e in (line.split() for line in out.splitlines()[1:])
            if e and e[0] == str(pid)}
    assert ours == theirs == {(str(pid), "4", str(p4)), (str(pid), "6", str(p6))}
