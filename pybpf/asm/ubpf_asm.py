"""The uBPF assembly dialect, as written by the BPF conformance suite.

One instruction per line, operands separated by commas, registers written ``%r0`` to
``%r10``, memory operands ``[%rN]``, ``[%rN+off]`` or ``[%rN-off]``::

    # comments start with '#' (or ';') and run to the end of the line
    mov %r0, 0
    ldxw %r1, [%r1+4]
    jeq %r1, 0x2a, done         # a label ...
    jne %r1, 3, +1              # ... or a signed slot offset
    lock fetch add [%r10-8], %r1
    call local helper_fn        # bpf-to-bpf call; 'call 5' calls helper 5
    done:
    exit

Mnemonics (``NN`` is a width, ``32`` selects the 32-bit ALU/JMP32 class):

* ALU: ``add sub mul div sdiv mod smod or and lsh rsh xor mov arsh`` and their ``32``
  forms (``dst, src|imm``); ``neg``/``neg32`` (``dst``); ``movsx832 movsx1632 movsx864
  movsx1664 movsx3264`` (``dst, src``); ``le16/32/64`` and ``be16/32/64`` (ALU class),
  ``bswap16/32/64`` (ALU64 class, alias ``swap16/32/64``); ``addr_space_cast dst, src,
  dst_as, src_as``.
* Memory: ``ldxb ldxh ldxw ldxdw`` and ``ldxsb ldxsh ldxsw`` (``dst, [src+off]``); ``stb sth
  stw stdw`` (``[dst+off], imm``); ``stxb stxh stxw stxdw`` (``[dst+off], src``); ``lddw
  dst, imm64`` or ``lddw dst, map_fd(N)`` (also ``map_value(fd, off)``, ``btf_id(N)``,
  ``func(label)``, ``map_idx(N)``, ``map_idx_value(idx, off)``); legacy packet loads
  ``ldabsb/h/w imm`` and ``ldindb/h/w src, imm``; ``load_acquire8/16/32/64 dst, [src+off]``
  and ``store_release8/16/32/64 [dst+off], src``.
* Atomics: ``lock [fetch] add|and|or|xor[32] [dst+off], src``, ``lock xchg[32] ...``,
  ``lock cmpxchg[32] ...`` (compares with and returns in ``%r0``).
* Jumps: ``ja target``; ``ja32 target`` (gotol, 32-bit offset); ``jeq jgt jge jset jne jsgt
  jsge jlt jle jslt jsle`` and their ``32`` forms (``dst, src|imm, target``); ``may_goto
  target``. A target is a label or ``+N``/``-N`` slots from the next instruction.
* Calls: ``call N`` (helper id, or ``call helper N``, or a helper name such as
  ``call bpf_ktime_get_ns``), ``call local target`` (bpf-to-bpf), ``call kfunc ID[, OFF]``
  (``runtime`` is accepted for ``kfunc``), ``call %rN`` (callx; the register goes in the
  ``dst`` field as LLVM 19 encodes it); ``exit``.

Numbers are decimal, ``0x`` hex, ``0b`` binary or ``0o`` octal, optionally signed. A
decimal immediate must fit its field as a signed value; a hex (or binary/octal) one may
also be the field's unsigned bit pattern, so ``mov32 %r0, 0xffffffff`` is ``-1`` while
``mov32 %r0, 4294967295`` is an error. Offsets are signed 16-bit values in either base.

As in the conformance suite's own assembler, a jump to the undefined label ``exit``
goes to the first ``exit`` instruction of the program.
"""

from __future__ import annotations

import difflib
import re
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

from .errors import AssemblyError
from .instruction import Instruction, SourceLocation, form_of
from .opcodes import (
    AluOp, AtomicOp, CallKind, Class, JmpOp, Mode, Pseudo, Size, Source,
)
from .textutil import finish, parse_number, strip_comment

__all__ = ["parse", "assemble", "format_ubpf", "format_program", "MNEMONICS"]

_COMMENT_MARKERS = ("#", ";")
_IDENT = re.compile(r"[A-Za-z_.$][\w.$]*\Z")
_LABEL_DEF = re.compile(r"\s*([A-Za-z_.$][\w.$]*)\s*:")
_REG = re.compile(r"%r(\d+)\Z")
_PSEUDO_CALL = re.compile(r"([A-Za-z_]\w*)\s*\((.*)\)\Z")

_INT16 = (-0x8000, 0x7FFF)
_INT32 = (-0x80000000, 0x7FFFFFFF)
_INT64 = (-(1 << 63), (1 << 63) - 1)

_SIZES = {"b": Size.B, "h": Size.H, "w": Size.W, "dw": Size.DW}
_SIZE_LETTER = {Size.B: "b", Size.H: "h", Size.W: "w", Size.DW: "dw"}
_BITS_SIZE = {8: Size.B, 16: Size.H, 32: Size.W, 64: Size.DW}
_SIZE_BITS = {v: k for k, v in _BITS_SIZE.items()}

