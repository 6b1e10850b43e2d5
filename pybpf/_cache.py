"""What the caches of compiled programs share: the directory, the identities in every
key, reading and writing entry files.

Two front ends keep compiled programs between runs, each with its own entry layout:
the Python DSL (:mod:`pybpf.dsl.cache`) and ``pybpf trace`` (:mod:`pybpf.bpftrace.cache`).
They may not import each other, so the parts they have in common live here, below
both: where entries are kept (:func:`cache_dir`, made 0700 and trusted only when it
belongs to the effective user and nobody else may write to it: :func:`safe_dir`),
whether caching is on (:func:`enabled`, ``$PYBPF_NO_CACHE``), the running kernel
(:func:`kernel_identity`) and pybpf (:func:`pybpf_identity`) as keys see them, an
entry's frame (a magic, the format, lengths and a BLAKE2b-256 of the payload:
:func:`frame`, :func:`unframe`), reading an entry only when it is a regular file of
this user nobody else may write (:func:`read_entry`), writing it atomically
(:func:`write_entry`), pruning old entries (:func:`prune`), and the programs in an
entry: instruction bytes, their labels, references and source rows, and the
source-line BTF (:func:`put_program`, :func:`get_program`, :class:`SourceTable`).
Nothing here unpickles or executes what it reads.
"""

from __future__ import annotations

import collections.abc as _abc
import os
import stat
import struct
from typing import Any, Callable, Dict, Iterator, List, MutableMapping, Optional, Sequence, Tuple

try:                                        # hashlib loads OpenSSL: ~4 MB of RSS at start
    from _blake2 import blake2b as _blake2b
except ImportError:                         # pragma: no cover - other interpreters
    from hashlib import blake2b as _blake2b

__all__ = ["NO_CACHE_ENV", "CACHE_DIR_ENV", "hash256", "enabled", "cache_dir",
           "kernel_identity", "pybpf_identity", "safe_dir", "read_entry", "write_entry",
           "prune", "frame", "unframe", "open_entry", "Uncacheable", "SourceTable",
           "put_program", "get_program", "EncodedInstructions"]

#: set to a non-empty value other than ``0`` to bypass the caches
NO_CACHE_ENV = "PYBPF_NO_CACHE"
#: where the entries are kept (overrides ``$XDG_CACHE_HOME/pybpf``)
CACHE_DIR_ENV = "PYBPF_CACHE_DIR"
#: the largest entry read
MAX_ENTRY = 64 << 20

_HEAD = struct.Struct("<8sHII32s")          # magic, format, json length, code length, hash
_U32 = struct.Struct("<I")

#: memoised identities (``kernel``, ``pybpf``, ``pybpf:<parts>``); tests replace them
MEMO: Dict[str, Any] = {}


def hash256(data: bytes = b"") -> Any:
    """A 256-bit BLAKE2b hasher (the caches' one hash function)."""
    return _blake2b(data, digest_size=32)


def enabled(flag: Optional[bool] = None) -> bool:
    """Whether to use the cache: ``flag`` when given, else not when ``$PYBPF_NO_CACHE``
    is set (to anything but ``""`` or ``"0"``)."""
    if flag is not None:
        return flag
    return os.environ.get(NO_CACHE_ENV, "") in ("", "0")


def cache_dir() -> str:
    """``$PYBPF_CACHE_DIR``, else ``$XDG_CACHE_HOME/pybpf``, else ``~/.cache/pybpf``."""
    d = os.environ.get(CACHE_DIR_ENV)
    if d:
        return os.path.abspath(os.path.expanduser(d))
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "pybpf")


def kernel_identity() -> Dict[str, str]:
    """The running kernel as a compiler sees it: ``uname`` release, version and
    machine, and the vmlinux BTF as ``SIZE:HASH`` (hash of its first and last 4 KiB;
    ``"none"`` without BTF). Two reads, no hashing of the whole BTF."""
    if "kernel" not in MEMO:
        u = os.uname()
        btf = "none"
        try:
            fd = os.open("/sys/kernel/btf/vmlinux", os.O_RDONLY | os.O_CLOEXEC)
            try:
                size = os.fstat(fd).st_size
                edges = os.pread(fd, 4096, 0) + os.pread(fd, 4096, max(0, size - 4096))
            finally:
                os.close(fd)
            btf = f"{size}:{hash256(edges).hexdigest()[:32]}"
        except OSError:
            pass
        MEMO["kernel"] = {"release": u.release, "version": u.version,
                          "machine": u.machine, "btf": btf}
    return dict(MEMO["kernel"])


