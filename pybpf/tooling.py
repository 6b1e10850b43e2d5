"""Shared pieces of the tools in ``programs/``: argument parsing conventions, the run
loop with clean Ctrl-C handling, and output helpers.

A tool is one file: its BPF programs (decorated functions of :mod:`pybpf.dsl`) and a
``main(argv)`` that parses BCC's flags, loads the module with load-time constants, prints
the header once everything is attached (tests wait for it), prints events as they come,
and prints summaries at the end. The layer is the top one: it may use everything.
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
import time
from typing import Any, Callable, Iterable, List, Mapping, Optional, Sequence

__all__ = ["disk_name", "ip_address", "add_interval_args", "summary_heading", "take_log2", "take_keyed_log2",
           "ToolParser", "load_tool", "run_tool", "errno_name", "Clock", "positive_int",
           "comm_of", "line_buffered"]


def positive_int(text: str) -> int:
    """argparse type: an integer > 0."""
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be positive")
    return value


class ToolParser(argparse.ArgumentParser):
    """An argparse parser for a tool: ``examples`` go in the epilog, as BCC prints them."""

    def __init__(self, prog: str, description: str, examples: Sequence[str] = ()) -> None:
        epilog = "examples:\n" + "\n".join(f"    {e}" for e in examples) if examples else None
        super().__init__(prog=prog, description=description, epilog=epilog,
                         formatter_class=argparse.RawDescriptionHelpFormatter)


def line_buffered() -> None:
    """Make stdout line-buffered (events reach a pipe as soon as they are printed)."""
    try:
        sys.stdout.reconfigure(line_buffering=True)        # type: ignore[attr-defined]
    except (AttributeError, ValueError):                   # pragma: no cover
        pass


def _sigterm_as_interrupt() -> None:
    """SIGTERM and SIGINT both end a tool cleanly (KeyboardInterrupt); SIGINT is restored
    even when the tool was started as a background job, which inherits it ignored."""
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, handler)
    except ValueError:                                      # pragma: no cover (not main thread)
        pass


def load_tool(module_name: str, consts: Optional[Mapping[str, int]] = None,
              programs: Optional[Iterable[str]] = None) -> Any:
    """Compile and load the BPF programs of the tool module ``module_name`` (pass
    ``__name__``); returns the :class:`pybpf.dsl.loader.LoadedModule`."""
    from .dsl import load
    line_buffered()
    _sigterm_as_interrupt()
    return load(sys.modules[module_name], consts=consts, programs=programs)


def run_tool(mod: Any, *, duration: Optional[float] = None, interval: Optional[float] = None,
             count: Optional[int] = None, on_interval: Optional[Callable[[], Any]] = None,
             until: Optional[Callable[[], bool]] = None,
             header: Optional[str] = None,
             summary: Optional[Callable[[], Any]] = None) -> None:
    """Poll ``mod``'s events until Ctrl-C/SIGTERM, ``duration`` seconds, or ``count``
    intervals; ``on_interval`` runs every ``interval`` seconds. ``summary`` is BCC's
    interval summary: printed every ``interval`` seconds and once more at the end,
    unless the run ended right after the ``count``-th. ``header`` is printed first,
    inside the Ctrl-C handling: a Ctrl-C that arrives just after the header (a test
    reacting to it) ends the run quietly instead of raising."""
    if interval is not None and count is not None and duration is None:
        duration = interval * count
    printed = [0]
    if summary is not None:
        def tick() -> None:
            printed[0] += 1
            summary()
        on_interval = tick
    try:
        _run(mod, duration, interval, on_interval, until, header)
    finally:
        if summary is not None and (not count or printed[0] < count):
            try:
                summary()                     # Ctrl-C (or no interval): the last one
            except BrokenPipeError:
                pass


def _run(mod: Any, duration: Optional[float], interval: Optional[float],
         on_interval: Optional[Callable[[], Any]], until: Optional[Callable[[], bool]],
         header: Optional[str]) -> None:
    try:
        if header is not None:
            print(header)
        mod.run(duration, interval=interval, on_interval=on_interval, until=until)
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:
        # the reader went away (``pybpf run opensnoop | head``): stop quietly; the
        # caller's ``with`` still detaches everything
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def errno_name(value: int) -> str:
    """``ENOENT`` for -2 or 2; the number if unknown."""
    return errno.errorcode.get(abs(value), str(abs(value)))


class Clock:
    """Timestamps for event lines: seconds since the tool started (``-T`` style
    ``TIME(s)``), wall-clock ``%H:%M:%S``, and kernel monotonic ns converted."""

    def __init__(self) -> None:
        self.start_ns = time.monotonic_ns()
        self.start_wall = time.time()

    def elapsed(self, ktime_ns: Optional[int] = None) -> float:
        """Seconds since start (of the kernel timestamp ``ktime_ns`` when given)."""
        now = ktime_ns if ktime_ns is not None else time.monotonic_ns()
        return (now - self.start_ns) / 1e9

    @staticmethod
    def wall() -> str:
        """The current local time as ``HH:MM:SS``."""
        return time.strftime("%H:%M:%S")


def comm_of(pid: int) -> str:
    """The command name of process ``pid`` ("" if it is gone)."""
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def pids_of(name: str) -> List[int]:
    """The pids whose command name is ``name``."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and comm_of(int(entry)) == name:
            out.append(int(entry))
    return out


