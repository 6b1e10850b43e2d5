"""Compiling a whole module of programs and maps, loading it, attaching it, reading it.

::

    spec = compile_module("opensnoop_bpf.py")      # a ModuleSpec: no kernel objects yet
    with spec.load(consts={"TARGET_PID": 1234}) as mod:   # maps, programs, links
        mod.on("events", lambda e: print(e.pid, e.path))
        mod.run(duration=5)                         # poll until Ctrl-C or 5 s
        print(dict(mod["counts"].items()))

:func:`load` does both steps. The module's ``@tracepoint``/``@kprobe``/... functions are
its programs (in source order); the maps are the module-level declarations its programs
use; :func:`~pybpf.dsl.types.const` globals become a frozen ``.rodata`` array map whose
value is written at load (``consts=``), so the verifier prunes what they make dead.
``print()`` in a program sends a record through a ring buffer; :class:`LoadedModule`
formats it in user space with Python's own ``format()`` and writes it to
``sys.stdout`` (or ``print_to=``).
"""

from __future__ import annotations

import os
import struct
import sys
import time
import types as _pytypes
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, TextIO, Tuple, Union

from ..compiler.errors import CompileError
from ..compiler.maps import MapDecl, PerfEventArray, RingBuf
from ..compiler.unit import DROPS_MAP, PRINT_MAP, RODATA_MAP, PrintSite, Unit
from .attach import ProgramKind, kind_of, kinds_of, program_name

__all__ = ["ModuleSpec", "CompiledModuleProgram", "LoadedModule", "compile_module", "load",
           "format_print"]

_BPF_F_RDONLY_PROG = 1 << 7


class CompiledModuleProgram:
    """One compiled program of a module: ``name``, ``kind``, linked ``instructions``;
    ``btf``: its source-line BTF built already, ``(blob, func_info, line_info)`` (a
    cached program), else None (built at load)."""

    def __init__(self, name: str, kind: ProgramKind, program: Any,
                 btf: Optional[Tuple[bytes, bytes, bytes]] = None) -> None:
        self.name = name
        self.kind = kind
        self.program = program          # a pybpf.dsl.CompiledProgram
        self.btf = btf

    @property
    def instructions(self) -> List[Any]:
        """The linked instructions."""
        return self.program.instructions

    def spec(self) -> Any:
        """The :class:`pybpf.program.ProgramSpec` to load (BTF targets resolved)."""
        from ..program import ProgramSpec
        from ..syscall.bpf import ProgType
        k = self.kind
        if k.tracing:
            from ..link.tracing import tracing_spec
            spec = tracing_spec(k.decorator, k.target, self.instructions, name=self.name[:15])
        else:
            spec = ProgramSpec(ProgType[k.type.upper()], self.instructions,
                               name=self.name[:15])
        if self.btf is not None and spec.btf is None:
            spec.prebuilt_btf = self.btf
        return spec


