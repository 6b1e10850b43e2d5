"""Program, link, BTF and statistics commands of ``bpf()``.

One function per command, taking and returning Python values; every descriptor created
is returned as an owned :class:`~pybpf.syscall.fd.FD`:

* :func:`prog_load` (``BPF_PROG_LOAD``, with the full attribute set and the verifier-log
  retry), :func:`prog_load_logged` (always with a log), :func:`prog_test_run`;
* :func:`prog_attach`, :func:`prog_detach` (the pre-link attachment), :func:`prog_bind_map`;
* :func:`raw_tracepoint_open`, :func:`link_create`, :func:`link_update`,
  :func:`link_detach`, :func:`iter_create`;
* :func:`enable_stats`;
* :func:`btf_load`.

This module takes program code as bytes; turning instructions into bytes is the job of
the layer above (:mod:`pybpf.program`). It depends on the standard library only.
"""

from __future__ import annotations

import ctypes
import errno as _errno
from typing import Callable, List, NamedTuple, Optional, Sequence, Tuple

from .bpf import (
    PROG_TYPE_SINCE, AttachType, Cmd, ProgType, StatsType, addr_of, bpf, kernel_at_least,
    linux_version_code, name_bytes,
)
from .errors import NotSupportedError, VerifierError, hint_for, summarize_log
from .fd import FD, FdLike, fd_number

__all__ = [
    "ProgLoadAttr", "TestRunAttr", "RawTracepointOpenAttr", "LinkCreateAttr",
    "LinkUpdateAttr", "LinkDetachAttr", "EnableStatsAttr", "BtfLoadAttr", "ProgAttachAttr",
    "ProgBindMapAttr", "IterCreateAttr", "prog_load", "prog_load_logged", "LOG_START_SIZE",
    "LOG_MAX_SIZE", "LOG_SIZES", "prog_test_run", "TestRunResult", "TestRunFlags",
    "prog_attach", "prog_detach", "prog_bind_map", "raw_tracepoint_open", "link_create",
    "KprobeMulti", "UprobeMulti", "Netfilter", "link_update", "link_detach", "iter_create",
    "enable_stats", "btf_load", "btf_load_optional", "KPROBE_MULTI_RETURN", "ENOTSUPP",
]

_u32 = ctypes.c_uint32
_s32 = ctypes.c_int32
_u64 = ctypes.c_uint64

#: the kernel-internal "operation not supported" errno (524), which some commands let
#: reach user space (test runs of unsupported program types, struct_ops probes)
ENOTSUPP = 524

#: ``kprobe_multi.flags``: attach as a return probe
KPROBE_MULTI_RETURN = 1


# ---------------------------------------------------------------------------------------
# Attribute layouts (members of union bpf_attr)
# ---------------------------------------------------------------------------------------

class _AttachProgOrBtfObj(ctypes.Union):
    _fields_ = [("attach_prog_fd", _u32), ("attach_btf_obj_fd", _u32)]


class ProgLoadAttr(ctypes.Structure):
    """``union bpf_attr`` as used by ``BPF_PROG_LOAD``. Pointers (``insns``,
    ``license``, ``log_buf``, ``func_info``, ``fd_array``, ...) are user-space addresses.

    ``log_true_size`` (Linux 6.4) is written by the kernel: the log size the verifier
    needed. ``prog_token_fd`` is Linux 6.9, ``fd_array_cnt`` Linux 6.13.
    """

    _c_name_ = "union bpf_attr"
    _newer_fields_ = {"log_true_size": (6, 4), "prog_token_fd": (6, 9),
                      "fd_array_cnt": (6, 13)}
    _field_since_ = {"prog_ifindex": (4, 15), "expected_attach_type": (4, 17),
                     "prog_btf_fd": (5, 0), "func_info": (5, 0), "line_info": (5, 0),
                     "attach_btf_id": (5, 5), "attach_prog_fd": (5, 5),
                     "attach_btf_obj_fd": (5, 11), "fd_array": (5, 14),
                     "core_relos": (5, 17)}
    _anonymous_ = ("_attach",)
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
        ("prog_name", ctypes.c_char * 16),
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
        ("_attach", _AttachProgOrBtfObj),
        ("core_relo_cnt", _u32),
        ("fd_array", _u64),
        ("core_relos", _u64),
        ("core_relo_rec_size", _u32),
        ("log_true_size", _u32),
        ("prog_token_fd", _s32),
        ("fd_array_cnt", _u32),
    ]


class TestRunAttr(ctypes.Structure):
    """``union bpf_attr`` member ``test``, used by ``BPF_PROG_TEST_RUN`` (Linux 4.12;
    ``ctx_*`` 5.2, ``flags``/``cpu`` 5.10, ``batch_size`` 5.18)."""

    _c_name_ = "union bpf_attr"
    _c_member_ = "test"
    _field_since_ = {"ctx_in": (5, 2), "ctx_out": (5, 2), "flags": (5, 10), "cpu": (5, 10),
                     "batch_size": (5, 18)}
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


