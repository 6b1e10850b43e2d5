"""The machine a benchmark ran on, as the first lines of its section in RESULTS.md."""

from __future__ import annotations

import os
import platform
import time
from typing import List


def machine_head() -> List[str]:
    """The date, and the kernel, architecture, CPU model, CPU count and memory."""
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return [f"- date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
            f"- machine: Linux {os.uname().release} {platform.machine()}, {cpu}, "
            f"{os.cpu_count()} CPUs, {mem:.0f} GiB"]


def load_line() -> str:
    """The load average now, with the reminder that the machine is shared."""
    return ("- load average at the start (1/5/15 min): "
            + " / ".join(f"{x:.2f}" for x in os.getloadavg())
            + " (the machine is shared; other work adds noise)")
