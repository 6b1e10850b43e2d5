"""programs/tcprtt.py: ping-pong exchanges on loopback connections made before the tool
starts (so their ports and addresses can be filtered on); the histograms are checked
against the connection's own srtt (TCP_INFO), against bpftrace's hist() of the same
tracepoint, and per address (IPv4 127.0.0.1/127.0.0.2 and IPv6 ::1)."""

import re
import shutil
import socket
import struct
import subprocess
import time

import pytest

from bpfenv import needs_bpf
from progrun import Tool, programs_loaded

pytestmark = needs_bpf

BANNER = "Tracing TCP RTT... Hit Ctrl-C to end."
ROUNDS = 30


def _pair(family=socket.AF_INET, server="127.0.0.1", client=None):
    """A connected (client, server end) pair; ``client``: the client's source address."""
    s = socket.socket(family)
    s.bind((server, 0))
    s.listen()
    c = socket.socket(family)
    if client:
        c.bind((client, 0))
    c.connect(s.getsockname()[:2])
    a, _ = s.accept()
    s.close()
    return c, a


def _ping_pong(c, a, rounds=ROUNDS):
    """``rounds`` one-byte exchanges, then the client's srtt (TCP_INFO's tcpi_rtt, in
    microseconds) and one last byte to the client: the tracepoint, which fires before
    that byte is processed, reports exactly that srtt for it."""
    for _ in range(rounds):
        c.sendall(b"q")
        assert a.recv(1) == b"q"
        a.sendall(b"r")
        assert c.recv(1) == b"r"
    info = c.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    # struct tcp_info: 8 one-byte fields, then u32s: rto ato snd_mss rcv_mss unacked
    # sacked lost retrans fackets last_data_sent last_ack_sent last_data_recv
    # last_ack_recv pmtu rcv_ssthresh rtt (the 16th)
    srtt = struct.unpack_from("=16I", info, 8)[15]
    a.sendall(b"z")
    assert c.recv(1) == b"z"
    return srtt


def _histograms(out):
    """{title: {(low, high): count}} of the tool's summaries (the last of each title)."""
    hists, title = {}, None
    for line in out.splitlines():
        m = re.match(r"\s*(\d+) -> (\d+)\s*: (\d+)", line)
        if m and title is not None:
            hists[title][(int(m[1]), int(m[2]))] = int(m[3])
        elif line.startswith(("All Addresses", "Local Address", "Remote Address")):
            title = line.strip()
            hists[title] = {}
    return hists


def _bpftrace_hist(text):
    """bpftrace's hist() lines as {(low, high): count}, BCC's way: 0 and 1 together."""
    units = {"": 1, "K": 1024, "M": 1024 ** 2, "G": 1024 ** 3}
    out = {}
    for m in re.finditer(r"\[(\d+)([KMG]?)(?:, (\d+)([KMG]?))?\)?\]?\s+(\d+)", text):
        low = int(m[1]) * units[m[2]]
        high = int(m[3]) * units[m[4]] - 1 if m[3] else low
        key = (0, 1) if high <= 1 else (low, high)
        out[key] = out.get(key, 0) + int(m[5])
    return out


def test_tcprtt_one_connection_with_average():
    c, a = _pair()
    cport = c.getsockname()[1]
    tool = Tool("tcprtt", "-p", cport, "-e", header=BANNER)
    srtt = _ping_pong(c, a)
    time.sleep(0.3)
    rc, out, err = tool.stop()
    c.close()
    a.close()
    assert rc == 0, err
    hists = _histograms(out)
    (title,) = hists
    m = re.fullmatch(r"All Addresses = \*\*\*\*\*\* \[AVG (\d+)\]", title)
    assert m, out
    counts = {k: v for k, v in hists[title].items() if v}
    # one count per segment the client received: the echoes and the last byte
    assert sum(counts.values()) >= ROUNDS + 1, out
    # the last one carried the srtt TCP_INFO gave
    assert any(low <= srtt <= high for (low, high) in counts), (srtt, out)
    assert min(low for low, _ in counts) <= int(m[1]) <= max(high for _, high in counts)
    assert not programs_loaded(["tcp_rcv"])


