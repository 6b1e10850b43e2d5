"""CO-RE: rewriting the instructions a ``.BTF.ext`` relocation names so that field
offsets, field existence, type sizes and enum values match the running kernel's BTF.

All the relocation kinds: ``FIELD_BYTE_OFFSET`` (0), ``FIELD_BYTE_SIZE`` (1),
``FIELD_EXISTS`` (2), ``FIELD_SIGNED`` (3), ``FIELD_LSHIFT_U64`` (4) and
``FIELD_RSHIFT_U64`` (5) (bitfields included), ``TYPE_ID_LOCAL`` (6, the id in the
object's own BTF, which is loaded with the programs), ``TYPE_ID_TARGET`` (7, the id in
vmlinux), ``TYPE_EXISTS`` (8), ``TYPE_SIZE`` (9), ``ENUMVAL_EXISTS`` (10),
``ENUMVAL_VALUE`` (11) and ``TYPE_MATCHES`` (12). Candidates: types of the local type's
name (without a ``___flavour`` suffix) and kind; fields by name, through anonymous
structs and unions. An unsatisfiable relocation raises
:class:`~pybpf.object.errors.ObjectError`.
"""

from __future__ import annotations

import struct
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

from .errors import ObjectError

__all__ = ["CoreReloc", "parse_core_relocs", "apply_core_relocs", "KIND_NAMES"]

KIND_NAMES = {
    0: "field_byte_offset", 1: "field_byte_size", 2: "field_exists", 3: "field_signed",
    4: "field_lshift_u64", 5: "field_rshift_u64", 6: "type_id_local", 7: "type_id_target",
    8: "type_exists", 9: "type_size", 10: "enumval_exists", 11: "enumval_value",
    12: "type_matches",
}
_EXT_MAGIC = 0xEB9F
_FIELD_KINDS = (0, 1, 2, 3, 4, 5)
_TYPE_KINDS = (6, 7, 8, 9, 12)
_ENUM_KINDS = (10, 11)


class CoreReloc(NamedTuple):
    """A CO-RE relocation of ``.BTF.ext``: its section, byte offset of the instruction
    there, local BTF type id, access string (``"0:1:2"``) and kind."""

    section: str
    insn_off: int
    type_id: int
    access: str
    kind: int
    index: int

    def describe(self, btf: Any) -> str:
        """How messages name the relocation."""
        try:
            tname = btf.name_of(self.type_id) or f"type {self.type_id}"
        except Exception:  # a bad id is reported by the caller
            tname = f"type {self.type_id}"
        kind = KIND_NAMES.get(self.kind, f"kind {self.kind}")
        return (f"CO-RE relocation #{self.index} ({kind} of {tname!r}, access "
                f"{self.access!r}) at instruction {self.insn_off // 8} of section "
                f"{self.section!r}")


def parse_core_relocs(ext: bytes, btf: Any) -> List[CoreReloc]:
    """The CO-RE relocations of a ``.BTF.ext`` blob (strings from the object's BTF)."""
    if len(ext) < 8:
        raise ObjectError("section '.BTF.ext': too short for a header")
    magic, _version, _flags, hdr_len = struct.unpack_from("<HBBI", ext, 0)
    if magic != _EXT_MAGIC:
        raise ObjectError(f"section '.BTF.ext': bad magic {magic:#06x}")
    if hdr_len < 32 or hdr_len > len(ext):
        return []                             # no CO-RE part in this header
    core_off, core_len = struct.unpack_from("<II", ext, 24)
    start = hdr_len + core_off
    end = start + core_len
    if core_len == 0:
        return []
    if end > len(ext) or core_len < 4:
        raise ObjectError("section '.BTF.ext': CO-RE relocations run past the section")
    rec_size = struct.unpack_from("<I", ext, start)[0]
    if rec_size < 16:
        raise ObjectError(f"section '.BTF.ext': CO-RE record size {rec_size} < 16")
    pos = start + 4
    out: List[CoreReloc] = []
    while pos < end:
        if pos + 8 > end:
            raise ObjectError("section '.BTF.ext': truncated CO-RE section header")
        name_off, count = struct.unpack_from("<II", ext, pos)
        pos += 8
        section = btf.string(name_off)
        if pos + count * rec_size > end:
            raise ObjectError(f"section '.BTF.ext': CO-RE records of {section!r} run "
                              f"past the section")
        for _ in range(count):
            insn_off, type_id, access_off, kind = struct.unpack_from("<IIII", ext, pos)
            pos += rec_size
            out.append(CoreReloc(section, insn_off, type_id, btf.string(access_off), kind,
                                 len(out)))
    return out


