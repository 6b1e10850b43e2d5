"""The base of every front end's lowering: the state of one function being lowered to
the IR (:mod:`.ir`) and the primitives that emit it.

A front end subclasses :class:`Lowering` (the Python one:
:class:`pybpf.dsl.compiler.frontend.FunctionCompiler`), sets ``loc`` to the source
location of what it is lowering, and implements :meth:`Lowering.error`. Everything
here and in the mixed-in building blocks (:class:`.memory.MemoryMixin`,
:class:`.blocks.BlocksMixin`) takes a front-end ``node`` only to hand it back to
:meth:`~Lowering.error`: it may be an ``ast`` node, a bpftrace tree node, or anything
the front end can locate.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from ..asm.instruction import SourceLocation
from . import types as T
from .blocks import BlocksMixin
from .errors import CompileError
from .ir import Function, Op, Operand, VReg
from .memory import CtxRef, MemoryMixin
from .unit import Unit

__all__ = ["Lowering"]


class Lowering(MemoryMixin, BlocksMixin):
    """One function being lowered into ``fn`` (an :class:`~.ir.Function`), with the
    module-wide ``unit``. ``kind``: the program's attach point, any object whose
    ``context()`` returns a :class:`.context.Context` (None for a function without a
    context); ``ctx``: the context register once the front end has one."""

    def __init__(self, fn: Function, unit: Unit, kind: Any = None) -> None:
        self.fn = fn
        self.unit = unit
        self.kind = kind
        self.local_ids = fn.local_ids
        self.next_id = 0
        self.labels = 0
        self.loc: Optional[SourceLocation] = None
        self.frame = 0
        self.temps: Dict[Tuple[str, int], int] = {}
        self.scratch: Optional[int] = None
        self.ctx: Optional[CtxRef] = None

    def error(self, message: str, node: Any, suggestion: str = "") -> CompileError:
        """A :class:`CompileError` located at the front end's ``node`` (the front end
        says how)."""
        raise NotImplementedError

    # -- registers, labels, operations -------------------------------------------------
    def vreg(self, t: Any, local: bool = False) -> VReg:
        """A new virtual register of type ``t`` (an integer type or a pointer type)."""
        self.next_id += 1
        return VReg(self.next_id, t, local)

    def label(self, hint: str) -> str:
        """A new label name, unique in the function."""
        self.labels += 1
        return f"{self.fn.name}.{hint}{self.labels}"

    def emit(self, kind: str, dst: Optional[VReg] = None, a: Optional[Operand] = None,
             b: Optional[Operand] = None, name: str = "", target: str = "",
             args: Tuple[Any, ...] = (), base: Optional[VReg] = None, off: int = 0,
             size: int = 0) -> Op:
        """Append an operation at the current location (the fields are :class:`~.ir.Op`'s,
        with its defaults, named: a keyword call binds them faster than ``**fields``)."""
        op = Op(kind, dst, a, b, name, target, args, self.loc, base, off, size)
        self.fn.ops.append(op)
        return op

    # -- integer values ------------------------------------------------------------------
    def type_of(self, v: Operand) -> T.IntType:
        """The type of an operand (an immediate: its literal type)."""
        return v.type if isinstance(v, VReg) else T.literal_type(v)

    def const_type(self, node: Any, value: int) -> T.IntType:
        """The type of an immediate operand produced by ``node``."""
        try:
            return T.literal_type(value)
        except OverflowError as exc:
            raise self.error(str(exc), node) from None

    def materialize(self, v: Operand, t: Optional[T.IntType] = None) -> VReg:
        """``v`` in a (new, for immediates) virtual register."""
        if isinstance(v, VReg):
            return v
        dst = self.vreg(t or T.literal_type(v))
        self.emit("mov", dst=dst, a=v)
        return dst

    def load_const(self, value: int, node: Any, t: Optional[T.IntType] = None) -> Operand:
        """A constant: an immediate if it fits 0..2**31-1, else a register."""
        if 0 <= value < 1 << 31 and t is None:
            return value
        t = t or (T.i64 if value < 0 else self.const_type(node, value))
        dst = self.vreg(t)
        self.emit("mov", dst=dst, a=t.wrap(value))
        return dst

    def convert(self, v: Operand, t: T.IntType) -> Operand:
        """``v`` converted to ``t`` (C conversion); immediates stay immediates if they fit."""
        if isinstance(v, int):
            w = t.wrap(v)
            if 0 <= w < 1 << 31:
                return w
            dst = self.vreg(t)
            self.emit("mov", dst=dst, a=w)
            return dst
        if v.type == t:
            return v
        if t.bits == 64 or t.contains(v.type):
            return VReg(v.id, t, v.local)       # same bits, another type: no code
        dst = self.vreg(t)
        self.emit("norm", dst=dst, a=v)
        return dst

    def convert_into(self, dst: VReg, v: Operand) -> None:
        """``dst = v`` with the conversion to dst's type."""
        if isinstance(v, int):
            self.emit("mov", dst=dst, a=dst.type.wrap(v))
        elif dst.type.bits == 64 or dst.type.contains(v.type):
            if dst.id != v.id:
                self.emit("mov", dst=dst, a=v)
        else:
            self.emit("norm", dst=dst, a=v)