@pytest.mark.skipif(shutil.which("bpftrace") is None, reason="bpftrace is not installed")
def test_tcprtt_matches_bpftrace():
    c, a = _pair()
    cport = c.getsockname()[1]
    script = (f"tracepoint:tcp:tcp_probe /args->sport == {cport}/ {{ @h = hist(args->srtt); "
              "@n = count(); @s = sum(args->srtt); }")
    bt = subprocess.Popen(["bpftrace", "-e", script], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while "Attaching" not in (bt.stdout.readline() or "") and time.monotonic() < deadline:
        pass
    tool = Tool("tcprtt", "-p", cport, "-e", header=BANNER)
    _ping_pong(c, a)
    time.sleep(0.3)
    rc, out, err = tool.stop()
    bt.send_signal(2)
    bt_out, bt_err = bt.communicate(timeout=30)
    c.close()
    a.close()
    assert rc == 0, err
    (title, ours), = _histograms(out).items()
    theirs = _bpftrace_hist(bt_out.split("@n:")[0].split("@h:")[1])
    n = int(re.search(r"@n: (\d+)", bt_out)[1])
    total = int(re.search(r"@s: (\d+)", bt_out)[1])
    assert {k: v for k, v in ours.items() if v} == theirs, (out, bt_out)
    assert sum(ours.values()) == n >= ROUNDS + 1
    assert title.endswith(f"[AVG {total // n}]"), (title, bt_out)


def test_tcprtt_per_address_and_address_filters():
    """Three connections: 127.0.0.2 -> 127.0.0.1, 127.0.0.1 -> 127.0.0.1 and ::1 -> ::1.
    -B keeps a histogram per remote address, -b per local one; -a/-A keep one end."""
    pairs = [_pair(client="127.0.0.2"), _pair(), _pair(socket.AF_INET6, "::1")]
    ports = [c.getsockname()[1] for c, _ in pairs]
    only = Tool("tcprtt", "-p", ports[0], header=BANNER)
    by_remote = Tool("tcprtt", "-B", header=BANNER)
    local2 = Tool("tcprtt", "-b", "-a", "127.0.0.2", header=BANNER)
    remote6 = Tool("tcprtt", "-b", "-A", "::1", "-P", pairs[2][1].getsockname()[1],
                   header=BANNER)
    for c, a in pairs:
        _ping_pong(c, a)
    time.sleep(0.3)
    results = [t.stop() for t in (only, by_remote, local2, remote6)]
    for c, a in pairs:
        c.close()
        a.close()
    assert all(rc == 0 for rc, _, _ in results), results
    (_, one), = _histograms(results[0][1]).items()
    per_remote = _histograms(results[1][1])
    assert {"Remote Address = 127.0.0.1", "Remote Address = 127.0.0.2",
            "Remote Address = ::1"} <= set(per_remote), results[1][1]
    # 127.0.0.2 is the local end of the first client only: -a sees what -p saw of it
    assert _histograms(results[2][1]) == {"Local Address = 127.0.0.2": one}, results[2][1]
    (title, six), = _histograms(results[3][1]).items()
    assert title == "Local Address = ::1" and sum(six.values()) >= ROUNDS + 1, results[3][1]


def test_tcprtt_interval_duration_milliseconds():
    c, a = _pair()
    cport = c.getsockname()[1]
    tool = Tool("tcprtt", "-i", "1", "-d", "2", "-m", "-T", "-p", cport,
                header="Tracing TCP RTT for 2 secs.")
    _ping_pong(c, a)
    rc, out, err = tool.proc.wait(timeout=30), *tool.proc.communicate(timeout=30)
    c.close()
    a.close()
    assert rc == 0, err
    out = "".join(tool.lines) + out
    stamps = re.findall(r"^\d\d:\d\d:\d\d\s*$", out, re.M)
    assert len(stamps) == 2, out                    # one summary a second, for 2 seconds
    titles = [line for line in out.splitlines() if line.startswith("All Addresses")]
    assert 1 <= len(titles) <= 2, out
    counts = _histograms(out)["All Addresses = ******"]
    # loopback round trips are far below a millisecond: all in the first row
    assert counts and all(v == 0 for k, v in counts.items() if k != (0, 1)), out
    assert "msecs" in out
