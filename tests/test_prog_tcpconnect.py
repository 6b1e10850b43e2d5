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


def _odd_addresses(rnd):
    """16 address bytes: IPv4 in the first 4, loopback and IPv4-mapped IPv6, random."""
    return list(rnd.choice([bytes([127, 0, 0, 1]) + bytes(12), bytes(15) + b"\1",
                            bytes(10) + b"\xff\xff\x0a\x00\x00\x01", bytes(16), b"\xff" * 16,
                            bytes(rnd.randrange(256) for _ in range(16))]))


def test_tcpconnect_batch_printer_formats_like_one_line_per_event(monkeypatch):
    """Odd connects (non-UTF-8 and 16-byte names, IPv4, IPv6, an unknown family, port 0
    and 65535, the largest uid, a connect stamped before the first one shown) through
    the batch printer with every combination of -t/-U give the bytes the tool's former
    per-event printer gives."""
    import random
    import types
    from rowsharness import ODD_COMMS, after_nul, batch_output, program, reference_output
    from pybpf.tooling import ip_address
    tcpconnect = program("tcpconnect")
    Connect = tcpconnect.Connect
    rnd = random.Random(20)
    raws = [after_nul(Connect(
        ts_ns=10**12 + rnd.randint(-10**9, 10**12), pid=rnd.choice([1, 2**32 - 1]),
        uid=rnd.choice([0, 2**32 - 2]), family=rnd.choice([2, 10, 0]),
        dport=rnd.choice([0, 80, 65535]), saddr=_odd_addresses(rnd),
        daddr=_odd_addresses(rnd), comm=rnd.choice(ODD_COMMS)).to_bytes(), Connect, "comm")
        for _ in range(600)]
    for stamp in (False, True):
        for uid in (False, True):
            args = types.SimpleNamespace(timestamp=stamp, print_uid=uid, json=False)
            first = []

            def show_one(e):                                # the former printer
                ts = ""
                if args.timestamp:
                    first.append(e.ts_ns)
                    ts = f"{(e.ts_ns - first[0]) / 1e9:<9.3f}"
                if args.print_uid:
                    ts += f"{e.uid:<6} "
                ip = 4 if e.family == 2 else 6
                return (f"{ts}{e.pid:<6} {e.comm:<12.12} {ip:<2} "
                        f"{ip_address(e.family, e.saddr):<16} "
                        f"{ip_address(e.family, e.daddr):<16} {e.dport:<4}")

            got = batch_output(monkeypatch, tcpconnect, tcpconnect.batch_printer(args), raws)
            assert got == reference_output(show_one, Connect, raws), vars(args)


def test_tcpconnect_json():
    import json
    import threading
    s4, s6 = _listeners()
    p4, p6 = s4.getsockname()[1], s6.getsockname()[1]
    stop = threading.Event()

    def ping():                     # connects until the tool (no header in JSON) is live
        while not stop.wait(0.05):
            socket.create_connection(("127.0.0.1", p4)).close()

    pinger = threading.Thread(target=ping, daemon=True)
    pinger.start()
    try:
        tool = Tool("tcpconnect", "--json", "-t", "-U", "-p", os.getpid(), header='"comm": ')
    finally:
        stop.set()
        pinger.join()
    c = socket.create_connection(("::1", p6))
    c.close()
    time.sleep(0.5)
    rc, out, err = tool.stop()
    assert rc == 0, err
    objs = [json.loads(line) for line in out.splitlines()]
    assert all(list(o) == ["time(s)", "uid", "pid", "comm", "ip", "saddr", "daddr", "dport"]
               for o in objs), out
    assert all(isinstance(o["time(s)"], float) for o in objs)
    comm = open("/proc/self/comm").read().strip()
    rows = [(o["uid"], o["pid"], o["comm"], o["ip"], o["saddr"], o["daddr"], o["dport"])
            for o in objs]
    me = (os.getuid(), os.getpid(), comm)
    assert set(rows[:-1]) == {me + (4, "127.0.0.1", "127.0.0.1", p4)}, out   # the pings
    assert rows[-1] == me + (6, "::1", "::1", p6), out
