"""``perf_event_open()`` through ctypes: the attribute structure, the event types, the
ioctls and a few attribute builders.

The API is deliberately small and stable (the attach layer and the perf buffer reader
both build on it):

* :class:`PerfEventAttr`: ``struct perf_event_attr`` as in ``linux/perf_event.h``, up to
  ``config3`` (``PERF_ATTR_SIZE_VER8``, Linux 6.3); older kernels accept it as long as
  the fields they do not know are zero;
* :func:`perf_event_open`: open an event, return an owned :class:`~pybpf.syscall.fd.FD`;
* :func:`enable`, :func:`disable`, :func:`reset`, :func:`set_bpf`, :func:`query_bpf`,
  :func:`set_output`, :func:`pause_output`, :func:`event_id`: the ioctls;
* :func:`software_attr`, :func:`hardware_attr`, :func:`tracepoint_attr`,
  :func:`bpf_output_attr`, :func:`probe_attr`: ready-made attributes;
* :func:`pmu_type` and :func:`pmu_format`: dynamic PMUs (``kprobe``, ``uprobe``) from
  ``/sys/bus/event_source/devices``.

Errors are :class:`~pybpf.syscall.errors.BPFError` (an :class:`OSError`) with
``command == "perf_event_open"`` and a hint;
:class:`~pybpf.syscall.errors.NotSupportedError` when the event does not exist on this
machine (no hardware PMU, an unknown software counter);
:class:`~pybpf.syscall.errors.BPFPermissionError` for ``EPERM``/``EACCES``.
"""

from __future__ import annotations

import ctypes
import enum
import errno as _errno
import os
from typing import Any, List, Optional, Tuple

from .._enum import enum_of
from .bpf import syscall_number
from .errors import BPFError, BPFPermissionError, NotSupportedError
from .fd import FD, FdLike, fd_number

__all__ = [
    "PerfEventAttr", "PerfEventQueryBpf", "PerfType", "HwId", "SwId", "SampleType",
    "ReadFormat", "PERF_FLAG_FD_NO_GROUP", "PERF_FLAG_FD_OUTPUT", "PERF_FLAG_PID_CGROUP",
    "PERF_FLAG_FD_CLOEXEC", "PERF_ATTR_SIZE", "IOC_ENABLE", "IOC_DISABLE", "IOC_REFRESH",
    "IOC_RESET", "IOC_PERIOD", "IOC_SET_OUTPUT", "IOC_SET_FILTER", "IOC_ID", "IOC_SET_BPF",
    "IOC_PAUSE_OUTPUT", "IOC_QUERY_BPF", "perf_event_open", "perf_ioctl", "enable",
    "disable", "reset", "set_bpf", "query_bpf", "set_output", "pause_output", "event_id",
    "software_attr", "hardware_attr", "tracepoint_attr", "bpf_output_attr", "probe_attr",
    "pmu_type", "pmu_format", "PMU_ROOT",
]

_u16 = ctypes.c_uint16
_u32 = ctypes.c_uint32
_s32 = ctypes.c_int32
_u64 = ctypes.c_uint64


@enum_of(enum.IntEnum)
class PerfType:
    """``enum perf_type_id``: ``attr.type``. Dynamic PMUs (kprobe, uprobe) have numbers
    read from sysfs (:func:`pmu_type`)."""

    HARDWARE = 0
    SOFTWARE = 1
    TRACEPOINT = 2
    HW_CACHE = 3
    RAW = 4
    BREAKPOINT = 5


@enum_of(enum.IntEnum)
class HwId:
    """``enum perf_hw_id``: ``attr.config`` of ``PerfType.HARDWARE`` events."""

    CPU_CYCLES = 0
    INSTRUCTIONS = 1
    CACHE_REFERENCES = 2
    CACHE_MISSES = 3
    BRANCH_INSTRUCTIONS = 4
    BRANCH_MISSES = 5
    BUS_CYCLES = 6
    STALLED_CYCLES_FRONTEND = 7
    STALLED_CYCLES_BACKEND = 8
    REF_CPU_CYCLES = 9


