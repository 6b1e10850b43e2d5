"""CPU lists from sysfs: which CPUs may exist (the size of a per-CPU map value) and
which are online (where perf buffers open a ring). Stdlib only."""

from __future__ import annotations

from typing import List, Optional

__all__ = ["parse_cpu_list", "possible_cpus", "online_cpus"]

_possible: Optional[int] = None


def parse_cpu_list(text: str) -> List[int]:
    """The CPU numbers of a kernel CPU list such as ``"0-3,5,7-8"``."""
    cpus: List[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        low, _, high = part.partition("-")
        cpus.extend(range(int(low), int(high or low) + 1))
    return cpus


def possible_cpus() -> int:
    """How many CPUs the kernel may ever bring up: the number of entries in a per-CPU
    value (read once from ``/sys/devices/system/cpu/possible``)."""
    global _possible
    if _possible is None:
        with open("/sys/devices/system/cpu/possible", "rb") as fh:  # bytes: no codec
            _possible = len(parse_cpu_list(fh.read().decode("ascii")))   # module to import
    return _possible


def online_cpus() -> List[int]:
    """The numbers of the CPUs that are online now."""
    with open("/sys/devices/system/cpu/online", "rb") as fh:
        return parse_cpu_list(fh.read().decode("ascii"))
