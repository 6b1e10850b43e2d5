"""What the running kernel supports, found out by trying.

Every probe asks the kernel directly (loads a minimal program, creates a minimal map,
opens a link towards a target that cannot exist and reads the errno) and answers with a
:class:`Result`, always with the reason: ``yes``; ``no`` (the kernel lacks it: too old,
or built without it); ``restricted`` (the kernel has it, but this machine refuses it to
a process that holds every BPF capability: EPERM from a security policy such as
lockdown, an LSM or seccomp); or ``unknown`` (the probe could not tell, for instance
because this process lacks the privileges to try).
Each :class:`Feature` names the Linux release that brought it (``since``) and, where the
kernel build can leave it out, the config option (``config``). Conclusive answers are
cached for the life of the process; ``unknown`` ones are asked again.

Probes by group:

* ``prog_type``: every :class:`~pybpf.syscall.bpf.ProgType` (a two-instruction program,
  with the ``expected_attach_type``, flags or BTF target the type needs);
* ``map_type``: every :class:`~pybpf.syscall.bpf.MapType` (the sizes and flags each
  type requires: page-sized ring buffers, ``NO_PREALLOC`` LPM tries, BTF-described local
  storage, an inner map for map-in-map types, ...);
* ``helper``: each helper for each program type (``call N``; "unknown func", "invalid
  func" or "cannot use helper" in the verifier log means no);
* ``misc``: ISA v2/v3/v4, bounded loops, more than 4096 instructions, batch map
  operations, BTF, kprobe/uprobe PMUs, kprobe_multi and uprobe_multi links, run-time
  statistics, the JIT;
* ``link``: ``BPF_LINK_CREATE`` per kind of attach target (cgroup, XDP, perf event,
  netns, tcx, netkit, sockmap, netfilter, raw tracepoint).

:func:`report` gathers everything for ``pybpf features``.
"""

from __future__ import annotations

import enum
import errno as _errno
import os
import platform
import struct
import threading
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from .asm.builder import (
    Label, add, build, call, exit_, gotol, jlt, jlt32, mov, sdiv,
)
from .asm import R0
from .asm.encoding import encode
from .asm.helpers import Helper, all_helpers
from .asm.instruction import Instruction
from .syscall import progs as _progs
from .syscall.bpf import (
    MAP_TYPE_SINCE, PROG_TYPE_SINCE, AttachType, MapFlags, MapType, ProgFlags, ProgType,
    kernel_version, linux_version_code,
)
from .syscall.errors import (
    NotSupportedError, VerifierError, has_capability, missing_capabilities,
)
from .syscall.fd import FD

__all__ = [
    "Support", "Result", "Feature", "probe", "features", "feature", "prog_type_feature",
    "map_type_feature", "helper_support", "available_helpers", "have_prog_type",
    "have_map_type", "have_helper", "report", "clear_cache", "kernel_config",
    "MISC_FEATURES", "LINK_FEATURES", "system_info", "config_unset", "link_support",
    "LINK_OF_ATTACH_TYPE", "privilege_note",
]


class Support(str, enum.Enum):
    """A probe's answer. ``RESTRICTED``: known to the kernel, refused here by policy."""

    YES = "yes"
    NO = "no"
    RESTRICTED = "restricted"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Result:
    """An answer (:class:`Support`) with its reason (``"EINVAL from BPF_PROG_LOAD"``,
    ...). True only for ``yes``."""

    support: Support
    reason: str = ""

    def __bool__(self) -> bool:
        return self.support is Support.YES

    @property
    def conclusive(self) -> bool:
        """Whether this is a yes, a no or a restriction (only those are cached)."""
        return self.support is not Support.UNKNOWN

    @property
    def restricted(self) -> bool:
        """Whether the kernel has it but this machine refuses it (EPERM with every
        capability held): a test or tool should skip or explain, not call it absent."""
        return self.support is Support.RESTRICTED

    def __str__(self) -> str:
        return self.support.value + (f" ({self.reason})" if self.reason else "")


def _yes(reason: str = "") -> Result:
    return Result(Support.YES, reason)


def _no(reason: str) -> Result:
    return Result(Support.NO, reason)


def _unknown(reason: str) -> Result:
    return Result(Support.UNKNOWN, reason)


def _refused(action: str, *, sys_admin: bool = False) -> Result:
    """The answer to an EPERM: ``restricted`` when this process holds every capability
    the operation can need (so a security policy refused it, after the kernel's own
    checks of the type), ``unknown`` when it lacks some (the answer depends on them).
    ``sys_admin``: the operation needs CAP_SYS_ADMIN, not the BPF capabilities
    (statistics, namespaces)."""
    if sys_admin:
        missing = [] if has_capability("CAP_SYS_ADMIN") else ["CAP_SYS_ADMIN"]
    else:
        missing = missing_capabilities()
    if missing:
        return _unknown(f"EPERM: {action} needs {', '.join(missing)}, which this "
                        f"process lacks (run as root)")
    held = "CAP_SYS_ADMIN" if sys_admin else "every BPF capability"
    return Result(Support.RESTRICTED, f"EPERM for {action} with {held} "
                                      f"held: a security policy of this machine refuses "
                                      f"it")


def _no_unless_unprivileged(reason: str) -> Result:
    """``no`` for a refusal that may come from privilege alone (the verifier hides
    helpers, bounded loops and the large instruction limit from a process without
    CAP_BPF or CAP_PERFMON): ``unknown`` naming what this process lacks, if it lacks
    any."""
    missing = missing_capabilities()
    if missing:
        return _unknown(f"{reason}; the verifier may allow it with {', '.join(missing)}, "
                        f"which this process lacks (run as root)")
    return _no(reason)