@enum_of(enum.IntEnum)
class SwId:
    """``enum perf_sw_ids``: ``attr.config`` of ``PerfType.SOFTWARE`` events
    (``BPF_OUTPUT`` Linux 4.4, ``CGROUP_SWITCHES`` 5.13)."""

    CPU_CLOCK = 0
    TASK_CLOCK = 1
    PAGE_FAULTS = 2
    CONTEXT_SWITCHES = 3
    CPU_MIGRATIONS = 4
    PAGE_FAULTS_MIN = 5
    PAGE_FAULTS_MAJ = 6
    ALIGNMENT_FAULTS = 7
    EMULATION_FAULTS = 8
    DUMMY = 9
    BPF_OUTPUT = 10
    CGROUP_SWITCHES = 11


@enum_of(enum.IntFlag)
class SampleType:
    """``enum perf_event_sample_format``: ``attr.sample_type``, what each sample record
    holds."""

    IP = 1 << 0
    TID = 1 << 1
    TIME = 1 << 2
    ADDR = 1 << 3
    READ = 1 << 4
    CALLCHAIN = 1 << 5
    ID = 1 << 6
    CPU = 1 << 7
    PERIOD = 1 << 8
    STREAM_ID = 1 << 9
    RAW = 1 << 10
    BRANCH_STACK = 1 << 11
    REGS_USER = 1 << 12
    STACK_USER = 1 << 13
    WEIGHT = 1 << 14
    DATA_SRC = 1 << 15
    IDENTIFIER = 1 << 16
    TRANSACTION = 1 << 17
    REGS_INTR = 1 << 18
    PHYS_ADDR = 1 << 19
    AUX = 1 << 20
    CGROUP = 1 << 21
    DATA_PAGE_SIZE = 1 << 22
    CODE_PAGE_SIZE = 1 << 23
    WEIGHT_STRUCT = 1 << 24


@enum_of(enum.IntFlag)
class ReadFormat:
    """``enum perf_event_read_format``: ``attr.read_format``, what ``read()`` returns."""

    TOTAL_TIME_ENABLED = 1 << 0
    TOTAL_TIME_RUNNING = 1 << 1
    ID = 1 << 2
    GROUP = 1 << 3
    LOST = 1 << 4


#: ``flags`` of ``perf_event_open``
PERF_FLAG_FD_NO_GROUP = 1 << 0
PERF_FLAG_FD_OUTPUT = 1 << 1
PERF_FLAG_PID_CGROUP = 1 << 2      #: ``pid`` is a cgroup directory fd (per-CPU mode only)
PERF_FLAG_FD_CLOEXEC = 1 << 3      #: Linux 3.14


class PerfEventAttr(ctypes.Structure):
    """``struct perf_event_attr`` (136 bytes: ``PERF_ATTR_SIZE_VER8``).

    The unions are anonymous: ``sample_period``/``sample_freq``,
    ``wakeup_events``/``wakeup_watermark``, ``config1`` (also ``bp_addr``,
    ``kprobe_func``, ``uprobe_path``) and ``config2`` (also ``bp_len``,
    ``kprobe_addr``, ``probe_offset``). The one-bit flags are bitfields of one 64-bit
    word. A ``size`` of 0 is sent as the structure's size. ``sig_data`` is Linux 5.13,
    ``config3`` 6.3, ``aux_action`` 6.13.
    """

    _c_name_ = "struct perf_event_attr"
    _newer_fields_ = {"aux_action": (6, 13), "config3": (6, 3)}

    class _Period(ctypes.Union):
        _fields_ = [("sample_period", _u64), ("sample_freq", _u64)]

    class _Wakeup(ctypes.Union):
        _fields_ = [("wakeup_events", _u32), ("wakeup_watermark", _u32)]

    class _Config1(ctypes.Union):
        _fields_ = [("bp_addr", _u64), ("kprobe_func", _u64), ("uprobe_path", _u64),
                    ("config1", _u64)]

    class _Config2(ctypes.Union):
        _fields_ = [("bp_len", _u64), ("kprobe_addr", _u64), ("probe_offset", _u64),
                    ("config2", _u64)]

    _anonymous_ = ("_period", "_wakeup", "_config1", "_config2")
    _fields_ = [
        ("type", _u32),
        ("size", _u32),
        ("config", _u64),
        ("_period", _Period),
        ("sample_type", _u64),
        ("read_format", _u64),
        ("disabled", _u64, 1),
        ("inherit", _u64, 1),
        ("pinned", _u64, 1),
        ("exclusive", _u64, 1),
        ("exclude_user", _u64, 1),
        ("exclude_kernel", _u64, 1),
        ("exclude_hv", _u64, 1),
        ("exclude_idle", _u64, 1),
        ("mmap", _u64, 1),
        ("comm", _u64, 1),
        ("freq", _u64, 1),
        ("inherit_stat", _u64, 1),
        ("enable_on_exec", _u64, 1),
        ("task", _u64, 1),
        ("watermark", _u64, 1),
        ("precise_ip", _u64, 2),
        ("mmap_data", _u64, 1),
        ("sample_id_all", _u64, 1),
        ("exclude_host", _u64, 1),
        ("exclude_guest", _u64, 1),
        ("exclude_callchain_kernel", _u64, 1),
        ("exclude_callchain_user", _u64, 1),
        ("mmap2", _u64, 1),
        ("comm_exec", _u64, 1),
        ("use_clockid", _u64, 1),
        ("context_switch", _u64, 1),
        ("write_backward", _u64, 1),
        ("namespaces", _u64, 1),
        ("ksymbol", _u64, 1),
        ("bpf_event", _u64, 1),
        ("aux_output", _u64, 1),
        ("cgroup", _u64, 1),
        ("text_poke", _u64, 1),
        ("build_id", _u64, 1),
        ("inherit_thread", _u64, 1),
        ("remove_on_exec", _u64, 1),
        ("sigtrap", _u64, 1),
        ("_reserved_1", _u64, 26),
        ("_wakeup", _Wakeup),
        ("bp_type", _u32),
        ("_config1", _Config1),
        ("_config2", _Config2),
        ("branch_sample_type", _u64),
        ("sample_regs_user", _u64),
        ("sample_stack_user", _u32),
        ("clockid", _s32),
        ("sample_regs_intr", _u64),
        ("aux_watermark", _u32),
        ("sample_max_stack", _u16),
        ("_reserved_2", _u16),
        ("aux_sample_size", _u32),
        ("aux_action", _u32),
        ("sig_data", _u64),
        ("config3", _u64),
    ]