_PSEUDO_NAMES = {
    "map_fd": Pseudo.MAP_FD, "map_value": Pseudo.MAP_VALUE, "btf_id": Pseudo.BTF_ID,
    "func": Pseudo.FUNC, "map_idx": Pseudo.MAP_IDX, "map_idx_value": Pseudo.MAP_IDX_VALUE,
}
_PSEUDO_SPELLING = {int(v): k for k, v in _PSEUDO_NAMES.items()}


# ---------------------------------------------------------------------------------------
# Operands
# ---------------------------------------------------------------------------------------

class _Operand(NamedTuple):
    text: str
    column: int   # 1-based column in the source line


class _Line:
    """One source line being assembled: where it is, for error messages."""

    def __init__(self, file: str, number: int, text: str) -> None:
        self.file = file
        self.number = number
        self.text = text

    def error(self, message: str, column: int = 0, expected: Optional[str] = None) -> AssemblyError:
        return AssemblyError(message, file=self.file, line=self.number, column=column,
                             text=self.text, expected=expected)

    def location(self, column: int) -> SourceLocation:
        return SourceLocation(self.file, self.number, column, self.text)


def _split_operands(text: str, start_column: int) -> List[_Operand]:
    """Split on commas that are not inside brackets or parentheses."""
    out: List[_Operand] = []
    depth = 0
    begin = 0
    for i, ch in enumerate(text + ","):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif ch == "," and depth <= 0:
            piece = text[begin:i]
            stripped = piece.strip()
            lead = len(piece) - len(piece.lstrip())
            out.append(_Operand(stripped, start_column + begin + lead))
            begin = i + 1
    if len(out) == 1 and not out[0].text:
        return []
    return out


def _is_bit_pattern(token: str) -> bool:
    """True for an unsigned hex, binary or octal literal (may be a field's bit pattern)."""
    t = token.strip().lower()
    return t[:2] in ("0x", "0b", "0o")


def _number(line: _Line, op: _Operand, what: str) -> int:
    value = parse_number(op.text)
    if value is None:
        raise line.error(f"{what} {op.text!r} is not a number", op.column,
                         "a decimal, 0x hex, 0b binary or 0o octal integer")
    return value


def _imm(line: _Line, op: _Operand, bits: int = 32, what: str = "immediate") -> int:
    """A signed immediate of ``bits`` bits; a bit-pattern literal may use the unsigned range."""
    value = _number(line, op, what)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if lo <= value <= hi:
        return value
    if _is_bit_pattern(op.text) and 0 <= value < (1 << bits):
        return value - (1 << bits) if value > hi else value
    raise line.error(f"{what} {op.text} does not fit in {bits} bits", op.column,
                     f"a decimal from {lo} to {hi} or a hex bit pattern up to "
                     f"{(1 << bits) - 1:#x}")


def _signed(line: _Line, op: _Operand, bounds: Tuple[int, int], what: str) -> int:
    value = _number(line, op, what)
    lo, hi = bounds
    if not lo <= value <= hi:
        raise line.error(f"{what} {op.text} is out of range", op.column,
                         f"a value from {lo} to {hi}")
    return value


def _reg(line: _Line, op: _Operand, role: str = "register") -> int:
    m = _REG.match(op.text)
    if not m:
        if not op.text:
            raise line.error(f"missing {role}", op.column, "a register %r0 to %r10")
        raise line.error(f"invalid {role} {op.text!r}", op.column, "a register %r0 to %r10")
    n = int(m.group(1))
    if n > 10:
        raise line.error(f"invalid {role} {op.text!r}: there are only %r0 to %r10", op.column,
                         "a register %r0 to %r10")
    return n


def _is_reg(op: _Operand) -> bool:
    return op.text.startswith("%")


def _mem(line: _Line, op: _Operand) -> Tuple[int, int]:
    """``[%rN]``, ``[%rN+off]`` or ``[%rN-off]`` -> (register, offset)."""
    t = op.text
    if not (t.startswith("[") and t.endswith("]")):
        raise line.error(f"expected a memory operand, got {t!r}", op.column,
                         "[%rN], [%rN+off] or [%rN-off]")
    inner = t[1:-1]
    m = re.match(r"\s*(%?\w+)\s*(.*?)\s*\Z", inner)
    if not m:
        raise line.error(f"malformed memory operand {t!r}", op.column,
                         "[%rN], [%rN+off] or [%rN-off]")
    reg = _reg(line, _Operand(m.group(1), op.column + 1 + m.start(1)), "base register")
    rest = m.group(2)
    if not rest:
        return reg, 0
    if rest[0] not in "+-":
        raise line.error(f"malformed memory operand {t!r}", op.column,
                         "[%rN], [%rN+off] or [%rN-off]")
    sign = -1 if rest[0] == "-" else 1
    num = rest[1:].strip()
    value = parse_number(num)
    if value is None:
        raise line.error(f"offset {rest!r} is not a number", op.column,
                         "[%rN+off] with a decimal or 0x hex offset")
    value *= sign
    if not _INT16[0] <= value <= _INT16[1]:
        raise line.error(f"offset {rest} does not fit in a signed 16-bit field", op.column,
                         "an offset from -32768 to 32767")
    return reg, value