# -- type helpers -------------------------------------------------------------------------

def _strip(btf: Any, type_id: int) -> Any:
    from ..btf.types import Modifier
    t = btf.type(type_id)
    for _ in range(64):
        if not isinstance(t, Modifier):
            return t
        t = btf.type(t.type)
    raise ObjectError(f"BTF type {type_id}: modifier loop")


def _essential(name: str) -> str:
    cut = name.find("___")
    return name[:cut] if cut > 0 else name


def _sizeof(btf: Any, type_id: int) -> int:
    from ..btf.resolve import sizeof
    return int(sizeof(btf, type_id))


class _Step(NamedTuple):
    member: Optional[str]     # a named member, or None for an array index
    index: int


class _Field(NamedTuple):
    """Where an accessed field is: its bit offset from the start of the access, its
    bitfield width (0 for a whole field) and its (stripped) type."""

    bit_offset: int
    bitfield_size: int
    type: Any


def _local_steps(btf: Any, rel: CoreReloc) -> Tuple[Any, List[_Step], _Field]:
    """Walk the access string over the local type: the root type, the named steps and
    the local field."""
    try:
        parts = [int(p) for p in rel.access.split(":")]
    except ValueError:
        raise ObjectError(f"{rel.describe(btf)}: bad access string") from None
    if not parts or any(p < 0 for p in parts):
        raise ObjectError(f"{rel.describe(btf)}: bad access string")
    from ..btf.types import Array, Composite
    root = _strip(btf, rel.type_id)
    bits = parts[0] * _sizeof(btf, root.id) * 8
    width = 0
    steps: List[_Step] = []
    cur = root
    for p in parts[1:]:
        if isinstance(cur, Composite):
            if p >= len(cur.members):
                raise ObjectError(f"{rel.describe(btf)}: member index {p} out of range")
            m = cur.members[p]
            bits += m.bit_offset
            width = m.bitfield_size
            if m.name:
                steps.append(_Step(m.name, 0))
            cur = _strip(btf, m.type)
        elif isinstance(cur, Array):
            steps.append(_Step(None, p))
            bits += p * _sizeof(btf, cur.type) * 8
            width = 0
            cur = _strip(btf, cur.type)
        else:
            raise ObjectError(f"{rel.describe(btf)}: access step {p} into a "
                              f"{type(cur).__name__}")
    return root, steps, _Field(bits, width, cur)


def _is_void(t: Any) -> bool:
    return t.id == 0


def _find_member(btf: Any, comp: Any, name: str, depth: int = 0
                 ) -> Optional[Tuple[int, Any]]:
    """(bit offset, member) of member ``name`` of ``comp``, looking into anonymous
    members; None if absent."""
    from ..btf.types import Composite
    if depth > 32:
        return None
    for m in comp.members:
        if m.name == name:
            return m.bit_offset, m
        if not m.name:
            inner = _strip(btf, m.type)
            if isinstance(inner, Composite):
                found = _find_member(btf, inner, name, depth + 1)
                if found is not None:
                    return m.bit_offset + found[0], found[1]
    return None


def _target_field(steps: List[_Step], first: int, target: Any, cand_id: int
                  ) -> Optional[_Field]:
    """The field the steps reach in target candidate ``cand_id``, or None."""
    from ..btf.types import Array, Composite
    cur = _strip(target, cand_id)
    bits = first * _sizeof(target, cur.id) * 8
    width = 0
    for step in steps:
        if step.member is not None:
            if not isinstance(cur, Composite):
                return None
            found = _find_member(target, cur, step.member)
            if found is None:
                return None
            offset, member = found
            bits += offset
            width = member.bitfield_size
            cur = _strip(target, member.type)
        else:
            if not isinstance(cur, Array):
                return None
            if cur.nelems and step.index >= cur.nelems:
                return None
            bits += step.index * _sizeof(target, cur.type) * 8
            width = 0
            cur = _strip(target, cur.type)
    return _Field(bits, width, cur)