class RawTracepointOpenAttr(ctypes.Structure):
    """``union bpf_attr`` member ``raw_tracepoint`` (``BPF_RAW_TRACEPOINT_OPEN``, Linux
    4.17; ``cookie`` Linux 6.10)."""

    _c_name_ = "union bpf_attr"
    _c_member_ = "raw_tracepoint"
    _newer_fields_ = {"cookie": (6, 10)}
    _fields_ = [
        ("name", _u64),
        ("prog_fd", _u32),
        ("_pad0", _u32),
        ("cookie", _u64),
    ]


class _ProgOrMapFd(ctypes.Union):
    _newer_fields_ = {"map_fd": (6, 4)}
    _fields_ = [("prog_fd", _u32), ("map_fd", _u32)]


class _TargetFdOrIfindex(ctypes.Union):
    _fields_ = [("target_fd", _u32), ("target_ifindex", _u32)]


class _RelativeFdOrId(ctypes.Union):
    _fields_ = [("relative_fd", _u32), ("relative_id", _u32)]


class _LinkIter(ctypes.Structure):
    _fields_ = [("iter_info", _u64), ("iter_info_len", _u32), ("_pad0", _u32)]


class _LinkPerfEvent(ctypes.Structure):
    _fields_ = [("bpf_cookie", _u64)]


class _LinkKprobeMulti(ctypes.Structure):
    _fields_ = [("flags", _u32), ("cnt", _u32), ("syms", _u64), ("addrs", _u64),
                ("cookies", _u64)]


class _LinkTracing(ctypes.Structure):
    _fields_ = [("target_btf_id", _u32), ("_pad0", _u32), ("cookie", _u64)]


class _LinkNetfilter(ctypes.Structure):
    _fields_ = [("pf", _u32), ("hooknum", _u32), ("priority", _s32), ("flags", _u32)]


class _LinkRelative(ctypes.Structure):
    """The ``tcx`` and ``netkit`` members: position relative to another program."""

    _anonymous_ = ("_rel",)
    _fields_ = [("_rel", _RelativeFdOrId), ("_pad0", _u32), ("expected_revision", _u64)]


class _LinkUprobeMulti(ctypes.Structure):
    _fields_ = [("path", _u64), ("offsets", _u64), ("ref_ctr_offsets", _u64),
                ("cookies", _u64), ("cnt", _u32), ("flags", _u32), ("pid", _u32),
                ("_pad0", _u32)]


class _LinkTargetInfo(ctypes.Union):
    _newer_fields_ = {"netfilter": (6, 4), "tcx": (6, 6), "uprobe_multi": (6, 6),
                      "netkit": (6, 7)}
    _anonymous_ = ("_iter",)
    _fields_ = [
        ("target_btf_id", _u32),
        ("_iter", _LinkIter),
        ("perf_event", _LinkPerfEvent),
        ("kprobe_multi", _LinkKprobeMulti),
        ("tracing", _LinkTracing),
        ("netfilter", _LinkNetfilter),
        ("tcx", _LinkRelative),
        ("uprobe_multi", _LinkUprobeMulti),
        ("netkit", _LinkRelative),
    ]


class LinkCreateAttr(ctypes.Structure):
    """``union bpf_attr`` member ``link_create`` (``BPF_LINK_CREATE``, Linux 5.7).

    The union after ``flags`` holds the per-attach-type arguments: ``target_btf_id``
    (freplace, 5.10), ``iter_info`` (5.9), ``perf_event.bpf_cookie`` (5.15),
    ``kprobe_multi`` (5.18), ``tracing.cookie`` (5.19), ``netfilter`` (6.4), ``tcx``
    (6.6), ``uprobe_multi`` (6.6), ``netkit`` (6.7).
    """

    _c_name_ = "union bpf_attr"
    _c_member_ = "link_create"
    _anonymous_ = ("_prog", "_target", "_info")
    _fields_ = [
        ("_prog", _ProgOrMapFd),
        ("_target", _TargetFdOrIfindex),
        ("attach_type", _u32),
        ("flags", _u32),
        ("_info", _LinkTargetInfo),
    ]


class LinkUpdateAttr(ctypes.Structure):
    """``union bpf_attr`` member ``link_update`` (``BPF_LINK_UPDATE``, Linux 5.7)."""

    _c_name_ = "union bpf_attr"
    _c_member_ = "link_update"
    _fields_ = [("link_fd", _u32), ("new_prog_fd", _u32), ("flags", _u32),
                ("old_prog_fd", _u32)]


class LinkDetachAttr(ctypes.Structure):
    """``union bpf_attr`` member ``link_detach`` (``BPF_LINK_DETACH``, Linux 5.9)."""

    _c_name_ = "union bpf_attr"
    _c_member_ = "link_detach"
    _fields_ = [("link_fd", _u32)]


class IterCreateAttr(ctypes.Structure):
    """``union bpf_attr`` member ``iter_create`` (``BPF_ITER_CREATE``, Linux 5.8)."""

    _c_name_ = "union bpf_attr"
    _c_member_ = "iter_create"
    _fields_ = [("link_fd", _u32), ("flags", _u32)]


class EnableStatsAttr(ctypes.Structure):
    """``union bpf_attr`` member ``enable_stats`` (``BPF_ENABLE_STATS``, Linux 5.8)."""

    _c_name_ = "union bpf_attr"
    _c_member_ = "enable_stats"
    _fields_ = [("type", _u32)]


