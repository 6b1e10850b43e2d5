"""The ``bpf()`` system call through ctypes, the kernel's enums, and the map commands.

Layers, bottom up:

* :data:`SYSCALL_NUMBERS` and :func:`syscall_number`: the numbers per architecture;
* the enums of ``linux/bpf.h`` (:class:`Cmd`, :class:`ProgType`, :class:`MapType`,
  :class:`AttachType`, :class:`LinkType`, ...) with, for the program and map types, the
  first Linux release that has each (:data:`PROG_TYPE_SINCE`, :data:`MAP_TYPE_SINCE`);
* :func:`kernel_version` and :func:`linux_version_code`: the running kernel;
* the ``*Attr`` structures: members of ``union bpf_attr`` laid out as in the header;
* :func:`bpf`: issue one command, raise :class:`~pybpf.syscall.errors.BPFError` on failure;
* :func:`map_create`, :func:`map_update`, :func:`map_lookup`: a few map commands (the
  complete set is in :mod:`pybpf.syscall.maps`). The program, link, BTF and statistics
  commands are in :mod:`pybpf.syscall.progs`.

Every descriptor a command creates is returned as an owned :class:`~pybpf.syscall.fd.FD`.

**Structure conventions** (checked against the installed ``linux/bpf.h`` by
``tests/test_uapi_layout.py``): every ``ctypes.Structure``/``Union`` in
:mod:`pybpf.syscall` says which C object it mirrors with the class attribute
``_c_name_`` (a C type: ``"union bpf_attr"``, ``"struct bpf_prog_info"``) and, for a named
member of that type, ``_c_member_`` (``"test"``, ``"link_create"``); for the anonymous
structs of ``union bpf_attr`` ``_c_member_`` is left out and the field names are the
header's. Nested structures and unions used as fields either declare the same or are
reached through their container (named fields add a path component, ``_anonymous_``
ones do not). Fields whose name starts with ``_`` are padding. Fields newer than the
oldest header the test may meet (Linux 6.1) are listed in ``_newer_fields_`` with the
release that added them (``{"log_true_size": (6, 4)}``).
"""

from __future__ import annotations

import ctypes
import enum
import errno as _errno
import os
import re
from typing import Any, Dict, Optional, Tuple

from .._enum import enum_of
from .errors import NotSupportedError, bpf_error

__all__ = [
    "SYSCALL_NUMBERS", "syscall_number", "Cmd", "MapType", "ProgType", "AttachType",
    "LinkType", "StatsType", "ProgFlags", "MapFlags", "PROG_TYPE_SINCE", "MAP_TYPE_SINCE",
    "CMD_SINCE", "kernel_version", "linux_version_code", "kernel_at_least", "OBJ_NAME_LEN",
    "bpf", "addr_of", "name_bytes",
]

#: System call numbers by machine name (``os.uname().machine``). Architectures using the generic table
#: (aarch64, riscv64, loongarch64) share numbers.
SYSCALL_NUMBERS: Dict[str, Dict[str, int]] = {
    "x86_64": {"bpf": 321, "perf_event_open": 298},
    "aarch64": {"bpf": 280, "perf_event_open": 241},
    "riscv64": {"bpf": 280, "perf_event_open": 241},
    "loongarch64": {"bpf": 280, "perf_event_open": 241},
    "i386": {"bpf": 357, "perf_event_open": 336},
    "armv7l": {"bpf": 386, "perf_event_open": 364},
    "ppc64le": {"bpf": 361, "perf_event_open": 319},
    "s390x": {"bpf": 351, "perf_event_open": 331},
}
_MACHINE_ALIASES = {"amd64": "x86_64", "arm64": "aarch64", "i686": "i386", "i586": "i386",
                    "armv6l": "armv7l", "armv8l": "armv7l", "ppc64": "ppc64le"}


