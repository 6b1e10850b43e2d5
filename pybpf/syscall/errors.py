"""Errors of the system-call layer: :class:`OSError` subclasses that keep ``errno``
and add the command that failed and a hint about the usual cause."""

from __future__ import annotations

import errno as _errno
import os
from typing import Dict, List, Optional, Tuple

__all__ = ["BPFError", "BPFPermissionError", "NotSupportedError", "VerifierError", "bpf_error",
           "hint_for", "permission_hint", "missing_capabilities", "has_capability", "OutOfRangeError",
           "check_range", "check_unsigned", "summarize_log", "LOG_HEAD_LINES", "LOG_TAIL_LINES"]


class BPFError(OSError):
    """A failed ``bpf()`` (or related) system call.

    ``errno`` and ``strerror`` are those of :class:`OSError`; ``command`` names the
    operation (``"BPF_MAP_CREATE"``); ``hint`` says what usually causes this errno for it.
    """

    def __init__(self, errnum: int, message: str = "", *, command: str = "",
                 hint: str = "") -> None:
        super().__init__(errnum, message or os.strerror(errnum))
        self.command = command
        self.hint = hint

    def __str__(self) -> str:
        name = _errno.errorcode.get(self.errno or 0, str(self.errno))
        head = f"{self.command}: " if self.command else ""
        tail = f" ({self.hint})" if self.hint else ""
        return f"{head}{self.strerror} [{name}]{tail}"


class OutOfRangeError(ValueError):
    """A number that does not fit where it goes (an attribute field, a constant of a
    declared type): ``name`` says what it is, ``value`` what was given and
    ``low``..``high`` the allowed range (``of`` names the type, such as ``u32``). Never
    silently cut: ``max_entries=2**32+5`` would otherwise create a 5-entry map."""

    def __init__(self, name: str, value: object, low: int, high: int, of: str = "") -> None:
        self.name, self.value, self.low, self.high, self.of = name, value, low, high, of
        where = f"{of} " if of else ""
        super().__init__(f"{name}={value!r} is out of range: {where}{low}..{high}")


def check_range(name: str, value: object, low: int, high: int, of: str = "") -> int:
    """``value`` (as a plain int) when it is an integer (``True`` counts as 1) within
    ``low``..``high``; else :class:`OutOfRangeError` (a ``TypeError`` for a
    non-integer, such as a float: it is never truncated)."""
    if not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, not {type(value).__name__} "
                        f"({value!r})")
    if not low <= value <= high:
        raise OutOfRangeError(name, value, low, high, of)
    return int(value)


def check_unsigned(name: str, value: object, bits: int = 32) -> int:
    """``value`` checked to fit an unsigned field of ``bits`` bits (``u32`` by
    default)."""
    return check_range(name, value, 0, (1 << bits) - 1, f"u{bits}")


class BPFPermissionError(BPFError, PermissionError):
    """``EPERM``: the caller lacks the capability the command needs."""


class NotSupportedError(BPFError):
    """This kernel lacks a feature: ``feature`` names it and ``min_version`` is the first
    Linux release that has it (``(5, 8)``), when known."""

    def __init__(self, feature: str, min_version: Optional[Tuple[int, int]] = None, *,
                 errnum: int = _errno.EOPNOTSUPP, command: str = "", detail: str = "") -> None:
        needs = f" (needs Linux {min_version[0]}.{min_version[1]} or later)" if min_version else ""
        super().__init__(errnum, f"{feature} is not supported by this kernel{needs}"
                         + (f": {detail}" if detail else ""), command=command)
        self.feature = feature
        self.min_version = min_version

    def __str__(self) -> str:
        head = f"{self.command}: " if self.command else ""
        return f"{head}{self.strerror}"


class VerifierError(BPFError):
    """A program the kernel refused to load. ``log`` is the verifier's log, or for a
    long one its first :data:`LOG_HEAD_LINES` and last :data:`LOG_TAIL_LINES` lines
    with a marker line between them (an exception never holds a log of unbounded
    size); ``log_lines`` counts the lines of the whole log, ``log_dropped`` those left
    out, and ``log_file`` names the file the whole log was written to (when the load was
    asked to). ``str()`` shows the log's last lines."""

    #: how many trailing log lines ``str()`` shows
    TAIL_LINES = 20

    def __init__(self, errnum: int, message: str = "", *, command: str = "BPF_PROG_LOAD",
                 hint: str = "", log: str = "", log_lines: Optional[int] = None,
                 log_dropped: int = 0, log_file: str = "") -> None:
        super().__init__(errnum, message, command=command, hint=hint)
        self.log = log
        self.log_lines = log.count("\n") + 1 if log_lines is None and log else (log_lines or 0)
        self.log_dropped = log_dropped
        self.log_file = log_file

    def log_note(self) -> str:
        """Where the whole log is: the file it was written to, or how many lines
        ``log`` leaves out (empty when it holds it all)."""
        if self.log_file:
            return f"the whole log ({self.log_lines} lines) is in {self.log_file}"
        if self.log_dropped:
            return (f"{self.log_dropped} of its {self.log_lines} lines are left out of "
                    ".log; load with a log file (log_file=) to keep them all")
        return ""

    def __str__(self) -> str:
        text = super().__str__()
        lines = [ln for ln in self.log.rstrip("\n").split("\n") if ln]
        if not lines:
            return text
        shown = lines[-self.TAIL_LINES:]
        more = (f"  ... {len(lines) - len(shown)} earlier lines in .log\n"
                if len(lines) > len(shown) else "")
        note = self.log_note()
        return (text + "\nverifier log" + (f" ({note})" if note else "") + ":\n" + more
                + "\n".join("  " + ln for ln in shown))


