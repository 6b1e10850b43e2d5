"""Memory in the compiler: places (an address and a type), the stack frame, loads and
stores, copies, kernel structs through BTF and the program's context.

A :class:`Place` is a typed location: ``base`` (a register holding a pointer, or None
for the frame pointer r10) + ``off``, in a ``space``:

* ``"stack"`` and ``"map"`` (a checked map value): read and written directly;
* ``"ctx"``: the program's context, read directly (field by field);
* ``"kernel"`` and ``"user"``: read with ``bpf_probe_read_kernel``/``_user`` (Linux 5.5)
  through an 8-byte scratch slot (scalars) or into the destination (arrays, structs).

Struct and array locals (the DSL's ``e = Event()``) live in the function's frame, below
r10; the register allocator puts its spill slots below them. A front end may open
scopes (bpftrace: one per statement): areas made in a scope are freed when it closes
and reused by later ones, so sequential temporaries share bytes. Null checks and
pointer freshness are the front end's (its pointer locals are its own).
"""

from __future__ import annotations

from .._records import record
from typing import Any, Dict, List, Optional, Tuple

from . import types as T
from .context import CtxField
from .ir import FrameAddr, KType, Operand, PtrType, VReg

__all__ = ["Place", "CtxRef", "MemoryMixin", "NULLABLE"]

#: pointer spaces whose pointers may be None until checked: map values (a lookup may
#: miss) and packet headers (the packet may be too short)
NULLABLE = ("map", "packet")


@record(frozen=True)
class Place:
    """A typed memory location (see the module docstring)."""

    base: Optional[VReg]
    off: int
    type: Any
    space: str
    #: for a bitfield: (first bit in the loaded unit, width); ``type`` is then the unit
    bitfield: Optional[Tuple[int, int]] = None

    def at(self, off: int, t: Any) -> "Place":
        """The place ``off`` bytes further, of type ``t``."""
        return Place(self.base, self.off + off, t, self.space)


@record(frozen=True)
class CtxRef:
    """The program's context parameter (its fields are read with ``ctx.name``)."""

    reg: VReg


def _btf() -> Any:
    from ..btf import vmlinux
    return vmlinux()


