"""Build programs in Python, one function per instruction, reading like the ISA.

::

    from pybpf.asm import R0, R1, R2, R10
    from pybpf.asm.builder import *

    prog = build([
        mov(R1, 0),
        stx(DW, R10, -8, R1),            # *(u64 *)(r10 - 8) = r1
        mov(R2, R10), add(R2, -8),
        ld_map_fd(R1, "counts"),         # map reference, becomes an fd at load time
        call("map_lookup_elem"),
        jeq(R0, 0, "out"),               # a label, resolved by link()
        mov(R1, 1),
        atomic_add(DW, R0, 0, R1),
        Label("out"),
        mov(R0, 0),
        exit_(),
    ])

Registers are :class:`~pybpf.asm.opcodes.Reg` values (or plain ints 0-10). Where an
operand may be a register or an immediate, a ``Reg`` selects the register form and an
``int`` the immediate form. Jump targets are label names (resolved by
:func:`~pybpf.asm.program.link`) or integer slot offsets. Every function checks its
operands and raises :class:`~pybpf.asm.errors.InvalidInstruction` for impossible ones.
"""

from __future__ import annotations

import sys
from typing import Any, Iterable, List, Optional, Union

from .errors import InvalidInstruction
from .helpers import helper
from .instruction import Instruction, SourceLocation
from .opcodes import AluOp, AtomicOp, CallKind, Class, JmpOp, Mode, Pseudo, Reg, Size, Source
from .program import link

__all__ = [
    "W", "H", "B", "DW", "Label", "build", "Builder",
    "mov", "mov32", "add", "add32", "sub", "sub32", "mul", "mul32", "div", "div32",
    "sdiv", "sdiv32", "mod", "mod32", "smod", "smod32", "or_", "or32", "and_", "and32",
    "lsh", "lsh32", "rsh", "rsh32", "arsh", "arsh32", "xor", "xor32", "neg", "neg32",
    "movsx", "movsx32", "le", "be", "bswap", "addr_space_cast",
    "ldx", "ldxs", "st", "stx", "lddw", "ld_map_fd", "ld_map_value", "ld_btf_id", "ld_func",
    "ld_map_idx", "ld_map_idx_value", "ld_abs", "ld_ind",
    "atomic", "atomic_add", "atomic_or", "atomic_and", "atomic_xor", "atomic_fetch_add",
    "atomic_fetch_or", "atomic_fetch_and", "atomic_fetch_xor", "atomic_xchg",
    "atomic_cmpxchg", "load_acquire", "store_release",
    "ja", "gotol", "jeq", "jgt", "jge", "jset", "jne", "jsgt", "jsge", "jlt", "jle", "jslt",
    "jsle", "jeq32", "jgt32", "jge32", "jset32", "jne32", "jsgt32", "jsge32", "jlt32",
    "jle32", "jslt32", "jsle32", "call", "call_local", "call_kfunc", "callx", "exit_",
    "may_goto",
]

W, H, B, DW = Size.W, Size.H, Size.B, Size.DW

RegOrImm = Union[Reg, int]
Target = Union[str, int]
_SIZE_BY_BYTES = {1: Size.B, 2: Size.H, 4: Size.W, 8: Size.DW}


def _reg(value: Any, what: str = "register") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10:
        raise InvalidInstruction(f"{what} must be one of r0-r10, not {value!r}")
    return int(value)


def _size(value: Any) -> int:
    if isinstance(value, Size):
        return int(value)
    if isinstance(value, int) and value in _SIZE_BY_BYTES:
        return int(_SIZE_BY_BYTES[value])
    raise InvalidInstruction(f"access size must be W, H, B, DW or 1/2/4/8 bytes, not {value!r}")


def _imm32(value: Any, what: str = "immediate") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInstruction(f"{what} must be an int, not {value!r}")
    if -0x80000000 <= value <= 0x7FFFFFFF:
        return value
    if 0x80000000 <= value <= 0xFFFFFFFF:  # a 32-bit pattern written unsigned
        return value - 0x100000000
    raise InvalidInstruction(f"{what} {value} does not fit in 32 bits")


