"""Questions about types that generated code needs answered: sizes, alignments, member
offsets, field paths through pointers, enum values, bitfields and function prototypes.

Type arguments (``TypeRef``) may be an id, a record, or a name: ``"task_struct"``,
``"struct task_struct"``, ``"union bpf_attr"``, ``"enum bpf_map_type"``, ``"u32"``.

A field path such as ``"task_struct.real_parent.tgid"`` (``->`` is accepted wherever
``.`` is, and ``[N]`` indexes arrays and pointers) becomes a :class:`FieldPath`: the
loads to perform, starting from a pointer to the first type. Each :class:`Step` reads
``size`` bytes at ``offset`` from the current address; when ``deref`` is set the value
read is the address for the next step. A bitfield's step reads the smallest aligned
unit holding it and says how to shift the field out (little-endian layout, as on x86-64
and arm64).

Everything here works from BTF alone (Linux 4.18 for the format; kernel BTF in sysfs is
5.4).
"""

from __future__ import annotations

import re
from typing import Dict, List, NamedTuple, Optional, Tuple, Union

from .errors import AmbiguousTypeError, FieldError, TypeNotFoundError
from .format import Kind
from .parser import BTF
from .types import (
    Array, BtfType, Composite, Enum, Float, Func, FuncProto, Fwd, Int, Member, Modifier,
    Ptr, Typedef, Var, Void, Datasec,
)

__all__ = [
    "TypeRef", "resolve_type", "skip_modifiers", "sizeof", "alignof", "is_packed",
    "offsetof", "bit_offsetof", "find_member", "Step", "FieldPath", "field_path",
    "enum_value", "Argument", "Prototype", "prototype", "tracepoint_prototype",
    "type_name", "is_signed", "extract_bitfield",
]

TypeRef = Union[int, str, BtfType]

_TAGGED = re.compile(r"^\s*(struct|union|enum|typedef|func)\s+(\w+)\s*$")


def resolve_type(btf: BTF, ref: TypeRef) -> int:
    """The type id ``ref`` stands for (see the module docstring)."""
    if isinstance(ref, BtfType):
        return ref.id
    if isinstance(ref, int) and not isinstance(ref, bool):
        btf.kind(ref)          # raises for an unknown id
        return ref
    text = str(ref).strip()
    tagged = _TAGGED.match(text)
    if tagged:
        tag, name = tagged.groups()
        if tag == "enum":
            ids = btf.ids(name, Kind.ENUM) + btf.ids(name, Kind.ENUM64)
            if len(ids) == 1:
                return ids[0]
            return btf.type_id(name, Kind.ENUM)
        found = btf.ids(name, tag)
        if not found and tag in ("struct", "union"):
            return btf.type_id(name, Kind.FWD)
        return btf.type_id(name, tag)
    if text.isdigit():
        return resolve_type(btf, int(text))
    return btf.type_id(text)


def skip_modifiers(btf: BTF, ref: TypeRef, *, typedefs: bool = True) -> int:
    """The id under any const/volatile/restrict/type-tag (and typedef, unless
    ``typedefs`` is False) wrappers of ``ref``."""
    type_id = resolve_type(btf, ref)
    for _ in range(64):
        kind = btf.kind(type_id)
        if kind in (Kind.CONST, Kind.VOLATILE, Kind.RESTRICT, Kind.TYPE_TAG) or (
                typedefs and kind == Kind.TYPEDEF):
            type_id = btf.type(type_id).type  # type: ignore[attr-defined]
        else:
            return type_id
    raise FieldError(f"{btf.name}: type {type_id}: modifier chain too long (a loop?)")


def _describe(btf: BTF, type_id: int) -> str:
    try:
        return f"{type_name(btf, type_id)} (id {type_id})"
    except Exception:  # pragma: no cover - only in messages
        return f"type {type_id}"


