"""A cache of compiled modules: a tool's second start skips the compiler entirely.

:func:`pybpf.dsl.load` (and so every tool's ``load_tool()``) looks a module up here
before compiling it; on a hit it builds the :class:`~pybpf.dsl.loader.ModuleSpec` from
the entry without importing the compiler, on a miss it compiles and stores the result.

**Key** (:func:`entry_key`): a BLAKE2b-256 over

* :data:`FORMAT` (the entry layout);
* :func:`pybpf_identity`: ``pybpf.__version__`` and the size and mtime of every source
  file the compiler's output depends on (``pybpf/dsl``, ``pybpf/compiler``,
  ``pybpf/asm``, ``pybpf/btf``, ``pybpf/tracefs.py``), so editing a development
  checkout invalidates too (a stat per file, no reading);
* :func:`kernel_identity`: ``uname`` release, version and machine, and the BTF of
  ``/sys/kernel/btf/vmlinux`` by its size and a hash of its first and last 4 KiB
  (contexts come from tracefs formats and BTF: both belong to the running kernel);
* :class:`ModuleInputs`: the text of every Python file whose functions are compiled
  (the program functions and the functions they call, transitively), and what the
  compiler reads from those files' globals: integers, integer and array types,
  ``const()`` declarations (type and default), map declarations (every attribute),
  ``Struct`` layouts, functions with their attach points (``retarget()`` at run time
  changes the key), pybpf's helpers by name. Other globals (strings, floats, objects)
  cannot be values in a program, so they do not count.

Load-time constants are not in the key: they live in the frozen ``.rodata`` map, whose
value is written when the module is loaded; the instructions only hold its layout
(offsets), which the entry keeps.

**Entry** (one file ``NAME.KEY.pbc``): a magic, the format version, the lengths and a
BLAKE2b-256 of the payload, then a small JSON document (programs with their attach points
by position, instruction metadata: labels, map references, source lines; maps by the
global that declares them; constants' offsets; ``print()`` sites; drop counter slots)
and the bytes: each program's instructions and its source-line BTF (blob, func_info,
line_info: loading a cached module builds no BTF; its instructions are loaded as
stored, the map fds patched in, and decoded only if something reads them:
:class:`pybpf._cache.EncodedInstructions`). Nothing is unpickled: a damaged, truncated, foreign or
older-format entry fails validation and is compiled again and replaced.

**Location**: ``$PYBPF_CACHE_DIR``, else ``$XDG_CACHE_HOME/pybpf``, else
``~/.cache/pybpf``. The directory is created with mode 0700 and used only when it
belongs to the effective user and nobody else may write to it; an entry only when it is
a regular file of that user that nobody else may write (a tool loads its programs as
root: an entry planted by another user would be code the kernel runs). Writes go to a
temporary file in the same directory, renamed over the entry (atomic: concurrent runs
at worst both compile and write the same bytes). ``PYBPF_NO_CACHE=1`` (or
``load(..., cache=False)``, ``pybpf run --no-cache``) turns it off. Not cached: modules
with USDT programs (their contexts come from the traced binary's notes).

The directory, the identities, entry framing and safe reading and writing are shared
with ``pybpf trace``'s cache through :mod:`pybpf._cache` (front ends never import each
other).
"""

from __future__ import annotations

import json
import os
import types as _pytypes
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .. import _cache as _store
from ..compiler.maps import MapDecl           # (pybpf.dsl, this package, imports these
from ..compiler.types import ArrayType, IntType         # declarations already)
from .types import Const
from .._cache import CACHE_DIR_ENV, NO_CACHE_ENV, cache_dir, enabled, kernel_identity
from .._cache import hash256 as _hash
from .._cache import safe_dir as _safe_dir

__all__ = ["FORMAT", "cache_dir", "enabled", "kernel_identity", "pybpf_identity",
           "ModuleInputs", "entry_key", "lookup", "store", "clear", "STATS",
           "NO_CACHE_ENV", "CACHE_DIR_ENV"]

#: the layout of an entry; bump it whenever what is stored or how it is read changes
FORMAT = 2
#: what happened in this process: ``hits``, ``misses``, ``stores``, ``rejected``
#: (entries found but refused: damaged, foreign, unsafe), ``uncacheable``
STATS: Dict[str, int] = {"hits": 0, "misses": 0, "stores": 0, "rejected": 0,
                         "uncacheable": 0}

_MAGIC = b"PYBPFMOD"
_KEEP = 8                                   # entries kept per module name
#: the parts of pybpf whose sources decide what the compiler emits
_COMPILER_PARTS = ("dsl", "compiler", "asm", "btf", "tracefs.py")
_PRINT_MAP, _DROPS_MAP, _DEFAULTS_MAP = "__pybpf_print", "__pybpf_drops", "__pybpf_default"


