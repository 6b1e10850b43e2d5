"""The built-in exporters of ``pybpf export`` beyond syscalls and opens, all loaded in
one exporter and scraped by a real Prometheus: each test makes a workload with a known
effect and reads the value back through Prometheus's HTTP API (exactly where it can
isolate its own events by a unique comm, port or disk; else a lower bound checked
against what /proc reports). Also ``promtool check metrics`` on every built-in at
once, and direct tests of the label decoders against /proc and sysfs."""

from __future__ import annotations

import importlib
import mmap
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

from pybpf.export import decoders
from pybpf.export.module import builtin_exporters
from tests.promharness import Prometheus, serving

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to load BPF programs")
BUILTINS = [name for name, _ in builtin_exporters()]


def unique_comm(prefix: str) -> str:
    """A command name (at most 15 bytes) no other process has."""
    return prefix + uuid.uuid4().hex[:15 - len(prefix)]


@pytest.fixture(scope="module")
def served():
    """Every built-in exporter in one ``pybpf export``, scraped by Prometheus."""
    pytest.importorskip("prometheus_client")
    if os.geteuid() != 0:
        pytest.skip("needs root to load BPF programs")
    with serving(*BUILTINS, timeout=180) as both:
        yield both


def value(prom: Prometheus, expr: str) -> float:
    """``expr``'s value, 0 when Prometheus has no such series."""
    v = prom.value(expr)
    return 0.0 if v is None else v


def settled(prom: Prometheus, expr: str) -> float:
    """``expr`` once two more scrapes are in (what was counted so far is in)."""
    prom.wait_scrapes(2)
    return value(prom, expr)


# ----------------------------------------------------------------------------------------
# every built-in at once
# ----------------------------------------------------------------------------------------

