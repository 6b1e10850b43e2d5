"""Building blocks both front ends lower to: map helper calls, atomic updates, ring
buffer output with the wake-up rule and drop counting, records reserved in a ring,
perf event output, stack ids, log2 slots (histograms), byte swaps and string tests.

Mixed into :class:`.lowering.Lowering`; each block takes values already lowered
(operands, places, helper arguments) and the front end's ``node`` only to locate an
error. The front ends decide what their syntax means and call these.
"""

from __future__ import annotations

from typing import Any, Callable, Tuple

from . import types as T
from .ir import FrameAddr, MapFd, Operand, PtrType, VReg
from .memory import Place
from .unit import DROPS_MAP

__all__ = ["BlocksMixin", "MapRef", "BPF_F_CURRENT_CPU", "BPF_F_USER_STACK", "BPF_NOEXIST"]

#: ``perf_event_output`` flag: the buffer of the current CPU
BPF_F_CURRENT_CPU = 0xFFFFFFFF
#: ``get_stackid`` flag: the user stack
BPF_F_USER_STACK = 1 << 8
#: ``map_update_elem`` flag: insert only
BPF_NOEXIST = 1


class MapRef:
    """A map declaration (:mod:`.maps`) used in a program, with its map name."""

    def __init__(self, decl: Any, name: str) -> None:
        self.decl = decl
        self.name = name


