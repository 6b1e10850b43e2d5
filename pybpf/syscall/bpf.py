"""The ``bpf()`` system call through ctypes, and thin wrappers of its commands.

Layers, bottom up:

* :data:`SYSCALL_NUMBERS` and :func:`syscall_number`: the numbers per architecture;
* the ``*Attr`` structures: the members of ``union bpf_attr`` (``linux/bpf.h``) that the
  commands here use, laid out as in the header;
* :func:`bpf`: issue one command, raise :class:`~pybpf.syscall.errors.BPFError` on failure;
* :func:`map_create`, :func:`map_update`, :func:`map_lookup`, :func:`prog_load`,
  :func:`prog_test_run`: one command each, taking and returning Python values. Every
  descriptor they create is returned as an owned :class:`~pybpf.syscall.fd.FD`.
"""

from __future__ import annotations

import ctypes
import enum
import errno as _errno
import platform
from typing import Dict, Iterable, NamedTuple, Optional, Union

from .errors import VerifierError, bpf_error, hint_for
from .fd import FD, FdLike, fd_number

__all__ = [
    "SYSCALL_NUMBERS", "syscall_number", "Cmd", "MapType", "ProgType", "UpdateFlags",
    "OBJ_NAME_LEN", "MapCreateAttr", "MapElemAttr", "ProgLoadAttr", "TestRunAttr", "bpf",
    "map_create", "map_update", "map_lookup", "prog_load", "prog_test_run", "TestRunResult",
    "LOG_SIZES",
]

#: System call numbers by ``platform.machine()``. Architectures using the generic table
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
    arch = machine or platform.machine()
    arch = _MACHINE_ALIASES.get(arch, arch)
    try:
        return SYSCALL_NUMBERS[arch][name]
    except KeyError:
        raise OSError(_errno.ENOSYS, f"no known number for system call {name!r} on "
                      f"architecture {arch!r} (add it to pybpf.syscall.bpf.SYSCALL_NUMBERS)"
                      ) from None


class Cmd(enum.IntEnum):
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


class MapType(enum.IntEnum):
    """``enum bpf_map_type`` (the common ones)."""

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
    QUEUE = 22
    STACK = 23
    RINGBUF = 27
    BLOOM_FILTER = 30


class ProgType(enum.IntEnum):
    """``enum bpf_prog_type``."""

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


class UpdateFlags(enum.IntEnum):
    """The ``flags`` of ``BPF_MAP_UPDATE_ELEM``."""

    ANY = 0        # create or replace
    NOEXIST = 1    # create only
    EXIST = 2      # replace only
    F_LOCK = 4     # take the value's bpf_spin_lock


#: length of ``map_name`` and ``prog_name``, including the terminating NUL
OBJ_NAME_LEN = 16

_u32 = ctypes.c_uint32
_u64 = ctypes.c_uint64


class MapCreateAttr(ctypes.Structure):
    """``union bpf_attr`` as used by ``BPF_MAP_CREATE`` (72 bytes)."""

    _fields_ = [
        ("map_type", _u32),
        ("key_size", _u32),
        ("value_size", _u32),
        ("max_entries", _u32),
        ("map_flags", _u32),
        ("inner_map_fd", _u32),
        ("numa_node", _u32),
        ("map_name", ctypes.c_char * OBJ_NAME_LEN),
        ("map_ifindex", _u32),
        ("btf_fd", _u32),
        ("btf_key_type_id", _u32),
        ("btf_value_type_id", _u32),
        ("btf_vmlinux_value_type_id", _u32),
        ("map_extra", _u64),
    ]


class MapElemAttr(ctypes.Structure):
    """``union bpf_attr`` as used by ``BPF_MAP_*_ELEM`` (32 bytes). ``key`` and
    ``value`` (or ``next_key``) are user-space addresses."""

    _fields_ = [
        ("map_fd", _u32),
        ("_pad0", _u32),          # key is an __aligned_u64
        ("key", _u64),
        ("value", _u64),          # also next_key for BPF_MAP_GET_NEXT_KEY
        ("flags", _u64),
    ]


class ProgLoadAttr(ctypes.Structure):
    """``union bpf_attr`` as used by ``BPF_PROG_LOAD`` (144 bytes). Pointers
    (``insns``, ``license``, ``log_buf``, ...) are user-space addresses."""

    _fields_ = [
        ("prog_type", _u32),
        ("insn_cnt", _u32),
        ("insns", _u64),
        ("license", _u64),
        ("log_level", _u32),
        ("log_size", _u32),
        ("log_buf", _u64),
        ("kern_version", _u32),
        ("prog_flags", _u32),
        ("prog_name", ctypes.c_char * OBJ_NAME_LEN),
        ("prog_ifindex", _u32),
        ("expected_attach_type", _u32),
        ("prog_btf_fd", _u32),
        ("func_info_rec_size", _u32),
        ("func_info", _u64),
        ("func_info_cnt", _u32),
        ("line_info_rec_size", _u32),
        ("line_info", _u64),
        ("line_info_cnt", _u32),
        ("attach_btf_id", _u32),
        ("attach_prog_fd", _u32),      # also attach_btf_obj_fd
        ("core_relo_cnt", _u32),
        ("fd_array", _u64),
        ("core_relos", _u64),
        ("core_relo_rec_size", _u32),
        ("_pad0", _u32),
    ]


