"""A cache of compiled ``pybpf trace`` programs: the second start of the same program
skips parsing, semantic analysis, lowering and the compiler's back end.

:func:`pybpf.bpftrace.command.trace_main` looks the program up (:func:`lookup`) before
the front half; on a hit it runs the stored :class:`~.module.LoweredModule` with a
:class:`CachedFront` in place of the front half's result, and imports none of the
parser, the semantic analyser, the lowering or :mod:`pybpf.compiler.backend`. On a
miss it compiles as usual, noting the tracepoint format files the compilation reads
(:class:`Pending`), and stores the module once its programs were loaded by the kernel
(an entry is a program known to load).

**Key** (:func:`entry_key`): a BLAKE2b-256 over :data:`FORMAT`, pybpf's identity (its
version and the size and mtime of the sources of ``pybpf/bpftrace``, the compiler,
``asm``, ``btf``, ``tracefs.py``, ``_records.py``), the kernel's identity (``uname``
and the vmlinux BTF, :func:`pybpf._cache.kernel_identity`), the CPU count (the ring's
size), the program text, its file name and every :class:`~.session.TraceOptions`
field (``-p``, ``$1``..., ``BPFTRACE_STRLEN``, map sizes, ring pages, ``--unsafe``,
``-f``, ``-k``..., and the command line's ``extras`` such as ``BPFTRACE_NODE_MAX``).

**Cached only** (:func:`precheck`, then :meth:`Pending.store`): programs whose attach
points are all ``BEGIN``, ``END``, ``tracepoint`` (no wildcard), ``rawtracepoint``,
``profile``, ``interval``, ``software`` or ``hardware``; without ``#include``, ``-I``,
``--include``, ``-c`` (the child's pid is compiled in), ``BPFTRACE_BTF`` or
``BPFTRACE_VMLINUX``; without ``cgroupid``, ``kaddr`` or ``uaddr`` (resolved against
the running system while compiling); and without warnings. ``-d``, ``--emit-elf``,
``-l`` and ``--info`` never use the cache.

**Dependencies**: every tracepoint format file read while compiling (and that of each
tracepoint attach point) is stored with a hash of its text; a hit reads them again,
and a changed or missing one is a miss.

**Entry** (``trace.KEY.pbt`` in :func:`pybpf._cache.cache_dir`): the shared frame
(magic, format, lengths, BLAKE2b-256), a document and the programs' instruction
bytes. The document holds only JSON's kinds of value (lists, dicts, strings, numbers),
serialised with ``marshal`` (built in: a hit imports no ``json``, ~2-3 ms of a start);
objects are encoded into it with an allow-list of record classes
(:data:`_RECORDS`: types, fields, locations, attach points, sites, map layouts) and of
map declarations (:data:`_DECLS`); nothing is unpickled or evaluated (``marshal``
rebuilds only those plain values; the hash is checked before it reads anything). A hit's programs
are :class:`pybpf._cache.EncodedInstructions`: loaded from the stored bytes with the map
fds patched in, decoded only if something reads them, so a hit imports no assembler
either. A damaged,
foreign or older-format entry fails validation, is ignored and replaced.
``PYBPF_NO_CACHE=1`` turns the cache off.
"""

from __future__ import annotations

import marshal
import os
import re
from typing import Any, Dict, List, Optional

from .. import _cache as S

__all__ = ["FORMAT", "STATS", "CachedFront", "Hit", "Pending", "precheck", "entry_key",
           "lookup", "start", "entry_path"]

#: the layout of an entry; bump it whenever what is stored or how it is read changes
FORMAT = 2
#: what happened in this process: ``hits``, ``misses``, ``stores``, ``rejected``
#: (entries found but refused: damaged, foreign, stale dependencies), ``uncacheable``
STATS: Dict[str, int] = {"hits": 0, "misses": 0, "stores": 0, "rejected": 0,
                         "uncacheable": 0}

_MAGIC = b"PYBPFBT\0"
_SUFFIX = ".pbt"
_STEM = "trace"
_KEEP = 32
#: the parts of pybpf whose sources decide what ``pybpf trace`` compiles
_PARTS = ("bpftrace", "compiler", "asm", "btf", "tracefs.py", "_records.py")
#: the providers whose programs are cached
_PROVIDERS = ("BEGIN", "END", "tracepoint", "rawtracepoint", "profile", "interval",
              "software", "hardware")