class BlocksMixin:
    """The building blocks (see the module docstring)."""

    # -- map helpers ---------------------------------------------------------------------
    def map_lookup(self, ref: MapRef, key: Any) -> VReg:
        """``map_lookup_elem(map, key)``: a nullable pointer to the value (``key``: a
        helper argument holding the key's address)."""
        dst = self.vreg(PtrType(ref.decl.value, "map", ref.decl.per_cpu))  # type: ignore[attr-defined]
        self.emit("helper", dst=dst, name="map_lookup_elem", args=(MapFd(ref.name), key))  # type: ignore[attr-defined]
        return dst

    def map_update_elem(self, ref: MapRef, key: Any, value: Any, flags: int = 0) -> VReg:
        """``map_update_elem(map, key, value, flags)`` (addresses as helper arguments);
        its result (0 or a negative error)."""
        ret = self.vreg(T.i64)                                  # type: ignore[attr-defined]
        self.emit("helper", dst=ret, name="map_update_elem",    # type: ignore[attr-defined]
                  args=(MapFd(ref.name), key, value, flags))
        return ret

    def map_delete_elem(self, ref: MapRef, key: Any) -> VReg:
        """``map_delete_elem(map, key)``; its result."""
        ret = self.vreg(T.i64)                                  # type: ignore[attr-defined]
        self.emit("helper", dst=ret, name="map_delete_elem",    # type: ignore[attr-defined]
                  args=(MapFd(ref.name), key))
        return ret

    def atomic_op(self, place: Place, name: str, value: Operand, negate: bool = False) -> None:
        """``place name= value`` as one atomic instruction: ``name`` is ``add`` (with
        ``negate``: a subtraction), ``or``, ``and`` or ``xor`` (those three need Linux
        5.12); ``place`` holds a 32- or 64-bit integer (the front end checks)."""
        t = place.type
        v = self.materialize(self.convert(value, t), t)         # type: ignore[attr-defined]
        if negate:
            n = self.vreg(t)                                    # type: ignore[attr-defined]
            self.emit("neg", dst=n, a=v)                        # type: ignore[attr-defined]
            v = n
        self.emit("atomic", base=place.base, off=place.off, size=t.bits // 8, a=v,  # type: ignore[attr-defined]
                  name=name)

    # -- ring buffers and perf buffers ----------------------------------------------------
    def ring_output(self, ref: MapRef, addr: Any, size: int) -> VReg:
        """``bpf_ringbuf_output`` with the ring's wake-up flags; a refused record (the
        ring is full) adds one to the ring's per-CPU drop counter, which
        :meth:`pybpf.dsl.loader.LoadedModule.lost` reads."""
        flags = self.wakeup_flags(ref, size)
        ret = self.vreg(T.i64)                                  # type: ignore[attr-defined]
        self.emit("helper", dst=ret, name="ringbuf_output",     # type: ignore[attr-defined]
                  args=(MapFd(ref.name), addr, size, flags))
        done = self.label("sent")                               # type: ignore[attr-defined]
        self.emit("branch", name="sge", a=ret, b=0, target=done)  # type: ignore[attr-defined]
        self.count_drop(ref)
        self.emit("label", name=done)                           # type: ignore[attr-defined]
        return ret

    def ring_reserve(self, ref: MapRef, t: Any, size: int) -> Tuple[VReg, str, str]:
        """``bpf_ringbuf_reserve`` of a ``size``-byte record of type ``t``, zeroed (Linux
        5.8). Returns the record's pointer (a local register), the label where a full
        ring goes and the label after the record: emit the record's code, then
        :meth:`ring_submit`."""
        ptr = self.vreg(PtrType(t, "map", True), local=True)    # type: ignore[attr-defined]
        self.emit("helper", dst=ptr, name="ringbuf_reserve",    # type: ignore[attr-defined]
                  args=(MapFd(ref.name), size, 0))
        full, end = self.label("ringfull"), self.label("reserved")  # type: ignore[attr-defined]
        self.emit("branch", name="eq", a=ptr, b=0, target=full)  # type: ignore[attr-defined]
        for off in range(0, size - size % 8, 8):                # reserved memory is not zeroed
            self.emit("store", base=ptr, off=off, size=8, a=0)  # type: ignore[attr-defined]
        for off in range(size - size % 8, size):
            self.emit("store", base=ptr, off=off, size=1, a=0)  # type: ignore[attr-defined]
        return ptr, full, end

    def ring_submit(self, ref: MapRef, ptr: VReg, size: int, full: str, end: str) -> None:
        """Submit the record :meth:`ring_reserve` gave (with the wake-up flags); a full
        ring lands here and counts a drop."""
        self.emit("helper", name="ringbuf_submit",              # type: ignore[attr-defined]
                  args=(ptr, self.wakeup_flags(ref, size, reserved=True)))
        self.emit("jump", target=end)                           # type: ignore[attr-defined]
        self.emit("label", name=full)                           # type: ignore[attr-defined]
        self.count_drop(ref)
        self.emit("label", name=end)                            # type: ignore[attr-defined]

    def count_drop(self, ref: MapRef) -> None:
        """Add one to ring ``ref``'s per-CPU drop counter."""
        slot = self.unit.drop_slot(ref.name)                    # type: ignore[attr-defined]
        done = self.label("counted")                            # type: ignore[attr-defined]
        off = self.temp("key", 4)                               # type: ignore[attr-defined]
        self.emit("store", base=None, off=off, size=4, a=slot)  # type: ignore[attr-defined]
        cell = self.vreg(PtrType(T.u64, "map"))                 # type: ignore[attr-defined]
        self.emit("helper", dst=cell, name="map_lookup_elem",   # type: ignore[attr-defined]
                  args=(MapFd(DROPS_MAP), FrameAddr(off)))
        self.emit("branch", name="eq", a=cell, b=0, target=done)  # type: ignore[attr-defined]
        n = self.vreg(T.u64)                                    # type: ignore[attr-defined]
        self.emit("load", dst=n, base=cell, off=0, size=8)      # type: ignore[attr-defined]
        self.emit("binop", name="add", dst=n, a=n, b=1)         # type: ignore[attr-defined]
        self.emit("store", base=cell, off=0, size=8, a=n)       # type: ignore[attr-defined]
        self.emit("label", name=done)                           # type: ignore[attr-defined]

    def wakeup_flags(self, ref: MapRef, size: int, reserved: bool = False) -> Operand:
        """The submit flags of the ring's wake-up policy for a ``size``-byte record:
        adaptive = force a wake-up only for the record whose footprint makes the fill
        level cross a quarter of the ring, else none (the rule and its bounds:
        :func:`pybpf.events.wakeup.adaptive_window`; Linux 5.8, ``ringbuf_query``).
        ``reserved``: the record is already reserved (counted in the fill level)."""
        if getattr(ref.decl, "wakeup", "per_event") != "adaptive":
            return 0
        from ..events.wakeup import adaptive_window
        low, high = adaptive_window(ref.decl.max_entries, size, reserved=reserved)
        avail = self.vreg(T.u64)                                # type: ignore[attr-defined]
        self.emit("helper", dst=avail, name="ringbuf_query",    # type: ignore[attr-defined]
                  args=(MapFd(ref.name), 0))
        flags = self.vreg(T.u64)                                # type: ignore[attr-defined]
        done = self.label("wake")                               # type: ignore[attr-defined]
        self.emit("mov", dst=flags, a=1)                        # type: ignore[attr-defined]  (no wake-up)
        if low:
            self.emit("binop", name="sub", dst=avail, a=avail, b=low)  # type: ignore[attr-defined]
        self.emit("branch", name="uge", a=avail, b=high - low, target=done)  # type: ignore[attr-defined]
        self.emit("mov", dst=flags, a=2)                        # type: ignore[attr-defined]  (force)
        self.emit("label", name=done)                           # type: ignore[attr-defined]
        return flags

    def perf_output(self, dst: VReg, ref: MapRef, ctx: VReg, addr: Any, size: int) -> VReg:
        """``bpf_perf_event_output(ctx, map, BPF_F_CURRENT_CPU, addr, size)`` into
        ``dst`` (Linux 4.4)."""
        self.emit("helper", dst=dst, name="perf_event_output",  # type: ignore[attr-defined]
                  args=(ctx, MapFd(ref.name), BPF_F_CURRENT_CPU, addr, size))
        return dst

    def stack_id(self, ref: MapRef, ctx: VReg, user: bool) -> VReg:
        """``bpf_get_stackid(ctx, map, flags)``: the id of the kernel (or ``user``)
        stack in stack trace map ``ref`` (Linux 4.6)."""
        dst = self.vreg(T.i64)                                  # type: ignore[attr-defined]
        self.emit("helper", dst=dst, name="get_stackid",        # type: ignore[attr-defined]
                  args=(ctx, MapFd(ref.name), BPF_F_USER_STACK if user else 0))
        return dst

    # -- numbers ----------------------------------------------------------------------
    def log2(self, v: Operand, node: Any) -> VReg:
        """The log2 slot of ``v``: 0 for 0, else its bit length (branch-light binary
        search over 32, 16, 8, 4, 2, 1 bits)."""
        x = self.vreg(T.u64)                                    # type: ignore[attr-defined]
        self.convert_into(x, self.convert(v, T.u64))            # type: ignore[attr-defined]
        r = self.vreg(T.u32)                                    # type: ignore[attr-defined]
        self.emit("mov", dst=r, a=0)                            # type: ignore[attr-defined]
        for s in (32, 16, 8, 4, 2, 1):
            t = self.vreg(T.u64)                                # type: ignore[attr-defined]
            skip = self.label("log2")                           # type: ignore[attr-defined]
            self.emit("binop", name="rsh", dst=t, a=x, b=s)     # type: ignore[attr-defined]
            self.emit("branch", name="eq", a=t, b=0, target=skip)  # type: ignore[attr-defined]
            self.emit("mov", dst=x, a=t)                        # type: ignore[attr-defined]
            self.emit("binop", name="add", dst=r, a=r, b=s)     # type: ignore[attr-defined]
            self.emit("label", name=skip)                       # type: ignore[attr-defined]
        self.emit("binop", name="add", dst=r, a=r, b=x)         # type: ignore[attr-defined]
        return r

    def byte_swap(self, v: Operand, bits: int, node: Any) -> VReg:
        """``v`` converted between network (big-endian) and host order on ``bits`` (16,
        32 or 64) bits."""
        t = {16: T.u16, 32: T.u32, 64: T.u64}[bits]
        src = self.materialize(self.convert(v, t), t)           # type: ignore[attr-defined]
        dst = self.vreg(t)                                      # type: ignore[attr-defined]
        self.emit("bswap", dst=dst, a=src, size=bits)           # type: ignore[attr-defined]
        return dst

    def bool_value(self, branch: Callable[[str, bool], None]) -> VReg:
        """0/1 in a register from a branch emitter ``branch(target, when)``."""
        dst = self.vreg(T.i32)                                  # type: ignore[attr-defined]
        false = self.label("false")                             # type: ignore[attr-defined]
        self.emit("mov", dst=dst, a=0)                          # type: ignore[attr-defined]
        branch(false, False)
        self.emit("mov", dst=dst, a=1)                          # type: ignore[attr-defined]
        self.emit("label", name=false)                          # type: ignore[attr-defined]
        return dst

    # -- strings ----------------------------------------------------------------------
    def readable_string(self, p: Place, role: str, node: Any) -> Place:
        """``p`` (a ``char[N]``) where it can be read byte by byte: itself on the stack or
        in a map value, else a copy in the frame area of ``role``."""
        if p.space not in ("stack", "map"):
            tmp = Place(None, self.temp(role, p.type.count), p.type, "stack")  # type: ignore[attr-defined]
            self.copy(tmp, p, node)                             # type: ignore[attr-defined]
            p = tmp
        return p

    def string_length(self, p: Place, node: Any) -> VReg:
        """The length of the NUL-terminated text in char array ``p`` (its size when there
        is no NUL): a bounded loop (Linux 5.3) over a pointer into the array."""
        p = self.readable_string(p, "strlen", node)
        n = self.vreg(T.u32, local=True)                        # type: ignore[attr-defined]
        base = self.vreg(T.u64, local=True)                     # type: ignore[attr-defined]
        self.emit("addr", dst=base, base=p.base, off=p.off)     # type: ignore[attr-defined]
        self.emit("mov", dst=n, a=0)                            # type: ignore[attr-defined]
        top, done = self.label("strlen"), self.label("strlen_end")  # type: ignore[attr-defined]
        first = len(self.fn.ops)                                # type: ignore[attr-defined]
        self.emit("label", name=top)                            # type: ignore[attr-defined]
        self.emit("branch", name="uge", a=n, b=p.type.count, target=done)  # type: ignore[attr-defined]
        at = self.vreg(T.u64)                                   # type: ignore[attr-defined]
        self.emit("mov", dst=at, a=base)                        # type: ignore[attr-defined]
        self.emit("binop", name="add", dst=at, a=at, b=n)       # type: ignore[attr-defined]
        c = self.vreg(T.u8)                                     # type: ignore[attr-defined]
        self.emit("load", dst=c, base=at, off=0, size=1)        # type: ignore[attr-defined]
        self.emit("branch", name="eq", a=c, b=0, target=done)   # type: ignore[attr-defined]
        self.emit("binop", name="add", dst=n, a=n, b=1)         # type: ignore[attr-defined]
        self.emit("jump", target=top)                           # type: ignore[attr-defined]
        self.fn.loops.append((first, len(self.fn.ops) - 1))     # type: ignore[attr-defined]
        self.fn.loop_bounds.append((top, p.type.count, self.loc))  # type: ignore[attr-defined]
        self.emit("label", name=done)                           # type: ignore[attr-defined]
        self.local_ids.update({n.id, base.id})                  # type: ignore[attr-defined]
        return n

    def string_compare(self, p: Place, data: bytes, when: bool, target: str,
                       node: Any) -> None:
        """Jump to ``target`` if (the char array ``p`` starts with the bytes ``data``) is
        ``when`` (``data`` ending in NUL: equals). Unrolled, one byte at a time."""
        p = self.readable_string(p, "strcmp", node)
        if len(data) > p.type.count:
            if not when:
                self.emit("jump", target=target)                # type: ignore[attr-defined]
            return
        fail = target if not when else self.label("strne")     # type: ignore[attr-defined]
        for i, byte in enumerate(data):
            c = self.read(p.at(i, T.u8), node)                  # type: ignore[attr-defined]
            self.emit("branch", name="ne", a=c, b=byte, target=fail)  # type: ignore[attr-defined]
        if when:
            self.emit("jump", target=target)                    # type: ignore[attr-defined]
            self.emit("label", name=fail)                       # type: ignore[attr-defined]