def test_promtool_accepts_every_builtin(served) -> None:
    """All built-ins listed by ``pybpf export --list`` serve together; promtool finds
    nothing to report and every declared metric has its HELP and TYPE."""
    exporter, prom = served
    prom.wait_scrapes(1)
    status, _, text = exporter.fetch()
    assert status == 200
    res = subprocess.run(["promtool", "check", "metrics"], input=text,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    for name in BUILTINS:
        module = importlib.import_module(f"pybpf.export.builtin.{name}")
        for metric in module.METRICS:
            family = metric.name[:-len("_total")] if metric.kind == "counter" and \
                metric.name.endswith("_total") else metric.name
            assert f"# HELP {metric.name} " in text or f"# HELP {family} " in text, \
                metric.name
            assert f"# TYPE {family} {metric.kind}" in text or \
                f"# TYPE {metric.name} {metric.kind}" in text, metric.name
    programs = sum(1 for name in BUILTINS for attr in
                   vars(importlib.import_module(f"pybpf.export.builtin.{name}"))
                   if attr.startswith("export_"))
    assert value(prom, "pybpf_exporter_programs_loaded") == programs


# ----------------------------------------------------------------------------------------
# runqlat
# ----------------------------------------------------------------------------------------

SLEEPER = textwrap.dedent("""
    import ctypes, sys, time
    ctypes.CDLL(None).prctl(15, sys.argv[1].encode(), 0, 0, 0)
    for _ in range(int(sys.argv[2])):
        time.sleep(0.001)
    with open("/proc/self/schedstat") as f:
        print(f.read().split()[2])           # times this task was put on a CPU
""")


def test_runqlat_counts_every_wakeup(served) -> None:
    """A process sleeps 1 ms 300 times: each wakeup puts it on a run queue and then on a
    CPU. The histogram is system-wide, so its count must grow by at least the number of
    times /proc/PID/schedstat says that process was put on a CPU (and so at least
    300); ``_sum`` grows and ``+Inf`` equals ``_count``."""
    _, prom = served
    count = "pybpf_runqueue_latency_seconds_count"
    total = "pybpf_runqueue_latency_seconds_sum"
    before = {q: settled(prom, q) for q in (count, total)}
    out = subprocess.run([sys.executable, "-c", SLEEPER, unique_comm("rq"), "300"],
                         check=True, capture_output=True, text=True, timeout=60).stdout
    switched_in = int(out)
    assert switched_in >= 300
    grown = settled(prom, count) - before[count]
    assert grown >= switched_in
    assert value(prom, total) > before[total]
    assert value(prom, 'pybpf_runqueue_latency_seconds_bucket{le="+Inf"}') == \
        value(prom, count)


# ----------------------------------------------------------------------------------------
# biolatency
# ----------------------------------------------------------------------------------------

def test_biolatency_counts_reads_of_a_loop_device(served) -> None:
    """20 O_DIRECT reads of 64 KiB from a fresh loop device are exactly 20 read
    requests of that disk (exact: the disk label is ours alone); their latencies sum to
    more than 0 and less than the time the reads took."""
    from tests.loopdev import LoopDevice, _loop_unavailable
    if _loop_unavailable():
        pytest.skip(_loop_unavailable())
    _, prom = served
    with LoopDevice() as loop:
        if shutil.which("udevadm"):
            subprocess.run(["udevadm", "settle"], capture_output=True, timeout=60)
        sel = f'disk="{loop.name}",op="read"'
        count = f"pybpf_block_io_latency_seconds_count{{{sel}}}"
        total = f"pybpf_block_io_latency_seconds_sum{{{sel}}}"
        before = {q: settled(prom, q) for q in (count, total)}
        offsets = [i * 65536 * 3 for i in range(20)]
        started = time.monotonic()
        loop.read_direct(offsets)
        took = time.monotonic() - started
        assert prom.wait_for(count, lambda v: v is not None and v - before[count] >= 20) \
            - before[count] == 20
        assert settled(prom, count) - before[count] == 20
        assert 0 < value(prom, total) - before[total] < took
        inf = value(prom, f'pybpf_block_io_latency_seconds_bucket{{{sel},le="+Inf"}}')
        assert inf == value(prom, count)


# ----------------------------------------------------------------------------------------
# process
# ----------------------------------------------------------------------------------------

EXITS = textwrap.dedent("""
    import ctypes, os, signal, sys
    ctypes.CDLL(None).prctl(15, sys.argv[1].encode(), 0, 0, 0)
    for how in [0] * 3 + [3] * 4 + ["kill"] * 2:
        pid = os.fork()
        if pid == 0:
            if how == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            os._exit(how)
        os.waitpid(pid, 0)
""")


def test_process_execs_and_exits_by_comm(served, tmp_path) -> None:
    """Exact, by unique command names: a copy of ``true`` named NAME run 5 times is 5
    execs and 5 ``ok`` exits of NAME; a process named COMM forks 3 children that exit
    0, 4 that exit 3 and 2 that kill themselves with SIGKILL, then exits 0 itself."""
    _, prom = served
    name = unique_comm("ex")
    binary = tmp_path / name
    shutil.copy(shutil.which("true"), binary)
    for _ in range(5):
        subprocess.run([str(binary)], check=True, timeout=30)
    comm = unique_comm("pe")
    subprocess.run([sys.executable, "-c", EXITS, comm], check=True, timeout=60)
    execs = f'pybpf_process_execs_total{{comm="{name}"}}'
    assert prom.wait_for(execs, lambda v: v == 5) == 5
    exits = f'pybpf_process_exits_total{{comm="{comm}"}}'
    prom.wait_for(f"sum({exits})", lambda v: v == 10)
    prom.wait_scrapes(2)
    assert value(prom, execs) == 5
    assert value(prom, f'pybpf_process_exits_total{{comm="{name}",reason="ok"}}') == 5
    got = {r["metric"]["reason"]: float(r["value"][1]) for r in prom.query(exits)}
    assert got == {"ok": 4.0, "error": 4.0, "SIGKILL": 2.0}
    assert value(prom, f'pybpf_process_execs_total{{comm="{comm}"}}') == 0


# ----------------------------------------------------------------------------------------
# tcp
# ----------------------------------------------------------------------------------------

TCP_SYNCNT = 7


def test_tcp_connects_and_accepts_by_port(served) -> None:
    """Exact, by a port only this test listens on: 7 loopback connections to it are 7
    connects to that remote port and 7 accepts on that local port."""
    _, prom = served
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        port = listener.getsockname()[1]
        for _ in range(7):
            with socket.create_connection(("127.0.0.1", port), timeout=10):
                conn, _ = listener.accept()
                conn.close()
    connects = f'pybpf_tcp_connects_total{{remote_port="{port}"}}'
    accepts = f'pybpf_tcp_accepts_total{{local_port="{port}"}}'
    assert prom.wait_for(connects, lambda v: v == 7) == 7
    assert prom.wait_for(accepts, lambda v: v == 7) == 7
    assert settled(prom, connects) == 7 and value(prom, accepts) == 7


def test_tcp_retransmits_of_dropped_syns(served) -> None:
    """A listener with listen(0) holds one connection that is never accepted; the
    kernel then drops every SYN to its port (the accept queue is full). Three clients
    with TCP_SYNCNT=1 resend their SYN until they give up (ETIMEDOUT). Exact, by a
    port only this test uses: the retransmits equal the sum of the clients'
    ``tcpi_total_retrans`` (TCP_INFO; at least 1 each); 4 connects and 1 accept."""
    _, prom = served
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        first = socket.create_connection(("127.0.0.1", port), timeout=10)
        clients = []
        try:
            for _ in range(3):
                c = socket.socket()
                c.setsockopt(socket.IPPROTO_TCP, TCP_SYNCNT, 1)
                c.setblocking(False)
                assert c.connect_ex(("127.0.0.1", port)) == 115      # EINPROGRESS
                clients.append(c)
            deadline = time.monotonic() + 30
            errors = []
            for c in clients:                       # reading SO_ERROR clears it
                err = 0
                while err == 0 and time.monotonic() < deadline:
                    time.sleep(0.2)
                    err = c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                errors.append(err)
            # what the kernel counted per socket: tcp_info.tcpi_total_retrans
            resent = [struct.unpack_from("I", c.getsockopt(socket.IPPROTO_TCP,
                                                           socket.TCP_INFO, 104), 100)[0]
                      for c in clients]
        finally:
            for c in clients:
                c.close()
            first.close()
    assert errors == [110] * 3                                      # ETIMEDOUT
    retrans = f'pybpf_tcp_retransmits_total{{remote_port="{port}"}}'
    assert all(n >= 1 for n in resent), resent
    assert prom.wait_for(retrans, lambda v: v == sum(resent)) == sum(resent)
    assert settled(prom, retrans) == sum(resent)
    assert value(prom, f'pybpf_tcp_connects_total{{remote_port="{port}"}}') == 4
    assert value(prom, f'pybpf_tcp_accepts_total{{local_port="{port}"}}') == 1


# ----------------------------------------------------------------------------------------
# oom
# ----------------------------------------------------------------------------------------

HOG = textwrap.dedent("""
    import ctypes, sys
    ctypes.CDLL(None).prctl(15, sys.argv[1].encode(), 0, 0, 0)
    hoard = []
    while True:
        hoard.append(bytearray(1 << 20))      # 1 MiB, touched (zeroed) at once
""")


def _memory_cgroup(tag: str):
    """(directory of a new memory cgroup limited to 32 MiB, the file that takes a pid),
    in cgroup v2 if its memory controller is available, else in the v1 memory
    hierarchy; None when neither is."""
    v2 = decoders.cgroup2_root()
    try:
        with open(os.path.join(v2, "cgroup.controllers")) as f:
            has_v2 = "memory" in f.read().split()
    except OSError:
        has_v2 = False
    if has_v2:
        path = os.path.join(v2, tag)
        os.mkdir(path)
        with open(os.path.join(path, "memory.max"), "w") as f:
            f.write(str(32 << 20))
        if os.path.exists(os.path.join(path, "memory.swap.max")):
            with open(os.path.join(path, "memory.swap.max"), "w") as f:
                f.write("0")
        return path
    v1 = "/sys/fs/cgroup/memory"
    if os.path.exists(os.path.join(v1, "memory.limit_in_bytes")):
        path = os.path.join(v1, tag)
        os.mkdir(path)
        with open(os.path.join(path, "memory.limit_in_bytes"), "w") as f:
            f.write(str(32 << 20))
        return path
    return None


def test_oom_kill_in_a_memory_limited_cgroup(served) -> None:
    """A Python process named COMM allocates without end inside a cgroup limited to
    32 MiB (cgroup v2 memory.max, or the v1 memory controller on a hybrid system): the
    OOM killer kills it (SIGKILL) and the counter for COMM is exactly 1."""
    _, prom = served
    tag = "pybpf-oom-" + uuid.uuid4().hex[:8]
    path = _memory_cgroup(tag)
    if path is None:
        pytest.skip("no cgroup memory controller (cgroup v2 memory or v1 memory)")
    comm = unique_comm("oom")
    try:
        def enter() -> None:
            with open(os.path.join(path, "cgroup.procs"), "w") as f:
                f.write(str(os.getpid()))
        proc = subprocess.run([sys.executable, "-c", HOG, comm], preexec_fn=enter,
                              capture_output=True, timeout=120)
        assert proc.returncode == -signal.SIGKILL, proc.stderr
    finally:
        for _ in range(50):
            try:
                os.rmdir(path)
                break
            except OSError:
                time.sleep(0.1)
    kills = f'pybpf_oom_kills_total{{comm="{comm}"}}'
    assert prom.wait_for(kills, lambda v: v == 1) == 1
    assert settled(prom, kills) == 1
    assert value(prom, f'pybpf_process_exits_total{{comm="{comm}",reason="SIGKILL"}}') == 1


# ----------------------------------------------------------------------------------------
# pagefaults
# ----------------------------------------------------------------------------------------

FAULTS = textwrap.dedent("""
    import ctypes, mmap, os, sys
    ctypes.CDLL(None).prctl(15, sys.argv[1].encode(), 0, 0, 0)
    pages, kernel_pages = int(sys.argv[2]), int(sys.argv[3])
    size = mmap.PAGESIZE

    def faults():
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[7]) + int(fields[9])        # minflt + majflt

    m = mmap.mmap(-1, pages * size)
    m.madvise(mmap.MADV_NOHUGEPAGE)                   # one fault per page
    start = faults()
    for i in range(pages):
        m[i * size] = 1                               # first touch: a user-mode fault
    touched = faults() - start
    k = mmap.mmap(-1, kernel_pages * size)
    k.madvise(mmap.MADV_NOHUGEPAGE)
    fd = os.open("/dev/zero", os.O_RDONLY)
    assert os.readv(fd, [k]) == kernel_pages * size   # the kernel's writes fault
    print(touched)
""")


def test_page_faults_by_comm_and_kind(served) -> None:
    """A process named COMM touches 500 fresh pages (user-mode faults) and has read()
    fill 64 fresh pages (kernel-mode faults). Lower bounds, by COMM: user faults at
    least what /proc/PID/stat counted for the touching loop (itself at least 500), and
    kernel faults at least 64."""
    _, prom = served
    comm = unique_comm("pf")
    out = subprocess.run([sys.executable, "-c", FAULTS, comm, "500", "64"], check=True,
                         capture_output=True, text=True, timeout=60).stdout
    touched = int(out)
    assert touched >= 500
    user = f'pybpf_page_faults_total{{comm="{comm}",kind="user"}}'
    kernel = f'pybpf_page_faults_total{{comm="{comm}",kind="kernel"}}'
    prom.wait_for(kernel, lambda v: v is not None and v >= 64)
    assert settled(prom, user) >= touched
    assert value(prom, kernel) >= 64


# ----------------------------------------------------------------------------------------
# irq
# ----------------------------------------------------------------------------------------

def _proc_softirqs() -> dict:
    out = {}
    with open("/proc/softirqs") as f:
        for line in f.readlines()[1:]:
            name, *counts = line.split()
            out[name.rstrip(":").lower()] = sum(int(c) for c in counts)
    return out


def _proc_interrupts() -> dict:
    """handler name -> interrupts, from /proc/interrupts (numbered lines only)."""
    out = {}
    with open("/proc/interrupts") as f:
        ncpu = len(f.readline().split())
        for line in f:
            parts = line.split()
            if not parts or not parts[0].rstrip(":").isdigit():
                continue
            counts = [int(c) for c in parts[1:1 + ncpu]]
            for name in " ".join(parts[1 + ncpu:]).split(","):
                words = name.split()
                if words:
                    out[words[-1]] = out.get(words[-1], 0) + sum(counts)
    return out


def test_softirq_time_by_vector(served) -> None:
    """8 MiB through a loopback TCP connection is received in NET_RX softirqs: lower
    bounds, as softirqs are system-wide: the net_rx time grows (and /proc/softirqs
    counts NET_RX too), and every vector with time is one /proc/softirqs has counted."""
    _, prom = served
    net_rx = 'pybpf_softirq_seconds_total{vector="net_rx"}'
    before, counted = settled(prom, net_rx), _proc_softirqs()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        with socket.create_connection(listener.getsockname(), timeout=10) as tx:
            rx, _ = listener.accept()
            with rx:
                chunk = b"x" * 65536
                got = 0
                for _ in range(128):
                    tx.sendall(chunk)
                    while got < len(chunk) * (_ + 1):
                        got += len(rx.recv(1 << 20))
    after = _proc_softirqs()
    assert after["net_rx"] > counted["net_rx"]
    assert prom.wait_for(net_rx, lambda v: v is not None and v > before) > before
    vectors = {r["metric"]["vector"] for r in prom.query("pybpf_softirq_seconds_total")
               if float(r["value"][1]) > 0}
    assert vectors and vectors <= {v for v, n in after.items() if n > 0}


def test_hardirq_time_by_handler(served, tmp_path) -> None:
    """Synced O_DIRECT writes to a file make the disk interrupt. Lower bounds: every
    exported handler name is one /proc/interrupts lists, and some handler whose count
    there grew during the writes has more time than before."""
    _, prom = served
    query = "pybpf_hardirq_seconds_total"
    prom.wait_scrapes(2)
    before = {r["metric"]["irq_name"]: float(r["value"][1]) for r in prom.query(query)}
    counted = _proc_interrupts()
    path = f"/var/tmp/pybpf-irq-{uuid.uuid4().hex[:8]}"
    buf = mmap.mmap(-1, 1 << 16)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_DIRECT, 0o600)
    try:
        for i in range(32):
            os.pwritev(fd, [buf], i << 16)
            os.fsync(fd)
    finally:
        os.close(fd)
        os.unlink(path)
        buf.close()
    grown = {n for n, c in _proc_interrupts().items() if c > counted.get(n, 0)}
    if not grown:
        pytest.skip("no device interrupt during the writes (no interrupt-driven disk)")
    prom.wait_scrapes(2)
    after = {r["metric"]["irq_name"]: float(r["value"][1]) for r in prom.query(query)}
    assert set(after) <= set(_proc_interrupts())
    assert any(after.get(n, 0) > before.get(n, 0) for n in grown), (grown, after)


