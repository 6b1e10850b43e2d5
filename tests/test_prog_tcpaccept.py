"""programs/tcpaccept.py: a child process accepts connections the test makes to its
IPv4 and IPv6 listeners (and a Unix-socket connection, not TCP: not shown); the
tool's lines are checked against the peers' addresses and ports, the filters, and
bpftrace following the same descriptor to its socket."""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import pytest

from bpfenv import needs_bpf
from progrun import Tool, programs_loaded

pytestmark = needs_bpf

HEADER = "PID     COMM         IP RADDR            RPORT LADDR            LPORT"
SERVER = """
import os, socket, sys
unix = socket.socket(socket.AF_UNIX); unix.bind(sys.argv[1]); unix.listen()
ls = []
for fam, host in ((socket.AF_INET, '127.0.0.1'), (socket.AF_INET6, '::1')):
    s = socket.socket(fam); s.bind((host, 0)); s.listen(); ls.append(s)
print(*[s.getsockname()[1] for s in ls], flush=True)
got = []
for s in ls:
    a, peer = s.accept()
    got.append(peer[1])
    a.close()
socket.socket.accept(unix)[0].close()
print(*got, flush=True)
"""


def _accepts(tmp):
    """A child accepting one IPv4, one IPv6 and one Unix connection made here; returns
    its pid, its two listening ports and the client ports it saw, in that order."""
    path = os.path.join(tmp, "u.sock")
    child = subprocess.Popen([sys.executable, "-c", SERVER, path], stdout=subprocess.PIPE,
                             text=True)
    ports = [int(p) for p in child.stdout.readline().split()]
    clients = []
    for host, port in (("127.0.0.1", ports[0]), ("::1", ports[1])):
        clients.append(socket.create_connection((host, port)))
    u = socket.socket(socket.AF_UNIX)
    u.connect(path)
    peers = [int(p) for p in child.stdout.readline().split()]
    assert child.wait(timeout=30) == 0
    assert peers == [c.getsockname()[1] for c in clients]
    for c in clients + [u]:
        c.close()
    return child.pid, ports, peers


def _rows(out, lead=0):
    return [line.split()[lead:] for line in out.splitlines()
            if len(line.split()) == 7 + lead and line.split()[lead].isdigit()]


def test_tcpaccept_sees_both_families_not_unix():
    tool = Tool("tcpaccept", header=HEADER)
    with tempfile.TemporaryDirectory() as tmp:
        pid, ports, peers = _accepts(tmp)
    time.sleep(0.5)
    rc, out, err = tool.stop()
    assert rc == 0, err
    mine = [r for r in _rows(out) if r[0] == str(pid)]
    assert [r[2:] for r in mine] == [
        ["4", "127.0.0.1", str(peers[0]), "127.0.0.1", str(ports[0])],
        ["6", "::1", str(peers[1]), "::1", str(ports[1])]], out     # no Unix accept
    assert all(r[1].startswith("python") for r in mine)
    assert not programs_loaded(["accept4_exit", "accept_exit"])


def test_tcpaccept_port_pid_and_family_filters():
    with tempfile.TemporaryDirectory() as tmp:
        # the child's ports are known only once it runs: filter on this process's
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        by_port = Tool("tcpaccept", "-P", f"{port},1", "-t", header="TIME(s)  " + HEADER)
        by_pid = Tool("tcpaccept", "-p", os.getpid(), "-T", header="TIME     " + HEADER)
        only6 = Tool("tcpaccept", "-6", header=HEADER)
        pid, ports, peers = _accepts(tmp)
        c = socket.create_connection(("127.0.0.1", port))
        cport = c.getsockname()[1]
        a, _ = s.accept()
        for x in (a, c, s):
            x.close()
    time.sleep(0.5)
    rc, out, err = by_port.stop()
    assert rc == 0, err
    rows = _rows(out, lead=1)
    assert [r[2:] for r in rows] == [["4", "127.0.0.1", str(cport), "127.0.0.1",
                                      str(port)]], out
    assert rows[0][0] == str(os.getpid())
    rc, out, err = by_pid.stop()
    assert rc == 0, err
    rows = _rows(out, lead=1)
    assert [(r[0], r[4], r[6]) for r in rows] == [(str(os.getpid()), str(cport),
                                                   str(port))], out
    rc, out, err = only6.stop()
    assert rc == 0, err
    rows = _rows(out)
    assert rows and all(r[2] == "6" for r in rows), out
    assert [r[3:] for r in rows if r[0] == str(pid)] == [["::1", str(peers[1]), "::1",
                                                           str(ports[1])]], out


@pytest.mark.skipif(shutil.which("bpftrace") is None, reason="bpftrace is not installed")
def test_tcpaccept_matches_bpftrace():
    script = ("tracepoint:syscalls:sys_exit_accept4,tracepoint:syscalls:sys_exit_accept "
              "/args->ret >= 0/ { $f = (struct file *)*(curtask->files->fdt->fd + args->ret);"
              " $sk = ((struct socket *)$f->private_data)->sk; printf(\"EV %d %d %d %d\\n\", "
              "pid, $sk->__sk_common.skc_family, $sk->__sk_common.skc_num, "
              "bswap($sk->__sk_common.skc_dport)); }")
    bt = subprocess.Popen(["bpftrace", "-e", script], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while "Attaching" not in (bt.stdout.readline() or "") and time.monotonic() < deadline:
        pass
    tool = Tool("tcpaccept", header=HEADER)
    with tempfile.TemporaryDirectory() as tmp:
        pid, ports, peers = _accepts(tmp)
    time.sleep(0.5)
    rc, out, err = tool.stop()
    bt.send_signal(2)
    bt_out, bt_err = bt.communicate(timeout=30)
    assert rc == 0, err
    fam = {"2": "4", "10": "6"}
    theirs = sorted((e[1], fam[e[2]], e[3], e[4])
                    for e in (line.split() for line in bt_out.splitlines())
                    if len(e) == 5 and e[0] == "EV" and e[1] == str(pid) and e[2] in fam)
    ours = sorted((r[0], r[2], r[6], r[4]) for r in _rows(out) if r[0] == str(pid))
    assert ours == theirs == sorted(
        (str(pid), ip, str(lp), str(rp)) for ip, lp, rp in zip("46", ports, peers)), \
        (out, bt_out, bt_err)


def test_tcpaccept_json():
    import threading
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(128)
    port = s.getsockname()[1]
    stop = threading.Event()

    def ping():                     # accepts until the tool (no header in JSON) is live
        while not stop.wait(0.05):
            c = socket.create_connection(("127.0.0.1", port))
            s.accept()[0].close()
            c.close()

    pinger = threading.Thread(target=ping, daemon=True)
    pinger.start()
    try:
        tool = Tool("tcpaccept", "--json", "-T", "-t", "-P", port, header='"comm": ')
    finally:
        stop.set()
        pinger.join()
    c = socket.create_connection(("127.0.0.1", port))
    s.accept()[0].close()
    cport = c.getsockname()[1]
    c.close()
    time.sleep(0.5)
    rc, out, err = tool.stop()
    assert rc == 0, err
    objs = [json.loads(line) for line in out.splitlines()]
    assert all(list(o) == ["time", "time(s)", "pid", "comm", "ip", "raddr", "rport", "laddr",
                           "lport"] for o in objs), out
    (o,) = [o for o in objs if o["rport"] == cport]
    assert (o["pid"], o["ip"], o["raddr"], o["laddr"], o["lport"]) == \
        (os.getpid(), 4, "127.0.0.1", "127.0.0.1", port), out
    s.close()