class ProgBindMapAttr(ctypes.Structure):
    """``union bpf_attr`` member ``prog_bind_map`` (``BPF_PROG_BIND_MAP``, Linux 5.10)."""

    _c_name_ = "union bpf_attr"
    _c_member_ = "prog_bind_map"
    _fields_ = [("prog_fd", _u32), ("map_fd", _u32), ("flags", _u32)]


class ProgAttachAttr(ctypes.Structure):
    """``union bpf_attr`` as used by ``BPF_PROG_ATTACH``/``BPF_PROG_DETACH`` (Linux 4.10;
    ``replace_bpf_fd`` 5.6)."""

    _c_name_ = "union bpf_attr"
    _fields_ = [("target_fd", _u32), ("attach_bpf_fd", _u32), ("attach_type", _u32),
                ("attach_flags", _u32), ("replace_bpf_fd", _u32)]


class BtfLoadAttr(ctypes.Structure):
    """``union bpf_attr`` as used by ``BPF_BTF_LOAD`` (Linux 4.18;
    ``btf_log_true_size`` 6.4, ``btf_flags`` and ``btf_token_fd`` 6.9)."""

    _c_name_ = "union bpf_attr"
    _newer_fields_ = {"btf_log_true_size": (6, 4), "btf_flags": (6, 9),
                      "btf_token_fd": (6, 9)}
    _fields_ = [
        ("btf", _u64),
        ("btf_log_buf", _u64),
        ("btf_size", _u32),
        ("btf_log_size", _u32),
        ("btf_log_level", _u32),
        ("btf_log_true_size", _u32),
        ("btf_flags", _u32),
        ("btf_token_fd", _s32),
    ]


# ---------------------------------------------------------------------------------------
# BPF_PROG_LOAD
# ---------------------------------------------------------------------------------------

#: first verifier log buffer size tried after a failed load
LOG_START_SIZE = 64 * 1024
#: the largest log buffer :func:`prog_load` grows to (the kernel accepts up to 1 GiB
#: since 5.2, 16 MiB before)
LOG_MAX_SIZE = 256 * 1024 * 1024
#: kept for callers of the first version of this module: the old fixed sizes
LOG_SIZES = (1 << 20, 1 << 24)

_EAGAIN_RETRIES = 5


def _log_limit() -> int:
    return LOG_MAX_SIZE if kernel_at_least(5, 2) else (1 << 24) - 1


def _buffer(data: bytes) -> Optional[ctypes.Array]:
    return ctypes.create_string_buffer(bytes(data), len(data)) if data else None


class _LoadRequest:
    """The buffers and attribute of one program load, kept alive across attempts."""

    def __init__(self, prog_type: int, insns: bytes, license: str, name: str,
                 expected_attach_type: int, flags: int, kern_version: Optional[int],
                 ifindex: int, btf_fd: Optional[FdLike], func_info: bytes,
                 func_info_rec_size: int, line_info: bytes, line_info_rec_size: int,
                 attach_btf_id: int, attach_prog_fd: Optional[FdLike],
                 attach_btf_obj_fd: Optional[FdLike], fd_array: Sequence[FdLike],
                 fd_array_cnt: int, token_fd: Optional[FdLike]) -> None:
        code = bytes(insns)
        if not code or len(code) % 8:
            raise ValueError(f"a program is a non-empty multiple of 8 bytes, not {len(code)}")
        if attach_prog_fd is not None and attach_btf_obj_fd is not None:
            raise ValueError("attach_prog_fd and attach_btf_obj_fd share one field: "
                             "give one")
        for what, data, rec in (("func_info", func_info, func_info_rec_size),
                                ("line_info", line_info, line_info_rec_size)):
            if data and (rec <= 0 or len(data) % rec):
                raise ValueError(f"{what} is {len(data)} bytes, not a multiple of its "
                                 f"record size {rec}")
        self.prog_type = int(prog_type)
        self._code = ctypes.create_string_buffer(code, len(code))
        self._license = ctypes.create_string_buffer(license.encode())
        self._func_info = _buffer(func_info)
        self._line_info = _buffer(line_info)
        self._fd_array = ((ctypes.c_int32 * len(fd_array))(*(fd_number(f) for f in fd_array))
                          if fd_array else None)
        if kern_version is None:
            kern_version = linux_version_code() if prog_type == ProgType.KPROBE else 0
        attr = ProgLoadAttr(
            prog_type=prog_type, insn_cnt=len(code) // 8, insns=addr_of(self._code),
            license=addr_of(self._license), kern_version=kern_version, prog_flags=flags,
            prog_name=name_bytes(name), prog_ifindex=ifindex,
            expected_attach_type=expected_attach_type, attach_btf_id=attach_btf_id,
            fd_array=addr_of(self._fd_array), fd_array_cnt=fd_array_cnt)
        if func_info or line_info:
            if btf_fd is None:
                raise ValueError("func_info and line_info need the program's BTF (btf_fd)")
        if btf_fd is not None:
            attr.prog_btf_fd = fd_number(btf_fd)
        if func_info:
            attr.func_info_rec_size = func_info_rec_size
            attr.func_info = addr_of(self._func_info)
            attr.func_info_cnt = len(func_info) // func_info_rec_size
        if line_info:
            attr.line_info_rec_size = line_info_rec_size
            attr.line_info = addr_of(self._line_info)
            attr.line_info_cnt = len(line_info) // line_info_rec_size
        if attach_prog_fd is not None:
            attr.attach_prog_fd = fd_number(attach_prog_fd)
        if attach_btf_obj_fd is not None:
            attr.attach_btf_obj_fd = fd_number(attach_btf_obj_fd)
        if token_fd is not None:
            attr.prog_token_fd = fd_number(token_fd)
        self.attr = attr

    def attempt(self, log: Optional[ctypes.Array], log_level: int) -> Tuple[int, int]:
        """Load once; returns (fd, log_true_size). Retries the verifier's EAGAIN."""
        attr = ProgLoadAttr.from_buffer_copy(self.attr)
        if log is not None:
            attr.log_level = log_level
            attr.log_size = len(log)
            attr.log_buf = addr_of(log)
        for _ in range(_EAGAIN_RETRIES):
            try:
                fd = bpf(Cmd.PROG_LOAD, attr)
                return fd, attr.log_true_size
            except OSError as exc:
                if exc.errno != _errno.EAGAIN:
                    exc.log_true_size = attr.log_true_size  # type: ignore[attr-defined]
                    raise
        fd = bpf(Cmd.PROG_LOAD, attr)
        return fd, attr.log_true_size


