"""Tracepoints through perf events (``BPF_PROG_TYPE_TRACEPOINT``, Linux 4.7).

The event is opened with ``perf_event_open(PERF_TYPE_TRACEPOINT, id)`` (the id from
tracefs) and the program attached as :mod:`pybpf.link.perf_link` describes (a
``bpf_link`` on 5.15+, else ``PERF_EVENT_IOC_SET_BPF``). The program's context is the
event's record: :func:`pybpf.tracefs.event_format` gives the offset of each field
(``fmt.args.filename.offset``).
"""

from __future__ import annotations

from typing import Optional

from .. import tracefs as _tracefs
from ..syscall import perf as _perf
from ..syscall.fd import FdLike
from .base import Link
from .perf_link import attach_perf_event_fd

__all__ = ["attach_tracepoint", "tracepoint_format"]


def attach_tracepoint(prog: FdLike, group: str, name: Optional[str] = None, *,
                      cookie: int = 0, use_link: Optional[bool] = None) -> Link:
    """Attach a tracepoint program to ``group:name`` (``attach_tracepoint(p,
    "syscalls:sys_enter_openat")`` or ``attach_tracepoint(p, "syscalls",
    "sys_enter_openat")``) on every CPU.

    Raises :class:`~pybpf.tracefs.UnknownTracepointError` (a :class:`LookupError`)
    with close matches for a tracepoint that does not exist. ``cookie`` is Linux 5.15.
    """
    group, name = _tracefs.split_event(group, name)
    tp_id = _tracefs.event_id(group, name)
    event = _perf.perf_event_open(_perf.tracepoint_attr(tp_id), pid=-1, cpu=0)
    return attach_perf_event_fd(prog, event, kind="tracepoint", target=f"{group}:{name}",
                                cookie=cookie, use_link=use_link,
                                details={"id": tp_id})


def tracepoint_format(group: str, name: Optional[str] = None) -> _tracefs.EventFormat:
    """The record layout of ``group:name`` (see :func:`pybpf.tracefs.event_format`)."""
    return _tracefs.event_format(group, name)
