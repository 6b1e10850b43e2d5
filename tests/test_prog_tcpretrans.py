"""programs/tcpretrans.py: an outage on a veth pair between two network namespaces
(A's neighbour entries for B pointing at a MAC nobody has while IPv4 and IPv6
connections have data in flight, then removed) makes the kernel retransmit; the tool's
rows for the two flows are checked against the addresses and ports, the namespace's
RetransSegs counter and bpftrace.

(This kernel has no netem qdisc, CONFIG_NET_SCH_NETEM is off, hence the outage.)"""

import json
import shutil
import socket
import subprocess
import threading
import time

import pytest

from bpfenv import needs_bpf
from linkutil import VethPair, in_netns, net_reason
import progrun
from progrun import Tool, programs_loaded

pytestmark = [needs_bpf, pytest.mark.skipif(bool(net_reason()), reason=net_reason())]

BANNER = "Tracing retransmits ... Hit Ctrl-C to end"
HEADER = "TIME     PID     IP LADDR:LPORT          T> RADDR:RPORT          STATE"
V6A, V6B = "fd99::1", "fd99::2"


@pytest.fixture(scope="module")
def pair():
    p = VethPair("rt")
    try:
        for ns, dev, addr in ((p.a, p.va, V6A), (p.b, p.vb, V6B)):
            subprocess.run(["ip", "-n", ns, "-6", "addr", "add", f"{addr}/64", "dev", dev,
                            "nodad"], check=True)
        yield p
    finally:
        p.close()


def _retrans_segs(ns):
    snmp = subprocess.run(["ip", "netns", "exec", ns, "cat", "/proc/net/snmp"],
                          capture_output=True, text=True, check=True).stdout
    tcp = [line.split() for line in snmp.splitlines() if line.startswith("Tcp:")]
    return int(tcp[1][tcp[0].index("RetransSegs")])


def _outage(pair, outage=1.3):
    """An IPv4 and an IPv6 connection from A to B, a first exchange, then B unreachable
    while A sends 500 bytes on each, reachable again after ``outage`` seconds; returns the client
    ends as (ip, laddr, lport, raddr, rport) and A's RetransSegs before and after."""
    listeners, clients, flows = [], [], []
    for fam, a, b in ((socket.AF_INET, pair.ip_a, pair.ip_b), (socket.AF_INET6, V6A, V6B)):
        with in_netns(pair.b):
            s = socket.socket(fam)
        s.bind((b, 0))
        s.listen()
        with in_netns(pair.a):
            c = socket.socket(fam)
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.settimeout(30)
        c.connect((b, s.getsockname()[1]))
        listeners.append(s)
        clients.append(c)
        flows.append((4 if fam == socket.AF_INET else 6, a, c.getsockname()[1], b,
                      s.getsockname()[1]))
    servers = [s.accept()[0] for s in listeners]
    for c, a in zip(clients, servers):
        a.settimeout(30)
        c.sendall(b"h" * 100)
        assert len(a.recv(100, socket.MSG_WAITALL)) == 100
    before = _retrans_segs(pair.a)
    neigh = ["ip", "-n", pair.a, "neigh"]
    for addr in (pair.ip_b, V6B):     # A sends B's frames to a MAC nobody has: B drops them
        subprocess.run(neigh + ["replace", addr, "lladdr", "02:00:00:00:00:01", "dev",
                                pair.va, "nud", "permanent"], check=True)
    try:
        for c in clients:
            c.sendall(b"x" * 500)
        time.sleep(outage)
    finally:
        for addr in (pair.ip_b, V6B):
            subprocess.run(neigh + ["del", addr, "dev", pair.va], check=True)
    for a in servers:
        assert len(a.recv(500, socket.MSG_WAITALL)) == 500
    after = _retrans_segs(pair.a)
    for s in clients + servers + listeners:
        s.close()
    return flows, before, after


def _rows(out, seq=False):
    rows = []
    for line in out.splitlines():
        f = line.split()
        if len(f) != (8 if seq else 7) or f[4] not in ("R>", "L>"):
            continue
        (laddr, lport), (raddr, rport) = f[3].rsplit(":", 1), f[5].rsplit(":", 1)
        rows.append(dict(time=f[0], pid=int(f[1]), ip=int(f[2]), laddr=laddr,
                         lport=int(lport), t=f[4][0], raddr=raddr, rport=int(rport),
                         state=f[6], seq=int(f[7]) if seq else None))
    return rows


def _of(rows, flow):
    ip, la, lp, ra, rp = flow
    return [r for r in rows if (r["ip"], r["laddr"], r["lport"], r["raddr"], r["rport"])
            == (ip, la, lp, ra, rp)]


