"""The instruction model: one :class:`Instruction` per machine instruction.

A 64-bit immediate load (``lddw``) is a single :class:`Instruction` that occupies two
8-byte slots; its ``imm`` holds the whole 64-bit value. Every other instruction is one
slot with a signed 32-bit ``imm`` and a signed 16-bit ``off``.

Besides the five encoding fields an instruction may carry metadata that is not encoded:

* ``label``: a symbol naming this instruction (a jump target or a function name);
* ``reference``: a symbol this instruction points at and that is resolved later: a label
  for jumps and local calls (the offset is filled in by :func:`pybpf.asm.program.link`),
  or a map (object or name) for map loads (the fd is filled in at program load);
* ``source``: where the instruction came from (:class:`SourceLocation`), so that verifier
  complaints can be mapped back to assembly or Python lines.

Equality and hashing look only at the encoding fields.
"""

from __future__ import annotations

import struct
from typing import Any, NamedTuple, Optional

from .errors import InvalidInstruction
from .opcodes import (
    CLASS_MASK, AluOp, AtomicOp, CallKind, Class, Group, JmpOp, Mode, Pseudo,
    Size, Source,
)

__all__ = ["Instruction", "SourceLocation", "Form", "form_of"]

_SLOT = struct.Struct("<BBhi")


class SourceLocation(NamedTuple):
    """Where an instruction was written: file, 1-based line and column, and the line's text."""

    file: str
    line: int
    column: int = 0
    text: str = ""

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" + (f":{self.column}" if self.column else "")


class Form(NamedTuple):
    """What an encoding means: a canonical name and its RFC 9669 classification.

    ``name`` uses the uBPF/conformance vocabulary (``add32``, ``ldxsb``, ``lock_fetch_add``);
    ``kind`` is the family the printers dispatch on; ``group`` and ``version`` are the RFC
    9669 conformance group and the LLVM ``-mcpu`` ISA version that introduced the form.
    """

    name: str
    kind: str
    group: Group
    version: int


class Instruction:
    """One BPF instruction. See the module docstring for the fields."""

    __slots__ = ("opcode", "dst", "src", "off", "imm", "label", "reference", "source")

    def __init__(self, opcode: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0,
                 *, label: Optional[str] = None, reference: Any = None,
                 source: Optional[SourceLocation] = None) -> None:
        self.opcode = opcode
        self.dst = dst
        self.src = src
        self.off = off
        self.imm = imm
        self.label = label
        self.reference = reference
        self.source = source

    # -- identity -----------------------------------------------------------------------
    def _key(self) -> tuple:
        return (self.opcode, self.dst, self.src, self.off, self.imm)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Instruction):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        extra = ""
        if self.label is not None:
            extra += f", label={self.label!r}"
        if self.reference is not None:
            extra += f", reference={self.reference!r}"
        return (f"Instruction(0x{self.opcode:02x}, dst={self.dst}, src={self.src}, "
                f"off={self.off}, imm={self.imm:#x}{extra})")

    def __str__(self) -> str:
        from .disasm import format_instruction
        return format_instruction(self)

    def replace(self, **changes: Any) -> "Instruction":
        """A copy with some fields changed (metadata is kept unless changed)."""
        new = make_instruction(self.opcode, self.dst, self.src, self.off, self.imm,
                               self.label, self.reference, self.source)
        for name, value in changes.items():
            if name not in _FIELDS:
                raise TypeError(f"Instruction has no field {name!r}")
            setattr(new, name, value)
        return new

    # -- shape --------------------------------------------------------------------------
    @property
    def cls(self) -> Class:
        """The instruction class."""
        return Class(self.opcode & CLASS_MASK)

    @property
    def slots(self) -> int:
        """Number of 8-byte slots: 2 for ``lddw``, else 1."""
        return 2 if self.opcode == 0x18 else 1

    @property
    def is_wide(self) -> bool:
        """True for the two-slot 64-bit immediate load."""
        return self.opcode == 0x18

    @property
    def is_jump(self) -> bool:
        """True for instructions whose ``off`` (or, for gotol, ``imm``) is a branch offset."""
        cls = self.opcode & CLASS_MASK
        if cls not in (Class.JMP, Class.JMP32):
            return False
        op = self.opcode & 0xF0
        return op not in (JmpOp.CALL, JmpOp.EXIT)

    @property
    def is_local_call(self) -> bool:
        """True for a bpf-to-bpf call (``imm`` is a relative instruction offset)."""
        return self.opcode == 0x85 and self.src == CallKind.LOCAL

    @property
    def is_helper_call(self) -> bool:
        """True for a call of a kernel helper by id."""
        return self.opcode == 0x85 and self.src == CallKind.HELPER

    @property
    def form(self) -> Form:
        """The :class:`Form` of this instruction; raises :class:`InvalidInstruction`."""
        return form_of(self.opcode, self.dst, self.src, self.off, self.imm)

    def validate(self) -> Form:
        """Check every field against the encoding rules and return the :class:`Form`."""
        return self.form

    # -- encoding -----------------------------------------------------------------------
    def encode(self) -> bytes:
        """The little-endian bytes of this instruction (8, or 16 for ``lddw``)."""
        try:
            if self.opcode == 0x18:
                imm = self.imm & 0xFFFFFFFFFFFFFFFF
                lo = imm & 0xFFFFFFFF
                hi = imm >> 32
                return (_SLOT.pack(0x18, (self.src << 4) | self.dst, self.off,
                                   lo - 0x100000000 if lo & 0x80000000 else lo)
                        + _SLOT.pack(0, 0, 0, hi - 0x100000000 if hi & 0x80000000 else hi))
            return _SLOT.pack(self.opcode, (self.src << 4) | self.dst, self.off, self.imm)
        except struct.error as exc:
            raise InvalidInstruction(f"cannot encode {self!r}: {exc}") from None