def pybpf_identity(parts: Sequence[str], memo_key: Optional[str] = None) -> str:
    """``pybpf.__version__`` and a hash of the path, size and mtime of each ``.py`` file
    under ``parts`` (directories or files of the ``pybpf`` package: what a compiler's
    output depends on), one ``stat`` per file; memoised under ``memo_key`` (default
    ``pybpf:`` and the parts)."""
    key = memo_key or "pybpf:" + ",".join(parts)
    if key not in MEMO:
        from . import __version__
        root = os.path.dirname(os.path.abspath(__file__))
        h = hash256(__version__.encode())
        rows: List[str] = []
        for part in parts:
            top = os.path.join(root, part)
            if part.endswith(".py"):
                _stat_row(rows, top, part)
            else:
                _tree_rows(rows, top, part)
        h.update("".join(rows).encode())
        MEMO[key] = f"{__version__}:{h.hexdigest()[:32]}"
    return str(MEMO[key])


def _stat_row(rows: List[str], path: str, rel: str) -> None:
    try:
        st = os.stat(path)
        rows.append(f"{rel}:{st.st_size}:{st.st_mtime_ns};")
    except OSError:
        rows.append(f"{rel}:-;")


def _tree_rows(rows: List[str], top: str, rel: str) -> None:
    """The rows of the ``.py`` files under directory ``top`` (``rel`` relative to the
    package), in ``os.walk``'s top-down order with names sorted: a directory's files,
    then each subdirectory (not ``__pycache__``, not through a symbolic link). One
    ``scandir`` per directory and one ``stat`` per file (a tool's start pays it)."""
    try:
        with os.scandir(top) as it:
            found = sorted(it, key=lambda e: e.name)
    except OSError:
        return
    subdirs = []
    for e in found:
        try:
            is_dir = e.is_dir()
        except OSError:
            is_dir = False
        if is_dir:
            if e.name != "__pycache__" and not e.is_symlink():
                subdirs.append(e)
        elif e.name.endswith(".py"):
            _stat_row(rows, e.path, f"{rel}/{e.name}")
    for e in subdirs:
        _tree_rows(rows, e.path, f"{rel}/{e.name}")


def safe_dir(path: str, create: bool) -> bool:
    """Whether ``path`` is a directory of this user that nobody else may write (created
    with mode 0700 when ``create``)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        if not create:
            return False
        try:
            os.makedirs(path, mode=0o700, exist_ok=True)
            st = os.lstat(path)
        except OSError:
            return False
    except OSError:
        return False
    return (stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid()
            and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH))


def read_entry(path: str, stats: Optional[MutableMapping[str, int]] = None
               ) -> Optional[bytes]:
    """The entry's bytes when it is a regular file of this user nobody else may write
    (at most :data:`MAX_ENTRY` bytes); None otherwise (one refused file counts in
    ``stats["rejected"]``)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or \
                st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) or st.st_size > MAX_ENTRY:
            if stats is not None:
                stats["rejected"] = stats.get("rejected", 0) + 1
            return None
        chunks = []
        while True:
            b = os.read(fd, 1 << 20)
            if not b:
                break
            chunks.append(b)
        return b"".join(chunks)
    finally:
        os.close(fd)


def write_entry(path: str, payload: bytes) -> bool:
    """Write ``payload`` to ``path`` through a temporary file in its directory renamed
    over it (mode 0600; concurrent writers at worst write the same bytes twice); False
    when it could not be written."""
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600)
        try:
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        return False
    return True


def prune(directory: str, stem: str, suffix: str, keep: int) -> None:
    """Keep the ``keep`` newest entries ``STEM.KEY<suffix>`` of one stem."""
    try:
        mine = [e for e in os.scandir(directory)
                if e.name.startswith(stem + ".") and e.name.endswith(suffix)
                and e.name.count(".") == 2]
        if len(mine) <= keep:
            return
        mine.sort(key=lambda e: e.stat().st_mtime_ns, reverse=True)
        for e in mine[keep:]:
            os.unlink(e.path)
    except OSError:
        pass


def frame(magic: bytes, fmt: int, doc: bytes, code: bytes) -> bytes:
    """An entry: header (``magic``, format ``fmt``, lengths, BLAKE2b-256 of the body),
    then ``doc`` (a serialised document: JSON, or ``marshal``'s) and ``code`` (bytes)."""
    body = doc + code
    return _HEAD.pack(magic, fmt, len(doc), len(code), hash256(body).digest()) + body


