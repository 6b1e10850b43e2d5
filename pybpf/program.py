"""BPF programs: a :class:`ProgramSpec` (what to load) and a loaded :class:`Program`.

A spec is plain data: program type, instructions, license, attach type and target, name,
flags. :meth:`ProgramSpec.load` resolves its map references, encodes it and loads it::

    from pybpf.asm.builder import Builder, mov, exit_
    from pybpf.program import ProgramSpec
    from pybpf.syscall.bpf import ProgType

    b = Builder(record_source=True)
    b.emit(mov(R0, 2), exit_())
    with ProgramSpec(ProgType.XDP, b.link(), name="pass").load() as prog:
        print(prog.test_run(bytes(14)).retval)        # 2 (XDP_PASS)

**Map references.** An ``lddw`` of a map (pseudo source ``MAP_FD`` or ``MAP_VALUE``,
e.g. from :func:`pybpf.asm.builder.ld_map_fd`) whose ``reference`` is a map object
(anything with ``fileno()``) or a name found in the ``maps=`` mapping gets that map's fd
in its immediate when the program is loaded; ``fd_array`` entries resolve the same way.

**Verifier errors.** A refused program raises :class:`VerifierError`: the failing
instruction disassembled, the verifier's complaint, the source line of the instruction
when it has a :class:`~pybpf.asm.instruction.SourceLocation`, the line that gave the
faulting pointer an unbounded offset when the log shows one, and the log
(:attr:`VerifierError.log`: a long one by its first and last lines), which :meth:`VerifierError.annotated_log` shows with each
instruction line followed by its source.

This module uses :mod:`pybpf.asm` and :mod:`pybpf.syscall` only.
"""

from __future__ import annotations

import os
import re
import time
import warnings
from typing import (
    TYPE_CHECKING, Any, Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple,
    Union,
)

from ._records import record
from .syscall import errors as _errors
from .syscall import progs as _progs
from .syscall.bpf import ProgType
from .syscall.fd import FD, FdLike

if TYPE_CHECKING:
    from .asm.instruction import Instruction
    from .syscall.objects import ProgInfo
    from .verifier import LogEntry, VerifierError, offset_cause, parse_verifier_log

__all__ = [
    "ProgramSpec", "Program", "RunResult", "VerifierError", "LogEntry", "parse_verifier_log",
    "resolve_maps", "kernel_symbol", "dump_lines", "DumpLine", "loaded_at", "offset_cause",
    "LOG_FILE_ENV",
]

#: the environment variable naming the file that receives the whole verifier log of a
#: refused load (set by ``pybpf run --verifier-log FILE``)
LOG_FILE_ENV = "PYBPF_VERIFIER_LOG"

#: what :mod:`pybpf.verifier` defines, importable from here as before
_VERIFIER_NAMES = ("VerifierError", "LogEntry", "parse_verifier_log", "offset_cause")


