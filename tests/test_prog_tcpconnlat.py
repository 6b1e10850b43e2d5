"""programs/tcpconnlat.py: loopback connects (IPv4 and IPv6) from a child that times
its own connect() calls, a refused connect, and a slow connect between two network
namespaces whose first SYN is lost (so the connect takes the kernel's initial
retransmission timeout, one second); checked against the child's figures and against
bpftrace on the same tracepoint."""

import errno
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import threading
import time

import pytest

from bpfenv import needs_bpf
from linkutil import VethPair, in_netns, net_reason
from progrun import Tool, programs_loaded

pytestmark = needs_bpf

HEADER = "PID     COMM         IP SADDR            DADDR            DPORT LAT(ms)"
HEADER_L = "PID     COMM         IP SADDR            LPORT  DADDR            DPORT LAT(ms)"
CLIENT = """
import socket, sys, time
out = []
for host, port in (('127.0.0.1', int(sys.argv[1])), ('::1', int(sys.argv[2]))):
    c = socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET)
    t = time.monotonic()
    c.connect((host, port))
    out.append('%d %.6f' % (c.getsockname()[1], (time.monotonic() - t) * 1000))
    c.close()
try:
    socket.create_connection(('127.0.0.1', int(sys.argv[3])))
except ConnectionRefusedError:
    out.append('refused')
print(' '.join(out))
"""
TCP_TIMEOUT_INIT_MS = 1000           # the kernel's first SYN retransmission timeout


def _listeners():
    s4 = socket.socket()
    s4.bind(("127.0.0.1", 0))
    s4.listen()
    s6 = socket.socket(socket.AF_INET6)
    s6.bind(("::1", 0))
    s6.listen()
    closed = socket.socket()                 # bound, not listening: connects are refused
    closed.bind(("127.0.0.1", 0))
    return s4, s6, closed


def _child_connects():
    """The child's pid and, per connect, (local port, connect() time in ms)."""
    s4, s6, closed = _listeners()
    ports = [s.getsockname()[1] for s in (s4, s6, closed)]
    child = subprocess.Popen([sys.executable, "-c", CLIENT, *map(str, ports)],
                             stdout=subprocess.PIPE, text=True)
    out, _ = child.communicate(timeout=30)
    assert child.returncode == 0
    f = out.split()
    assert f[4] == "refused"
    return child.pid, ports, [(int(f[0]), float(f[1])), (int(f[2]), float(f[3]))]


def _rows(out, lport=False):
    rows = []
    for line in out.splitlines():
        f = line.split()
        if len(f) != (8 if lport else 7) or not f[0].isdigit():
            continue
        r = dict(pid=int(f[0]), comm=f[1], ip=int(f[2]), saddr=f[3], lat=float(f[-1]),
                 dport=int(f[-2]), daddr=f[-3])
        if lport:
            r["lport"] = int(f[4])
        rows.append(r)
    return rows


def test_tcpconnlat_loopback_connects():
    tool = Tool("tcpconnlat", "-L", header=HEADER_L)
    pid, ports, connects = _child_connects()
    time.sleep(0.5)
    rc, out, err = tool.stop()
    assert rc == 0, err
    mine = [r for r in _rows(out, lport=True) if r["pid"] == pid]
    assert [(r["ip"], r["saddr"], r["lport"], r["daddr"], r["dport"]) for r in mine] == [
        (4, "127.0.0.1", connects[0][0], "127.0.0.1", ports[0]),
        (6, "::1", connects[1][0], "::1", ports[1])], out      # the refused one: not shown
    assert all(r["comm"].startswith("python") for r in mine)
    # the latency is part of the connect() call the child timed (2 decimals: rounding)
    for r, (_, took) in zip(mine, connects):
        assert 0 <= r["lat"] <= took + 0.005, (r, took)
    assert not programs_loaded(["tcp_connect_state"])