def syscall_number(name: str, machine: Optional[str] = None) -> int:
    """The number of system call ``name`` (``"bpf"``, ``"perf_event_open"``) on ``machine``
    (default: this one). Raises :class:`OSError` (``ENOSYS``) for an unknown architecture."""
    if machine is None:
        if _HERE:
            return _HERE[name] if name in _HERE else _number(_here_arch(), name)
        machine = _here_arch()
    arch = _MACHINE_ALIASES.get(machine, machine)
    return _number(arch, name)


#: this machine's numbers, once known (every system call looked them up through uname)
_HERE: Dict[str, int] = {}


def _here_arch() -> str:
    arch = os.uname().machine
    arch = _MACHINE_ALIASES.get(arch, arch)
    if not _HERE and arch in SYSCALL_NUMBERS:
        _HERE.update(SYSCALL_NUMBERS[arch])
    return arch


def _number(arch: str, name: str) -> int:
    try:
        return SYSCALL_NUMBERS[arch][name]
    except KeyError:
        raise OSError(_errno.ENOSYS, f"no known number for system call {name!r} on "
                      f"architecture {arch!r} (add it to pybpf.syscall.bpf.SYSCALL_NUMBERS)"
                      ) from None


@enum_of(enum.IntEnum)
class Cmd:
    """``enum bpf_cmd``: the first argument of ``bpf()``."""

    MAP_CREATE = 0
    MAP_LOOKUP_ELEM = 1
    MAP_UPDATE_ELEM = 2
    MAP_DELETE_ELEM = 3
    MAP_GET_NEXT_KEY = 4
    PROG_LOAD = 5
    OBJ_PIN = 6
    OBJ_GET = 7
    PROG_ATTACH = 8
    PROG_DETACH = 9
    PROG_TEST_RUN = 10
    PROG_GET_NEXT_ID = 11
    MAP_GET_NEXT_ID = 12
    PROG_GET_FD_BY_ID = 13
    MAP_GET_FD_BY_ID = 14
    OBJ_GET_INFO_BY_FD = 15
    PROG_QUERY = 16
    RAW_TRACEPOINT_OPEN = 17
    BTF_LOAD = 18
    BTF_GET_FD_BY_ID = 19
    TASK_FD_QUERY = 20
    MAP_LOOKUP_AND_DELETE_ELEM = 21
    MAP_FREEZE = 22
    BTF_GET_NEXT_ID = 23
    MAP_LOOKUP_BATCH = 24
    MAP_LOOKUP_AND_DELETE_BATCH = 25
    MAP_UPDATE_BATCH = 26
    MAP_DELETE_BATCH = 27
    LINK_CREATE = 28
    LINK_UPDATE = 29
    LINK_GET_FD_BY_ID = 30
    LINK_GET_NEXT_ID = 31
    ENABLE_STATS = 32
    ITER_CREATE = 33
    LINK_DETACH = 34
    PROG_BIND_MAP = 35
    TOKEN_CREATE = 36


#: first Linux release with each command (4.x: the commands older than 4.4 are 3.18/3.19)
CMD_SINCE: Dict[int, Tuple[int, int]] = {
    Cmd.MAP_CREATE: (3, 18), Cmd.MAP_LOOKUP_ELEM: (3, 18), Cmd.MAP_UPDATE_ELEM: (3, 18),
    Cmd.MAP_DELETE_ELEM: (3, 18), Cmd.MAP_GET_NEXT_KEY: (3, 18), Cmd.PROG_LOAD: (3, 18),
    Cmd.OBJ_PIN: (4, 4), Cmd.OBJ_GET: (4, 4), Cmd.PROG_ATTACH: (4, 10),
    Cmd.PROG_DETACH: (4, 10), Cmd.PROG_TEST_RUN: (4, 12), Cmd.PROG_GET_NEXT_ID: (4, 13),
    Cmd.MAP_GET_NEXT_ID: (4, 13), Cmd.PROG_GET_FD_BY_ID: (4, 13),
    Cmd.MAP_GET_FD_BY_ID: (4, 13), Cmd.OBJ_GET_INFO_BY_FD: (4, 13), Cmd.PROG_QUERY: (4, 15),
    Cmd.RAW_TRACEPOINT_OPEN: (4, 17), Cmd.BTF_LOAD: (4, 18), Cmd.BTF_GET_FD_BY_ID: (4, 18),
    Cmd.TASK_FD_QUERY: (4, 19), Cmd.MAP_LOOKUP_AND_DELETE_ELEM: (4, 20),
    Cmd.MAP_FREEZE: (5, 2), Cmd.BTF_GET_NEXT_ID: (5, 4), Cmd.MAP_LOOKUP_BATCH: (5, 6),
    Cmd.MAP_LOOKUP_AND_DELETE_BATCH: (5, 6), Cmd.MAP_UPDATE_BATCH: (5, 6),
    Cmd.MAP_DELETE_BATCH: (5, 6), Cmd.LINK_CREATE: (5, 7), Cmd.LINK_UPDATE: (5, 7),
    Cmd.LINK_GET_FD_BY_ID: (5, 8), Cmd.LINK_GET_NEXT_ID: (5, 8), Cmd.ENABLE_STATS: (5, 8),
    Cmd.ITER_CREATE: (5, 8), Cmd.LINK_DETACH: (5, 9), Cmd.PROG_BIND_MAP: (5, 10),
    Cmd.TOKEN_CREATE: (6, 9),
}


