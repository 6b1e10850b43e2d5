"""programs/tcpstates.py: loopback sessions (IPv4 and IPv6) between listeners of the
test and a child process that connects and closes; every state change of the three
sockets of each session checked (pids of the syscalls' tasks, addresses, ports, spans),
the filters, the output forms, and agreement with bpftrace on the same tracepoint."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

from bpfenv import needs_bpf
from progrun import Tool, programs_loaded

pytestmark = needs_bpf

HEADER = ("SKADDR           C-PID C-COMM     LADDR           LPORT RADDR           RPORT "
          "OLDSTATE    -> NEWSTATE    MS")
CLIENT = """
import socket, sys
for spec in sys.argv[1:]:
    host, port = spec.rsplit(':', 1)
    c = socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET)
    c.connect((host, int(port)))
    print(c.getsockname()[1], flush=True)
    c.close()
"""
LISTENER = [("CLOSE", "LISTEN"), ("LISTEN", "CLOSE")]
CLIENT_SIDE = [("CLOSE", "SYN_SENT"), ("SYN_SENT", "ESTABLISHED"),
               ("ESTABLISHED", "FIN_WAIT1"), ("FIN_WAIT1", "FIN_WAIT2"), ("FIN_WAIT2", "CLOSE")]
SERVER_SIDE = [("LISTEN", "SYN_RECV"), ("SYN_RECV", "ESTABLISHED"),
               ("ESTABLISHED", "CLOSE_WAIT"), ("CLOSE_WAIT", "LAST_ACK"), ("LAST_ACK", "CLOSE")]


def _run_sessions(hosts=("127.0.0.1", "::1")):
    """Listeners on ``hosts`` (made now), a child connecting to each and closing, then
    each accepted and closed here, then the listeners closed. Returns the child's pid,
    the listening ports and the child's local ports, in ``hosts`` order."""
    listeners = []
    for host in hosts:
        s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        s.bind((host, 0))
        s.listen()
        listeners.append(s)
    ports = [s.getsockname()[1] for s in listeners]
    child = subprocess.Popen([sys.executable, "-c", CLIENT] +
                             [f"{h}:{p}" for h, p in zip(hosts, ports)],
                             stdout=subprocess.PIPE, text=True)
    out, _ = child.communicate(timeout=30)
    assert child.returncode == 0
    for s in listeners:
        a, _ = s.accept()
        a.close()
    for s in listeners:
        s.close()
    return child.pid, ports, [int(p) for p in out.split()]


def _by_socket(rows):
    """{skaddr: [row, ...]}, in time order when the rows have times (the tool's lines
    come CPU by CPU: two CPUs' changes of one socket may be out of order)."""
    socks, generation = {}, {}
    for r in sorted(rows, key=lambda r: r["ts"] or 0):
        key = (r["skaddr"], generation.get(r["skaddr"], 0))
        if key in socks and (r["old"] == "CLOSE" or socks[key][-1]["new"] == "CLOSE"):
            generation[r["skaddr"]] = key[1] + 1      # the address of a freed socket reused
            key = (r["skaddr"], key[1] + 1)
        socks.setdefault(key, []).append(r)
    return socks


def _parse(out, timestamp=False):
    rows = []
    for line in out.splitlines():
        f = line.split()
        if len(f) != (12 if timestamp else 11) or f[-3] != "->" or f[-1] == "MS":
            continue
        if timestamp:
            ts, f = float(f[0]), f[1:]
        else:
            ts = None
        rows.append(dict(ts=ts, skaddr=f[0], pid=int(f[1]), comm=f[2], laddr=f[3],
                         lport=int(f[4]), raddr=f[5], rport=int(f[6]), old=f[7], new=f[9],
                         ms=float(f[10])))
    return rows


def _session_sockets(rows, lport, cport):
    """The rows of the listener, the client and the server end of one session."""
    socks = _by_socket(rows)

    def find(pred):
        hits = [s for s, rs in socks.items() if any(pred(r) for r in rs)]
        assert len(hits) == 1, (hits, rows)
        return socks[hits[0]]

    listener = find(lambda r: r["new"] == "LISTEN" and r["lport"] == lport)
    client = find(lambda r: r["lport"] == cport and r["rport"] == lport)
    server = find(lambda r: r["lport"] == lport and r["rport"] == cport)
    return listener, client, server


def _transitions(rows):
    return [(r["old"], r["new"]) for r in rows]


