"""Reading BTF: :class:`BTF` over the raw bytes of a blob, with a lazy index.

Opening a blob reads (or maps) it once and scans the type section a single time to
record where each type record starts: a loop over 32-bit words that creates no object
per type. Everything else is done on demand:

* a name is found by searching the string section for ``\\0name\\0`` and then the type
  section for that string offset at a record start (both searches run in C), so looking
  up ``task_struct`` materialises nothing but the answer;
* a type record (:mod:`pybpf.btf.types`) is built the first time its id is asked for,
  then cached;
* the complete name index (every name to its ids) is built only by the calls that
  need every type (:meth:`BTF.names`, rendering a whole header).

For the running kernel's vmlinux BTF, :func:`vmlinux` keeps the record offsets and a
name index in pybpf's cache directory (:mod:`pybpf.btf.index`, off with
``$PYBPF_NO_CACHE``): a later process reads them instead of scanning and searching.

Split BTF (kernel modules, Linux 5.11) is a blob whose ids and string offsets continue
those of a base BTF (vmlinux): open it with ``base=``. :func:`vmlinux` and
:func:`load_module` return per-process cached objects; nothing is read when
:mod:`pybpf` or :mod:`pybpf.btf` is imported.
"""

from __future__ import annotations

import array
import bisect
import mmap
import os
import struct
import sys
import threading
from typing import (
    Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union,
)

from .errors import AmbiguousTypeError, BTFFormatError, TypeNotFoundError
from .format import (
    FIXED_WORDS, HEADER_SIZE, MAGIC, MAX_KIND, VERSION, WORDS_PER_ITEM, IntEncoding, Kind,
    kind_from_name,
)
from .types import (
    VOID, Array, BtfType, Const, Datasec, DeclTag, Enum, EnumValue, Float, Func,
    FuncProto, Fwd, Int, Member, Param, Ptr, Restrict, Struct, Typedef, TypeTag, Union as
    UnionType, Var, VarSecinfo, Volatile,
)

__all__ = ["BTF", "vmlinux", "load_module", "module_names", "VMLINUX_PATH", "SYSFS_DIR",
           "KindLike"]

#: where the kernel exposes its BTF (Linux 5.4; modules 5.11)
SYSFS_DIR = "/sys/kernel/btf"
VMLINUX_PATH = SYSFS_DIR + "/vmlinux"

KindLike = Union[Kind, int, str]

_NATIVE_LITTLE = sys.byteorder == "little"
_NATIVE_WORD = struct.Struct("=I")
# enums_with's fallback from the search trick to a scan of every enum when a string
# offset is so common a value in the type section that verifying every hit would cost more
_MAX_HITS = 512
# a name search (the string section, then the column of type name offsets) costs about
# 2 ms on vmlinux (Linux 6.18, 126k types); the index of every name about 100 (offsets,
# then names): after this many searches, build it (a tool's first compile needs 30-46:
# bpftrace's tcplife.bt 42, biosnoop.bt 46)
_SEARCHES_BEFORE_INDEX = 48


