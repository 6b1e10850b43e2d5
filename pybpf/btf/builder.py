"""Writing BTF: :class:`BTFBuilder` makes blobs (types and strings) that
``BPF_BTF_LOAD`` accepts (Linux 4.18), plus the two things pybpf loads with them:

* map key/value types from ctypes (:meth:`BTFBuilder.add_ctype`, :func:`map_btf`), so
  ``bpftool map dump`` prints field names (``btf_fd``/``btf_key_type_id``/
  ``btf_value_type_id`` at map creation, Linux 4.18);
* function and line information for programs (:func:`program_btf`,
  :func:`source_btf`): one FUNC per subprogram and one line record per instruction whose
  source line changes, pointing at the Python (or assembly) lines in each
  instruction's :class:`~pybpf.asm.instruction.SourceLocation`, so that
  ``bpftool prog dump xlated`` and verifier logs show them (``func_info``/``line_info``
  at ``BPF_PROG_LOAD``, Linux 5.0).
"""

from __future__ import annotations

import re
import struct
import sys
from typing import (
    Any, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union,
)

from .errors import BTFError
from .format import (
    FUNC_INFO, HEADER, HEADER_SIZE, LINE_INFO, MAGIC, VERSION, FuncLinkage, IntEncoding,
    Kind, VarLinkage, info_word, line_col,
)

__all__ = ["BTFBuilder", "MapBTF", "map_btf", "ProgramBTF", "program_btf",
           "source_btf", "subprogram_starts"]

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_U32 = struct.Struct("<I")
_3U32 = struct.Struct("<III")

MemberSpec = Union[Tuple[str, int], Tuple[str, int, int], Tuple[str, int, int, int]]


def _identifier(name: str, fallback: str) -> str:
    """``name`` made into a C identifier (the kernel checks FUNC and member names)."""
    text = re.sub(r"[^A-Za-z0-9_]", "_", name or "")
    if not text or text[0].isdigit():
        text = fallback + ("_" + text if text else "")
    return text