def sizeof(btf: BTF, ref: TypeRef) -> int:
    """The size in bytes of a type (``sizeof``); pointers have
    :attr:`~pybpf.btf.parser.BTF.pointer_size`. ``ValueError`` for void, functions and
    forward declarations."""
    type_id = resolve_type(btf, ref)
    memo = btf.memo("sizeof")
    cached = memo.get(type_id)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    t = btf.type(skip_modifiers(btf, type_id))
    if isinstance(t, (Int, Float, Composite, Enum, Datasec)):
        size = t.size
    elif isinstance(t, Ptr):
        size = btf.pointer_size
    elif isinstance(t, Array):
        size = t.nelems * sizeof(btf, t.type)
    elif isinstance(t, Var):
        size = sizeof(btf, t.type)
    else:
        raise ValueError(f"{btf.name}: {_describe(btf, type_id)} has no size")
    memo[type_id] = size
    return size


def alignof(btf: BTF, ref: TypeRef) -> int:
    """The alignment a C compiler gives the type, as far as BTF shows it: natural
    alignment, or 1 for a struct whose layout proves it packed (see :func:`is_packed`).
    BTF does not record ``__aligned`` attributes."""
    type_id = skip_modifiers(btf, ref)
    memo = btf.memo("alignof")
    cached = memo.get(type_id)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    t = btf.type(type_id)
    if isinstance(t, (Int, Float, Enum)):
        align = min(max(t.size, 1), 16)
    elif isinstance(t, Ptr):
        align = btf.pointer_size
    elif isinstance(t, Array):
        align = alignof(btf, t.type)
    elif isinstance(t, Composite):
        memo[type_id] = 1          # provisional, for (invalid) self-embedding
        align = 1 if is_packed(btf, type_id) else _natural_align(btf, t)
    else:
        align = 1
    memo[type_id] = align
    return align


def _natural_align(btf: BTF, t: Composite) -> int:
    align = 1
    for m in t.members:
        if m.bitfield_size and not m.name:
            continue                 # unnamed bitfields do not align the aggregate
        align = max(align, alignof(btf, m.type))
    return align


def is_packed(btf: BTF, ref: TypeRef) -> bool:
    """True when a struct or union cannot have its BTF layout with natural alignment: a
    member off its alignment, a bitfield crossing a unit of its type, or a size that is
    not a multiple of the alignment. (Such types were declared ``__packed``.)"""
    type_id = skip_modifiers(btf, ref)
    memo = btf.memo("packed")
    cached = memo.get(type_id)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    t = btf.type(type_id)
    packed = False
    if isinstance(t, Composite):
        memo[type_id] = False       # provisional
        align = 1
        for m in t.members:
            a = alignof(btf, m.type)
            if m.bitfield_size:
                unit = sizeof(btf, m.type) * 8
                end = m.bit_offset + m.bitfield_size - 1
                if unit and m.bit_offset // unit != end // unit:
                    packed = True
                if m.name:
                    align = max(align, a)
            else:
                if m.bit_offset % (a * 8):
                    packed = True
                align = max(align, a)
        if t.size % align:
            packed = True
    memo[type_id] = packed
    return packed


# ---------------------------------------------------------------------------------------
# Members and offsets
# ---------------------------------------------------------------------------------------

def find_member(btf: BTF, ref: TypeRef, name: str) -> Tuple[List[Member], int]:
    """The member ``name`` of a struct or union, looking into anonymous struct/union
    members as C does: (the chain of members from the outer type to it, its bit offset
    from the start of the outer type). :class:`~pybpf.btf.errors.FieldError` if absent."""
    type_id = skip_modifiers(btf, ref)
    t = btf.type(type_id)
    if not isinstance(t, Composite):
        raise FieldError(f"{btf.name}: {_describe(btf, type_id)} is not a struct or union "
                         f"(looking for member {name!r})")
    found = _find_member(btf, t, name, 0)
    if found is None:
        known = ", ".join(_member_names(btf, t)[:40])
        raise FieldError(f"{btf.name}: {_describe(btf, type_id)} has no member {name!r} "
                         f"(members: {known})")
    return found


