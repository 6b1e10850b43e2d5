"""programs/tcplife.py: one loopback session with known byte counts made by a child
process (client and server threads), both ends reported; compared with bpftrace."""

import shutil
import subprocess
import sys
import time

import pytest

from bpfenv import needs_bpf
from progrun import Tool, programs_loaded

pytestmark = needs_bpf

HEADER = "PID   COMM       LADDR           LPORT RADDR           RPORT TX_KB RX_KB MS"
SESSION = """
import os, socket, sys, threading, time
s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()
port = s.getsockname()[1]
def serve():
    a, _ = s.accept()
    a.recv(300000, socket.MSG_WAITALL)
    a.sendall(b'y' * 100000)
    a.close()
t = threading.Thread(target=serve); t.start()
c = socket.create_connection(('127.0.0.1', port))
print(os.getpid(), port, c.getsockname()[1], flush=True)
c.sendall(b'x' * 300000)
c.recv(100000, socket.MSG_WAITALL)
time.sleep(0.05)
c.close(); t.join()
"""


def _session():
    child = subprocess.run([sys.executable, "-c", SESSION], capture_output=True, text=True,
                           timeout=30)
    assert child.returncode == 0, child.stderr
    pid, server_port, client_port = child.stdout.split()
    return pid, server_port, client_port


def _check(out, server_port, client_port):
    rows = {}
    for line in out.splitlines():
        f = line.split()
        if len(f) == 9 and f[3] in (server_port, client_port) and f[5] in (server_port,
                                                                           client_port):
            rows[f[3]] = f
    client, server = rows[client_port], rows[server_port]
    assert client[1].startswith("python")      # the server end's owner is best effort
    assert client[2] == client[4] == "127.0.0.1"
    assert client[5] == server_port and server[5] == client_port
    # the client sent 300000 bytes and received 100000: 292 and 97 KB
    assert (client[6], client[7]) == ("292", "97"), out
    assert (server[6], server[7]) == ("97", "292"), out
    assert float(client[8]) > 0 and float(server[8]) > 0
    return client, server


def test_tcplife_reports_both_ends_with_bytes():
    tool = Tool("tcplife", header=HEADER)
    pid, server_port, client_port = _session()
    time.sleep(0.5)
    rc, out, err = tool.stop()
    assert rc == 0, err
    client, server = _check(out, server_port, client_port)
    assert client[0] == pid             # the server end's owner is best effort, as in BCC
    assert not programs_loaded(["tcp_state"])


def test_tcplife_port_filter_and_csv():
    tool = Tool("tcplife", "-s", "-T", "-D", "1", header="TIME,PID,COMM")
    _session()                              # no remote port 1: nothing shown
    time.sleep(0.3)
    rc, out, err = tool.stop()
    assert rc == 0, err
    assert out.strip().splitlines() == ["TIME,PID,COMM,LADDR,LPORT,RADDR,RPORT,TX_KB,RX_KB,MS"]


IPV6_SESSION = """
import socket
s = socket.socket(socket.AF_INET6); s.bind(('::1', 0)); s.listen()
c = socket.create_connection(('::1', s.getsockname()[1]))
a, _ = s.accept()
c.sendall(b'z' * 4096); a.recv(4096, socket.MSG_WAITALL)
print(s.getsockname()[1], c.getsockname()[1], flush=True)
c.close(); a.close()
"""