class BTFBuilder:
    """Collects types and strings and writes a BTF blob.

    Each ``add_*`` method appends one type and returns its id (from 1, or after the
    base's ids for split BTF: ``BTFBuilder(base=vmlinux())`` makes blobs shaped like
    module BTF, whose types may refer to the base's ids). Types may refer to ids added
    later (a struct pointing to itself): reserve the id with :meth:`reserve` and fill
    it with the ``id=`` argument. The blob is written in the machine's byte order,
    which is what the kernel expects.
    """

    def __init__(self, base: Any = None) -> None:
        #: the BTF this one is split from (ids and string offsets continue its own), or
        #: None for a standalone blob
        self.base = base
        self._first_id = len(base) if base is not None else 1
        self._str_base = base.string_size if base is not None else 0
        self._records: List[Optional[bytes]] = []
        self._kinds: List[int] = []
        self._strings = bytearray(b"\0")
        self._string_offsets: Dict[str, int] = {"": 0}
        self._ctypes: Dict[Any, int] = {}
        self._ints: Dict[Tuple[str, int, int], int] = {}
        self._index_type = 0

    # -- strings and records ---------------------------------------------------------------
    def add_string(self, text: str) -> int:
        """The offset of ``text`` in the string section (added once)."""
        off = self._string_offsets.get(text)
        if off is None:
            raw = text.encode("utf-8")
            if b"\0" in raw:
                raise ValueError(f"BTF strings cannot contain NUL: {text!r}")
            if self.base is not None:
                # split BTF reuses the base's strings, as module BTF does
                found = self.base._string_offsets(raw)  # noqa: SLF001
                if found:
                    self._string_offsets[text] = found[0]
                    return found[0]
            off = self._str_base + len(self._strings)
            self._strings += raw + b"\0"
            self._string_offsets[text] = off
        return off

    def reserve(self) -> int:
        """A type id to fill later (pass it as ``id=`` to an ``add_*`` method)."""
        self._records.append(None)
        self._kinds.append(0)
        return self._first_id + len(self._records) - 1

    def _put(self, kind: Kind, name: str, vlen: int, kind_flag: bool, size_or_type: int,
             tail: bytes = b"", id: Optional[int] = None) -> int:
        record = _3U32.pack(self.add_string(name), info_word(kind, vlen, kind_flag),
                            size_or_type & 0xFFFFFFFF) + tail
        if id is None:
            self._records.append(record)
            self._kinds.append(int(kind))
            return self._first_id + len(self._records) - 1
        index = id - self._first_id
        if not 0 <= index < len(self._records) or self._records[index] is not None:
            raise ValueError(f"type id {id} was not reserved or is filled already")
        self._records[index] = record
        self._kinds[index] = int(kind)
        return id

    def __len__(self) -> int:
        """The number of types (void not counted)."""
        return len(self._records)

    def kind(self, type_id: int) -> Kind:
        """The kind of a type added (``Kind.UNKN`` for void or a reserved id)."""
        if type_id < self._first_id:
            return self.base.kind(type_id) if self.base is not None and type_id else Kind.UNKN
        return Kind(self._kinds[type_id - self._first_id])

    # -- kinds -----------------------------------------------------------------------------
    def add_int(self, name: str, size: int, *, signed: bool = False, char: bool = False,
                bool_: bool = False, bits: Optional[int] = None, bit_offset: int = 0,
                id: Optional[int] = None) -> int:
        """An INT of ``size`` bytes (1, 2, 4, 8 or 16)."""
        if size not in (1, 2, 4, 8, 16):
            raise ValueError(f"INT {name!r}: size {size} is not 1, 2, 4, 8 or 16")
        encoding = (IntEncoding.SIGNED if signed else 0) | (IntEncoding.CHAR if char else 0) \
            | (IntEncoding.BOOL if bool_ else 0)
        nbits = size * 8 if bits is None else bits
        return self._put(Kind.INT, name, 0, False, size,
                         _U32.pack((int(encoding) << 24) | (bit_offset << 16) | nbits), id)

    def int_type(self, size: int, signed: bool = False) -> int:
        """An INT named as C names it (``unsigned int``, ``long long int``), added once."""
        names = {1: ("signed char", "unsigned char"), 2: ("short int", "short unsigned int"),
                 4: ("int", "unsigned int"), 8: ("long long int", "long long unsigned int"),
                 16: ("__int128", "__int128 unsigned")}
        name = names[size][0 if signed else 1]
        key = (name, size, int(signed))
        found = self._ints.get(key)
        if found is None:
            found = self._ints[key] = self.add_int(name, size, signed=signed)
        return found

    def add_float(self, name: str, size: int, *, id: Optional[int] = None) -> int:
        """A FLOAT (Linux 5.13)."""
        return self._put(Kind.FLOAT, name, 0, False, size, b"", id)

    def add_ptr(self, target: int, *, id: Optional[int] = None) -> int:
        """A pointer to ``target`` (0: ``void *``)."""
        return self._put(Kind.PTR, "", 0, False, target, b"", id)

    def add_array(self, elem: int, nelems: int, *, index_type: Optional[int] = None,
                  id: Optional[int] = None) -> int:
        """An array of ``nelems`` ``elem``; the index type defaults to ``unsigned int``."""
        if index_type is None:
            if not self._index_type:
                self._index_type = self.int_type(4)
            index_type = self._index_type
        return self._put(Kind.ARRAY, "", 0, False, 0,
                         _3U32.pack(elem, index_type, nelems), id)

    def _composite(self, kind: Kind, name: str, size: int, members: Sequence[MemberSpec],
                   id: Optional[int]) -> int:
        norm = []
        for m in members:
            if len(m) == 2:
                mname, mtype = m  # type: ignore[misc]
                bit_offset, bits = 0, 0
            elif len(m) == 3:
                mname, mtype, bit_offset = m  # type: ignore[misc]
                bits = 0
            else:
                mname, mtype, bit_offset, bits = m  # type: ignore[misc]
            norm.append((mname, mtype, bit_offset, bits))
        flag = any(bits for *_, bits in norm)
        tail = bytearray()
        for mname, mtype, bit_offset, bits in norm:
            if flag:
                if bit_offset >= 1 << 24 or bits >= 256:
                    raise ValueError(f"{name}.{mname}: bitfield position does not fit")
                off = (bits << 24) | bit_offset
            else:
                off = bit_offset
            tail += _3U32.pack(self.add_string(mname), mtype, off)
        return self._put(kind, name, len(norm), flag, size, bytes(tail), id)

    def add_struct(self, name: str, size: int, members: Sequence[MemberSpec] = (), *,
                   id: Optional[int] = None) -> int:
        """A STRUCT: ``members`` are ``(name, type, bit_offset[, bitfield_size])``
        (bitfields use ``kind_flag`` offsets, Linux 4.20)."""
        return self._composite(Kind.STRUCT, name, size, members, id)

    def add_union(self, name: str, size: int, members: Sequence[MemberSpec] = (), *,
                  id: Optional[int] = None) -> int:
        """A UNION (members as for :meth:`add_struct`)."""
        return self._composite(Kind.UNION, name, size, members, id)

    def add_enum(self, name: str, values: Sequence[Tuple[str, int]], *, size: int = 4,
                 signed: Optional[bool] = None, id: Optional[int] = None) -> int:
        """An ENUM, or an ENUM64 when a value needs more than 32 bits (Linux 6.0).
        ``signed`` defaults to whether a value is negative (the flag is Linux 6.0)."""
        if signed is None:
            signed = any(v < 0 for _, v in values)
        wide = size > 4 or any(v < -(1 << 31) or v >= (1 << 32) for _, v in values)
        tail = bytearray()
        for vname, v in values:
            if wide:
                raw = v & 0xFFFFFFFFFFFFFFFF
                tail += _3U32.pack(self.add_string(vname), raw & 0xFFFFFFFF, raw >> 32)
            else:
                tail += struct.pack("<II", self.add_string(vname), v & 0xFFFFFFFF)
        kind = Kind.ENUM64 if wide else Kind.ENUM
        return self._put(kind, name, len(values), bool(signed), 8 if wide else size,
                         bytes(tail), id)

    def add_fwd(self, name: str, *, union: bool = False, id: Optional[int] = None) -> int:
        """A forward declaration."""
        return self._put(Kind.FWD, name, 0, union, 0, b"", id)

    def add_typedef(self, name: str, target: int, *, id: Optional[int] = None) -> int:
        """``typedef <target> name``."""
        return self._put(Kind.TYPEDEF, name, 0, False, target, b"", id)

    def add_const(self, target: int, *, id: Optional[int] = None) -> int:
        """``const <target>``."""
        return self._put(Kind.CONST, "", 0, False, target, b"", id)

    def add_volatile(self, target: int, *, id: Optional[int] = None) -> int:
        """``volatile <target>``."""
        return self._put(Kind.VOLATILE, "", 0, False, target, b"", id)

    def add_restrict(self, target: int, *, id: Optional[int] = None) -> int:
        """``<target> restrict``."""
        return self._put(Kind.RESTRICT, "", 0, False, target, b"", id)

    def add_type_tag(self, tag: str, target: int, *, id: Optional[int] = None) -> int:
        """A type tag (Linux 5.17)."""
        return self._put(Kind.TYPE_TAG, tag, 0, False, target, b"", id)

    def add_func_proto(self, return_type: int, params: Sequence[Tuple[str, int]] = (), *,
                       variadic: bool = False, id: Optional[int] = None) -> int:
        """A FUNC_PROTO (Linux 4.20)."""
        items = list(params) + ([("", 0)] if variadic else [])
        tail = b"".join(struct.pack("<II", self.add_string(n), t) for n, t in items)
        return self._put(Kind.FUNC_PROTO, "", len(items), False, return_type, tail, id)

    def add_func(self, name: str, proto: int, linkage: int = FuncLinkage.STATIC, *,
                 id: Optional[int] = None) -> int:
        """A FUNC of prototype ``proto`` (Linux 4.20; GLOBAL linkage 5.6)."""
        return self._put(Kind.FUNC, name, int(linkage), False, proto, b"", id)

    def add_var(self, name: str, target: int, linkage: int = VarLinkage.GLOBAL, *,
                id: Optional[int] = None) -> int:
        """A VAR (Linux 5.2)."""
        return self._put(Kind.VAR, name, 0, False, target, _U32.pack(int(linkage)), id)

    def add_datasec(self, name: str, size: int, vars: Sequence[Tuple[int, int, int]], *,
                    id: Optional[int] = None) -> int:
        """A DATASEC of ``(var id, offset, size)`` entries (Linux 5.2)."""
        tail = b"".join(_3U32.pack(*v) for v in vars)
        return self._put(Kind.DATASEC, name, len(vars), False, size, tail, id)

    def add_decl_tag(self, tag: str, target: int, component_idx: int = -1, *,
                     id: Optional[int] = None) -> int:
        """A DECL_TAG (Linux 5.16)."""
        return self._put(Kind.DECL_TAG, tag, 0, False, target,
                         struct.pack("<i", component_idx), id)

    # -- ctypes ----------------------------------------------------------------------------
    _SIMPLE = {
        "b": ("signed char", True, 0), "B": ("unsigned char", False, 0),
        "h": ("short int", True, 0), "H": ("short unsigned int", False, 0),
        "i": ("int", True, 0), "I": ("unsigned int", False, 0),
        "l": ("long int", True, 0), "L": ("long unsigned int", False, 0),
        "q": ("long long int", True, 0), "Q": ("long long unsigned int", False, 0),
        "c": ("char", False, IntEncoding.CHAR), "?": ("_Bool", False, IntEncoding.BOOL),
        "u": ("wchar_t", True, 0),
    }
    _FLOATS = {"f": "float", "d": "double", "g": "long double"}

    def add_ctype(self, ctype: Any) -> int:
        """The id of a type describing a ctypes type (added once per type): integers,
        ``c_char``, ``c_bool``, floats, pointers, arrays, ``Structure`` and ``Union``
        subclasses with their bitfields (native byte order) and ``_anonymous_``
        members. An ``int`` is a byte size: 1, 2, 4 or 8 become unsigned integers,
        other sizes arrays of ``unsigned char``."""
        import ctypes
        if isinstance(ctype, int) and not isinstance(ctype, bool):
            if ctype in (1, 2, 4, 8):
                return self.int_type(ctype)
            return self.add_array(self.int_type(1), ctype)
        found = self._ctypes.get(ctype)
        if found is not None:
            return found
        if not isinstance(ctype, type):
            raise TypeError(f"not a ctypes type: {ctype!r}")
        if issubclass(ctype, (ctypes.Structure, ctypes.Union)):
            return self._add_ctype_composite(ctype)
        if issubclass(ctype, ctypes.Array):
            elem = self.add_ctype(ctype._type_)
            type_id = self.add_array(elem, ctype._length_)
        elif issubclass(ctype, ctypes._Pointer):  # type: ignore[attr-defined]
            reserved = self.reserve()
            self._ctypes[ctype] = reserved
            self.add_ptr(self.add_ctype(ctype._type_), id=reserved)
            return reserved
        else:
            code = getattr(ctype, "_type_", None)
            if not isinstance(code, str):
                raise TypeError(f"cannot describe {ctype.__name__} in BTF")
            size = ctypes.sizeof(ctype)
            if code in ("z", "Z", "P"):
                target = self.add_ctype(ctypes.c_char) if code == "z" else 0
                type_id = self.add_ptr(target)
            elif code in self._FLOATS:
                type_id = self.add_float(self._FLOATS[code], size)
            elif code in self._SIMPLE:
                name, signed, extra = self._SIMPLE[code]
                key = (name, size, int(signed) | int(extra))
                type_id = self._ints.get(key, 0)
                if not type_id:
                    type_id = self._ints[key] = self.add_int(
                        name, size, signed=signed, char=bool(extra & IntEncoding.CHAR),
                        bool_=bool(extra & IntEncoding.BOOL))
            else:
                raise TypeError(f"cannot describe ctypes code {code!r} ({ctype.__name__}) "
                                "in BTF")
        self._ctypes[ctype] = type_id
        return type_id

    def _add_ctype_composite(self, ctype: Any) -> int:
        import ctypes
        reserved = self.reserve()
        self._ctypes[ctype] = reserved
        anonymous = set(getattr(ctype, "_anonymous_", ()) or ())
        native = not hasattr(ctype, "_swappedbytes_")
        members: List[MemberSpec] = []
        for spec in getattr(ctype, "_fields_", ()):
            fname, ftype = spec[0], spec[1]
            desc = getattr(ctype, fname)
            mtype = self.add_ctype(ftype)
            label = "" if fname in anonymous else fname
            if len(spec) > 2:
                if not native:
                    raise TypeError(f"{ctype.__name__}.{fname}: bitfields of a structure in "
                                    "non-native byte order cannot be described in BTF")
                if hasattr(desc, "bit_size"):          # Python 3.14 and later
                    bits, shift = desc.bit_size, desc.bit_offset
                    byte = desc.byte_offset
                else:
                    bits, shift = desc.size >> 16, desc.size & 0xFFFF
                    byte = desc.offset
                if sys.byteorder != "little":
                    raise TypeError("bitfields are described for little-endian machines only")
                members.append((label, mtype, byte * 8 + shift, bits))
            else:
                members.append((label, mtype, desc.offset * 8))
        name = _identifier(ctype.__name__, "anon")
        size = ctypes.sizeof(ctype)
        if issubclass(ctype, ctypes.Union):
            return self.add_union(name, size, members, id=reserved)
        return self.add_struct(name, size, members, id=reserved)

    # -- output ----------------------------------------------------------------------------
    def types_bytes(self) -> bytes:
        """The type section."""
        missing = [self._first_id + i for i, r in enumerate(self._records) if r is None]
        if missing:
            raise BTFError(f"type ids {missing} were reserved but never filled")
        return b"".join(self._records)  # type: ignore[arg-type]

    def strings_bytes(self) -> bytes:
        """The string section."""
        return bytes(self._strings)

    def to_bytes(self) -> bytes:
        """The whole blob: header, types, strings."""
        types = self.types_bytes()
        strings = self.strings_bytes()
        order = "<" if sys.byteorder == "little" else ">"
        header = struct.pack(order + HEADER.format[1:], MAGIC, VERSION, 0, HEADER_SIZE, 0,
                             len(types), len(types), len(strings))
        return header + types + strings

    def parse(self, name: str = "built") -> Any:
        """The blob read back as a :class:`~pybpf.btf.parser.BTF` (split on the base
        when there is one)."""
        from .parser import BTF
        return BTF(self.to_bytes(), base=self.base, name=name)

    def load(self, *, log_level: int = 1) -> Any:
        """Load the blob (``BPF_BTF_LOAD``, Linux 4.18) and return the owned
        :class:`~pybpf.syscall.fd.FD`; a refused blob raises
        :class:`~pybpf.syscall.errors.VerifierError` with the kernel's log."""
        from ..syscall.progs import btf_load
        return btf_load(self.to_bytes(), log_level=log_level)