def _off16(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not -0x8000 <= value <= 0x7FFF:
        raise InvalidInstruction(f"offset must be an int in -32768..32767, not {value!r}")
    return value


def _checked(ins: Instruction) -> Instruction:
    ins.validate()
    return ins


# -- arithmetic ----------------------------------------------------------------------------

def _alu(op: int, cls: int, dst: Any, src: RegOrImm, off: int = 0) -> Instruction:
    d = _reg(dst, "destination")
    if isinstance(src, Reg):
        return _checked(Instruction(op | Source.X | cls, d, int(src), off, 0))
    return _checked(Instruction(op | Source.K | cls, d, 0, off, _imm32(src)))


def _alu_pair(op: int, name: str, off: int = 0) -> tuple:
    def op64(dst: Reg, src: RegOrImm) -> Instruction:
        return _alu(op, Class.ALU64, dst, src, off)

    def op32(dst: Reg, src: RegOrImm) -> Instruction:
        return _alu(op, Class.ALU, dst, src, off)

    op64.__name__, op32.__name__ = name, name + "32"
    op64.__doc__ = f"64-bit ``{name}``: dst {name} src (a register or a 32-bit immediate)."
    op32.__doc__ = f"32-bit ``{name}`` on the lower halves; the result is zero-extended."
    return op64, op32


mov, mov32 = _alu_pair(AluOp.MOV, "mov")
add, add32 = _alu_pair(AluOp.ADD, "add")
sub, sub32 = _alu_pair(AluOp.SUB, "sub")
mul, mul32 = _alu_pair(AluOp.MUL, "mul")
div, div32 = _alu_pair(AluOp.DIV, "div")
sdiv, sdiv32 = _alu_pair(AluOp.DIV, "sdiv", off=1)
mod, mod32 = _alu_pair(AluOp.MOD, "mod")
smod, smod32 = _alu_pair(AluOp.MOD, "smod", off=1)
or_, or32 = _alu_pair(AluOp.OR, "or")
and_, and32 = _alu_pair(AluOp.AND, "and")
lsh, lsh32 = _alu_pair(AluOp.LSH, "lsh")
rsh, rsh32 = _alu_pair(AluOp.RSH, "rsh")
arsh, arsh32 = _alu_pair(AluOp.ARSH, "arsh")
xor, xor32 = _alu_pair(AluOp.XOR, "xor")


def neg(dst: Reg) -> Instruction:
    """64-bit negation: dst = -dst."""
    return Instruction(AluOp.NEG | Class.ALU64, _reg(dst))


def neg32(dst: Reg) -> Instruction:
    """32-bit negation of the lower half, zero-extended."""
    return Instruction(AluOp.NEG | Class.ALU, _reg(dst))


def movsx(dst: Reg, src: Reg, bits: int) -> Instruction:
    """dst = (s<bits>) src, sign-extended to 64 bits; bits is 8, 16 or 32 (ISA v4)."""
    return _checked(Instruction(AluOp.MOV | Source.X | Class.ALU64, _reg(dst), _reg(src), bits))


def movsx32(dst: Reg, src: Reg, bits: int) -> Instruction:
    """w_dst = (s<bits>) w_src, then zero-extended; bits is 8 or 16 (ISA v4)."""
    return _checked(Instruction(AluOp.MOV | Source.X | Class.ALU, _reg(dst), _reg(src), bits))


def le(dst: Reg, bits: int) -> Instruction:
    """Convert the low ``bits`` (16/32/64) of dst from little-endian to host order."""
    return _checked(Instruction(AluOp.END | Source.K | Class.ALU, _reg(dst), 0, 0, bits))


def be(dst: Reg, bits: int) -> Instruction:
    """Convert the low ``bits`` (16/32/64) of dst from big-endian to host order."""
    return _checked(Instruction(AluOp.END | Source.X | Class.ALU, _reg(dst), 0, 0, bits))


def bswap(dst: Reg, bits: int) -> Instruction:
    """Unconditionally reverse the bytes of the low ``bits`` (16/32/64) of dst (ISA v4)."""
    return _checked(Instruction(AluOp.END | Class.ALU64, _reg(dst), 0, 0, bits))


def addr_space_cast(dst: Reg, src: Reg, dst_as: int, src_as: int) -> Instruction:
    """Convert a pointer between address spaces (BPF arena, Linux 6.9)."""
    return _checked(Instruction(AluOp.MOV | Source.X | Class.ALU64, _reg(dst), _reg(src), 1,
                                (dst_as << 16) | src_as))


# -- memory --------------------------------------------------------------------------------

def ldx(size: Any, dst: Reg, src: Reg, off: int = 0) -> Instruction:
    """dst = *(u<size> *)(src + off), zero-extended."""
    return Instruction(Mode.MEM | _size(size) | Class.LDX, _reg(dst), _reg(src), _off16(off))


def ldxs(size: Any, dst: Reg, src: Reg, off: int = 0) -> Instruction:
    """dst = *(s<size> *)(src + off), sign-extended; size B, H or W (ISA v4)."""
    return _checked(Instruction(Mode.MEMSX | _size(size) | Class.LDX, _reg(dst), _reg(src),
                                _off16(off)))


def st(size: Any, dst: Reg, off: int, imm: int) -> Instruction:
    """*(u<size> *)(dst + off) = imm."""
    return Instruction(Mode.MEM | _size(size) | Class.ST, _reg(dst), 0, _off16(off), _imm32(imm))


def stx(size: Any, dst: Reg, off: int, src: Reg) -> Instruction:
    """*(u<size> *)(dst + off) = src."""
    return Instruction(Mode.MEM | _size(size) | Class.STX, _reg(dst), _reg(src), _off16(off))


def _lddw(dst: Reg, pseudo: int, imm: int, reference: Any = None) -> Instruction:
    return _checked(Instruction(0x18, _reg(dst), pseudo, 0, imm & 0xFFFFFFFFFFFFFFFF,
                                reference=reference))


def lddw(dst: Reg, value: int) -> Instruction:
    """dst = a 64-bit constant (two slots). Negative values are stored two's complement."""
    if isinstance(value, bool) or not isinstance(value, int) or not -(1 << 63) <= value < (1 << 64):
        raise InvalidInstruction(f"lddw value must be a 64-bit int, not {value!r}")
    return _lddw(dst, Pseudo.IMM64, value)


def ld_map_fd(dst: Reg, map_ref: Any, fd: int = 0) -> Instruction:
    """dst = pointer to a map. ``map_ref`` (a map object or name) is kept as the
    instruction's reference and replaced by its fd when the program is loaded."""
    return _lddw(dst, Pseudo.MAP_FD, fd, reference=map_ref)


def ld_map_value(dst: Reg, map_ref: Any, offset: int = 0, fd: int = 0) -> Instruction:
    """dst = address of byte ``offset`` of a map's value (array maps; Linux 5.2)."""
    return _lddw(dst, Pseudo.MAP_VALUE, (offset << 32) | (fd & 0xFFFFFFFF), reference=map_ref)


def ld_map_idx(dst: Reg, index: int) -> Instruction:
    """dst = pointer to the map at ``index`` of the load's fd_array (Linux 5.14)."""
    return _lddw(dst, Pseudo.MAP_IDX, index)


def ld_map_idx_value(dst: Reg, index: int, offset: int = 0) -> Instruction:
    """dst = address in the value of the map at fd_array[index] (Linux 5.14)."""
    return _lddw(dst, Pseudo.MAP_IDX_VALUE, (offset << 32) | index)


def ld_btf_id(dst: Reg, btf_id: int, btf_fd: int = 0) -> Instruction:
    """dst = address of the kernel variable with this BTF id (Linux 5.10)."""
    return _lddw(dst, Pseudo.BTF_ID, (btf_fd << 32) | btf_id)


def ld_func(dst: Reg, target: Target) -> Instruction:
    """dst = address of a subprogram (for callbacks such as bpf_loop; Linux 5.13)."""
    if isinstance(target, str):
        return _lddw(dst, Pseudo.FUNC, 0, reference=target)
    return _lddw(dst, Pseudo.FUNC, target & 0xFFFFFFFF)


def ld_abs(size: Any, imm: int) -> Instruction:
    """Legacy packet load: r0 = ntoh(*(u<size> *)(skb->data + imm))."""
    return _checked(Instruction(Mode.ABS | _size(size) | Class.LD, 0, 0, 0, _imm32(imm)))


def ld_ind(size: Any, src: Reg, imm: int) -> Instruction:
    """Legacy packet load: r0 = ntoh(*(u<size> *)(skb->data + src + imm))."""
    return _checked(Instruction(Mode.IND | _size(size) | Class.LD, 0, _reg(src), 0, _imm32(imm)))


def atomic(op: Union[AtomicOp, str], size: Any, dst: Reg, off: int, src: Reg) -> Instruction:
    """An atomic operation on ``*(size *)(dst + off)`` with ``src`` (W or DW).

    ``op`` is an :class:`AtomicOp` or its name (``"fetch_add"``, ``"cmpxchg"``, ...). The
    fetch forms load the old value into ``src`` (cmpxchg: into r0, compared with r0).
    """
    if isinstance(op, str):
        try:
            op = AtomicOp[op.upper()]
        except KeyError:
            raise InvalidInstruction(f"unknown atomic operation {op!r}") from None
    return _checked(Instruction(Mode.ATOMIC | _size(size) | Class.STX, _reg(dst), _reg(src),
                                _off16(off), int(op)))


def _atomic_fn(op: AtomicOp) -> Any:
    def fn(size: Any, dst: Reg, off: int, src: Reg) -> Instruction:
        return atomic(op, size, dst, off, src)

    fn.__name__ = "atomic_" + op.name.lower()
    fn.__doc__ = f"Atomic {op.name.lower()} on *(size *)(dst + off) with src."
    return fn


atomic_add = _atomic_fn(AtomicOp.ADD)
atomic_or = _atomic_fn(AtomicOp.OR)
atomic_and = _atomic_fn(AtomicOp.AND)
atomic_xor = _atomic_fn(AtomicOp.XOR)
atomic_fetch_add = _atomic_fn(AtomicOp.FETCH_ADD)
atomic_fetch_or = _atomic_fn(AtomicOp.FETCH_OR)
atomic_fetch_and = _atomic_fn(AtomicOp.FETCH_AND)
atomic_fetch_xor = _atomic_fn(AtomicOp.FETCH_XOR)
atomic_xchg = _atomic_fn(AtomicOp.XCHG)
atomic_cmpxchg = _atomic_fn(AtomicOp.CMPXCHG)


def load_acquire(size: Any, dst: Reg, src: Reg, off: int = 0) -> Instruction:
    """dst = load-acquire of *(size *)(src + off) (Linux 6.15)."""
    return _checked(Instruction(Mode.ATOMIC | _size(size) | Class.STX, _reg(dst), _reg(src),
                                _off16(off), AtomicOp.LOAD_ACQ))


def store_release(size: Any, dst: Reg, off: int, src: Reg) -> Instruction:
    """Store-release of src into *(size *)(dst + off) (Linux 6.15)."""
    return _checked(Instruction(Mode.ATOMIC | _size(size) | Class.STX, _reg(dst), _reg(src),
                                _off16(off), AtomicOp.STORE_REL))


# -- control flow --------------------------------------------------------------------------

def _target(target: Target) -> tuple:
    """(offset, reference) for a label name or a numeric offset."""
    if isinstance(target, str):
        return 0, target
    return _off16(target), None


def ja(target: Target) -> Instruction:
    """Unconditional jump (16-bit offset)."""
    off, ref = _target(target)
    return Instruction(JmpOp.JA | Class.JMP, off=off, reference=ref)


def gotol(target: Target) -> Instruction:
    """Unconditional jump with a 32-bit offset (JMP32 JA, ISA v4)."""
    if isinstance(target, str):
        return Instruction(JmpOp.JA | Class.JMP32, reference=target)
    return Instruction(JmpOp.JA | Class.JMP32, imm=_imm32(target, "jump offset"))


def may_goto(target: Target) -> Instruction:
    """Jump while the kernel's loop budget lasts (Linux 6.9)."""
    off, ref = _target(target)
    return Instruction(JmpOp.JCOND | Class.JMP, off=off, reference=ref)


def _jump_fn(op: int, cls: int, name: str) -> Any:
    def fn(dst: Reg, src: RegOrImm, target: Target) -> Instruction:
        off, ref = _target(target)
        d = _reg(dst, "destination")
        if isinstance(src, Reg):
            return Instruction(op | Source.X | cls, d, int(src), off, 0, reference=ref)
        return Instruction(op | Source.K | cls, d, 0, off, _imm32(src), reference=ref)

    width = "32-bit" if cls == Class.JMP32 else "64-bit"
    fn.__name__ = name
    fn.__doc__ = f"Jump to target if dst {name.rstrip('32')[1:]} src ({width} comparison)."
    return fn


jeq = _jump_fn(JmpOp.JEQ, Class.JMP, "jeq")
jgt = _jump_fn(JmpOp.JGT, Class.JMP, "jgt")
jge = _jump_fn(JmpOp.JGE, Class.JMP, "jge")
jset = _jump_fn(JmpOp.JSET, Class.JMP, "jset")
jne = _jump_fn(JmpOp.JNE, Class.JMP, "jne")
jsgt = _jump_fn(JmpOp.JSGT, Class.JMP, "jsgt")
jsge = _jump_fn(JmpOp.JSGE, Class.JMP, "jsge")
jlt = _jump_fn(JmpOp.JLT, Class.JMP, "jlt")
jle = _jump_fn(JmpOp.JLE, Class.JMP, "jle")
jslt = _jump_fn(JmpOp.JSLT, Class.JMP, "jslt")
jsle = _jump_fn(JmpOp.JSLE, Class.JMP, "jsle")
jeq32 = _jump_fn(JmpOp.JEQ, Class.JMP32, "jeq32")
jgt32 = _jump_fn(JmpOp.JGT, Class.JMP32, "jgt32")
jge32 = _jump_fn(JmpOp.JGE, Class.JMP32, "jge32")
jset32 = _jump_fn(JmpOp.JSET, Class.JMP32, "jset32")
jne32 = _jump_fn(JmpOp.JNE, Class.JMP32, "jne32")
jsgt32 = _jump_fn(JmpOp.JSGT, Class.JMP32, "jsgt32")
jsge32 = _jump_fn(JmpOp.JSGE, Class.JMP32, "jsge32")
jlt32 = _jump_fn(JmpOp.JLT, Class.JMP32, "jlt32")
jle32 = _jump_fn(JmpOp.JLE, Class.JMP32, "jle32")
jslt32 = _jump_fn(JmpOp.JSLT, Class.JMP32, "jslt32")
jsle32 = _jump_fn(JmpOp.JSLE, Class.JMP32, "jsle32")


def call(target: Union[str, int]) -> Instruction:
    """Call a kernel helper by name (``"map_lookup_elem"``, ``"bpf_ktime_get_ns"``) or id."""
    hid = helper(target).id if isinstance(target, str) else _imm32(target, "helper id")
    return Instruction(JmpOp.CALL | Class.JMP, src=CallKind.HELPER, imm=hid)


def call_local(target: Target) -> Instruction:
    """Call a BPF subprogram (a label, or a relative slot offset; Linux 4.16)."""
    if isinstance(target, str):
        return Instruction(JmpOp.CALL | Class.JMP, src=CallKind.LOCAL, reference=target)
    return Instruction(JmpOp.CALL | Class.JMP, src=CallKind.LOCAL, imm=_imm32(target))


def call_kfunc(btf_id: int, module_index: int = 0) -> Instruction:
    """Call a kernel function by BTF id; ``module_index`` selects a module BTF in the
    load's fd_array (Linux 5.13)."""
    return Instruction(JmpOp.CALL | Class.JMP, src=CallKind.KFUNC, off=_off16(module_index),
                       imm=_imm32(btf_id, "BTF id"))


def callx(reg: Reg) -> Instruction:
    """Call the address held in a register (RFC 9669 ``callx`` group; not in Linux)."""
    return Instruction(JmpOp.CALL | Source.X | Class.JMP, _reg(reg))


def exit_() -> Instruction:
    """Return r0 to the caller (or end the program)."""
    return Instruction(JmpOp.EXIT | Class.JMP)


# -- assembling a list ---------------------------------------------------------------------

class Label:
    """A marker in a list given to :func:`build`: names the instruction that follows."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Label({self.name!r})"


def build(items: Iterable[Union[Instruction, Label]], *, resolve: bool = True,
          long_jumps: bool = False) -> List[Instruction]:
    """Turn a list of instructions and :class:`Label` markers into a program.

    Labels are attached to the next instruction; with ``resolve`` (the default) the
    program is linked so every label reference becomes an offset. Map references stay.
    """
    out: List[Instruction] = []
    pending: List[str] = []
    for item in items:
        if isinstance(item, Label):
            pending.append(item.name)
            continue
        if pending:
            if item.label is not None:
                pending[:0] = [item.label] if isinstance(item.label, str) else list(item.label)
            item = item.replace(label=pending[0] if len(pending) == 1 else tuple(pending))
            pending = []
        out.append(item)
    if pending:
        raise InvalidInstruction(f"label {pending[0]!r} is not followed by an instruction")
    return link(out, long_jumps=long_jumps) if resolve else out


class Builder:
    """Accumulate instructions with labels and, optionally, the Python line of each call.

    >>> b = Builder()
    >>> b.emit(mov(R0, 0)); b.label("out"); b.emit(exit_())
    >>> program = b.link()
    """

    def __init__(self, *, record_source: bool = False) -> None:
        self._items: List[Union[Instruction, Label]] = []
        self.record_source = record_source

    def emit(self, *instructions: Instruction) -> "Builder":
        """Append instructions (recording the caller's file and line if asked)."""
        source: Optional[SourceLocation] = None
        if self.record_source:
            frame = sys._getframe(1)
            source = SourceLocation(frame.f_code.co_filename, frame.f_lineno)
        for ins in instructions:
            if source is not None and ins.source is None:
                ins = ins.replace(source=source)
            self._items.append(ins)
        return self

    def label(self, name: str) -> "Builder":
        """Name the next instruction."""
        self._items.append(Label(name))
        return self

    def __len__(self) -> int:
        return sum(1 for i in self._items if isinstance(i, Instruction))

    def instructions(self) -> List[Instruction]:
        """The instructions with labels attached, not yet linked."""
        return build(self._items, resolve=False)

    def link(self, *, long_jumps: bool = False) -> List[Instruction]:
        """The linked program (every label reference resolved)."""
        return build(self._items, long_jumps=long_jumps)