def _target(line: _Line, op: _Operand, bounds: Tuple[int, int] = _INT16
            ) -> Tuple[int, Optional[str]]:
    """A jump target: (offset, None) for ``+N``/``-N``/``N``, (0, label) for a label."""
    t = op.text
    if not t:
        raise line.error("missing jump target", op.column, "a label or +N/-N")
    if parse_number(t) is not None:
        value = parse_number(t)
        assert value is not None
        if not bounds[0] <= value <= bounds[1]:
            raise line.error(f"jump offset {t} is out of range", op.column,
                             f"a signed offset from {bounds[0]} to {bounds[1]}")
        return value, None
    if _IDENT.match(t):
        return 0, t
    raise line.error(f"invalid jump target {t!r}", op.column, "a label or +N/-N")


# ---------------------------------------------------------------------------------------
# Mnemonic handlers: each takes (line, mnemonic column, operands) and returns an Instruction
# ---------------------------------------------------------------------------------------

_Handler = Callable[[_Line, int, List[_Operand]], Instruction]


class _Spec(NamedTuple):
    syntax: str          # shown as "expected ..." in operand errors
    count: int           # number of operands
    handler: _Handler


MNEMONICS: Dict[str, _Spec] = {}
"""Every mnemonic of the dialect (``lock`` forms under ``lock <op>``) and its syntax."""

_ALU_OPS = {
    "add": (AluOp.ADD, 0), "sub": (AluOp.SUB, 0), "mul": (AluOp.MUL, 0),
    "div": (AluOp.DIV, 0), "sdiv": (AluOp.DIV, 1), "mod": (AluOp.MOD, 0),
    "smod": (AluOp.MOD, 1), "or": (AluOp.OR, 0), "and": (AluOp.AND, 0),
    "lsh": (AluOp.LSH, 0), "rsh": (AluOp.RSH, 0), "xor": (AluOp.XOR, 0),
    "mov": (AluOp.MOV, 0), "arsh": (AluOp.ARSH, 0),
}
_JMP_OPS = {
    "jeq": JmpOp.JEQ, "jgt": JmpOp.JGT, "jge": JmpOp.JGE, "jset": JmpOp.JSET,
    "jne": JmpOp.JNE, "jsgt": JmpOp.JSGT, "jsge": JmpOp.JSGE, "jlt": JmpOp.JLT,
    "jle": JmpOp.JLE, "jslt": JmpOp.JSLT, "jsle": JmpOp.JSLE,
}
_ATOMIC_OPS = {
    "add": AtomicOp.ADD, "and": AtomicOp.AND, "or": AtomicOp.OR, "xor": AtomicOp.XOR,
    "xchg": AtomicOp.XCHG, "cmpxchg": AtomicOp.CMPXCHG,
}


def _define(name: str, syntax: str, count: int) -> Callable[[_Handler], _Handler]:
    def register(fn: _Handler) -> _Handler:
        MNEMONICS[name] = _Spec(syntax, count, fn)
        return fn
    return register


def _alu(op: int, cls: int, off: int) -> _Handler:
    def handler(line: _Line, col: int, ops: List[_Operand]) -> Instruction:
        dst = _reg(line, ops[0], "destination register")
        if _is_reg(ops[1]):
            src = _reg(line, ops[1], "source register")
            return Instruction(op | Source.X | cls, dst, src, off, 0)
        return Instruction(op | Source.K | cls, dst, 0, off, _imm(line, ops[1]))
    return handler


def _neg(cls: int) -> _Handler:
    def handler(line: _Line, col: int, ops: List[_Operand]) -> Instruction:
        return Instruction(AluOp.NEG | cls, _reg(line, ops[0], "destination register"))
    return handler


def _movsx(cls: int, width: int) -> _Handler:
    def handler(line: _Line, col: int, ops: List[_Operand]) -> Instruction:
        return Instruction(AluOp.MOV | Source.X | cls, _reg(line, ops[0], "destination register"),
                           _reg(line, ops[1], "source register"), width, 0)
    return handler


def _end(cls: int, source: int, width: int) -> _Handler:
    def handler(line: _Line, col: int, ops: List[_Operand]) -> Instruction:
        return Instruction(AluOp.END | source | cls, _reg(line, ops[0], "destination register"),
                           0, 0, width)
    return handler