@pytest.mark.skipif(bool(net_reason()), reason=net_reason())
def test_tcpconnlat_slow_connect_min_ms_and_pid():
    """A connect whose SYN is lost: at least the initial retransmission timeout, at
    most the connect() call; the minimum (500 ms) hides the fast ones, -p and -4 keep
    this process's IPv4 connect."""
    pair = VethPair("cl")
    try:
        with in_netns(pair.b):
            server = socket.socket()
        server.bind((pair.ip_b, 0))
        server.listen()
        slow = Tool("tcpconnlat", "500", header=HEADER)
        mine = Tool("tcpconnlat", "-p", os.getpid(), "-4", "-t", header="TIME(s)  " + HEADER)
        neigh = ["ip", "-n", pair.a, "neigh"]
        subprocess.run(neigh + ["replace", pair.ip_b, "lladdr", "02:00:00:00:00:01", "dev",
                                pair.va, "nud", "permanent"], check=True)
        with in_netns(pair.a):
            c = socket.socket()
        c.setblocking(False)
        t = time.monotonic()
        # the SYN leaves (for the wrong MAC) before connect_ex returns; only then is the
        # neighbour entry removed: the retransmitted SYN, a second later, gets through
        assert c.connect_ex((pair.ip_b, server.getsockname()[1])) == errno.EINPROGRESS
        time.sleep(0.3)
        subprocess.run(neigh + ["del", pair.ip_b, "dev", pair.va], check=True)
        assert select.select([], [c], [], 30)[1] == [c]
        took = (time.monotonic() - t) * 1000
        assert c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
        c.close()
        pid, ports, _ = _child_connects()            # fast connects of another process
        time.sleep(0.5)
        rc, out, err = slow.stop()
        assert rc == 0, err
        rows = _rows(out)
        assert all(r["lat"] >= 500 for r in rows), out
        (row,) = [r for r in rows if r["dport"] == server.getsockname()[1]]
        assert (row["pid"], row["ip"], row["saddr"], row["daddr"]) == \
            (os.getpid(), 4, pair.ip_a, pair.ip_b), out
        assert TCP_TIMEOUT_INIT_MS <= row["lat"] <= took + 0.005, (row, took)
        assert not [r for r in rows if r["pid"] == pid], out
        rc, out, err = mine.stop()
        assert rc == 0, err
        rows = [line.split() for line in out.splitlines()[1:]]
        assert rows and all(r[1] == str(os.getpid()) and r[3] == "4" for r in rows), out
        assert [r[4:7] for r in rows if r[6] == str(server.getsockname()[1])] == \
            [[pair.ip_a, pair.ip_b, str(server.getsockname()[1])]], out
        server.close()
    finally:
        pair.close()


@pytest.mark.skipif(shutil.which("bpftrace") is None, reason="bpftrace is not installed")
def test_tcpconnlat_matches_bpftrace():
    script = ("tracepoint:sock:inet_sock_set_state /args->protocol == 6/ { "
              "if (args->newstate == 2) { @s[args->skaddr] = nsecs; @p[args->skaddr] = pid; }"
              " if (args->oldstate == 2 && args->newstate == 1 && @s[args->skaddr]) { "
              "printf(\"EV %d %d %d %d\\n\", @p[args->skaddr], args->family, args->dport, "
              "nsecs - @s[args->skaddr]); delete(@s[args->skaddr]); "
              "delete(@p[args->skaddr]); } } END { clear(@s); clear(@p); }")
    bt = subprocess.Popen(["bpftrace", "-e", script], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while "Attaching" not in (bt.stdout.readline() or "") and time.monotonic() < deadline:
        pass
    tool = Tool("tcpconnlat", header=HEADER)
    pid, ports, _ = _child_connects()
    time.sleep(0.5)
    rc, out, err = tool.stop()
    bt.send_signal(2)
    bt_out, bt_err = bt.communicate(timeout=30)
    assert rc == 0, err
    theirs = sorted((int(e[1]), 4 if e[2] == "2" else 6, int(e[3]), int(e[4]) / 1e6)
                    for e in (line.split() for line in bt_out.splitlines())
                    if len(e) == 5 and e[0] == "EV" and int(e[1]) == pid)
    ours = sorted((r["pid"], r["ip"], r["dport"], r["lat"]) for r in _rows(out)
                  if r["pid"] == pid)
    assert [t[:3] for t in theirs] == [o[:3] for o in ours] == \
        [(pid, 4, ports[0]), (pid, 6, ports[1])], (out, bt_out, bt_err)
    # both time the same two state changes, each program reading the clock itself: they
    # run one after the other and may be preempted in between (a loaded machine)
    for o, t in zip(ours, theirs):
        assert abs(o[3] - t[3]) <= 1.0, (ours, theirs)


def test_tcpconnlat_json():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    port = listener.getsockname()[1]
    stop = threading.Event()

    def ping():                     # connects until the tool (no header in JSON) is live
        while not stop.wait(0.05):
            socket.create_connection(("127.0.0.1", port)).close()
            listener.accept()[0].close()

    pinger = threading.Thread(target=ping, daemon=True)
    pinger.start()
    try:
        tool = Tool("tcpconnlat", "--json", "-t", "-L", "-p", os.getpid(), header='"comm": ')
    finally:
        stop.set()
        pinger.join()
    c = socket.create_connection(("127.0.0.1", port))
    lport = c.getsockname()[1]
    c.close()
    time.sleep(0.5)
    rc, out, err = tool.stop()
    assert rc == 0, err
    objs = [json.loads(line) for line in out.splitlines()]
    assert all(list(o) == ["time(s)", "pid", "comm", "ip", "saddr", "lport", "daddr", "dport",
                           "lat(ms)"] for o in objs), out
    assert all(o["pid"] == os.getpid() and o["dport"] == port for o in objs), out
    (o,) = [o for o in objs if o["lport"] == lport]
    assert (o["ip"], o["saddr"], o["daddr"]) == (4, "127.0.0.1", "127.0.0.1")
    assert isinstance(o["lat(ms)"], float) and o["lat(ms)"] >= 0
    listener.close()