def __getattr__(name: str) -> Any:
    if name in _VERIFIER_NAMES:
        from . import verifier
        return getattr(verifier, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _objects() -> Any:
    """:mod:`pybpf.syscall.objects` (info, pins, ids): imported when first needed, since
    loading a program does not use it and its import is a few ms of a tool's start."""
    from .syscall import objects
    return objects


#: ``Pseudo.MAP_FD`` and ``Pseudo.MAP_VALUE`` (:mod:`pybpf.asm.opcodes`), by value: loading
#: a cached program imports no assembler
_MAP_PSEUDOS = (1, 2)
#: ``Pseudo.MAP_IDX`` and ``Pseudo.MAP_IDX_VALUE``
_IDX_PSEUDOS = (5, 6)


# ---------------------------------------------------------------------------------------
# Map references
# ---------------------------------------------------------------------------------------

def _map_fd(ref: Any, maps: Optional[Mapping[str, Any]], ins: Optional[Instruction]) -> int:
    """The fd a map reference stands for."""
    obj = ref
    if isinstance(ref, str):
        if maps is None or ref not in maps:
            known = ", ".join(sorted(maps)) if maps else "none given"
            where = f"{ins.source}: " if ins is not None and ins.source else ""
            raise KeyError(f"{where}the program refers to map {ref!r}, which is not in "
                           f"maps= (known: {known})")
        obj = maps[ref]
    if hasattr(obj, "fileno"):
        return int(obj.fileno())
    if isinstance(obj, int) and not isinstance(obj, bool):
        return obj
    raise TypeError(f"map reference {ref!r} is neither a name in maps= nor an object with "
                    f"fileno()")


def resolve_maps(instructions: Iterable[Instruction],
                 maps: Optional[Mapping[str, Any]] = None) -> List[Instruction]:
    """A copy of ``instructions`` where each map load (``lddw`` with pseudo source
    ``MAP_FD`` or ``MAP_VALUE``) that has a ``reference`` gets the map's fd in the low
    32 bits of its immediate (the value offset of ``MAP_VALUE`` stays in the high 32).
    A reference is a map object (anything with ``fileno()``) or a name in ``maps``;
    an unknown name raises :class:`KeyError` naming it and the source line."""
    out = []
    for ins in instructions:
        if ins.opcode == 0x18 and ins.src in _MAP_PSEUDOS and ins.reference is not None:
            fd = _map_fd(ins.reference, maps, ins)
            imm = (ins.imm & ~0xFFFFFFFF & 0xFFFFFFFFFFFFFFFF) | (fd & 0xFFFFFFFF)
            ins = ins.replace(imm=imm)
        out.append(ins)
    return out


def _encoded(instructions: Any, maps: Optional[Mapping[str, Any]]) -> Optional[bytes]:
    """The code of ``instructions`` with its map references resolved, taken from their
    encoding when they still have it (a program from the cache of compiled modules:
    ``instructions.resolved_code``), so that loading it decodes and encodes nothing;
    None for any other sequence, or when a reference does not resolve (the general path
    then raises the error that names the instruction's source line)."""
    resolve = getattr(instructions, "resolved_code", None)
    if resolve is None:
        return None
    try:
        return resolve(lambda ref: _map_fd(ref, maps, None))
    except (KeyError, TypeError, ValueError):
        return None


# ---------------------------------------------------------------------------------------
# Specs
# ---------------------------------------------------------------------------------------

@record
class ProgramSpec:
    """Everything needed to load a program, before the kernel is involved.

    * ``type``: a :class:`~pybpf.syscall.bpf.ProgType`;
    * ``instructions``: linked :class:`~pybpf.asm.instruction.Instruction` objects
      (map references may remain: they are resolved at load);
    * ``license``: ``"GPL"`` unlocks the GPL-only helpers;
    * ``attach_type``: the load's ``expected_attach_type`` (Linux 4.17), an
      :class:`~pybpf.syscall.bpf.AttachType`, or None;
    * ``attach_target``: what the program will attach to (a function, a tracepoint), for
      the attach layer; ``attach_btf_id`` and ``attach_prog`` / ``attach_btf_obj`` are the
      load-time target of tracing, LSM and extension programs (Linux 5.5);
    * ``name``: at most 15 characters, shown by bpftool (Linux 4.15);
    * ``flags``: :class:`~pybpf.syscall.bpf.ProgFlags`;
    * ``kernel_version``: ``kern_version`` (kprobes before Linux 5.0 need the running
      kernel's ``LINUX_VERSION_CODE``: the default for kprobe programs);
    * ``ifindex``, ``btf``/``func_info``/``line_info``, ``fd_array``: passed through (see
      :func:`pybpf.syscall.progs.prog_load`);
    * ``source_lines``: when no ``btf`` is given and instructions carry source locations,
      load BTF made from them (:func:`pybpf.btf.builder.source_btf`, Linux 5.0) so
      ``bpftool prog dump xlated`` and verifier logs show the source lines (not for
      extension programs, whose BTF must match their target's);
    * ``prebuilt_btf``: that BTF built already, ``(blob, func_info, line_info)`` as
      :func:`pybpf.btf.builder.program_btf` makes them (the cache of compiled modules
      keeps them, so a cached tool loads without building BTF).
    """

    type: int
    instructions: Sequence[Instruction]
    license: str = "GPL"
    attach_type: Optional[int] = None
    attach_target: Optional[str] = None
    attach_btf_id: int = 0
    attach_prog: Optional[FdLike] = None
    attach_btf_obj: Optional[FdLike] = None
    name: str = ""
    flags: int = 0
    kernel_version: Optional[int] = None
    ifindex: int = 0
    btf: Optional[FdLike] = None
    func_info: bytes = b""
    line_info: bytes = b""
    fd_array: Sequence[Any] = ()
    source_lines: bool = True
    prebuilt_btf: Optional[Tuple[bytes, bytes, bytes]] = None

    def resolved(self, maps: Optional[Mapping[str, Any]] = None) -> List[Instruction]:
        """The instructions with every map reference replaced by its fd."""
        return resolve_maps(self.instructions, maps)

    def load(self, *, maps: Optional[Mapping[str, Any]] = None, log_level: int = 1,
             verifier_log: bool = False,
             log_size: int = _progs.LOG_START_SIZE,
             log_file: Optional[str] = None) -> "Program":
        """Load the program (``BPF_PROG_LOAD``) and return the :class:`Program`.

        ``maps`` names the maps that references by name stand for. The load is tried
        without a verifier log first; on failure it is repeated with a log at
        ``log_level`` (starting at ``log_size`` bytes, grown to what the kernel needs)
        and :class:`VerifierError` is raised, holding the log's first and last lines;
        ``log_file`` (default: ``$PYBPF_VERIFIER_LOG``, which ``pybpf run
        --verifier-log FILE`` sets) receives the whole log of a refused load.
        ``verifier_log=True`` asks for the log even on success (then in
        :attr:`Program.verifier_log`).
        """
        log_file = log_file or os.environ.get(LOG_FILE_ENV) or None
        insns: Optional[List[Instruction]] = None
        code = _encoded(self.instructions, maps)
        if code is None:
            from .asm.encoding import encode
            insns = self.resolved(maps)
            code = encode(insns)
        fd_array = [_map_fd(ref, maps, None) for ref in self.fd_array]
        own_btf, func_info, line_info = None, self.func_info, self.line_info
        if self.source_lines and self.btf is None and not func_info and not line_info \
                and self.type != ProgType.EXT:      # extensions need their target's types
            if self.prebuilt_btf is not None:
                own_btf, func_info, line_info = _progs.btf_load_optional(*self.prebuilt_btf)
            else:
                from .btf.builder import source_btf
                if insns is None:
                    insns = self.resolved(maps)
                own_btf, func_info, line_info = source_btf(insns, self.name)
        kwargs: Dict[str, Any] = dict(
            license=self.license, name=self.name,
            expected_attach_type=self.attach_type or 0, flags=self.flags,
            kern_version=self.kernel_version, ifindex=self.ifindex,
            btf_fd=self.btf if own_btf is None else own_btf,
            func_info=func_info, line_info=line_info,
            attach_btf_id=self.attach_btf_id, attach_prog_fd=self.attach_prog,
            attach_btf_obj_fd=self.attach_btf_obj, fd_array=fd_array)
        log = ""
        try:
            for attempt in range(2):
                try:
                    if verifier_log:
                        fd, log = _progs.prog_load_logged(
                            self.type, code, log_level=log_level, log_start_size=log_size,
                            log_file=log_file, **kwargs)
                    else:
                        fd = _progs.prog_load(self.type, code, log_level=log_level,
                                              log_start_size=log_size, log_file=log_file,
                                              **kwargs)
                    break
                except _errors.VerifierError as exc:
                    # the source-line BTF is a nicety: if the kernel objects to it, load
                    # without it (a second failure is reported as it stands)
                    if attempt or own_btf is None or not re.search(
                            r"func_info|line_info|invalid type id|BTF", exc.log or ""):
                        from .verifier import VerifierError
                        if insns is None:
                            insns = self.resolved(maps)
                        raise VerifierError(exc, insns, self.name) from None
                    kwargs.update(btf_fd=None, func_info=b"", line_info=b"")
        finally:
            if own_btf is not None:
                own_btf.close()
        return Program(fd, spec=self, verifier_log=log)


# ---------------------------------------------------------------------------------------
# Loaded programs
# ---------------------------------------------------------------------------------------

class RunResult(NamedTuple):
    """The outcome of :meth:`Program.test_run`: the program's return value, the output
    packet (``data``) and context (``ctx``), and the mean run time in nanoseconds."""

    retval: int
    data: bytes
    ctx: bytes
    duration: int


class Program:
    """A program loaded in the kernel; owns its file descriptor.

    Made by :meth:`ProgramSpec.load`, or opened with :meth:`from_id`, :meth:`from_pin`
    or from a descriptor. ``close()`` releases it (the kernel frees the program when no
    descriptor, pin or attachment is left); it is a context manager, and a program that
    is garbage collected while open is closed with a :class:`ResourceWarning`. Any use
    after ``close()`` raises :class:`ValueError`.
    """

    def __init__(self, fd: Union[FD, int], *, spec: Optional[ProgramSpec] = None,
                 verifier_log: str = "") -> None:
        self._fd: Optional[FD] = fd if isinstance(fd, FD) else FD(fd, "prog")
        self.spec = spec
        #: the verifier log of the load, when it was asked for
        self.verifier_log = verifier_log
        self._info: Optional[ProgInfo] = None

    # -- opening --------------------------------------------------------------------------
    @classmethod
    def from_id(cls, prog_id: int) -> "Program":
        """Open the loaded program with this id (Linux 4.13; needs CAP_SYS_ADMIN)."""
        return cls(_objects().get_fd_by_id("prog", prog_id))

    @classmethod
    def from_pin(cls, path: Union[str, "os.PathLike[str]"]) -> "Program":
        """Open the program pinned at ``path`` in a BPF file system (Linux 4.4)."""
        return cls(_objects().obj_get(path, kind="prog"))

    # -- ownership ------------------------------------------------------------------------
    def _open_fd(self) -> FD:
        if self._fd is None or self._fd.closed:
            raise ValueError(f"operation on a closed program {self._label()}")
        return self._fd

    def _label(self) -> str:
        name = self.spec.name if self.spec is not None else ""
        return repr(name) if name else "(unnamed)"

    def fileno(self) -> int:
        """The program's descriptor number."""
        return self._open_fd().fileno()

    @property
    def fd(self) -> FD:
        """The owned :class:`~pybpf.syscall.fd.FD`."""
        return self._open_fd()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._fd is None or self._fd.closed

    def close(self) -> None:
        """Release the descriptor (idempotent)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            fd.close()

    def __enter__(self) -> "Program":
        self._open_fd()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        fd = getattr(self, "_fd", None)
        if fd is not None and not fd.closed:
            warnings.warn(f"unclosed {self!r}", ResourceWarning, stacklevel=2)
            try:
                fd.close()
            except OSError:
                pass

    def __repr__(self) -> str:
        kind = ""
        if self.spec is not None:
            try:
                kind = ProgType(self.spec.type).name.lower() + " "
            except ValueError:
                kind = f"type {self.spec.type} "
        state = "closed" if self.closed else f"fd={self._fd.fileno()}"  # type: ignore[union-attr]
        return f"<Program {kind}{self._label()} {state}>"

    # -- running --------------------------------------------------------------------------
    def test_run(self, data: bytes = b"", ctx: Optional[bytes] = None, repeat: int = 1, *,
                 data_out_size: Optional[int] = None, flags: int = 0,
                 cpu: int = 0) -> RunResult:
        """Run the program in the kernel on ``data`` (and context ``ctx``) ``repeat``
        times (``BPF_PROG_TEST_RUN``, Linux 4.12; ``ctx`` 5.2). See
        :func:`pybpf.syscall.progs.prog_test_run` for the program types that support it.
        """
        out = _progs.prog_test_run(self._open_fd(), data, repeat=repeat,
                                   data_out_size=data_out_size, ctx_in=ctx, flags=flags,
                                   cpu=cpu)
        return RunResult(out.retval, out.data_out, out.ctx_out, out.duration)

    # -- pinning ----------------------------------------------------------------------------
    def pin(self, path: Union[str, "os.PathLike[str]"]) -> None:
        """Pin the program at ``path`` in a BPF file system (Linux 4.4): it stays loaded
        after this process ends, until :meth:`unpin` (or ``rm``)."""
        _objects().obj_pin(self._open_fd(), path)

    @staticmethod
    def unpin(path: Union[str, "os.PathLike[str]"]) -> None:
        """Remove the pin at ``path`` (the program lives on while other references
        exist)."""
        os.unlink(path)

    # -- introspection --------------------------------------------------------------------
    def info(self, *, refresh: bool = True) -> ProgInfo:
        """What the kernel says about the program (``BPF_OBJ_GET_INFO_BY_FD``, Linux
        4.13): id, tag, type, name, translated and JIT sizes, map ids (4.15), load time
        (ns since boot), BTF id (5.0), and ``run_time_ns``/``run_cnt`` while statistics
        are on (5.1: ``kernel.bpf_stats_enabled`` or
        :func:`pybpf.syscall.progs.enable_stats`)."""
        if refresh or self._info is None:
            self._info = _objects().prog_info(self._open_fd(), map_ids=True)
        return self._info

    @property
    def id(self) -> int:
        """The kernel's id of this program."""
        return self.info(refresh=False).id

    @property
    def tag(self) -> str:
        """The program tag (hex), a hash of its instructions."""
        return self.info(refresh=False).tag_hex

    def xlated(self) -> List[Instruction]:
        """The program as the kernel holds it after verification and rewriting
        (Linux 4.13), decoded. Helper calls carry the kernel's function offset, not the
        helper id, and map loads the map id (see :meth:`dump`). Needs CAP_SYS_ADMIN or
        CAP_PERFMON."""
        from .asm.encoding import decode
        raw = _objects().prog_info(self._open_fd(), map_ids=False, xlated=True)
        return decode(raw.xlated_prog_insns or b"", validate=False)

    def dump(self) -> str:
        """The translated program as text, one ``slot: (opcode) text  # comment`` line
        per instruction (bpftool's shape, pybpf's LLVM syntax; see :func:`dump_lines`)."""
        return "".join(f"{line}\n" for line in dump_lines(self.xlated()))


# ---------------------------------------------------------------------------------------
# Translated code
# ---------------------------------------------------------------------------------------

def kernel_symbol(call_imm: int) -> Optional[str]:
    """The kernel function a helper call of translated code jumps to: its immediate is
    the offset from ``__bpf_call_base`` (needs a readable ``/proc/kallsyms``)."""
    from .symbolize import kernel_symbols
    ksyms = kernel_symbols()
    base = ksyms.address("__bpf_call_base")
    if base is None:
        return None
    frame = ksyms.lookup((base + call_imm) & 0xFFFFFFFFFFFFFFFF)
    return frame.name if frame.known and frame.offset == 0 else None


def _helper_id(symbol: str) -> Optional[int]:
    name = symbol
    for suffix in ("_proto", "_compat"):
        if name.endswith(suffix):
            name = name[:-len(suffix)]
    from .asm.helpers import helper
    try:
        return helper(name).id
    except KeyError:
        return None


class DumpLine(NamedTuple):
    """One line of :func:`dump_lines`: slot, opcode, LLVM-syntax text, comment."""

    address: int
    opcode: int
    text: str
    comment: str

    def __str__(self) -> str:
        body = f"({self.opcode:02x}) {self.text}"
        return f"{self.address:4d}: {body}" + (f"  # {self.comment}" if self.comment else "")


def dump_lines(instructions: Sequence[Instruction]) -> List[DumpLine]:
    """Translated code (as :meth:`Program.xlated` returns it) for reading: helper calls
    carry kernel function offsets, which are resolved through ``/proc/kallsyms`` (back
    to the helper id when the function is the helper itself, else named in the
    comment), and map loads carry map ids, which the comment says."""
    fixed = []
    notes: Dict[int, str] = {}
    slot = 0
    for ins in instructions:
        if ins.opcode == 0x85 and ins.src == 0:
            symbol = kernel_symbol(ins.imm)
            hid = _helper_id(symbol) if symbol else None
            if hid is not None:
                ins = ins.replace(imm=hid)
            else:
                notes[slot] = (f"kernel function {symbol}" if symbol else
                               f"kernel function at __bpf_call_base{ins.imm:+#x}")
        elif ins.opcode == 0x18 and ins.src in _MAP_PSEUDOS:
            extra = (f", value offset {ins.imm >> 32:#x}" if ins.src == _MAP_PSEUDOS[1]
                     else "")
            notes[slot] = f"map id {ins.imm & 0xFFFFFFFF}{extra}"
        fixed.append(ins)
        slot += ins.slots
    from .asm.disasm import iter_listing
    return [DumpLine(line.address, line.instruction.opcode, line.text,
                     notes.get(line.address, line.comment))
            for line in iter_listing(fixed, labels={}, section=None)]


def _boot_time() -> float:
    """Wall-clock time of boot (for ``load_time``, which counts from boot)."""
    return time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)


def loaded_at(info: ProgInfo) -> float:
    """Wall-clock time (seconds since the epoch) when the program was loaded."""
    return _boot_time() + info.load_time / 1e9