class MemoryMixin:
    """Places, the frame, loads/stores/copies (mixed into the function compiler)."""

    frame: int
    temps: Dict[Tuple[str, int], int]
    scratch: Optional[int]

    # -- the frame ----------------------------------------------------------------------
    # The frame is a list of 8-aligned areas below r10. Outside a scope an area is the
    # function's for good (the DSL's structs, a bpftrace variable). Inside a scope
    # (``open_scope``/``close_scope``, a front end's statement) it is freed when the
    # scope closes, and later areas reuse freed bytes: first an exact fit, then the
    # smallest larger free area, then the free area at the bottom of the frame grown
    # downwards, then new bytes. ``fn.frame`` is the deepest the frame ever got.
    def alloc(self, size: int, keep: bool = False) -> int:
        """``size`` bytes of the frame (8-aligned); returns the (negative) offset. In
        a scope the area is freed when the scope closes, unless ``keep``."""
        size = max((size + 7) // 8 * 8, 8) if size > 0 else 0
        off = self._reuse(size) if size else None
        if off is None:
            self.frame += size
            self.fn.frame = max(self.fn.frame, self.frame)      # type: ignore[attr-defined]
            off = -self.frame
        scopes = getattr(self, "_scopes", None)
        if scopes and not keep and size:
            scopes[-1].append((off, size))
        return off

    def _reuse(self, size: int) -> Optional[int]:
        """A free area of at least ``size`` bytes (split, the rest stays free), or the
        bottom free area grown down to ``size``; None when there is none."""
        free: List[Tuple[int, int]] = getattr(self, "_free", [])
        if not free:
            return None
        fits = [a for a in free if a[1] >= size]
        if fits:
            off, have = min(fits, key=lambda a: (a[1], a[0]))
            free.remove((off, have))
            if have > size:                     # keep the upper part free
                free.append((off + size, have - size))
            return off
        low = min(free)
        if low[0] == -self.frame:               # the bottom area: grow it
            free.remove(low)
            self.frame += size - low[1]
            self.fn.frame = max(self.fn.frame, self.frame)      # type: ignore[attr-defined]
            return -self.frame
        return None

    def open_scope(self) -> None:
        """Start a scope: areas allocated until :meth:`close_scope` (and the ``temp``
        and scratch slots first made in it) are its own."""
        if not hasattr(self, "_scopes"):
            self._scopes: List[List[Tuple[int, int]]] = []
            self._free: List[Tuple[int, int]] = []
        self._scopes.append([])

    def close_scope(self) -> None:
        """End the innermost scope: its areas become free for later ones (nothing
        reads them after: a scope's values do not outlive it)."""
        areas = self._scopes.pop()
        if not areas:
            return
        gone = {off for off, _ in areas}
        self.temps = {k: v for k, v in self.temps.items() if v not in gone}
        if self.scratch in gone:
            self.scratch = None
        free = sorted(self._free + areas)
        merged: List[Tuple[int, int]] = []
        for off, size in free:                  # join neighbours
            if merged and merged[-1][0] + merged[-1][1] == off:
                merged[-1] = (merged[-1][0], merged[-1][1] + size)
            else:
                merged.append((off, size))
        self._free = merged

    def temp(self, role: str, size: int) -> int:
        """A frame area reused by every use of ``role`` (map keys, values, ...) in
        the scope it is first made in (for good outside scopes)."""
        size = (size + 7) // 8 * 8
        key = (role, size)
        if key not in self.temps:
            self.temps[key] = self.alloc(size)
        return self.temps[key]

    def scratch_slot(self) -> int:
        """The 8-byte slot scalar probe reads land in."""
        if self.scratch is None:
            self.scratch = self.alloc(8)
        return self.scratch

    # -- addresses and scalars -----------------------------------------------------------
    def addr_arg(self, place: Place) -> Any:
        """``place``'s address as a helper argument (FrameAddr or a register)."""
        if place.base is None:
            return FrameAddr(place.off)
        return self.addr_reg(place)

    def addr_reg(self, place: Place) -> VReg:
        """``place``'s address in a register."""
        if place.base is not None and place.off == 0:
            return VReg(place.base.id, T.u64, place.base.local)
        dst = self.vreg(T.u64)                                  # type: ignore[attr-defined]
        self.emit("addr", dst=dst, base=place.base, off=place.off)   # type: ignore[attr-defined]
        return dst

    def scalar_type(self, place: Place, node: Any) -> Any:
        """The integer type (or PtrType) a scalar place holds."""
        t = place.type
        if isinstance(t, T.IntType):
            return t
        if isinstance(t, KType):
            return self.ktype_scalar(t, node)
        what = repr(t) if not T.is_struct(t) else t.__name__
        raise self.error(f"this is a {what}, not a number", node,  # type: ignore[attr-defined]
                         "read one of its fields, or copy it into a struct field")

    def ktype_scalar(self, kt: KType, node: Any) -> Any:
        from ..btf.resolve import is_signed, sizeof, skip_modifiers
        from ..btf.types import Enum, Int, Ptr
        btf = _btf()
        t = btf.type(skip_modifiers(btf, kt.type_id))
        if isinstance(t, Ptr):
            return PtrType(KType(t.type, _ktext(btf, t.type)), "kernel")
        if isinstance(t, (Int, Enum)):
            size = sizeof(btf, t.id)
            if size in (1, 2, 4, 8):
                from .context import int_type
                return int_type(size, is_signed(btf, t.id))
        raise self.error(f"{kt!r} is not a number or pointer", node,  # type: ignore[attr-defined]
                         "read one of its members")

    def read(self, place: Place, node: Any) -> VReg:
        """The scalar at ``place`` in a register (pointers stay typed)."""
        if place.bitfield is not None:
            return self.read_bitfield(place, node)
        t = self.scalar_type(place, node)
        size = t.bits // 8
        if place.space in ("kernel", "user"):
            slot = self.scratch_slot()
            fn = "probe_read_kernel" if place.space == "kernel" else "probe_read_user"
            self.emit("helper", name=fn, args=(FrameAddr(slot), size,   # type: ignore[attr-defined]
                                                 self.addr_reg(place)))
            src = Place(None, slot, t, "stack")
        else:
            src = place
        from .context import int_type
        raw = self.vreg(t if isinstance(t, PtrType) else int_type(size, False))  # type: ignore[attr-defined]
        self.emit("load", dst=raw, base=src.base, off=src.off, size=size)  # type: ignore[attr-defined]
        if isinstance(t, PtrType):
            return raw
        if not t.signed or t.bits == 64:
            return VReg(raw.id, t)
        dst = self.vreg(t)                                      # type: ignore[attr-defined]
        self.emit("norm", dst=dst, a=raw)                       # type: ignore[attr-defined]
        return dst

    def read_bitfield(self, place: Place, node: Any) -> VReg:
        """A kernel struct bitfield: its unit loaded, shifted left to drop the bits
        above, then right (arithmetic when signed) to drop those below."""
        assert place.bitfield is not None
        shift, width = place.bitfield
        signed, width = width < 0, abs(width)
        raw = self.read(Place(place.base, place.off, place.type, place.space), node)
        v = self.vreg(T.u64)                                    # type: ignore[attr-defined]
        self.emit("mov", dst=v, a=VReg(raw.id, T.u64))          # type: ignore[attr-defined]
        if 64 - shift - width:
            self.emit("binop", name="lsh", dst=v, a=v, b=64 - shift - width)  # type: ignore[attr-defined]
        self.emit("binop", name="arsh" if signed else "rsh", dst=v, a=v, b=64 - width)  # type: ignore[attr-defined]
        return VReg(v.id, T.i64 if signed else T.u64)

    def write(self, place: Place, value: Operand, node: Any) -> None:
        """Store the integer ``value`` at ``place`` (converted to its type)."""
        if place.space not in ("stack", "map", "packet"):
            raise self.error(f"{place.space} memory is read-only here", node,  # type: ignore[attr-defined]
                             "write into a struct local or a map value")
        t = place.type
        if not isinstance(t, T.IntType):
            raise self.error(f"cannot store a number into a {t!r}", node,  # type: ignore[attr-defined]
                             "store into one of its fields")
        v = self.convert(value, t)                              # type: ignore[attr-defined]
        if isinstance(v, int) and not -(1 << 31) <= v < (1 << 31):
            v = self.materialize(v, t)                          # type: ignore[attr-defined]
        self.emit("store", base=place.base, off=place.off, size=t.bits // 8, a=v)  # type: ignore[attr-defined]

    # -- whole objects -------------------------------------------------------------------
    def object_size(self, t: Any) -> int:
        """The byte size of a language type or kernel type."""
        if isinstance(t, KType):
            from ..btf.resolve import sizeof
            return sizeof(_btf(), t.type_id)
        return T.sizeof(t)

    def zero(self, place: Place) -> None:
        """Zero a frame object."""
        assert place.base is None
        self.emit("zero", off=place.off, size=(self.object_size(place.type) + 7) // 8 * 8)  # type: ignore[attr-defined]

    def copy(self, dst: Place, src: Place, node: Any) -> None:
        """Copy ``src`` into ``dst`` (the smaller of the two sizes)."""
        if dst.space not in ("stack", "map"):
            raise self.error(f"{dst.space} memory is read-only here", node)  # type: ignore[attr-defined]
        n = min(self.object_size(dst.type), self.object_size(src.type))
        if src.space in ("kernel", "user", "ctx"):
            fn = "probe_read_user" if src.space == "user" else "probe_read_kernel"
            self.emit("helper", name=fn, args=(self.addr_arg(dst), n,   # type: ignore[attr-defined]
                                                 self.addr_reg(src)))
            return
        pos = 0
        while pos < n:
            step = _chunk(dst.off + pos, n - pos, src.off + pos)
            tmp = self.vreg(T.u64)                              # type: ignore[attr-defined]
            self.emit("load", dst=tmp, base=src.base, off=src.off + pos, size=step)  # type: ignore[attr-defined]
            self.emit("store", base=dst.base, off=dst.off + pos, size=step, a=tmp)  # type: ignore[attr-defined]
            pos += step

    def store_string(self, dst: Place, text: str, node: Any) -> None:
        """Store a literal string (NUL-terminated, cut to fit) into a char array."""
        if not (isinstance(dst.type, T.ArrayType) and dst.type.is_string):
            raise self.error(f"a string can only be stored in a char[N], not {dst.type!r}", node)  # type: ignore[attr-defined]
        data = text.encode()[:dst.type.count - 1] + b"\0"
        data = data.ljust(min(dst.type.count, (len(data) + 3) // 4 * 4), b"\0")
        pos = 0
        while pos < len(data):
            step = min(_chunk(dst.off + pos, len(data) - pos), 4)
            chunk = int.from_bytes(data[pos:pos + step], "little")
            if chunk >= 1 << (8 * step - 1):
                chunk -= 1 << (8 * step)
            self.emit("store", base=dst.base, off=dst.off + pos, size=step, a=chunk)  # type: ignore[attr-defined]
            pos += step

    # -- members ------------------------------------------------------------------------
    def member(self, place: Place, name: str, node: Any) -> Place:
        """``place.name``: a struct field, or a kernel struct member (through BTF)."""
        t = place.type
        if T.is_struct(t):
            try:
                f = t.__pybpf_layout__.field(name)
            except KeyError:
                names = [x.name for x in t.__pybpf_layout__.fields]
                raise self.error(_did_you_mean(f"{t.__name__} has no field {name!r}",  # type: ignore[attr-defined]
                                               name, names), node,
                                 f"fields: {', '.join(names)}") from None
            self.last_field = (t.__name__, name)    # names a store's target in errors
            return place.at(f.offset, f.type)
        if isinstance(t, KType):
            return self.kmember(place, name, node)
        raise self.error(f"a {t!r} has no field {name!r}", node)  # type: ignore[attr-defined]

    def kmember(self, place: Place, name: str, node: Any) -> Place:
        """A member of a kernel struct (following a pointer first if ``place`` holds one)."""
        from ..btf.errors import BTFError
        from ..btf.resolve import find_member, skip_modifiers
        from ..btf.types import Composite, Ptr
        btf = _btf()
        t = btf.type(skip_modifiers(btf, place.type.type_id))
        if isinstance(t, Ptr):
            ptr = self.read(place, node)
            return self.kmember(Place(VReg(ptr.id, ptr.type), 0, ptr.type.target, place.space),
                                name, node)
        if not isinstance(t, Composite):
            raise self.error(f"{place.type!r} has no member {name!r}", node)  # type: ignore[attr-defined]
        try:
            chain, bits = find_member(btf, t.id, name)
        except (BTFError, KeyError):
            from ..btf.resolve import _member_names
            text = _ktext(btf, t.id)
            raise self.error(_did_you_mean(f"{text} has no member {name!r}", name,  # type: ignore[attr-defined]
                                           _member_names(btf, t)), node,
                             f"pybpf btf dump '{text}' lists its members") from None
        m = chain[-1]
        if m.bitfield_size:
            # read the aligned unit that holds the bits, then shift them out
            from ..btf.resolve import _bitfield_unit, is_signed, sizeof
            start, size, shift = _bitfield_unit(bits, m.bitfield_size, sizeof(btf, m.type))
            from .context import int_type
            unit = int_type(size, False)
            signed = is_signed(btf, m.type)
            return Place(place.base, place.off + start, unit, place.space,
                         (shift, m.bitfield_size if not signed else -m.bitfield_size))
        return place.at(bits // 8, KType(m.type, _ktext(btf, m.type)))

    def kernel_type(self, text: str, node: Any) -> KType:
        """The kernel type called ``text`` (``"task_struct"``, ``"struct sock"``)."""
        from ..btf import vmlinux
        from ..btf.errors import BTFError
        from ..btf.format import Kind
        btf = vmlinux()
        words = text.replace("struct ", "").replace("union ", "").strip()
        for kind in (Kind.STRUCT, Kind.UNION, Kind.TYPEDEF):
            ids = btf.ids(words, kind)
            if ids:
                return KType(ids[0], text)
        try:
            from ..btf.resolve import resolve_type
            return KType(resolve_type(btf, text), text)
        except (BTFError, LookupError, ValueError):
            raise self.error(f"the kernel has no type {text!r}", node,  # type: ignore[attr-defined]
                             "name a struct, union or typedef from vmlinux BTF") from None

    def index(self, place: Place, i: int, node: Any) -> Place:
        """``place[i]`` for a constant ``i``."""
        t = place.type
        if isinstance(t, T.IntType) and i == 0:
            return place                        # p[0]: the number a pointer points to
        if isinstance(t, T.ArrayType):
            if not 0 <= i < t.count:
                raise self.error(f"index {i} is out of range for {t!r}", node)  # type: ignore[attr-defined]
            return place.at(i * T.sizeof(t.elem), t.elem)
        if isinstance(t, KType):
            from ..btf.resolve import sizeof, skip_modifiers
            from ..btf.types import Array, Ptr
            btf = _btf()
            kt = btf.type(skip_modifiers(btf, t.type_id))
            if isinstance(kt, Array):
                return place.at(i * sizeof(btf, kt.type), KType(kt.type, _ktext(btf, kt.type)))
            if isinstance(kt, Ptr):
                ptr = self.read(place, node)
                return Place(VReg(ptr.id, ptr.type), i * sizeof(btf, kt.type),
                             KType(kt.type, _ktext(btf, kt.type)), place.space)
        raise self.error(f"a {t!r} cannot be indexed", node)   # type: ignore[attr-defined]

    # -- the context --------------------------------------------------------------------
    def ctx_field(self, ctx: CtxRef, name: str, node: Any) -> Any:
        """``ctx.name``: a register, or a place for arrays."""
        kind = self.kind                                        # type: ignore[attr-defined]
        if kind is None:
            raise self.error("this function has no context", node)  # type: ignore[attr-defined]
        f: Optional[CtxField] = kind.context().field(name)
        if f is None:
            message, hint = kind.context().unknown_field(name)
            raise self.error(message, node, hint)  # type: ignore[attr-defined]
        base = ctx.reg
        if f.kind == "array":
            return Place(base, f.offset, f.type, "ctx")
        if f.kind in ("data_loc", "rel_loc"):
            loc = self.vreg(T.u64)                              # type: ignore[attr-defined]
            self.emit("load", dst=loc, base=base, off=f.offset, size=4)  # type: ignore[attr-defined]
            self.emit("binop", name="and", dst=loc, a=loc, b=0xFFFF)  # type: ignore[attr-defined]
            if f.kind == "rel_loc":
                self.emit("binop", name="add", dst=loc, a=loc, b=f.offset + 4)  # type: ignore[attr-defined]
            ptr = self.vreg(PtrType(T.char, "kernel"))          # type: ignore[attr-defined]
            self.emit("mov", dst=ptr, a=VReg(base.id, T.u64, base.local))  # type: ignore[attr-defined]
            self.emit("binop", name="add", dst=ptr, a=ptr, b=loc)  # type: ignore[attr-defined]
            return ptr
        if f.kind == "load":
            return self.read(Place(base, f.offset, f.type, "ctx"), node)
        if f.kind == "const":
            return self.load_const(f.offset, node, f.type)     # type: ignore[attr-defined]
        if f.kind == "umem":                                    # USDT: reg + disp (+ idx*s)
            t, reg_off, disp, index_off, scale = f.type
            addr = self.vreg(T.u64)                             # type: ignore[attr-defined]
            self.emit("load", dst=addr, base=base, off=reg_off, size=8)  # type: ignore[attr-defined]
            if index_off >= 0:
                idx = self.vreg(T.u64)                          # type: ignore[attr-defined]
                self.emit("load", dst=idx, base=base, off=index_off, size=8)  # type: ignore[attr-defined]
                if scale != 1:
                    self.emit("binop", name="mul", dst=idx, a=idx, b=scale)  # type: ignore[attr-defined]
                self.emit("binop", name="add", dst=addr, a=addr, b=idx)  # type: ignore[attr-defined]
            if disp:
                self.emit("binop", name="add", dst=addr, a=addr, b=disp)  # type: ignore[attr-defined]
            return self.read(Place(addr, 0, t, "user"), node)
        # a 64-bit slot
        raw = self.vreg(T.u64)                                  # type: ignore[attr-defined]
        self.emit("load", dst=raw, base=base, off=f.offset, size=8)  # type: ignore[attr-defined]
        if isinstance(f.type, tuple):                           # ("kptr", type id)
            return VReg(raw.id, PtrType(KType(f.type[1], _ktext(_btf(), f.type[1])), "kernel"))
        return self.convert(raw, f.type)                        # type: ignore[attr-defined]


def _chunk(off: int, remaining: int, other: Optional[int] = None) -> int:
    """The widest access (8, 4, 2, 1 bytes) aligned at ``off`` (and ``other``) that
    fits in ``remaining`` bytes: the verifier refuses misaligned stack accesses."""
    for size in (8, 4, 2, 1):
        if size <= remaining and off % size == 0 and (other is None or other % size == 0):
            return size
    return 1


def _did_you_mean(message: str, name: str, names: List[str]) -> str:
    """``message`` and, when some of ``names`` are close to ``name``, "did you mean"."""
    from ..errors import close_matches
    matches = close_matches(name, names, n=3)
    return f"{message}; did you mean {' or '.join(matches)}?" if matches else message


def _ktext(btf: Any, type_id: int) -> str:
    from ..btf.resolve import type_name
    try:
        return type_name(btf, type_id)
    except Exception:                                           # pragma: no cover
        return f"btf#{type_id}"