@enum_of(enum.IntEnum)
class MapType:
    """``enum bpf_map_type``. :data:`MAP_TYPE_SINCE` gives the release that added each."""

    UNSPEC = 0
    HASH = 1
    ARRAY = 2
    PROG_ARRAY = 3
    PERF_EVENT_ARRAY = 4
    PERCPU_HASH = 5
    PERCPU_ARRAY = 6
    STACK_TRACE = 7
    CGROUP_ARRAY = 8
    LRU_HASH = 9
    LRU_PERCPU_HASH = 10
    LPM_TRIE = 11
    ARRAY_OF_MAPS = 12
    HASH_OF_MAPS = 13
    DEVMAP = 14
    SOCKMAP = 15
    CPUMAP = 16
    XSKMAP = 17
    SOCKHASH = 18
    CGROUP_STORAGE = 19
    REUSEPORT_SOCKARRAY = 20
    PERCPU_CGROUP_STORAGE = 21
    QUEUE = 22
    STACK = 23
    SK_STORAGE = 24
    DEVMAP_HASH = 25
    STRUCT_OPS = 26
    RINGBUF = 27
    INODE_STORAGE = 28
    TASK_STORAGE = 29
    BLOOM_FILTER = 30
    USER_RINGBUF = 31
    CGRP_STORAGE = 32
    ARENA = 33


#: first Linux release with each map type
MAP_TYPE_SINCE: Dict[int, Tuple[int, int]] = {
    MapType.HASH: (3, 19), MapType.ARRAY: (3, 19), MapType.PROG_ARRAY: (4, 2),
    MapType.PERF_EVENT_ARRAY: (4, 3), MapType.PERCPU_HASH: (4, 6),
    MapType.PERCPU_ARRAY: (4, 6), MapType.STACK_TRACE: (4, 6), MapType.CGROUP_ARRAY: (4, 8),
    MapType.LRU_HASH: (4, 10), MapType.LRU_PERCPU_HASH: (4, 10), MapType.LPM_TRIE: (4, 11),
    MapType.ARRAY_OF_MAPS: (4, 12), MapType.HASH_OF_MAPS: (4, 12), MapType.DEVMAP: (4, 14),
    MapType.SOCKMAP: (4, 14), MapType.CPUMAP: (4, 15), MapType.XSKMAP: (4, 18),
    MapType.SOCKHASH: (4, 18), MapType.CGROUP_STORAGE: (4, 19),
    MapType.REUSEPORT_SOCKARRAY: (4, 19), MapType.PERCPU_CGROUP_STORAGE: (4, 20),
    MapType.QUEUE: (4, 20), MapType.STACK: (4, 20), MapType.SK_STORAGE: (5, 2),
    MapType.DEVMAP_HASH: (5, 4), MapType.STRUCT_OPS: (5, 6), MapType.RINGBUF: (5, 8),
    MapType.INODE_STORAGE: (5, 10), MapType.TASK_STORAGE: (5, 11),
    MapType.BLOOM_FILTER: (5, 16), MapType.USER_RINGBUF: (6, 1),
    MapType.CGRP_STORAGE: (6, 2), MapType.ARENA: (6, 9),
}