#: ``sizeof(struct perf_event_attr)`` as pybpf knows it
PERF_ATTR_SIZE = ctypes.sizeof(PerfEventAttr)


class PerfEventQueryBpf(ctypes.Structure):
    """``struct perf_event_query_bpf`` without its flexible ``ids`` array (which
    :func:`query_bpf` allocates behind it)."""

    _c_name_ = "struct perf_event_query_bpf"
    _fields_ = [("ids_len", _u32), ("prog_cnt", _u32)]


# ---------------------------------------------------------------------------------------
# ioctl numbers
# ---------------------------------------------------------------------------------------

def _ioc_layout() -> Tuple[int, int, int, int]:
    """(none, write, read, size bits) of the ioctl encoding on this architecture."""
    machine = os.uname().machine
    if machine.startswith(("ppc", "mips", "sparc")):
        return 1, 4, 2, 13
    return 0, 1, 2, 14


def _ioc(direction: str, nr: int, size: int) -> int:
    none, write, read, size_bits = _ioc_layout()
    bits = {"": none, "w": write, "r": read, "rw": read | write}[direction]
    return (bits << (8 + 8 + size_bits)) | (size << 16) | (ord("$") << 8) | nr


_PTR = ctypes.sizeof(ctypes.c_void_p)
IOC_ENABLE = _ioc("", 0, 0)
IOC_DISABLE = _ioc("", 1, 0)
IOC_REFRESH = _ioc("", 2, 0)
IOC_RESET = _ioc("", 3, 0)
IOC_PERIOD = _ioc("w", 4, 8)
IOC_SET_OUTPUT = _ioc("", 5, 0)
IOC_SET_FILTER = _ioc("w", 6, _PTR)
IOC_ID = _ioc("r", 7, _PTR)
IOC_SET_BPF = _ioc("w", 8, 4)                 #: Linux 4.1
IOC_PAUSE_OUTPUT = _ioc("w", 9, 4)            #: Linux 4.7
IOC_QUERY_BPF = _ioc("rw", 10, _PTR)          #: Linux 4.16


# ---------------------------------------------------------------------------------------
# The system call and the ioctls
# ---------------------------------------------------------------------------------------

_libc: Optional[ctypes.CDLL] = None


def _lib() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        lib = ctypes.CDLL(None, use_errno=True)
        lib.syscall.restype = ctypes.c_long
        lib.ioctl.restype = ctypes.c_int
        lib.ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p]
        _libc = lib
    return _libc