@dataclass(frozen=True)
class Feature:
    """One probe: ``key`` (``"prog_type.xdp"``), ``group``, ``name`` (the bpftool-style
    short name), ``since`` (the first Linux release that has it, or None when that is not
    a meaningful question), ``config`` (a kernel config option it also needs) and the
    ``check`` that asks the kernel."""

    key: str
    group: str
    name: str
    since: Optional[Tuple[int, int]]
    check: Callable[[], Result]
    config: Optional[str] = None
    title: str = ""

    def __call__(self) -> Result:
        return probe(self)


_cache: Dict[str, Result] = {}
_lock = threading.Lock()


def probe(feat: Feature) -> Result:
    """Run ``feat`` (or return its cached conclusive answer). A probe that raises is
    ``unknown`` with the exception as the reason."""
    with _lock:
        cached = _cache.get(feat.key)
    if cached is not None:
        return cached
    try:
        result = feat.check()
    except OSError as exc:
        result = (_refused(f"the {feat.key} probe") if exc.errno == _errno.EPERM
                  else _unknown(f"probe failed: {exc}"))
    if result.conclusive:
        with _lock:
            _cache[feat.key] = result
    return result


def clear_cache() -> None:
    """Forget every cached answer."""
    with _lock:
        _cache.clear()


def _errname(err: Optional[int]) -> str:
    if err == _progs.ENOTSUPP:
        return "ENOTSUPP"
    return _errno.errorcode.get(err or 0, str(err))


# ---------------------------------------------------------------------------------------
# Kernel configuration
# ---------------------------------------------------------------------------------------

_config: Optional[Dict[str, str]] = None


def kernel_config() -> Dict[str, str]:
    """The running kernel's build options (``CONFIG_X`` -> ``"y"``, ``"m"``, a value, or
    ``"n"`` for "is not set"), from ``/proc/config.gz`` or ``/boot/config-<release>``;
    empty if neither is readable."""
    global _config
    if _config is None:
        import gzip
        text = ""
        for path, opener in (("/proc/config.gz", gzip.open),
                             (f"/boot/config-{os.uname().release}", open)):
            try:
                with opener(path, "rt") as fh:  # type: ignore[operator]
                    text = fh.read()
                break
            except OSError:
                continue
        table: Dict[str, str] = {}
        for line in text.splitlines():
            if line.startswith("CONFIG_") and "=" in line:
                key, _, value = line.partition("=")
                table[key] = value.strip('"')
            elif line.startswith("# CONFIG_") and line.endswith(" is not set"):
                table[line[2:-len(" is not set")]] = "n"
        _config = table
    return _config


def config_unset(option: str) -> bool:
    """True if the kernel's build config is readable and ``option`` is not set in it
    (``# ... is not set``, or absent because its dependencies are not set)."""
    table = kernel_config()
    return bool(table) and table.get(option, "n") == "n"


def _config_note(option: Optional[str]) -> str:
    if option is not None and config_unset(option):
        return f"; {option} is not set in this kernel's build"
    return ""


# ---------------------------------------------------------------------------------------
# Program types
# ---------------------------------------------------------------------------------------

_R0_ZERO = (mov(R0, 0), exit_())

# per type: (expected_attach_type, flags, attach_btf_id) where the default does not load
_PROG_LOAD_EXTRAS: Dict[int, Tuple[int, int, int]] = {
    ProgType.CGROUP_SOCK_ADDR: (AttachType.CGROUP_INET4_CONNECT, 0, 0),
    ProgType.CGROUP_SOCKOPT: (AttachType.CGROUP_GETSOCKOPT, 0, 0),
    ProgType.SK_LOOKUP: (AttachType.SK_LOOKUP, 0, 0),
    ProgType.LIRC_MODE2: (AttachType.LIRC_MODE2, 0, 0),
    ProgType.SYSCALL: (0, ProgFlags.SLEEPABLE, 0),
    ProgType.NETFILTER: (AttachType.NETFILTER, 0, 0),
    # these need a BTF target; id 1 is never a valid one, so a kernel that knows the
    # type answers with a verifier message (or ENOTSUPP) and one that does not, EINVAL
    ProgType.TRACING: (AttachType.TRACE_FENTRY, 0, 1),
    ProgType.LSM: (AttachType.LSM_MAC, 0, 1),
    ProgType.EXT: (0, 0, 1),
    ProgType.STRUCT_OPS: (0, 0, 1),
}

_PROG_CONFIG: Dict[int, str] = {
    ProgType.LIRC_MODE2: "CONFIG_BPF_LIRC_MODE2",
    ProgType.LWT_SEG6LOCAL: "CONFIG_IPV6_SEG6_BPF",
    ProgType.LSM: "CONFIG_BPF_LSM",
    ProgType.STRUCT_OPS: "CONFIG_BPF_JIT",
    ProgType.KPROBE: "CONFIG_BPF_EVENTS",
    ProgType.TRACEPOINT: "CONFIG_BPF_EVENTS",
    ProgType.PERF_EVENT: "CONFIG_BPF_EVENTS",
    ProgType.RAW_TRACEPOINT: "CONFIG_BPF_EVENTS",
    ProgType.RAW_TRACEPOINT_WRITABLE: "CONFIG_BPF_EVENTS",
    ProgType.CGROUP_SKB: "CONFIG_CGROUP_BPF",
    ProgType.CGROUP_SOCK: "CONFIG_CGROUP_BPF",
    ProgType.CGROUP_DEVICE: "CONFIG_CGROUP_BPF",
    ProgType.CGROUP_SOCK_ADDR: "CONFIG_CGROUP_BPF",
    ProgType.CGROUP_SYSCTL: "CONFIG_CGROUP_BPF",
    ProgType.CGROUP_SOCKOPT: "CONFIG_CGROUP_BPF",
    ProgType.SK_SKB: "CONFIG_BPF_STREAM_PARSER",
    ProgType.SK_MSG: "CONFIG_BPF_STREAM_PARSER",
    ProgType.NETFILTER: "CONFIG_NETFILTER_BPF_LINK",
}