# ---------------------------------------------------------------------------------------
# Maps
# ---------------------------------------------------------------------------------------

class MapBTF(NamedTuple):
    """A loaded BTF object describing a map: pass ``fd``, ``key_type_id`` and
    ``value_type_id`` at map creation, then close ``fd`` (the map keeps its own
    reference)."""

    fd: Any
    key_type_id: int
    value_type_id: int

    def close(self) -> None:
        """Close the BTF fd."""
        self.fd.close()


def map_btf(key: Any, value: Any, *, name: str = "") -> MapBTF:
    """Build and load BTF for a map whose key and value are ctypes types (or byte
    sizes, see :meth:`BTFBuilder.add_ctype`). A ``key`` of 0/None gives id 0 (keyless
    maps). ``name`` is unused by the kernel but kept for symmetry."""
    b = BTFBuilder()
    key_id = b.add_ctype(key) if key else 0
    value_id = b.add_ctype(value) if value else 0
    fd = b.load()
    return MapBTF(fd, key_id, value_id)


# ---------------------------------------------------------------------------------------
# Programs
# ---------------------------------------------------------------------------------------

class ProgramBTF(NamedTuple):
    """BTF and the records that go with a program: the blob, raw ``bpf_func_info``
    and ``bpf_line_info`` arrays, and the FUNC names given to the subprograms."""

    blob: bytes
    func_info: bytes
    line_info: bytes
    functions: Tuple[str, ...]

    @property
    def line_count(self) -> int:
        """How many line records there are."""
        return len(self.line_info) // LINE_INFO.size


