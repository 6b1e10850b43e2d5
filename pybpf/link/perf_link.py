"""Attaching a program to a perf event: the plumbing that tracepoints, kprobes, uprobes
and sampling events share.

Two ways, tried in this order:

1. ``BPF_LINK_CREATE`` with attach type ``BPF_PERF_EVENT`` (Linux 5.15): the program is
   held by a ``bpf_link`` (visible in ``bpftool link``, can carry a ``bpf_cookie``);
2. ``PERF_EVENT_IOC_SET_BPF`` (Linux 4.1): the perf event holds the program; closing the
   event detaches it.

The first refusal of (1) that means "this kernel has no perf_event links" is remembered
for the life of the process, so later attaches go straight to (2). A ``cookie`` needs
(1). Either way the event is enabled after the program is attached and the returned
:class:`~pybpf.link.base.Link` owns the event's descriptor.
"""

from __future__ import annotations

import errno as _errno
from typing import Any, Dict, Iterable, Optional

from ..syscall import perf as _perf
from ..syscall import progs as _progs
from ..syscall.bpf import AttachType
from ..syscall.errors import NotSupportedError
from ..syscall.fd import FD, FdLike
from .base import Link, Undo

__all__ = ["attach_perf_event_fd", "perf_links_supported"]

# None: not tried yet; True/False: what the kernel said
_perf_links: Optional[bool] = None


def perf_links_supported() -> Optional[bool]:
    """Whether ``BPF_LINK_CREATE`` took a perf event in this process (None: not tried
    yet)."""
    return _perf_links


def _link_refused(exc: OSError) -> bool:
    """Errors that mean the kernel has no perf_event links (not a problem of this
    program or event)."""
    return isinstance(exc, NotSupportedError) or exc.errno in (
        _errno.EINVAL, _errno.EOPNOTSUPP, _progs.ENOTSUPP)


def _explain(exc: OSError) -> None:
    if exc.errno == _errno.EEXIST and hasattr(exc, "hint"):
        exc.hint = ("this program is attached to this event already: the kernel takes a "
                    "program once per tracepoint/probe event (load a second copy)")


def attach_perf_event_fd(prog: FdLike, event: FD, *, kind: str, target: str,
                         cookie: int = 0, undo: Iterable[Undo] = (),
                         use_link: Optional[bool] = None,
                         details: Optional[Dict[str, Any]] = None) -> Link:
    """Attach ``prog`` to the perf event ``event`` (opened disabled) and enable it.

    The returned link owns ``event`` and runs ``undo`` after closing it. On failure
    ``event`` is closed and ``undo`` run before the error propagates. ``use_link``
    forces the ``bpf_link`` way (True) or the ioctl (False); default: the link when the
    kernel has it. A non-zero ``cookie`` (``bpf_get_attach_cookie``) needs Linux 5.15.
    """
    global _perf_links
    info = dict(details or {})
    steps = list(undo)
    try:
        want_link = use_link if use_link is not None else (_perf_links is not False)
        if cookie and use_link is False:
            raise ValueError("a bpf_cookie needs a bpf_link (use_link must not be False)")
        if want_link:
            try:
                link_fd = _progs.link_create(prog, AttachType.PERF_EVENT, event,
                                             bpf_cookie=cookie)
            except OSError as exc:
                _explain(exc)
                if use_link or cookie or not _link_refused(exc):
                    if cookie and _link_refused(exc):
                        raise NotSupportedError("bpf_cookie on perf events (BPF_LINK_CREATE"
                                                " with BPF_PERF_EVENT)", (5, 15),
                                                errnum=exc.errno or _errno.EINVAL,
                                                command="BPF_LINK_CREATE") from exc
                    raise
                if _perf_links is None:
                    _perf_links = False
            else:
                _perf_links = True
                try:
                    _perf.enable(event)
                except BaseException:
                    link_fd.close()
                    raise
                info["via"] = "bpf_link"
                return Link(kind, target, link_fd, is_bpf_link=True, fds=[event],
                            undo=steps, details=info)
        try:
            _perf.set_bpf(event, prog)
        except OSError as exc:
            _explain(exc)
            raise
        _perf.enable(event)
        info["via"] = "ioctl"
        return Link(kind, target, event, undo=steps, details=info)
    except BaseException:
        event.close()
        for step in reversed(steps):
            try:
                step()
            except Exception:
                pass
        raise