def _with_growing_log(attempt: Callable[[Optional[ctypes.Array], int], Tuple[int, int]],
                      log_level: int, start: int, first_errno: Optional[int],
                      command: str, log_file: Optional[str] = None) -> Tuple[int, str]:
    """Call ``attempt`` with a log buffer, growing it while the kernel says ENOSPC:
    to the size the kernel reports needing (``log_true_size``, Linux 6.4) or else twice
    the size, never past the kernel's maximum (:func:`_log_limit`). Returns (fd, log);
    raises VerifierError with the log's head and tail (the buffer is read in chunks, so
    a log of hundreds of megabytes is never copied whole) and writes the whole log to
    ``log_file`` when given."""
    size = max(start, 256)
    limit = _log_limit()
    while True:
        log = ctypes.create_string_buffer(size)
        try:
            fd, _true_size = attempt(log, log_level)
            return fd, log.value.decode(errors="replace")
        except OSError as exc:
            err = exc.errno or first_errno or _errno.EINVAL
            if isinstance(exc, NotSupportedError) or err == _errno.EPERM:
                raise
            if err == _errno.ENOSPC and size < limit:
                needed = getattr(exc, "log_true_size", 0) or 0
                size = min(limit, needed if needed > size else size * 2)
                continue
            if err == _errno.ENOSPC and first_errno:
                err = first_errno            # the log was cut: report the real failure
            text, lines, dropped = summarize_log(log, log_file)
            del log
            raise VerifierError(err, hint=hint_for(command, err), command=command,
                                log=text, log_lines=lines, log_dropped=dropped,
                                log_file=log_file or "") from None


def _unsupported_prog_type(prog_type: int, err: int, log: str) -> Optional[OSError]:
    """A NotSupportedError if the failure is most likely an unknown program type."""
    if err != _errno.EINVAL or log.strip():
        return None
    try:
        name = ProgType(prog_type).name
    except ValueError:
        return NotSupportedError(f"program type {prog_type}", errnum=err,
                                 command="BPF_PROG_LOAD", detail="not a known type")
    since = PROG_TYPE_SINCE.get(prog_type)
    if since and not kernel_at_least(*since):
        return NotSupportedError(f"program type {name}", since, errnum=err,
                                 command="BPF_PROG_LOAD")
    return None


def _load(req: _LoadRequest, log_level: int, always_log: bool,
          log_start: int, log_file: Optional[str] = None) -> Tuple[FD, str]:
    first_errno: Optional[int] = None
    if not always_log:
        try:
            fd, _ = req.attempt(None, 0)
            return FD(fd, "prog"), ""
        except OSError as exc:
            if isinstance(exc, NotSupportedError) or exc.errno == _errno.EPERM:
                raise
            first_errno = exc.errno
    try:
        fd, log = _with_growing_log(req.attempt, max(log_level, 1), log_start, first_errno,
                                    "BPF_PROG_LOAD", log_file)
    except VerifierError as exc:
        better = _unsupported_prog_type(req.prog_type, exc.errno or 0, exc.log)
        if better is not None:
            raise better from None
        if not exc.log.strip() and exc.errno == _errno.EINVAL:
            exc.hint = ("the kernel refused the load before verifying it: an unknown "
                        "program type for this kernel build, or an invalid "
                        "expected_attach_type, flag or attribute")
        raise
    return FD(fd, "prog"), log