def _addr_space_cast(line: _Line, col: int, ops: List[_Operand]) -> Instruction:
    dst = _reg(line, ops[0], "destination register")
    src = _reg(line, ops[1], "source register")
    dst_as = _signed(line, ops[2], (0, 0xFFFF), "address space")
    src_as = _signed(line, ops[3], (0, 0xFFFF), "address space")
    imm = (dst_as << 16) | src_as
    if imm & 0x80000000:
        imm -= 1 << 32
    return Instruction(AluOp.MOV | Source.X | Class.ALU64, dst, src, 1, imm)


def _jcmp(op: int, cls: int) -> _Handler:
    def handler(line: _Line, col: int, ops: List[_Operand]) -> Instruction:
        dst = _reg(line, ops[0], "destination register")
        off, label = _target(line, ops[2])
        if _is_reg(ops[1]):
            src = _reg(line, ops[1], "source register")
            return Instruction(op | Source.X | cls, dst, src, off, 0, reference=label)
        return Instruction(op | Source.K | cls, dst, 0, off, _imm(line, ops[1]), reference=label)
    return handler


def _ja(line: _Line, col: int, ops: List[_Operand]) -> Instruction:
    off, label = _target(line, ops[0])
    return Instruction(JmpOp.JA | Class.JMP, 0, 0, off, 0, reference=label)


def _ja32(line: _Line, col: int, ops: List[_Operand]) -> Instruction:
    imm, label = _target(line, ops[0], _INT32)
    return Instruction(JmpOp.JA | Class.JMP32, 0, 0, 0, imm, reference=label)


def _may_goto(line: _Line, col: int, ops: List[_Operand]) -> Instruction:
    off, label = _target(line, ops[0])
    return Instruction(JmpOp.JCOND | Class.JMP, 0, 0, off, 0, reference=label)


def _exit(line: _Line, col: int, ops: List[_Operand]) -> Instruction:
    return Instruction(JmpOp.EXIT | Class.JMP)


_CALL_SYNTAX = ("call N, call helper N, call local LABEL, call kfunc ID[, OFF] "
                "or call %rN")


def _call(line: _Line, col: int, ops: List[_Operand]) -> Instruction:
    if not 1 <= len(ops) <= 2 or not ops[0].text:
        raise line.error(f"call takes 1 operand, got {len(ops)}", col, _CALL_SYNTAX)
    first = ops[0]
    words = first.text.split(None, 1)
    mode = words[0] if len(words) == 2 else None
    if mode is None and len(ops) == 2:
        raise line.error("only 'call kfunc ID, OFF' takes a second operand", ops[1].column,
                         _CALL_SYNTAX)
    if mode is None and first.text in ("local", "helper", "kfunc", "runtime"):
        raise line.error(f"call {first.text} needs a target", first.column, _CALL_SYNTAX)
    if mode is not None:
        arg = _Operand(words[1].strip(), first.column + first.text.index(words[1]))
        if mode == "local":
            if len(ops) == 2:
                raise line.error("call local takes one target", ops[1].column, _CALL_SYNTAX)
            off, label = _target(line, arg, _INT32)
            return Instruction(JmpOp.CALL | Class.JMP, 0, CallKind.LOCAL, 0, off, reference=label)
        if mode == "helper":
            if len(ops) == 2:
                raise line.error("call helper takes one operand", ops[1].column, _CALL_SYNTAX)
            return _call_helper(line, arg)
        if mode in ("kfunc", "runtime"):
            off = _signed(line, ops[1], _INT16, "kfunc offset") if len(ops) == 2 else 0
            return Instruction(JmpOp.CALL | Class.JMP, 0, CallKind.KFUNC, off,
                               _imm(line, arg, what="kfunc id"))
        raise line.error(f"unknown call kind {mode!r}", first.column, _CALL_SYNTAX)
    if _is_reg(first):
        return Instruction(JmpOp.CALL | Source.X | Class.JMP,
                           _reg(line, first, "call target register"))
    return _call_helper(line, first)


def _callx(line: _Line, col: int, ops: List[_Operand]) -> Instruction:
    return Instruction(JmpOp.CALL | Source.X | Class.JMP,
                       _reg(line, ops[0], "call target register"))


def _call_helper(line: _Line, op: _Operand) -> Instruction:
    if parse_number(op.text) is not None:
        return Instruction(JmpOp.CALL | Class.JMP, 0, CallKind.HELPER, 0,
                           _imm(line, op, what="helper id"))
    if _IDENT.match(op.text):
        from .helpers import helper
        try:
            number = helper(op.text).id
        except KeyError as exc:
            raise line.error(str(exc.args[0]), op.column,
                             "a helper id or name; write 'call local NAME' to call a "
                             "function of this program") from None
        return Instruction(JmpOp.CALL | Class.JMP, 0, CallKind.HELPER, 0, number)
    raise line.error(f"invalid call target {op.text!r}", op.column, _CALL_SYNTAX)