def test_tcpstates_loopback_sessions():
    tool = Tool("tcpstates", "-t", header="TIME(s)   " + HEADER)
    child, ports, cports = _run_sessions()
    time.sleep(0.5)
    rc, out, err = tool.stop()
    assert rc == 0, err
    rows = _parse(out, timestamp=True)
    me = os.getpid()
    for addr, lport, cport in zip(("127.0.0.1", "::1"), ports, cports):
        listener, client, server = _session_sockets(rows, lport, cport)
        assert _transitions(listener) == LISTENER, out
        assert _transitions(client) == CLIENT_SIDE, out
        assert _transitions(server) == SERVER_SIDE, out
        # the changes a system call makes are seen in its task
        assert [r["pid"] for r in listener] == [me, me]
        assert client[0]["pid"] == client[2]["pid"] == child, out
        assert client[0]["comm"].startswith("python")
        assert server[3]["pid"] == me, out
        for r in client[1:] + server:
            assert (r["laddr"], r["raddr"]) == (addr, addr), r
        assert all((r["lport"], r["rport"]) == (cport, lport) for r in client[1:])
        assert all((r["lport"], r["rport"]) == (lport, cport) for r in server)
        # MS: the time since the socket's previous change (the first one seen: 0)
        for rs in (listener, client, server):
            assert rs[0]["ms"] == 0.0
            for prev, r in zip(rs, rs[1:]):
                assert abs(r["ms"] - (r["ts"] - prev["ts"]) * 1000) <= 0.0021, (prev, r)
    assert not programs_loaded(["tcp_set_state"])


def test_tcpstates_port_lists_and_family():
    """-L with two ports shows the listeners and server ends of both; -D one port the
    client end of that session only; -6 no IPv4 socket."""
    hosts = ("127.0.0.1", "::1")
    # ports are known only once bound: bind, note, close, and have the listeners reuse
    probes = []
    for host in hosts:
        s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        s.bind((host, 0))
        probes.append(s)
    ports = [s.getsockname()[1] for s in probes]
    for s in probes:
        s.close()
    local = Tool("tcpstates", "-t", "-L", f"{ports[0]},{ports[1]}", header=HEADER)
    remote = Tool("tcpstates", "-t", "-D", ports[1], header=HEADER)
    only6 = Tool("tcpstates", "-6", "-w", header="SKADDR           C-PID C-COMM")
    listeners = []
    for host, port in zip(hosts, ports):
        s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port))
        s.listen()
        listeners.append(s)
    child = subprocess.run([sys.executable, "-c", CLIENT] +
                           [f"{h}:{p}" for h, p in zip(hosts, ports)],
                           capture_output=True, text=True, timeout=30)
    assert child.returncode == 0, child.stderr
    cports = [int(p) for p in child.stdout.split()]
    for s in listeners:
        s.accept()[0].close()
        s.close()
    time.sleep(0.5)
    rc, out, err = local.stop()
    assert rc == 0, err
    rows = _parse(out, timestamp=True)
    assert rows and all(r["lport"] in ports for r in rows), out
    for lport, cport in zip(ports, cports):
        listener, server = [rs for rs in _by_socket(rows).values()
                            if rs[0]["lport"] == lport and rs[-1]["rport"] in (0, cport)]
        assert _transitions(listener) == LISTENER, out
        assert _transitions(server) == SERVER_SIDE, out
    rc, out, err = remote.stop()
    assert rc == 0, err
    rows = _parse(out, timestamp=True)
    assert rows and all(r["rport"] == ports[1] for r in rows), out
    (client,) = [rs for rs in _by_socket(rows).values() if rs[-1]["lport"] == cports[1]]
    assert _transitions(client) == CLIENT_SIDE, out
    rc, out, err = only6.stop()
    assert rc == 0, err
    wide = [line.split() for line in out.splitlines()[1:]]
    assert wide and all(f[3] == "6" for f in wide), out
    assert any(f[4] == "::1" and f[5] == str(cports[1]) for f in wide), out
    assert not any(f[4] == "127.0.0.1" for f in wide)


