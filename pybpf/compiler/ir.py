"""The typed intermediate representation: a list of operations per function.

Values live in virtual registers (:class:`VReg`), each with an integer type; a value is
always kept *normalized* in its 64-bit register: sign-extended for signed types,
zero-extended for unsigned ones. Operands are a :class:`VReg` or a Python ``int``
(an immediate that fits a signed 32-bit field). Every operation carries the
:class:`~pybpf.asm.instruction.SourceLocation` of the source line it comes from (a
Python line, a bpftrace program's line).
"""

from __future__ import annotations

from .._records import field, record
from typing import Any, List, Optional, Set, Tuple, Union

from ..asm.instruction import SourceLocation
from .types import IntType

__all__ = ["VReg", "Operand", "Op", "Function", "FrameAddr", "MapFd", "MapValue",
           "PtrType", "KType",
           "BINARY_OPS", "JUMP_CONDITIONS"]


@record(frozen=True)
class PtrType:
    """The type of a register holding a pointer: to ``target`` (a language type, or a
    :class:`KType`) in ``space``: ``"stack"``, ``"map"`` (a map value; ``nullable``
    until checked), ``"ctx"`` (the program's context), ``"kernel"`` or ``"user"``
    (memory read with probe_read helpers). ``private``: a map value no other CPU
    updates at the same time (a per-CPU map's value, a reserved ring buffer record), so
    compound assignments through it need no atomic instructions."""

    target: Any
    space: str
    private: bool = False
    name = "ptr"
    bits = 64
    signed = False

    def wrap(self, value: int) -> int:
        """Pointers are 64-bit unsigned numbers."""
        return value & 0xFFFFFFFFFFFFFFFF

    def contains(self, other: Any) -> bool:
        """A pointer holds any 64-bit pattern."""
        return True

    def __repr__(self) -> str:
        return f"{self.target!r}* ({self.space})"


@record(frozen=True)
class KType:
    """A kernel type: its id in the running kernel's BTF (vmlinux)."""

    type_id: int
    text: str = ""

    def __repr__(self) -> str:
        return self.text or f"btf#{self.type_id}"


@record(frozen=True)
class VReg:
    """A virtual register: ``id`` (unique in a function), its ``type``, and whether it
    holds a named local (locals can be live across loop back edges)."""

    id: int
    type: IntType
    local: bool = False

    def __str__(self) -> str:
        return f"%{self.id}:{self.type.name}"


Operand = Union[VReg, int]


@record(frozen=True)
class FrameAddr:
    """A helper argument: the address r10 + ``off``."""

    off: int

    def __str__(self) -> str:
        return f"fp{self.off:+d}"


@record(frozen=True)
class MapFd:
    """A helper argument: the map called ``name`` (its fd, resolved at load)."""

    name: str

    def __str__(self) -> str:
        return f"map:{self.name}"


@record(frozen=True)
class MapValue:
    """A helper argument: the address of byte ``off`` of map ``name``'s value."""

    name: str
    off: int = 0

    def __str__(self) -> str:
        return f"mapval:{self.name}+{self.off}"

#: binary operations (64-bit ALU operations on normalized values)
BINARY_OPS = ("add", "sub", "mul", "udiv", "sdiv", "umod", "smod", "and", "or", "xor",
              "lsh", "rsh", "arsh")
#: conditions of conditional jumps
JUMP_CONDITIONS = ("eq", "ne", "ugt", "uge", "ult", "ule", "sgt", "sge", "slt", "sle")


@record
class Op:
    """One IR operation. ``kind`` is one of:

    * ``mov`` dst <- a; ``binop`` dst <- a ``name`` b; ``neg`` dst <- -a;
    * ``norm`` dst <- a wrapped to ``type`` (dst's type); ``bswap`` dst <- a converted
      between big-endian and host order on its low ``size`` bits;
    * ``label`` name; ``jump`` name; ``branch`` if a ``name`` b goto ``target``;
    * ``helper`` dst <- helper ``name``(args); ``call`` dst <- function ``name``(args);
    * ``param`` dst <- argument number ``a``; ``ret`` return a;
    * ``load`` dst <- ``size`` bytes at ``base`` + ``off`` (zero-extended; ``base`` None:
      the frame pointer r10); ``store`` ``size`` bytes at ``base`` + ``off`` <- a;
      ``atomic`` ``size`` bytes at ``base`` + ``off`` ``name``= a (``add``, ``or``,
      ``and``, ``xor``);
      ``zero`` ``size`` bytes of the frame at ``off``; ``addr`` dst <- ``base`` + ``off``;
    * ``ldmap`` dst <- the fd of map ``name``; ``ldmapval`` dst <- the address of byte
      ``off`` of map ``name``'s value (global data).

    Helper arguments (``args``) are operands or :class:`FrameAddr` / :class:`MapFd` /
    :class:`MapValue`, which are materialized straight into the argument register.
    """

    kind: str
    dst: Optional[VReg] = None
    a: Optional[Operand] = None
    b: Optional[Operand] = None
    name: str = ""
    target: str = ""
    args: Tuple[Any, ...] = ()
    loc: Optional[SourceLocation] = None
    base: Optional[VReg] = None
    off: int = 0
    size: int = 0

    def __init__(self, kind: str, dst: Optional[VReg] = None, a: Optional[Operand] = None,
                 b: Optional[Operand] = None, name: str = "", target: str = "",
                 args: Tuple[Any, ...] = (), loc: Optional[SourceLocation] = None,
                 base: Optional[VReg] = None, off: int = 0, size: int = 0) -> None:
        # what the record would make, with plain attribute stores (the lowering makes
        # one per operation; they are cheaper than the record's stores into __dict__)
        self.kind = kind
        self.dst = dst
        self.a = a
        self.b = b
        self.name = name
        self.target = target
        self.args = args
        self.loc = loc
        self.base = base
        self.off = off
        self.size = size

    def __str__(self) -> str:
        parts = [self.kind]
        if self.name:
            parts.append(self.name)
        for x in (self.dst, self.a, self.b):
            if x is not None:
                parts.append(str(x))
        if self.kind in ("load", "store", "atomic", "zero", "addr", "ldmapval"):
            parts.append(f"[{self.base if self.base is not None else 'fp'}{self.off:+d}]"
                         + (f"/{self.size}" if self.size else ""))
        if self.args:
            parts.append("(" + ", ".join(map(str, self.args)) + ")")
        if self.target:
            parts.append("-> " + self.target)
        return " ".join(parts)


@record
class Function:
    """A compiled function in IR form: its ``name``, parameter and return types, the
    operations, the ``loops`` as (first op index, last op index) for liveness, and the
    location of its ``def`` line."""

    name: str
    params: List[IntType]
    ret: IntType
    ops: List[Op] = field(default_factory=list)
    loops: List[Tuple[int, int]] = field(default_factory=list)
    loc: Optional[SourceLocation] = None
    calls: List[str] = field(default_factory=list)
    is_entry: bool = False
    local_ids: Set[int] = field(default_factory=set)
    frame: int = 0          # bytes of the stack used by structs, keys and buffers
    #: bounded loops as (top label, iteration count, location) for the walk estimate
    loop_bounds: List[Tuple[str, int, Optional[SourceLocation]]] = field(default_factory=list)

    def dump(self) -> str:
        """The operations as text, one a line (for debugging)."""
        return "\n".join(f"{i:4}: {op}" for i, op in enumerate(self.ops))