class TestRunAttr(ctypes.Structure):
    """``union bpf_attr`` as used by ``BPF_PROG_TEST_RUN`` (80 bytes)."""

    _fields_ = [
        ("prog_fd", _u32),
        ("retval", _u32),
        ("data_size_in", _u32),
        ("data_size_out", _u32),
        ("data_in", _u64),
        ("data_out", _u64),
        ("repeat", _u32),
        ("duration", _u32),
        ("ctx_size_in", _u32),
        ("ctx_size_out", _u32),
        ("ctx_in", _u64),
        ("ctx_out", _u64),
        ("flags", _u32),
        ("cpu", _u32),
        ("batch_size", _u32),
        ("_pad0", _u32),
    ]

    # keep pytest from collecting this class as a test
    __test__ = False


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


def _addr(buf: Optional[ctypes.Array]) -> int:
    return ctypes.addressof(buf) if buf is not None else 0


def bpf(cmd: int, attr: ctypes.Structure, size: Optional[int] = None) -> int:
    """Issue ``bpf(cmd, &attr, size)`` and return its non-negative result (an fd for the
    commands that create objects, else 0).

    Raises :class:`~pybpf.syscall.errors.BPFError` (``BPFPermissionError`` for ``EPERM``)
    carrying errno, the command name and a hint. ``EINTR`` is retried.
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
            raise bpf_error(_command_name(cmd), err)


def _command_name(cmd: int) -> str:
    try:
        return "BPF_" + Cmd(cmd).name
    except ValueError:
        return f"bpf command {cmd}"


def _name_bytes(name: str) -> bytes:
    raw = name.encode()
    if len(raw) >= OBJ_NAME_LEN:
        raise ValueError(f"object name {name!r} is longer than {OBJ_NAME_LEN - 1} bytes")
    return raw


# ---------------------------------------------------------------------------------------
# Maps
# ---------------------------------------------------------------------------------------

def map_create(map_type: int, key_size: int, value_size: int, max_entries: int, *,
               flags: int = 0, name: str = "") -> FD:
    """Create a map (``BPF_MAP_CREATE``) and return its owned descriptor.

    ``name`` (at most 15 bytes of letters, digits, ``_`` and ``.``) shows in bpftool.
    """
    attr = MapCreateAttr(map_type=map_type, key_size=key_size, value_size=value_size,
                         max_entries=max_entries, map_flags=flags,
                         map_name=_name_bytes(name))
    return FD(bpf(Cmd.MAP_CREATE, attr), "map")


def map_update(map_fd: FdLike, key: bytes, value: bytes, flags: int = UpdateFlags.ANY) -> None:
    """Set ``key`` to ``value`` (``BPF_MAP_UPDATE_ELEM``); both must have the map's sizes."""
    kbuf = ctypes.create_string_buffer(bytes(key), len(key))
    vbuf = ctypes.create_string_buffer(bytes(value), len(value))
    attr = MapElemAttr(map_fd=fd_number(map_fd), key=_addr(kbuf), value=_addr(vbuf),
                       flags=flags)
    bpf(Cmd.MAP_UPDATE_ELEM, attr)


def map_lookup(map_fd: FdLike, key: bytes, value_size: int) -> Optional[bytes]:
    """The value stored under ``key`` (``BPF_MAP_LOOKUP_ELEM``), or None if there is none.

    ``value_size`` is the map's value size (per-CPU maps need the size for all CPUs).
    """
    kbuf = ctypes.create_string_buffer(bytes(key), len(key))
    vbuf = ctypes.create_string_buffer(value_size)
    attr = MapElemAttr(map_fd=fd_number(map_fd), key=_addr(kbuf), value=_addr(vbuf))
    try:
        bpf(Cmd.MAP_LOOKUP_ELEM, attr)
    except OSError as exc:
        if exc.errno == _errno.ENOENT:
            return None
        raise
    return vbuf.raw


# ---------------------------------------------------------------------------------------
# Programs
# ---------------------------------------------------------------------------------------

#: verifier log buffer sizes tried in turn after a failed load: the kernel answers ENOSPC
#: when the log does not fit, and the next size is tried
LOG_SIZES = (1 << 20, 1 << 24)