def _find_member(btf: BTF, t: Composite, name: str, base: int
                 ) -> Optional[Tuple[List[Member], int]]:
    for m in t.members:
        if m.name == name:
            return [m], base + m.bit_offset
    for m in t.members:
        if not m.name:
            inner = btf.type(skip_modifiers(btf, m.type))
            if isinstance(inner, Composite):
                found = _find_member(btf, inner, name, base + m.bit_offset)
                if found is not None:
                    return [m] + found[0], found[1]
    return None


def _member_names(btf: BTF, t: Composite) -> List[str]:
    names = []
    for m in t.members:
        if m.name:
            names.append(m.name)
        else:
            inner = btf.type(skip_modifiers(btf, m.type))
            if isinstance(inner, Composite):
                names.extend(_member_names(btf, inner))
    return names


_COMPONENT = re.compile(r"\s*(?:(\.|->)\s*([A-Za-z_]\w*)|\[\s*(-?\d+)\s*\])")


def _split_path(path: str) -> Tuple[str, List[Tuple[str, Union[str, int]]]]:
    """(root type text, [(separator, member name) or ("[]", index)])."""
    text = path.strip()
    match = re.match(r"^\s*((?:struct|union)\s+)?([A-Za-z_]\w*)", text)
    if not match:
        raise FieldError(f"bad field path {path!r}: it must start with a type name")
    root = text[:match.end()].strip()
    pos = match.end()
    parts: List[Tuple[str, Union[str, int]]] = []
    while pos < len(text):
        found = _COMPONENT.match(text, pos)
        if not found:
            raise FieldError(f"bad field path {path!r} at {text[pos:]!r}")
        if found.group(3) is not None:
            parts.append(("[]", int(found.group(3))))
        else:
            parts.append((found.group(1), found.group(2)))
        pos = found.end()
    return root, parts


def _walk_members(btf: BTF, ref: TypeRef, member: str) -> Tuple[int, Optional[Member]]:
    """(bit offset, the last member named, when the path ends with a member)."""
    type_id = resolve_type(btf, ref)
    _, parts = _split_path("x" + ("" if member.startswith(("[", ".", "->")) else ".")
                           + member)
    bits = 0
    last: Optional[Member] = None
    for sep, part in parts:
        t = btf.type(skip_modifiers(btf, type_id))
        if sep == "[]":
            if not isinstance(t, Array):
                raise FieldError(f"{btf.name}: {_describe(btf, type_id)} is not an array "
                                 f"(in {member!r})")
            bits += int(part) * sizeof(btf, t.type) * 8
            type_id = t.type
            last = None
            continue
        if isinstance(t, Ptr):
            raise FieldError(f"{btf.name}: {member!r} goes through pointer "
                             f"{_describe(btf, type_id)}; offsetof() does not follow "
                             "pointers (use field_path())")
        chain, off = find_member(btf, type_id, str(part))
        bits += off
        last = chain[-1]
        type_id = last.type
    return bits, last


def bit_offsetof(btf: BTF, ref: TypeRef, member: str) -> int:
    """The offset in bits of ``member`` (``"a.b[3].c"``, through embedded structs,
    unions and arrays but no pointer) from the start of type ``ref``."""
    return _walk_members(btf, ref, member)[0]


def offsetof(btf: BTF, ref: TypeRef, member: str) -> int:
    """``offsetof(type, member)`` in bytes (``member`` may be a path through embedded
    structs and arrays: ``"se.vruntime"``, ``"comm[2]"``). A bitfield raises
    :class:`~pybpf.btf.errors.FieldError` (use :func:`bit_offsetof`)."""
    bits, last = _walk_members(btf, ref, member)
    if last is not None and last.bitfield_size:
        raise FieldError(f"{btf.name}: {member!r} of {_describe(btf, resolve_type(btf, ref))}"
                         f" is a bitfield at bit {bits}; use bit_offsetof()")
    return bits // 8