def add_interval_args(parser: argparse.ArgumentParser, count_name: str = "count") -> None:
    """BCC's trailing ``[interval [count]]`` arguments (``count_name`` where a tool's
    own flag already uses ``count``)."""
    parser.add_argument("interval", nargs="?", type=positive_int, default=None,
                        help="output interval, in seconds")
    parser.add_argument(count_name, nargs="?", type=positive_int, default=None,
                        help="number of outputs")


def summary_heading(timestamp: bool) -> None:
    """What precedes each BCC interval summary: an empty line, then ``HH:MM:SS`` with
    ``-T``."""
    print()
    if timestamp:
        print(f"{time.strftime('%H:%M:%S'):<8}")


def take_log2(hist: Any, slots: int = 64) -> List[int]:
    """The counts of a log2 histogram array map, which is then zeroed (interval mode)."""
    counts = [0] * slots
    for i, v in hist.items():
        index = int(getattr(i, "value", i))
        if 0 <= index < slots:
            counts[index] = int(v)
    for i in range(slots):
        if counts[i]:
            hist[i] = 0
    return counts


def take_keyed_log2(hists: Any, key_of: Callable[[Any], Any], slots: int = 64) -> dict:
    """Per-key log2 counts from a hash map keyed by a struct with a ``slot`` field
    (``key_of(key)`` names the histogram); the map is then cleared."""
    from collections import defaultdict
    per: dict = defaultdict(lambda: [0] * slots)
    for k, v in hists.items():
        if k.slot < slots:
            per[key_of(k)][k.slot] += int(v)
    hists.clear()
    return dict(per)


def ip_address(family: int, raw: Any) -> str:
    """The text of an address a program sent as bytes: the first 4 for ``AF_INET`` (2),
    all 16 otherwise (IPv6)."""
    import ipaddress
    if family == 2:
        return str(ipaddress.IPv4Address(bytes(raw[:4])))
    return str(ipaddress.IPv6Address(bytes(raw[:16])))


def disk_name(dev: int) -> str:
    """The name of the block device with kernel dev_t ``dev`` (major << 20 | minor), from
    sysfs; ``major:minor`` when it is gone."""
    major, minor = dev >> 20, dev & 0xFFFFF
    try:
        with open(f"/sys/dev/block/{major}:{minor}/uevent") as f:
            for line in f:
                if line.startswith("DEVNAME="):
                    return line.strip().split("=", 1)[1]
    except OSError:
        pass
    return f"{major}:{minor}"