def prog_load(prog_type: int, insns: bytes, *, license: str = "GPL", name: str = "",
              expected_attach_type: int = 0, flags: int = 0,
              kern_version: Optional[int] = None, ifindex: int = 0,
              btf_fd: Optional[FdLike] = None, func_info: bytes = b"",
              func_info_rec_size: int = 8, line_info: bytes = b"",
              line_info_rec_size: int = 16, attach_btf_id: int = 0,
              attach_prog_fd: Optional[FdLike] = None,
              attach_btf_obj_fd: Optional[FdLike] = None,
              fd_array: Sequence[FdLike] = (), fd_array_cnt: int = 0,
              token_fd: Optional[FdLike] = None, log_level: int = 1,
              log_start_size: int = LOG_START_SIZE, log_file: Optional[str] = None) -> FD:
    """Load a program (``BPF_PROG_LOAD``, Linux 3.18) and return its owned descriptor.

    ``insns`` is the encoded program (8 bytes per slot). The other arguments are the
    attribute's fields: ``expected_attach_type`` (4.17), ``flags`` (``prog_flags``,
    :class:`~pybpf.syscall.bpf.ProgFlags`), ``kern_version`` (default: the running
    kernel's ``LINUX_VERSION_CODE`` for kprobe programs, which kernels before 5.0
    check), ``ifindex`` (device offload), ``btf_fd`` with ``func_info``/``line_info``
    (raw ``bpf_func_info``/``bpf_line_info`` records, 5.0), ``attach_btf_id`` with
    ``attach_prog_fd`` or ``attach_btf_obj_fd`` (tracing, LSM and extension programs,
    5.5/5.11), ``fd_array`` (the fds that ``ld_map_idx`` loads and kfunc calls index,
    5.14) and ``fd_array_cnt`` (6.13), ``token_fd`` (6.9; add
    :attr:`~pybpf.syscall.bpf.ProgFlags.TOKEN_FD` to ``flags``).

    The first attempt asks for no verifier log (the fast path). If it fails, the load is
    repeated with a log at ``log_level``, starting with ``log_start_size`` bytes and
    growing while the kernel reports the log did not fit, and a
    :class:`~pybpf.syscall.errors.VerifierError` carrying the log is raised (a long log
    by its first and last lines; ``log_file``: the whole log is written to that file).
    ``EPERM`` raises :class:`~pybpf.syscall.errors.BPFPermissionError` at once; a
    program type or field this kernel lacks raises
    :class:`~pybpf.syscall.errors.NotSupportedError` naming it and its release.
    """
    req = _LoadRequest(prog_type, insns, license, name, expected_attach_type, flags,
                       kern_version, ifindex, btf_fd, func_info, func_info_rec_size,
                       line_info, line_info_rec_size, attach_btf_id, attach_prog_fd,
                       attach_btf_obj_fd, fd_array, fd_array_cnt, token_fd)
    return _load(req, log_level, False, log_start_size, log_file)[0]


def prog_load_logged(prog_type: int, insns: bytes, *, log_level: int = 1,
                     log_start_size: int = LOG_START_SIZE, log_file: Optional[str] = None,
                     **kwargs: object) -> Tuple[FD, str]:
    """Like :func:`prog_load`, but always with a verifier log (grown until it fits):
    returns the descriptor and the log of the successful load. ``log_level`` 1 logs the
    path that failed or the statistics, 2 every instruction, 4 only statistics (5.2)."""
    defaults = dict(license="GPL", name="", expected_attach_type=0, flags=0,
                    kern_version=None, ifindex=0, btf_fd=None, func_info=b"",
                    func_info_rec_size=8, line_info=b"", line_info_rec_size=16,
                    attach_btf_id=0, attach_prog_fd=None, attach_btf_obj_fd=None,
                    fd_array=(), fd_array_cnt=0, token_fd=None)
    unknown = set(kwargs) - set(defaults)
    if unknown:
        raise TypeError(f"prog_load_logged() got unexpected arguments {sorted(unknown)}")
    defaults.update(kwargs)
    req = _LoadRequest(prog_type, insns, **defaults)  # type: ignore[arg-type]
    return _load(req, log_level, True, log_start_size, log_file)


# ---------------------------------------------------------------------------------------
# BPF_PROG_TEST_RUN
# ---------------------------------------------------------------------------------------