def unframe(raw: bytes, magic: bytes, fmt: int) -> Optional[Tuple[bytes, bytes]]:
    """(doc, code) of an entry made by :func:`frame`, or None when its magic, format,
    lengths or hash do not match."""
    if len(raw) < _HEAD.size:
        return None
    m, f, jlen, clen, digest = _HEAD.unpack_from(raw)
    body = raw[_HEAD.size:]
    if m != magic or f != fmt or len(body) != jlen + clen or \
            hash256(body).digest() != digest:
        return None
    return body[:jlen], body[jlen:]


# -- programs in an entry --------------------------------------------------------------------

class Uncacheable(Exception):
    """What a front end compiled cannot be kept in an entry (the message says why)."""


class SourceTable:
    """The source locations of an entry's instructions, each kept once: :meth:`index`
    gives a location's number in :attr:`rows` (the JSON list), :meth:`locations` turns
    the rows back into ``SourceLocation`` objects."""

    def __init__(self) -> None:
        self.rows: List[List[Any]] = []
        self._index: Dict[Any, int] = {}

    def index(self, loc: Any) -> Optional[int]:
        """The number of ``loc`` (None for none)."""
        if loc is None:
            return None
        k = tuple(loc)
        if k not in self._index:
            self._index[k] = len(self.rows)
            self.rows.append(list(k))
        return self._index[k]

    @staticmethod
    def valid(rows: Any) -> bool:
        """Whether ``rows`` (read from an entry) are rows :meth:`locations` can turn into
        locations: ``[file, line, column, text]`` each."""
        return isinstance(rows, list) and all(
            isinstance(r, list) and len(r) == 4 and isinstance(r[1], int)
            and isinstance(r[2], int) for r in rows)

    @staticmethod
    def locations(rows: Sequence[Sequence[Any]]) -> List[Any]:
        """The ``SourceLocation`` of each row."""
        from .asm.instruction import SourceLocation
        return [SourceLocation(f, int(ln), int(col), t) for f, ln, col, t in rows]


class EncodedInstructions(_abc.Sequence):
    """A program's instructions as an entry keeps them: the encoded bytes (``code``), and
    the labels, references and source rows of those that have them (``meta``: rows of
    ``[index, label, reference, source row number]``; ``rows``: the entry's source
    rows). A sequence of :class:`~pybpf.asm.instruction.Instruction`, decoded on first
    use; loading the program does not need them: :meth:`resolved_code` gives the bytes
    with the map references patched in (what :meth:`pybpf.program.ProgramSpec.load`
    takes), so a cached tool's start decodes and encodes nothing and imports no
    assembler."""

    def __init__(self, code: bytes, count: int, starts: List[int],
                 meta: Sequence[Sequence[Any]], rows: Sequence[Sequence[Any]]) -> None:
        self.code = code
        self.count = count
        self.meta = meta
        self._starts = starts           # byte offset of each instruction
        self._rows = rows
        self._list: Optional[List[Any]] = None

    @classmethod
    def check(cls, code: bytes, count: int, meta: Sequence[Sequence[Any]],
              rows: Sequence[Sequence[Any]]) -> Optional["EncodedInstructions"]:
        """The instructions of ``code``, or None when the bytes do not decode (a length
        that is not whole slots, a truncated or malformed ``lddw``), do not hold
        ``count`` instructions, or ``meta`` names one they do not have."""
        if len(code) % 8:
            return None
        starts: List[int] = []
        at, end = 0, len(code)
        while at < end:
            starts.append(at)
            if code[at] == 0x18:                       # lddw: two slots
                if at + 16 > end or any(code[at + 8:at + 12]):
                    return None
                at += 16
            else:
                at += 8
        if len(starts) != count:
            return None
        for i, _label, _ref, s in meta:
            if not 0 <= i < count or (s is not None and not 0 <= s < len(rows)):
                return None
        return cls(code, count, starts, meta, rows)

    def resolved_code(self, map_fd: Callable[[Any], int]) -> bytes:
        """``code`` with the fd of each map reference (``map_fd(reference)``) in the low
        32 bits of its ``lddw`` (pseudo source ``MAP_FD`` or ``MAP_VALUE``), as
        :func:`pybpf.program.resolve_maps` and encoding would make them."""
        buf: Optional[bytearray] = None
        for i, _label, ref, _s in self.meta:
            if ref is None:
                continue
            at = self._starts[i]
            if self.code[at] != 0x18 or self.code[at + 1] >> 4 not in (1, 2):
                continue
            if buf is None:
                buf = bytearray(self.code)
            _U32.pack_into(buf, at + 4, map_fd(ref) & 0xFFFFFFFF)
        return self.code if buf is None else bytes(buf)

    def _decoded(self) -> List[Any]:
        if self._list is None:
            from .asm.encoding import decode
            insns = decode(self.code, validate=False)
            sources = SourceTable.locations(self._rows) if self._rows else []
            for i, label, ref, s in self.meta:
                ins = insns[i]
                ins.label, ins.reference = label, ref
                ins.source = sources[s] if s is not None else None
            self._list = insns
        return self._list

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: Any) -> Any:
        return self._decoded()[index]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._decoded())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (list, tuple, EncodedInstructions)):
            return self._decoded() == list(other)
        return NotImplemented

    __hash__ = None                     # type: ignore[assignment]  # as a list's

    def __repr__(self) -> str:
        return f"<{self.count} encoded instructions>"


