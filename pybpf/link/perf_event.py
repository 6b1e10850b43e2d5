"""Perf events: sampling programs (``BPF_PROG_TYPE_PERF_EVENT``, Linux 4.9) and counter
arrays that programs read.

* :func:`attach_perf_event` opens one sampling event per CPU (or one for a task) and
  attaches the program to each: ``attach_perf_event(prog, sample_freq=49)`` runs it 49
  times a second on every online CPU on the ``cpu-clock`` software timer, as BCC's
  ``profile`` does. Hardware events (``type=PerfType.HARDWARE``) need a CPU PMU; where
  there is none :class:`~pybpf.syscall.errors.NotSupportedError` is raised.
* :class:`CounterArray` fills a ``PERF_EVENT_ARRAY`` map with one counting event per CPU
  (a hardware counter such as cycles, or a software one): programs read the current
  CPU's value with ``bpf_perf_event_read`` (4.3) or ``bpf_perf_event_read_value``
  (4.15) and ``BPF_F_CURRENT_CPU`` as the index.
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence

from ..syscall import perf as _perf
from ..syscall.fd import FdLike
from ._ranges import U64_MAX, check_pid, check_range
from .base import Link, MultiLink
from .perf_link import attach_perf_event_fd

__all__ = ["attach_perf_event", "online_cpus", "parse_cpu_list", "CounterArray",
           "BPF_F_CURRENT_CPU"]

from ..syscall.cpus import online_cpus, parse_cpu_list  # noqa: E402  (re-exported)

#: the index meaning "this CPU" for bpf_perf_event_read/_value and perf_event_output
BPF_F_CURRENT_CPU = 0xFFFFFFFF


def attach_perf_event(prog: FdLike, *, type: int = _perf.PerfType.SOFTWARE,
                      config: int = _perf.SwId.CPU_CLOCK,
                      sample_freq: Optional[int] = None,
                      sample_period: Optional[int] = None,
                      cpus: Optional[Sequence[int]] = None, pid: int = -1,
                      cookie: int = 0, use_link: Optional[bool] = None) -> MultiLink:
    """Run a perf_event program on every sample of an event: ``sample_freq`` samples a
    second or one per ``sample_period`` events (exactly one of them). With ``pid`` >= 0
    the event follows that task on any CPU; otherwise one event per CPU in ``cpus``
    (default: every online CPU). Returns one link for all the events. Out-of-range
    ``sample_freq``/``sample_period``, ``pid`` or ``cookie``: :class:`ValueError` before
    any event is opened."""
    if (sample_freq is None) == (sample_period is None):
        raise ValueError("give sample_freq or sample_period (exactly one)")
    if sample_freq is not None:
        check_range("sample_freq", sample_freq, 1, U64_MAX, "a sampling frequency (Hz)")
    else:
        check_range("sample_period", sample_period, 1, U64_MAX, "a sample period")
    check_pid(pid)
    check_range("cookie", cookie, 0, U64_MAX, "a bpf_cookie", True)
    targets = [(pid, -1)] if pid >= 0 else [(-1, cpu) for cpu in (cpus or online_cpus())]
    links: List[Link] = []
    try:
        for p, cpu in targets:
            attr = _perf.PerfEventAttr(type=type, config=config, disabled=1)
            if sample_freq is not None:
                attr.freq = 1
                attr.sample_freq = sample_freq
            else:
                attr.sample_period = sample_period
            event = _perf.perf_event_open(attr, pid=p, cpu=cpu)
            where = f"pid {p}" if p >= 0 else f"cpu {cpu}"
            links.append(attach_perf_event_fd(prog, event, kind="perf_event",
                                              target=where, cookie=cookie,
                                              use_link=use_link,
                                              details={"cpu": cpu, "pid": p}))
    except BaseException:
        for link in links:
            link.close()
        raise
    rate = f"{sample_freq} Hz" if sample_freq is not None else f"every {sample_period}"
    return MultiLink("perf_event", f"type {type} config {config} {rate}", links)


class CounterArray:
    """A ``PERF_EVENT_ARRAY`` with one enabled counting event per online CPU, for
    ``bpf_perf_event_read_value(map, BPF_F_CURRENT_CPU, ...)``.

    ``type``/``config`` choose the counter (default: hardware cycles, which needs a CPU
    PMU: :class:`~pybpf.syscall.errors.NotSupportedError` otherwise; software counters
    such as ``SwId.TASK_CLOCK`` work everywhere). ``map`` is the
    :class:`~pybpf.maps.PerfEventArray` to reference from programs. ``close()`` closes
    the events and the map; it is a context manager. :meth:`read` reads one CPU's
    counter from user space.
    """

    def __init__(self, type: int = _perf.PerfType.HARDWARE,
                 config: int = _perf.HwId.CPU_CYCLES,
                 cpus: Optional[Sequence[int]] = None) -> None:
        from ..maps import PerfEventArray
        self.events: dict = {}
        self.map: Any = PerfEventArray()
        try:
            for cpu in (cpus or online_cpus()):
                attr = _perf.PerfEventAttr(type=type, config=config, disabled=1)
                attr.read_format = (_perf.ReadFormat.TOTAL_TIME_ENABLED |
                                    _perf.ReadFormat.TOTAL_TIME_RUNNING)
                event = _perf.perf_event_open(attr, pid=-1, cpu=cpu)
                self.events[cpu] = event
                self.map[cpu] = event
                _perf.enable(event)
        except BaseException:
            self.close()
            raise

    def read(self, cpu: int) -> int:
        """The counter of ``cpu`` as user space reads it (value, time enabled, time
        running: only the value is returned)."""
        import os
        import struct
        data = os.read(self.events[cpu].fileno(), 24)
        return struct.unpack("=QQQ", data)[0]

    def close(self) -> None:
        """Close the events and the map."""
        for event in self.events.values():
            event.close()
        self.events.clear()
        if self.map is not None:
            self.map.close()
            self.map = None

    def fileno(self) -> int:
        """The map's descriptor (so a CounterArray can stand for its map)."""
        return self.map.fileno()

    def __enter__(self) -> "CounterArray":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