class TestRunFlags:
    """``flags`` of ``BPF_PROG_TEST_RUN``."""

    RUN_ON_CPU = 1                  # run on ``cpu`` (raw tracepoints, 5.10)
    XDP_LIVE_FRAMES = 2             # transmit XDP frames (5.18)
    SKB_CHECKSUM_COMPLETE = 4       # CHECKSUM_COMPLETE skbs (6.3)

    __test__ = False


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
                  ctx_out_size: Optional[int] = None, flags: int = 0, cpu: int = 0,
                  batch_size: int = 0) -> TestRunResult:
    """Run a loaded program once (or ``repeat`` times) on ``data_in`` in the kernel
    (``BPF_PROG_TEST_RUN``, Linux 4.12; ``ctx_in`` 5.2).

    ``data_out_size`` defaults to room for the input plus 256 bytes (XDP programs may
    grow the packet) and to none without input; ``ctx_out_size`` to the size of
    ``ctx_in`` when there is packet data too, else none (raw tracepoint and syscall
    programs take a context only and refuse output buffers). A ``repeat`` of 1 is sent
    as 0, which every type reads as one run and raw tracepoints require. If an output
    does not fit, the run is repeated once with the size the kernel reported. Supported for
    socket filter, tc, XDP, flow dissector, cgroup skb, raw tracepoint (5.10), tracing
    (5.10), sk_lookup (5.14), syscall (5.14), netfilter (6.4) programs; an XDP program
    needs at least 14 bytes (an Ethernet header) of input. Other types raise
    :class:`~pybpf.syscall.errors.NotSupportedError`.
    """
    data_in = bytes(data_in)
    if data_out_size is None:
        out_len = len(data_in) + 256 if data_in else 0
    else:
        out_len = data_out_size
    if ctx_out_size is None:
        ctx_len = len(ctx_in) if ctx_in and data_in else 0
    else:
        ctx_len = ctx_out_size
    if repeat < 1:
        raise ValueError(f"repeat must be at least 1, not {repeat}")
    din = _buffer(data_in)
    cin = _buffer(ctx_in or b"")
    for attempt in range(2):
        dout = ctypes.create_string_buffer(out_len) if out_len else None
        cout = ctypes.create_string_buffer(ctx_len) if ctx_len else None
        attr = TestRunAttr(prog_fd=fd_number(prog_fd), data_size_in=len(data_in),
                           data_size_out=out_len, data_in=addr_of(din),
                           data_out=addr_of(dout), repeat=repeat if repeat > 1 else 0,
                           ctx_size_in=len(ctx_in) if ctx_in else 0, ctx_size_out=ctx_len,
                           ctx_in=addr_of(cin), ctx_out=addr_of(cout), flags=flags,
                           cpu=cpu, batch_size=batch_size)
        try:
            bpf(Cmd.PROG_TEST_RUN, attr)
        except OSError as exc:
            if exc.errno == ENOTSUPP:
                raise NotSupportedError("BPF_PROG_TEST_RUN for this program type",
                                        errnum=ENOTSUPP, command="BPF_PROG_TEST_RUN"
                                        ) from None
            grow = (attr.data_size_out > out_len or attr.ctx_size_out > ctx_len)
            if exc.errno == _errno.ENOSPC and attempt == 0 and grow:
                out_len = max(out_len, attr.data_size_out)
                ctx_len = max(ctx_len, attr.ctx_size_out)
                continue
            raise
        data_out = dout.raw[:min(attr.data_size_out, out_len)] if dout is not None else b""
        ctx_out = cout.raw[:min(attr.ctx_size_out, ctx_len)] if cout is not None else b""
        return TestRunResult(attr.retval, attr.duration, data_out, ctx_out)
    raise AssertionError("unreachable")  # pragma: no cover


# ---------------------------------------------------------------------------------------
# Attaching
# ---------------------------------------------------------------------------------------

def prog_attach(prog_fd: FdLike, target_fd: FdLike, attach_type: int, *, flags: int = 0,
                replace_prog_fd: Optional[FdLike] = None) -> None:
    """Attach a program to a cgroup, sockmap, netns, ... (``BPF_PROG_ATTACH``, Linux
    4.10). ``flags``: ALLOW_OVERRIDE 1, ALLOW_MULTI 2, REPLACE 4 (with
    ``replace_prog_fd``, 5.6). The attachment outlives the descriptor; undo it with
    :func:`prog_detach`. Prefer :func:`link_create` on Linux 5.7 and later."""
    attr = ProgAttachAttr(target_fd=fd_number(target_fd), attach_bpf_fd=fd_number(prog_fd),
                          attach_type=attach_type, attach_flags=flags,
                          replace_bpf_fd=(fd_number(replace_prog_fd)
                                          if replace_prog_fd is not None else 0))
    bpf(Cmd.PROG_ATTACH, attr)


def prog_detach(target_fd: FdLike, attach_type: int,
                prog_fd: Optional[FdLike] = None) -> None:
    """Undo :func:`prog_attach` (``BPF_PROG_DETACH``, Linux 4.10); ``prog_fd`` picks the
    program when several are attached with ALLOW_MULTI."""
    attr = ProgAttachAttr(target_fd=fd_number(target_fd), attach_type=attach_type,
                          attach_bpf_fd=fd_number(prog_fd) if prog_fd is not None else 0)
    bpf(Cmd.PROG_DETACH, attr)


def prog_bind_map(prog_fd: FdLike, map_fd: FdLike) -> None:
    """Keep a map alive as long as the program even if its code does not use it
    (``BPF_PROG_BIND_MAP``, Linux 5.10)."""
    bpf(Cmd.PROG_BIND_MAP, ProgBindMapAttr(prog_fd=fd_number(prog_fd),
                                           map_fd=fd_number(map_fd)))


def raw_tracepoint_open(prog_fd: FdLike, name: Optional[str] = None, *,
                        cookie: int = 0) -> FD:
    """Attach a raw tracepoint program to tracepoint ``name`` (``BPF_RAW_TRACEPOINT_OPEN``,
    Linux 4.17) and return the link's descriptor. ``name`` is None for tracing and LSM
    programs, which name their target at load time (5.5). ``cookie`` is Linux 6.10."""
    buf = ctypes.create_string_buffer(name.encode()) if name is not None else None
    attr = RawTracepointOpenAttr(name=addr_of(buf), prog_fd=fd_number(prog_fd),
                                 cookie=cookie)
    return FD(bpf(Cmd.RAW_TRACEPOINT_OPEN, attr), "link")