def _load_probe(prog_type: int, insns: Sequence[Instruction], *,
                expected_attach_type: int = 0, flags: int = 0,
                attach_btf_id: int = 0) -> Tuple[Optional[FD], Optional[OSError], str]:
    """Load with a small verifier log: (fd or None, the error, the log)."""
    try:
        fd, log = _progs.prog_load_logged(
            prog_type, encode(insns), expected_attach_type=expected_attach_type,
            flags=flags, attach_btf_id=attach_btf_id, log_start_size=4096)
        return fd, None, log
    except VerifierError as exc:
        return None, exc, exc.log
    except OSError as exc:
        return None, exc, ""


def _prog_type_check(prog_type: ProgType) -> Callable[[], Result]:
    def check() -> Result:
        eat, flags, btf_id = _PROG_LOAD_EXTRAS.get(prog_type, (0, 0, 0))
        fd, err, log = _load_probe(prog_type, _R0_ZERO, expected_attach_type=eat,
                                   flags=flags, attach_btf_id=btf_id)
        if fd is not None:
            fd.close()
            return _yes("a minimal program loads")
        assert err is not None
        name = _errname(err.errno)
        if err.errno == _errno.EPERM:
            return _refused("loading this program type")
        if isinstance(err, NotSupportedError):
            return _no(str(err))
        if err.errno == _progs.ENOTSUPP or log.strip():
            # the kernel got past the type lookup to the verifier or the target checks
            return _yes(f"the kernel checked the program ({name}"
                        + (f": {_last_line(log)}" if log.strip() else "") + ")")
        if err.errno in (_errno.EINVAL, _errno.EOPNOTSUPP):
            return _no(f"{name} with no verifier log: the kernel does not know the type"
                       + _config_note(_PROG_CONFIG.get(prog_type)))
        return _unknown(f"{name} from BPF_PROG_LOAD")
    return check


def _last_line(log: str) -> str:
    lines = [ln for ln in log.strip().split("\n")
             if ln.strip() and not ln.startswith(("processed ", "verification time"))]
    return lines[-1].strip() if lines else ""


def prog_type_feature(prog_type: int) -> Feature:
    """The :class:`Feature` probing program type ``prog_type``."""
    t = ProgType(prog_type)
    return _PROG_FEATURES[t]


_PROG_FEATURES: Dict[ProgType, Feature] = {
    t: Feature(f"prog_type.{t.name.lower()}", "prog_type", t.name.lower(),
               PROG_TYPE_SINCE.get(t), _prog_type_check(t), _PROG_CONFIG.get(t))
    for t in ProgType if t != ProgType.UNSPEC
}


def have_prog_type(prog_type: int) -> Result:
    """Can programs of ``prog_type`` be loaded here?"""
    return probe(prog_type_feature(prog_type))


# ---------------------------------------------------------------------------------------
# Map types
# ---------------------------------------------------------------------------------------

_BTF_KIND_INT, _BTF_KIND_STRUCT = 1, 4


def _btf_blob(types: bytes, strings: bytes) -> bytes:
    header = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types),
                         len(strings))
    return header + types + strings


def _storage_btf() -> bytes:
    """BTF with [1] int (4 bytes, signed) and [2] struct val { int cnt; }: what local
    storage maps want for their key and value."""
    strings = b"\0int\0val\0cnt\0"
    int_t = struct.pack("<IIII", 1, _BTF_KIND_INT << 24, 4, (1 << 24) | 32)
    val_t = struct.pack("<III", 5, (_BTF_KIND_STRUCT << 24) | 1, 4)
    member = struct.pack("<III", 9, 1, 0)
    return _btf_blob(int_t + val_t + member, strings)


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

# per type: key_size, value_size, max_entries, flags (None: 4, 4, 1, 0)
_MAP_SHAPES: Dict[int, Tuple[int, int, int, int]] = {
    MapType.STACK_TRACE: (4, 8, 1, 0),
    MapType.LPM_TRIE: (8, 8, 1, MapFlags.NO_PREALLOC),
    MapType.CGROUP_STORAGE: (16, 8, 0, 0),
    MapType.PERCPU_CGROUP_STORAGE: (16, 8, 0, 0),
    MapType.QUEUE: (0, 4, 1, 0),
    MapType.STACK: (0, 4, 1, 0),
    MapType.BLOOM_FILTER: (0, 4, 1, 0),
    MapType.RINGBUF: (0, 0, _PAGE, 0),
    MapType.USER_RINGBUF: (0, 0, _PAGE, 0),
    MapType.SK_STORAGE: (4, 4, 0, MapFlags.NO_PREALLOC),
    MapType.INODE_STORAGE: (4, 4, 0, MapFlags.NO_PREALLOC),
    MapType.TASK_STORAGE: (4, 4, 0, MapFlags.NO_PREALLOC),
    MapType.CGRP_STORAGE: (4, 4, 0, MapFlags.NO_PREALLOC),
    MapType.ARENA: (0, 0, 1, MapFlags.MMAPABLE),
}

_LOCAL_STORAGE = (MapType.SK_STORAGE, MapType.INODE_STORAGE, MapType.TASK_STORAGE,
                  MapType.CGRP_STORAGE)

_MAP_CONFIG: Dict[int, str] = {
    MapType.XSKMAP: "CONFIG_XDP_SOCKETS",
    MapType.SOCKMAP: "CONFIG_BPF_STREAM_PARSER",
    MapType.SOCKHASH: "CONFIG_BPF_STREAM_PARSER",
    MapType.INODE_STORAGE: "CONFIG_BPF_LSM",
    MapType.STRUCT_OPS: "CONFIG_BPF_JIT",
    MapType.CGROUP_STORAGE: "CONFIG_CGROUP_BPF",
    MapType.PERCPU_CGROUP_STORAGE: "CONFIG_CGROUP_BPF",
    MapType.CGRP_STORAGE: "CONFIG_CGROUPS",
    MapType.STACK_TRACE: "CONFIG_PERF_EVENTS",
    MapType.ARENA: "CONFIG_MMU",
}