_HINTS = {
    _errno.ENOENT: "no such event: the type or config is unknown to this kernel, or the "
                   "probed function/file does not exist",
    _errno.ENODEV: "the event's PMU is not available on this CPU",
    _errno.EOPNOTSUPP: "this machine or event does not support the requested mode "
                       "(e.g. sampling on a counter-only PMU)",
    _errno.EINVAL: "an attribute field is invalid for this event type",
    _errno.E2BIG: "the attribute has fields this kernel does not know",
    _errno.EMFILE: "too many open files (raise RLIMIT_NOFILE)",
    _errno.EBUSY: "the PMU is in exclusive use by another event",
    _errno.ESRCH: "no such process",
    _errno.EBADF: "group_fd or the cgroup fd is not valid",
}


def _perm_hint() -> str:
    try:
        with open("/proc/sys/kernel/perf_event_paranoid", encoding="ascii") as fh:
            paranoid = fh.read().strip()
    except OSError:
        paranoid = "?"
    return (f"needs root or CAP_PERFMON (kernel.perf_event_paranoid={paranoid}); "
            f"system-wide and kernel events need more than per-process ones")


def _raise(err: int, attr: Optional[PerfEventAttr]) -> None:
    what = ""
    if attr is not None:
        try:
            what = f" (type {PerfType(attr.type).name}, config {attr.config:#x})"
        except ValueError:
            what = f" (type {attr.type}, config {attr.config:#x})"
    if err in (_errno.EPERM, _errno.EACCES):
        raise BPFPermissionError(err, os.strerror(err) + what, command="perf_event_open",
                                 hint=_perm_hint())
    if attr is not None and err in (_errno.ENOENT, _errno.EOPNOTSUPP, _errno.ENODEV) and \
            attr.type in (PerfType.HARDWARE, PerfType.HW_CACHE, PerfType.RAW):
        raise NotSupportedError("hardware performance counters", errnum=err,
                                command="perf_event_open",
                                detail=f"this machine has no usable PMU for the event"
                                       f"{what} ({_errno.errorcode.get(err, err)})")
    if attr is not None and err == _errno.ENOENT and attr.type == PerfType.SOFTWARE:
        raise NotSupportedError(f"software event {attr.config}", errnum=err,
                                command="perf_event_open")
    raise BPFError(err, os.strerror(err) + what, command="perf_event_open",
                   hint=_HINTS.get(err, ""))


def perf_event_open(attr: PerfEventAttr, pid: int = -1, cpu: int = 0, group_fd: int = -1,
                    flags: int = PERF_FLAG_FD_CLOEXEC) -> FD:
    """Open a perf event (``perf_event_open(2)``, Linux 2.6.31) and return its owned
    descriptor (kind ``"perf_event"``).

    ``pid`` -1 with a ``cpu`` counts every task on that CPU; a ``pid`` with ``cpu`` -1
    follows that task on every CPU. Tracepoint, kprobe and uprobe events run an attached
    BPF program on every CPU whatever ``cpu`` says, so the attach layer uses ``pid=-1,
    cpu=0`` for them. ``EINTR`` is retried; if the kernel is older than the structure
    (``E2BIG``) and the fields it does not know are zero, the call is repeated with the
    size the kernel reported.
    """
    lib = _lib()
    nr = syscall_number("perf_event_open")
    if attr.size == 0:
        attr.size = PERF_ATTR_SIZE
    for _ in range(3):
        ret = lib.syscall(ctypes.c_long(nr), ctypes.byref(attr), ctypes.c_long(pid),
                          ctypes.c_long(cpu), ctypes.c_long(group_fd),
                          ctypes.c_ulong(flags))
        if ret >= 0:
            return FD(int(ret), "perf_event")
        err = ctypes.get_errno()
        if err == _errno.EINTR:
            continue
        if err == _errno.E2BIG and 0 < attr.size < PERF_ATTR_SIZE and \
                not any(bytes(attr)[attr.size:]):
            continue               # the kernel wrote its own size into attr.size
        _raise(err, attr)
    _raise(_errno.EINTR, attr)
    raise AssertionError("unreachable")  # pragma: no cover


