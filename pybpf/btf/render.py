"""C text from BTF: one type's definition (:func:`render_type`) or a whole header that a
C compiler accepts, a ``vmlinux.h`` equivalent (:func:`render_header`).

The header reproduces every struct and union layout exactly. BTF records offsets but
not the source's alignment attributes, so each aggregate is laid out as a compiler
would lay it out naturally and the differences are written explicitly: unnamed
bitfields fill gaps (they change neither the alignment nor the naming of an
aggregate), ``__attribute__((packed))`` marks aggregates whose BTF layout cannot be
natural (see :func:`pybpf.btf.resolve.is_packed`), and unions larger than their
members get an anonymous struct of such bitfields.

Order: enums first (they depend on nothing), then a forward declaration of every named
struct and union, then typedefs and aggregates in dependency order, each aggregate after
the aggregates it embeds by value. Names that C would see as redefinitions (two
different ``struct foo``, an enumerator defined twice) get a ``___N`` suffix, as other
BTF tools do, so that the header compiles; :class:`HeaderRenderer` exposes the names it
chose. Enums whose size a compiler would not reproduce (and anonymous enums used in
several places) are referred to through an integer type of the same size and
signedness.
"""

from __future__ import annotations

import re
from typing import Dict, Iterable, List, Optional, Set, Tuple

from .format import Kind
from .parser import BTF
from .resolve import TypeRef, alignof, is_packed, resolve_type, sizeof
from .types import (
    Array, BtfType, Composite, Const, Datasec, DeclTag, Enum, Float, Func, FuncProto,
    Fwd, Int, Modifier, Ptr, Restrict, Typedef, TypeTag, Var, Void, Volatile, referenced,
)

__all__ = ["render_type", "render_header", "HeaderRenderer", "raw_line", "render_raw"]

_C_INTS = {
    "char", "signed char", "unsigned char", "short", "short int", "signed short",
    "short unsigned int", "unsigned short", "unsigned short int", "int", "signed int",
    "unsigned int", "unsigned", "long", "long int", "signed long", "long unsigned int",
    "unsigned long", "unsigned long int", "long long", "long long int",
    "long long unsigned int", "unsigned long long", "unsigned long long int", "_Bool",
    "__int128", "__int128 unsigned", "unsigned __int128",
}
_CANONICAL = {(1, False): "unsigned char", (1, True): "signed char",
              (2, False): "short unsigned int", (2, True): "short int",
              (4, False): "unsigned int", (4, True): "int",
              (8, False): "long long unsigned int", (8, True): "long long int",
              (16, False): "__int128 unsigned", (16, True): "__int128"}
_PAD_TYPES = {64: "long long", 32: "int", 16: "short", 8: "char"}
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

TAG_MACRO = "__pybpf_type_tag"


def _ident(name: str) -> str:
    if _IDENT.match(name):
        return name
    text = re.sub(r"[^A-Za-z0-9_]", "_", name)
    return text if text and not text[0].isdigit() else "_" + text


def _literal(value: int, size: int) -> str:
    if -(1 << 31) <= value < (1 << 31):
        return str(value)
    if value == -(1 << 63):
        return "(-9223372036854775807LL - 1)"
    if value < 0:
        return f"{value}LL"
    if value < (1 << 32) and size <= 4:
        return f"{value}U"
    return f"{value}ULL"


