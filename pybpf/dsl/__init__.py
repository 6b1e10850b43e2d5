"""pybpf.dsl: BPF programs written as restricted Python functions, compiled to BPF.

::

    from pybpf.dsl import HashMap, load, pid, tracepoint, u32, u64

    counts = HashMap(u32, u64)

    @tracepoint("syscalls:sys_enter_openat")
    def count(args):
        counts[pid()] += 1

    with load([count]) as mod:          # compile, load, attach
        mod.run(duration=5)
        print(dict(mod["counts"].items()))

What a module declares: :class:`Struct` classes (event and key layouts), maps
(:mod:`pybpf.dsl.maps`), :func:`const` load-time constants, and program functions
decorated with their attach point (:mod:`pybpf.dsl.attach`), whose context parameter
is typed from it (:mod:`pybpf.compiler.context`). :func:`compile_module` gives a
:class:`~pybpf.dsl.loader.ModuleSpec`; :func:`load` a running
:class:`~pybpf.dsl.loader.LoadedModule`.

The language: fixed-width integer locals with C semantics (:mod:`pybpf.dsl.types`),
arithmetic, comparisons, ``and``/``or``/``not``, ``if``/``elif``/``else``, ``a if c
else b``, ``for i in range(N)`` (unrolled up to 8 iterations, else a bounded loop),
``break``/``continue``/``return``, calls of other Python functions (bpf-to-bpf calls),
struct and array locals and fields (``e.comm = comm()``), kernel structs through BTF
(``current_task().real_parent.tgid``), map operations (``m[k] += 1``, ``m.get(k)``
with compile-time None checks), event output, ``print()`` with f-strings, string tests,
packet headers (``ctx.load(Header, off)``) and the helpers of :mod:`pybpf.dsl.helpers`.
Anything else raises :class:`CompileError` at compile time with ``file:line:col`` and a
hint; so do a syntax error or an exception in a file's top level, and an attach point
this kernel does not have (at its decorator; :mod:`pybpf.dsl.userfile`). :func:`compile_function` compiles one function alone (constants compiled in).
"""

from __future__ import annotations

import os
import types as _pytypes
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, TypeVar

from ..compiler.errors import CompileError
from .attach import (
    ProgramKind, fentry, fexit, kprobe, kretprobe, perf_event, raw_tracepoint, retarget,
    socket_filter, tc, tp_btf, tracepoint, uprobe, uretprobe, usdt, xdp,
)
from .helpers import (
    boot_ns, cgroup_id, comm, cpu, current_task, gid, kernel_ptr, ktime_ns, log2, pid,
    pid_tgid, probe_read_kernel, probe_read_kernel_str, probe_read_user,
    probe_read_user_str, random, startswith, strlen, tgid, tid, trace_printk, uid, uid_gid,
    ntohs, ntohl, htons, htonl, syscall_arg, syscall_nr, XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX,
    XDP_REDIRECT, TC_ACT_OK, TC_ACT_SHOT,
)
from .maps import (
    ArrayMap, HashMap, Histogram, LRUHashMap, PerCPUArrayMap, PerCPUHashMap, PerfEventArray,
    QueueMap, RingBuf, StackMap, StackTraceMap,
)
from .structs import Struct
from .types import (
    ArrayType, Const, IntType, char, const, i8, i16, i32, i64, u8, u16, u32, u64,
)

__all__ = [
    "CompileError", "CompiledProgram", "compile_function", "compile_source", "program",
    "bpf", "is_bpf", "functions_in_file", "compile_module", "load", "ModuleSpec",
    "LoadedModule",
    "IntType", "ArrayType", "Const", "const", "char", "u8", "u16", "u32", "u64", "i8",
    "i16", "i32", "i64", "Struct",
    "HashMap", "LRUHashMap", "PerCPUHashMap", "ArrayMap", "PerCPUArrayMap", "Histogram",
    "RingBuf", "PerfEventArray", "StackTraceMap", "QueueMap", "StackMap",
    "ProgramKind", "tracepoint", "raw_tracepoint", "tp_btf", "kprobe", "kretprobe",
    "uprobe", "uretprobe", "usdt", "fentry", "fexit", "perf_event", "socket_filter", "xdp",
    "tc", "retarget",
    "ktime_ns", "boot_ns", "pid", "tgid", "tid", "uid", "gid", "uid_gid", "cpu",
    "pid_tgid", "random", "cgroup_id", "current_task", "comm", "probe_read_user_str",
    "probe_read_kernel_str", "probe_read_user", "probe_read_kernel", "kernel_ptr", "log2",
    "startswith", "strlen", "trace_printk", "ntohs", "ntohl", "htons", "htonl",
    "syscall_arg", "syscall_nr", "XDP_ABORTED", "XDP_DROP", "XDP_PASS", "XDP_TX", "XDP_REDIRECT", "TC_ACT_OK",
    "TC_ACT_SHOT",
]

if TYPE_CHECKING:      # annotations only: a cached tool's start imports no assembler
    from ..asm.instruction import Instruction, SourceLocation
    from .compiler.pipeline import CompiledFunction

F = TypeVar("F", bound=Callable[..., Any])


def __getattr__(name: str) -> Any:
    if name in ("compile_module", "load", "ModuleSpec", "LoadedModule"):
        from . import loader
        return getattr(loader, name)
    raise AttributeError(f"module 'pybpf.dsl' has no attribute {name!r}")