# ----------------------------------------------------------------------------------------
# decoders
# ----------------------------------------------------------------------------------------

def test_decode_ksym_against_kallsyms() -> None:
    """An address inside a function (its start + 1) decodes to that function's name;
    an address the kernel does not have to hex."""
    wanted = {"vfs_read", "do_sys_openat2", "schedule"}
    found = {}
    with open("/proc/kallsyms") as f:
        for line in f:
            addr, kind, name = line.split()[:3]
            if name in wanted and kind in "tT":
                found[name] = int(addr, 16)
    if not found or not any(found.values()):
        pytest.skip("/proc/kallsyms hides addresses (kptr_restrict; needs root)")
    for name, addr in found.items():
        assert decoders.ksym(addr + 1) == name
    assert decoders.ksym(0x10) == "0x10"


def test_decode_addresses_and_ports() -> None:
    """IPv4 (bytes and a u32 as loaded from memory), IPv6 and the combined ip() agree
    with socket.inet_ntop; ports in network order read back as numbers."""
    rng = random.Random(7)
    for _ in range(200):
        raw4 = bytes(rng.randrange(256) for _ in range(4))
        text4 = socket.inet_ntop(socket.AF_INET, raw4)
        assert decoders.ipv4(raw4) == text4
        assert decoders.ipv4(struct.unpack("<I", raw4)[0]) == text4
        assert decoders.ip(raw4 + bytes(12)) == text4
        raw6 = bytes(rng.randrange(256) for _ in range(16))
        assert decoders.ipv6(raw6) == socket.inet_ntop(socket.AF_INET6, raw6)
        if any(raw6[4:]):
            assert decoders.ip(raw6) == socket.inet_ntop(socket.AF_INET6, raw6)
        port = rng.randrange(65536)
        assert decoders.port(socket.htons(port)) == str(port)
        assert decoders.port(struct.pack(">H", port)) == str(port)