class KprobeMulti(NamedTuple):
    """The arguments of a ``kprobe_multi`` link (Linux 5.18): functions by name (``syms``)
    or by address (``addrs``), one optional cookie each (5.18), ``flags``
    (:data:`KPROBE_MULTI_RETURN` for return probes)."""

    syms: Sequence[str] = ()
    addrs: Sequence[int] = ()
    cookies: Sequence[int] = ()
    flags: int = 0


class UprobeMulti(NamedTuple):
    """The arguments of a ``uprobe_multi`` link (Linux 6.6): the file ``path``, one
    offset per probe, optional reference-counter offsets and cookies, ``flags`` (return
    probe: 1) and a ``pid`` filter (0 for all)."""

    path: str
    offsets: Sequence[int]
    ref_ctr_offsets: Sequence[int] = ()
    cookies: Sequence[int] = ()
    flags: int = 0
    pid: int = 0


class Netfilter(NamedTuple):
    """The arguments of a netfilter link (Linux 6.4): protocol family (``NFPROTO_IPV4``
    2, ``NFPROTO_IPV6`` 10), hook number, priority and flags."""

    pf: int
    hooknum: int
    priority: int
    flags: int = 0


def _u64_array(values: Sequence[int]) -> Optional[ctypes.Array]:
    return (_u64 * len(values))(*values) if values else None


def link_create(prog_fd: FdLike, attach_type: int, target: FdLike = 0, *, flags: int = 0,
                target_ifindex: Optional[int] = None, target_btf_id: int = 0,
                iter_info: bytes = b"", bpf_cookie: int = 0,
                kprobe_multi: Optional[KprobeMulti] = None, tracing_cookie: int = 0,
                netfilter: Optional[Netfilter] = None, relative_fd: int = 0,
                relative_id: int = 0, expected_revision: int = 0,
                uprobe_multi: Optional[UprobeMulti] = None,
                map_fd: Optional[FdLike] = None) -> FD:
    """Attach a program through a bpf_link (``BPF_LINK_CREATE``, Linux 5.7) and return
    the link's descriptor; closing the last reference detaches it.

    ``target`` is the object attached to (a cgroup, a netns, a perf event, a sockmap fd)
    or, with ``target_ifindex``, a network device. The per-type arguments are
    ``target_btf_id`` (freplace, 5.10), ``iter_info`` (raw ``bpf_iter_link_info``, 5.9),
    ``bpf_cookie`` (perf_event links, 5.15), ``kprobe_multi`` (5.18), ``tracing_cookie``
    (fentry/fexit, 5.19), ``netfilter`` (6.4), ``relative_fd``/``relative_id`` with
    ``expected_revision`` (tcx 6.6, netkit 6.7), ``uprobe_multi`` (6.6). ``map_fd``
    instead of a program creates a struct_ops link (6.4; pass ``prog_fd=0``).
    """
    attr = LinkCreateAttr(attach_type=attach_type, flags=flags)
    keep: List[object] = []
    if map_fd is not None:
        attr.map_fd = fd_number(map_fd)
    else:
        attr.prog_fd = fd_number(prog_fd)
    if target_ifindex is not None:
        attr.target_ifindex = target_ifindex
    else:
        attr.target_fd = fd_number(target)
    if target_btf_id:
        attr.target_btf_id = target_btf_id
    if iter_info:
        buf = _buffer(iter_info)
        keep.append(buf)
        attr.iter_info = addr_of(buf)
        attr.iter_info_len = len(iter_info)
    if bpf_cookie:
        attr.perf_event.bpf_cookie = bpf_cookie
    if kprobe_multi is not None:
        km = kprobe_multi
        count = len(km.syms) or len(km.addrs)
        if bool(km.syms) == bool(km.addrs):
            raise ValueError("kprobe_multi needs syms or addrs (one of them)")
        if km.cookies and len(km.cookies) != count:
            raise ValueError("kprobe_multi needs one cookie per function")
        names = [ctypes.create_string_buffer(s.encode()) for s in km.syms]
        syms = ((ctypes.c_void_p * len(names))(*(addr_of(n) for n in names))
                if names else None)
        addrs, cookies = _u64_array(km.addrs), _u64_array(km.cookies)
        keep += [names, syms, addrs, cookies]
        attr.kprobe_multi.flags = km.flags
        attr.kprobe_multi.cnt = count
        attr.kprobe_multi.syms = addr_of(syms)
        attr.kprobe_multi.addrs = addr_of(addrs)
        attr.kprobe_multi.cookies = addr_of(cookies)
    if tracing_cookie:
        attr.tracing.target_btf_id = target_btf_id
        attr.tracing.cookie = tracing_cookie
    if netfilter is not None:
        attr.netfilter.pf, attr.netfilter.hooknum = netfilter.pf, netfilter.hooknum
        attr.netfilter.priority, attr.netfilter.flags = netfilter.priority, netfilter.flags
    if relative_fd or relative_id or expected_revision:
        rel = attr.netkit if attach_type in (AttachType.NETKIT_PRIMARY,
                                             AttachType.NETKIT_PEER) else attr.tcx
        if relative_fd:
            rel.relative_fd = relative_fd
        else:
            rel.relative_id = relative_id
        rel.expected_revision = expected_revision
    if uprobe_multi is not None:
        um = uprobe_multi
        n = len(um.offsets)
        for what, seq in (("ref_ctr_offsets", um.ref_ctr_offsets), ("cookies", um.cookies)):
            if seq and len(seq) != n:
                raise ValueError(f"uprobe_multi needs one of {what} per offset")
        path = ctypes.create_string_buffer(um.path.encode())
        arrays = [_u64_array(um.offsets), _u64_array(um.ref_ctr_offsets),
                  _u64_array(um.cookies)]
        keep += [path, arrays]
        attr.uprobe_multi.path = addr_of(path)
        attr.uprobe_multi.offsets = addr_of(arrays[0])
        attr.uprobe_multi.ref_ctr_offsets = addr_of(arrays[1])
        attr.uprobe_multi.cookies = addr_of(arrays[2])
        attr.uprobe_multi.cnt = n
        attr.uprobe_multi.flags = um.flags
        attr.uprobe_multi.pid = um.pid
    fd = bpf(Cmd.LINK_CREATE, attr)
    del keep
    return FD(fd, "link")