@enum_of(enum.IntEnum)
class ProgType:
    """``enum bpf_prog_type``. :data:`PROG_TYPE_SINCE` gives the release that added each."""

    UNSPEC = 0
    SOCKET_FILTER = 1
    KPROBE = 2
    SCHED_CLS = 3
    SCHED_ACT = 4
    TRACEPOINT = 5
    XDP = 6
    PERF_EVENT = 7
    CGROUP_SKB = 8
    CGROUP_SOCK = 9
    LWT_IN = 10
    LWT_OUT = 11
    LWT_XMIT = 12
    SOCK_OPS = 13
    SK_SKB = 14
    CGROUP_DEVICE = 15
    SK_MSG = 16
    RAW_TRACEPOINT = 17
    CGROUP_SOCK_ADDR = 18
    LWT_SEG6LOCAL = 19
    LIRC_MODE2 = 20
    SK_REUSEPORT = 21
    FLOW_DISSECTOR = 22
    CGROUP_SYSCTL = 23
    RAW_TRACEPOINT_WRITABLE = 24
    CGROUP_SOCKOPT = 25
    TRACING = 26
    STRUCT_OPS = 27
    EXT = 28
    LSM = 29
    SK_LOOKUP = 30
    SYSCALL = 31
    NETFILTER = 32


#: first Linux release with each program type
PROG_TYPE_SINCE: Dict[int, Tuple[int, int]] = {
    ProgType.SOCKET_FILTER: (3, 19), ProgType.KPROBE: (4, 1), ProgType.SCHED_CLS: (4, 1),
    ProgType.SCHED_ACT: (4, 1), ProgType.TRACEPOINT: (4, 7), ProgType.XDP: (4, 8),
    ProgType.PERF_EVENT: (4, 9), ProgType.CGROUP_SKB: (4, 10), ProgType.CGROUP_SOCK: (4, 10),
    ProgType.LWT_IN: (4, 10), ProgType.LWT_OUT: (4, 10), ProgType.LWT_XMIT: (4, 10),
    ProgType.SOCK_OPS: (4, 13), ProgType.SK_SKB: (4, 14), ProgType.CGROUP_DEVICE: (4, 15),
    ProgType.SK_MSG: (4, 17), ProgType.RAW_TRACEPOINT: (4, 17),
    ProgType.CGROUP_SOCK_ADDR: (4, 17), ProgType.LWT_SEG6LOCAL: (4, 18),
    ProgType.LIRC_MODE2: (4, 18), ProgType.SK_REUSEPORT: (4, 19),
    ProgType.FLOW_DISSECTOR: (4, 20), ProgType.CGROUP_SYSCTL: (5, 2),
    ProgType.RAW_TRACEPOINT_WRITABLE: (5, 2), ProgType.CGROUP_SOCKOPT: (5, 3),
    ProgType.TRACING: (5, 5), ProgType.STRUCT_OPS: (5, 6), ProgType.EXT: (5, 6),
    ProgType.LSM: (5, 7), ProgType.SK_LOOKUP: (5, 9), ProgType.SYSCALL: (5, 14),
    ProgType.NETFILTER: (6, 4),
}