def prog_load(prog_type: int, insns: Union[bytes, Iterable[object]], *, license: str = "GPL",
              name: str = "", expected_attach_type: int = 0, flags: int = 0,
              log_level: int = 1) -> FD:
    """Load a program (``BPF_PROG_LOAD``) and return its owned descriptor.

    ``insns`` is the encoded program or an iterable of
    :class:`~pybpf.asm.instruction.Instruction`. The first attempt asks for no verifier
    log (the fast path); if it fails, the load is repeated with a log buffer at
    ``log_level`` and a :class:`~pybpf.syscall.errors.VerifierError` carrying the log is
    raised.
    """
    if not isinstance(insns, (bytes, bytearray, memoryview)):
        from ..asm.encoding import encode
        insns = encode(insns)  # type: ignore[arg-type]
    code = bytes(insns)
    if not code or len(code) % 8:
        raise ValueError(f"a program is a non-empty multiple of 8 bytes, not {len(code)}")
    code_buf = ctypes.create_string_buffer(code, len(code))
    lic_buf = ctypes.create_string_buffer(license.encode())

    def attempt(log: Optional[ctypes.Array]) -> int:
        attr = ProgLoadAttr(prog_type=prog_type, insn_cnt=len(code) // 8,
                            insns=_addr(code_buf), license=_addr(lic_buf),
                            prog_name=_name_bytes(name), prog_flags=flags,
                            expected_attach_type=expected_attach_type)
        if log is not None:
            attr.log_level = log_level
            attr.log_size = len(log)
            attr.log_buf = _addr(log)
        for _ in range(5):          # the verifier may ask to retry with EAGAIN
            try:
                return bpf(Cmd.PROG_LOAD, attr)
            except OSError as exc:
                if exc.errno != _errno.EAGAIN:
                    raise
        return bpf(Cmd.PROG_LOAD, attr)

    try:
        return FD(attempt(None), "prog")
    except OSError as exc:
        if exc.errno == _errno.EPERM:
            raise
        first = exc
    log_text = ""
    for size in LOG_SIZES:
        log_buf = ctypes.create_string_buffer(size)
        try:
            # a load that passes with a log (rare: a transient failure) is still a success
            return FD(attempt(log_buf), "prog")
        except OSError as exc:
            log_text = log_buf.value.decode(errors="replace")
            err = exc.errno or first.errno or _errno.EINVAL
            if err == _errno.ENOSPC and size != LOG_SIZES[-1]:
                continue
            if err == _errno.ENOSPC:     # the log was cut: report the original failure
                err = first.errno or err
            raise VerifierError(err, hint=hint_for("BPF_PROG_LOAD", err),
                                log=log_text) from None
    raise AssertionError("unreachable")  # pragma: no cover


class TestRunResult(NamedTuple):
    """What ``BPF_PROG_TEST_RUN`` reports: the program's 32-bit return value, the mean
    run time in nanoseconds, and the output packet and context."""

    retval: int
    duration: int
    data_out: bytes
    ctx_out: bytes

    __test__ = False


def prog_test_run(prog_fd: FdLike, data_in: bytes = b"", *, repeat: int = 1,
                  data_out_size: Optional[int] = None, ctx_in: Optional[bytes] = None,
                  ctx_out_size: int = 0, flags: int = 0, cpu: int = 0) -> TestRunResult:
    """Run a loaded program once (or ``repeat`` times) on ``data_in`` in the kernel.

    ``data_out_size`` defaults to room for the input plus 256 bytes (XDP programs may
    grow the packet). Supported for socket filter, tc, XDP, flow dissector, raw
    tracepoint, syscall and some tracing programs; an XDP program needs at least 14
    bytes (an Ethernet header) of input.
    """
    din = ctypes.create_string_buffer(bytes(data_in), len(data_in)) if data_in else None
    out_len = len(data_in) + 256 if data_out_size is None else data_out_size
    dout = ctypes.create_string_buffer(out_len) if out_len else None
    cin = ctypes.create_string_buffer(bytes(ctx_in), len(ctx_in)) if ctx_in else None
    cout = ctypes.create_string_buffer(ctx_out_size) if ctx_out_size else None
    attr = TestRunAttr(prog_fd=fd_number(prog_fd), data_size_in=len(data_in),
                       data_size_out=out_len, data_in=_addr(din), data_out=_addr(dout),
                       repeat=repeat, ctx_size_in=len(ctx_in) if ctx_in else 0,
                       ctx_size_out=ctx_out_size, ctx_in=_addr(cin), ctx_out=_addr(cout),
                       flags=flags, cpu=cpu)
    bpf(Cmd.PROG_TEST_RUN, attr)
    data_out = dout.raw[:min(attr.data_size_out, out_len)] if dout is not None else b""
    ctx_out = cout.raw[:min(attr.ctx_size_out, ctx_out_size)] if cout is not None else b""
    return TestRunResult(attr.retval, attr.duration, data_out, ctx_out)
