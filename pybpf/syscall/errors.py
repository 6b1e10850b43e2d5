"""Errors of the system-call layer: :class:`OSError` subclasses that keep ``errno``
and add the command that failed and a hint about the usual cause."""

from __future__ import annotations

import errno as _errno
import os
from typing import Dict, Optional, Tuple

__all__ = ["BPFError", "BPFPermissionError", "NotSupportedError", "VerifierError", "bpf_error",
           "hint_for"]


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
    """A program the kernel refused to load. ``log`` is the verifier's whole log (may be
    empty if the kernel gave none); ``str()`` shows its last lines."""

    #: how many trailing log lines ``str()`` shows
    TAIL_LINES = 20

    def __init__(self, errnum: int, message: str = "", *, command: str = "BPF_PROG_LOAD",
                 hint: str = "", log: str = "") -> None:
        super().__init__(errnum, message, command=command, hint=hint)
        self.log = log

    def __str__(self) -> str:
        text = super().__str__()
        lines = [ln for ln in self.log.rstrip("\n").split("\n") if ln]
        if not lines:
            return text
        shown = lines[-self.TAIL_LINES:]
        more = (f"  ... {len(lines) - len(shown)} earlier lines in .log\n"
                if len(lines) > len(shown) else "")
        return text + "\nverifier log:\n" + more + "\n".join("  " + ln for ln in shown)


# errno -> hint, per command first, then for any command
_HINTS: Dict[Tuple[Optional[str], int], str] = {
    (None, _errno.EPERM): "needs root or CAP_BPF (plus CAP_PERFMON or CAP_NET_ADMIN for "
                          "some program types); see sysctl kernel.unprivileged_bpf_disabled",
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
    ("BPF_PROG_LOAD", _errno.E2BIG): "the program has too many instructions",
    ("BPF_PROG_LOAD", _errno.ENOSPC): "the verifier log buffer is too small",
    # 524 is the kernel-internal ENOTSUPP, which leaks to user space from test_run
    ("BPF_PROG_TEST_RUN", 524):
        "this program type cannot be run with BPF_PROG_TEST_RUN",
    ("BPF_PROG_TEST_RUN", _errno.EINVAL): "bad input for this program type (an XDP "
                                          "program needs at least 14 bytes of packet data)",
    ("BPF_PROG_TEST_RUN", _errno.ENOSPC): "the output buffer is too small for the result",
}


def hint_for(command: str, errnum: int) -> str:
    """The usual cause of ``errnum`` for ``command``, or an empty string."""
    return _HINTS.get((command, errnum)) or _HINTS.get((None, errnum), "")


def bpf_error(command: str, errnum: int, message: str = "") -> BPFError:
    """The exception to raise for a failed ``command``: a :class:`BPFPermissionError` for
    ``EPERM``, else a :class:`BPFError`, with a hint."""
    cls = BPFPermissionError if errnum == _errno.EPERM else BPFError
    return cls(errnum, message, command=command, hint=hint_for(command, errnum))