def _field_value(btf: Any, field: _Field, kind: int) -> int:
    """The value of field relocation ``kind`` (0, 1, 3, 4, 5) for ``field``.

    A bitfield is read as the smallest naturally aligned load of at least its
    declared type's size that holds all its bits (up to 8 bytes); the shifts then
    isolate it in a 64-bit register (little-endian): left by what lies above it,
    right by 64 minus its width."""
    from ..btf.types import Enum, Int
    t = field.type
    if kind == 3:
        return int(bool(isinstance(t, (Int, Enum)) and t.signed))
    size = _sizeof(btf, t.id) if not _is_void(t) else 0
    if not field.bitfield_size:
        if field.bit_offset % 8:
            raise ObjectError(f"a field at bit {field.bit_offset} is not byte-aligned")
        offset = field.bit_offset // 8
        if kind == 0:
            return offset
        if kind == 1:
            return size
        if not 0 < size <= 8:
            raise ObjectError(f"a shift of a {size}-byte field")
        return 64 - 8 * size
    if size not in (1, 2, 4, 8):
        raise ObjectError(f"a bitfield of a {size}-byte type")
    end = field.bit_offset + field.bitfield_size
    offset = field.bit_offset // 8 // size * size
    while end - offset * 8 > size * 8:
        if size >= 8:
            raise ObjectError("a bitfield that no 8-byte load covers")
        size *= 2
        offset = field.bit_offset // 8 // size * size
    if kind == 0:
        return offset
    if kind == 1:
        return size
    if kind == 4:
        return 64 - (end - offset * 8)
    return 64 - field.bitfield_size


def _candidates(local: Any, root: Any, target: Any) -> List[int]:
    from ..btf.types import Enum, Struct, Union
    name = _essential(root.name)
    if not name:
        return []
    kind = "struct" if isinstance(root, Struct) else "union" if isinstance(root, Union) \
        else None
    if kind is not None:
        return target.ids(name, kind)
    ids = target.ids(name)
    return [i for i in ids if type(target.type(i)) is type(root)
            or (isinstance(root, Enum) and target.kind(i).name in ("ENUM", "ENUM64"))]


def _match(local: Any, lid: int, target: Any, tid: int, depth: int = 0) -> bool:
    """Whether local type ``lid`` matches target type ``tid`` (``TYPE_MATCHES``):
    same kind and essential name, integers of the same size and sign, pointers and
    arrays to matching types, every local member (by name) or enumerator present in the
    target, prototypes with matching return and parameter types."""
    from ..btf.types import Array, Composite, Enum, Fwd, FuncProto, Int, Ptr
    if depth > 32:
        return False
    lt, tt = _strip(local, lid), _strip(target, tid)
    if _is_void(lt) or _is_void(tt):
        return _is_void(lt) and _is_void(tt)
    if lt.name and _essential(lt.name) != tt.name:
        return False
    if isinstance(lt, Fwd) or isinstance(tt, Fwd):
        return isinstance(lt, (Fwd, Composite)) and isinstance(tt, (Fwd, Composite))
    if isinstance(lt, Enum):
        names = {v.name for v in getattr(tt, "values", ())}
        return isinstance(tt, Enum) and lt.size == tt.size and \
            all(v.name in names for v in lt.values)
    if type(lt) is not type(tt):
        return False
    if isinstance(lt, Int):
        return lt.size == tt.size and lt.signed == tt.signed
    if isinstance(lt, Ptr):
        return _match(local, lt.type, target, tt.type, depth + 1)
    if isinstance(lt, Array):
        return lt.nelems == tt.nelems and _match(local, lt.type, target, tt.type, depth + 1)
    if isinstance(lt, Composite):
        for m in lt.members:
            found = _find_member(target, tt, m.name) if m.name else None
            if found is None or not _match(local, m.type, target, found[1].type, depth + 1):
                return False
        return True
    if isinstance(lt, FuncProto):
        return len(lt.params) == len(tt.params) and \
            _match(local, lt.return_type, target, tt.return_type, depth + 1) and \
            all(_match(local, a.type, target, b.type, depth + 1)
                for a, b in zip(lt.params, tt.params))
    return True