def test_tcplife_ipv6_wide_and_family_filter():
    wide6 = Tool("tcplife", "-w", "-6", header="PID     COMM")
    only4 = Tool("tcplife", "-4", header=HEADER)
    r = subprocess.run([sys.executable, "-c", IPV6_SESSION], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    server_port, client_port = r.stdout.split()
    time.sleep(0.5)
    rc, out, err = wide6.stop()
    assert rc == 0, err
    rows = [line.split() for line in out.splitlines()[1:]]
    client = [f for f in rows if f[3] == client_port and f[5] == server_port]
    assert client and client[0][2] == client[0][4] == "::1", out
    assert client[0][6:8] == ["4", "0"], out                  # 4096 bytes sent
    rc, out, err = only4.stop()
    assert rc == 0, err
    assert client_port not in out


@pytest.mark.skipif(shutil.which("bpftrace") is None, reason="bpftrace is not installed")
def test_tcplife_matches_bpftrace():
    script = ("tracepoint:sock:inet_sock_set_state /args->newstate == 7 && "
              "args->protocol == 6/ { printf(\"EV %d %d\\n\", args->sport, args->dport); }")
    bt = subprocess.Popen(["bpftrace", "-e", script], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while "Attaching" not in (bt.stdout.readline() or "") and time.monotonic() < deadline:
        pass
    tool = Tool("tcplife", header=HEADER)
    _, server_port, client_port = _session()
    time.sleep(0.5)
    rc, out, err = tool.stop()
    bt.send_signal(2)
    bt_out, _ = bt.communicate(timeout=30)
    ports = {server_port, client_port}
    theirs = {(e[1], e[2]) for e in (line.split() for line in bt_out.splitlines())
              if len(e) == 3 and e[0] == "EV" and {e[1], e[2]} == ports}
    ours = {(e[3], e[5]) for e in (line.split() for line in out.splitlines())
            if len(e) == 9 and {e[3], e[5]} == ports}
    assert ours == theirs and len(ours) == 2


def test_tcplife_batch_printer_formats_like_one_line_per_event(monkeypatch):
    """Odd sessions (non-UTF-8 and 16-byte names, IPv4, IPv6, an unknown family, huge
    byte counts and spans, a session stamped before the tool started) through the batch
    printer with every combination of -T/-t/-s/-w give the bytes the tool's former
    per-event printer gives."""
    import random
    import types
    from rowsharness import ODD_COMMS, after_nul, batch_output, freeze_clock, program, \
        reference_output
    from test_prog_tcpconnect import _odd_addresses
    from pybpf.tooling import Clock, ip_address
    tcplife = program("tcplife")
    Life = tcplife.Life
    freeze_clock(monkeypatch)
    rnd = random.Random(20)
    raws = [after_nul(Life(
        ts_ns=10**12 + rnd.randint(-10**9, 10**12), span_ns=rnd.choice([0, 123456, 2**64 - 1]),
        tx_bytes=rnd.choice([0, 1023, 1024, 300000, 2**64 - 1]),
        rx_bytes=rnd.choice([0, 100000, 2**63]), pid=rnd.choice([0, 1, 2**32 - 1]),
        family=rnd.choice([2, 10, 0]), lport=rnd.choice([0, 80, 65535]),
        rport=rnd.choice([1, 65535]), laddr=_odd_addresses(rnd), raddr=_odd_addresses(rnd),
        comm=rnd.choice(ODD_COMMS)).to_bytes(), Life, "comm") for _ in range(600)]
    clock = Clock()
    clock.start_ns = 10**12
    for T in (False, True):
        for t in (False, True):
            for csv, wide in ((False, False), (False, True), (True, False), (True, True)):
                args = types.SimpleNamespace(time=T, timestamp=t, csv=csv, wide=wide,
                                             json=False)

                def show_one(e):                            # the former printer
                    la, ra = ip_address(e.family, e.laddr), ip_address(e.family, e.raddr)
                    tx, rx, ms = e.tx_bytes // 1024, e.rx_bytes // 1024, e.span_ns / 1e6
                    cols = []
                    if args.time:
                        cols.append(clock.wall())
                    if args.timestamp:
                        cols.append(f"{clock.elapsed(e.ts_ns):.6f}")
                    if args.csv:
                        return ",".join(cols + [str(e.pid), e.comm, la, str(e.lport), ra,
                                                str(e.rport), str(tx), str(rx), f"{ms:.2f}"])
                    if args.time:
                        cols[0] = f"{cols[0]:<8}"
                    if args.timestamp:
                        cols[-1] = f"{cols[-1]:<9}"
                    if args.wide:
                        line = (f"{e.pid:<7} {e.comm:<16.16} {la:<26} {e.lport:<5} {ra:<26} "
                                f"{e.rport:<5} {tx:>6} {rx:>6} {ms:.2f}")
                    else:
                        line = (f"{e.pid:<5} {e.comm:<10.10} {la:<15} {e.lport:<5} {ra:<15} "
                                f"{e.rport:<5} {tx:>5} {rx:>5} {ms:.2f}")
                    return " ".join(cols + [line])

                show = tcplife.batch_printer(args, clock)
                got = batch_output(monkeypatch, tcplife, show, raws)
                assert got == reference_output(show_one, Life, raws), vars(args)


def test_tcplife_json():
    import json
    import re
    import socket
    import threading
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    ping_port = listener.getsockname()[1]
    stop = threading.Event()

    def ping():                     # sessions until the tool (no header in JSON) is live
        while not stop.wait(0.05):
            c = socket.create_connection(("127.0.0.1", ping_port))
            a, _ = listener.accept()
            c.close()
            a.close()

    pinger = threading.Thread(target=ping, daemon=True)
    pinger.start()
    try:
        tool = Tool("tcplife", "--json", "-T", "-t", header='"comm": ')
    finally:
        stop.set()
        pinger.join()
    pid, server_port, client_port = _session()
    time.sleep(0.5)
    rc, out, err = tool.stop()
    assert rc == 0, err
    objs = [json.loads(line) for line in out.splitlines()]
    assert all(list(o) == ["time", "time(s)", "pid", "comm", "laddr", "lport", "raddr",
                           "rport", "tx_kb", "rx_kb", "ms"] for o in objs), out
    assert all(re.match(r"\d\d:\d\d:\d\d$", o["time"]) and o["time(s)"] > 0 for o in objs)
    ends = {o["lport"]: o for o in objs
            if {o["lport"], o["rport"]} == {int(server_port), int(client_port)}}
    client, server = ends[int(client_port)], ends[int(server_port)]
    assert (client["pid"], client["laddr"], client["raddr"], client["rport"],
            client["tx_kb"], client["rx_kb"]) == (int(pid), "127.0.0.1", "127.0.0.1",
                                                  int(server_port), 292, 97), out
    assert client["comm"].startswith("python")
    assert (server["laddr"], server["raddr"], server["rport"], server["tx_kb"],
            server["rx_kb"]) == ("127.0.0.1", "127.0.0.1", int(client_port), 97, 292), out
    assert isinstance(client["ms"], float) and client["ms"] > 0 and server["ms"] > 0