def _map_type_check(map_type: MapType) -> Callable[[], Result]:
    def check() -> Result:
        from .syscall.maps import map_create
        key, value, entries, flags = _MAP_SHAPES.get(map_type, (4, 4, 1, 0))
        extra: Dict[str, object] = {}
        owned: List[FD] = []
        expect_enotsupp = False
        try:
            if map_type in (MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS):
                try:
                    inner = map_create(MapType.ARRAY, 4, 4, 1)
                except OSError as exc:
                    if exc.errno == _errno.EPERM:
                        return _refused("creating the inner array map")
                    return _unknown(f"cannot create the inner array map: {exc}")
                owned.append(inner)
                extra["inner_map_fd"] = inner
            if map_type in _LOCAL_STORAGE:
                try:
                    btf = _progs.btf_load(_storage_btf())
                except OSError as exc:
                    if exc.errno == _errno.EPERM:
                        return _refused("loading the BTF this map type needs")
                    return _unknown(f"needs BTF, which cannot be loaded: {exc}")
                owned.append(btf)
                extra.update(btf_fd=btf, btf_key_type_id=1, btf_value_type_id=2)
            if map_type == MapType.STRUCT_OPS:
                # type id 1 of vmlinux is no struct_ops type: a kernel that has the map
                # type says ENOTSUPP, one that does not says EINVAL
                extra["btf_vmlinux_value_type_id"] = 1
                expect_enotsupp = True
            try:
                fd = map_create(map_type, key, value, entries, flags=flags, **extra)
            except OSError as exc:
                name = _errname(exc.errno)
                if expect_enotsupp and exc.errno == _progs.ENOTSUPP:
                    return _yes("ENOTSUPP for a non-struct_ops value type: the map type "
                                "is known")
                if exc.errno == _errno.EPERM:
                    return _refused("creating this map type")
                if isinstance(exc, NotSupportedError) or exc.errno in (
                        _errno.EINVAL, _errno.EOPNOTSUPP, _progs.ENOTSUPP):
                    return _no(f"{name} from BPF_MAP_CREATE"
                               + _config_note(_MAP_CONFIG.get(map_type)))
                return _unknown(f"{name} from BPF_MAP_CREATE")
            fd.close()
            return _yes("a minimal map is created")
        finally:
            for fd in owned:
                fd.close()
    return check


_MAP_FEATURES: Dict[MapType, Feature] = {
    t: Feature(f"map_type.{t.name.lower()}", "map_type", t.name.lower(),
               MAP_TYPE_SINCE.get(t), _map_type_check(t), _MAP_CONFIG.get(t))
    for t in MapType if t != MapType.UNSPEC
}


def map_type_feature(map_type: int) -> Feature:
    """The :class:`Feature` probing map type ``map_type``."""
    return _MAP_FEATURES[MapType(map_type)]


def have_map_type(map_type: int) -> Result:
    """Can maps of ``map_type`` be created here?"""
    return probe(map_type_feature(map_type))


# ---------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------

_HELPER_ABSENT = ("invalid func ", "unknown func ", "cannot use helper")


def _helper_check(prog_type: ProgType, helper_id: int) -> Callable[[], Result]:
    def check() -> Result:
        kind = probe(prog_type_feature(prog_type))
        if not kind:
            return Result(kind.support, f"program type {prog_type.name.lower()}: "
                                        f"{kind.reason}")
        eat, flags, btf_id = _PROG_LOAD_EXTRAS.get(prog_type, (0, 0, 0))
        if btf_id:
            return _unknown("programs of this type need a real BTF attach target, so a "
                            "probe program cannot be loaded")
        fd, err, log = _load_probe(prog_type, (call(helper_id), exit_()),
                                   expected_attach_type=eat, flags=flags,
                                   attach_btf_id=btf_id)
        if fd is not None:
            fd.close()
            return _yes("the call verifies")
        if any(marker in log for marker in _HELPER_ABSENT):
            return _no_unless_unprivileged(_last_line(log))
        if log.strip():
            return _yes(f"the verifier checked the call's arguments: {_last_line(log)}")
        assert err is not None
        if err.errno == _errno.EPERM:
            return _refused("loading a program calling this helper")
        return _unknown(f"{_errname(err.errno)} without a verifier log")
    return check


def helper_support(prog_type: int, helper_id: int) -> Result:
    """Can programs of ``prog_type`` call helper ``helper_id``? ``since`` is not
    declared for helpers: which program types get a helper changes from release to
    release, so a "no" says nothing about the kernel's age."""
    t = ProgType(prog_type)
    return probe(Feature(f"helper.{t.name.lower()}.{helper_id}", "helper", str(helper_id),
                         None, _helper_check(t, helper_id)))


def have_helper(prog_type: int, helper_id: int) -> Result:
    """Alias of :func:`helper_support`."""
    return helper_support(prog_type, helper_id)


def available_helpers(prog_type: int) -> List[Helper]:
    """Every helper of pybpf's table that ``prog_type`` may call here."""
    return [h for h in all_helpers() if helper_support(prog_type, h.id)]


# ---------------------------------------------------------------------------------------
# Miscellaneous features
# ---------------------------------------------------------------------------------------

def _loads(insns: Sequence[Instruction], what: str,
           prog_type: int = ProgType.SOCKET_FILTER) -> Result:
    fd, err, log = _load_probe(prog_type, insns)
    if fd is not None:
        fd.close()
        return _yes(f"a program using {what} loads")
    assert err is not None
    if err.errno == _errno.EPERM:
        return _refused(f"loading a program using {what}")
    detail = _last_line(log)
    if err.errno in (_errno.EINVAL, _errno.EACCES, _errno.E2BIG):
        return _no_unless_unprivileged(f"{_errname(err.errno)}: {detail}" if detail
                                       else _errname(err.errno))
    return _unknown(f"{_errname(err.errno)} from BPF_PROG_LOAD")


def _isa_v2() -> Result:
    return _loads(build([mov(R0, 0), jlt(R0, 1, "out"), mov(R0, 1), Label("out"),
                         exit_()]), "JLT (ISA v2)")