# ---------------------------------------------------------------------------------------
# The encoding rules. form_of() is the single authority on what is a valid instruction;
# the decoder, the assemblers and the builder all go through it.
# ---------------------------------------------------------------------------------------

_ALU_NAMES = {
    AluOp.ADD: "add", AluOp.SUB: "sub", AluOp.MUL: "mul", AluOp.DIV: "div", AluOp.OR: "or",
    AluOp.AND: "and", AluOp.LSH: "lsh", AluOp.RSH: "rsh", AluOp.NEG: "neg", AluOp.MOD: "mod",
    AluOp.XOR: "xor", AluOp.MOV: "mov", AluOp.ARSH: "arsh",
}
_JMP_NAMES = {
    JmpOp.JEQ: "jeq", JmpOp.JGT: "jgt", JmpOp.JGE: "jge", JmpOp.JSET: "jset", JmpOp.JNE: "jne",
    JmpOp.JSGT: "jsgt", JmpOp.JSGE: "jsge", JmpOp.JLT: "jlt", JmpOp.JLE: "jle",
    JmpOp.JSLT: "jslt", JmpOp.JSLE: "jsle",
}
_V2_JUMPS = (JmpOp.JLT, JmpOp.JLE, JmpOp.JSLT, JmpOp.JSLE)
_SIZE_SUFFIX = {Size.W: "w", Size.H: "h", Size.B: "b", Size.DW: "dw"}
_SIZE_BITS = {Size.W: 32, Size.H: 16, Size.B: 8, Size.DW: 64}
_ATOMIC_NAMES = {
    AtomicOp.ADD: "add", AtomicOp.OR: "or", AtomicOp.AND: "and", AtomicOp.XOR: "xor",
    AtomicOp.FETCH_ADD: "fetch_add", AtomicOp.FETCH_OR: "fetch_or",
    AtomicOp.FETCH_AND: "fetch_and", AtomicOp.FETCH_XOR: "fetch_xor",
    AtomicOp.XCHG: "xchg", AtomicOp.CMPXCHG: "cmpxchg",
}

def _need(cond: bool, what: str) -> None:
    if not cond:
        raise InvalidInstruction(what)


def _reg_ok(value: int, field: str) -> None:
    if not 0 <= value <= 10:
        raise InvalidInstruction(f"{field} register r{value} does not exist (r0-r10)")