def link_update(link_fd: FdLike, new_prog_fd: FdLike, *,
                old_prog_fd: Optional[FdLike] = None) -> None:
    """Replace the program of a link (``BPF_LINK_UPDATE``, Linux 5.7); with
    ``old_prog_fd`` only if that is the current program (``BPF_F_REPLACE``)."""
    attr = LinkUpdateAttr(link_fd=fd_number(link_fd), new_prog_fd=fd_number(new_prog_fd))
    if old_prog_fd is not None:
        attr.flags = 4
        attr.old_prog_fd = fd_number(old_prog_fd)
    bpf(Cmd.LINK_UPDATE, attr)


def link_detach(link_fd: FdLike) -> None:
    """Detach a link from its target while its descriptor stays open (``BPF_LINK_DETACH``,
    Linux 5.9)."""
    bpf(Cmd.LINK_DETACH, LinkDetachAttr(link_fd=fd_number(link_fd)))


def iter_create(link_fd: FdLike) -> FD:
    """Open an iterator link for reading (``BPF_ITER_CREATE``, Linux 5.8): each ``read``
    of the returned descriptor runs the iterator program."""
    return FD(bpf(Cmd.ITER_CREATE, IterCreateAttr(link_fd=fd_number(link_fd))), "iter")


def enable_stats(stats_type: int = StatsType.RUN_TIME) -> FD:
    """Turn on run-time statistics (``run_time_ns``/``run_cnt`` in ``bpf_prog_info``)
    for every program while the returned descriptor is open (``BPF_ENABLE_STATS``,
    Linux 5.8). The sysctl ``kernel.bpf_stats_enabled`` does the same system-wide."""
    return FD(bpf(Cmd.ENABLE_STATS, EnableStatsAttr(type=stats_type)), "stats")


# ---------------------------------------------------------------------------------------
# BPF_BTF_LOAD
# ---------------------------------------------------------------------------------------

def btf_load_optional(blob: bytes, func_info: bytes = b"", line_info: bytes = b""
                      ) -> Tuple[Optional[FD], bytes, bytes]:
    """Load optional BTF for a program: ``(fd, func_info, line_info)``, or ``(None,
    b"", b"")`` when the kernel refuses it (before Linux 5.0, without permission) and
    the program should load without."""
    try:
        return btf_load(blob), func_info, line_info
    except OSError:
        return None, b"", b""


def btf_load(data: bytes, *, log_level: int = 1, log_start_size: int = LOG_START_SIZE,
             token_fd: Optional[FdLike] = None) -> FD:
    """Load a BTF blob (header, types, strings) into the kernel (``BPF_BTF_LOAD``,
    Linux 4.18) and return its descriptor.

    Like :func:`prog_load` the first attempt asks for no log; if the kernel refuses the
    blob the load is repeated with a log (grown until it fits) and a
    :class:`~pybpf.syscall.errors.VerifierError` with ``command == "BPF_BTF_LOAD"`` and
    the kernel's explanation in ``log`` is raised. ``token_fd`` is Linux 6.9.
    """
    blob = bytes(data)
    if not blob:
        raise ValueError("empty BTF blob")
    buf = ctypes.create_string_buffer(blob, len(blob))

    def attempt(log: Optional[ctypes.Array], level: int) -> Tuple[int, int]:
        attr = BtfLoadAttr(btf=addr_of(buf), btf_size=len(blob))
        if token_fd is not None:
            attr.btf_token_fd = fd_number(token_fd)
            attr.btf_flags = 1 << 16
        if log is not None:
            attr.btf_log_buf = addr_of(log)
            attr.btf_log_size = len(log)
            attr.btf_log_level = level
        try:
            return bpf(Cmd.BTF_LOAD, attr), attr.btf_log_true_size
        except OSError as exc:
            exc.log_true_size = attr.btf_log_true_size  # type: ignore[attr-defined]
            raise

    try:
        return FD(attempt(None, 0)[0], "btf")
    except OSError as exc:
        if isinstance(exc, NotSupportedError) or exc.errno == _errno.EPERM:
            raise
        first = exc.errno
    fd, _ = _with_growing_log(attempt, max(log_level, 1), log_start_size, first,
                              "BPF_BTF_LOAD")
    return FD(fd, "btf")

