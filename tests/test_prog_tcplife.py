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