#: the first lines of a long verifier log kept in :attr:`VerifierError.log`
LOG_HEAD_LINES = 200
#: the last lines of a long verifier log kept in :attr:`VerifierError.log`
LOG_TAIL_LINES = 200
#: longer lines are cut to this many bytes in :attr:`VerifierError.log`
LOG_LINE_BYTES = 2048
_CHUNK = 1 << 20


def summarize_log(buffer: object, path: Optional[str] = None, *,
                  head: int = LOG_HEAD_LINES, tail: int = LOG_TAIL_LINES
                  ) -> Tuple[str, int, int]:
    """Read a NUL-terminated log in ``buffer`` (anything with the buffer protocol) in
    chunks, so memory stays bounded whatever its size: returns its first ``head`` and
    last ``tail`` lines (with a marker line where lines are left out), the number of
    lines in all and the number left out. ``path``: also write the whole log there."""
    from collections import deque
    view = memoryview(buffer).cast("B")  # type: ignore[arg-type]
    first: List[bytes] = []
    last: "deque[bytes]" = deque(maxlen=tail)
    total = 0
    partial = b""
    out = open(path, "wb") if path else None
    try:
        for off in range(0, len(view), _CHUNK):
            chunk = bytes(view[off:off + _CHUNK])
            end = chunk.find(b"\0")
            if end >= 0:
                chunk = chunk[:end]
            if out is not None:
                out.write(chunk)
            parts = (partial + chunk).split(b"\n")
            partial = parts.pop()
            if len(partial) > LOG_LINE_BYTES:
                partial = partial[:LOG_LINE_BYTES + 1]  # a line without end: keep a part
            total += len(parts)
            room = head - len(first)
            if room > 0:
                first.extend(parts[:room])
                parts = parts[room:]
            last.extend(parts)
            if end >= 0:
                break
    finally:
        if out is not None:
            out.close()
    if partial:
        total += 1
        (first if len(first) < head else last).append(partial)
    dropped = total - len(first) - len(last)

    def text(line: bytes) -> str:
        cut = line[:LOG_LINE_BYTES].decode(errors="replace")
        return cut + " ..." if len(line) > LOG_LINE_BYTES else cut

    kept = [text(ln) for ln in first]
    if dropped:
        kept.append(f"[... {dropped} lines left out ...]")
    kept.extend(text(ln) for ln in last)
    return "\n".join(kept) + ("\n" if total else ""), total, dropped


# errno -> hint, per command first, then for any command
_HINTS: Dict[Tuple[Optional[str], int], str] = {
    (None, _errno.ENOSYS): "the kernel has no bpf() system call (CONFIG_BPF_SYSCALL=n)",
    (None, _errno.E2BIG): "the attribute has non-zero fields this kernel does not know: "
                          "the kernel is older than the feature",
    (None, _errno.EBADF): "a file descriptor in the request is not open",
    (None, _errno.EINVAL): "the kernel rejected a field of the request (unknown type, flag "
                           "or size)",
    (None, _errno.EFAULT): "a pointer in the request is invalid",
    (None, _errno.ENOMEM): "out of memory, or the locked-memory limit (RLIMIT_MEMLOCK on "
                           "kernels before 5.11) is too low",
    ("BPF_MAP_LOOKUP_ELEM", _errno.ENOENT): "no element with this key",
    ("BPF_MAP_UPDATE_ELEM", _errno.E2BIG): "the map is full, or an array index is not "
                                           "below max_entries",
    ("BPF_MAP_UPDATE_ELEM", _errno.EEXIST): "the key exists and BPF_NOEXIST was given",
    ("BPF_MAP_UPDATE_ELEM", _errno.ENOENT): "the key does not exist and BPF_EXIST was given",
    ("BPF_MAP_CREATE", _errno.EINVAL): "unsupported map type, or key/value size or "
                                       "max_entries not valid for this map type",
    ("BPF_PROG_LOAD", _errno.EACCES): "the verifier rejected the program",
    ("BPF_PROG_LOAD", _errno.EINVAL): "the verifier or the loader rejected the program "
                                      "(invalid instruction, program type or attribute)",
    ("BPF_PROG_LOAD", _errno.ENOSPC): "the verifier log buffer is too small",
    ("BPF_PROG_LOAD", _errno.E2BIG): "the program has too many instructions (4096 for "
                                     "unprivileged loads and before Linux 5.2, else 1 "
                                     "million), or an attribute is newer than the kernel",
    ("BPF_BTF_LOAD", _errno.EINVAL): "the kernel rejected the BTF blob (see the log)",
    ("BPF_LINK_CREATE", _errno.EINVAL): "the program's type or expected_attach_type does "
                                        "not match the attach type, or the kernel does "
                                        "not support this attach type",
    ("BPF_LINK_CREATE", _errno.EBADF): "the target fd is not open",
    ("BPF_LINK_CREATE", _errno.ENOENT): "the target (function, symbol, tracepoint) does "
                                        "not exist",
    ("BPF_RAW_TRACEPOINT_OPEN", _errno.ENOENT): "no such raw tracepoint",
    ("BPF_OBJ_PIN", _errno.EEXIST): "the pin path exists already",
    ("BPF_OBJ_PIN", _errno.EPERM): "the pin path is not in a BPF filesystem",
    # 524 is the kernel-internal ENOTSUPP, which leaks to user space from test_run
    ("BPF_PROG_TEST_RUN", 524):
        "this program type cannot be run with BPF_PROG_TEST_RUN",
    ("BPF_PROG_TEST_RUN", _errno.EINVAL): "bad input for this program type (an XDP "
                                          "program needs at least 14 bytes of packet data)",
    ("BPF_PROG_TEST_RUN", _errno.ENOSPC): "the output buffer is too small for the result",
}


