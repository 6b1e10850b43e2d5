"""XDP programs on a network device (``BPF_PROG_TYPE_XDP``).

Ways, in order: an XDP ``bpf_link`` (``BPF_LINK_CREATE`` with ``BPF_XDP``, Linux 5.9),
which detaches itself when closed and cannot be replaced by accident; otherwise
rtnetlink (``IFLA_XDP``, Linux 4.8) with ``XDP_FLAGS_UPDATE_IF_NOEXIST``, undone on
close. ``mode`` picks where the program runs: ``"generic"`` (in the stack, any device,
Linux 4.12), ``"native"`` (in the driver), ``"offload"`` (on the NIC) or None (the
driver's choice, falling back to generic).
"""

from __future__ import annotations

import errno as _errno
from typing import Optional, Union

from ..syscall import progs as _progs
from ..syscall.bpf import AttachType
from ..syscall.errors import NotSupportedError
from ..syscall.fd import FdLike, fd_number
from . import netlink as _nl
from .base import Link

__all__ = ["attach_xdp", "XDP_MODES", "XDP_FLAGS_UPDATE_IF_NOEXIST"]

XDP_FLAGS_UPDATE_IF_NOEXIST = 1
#: mode -> XDP_FLAGS_* bit
XDP_MODES = {None: 0, "generic": 1 << 1, "native": 1 << 2, "offload": 1 << 3}
_IFLA_XDP, _IFLA_XDP_FD, _IFLA_XDP_FLAGS = 43, 1, 3


def _netlink_set(nl: _nl.RtNetlink, ifindex: int, prog_fd: int, flags: int) -> None:
    nl.request(_nl.RTM_SETLINK, _nl.ifinfomsg(ifindex) + _nl.nested(
        _IFLA_XDP, _nl.attr(_IFLA_XDP_FD, prog_fd, "=i"),
        _nl.attr(_IFLA_XDP_FLAGS, flags)), what="IFLA_XDP")


def attach_xdp(prog: FdLike, iface: Union[str, int], *, mode: Optional[str] = "generic",
               use_link: Optional[bool] = None) -> Link:
    """Attach an XDP program to network interface ``iface`` (name or index) in this
    process's network namespace. ``use_link`` forces the ``bpf_link`` (True) or the
    netlink way (False); by default the link is used where the kernel has it."""
    if mode not in XDP_MODES:
        raise ValueError(f"mode must be one of {list(XDP_MODES)}, not {mode!r}")
    ifindex = _nl.ifindex_of(iface)
    flags = XDP_MODES[mode]
    target = f"{iface}" if isinstance(iface, str) else f"ifindex {ifindex}"
    if use_link is not False:
        try:
            fd = _progs.link_create(prog, AttachType.XDP, target_ifindex=ifindex,
                                    flags=flags)
            return Link("xdp", target, fd, is_bpf_link=True,
                        details={"via": "bpf_link", "ifindex": ifindex, "mode": mode})
        except NotSupportedError:
            if use_link:
                raise
        except OSError as exc:
            # EINVAL also means "bad flags/device": only fall back when not forced
            if use_link or exc.errno not in (_errno.EINVAL, _errno.EOPNOTSUPP):
                raise
    # the socket is kept for the link's life: it stays in this network namespace, so the
    # detach reaches the same device wherever close() is called from
    nl = _nl.RtNetlink()
    try:
        _netlink_set(nl, ifindex, fd_number(prog), flags | XDP_FLAGS_UPDATE_IF_NOEXIST)
    except BaseException:
        nl.close()
        raise

    def undo() -> None:
        try:
            _netlink_set(nl, ifindex, -1, flags)
        finally:
            nl.close()

    return Link("xdp", target, None, undo=[undo],
                details={"via": "netlink", "ifindex": ifindex, "mode": mode})