def perf_ioctl(fd: FdLike, request: int, arg: Any = 0) -> int:
    """``ioctl(fd, request, arg)`` on a perf event; ``arg`` is an int or a ctypes object
    (passed by reference). Raises :class:`~pybpf.syscall.errors.BPFError`."""
    lib = _lib()
    if isinstance(arg, int):
        ptr: Any = ctypes.c_void_p(arg)
    else:
        ptr = ctypes.cast(ctypes.byref(arg), ctypes.c_void_p)
    while True:
        ret = lib.ioctl(fd_number(fd), request, ptr)
        if ret >= 0:
            return int(ret)
        err = ctypes.get_errno()
        if err != _errno.EINTR:
            cls = BPFPermissionError if err in (_errno.EPERM, _errno.EACCES) else BPFError
            raise cls(err, os.strerror(err), command=f"perf ioctl {request:#x}",
                      hint=_HINTS.get(err, ""))


def enable(fd: FdLike) -> None:
    """Start counting/sampling (``PERF_EVENT_IOC_ENABLE``)."""
    perf_ioctl(fd, IOC_ENABLE)


def disable(fd: FdLike) -> None:
    """Stop counting/sampling (``PERF_EVENT_IOC_DISABLE``)."""
    perf_ioctl(fd, IOC_DISABLE)


def reset(fd: FdLike) -> None:
    """Set the count to zero (``PERF_EVENT_IOC_RESET``)."""
    perf_ioctl(fd, IOC_RESET)


def set_bpf(fd: FdLike, prog_fd: FdLike) -> None:
    """Attach a BPF program to the event (``PERF_EVENT_IOC_SET_BPF``, Linux 4.1): kprobe,
    uprobe and tracepoint events take kprobe/tracepoint programs, software and hardware
    events (4.9) perf_event programs. Closing the event detaches it."""
    perf_ioctl(fd, IOC_SET_BPF, fd_number(prog_fd))


def query_bpf(fd: FdLike, max_ids: int = 64) -> List[int]:
    """The ids of the programs attached to a tracing event (``PERF_EVENT_IOC_QUERY_BPF``,
    Linux 4.16). Returns at most ``max_ids`` of them."""
    buf = (ctypes.c_uint8 * (ctypes.sizeof(PerfEventQueryBpf) + 4 * max_ids))()
    head = PerfEventQueryBpf.from_buffer(buf)
    head.ids_len = max_ids
    perf_ioctl(fd, IOC_QUERY_BPF, buf)
    ids = (_u32 * max_ids).from_buffer(buf, ctypes.sizeof(PerfEventQueryBpf))
    return list(ids[:min(head.prog_cnt, max_ids)])


def set_output(fd: FdLike, target_fd: Optional[FdLike]) -> None:
    """Send this event's records to ``target_fd``'s ring buffer (or stop, with None):
    ``PERF_EVENT_IOC_SET_OUTPUT``."""
    perf_ioctl(fd, IOC_SET_OUTPUT, fd_number(target_fd) if target_fd is not None else -1)


def pause_output(fd: FdLike, paused: bool = True) -> None:
    """Pause or resume writing to the event's ring buffer (``PERF_EVENT_IOC_PAUSE_OUTPUT``,
    Linux 4.7)."""
    perf_ioctl(fd, IOC_PAUSE_OUTPUT, 1 if paused else 0)   # the value, not a pointer


def event_id(fd: FdLike) -> int:
    """The event's unique id (``PERF_EVENT_IOC_ID``), as in sample records with
    ``SampleType.ID``."""
    value = ctypes.c_uint64()
    perf_ioctl(fd, IOC_ID, value)
    return value.value


# ---------------------------------------------------------------------------------------
# Attribute builders
# ---------------------------------------------------------------------------------------

def _sampling(attr: PerfEventAttr, sample_period: Optional[int],
              sample_freq: Optional[int]) -> PerfEventAttr:
    if sample_period is not None and sample_freq is not None:
        raise ValueError("give sample_period or sample_freq, not both")
    if sample_freq is not None:
        if sample_freq <= 0:
            raise ValueError(f"sample_freq must be positive, not {sample_freq}")
        attr.freq = 1
        attr.sample_freq = sample_freq
    elif sample_period is not None:
        if sample_period < 0:
            raise ValueError(f"sample_period must not be negative, not {sample_period}")
        attr.sample_period = sample_period
    return attr