def _ldx(size: int, mode: int) -> _Handler:
    def handler(line: _Line, col: int, ops: List[_Operand]) -> Instruction:
        dst = _reg(line, ops[0], "destination register")
        src, off = _mem(line, ops[1])
        return Instruction(mode | size | Class.LDX, dst, src, off, 0)
    return handler


def _st(size: int) -> _Handler:
    def handler(line: _Line, col: int, ops: List[_Operand]) -> Instruction:
        dst, off = _mem(line, ops[0])
        return Instruction(Mode.MEM | size | Class.ST, dst, 0, off, _imm(line, ops[1]))
    return handler


def _stx(size: int) -> _Handler:
    def handler(line: _Line, col: int, ops: List[_Operand]) -> Instruction:
        dst, off = _mem(line, ops[0])
        src = _reg(line, ops[1], "source register")
        return Instruction(Mode.MEM | size | Class.STX, dst, src, off, 0)
    return handler


def _ldabs(size: int) -> _Handler:
    def handler(line: _Line, col: int, ops: List[_Operand]) -> Instruction:
        return Instruction(Mode.ABS | size | Class.LD, 0, 0, 0, _imm(line, ops[0]))
    return handler


def _ldind(size: int) -> _Handler:
    def handler(line: _Line, col: int, ops: List[_Operand]) -> Instruction:
        src = _reg(line, ops[0], "source register")
        return Instruction(Mode.IND | size | Class.LD, 0, src, 0, _imm(line, ops[1]))
    return handler


def _lddw(line: _Line, col: int, ops: List[_Operand]) -> Instruction:
    dst = _reg(line, ops[0], "destination register")
    op = ops[1]
    m = _PSEUDO_CALL.match(op.text)
    if m is None:
        value = _imm(line, op, 64)
        return Instruction(0x18, dst, 0, 0, value & 0xFFFFFFFFFFFFFFFF)
    name = m.group(1)
    if name not in _PSEUDO_NAMES:
        raise line.error(f"unknown lddw pseudo source {name!r}", op.column,
                         ", ".join(f"{n}(...)" for n in _PSEUDO_NAMES))
    src = _PSEUDO_NAMES[name]
    args = _split_operands(m.group(2), op.column + m.start(2))
    if not 1 <= len(args) <= 2:
        raise line.error(f"{name}() takes 1 or 2 numbers, got {len(args)}", op.column,
                         f"{name}(N) or {name}(N, HIGH)")
    if src == Pseudo.FUNC and len(args) == 1 and parse_number(args[0].text) is None:
        off, label = _target(line, args[0], _INT32)
        return Instruction(0x18, dst, src, 0, off & 0xFFFFFFFF, reference=label)
    low = _imm(line, args[0], what=f"{name} value") & 0xFFFFFFFF
    high = _imm(line, args[1], what=f"{name} high word") & 0xFFFFFFFF if len(args) == 2 else 0
    return Instruction(0x18, dst, src, 0, (high << 32) | low)


def _acquire(size: int) -> _Handler:
    def handler(line: _Line, col: int, ops: List[_Operand]) -> Instruction:
        dst = _reg(line, ops[0], "destination register")
        src, off = _mem(line, ops[1])
        return Instruction(Mode.ATOMIC | size | Class.STX, dst, src, off, AtomicOp.LOAD_ACQ)
    return handler


def _release(size: int) -> _Handler:
    def handler(line: _Line, col: int, ops: List[_Operand]) -> Instruction:
        dst, off = _mem(line, ops[0])
        src = _reg(line, ops[1], "source register")
        return Instruction(Mode.ATOMIC | size | Class.STX, dst, src, off, AtomicOp.STORE_REL)
    return handler


def _atomic(size: int, imm: int) -> _Handler:
    def handler(line: _Line, col: int, ops: List[_Operand]) -> Instruction:
        dst, off = _mem(line, ops[0])
        src = _reg(line, ops[1], "source register")
        return Instruction(Mode.ATOMIC | size | Class.STX, dst, src, off, imm)
    return handler