def test_tcpretrans_sees_retransmits_of_both_families(pair):
    tool = Tool("tcpretrans", header=BANNER)
    only6 = Tool("tcpretrans", "-6", header=BANNER)
    counting = Tool("tcpretrans", "-c", header=BANNER)
    flows, before, after = _outage(pair)
    time.sleep(0.5)
    rc, out, err = tool.stop()
    assert rc == 0, err
    assert out.splitlines()[:2] == [BANNER, HEADER]
    rows = _rows(out)
    per_flow = [_of(rows, f) for f in flows]
    assert all(per_flow), (flows, out)
    for rs in per_flow:
        assert all(r["t"] == "R" and r["state"] == "ESTABLISHED" for r in rs), out
    # every retransmit the tracepoint saw is a segment the namespace counted as one
    assert 2 <= sum(map(len, per_flow)) <= after - before
    rc, out6, err = only6.stop()
    assert rc == 0, err
    assert [(r["pid"], r["state"]) for r in _of(_rows(out6), flows[1])] \
        == [(r["pid"], r["state"]) for r in per_flow[1]], out6
    assert all(r["ip"] == 6 for r in _rows(out6)), out6
    rc, out, err = counting.stop()
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[:3] == [BANNER, "", "LADDR:LPORT               RADDR:RPORT               "
                                     "RETRANSMITS"], out
    counts = {}
    for line in lines[3:]:
        left, right = line.split(" <-> ")
        counts[left.strip()] = (right.split()[0], int(right.split()[1]))
    for (ip, la, lp, ra, rp), rs in zip(flows, per_flow):
        assert counts[f"[{la}]#{lp}"] == (f"[{ra}]#{rp}", len(rs)), out
    assert not programs_loaded(["tcp_retransmit"])


@pytest.mark.skipif(shutil.which("bpftrace") is None, reason="bpftrace is not installed")
def test_tcpretrans_sequence_numbers_match_bpftrace(pair):
    script = ("tracepoint:tcp:tcp_retransmit_skb { printf(\"EV %d %d %d %u\\n\", "
              "args->sport, args->dport, args->state, ((struct tcp_skb_cb *)"
              "((struct sk_buff *)args->skbaddr)->cb)->seq); }")
    bt = subprocess.Popen(["bpftrace", "-e", script], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while "Attaching" not in (bt.stdout.readline() or "") and time.monotonic() < deadline:
        pass
    tool = Tool("tcpretrans", "-s", header=BANNER)
    flows, _, _ = _outage(pair)
    time.sleep(0.5)
    rc, out, err = tool.stop()
    bt.send_signal(2)
    bt_out, bt_err = bt.communicate(timeout=30)
    assert rc == 0, err
    rows = _rows(out, seq=True)
    ours, theirs = [], []
    for flow in flows:
        ours += sorted((r["lport"], r["rport"], r["seq"]) for r in _of(rows, flow))
        theirs += sorted((int(e[1]), int(e[2]), int(e[4]))
                         for e in (line.split() for line in bt_out.splitlines())
                         if len(e) == 5 and e[0] == "EV" and int(e[1]) == flow[2]
                         and int(e[2]) == flow[4] and e[3] == "1")
    assert ours == theirs and len(ours) >= 2, (out, bt_out, bt_err)
    # a retransmit resends the data the outage held: the same sequence number each time
    for flow in flows:
        assert len({r["seq"] for r in _of(rows, flow)}) == 1, out


def test_tcpretrans_json(pair):
    result = {}
    workload = threading.Thread(target=lambda: result.update(flows=_outage(pair, 2.5)[0]))
    workload.start()                 # no header in JSON: retransmits come while it starts
    try:
        tool = Tool("tcpretrans", "--json", "-4", header='"state": ')
    finally:
        workload.join()
    time.sleep(0.5)
    rc, out, err = tool.stop()
    assert rc == 0, err
    objs = [json.loads(line) for line in out.splitlines()]
    assert all(list(o) == ["time", "pid", "ip", "laddr", "lport", "t", "raddr", "rport",
                           "state"] for o in objs), out
    ip, la, lp, ra, rp = result["flows"][0]
    mine = [o for o in objs if (o["laddr"], o["lport"], o["raddr"], o["rport"])
            == (la, lp, ra, rp)]
    assert mine and all(o["ip"] == 4 and o["t"] == "R" and o["state"] == "ESTABLISHED"
                        for o in mine), out
    assert all(o["ip"] == 4 for o in objs)


def test_tcpretrans_lossprobe_needs_kprobes():
    """-l adds a kprobe: where kprobes are missing the tool stops with one line naming
    them, and leaves nothing loaded; where they work it starts like the others."""
    proc = subprocess.Popen(["python3", "programs/tcpretrans.py", "-l"], cwd=progrun.ROOT,
                            env=progrun.env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:              # kprobes work here: it runs
        proc.send_signal(2)
        out, err = proc.communicate(timeout=30)
        assert out.splitlines()[:2] == [BANNER, HEADER], out
        return
    assert proc.returncode == 1 and out == "", out
    assert len(err.splitlines()) == 1 and err.startswith("tcpretrans: ") \
        and "kprobe" in err, err
    assert not programs_loaded(["tcp_retransmit", "tcp_loss_probe"])