@enum_of(enum.IntEnum)
class AttachType:
    """``enum bpf_attach_type``: where a program attaches (``expected_attach_type`` at
    load, ``attach_type`` of ``BPF_PROG_ATTACH`` and ``BPF_LINK_CREATE``)."""

    CGROUP_INET_INGRESS = 0
    CGROUP_INET_EGRESS = 1
    CGROUP_INET_SOCK_CREATE = 2
    CGROUP_SOCK_OPS = 3
    SK_SKB_STREAM_PARSER = 4
    SK_SKB_STREAM_VERDICT = 5
    CGROUP_DEVICE = 6
    SK_MSG_VERDICT = 7
    CGROUP_INET4_BIND = 8
    CGROUP_INET6_BIND = 9
    CGROUP_INET4_CONNECT = 10
    CGROUP_INET6_CONNECT = 11
    CGROUP_INET4_POST_BIND = 12
    CGROUP_INET6_POST_BIND = 13
    CGROUP_UDP4_SENDMSG = 14
    CGROUP_UDP6_SENDMSG = 15
    LIRC_MODE2 = 16
    FLOW_DISSECTOR = 17
    CGROUP_SYSCTL = 18
    CGROUP_UDP4_RECVMSG = 19
    CGROUP_UDP6_RECVMSG = 20
    CGROUP_GETSOCKOPT = 21
    CGROUP_SETSOCKOPT = 22
    TRACE_RAW_TP = 23
    TRACE_FENTRY = 24
    TRACE_FEXIT = 25
    MODIFY_RETURN = 26
    LSM_MAC = 27
    TRACE_ITER = 28
    CGROUP_INET4_GETPEERNAME = 29
    CGROUP_INET6_GETPEERNAME = 30
    CGROUP_INET4_GETSOCKNAME = 31
    CGROUP_INET6_GETSOCKNAME = 32
    XDP_DEVMAP = 33
    CGROUP_INET_SOCK_RELEASE = 34
    XDP_CPUMAP = 35
    SK_LOOKUP = 36
    XDP = 37
    SK_SKB_VERDICT = 38
    SK_REUSEPORT_SELECT = 39
    SK_REUSEPORT_SELECT_OR_MIGRATE = 40
    PERF_EVENT = 41
    TRACE_KPROBE_MULTI = 42
    LSM_CGROUP = 43
    STRUCT_OPS = 44
    NETFILTER = 45
    TCX_INGRESS = 46
    TCX_EGRESS = 47
    TRACE_UPROBE_MULTI = 48
    CGROUP_UNIX_CONNECT = 49
    CGROUP_UNIX_SENDMSG = 50
    CGROUP_UNIX_RECVMSG = 51
    CGROUP_UNIX_GETPEERNAME = 52
    CGROUP_UNIX_GETSOCKNAME = 53
    NETKIT_PRIMARY = 54
    NETKIT_PEER = 55
    TRACE_KPROBE_SESSION = 56
    TRACE_UPROBE_SESSION = 57


@enum_of(enum.IntEnum)
class LinkType:
    """``enum bpf_link_type`` (as reported by ``bpf_link_info.type``)."""

    UNSPEC = 0
    RAW_TRACEPOINT = 1
    TRACING = 2
    CGROUP = 3
    ITER = 4
    NETNS = 5
    XDP = 6
    PERF_EVENT = 7
    KPROBE_MULTI = 8
    STRUCT_OPS = 9
    NETFILTER = 10
    TCX = 11
    UPROBE_MULTI = 12
    NETKIT = 13
    SOCKMAP = 14


@enum_of(enum.IntEnum)
class StatsType:
    """``enum bpf_stats_type`` for ``BPF_ENABLE_STATS`` (Linux 5.8)."""

    RUN_TIME = 0


@enum_of(enum.IntFlag)
class ProgFlags:
    """``prog_flags`` of ``BPF_PROG_LOAD``."""

    STRICT_ALIGNMENT = 1 << 0
    ANY_ALIGNMENT = 1 << 1
    TEST_RND_HI32 = 1 << 2
    TEST_STATE_FREQ = 1 << 3
    SLEEPABLE = 1 << 4          # Linux 5.10
    XDP_HAS_FRAGS = 1 << 5      # Linux 5.18
    XDP_DEV_BOUND_ONLY = 1 << 6  # Linux 6.3
    TEST_REG_INVARIANTS = 1 << 7  # Linux 6.7
    TOKEN_FD = 1 << 16          # Linux 6.9