def _isa_v3() -> Result:
    return _loads(build([mov(R0, 0), jlt32(R0, 1, "out"), mov(R0, 1), Label("out"),
                         exit_()]), "JMP32 (ISA v3)")


def _isa_v4() -> Result:
    return _loads(build([mov(R0, 7), sdiv(R0, -2), gotol("out"), Label("out"), exit_()]),
                  "sdiv and gotol (ISA v4)")


def _bounded_loops() -> Result:
    return _loads(build([mov(R0, 0), Label("top"), add(R0, 1), jlt(R0, 4, "top"),
                         exit_()]), "a bounded loop")


def _large_programs() -> Result:
    body = [mov(R0, 0)] * 4096 + [exit_()]
    return _loads(body, "4097 instructions")


def _map_batch() -> Result:
    from .syscall.maps import map_create, map_lookup_batch
    try:
        fd = map_create(MapType.HASH, 4, 4, 1)
    except OSError as exc:
        if exc.errno == _errno.EPERM:
            return _refused("creating the hash map to try it on")
        return _unknown(f"cannot create a hash map: {exc}")
    try:
        map_lookup_batch(fd, 4, 4, 1)
        return _yes("BPF_MAP_LOOKUP_BATCH walks an empty hash map")
    except NotSupportedError as exc:
        return _no(str(exc))
    except OSError as exc:
        if exc.errno in (_errno.EINVAL, _errno.EOPNOTSUPP, _progs.ENOTSUPP):
            return _no(f"{_errname(exc.errno)} from BPF_MAP_LOOKUP_BATCH")
        return _unknown(f"{_errname(exc.errno)} from BPF_MAP_LOOKUP_BATCH")
    finally:
        fd.close()


def _btf() -> Result:
    strings = b"\0int\0"
    blob = _btf_blob(struct.pack("<IIII", 1, _BTF_KIND_INT << 24, 4, (1 << 24) | 32),
                     strings)
    try:
        _progs.btf_load(blob).close()
        return _yes("a one-type BTF blob loads")
    except NotSupportedError as exc:
        return _no(str(exc))
    except OSError as exc:
        if exc.errno in (_errno.EINVAL, _errno.E2BIG):
            return _no(f"{_errname(exc.errno)} from BPF_BTF_LOAD")
        if exc.errno == _errno.EPERM:
            return _refused("loading BTF")
        return _unknown(f"{_errname(exc.errno)} from BPF_BTF_LOAD")


def _pmu(name: str, config: str) -> Callable[[], Result]:
    def check() -> Result:
        path = f"/sys/bus/event_source/devices/{name}/type"
        try:
            with open(path, encoding="ascii") as fh:
                return _yes(f"perf PMU type {int(fh.read())}")
        except FileNotFoundError:
            if not os.path.isdir("/sys/bus/event_source/devices"):
                return _unknown("/sys/bus/event_source is not mounted")
            return _no(f"no {path}" + _config_note(config))
        except (OSError, ValueError) as exc:
            return _unknown(f"cannot read {path}: {exc}")
    return check


def _stats() -> Result:
    try:
        _progs.enable_stats().close()
        return _yes("BPF_ENABLE_STATS works")
    except NotSupportedError as exc:
        return _no(str(exc))
    except OSError as exc:
        if exc.errno == _errno.EINVAL:
            return _no("EINVAL from BPF_ENABLE_STATS")
        if exc.errno == _errno.EPERM:
            return _refused("BPF_ENABLE_STATS", sys_admin=True)
        return _unknown(f"{_errname(exc.errno)} from BPF_ENABLE_STATS")


def _read_int(path: str) -> Optional[int]:
    try:
        with open(path, encoding="ascii") as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return None


def _jit() -> Result:
    value = _read_int("/proc/sys/net/core/bpf_jit_enable")
    if value is None:
        return _unknown("/proc/sys/net/core/bpf_jit_enable is not readable")
    if value:
        always = kernel_config().get("CONFIG_BPF_JIT_ALWAYS_ON") == "y"
        return _yes(f"bpf_jit_enable={value}" + (", always on" if always else ""))
    return _no("bpf_jit_enable=0: programs are interpreted")


# ---------------------------------------------------------------------------------------
# Links
# ---------------------------------------------------------------------------------------

_BAD_FD = 0xFFFFFFFF     # -1 as the u32 of the attribute: never an open descriptor


def _link_probe(prog_type: int, expected: int, attach_type: int, *,
                yes_errnos: Tuple[int, ...], label: str, config: Optional[str] = None,
                **link_kwargs: object) -> Result:
    """Load a minimal program, then LINK_CREATE towards a target that cannot exist: an
    errno from the target lookup (in ``yes_errnos``) means the kernel knows this kind
    of link; EINVAL means it does not."""
    eat, flags, btf_id = _PROG_LOAD_EXTRAS.get(prog_type, (expected, 0, 0))
    fd, err, _ = _load_probe(prog_type, _R0_ZERO, expected_attach_type=expected or eat,
                             flags=flags, attach_btf_id=btf_id)
    if fd is None:
        assert err is not None
        kind = ProgType(prog_type).name.lower()
        if err.errno == _errno.EPERM:
            return _refused(f"loading a {kind} program to try it")
        return _no(f"cannot load a {kind} program with this attach type "
                   f"({_errname(err.errno)})")
    try:
        link = _progs.link_create(fd, attach_type, **link_kwargs)  # type: ignore[arg-type]
    except NotSupportedError as exc:
        return _no(str(exc))
    except OSError as exc:
        if exc.errno in yes_errnos:
            return _yes(f"{_errname(exc.errno)} for a {label} that cannot exist: the "
                        f"kernel looked it up")
        if exc.errno in (_errno.EINVAL, _errno.EOPNOTSUPP, _progs.ENOTSUPP):
            return _no(f"{_errname(exc.errno)} from BPF_LINK_CREATE" + _config_note(config))
        if exc.errno == _errno.EPERM:
            return _refused("BPF_LINK_CREATE")
        return _unknown(f"{_errname(exc.errno)} from BPF_LINK_CREATE")
    else:
        link.close()
        return _yes("a link was created (and closed at once)")
    finally:
        fd.close()