_CAP_NET_ADMIN, _CAP_SYS_ADMIN, _CAP_PERFMON, _CAP_BPF = 12, 21, 38, 39


def _effective_caps() -> Optional[int]:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _kernel_before(major: int, minor: int) -> bool:
    from .bpf import kernel_version    # late: bpf imports this module
    return kernel_version()[:2] < (major, minor)


_CAP_NAMES = {_CAP_NET_ADMIN: "CAP_NET_ADMIN", _CAP_SYS_ADMIN: "CAP_SYS_ADMIN",
              _CAP_PERFMON: "CAP_PERFMON", _CAP_BPF: "CAP_BPF"}


def _wanted_capabilities() -> Tuple[int, ...]:
    if _kernel_before(5, 8):
        return (_CAP_SYS_ADMIN,)
    return (_CAP_BPF, _CAP_PERFMON, _CAP_NET_ADMIN)


def has_capability(name: str) -> bool:
    """Whether this process's effective set holds capability ``name``
    (``"CAP_SYS_ADMIN"``); unreadable capabilities count as not held."""
    number = {v: k for k, v in _CAP_NAMES.items()}[name]
    caps = _effective_caps()
    return caps is not None and bool((caps >> number) & 1)


def missing_capabilities() -> List[str]:
    """The names of the BPF capabilities this process lacks, as the kernel counts them:
    CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN from Linux 5.8 (CAP_SYS_ADMIN stands in for
    the first two), CAP_SYS_ADMIN before; empty when it has them all. Unreadable
    capabilities count as all missing."""
    caps = _effective_caps()
    missing = [_CAP_NAMES[cap] for cap in _wanted_capabilities()
               if caps is None or not (caps >> cap) & 1]
    if caps is not None and (caps >> _CAP_SYS_ADMIN) & 1:
        missing = [c for c in missing if c not in ("CAP_BPF", "CAP_PERFMON")]
    return missing


def permission_hint(command: str = "") -> str:
    """Why ``EPERM`` is the likely answer here: missing root/capabilities (CAP_BPF and
    CAP_PERFMON from Linux 5.8, CAP_SYS_ADMIN before), the locked-memory limit on kernels
    before 5.11, or, when the caller has every capability, a security policy."""
    if _kernel_before(5, 8):
        parts = ["needs root (CAP_SYS_ADMIN)"]
    else:
        parts = ["needs root or CAP_BPF, plus CAP_PERFMON for tracing programs and "
                 "CAP_NET_ADMIN for networking ones"]
    missing = missing_capabilities()
    if missing:
        parts.append(f"this process lacks {', '.join(missing)} (unprivileged use is "
                     f"governed by sysctl kernel.unprivileged_bpf_disabled)")
    if _kernel_before(5, 11):
        parts.append("kernels before 5.11 also answer EPERM when RLIMIT_MEMLOCK is "
                     "exhausted: raise it (ulimit -l unlimited)")
    elif not missing:
        parts.append("this process has them, so a security policy refuses the request "
                     "(kernel lockdown, an LSM, seccomp or a container runtime)")
    return "; ".join(parts)


def hint_for(command: str, errnum: int) -> str:
    """The usual cause of ``errnum`` for ``command``, or an empty string."""
    specific = _HINTS.get((command, errnum))
    if specific:
        return specific
    if errnum == _errno.EPERM:
        return permission_hint(command)
    return _HINTS.get((None, errnum), "")


def bpf_error(command: str, errnum: int, message: str = "") -> BPFError:
    """The exception to raise for a failed ``command``: a :class:`BPFPermissionError` for
    ``EPERM``, else a :class:`BPFError`, with a hint."""
    cls = BPFPermissionError if errnum == _errno.EPERM else BPFError
    return cls(errnum, message, command=command, hint=hint_for(command, errnum))
