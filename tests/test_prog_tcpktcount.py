"""programs/tcpktcount.py: a veth pair with one end in a network namespace the test
creates (unique names, IPv6 off so no unasked traffic); from the namespace the test sends
known UDP datagrams and ICMP echo requests to the other end, where the tool counts its
ingress. The counts are checked against the sizes sent and against the interface's own
counters in /sys/class/net/*/statistics; the tool must leave no filter or link behind."""

import os
import shutil
import subprocess
import sys
import time

import pytest

from bpfenv import needs_bpf
from progrun import Tool, programs_loaded

NO_IPROUTE = shutil.which("ip") is None or shutil.which("tc") is None
pytestmark = [needs_bpf, pytest.mark.skipif(NO_IPROUTE, reason="iproute2 (ip, tc) is not "
                                            "installed")]

HEADER = "PROTOCOL            PACKETS        BYTES"
UDP_SIZES = [100, 200, 300, 400, 500]            # payloads: frames 14 + 20 + 8 + n
ICMP_ECHOES = 3                                  # 8-byte header + 56 bytes: frames of 98
SENDER = """
import socket, struct, sys, time
host = sys.argv[1]
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for n in (%s):
    u.sendto(b"u" * n, (host, 9))
    time.sleep(0.02)
r = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
for seq in range(%d):
    body = struct.pack("!BBHHH", 8, 0, 0, 77, seq) + bytes(56)
    s = sum(struct.unpack("!%%dH" %% (len(body) // 2), body))
    s = (s >> 16) + (s & 0xffff); s += s >> 16
    r.sendto(body[:2] + struct.pack("!H", ~s & 0xffff) + body[4:], (host, 0))
    time.sleep(0.02)
""" % (", ".join(map(str, UDP_SIZES)), ICMP_ECHOES)


def _ip(*args, check=True):
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30,
                          check=check)


class Veth:
    """A veth pair: ``host`` in this namespace (10.X.Y.1/30), its peer in namespace
    ``ns`` (10.X.Y.2/30); removed on exit."""

    def __init__(self):
        n = os.getpid()
        self.ns = f"pybpf-tc-{n}"
        self.host, self.peer = f"pbtc{n}h", f"pbtc{n}p"
        self.net = f"10.{200 + n % 50}.{n // 50 % 250}"

    def __enter__(self):
        try:
            _ip("netns", "add", self.ns)
        except subprocess.CalledProcessError as exc:
            pytest.skip(f"cannot create a network namespace: {exc.stderr.strip()}")
        try:
            _ip("link", "add", self.host, "type", "veth", "peer", "name", self.peer,
                "netns", self.ns)
            for dev, ns in ((self.host, None), (self.peer, self.ns)):
                pre = ["ip", "netns", "exec", ns] if ns else []
                subprocess.run(pre + ["sysctl", "-qw", f"net.ipv6.conf.{dev}.disable_ipv6=1"],
                               capture_output=True, timeout=30)
            _ip("addr", "add", f"{self.net}.1/30", "dev", self.host)
            _ip("link", "set", self.host, "up")
            _ip("-n", self.ns, "addr", "add", f"{self.net}.2/30", "dev", self.peer)
            _ip("-n", self.ns, "link", "set", self.peer, "up")
            _ip("-n", self.ns, "link", "set", "lo", "up")
        except BaseException:
            self.__exit__()
            raise
        time.sleep(0.3)
        return self

    def __exit__(self, *exc):
        _ip("link", "del", self.host, check=False)
        _ip("netns", "del", self.ns, check=False)

    def stats(self):
        """(rx_packets, rx_bytes) of the host end."""
        base = f"/sys/class/net/{self.host}/statistics/"
        return tuple(int(open(base + f).read()) for f in ("rx_packets", "rx_bytes"))

    def send(self):
        subprocess.run(["ip", "netns", "exec", self.ns, sys.executable, "-c", SENDER,
                        f"{self.net}.1"], check=True, timeout=60)
        time.sleep(0.3)


