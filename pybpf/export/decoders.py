"""Label decoders: functions from a raw map key field (an int or bytes) to a label's
text. Use them in a metric's ``labels`` list, e.g. ``("syscall", syscall)``.

Each decoder is cheap per call; the ones that look things up (symbols, cgroup paths,
disk names) cache what they find.
"""

from __future__ import annotations

import errno as _errno
import os
import signal as _signal
import socket
import struct
import threading
import time
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Union

__all__ = ["comm", "syscall", "ksym", "ipv4", "ipv6", "ip", "port", "disk", "cgroup",
           "errno", "result", "names", "block_op", "exit_reason", "SOFTIRQ_VECTORS"]


def comm(raw: Any) -> str:
    """A task's command name (``char[16]``): the text before the first NUL."""
    if isinstance(raw, (bytes, bytearray)):
        cut = raw.find(b"\0")
        return bytes(raw if cut < 0 else raw[:cut]).decode("utf-8", "replace")
    return str(raw)


def syscall(raw: Any) -> str:
    """A system call number -> its name (``pybpf.syscalls``)."""
    from ..syscalls import syscall_name
    return syscall_name(int(raw))


def ksym(raw: Any) -> str:
    """A kernel address -> the name of the function holding it (``/proc/kallsyms``), or
    the address in hex when it has none."""
    from ..symbolize import kernel_symbols
    frame = kernel_symbols().lookup(int(raw))
    return frame.name if frame.name and frame.name != "[unknown]" else f"0x{int(raw):x}"


def ipv4(raw: Any) -> str:
    """An IPv4 address: 4 bytes, or a ``u32`` as the kernel stores it (network order
    in memory)."""
    if isinstance(raw, (bytes, bytearray)):
        return socket.inet_ntop(socket.AF_INET, bytes(raw[:4]))
    return socket.inet_ntop(socket.AF_INET, struct.pack("<I", int(raw) & 0xFFFFFFFF))


def ipv6(raw: Any) -> str:
    """An IPv6 address: 16 bytes."""
    return socket.inet_ntop(socket.AF_INET6, bytes(raw[:16]))


def ip(raw: Any) -> str:
    """An IPv4 or IPv6 address: 16 bytes are IPv6 unless they are an IPv4 address
    padded with zeros (how tools store both in one field); 4 bytes or an int IPv4."""
    if isinstance(raw, (bytes, bytearray)) and len(raw) >= 16 and any(raw[4:16]):
        return ipv6(raw)
    return ipv4(raw)


def port(raw: Any) -> str:
    """A TCP/UDP port read in network byte order (``sport``/``dport`` as the socket
    holds them) -> its number."""
    value = int.from_bytes(bytes(raw[:2]), "big") if isinstance(raw, (bytes, bytearray)) \
        else socket.ntohs(int(raw) & 0xFFFF)
    return str(value)


def disk(raw: Any) -> str:
    """A kernel ``dev_t`` (major << 20 | minor) -> the disk's name (``sda``), from
    sysfs; ``major:minor`` when it is gone."""
    from ..tooling import disk_name
    return disk_name(int(raw))


def errno(raw: Any) -> str:
    """An error number (positive or negative) -> its name (``ENOENT``)."""
    value = abs(int(raw))
    return _errno.errorcode.get(value, str(value))


def result(raw: Any) -> str:
    """A system call's return value -> ``ok`` (0 or more) or the error's name."""
    return "ok" if int(raw) >= 0 else errno(raw)


def names(table: Union[Sequence[str], Mapping[int, str]]) -> Callable[[Any], str]:
    """A decoder that shows a small number as its name in ``table`` (a list indexed by
    the number, or a dict), and any other number as itself: ``names(["user",
    "kernel"])(1) == "kernel"``."""
    lookup = dict(enumerate(table)) if not isinstance(table, Mapping) else dict(table)

    def decode(raw: Any) -> str:
        return lookup.get(int(raw), str(int(raw)))
    return decode


#: the kernel's softirq vectors, in the order of ``enum`` in <linux/interrupt.h>
SOFTIRQ_VECTORS = ["hi", "timer", "net_tx", "net_rx", "block", "irq_poll", "tasklet",
                   "sched", "hrtimer", "rcu"]

_BLOCK_OPS = {ord("R"): "read", ord("W"): "write", ord("D"): "discard",
              ord("F"): "flush", ord("E"): "secure_erase", ord("N"): "other"}


def block_op(raw: Any) -> str:
    """The operation letter of a block request's ``rwbs`` (``R``, ``W``, ``D``, ``F``,
    ``E``, ``N``, as an int or a 1-byte string) -> ``read``, ``write``, ``discard``,
    ``flush``, ``secure_erase`` or ``other``."""
    code = raw[0] if isinstance(raw, (bytes, bytearray)) else int(raw)
    return _BLOCK_OPS.get(code, "other")


def exit_reason(raw: Any) -> str:
    """A task's ``exit_code`` (what ``wait()`` reports: status << 8, or the signal in
    the low 7 bits) -> ``ok`` (status 0), ``error`` (status 1-255) or the name of the
    signal that ended it (``SIGKILL``)."""
    code = int(raw)
    sig = code & 0x7F
    if sig:
        try:
            return _signal.Signals(sig).name
        except ValueError:
            return f"signal{sig}"
    return "error" if (code >> 8) & 0xFF else "ok"


def cgroup2_root() -> str:
    """Where the cgroup v2 hierarchy is mounted: ``/sys/fs/cgroup``, or
    ``/sys/fs/cgroup/unified`` on a hybrid (v1 + v2) system; the ids BPF reports are
    inode numbers there (the v1 hierarchies number their own directories)."""
    for path in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
        if os.path.exists(os.path.join(path, "cgroup.controllers")):
            return path
    return "/sys/fs/cgroup"


class _Cgroups:
    """cgroup id (the inode number of its directory in cgroup v2) -> path, from a walk
    of the v2 hierarchy (:func:`cgroup2_root`) done again (at most every 5 seconds)
    when an id is missing."""

    def __init__(self, root: Optional[str] = None) -> None:
        self.root = root if root is not None else cgroup2_root()
        self.paths: Dict[int, str] = {}
        self.walked = 0.0
        self.lock = threading.Lock()

    def _walk(self) -> None:
        paths: Dict[int, str] = {}
        for top, dirs, _ in os.walk(self.root):
            try:
                ino = os.stat(top).st_ino
            except OSError:
                continue
            rel = os.path.relpath(top, self.root)
            paths[ino] = "/" if rel == "." else "/" + rel
        self.paths = paths
        self.walked = time.monotonic()

    def path(self, cgroup_id: int) -> Optional[str]:
        with self.lock:
            found = self.paths.get(cgroup_id)
            if found is None and time.monotonic() - self.walked > 5.0:
                self._walk()
                found = self.paths.get(cgroup_id)
            return found


_cgroups = _Cgroups()


def cgroup(raw: Any) -> str:
    """A cgroup id (``bpf_get_current_cgroup_id()``) -> its path in the
    cgroup v2 hierarchy (``/system.slice/ssh.service``), or the id when none has it."""
    found = _cgroups.path(int(raw))
    return found if found is not None else str(int(raw))