def _link_cgroup() -> Result:
    return _link_probe(ProgType.CGROUP_SKB, AttachType.CGROUP_INET_INGRESS,
                       AttachType.CGROUP_INET_INGRESS, yes_errnos=(_errno.EBADF,),
                       label="cgroup fd", target=_BAD_FD)


def _link_xdp() -> Result:
    """XDP answers EINVAL both for an unknown device and for an unknown link type, so
    this probe really attaches: a program returning XDP_PASS, to the loopback device of
    a private network namespace (in a child process), detached at once."""
    pid = os.fork()
    if pid == 0:                                    # pragma: no cover (child)
        code = 3
        try:
            code = _xdp_link_child()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else 3
    if code == 0:
        return _yes("an XDP link to the loopback device of a private network namespace "
                    "was created and closed")
    if code == 1:
        return _no("EINVAL from BPF_LINK_CREATE for the loopback device")
    if code == 2:
        return _unknown("cannot make a private network namespace to try it in")
    if code == 4:
        return _refused("making a private network namespace to try it in",
                        sys_admin=True)
    if code == 100 + _errno.EPERM:
        return _refused("loading an xdp program or creating its link")
    if code >= 100:
        return _unknown(f"{_errname(code - 100)} from BPF_LINK_CREATE")
    return _unknown("the probe process failed")


def _xdp_link_child() -> int:                       # pragma: no cover (child)
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(0x40000000) != 0:               # CLONE_NEWNET
        return 4 if ctypes.get_errno() == _errno.EPERM else 2
    fd, err, _ = _load_probe(ProgType.XDP, (mov(R0, 2), exit_()),  # XDP_PASS
                             expected_attach_type=AttachType.XDP)
    if fd is None:
        return 100 + (err.errno or 0) if err is not None else 3
    try:
        _progs.link_create(fd, AttachType.XDP, target_ifindex=1).close()
        return 0
    except OSError as exc:
        if exc.errno == _errno.EINVAL or isinstance(exc, NotSupportedError):
            return 1
        if exc.errno == _errno.EBUSY:              # something is attached already
            return 0
        return 100 + (exc.errno or 0)


def _link_perf_event() -> Result:
    return _link_probe(ProgType.PERF_EVENT, AttachType.PERF_EVENT, AttachType.PERF_EVENT,
                       yes_errnos=(_errno.EBADF,), label="perf event fd", target=_BAD_FD)


def _link_netns() -> Result:
    return _link_probe(ProgType.FLOW_DISSECTOR, AttachType.FLOW_DISSECTOR,
                       AttachType.FLOW_DISSECTOR, yes_errnos=(_errno.EBADF,),
                       label="network namespace fd", target=_BAD_FD)


def _link_tcx() -> Result:
    return _link_probe(ProgType.SCHED_CLS, AttachType.TCX_INGRESS, AttachType.TCX_INGRESS,
                       yes_errnos=(_errno.ENODEV,), label="network device",
                       target_ifindex=0x7FFFFFFF)


def _link_netkit() -> Result:
    return _link_probe(ProgType.SCHED_CLS, AttachType.NETKIT_PRIMARY,
                       AttachType.NETKIT_PRIMARY, yes_errnos=(_errno.ENODEV,),
                       label="network device", config="CONFIG_NETKIT",
                       target_ifindex=0x7FFFFFFF)


def _link_sockmap() -> Result:
    return _link_probe(ProgType.SK_SKB, AttachType.SK_SKB_STREAM_VERDICT,
                       AttachType.SK_SKB_STREAM_VERDICT, yes_errnos=(_errno.EBADF,),
                       label="sockmap fd", target=_BAD_FD)


def _link_kprobe_multi() -> Result:
    return _link_probe(ProgType.KPROBE, AttachType.TRACE_KPROBE_MULTI,
                       AttachType.TRACE_KPROBE_MULTI, yes_errnos=(_errno.ENOENT, _errno.ESRCH),
                       label="kernel function", config="CONFIG_FPROBE",
                       kprobe_multi=_progs.KprobeMulti(syms=("pybpf_no_such_function",)))


def _link_uprobe_multi() -> Result:
    return _link_probe(ProgType.KPROBE, AttachType.TRACE_UPROBE_MULTI,
                       AttachType.TRACE_UPROBE_MULTI, yes_errnos=(_errno.ENOENT,),
                       label="file", config="CONFIG_UPROBES", uprobe_multi=_progs.UprobeMulti(
                           "/nonexistent/pybpf-probe", (0,)))


def _link_netfilter() -> Result:
    kind = probe(prog_type_feature(ProgType.NETFILTER))
    return Result(kind.support, f"netfilter programs attach only through links: "
                                f"{kind.reason}")


def _raw_tracepoint_open() -> Result:
    fd, err, _ = _load_probe(ProgType.RAW_TRACEPOINT, _R0_ZERO)
    if fd is None:
        assert err is not None
        if err.errno == _errno.EPERM:
            return _refused("loading a raw_tracepoint program to try it")
        return _unknown(f"cannot load a raw_tracepoint program ({_errname(err.errno)})")
    try:
        _progs.raw_tracepoint_open(fd, "pybpf_no_such_tracepoint").close()
        return _unknown("a tracepoint with an impossible name exists")
    except NotSupportedError as exc:
        return _no(str(exc))
    except OSError as exc:
        if exc.errno == _errno.ENOENT:
            return _yes("ENOENT for a tracepoint that does not exist")
        if exc.errno == _errno.EINVAL:
            return _no("EINVAL from BPF_RAW_TRACEPOINT_OPEN")
        if exc.errno == _errno.EPERM:
            return _refused("BPF_RAW_TRACEPOINT_OPEN")
        return _unknown(f"{_errname(exc.errno)} from BPF_RAW_TRACEPOINT_OPEN")
    finally:
        fd.close()