def _table(out):
    """{protocol: (packets, bytes)} of the last summary."""
    rows = {}
    for line in out.splitlines():
        f = line.split()
        if f == HEADER.split():
            rows = {}
        elif len(f) == 3 and f[1].isdigit():
            rows[f[0]] = (int(f[1]), int(f[2]))
    return rows


def _attached(dev, pid):
    """How the tool is attached to ``dev``'s ingress, as the kernel says: ``tcx`` when
    process ``pid`` holds a TCX ingress link on it (/proc/PID/fdinfo), ``netlink`` when
    ``tc`` lists the program as an ingress filter; else None."""
    ifindex = int(open(f"/sys/class/net/{dev}/ifindex").read())
    try:
        for fd in os.listdir(f"/proc/{pid}/fdinfo"):
            try:
                info = open(f"/proc/{pid}/fdinfo/{fd}").read()
            except OSError:
                continue
            if "link_type:\ttcx" in info and f"ifindex:\t{ifindex}\n" in info \
                    and "(ingress)" in info:
                return "tcx"
    except OSError:
        pass
    return "netlink" if _netlink_filters(dev) else None


def _netlink_filters(dev):
    """The lines of ``tc filter show dev DEV ingress`` naming the program."""
    out = subprocess.run(["tc", "filter", "show", "dev", dev, "ingress"],
                         capture_output=True, text=True, timeout=30).stdout
    return [line for line in out.splitlines() if "tc_ingress" in line]


def _qdiscs(dev):
    out = subprocess.run(["tc", "qdisc", "show", "dev", dev], capture_output=True,
                         text=True, timeout=30).stdout
    return "clsact" in out


@pytest.mark.parametrize("mode", ["tcx", "netlink"])
def test_tcpktcount_counts_known_packets(mode):
    with Veth() as veth:
        before = veth.stats()
        tool = Tool("tcpktcount", "-i", veth.host, "--mode", mode, header="Counting")
        assert _attached(veth.host, tool.proc.pid) == mode
        veth.send()
        rc, out, err = tool.stop()
        after = veth.stats()
        left = _netlink_filters(veth.host), _qdiscs(veth.host)
    assert rc == 0, err
    assert left == ([], False), left                  # no filter, no clsact qdisc left
    rows = _table(out)
    assert rows["IPv4/UDP"] == (len(UDP_SIZES), sum(14 + 28 + n for n in UDP_SIZES)), out
    assert rows["IPv4/ICMP"] == (ICMP_ECHOES, ICMP_ECHOES * 98), out
    assert set(rows) <= {"IPv4/UDP", "IPv4/ICMP", "ARP", "total"}, out
    sums = tuple(sum(v[i] for k, v in rows.items() if k != "total") for i in (0, 1))
    assert rows["total"] == sums == (after[0] - before[0], after[1] - before[1]), \
        (out, before, after)
    assert not programs_loaded(["tc_ingress"])


def test_tcpktcount_intervals():
    with Veth() as veth:
        tool = Tool("tcpktcount", "-i", veth.host, "-T", "1", "3", header="Counting")
        veth.send()
        assert tool.proc.wait(timeout=30) == 0
        _, out, err = tool.stop()
    heads = [i for i, line in enumerate(out.splitlines()) if line.split() == HEADER.split()]
    assert len(heads) == 3, out
    udp = sum(int(line.split()[1]) for line in out.splitlines()
              if line.startswith("IPv4/UDP "))
    assert udp == len(UDP_SIZES), out              # per-interval counts add up


def test_tcpktcount_bad_interface():
    from progrun import ROOT, env
    proc = subprocess.run([sys.executable, "programs/tcpktcount.py", "-i", "nosuchif0"],
                          cwd=ROOT, env=env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 \
        and "argument -i/--interface: no such interface: 'nosuchif0'" in proc.stderr, proc.stderr