#: calls resolved against the running system while compiling
_LIVE_CALLS = re.compile(r"\b(cgroupid|kaddr|uaddr)\s*\(")
_INCLUDE = re.compile(r"^\s*#\s*include\b", re.M)
#: ``TraceOptions.extras`` entries of the run itself, not of the command line
_RUN_EXTRAS = ("front", "lowered", "cache_pending", "cache_entry", "command_argv", "cpid")


_Uncacheable = S.Uncacheable


# -- the key and what may be cached ----------------------------------------------------

def precheck(source: str, opts: Any) -> Optional[str]:
    """Why the program cannot be cached, judged from its text and options before it is
    compiled (None: it may be, if the compiled module qualifies too)."""
    if opts.include_dirs or opts.includes:
        return "-I/--include"
    if _INCLUDE.search(source):
        return "#include"
    if opts.command is not None:
        return "-c"
    if opts.btf or opts.vmlinux:
        return "BPFTRACE_BTF/BPFTRACE_VMLINUX"
    if opts.debug or opts.emit_elf is not None:
        return "-d/--emit-elf"
    m = _LIVE_CALLS.search(source)
    if m:
        return f"{m.group(1)}()"
    return None


def entry_key(source: str, filename: str, opts: Any, *,
              kernel: Optional[Dict[str, str]] = None,
              pybpf: Optional[str] = None) -> str:
    """The key of a program's entry (hex BLAKE2b-256); ``kernel`` and ``pybpf``
    replace the identities (tests)."""
    kernel = kernel if kernel is not None else S.kernel_identity()
    pybpf = pybpf if pybpf is not None else S.pybpf_identity(_PARTS)
    options = sorted((k, v) for k, v in vars(opts).items() if k != "extras")
    options += sorted((k, v) for k, v in opts.extras.items() if k not in _RUN_EXTRAS)
    text = repr([FORMAT, pybpf, sorted(kernel.items()), os.cpu_count(), source, filename,
                 options])
    return S.hash256(text.encode()).hexdigest()


def entry_path(key: str, directory: Optional[str] = None) -> str:
    """Where the entry of ``key`` is kept."""
    return os.path.join(directory or S.cache_dir(), f"{_STEM}.{key[:40]}{_SUFFIX}")


# -- the hit -----------------------------------------------------------------------------

class _NoWarnings:
    """What the runtime reads of the analysis and probe environment of a cached program
    (one stored only when it had no warnings)."""

    def __init__(self) -> None:
        self.warnings: List[Any] = []


class CachedFront:
    """Stands for the front half's result (:class:`~.session.FrontResult`) on a hit:
    the runtime uses the program's ``source`` and ``filename`` (located messages) and
    the (empty) warnings of ``analysis`` and ``env``."""

    def __init__(self, source: str, filename: str) -> None:
        self.source, self.filename = source, filename
        self.analysis = _NoWarnings()
        self.env = _NoWarnings()
        self.cached = True


class Hit:
    """A cache hit: ``front`` (a :class:`CachedFront`) and ``module`` (the
    :class:`~.module.LoweredModule`), ``path`` of the entry."""

    def __init__(self, front: CachedFront, module: Any, path: str) -> None:
        self.front, self.module, self.path = front, module, path


def lookup(source: str, filename: str, opts: Any, directory: Optional[str] = None
           ) -> Optional[Hit]:
    """The stored compilation of ``source`` with ``opts``, or None (cache off, not
    cacheable, no entry, or one that fails validation or whose dependencies changed)."""
    if not S.enabled() or precheck(source, opts) is not None:
        return None
    directory = directory or S.cache_dir()
    if not S.safe_dir(directory, create=False):
        STATS["misses"] += 1
        return None
    key = entry_key(source, filename, opts)
    path = entry_path(key, directory)
    raw = S.read_entry(path, STATS)
    mod = None
    if raw is not None:
        try:
            mod = _decode(raw, key)
        except Exception:                   # damaged or foreign: never trusted, rebuilt
            mod = None
        if mod is None:
            STATS["rejected"] += 1
    if mod is None:
        STATS["misses"] += 1
        return None
    STATS["hits"] += 1
    return Hit(CachedFront(source, filename), mod, path)


# -- the miss ------------------------------------------------------------------------------