class _Base:
    """Shared declarator machinery; subclasses decide names and what is inlined."""

    def __init__(self, btf: BTF, *, offsets: bool = False, param_names: bool = False,
                 type_tags: bool = True) -> None:
        self.btf = btf
        self.offsets = offsets
        self.param_names = param_names
        self.type_tags = type_tags

    # naming hooks --------------------------------------------------------------------
    def tag_name(self, t: BtfType) -> str:
        return _ident(t.name)

    def typedef_name(self, t: Typedef) -> str:
        return _ident(t.name)

    def enumerator_name(self, t: Enum, index: int) -> str:
        return _ident(t.values[index].name)

    def enum_reference(self, t: Enum, indent: int) -> str:
        """How a use of enum ``t`` is written."""
        if t.name:
            return f"enum {self.tag_name(t)}"
        return self.enum_body(t, indent)

    def tag_macro(self, tag: str) -> str:
        return f'__attribute__((btf_type_tag("{tag}")))'

    # declarators ---------------------------------------------------------------------
    def int_name(self, t: Int) -> str:
        if t.name in _C_INTS:
            return t.name
        if t.is_bool:
            return "_Bool"
        if t.is_char and t.size == 1:
            return "char"
        return _CANONICAL.get((t.size, t.signed), "unsigned char")

    def base_name(self, t: BtfType, indent: int, offset: int) -> str:
        if isinstance(t, Void):
            return "void"
        if isinstance(t, Int):
            return self.int_name(t)
        if isinstance(t, Float):
            return t.name or {4: "float", 8: "double", 16: "long double"}.get(t.size, "double")
        if isinstance(t, Typedef):
            return self.typedef_name(t)
        if isinstance(t, Composite):
            if t.name:
                return f"{t.kind_name} {self.tag_name(t)}"
            return self.composite_body(t, indent, offset)
        if isinstance(t, Fwd):
            return f"{'union' if t.union else 'struct'} {self.tag_name(t)}"
        if isinstance(t, Enum):
            return self.enum_reference(t, indent)
        return f"/* {t.kind_name} */ void"

    def declaration(self, type_id: int, inner: str = "", indent: int = 0,
                    offset: int = 0) -> str:
        """``type_id`` declared as ``inner`` (a name, or empty for an abstract
        declarator)."""
        btf = self.btf
        quals: List[str] = []
        for _ in range(256):
            t = btf.type(type_id)
            if isinstance(t, Ptr):
                inner = "*" + inner
                type_id = t.type
                continue
            if isinstance(t, (Const, Volatile, Restrict, TypeTag)):
                if isinstance(t, TypeTag):
                    if not self.type_tags:
                        type_id = t.type
                        continue
                    word = self.tag_macro(t.name)
                else:
                    word = {Kind.CONST: "const", Kind.VOLATILE: "volatile",
                            Kind.RESTRICT: "restrict"}[t.kind]
                under = type_id = t.type
                while btf.kind(under) in (Kind.CONST, Kind.VOLATILE, Kind.RESTRICT,
                                          Kind.TYPE_TAG):
                    under = btf.type(under).type  # type: ignore[attr-defined]
                kind = btf.kind(under)
                if kind == Kind.PTR:
                    inner = f"{word} {inner}" if inner else word
                elif kind in (Kind.FUNC_PROTO,):
                    pass                      # a qualified function type means nothing
                elif word not in quals:
                    quals.append(word)
                continue
            if isinstance(t, Array):
                if inner.startswith("*"):
                    inner = f"({inner})"
                inner = f"{inner}[{t.nelems}]"
                type_id = t.type
                continue
            if isinstance(t, FuncProto):
                if inner.startswith("*"):
                    inner = f"({inner})"
                inner = f"{inner}({self.params(t, indent)})"
                type_id = t.return_type
                continue
            head = " ".join(quals + [self.base_name(t, indent, offset)])
            return f"{head} {inner}" if inner else head
        return "/* type chain too long */ void " + inner

    def params(self, t: FuncProto, indent: int) -> str:
        if not t.params and not t.variadic:
            return "void"
        parts = [self.declaration(p.type, _ident(p.name) if self.param_names and p.name
                                  else "", indent) for p in t.params]
        if t.variadic:
            parts.append("...")
        return ", ".join(parts)

    # aggregates -----------------------------------------------------------------------
    def enum_body(self, t: Enum, indent: int) -> str:
        pad = "\t" * (indent + 1)
        head = f"enum {self.tag_name(t)} " if t.name else "enum "
        if not t.values:
            return head.rstrip()
        lines = [f"{pad}{self.enumerator_name(t, i)} = {_literal(v.value, t.size)},"
                 for i, v in enumerate(t.values)]
        return head + "{\n" + "\n".join(lines) + "\n" + "\t" * indent + "}"

    def _comment(self, start_bits: int, size: int, bits: int = 0) -> str:
        if not self.offsets:
            return ""
        if bits:
            return f"\t/* {start_bits // 8}:{start_bits % 8} {bits} bits */"
        return f"\t/* {start_bits // 8} {size} */"

    def composite_body(self, t: Composite, indent: int, offset: int = 0) -> str:
        """``struct name { ... }`` with explicit padding where natural layout would
        differ from the BTF offsets (see the module docstring)."""
        btf = self.btf
        pad = "\t" * (indent + 1)
        lines: List[str] = []
        packed = is_packed(btf, t.id)
        union = t.kind == Kind.UNION
        pos = 0
        align = 1
        for m in t.members:
            try:
                msize = sizeof(btf, m.type)
                malign = alignof(btf, m.type)
            except ValueError:
                msize, malign = 0, 1
            name = _ident(m.name) if m.name else ""
            if union:
                natural = 0
            elif m.bitfield_size:
                unit = msize * 8
                if packed or not unit or (pos % unit) + m.bitfield_size <= unit:
                    natural = pos
                else:
                    natural = -(-pos // unit) * unit
            else:
                natural = -(-pos // 8) * 8 if packed else -(-pos // (malign * 8)) * (malign * 8)
            if not union and m.bit_offset > natural:
                lines.extend(pad + p for p in _padding(pos, m.bit_offset))
            decl = self.declaration(m.type, name, indent + 1, offset + m.bit_offset)
            if m.bitfield_size:
                decl += f": {m.bitfield_size}"
            lines.append(f"{pad}{decl};" + self._comment(offset + m.bit_offset, msize,
                                                          m.bitfield_size))
            end = m.bit_offset + (m.bitfield_size or msize * 8)
            pos = max(pos, end) if union else end
            if not (m.bitfield_size and not m.name):
                align = max(align, malign)
        size_bits = t.size * 8
        attrs = []
        if packed:
            attrs.append("packed")
            if not union and pos < size_bits:
                lines.extend(pad + p for p in _padding(pos, size_bits))
        elif union:
            natural_size = -(-pos // (align * 8)) * (align * 8)
            if natural_size < size_bits:
                # an anonymous struct of unnamed bitfields: size without alignment
                inner = "\n".join(pad + "\t" + p for p in _padding(0, size_bits))
                lines.append(f"{pad}struct {{\n{inner}\n{pad}}};")
        else:
            natural_size = -(-pos // (align * 8)) * (align * 8)
            if natural_size != size_bits and pos < size_bits:
                lines.extend(pad + p for p in _padding(pos, size_bits))
        head = f"{t.kind_name} {self.tag_name(t)} " if t.name else f"{t.kind_name} "
        tail = "".join(f" __attribute__(({a}))" for a in attrs)
        if not lines:
            return head + "{}" + tail
        size_note = f"\t/* size: {t.size} */" if self.offsets and indent == 0 else ""
        return (head + "{" + size_note + "\n" + "\n".join(lines) + "\n" + "\t" * indent +
                "}" + tail)


def _padding(pos: int, target: int) -> List[str]:
    """Unnamed bitfields that move from bit ``pos`` to bit ``target`` without changing
    alignment: sub-byte pieces in chars, then the widest aligned units."""
    out = []
    while pos < target:
        if pos % 8 or target - pos < 8:
            n = min(target - pos, 8 - pos % 8)
            out.append(f"unsigned char: {n};")
            pos += n
            continue
        for unit in (64, 32, 16, 8):
            if pos % unit == 0 and target - pos >= unit:
                out.append(f"{_PAD_TYPES[unit]}: {unit};")
                pos += unit
                break
    return out


# ---------------------------------------------------------------------------------------
# One type
# ---------------------------------------------------------------------------------------

class _OneType(_Base):
    pass


def render_type(btf: BTF, ref: TypeRef, *, offsets: bool = True) -> str:
    """A C-like definition of one type: the body of a struct, union or enum (anonymous
    members inline), a typedef, a function's declaration with parameter names, a
    variable, a data section's variables; ``offsets`` adds ``/* offset size */``
    comments (bytes, ``byte:bit width`` for bitfields) to aggregate members."""
    type_id = resolve_type(btf, ref)
    r = _OneType(btf, offsets=offsets, param_names=True)
    t = btf.type(type_id)
    if isinstance(t, Composite):
        return r.composite_body(t, 0) + ";"
    if isinstance(t, Enum):
        size = f"\t/* size: {t.size}{', signed' if t.signed else ''} */" if offsets else ""
        return r.enum_body(t, 0) + ";" + size
    if isinstance(t, Typedef):
        return f"typedef {r.declaration(t.type, _ident(t.name))};"
    if isinstance(t, Func):
        linkage = "extern " if t.linkage == 2 else ""
        return f"{linkage}{r.declaration(t.type, _ident(t.name))};"
    if isinstance(t, Var):
        linkage = {0: "static ", 2: "extern "}.get(t.linkage, "")
        return f"{linkage}{r.declaration(t.type, _ident(t.name))};"
    if isinstance(t, Datasec):
        lines = [f"/* section {t.name}, {t.size} bytes */"]
        for v in t.vars:
            target = btf.type(v.type)
            inner = _ident(target.name) if target.name else ""
            decl = r.declaration(target.type if isinstance(target, (Var, Func)) else v.type,
                                 inner)
            lines.append(f"{decl};\t/* {v.offset} {v.size} */")
        return "\n".join(lines)
    if isinstance(t, Fwd):
        return f"{'union' if t.union else 'struct'} {_ident(t.name)};"
    if isinstance(t, DeclTag):
        where = "" if t.component_idx < 0 else f" component {t.component_idx}"
        return f'/* decl_tag "{t.name}" on [{t.type}]{where} */'
    if isinstance(t, Int):
        sign = "signed" if t.signed else "unsigned"
        return f"/* int {t.name!r}: {t.size} bytes, {t.bits} bits, {sign} */ {r.int_name(t)}"
    return r.declaration(type_id)


# ---------------------------------------------------------------------------------------
# Raw listing
# ---------------------------------------------------------------------------------------

def raw_line(btf: BTF, type_id: int) -> str:
    """One line per type in the style of a raw BTF listing: ``[id] KIND 'name' fields``
    (members, enumerators and parameters on the following lines)."""
    t = btf.type(type_id)
    head = f"[{type_id}] {t.kind.name} '{t.name or '(anon)'}'"
    if isinstance(t, Int):
        enc = "|".join(n for n, bit in (("SIGNED", 1), ("CHAR", 2), ("BOOL", 4))
                       if int(t.encoding) & bit) or "(none)"
        return f"{head} size={t.size} bits_offset={t.bit_offset} nr_bits={t.bits} encoding={enc}"
    if isinstance(t, (Ptr, Modifier)):
        return f"{head} type_id={t.type}"
    if isinstance(t, Array):
        return f"{head} type_id={t.type} index_type_id={t.index_type} nr_elems={t.nelems}"
    if isinstance(t, Composite):
        lines = [f"{head} size={t.size} vlen={len(t.members)}"]
        for m in t.members:
            extra = f" bitfield_size={m.bitfield_size}" if m.bitfield_size else ""
            lines.append(f"\t'{m.name or '(anon)'}' type_id={m.type} bits_offset={m.bit_offset}"
                         f"{extra}")
        return "\n".join(lines)
    if isinstance(t, Enum):
        lines = [f"{head} encoding={'SIGNED' if t.signed else 'UNSIGNED'} size={t.size} "
                 f"vlen={len(t.values)}"]
        suffix = ("LL" if t.signed else "ULL") if t.kind == Kind.ENUM64 else ""
        lines.extend(f"\t'{v.name}' val={v.value}{suffix}" for v in t.values)
        return "\n".join(lines)
    if isinstance(t, Fwd):
        return f"{head} fwd_kind={'union' if t.union else 'struct'}"
    if isinstance(t, Func):
        linkage = {0: "static", 1: "global", 2: "extern"}.get(t.linkage, str(t.linkage))
        return f"{head} type_id={t.type} linkage={linkage}"
    if isinstance(t, FuncProto):
        lines = [f"{head} ret_type_id={t.return_type} vlen={len(t.params) + t.variadic}"]
        lines.extend(f"\t'{p.name or '(anon)'}' type_id={p.type}" for p in t.params)
        if t.variadic:
            lines.append("\t'(anon)' type_id=0")
        return "\n".join(lines)
    if isinstance(t, Var):
        linkage = {0: "static", 1: "global", 2: "extern"}.get(t.linkage, str(t.linkage))
        return f"{head} type_id={t.type}, linkage={linkage}"
    if isinstance(t, Datasec):
        lines = [f"{head} size={t.size} vlen={len(t.vars)}"]
        for v in t.vars:
            target = btf.type(v.type)
            lines.append(f"\ttype_id={v.type} offset={v.offset} size={v.size} "
                         f"({target.kind.name} '{target.name}')")
        return "\n".join(lines)
    if isinstance(t, Float):
        return f"{head} size={t.size}"
    if isinstance(t, DeclTag):
        return f"{head} type_id={t.type} component_idx={t.component_idx}"
    return head


def render_raw(btf: BTF, ids: Optional[Iterable[int]] = None) -> Iterable[str]:
    """:func:`raw_line` for ``ids`` (every own type by default)."""
    for type_id in (btf.own_ids() if ids is None else ids):
        yield raw_line(btf, type_id)


# ---------------------------------------------------------------------------------------
# A whole header
# ---------------------------------------------------------------------------------------

class HeaderRenderer(_Base):
    """Renders a compilable header for ``btf`` (see the module docstring).

    After :meth:`render`, ``tags`` maps struct/union/enum ids to the tag each was given
    and ``typedefs`` typedef ids to their names (both differ from the BTF names only
    where a ``___N`` suffix was needed).
    """

    def __init__(self, btf: BTF, *, type_tags: bool = True) -> None:
        super().__init__(btf, offsets=False, param_names=False, type_tags=type_tags)
        self.tags: Dict[int, str] = {}
        self.typedefs: Dict[int, str] = {}
        self.enumerators: Dict[Tuple[int, int], str] = {}
        self._opaque_enums: Set[int] = set()
        self._packed_enums: Set[int] = set()
        self._inline_enum_by: Dict[int, int] = {}     # anon enum id -> typedef id
        self._done: Set[int] = set()
        self._busy: Set[int] = set()
        self._out: List[str] = []

    # names -----------------------------------------------------------------------------
    def tag_name(self, t: BtfType) -> str:
        return self.tags.get(t.id) or _ident(t.name)

    def typedef_name(self, t: Typedef) -> str:
        return self.typedefs.get(t.id) or _ident(t.name)

    def enumerator_name(self, t: Enum, index: int) -> str:
        return self.enumerators.get((t.id, index)) or _ident(t.values[index].name)

    def tag_macro(self, tag: str) -> str:
        return f'{TAG_MACRO}("{tag}")'

    def enum_reference(self, t: Enum, indent: int) -> str:
        if t.id in self._opaque_enums or not t.name:
            if not t.name and self._inline_enum_by.get(t.id) == -1:
                return self.enum_body(t, indent)
            return _CANONICAL.get((t.size, t.signed), "unsigned int")
        return f"enum {self.tag_name(t)}"

    def _plan(self, ids: List[int]) -> None:
        """Choose names, and decide how enums are written."""
        btf = self.btf
        tag_owner: Dict[str, Tuple[int, Kind]] = {}
        counts: Dict[str, int] = {}

        def unique(name: str, taken: Dict[str, int]) -> str:
            n = taken.get(name, 1)
            while True:
                n += 1
                candidate = f"{name}___{n}"
                if candidate not in taken:
                    taken[name] = n
                    taken[candidate] = 1
                    return candidate

        ordinary: Dict[str, int] = {}
        # tags: struct/union/enum share one namespace; a FWD uses the tag of its kind
        for type_id in ids:
            t = btf.type(type_id)
            if not t.name or not isinstance(t, (Composite, Enum)):
                continue
            name = _ident(t.name)
            tag_kind = t.kind if t.kind != Kind.ENUM64 else Kind.ENUM
            if name in tag_owner:
                self.tags[type_id] = unique(name, counts)
            else:
                tag_owner[name] = (type_id, tag_kind)
                counts.setdefault(name, 1)
        for type_id in ids:
            t = btf.type(type_id)
            if isinstance(t, Fwd) and t.name:
                owner = tag_owner.get(_ident(t.name))
                want = Kind.UNION if t.union else Kind.STRUCT
                if owner is not None and owner[1] != want:
                    self.tags[type_id] = unique(_ident(t.name), counts)
        # typedef names first, then enumerators, in one namespace
        for type_id in ids:
            t = btf.type(type_id)
            if isinstance(t, Typedef):
                name = _ident(t.name)
                if name.startswith("__builtin_"):
                    continue
                if name in ordinary:
                    self.typedefs[type_id] = unique(name, ordinary)
                else:
                    ordinary[name] = 1
        # references to anonymous enums decide how they are written
        users: Dict[int, List[int]] = {}
        anon_enums = {i for i in ids if btf.kind(i) in (Kind.ENUM, Kind.ENUM64)
                      and not btf.name_of(i)}
        if anon_enums:
            for type_id in ids:
                for ref in referenced(btf.type(type_id)):
                    if ref in anon_enums:
                        users.setdefault(ref, []).append(type_id)
        for type_id in ids:
            t = btf.type(type_id)
            if not isinstance(t, Enum):
                continue
            fit = self._enum_fit(t)
            if fit == "opaque":
                self._opaque_enums.add(type_id)
            elif fit == "packed":
                self._packed_enums.add(type_id)
            if not t.name and fit != "opaque":
                refs = users.get(type_id, [])
                if len(refs) == 1 and btf.kind(refs[0]) == Kind.TYPEDEF:
                    self._inline_enum_by[type_id] = refs[0]
            for index, v in enumerate(t.values):
                name = _ident(v.name)
                if name in ordinary:
                    self.enumerators[(type_id, index)] = unique(name, ordinary)
                else:
                    ordinary[name] = 1

    @staticmethod
    def _enum_fit(t: Enum) -> str:
        """"plain", "packed" or "opaque": how a compiler would reproduce its size."""
        if not t.values:
            return "opaque"
        lo = min(v.value for v in t.values)
        hi = max(v.value for v in t.values)
        if lo < 0:
            natural = 4 if lo >= -(1 << 31) and hi < (1 << 31) else 8
        else:
            natural = 4 if hi < (1 << 32) else 8
        if natural == t.size:
            return "plain"
        for size in (1, 2, 4, 8):
            if lo < 0:
                fits = lo >= -(1 << (8 * size - 1)) and hi < (1 << (8 * size - 1))
            else:
                fits = hi < (1 << (8 * size))
            if fits:
                return "packed" if size == t.size else "opaque"
        return "opaque"

    # dependencies ----------------------------------------------------------------------
    def _need(self, type_id: int, complete: bool) -> None:
        btf = self.btf
        for _ in range(256):
            t = btf.type(type_id)
            if isinstance(t, Ptr):
                type_id, complete = t.type, False
                continue
            if isinstance(t, Array):
                type_id, complete = t.type, True
                continue
            if isinstance(t, (Const, Volatile, Restrict, TypeTag)):
                type_id = t.type
                continue
            if isinstance(t, Typedef):
                self._emit_typedef(t)
                if complete:
                    type_id = t.type
                    continue
                return
            if isinstance(t, Composite):
                if t.name:
                    if complete:
                        self._emit_composite(t)
                else:
                    for m in t.members:
                        self._need(m.type, True)
                return
            if isinstance(t, FuncProto):
                self._need(t.return_type, False)
                for p in t.params:
                    self._need(p.type, False)
                return
            return

    def _emit_typedef(self, t: Typedef) -> None:
        if t.id in self._done or t.id in self._busy:
            return
        if t.name.startswith("__builtin_"):
            self._done.add(t.id)
            return
        self._busy.add(t.id)
        target = self.btf.type(t.type)
        if isinstance(target, Enum) and self._inline_enum_by.get(target.id) == t.id:
            self._inline_enum_by[target.id] = -1           # write it inline here
            text = f"typedef {self.declaration(t.type, self.typedef_name(t))};"
            self._inline_enum_by[target.id] = t.id
        else:
            self._need(t.type, False)
            text = f"typedef {self.declaration(t.type, self.typedef_name(t))};"
        self._busy.discard(t.id)
        self._done.add(t.id)
        self._out.append(text + "\n\n")

    def _emit_composite(self, t: Composite) -> None:
        if t.id in self._done or t.id in self._busy:
            return
        self._busy.add(t.id)
        for m in t.members:
            self._need(m.type, True)
        text = self.composite_body(t, 0) + ";"
        self._busy.discard(t.id)
        self._done.add(t.id)
        self._out.append(text + "\n\n")

    # output ------------------------------------------------------------------------------
    def render(self, ids: Optional[Iterable[int]] = None) -> str:
        """The header text for ``ids`` (every type of the blob, base included, by
        default) and what they depend on."""
        btf = self.btf
        all_ids = list(range(1, len(btf))) if ids is None else sorted(set(ids))
        self._plan(list(range(1, len(btf))))
        out = self._out
        guard = "__PYBPF_" + _ident(btf.name or "btf").upper() + "_H__"
        out.append(f"/* generated by pybpf from the BTF of {btf.name or 'a blob'} */\n")
        out.append(f"#ifndef {guard}\n#define {guard}\n\n")
        out.append("#if defined(__clang__) && !defined(BPF_NO_PRESERVE_ACCESS_INDEX)\n"
                   "#pragma clang attribute push (__attribute__((preserve_access_index)), "
                   "apply_to = record)\n#endif\n\n")
        out.append(f"#ifndef {TAG_MACRO}\n"
                   "#if defined(__clang__) && defined(__has_attribute)\n"
                   "#if __has_attribute(btf_type_tag)\n"
                   f"#define {TAG_MACRO}(x) __attribute__((btf_type_tag(x)))\n"
                   "#endif\n#endif\n"
                   f"#ifndef {TAG_MACRO}\n#define {TAG_MACRO}(x)\n#endif\n#endif\n\n")
        wanted = set(all_ids)
        # enums
        for type_id in range(1, len(btf)):
            if btf.kind(type_id) not in (Kind.ENUM, Kind.ENUM64) or type_id not in wanted \
                    and ids is not None:
                continue
            t = btf.type(type_id)
            assert isinstance(t, Enum)
            if not t.values:
                continue
            if not t.name and type_id in self._inline_enum_by:
                continue
            body = self.enum_body(t, 0)
            if type_id in self._opaque_enums and t.name:
                # keep the enumerators, under a name nothing refers to
                body = self.enum_body(t.replace(name=""), 0)  # type: ignore[arg-type]
            attr = " __attribute__((packed))" if type_id in self._packed_enums else ""
            out.append(body + attr + ";\n\n")
        # forward declarations (a FWD and its definition share one)
        declared: Set[str] = set()
        for type_id in range(1, len(btf)):
            kind = btf.kind(type_id)
            if kind in (Kind.STRUCT, Kind.UNION, Kind.FWD) and btf.name_of(type_id):
                t = btf.type(type_id)
                tag = ("union" if kind == Kind.UNION or (kind == Kind.FWD and t.union)
                       else "struct")
                decl = f"{tag} {self.tag_name(t)};\n"
                if decl not in declared:
                    declared.add(decl)
                    out.append(decl)
        out.append("\n")
        for type_id in all_ids:
            kind = btf.kind(type_id)
            if kind == Kind.TYPEDEF:
                self._emit_typedef(btf.type(type_id))  # type: ignore[arg-type]
            elif kind in (Kind.STRUCT, Kind.UNION) and btf.name_of(type_id):
                self._emit_composite(btf.type(type_id))  # type: ignore[arg-type]
        out.append("#if defined(__clang__) && !defined(BPF_NO_PRESERVE_ACCESS_INDEX)\n"
                   "#pragma clang attribute pop\n#endif\n\n")
        out.append(f"#endif /* {guard} */\n")
        text = "".join(out)
        self._out = []
        return text


def render_header(btf: BTF, ids: Optional[Iterable[int]] = None, *,
                  type_tags: bool = True) -> str:
    """A header declaring the types of ``btf`` (or ``ids`` and their dependencies)
    that a C compiler accepts with every layout as in the BTF: a ``vmlinux.h``
    equivalent for :func:`~pybpf.btf.parser.vmlinux`. Type tags are written through
    the ``__pybpf_type_tag`` macro (clang's ``btf_type_tag`` when available)."""
    return HeaderRenderer(btf, type_tags=type_tags).render(ids)