def _value(local: Any, rel: CoreReloc, target: Any) -> Tuple[int, Optional[int]]:
    """(new value, local value or None) of one relocation."""
    if rel.kind in _FIELD_KINDS:
        root, steps, local_field = _local_steps(local, rel)
        first = int(rel.access.split(":")[0])
        results = set()
        for cand in _candidates(local, root, target):
            found = _target_field(steps, first, target, cand)
            if found is not None:
                results.add((found.bit_offset, found.bitfield_size, found.type.id))
        if rel.kind == 2:
            return (1 if results else 0), None
        if not results:
            raise ObjectError(f"{rel.describe(local)}: no matching field in the kernel's "
                              f"BTF")
        values = {_field_value(target, _Field(b, w, target.type(t)), rel.kind)
                  for b, w, t in results}
        if len(values) > 1:
            raise ObjectError(f"{rel.describe(local)}: the kernel's BTF has "
                              f"{len(results)} different matches")
        return values.pop(), _field_value(local, local_field, rel.kind)
    if rel.kind in _TYPE_KINDS:
        if rel.kind == 6:
            return rel.type_id, rel.type_id
        ltype = local.type(rel.type_id)
        cands = _candidates(local, ltype, target)
        if rel.kind == 12:
            return int(any(_match(local, rel.type_id, target, c) for c in cands)), None
        if rel.kind == 8:
            return (1 if cands else 0), None
        if not cands:
            raise ObjectError(f"{rel.describe(local)}: no such type in the kernel's BTF")
        if rel.kind == 7:
            return cands[0], None
        sizes = {_sizeof(target, c) for c in cands}
        if len(sizes) != 1:
            raise ObjectError(f"{rel.describe(local)}: {len(sizes)} candidate sizes in "
                              f"the kernel's BTF")
        return sizes.pop(), _sizeof(local, rel.type_id)
    if rel.kind in _ENUM_KINDS:
        root = _strip(local, rel.type_id)
        try:
            index = int(rel.access)
            enumerator = root.values[index]
        except (ValueError, IndexError, AttributeError):
            raise ObjectError(f"{rel.describe(local)}: bad enumerator access") from None
        values = set()
        for cand in _candidates(local, root, target):
            t = _strip(target, cand)
            for v in getattr(t, "values", ()):
                if v.name == enumerator.name:
                    values.add(v.value)
        if rel.kind == 10:
            return (1 if values else 0), None
        if len(values) != 1:
            raise ObjectError(f"{rel.describe(local)}: enumerator "
                              f"{enumerator.name!r} not (uniquely) in the kernel's BTF")
        return values.pop(), None
    raise ObjectError(f"{rel.describe(local)}: relocation kind not supported")


def _patch(code: bytearray, rel: CoreReloc, value: int, describe: str) -> None:
    pos = rel.insn_off
    if pos % 8 or pos + 8 > len(code):
        raise ObjectError(f"{describe}: instruction offset outside the section")
    opcode = code[pos]
    cls = opcode & 0x07
    if opcode == 0x18:
        if pos + 16 > len(code):
            raise ObjectError(f"{describe}: lddw is truncated")
        struct.pack_into("<I", code, pos + 4, value & 0xFFFFFFFF)
        struct.pack_into("<I", code, pos + 12, (value >> 32) & 0xFFFFFFFF)
    elif cls in (0x04, 0x07):                       # ALU / ALU64 with immediate
        if opcode & 0x08:
            raise ObjectError(f"{describe}: ALU instruction without an immediate")
        struct.pack_into("<i", code, pos + 4, value)
    elif cls in (0x01, 0x02, 0x03) and rel.kind == 0:   # LDX / ST / STX: the offset
        if not -0x8000 <= value < 0x8000:
            raise ObjectError(f"{describe}: offset {value} does not fit an instruction")
        struct.pack_into("<h", code, pos + 2, value)
    else:
        raise ObjectError(f"{describe}: cannot patch opcode {opcode:#04x}")


def apply_core_relocs(code: Dict[str, bytes], relocs: List[CoreReloc], local: Any,
                      target: Any) -> Dict[str, bytes]:
    """``code`` (section name -> bytes) with every relocation applied against
    ``target`` (the kernel's BTF); raises :class:`ObjectError` naming the relocation
    that cannot be satisfied."""
    patched = {name: bytearray(data) for name, data in code.items()}
    for rel in relocs:
        describe = rel.describe(local)
        if rel.section not in patched:
            raise ObjectError(f"{describe}: no such code section")
        try:
            value, _ = _value(local, rel, target)
        except ObjectError:
            raise
        except (KeyError, ValueError, TypeError, IndexError) as exc:
            raise ObjectError(f"{describe}: {exc}") from None
        _patch(patched[rel.section], rel, value, describe)
    return {name: bytes(data) for name, data in patched.items()}