@enum_of(enum.IntFlag)
class MapFlags:
    """``map_flags`` of ``BPF_MAP_CREATE``."""

    NO_PREALLOC = 1 << 0
    NO_COMMON_LRU = 1 << 1
    NUMA_NODE = 1 << 2
    RDONLY = 1 << 3
    WRONLY = 1 << 4
    STACK_BUILD_ID = 1 << 5
    ZERO_SEED = 1 << 6
    RDONLY_PROG = 1 << 7
    WRONLY_PROG = 1 << 8
    CLONE = 1 << 9
    MMAPABLE = 1 << 10
    PRESERVE_ELEMS = 1 << 11
    INNER_MAP = 1 << 12
    LINK = 1 << 13
    PATH_FD = 1 << 14
    VTYPE_BTF_OBJ_FD = 1 << 15
    TOKEN_FD = 1 << 16
    SEGV_ON_FAULT = 1 << 17
    NO_USER_CONV = 1 << 18


#: length of ``map_name`` and ``prog_name``, including the terminating NUL
OBJ_NAME_LEN = 16


# ---------------------------------------------------------------------------------------
# The running kernel
# ---------------------------------------------------------------------------------------

_kernel_version: Optional[Tuple[int, int, int]] = None


def _parse_version(text: str) -> Optional[Tuple[int, int, int]]:
    found = re.match(r"\s*(\d+)\.(\d+)(?:\.(\d+))?", text)
    if not found:
        return None
    return int(found.group(1)), int(found.group(2)), int(found.group(3) or 0)


def kernel_version() -> Tuple[int, int, int]:
    """The running kernel's version as ``(major, minor, patch)``, read from ``uname``.

    Distribution kernels whose release string hides the upstream version say it
    elsewhere: Ubuntu in ``/proc/version_signature`` (its last word), Debian in the
    ``uname -v`` text (``... Debian 6.1.76-1 ...``); those are preferred when present.
    """
    global _kernel_version
    if _kernel_version is None:
        uts = os.uname()
        version = None
        try:
            with open("/proc/version_signature", encoding="ascii") as fh:
                version = _parse_version(fh.read().split()[-1])
        except (OSError, IndexError, UnicodeDecodeError):
            pass
        if version is None:
            debian = re.search(r"Debian (\d+\.\d+\.\d+)", uts.version)
            if debian:
                version = _parse_version(debian.group(1))
        _kernel_version = version or _parse_version(uts.release) or (0, 0, 0)
    return _kernel_version


def linux_version_code(version: Optional[Tuple[int, int, int]] = None) -> int:
    """``LINUX_VERSION_CODE`` of ``version`` (default: the running kernel):
    ``major << 16 | minor << 8 | patch``, the patch level capped at 255 as the kernel
    does. Kprobe programs passed it as ``kern_version`` on kernels before 5.0."""
    major, minor, patch = version or kernel_version()
    return (major << 16) | (minor << 8) | min(patch, 255)


def kernel_at_least(major: int, minor: int) -> bool:
    """True if the running kernel is ``major.minor`` or newer."""
    return kernel_version()[:2] >= (major, minor)

_u32 = ctypes.c_uint32
_u64 = ctypes.c_uint64


# ---------------------------------------------------------------------------------------
# The system call
# ---------------------------------------------------------------------------------------

_libc: Optional[ctypes.CDLL] = None


def _syscall_fn() -> "ctypes._CFuncPtr":
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.syscall.restype = ctypes.c_long
    return _libc.syscall


def addr_of(buf: Optional[Any]) -> int:
    """The address of a ctypes buffer (``create_string_buffer``, an array), or 0 for None:
    what the ``__aligned_u64`` pointer fields of ``union bpf_attr`` hold."""
    return ctypes.addressof(buf) if buf is not None else 0


_addr = addr_of