def put_program(instructions: Sequence[Any], btf_name: str, code: bytearray,
                sources: SourceTable) -> Dict[str, Any]:
    """Append one program to an entry's ``code``: its encoded instructions, then its
    source-line BTF (built for ``btf_name``, the name it loads under) so that a hit
    builds none. Returns the JSON part: where the bytes are (``code``, ``btf``), the
    instruction count and ``meta``, the labels, map references and source rows of the
    instructions that have them. Raises :class:`Uncacheable` for a reference that is
    not a name."""
    from .asm.encoding import encode
    from .btf.builder import program_btf
    meta = []
    for i, ins in enumerate(instructions):
        ref, label = ins.reference, ins.label
        if not (ref is None or isinstance(ref, str)) or not (
                label is None or isinstance(label, str)):
            raise Uncacheable("a reference that is not a name")
        s = sources.index(ins.source)
        if label is not None or ref is not None or s is not None:
            meta.append([i, label, ref, s])
    blob = encode(instructions)
    entry: Dict[str, Any] = {"code": [len(code), len(blob)], "count": len(instructions),
                             "meta": meta}
    code += blob
    built = program_btf(instructions, btf_name)
    if built is not None:
        entry["btf"] = [len(code), len(built.blob), len(built.func_info),
                        len(built.line_info)]
        code += built.blob + built.func_info + built.line_info
    return entry


def get_program(entry: Dict[str, Any], code: bytes, rows: Sequence[Sequence[Any]]
                ) -> Optional[Tuple[EncodedInstructions, Optional[Tuple[bytes, bytes, bytes]]]]:
    """The instructions (:class:`EncodedInstructions`: labels, references and source
    locations restored when they are decoded; ``rows``: the entry's source rows, as
    :attr:`SourceTable.rows` made them) and the ``(blob, func_info, line_info)`` BTF of a
    program :func:`put_program` stored, or None when the entry does not hold together."""
    off, n = (int(x) for x in entry["code"])
    if off + n > len(code):
        return None
    insns = EncodedInstructions.check(bytes(code[off:off + n]), entry["count"],
                                      entry["meta"], rows)
    if insns is None:
        return None
    btf = None
    if "btf" in entry:
        at, nb, nf, nl = (int(x) for x in entry["btf"])
        if at + nb + nf + nl > len(code):
            return None
        btf = (bytes(code[at:at + nb]), bytes(code[at + nb:at + nb + nf]),
               bytes(code[at + nb + nf:at + nb + nf + nl]))
    return insns, btf


def open_entry(raw: bytes, magic: bytes, fmt: int, key: str,
               loads: Optional[Callable[[bytes], Any]] = None
               ) -> Optional[Tuple[Dict[str, Any], bytes]]:
    """(document, code bytes) of an entry :func:`frame` made for ``key`` in format
    ``fmt``, or None when it is not one. The document is JSON unless ``loads`` reads it
    (``marshal.loads``: the same lists, dicts and scalars, without importing ``json``)."""
    parts = unframe(raw, magic, fmt)
    if parts is None:
        return None
    if loads is None:
        import json
        doc = json.loads(parts[0].decode())
    else:
        doc = loads(parts[0])
    if not isinstance(doc, dict) or doc.get("format") != fmt or doc.get("key") != key:
        return None
    return doc, parts[1]
