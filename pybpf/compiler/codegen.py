"""Typed IR -> :mod:`pybpf.asm` instructions on virtual registers.

Virtual register ``%n`` is written as register number ``VREG_BASE + n`` in the
instruction's ``dst``/``src`` fields until :mod:`.regalloc` replaces it; physical
registers (r0-r5 around calls and returns, r10) appear as themselves. Values are kept
normalized (see :mod:`.ir`): after an operation whose result may leave the type's range,
a ``norm`` operation wraps it (``w = w`` for u32, a mask for u8/u16, a shift pair for
signed types). Every instruction carries the source location of its IR operation.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from ..asm.helpers import helper
from ..asm.instruction import Instruction, SourceLocation, make_instruction
from ..asm.opcodes import AluOp, AtomicOp, CallKind, Class, JmpOp, Mode, Pseudo, Size, Source
from .ir import FrameAddr, Function, MapFd, MapValue, Operand, VReg

__all__ = ["VREG_BASE", "Generated", "generate"]

#: register numbers from this one up are virtual registers
VREG_BASE = 16

_ALU = {"add": AluOp.ADD, "sub": AluOp.SUB, "mul": AluOp.MUL, "udiv": AluOp.DIV,
        "sdiv": AluOp.DIV, "umod": AluOp.MOD, "smod": AluOp.MOD, "and": AluOp.AND,
        "or": AluOp.OR, "xor": AluOp.XOR, "lsh": AluOp.LSH, "rsh": AluOp.RSH,
        "arsh": AluOp.ARSH}
_SIZE = {1: Size.B, 2: Size.H, 4: Size.W, 8: Size.DW}
# the opcodes emitted most, computed once (an enum member's lookup is not free)
_MOV64_X = AluOp.MOV | Source.X | Class.ALU64
_MOV64_K = AluOp.MOV | Source.K | Class.ALU64
_MOV32_K = AluOp.MOV | Source.K | Class.ALU
_ADD64_K = AluOp.ADD | Source.K | Class.ALU64
_MOV32_X = AluOp.MOV | Source.X | Class.ALU
_NEG64 = AluOp.NEG | Class.ALU64
_X64 = Source.X | Class.ALU64
_K64 = Source.K | Class.ALU64
_JA = JmpOp.JA | Class.JMP
_CALL = JmpOp.CALL | Class.JMP
_EXIT = JmpOp.EXIT | Class.JMP
# enum members looked up once (each lookup goes through the enum's descriptor)
_MAP_FD, _MAP_VALUE = Pseudo.MAP_FD, Pseudo.MAP_VALUE
_HELPER_CALL, _LOCAL_CALL = CallKind.HELPER, CallKind.LOCAL
_SRC_X, _SRC_K = Source.X, Source.K
#: memory loads and stores by size in bytes
_LDX = {n: Mode.MEM | size | Class.LDX for n, size in _SIZE.items()}
_STX = {n: Mode.MEM | size | Class.STX for n, size in _SIZE.items()}
_ST = {n: Mode.MEM | size | Class.ST for n, size in _SIZE.items()}
_ST_DW = _ST[8]
_JMP = {name: code | Class.JMP for name, code in (
    ("eq", JmpOp.JEQ), ("ne", JmpOp.JNE), ("ugt", JmpOp.JGT), ("uge", JmpOp.JGE),
    ("ult", JmpOp.JLT), ("ule", JmpOp.JLE), ("sgt", JmpOp.JSGT), ("sge", JmpOp.JSGE),
    ("slt", JmpOp.JSLT), ("sle", JmpOp.JSLE))}      # with the class: ``| Source.X/K``


class Generated:
    """The output of :func:`generate`: ``instructions`` on virtual registers,
    ``op_start[i]``: the index of the first instruction of IR operation ``i``,
    ``aliases``: labels that name the same instruction as another, and the set of
    virtual registers that hold parameters."""

    def __init__(self) -> None:
        self.instructions: List[Instruction] = []
        self.op_start: List[int] = []
        self.aliases: Dict[str, str] = {}
        self.params: List[int] = []
        self.calls: List[int] = []       # index of the first argument set-up of each call


def _reg(v: VReg) -> int:
    return VREG_BASE + v.id


def _fits32(value: int) -> bool:
    return -(1 << 31) <= value < (1 << 31)


def generate(fn: Function) -> Generated:
    """Lower ``fn`` to instructions on virtual registers."""
    out = Generated()
    ins_list = out.instructions
    pending: List[str] = []
    loc: Optional[SourceLocation] = None

    def emit(opcode: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0,
             reference: Optional[str] = None) -> None:
        if pending:
            label = pending[0]
            for other in pending[1:]:
                out.aliases[other] = label
            pending.clear()
            ins_list.append(make_instruction(opcode, dst, src, off, imm, label, reference,
                                             loc))
        else:
            ins_list.append(make_instruction(opcode, dst, src, off, imm, None, reference,
                                             loc))

    def mov_reg(dst: int, src: int) -> None:
        if dst != src:
            emit(_MOV64_X, dst, src)

    def mov_imm(dst: int, value: int) -> None:
        pattern = value & 0xFFFFFFFFFFFFFFFF
        signed = pattern - (1 << 64) if pattern >> 63 else pattern
        if -(1 << 31) <= signed < (1 << 31):    # _fits32
            emit(_MOV64_K, dst, imm=signed)
        elif pattern < 1 << 32:                 # mov32 zero-extends
            emit(_MOV32_K, dst,
                 imm=pattern - (1 << 32) if pattern >> 31 else pattern)
        else:
            emit(0x18, dst, imm=signed)

    def operand_into(dst: int, a: Any) -> None:
        if isinstance(a, VReg):
            src = VREG_BASE + a.id
            if dst != src:                      # mov_reg
                emit(_MOV64_X, dst, src)
        elif isinstance(a, FrameAddr):
            mov_reg(dst, 10)
            emit(_ADD64_K, dst, imm=a.off)
        elif isinstance(a, MapFd):
            emit(0x18, dst, _MAP_FD, reference=a.name)
        elif isinstance(a, MapValue):
            emit(0x18, dst, _MAP_VALUE, imm=(a.off << 32), reference=a.name)
        else:
            mov_imm(dst, a)

    def base_reg(base: Optional[VReg]) -> int:
        return 10 if base is None else _reg(base)

    def alu(op: int, dst: int, b: Operand) -> None:
        if isinstance(b, VReg):
            emit(op | _X64, dst, _reg(b), off=off_for(op_name))
        else:
            emit(op | _K64, dst, imm=b, off=off_for(op_name))

    def off_for(name: str) -> int:
        return 1 if name in ("sdiv", "smod") else 0

    op_name = ""
    op_start = out.op_start
    append = ins_list.append
    # the kinds most frequent first (each is a string comparison); the loads and stores
    # are built straight when no label waits for them (what emit would do)
    for op in fn.ops:
        op_start.append(len(ins_list))
        loc = op.loc
        k = op.kind
        if k == "store":
            a = op.a
            assert a is not None
            base = op.base
            if isinstance(a, VReg):
                opcode, src, imm = _STX[op.size], VREG_BASE + a.id, 0
            else:
                opcode, src, imm = _ST[op.size], 0, a
            if pending:
                emit(opcode, 10 if base is None else VREG_BASE + base.id, src, op.off, imm)
            else:
                append(make_instruction(opcode, 10 if base is None else VREG_BASE + base.id,
                                        src, op.off, imm, None, None, loc))
        elif k == "load":
            assert op.dst is not None
            base = op.base
            if pending:
                emit(_LDX[op.size], VREG_BASE + op.dst.id,
                     10 if base is None else VREG_BASE + base.id, op.off)
            else:
                append(make_instruction(_LDX[op.size], VREG_BASE + op.dst.id,
                                        10 if base is None else VREG_BASE + base.id,
                                        op.off, 0, None, None, loc))
        elif k == "mov":
            assert op.dst is not None and op.a is not None
            operand_into(VREG_BASE + op.dst.id, op.a)
        elif k == "helper":
            out.calls.append(len(ins_list))
            for i, arg in enumerate(op.args):
                operand_into(i + 1, arg)
            emit(_CALL, src=_HELPER_CALL, imm=helper(op.name).id)
            if op.dst is not None:
                mov_reg(_reg(op.dst), 0)
        elif k == "zero":
            off = op.off
            for o in range(0, op.size, 8):
                if pending:
                    emit(_ST_DW, 10, off=off + o, imm=0)
                else:
                    append(make_instruction(_ST_DW, 10, 0, off + o, 0, None, None, loc))
        elif k == "label":
            pending.append(op.name)
        elif k == "branch":
            assert isinstance(op.a, VReg) and op.b is not None
            code = _JMP[op.name]
            if isinstance(op.b, VReg):
                emit(code | _SRC_X, _reg(op.a), _reg(op.b), reference=op.target)
            else:
                emit(code | _SRC_K, _reg(op.a), imm=op.b, reference=op.target)
        elif k == "binop":
            assert op.dst is not None and isinstance(op.a, VReg) and op.b is not None
            d = _reg(op.dst)
            assert not (isinstance(op.b, VReg) and op.b == op.dst and op.a != op.dst)
            mov_reg(d, _reg(op.a))
            op_name = op.name
            alu(_ALU[op.name], d, op.b)
        elif k == "addr":
            assert op.dst is not None
            mov_reg(_reg(op.dst), base_reg(op.base))
            if op.off:
                emit(_ADD64_K, _reg(op.dst), imm=op.off)
        elif k == "jump":
            emit(_JA, reference=op.target)
        elif k == "param":
            assert op.dst is not None and isinstance(op.a, int)
            out.params.append(_reg(op.dst))
            mov_reg(_reg(op.dst), op.a + 1)
        elif k == "neg":
            assert op.dst is not None and isinstance(op.a, VReg)
            d = _reg(op.dst)
            mov_reg(d, _reg(op.a))
            emit(_NEG64, d)
        elif k == "norm":
            assert op.dst is not None and isinstance(op.a, VReg)
            d, t = _reg(op.dst), op.dst.type
            if t.bits == 64:
                mov_reg(d, _reg(op.a))
            elif t.bits == 32 and not t.signed:
                emit(_MOV32_X, d, _reg(op.a))                             # w = w
            else:
                mov_reg(d, _reg(op.a))
                if t.signed:
                    emit(AluOp.LSH | Source.K | Class.ALU64, d, imm=64 - t.bits)
                    emit(AluOp.ARSH | Source.K | Class.ALU64, d, imm=64 - t.bits)
                else:
                    emit(AluOp.AND | Source.K | Class.ALU64, d, imm=(1 << t.bits) - 1)
        elif k == "bswap":                      # big-endian <-> host (op.size bits)
            assert op.dst is not None and isinstance(op.a, VReg)
            mov_reg(_reg(op.dst), _reg(op.a))
            emit(AluOp.END | Source.X | Class.ALU, _reg(op.dst), imm=op.size)
        elif k == "atomic":
            assert isinstance(op.a, VReg)
            emit(Mode.ATOMIC | _SIZE[op.size] | Class.STX, base_reg(op.base), _reg(op.a),
                 op.off, imm=AtomicOp[(op.name or "add").upper()])
        elif k == "ldmap":
            assert op.dst is not None
            operand_into(_reg(op.dst), MapFd(op.name))
        elif k == "ldmapval":
            assert op.dst is not None
            operand_into(_reg(op.dst), MapValue(op.name, op.off))
        elif k == "call":
            assert op.dst is not None
            out.calls.append(len(ins_list))
            for i, arg in enumerate(op.args):
                operand_into(i + 1, arg)
            emit(_CALL, src=_LOCAL_CALL, imm=-1, reference=op.name)
            mov_reg(_reg(op.dst), 0)
        elif k == "ret":
            assert op.a is not None
            operand_into(0, op.a)
            emit(_EXIT)
        else:                                   # pragma: no cover
            raise AssertionError(f"unknown IR operation {k}")
    if pending:                                 # a label at the very end: a safe exit
        mov_imm(0, 0)
        emit(_EXIT)
    return out


def ranges(gen: Generated, fn: Function) -> List[Tuple[int, int]]:
    """The instruction ranges of ``fn``'s loops (for liveness across back edges)."""
    n = len(gen.instructions)
    starts = gen.op_start + [n]
    return [(starts[a], max(starts[b + 1] - 1, starts[a])) for a, b in fn.loops]
