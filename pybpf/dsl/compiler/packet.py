"""Packets in the Python language: ``ctx.load(T, offset)`` (a pointer to a header of
type ``T`` at ``offset`` bytes into the packet, or None when the packet is shorter) and
the byte-order conversions (mixed into the function compiler)."""

from __future__ import annotations

import ast
from typing import Any

from ...compiler import types as T
from ...compiler.ir import FrameAddr, Operand, PtrType, VReg
from ...compiler.memory import CtxRef

__all__ = ["PacketMixin"]


#: where xdp_md / __sk_buff keep the packet's start and end pointers
_PACKET_FIELDS = {"xdp": (0, 4), "tc": (76, 80)}


class PacketMixin:
    """``ctx.load(T, offset)``: a pointer to a header of type ``T`` at ``offset`` bytes
    into the packet, or None when the packet is shorter (XDP and tc: direct packet
    access with the bounds check the verifier wants; socket filters: a copy made by
    ``bpf_skb_load_bytes``)."""

    def packet_load(self, ctx: CtxRef, node: ast.Call) -> VReg:
        kind = self.kind                                        # type: ignore[attr-defined]
        deco = kind.decorator if kind is not None else ""
        if deco not in ("xdp", "tc", "socket_filter"):
            raise self.error("ctx.load() reads packets: it works in @xdp, @tc and "  # type: ignore[attr-defined]
                             "@socket_filter programs", node)
        if len(node.args) != 2 or node.keywords:
            raise self.error("ctx.load(Type, offset) takes a struct type and an offset",  # type: ignore[attr-defined]
                             node, "e.g. eth = ctx.load(EthHdr, 0)")
        t = self.type_arg(node, 0)                              # type: ignore[attr-defined]
        size = T.sizeof(t)
        off = self.convert(self.expr(node.args[1]), T.u64)     # type: ignore[attr-defined]
        ok = self.label("inpacket")                             # type: ignore[attr-defined]
        if deco == "socket_filter":
            slot = self.temp(f"packet{size}", size)             # type: ignore[attr-defined]
            ret = self.vreg(T.i64)                              # type: ignore[attr-defined]
            self.emit("helper", dst=ret, name="skb_load_bytes",  # type: ignore[attr-defined]
                      args=(ctx.reg, off, FrameAddr(slot), size))
            ptr = self.vreg(PtrType(t, "packet"))               # type: ignore[attr-defined]
            self.emit("addr", dst=ptr, base=None, off=slot)     # type: ignore[attr-defined]
            self.emit("branch", name="eq", a=ret, b=0, target=ok)  # type: ignore[attr-defined]
        else:
            start_off, end_off = _PACKET_FIELDS[deco]
            data = self.vreg(PtrType(None, "packet"))           # type: ignore[attr-defined]
            end = self.vreg(PtrType(None, "packet"))            # type: ignore[attr-defined]
            self.emit("load", dst=data, base=ctx.reg, off=start_off, size=4)  # type: ignore[attr-defined]
            self.emit("load", dst=end, base=ctx.reg, off=end_off, size=4)  # type: ignore[attr-defined]
            ptr = self.vreg(PtrType(t, "packet"))               # type: ignore[attr-defined]
            self.emit("mov", dst=ptr, a=data)                   # type: ignore[attr-defined]
            if off != 0:
                self.emit("binop", name="add", dst=ptr, a=ptr, b=off)  # type: ignore[attr-defined]
            last = self.vreg(T.u64)                             # type: ignore[attr-defined]
            self.emit("mov", dst=last, a=VReg(ptr.id, T.u64))   # type: ignore[attr-defined]
            self.emit("binop", name="add", dst=last, a=last, b=size)  # type: ignore[attr-defined]
            self.emit("branch", name="ule", a=last, b=end, target=ok)  # type: ignore[attr-defined]
        self.emit("mov", dst=ptr, a=0)                          # type: ignore[attr-defined]
        self.emit("label", name=ok)                             # type: ignore[attr-defined]
        return ptr

    def byte_swap(self, v: Operand, bits: int, node: Any) -> VReg:
        """``ntohs``/``ntohl``/``htons``/``htonl``: network (big-endian) <-> host order."""
        t = {16: T.u16, 32: T.u32, 64: T.u64}[bits]
        src = self.materialize(self.convert(v, t), t)           # type: ignore[attr-defined]
        dst = self.vreg(t)                                      # type: ignore[attr-defined]
        self.emit("bswap", dst=dst, a=src, size=bits)           # type: ignore[attr-defined]
        return dst