def test_tcpstates_csv_and_json():
    csv = Tool("tcpstates", "-s", "-T", "-t", "-4",
               header="TIME,TIME(s),SKADDR,C-PID,C-COMM,IP,LADDR")
    child, (port,), (cport,) = _run_sessions(("127.0.0.1",))
    time.sleep(0.5)
    rc, out, err = csv.stop()
    assert rc == 0, err
    assert out.splitlines()[0] == ("TIME,TIME(s),SKADDR,C-PID,C-COMM,IP,LADDR,LPORT,RADDR,"
                                   "RPORT,OLDSTATE,NEWSTATE,MS")
    rows = [line.split(",") for line in out.splitlines()[1:]]
    mine = [r for r in rows if r[7] == str(cport) and r[9] == str(port)]
    assert [(r[10], r[11]) for r in mine] == CLIENT_SIDE[1:], out
    assert all(len(r[0]) == 8 and r[5] == "4" and r[6] == r[8] == "127.0.0.1" for r in mine)


def test_tcpstates_json():
    import threading
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    ping_port = listener.getsockname()[1]
    stop = threading.Event()

    def ping():                     # changes until the tool (no header in JSON) is live
        while not stop.wait(0.05):
            socket.create_connection(("127.0.0.1", ping_port)).close()
            listener.accept()[0].close()

    pinger = threading.Thread(target=ping, daemon=True)
    pinger.start()
    try:
        tool = Tool("tcpstates", "--json", "-t", "-D", ping_port, header='"c-comm": ')
    finally:
        stop.set()
        pinger.join()
    c = socket.create_connection(("127.0.0.1", ping_port))
    cport = c.getsockname()[1]
    c.close()
    listener.accept()[0].close()
    time.sleep(0.5)
    rc, out, err = tool.stop()
    assert rc == 0, err
    objs = [json.loads(line) for line in out.splitlines()]
    assert all(list(o) == ["time(s)", "skaddr", "c-pid", "c-comm", "ip", "laddr", "lport", "raddr",
                           "rport", "oldstate", "newstate", "ms"] for o in objs), out
    by_sock = _by_socket([dict(o, ts=o["time(s)"], old=o["oldstate"], new=o["newstate"])
                          for o in objs])
    mine = [rs for rs in by_sock.values() if any(o["lport"] == cport for o in rs)]
    assert len(mine) == 1
    rs = mine[0]
    assert [(o["oldstate"], o["newstate"]) for o in rs] == CLIENT_SIDE, out
    assert rs[0]["c-pid"] == os.getpid() and rs[0]["ip"] == 4
    assert all(o["raddr"] == "127.0.0.1" and o["rport"] == ping_port for o in rs)
    assert rs[0]["ms"] == 0.0 and all(isinstance(o["ms"], float) for o in rs)
    listener.close()


@pytest.mark.skipif(shutil.which("bpftrace") is None, reason="bpftrace is not installed")
def test_tcpstates_matches_bpftrace():
    script = ("tracepoint:sock:inet_sock_set_state /args->protocol == 6/ { "
              "printf(\"EV %lx %d %d %d %d %d\\n\", args->skaddr, pid, args->oldstate, "
              "args->newstate, args->sport, args->dport); }")
    bt = subprocess.Popen(["bpftrace", "-e", script], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while "Attaching" not in (bt.stdout.readline() or "") and time.monotonic() < deadline:
        pass
    tool = Tool("tcpstates", "-t", header=HEADER)
    child, ports, cports = _run_sessions()
    time.sleep(0.5)
    rc, out, err = tool.stop()
    bt.send_signal(2)
    bt_out, _ = bt.communicate(timeout=30)
    assert rc == 0, err
    names = {i: n for i, n in enumerate(
        ["", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT",
         "CLOSE", "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING", "NEW_SYN_RECV"])}
    ours = _parse(out, timestamp=True)
    theirs = [dict(skaddr=e[1], pid=int(e[2]), old=names[int(e[3])], new=names[int(e[4])],
                   lport=int(e[5]), rport=int(e[6]))
              for e in (line.split() for line in bt_out.splitlines())
              if len(e) == 7 and e[0] == "EV"]
    keys = ("skaddr", "pid", "old", "new", "lport", "rport")
    for r in theirs:
        r["ts"] = None                  # bpftrace's lines are in CPU order: compared as sets
    for lport, cport in zip(ports, cports):
        got = [sorted(tuple(r[k] for k in keys) for r in rs)
               for rs in _session_sockets(ours, lport, cport)]
        want = [sorted(tuple(r[k] for k in keys) for r in rs)
                for rs in _session_sockets(theirs, lport, cport)]
        assert got == want and [len(g) for g in got] == [2, 5, 5], (got, want)
