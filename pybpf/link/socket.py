"""Socket filters: a ``BPF_PROG_TYPE_SOCKET_FILTER`` program on one socket
(``setsockopt(SO_ATTACH_BPF)``, Linux 3.19).

The program sees each packet the socket would receive and returns how many bytes of it
to keep (0 drops it). The link keeps a reference to the socket and detaches with
``SO_DETACH_BPF`` on close (a closed socket needs nothing). One program per socket:
attaching again replaces it.
"""

from __future__ import annotations

import os
import socket as _socket
from typing import Any

from ..syscall.fd import FdLike, fd_number
from .base import Link

__all__ = ["attach_socket_filter", "SO_ATTACH_BPF", "SO_DETACH_BPF"]

#: socket options (asm-generic values; the same on x86, arm, riscv, s390, ppc)
SO_ATTACH_BPF = 50
SO_DETACH_BPF = 27


def _sock_of(sock: Any) -> _socket.socket:
    if isinstance(sock, _socket.socket):
        return sock
    return _socket.socket(fileno=os.dup(fd_number(sock)))


def attach_socket_filter(sock: Any, prog: FdLike) -> Link:
    """Attach a socket filter program to ``sock`` (a :class:`socket.socket`, or any
    object with ``fileno()``, or an fd: then a duplicate is held). Returns a link whose
    ``close()`` detaches it."""
    owned = not isinstance(sock, _socket.socket)
    s = _sock_of(sock)
    try:
        s.setsockopt(_socket.SOL_SOCKET, SO_ATTACH_BPF, fd_number(prog))
    except BaseException:
        if owned:
            s.close()
        raise

    def detach() -> None:
        if s.fileno() >= 0:
            try:
                s.setsockopt(_socket.SOL_SOCKET, SO_DETACH_BPF, 0)
            except OSError:
                pass            # nothing attached any more (replaced, or never)
            if owned:
                s.close()

    return Link("socket_filter", f"socket fd {s.fileno()}", None, undo=[detach],
                details={"socket": s})