def _f(key: str, name: str, since: Optional[Tuple[int, int]], check: Callable[[], Result],
       title: str, config: Optional[str] = None, group: str = "misc") -> Feature:
    return Feature(f"{group}.{key}", group, name, since, check, config, title)


#: the ``misc`` features, by key
MISC_FEATURES: Dict[str, Feature] = {f.key: f for f in (
    _f("v2_isa_extension", "have_v2_isa_extension", (4, 14), _isa_v2,
       "ISA v2 (JLT/JLE/JSLT/JSLE)"),
    _f("v3_isa_extension", "have_v3_isa_extension", (5, 1), _isa_v3, "ISA v3 (JMP32)"),
    _f("v4_isa_extension", "have_v4_isa_extension", (6, 6), _isa_v4,
       "ISA v4 (sdiv/smod, movsx, ldsx, bswap, gotol)"),
    _f("bounded_loops", "have_bounded_loops", (5, 3), _bounded_loops, "Loop support"),
    _f("large_insn_limit", "have_large_insn_limit", (5, 2), _large_programs,
       "Instruction limit above 4096 (1 million)"),
    _f("map_batch", "have_map_batch", (5, 6), _map_batch, "map batch"),
    _f("btf", "have_btf", (4, 18), _btf, "btf"),
    _f("kprobe_pmu", "have_kprobe_pmu", (4, 17), _pmu("kprobe", "CONFIG_KPROBE_EVENTS"),
       "kprobe (perf PMU)", "CONFIG_KPROBE_EVENTS"),
    _f("uprobe_pmu", "have_uprobe_pmu", (4, 17), _pmu("uprobe", "CONFIG_UPROBE_EVENTS"),
       "uprobe (perf PMU)", "CONFIG_UPROBE_EVENTS"),
    _f("kprobe_multi", "have_kprobe_multi", (5, 18), _link_kprobe_multi, "kprobe_multi",
       "CONFIG_FPROBE"),
    _f("uprobe_multi", "have_uprobe_multi", (6, 6), _link_uprobe_multi, "uprobe_multi",
       "CONFIG_UPROBES"),
    _f("run_time_stats", "have_run_time_stats", (5, 8), _stats,
       "run-time statistics (BPF_ENABLE_STATS)"),
    _f("jit", "have_jit", None, _jit, "JIT"),
)}

#: the ``link`` features (``BPF_LINK_CREATE`` per kind of target), by key
LINK_FEATURES: Dict[str, Feature] = {f.key: f for f in (
    _f("raw_tracepoint", "raw_tracepoint", (4, 17), _raw_tracepoint_open,
       "raw tracepoint (BPF_RAW_TRACEPOINT_OPEN)", "CONFIG_BPF_EVENTS", "link"),
    _f("cgroup", "cgroup", (5, 7), _link_cgroup, "cgroup (every cgroup attach type)",
       "CONFIG_CGROUP_BPF", "link"),
    _f("netns", "netns", (5, 8), _link_netns, "netns (flow_dissector, sk_lookup)",
       None, "link"),
    _f("xdp", "xdp", (5, 9), _link_xdp, "xdp", None, "link"),
    _f("perf_event", "perf_event", (5, 15), _link_perf_event,
       "perf_event (kprobe, uprobe, tracepoint, perf event)", "CONFIG_BPF_EVENTS", "link"),
    _f("kprobe_multi", "kprobe_multi", (5, 18), _link_kprobe_multi, "kprobe_multi",
       "CONFIG_FPROBE", "link"),
    _f("netfilter", "netfilter", (6, 4), _link_netfilter, "netfilter",
       "CONFIG_NETFILTER_BPF_LINK", "link"),
    _f("tcx", "tcx", (6, 6), _link_tcx, "tcx", None, "link"),
    _f("uprobe_multi", "uprobe_multi", (6, 6), _link_uprobe_multi, "uprobe_multi",
       "CONFIG_UPROBES", "link"),
    _f("netkit", "netkit", (6, 7), _link_netkit, "netkit", "CONFIG_NETKIT", "link"),
    _f("sockmap", "sockmap", (6, 10), _link_sockmap, "sockmap (sk_skb, sk_msg)",
       "CONFIG_BPF_STREAM_PARSER", "link"),
)}


#: attach type -> the ``link`` feature that says whether ``BPF_LINK_CREATE`` takes it
LINK_OF_ATTACH_TYPE: Dict[int, str] = {
    **{t: "link.cgroup" for t in AttachType if t.name.startswith("CGROUP_")},
    AttachType.XDP: "link.xdp",
    AttachType.PERF_EVENT: "link.perf_event",
    AttachType.TRACE_KPROBE_MULTI: "link.kprobe_multi",
    AttachType.TRACE_UPROBE_MULTI: "link.uprobe_multi",
    AttachType.FLOW_DISSECTOR: "link.netns",
    AttachType.SK_LOOKUP: "link.netns",
    AttachType.TCX_INGRESS: "link.tcx",
    AttachType.TCX_EGRESS: "link.tcx",
    AttachType.NETKIT_PRIMARY: "link.netkit",
    AttachType.NETKIT_PEER: "link.netkit",
    AttachType.SK_SKB_STREAM_PARSER: "link.sockmap",
    AttachType.SK_SKB_STREAM_VERDICT: "link.sockmap",
    AttachType.SK_SKB_VERDICT: "link.sockmap",
    AttachType.SK_MSG_VERDICT: "link.sockmap",
    AttachType.NETFILTER: "link.netfilter",
    AttachType.TRACE_RAW_TP: "link.raw_tracepoint",
}