def _zero(value: int, field: str, what: str) -> None:
    if value != 0:
        raise InvalidInstruction(f"{what} does not use {field}, which must be 0 (is {value})")


def form_of(opcode: int, dst: int, src: int, off: int, imm: int) -> Form:
    """Classify an encoding, or raise :class:`InvalidInstruction` saying which rule it breaks.

    ``imm`` is the full 64-bit value for ``lddw`` (opcode 0x18) and the signed 32-bit
    immediate otherwise.
    """
    if not -0x8000 <= off <= 0x7FFF:
        raise InvalidInstruction(f"offset {off} does not fit in a signed 16-bit field")
    if opcode == 0x18:
        if not -(1 << 63) <= imm < (1 << 64):
            raise InvalidInstruction(f"immediate {imm:#x} does not fit in 64 bits")
    elif not -0x80000000 <= imm <= 0x7FFFFFFF:
        raise InvalidInstruction(f"immediate {imm:#x} does not fit in a signed 32-bit field")
    if not 0 <= dst <= 15 or not 0 <= src <= 15:
        raise InvalidInstruction("register fields are 4 bits wide")
    cls = opcode & CLASS_MASK
    if cls in (Class.ALU, Class.ALU64):
        return _alu_form(opcode, cls, dst, src, off, imm)
    if cls in (Class.JMP, Class.JMP32):
        return _jmp_form(opcode, cls, dst, src, off, imm)
    return _mem_form(opcode, cls, dst, src, off, imm)


def _alu_form(opcode: int, cls: int, dst: int, src: int, off: int, imm: int) -> Form:
    op = opcode & 0xF0
    is64 = cls == Class.ALU64
    x = bool(opcode & Source.X)
    sfx = "" if is64 else "32"
    group = Group.BASE64 if is64 else Group.BASE32
    _reg_ok(dst, "destination")
    if op == AluOp.NEG:
        what = "neg"
        _need(not x, f"opcode {opcode:#04x}: neg takes no source operand (use the K form)")
        _zero(src, "src", what)
        _zero(off, "off", what)
        _zero(imm, "imm", what)
        return Form("neg" + sfx, "neg", group, 1)
    if op == AluOp.END:
        _zero(src, "src", "a byte swap")
        _zero(off, "off", "a byte swap")
        _need(imm in (16, 32, 64), f"byte swap width must be 16, 32 or 64 (imm is {imm})")
        grp = Group.BASE64 if imm == 64 else Group.BASE32
        if is64:
            _need(not x, f"opcode {opcode:#04x} is not defined (ALU64 END with source X)")
            return Form(f"bswap{imm}", "bswap", grp, 4)
        return Form(f"{'be' if x else 'le'}{imm}", "end", grp, 1)
    if op not in _ALU_NAMES:
        raise InvalidInstruction(f"opcode {opcode:#04x}: unknown ALU operation {op >> 4:#x}")
    name = _ALU_NAMES[op]
    if x:
        _reg_ok(src, "source")
        if not (op == AluOp.MOV and is64 and off == 1):  # addr_space_cast: imm = the spaces
            _zero(imm, "imm", f"{name}{sfx} with a register source")
    else:
        _zero(src, "src", f"{name}{sfx} with an immediate source")
    if op in (AluOp.MUL, AluOp.DIV, AluOp.MOD):
        group = Group.DIVMUL64 if is64 else Group.DIVMUL32
    if op in (AluOp.DIV, AluOp.MOD):
        _need(off in (0, 1), f"{name}{sfx}: off must be 0 (unsigned) or 1 (signed), not {off}")
        if off == 1:
            return Form("s" + name + sfx, "alu", group, 4)
        return Form(name + sfx, "alu", group, 1)
    if op == AluOp.MOV and x and off != 0:
        if is64 and off == 1:
            # imm = dst_space << 16 | src_space; Linux converts only between spaces 0 and 1
            _need(imm in (0x1, 0x10000), "addr_space_cast converts between address spaces "
                  f"0 and 1 only (imm must be 0x1 or 0x10000, not {imm:#x})")
            return Form("addr_space_cast", "addr_space_cast", Group.LINUX, 4)
        widths = (8, 16, 32) if is64 else (8, 16)
        _need(off in widths, f"mov{sfx}: sign-extension width must be one of {widths}, not {off}")
        return Form(f"movsx{off}{64 if is64 else 32}", "movsx", group, 4)
    if op == AluOp.MOV and x:
        return Form(name + sfx, "alu", group, 1)
    _zero(off, "off", f"{name}{sfx}")
    return Form(name + sfx, "alu", group, 1)