# -- the key -------------------------------------------------------------------------------

_memo: Dict[str, Any] = _store.MEMO


def pybpf_identity() -> str:
    """``pybpf.__version__`` and a hash of the path, size and mtime of each source file
    of the compiler and what it reads (one ``stat`` per file)."""
    return _store.pybpf_identity(_COMPILER_PARTS, "pybpf")


class ModuleInputs:
    """What a module's compilation reads besides pybpf and the kernel: ``fns`` (the
    program functions), ``globals`` (the globals dicts of every compiled function, in
    first-seen order), ``files`` (their source files) and ``digest`` (a hash of the
    files' text and of the compile-relevant globals). ``cacheable`` is False (with
    ``why``) for what the cache does not handle."""

    def __init__(self, fns: Sequence[Any]) -> None:
        from .attach import kinds_of
        self.fns = list(fns)
        self.globals: List[Dict[str, Any]] = []
        self.files: List[str] = []
        self.cacheable, self.why = True, ""
        h = _hash()
        seen: set = set()
        todo = list(self.fns)
        while todo:
            fn = todo.pop(0)
            if id(fn) in seen:
                continue
            seen.add(id(fn))
            for kind in kinds_of(fn):
                if kind.decorator == "usdt":
                    self.cacheable, self.why = False, "USDT programs are not cached"
            g = fn.__globals__
            if not any(g is x for x in self.globals):
                self.globals.append(g)
            file = fn.__code__.co_filename
            if file not in self.files:
                self.files.append(file)
            for name in _names(fn.__code__):
                v = g.get(name)
                if isinstance(v, _pytypes.FunctionType) and not _own(v):
                    todo.append(v)
        for file in self.files:
            try:
                with open(file, "rb") as fh:
                    h.update(f"{file}\0".encode() + _hash(fh.read()).digest())
            except OSError:
                self.cacheable, self.why = False, f"cannot read {file}"
        memo: Dict[int, str] = {}
        for i, g in enumerate(self.globals):
            h.update(f"globals {i}\0".encode())
            for name in sorted(g):
                d = _describe(g[name], memo)
                if d is not None:
                    h.update(f"{name}={d}\0".encode())
        self.digest = h.hexdigest()

    def find(self, obj: Any) -> Optional[Tuple[int, str]]:
        """(globals index, name) of a global bound to ``obj`` (the first), or None."""
        for i, g in enumerate(self.globals):
            for name, v in g.items():
                if v is obj:
                    return i, name
        return None


def _names(code: Any) -> List[str]:
    """Global (and attribute) names a code object and its nested code use."""
    out = list(code.co_names)
    for c in code.co_consts:
        if isinstance(c, _pytypes.CodeType):
            out += _names(c)
    return out


def _own(fn: Any) -> bool:
    return (getattr(fn, "__module__", None) or "").startswith("pybpf.")


def _describe(v: Any, memo: Dict[int, str]) -> Optional[str]:
    """A stable text for a global the compiler may read, or None for one it cannot."""
    if type(v) in (int, bool):
        return f"{type(v).__name__}:{v}"
    if isinstance(v, (IntType, ArrayType)):
        return f"type:{v!r}"
    if isinstance(v, Const):
        return f"const:{v.type!r}:{v.value}"
    key = id(v)
    if key in memo:
        return memo[key]
    if isinstance(v, MapDecl):
        memo[key] = "map(recursive)"
        parts = [type(v).__name__, v.kind]
        for name in sorted(vars(v)):
            parts.append(f"{name}={_describe_field(getattr(v, name), memo)}")
        memo[key] = "map:" + ",".join(parts)
    elif isinstance(v, type) and hasattr(v, "__pybpf_layout__"):
        memo[key] = f"struct:{v.__qualname__}(recursive)"
        fields = ",".join(f"{f.name}:{_describe_field(f.type, memo)}@{f.offset}"
                          for f in v.__pybpf_layout__.fields)
        memo[key] = f"struct:{v.__qualname__}{{{fields}}}"
    elif isinstance(v, _pytypes.FunctionType):
        if _own(v):
            memo[key] = f"pybpf:{v.__module__}.{v.__qualname__}"
        else:
            from .attach import kinds_of
            kinds = ";".join(f"{k!r}{sorted((n, repr(o)) for n, o in k.options.items())}"
                             for k in kinds_of(v))
            memo[key] = f"fn:{v.__qualname__}[{kinds}]"  # the file's text is hashed
    elif callable(v) and getattr(v, "__pybpf_helper__", None):
        memo[key] = f"helper:{v.__pybpf_helper__}"
    else:
        return None
    return memo[key]


