"""Helpers of the attach tests: counting programs, a counter map, fd and tracefs
snapshots, skip reasons that name the missing feature."""

from __future__ import annotations

import ctypes
import gc
import os
from typing import List, Optional, Sequence


from pybpf.asm import R0, R1, R2, R10
from pybpf.asm.builder import (
    DW, W, Label, add, atomic_add, build, call, exit_, jeq, jne, ld_map_fd, mov, rsh, stx,
)
from pybpf.maps import ArrayMap
from pybpf.program import Program, ProgramSpec


def root_reason() -> str:
    return "" if os.geteuid() == 0 else "needs root"


def counter_map(entries: int = 1) -> ArrayMap:
    """An array of u64 counters."""
    return ArrayMap(value=ctypes.c_uint64, max_entries=entries)


def count_insns(counts: ArrayMap, *, key: int = 0, tgid: Optional[int] = None,
                ret: int = 0, prologue: Sequence = ()) -> List:
    """counts[key] += 1 (atomically); with ``tgid``, only for that process."""
    body: List = list(prologue)
    if tgid is not None:
        body += [call("get_current_pid_tgid"), rsh(R0, 32), jne(R0, tgid, "out")]
    body += [
        mov(R1, key), stx(W, R10, -4, R1),
        mov(R2, R10), add(R2, -4),
        ld_map_fd(R1, counts),
        call("map_lookup_elem"),
        jeq(R0, 0, "out"),
        mov(R1, 1), atomic_add(DW, R0, 0, R1),
        Label("out"), mov(R0, ret), exit_(),
    ]
    return build(body)


def counting_program(prog_type: int, counts: ArrayMap, *, attach_type: Optional[int] = None,
                     tgid: Optional[int] = None, ret: int = 0, name: str = "count",
                     attach_btf_id: int = 0, **spec_kw) -> Program:
    spec = ProgramSpec(prog_type, count_insns(counts, tgid=tgid, ret=ret), name=name,
                       attach_type=attach_type, attach_btf_id=attach_btf_id, **spec_kw)
    return spec.load()


def fds() -> set:
    gc.collect()
    return set(os.listdir("/proc/self/fd"))


def fd_targets() -> dict:
    out = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            out[name] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            pass
    return out


def probe_events_text(*pids: int) -> str:
    """The kprobe_events + uprobe_events lines that pybpf made for processes ``pids``
    (default: this process), as text. Only these are compared, so the tests pass while
    other tracers (another test run, bpftrace, a user's tool) define probes of their own;
    pybpf's event names carry the creating pid (``pybpf_<pid>_<n>_<what>``)."""
    from pybpf import tracefs
    wanted = set(pids) or {os.getpid()}
    out = []
    for kind in ("kprobe", "uprobe"):
        for ev in tracefs.list_probe_events(kind):
            if ev.pid in wanted:
                out.append(f"{ev.type}:{ev.group}/{ev.name} {ev.definition}")
    return "\n".join(out)


class NoLeaks:
    """Context: this process's descriptors, and the tracefs probe definitions it made,
    unchanged."""

    def __enter__(self) -> "NoLeaks":
        self.fds = fds()
        self.events = probe_events_text()
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is not None:
            return
        after = fds()
        leaked = sorted(after - self.fds)
        assert not leaked, f"leaked fds: {[os.readlink('/proc/self/fd/' + f) for f in leaked if os.path.exists('/proc/self/fd/' + f)]}"
        assert probe_events_text() == self.events, "tracefs probe definitions changed"


def in_vm() -> bool:
    return os.environ.get("RUN_IN_VM") == "1"


# -- network namespaces with a veth pair --------------------------------------------------

import contextlib
import shutil
import socket
import subprocess

_CLONE_NEWNET = 0x40000000


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


@contextlib.contextmanager
def in_netns(name: str):
    """Run the block (this thread) in network namespace ``name``."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        _setns(target)
        yield
    finally:
        _setns(home)
        os.close(home)
        os.close(target)


class VethPair:
    """Two network namespaces A and B joined by a veth pair: ``va`` (``ip_a``) in A and
    ``vb`` (``ip_b``) in B. :meth:`send` sends UDP datagrams from A to B."""

    def __init__(self, tag: str) -> None:
        self.a, self.b = f"pybpf-{os.getpid()}-{tag}-a", f"pybpf-{os.getpid()}-{tag}-b"
        self.va, self.vb = "va", "vb"
        net = 200 + (os.getpid() % 50)
        self.ip_a, self.ip_b = f"10.{net}.{len(tag)}.1", f"10.{net}.{len(tag)}.2"
        ip = ["ip"]
        for ns in (self.a, self.b):
            subprocess.run(ip + ["netns", "add", ns], check=True)
        try:
            subprocess.run(ip + ["-n", self.a, "link", "add", self.va, "type", "veth",
                                 "peer", "name", self.vb, "netns", self.b], check=True)
            for ns, dev, addr in ((self.a, self.va, self.ip_a), (self.b, self.vb, self.ip_b)):
                subprocess.run(ip + ["-n", ns, "addr", "add", f"{addr}/24", "dev", dev],
                               check=True)
                subprocess.run(ip + ["-n", ns, "link", "set", dev, "up"], check=True)
                subprocess.run(ip + ["-n", ns, "link", "set", "lo", "up"], check=True)
        except BaseException:
            self.close()
            raise

    def send(self, n: int, port: int = 9999, timeout: float = 2.0) -> int:
        """Send ``n`` datagrams from A to B:port; returns how many B's socket got."""
        with in_netns(self.b):
            rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with in_netns(self.b):
            rx.bind((self.ip_b, port))
        rx.settimeout(timeout)
        with in_netns(self.a):
            tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        got = 0
        try:
            for i in range(n):
                tx.sendto(b"pybpf %d" % i, (self.ip_b, port))
                try:
                    rx.recv(100)
                    got += 1
                except socket.timeout:
                    pass
        finally:
            tx.close()
            rx.close()
        return got

    def close(self) -> None:
        for ns in (self.a, self.b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def net_reason() -> str:
    if root_reason():
        return root_reason()
    if shutil.which("ip") is None:
        return "needs iproute2 (the ip command) to make network namespaces"
    return ""
