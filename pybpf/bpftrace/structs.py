"""Records and C types for the semantic analyser, the way bpftrace 0.17 sees them.

bpftrace 0.17 turns C types into its own through clang: kernel types are dumped from
BTF as C text, the preamble's ``struct`` definitions and the generated tracepoint
structs are added, and clang's canonical types become ``SizedType``\\ s. This module
gives the same answers without clang:

* integers keep their C size and signedness (``char`` is signed, ``_Bool`` is
  ``unsigned int8``, an ``enum`` is unsigned); typedefs are looked through (common
  scalar ones such as ``u32``, ``pid_t``, ``umode_t`` from a table that agrees with the
  kernel's BTF, so that the BTF is parsed only for the others);
* ``char`` arrays are ``string[N]``; other arrays ``T[N]``; pointers to ``void``,
  functions and floats point to ``none``; floats are ``none``;
* ``struct``/``union`` members are fields (anonymous members' fields are the parent's),
  bit-fields carry how to read them;
* a tracepoint's record is ``struct _tracepoint_CATEGORY_EVENT`` built from its tracefs
  ``format`` file (``__data_loc`` fields are ``int64``; 8-byte ``int``, ``u32``,
  ``pid_t``... fields are widened as bpftrace widens them, padding fields added);
* kfunc arguments come from the function's BTF prototype.

Differences from 0.17: every struct BTF has is known (bpftrace pulls types in up to a
nesting depth, ``BPFTRACE_MAX_TYPE_RES_ITERATIONS``), a named member of an unnamed
struct type is a record called ``struct (anonymous)``, and an enum constant is found in
the preamble or anywhere in the kernel's BTF.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Dict, List, Optional, Tuple

from .types import (Bitfield, Field, SizedType, Struct, create_array, create_int,
                    create_integer, create_none, create_pointer, create_record,
                    create_string, create_uint)

__all__ = ["StructManager", "tracepoint_struct_name", "C_BASE_TYPES"]

#: C base type words -> (bytes, signed, plain char)
C_BASE_TYPES: Dict[str, Tuple[int, bool, bool]] = {
    "char": (1, True, True), "signed char": (1, True, False),
    "unsigned char": (1, False, False), "short": (2, True, False),
    "unsigned short": (2, False, False), "int": (4, True, False),
    "unsigned int": (4, False, False), "long": (8, True, False),
    "unsigned long": (8, False, False), "long long": (8, True, False),
    "unsigned long long": (8, False, False), "_Bool": (1, False, False),
    "bool": (1, False, False),
}
#: scalar typedefs resolved without BTF (what the kernel's BTF says of each, checked by
#: tests/test_bpftrace_semantic.py): a program whose C types are all base types or these
#: (the usual tracepoint fields: ``umode_t mode``) never parses the kernel's BTF
_FALLBACK_TYPEDEFS = {
    "u8": "unsigned char", "u16": "unsigned short", "u32": "unsigned int",
    "u64": "unsigned long long", "s8": "signed char", "s16": "short", "s32": "int",
    "s64": "long long", "__u8": "unsigned char", "__u16": "unsigned short",
    "__u32": "unsigned int", "__u64": "unsigned long long", "__s8": "signed char",
    "__s16": "short", "__s32": "int", "__s64": "long long", "size_t": "unsigned long",
    "ssize_t": "long", "pid_t": "int", "uid_t": "unsigned int", "gid_t": "unsigned int",
    "umode_t": "unsigned short", "loff_t": "long long", "dev_t": "unsigned int",
    "gfp_t": "unsigned int", "bool": "_Bool", "uint8_t": "unsigned char",
    "uint16_t": "unsigned short", "uint32_t": "unsigned int",
    "uint64_t": "unsigned long", "int8_t": "signed char", "int16_t": "short",
    "int32_t": "int", "int64_t": "long",
    # kernel-wide scalar typedefs (uapi or core kernel, the same on every 64-bit
    # kernel): known here so that a tracepoint field of these types needs no BTF
    "ino_t": "unsigned long", "off_t": "long", "clockid_t": "int", "timer_t": "int",
    "key_t": "int", "mqd_t": "int", "time64_t": "long long", "ktime_t": "long long",
    "sector_t": "unsigned long long", "blkcnt_t": "unsigned long long",
    "aio_context_t": "unsigned long", "uint": "unsigned int", "ulong": "unsigned long",
    "ushort": "unsigned short", "u_int8_t": "unsigned char", "u_int16_t": "unsigned short",
    "u_int32_t": "unsigned int", "u_int64_t": "unsigned long long",
    "__le16": "unsigned short", "__le32": "unsigned int", "__le64": "unsigned long long",
    "__be16": "unsigned short", "__be32": "unsigned int", "__be64": "unsigned long long",
    "__wsum": "unsigned int", "__sum16": "unsigned short",
    "phys_addr_t": "unsigned long long", "dma_addr_t": "unsigned long long",
    "resource_size_t": "unsigned long long", "irq_hw_number_t": "unsigned long",
    "nlink_t": "unsigned int", "fmode_t": "unsigned int", "vm_flags_t": "unsigned long",
    "errseq_t": "unsigned int", "uintptr_t": "unsigned long",
    "__kernel_size_t": "unsigned long", "__kernel_ssize_t": "long",
    "__kernel_pid_t": "int", "__kernel_ulong_t": "unsigned long", "__kernel_long_t": "long",
}
_QUALIFIERS = ("const", "volatile", "restrict", "__restrict", "__user", "__iomem",
               "__percpu", "__rcu", "__force", "__kernel")
_WIDENED_AT_8 = {"int": "s64", "unsigned int": "u64", "unsigned": "u64", "u32": "u64",
                 "pid_t": "u64", "uid_t": "u64", "gid_t": "u64"}


def tracepoint_struct_name(category: str, event: str) -> str:
    """bpftrace's name for a tracepoint's record."""
    return f"struct _tracepoint_{category}_{event}"


def _base_words(text: str) -> Optional[str]:
    """``long unsigned int`` -> ``unsigned long``; None when not a C base type."""
    words = text.split()
    if not words or any(w not in ("unsigned", "signed", "char", "short", "int", "long",
                                  "_Bool", "bool") for w in words):
        return None
    longs = words.count("long")
    if "char" in words:
        core = "char"
    elif "short" in words:
        core = "short"
    elif longs == 1:
        core = "long"
    elif longs >= 2:
        core = "long long"
    elif "_Bool" in words or "bool" in words:
        return "_Bool"
    else:
        core = "int"
    if "unsigned" in words:
        return "unsigned " + core
    if "signed" in words and core == "char":
        return "signed char"
    return core


class StructManager:
    """Every record a program can name, found on demand: the preamble's definitions,
    then the kernel's BTF (``btf`` is a :class:`pybpf.btf.BTF`, or a callable returning
    one or None, called once), plus generated tracepoint records.

    When the preamble defines no ``struct``/``union``, what is made from the BTF alone
    (kernel records by name, BTF types as bpftrace types) depends on nothing else, and
    is kept on the BTF object (:meth:`pybpf.btf.BTF.memo`) for every later program of
    the process: a second compile does not convert ``struct sock`` again. (These are
    shared: copy a type before changing it, as within one program.)"""

    def __init__(self, preamble: Any = None, btf: Any = None) -> None:
        self.preamble = preamble
        self._btf_source = btf
        self._btf: Any = None
        self._btf_loaded = False
        self._records: Dict[str, Optional[Struct]] = {}
        self._btf_types: Dict[int, SizedType] = {}
        self._enums: Dict[str, Optional[int]] = {}
        self._anon = 0
        #: kernel records by name, kept on the BTF when shareable (see the class doc)
        self._btf_records: Optional[Dict[str, Optional[Struct]]] = None

    # -- BTF --------------------------------------------------------------------------
    @property
    def btf(self) -> Any:
        """The BTF in use, or None."""
        if not self._btf_loaded:
            self._btf_loaded = True
            src = self._btf_source
            self._btf = src() if callable(src) else src
            memo = getattr(self._btf, "memo", None)
            if memo is not None and not getattr(self.preamble, "structs", None):
                shared = memo("bpftrace.structs")
                shared.setdefault("types", {}).update(self._btf_types)
                self._btf_types = shared["types"]
                self._btf_records = shared.setdefault("records", {})
        return self._btf

    @property
    def has_btf(self) -> bool:
        """Is kernel BTF available (bpftrace's ``has_btf_data``)?"""
        return self.btf is not None

    def _btf_composite(self, name: str) -> Optional[int]:
        btf = self.btf
        if btf is None:
            return None
        kind, _, bare = name.partition(" ")
        if kind not in ("struct", "union") or not bare:
            return None
        try:
            ids = btf.ids(bare, kind)
        except (KeyError, ValueError):
            return None
        return ids[0] if ids else None

    def btf_sized(self, type_id: int) -> SizedType:
        """A BTF type as bpftrace's clang path types it (copy before changing)."""
        self.btf                                          # noqa: B018 - the tables
        got = self._btf_types.get(type_id)
        if got is None:
            got = self._convert_btf(type_id)
            self._btf_types[type_id] = got
        return got

    def _skip(self, type_id: int) -> Tuple[int, Any]:
        from pybpf.btf.types import Modifier
        btf = self.btf
        t = btf.type(type_id)
        while isinstance(t, Modifier):
            type_id = t.type
            t = btf.type(type_id)
        return type_id, t

    def _convert_btf(self, type_id: int) -> SizedType:
        from pybpf.btf import types as bt
        btf = self.btf
        type_id, t = self._skip(type_id)
        if isinstance(t, bt.Int):
            if t.is_bool:
                return create_uint(8)
            signed = t.signed or t.name == "char"
            if t.size not in (1, 2, 4, 8):
                return create_none()
            return create_integer(t.size * 8, signed)
        if isinstance(t, bt.Enum):
            return create_uint(t.size * 8)
        if isinstance(t, bt.Ptr):
            return create_pointer(self.btf_sized(t.type))
        if isinstance(t, bt.Array):
            _eid, elem = self._skip(t.type)
            if isinstance(elem, bt.Int) and elem.name == "char":
                return create_string(t.nelems)
            return create_array(t.nelems, self.btf_sized(t.type))
        if isinstance(t, (bt.Struct, bt.Union, bt.Fwd)):
            kind = "union" if isinstance(t, bt.Union) or \
                (isinstance(t, bt.Fwd) and t.union) else "struct"
            if not t.name:
                self._anon += 1
                name = f"{kind} (anonymous)"
                return create_record(name, self._btf_struct(type_id))
            name = f"{kind} {t.name}"
            return create_record(name, self.lookup(name))
        return create_none()

    def _btf_struct(self, type_id: int) -> Optional[Struct]:
        from pybpf.btf import types as bt
        from pybpf.btf.resolve import alignof
        t = self.btf.type(type_id)
        if not isinstance(t, (bt.Struct, bt.Union)):
            return None

        def load(s: Struct) -> None:
            self._add_btf_members(s, t, 0)
        try:
            align = alignof(self.btf, type_id)
        except Exception:            # noqa: BLE001 - a layout we cannot size: byte-aligned
            align = 1
        return Struct(t.size, align=align, loader=load)

    def _add_btf_members(self, s: Struct, t: Any, base_bits: int) -> None:
        from pybpf.btf import types as bt
        for m in t.members:
            bits = base_bits + m.bit_offset
            if not m.name:
                _mid, inner = self._skip(m.type)
                if isinstance(inner, (bt.Struct, bt.Union)):
                    self._add_btf_members(s, inner, bits)
                continue
            ftype = self.btf_sized(m.type).copy()
            bitfield = None
            if m.bitfield_size:
                w = m.bitfield_size
                rshift = bits % 8
                bitfield = Bitfield((rshift + w + 7) // 8, rshift,
                                    (1 << 64) - 1 if w >= 64 else (1 << w) - 1)
            s.add_field(Field(m.name, ftype, bits // 8, bitfield))

    # -- records ----------------------------------------------------------------------
    def has(self, name: str) -> bool:
        """Is ``name`` (``struct foo``) a known record (bpftrace's ``structs.Has``)?"""
        return self.lookup(name) is not None

    def lookup(self, name: str) -> Optional[Struct]:
        """The layout of record ``name``, or None."""
        if name in self._records:
            return self._records[name]
        self._records[name] = None          # breaks cycles while building
        found: Optional[Struct] = None
        pre = self.preamble
        if pre is not None and name in getattr(pre, "structs", {}):
            found = self._c_struct(pre.structs[name])
        else:
            self.btf                                      # noqa: B018 - the tables
            shared = self._btf_records
            if shared is not None and name in shared:
                found = shared[name]
            else:
                tid = self._btf_composite(name)
                if tid is not None:
                    found = self._btf_struct(tid)
                if shared is not None:
                    shared[name] = found
        self._records[name] = found
        return found

    def add(self, name: str, struct: Struct) -> None:
        """Register a record (generated tracepoint structs, internal ones)."""
        self._records[name] = struct

    def record(self, name: str) -> SizedType:
        """``CreateRecord(name, Lookup(name))``."""
        return create_record(name, self.lookup(name))

    # -- enum constants ---------------------------------------------------------------
    def enum_value(self, name: str) -> Optional[int]:
        """The value of enum constant ``name`` (the preamble's enums, then the included
        headers', then the kernel BTF's), or None."""
        if name not in self._enums:
            self._enums[name] = self._find_enum(name)
        return self._enums[name]

    def _find_enum(self, name: str) -> Optional[int]:
        pre = self.preamble
        if pre is not None:
            for e in getattr(pre, "enums", {}).values():
                if name in e.values:
                    return e.values[name]
            for table in ("constants", "header_enums"):   # anonymous enums; headers'
                v = getattr(pre, table, {}).get(name)
                if v is not None:
                    return v
        btf = self.btf
        if btf is not None:
            try:
                ids = btf.enums_with(name)
            except (KeyError, ValueError):
                ids = []
            if ids:
                return btf.type(ids[0]).value(name)
        return None

    # -- C type text ------------------------------------------------------------------
    def c_type(self, text: str) -> SizedType:
        """A C type written as text (``const char *``, ``u32``, ``struct sock *``,
        ``unsigned char[6]``) as clang would type it."""
        text = re.sub(r"__attribute__\s*\(\(.*?\)\)", " ", text).strip()
        m = re.fullmatch(r"(.*?)\[\s*(\w*)\s*\]", text)
        if m:
            inner, count = m.group(1).strip(), m.group(2)
            n = int(count, 0) if re.fullmatch(r"0x[0-9a-fA-F]+|\d+", count) else \
                self._constant(count)
            base = self._c_base(inner)
            if base is None:
                return create_none()
            t, plain_char = base
            if plain_char and not inner.endswith("*"):
                return create_string(n)
            return create_array(n, t)
        base = self._c_base(text)
        return base[0] if base is not None else create_none()

    def _constant(self, name: str) -> int:
        v = self.enum_value(name)
        pre = self.preamble
        if v is None and pre is not None:
            v = getattr(pre, "constants", {}).get(name)
        return v or 0

    def _c_base(self, text: str) -> Optional[Tuple[SizedType, bool]]:
        """(type, is plain char) of a declaration without array brackets."""
        stars = text.count("*")
        core = text.replace("*", " ")
        core = " ".join(w for w in core.split() if w not in _QUALIFIERS)
        t, plain = self._named(core)
        for _ in range(stars):
            t, plain = create_pointer(t), False
        return t, plain

    def _named(self, core: str) -> Tuple[SizedType, bool]:
        base = _base_words(core)
        if base is not None:
            size, signed, plain = C_BASE_TYPES[base]
            if base == "_Bool":
                return create_uint(8), False
            return create_integer(size * 8, signed), plain
        if core == "void" or not core:
            return create_none(), False
        head, _, rest = core.partition(" ")
        if head in ("struct", "union") and rest:
            return self.record(core), False
        if head == "enum":
            return create_uint(32), False
        if core in _FALLBACK_TYPEDEFS:
            return self._named(_FALLBACK_TYPEDEFS[core])
        btf = self.btf
        if btf is not None:
            try:
                ids = btf.ids(core, "typedef")
            except (KeyError, ValueError):
                ids = []
            if ids:
                from pybpf.btf import types as bt
                _tid, inner = self._skip(ids[0])
                plain = isinstance(inner, bt.Int) and inner.name == "char"
                return self.btf_sized(ids[0]), plain
        return create_none(), False

    # -- the preamble's definitions -----------------------------------------------------
    def _c_field_type(self, ctype: Any) -> Tuple[SizedType, int]:
        """(type, alignment) of a preamble field's :class:`~.preamble.CType`."""
        if ctype.nested is not None:
            st = self._c_struct(ctype.nested)
            name = f"{ctype.nested.kind} {ctype.nested.name}" if ctype.nested.name \
                else f"{ctype.nested.kind} (anonymous)"
            t = create_record(name, st)
            align = st.align if st is not None else 1
        else:
            base = self._c_base(ctype.base + " " + "*" * ctype.pointer)
            t, plain = base if base is not None else (create_none(), False)
            align = self._align_of(t)
            if ctype.array:
                for i, n in enumerate(reversed(ctype.array)):
                    if i == 0 and plain and not ctype.pointer:
                        t = create_string(n)
                    else:
                        t = create_array(n, t)
        return t, max(align, 1)

    def _align_of(self, t: SizedType) -> int:
        if t.kind == "record":
            return t.struct.align if t.struct is not None else 1
        if t.kind in ("string",):
            return 1
        if t.kind == "array" and t.elem is not None:
            return self._align_of(t.elem)
        return max(t.size, 1)

    def _c_struct(self, cs: Any) -> Struct:
        """The layout of a preamble ``struct``/``union`` (x86-64 System V rules)."""
        union = cs.kind == "union"
        fields: List[Field] = []
        bit = size = 0       # next free bit (structs), bytes used
        align = 1
        for f in cs.fields:
            t, a = self._c_field_type(f.type)
            align = max(align, a)
            if f.bits is not None:
                unit = max(t.size, 1) * 8
                start = 0 if union else bit
                if f.bits == 0:
                    bit = -(-bit // unit) * unit
                    continue
                if start % unit + f.bits > unit:
                    start = -(-start // unit) * unit
                rshift = start % 8
                bf = Bitfield((rshift + f.bits + 7) // 8, rshift,
                              (1 << 64) - 1 if f.bits >= 64 else (1 << f.bits) - 1)
                if f.name:
                    fields.append(Field(f.name, t, start // 8, bf))
                end = start + f.bits
                bit = bit if union else end
                size = max(size, -(-end // 8))
                continue
            start = 0 if union else -(-bit // (a * 8)) * (a * 8)
            off = start // 8
            if not f.name and t.kind == "record" and t.struct is not None:
                for inner in t.struct.fields:
                    fields.append(Field(inner.name, inner.type, off + inner.offset,
                                        inner.bitfield, inner.is_data_loc))
            else:
                fields.append(Field(f.name, t, off))
            end = start + t.size * 8
            bit = bit if union else end
            size = max(size, off + t.size)
        size = -(-size // align) * align
        return Struct(size, fields, align)

    # -- tracepoints --------------------------------------------------------------------
    def tracepoint(self, category: str, event: str) -> Optional[Struct]:
        """The record of tracepoint ``category:event`` (None when its format file
        cannot be read)."""
        name = tracepoint_struct_name(category, event)
        if name in self._records and self._records[name] is not None:
            return self._records[name]
        try:
            from pybpf.tracefs import event_format
            fmt = event_format(category, event)
        except (OSError, LookupError, ValueError):
            return None
        fields: List[Field] = []
        last = 0
        for f in sorted(fmt.common_fields + fmt.fields, key=lambda x: x.offset):
            if f.offset and last:
                for i in range(f.offset - last):
                    fields.append(Field(f"__pad_{last + i}", create_int(8), last + i))
            last = f.offset + f.size
            if f.kind == "data_loc":
                fields.append(Field(f.name, create_int(64), f.offset, None, True))
                continue
            if f.kind == "array":
                t = self.c_type(f"{f.elem_type}[{f.count}]")
            elif f.kind == "rel_loc":
                t = create_none()
            else:
                ctype = re.sub(r"\s+", " ", f.c_type).strip()
                if f.size == 8 and ctype in _WIDENED_AT_8:
                    ctype = _WIDENED_AT_8[ctype]
                t = self.c_type(ctype)
            fields.append(Field(f.name, t, f.offset))
        st = Struct(max(last, 0), fields, 8)
        self._records[name] = st
        return st

    # -- kfunc arguments ----------------------------------------------------------------
    def kfunc_args(self, func: str, ret: bool,
                   traceable: Callable[[str], bool]) -> Dict[str, SizedType]:
        """bpftrace's ``BTF::resolve_args``: parameter name -> type (``$retval`` for
        kretfunc); raises ValueError with bpftrace's message."""
        from pybpf.btf import types as bt
        btf = self.btf
        if btf is None:
            raise ValueError("BTF data not available")
        try:
            fid = btf.ids(func, "func")
        except (KeyError, ValueError):
            fid = []
        if not fid:
            raise ValueError(f"no BTF data for {func}")
        proto_id, proto = self._skip(btf.type(fid[0]).type)
        if not isinstance(proto, bt.FuncProto):
            raise ValueError(f"{func} is not a function")
        if not traceable(func):
            raise ValueError('function not traceable (probably it is inlined or marked '
                             'as "notrace")')
        if len(proto.params) > 6:
            raise ValueError("functions with more than 6 parameters are not supported.")
        args: Dict[str, SizedType] = {}
        for i, p in enumerate(proto.params):
            t = self.btf_sized(p.type).copy()
            t.funcarg_idx, t.is_funcarg = i, True
            args.setdefault(p.name, t)
        if ret:
            t = self.btf_sized(proto.return_type).copy()
            t.funcarg_idx, t.is_funcarg = len(proto.params), True
            args["$retval"] = t
        return args