def bpf(fn: F) -> F:
    """Mark ``fn`` as a BPF program for ``pybpf compile`` (attach decorators come later)."""
    fn.__pybpf_program__ = True           # type: ignore[attr-defined]
    return fn


def is_bpf(obj: Any) -> bool:
    """True if ``obj`` was decorated with :func:`bpf`."""
    return bool(getattr(obj, "__pybpf_program__", False))


class CompiledProgram:
    """A compiled program: linked ``instructions`` (the entry function first, then the
    functions it calls), each carrying the :class:`SourceLocation` of its Python line,
    and the per-function details in ``functions``."""

    def __init__(self, name: str, functions: List[CompiledFunction],
                 instructions: List[Instruction]) -> None:
        self.name = name
        self.functions = functions
        self.instructions = instructions

    def __len__(self) -> int:
        return len(self.instructions)

    @property
    def source_map(self) -> Dict[int, SourceLocation]:
        """Slot index -> source location of the instruction there."""
        out: Dict[int, SourceLocation] = {}
        slot = 0
        for ins in self.instructions:
            if ins.source is not None:
                out[slot] = ins.source
            slot += ins.slots
        return out

    def disasm(self) -> str:
        """The instructions, numbered by slot, under the Python lines they come from."""
        from ..asm.disasm import format_instruction
        names = {f.name for f in self.functions}
        lines: List[str] = []
        last: Optional[tuple] = None
        slot = 0
        for ins in self.instructions:
            if ins.label in names:
                fn = next(f for f in self.functions if f.name == ins.label)
                loc = fn.ir.loc
                where = f"{_short(loc.file)}:{loc.line}" if loc else ""
                head = f"{ins.label}:"
                text = loc.text.strip() if loc else ""
                lines.append(f"{head:<24} ; {where}  {text}".rstrip())
                last = (loc.file, loc.line) if loc else None
            src = ins.source
            if src is not None and (src.file, src.line) != last:
                lines.append(f"; {_short(src.file)}:{src.line}  {src.text.rstrip()}")
                last = (src.file, src.line)
            lines.append(f"{slot:6}: {format_instruction(ins)}")
            slot += ins.slots
        return "\n".join(lines) + "\n"

    def spec(self, type: str = "xdp") -> Any:
        """A :class:`pybpf.program.ProgramSpec` of this program (``type``: a ProgType
        name such as ``"xdp"`` or ``"socket_filter"``, or a ProgType)."""
        from ..program import ProgramSpec
        from ..syscall.bpf import ProgType
        ptype = ProgType[type.upper()] if isinstance(type, str) else type
        return ProgramSpec(ptype, self.instructions, name=self.name[:15])


def _short(path: str) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return rel if not rel.startswith("..") else path


def compile_function(fn: Callable[..., Any]) -> CompiledProgram:
    """Compile ``fn`` (and the functions it calls) to a :class:`CompiledProgram`.
    Raises :class:`CompileError` for Python the language does not support."""
    from .compiler.pipeline import compile_functions
    functions, instructions = compile_functions(fn)
    return CompiledProgram(functions[0].name, functions, instructions)


def compile_source(source: str, name: str, *, filename: str = "<pybpf>",
                   namespace: Optional[Dict[str, Any]] = None) -> CompiledProgram:
    """Compile function ``name`` from Python ``source`` text (the text is executed as a
    module first, with the types and helpers of :mod:`pybpf.dsl` available)."""
    module = _module_from_source(source, filename, namespace)
    fn = getattr(module, name, None)
    if not isinstance(fn, _pytypes.FunctionType):
        raise CompileError(f"no function {name!r} in {filename}")
    return compile_function(fn)


def _module_from_source(source: str, filename: str,
                        namespace: Optional[Dict[str, Any]] = None) -> _pytypes.ModuleType:
    import linecache
    module = _pytypes.ModuleType("_pybpf_source")
    module.__file__ = filename
    module.__dict__.update({n: globals()[n] for n in __all__ if n in globals()})
    if namespace:
        module.__dict__.update(namespace)
    lines = source.splitlines(True)
    linecache.cache[filename] = (len(source), None, lines, filename)
    exec(compile(source, filename, "exec"), module.__dict__)
    return module


def functions_in_file(path: str, all_programs: bool = True) -> List[Callable[..., Any]]:
    """Import the Python file at ``path`` and return its programs (functions decorated
    with :func:`bpf` or an attach decorator), in source order (``all_programs=False``:
    only the attach-decorated ones). A syntax error in the file, or an exception its
    top level raises, is a :class:`CompileError` at the file's line."""
    from .userfile import import_user_file
    module = import_user_file(path, "_pybpf_compile_")
    found = [v for v in vars(module).values()
             if isinstance(v, _pytypes.FunctionType) and is_bpf(v)
             and (all_programs or hasattr(v, "__pybpf_kind__"))
             and v.__code__.co_filename == module.__file__]
    return sorted(found, key=lambda f: f.__code__.co_firstlineno)


def program(fn: Callable[..., Any], type: str = "xdp") -> Any:
    """Compile ``fn`` and load it as a ``type`` program; returns the
    :class:`pybpf.program.Program` (use ``.test_run()``; close it when done)."""
    return compile_function(fn).spec(type).load()