def _jmp_form(opcode: int, cls: int, dst: int, src: int, off: int, imm: int) -> Form:
    op = opcode & 0xF0
    is32 = cls == Class.JMP32
    x = bool(opcode & Source.X)
    if op == JmpOp.JA:
        _need(not x, f"opcode {opcode:#04x} is not defined (ja with source X)")
        _zero(dst, "dst", "ja")
        _zero(src, "src", "ja")
        if is32:
            _zero(off, "off", "gotol (the target is in imm)")
            return Form("ja32", "gotol", Group.BASE32, 4)
        _zero(imm, "imm", "ja")
        return Form("ja", "ja", Group.BASE32, 1)
    if op == JmpOp.CALL:
        _need(not is32, f"opcode {opcode:#04x} is not defined (call in class JMP32)")
        if x:
            _reg_ok(dst, "destination")
            _zero(src, "src", "callx")
            _zero(off, "off", "callx")
            _zero(imm, "imm", "callx (the target is in dst)")
            return Form("callx", "callx", Group.CALLX, 1)
        _zero(dst, "dst", "call")
        if src == CallKind.HELPER:
            _zero(off, "off", "a helper call")
            return Form("call", "call", Group.BASE32, 1)
        if src == CallKind.LOCAL:
            _zero(off, "off", "a local call")
            return Form("call_local", "call", Group.BASE32, 1)
        if src == CallKind.KFUNC:
            return Form("call_kfunc", "call", Group.BASE32, 1)
        raise InvalidInstruction(f"call: src must be 0 (helper), 1 (local) or 2 (kfunc), not {src}")
    if op == JmpOp.EXIT:
        _need(not is32 and not x, f"opcode {opcode:#04x} is not defined (exit variant)")
        _zero(dst, "dst", "exit")
        _zero(src, "src", "exit")
        _zero(off, "off", "exit")
        _zero(imm, "imm", "exit")
        return Form("exit", "exit", Group.BASE32, 1)
    if op == JmpOp.JCOND:
        _need(not is32 and not x, f"opcode {opcode:#04x} is not defined (jcond variant)")
        _need(src == 0, f"jcond: src {src} is not a known condition (0 is may_goto)")
        _zero(dst, "dst", "may_goto")
        _zero(imm, "imm", "may_goto")
        return Form("may_goto", "may_goto", Group.LINUX, 4)
    if op not in _JMP_NAMES:
        raise InvalidInstruction(f"opcode {opcode:#04x}: unknown jump operation {op >> 4:#x}")
    name = _JMP_NAMES[op] + ("32" if is32 else "")
    _reg_ok(dst, "destination")
    if x:
        _reg_ok(src, "source")
        _zero(imm, "imm", f"{name} with a register source")
    else:
        _zero(src, "src", f"{name} with an immediate source")
    if is32:
        return Form(name, "jcmp", Group.BASE32, 3)
    return Form(name, "jcmp", Group.BASE64, 2 if op in _V2_JUMPS else 1)