#: attach types whose links need a program this module cannot load without a real BTF
#: target (tracing, LSM, iterators, struct_ops)
_BTF_TARGET_ATTACH = (AttachType.TRACE_FENTRY, AttachType.TRACE_FEXIT,
                      AttachType.MODIFY_RETURN, AttachType.LSM_MAC, AttachType.TRACE_ITER,
                      AttachType.LSM_CGROUP, AttachType.STRUCT_OPS,
                      AttachType.TRACE_KPROBE_SESSION, AttachType.TRACE_UPROBE_SESSION)


def link_support(attach_type: int) -> Result:
    """Does ``BPF_LINK_CREATE`` (Linux 5.7) take ``attach_type`` here? Answered by the
    ``link`` feature of its kind of target (:data:`LINK_OF_ATTACH_TYPE`); ``unknown``
    for attach types probed only with a real BTF target."""
    key = LINK_OF_ATTACH_TYPE.get(attach_type)
    if key is None:
        try:
            name = AttachType(attach_type).name.lower()
        except ValueError:
            name = str(attach_type)
        if attach_type in _BTF_TARGET_ATTACH:
            return _unknown(f"{name} links need a program with a real BTF target")
        return _unknown(f"no link probe for attach type {name}")
    return probe(LINK_FEATURES[key])


def features() -> List[Feature]:
    """Every probe with a declared release (program types, map types, misc, links);
    helper probes are made per program type by :func:`helper_support`."""
    return (list(_PROG_FEATURES.values()) + list(_MAP_FEATURES.values())
            + list(MISC_FEATURES.values()) + list(LINK_FEATURES.values()))


def feature(key: str) -> Feature:
    """The feature with this key (``"prog_type.xdp"``, ``"misc.bounded_loops"``)."""
    for feat in features():
        if feat.key == key:
            return feat
    raise KeyError(f"no feature {key!r}")


# ---------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------

def system_info() -> Dict[str, object]:
    """The ``System`` part of the report: OS, architecture, kernel version (from uname)
    and its ``LINUX_VERSION_CODE``, and the BPF sysctls."""
    uts = os.uname()
    version = kernel_version()
    info: Dict[str, object] = {
        "os": f"{uts.sysname} {uts.release} {uts.version}",
        "arch": platform.machine(),
        "kernel_version": "%d.%d.%d" % version,
        "linux_version_code": linux_version_code(version),
    }
    for name, path in (("bpf_jit_enable", "/proc/sys/net/core/bpf_jit_enable"),
                       ("bpf_jit_harden", "/proc/sys/net/core/bpf_jit_harden"),
                       ("bpf_jit_kallsyms", "/proc/sys/net/core/bpf_jit_kallsyms"),
                       ("unprivileged_bpf_disabled",
                        "/proc/sys/kernel/unprivileged_bpf_disabled"),
                       ("bpf_stats_enabled", "/proc/sys/kernel/bpf_stats_enabled")):
        info[name] = _read_int(path)
    return info


def privilege_note() -> str:
    """A note for the top of a report when this process lacks BPF capabilities (the
    ``unknown`` answers then depend on them), or ``""`` when it has them all
    (CAP_SYS_ADMIN counts for CAP_BPF and CAP_PERFMON)."""
    missing = missing_capabilities()
    if not missing:
        return ""
    return (f"this run lacks {', '.join(missing)}: answers marked unknown need them; "
            f"run as root")


def _tri(result: Result) -> Optional[bool]:
    return None if result.support is Support.UNKNOWN else bool(result)


def _detail(feat: Feature, result: Result) -> Dict[str, object]:
    return {"support": result.support.value, "reason": result.reason,
            "since": "%d.%d" % feat.since if feat.since else None, "config": feat.config}


def report(*, helpers: bool = True) -> Dict[str, object]:
    """Everything, as JSON-ready data. ``program_types``, ``map_types`` and ``misc``
    use bpftool's keys (``have_xdp_prog_type``) with true, false or null (unknown);
    ``helpers`` maps ``<type>_available_helpers`` to helper names (null when the
    program type itself is unknown or restricted here); ``links`` per kind
    of target and ``link_attach_types`` per attach type;
    ``details`` has, per probe key, the answer, its reason, ``since`` and ``config``;
    ``privileges`` has ``missing_capabilities`` (names) and ``note`` (see
    :func:`privilege_note`; empty when nothing is missing)."""
    details: Dict[str, object] = {}
    progs: Dict[str, Optional[bool]] = {}
    maps: Dict[str, Optional[bool]] = {}
    misc: Dict[str, Optional[bool]] = {}
    links: Dict[str, Optional[bool]] = {}
    for feat in _PROG_FEATURES.values():
        res = probe(feat)
        progs[f"have_{feat.name}_prog_type"] = _tri(res)
        details[feat.key] = _detail(feat, res)
    for feat in _MAP_FEATURES.values():
        res = probe(feat)
        maps[f"have_{feat.name}_map_type"] = _tri(res)
        details[feat.key] = _detail(feat, res)
    for feat in MISC_FEATURES.values():
        res = probe(feat)
        misc[feat.name] = _tri(res)
        details[feat.key] = _detail(feat, res)
    for feat in LINK_FEATURES.values():
        res = probe(feat)
        links[feat.name] = _tri(res)
        details[feat.key] = _detail(feat, res)
    per_attach = {t.name.lower(): _tri(link_support(t)) for t in AttachType}
    out: Dict[str, object] = {"privileges": {"missing_capabilities": missing_capabilities(),
                                             "note": privilege_note()},
                              "system": system_info(), "program_types": progs,
                              "map_types": maps, "misc": misc, "links": links,
                              "link_attach_types": per_attach}
    if helpers:
        table: Dict[str, Optional[List[str]]] = {}
        for t in _PROG_FEATURES:
            kind = probe(_PROG_FEATURES[t])
            if kind.support in (Support.UNKNOWN, Support.RESTRICTED):
                table[f"{t.name.lower()}_available_helpers"] = None
                continue
            names = [f"bpf_{h.name}" for h in all_helpers() if helper_support(t, h.id)]
            table[f"{t.name.lower()}_available_helpers"] = names
        out["helpers"] = table
    out["details"] = details
    return out