def _describe_field(v: Any, memo: Dict[int, str]) -> str:
    d = _describe(v, memo)
    return d if d is not None else f"{type(v).__name__}:{v!r}"


def entry_key(inputs: ModuleInputs, *, kernel: Optional[Dict[str, str]] = None,
              pybpf: Optional[str] = None) -> str:
    """The key of a module's entry (hex BLAKE2b-256); ``kernel`` and ``pybpf`` replace
    :func:`kernel_identity` and :func:`pybpf_identity` (tests)."""
    kernel = kernel if kernel is not None else kernel_identity()
    text = json.dumps([FORMAT, pybpf if pybpf is not None else pybpf_identity(),
                       sorted(kernel.items()), inputs.digest])
    return _hash(text.encode()).hexdigest()


# -- the directory -------------------------------------------------------------------------

def _entry_path(directory: str, name: str, key: str) -> str:
    safe = "".join(c if c.isalnum() or c in "_-" else "_" for c in name)[:64] or "module"
    return os.path.join(directory, f"{safe}.{key[:40]}.pbc")


def _read_file(path: str) -> Optional[bytes]:
    """The entry's bytes when it is a regular file of this user nobody else may write."""
    return _store.read_entry(path, STATS)


# -- reading and writing entries -----------------------------------------------------------

def lookup(name: str, inputs: ModuleInputs, key: str,
           directory: Optional[str] = None, module_name: Optional[str] = None) -> Any:
    """The :class:`~pybpf.dsl.loader.ModuleSpec` stored under ``key`` (entry file
    ``name``), called ``module_name`` (default: as when stored), or None (no entry, or
    one that fails validation: it is then ignored and later replaced)."""
    directory = directory or cache_dir()
    if not _safe_dir(directory, create=False):
        STATS["misses"] += 1
        return None
    raw = _read_file(_entry_path(directory, name, key))
    if raw is None:
        STATS["misses"] += 1
        return None
    try:
        spec = _decode(raw, key, inputs, module_name)
    except Exception:                   # damaged or foreign: never trusted, rebuilt
        spec = None
    if spec is None:
        STATS["rejected"] += 1
        STATS["misses"] += 1
        return None
    STATS["hits"] += 1
    return spec


def store(name: str, inputs: ModuleInputs, key: str, spec: Any,
          directory: Optional[str] = None) -> Optional[str]:
    """Write ``spec`` under ``key`` (atomically); the entry's path, or None when the
    module cannot be cached or the directory is not usable. Never raises for I/O."""
    directory = directory or cache_dir()
    try:
        payload = _encode(key, inputs, spec)
    except _Uncacheable:
        STATS["uncacheable"] += 1
        return None
    if not _safe_dir(directory, create=True):
        return None
    path = _entry_path(directory, name, key)
    if not _store.write_entry(path, payload):
        return None
    STATS["stores"] += 1
    _prune(directory, os.path.basename(path).split(".", 1)[0])
    return path


def _prune(directory: str, stem: str) -> None:
    """Keep the :data:`_KEEP` newest entries of one module name."""
    _store.prune(directory, stem, ".pbc", _KEEP)


_Uncacheable = _store.Uncacheable


def _program_slots(fns: Sequence[Any]) -> Dict[str, Tuple[int, int]]:
    """Program name -> (function index, attach point index), as compile_module names
    them."""
    from .attach import kinds_of, program_name
    out: Dict[str, Tuple[int, int]] = {}
    for fi, fn in enumerate(fns):
        kinds = kinds_of(fn)
        for ki, kind in enumerate(kinds):
            out[program_name(fn.__name__, kind, len(kinds) > 1)] = (fi, ki)
    return out