def _build_table() -> None:
    for base, (op, off) in _ALU_OPS.items():
        for cls, sfx in ((Class.ALU64, ""), (Class.ALU, "32")):
            MNEMONICS[base + sfx] = _Spec(f"{base}{sfx} %rD, %rS|IMM", 2, _alu(op, cls, off))
    for cls, sfx in ((Class.ALU64, ""), (Class.ALU, "32")):
        MNEMONICS["neg" + sfx] = _Spec(f"neg{sfx} %rD", 1, _neg(cls))
    for width, cls, bits in ((8, Class.ALU, 32), (16, Class.ALU, 32), (8, Class.ALU64, 64),
                             (16, Class.ALU64, 64), (32, Class.ALU64, 64)):
        name = f"movsx{width}{bits}"
        MNEMONICS[name] = _Spec(f"{name} %rD, %rS", 2, _movsx(cls, width))
    for width in (16, 32, 64):
        MNEMONICS[f"le{width}"] = _Spec(f"le{width} %rD", 1, _end(Class.ALU, Source.K, width))
        MNEMONICS[f"be{width}"] = _Spec(f"be{width} %rD", 1, _end(Class.ALU, Source.X, width))
        for name in (f"bswap{width}", f"swap{width}"):
            MNEMONICS[name] = _Spec(f"{name} %rD", 1, _end(Class.ALU64, Source.K, width))
    MNEMONICS["addr_space_cast"] = _Spec("addr_space_cast %rD, %rS, DST_AS, SRC_AS", 4,
                                         _addr_space_cast)
    for base, op in _JMP_OPS.items():
        for cls, sfx in ((Class.JMP, ""), (Class.JMP32, "32")):
            MNEMONICS[base + sfx] = _Spec(f"{base}{sfx} %rD, %rS|IMM, LABEL|+N|-N", 3,
                                          _jcmp(op, cls))
    MNEMONICS["ja"] = _Spec("ja LABEL|+N|-N", 1, _ja)
    MNEMONICS["ja32"] = _Spec("ja32 LABEL|+N|-N", 1, _ja32)
    MNEMONICS["may_goto"] = _Spec("may_goto LABEL|+N|-N", 1, _may_goto)
    MNEMONICS["call"] = _Spec(_CALL_SYNTAX, -1, _call)
    MNEMONICS["callx"] = _Spec("callx %rN", 1, _callx)
    MNEMONICS["exit"] = _Spec("exit", 0, _exit)
    MNEMONICS["lddw"] = _Spec("lddw %rD, IMM64 or lddw %rD, map_fd(N)", 2, _lddw)
    for letter, size in _SIZES.items():
        MNEMONICS["ldx" + letter] = _Spec(f"ldx{letter} %rD, [%rS+OFF]", 2, _ldx(size, Mode.MEM))
        MNEMONICS["st" + letter] = _Spec(f"st{letter} [%rD+OFF], IMM", 2, _st(size))
        MNEMONICS["stx" + letter] = _Spec(f"stx{letter} [%rD+OFF], %rS", 2, _stx(size))
        if size != Size.DW:
            MNEMONICS["ldxs" + letter] = _Spec(f"ldxs{letter} %rD, [%rS+OFF]", 2,
                                               _ldx(size, Mode.MEMSX))
            MNEMONICS["ldabs" + letter] = _Spec(f"ldabs{letter} IMM", 1, _ldabs(size))
            MNEMONICS["ldind" + letter] = _Spec(f"ldind{letter} %rS, IMM", 2, _ldind(size))
    for bits, size in _BITS_SIZE.items():
        MNEMONICS[f"load_acquire{bits}"] = _Spec(f"load_acquire{bits} %rD, [%rS+OFF]", 2,
                                                 _acquire(size))
        MNEMONICS[f"store_release{bits}"] = _Spec(f"store_release{bits} [%rD+OFF], %rS", 2,
                                                  _release(size))
    for base, imm in _ATOMIC_OPS.items():
        for size, sfx in ((Size.DW, ""), (Size.W, "32")):
            MNEMONICS[f"lock {base}{sfx}"] = _Spec(f"lock {base}{sfx} [%rD+OFF], %rS", 2,
                                                   _atomic(size, imm))
            if imm not in (AtomicOp.XCHG, AtomicOp.CMPXCHG):
                MNEMONICS[f"lock fetch {base}{sfx}"] = _Spec(
                    f"lock fetch {base}{sfx} [%rD+OFF], %rS", 2,
                    _atomic(size, imm | AtomicOp.FETCH_ADD))


_build_table()

_LOCK_SYNTAX = "lock [fetch] add|and|or|xor[32] [%rD+OFF], %rS, lock xchg[32] or lock cmpxchg[32]"


# ---------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------

def parse(text: str, *, file: str = "<input>") -> List[Instruction]:
    """Parse uBPF assembly into unlinked instructions.

    A label (``name:``) is attached to the next instruction's ``label`` (a tuple when one
    instruction has several), a symbolic jump or local-call target is left as a string
    ``reference`` with a zero offset, and every instruction carries its
    :class:`~pybpf.asm.instruction.SourceLocation`. Raises
    :class:`~pybpf.asm.errors.AssemblyError` at the first mistake.
    """
    return _parse(text, file)[0]


_Use = Tuple[str, _Line, int]     # a label used as a target: name, line, column