def bpf(cmd: int, attr: ctypes.Structure, size: Optional[int] = None) -> int:
    """Issue ``bpf(cmd, &attr, size)`` and return its non-negative result (an fd for the
    commands that create objects, else 0).

    Raises :class:`~pybpf.syscall.errors.BPFError` carrying errno, the command name and a
    hint: :class:`~pybpf.syscall.errors.BPFPermissionError` for ``EPERM``, and
    :class:`~pybpf.syscall.errors.NotSupportedError` when the kernel does not know the
    command (``EINVAL`` from a kernel older than the command) or a non-zero field of
    ``attr`` that is newer than the kernel (``E2BIG``). ``EINTR`` is retried.
    """
    fn = _syscall_fn()
    nr = syscall_number("bpf")
    length = ctypes.sizeof(attr) if size is None else size
    while True:
        ret = fn(ctypes.c_long(nr), ctypes.c_long(int(cmd)), ctypes.byref(attr),
                 ctypes.c_long(length))
        if ret >= 0:
            return int(ret)
        err = ctypes.get_errno()
        if err != _errno.EINTR:
            raise _error(cmd, attr, err)


def _error(cmd: int, attr: ctypes.Structure, err: int) -> OSError:
    command = _command_name(cmd)
    since = CMD_SINCE.get(cmd)
    if err == _errno.EINVAL and since and not kernel_at_least(*since):
        return NotSupportedError(command, since, errnum=err, command=command)
    if err == _errno.E2BIG:
        newer = [(name, version) for name, version in _set_newer_fields(attr)
                 if not kernel_at_least(*version)]
        if newer:
            name, version = max(newer, key=lambda item: item[1])
            return NotSupportedError(f"the {name!r} field of {command}", version,
                                     errnum=err, command=command)
    return bpf_error(command, err)


def _set_newer_fields(obj: Any) -> list:
    """(name, version) of the non-zero fields listed in ``_newer_fields_`` of ``obj``'s
    structure and of the structures nested in it."""
    found: list = []
    if isinstance(obj, ctypes.Union):
        return found        # overlapping members: which one is set cannot be told
    cls = type(obj)
    newer: Dict[str, Tuple[int, int]] = dict(getattr(cls, "_newer_fields_", {}))
    newer.update(getattr(cls, "_field_since_", {}))
    for entry in getattr(cls, "_fields_", ()):
        name = entry[0]
        value = getattr(obj, name)
        if name in newer and isinstance(value, ctypes.Structure):
            if any(bytes(value)):
                found.append((name, newer[name]))
        elif isinstance(value, (ctypes.Structure, ctypes.Union)):
            found.extend(_set_newer_fields(value))
        elif name in newer:
            raw = bytes(value) if isinstance(value, ctypes.Array) else value
            if any(raw) if isinstance(raw, bytes) else raw:
                found.append((name, newer[name]))
    return found


def _command_name(cmd: int) -> str:
    try:
        return "BPF_" + Cmd(cmd).name
    except ValueError:
        return f"bpf command {cmd}"


def name_bytes(name: str) -> bytes:
    """``name`` as the bytes of an object name (``map_name``, ``prog_name``): at most
    15 bytes (``ValueError`` otherwise); the kernel accepts letters, digits, ``_`` and
    ``.``."""
    raw = name.encode()
    if len(raw) >= OBJ_NAME_LEN:
        raise ValueError(f"object name {name!r} is longer than {OBJ_NAME_LEN - 1} bytes")
    return raw


_name_bytes = name_bytes


# Program and map commands live in pybpf.syscall.progs and pybpf.syscall.maps; these
# names still resolve here for older imports.
_MOVED = {"ProgLoadAttr": ("progs", "ProgLoadAttr"), "TestRunAttr": ("progs", "TestRunAttr"),
          "prog_load": ("progs", "prog_load"), "prog_test_run": ("progs", "prog_test_run"),
          "TestRunResult": ("progs", "TestRunResult"), "LOG_SIZES": ("progs", "LOG_SIZES"),
          "map_create": ("maps", "map_create"), "map_update": ("maps", "map_update_elem"),
          "map_lookup": ("maps", "map_lookup_elem"), "UpdateFlags": ("maps", "ElemFlags"),
          "MapCreateAttr": ("maps", "MapCreateAttr"), "MapElemAttr": ("maps", "MapElemAttr")}


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        import importlib
        module, attr = _MOVED[name]
        return getattr(importlib.import_module(f"{__package__}.{module}"), attr)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