class ModuleSpec:
    """A compiled module: ``programs`` (by name), map declarations (``maps``), the
    ``.rodata`` layout of its constants and its ``print()`` sites. No kernel object
    exists until :meth:`load`."""

    def __init__(self, name: str, programs: Dict[str, CompiledModuleProgram], unit: Unit) -> None:
        self.name = name
        self.programs = programs
        self.unit = unit
        #: True when the programs came from the cache of compiled modules
        #: (:mod:`pybpf.dsl.cache`): their instructions carry no compiler details
        #: (``program.functions`` is empty)
        self.cached = False

    @property
    def maps(self) -> Dict[str, MapDecl]:
        """The map declarations the programs use, by map name."""
        return dict(self.unit.maps)

    @property
    def consts(self) -> Dict[str, int]:
        """The load-time constants the programs read, with their default values."""
        return {n: c.value for n, (c, _) in self.unit.consts.items()}

    def rodata(self, values: Optional[Mapping[str, int]] = None) -> bytes:
        """The ``.rodata`` value: every constant at its offset (``values`` override the
        defaults; an unknown name is a KeyError, a value outside the constant's type an
        :class:`~pybpf.syscall.errors.OutOfRangeError`)."""
        values = dict(values or {})
        unknown = set(values) - set(self.unit.consts)
        if unknown:
            known = ", ".join(sorted(self.unit.consts)) or "none"
            raise KeyError(f"no load-time constant {', '.join(sorted(unknown))} in "
                           f"{self.name} (constants: {known})")
        buf = bytearray(max(self.unit.rodata_size, 1))
        for name, (c, off) in self.unit.consts.items():
            v = c.type.check(values.get(name, c.value), f"load-time constant {name}")
            buf[off:off + c.type.bits // 8] = (v & ((1 << c.type.bits) - 1)).to_bytes(
                c.type.bits // 8, "little")
        return bytes(buf)

    def disasm(self) -> str:
        """Every program's instructions under its Python lines."""
        return "".join(f"; {p.kind!r}\n{p.program.disasm()}\n" for p in self.programs.values())

    def write_object(self, path: Optional[str] = None,
                     consts: Optional[Mapping[str, int]] = None) -> bytes:
        """The module as a libbpf-style BPF ELF object: one section per program (its
        ``SEC()`` name), BTF-defined maps, the constants in ``.rodata``, line info from
        the Python source. ``bpftool prog loadall`` and ``llvm-objdump -d -l`` read it."""
        from ..object import ObjectProgram, Variable, build_object
        programs = [ObjectProgram(p.kind.section, p.name, p.instructions)
                    for p in self.programs.values()]
        maps = {name: decl.spec(name) for name, decl in self.unit.maps.items()}
        data: Dict[str, Any] = {}
        variables: Dict[str, Any] = {}
        if self.unit.consts:
            data[RODATA_MAP] = self.rodata(consts)
            variables = {n: Variable(RODATA_MAP, off, c.type.bits // 8)
                         for n, (c, off) in self.unit.consts.items()}
        return build_object(programs, maps, data, variables=variables or None, path=path)

    def load(self, *, consts: Optional[Mapping[str, int]] = None,
             programs: Optional[Iterable[str]] = None, attach: bool = True,
             print_to: Optional[TextIO] = None,
             verifier_log: Optional[str] = None) -> "LoadedModule":
        """Create the maps, load the programs (all, or those named in ``programs``) and
        attach them (``attach=False``: leave that to the caller). Everything created is
        released if a step fails. ``verifier_log``: a file that receives the whole
        verifier log of a refused program (the exception keeps its first and last
        lines)."""
        return LoadedModule(self, consts=consts, programs=programs, attach=attach,
                            print_to=print_to, verifier_log=verifier_log)


def _module_functions(source: Any) -> tuple:
    if isinstance(source, (str, os.PathLike)):
        from . import functions_in_file
        path = os.fspath(source)
        fns = functions_in_file(path, all_programs=True)
        return os.path.splitext(os.path.basename(path))[0], fns
    if isinstance(source, _pytypes.ModuleType):
        fns = [v for v in vars(source).values()
               if isinstance(v, _pytypes.FunctionType) and kind_of(v) is not None
               and v.__module__ == source.__name__]
        fns.sort(key=lambda f: f.__code__.co_firstlineno)
        return source.__name__, fns
    fns = [f for f in source if kind_of(f) is not None]
    return "programs", fns


def compile_module(source: Any, *, rodata: bool = True) -> ModuleSpec:
    """Compile the decorated programs of ``source``: a Python file path, a module, or a
    list of functions. Raises :class:`CompileError` (with file:line) for unsupported
    Python, and at the decorator for an attach point this kernel does not have."""
    name, fns = _module_functions(source)
    return _compile(name, fns, rodata)


def _compile(name: str, fns: List[Callable[..., Any]], rodata: bool = True) -> ModuleSpec:
    from .compiler.pipeline import compile_functions
    if not fns:
        raise CompileError(f"{name}: no program (decorate functions with @tracepoint, "
                           "@kprobe, @uprobe, ...)")
    unit = Unit(rodata=rodata)
    programs: Dict[str, CompiledModuleProgram] = {}
    from . import CompiledProgram
    for fn in fns:
        kinds = kinds_of(fn)
        for kind in kinds:
            name = program_name(fn.__name__, kind, len(kinds) > 1)
            if name in programs:
                raise CompileError(f"two programs are called {name!r}: rename one")
            _check_attach_point(fn, kind)
            functions, instructions = compile_functions(fn, unit, kind)
            if name != fn.__name__:
                instructions = _renamed(instructions, fn.__name__, name)
            programs[name] = CompiledModuleProgram(
                name, kind, CompiledProgram(name, functions, instructions))
    return ModuleSpec(name, programs, unit)


def _check_attach_point(fn: Callable[..., Any], kind: ProgramKind) -> None:
    """A missing attach point (or a malformed name) is a :class:`CompileError` at the
    decorator that names it; one set at run time (``retarget``) keeps its own error."""
    from .userfile import attach_error
    try:
        kind.check_target()
    except (LookupError, ValueError) as exc:
        located = attach_error(fn, kind, exc)
        if located is None:
            raise
        raise located from exc


def _renamed(instructions: List[Any], old: str, new: str) -> List[Any]:
    """The entry's label (and jumps to it) renamed: the ELF writer names the program
    after its first label."""
    out = []
    for i in instructions:
        if i.label == old:
            i = i.replace(label=new)
        if i.reference == old and i.opcode != 0x18:
            i = i.replace(reference=new)
        out.append(i)
    return out


def load(source: Any, *, consts: Optional[Mapping[str, int]] = None,
         programs: Optional[Iterable[str]] = None, attach: bool = True,
         print_to: Optional[TextIO] = None,
         verifier_log: Optional[str] = None,
         cache: Optional[bool] = None) -> "LoadedModule":
    """:func:`compile_module` then :meth:`ModuleSpec.load`, through the cache of
    compiled modules (:mod:`pybpf.dsl.cache`): a module compiled before, unchanged, on
    the same kernel and pybpf, is loaded without compiling (nor importing the
    compiler). ``cache``: False bypasses it (default: on unless ``$PYBPF_NO_CACHE``).
    A cached module that fails to load is compiled again and loaded from that."""
    kw: Dict[str, Any] = dict(consts=consts, programs=programs, attach=attach,
                              print_to=print_to, verifier_log=verifier_log)
    name, fns = _module_functions(source)
    from . import cache as _cache
    if not fns or not _cache.enabled(cache):
        return _compile(name, fns).load(**kw)
    inputs = _cache.ModuleInputs(fns)
    key = _cache.entry_key(inputs) if inputs.cacheable else ""
    label = os.path.splitext(os.path.basename(fns[0].__code__.co_filename))[0]
    spec = _cache.lookup(label, inputs, key, module_name=name) if key else None
    if spec is not None:
        try:
            return spec.load(**kw)
        except Exception:
            pass                        # compiled afresh below: its load says what is wrong
    spec = _compile(name, fns)
    mod = spec.load(**kw)
    if key:                             # stored once it loaded: entries are known good
        _cache.store(label, inputs, key, spec)
    return mod


def format_print(site: PrintSite, record: Union[bytes, memoryview]) -> str:
    """The text of one ``print()`` record (without its ``end``)."""
    out: List[str] = []
    for part in site.parts:
        if isinstance(part, str):
            out.append(part)
            continue
        kind, off, size, signed, spec, conv = part
        if kind == "int":
            value: Any = struct.unpack_from("<q" if signed else "<Q", record, off)[0]
        else:
            raw = bytes(record[off:off + size])
            cut = raw.find(b"\0")
            value = (raw if cut < 0 else raw[:cut]).decode("utf-8", "replace")
        if conv is not None:
            value = {ord("r"): repr, ord("s"): str, ord("a"): ascii}[conv](value)
        out.append(format(value, spec))
    return "".join(out)


class LoadedModule:
    """A loaded module: live ``maps`` and ``programs`` by name, its ``links``, and event
    readers. Close it (or use ``with``) to detach and release everything; the links are
    also released at exit and on SIGINT/SIGTERM."""

    def __init__(self, spec: ModuleSpec, *, consts: Optional[Mapping[str, int]] = None,
                 programs: Optional[Iterable[str]] = None, attach: bool = True,
                 print_to: Optional[TextIO] = None,
                 verifier_log: Optional[str] = None) -> None:
        self.spec = spec
        self.maps: Dict[str, Any] = {}
        self.programs: Dict[str, Any] = {}
        self.links: Dict[str, Any] = {}
        self.readers: Dict[str, Any] = {}
        self._poller: Any = None
        self._print_to = print_to
        self._closed = False
        self._unclaimed: Dict[str, Any] = {}     # perf buffers opened before on()
        try:
            self._create_maps(consts)
            self._open_perf_buffers()
            wanted = list(programs) if programs is not None else list(spec.programs)
            for name in wanted:
                if name not in spec.programs:
                    raise KeyError(f"no program {name!r} in {spec.name} (programs: "
                                   f"{', '.join(spec.programs)})")
                self.programs[name] = spec.programs[name].spec().load(maps=self.maps,
                                                                log_file=verifier_log)
            if PRINT_MAP in self.maps:
                self._add_reader(PRINT_MAP, self._on_print, None)
            if attach:
                for name, prog in self.programs.items():
                    link = spec.programs[name].kind.attach(prog)
                    if link is not None:
                        self.links[name] = link
        except BaseException:
            self.close()
            raise

    def _create_maps(self, consts: Optional[Mapping[str, int]]) -> None:
        from ..maps.spec import MapSpec
        from ..syscall.bpf import MapType
        for name, decl in self.spec.unit.maps.items():
            self.maps[name] = decl.spec(name).create()
        if self.spec.unit.consts or consts:
            value = self.spec.rodata(consts)
            ro = MapSpec(MapType.ARRAY, 4, len(value), 1, flags=_BPF_F_RDONLY_PROG,
                         name=RODATA_MAP).create()
            self.maps[RODATA_MAP] = ro
            ro[0] = value
            ro.freeze()

    def _open_perf_buffers(self) -> None:
        """A reader on every perf event array, opened before any program runs: a record
        sent before the tool calls :meth:`on` then waits in its CPU's buffer (or is
        counted lost when the buffer fills) rather than failing, uncounted, for want of
        a perf event in the array."""
        for name, decl in self.spec.unit.maps.items():
            if isinstance(decl, PerfEventArray):     # the reader's module only when needed
                from ..events import PerfBufReader
                self._unclaimed[name] = PerfBufReader(self.maps[name])

    # -- maps and events ----------------------------------------------------------------
    def __getitem__(self, name: str) -> Any:
        """The live map called ``name``."""
        try:
            return self.maps[name]
        except KeyError:
            raise KeyError(f"no map {name!r} in {self.spec.name} (maps: "
                           f"{', '.join(self.maps) or 'none'})") from None

    def _add_reader(self, name: str, callback: Callable[[Any], Any], record: Any,
                    batch: bool = False) -> Any:
        decl = self.spec.unit.maps[name]
        hand = {"batch_callback": callback} if batch else {"callback": callback}
        if isinstance(decl, RingBuf):
            from ..events import RingBufReader
            reader = RingBufReader(self.maps[name], record=record,
                                   wakeup="adaptive" if decl.wakeup == "adaptive" else "per_event",
                                   **hand)
        elif isinstance(decl, PerfEventArray):
            from ..events import PerfBufReader
            reader = self._unclaimed.pop(name, None)
            if reader is None:
                reader = PerfBufReader(self.maps[name], record=record, **hand)
            else:
                reader.handle(record=record, **hand)
        else:
            raise TypeError(f"map {name!r} is a {type(decl).__name__}: only ring buffers "
                            "and perf event arrays carry events")
        self.readers[name] = reader
        if self._poller is not None:
            self._poller.add(reader)
        return reader

    def on(self, name: str, callback: Callable[[Any], Any], *, decode: bool = True,
           batch: bool = False, rows: Any = None) -> Any:
        """Call ``callback(event)`` for each record of ring buffer / perf event array
        ``name``: an instance of its Struct (``decode=False``: ``bytes``); with
        ``batch=True``, ``callback(events)`` once per batch with a list.

        ``rows`` is the fast path for tools that print or count every event:
        ``callback(rows)`` once per batch with a list of plain tuples, decoded a batch
        at a time by one ``struct`` unpack over the ring (no Python code per record).
        ``rows=True`` gives every field of the event's Struct, in declaration order;
        a sequence of field names gives those only (still in declaration order), and a
        tuple of adjacent names in it gives their bytes as one ``bytes`` value (a
        cheap key to memoise formatted text on; ``Event.span_format(names)`` unpacks
        it). Integers are ``int``; ``char[N]`` fields are the N raw bytes, NUL padding
        included (``.partition(b"\\0")[0]`` cuts them); other arrays and nested structs
        are raw bytes. See :func:`pybpf.events.records.row_format`. Returns the
        reader."""
        if name not in self.spec.unit.maps:
            raise KeyError(f"no event map {name!r} in {self.spec.name}")
        decl = self.spec.unit.maps[name]
        event = getattr(decl, "event", None)
        if rows is not None and rows is not False:
            if event is None:
                raise TypeError(f"map {name!r} declares no event Struct: rows= needs one")
            items = None if rows is True else list(rows)
            return self._add_reader(name, callback, struct.Struct(event.row_format(items)),
                                    True)
        record = event.from_bytes if (decode and event is not None) else None
        return self._add_reader(name, callback, record, batch)

    def lost(self, name: str) -> int:
        """Records of ring buffer / perf event array ``name`` that never reached user
        space: refused by a full ring (counted by the program, all CPUs), or reported
        lost by the kernel for a perf buffer (since its reader started)."""
        decl = self.spec.unit.maps.get(name)
        if isinstance(decl, PerfEventArray):
            reader = self.readers.get(name)
            return int(reader.lost) if reader is not None else 0
        slot = self.spec.unit.drop_slots.get(name)
        if slot is None or DROPS_MAP not in self.maps:
            return 0
        return sum(self.maps[DROPS_MAP][slot])

    def _on_print(self, raw: Any) -> None:
        site_id = struct.unpack_from("<I", raw, 0)[0]
        site = self.spec.unit.prints[site_id]
        out = self._print_to or sys.stdout
        out.write(format_print(site, raw) + site.end)

    def poll(self, timeout: Optional[float] = None) -> int:
        """Wait up to ``timeout`` seconds for events and hand them to the callbacks;
        returns how many were handled."""
        from ..events import Poller
        if self._poller is None:
            self._poller = Poller(self.readers.values())
        return self._poller.poll(timeout)

    def run(self, duration: Optional[float] = None, *, interval: Optional[float] = None,
            on_interval: Optional[Callable[[], Any]] = None,
            until: Optional[Callable[[], bool]] = None, signals: bool = True) -> None:
        """Poll events until Ctrl-C/SIGTERM, ``duration`` seconds or ``until()``; call
        ``on_interval()`` every ``interval`` seconds (summaries). While it runs (in the
        main thread), SIGINT and SIGTERM only set a flag, so a batch of records being
        handed to the callbacks is never cut in half; the loop then ends, the records
        still in the buffers are handed over, and the module stays loaded until
        :meth:`close`. A second signal ends the run at once, even inside a callback
        (``KeyboardInterrupt`` there, caught here). A signal ignored when the run starts
        stays ignored. ``signals=False`` leaves both signals to the caller (which then
        ends the run through ``until``)."""
        import threading
        try:                                    # the C module, as pybpf.tooling and
            import _signal as signal            # pybpf.link.base use it
        except ImportError:                     # pragma: no cover
            import signal                       # type: ignore[no-redef]
        stop: List[int] = []
        saved: Dict[int, Any] = {}

        def request(signum: int, frame: Any) -> None:
            stop.append(signum)
            if len(stop) > 1:
                raise KeyboardInterrupt

        if signals and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                if signal.getsignal(sig) in (signal.SIG_IGN, None):
                    continue                                   # ignored stays ignored
                try:
                    saved[sig] = signal.signal(sig, request)
                except (ValueError, OSError):                  # pragma: no cover
                    pass
        start = time.monotonic()
        next_tick = start + interval if interval else None
        try:
            while not stop:
                now = time.monotonic()
                if duration is not None and now - start >= duration:
                    break
                if until is not None and until():
                    break
                waits = [0.1]
                if duration is not None:
                    waits.append(start + duration - now)
                if next_tick is not None:
                    waits.append(next_tick - now)
                if self.readers:
                    self.poll(max(0.0, min(waits)))
                else:
                    time.sleep(max(0.0, min(waits)))
                if next_tick is not None and time.monotonic() >= next_tick and not stop:
                    if on_interval is not None:
                        on_interval()
                    next_tick += interval                      # type: ignore[operator]
            if self.readers:
                self.poll(0)                                   # the last records
        except KeyboardInterrupt:
            pass                                               # SIGINT before the handlers
        finally:
            for sig, handler in saved.items():
                signal.signal(sig, handler)

    # -- life ---------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._closed

    def close(self) -> None:
        """Detach and release every link, reader, program and map (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for group in (self.links, self.readers, self._unclaimed, self.programs, self.maps):
            for obj in list(group.values()):
                try:
                    obj.close()
                except Exception:                              # pragma: no cover
                    pass
            group.clear()
        if self._poller is not None:
            try:
                self._poller.close()
            except Exception:                                  # pragma: no cover
                pass
            self._poller = None

    def __enter__(self) -> "LoadedModule":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:                                      # pragma: no cover
            pass

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self.programs)} programs, " \
            f"{len(self.maps)} maps, {len(self.links)} links"
        return f"<LoadedModule {self.spec.name}: {state}>"