def _parse(text: str, file: str) -> Tuple[List[Instruction], Dict[str, int], List[_Use]]:
    """Instructions, defined labels (name -> line) and label uses (name, line, column)."""
    out: List[Instruction] = []
    uses: List[_Use] = []
    pending: List[Tuple[str, _Line, int]] = []      # labels waiting for an instruction
    defined: Dict[str, int] = {}                    # label -> line number
    for number, raw in enumerate(text.splitlines(), 1):
        raw = raw.rstrip("\r\n")
        line = _Line(file, number, raw)
        body = strip_comment(raw, _COMMENT_MARKERS)
        pos = 0
        while True:
            m = _LABEL_DEF.match(body, pos)
            if not m:
                break
            name = m.group(1)
            if name in defined:
                raise line.error(f"duplicate label {name!r} (first defined on line "
                                 f"{defined[name]})", m.start(1) + 1)
            defined[name] = number
            pending.append((name, line, m.start(1) + 1))
            pos = m.end()
        rest = body[pos:]
        if not rest.strip():
            continue
        col = pos + len(rest) - len(rest.lstrip()) + 1
        ins = _parse_instruction(line, rest.strip(), col)
        if isinstance(ins.reference, str):
            # the target is the last operand: its last occurrence on the line
            spots = [m.start() for m in re.finditer(
                r"(?<![\w.$%])" + re.escape(ins.reference) + r"(?![\w.$])", rest)]
            uses.append((ins.reference, line, pos + (spots[-1] if spots else 0) + 1))
        if pending:
            names = tuple(p[0] for p in pending)
            ins.label = names[0] if len(names) == 1 else names
            pending = []
        out.append(ins)
    if pending:
        name, line, col = pending[0]
        raise line.error(f"label {name!r} is at the end of the program and names no "
                         "instruction", col, "an instruction after the label")
    _add_exit_label(out, defined)
    return out, defined, uses


def _add_exit_label(out: List[Instruction], defined: Dict[str, int]) -> None:
    """Name the first ``exit`` instruction ``exit`` if jumps use that label undefined."""
    if "exit" in defined or not any(ins.reference == "exit" for ins in out):
        return
    for ins in out:
        if ins.opcode == JmpOp.EXIT | Class.JMP:
            if ins.label is None:
                ins.label = "exit"
            else:
                old = (ins.label,) if isinstance(ins.label, str) else tuple(ins.label)
                ins.label = old + ("exit",)
            return