def _encode(key: str, inputs: ModuleInputs, spec: Any) -> bytes:
    if not inputs.cacheable:
        raise _Uncacheable(inputs.why)
    unit = spec.unit
    if not unit.rodata:
        raise _Uncacheable("constants compiled in")
    slots = _program_slots(inputs.fns)
    sources = _store.SourceTable()
    code = bytearray()
    programs = []
    for pname, prog in spec.programs.items():
        if pname not in slots:
            raise _Uncacheable(f"program {pname} has no function")
        entry = {"name": pname, "at": list(slots[pname])}
        entry.update(_store.put_program(prog.instructions, pname[:15], code, sources))
        programs.append(entry)
    maps = []
    memo: Dict[int, str] = {}
    for mname, decl in unit.maps.items():
        where = inputs.find(decl)
        if where is not None:
            maps.append([mname, "global", where[0], where[1]])
            continue
        internal = _internal_args(mname, decl)
        if internal is None or _describe(_internal_map(mname, internal), memo) != \
                _describe(decl, memo):
            raise _Uncacheable(f"map {mname} is not a global")
        maps.append([mname, "internal", internal])
    consts = []
    for cname, (c, off) in unit.consts.items():
        at = next(((i, cname) for i, g in enumerate(inputs.globals) if g.get(cname) is c),
                  None)
        if at is None:
            raise _Uncacheable(f"constant {cname} is not a global")
        consts.append([cname, at[0], off])
    prints = [[p.id, [list(x) if isinstance(x, tuple) else x for x in p.parts], p.size,
               sources.index(p.loc), p.end] for p in unit.prints]
    doc = {"format": FORMAT, "key": key, "name": spec.name, "programs": programs,
           "sources": sources.rows, "maps": maps, "consts": consts, "rodata": unit.rodata_size,
           "prints": prints, "drops": unit.drop_slots}
    text = json.dumps(doc, separators=(",", ":")).encode()
    return _store.frame(_MAGIC, FORMAT, text, bytes(code))


def _internal_args(name: str, decl: Any) -> Optional[int]:
    if name == _PRINT_MAP:
        return int(decl.max_entries)
    if name == _DROPS_MAP:
        return int(decl.max_entries)
    if name == _DEFAULTS_MAP:
        return int(decl.value.count)
    return None


def _internal_map(name: str, arg: int) -> Any:
    """The declaration of one of the maps the compiler adds itself."""
    from ..compiler.maps import PerCPUArrayMap, RingBuf
    from ..compiler.types import u8, u64
    if name == _PRINT_MAP:
        return RingBuf(u8, size=arg, name=_PRINT_MAP)
    if name == _DROPS_MAP:
        return PerCPUArrayMap(u64, arg, name=_DROPS_MAP)
    if name == _DEFAULTS_MAP:
        return PerCPUArrayMap(u8[arg], 1, name=_DEFAULTS_MAP)
    raise ValueError(name)


def _decode(raw: bytes, key: str, inputs: ModuleInputs, module_name: Optional[str]) -> Any:
    """The ModuleSpec of an entry; None (or an exception) when it does not validate."""
    from ..compiler.unit import PrintSite, Unit
    from . import CompiledProgram
    from .loader import CompiledModuleProgram, ModuleSpec
    opened = _store.open_entry(raw, _MAGIC, FORMAT, key)
    if opened is None:
        return None
    doc, code = opened
    rows = doc["sources"]               # locations made when instructions are decoded
    if not _store.SourceTable.valid(rows):
        return None
    slots = _program_slots(inputs.fns)
    if sorted(slots) != sorted(p["name"] for p in doc["programs"]):
        return None
    unit = Unit(rodata=True)
    for entry in doc["maps"]:
        mname, how = entry[0], entry[1]
        if how == "global":
            decl = inputs.globals[entry[2]].get(entry[3])
            if not isinstance(decl, MapDecl):
                return None
        elif how == "internal":
            decl = _internal_map(mname, int(entry[2]))
        else:
            return None
        unit.maps[mname] = decl
        unit.map_names[id(decl)] = mname
    for cname, gi, off in doc["consts"]:
        c = inputs.globals[gi].get(cname)
        if not isinstance(c, Const):
            return None
        unit.consts[cname] = (c, int(off))
    unit.rodata_size = int(doc["rodata"])
    sources = _store.SourceTable.locations(rows) if doc["prints"] else []
    for pid, parts, size, s, end in doc["prints"]:
        unit.prints.append(PrintSite(pid, tuple(tuple(x) if isinstance(x, list) else x
                                                for x in parts), size,
                                     sources[s] if s is not None else None, end))
    unit.drop_slots = {str(k): int(v) for k, v in doc["drops"].items()}
    programs: Dict[str, Any] = {}
    for p in doc["programs"]:
        got = _store.get_program(p, code, rows)
        if got is None:
            return None
        insns, btf = got
        fi, ki = p["at"]
        if slots.get(p["name"]) != (fi, ki):
            return None
        from .attach import kinds_of
        kind = kinds_of(inputs.fns[fi])[ki]
        programs[p["name"]] = CompiledModuleProgram(
            p["name"], kind, CompiledProgram(p["name"], [], insns), btf)
    spec = ModuleSpec(module_name or str(doc["name"]), programs, unit)
    spec.cached = True
    return spec


def clear(directory: Optional[str] = None) -> int:
    """Remove every entry (``*.pbc``) from the cache directory; returns how many."""
    directory = directory or cache_dir()
    n = 0
    try:
        for e in os.scandir(directory):
            if e.name.endswith(".pbc"):
                os.unlink(e.path)
                n += 1
    except OSError:
        pass
    return n