def is_signed(btf: BTF, ref: TypeRef) -> bool:
    """True for signed integers, signed enums and floats."""
    t = btf.type(skip_modifiers(btf, ref))
    if isinstance(t, Int):
        return t.signed
    if isinstance(t, Enum):
        return t.signed
    return isinstance(t, Float)


class Step(NamedTuple):
    """One load of a :class:`FieldPath`.

    ``offset`` bytes from the current address, ``size`` bytes (for a value that is not a
    scalar, its whole size); ``deref``: the value is a pointer and the next step reads
    through it; ``signed``: sign-extend; ``type_id``: the BTF type of what is read;
    ``bit_shift``/``bit_size``: for a bitfield, its first bit within the loaded
    little-endian value and its width (0 otherwise); ``text``: the part of the path it
    covers.
    """

    offset: int
    size: int
    deref: bool
    signed: bool
    type_id: int
    bit_shift: int = 0
    bit_size: int = 0
    text: str = ""

    @property
    def is_bitfield(self) -> bool:
        """True when the step reads a bitfield."""
        return self.bit_size > 0

    def shifts(self) -> Tuple[int, int]:
        """(left shift, right shift) that isolate a bitfield in a 64-bit register holding
        the loaded value: shift left, then right (arithmetic when ``signed``)."""
        if not self.bit_size:
            return 0, 0
        return 64 - self.bit_shift - self.bit_size, 64 - self.bit_size


def extract_bitfield(raw: int, step: Step) -> int:
    """The field ``step`` describes, out of the unsigned integer ``raw`` it loaded."""
    if not step.bit_size:
        value = raw & ((1 << (8 * step.size)) - 1) if step.size <= 8 else raw
        if step.signed and step.size <= 8 and value >> (8 * step.size - 1):
            value -= 1 << (8 * step.size)
        return value
    value = (raw >> step.bit_shift) & ((1 << step.bit_size) - 1)
    if step.signed and value >> (step.bit_size - 1):
        value -= 1 << step.bit_size
    return value


class FieldPath(NamedTuple):
    """A resolved field path: ``root`` the type id the starting pointer points to,
    ``steps`` the loads, ``type_id`` the type of the final value."""

    path: str
    root: int
    steps: Tuple[Step, ...]
    type_id: int

    @property
    def offset(self) -> int:
        """The offset of the final load (from the last dereferenced pointer)."""
        return self.steps[-1].offset

    @property
    def size(self) -> int:
        """The size of the final load."""
        return self.steps[-1].size

    @property
    def derefs(self) -> int:
        """How many pointers are followed."""
        return sum(1 for s in self.steps if s.deref)