class Pending:
    """A compilation on its way to the cache: :func:`start` makes it before the front
    half (it notes the tracepoint formats read from then on), :meth:`stop` ends the
    noting once lowered, :meth:`store` writes the entry once the programs are
    loaded."""

    def __init__(self, source: str, filename: str, opts: Any, key: str,
                 directory: str) -> None:
        self.source, self.filename, self.opts = source, filename, opts
        self.key, self.directory = key, directory
        self.reads: List[str] = []
        self.why: Optional[str] = None
        from .. import tracefs
        tracefs.FORMAT_READERS.append(self.reads)

    def stop(self) -> None:
        """Stop noting format reads (idempotent)."""
        from .. import tracefs
        tracefs.FORMAT_READERS[:] = [r for r in tracefs.FORMAT_READERS if r is not self.reads]

    def refuse(self, why: str) -> None:
        """Do not store this compilation (``why``: warnings...)."""
        self.why = self.why or why

    def store(self, front: Any, mod: Any) -> Optional[str]:
        """Write the entry of ``mod`` compiled from ``front``; its path, or None when the
        program is not cacheable or the directory not usable. Never raises."""
        self.stop()
        try:
            if self.why is not None:
                raise _Uncacheable(self.why)
            if front.analysis.warnings or front.env.warnings:
                raise _Uncacheable("warnings")
            for aps in front.attach_points:
                for ap in aps:
                    _check_attach_point(ap)
            payload = _encode(self.key, mod, self._deps(mod))
        except _Uncacheable:
            STATS["uncacheable"] += 1
            return None
        except Exception:
            if os.environ.get("PYBPF_DEBUG"):
                raise
            STATS["uncacheable"] += 1
            return None
        if not S.safe_dir(self.directory, create=True):
            return None
        path = entry_path(self.key, self.directory)
        if not S.write_entry(path, payload):
            return None
        STATS["stores"] += 1
        S.prune(self.directory, _STEM, _SUFFIX, _KEEP)
        return path

    def _deps(self, mod: Any) -> List[List[str]]:
        paths = list(self.reads)
        root = None
        for p in mod.programs:
            for ap in p.attach:
                if ap.provider == "tracepoint":
                    if root is None:
                        from ..tracefs import tracefs_root
                        root = tracefs_root()
                    paths.append(os.path.join(root, "events", ap.target, ap.func, "format"))
        out = []
        for path in sorted(set(paths)):
            digest = _file_hash(path)
            if digest is None:
                raise _Uncacheable(f"cannot read {path}")
            out.append([path, digest])
        return out


def start(source: str, filename: str, opts: Any, directory: Optional[str] = None
          ) -> Optional[Pending]:
    """A :class:`Pending` for a program about to be compiled, or None when the cache is
    off or the program cannot be cached (:func:`precheck`)."""
    if not S.enabled():
        return None
    if precheck(source, opts) is not None:
        STATS["uncacheable"] += 1
        return None
    return Pending(source, filename, opts, entry_key(source, filename, opts),
                   directory or S.cache_dir())


def _check_attach_point(ap: Any) -> None:
    if ap.provider not in _PROVIDERS:
        raise _Uncacheable(f"{ap.provider} probes are not cached")
    if ap.need_expansion or ap.ignore_invalid:
        raise _Uncacheable("wildcard attach points are not cached")


def _file_hash(path: str) -> Optional[str]:
    try:
        with open(path, "rb") as fh:
            return S.hash256(fh.read()).hexdigest()
    except OSError:
        return None


# -- objects as plain values -------------------------------------------------------------------------

def _records() -> Dict[str, type]:
    from .errors import Location
    from .module import MapLayout, Site
    from .probes import AttachPoint
    from .types import Bitfield, Field, SizedType
    return {c.__name__: c for c in (SizedType, Field, Bitfield, Location, AttachPoint,
                                    Site, MapLayout)}


#: the record classes an entry may hold, by name (made when first needed)
_RECORDS: Dict[str, type] = {}
#: the map declarations an entry may hold, and the attributes each may have
_DECLS = {"HashMap": (), "PerCPUHashMap": (), "LRUHashMap": (), "ArrayMap": (),
          "PerCPUArrayMap": (), "RingBuf": ("event", "wakeup"), "StackTraceMap": ("depth",)}
_DECL_ATTRS = ("key", "value", "max_entries", "name")