def _parse_instruction(line: _Line, text: str, col: int) -> Instruction:
    m = re.match(r"(\S+)\s*", text)
    assert m is not None
    mnemonic = m.group(1)
    display = mnemonic
    operand_text = text[m.end():]
    operand_col = col + m.end()
    if mnemonic == "lock":
        words = operand_text.split()
        consumed = 0
        if words and words[0] == "fetch":
            consumed = 1
        if len(words) <= consumed or words[consumed].startswith("["):
            raise line.error("invalid number of operands for lock: the operation is missing",
                             col, _LOCK_SYNTAX)
        op_words = words[:consumed + 1]
        display = "lock " + " ".join(op_words)
        # skip over the consumed words in the operand text
        skip = 0
        for w in op_words:
            skip = operand_text.index(w, skip) + len(w)
        lead = len(operand_text[skip:]) - len(operand_text[skip:].lstrip())
        operand_col += skip + lead
        operand_text = operand_text[skip:].strip()
        if display not in MNEMONICS:
            known = sorted(k for k in MNEMONICS if k.startswith("lock "))
            close = difflib.get_close_matches(display, known, n=2)
            hint = f"; did you mean {' or '.join(close)}?" if close else ""
            raise line.error(f"unknown atomic operation {display!r}{hint}", col, _LOCK_SYNTAX)
    spec = MNEMONICS.get(display)
    if spec is None:
        close = difflib.get_close_matches(mnemonic, [k for k in MNEMONICS if " " not in k], n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise line.error(f"unknown mnemonic {mnemonic!r}{hint}", col,
                         "an instruction such as mov, add32, ldxw, stxdw, jeq, call, exit")
    operands = _split_operands(operand_text, operand_col)
    if spec.count >= 0 and len(operands) != spec.count:
        plural = "" if spec.count == 1 else "s"
        kind = "lock" if display.startswith("lock ") else display
        raise line.error(f"invalid number of operands for {kind}: {display} takes "
                         f"{spec.count} operand{plural}, got {len(operands)}", col, spec.syntax)
    for op in operands:
        if not op.text:
            raise line.error(f"empty operand in {display}", op.column, spec.syntax)
    ins = spec.handler(line, col, operands)
    ins.source = line.location(col)
    return ins


def assemble(text: str, *, file: str = "<input>", long_jumps: bool = False) -> List[Instruction]:
    """Assemble uBPF text into linked, validated instructions.

    ``long_jumps`` turns an unconditional ``ja`` to a label that is too far for 16 bits
    into ``ja32`` (gotol). Raises :class:`~pybpf.asm.errors.AssemblyError` located at
    ``file:line:column``.
    """
    instructions, defined, uses = _parse(text, file)
    for name, line, column in uses:
        if name not in defined and not (name == "exit" and any(
                ins.label == "exit" or (isinstance(ins.label, tuple) and "exit" in ins.label)
                for ins in instructions)):
            close = difflib.get_close_matches(name, list(defined), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise line.error(f"undefined label {name!r}{hint}", column,
                             "a label defined as 'name:' in this program, or +N/-N")
    return finish(instructions, long_jumps=long_jumps)


# ---------------------------------------------------------------------------------------
# Printing
# ---------------------------------------------------------------------------------------

def _r(n: int) -> str:
    return f"%r{n}"


def _fmt_imm(value: int, bits: int = 32) -> str:
    if -0x10000 < value < 0x10000:
        return str(value)
    return f"{value & ((1 << bits) - 1):#x}"


def _fmt_mem(reg: int, off: int) -> str:
    if off == 0:
        return f"[%r{reg}]"
    return f"[%r{reg}{off:+d}]"


def _fmt_target(ins: Instruction, value: int) -> str:
    if isinstance(ins.reference, str):
        return ins.reference
    return f"{value:+d}"


def format_ubpf(ins: Instruction) -> str:
    """One instruction in uBPF syntax (no label); ``assemble(format_ubpf(i)) == [i]``.

    A string ``reference`` (an unresolved label) is printed instead of the offset.
    Raises :class:`~pybpf.asm.errors.InvalidInstruction` for an invalid encoding.
    """
    form = form_of(ins.opcode, ins.dst, ins.src, ins.off, ins.imm)
    kind, name = form.kind, form.name
    d, s, off, imm = ins.dst, ins.src, ins.off, ins.imm
    if kind == "alu":
        rhs = _r(s) if ins.opcode & Source.X else _fmt_imm(imm)
        return f"{name} {_r(d)}, {rhs}"
    if kind == "neg" or kind in ("end", "bswap"):
        return f"{name} {_r(d)}"
    if kind == "movsx":
        return f"{name} {_r(d)}, {_r(s)}"
    if kind == "addr_space_cast":
        u = imm & 0xFFFFFFFF
        return f"addr_space_cast {_r(d)}, {_r(s)}, {u >> 16}, {u & 0xFFFF}"
    if kind == "jcmp":
        rhs = _r(s) if ins.opcode & Source.X else _fmt_imm(imm)
        return f"{name} {_r(d)}, {rhs}, {_fmt_target(ins, off)}"
    if kind == "ja":
        return f"ja {_fmt_target(ins, off)}"
    if kind == "gotol":
        return f"ja32 {_fmt_target(ins, imm)}"
    if kind == "may_goto":
        return f"may_goto {_fmt_target(ins, off)}"
    if kind == "exit":
        return "exit"
    if kind == "callx":
        return f"call {_r(d)}"
    if kind == "call":
        if name == "call_local":
            return f"call local {_fmt_target(ins, imm)}"
        if name == "call_kfunc":
            return f"call kfunc {imm}" + (f", {off}" if off else "")
        return f"call {imm}"
    if kind == "lddw":
        value = imm & 0xFFFFFFFFFFFFFFFF
        if s == Pseudo.IMM64:
            return f"lddw {_r(d)}, {value:#x}"
        pseudo = _PSEUDO_SPELLING[s]
        low, high = value & 0xFFFFFFFF, value >> 32
        if s == Pseudo.FUNC:
            arg = (ins.reference if isinstance(ins.reference, str)
                   else f"{low - (1 << 32) if low & 0x80000000 else low:+d}")
        else:
            arg = f"{low:#x}" if low > 0xFFFF else str(low)
        if high:
            arg += f", {high:#x}"
        return f"lddw {_r(d)}, {pseudo}({arg})"
    if kind == "ldabs":
        return f"{name} {_fmt_imm(imm)}"
    if kind == "ldind":
        return f"{name} {_r(s)}, {_fmt_imm(imm)}"
    if kind in ("ldx", "ldxsx"):
        return f"{name} {_r(d)}, {_fmt_mem(s, off)}"
    if kind == "st":
        return f"{name} {_fmt_mem(d, off)}, {_fmt_imm(imm)}"
    if kind == "stx":
        return f"{name} {_fmt_mem(d, off)}, {_r(s)}"
    if kind == "atomic":
        words = name.split("_")       # lock, [fetch,] op
        return f"{' '.join(words)} {_fmt_mem(d, off)}, {_r(s)}"
    if kind == "load_acquire":
        return f"{name} {_r(d)}, {_fmt_mem(s, off)}"
    if kind == "store_release":
        return f"{name} {_fmt_mem(d, off)}, {_r(s)}"
    raise AssertionError(f"format_ubpf: no spelling for form {form}")  # pragma: no cover


def format_program(instructions: Sequence[Instruction]) -> str:
    """A whole program in uBPF syntax, one instruction per line, with ``label:`` lines
    for labelled instructions. Unlinked programs print their symbolic targets."""
    lines: List[str] = []
    for ins in instructions:
        names = ins.label
        if names is not None:
            for name in (names,) if isinstance(names, str) else names:
                lines.append(f"{name}:")
        lines.append(format_ubpf(ins))
    return "\n".join(lines) + ("\n" if lines else "")
