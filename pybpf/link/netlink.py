"""A small rtnetlink client in pure Python: just enough to attach XDP programs
(``IFLA_XDP``, for kernels before XDP links) and tc programs (a ``clsact`` qdisc and a
``bpf`` filter, for kernels before TCX links).

Each request is one ``NETLINK_ROUTE`` message with ``NLM_F_ACK``; the kernel's answer is
an ``NLMSG_ERROR`` whose error is 0 for success, else a negative errno, raised here as
:class:`OSError` naming the request. Dumps (``NLM_F_DUMP``) return the payloads of the
messages until ``NLMSG_DONE``.
"""

from __future__ import annotations

import itertools
import os
import socket
import struct
from typing import Iterator, List, Optional, Tuple, Union

__all__ = ["RtNetlink", "attr", "nested", "parse_attrs", "ifindex_of",
           "RTM_NEWLINK", "RTM_SETLINK", "RTM_NEWQDISC", "RTM_DELQDISC", "RTM_NEWTFILTER",
           "RTM_DELTFILTER", "RTM_GETTFILTER", "NLM_F_REQUEST", "NLM_F_ACK",
           "NLM_F_CREATE", "NLM_F_EXCL", "NLM_F_DUMP", "NLA_F_NESTED"]

NETLINK_ROUTE = 0
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK = 0x1, 0x2, 0x4
NLM_F_ROOT, NLM_F_MATCH = 0x100, 0x200
NLM_F_DUMP = NLM_F_ROOT | NLM_F_MATCH
NLM_F_REPLACE, NLM_F_EXCL, NLM_F_CREATE = 0x100, 0x200, 0x400
NLA_F_NESTED = 0x8000
RTM_NEWLINK, RTM_SETLINK = 16, 19
RTM_NEWQDISC, RTM_DELQDISC = 36, 37
RTM_NEWTFILTER, RTM_DELTFILTER, RTM_GETTFILTER = 44, 45, 46

_HDR = struct.Struct("=IHHII")
_seq = itertools.count(1)


def _pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def attr(kind: int, value: Union[bytes, str, int], fmt: str = "") -> bytes:
    """One netlink attribute: ``value`` as bytes, a NUL-terminated string, or an int
    packed with ``fmt`` (default ``"=I"``)."""
    if isinstance(value, str):
        data = value.encode() + b"\0"
    elif isinstance(value, int):
        data = struct.pack(fmt or "=I", value)
    else:
        data = bytes(value)
    return _pad(struct.pack("=HH", 4 + len(data), kind) + data)


def nested(kind: int, *attrs: bytes) -> bytes:
    """A nested attribute holding ``attrs``."""
    return attr(kind | NLA_F_NESTED, b"".join(attrs))


def parse_attrs(data: bytes) -> List[Tuple[int, bytes]]:
    """``(type, payload)`` of each attribute in ``data`` (the nested flag removed)."""
    out, pos = [], 0
    while pos + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, pos)
        if length < 4:
            break
        out.append((kind & ~NLA_F_NESTED, data[pos + 4:pos + length]))
        pos += (length + 3) & ~3
    return out


def ifindex_of(iface: Union[str, int]) -> int:
    """The index of a network interface given by name or index (``OSError`` ENODEV for
    an unknown name)."""
    if isinstance(iface, int) and not isinstance(iface, bool):
        return iface
    try:
        return socket.if_nametoindex(iface)
    except OSError:
        import errno
        raise OSError(errno.ENODEV, f"no network interface {iface!r} in this network "
                                    f"namespace") from None


class RtNetlink:
    """A ``NETLINK_ROUTE`` socket (a context manager)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                  NETLINK_ROUTE)
        try:
            self.sock.bind((0, 0))
        except OSError:
            self.sock.close()
            raise

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()

    def __enter__(self) -> "RtNetlink":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, msg_type: int, flags: int, payload: bytes) -> int:
        seq = next(_seq)
        msg = _HDR.pack(_HDR.size + len(payload), msg_type, flags | NLM_F_REQUEST, seq, 0)
        self.sock.send(msg + payload)
        return seq

    def _messages(self, seq: int) -> Iterator[Tuple[int, int, bytes]]:
        while True:
            data = self.sock.recv(65536)
            pos = 0
            while pos + _HDR.size <= len(data):
                length, mtype, flags, mseq, _pid = _HDR.unpack_from(data, pos)
                body = data[pos + _HDR.size:pos + length]
                pos += (length + 3) & ~3
                if mseq != seq:
                    continue
                yield mtype, flags, body

    def request(self, msg_type: int, payload: bytes, flags: int = 0, what: str = "") -> None:
        """Send one request and wait for its acknowledgement."""
        seq = self._send(msg_type, flags | NLM_F_ACK, payload)
        for mtype, _flags, body in self._messages(seq):
            if mtype == NLMSG_ERROR:
                err = -struct.unpack_from("=i", body)[0]
                if err:
                    raise OSError(err, f"rtnetlink {what or msg_type}: {os.strerror(err)}")
                return

    def dump(self, msg_type: int, payload: bytes) -> List[bytes]:
        """The payloads of a dump request's answers."""
        seq = self._send(msg_type, NLM_F_DUMP, payload)
        out: List[bytes] = []
        for mtype, _flags, body in self._messages(seq):
            if mtype == NLMSG_DONE:
                return out
            if mtype == NLMSG_ERROR:
                err = -struct.unpack_from("=i", body)[0]
                if err:
                    raise OSError(err, f"rtnetlink dump {msg_type}: {os.strerror(err)}")
                return out
            out.append(body)
        return out


def ifinfomsg(ifindex: int, family: int = 0) -> bytes:
    """``struct ifinfomsg`` for ``ifindex``."""
    return struct.pack("=BBHiII", family, 0, 0, ifindex, 0, 0)


def tcmsg(ifindex: int, handle: int = 0, parent: int = 0, info: int = 0) -> bytes:
    """``struct tcmsg``."""
    return struct.pack("=BBHiIII", 0, 0, 0, ifindex, handle, parent, info)


def parse_tcmsg(body: bytes) -> Tuple[int, int, int, int, Optional[List[Tuple[int, bytes]]]]:
    """(ifindex, handle, parent, info, attributes) of a tc message."""
    _f, _p1, _p2, ifindex, handle, parent, info = struct.unpack_from("=BBHiIII", body)
    return ifindex, handle, parent, info, parse_attrs(body[20:])