class _Encoder:
    """Values to JSON's kinds: scalars as they are, lists as lists, tuples ``{"t": [...]}``,
    dicts ``{"d": [[k, v], ...]}``, allowed records ``{"r": class, "f": {...}}``,
    struct layouts ``{"s": [size, align, padded, fields]}``."""

    def __init__(self) -> None:
        if not _RECORDS:
            _RECORDS.update(_records())
        self.path: set = set()
        self.count = 0

    def enc(self, v: Any) -> Any:
        self.count += 1
        if self.count > 200_000:
            raise _Uncacheable("too large")
        if v is None or type(v) in (bool, int, str, float):
            return v
        if id(v) in self.path:
            raise _Uncacheable("a cycle")
        self.path.add(id(v))
        try:
            return self._enc(v)
        finally:
            self.path.discard(id(v))

    def _enc(self, v: Any) -> Any:
        t = type(v)
        if t is list:
            return [self.enc(x) for x in v]
        if t is tuple:
            return {"t": [self.enc(x) for x in v]}
        if t is dict:
            return {"d": [[self.enc(k), self.enc(x)] for k, x in v.items()]}
        name = t.__name__
        if _RECORDS.get(name) is t:
            return {"r": name, "f": {k: self.enc(x) for k, x in vars(v).items()}}
        from .types import Struct
        if t is Struct:
            if v._loader is not None:
                raise _Uncacheable("a struct whose fields were not read")
            return {"s": [v.size, v.align, v.padded, [self.enc(f) for f in v.fields]]}
        raise _Uncacheable(f"a {name} value")


def _dec(v: Any) -> Any:
    if v is None or type(v) in (bool, int, str, float):
        return v
    if type(v) is list:
        return [_dec(x) for x in v]
    if type(v) is not dict or len(v) not in (1, 2):
        raise ValueError("not an encoded value")
    if "t" in v:
        return tuple(_dec(x) for x in v["t"])
    if "d" in v:
        return {_dec(k): _dec(x) for k, x in v["d"]}
    if "r" in v:
        if not _RECORDS:
            _RECORDS.update(_records())
        cls = _RECORDS[v["r"]]
        obj = cls.__new__(cls)
        obj.__dict__.update({str(k): _dec(x) for k, x in v["f"].items()})
        return obj
    if "s" in v:
        from .types import Struct
        size, align, padded, fields = v["s"]
        return Struct(int(size), [_dec(f) for f in fields], int(align), bool(padded))
    raise ValueError("not an encoded value")


def _enc_ctype(t: Any) -> Any:
    from ..compiler.types import INT_TYPES, ArrayType, IntType, char
    if t is None:
        return None
    if isinstance(t, IntType) and (INT_TYPES.get(t.name) == t or t == char):
        return t.name
    if isinstance(t, ArrayType):
        return [_enc_ctype(t.elem), t.count]
    raise _Uncacheable(f"map type {t!r}")


def _dec_ctype(v: Any) -> Any:
    from ..compiler.types import INT_TYPES, ArrayType, char
    if v is None:
        return None
    if isinstance(v, str):
        return char if v == "char" else INT_TYPES[v]
    elem, count = v
    return ArrayType(_dec_ctype(elem), int(count))


def _enc_decl(decl: Any) -> List[Any]:
    name = type(decl).__name__
    extra = _DECLS.get(name)
    from ..compiler import maps as M
    if extra is None or getattr(M, name) is not type(decl):
        raise _Uncacheable(f"a {name} map")
    attrs = set(vars(decl))
    if not attrs <= set(_DECL_ATTRS + extra):
        raise _Uncacheable(f"a {name} map with {sorted(attrs - set(_DECL_ATTRS + extra))}")
    state = {}
    for a in sorted(attrs):
        x = getattr(decl, a)
        state[a] = _enc_ctype(x) if a in ("key", "value", "event") else x
        if not (state[a] is None or type(state[a]) in (int, str, list)):
            raise _Uncacheable(f"map attribute {a}")
    return [name, state]


def _dec_decl(v: List[Any]) -> Any:
    from ..compiler import maps as M
    name, state = v
    if name not in _DECLS:
        raise ValueError(f"map kind {name}")
    cls = getattr(M, name)
    allowed = set(_DECL_ATTRS + _DECLS[name])
    if not set(state) <= allowed:
        raise ValueError("map attributes")
    decl = cls.__new__(cls)
    for a, x in state.items():
        setattr(decl, a, _dec_ctype(x) if a in ("key", "value", "event") else x)
    return decl


_PROGRAM_FIELDS = ("name", "probe", "attach", "prog_type", "provider", "instructions",
                   "section", "deferred", "btf")
_MODULE_FIELDS = ("programs", "unit", "layouts", "sites", "probe_names", "stack_maps",
                  "strlen", "watchpoints", "strftime_fmts", "cgroup_filters")
_UNIT_FIELDS = ("rodata", "maps", "map_names", "consts", "rodata_size", "prints",
                "drop_slots")


