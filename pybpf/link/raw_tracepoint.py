"""Raw tracepoints (``BPF_PROG_TYPE_RAW_TRACEPOINT``, Linux 4.17).

``BPF_RAW_TRACEPOINT_OPEN`` attaches the program straight to the tracepoint, with the
tracepoint's C arguments (not the formatted record) as an array of u64 in the context:
``ctx[0]`` is the first argument. Names are the event names without their group
(``"sched_switch"``); the system-call tracepoints are ``"sys_enter"`` and
``"sys_exit"``. Writable raw tracepoints (``RAW_TRACEPOINT_WRITABLE``, 5.2) attach the
same way. The result is a ``bpf_link`` (``bpftool link`` lists it).
"""

from __future__ import annotations

import errno as _errno
from typing import List

from .. import tracefs as _tracefs
from ..syscall import progs as _progs
from ..syscall.fd import FdLike
from .base import Link

__all__ = ["attach_raw_tracepoint", "raw_tracepoint_names"]


def raw_tracepoint_names() -> List[str]:
    """Names a raw tracepoint can attach to (from tracefs' event list: every event name,
    plus ``sys_enter``/``sys_exit``), sorted."""
    names = {ev.partition(":")[2] for ev in _tracefs.list_events()}
    names.update(("sys_enter", "sys_exit"))
    return sorted(names)


def attach_raw_tracepoint(prog: FdLike, name: str, *, cookie: int = 0) -> Link:
    """Attach a raw tracepoint program to tracepoint ``name`` (a ``"group:name"`` form
    is accepted; the group is ignored). Raises
    :class:`~pybpf.tracefs.UnknownTracepointError` with close matches for an unknown
    tracepoint. ``cookie`` is Linux 6.10."""
    if ":" in name:
        name = name.partition(":")[2]
    _tracefs.validate_name(name, "raw tracepoint name")
    try:
        fd = _progs.raw_tracepoint_open(prog, name, cookie=cookie)
    except OSError as exc:
        if exc.errno == _errno.ENOENT:
            try:
                names = raw_tracepoint_names()
            except OSError:
                names = []
            raise _tracefs.UnknownTracepointError(
                "raw tracepoint", name, _tracefs.close_matches(name, names)) from None
        raise
    return Link("raw_tracepoint", name, fd, is_bpf_link=True)