def subprogram_starts(instructions: Sequence[Any]) -> List[int]:
    """The slot of each subprogram's first instruction, as the verifier splits a
    program: 0, and every target of a BPF-to-BPF call (``call`` with source 1) or of a
    function-address ``lddw`` (pseudo source 4)."""
    starts = {0}
    slot = 0
    for ins in instructions:
        if (ins.opcode == 0x85 and ins.src == 1) or (ins.opcode == 0x18 and ins.src == 4):
            imm = ins.imm if ins.opcode == 0x85 else ins.imm & 0xFFFFFFFF
            if imm >= 1 << 31:
                imm -= 1 << 32
            starts.add(slot + 1 + imm)
        slot += ins.slots
    return sorted(starts)


def _labels(ins: Any) -> List[str]:
    label = getattr(ins, "label", None)
    if label is None:
        return []
    if isinstance(label, str):
        return [label]
    return [str(x) for x in label]


def _line_text(loc: Any) -> str:
    import linecache
    text = getattr(loc, "text", "") or linecache.getline(loc.file, loc.line)
    return text.strip()


def program_btf(instructions: Sequence[Any], name: str = "") -> Optional[ProgramBTF]:
    """BTF, func_info and line_info for ``instructions`` from their
    :class:`~pybpf.asm.instruction.SourceLocation`\\ s, or None when no instruction has
    one.

    Each subprogram becomes a static FUNC (the first is named ``name``, the others after
    their label, else ``sub_<slot>``) of prototype ``int (void *ctx)`` for the first and
    ``long (long, long, long, long, long)`` for the others (BPF-to-BPF calls pass r1-r5).
    A line record is written for each instruction whose (file, line) differs from the
    previous one's and at each subprogram start (which the kernel requires), carrying
    the file name, the line's text (stripped), the line and the column.
    """
    located = [ins for ins in instructions if getattr(ins, "source", None) is not None]
    if not located:
        return None
    starts = subprogram_starts(instructions)
    b = BTFBuilder()
    int_id = b.int_type(4, signed=True)
    long_id = b.add_int("long int", 8, signed=True)
    void_ptr = b.add_ptr(0)
    main_proto = b.add_func_proto(int_id, [("ctx", void_ptr)])
    sub_proto = b.add_func_proto(long_id, [(f"r{i}", long_id) for i in range(1, 6)])

    slot_of: Dict[int, Any] = {}
    slot = 0
    for ins in instructions:
        slot_of[slot] = ins
        slot += ins.slots
    func_info = bytearray()
    names: List[str] = []
    for i, start in enumerate(starts):
        ins = slot_of.get(start)
        if ins is None:
            raise BTFError(f"a call targets slot {start}, which is not the start of an "
                           "instruction")
        if i == 0:
            fname = _identifier(name, "prog") if name else "prog"
        else:
            labels = _labels(ins)
            fname = _identifier(labels[0], "sub") if labels else f"sub_{start}"
        names.append(fname)
        func_id = b.add_func(fname, main_proto if i == 0 else sub_proto)
        func_info += FUNC_INFO.pack(start, func_id)

    first_loc = located[0].source
    starts_set = set(starts)
    line_info = bytearray()
    previous: Optional[Tuple[str, int]] = None
    current = first_loc
    slot = 0
    for ins in instructions:
        loc = getattr(ins, "source", None)
        if loc is not None:
            current = loc
        key = (current.file, current.line)
        if key != previous or slot in starts_set:
            line_info += LINE_INFO.pack(slot, b.add_string(current.file),
                                        b.add_string(_line_text(current)),
                                        line_col(current.line, current.column))
            previous = key
        slot += ins.slots
    return ProgramBTF(b.to_bytes(), bytes(func_info), bytes(line_info), tuple(names))


def source_btf(instructions: Sequence[Any], name: str = ""
               ) -> Tuple[Optional[Any], bytes, bytes]:
    """Load :func:`program_btf` for ``instructions``: (owned BTF fd, func_info,
    line_info), or (None, b"", b"") when there are no source locations or the kernel
    refuses BTF (before Linux 5.0, or without permission): the program then loads
    without it."""
    built = program_btf(instructions, name)
    if built is None:
        return None, b"", b""
    from ..syscall.progs import btf_load_optional
    return btf_load_optional(built.blob, built.func_info, built.line_info)