def software_attr(config: int = SwId.CPU_CLOCK, *, sample_period: Optional[int] = None,
                  sample_freq: Optional[int] = None, disabled: bool = True,
                  sample_type: int = 0) -> PerfEventAttr:
    """A software event (``PerfType.SOFTWARE``): a counter, or a sampling event with
    ``sample_period`` (every N events; for clocks N nanoseconds) or ``sample_freq``
    (N samples a second, the kernel adapts the period)."""
    attr = PerfEventAttr(type=PerfType.SOFTWARE, config=config, sample_type=sample_type,
                         disabled=int(disabled))
    return _sampling(attr, sample_period, sample_freq)


def hardware_attr(config: int = HwId.CPU_CYCLES, *, sample_period: Optional[int] = None,
                  sample_freq: Optional[int] = None, disabled: bool = True,
                  exclude_kernel: bool = False, sample_type: int = 0) -> PerfEventAttr:
    """A hardware event (``PerfType.HARDWARE``): needs a CPU PMU, which virtual machines
    often lack (:func:`perf_event_open` then raises
    :class:`~pybpf.syscall.errors.NotSupportedError`)."""
    attr = PerfEventAttr(type=PerfType.HARDWARE, config=config, sample_type=sample_type,
                         disabled=int(disabled), exclude_kernel=int(exclude_kernel))
    return _sampling(attr, sample_period, sample_freq)


def tracepoint_attr(tracepoint_id: int, *, disabled: bool = True) -> PerfEventAttr:
    """A tracepoint event: ``tracepoint_id`` is the ``id`` file of the event in tracefs.
    One sample per hit (``sample_period`` 1) with the raw record."""
    return PerfEventAttr(type=PerfType.TRACEPOINT, config=tracepoint_id, sample_period=1,
                         sample_type=SampleType.RAW, wakeup_events=1,
                         disabled=int(disabled))


def bpf_output_attr() -> PerfEventAttr:
    """The event behind each slot of a ``PERF_EVENT_ARRAY`` used as a perf buffer:
    ``SwId.BPF_OUTPUT`` (Linux 4.4), raw samples, a wake-up per sample."""
    return PerfEventAttr(type=PerfType.SOFTWARE, config=SwId.BPF_OUTPUT, sample_period=1,
                         sample_type=SampleType.RAW, wakeup_events=1)


def probe_attr(pmu: int, *, name: Optional[bytes] = None, addr_or_offset: int = 0,
               config: int = 0, disabled: bool = True) -> PerfEventAttr:
    """A kprobe or uprobe event on a dynamic PMU (``pmu`` from :func:`pmu_type`,
    Linux 4.17): ``name`` is the kernel function or the file path (kept alive in the
    returned structure's ``_keep``), ``addr_or_offset`` the address or offset
    (``config2``) and ``config`` the PMU's flag bits (retprobe, ref_ctr_offset)."""
    attr = PerfEventAttr(type=pmu, config=config, sample_period=1, wakeup_events=1,
                         disabled=int(disabled))
    if name is not None:
        buf = ctypes.create_string_buffer(name)
        attr._keep = buf           # type: ignore[attr-defined]  # the pointer's target
        attr.config1 = ctypes.addressof(buf)
    attr.config2 = addr_or_offset
    return attr


#: where the kernel lists its PMUs
PMU_ROOT = "/sys/bus/event_source/devices"


def pmu_type(name: str) -> Optional[int]:
    """The ``attr.type`` of PMU ``name`` (``"kprobe"``, ``"uprobe"``, ``"cpu"``), or None
    if this kernel has no such PMU."""
    try:
        with open(f"{PMU_ROOT}/{name}/type", encoding="ascii") as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return None


def pmu_format(pmu: str, field: str) -> Optional[Tuple[str, int, int]]:
    """Where PMU ``pmu`` keeps format field ``field``: ``(attr field, first bit, width)``
    from ``.../format/<field>`` (``"config:0"`` -> ``("config", 0, 1)``,
    ``"config:32-63"`` -> ``("config", 32, 32)``), or None."""
    try:
        with open(f"{PMU_ROOT}/{pmu}/format/{field}", encoding="ascii") as fh:
            text = fh.read().strip()
    except OSError:
        return None
    try:
        where, bits = text.split(":", 1)
        lo, _, hi = bits.partition("-")
        first = int(lo)
        return where, first, (int(hi) - first + 1) if hi else 1
    except ValueError:
        return None
