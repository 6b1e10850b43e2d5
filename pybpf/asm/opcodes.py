"""Numeric building blocks of the BPF instruction encoding.

An instruction's first byte (the *opcode*) is split into fields whose meaning
depends on the instruction class (the low three bits):

* load/store classes (LD, LDX, ST, STX): ``mode | size | class``
* arithmetic and jump classes (ALU, ALU64, JMP, JMP32): ``op | source | class``

The values follow RFC 9669 and the Linux UAPI header ``linux/bpf.h``.
"""

from __future__ import annotations

import enum

from .._enum import enum_of

__all__ = [
    "Class", "Size", "Mode", "Source", "AluOp", "JmpOp", "AtomicOp", "Pseudo",
    "CallKind", "Group", "Reg", "SIZE_BYTES", "CLASS_MASK", "SIZE_MASK", "MODE_MASK",
    "SOURCE_MASK", "OP_MASK", "ATOMIC_FETCH", "MAY_GOTO",
]

CLASS_MASK = 0x07
SIZE_MASK = 0x18
MODE_MASK = 0xE0
SOURCE_MASK = 0x08
OP_MASK = 0xF0


@enum_of(enum.IntEnum)
class Class:
    """Instruction class: the low three bits of the opcode."""

    LD = 0x00
    LDX = 0x01
    ST = 0x02
    STX = 0x03
    ALU = 0x04
    JMP = 0x05
    JMP32 = 0x06
    ALU64 = 0x07


@enum_of(enum.IntEnum)
class Size:
    """Access width of a load or store (bits 3-4 of the opcode)."""

    W = 0x00
    H = 0x08
    B = 0x10
    DW = 0x18


SIZE_BYTES = {Size.B: 1, Size.H: 2, Size.W: 4, Size.DW: 8}


@enum_of(enum.IntEnum)
class Mode:
    """Addressing mode of a load or store (bits 5-7 of the opcode)."""

    IMM = 0x00      # 64-bit immediate load (lddw)
    ABS = 0x20      # legacy packet access, absolute offset
    IND = 0x40      # legacy packet access, register-relative offset
    MEM = 0x60      # regular memory access
    MEMSX = 0x80    # sign-extending load (ISA v4, Linux 6.6)
    ATOMIC = 0xC0   # atomic read-modify-write (32/64-bit)


@enum_of(enum.IntEnum)
class Source:
    """Operand source of an ALU or jump instruction (bit 3)."""

    K = 0x00   # the 32-bit immediate
    X = 0x08   # the source register


@enum_of(enum.IntEnum)
class AluOp:
    """Arithmetic operation (bits 4-7 of an ALU/ALU64 opcode)."""

    ADD = 0x00
    SUB = 0x10
    MUL = 0x20
    DIV = 0x30    # off=1: signed division (ISA v4)
    OR = 0x40
    AND = 0x50
    LSH = 0x60
    RSH = 0x70
    NEG = 0x80
    MOD = 0x90    # off=1: signed modulo (ISA v4)
    XOR = 0xA0
    MOV = 0xB0    # off=8/16/32: sign-extending move (ISA v4)
    ARSH = 0xC0
    END = 0xD0    # byte swaps: le/be (ALU), bswap (ALU64)


@enum_of(enum.IntEnum)
class JmpOp:
    """Jump operation (bits 4-7 of a JMP/JMP32 opcode)."""

    JA = 0x00
    JEQ = 0x10
    JGT = 0x20
    JGE = 0x30
    JSET = 0x40
    JNE = 0x50
    JSGT = 0x60
    JSGE = 0x70
    CALL = 0x80
    EXIT = 0x90
    JLT = 0xA0    # ISA v2
    JLE = 0xB0    # ISA v2
    JSLT = 0xC0   # ISA v2
    JSLE = 0xD0   # ISA v2
    JCOND = 0xE0  # may_goto (Linux 6.9)


ATOMIC_FETCH = 0x01
MAY_GOTO = 0  # src_reg value of a JCOND instruction meaning "may_goto"


@enum_of(enum.IntEnum)
class AtomicOp:
    """The ``imm`` field of an atomic instruction."""

    ADD = 0x00
    OR = 0x40
    AND = 0x50
    XOR = 0xA0
    FETCH_ADD = 0x01
    FETCH_OR = 0x41
    FETCH_AND = 0x51
    FETCH_XOR = 0xA1
    XCHG = 0xE1
    CMPXCHG = 0xF1
    LOAD_ACQ = 0x100    # Linux 6.15
    STORE_REL = 0x110   # Linux 6.15


@enum_of(enum.IntEnum)
class Pseudo:
    """The ``src`` field of a 64-bit immediate load (``lddw``): what the immediate means."""

    IMM64 = 0           # a plain 64-bit constant
    MAP_FD = 1          # imm is a map file descriptor (Linux 3.18)
    MAP_VALUE = 2       # imm is a map fd, the next imm an offset into its value (Linux 5.2)
    BTF_ID = 3          # imm is the BTF id of a kernel variable (Linux 5.10)
    FUNC = 4            # imm is the instruction offset of a subprogram (Linux 5.13)
    MAP_IDX = 5         # imm is an index into the fd_array of the load (Linux 5.14)
    MAP_IDX_VALUE = 6   # MAP_VALUE through fd_array (Linux 5.14)


@enum_of(enum.IntEnum)
class CallKind:
    """The ``src`` field of a call instruction."""

    HELPER = 0   # imm is a helper id
    LOCAL = 1    # imm is a relative instruction offset of a BPF subprogram (Linux 4.16)
    KFUNC = 2    # imm is a BTF id of a kernel function (Linux 5.13)


class Group(str, enum.Enum):
    """RFC 9669 conformance groups (section 2.4)."""

    BASE32 = "base32"
    BASE64 = "base64"
    ATOMIC32 = "atomic32"
    ATOMIC64 = "atomic64"
    DIVMUL32 = "divmul32"
    DIVMUL64 = "divmul64"
    PACKET = "packet"
    CALLX = "callx"
    #: Linux extensions outside RFC 9669 (may_goto, addr_space_cast, acquire/release).
    LINUX = "linux"


@enum_of(enum.IntEnum)
class Reg:
    """The eleven BPF registers. R10 is the read-only frame pointer."""

    R0 = 0
    R1 = 1
    R2 = 2
    R3 = 3
    R4 = 4
    R5 = 5
    R6 = 6
    R7 = 7
    R8 = 8
    R9 = 9
    R10 = 10

    def __str__(self) -> str:
        return f"r{int(self)}"