def _mem_form(opcode: int, cls: int, dst: int, src: int, off: int, imm: int) -> Form:
    mode = opcode & 0xE0
    size = opcode & 0x18
    sfx = _SIZE_SUFFIX[Size(size)]
    if cls == Class.LD:
        if mode == Mode.IMM:
            _need(size == Size.DW, f"opcode {opcode:#04x} is not defined (LD IMM needs size DW)")
            _reg_ok(dst, "destination")
            _zero(off, "off", "lddw")
            _need(src <= 6, f"lddw: src {src} is not a known pseudo source (0-6)")
            if src in (Pseudo.MAP_FD, Pseudo.MAP_IDX, Pseudo.FUNC):
                _need((imm & 0xFFFFFFFFFFFFFFFF) >> 32 == 0,
                      f"lddw with pseudo source {src}: the second slot's imm must be 0")
            return Form("lddw", "lddw", Group.BASE64, 1)
        if mode in (Mode.ABS, Mode.IND):
            _need(size != Size.DW, f"opcode {opcode:#04x} is not defined (legacy packet load of DW)")
            _zero(dst, "dst", "a legacy packet load (the result goes to r0)")
            _zero(off, "off", "a legacy packet load")
            if mode == Mode.ABS:
                _zero(src, "src", "ldabs")
                return Form("ldabs" + sfx, "ldabs", Group.PACKET, 1)
            _reg_ok(src, "source")
            return Form("ldind" + sfx, "ldind", Group.PACKET, 1)
        raise InvalidInstruction(f"opcode {opcode:#04x} is not defined (LD class, mode {mode:#x})")
    _reg_ok(dst, "destination")
    grp = Group.BASE64 if size == Size.DW else Group.BASE32
    if cls == Class.LDX:
        _reg_ok(src, "source")
        if mode == Mode.MEM:
            _zero(imm, "imm", "ldx" + sfx)
            return Form("ldx" + sfx, "ldx", grp, 1)
        if mode == Mode.MEMSX:
            _need(size != Size.DW, f"opcode {opcode:#04x} is not defined (sign-extending DW load)")
            _zero(imm, "imm", "ldxs" + sfx)
            return Form("ldxs" + sfx, "ldxsx", grp, 4)
        raise InvalidInstruction(f"opcode {opcode:#04x} is not defined (LDX class, mode {mode:#x})")
    if cls == Class.ST:
        _need(mode == Mode.MEM, f"opcode {opcode:#04x} is not defined (ST class, mode {mode:#x})")
        _zero(src, "src", "st" + sfx)
        return Form("st" + sfx, "st", grp, 1)
    # STX
    _reg_ok(src, "source")
    if mode == Mode.MEM:
        _zero(imm, "imm", "stx" + sfx)
        return Form("stx" + sfx, "stx", grp, 1)
    if mode == Mode.ATOMIC:
        if imm in (AtomicOp.LOAD_ACQ, AtomicOp.STORE_REL):
            bits = _SIZE_BITS[Size(size)]
            kind = "load_acquire" if imm == AtomicOp.LOAD_ACQ else "store_release"
            return Form(f"{kind}{bits}", kind, Group.LINUX, 4)
        _need(size in (Size.W, Size.DW),
              f"opcode {opcode:#04x}: atomic {_SIZE_BITS[Size(size)]}-bit operations are only "
              "load-acquire (imm 0x100) and store-release (imm 0x110)")
        _need(imm in _ATOMIC_NAMES, f"atomic: imm {imm:#x} is not a known atomic operation")
        is32 = size == Size.W
        version = 1 if imm == AtomicOp.ADD else 3
        return Form("lock_" + _ATOMIC_NAMES[AtomicOp(imm)] + ("32" if is32 else ""), "atomic",
                    Group.ATOMIC32 if is32 else Group.ATOMIC64, version)
    raise InvalidInstruction(f"opcode {opcode:#04x} is not defined (STX class, mode {mode:#x})")



_FIELDS = frozenset(Instruction.__slots__)
_new = object.__new__


def make_instruction(opcode: int, dst: int, src: int, off: int, imm: int,
                     label: Optional[str], reference: Any,
                     source: Optional[SourceLocation]) -> Instruction:
    """``Instruction(opcode, dst, src, off, imm, label=label, reference=reference,
    source=source)``, every field given by position: the compiler's back end makes
    thousands, and this is about twice as fast as the keyword call of the class."""
    ins = _new(Instruction)
    ins.opcode = opcode
    ins.dst = dst
    ins.src = src
    ins.off = off
    ins.imm = imm
    ins.label = label
    ins.reference = reference
    ins.source = source
    return ins