def _bitfield_unit(bit_offset: int, bit_size: int, type_size: int) -> Tuple[int, int, int]:
    """(byte offset, load size, bit shift) for a bitfield: the aligned unit of its
    type's size when it fits there, else the smallest power-of-two load from its first
    byte."""
    unit = max(type_size, 1)
    start = (bit_offset // (unit * 8)) * unit
    if unit <= 8 and bit_offset - start * 8 + bit_size <= unit * 8:
        return start, unit, bit_offset - start * 8
    first = bit_offset // 8
    need = (bit_offset % 8 + bit_size + 7) // 8
    size = 1
    while size < need:
        size *= 2
    if size > 8:
        raise FieldError(f"a bitfield of {bit_size} bits at bit {bit_offset} does not fit "
                         "one load")
    return first, size, bit_offset - first * 8


def field_path(btf: BTF, path: str) -> FieldPath:
    """Resolve ``path`` (``"task_struct.real_parent.tgid"``, ``"sk_buff->dev->name"``,
    ``"task_struct.comm[0]"``): the loads generated code performs starting from a
    pointer to the first type. Members of anonymous structs/unions are found as in C;
    ``.`` through a pointer dereferences it, like ``->``."""
    root_text, parts = _split_path(path)
    root = resolve_type(btf, root_text)
    if not parts:
        raise FieldError(f"field path {path!r} names no member")
    steps: List[Step] = []
    type_id = root
    bits = 0                      # offset from the current base address
    text: List[str] = [root_text]

    def load(deref: bool) -> None:
        if bits % 8:
            raise FieldError(f"{path!r}: {''.join(text)} is not byte-aligned")
        inner = skip_modifiers(btf, type_id)
        size = sizeof(btf, inner)
        steps.append(Step(bits // 8, size, deref, is_signed(btf, inner) and not deref,
                          type_id, 0, 0, "".join(text)))

    bitfield: Optional[Member] = None
    for sep, part in parts:
        if bitfield is not None:
            raise FieldError(f"{path!r}: {bitfield.name!r} is a bitfield and has no "
                             "members")
        t = btf.type(skip_modifiers(btf, type_id))
        if isinstance(t, Ptr) and (sep in (".", "->") or sep == "[]"):
            load(True)
            type_id = t.type
            bits = 0
            text = ["".join(text)]
            if sep == "[]":
                bits = int(part) * sizeof(btf, type_id) * 8
                text.append(f"[{part}]")
                continue
            t = btf.type(skip_modifiers(btf, type_id))
        if sep == "[]":
            if not isinstance(t, Array):
                raise FieldError(f"{path!r}: {''.join(text)} ({_describe(btf, type_id)}) is "
                                 "not an array or pointer")
            if not 0 <= int(part) < max(t.nelems, 1) and t.nelems:
                raise FieldError(f"{path!r}: index {part} is out of range for "
                                 f"{_describe(btf, t.id)} ({t.nelems} elements)")
            bits += int(part) * sizeof(btf, t.type) * 8
            type_id = t.type
            text.append(f"[{part}]")
            continue
        if isinstance(t, (Void, Fwd)):
            raise FieldError(f"{path!r}: {''.join(text)} has incomplete type "
                             f"{_describe(btf, t.id)}")
        if not isinstance(t, Composite):
            raise FieldError(f"{path!r}: {''.join(text)} ({_describe(btf, t.id)}) is not a "
                             f"struct, union or pointer to one, so it has no member {part!r}")
        chain, off = find_member(btf, t.id, str(part))
        bits += off
        member = chain[-1]
        type_id = member.type
        text.append(f"{'.' if sep == '.' else '->'}{part}")
        if member.bitfield_size:
            bitfield = member._replace(bit_offset=bits)

    if bitfield is not None:
        tsize = sizeof(btf, bitfield.type)
        start, size, shift = _bitfield_unit(bitfield.bit_offset, bitfield.bitfield_size, tsize)
        steps.append(Step(start, size, False, is_signed(btf, bitfield.type), type_id, shift,
                          bitfield.bitfield_size, "".join(text)))
    else:
        load(False)
    return FieldPath(path, root, tuple(steps), type_id)


# ---------------------------------------------------------------------------------------
# Enums
# ---------------------------------------------------------------------------------------

def enum_value(btf: BTF, name: str, enum: Optional[TypeRef] = None) -> int:
    """The value of enumerator ``name``, from enum ``enum`` when given, else from
    whichever enum defines it (when several define it with different values,
    :class:`~pybpf.btf.errors.AmbiguousTypeError` lists them)."""
    if enum is not None:
        ref = enum
        if isinstance(enum, str) and " " not in enum.strip() and not enum.isdigit() and (
                btf.ids(enum, Kind.ENUM) or btf.ids(enum, Kind.ENUM64)):
            ref = f"enum {enum}"          # prefer the enum over a typedef of that name
        type_id = skip_modifiers(btf, ref)
        t = btf.type(type_id)
        if not isinstance(t, Enum):
            raise TypeNotFoundError(f"{btf.name}: {_describe(btf, type_id)} is not an enum")
        try:
            return t.value(name)
        except KeyError:
            raise TypeNotFoundError(f"{btf.name}: {_describe(btf, type_id)} has no "
                                    f"enumerator {name!r}") from None
    owners = btf.enums_with(name)
    values: Dict[int, List[int]] = {}
    for type_id in owners:
        t = btf.type(type_id)
        for v in t.values:  # type: ignore[attr-defined]
            if v.name == name:
                values.setdefault(v.value, []).append(type_id)
    if not values:
        raise TypeNotFoundError(f"{btf.name}: no enum has an enumerator {name!r}")
    if len(values) > 1:
        candidates = [(btf.name, i, f"enum value {v}") for v, ids in values.items()
                      for i in ids]
        raise AmbiguousTypeError(
            f"{btf.name}: enumerator {name!r} has different values in different enums: "
            + ", ".join(f"{type_name(btf, i)} = {v}" for v, ids in values.items()
                        for i in ids) + "; pass enum=", candidates)
    return next(iter(values))


# ---------------------------------------------------------------------------------------
# Prototypes
# ---------------------------------------------------------------------------------------

class Argument(NamedTuple):
    """A function argument: position, name, type id, size, signedness, whether it is a
    pointer, and where a tracing program finds it: ``ctx_offset`` bytes into the context
    of fentry/fexit/tp_btf programs, which hold the arguments as 64-bit slots (a struct
    of 9 to 16 bytes takes two, Linux 6.1)."""

    index: int
    name: str
    type_id: int
    size: int
    signed: bool
    pointer: bool
    ctx_offset: int


class Prototype(NamedTuple):
    """A function's signature: ``name``, the FUNC's id (0 for tracepoints), the
    FUNC_PROTO's id, return type id, arguments, and whether it is variadic."""

    name: str
    func_id: int
    proto_id: int
    return_type: int
    args: Tuple[Argument, ...]
    variadic: bool

    def arg(self, name: Union[str, int]) -> Argument:
        """The argument called ``name`` (or at position ``name``)."""
        for a in self.args:
            if a.name == name or a.index == name:
                return a
        known = ", ".join(a.name or f"#{a.index}" for a in self.args) or "none"
        raise FieldError(f"{self.name}() has no argument {name!r} (arguments: {known})")

    @property
    def ret_ctx_offset(self) -> int:
        """Where fexit programs find the return value in their context."""
        if not self.args:
            return 0
        last = self.args[-1]
        return last.ctx_offset + (8 if last.size <= 8 else 16)


def _prototype_of(btf: BTF, name: str, func_id: int, proto_id: int, skip: int = 0
                  ) -> Prototype:
    proto = btf.type(skip_modifiers(btf, proto_id))
    if isinstance(proto, Ptr):
        proto = btf.type(skip_modifiers(btf, proto.type))
    if not isinstance(proto, FuncProto):
        raise TypeNotFoundError(f"{btf.name}: {name!r} has no function prototype")
    args = []
    slot = 0
    for index, p in enumerate(proto.params[skip:]):
        inner = skip_modifiers(btf, p.type)
        t = btf.type(inner)
        size = sizeof(btf, inner) if not isinstance(t, (Void, Fwd, FuncProto)) else 0
        args.append(Argument(index, p.name, p.type, size, is_signed(btf, inner),
                             isinstance(t, Ptr), slot * 8))
        slot += 2 if size > 8 else 1
    return Prototype(name, func_id, proto.id, proto.return_type, tuple(args),
                     proto.variadic)


def prototype(btf: BTF, func: TypeRef) -> Prototype:
    """The prototype of kernel function ``func`` (a FUNC name or id), for fentry/fexit
    and kprobe arguments by name."""
    if isinstance(func, str) and not func.isdigit():
        func_id = btf.type_id(func, Kind.FUNC)
    else:
        func_id = resolve_type(btf, func)
    t = btf.type(func_id)
    if not isinstance(t, Func):
        raise TypeNotFoundError(f"{btf.name}: {_describe(btf, func_id)} is not a function")
    return _prototype_of(btf, t.name, func_id, t.type)


def tracepoint_prototype(btf: BTF, name: str) -> Prototype:
    """The arguments of BTF tracepoint ``name`` (``"sched_switch"``) as a ``tp_btf``
    program sees them: the prototype of typedef ``btf_trace_<name>`` without its first
    (``void *``) parameter."""
    full = name if name.startswith("btf_trace_") else "btf_trace_" + name
    type_id = btf.type_id(full, Kind.TYPEDEF)
    target = btf.type(skip_modifiers(btf, type_id))
    if not isinstance(target, Ptr):
        raise TypeNotFoundError(f"{btf.name}: {full} is not a pointer to a prototype")
    short = full[len("btf_trace_"):]
    proto = _prototype_of(btf, short, 0, target.type, skip=1)
    # the typedef's prototype has no parameter names; the tracepoint's BPF glue function
    # (__bpf_trace_<name>) has the same parameters with their names
    # (events sharing a class use the class's glue: sched_wakeup_new ->
    # __bpf_trace_sched_wakeup_template; take the longest class name that prefixes the
    # event's and has the same argument types)
    for glue_name in _glue_candidates(btf, short):
        glue = btf.ids(glue_name, Kind.FUNC)
        if len(glue) != 1:
            continue
        named = _prototype_of(btf, short, 0, btf.type(glue[0]).type, skip=1)  # type: ignore[attr-defined]
        if [a.type_id for a in named.args] == [a.type_id for a in proto.args]:
            return proto._replace(args=tuple(
                a._replace(name=n.name) for a, n in zip(proto.args, named.args)))
    return proto


def _glue_candidates(btf: BTF, event: str) -> List[str]:
    """Names of tracepoint glue functions that may carry ``event``'s parameter names."""
    out = ["__bpf_trace_" + event, "__bpf_trace_" + event + "_template"]
    parts = event.split("_")
    for n in range(len(parts) - 1, 0, -1):
        stem = "_".join(parts[:n])
        out += ["__bpf_trace_" + stem + "_template", "__bpf_trace_" + stem]
    return out


# ---------------------------------------------------------------------------------------
# Names
# ---------------------------------------------------------------------------------------

def type_name(btf: BTF, ref: TypeRef) -> str:
    """A short C spelling of a type for messages: ``struct task_struct *``,
    ``unsigned int``, ``char[16]``."""
    type_id = resolve_type(btf, ref)
    suffix = ""
    for _ in range(32):
        t = btf.type(type_id)
        if isinstance(t, Ptr):
            suffix = " *" + suffix.lstrip() if not suffix.startswith("[") else \
                " (*)" + suffix
            type_id = t.type
        elif isinstance(t, Array):
            suffix = suffix + f"[{t.nelems}]"
            type_id = t.type
        elif isinstance(t, Modifier) and not isinstance(t, Typedef):
            prefix = {Kind.CONST: "const ", Kind.VOLATILE: "volatile ",
                      Kind.RESTRICT: "restrict "}.get(t.kind, "")
            inner = type_name(btf, t.type)
            return (prefix + inner + suffix) if suffix else prefix + inner
        else:
            break
    t = btf.type(type_id)
    if isinstance(t, Void):
        base = "void"
    elif isinstance(t, Composite) or isinstance(t, Fwd):
        tag = "union" if (t.kind == Kind.UNION or (isinstance(t, Fwd) and t.union)) \
            else "struct"
        base = f"{tag} {t.name or '(anon)'}"
    elif isinstance(t, Enum):
        base = f"enum {t.name or '(anon)'}"
    elif isinstance(t, FuncProto):
        base = "func_proto"
    else:
        base = t.name or t.kind_name
    return base + suffix