def _encode(key: str, mod: Any, deps: List[List[str]]) -> bytes:
    e = _Encoder()
    if not set(vars(mod)) <= set(_MODULE_FIELDS):
        raise _Uncacheable(f"module fields {sorted(set(vars(mod)) - set(_MODULE_FIELDS))}")
    if getattr(mod, "watchpoints", None) or getattr(mod, "cgroup_filters", None):
        raise _Uncacheable("watchpoints or cgroup filters")
    unit = mod.unit
    if not set(vars(unit)) <= set(_UNIT_FIELDS) or unit.rodata or unit.consts or \
            unit.prints:
        raise _Uncacheable("a unit with constants or prints")
    sources = S.SourceTable()
    code = bytearray()
    programs = []
    for p in mod.programs:
        if not set(vars(p)) <= set(_PROGRAM_FIELDS) or p.deferred:
            raise _Uncacheable("a program with more than the cache knows")
        for ap in p.attach:
            _check_attach_point(ap)
        entry = {"name": p.name, "probe": p.probe, "attach": e.enc(p.attach),
                 "prog_type": p.prog_type, "provider": p.provider, "section": p.section}
        # the BTF is built for the runtime's load name
        entry.update(S.put_program(p.instructions, p.name[:15], code, sources))
        programs.append(entry)
    doc = {
        "format": FORMAT, "key": key, "deps": deps, "programs": programs,
        "sources": sources.rows,
        "maps": [[n, _enc_decl(d)] for n, d in unit.maps.items()],
        "drops": dict(unit.drop_slots), "rodata_size": unit.rodata_size,
        "layouts": e.enc(mod.layouts), "sites": e.enc(mod.sites),
        "probe_names": e.enc(mod.probe_names), "stack_maps": e.enc(mod.stack_maps),
        "strlen": mod.strlen, "strftime_fmts": e.enc(getattr(mod, "strftime_fmts", [])),
    }
    text = marshal.dumps(doc)
    payload = S.frame(_MAGIC, FORMAT, text, bytes(code))
    # what is read back must be what was compiled: decode and compare
    again = _decode(payload, key, check_deps=False)
    if again is None or _fingerprint(again) != _fingerprint(mod):
        raise _Uncacheable("the entry does not read back as the module")
    return payload


def _fingerprint(mod: Any) -> str:
    """A text of everything the entry keeps of ``mod`` (for the read-back check)."""
    from ..asm.encoding import encode
    e = _Encoder()
    parts = [[p.name, p.probe, e.enc(p.attach), p.prog_type, p.provider, p.section,
              encode(p.instructions).hex(),
              [[i.label, i.reference, list(i.source) if i.source else None]
               for i in p.instructions]] for p in mod.programs]
    parts.append([[n, _enc_decl(d)] for n, d in mod.unit.maps.items()])
    parts.append([mod.unit.drop_slots, mod.unit.rodata_size, e.enc(mod.layouts),
                  e.enc(mod.sites), mod.probe_names, mod.stack_maps, mod.strlen,
                  e.enc(getattr(mod, "strftime_fmts", []))])
    import json
    return json.dumps(parts, sort_keys=True)


def _decode(raw: bytes, key: str, check_deps: bool = True) -> Any:
    """The LoweredModule of an entry; None (or an exception) when it does not validate
    or a dependency changed."""
    from ..compiler.unit import Unit
    from .module import LoweredModule, LoweredProgram
    opened = S.open_entry(raw, _MAGIC, FORMAT, key, marshal.loads)
    if opened is None:
        return None
    doc, code = opened
    if check_deps:
        for path, digest in doc["deps"]:
            if _file_hash(path) != digest:
                return None
    rows = doc["sources"]
    if not S.SourceTable.valid(rows):
        return None
    unit = Unit()
    for name, d in doc["maps"]:
        decl = _dec_decl(d)
        unit.maps[name] = decl
        unit.map_names[id(decl)] = name
    unit.drop_slots = {str(k): int(v) for k, v in doc["drops"].items()}
    unit.rodata_size = int(doc["rodata_size"])
    programs = []
    for p in doc["programs"]:
        got = S.get_program(p, code, rows)
        if got is None:
            return None
        insns, btf = got                # EncodedInstructions: loaded as stored
        programs.append(LoweredProgram(str(p["name"]), int(p["probe"]), _dec(p["attach"]),
                                       str(p["prog_type"]), str(p["provider"]), insns,
                                       str(p["section"]), btf=btf))
    mod = LoweredModule(programs, unit, _dec(doc["layouts"]), _dec(doc["sites"]),
                        _dec(doc["probe_names"]), _dec(doc["stack_maps"]),
                        int(doc["strlen"]))
    mod.strftime_fmts = _dec(doc["strftime_fmts"])          # type: ignore[attr-defined]
    mod.cgroup_filters = []                                  # type: ignore[attr-defined]
    return mod
