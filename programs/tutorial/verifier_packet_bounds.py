#!/usr/bin/env python3
"""Lesson: the verifier and an unbounded packet access.

An XDP program reads the packet between ``ctx->data`` and ``ctx->data_end``. The
verifier lets a read through only when a comparison has proved it inside: after
``if data + 14 > data_end: ...`` the packet pointer's state says ``r=14`` (14 bytes
known readable). pybpf's ``ctx.load(T, off)`` writes that comparison for you and
returns None when the packet is too short, so a *constant* offset is always safe.

A *variable* offset is where it goes wrong, and here the language cannot help: the
program below compiles. In :func:`unbounded` the offset ``n`` is a ``u32`` read from
the packet: anything up to 4 GiB. ``ctx.load(Byte, n)`` still compares
``data + n + 1`` with ``data_end``, but the verifier tracks packet offsets only up to
64 KiB: with ``n`` unbounded it cannot keep ``r=`` on the pointer, so the check proves
nothing and the read is refused: **instruction 21** on the line ``return b.b``, the
load ``r2 = *(u8 *)(r1 +0)``, with ``invalid access to packet ... R1 offset is outside
of the packet``. Click the instructions of ``b = ctx.load(Byte, n)`` in the page: after
``r4 += r2`` R4 is a packet pointer with a variable part of ``umax=4294967295`` and
``r=0``; on the path where the comparison ``if r1 <= r3`` held (p2) R1 is still
``r=0``: nothing proved readable.

The fix, :func:`bounded`, keeps ``n`` small first (``n & 0xFF``): now the pointer's
variable part has ``umax=255``, the same comparison proves ``r=1`` on p2 and the read
passes.

Run ``python3 programs/tutorial/verifier_packet_bounds.py --html /tmp/lesson``
(as root); ``docs/img/explain-packet-bounds.png`` is the page.
"""

from pybpf.dsl import Struct, u8, u32, xdp


class Byte(Struct):
    b: u8


class Len32(Struct):
    n: u32


@xdp()
def unbounded(ctx):
    h = ctx.load(Len32, 0)
    if h:
        n = h.n                 # any u32: the verifier cannot bound data + n
        b = ctx.load(Byte, n)
        if b:
            return b.b          # refused here
    return 2


@xdp()
def bounded(ctx):
    h = ctx.load(Len32, 0)
    if h:
        n = h.n & 0xFF          # the fix: at most 255
        b = ctx.load(Byte, n)
        if b:
            return b.b
    return 2


def main(argv=None) -> int:
    from _explain_lesson import explain_lesson
    return explain_lesson("verifier_packet_bounds", ["verifier_packet_bounds.py"], argv)


if __name__ == "__main__":
    raise SystemExit(main())