def test_decode_disk_against_sysfs() -> None:
    """Each block device in /proc/partitions decodes from its dev_t to its name; a
    dev_t no device has to major:minor."""
    with open("/proc/partitions") as f:
        rows = [ln.split() for ln in f.readlines()[2:] if ln.strip()]
    if not rows:
        pytest.skip("no block devices in /proc/partitions")
    for major, minor, _, name in rows:
        assert decoders.disk(int(major) << 20 | int(minor)) == name
    assert decoders.disk(4095 << 20 | 1048575) == "4095:1048575"


def test_decode_cgroup_against_inode_numbers() -> None:
    """The inode number of each directory of the cgroup v2 hierarchy (what
    bpf_get_current_cgroup_id() reports) decodes to its path there; an unknown id to
    itself."""
    root = decoders.cgroup2_root()
    if not os.path.exists(os.path.join(root, "cgroup.procs")):
        pytest.skip("no cgroup v2 hierarchy mounted")
    tag = f"pybpf-dec-{uuid.uuid4().hex[:8]}"
    made = os.path.join(root, tag)
    try:
        os.mkdir(made)
    except OSError:
        made = None
    try:
        dirs = [root] + ([made] if made else [])
        with open("/proc/self/cgroup") as f:
            mine = [ln.split(":", 2)[2].strip() for ln in f if ln.startswith("0::")]
        dirs += [root + p for p in mine if p != "/"]
        time.sleep(5.1)                   # the decoder walks again at most every 5 s
        for d in dirs:
            rel = os.path.relpath(d, root)
            assert decoders.cgroup(os.stat(d).st_ino) == ("/" if rel == "." else "/" + rel)
        assert decoders.cgroup(1 << 62) == str(1 << 62)
    finally:
        if made:
            os.rmdir(made)


def test_decode_names_ops_and_exit_reasons() -> None:
    """The small table decoders: softirq vectors, block operations, exit codes as
    wait() reports them."""
    vec = decoders.names(decoders.SOFTIRQ_VECTORS)
    assert [vec(i) for i in (0, 3, 9, 42)] == ["hi", "net_rx", "rcu", "42"]
    assert [decoders.block_op(ord(c)) for c in "RWDFEN?"] == [
        "read", "write", "discard", "flush", "secure_erase", "other", "other"]
    assert decoders.block_op(b"W") == "write"
    for status in (0, 1, 3, 255):
        assert decoders.exit_reason(status << 8) == ("ok" if status == 0 else "error")
    assert decoders.exit_reason(signal.SIGKILL) == "SIGKILL"
    assert decoders.exit_reason(signal.SIGSEGV | 0x80) == "SIGSEGV"     # core dumped