def _open_bytes(path: Union[str, "os.PathLike[str]"]) -> Tuple[Any, Optional[mmap.mmap]]:
    """The contents of ``path``: a read-only private mapping when the file allows it
    (sysfs vmlinux BTF does from Linux 6.16), else the bytes read."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        size = os.fstat(fd).st_size
        if size > 0:
            try:
                mapped = mmap.mmap(fd, size, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ)
                return mapped, mapped
            except (OSError, ValueError):
                pass
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 22)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks), None
    finally:
        os.close(fd)


class BTF:
    """A parsed BTF blob (BTF is Linux 4.18; what each kind needs is in
    :mod:`pybpf.btf.format`).

    ``data`` is the whole blob (bytes, bytearray, memoryview or mmap); ``base`` the BTF
    this one is split from (module BTF on top of vmlinux), or None; ``name`` labels it in
    messages (``"vmlinux"``, a module's name).

    Ids: ``0`` is void, this blob's own types are ``first_id .. len(self) - 1``
    (``first_id`` is 1, or the base's ``len()`` for split BTF), and ids below
    ``first_id`` are answered by the base.
    """

    def __init__(self, data: Any, *, base: Optional["BTF"] = None, name: str = "",
                 _mapping: Optional[mmap.mmap] = None, _store: Any = None) -> None:
        self.name = name
        self.base = base
        self._mapping = _mapping
        if isinstance(data, (bytearray, memoryview)):
            data = bytes(data)
        self._data = data
        if len(data) < HEADER_SIZE:
            raise BTFFormatError(f"{self._label()}: {len(data)} bytes is too short for a "
                                 "BTF header")
        magic = struct.unpack_from("<H", data, 0)[0]
        if magic == MAGIC:
            order = "<"
        elif magic == 0x9FEB:
            order = ">"
        else:
            raise BTFFormatError(f"{self._label()}: bad magic {magic:#06x} (not BTF)")
        self.byteorder = "little" if order == "<" else "big"
        (_, version, self.flags, hdr_len, type_off, type_len, str_off,
         str_len) = struct.unpack_from(order + "HBBIIIII", data, 0)
        if version != VERSION:
            raise BTFFormatError(f"{self._label()}: BTF version {version}, expected "
                                 f"{VERSION}")
        if hdr_len < HEADER_SIZE or hdr_len > len(data):
            raise BTFFormatError(f"{self._label()}: bad header length {hdr_len}")
        self._type_start = hdr_len + type_off
        self._type_end = self._type_start + type_len
        self._str_start = hdr_len + str_off
        self._str_end = self._str_start + str_len
        for what, start, end in (("type", self._type_start, self._type_end),
                                 ("string", self._str_start, self._str_end)):
            if end > len(data):
                raise BTFFormatError(f"{self._label()}: the {what} section ({start}..{end})"
                                     f" runs past the end of the blob ({len(data)} bytes)")
        if type_len % 4:
            raise BTFFormatError(f"{self._label()}: type section length {type_len} is "
                                 "not a multiple of 4")
        if str_len and data[self._str_start] != 0:
            raise BTFFormatError(f"{self._label()}: the string section must start with "
                                 "an empty string")
        self._order = order
        self._swapped = (order == "<") != _NATIVE_LITTLE
        self.first_id = len(base) if base is not None else 1
        self.str_base = base.string_size if base is not None else 0
        self.string_size = self.str_base + str_len
        self._words = self._word_view()
        self._store = _store            # vmlinux's stored index (pybpf.btf.index), or None
        offs = _store.offsets_for(self) if _store is not None else None
        self._offs = offs if offs is not None else self._scan()
        self._cache: Dict[int, BtfType] = {}
        self._name_index: Optional[Dict[int, List[int]]] = None
        self._searches = 0
        self._by_name: Optional[Dict[bytes, List[int]]] = None
        self._names_col: Optional[bytes] = None
        self._recent: Dict[bytes, List[int]] = {}
        self._memos: Dict[str, Dict[Any, Any]] = {}
        self._pointer_size: Optional[int] = None
        self._lock = threading.Lock()
        if _store is not None and offs is None:
            _store.scanned(self)

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def from_file(cls, path: Union[str, "os.PathLike[str]"], *, base: Optional["BTF"] = None,
                  name: str = "") -> "BTF":
        """Parse the raw BTF blob in ``path`` (``/sys/kernel/btf/vmlinux``, a module's
        file there with ``base=vmlinux()``, or ``bpftool btf dump ... format raw``'s
        input)."""
        data, mapping = _open_bytes(path)
        label = name or os.path.basename(os.fspath(path))
        return cls(data, base=base, name=label, _mapping=mapping)

    @classmethod
    def from_elf(cls, path: Union[str, "os.PathLike[str]"], *,
                 base: Optional["BTF"] = None, name: str = "") -> "BTF":
        """The ``.BTF`` section of an ELF file (a BPF object, a vmlinux image), read with
        pyelftools."""
        from elftools.elf.elffile import ELFFile

        from ..elf.layout import ELFLayoutError, check_layout
        raw, mapping = _open_bytes(path)
        try:
            check_layout(raw)
            with open(path, "rb") as fh:
                section = ELFFile(fh).get_section_by_name(".BTF")
                data = section.data() if section is not None else None
        except ELFLayoutError as exc:
            raise BTFFormatError(f"{os.fspath(path)}: {exc}") from None
        except Exception as exc:    # pyelftools raises many kinds for a corrupt file
            raise BTFFormatError(f"{os.fspath(path)}: malformed ELF file ({type(exc).__name__}: "
                                 f"{exc})") from None
        finally:
            if mapping is not None:
                mapping.close()
        if data is None:
            raise BTFFormatError(f"{path}: no .BTF section")
        return cls(data, base=base, name=name or os.path.basename(os.fspath(path)))

    def _label(self) -> str:
        return self.name or "BTF"

    def _word_view(self) -> Sequence[int]:
        start, end = self._type_start, self._type_end
        if not self._swapped and start % 4 == 0:
            return memoryview(self._data)[start:end].cast("I")
        words = array.array("I")
        if words.itemsize != 4:  # pragma: no cover - every supported platform has 4
            words = array.array("L")
        words.frombytes(bytes(self._data[start:end]))
        if self._swapped:
            words.byteswap()
        return words

    def _scan(self) -> "array.array[int]":
        """The word index of every type record, in id order."""
        w = self._words
        fixed, per = FIXED_WORDS, WORDS_PER_ITEM
        offs = array.array("I")
        append = offs.append
        n = len(w)
        i = 0
        try:
            while i < n:
                append(i)
                info = w[i + 1]
                k = (info >> 24) & 31
                i += 3 + fixed[k] + (info & 0xFFFF) * per[k]
        except IndexError:
            raise BTFFormatError(f"{self._label()}: type {self.first_id + len(offs) - 1} "
                                 "is cut off at the end of the type section") from None
        except TypeError:      # the tables hold None for kinds this parser does not know
            kind = (w[i + 1] >> 24) & 31
            raise BTFFormatError(f"{self._label()}: type {self.first_id + len(offs) - 1} "
                                 f"has unknown kind {kind}") from None
        if i != n:
            raise BTFFormatError(f"{self._label()}: type {self.first_id + len(offs) - 1} "
                                 "runs past the end of the type section")
        return offs

    def close(self) -> None:
        """Release the mapping, if the blob is mapped (the object is unusable after)."""
        mapping, self._mapping = self._mapping, None
        if mapping is not None:
            words = self._words
            if isinstance(words, memoryview):
                words.release()
            self._data = b""
            try:
                mapping.close()
            except BufferError:  # pragma: no cover - a view is still exported
                pass

    # -- sizes and raw access ------------------------------------------------------------
    def __len__(self) -> int:
        """One past the largest valid type id (counting the base's ids and void)."""
        return self.first_id + len(self._offs)

    @property
    def own_count(self) -> int:
        """How many types this blob itself holds (not counting the base)."""
        return len(self._offs)

    def own_ids(self) -> range:
        """The ids of this blob's own types."""
        return range(self.first_id, self.first_id + len(self._offs))

    @property
    def data(self) -> bytes:
        """The raw blob."""
        return bytes(self._data)

    def __repr__(self) -> str:
        split = f" on {self.base._label()}" if self.base is not None else ""
        return f"<BTF {self._label()}{split}: {len(self._offs)} types>"

    def _locate(self, type_id: int) -> Tuple["BTF", int]:
        """(the BTF holding ``type_id``, word index of its record)."""
        btf = self
        while type_id < btf.first_id:
            if btf.base is None or type_id <= 0:
                raise TypeNotFoundError(f"{self._label()}: no type id {type_id}")
            btf = btf.base
        idx = type_id - btf.first_id
        if idx >= len(btf._offs):
            raise TypeNotFoundError(f"{self._label()}: no type id {type_id} (the last is "
                                    f"{len(self) - 1})")
        return btf, btf._offs[idx]

    def kind(self, type_id: int) -> Kind:
        """The kind of ``type_id`` without materialising it (0 is ``Kind.UNKN``)."""
        if type_id == 0:
            return Kind.UNKN
        btf, i = self._locate(type_id)
        k = (btf._words[i + 1] >> 24) & 31
        return Kind(k) if k <= MAX_KIND else k  # type: ignore[return-value]

    def name_of(self, type_id: int) -> str:
        """The name of ``type_id`` without materialising it."""
        if type_id == 0:
            return ""
        btf, i = self._locate(type_id)
        return self.string(btf._words[i])

    def string(self, offset: int) -> str:
        """The string at ``offset`` of the string section (base strings first for split
        BTF)."""
        btf = self
        while offset < btf.str_base:
            btf = btf.base  # type: ignore[assignment]
        pos = btf._str_start + offset - btf.str_base
        if pos >= btf._str_end or offset < 0:
            raise BTFFormatError(f"{self._label()}: string offset {offset} is outside the "
                                 "string section")
        data = btf._data
        end = data.find(b"\0", pos, btf._str_end)
        if end < 0:
            end = btf._str_end
        return bytes(data[pos:end]).decode("utf-8", "replace")

    def memo(self, name: str) -> Dict[Any, Any]:
        """A per-object cache dictionary for derived facts (alignments, layouts) that
        other modules compute; ``name`` says whose."""
        table = self._memos.get(name)
        if table is None:
            table = self._memos.setdefault(name, {})
        return table

    @property
    def pointer_size(self) -> int:
        """The size of a pointer: that of ``long`` when the BTF has it, else 8."""
        if self._pointer_size is None:
            if self.base is not None:
                self._pointer_size = self.base.pointer_size
            else:
                size = 8
                for name in ("long int", "long unsigned int"):
                    found = [i for i in self.ids(name, Kind.INT)]
                    if found:
                        size = self.type(found[0]).size  # type: ignore[attr-defined]
                        break
                self._pointer_size = size
        return self._pointer_size

    # -- types -----------------------------------------------------------------------------
    def __getitem__(self, type_id: int) -> BtfType:
        return self.type(type_id)

    def __contains__(self, type_id: object) -> bool:
        return isinstance(type_id, int) and 0 <= type_id < len(self)

    def type(self, type_id: int) -> BtfType:
        """The record of ``type_id`` (built once, then cached)."""
        if type_id == 0:
            return VOID
        btf, i = self._locate(type_id)
        cached = btf._cache.get(type_id)
        if cached is None:
            cached = btf._materialise(type_id, i)
            btf._cache[type_id] = cached
        return cached

    def types(self, *, own: bool = True) -> Iterator[BtfType]:
        """Every type record, in id order (only this blob's own types unless ``own`` is
        False)."""
        start = self.first_id if own else 1
        for type_id in range(start, len(self)):
            yield self.type(type_id)

    __iter__ = types

    def ids_of_kind(self, kind: KindLike, *, own: bool = True) -> Iterator[int]:
        """The ids of every type of ``kind``, without materialising them."""
        want = int(kind_from_name(kind))
        if not own and self.base is not None:
            yield from self.base.ids_of_kind(want, own=False)
        w = self._words
        for idx, i in enumerate(self._offs):
            if (w[i + 1] >> 24) & 31 == want:
                yield self.first_id + idx

    def _materialise(self, type_id: int, i: int) -> BtfType:
        w = self._words
        name_off, info, size = w[i], w[i + 1], w[i + 2]
        kind = (info >> 24) & 31
        vlen = info & 0xFFFF
        flag = bool(info >> 31)
        name = self.string(name_off) if name_off else ""
        j = i + 3
        if kind == Kind.INT:
            word = w[j]
            return Int(type_id, name, size=size, encoding=IntEncoding((word >> 24) & 0x0F),
                       bit_offset=(word >> 16) & 0xFF, bits=word & 0xFF)
        if kind == Kind.PTR:
            return Ptr(type_id, name, type=size)
        if kind == Kind.ARRAY:
            return Array(type_id, name, type=w[j], index_type=w[j + 1], nelems=w[j + 2])
        if kind in (Kind.STRUCT, Kind.UNION):
            members = []
            for k in range(vlen):
                m = j + 3 * k
                off = w[m + 2]
                if flag:
                    members.append(Member(self.string(w[m]) if w[m] else "", w[m + 1],
                                          off & 0xFFFFFF, off >> 24))
                else:
                    members.append(Member(self.string(w[m]) if w[m] else "", w[m + 1], off, 0))
            cls = Struct if kind == Kind.STRUCT else UnionType
            return cls(type_id, name, size=size, members=tuple(members))
        if kind == Kind.ENUM:
            values = []
            for k in range(vlen):
                v = w[j + 2 * k + 1]
                if flag and v >= 0x80000000:
                    v -= 1 << 32
                values.append(EnumValue(self.string(w[j + 2 * k]), v))
            return Enum(type_id, name, size=size, values=tuple(values), signed=flag,
                        kind=Kind.ENUM)
        if kind == Kind.ENUM64:
            values = []
            for k in range(vlen):
                m = j + 3 * k
                v = w[m + 1] | (w[m + 2] << 32)
                if flag and v >= 1 << 63:
                    v -= 1 << 64
                values.append(EnumValue(self.string(w[m]), v))
            return Enum(type_id, name, size=size, values=tuple(values), signed=flag,
                        kind=Kind.ENUM64)
        if kind == Kind.FWD:
            return Fwd(type_id, name, union=flag)
        if kind == Kind.TYPEDEF:
            return Typedef(type_id, name, type=size)
        if kind == Kind.VOLATILE:
            return Volatile(type_id, name, type=size)
        if kind == Kind.CONST:
            return Const(type_id, name, type=size)
        if kind == Kind.RESTRICT:
            return Restrict(type_id, name, type=size)
        if kind == Kind.TYPE_TAG:
            return TypeTag(type_id, name, type=size)
        if kind == Kind.FUNC:
            return Func(type_id, name, type=size, linkage=vlen)
        if kind == Kind.FUNC_PROTO:
            params = [Param(self.string(w[j + 2 * k]) if w[j + 2 * k] else "", w[j + 2 * k + 1])
                      for k in range(vlen)]
            variadic = bool(params) and params[-1] == ("", 0)
            if variadic:
                params.pop()
            return FuncProto(type_id, name, return_type=size, params=tuple(params),
                             variadic=variadic)
        if kind == Kind.VAR:
            return Var(type_id, name, type=size, linkage=w[j])
        if kind == Kind.DATASEC:
            return Datasec(type_id, name, size=size, vars=tuple(
                VarSecinfo(w[j + 3 * k], w[j + 3 * k + 1], w[j + 3 * k + 2])
                for k in range(vlen)))
        if kind == Kind.FLOAT:
            return Float(type_id, name, size=size)
        if kind == Kind.DECL_TAG:
            idx = w[j]
            return DeclTag(type_id, name, type=size,
                           component_idx=idx - (1 << 32) if idx >= 0x80000000 else idx)
        raise BTFFormatError(f"{self._label()}: type {type_id} has unknown kind {kind}")

    # -- names -----------------------------------------------------------------------------
    def _string_offsets(self, raw: bytes) -> List[int]:
        """Every offset of this blob's own string section holding exactly ``raw``."""
        needle = b"\0" + raw + b"\0"
        data, start, end = self._data, self._str_start, self._str_end
        found = []
        pos = data.find(needle, start, end)
        while pos >= 0:
            found.append(pos + 1 - start + self.str_base)
            pos = data.find(needle, pos + 1, end)
        return found

    def _name_column(self) -> bytes:
        """The name offset of every own type, in id order, as native 32-bit words (built
        once: a name search scans these 4 bytes a type instead of the whole section)."""
        column = self._names_col
        if column is None:
            w = self._words
            column = self._names_col = array.array(
                "I", [w[i] for i in self._offs]).tobytes()
        return column

    def _own_ids_with_name_off(self, offsets: Sequence[int]) -> List[int]:
        """Own type ids whose record names one of ``offsets``."""
        column = self._name_column()
        pack = _NATIVE_WORD.pack
        first = self.first_id
        result: List[int] = []
        for value in offsets:
            needle = pack(value)
            pos = column.find(needle)
            while pos >= 0:
                if pos % 4 == 0:
                    result.append(first + pos // 4)
                    pos = column.find(needle, pos + 4)
                else:
                    pos = column.find(needle, pos + 1)
        result.sort()
        return result

    def _full_index(self) -> Dict[int, List[int]]:
        """name offset -> own ids, for every named own type (built once)."""
        index = self._name_index
        if index is None:
            with self._lock:
                index = self._name_index
                if index is None:
                    index = {}
                    first = self.first_id
                    column = memoryview(self._name_column()).cast("I")
                    for idx, off in enumerate(column):
                        if off:
                            bucket = index.get(off)
                            if bucket is None:
                                index[off] = [first + idx]
                            else:
                                bucket.append(first + idx)
                    column.release()
                    self._name_index = index
        return index

    def _raw_string(self, offset: int) -> bytes:
        btf = self
        while offset < btf.str_base:
            btf = btf.base  # type: ignore[assignment]
        pos = btf._str_start + offset - btf.str_base
        end = btf._data.find(b"\0", pos, btf._str_end)
        return bytes(btf._data[pos:end if end >= 0 else btf._str_end])

    def _names_index(self) -> Dict[bytes, List[int]]:
        """name (bytes) -> own ids, built once from the full index."""
        names = self._by_name
        if names is None:
            index = self._full_index()
            with self._lock:
                names = self._by_name
                if names is None:
                    names = {}
                    raw_string = self._raw_string
                    strings = bytes(self._data[self._str_start:self._str_end])
                    find, base = strings.find, self.str_base
                    for off, ids in index.items():
                        rel = off - base
                        if rel >= 0:            # this blob's own strings, read in place
                            end = find(b"\0", rel)
                            raw = strings[rel:end] if end >= 0 else strings[rel:]
                        else:
                            raw = raw_string(off)
                        bucket = names.get(raw)
                        if bucket is None:
                            names[raw] = list(ids)
                        else:
                            bucket.extend(ids)
                            bucket.sort()
                    self._by_name = names
        return names

    def _own_ids_named(self, name: str) -> List[int]:
        raw = name.encode("utf-8")
        if self._store is not None:
            stored = self._store.ids_named(self, raw)
            if stored is not None:
                return stored
        if self._by_name is not None or self._searches >= _SEARCHES_BEFORE_INDEX:
            return list(self._names_index().get(raw, ()))
        recent = self._recent.get(raw)
        if recent is not None:
            return list(recent)
        offsets = self._string_offsets(raw)
        btf = self.base
        while btf is not None:            # split BTF names base strings too
            offsets.extend(btf._string_offsets(raw))
            btf = btf.base
        if not offsets:
            self._recent[raw] = []          # no string: no type of that name, ever
            return []
        self._searches += 1
        found = self._own_ids_with_name_off(offsets)
        self._recent[raw] = found
        return list(found)

    def ids(self, name: str, kind: Optional[KindLike] = None, *, own: bool = False
            ) -> List[int]:
        """Every type id named ``name`` (of ``kind`` when given), base types first;
        only this blob's own types when ``own`` is True. Nothing else is materialised."""
        if not name:
            return []
        found: List[int] = []
        if not own and self.base is not None:
            found.extend(self.base.ids(name, kind))
        found.extend(self._own_ids_named(name))
        if kind is not None:
            want = kind_from_name(kind)
            found = [i for i in found if self.kind(i) == want]
        return found

    def type_id(self, name: str, kind: Optional[KindLike] = None, *, own: bool = False
                ) -> int:
        """The id of the one type named ``name`` (of ``kind`` when given: a
        :class:`~pybpf.btf.format.Kind` or a name such as ``"struct"``, ``"func"``,
        ``"typedef"``).

        Without ``kind``, a forward declaration gives way to a complete type of the same
        name. Raises :class:`~pybpf.btf.errors.TypeNotFoundError` (a ``KeyError``) when
        there is none and :class:`~pybpf.btf.errors.AmbiguousTypeError` (a
        ``KeyError`` too) listing the candidates when several remain.
        """
        found = self.ids(name, kind, own=own)
        if len(found) > 1 and kind is None:
            complete = [i for i in found if self.kind(i) != Kind.FWD]
            if complete:
                found = complete
        if len(found) == 1:
            return found[0]
        what = f"{kind_from_name(kind).name.lower()} " if kind is not None else ""
        if not found:
            raise TypeNotFoundError(f"{self._label()}: no {what}type named {name!r}")
        candidates = [(self._label(), i, self.kind(i).name.lower()) for i in found]
        listed = ", ".join(f"[{i}] {k}" for _, i, k in candidates)
        raise AmbiguousTypeError(f"{self._label()}: {len(found)} {what}types are named "
                                 f"{name!r}: {listed}; pass kind= or use ids()", candidates)

    def find(self, name: str, kind: Optional[KindLike] = None) -> BtfType:
        """The record of :meth:`type_id`\\ ``(name, kind)``."""
        return self.type(self.type_id(name, kind))

    def enums_with(self, enumerator: str, *, own: bool = False) -> List[int]:
        """The ids of the ENUM/ENUM64 types that have an enumerator named
        ``enumerator`` (base types first unless ``own``). Each answer is searched for
        once per object (a blob does not change) and kept."""
        key = (enumerator, own)
        memo = self.memo("enums_with")
        known = memo.get(key)
        if known is None:
            known = memo.setdefault(key, tuple(self._enums_with(enumerator, own)))
        return list(known)

    def _enums_with(self, enumerator: str, own: bool) -> List[int]:
        found: List[int] = []
        if not own and self.base is not None:
            found.extend(self.base.enums_with(enumerator))
        raw = enumerator.encode("utf-8")
        offsets = self._string_offsets(raw)
        btf = self.base
        while btf is not None:
            offsets.extend(btf._string_offsets(raw))
            btf = btf.base
        if not offsets:
            return found
        data, start, end = self._data, self._type_start, self._type_end
        offs, w = self._offs, self._words
        pack = struct.Struct(self._order + "I").pack
        mine = set()
        hits = 0
        for value in offsets:
            needle = pack(value)
            pos = data.find(needle, start, end)
            while pos >= 0:
                hits += 1
                if hits > _MAX_HITS:
                    mine = {self.first_id + idx for idx, i in enumerate(offs)
                            if (w[i + 1] >> 24) & 31 in (Kind.ENUM, Kind.ENUM64)}
                    return found + sorted(
                        t for t in mine
                        if any(v.name == enumerator for v in self.type(t).values))  # type: ignore[attr-defined]
                rel = pos - start
                if rel % 4 == 0:
                    word = rel // 4
                    idx = bisect.bisect_right(offs, word) - 1
                    head = offs[idx]
                    kind = (w[head + 1] >> 24) & 31
                    step = 2 if kind == Kind.ENUM else 3 if kind == Kind.ENUM64 else 0
                    if step and word > head + 2 and (word - head - 3) % step == 0:
                        mine.add(self.first_id + idx)
                pos = data.find(needle, pos + 1, end)
        return found + sorted(mine)

    def names(self) -> Dict[str, List[int]]:
        """name -> own ids, for every named own type (builds the full index)."""
        return {raw.decode("utf-8", "replace"): list(ids)
                for raw, ids in self._names_index().items()}


# ---------------------------------------------------------------------------------------
# Kernel BTF, cached per process
# ---------------------------------------------------------------------------------------

_VMLINUX: Optional[BTF] = None
_MODULES: Dict[str, BTF] = {}
_LOCK = threading.Lock()


def vmlinux() -> BTF:
    """The running kernel's BTF (``/sys/kernel/btf/vmlinux``, Linux 5.4 with
    ``CONFIG_DEBUG_INFO_BTF=y``), parsed on the first call and shared after."""
    global _VMLINUX
    if _VMLINUX is None:
        with _LOCK:
            if _VMLINUX is None:
                try:
                    data, mapping = _open_bytes(VMLINUX_PATH)
                except FileNotFoundError:
                    raise FileNotFoundError(
                        f"{VMLINUX_PATH} does not exist: this kernel has no BTF (it needs "
                        "Linux 5.4 or later built with CONFIG_DEBUG_INFO_BTF=y)") from None
                from .index import open_store       # None with $PYBPF_NO_CACHE
                store = open_store(data)
                _VMLINUX = BTF(data, name="vmlinux", _mapping=mapping, _store=store)
    return _VMLINUX


def module_names() -> List[str]:
    """The kernel modules that have BTF in ``/sys/kernel/btf`` (Linux 5.11)."""
    try:
        return sorted(n for n in os.listdir(SYSFS_DIR) if n != "vmlinux")
    except OSError:
        return []


def load_module(name: str) -> BTF:
    """The BTF of kernel module ``name`` (``/sys/kernel/btf/<name>``, Linux 5.11, with
    ``CONFIG_DEBUG_INFO_BTF_MODULES=y``), split on top of :func:`vmlinux`; cached."""
    if name == "vmlinux":
        return vmlinux()
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"bad module name {name!r}")
    cached = _MODULES.get(name)
    if cached is None:
        base = vmlinux()
        path = os.path.join(SYSFS_DIR, name)
        try:
            btf = BTF.from_file(path, base=base, name=name)
        except FileNotFoundError:
            known = ", ".join(module_names()) or "none"
            raise FileNotFoundError(f"no BTF for kernel module {name!r} in {SYSFS_DIR} "
                                    f"(modules with BTF: {known})") from None
        with _LOCK:
            cached = _MODULES.setdefault(name, btf)
    return cached
