"""tc programs (``BPF_PROG_TYPE_SCHED_CLS``) on a device's ingress or egress.

Ways, in order: a TCX link (``BPF_LINK_CREATE`` with ``BPF_TCX_INGRESS``/``EGRESS``,
Linux 6.6), which needs no qdisc and detaches when closed; otherwise rtnetlink: a
``clsact`` qdisc (created if absent, Linux 4.5) and a ``bpf`` filter in direct-action
mode (``TCA_BPF_FLAG_ACT_DIRECT``, 4.4) at ``priority``/``handle``, deleted on close
(and the qdisc too when this link created it and no filter is left on it). The program
returns a ``TC_ACT_*`` verdict (0 OK, 2 SHOT, -1 UNSPEC: go on with the next).
"""

from __future__ import annotations

import errno as _errno
import struct
from typing import Union

from ..syscall import progs as _progs
from ..syscall.bpf import AttachType
from ..syscall.errors import NotSupportedError
from ..syscall.fd import FdLike, fd_number
from . import netlink as _nl
from .base import Link

__all__ = ["attach_tc", "TC_MODES", "TC_H_CLSACT", "TC_H_MIN_INGRESS", "TC_H_MIN_EGRESS"]

TC_MODES = ("auto", "tcx", "netlink")
TC_H_CLSACT = 0xFFFFFFF1
TC_H_MIN_INGRESS, TC_H_MIN_EGRESS = 0xFFF2, 0xFFF3
_CLSACT_HANDLE = 0xFFFF0000
_TCA_KIND, _TCA_OPTIONS = 1, 2
_TCA_BPF_FD, _TCA_BPF_NAME, _TCA_BPF_FLAGS = 6, 7, 8
_TCA_BPF_FLAG_ACT_DIRECT = 1
_ETH_P_ALL = 0x0003


def _parent(direction: str) -> int:
    return (_CLSACT_HANDLE | (TC_H_MIN_INGRESS if direction == "ingress"
                              else TC_H_MIN_EGRESS))


def _info(priority: int) -> int:
    return (priority << 16) | struct.unpack("<H", struct.pack(">H", _ETH_P_ALL))[0]


def _ensure_clsact(nl: _nl.RtNetlink, ifindex: int) -> bool:
    """Create the clsact qdisc; True if this call created it."""
    try:
        nl.request(_nl.RTM_NEWQDISC, _nl.tcmsg(ifindex, _CLSACT_HANDLE, TC_H_CLSACT) +
                   _nl.attr(_TCA_KIND, "clsact"), _nl.NLM_F_CREATE | _nl.NLM_F_EXCL,
                   what="add clsact qdisc")
        return True
    except OSError as exc:
        if exc.errno == _errno.EEXIST:
            return False
        raise


def _filters_left(nl: _nl.RtNetlink, ifindex: int) -> int:
    return sum(len(nl.dump(_nl.RTM_GETTFILTER, _nl.tcmsg(ifindex, 0, _parent(d))))
               for d in ("ingress", "egress"))


def _netlink_attach(prog: FdLike, ifindex: int, direction: str, priority: int,
                    handle: int, name: str) -> Link:
    parent, info = _parent(direction), _info(priority)
    # the socket stays open for the link's life: it belongs to this network namespace,
    # so the filter is removed from the right device wherever close() is called from
    nl = _nl.RtNetlink()
    try:
        created = _ensure_clsact(nl, ifindex)
        try:
            nl.request(_nl.RTM_NEWTFILTER, _nl.tcmsg(ifindex, handle, parent, info) +
                       _nl.attr(_TCA_KIND, "bpf") + _nl.nested(
                           _TCA_OPTIONS, _nl.attr(_TCA_BPF_FD, fd_number(prog)),
                           _nl.attr(_TCA_BPF_NAME, name or "pybpf"),
                           _nl.attr(_TCA_BPF_FLAGS, _TCA_BPF_FLAG_ACT_DIRECT)),
                       _nl.NLM_F_CREATE | _nl.NLM_F_EXCL, what="add bpf filter")
        except BaseException:
            if created:
                _delete_qdisc(nl, ifindex)
            raise
    except BaseException:
        nl.close()
        raise

    def undo() -> None:
        try:
            try:
                nl.request(_nl.RTM_DELTFILTER, _nl.tcmsg(ifindex, handle, parent, info) +
                           _nl.attr(_TCA_KIND, "bpf"), what="delete bpf filter")
            except OSError as exc:
                if exc.errno not in (_errno.ENOENT, _errno.ENODEV):
                    raise
            if created and _filters_left(nl, ifindex) == 0:
                _delete_qdisc(nl, ifindex)
        finally:
            nl.close()

    return Link("tc", f"ifindex {ifindex} {direction}", None, undo=[undo],
                details={"via": "netlink", "ifindex": ifindex, "direction": direction,
                         "priority": priority, "handle": handle,
                         "created_qdisc": created})


def _delete_qdisc(nl: _nl.RtNetlink, ifindex: int) -> None:
    try:
        nl.request(_nl.RTM_DELQDISC, _nl.tcmsg(ifindex, _CLSACT_HANDLE, TC_H_CLSACT) +
                   _nl.attr(_TCA_KIND, "clsact"), what="delete clsact qdisc")
    except OSError as exc:
        if exc.errno not in (_errno.ENOENT, _errno.ENODEV, _errno.EINVAL):
            raise


def attach_tc(prog: FdLike, iface: Union[str, int], direction: str = "ingress", *,
              mode: str = "auto", priority: int = 1, handle: int = 1,
              name: str = "") -> Link:
    """Attach a tc program to ``iface`` (name or index) on ``direction``
    (``"ingress"`` or ``"egress"``). ``mode``: ``"auto"`` (TCX, else netlink),
    ``"tcx"`` or ``"netlink"``. ``priority``/``handle``/``name`` are for the netlink
    filter (several programs coexist at different priorities)."""
    if direction not in ("ingress", "egress"):
        raise ValueError(f"direction must be 'ingress' or 'egress', not {direction!r}")
    if mode not in TC_MODES:
        raise ValueError(f"mode must be one of {TC_MODES}, not {mode!r}")
    if not 0 < priority < 0x10000 or not 0 < handle < 0x100000000:
        raise ValueError("priority must be 1..65535 and handle 1..2**32-1")
    ifindex = _nl.ifindex_of(iface)
    if mode in ("auto", "tcx"):
        attach_type = (AttachType.TCX_INGRESS if direction == "ingress"
                       else AttachType.TCX_EGRESS)
        try:
            fd = _progs.link_create(prog, attach_type, target_ifindex=ifindex)
            return Link("tcx", f"{iface} {direction}", fd, is_bpf_link=True,
                        details={"via": "tcx", "ifindex": ifindex,
                                 "direction": direction})
        except OSError as exc:
            refused = isinstance(exc, NotSupportedError) or exc.errno in (
                _errno.EINVAL, _errno.EOPNOTSUPP, _progs.ENOTSUPP)
            if mode == "tcx" or not refused:
                if refused:
                    raise NotSupportedError("TCX links", (6, 6), errnum=exc.errno or 0,
                                            command="BPF_LINK_CREATE") from exc
                raise
    return _netlink_attach(prog, ifindex, direction, priority, handle, name)
