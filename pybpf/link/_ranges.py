"""Range checks of the attach APIs' integer arguments, made before anything is written
to tracefs or any perf event is opened: a value the kernel field cannot hold would
otherwise be truncated by ctypes into a different, valid-looking one."""

from __future__ import annotations

#: pids as ``perf_event_open`` takes them (``pid_t``); -1 is "every process"
PID_T_MAX = 2**31 - 1
#: file offsets of uprobes (``loff_t``, never negative)
LOFF_T_MAX = 2**63 - 1
#: 64-bit values (addresses, cookies)
U64_MAX = 2**64 - 1
#: offsets into a kernel function (``struct kprobe``'s ``offset`` is 32 bits)
U32_MAX = 2**32 - 1


def check_range(name: str, value: object, low: int, high: int, what: str,
                hexadecimal: bool = False) -> int:
    """``value`` if it is an integer in ``low..high``; else :class:`TypeError` (not an
    integer) or :class:`ValueError` naming ``name``, the value, ``what`` it is and the
    range."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, not {type(value).__name__}")
    if not low <= value <= high:
        show = (lambda v: f"{v:#x}" if v >= 0 else f"-{-v:#x}") if hexadecimal else str
        raise ValueError(f"{name} {show(value)} is out of range: {what} must be "
                         f"{show(low)}..{show(high)}")
    return value


def check_pid(value: object) -> int:
    """A pid argument of an attach call: -1 (every process) or 0..2**31-1 (``pid_t``)."""
    if value == -1 and not isinstance(value, bool):
        return -1
    return check_range("pid", value, 0, PID_T_MAX, "a pid (or -1 for every process)")
