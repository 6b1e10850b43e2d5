"""Assembler for LLVM's BPF assembly dialect (``r0 = 1``, ``if r1 > 3 goto +2``).

:func:`assemble` accepts what ``llvm-mc-19 -triple bpfel -mcpu=v4`` accepts for BPF
instructions, and everything ``llvm-objdump`` prints (see :mod:`pybpf.asm.disasm`), so
listings assemble back. In detail:

* one statement per line, or several separated by ``;`` (``;`` is a statement separator
  in LLVM's BPF assembly, not a comment); comments start with ``#`` or ``//``, and
  ``/* ... */`` may span lines;
* labels ``name:`` (before an instruction or on a line of their own) and numeric local
  labels ``1:``, referred to as ``1b`` (backwards) and ``1f`` (forwards); the address
  column of a listing (``      12:``) therefore reads as a harmless numeric label;
* numbers in decimal, ``0x`` hex, ``0b`` binary, ``0``-prefixed octal and ``'c'``
  characters, with C integer suffixes (``5ull``) and constant expressions (``1 << 4``,
  GNU ``as`` operator precedence, like llvm-mc);
* free spacing, operators spelled in pieces (``r1 + = 2``, ``if r1 s < = r2``) and
  commas as optional separators (``ld_pseudo r1 2 5``), as llvm-mc's BPF parser allows;
* keywords and register names in any case (``EXIT``, ``R0 = 1``; llvm-mc only allows
  that for the leading word and reads ``r1 = R2`` as a symbol);
* branch targets as offsets (``goto +3``, ``goto -0x2``, ``goto 3``) or labels, with
  llvm-objdump's ``<.text+0x38>`` annotation ignored;
* ``call NAME`` calls the local function ``NAME:`` if the file defines it (a bpf-to-bpf
  call, as llvm-mc does), otherwise the kernel helper ``NAME`` (``bpf_map_lookup_elem``
  or ``map_lookup_elem``: a pybpf convenience); ``call 5`` is always helper 5;
* load-acquire and store-release in LLVM 20's syntax, which LLVM 19 lacks.

Where llvm-mc silently truncates, pybpf reports an error instead: immediates must fit
their field (32-bit fields take -0x80000000..0xffffffff, ``ll`` loads 64 bits, offsets
are signed 16-bit), registers are r0-r10 (llvm-mc accepts r11), and the tied operands of
``r1 = -r1``, ``r1 = be16 r1`` or ``r2 = xchg_64(r1 + 0, r2)`` must agree (llvm-mc 19
crashes on some of those). ``gotol`` takes a 32-bit offset (llvm-mc 19 only 16 bits).

:func:`parse` returns the instructions before label resolution: each labelled
instruction carries its ``label``, jumps and local calls name their target in
``reference``, and every instruction has its ``source`` location.

Symbols other than labels (``r1 = foo ll``, relocations) are not supported.

A line takes one of three paths, fastest first. (1) Lines spaced as llvm-objdump prints
them are split on whitespace and handled by one function per leading token. (2) Other
spellings (any spacing, labels, comments) go through one compiled regular expression and
a dispatch on the alternative that matched. (3) Whatever neither recognises, and every
mistake, goes to a tokenizer and recursive-descent parser that reports the exact column
and what was expected. Paths (1) and (2) never raise: in doubt they hand the line to (3);
the tests check that all three agree.
"""

from __future__ import annotations

import bisect
import gc
import re
from itertools import count, repeat
from typing import Callable, Dict, List, NamedTuple, Optional, Set, Tuple

from .errors import AssemblyError, InvalidInstruction
from .helpers import helper
from .instruction import Instruction, SourceLocation
from .textutil import finish

__all__ = ["parse", "assemble"]

_MASK32 = 0xFFFFFFFF
_MASK64 = 0xFFFFFFFFFFFFFFFF

_REGNUM: Dict[str, int] = {}
for _i in range(11):
    _REGNUM[f"r{_i}"] = _i
    _REGNUM[f"w{_i}"] = _i
del _i

_ALU_CODE = {
    "+": 0x00, "-": 0x10, "*": 0x20, "/": 0x30, "|": 0x40, "&": 0x50, "<<": 0x60,
    ">>": 0x70, "%": 0x90, "^": 0xA0, "s>>": 0xC0, "s/": 0x30, "s%": 0x90,
}
_JMP_CODE = {
    "==": 0x10, ">": 0x20, ">=": 0x30, "&": 0x40, "!=": 0x50, "s>": 0x60, "s>=": 0x70,
    "<": 0xA0, "<=": 0xB0, "s<": 0xC0, "s<=": 0xD0,
}
_SIZE_CODE = {"u32": 0x00, "u16": 0x08, "u8": 0x10, "u64": 0x18}
_SSIZE_CODE = {"s32": 0x00, "s16": 0x08, "s8": 0x10}
_LOCK_CODE = {"+": 0x00, "|": 0x40, "&": 0x50, "^": 0xA0}
_FETCH_CODE = {"add": 0x01, "or": 0x41, "and": 0x51, "xor": 0xA1}
_END_OPCODE = {"le": 0xD4, "be": 0xDC, "bswap": 0xD7}
_XCHG = {  # mnemonic -> (64-bit?, cmpxchg?)
    "xchg_64": (True, False), "xchg32_32": (False, False),
    "cmpxchg_64": (True, True), "cmpxchg32_32": (False, True),
}
_GOTO_OPCODE = {"goto": 0x05, "gotol": 0x06, "may_goto": 0xE5}

#: Directives that do not change the instructions and are ignored (clang -S emits them).
_IGNORED_DIRECTIVES = frozenset((
    ".text", ".globl", ".global", ".local", ".weak", ".hidden", ".type", ".size",
    ".p2align", ".align", ".file", ".loc", ".addrsig", ".addrsig_sym",
))


def _valid_or_none(ins: Instruction) -> Optional[Instruction]:
    """``ins`` if :func:`form_of` accepts it, else None (for rarely used forms whose
    extra rules the fast paths leave to form_of)."""
    try:
        ins.validate()
    except InvalidInstruction:
        return None
    return ins


def _imm32(value: int) -> Optional[int]:
    """``value`` as a signed 32-bit immediate, or None if it does not fit 32 bits."""
    if -0x80000000 <= value <= 0x7FFFFFFF:
        return value
    if 0x80000000 <= value <= _MASK32:
        return value - 0x100000000
    return None


# =========================================================================================
# Path (2): one regular expression for the usual spellings.
# =========================================================================================
# Each statement alternative ends with an empty marker group K_<kind>; being the last
# group to close, its index is m.lastindex, which selects the handler. Handlers return
# None on anything suspicious (range, register width, tied operands) and the line is then
# parsed again by the slow path, which either accepts it or reports the error precisely.

_S = r"[ \t]*"
_END = r"(?![\w.$])"
_UNUM = r"(?:0[xX][0-9a-fA-F]+|[1-9][0-9]*|0)" + _END
_NUM = r"[+-]?" + _UNUM
_IDENT = r"[A-Za-z_.$][\w.$]*"
_ANNOT = r"(?:[ \t]*<[^<>\n]*>)?"


def _reg(name: str) -> str:
    return rf"(?P<{name}>[rw](?:10|[0-9])){_END}"


def _mem(p: str) -> str:
    """``(rB +/- N)`` with groups <p>b, <p>g (sign), <p>o."""
    return rf"\({_S}{_reg(p + 'b')}{_S}(?P<{p}g>[-+]){_S}(?P<{p}o>{_UNUM}){_S}\)"


def _cast(p: str, types: str) -> str:
    """``(u32 *)`` with group <p>t."""
    return rf"\({_S}(?P<{p}t>{types}){_S}\*{_S}\)"


_ASSIGN_RHS = "|".join((
    rf"{_reg('ms')}(?P<K_MOV>)",
    rf"(?P<mi>{_NUM})(?:[ \t]+(?P<ll>ll){_END})?(?P<K_MOVI>)",
    rf"\*{_S}{_cast('l', '[us](?:8|16|32|64)')}{_S}(?:{_mem('l')}(?P<K_LDX>)"
    rf"|skb{_S}\[{_S}(?:{_reg('pr')}|(?P<pi>{_NUM})){_S}\](?P<K_PKT>))",
    rf"-{_S}{_reg('ng')}(?P<K_NEG>)",
    rf"(?P<eop>le|be|bswap)(?P<ew>16|32|64)[ \t]+{_reg('er')}(?P<K_END>)",
    rf"\({_S}s(?P<sw>8|16|32){_S}\){_S}{_reg('sr')}(?P<K_MOVSX>)",
    rf"atomic_fetch_(?P<fop>add|or|and|xor){_S}\({_S}{_cast('f', 'u32|u64')}{_S}"
    rf"{_mem('f')}{_S},{_S}{_reg('fr')}{_S}\)(?P<K_FETCH>)",
    rf"(?P<xop>xchg_64|xchg32_32|cmpxchg_64|cmpxchg32_32){_S}\({_S}{_reg('xb')}{_S}"
    rf"(?P<xg>[-+]){_S}(?P<xo>{_UNUM}){_S},{_S}(?:{_reg('xc')}{_S},{_S})?{_reg('xr')}"
    rf"{_S}\)(?P<K_XCHG>)",
    rf"addr_space_cast{_S}\({_S}{_reg('cr')}{_S},{_S}(?P<c1>{_NUM}){_S},{_S}"
    rf"(?P<c2>{_NUM}){_S}\)(?P<K_CAST>)",
    rf"load_acquire{_S}\({_S}{_cast('q', 'u8|u16|u32|u64')}{_S}{_mem('q')}{_S}\)"
    rf"(?P<K_LACQ>)",
))

_STATEMENTS = "|".join((
    rf"{_reg('d')}{_S}(?:(?P<aop>s>>|s/|s%|<<|>>|[-+*/|&^%])={_S}(?:{_reg('as')}"
    rf"|(?P<ai>{_NUM}))(?P<K_ALU>)|={_S}(?:{_ASSIGN_RHS}))",
    rf"if[ \t]+{_reg('jd')}{_S}(?P<jop>==|!=|s?[<>]=?|&){_S}(?:{_reg('js')}"
    rf"|(?P<ji>{_NUM})){_S}goto{_S}(?P<jt>[+-]?{_UNUM}|{_IDENT}{_END}){_ANNOT}(?P<K_JCMP>)",
    rf"\*{_S}{_cast('s', 'u8|u16|u32|u64')}{_S}{_mem('s')}{_S}={_S}"
    rf"(?:{_reg('ss')}|(?P<si>{_NUM}))(?P<K_ST>)",
    rf"(?P<gop>gotol|goto|may_goto){_END}{_S}(?P<gt>[+-]?{_UNUM}|{_IDENT}{_END}){_ANNOT}"
    rf"(?P<K_GOTO>)",
    rf"call[ \t]+(?:(?P<cn>{_NUM})|(?P<ci>{_IDENT}){_END}){_ANNOT}(?P<K_CALL>)",
    rf"callx[ \t]+{_reg('cx')}(?P<K_CALLX>)",
    rf"exit{_END}(?P<K_EXIT>)",
    rf"lock[ \t]+\*{_S}{_cast('k', 'u32|u64')}{_S}{_mem('k')}{_S}(?P<kop>[-+|&^])={_S}"
    rf"{_reg('kr')}(?P<K_LOCK>)",
    rf"ld_pseudo[ \t]+{_reg('pd')}{_S},{_S}(?P<ps>{_NUM}){_S},{_S}(?P<pv>{_NUM})"
    rf"(?P<K_PSEUDO>)",
    rf"store_release{_S}\({_S}{_cast('r', 'u8|u16|u32|u64')}{_S}{_mem('r')}{_S},{_S}"
    rf"{_reg('rr')}{_S}\)(?P<K_SREL>)",
))

_FAST = re.compile(
    rf"[ \t]*(?:(?P<label>{_IDENT}|[0-9]+){_S}:{_S})?(?P<at>)"
    rf"(?:(?:{_STATEMENTS})[ \t]*|(?P<K_EMPTY>))(?:(?:#|//).*)?\Z"
)

_G = _FAST.groupindex


def _groups(*names: str) -> Tuple[int, ...]:
    return tuple(_G[n] for n in names)


def _off(sign: str, digits: str) -> Optional[int]:
    value = int(digits, 0)
    if sign == "-":
        value = -value
    return value if -0x8000 <= value <= 0x7FFF else None


def _target(text: str) -> Tuple[Optional[int], Optional[str]]:
    """(offset, None) for a numeric branch target, (0, label) for a symbolic one. The
    offset may be out of range (checked by the caller); a register name gives
    (None, None): both are left to the slow path to report."""
    c = text[0]
    if c in "+-" or c.isdigit():
        return int(text, 0), None
    if _REG_TOKEN.match(text):
        return None, None
    return 0, text


_F_ALU = _groups("d", "aop", "as", "ai")


def _h_alu(m: "re.Match[str]") -> Optional[Instruction]:
    d, op, s, i = m.group(*_F_ALU)
    code = _ALU_CODE[op]
    off = 1 if op == "s/" or op == "s%" else 0
    code |= 0x07 if d[0] == "r" else 0x04
    if s is not None:
        if s[0] != d[0]:
            return None
        return Instruction(code | 0x08, _REGNUM[d], _REGNUM[s], off, 0)
    imm = _imm32(int(i, 0))
    if imm is None:
        return None
    return Instruction(code, _REGNUM[d], 0, off, imm)


_F_MOV = _groups("d", "ms")


def _h_mov(m: "re.Match[str]") -> Optional[Instruction]:
    d, s = m.group(*_F_MOV)
    if s[0] != d[0]:
        return None
    return Instruction(0xBF if d[0] == "r" else 0xBC, _REGNUM[d], _REGNUM[s], 0, 0)


_F_MOVI = _groups("d", "mi", "ll")


def _h_movi(m: "re.Match[str]") -> Optional[Instruction]:
    d, i, ll = m.group(*_F_MOVI)
    value = int(i, 0)
    if ll is not None:
        if d[0] != "r" or not -(1 << 63) <= value <= _MASK64:
            return None
        return Instruction(0x18, _REGNUM[d], 0, 0, value & _MASK64)
    imm = _imm32(value)
    if imm is None:
        return None
    return Instruction(0xB7 if d[0] == "r" else 0xB4, _REGNUM[d], 0, 0, imm)


_F_LDX = _groups("d", "lt", "lb", "lg", "lo")


def _h_ldx(m: "re.Match[str]") -> Optional[Instruction]:
    d, t, b, g, o = m.group(*_F_LDX)
    off = _off(g, o)
    if off is None or b[0] != "r":
        return None
    if t[0] == "u":
        size = _SIZE_CODE[t]
        if size == 0x18 and d[0] != "r":
            return None
        return Instruction(0x61 | size, _REGNUM[d], _REGNUM[b], off, 0)
    size = _SSIZE_CODE.get(t)
    if size is None or d[0] != "r":
        return None
    return Instruction(0x81 | size, _REGNUM[d], _REGNUM[b], off, 0)


_F_PKT = _groups("d", "lt", "pr", "pi")


def _h_pkt(m: "re.Match[str]") -> Optional[Instruction]:
    return _packet_load(*m.group(*_F_PKT))


def _packet_load(d: str, t: str, r: Optional[str], i: Optional[str]) -> Optional[Instruction]:
    """A legacy packet load (``r0 = *(u16 *)skb[r1]`` / ``skb[4]``), or None when the
    text is not a valid one."""
    size = _SIZE_CODE.get(t)
    if d != "r0" or size is None or size == 0x18:
        return None
    if r is not None:
        if r[0] != "r":
            return None
        return Instruction(0x40 | size, 0, _REGNUM[r], 0, 0)
    imm = _imm32(int(i, 0))                             # type: ignore[arg-type]
    if imm is None:
        return None
    return Instruction(0x20 | size, 0, 0, 0, imm)


_F_NEG = _groups("d", "ng")


def _h_neg(m: "re.Match[str]") -> Optional[Instruction]:
    d, r = m.group(*_F_NEG)
    if r != d:
        return None
    return Instruction(0x87 if d[0] == "r" else 0x84, _REGNUM[d], 0, 0, 0)


_F_END = _groups("d", "eop", "ew", "er")


def _h_end(m: "re.Match[str]") -> Optional[Instruction]:
    d, op, w, r = m.group(*_F_END)
    if r != d or d[0] != "r":
        return None
    return Instruction(_END_OPCODE[op], _REGNUM[d], 0, 0, int(w))


_F_MOVSX = _groups("d", "sw", "sr")


def _h_movsx(m: "re.Match[str]") -> Optional[Instruction]:
    d, w, r = m.group(*_F_MOVSX)
    if r[0] != d[0] or (d[0] == "w" and w == "32"):
        return None
    return Instruction(0xBF if d[0] == "r" else 0xBC, _REGNUM[d], _REGNUM[r], int(w), 0)


_F_FETCH = _groups("d", "fop", "ft", "fb", "fg", "fo", "fr")


def _h_fetch(m: "re.Match[str]") -> Optional[Instruction]:
    d, op, t, b, g, o, r = m.group(*_F_FETCH)
    off = _off(g, o)
    if off is None or r != d or b[0] != "r" or (d[0] == "r") != (t == "u64"):
        return None
    return Instruction(0xDB if t == "u64" else 0xC3, _REGNUM[b], _REGNUM[r], off,
                       _FETCH_CODE[op])


_F_XCHG = _groups("d", "xop", "xb", "xg", "xo", "xc", "xr")


def _h_xchg(m: "re.Match[str]") -> Optional[Instruction]:
    d, op, b, g, o, c, r = m.group(*_F_XCHG)
    is64, cmp = _XCHG[op]
    off = _off(g, o)
    if off is None or b[0] != "r" or (r[0] == "r") != is64:
        return None
    if cmp:
        if d != c or d[1:] != "0" or r[0] != d[0]:
            return None
    elif c is not None or r != d:
        return None
    return Instruction(0xDB if is64 else 0xC3, _REGNUM[b], _REGNUM[r], off,
                       0xF1 if cmp else 0xE1)


_F_CAST = _groups("d", "cr", "c1", "c2")


def _h_cast(m: "re.Match[str]") -> Optional[Instruction]:
    d, r, a, b = m.group(*_F_CAST)
    a_, b_ = int(a, 0), int(b, 0)
    if d[0] != "r" or r[0] != "r" or not -0x8000 <= a_ <= 0xFFFF \
            or not -0x8000 <= b_ <= 0xFFFF:
        return None
    imm = ((a_ & 0xFFFF) << 16) | (b_ & 0xFFFF)
    return _valid_or_none(Instruction(0xBF, _REGNUM[d], _REGNUM[r], 1,
                                      imm - 0x100000000 if imm & 0x80000000 else imm))


_F_LACQ = _groups("d", "qt", "qb", "qg", "qo")


def _h_lacq(m: "re.Match[str]") -> Optional[Instruction]:
    d, t, b, g, o = m.group(*_F_LACQ)
    off = _off(g, o)
    size = _SIZE_CODE[t]
    if off is None or b[0] != "r" or (size == 0x18 and d[0] != "r"):
        return None
    return Instruction(0xC3 | size, _REGNUM[d], _REGNUM[b], off, 0x100)


_F_JCMP = _groups("jd", "jop", "js", "ji", "jt")


def _h_jcmp(m: "re.Match[str]") -> Optional[Instruction]:
    d, op, s, i, t = m.group(*_F_JCMP)
    code = _JMP_CODE.get(op)
    if code is None:
        return None
    code |= 0x05 if d[0] == "r" else 0x06
    off, label = _target(t)
    if off is None or not -0x8000 <= off <= 0x7FFF:
        return None
    if s is not None:
        if s[0] != d[0]:
            return None
        ins = Instruction(code | 0x08, _REGNUM[d], _REGNUM[s], off, 0)
    else:
        imm = _imm32(int(i, 0))
        if imm is None:
            return None
        ins = Instruction(code, _REGNUM[d], 0, off, imm)
    if label is not None:
        ins.reference = label
    return ins


_F_ST = _groups("st", "sb", "sg", "so", "ss", "si")


def _h_st(m: "re.Match[str]") -> Optional[Instruction]:
    t, b, g, o, s, i = m.group(*_F_ST)
    off = _off(g, o)
    size = _SIZE_CODE[t]
    if off is None or b[0] != "r":
        return None
    if s is not None:
        if size == 0x18 and s[0] != "r":
            return None
        return Instruction(0x63 | size, _REGNUM[b], _REGNUM[s], off, 0)
    imm = _imm32(int(i, 0))
    if imm is None:
        return None
    return Instruction(0x62 | size, _REGNUM[b], 0, off, imm)


_F_GOTO = _groups("gop", "gt")


def _h_goto(m: "re.Match[str]") -> Optional[Instruction]:
    op, t = m.group(*_F_GOTO)
    off, label = _target(t)
    if off is None:
        return None
    if op == "gotol":
        if not -0x80000000 <= off <= 0x7FFFFFFF:
            return None
        ins = Instruction(0x06, 0, 0, 0, off)
    else:
        if not -0x8000 <= off <= 0x7FFF:
            return None
        ins = Instruction(_GOTO_OPCODE[op], 0, 0, off, 0)
    if label is not None:
        ins.reference = label
    return ins


_F_CALL = _groups("cn", "ci")


def _h_call(m: "re.Match[str]") -> Optional[Instruction]:
    n, name = m.group(*_F_CALL)
    if name is not None:
        if _REG_TOKEN.match(name):
            return None
        ins = Instruction(0x85, 0, 1, 0, 0)
        ins.reference = name
        return ins
    imm = _imm32(int(n, 0))
    if imm is None:
        return None
    return Instruction(0x85, 0, 0, 0, imm)


def _h_callx(m: "re.Match[str]") -> Optional[Instruction]:
    r = m.group(_G["cx"])
    if r[0] != "r":
        return None
    return Instruction(0x8D, _REGNUM[r], 0, 0, 0)


def _h_exit(m: "re.Match[str]") -> Optional[Instruction]:
    return Instruction(0x95, 0, 0, 0, 0)


_F_LOCK = _groups("kt", "kb", "kg", "ko", "kop", "kr")


def _h_lock(m: "re.Match[str]") -> Optional[Instruction]:
    t, b, g, o, op, r = m.group(*_F_LOCK)
    off = _off(g, o)
    if off is None or op == "-" or b[0] != "r" or (t == "u64" and r[0] != "r"):
        return None
    return Instruction(0xDB if t == "u64" else 0xC3, _REGNUM[b], _REGNUM[r], off,
                       _LOCK_CODE[op])


_F_PSEUDO = _groups("pd", "ps", "pv")


def _h_pseudo(m: "re.Match[str]") -> Optional[Instruction]:
    d, s, v = m.group(*_F_PSEUDO)
    src = int(s, 0)
    imm = _imm32(int(v, 0))
    if d[0] != "r" or not 0 <= src <= 6 or imm is None:
        return None
    return Instruction(0x18, _REGNUM[d], src, 0, imm & _MASK32)


_F_SREL = _groups("rt", "rb", "rg", "ro", "rr")


def _h_srel(m: "re.Match[str]") -> Optional[Instruction]:
    t, b, g, o, r = m.group(*_F_SREL)
    off = _off(g, o)
    size = _SIZE_CODE[t]
    if off is None or b[0] != "r" or (size == 0x18 and r[0] != "r"):
        return None
    return Instruction(0xC3 | size, _REGNUM[b], _REGNUM[r], off, 0x110)


_HANDLERS: List[Optional[Callable[["re.Match[str]"], Optional[Instruction]]]] = \
    [None] * (_FAST.groups + 1)
for _name, _fn in {
    "K_ALU": _h_alu, "K_MOV": _h_mov, "K_MOVI": _h_movi, "K_LDX": _h_ldx, "K_PKT": _h_pkt,
    "K_NEG": _h_neg, "K_END": _h_end, "K_MOVSX": _h_movsx, "K_FETCH": _h_fetch,
    "K_XCHG": _h_xchg, "K_CAST": _h_cast, "K_LACQ": _h_lacq, "K_JCMP": _h_jcmp,
    "K_ST": _h_st, "K_GOTO": _h_goto, "K_CALL": _h_call, "K_CALLX": _h_callx,
    "K_EXIT": _h_exit, "K_LOCK": _h_lock, "K_PSEUDO": _h_pseudo, "K_SREL": _h_srel,
}.items():
    _HANDLERS[_G[_name]] = _fn
del _name, _fn
_K_EMPTY = _G["K_EMPTY"]
_G_LABEL = _G["label"]
_G_AT = _G["at"]
assert _G_LABEL == 1


# =========================================================================================
# Path (3): tokenizer and recursive-descent parser, with precise errors.
# =========================================================================================

_TOKEN = re.compile(r"""
  (?P<ws>[ \t\f\v\r]+)
| (?P<comment>\#.*|//.*)
| (?P<annot><[^<>]*>(?=[ \t\r]*(?:$|\#|//|;)))
| (?P<num>(?:0[xX][0-9a-fA-F]+|0[bB][01]+|[0-9]+)[uU]?[lL]{0,2}(?![\w.$]))
| (?P<lref>[0-9]+[bfBF](?![\w.$]))
| (?P<badnum>[0-9][\w.$]*)
| (?P<id>[A-Za-z_.$][\w.$@]*)
| (?P<char>'(?:\\.|[^\\'])')
| (?P<op><<=|>>=|<<|>>|<=|>=|==|!=|<>|&&|\|\||[-+*/%|&^]=|[-+*/%|&^~!<>=()\[\],:;])
| (?P<bad>.)
""", re.VERBOSE)

_ESCAPES = {"n": 10, "t": 9, "r": 13, "0": 0, "\\": 92, "'": 39, '"': 34, "a": 7, "b": 8,
            "f": 12, "v": 11}

# GNU as / llvm-mc binary operator precedence (higher binds tighter).
_BINARY_PREC = {
    "||": 1, "&&": 2,
    "==": 3, "!=": 3, "<>": 3, "<": 3, "<=": 3, ">": 3, ">=": 3,
    "+": 4, "-": 4,
    "|": 5, "^": 5, "&": 5, "!": 5,
    "*": 6, "/": 6, "%": 6, "<<": 6, ">>": 6,
}

_REG_TOKEN = re.compile(r"[rRwW]([0-9]{1,6})\Z")  # register-like (r11 too: an error)
_REG_DIGITS = frozenset(str(i) for i in range(11))


class _Tok(NamedTuple):
    kind: str   # num, lref, id, char, op, annot, end
    text: str
    col: int    # 1-based
    comma: int = 0  # column of a ',' just before this token, or 0


class _Reg(NamedTuple):
    wide: bool  # r (64-bit) or w (32-bit)
    num: int
    tok: _Tok

    @property
    def name(self) -> str:
        return ("r" if self.wide else "w") + str(self.num)


_REF_BACK = "b"  # _LocalRef.direction of 1b; 1f has "f"


class _LocalRef(NamedTuple):
    """A reference to numeric local label ``number`` backwards (``1b``) or forwards."""

    number: str
    direction: str


class _Parser:
    """Parses the statements of one line; errors carry the line's location."""

    def __init__(self, line: str, lineno: int, file: str) -> None:
        self.line = line
        self.lineno = lineno
        self.file = file
        self.toks = self._tokenize(line)
        self.i = 0

    # -- infrastructure -------------------------------------------------------------------
    def error(self, tok: _Tok, message: str, expected: Optional[str] = None) -> AssemblyError:
        return AssemblyError(message, file=self.file, line=self.lineno, column=tok.col,
                             text=self.line, expected=expected)

    def _tokenize(self, line: str) -> List[_Tok]:
        # Like llvm-mc's BPF parser, treat ',' as an optional separator: it may stand
        # between any two operands (or be left out) and only ends an expression. It is
        # dropped here and remembered on the token that follows it.
        toks: List[_Tok] = []
        comma = 0
        for m in _TOKEN.finditer(line):
            kind = m.lastgroup
            text = m.group()
            col = m.start() + 1
            if kind == "ws":
                continue
            if kind == "comment":
                break
            if text == "," and kind == "op":
                comma = comma or col
                continue
            toks.append(_Tok(kind or "bad", text, col, comma))
            comma = 0
        toks.append(_Tok("end", "", len(line.rstrip()) + 1, comma))
        return toks

    def peek(self, k: int = 0) -> _Tok:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        if tok.kind != "end":
            self.i += 1
        return tok

    def at(self, text: str, k: int = 0) -> bool:
        tok = self.peek(k)
        if tok.kind == "id":
            return tok.text.lower() == text
        return tok.kind == "op" and tok.text == text

    def accept(self, text: str) -> bool:
        if self.at(text):
            self.take()
            return True
        return False

    def expect(self, text: str, expected: Optional[str] = None) -> _Tok:
        tok = self.peek()
        if not self.at(text):
            raise self.error(tok, f"unexpected {self.describe(tok)}", expected or f"'{text}'")
        return self.take()

    @staticmethod
    def describe(tok: _Tok) -> str:
        return "end of statement" if tok.kind in ("end", "annot") or tok.text == ";" \
            else repr(tok.text)

    def check_tokens(self) -> None:
        """Report the first malformed token of the statement ahead (directives, which
        are skipped whole, may contain anything)."""
        for tok in self.toks[self.i:]:
            if tok.kind == "end" or (tok.kind == "op" and tok.text == ";"):
                return
            if tok.kind == "bad":
                raise self.error(tok, f"unexpected character {tok.text!r}")
            if tok.kind == "badnum":
                raise self.error(tok, f"malformed number {tok.text!r}",
                                 "a decimal, 0x hex, 0b binary or 0 octal number")

    def at_statement_end(self) -> bool:
        tok = self.peek()
        return tok.kind == "end" or (tok.kind == "op" and tok.text == ";")

    def operator(self, valid: "_OpSet") -> Optional[str]:
        """An operator such as ``+=`` or ``s<=``. llvm-mc assembles it from separate
        punctuation tokens, so ``+ =`` and ``s < =`` count too: take tokens while their
        concatenation can still become an operator, and return the longest complete one
        (None, consuming nothing, if there is none)."""
        start = self.i
        text = ""
        best: Optional[str] = None
        best_i = start
        while True:
            tok = self.peek()
            if text and tok.comma:
                break
            if tok.kind != "op" and not (tok.kind == "id" and tok.text == "s" and not text):
                break
            candidate = text + tok.text
            if candidate not in valid.prefixes:
                break
            text = candidate
            self.take()
            if text in valid.operators:
                best, best_i = text, self.i
        self.i = best_i
        return best

    # -- operands -------------------------------------------------------------------------
    def is_reg(self, k: int = 0) -> bool:
        tok = self.peek(k)
        return tok.kind == "id" and _REG_TOKEN.match(tok.text) is not None

    def reg(self, what: str = "a register") -> _Reg:
        tok = self.peek()
        m = _REG_TOKEN.match(tok.text) if tok.kind == "id" else None
        if m is None:
            raise self.error(tok, f"unexpected {self.describe(tok)}", what)
        digits = m.group(1)
        if digits not in _REG_DIGITS:
            raise self.error(tok, f"register {tok.text} does not exist",
                             "r0-r10 or w0-w10")
        self.take()
        return _Reg(tok.text[0] in "rR", int(digits), tok)

    def reg_of(self, wide: bool, what: str) -> _Reg:
        r = self.reg(what)
        if r.wide != wide:
            want = ("r" if wide else "w") + str(r.num)
            raise self.error(r.tok, f"{r.tok.text} is a {32 if wide else 64}-bit register, "
                             f"but a {64 if wide else 32}-bit one is needed here", want)
        return r

    def same_reg(self, first: _Reg, what: str) -> _Reg:
        r = self.reg(what)
        if (r.wide, r.num) != (first.wide, first.num):
            raise self.error(r.tok, f"{r.tok.text} must be the same register as "
                             f"{first.tok.text} (the operand is read and written)",
                             first.name)
        return r

    def number(self, tok: _Tok) -> int:
        text = tok.text
        if tok.kind == "char":
            body = text[1:-1]
            if body[0] != "\\":
                return ord(body)
            if body[1] in _ESCAPES:
                return _ESCAPES[body[1]]
            raise self.error(tok, f"unknown escape {body!r} in character literal")
        digits = text.rstrip("uUlL")
        low = digits[:2].lower()
        if low == "0x":
            return int(digits, 16)
        if low == "0b":
            return int(digits[2:], 2)
        if len(digits) > 1 and digits[0] == "0":
            try:
                return int(digits, 8)
            except ValueError:
                raise self.error(tok, f"malformed octal number {text!r}",
                                 "digits 0-7 after a leading 0") from None
        if len(digits) > 40:  # far beyond 64 bits (and beyond int()'s digit limit)
            raise self.error(tok, f"number {digits[:20]}... is far too large")
        return int(digits)

    def expr(self, what: str = "a number", min_prec: int = 1, depth: int = 0) -> int:
        """A constant expression (llvm-mc's operators and precedence)."""
        if depth > 64:
            raise self.error(self.peek(), "expression is nested too deeply")
        value = self.unary(what, depth)
        while True:
            tok = self.peek()
            prec = _BINARY_PREC.get(tok.text) if tok.kind == "op" and not tok.comma else None
            if prec is None or prec < min_prec:
                return value
            self.take()
            rhs = self.expr(what, prec + 1, depth + 1)
            value = self.binary(tok, value, rhs)

    def unary(self, what: str, depth: int) -> int:
        tok = self.peek()
        if depth > 64:
            raise self.error(tok, "expression is nested too deeply")
        if tok.kind in ("num", "char"):
            self.take()
            return self.number(tok)
        if tok.kind == "op":
            if tok.text in ("-", "+", "~", "!"):
                self.take()
                value = self.unary(what, depth + 1)
                if tok.text == "-":
                    return -value
                if tok.text == "~":
                    return ~value
                if tok.text == "!":
                    return int(value == 0)
                return value
            if tok.text == "(":
                self.take()
                value = self.expr(what, 1, depth + 1)
                self.expect(")", "')' closing the parenthesis")
                return value
        if tok.kind in ("id", "lref"):
            raise self.error(tok, f"symbol {tok.text!r} cannot be used here: only constant "
                             "numbers are supported", what)
        raise self.error(tok, f"unexpected {self.describe(tok)}", what)

    def binary(self, tok: _Tok, a: int, b: int) -> int:
        op = tok.text
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if op in ("/", "%"):
            if b == 0:
                raise self.error(tok, "division by zero in expression")
            q = abs(a) // abs(b)
            if (a < 0) != (b < 0):
                q = -q
            return q if op == "/" else a - q * b
        if op == "<<":
            return (a << b) & _MASK64 if 0 <= b < 64 else 0
        if op == ">>":
            return (a & _MASK64) >> b if 0 <= b < 64 else 0
        if op == "|":
            return a | b
        if op == "&":
            return a & b
        if op == "^":
            return a ^ b
        if op == "!":
            return a | ~b
        if op == "&&":
            return int(bool(a) and bool(b))
        if op == "||":
            return int(bool(a) or bool(b))
        result = {"==": a == b, "!=": a != b, "<>": a != b, "<": a < b, "<=": a <= b,
                  ">": a > b, ">=": a >= b}[op]
        return -1 if result else 0

    def imm32(self, what: str = "a 32-bit immediate") -> int:
        tok = self.peek()
        value = self.expr(what)
        imm = _imm32(value)
        if imm is None:
            raise self.error(tok, f"immediate {_show(value)} does not fit in 32 bits",
                             "a value from -0x80000000 to 0xffffffff")
        return imm

    def offset(self) -> int:
        """The offset after the base register of a memory operand: ``+ 0x8``, ``- 4``
        (the sign is the expression's unary operator; llvm-mc also takes ``(r1 8)``)."""
        tok = self.peek()
        if self.at(")") or self.at(","):
            raise self.error(tok, f"unexpected {self.describe(tok)}",
                             "'+ offset' or '- offset' after the base register")
        value = self.expr("an offset such as + 0x8 or - 4")
        if not -0x8000 <= value <= 0x7FFF:
            raise self.error(tok, f"offset {_show(value)} does not fit in 16 bits",
                             "an offset from -0x8000 to +0x7fff")
        return value

    def mem(self) -> Tuple[_Reg, int]:
        """``(rB +/- N)``."""
        self.expect("(", "'(' starting the address, as in (r1 + 0x8)")
        base = self.reg_of(True, "the 64-bit base register of the address, as in (r1 + 0x8)")
        off = self.offset()
        self.expect(")", "')' closing the address")
        return base, off

    def cast(self, allowed: Dict[str, int], expected: str) -> Tuple[str, int]:
        """``(u32 *)``: returns the type name and its size code."""
        self.expect("(", f"'(' starting a pointer type such as ({expected} *)")
        tok = self.peek()
        name = tok.text.lower() if tok.kind == "id" else ""
        if name not in allowed:
            raise self.error(tok, f"unexpected {self.describe(tok)}",
                             f"one of {', '.join(allowed)}")
        self.take()
        self.expect("*", f"'*' as in ({name} *)")
        self.expect(")", f"')' as in ({name} *)")
        return name, allowed[name]

    def target(self, bits: int) -> Tuple[int, object]:
        """A branch target: (offset, None) or (0, label / local label reference)."""
        tok = self.peek()
        if tok.kind == "id" and not self.is_reg():
            self.take()
            return 0, tok.text
        if tok.kind == "lref":
            self.take()
            return 0, _LocalRef(tok.text[:-1], tok.text[-1].lower())
        value = self.expr("a label or an offset such as +3 or -0x2")
        limit = 1 << (bits - 1)
        if not -limit <= value < limit:
            raise self.error(tok, f"branch offset {_show(value)} does not fit in {bits} bits",
                             f"an offset from -{limit:#x} to +{limit - 1:#x}")
        return value, None

    def skip_annotation(self) -> None:
        if self.peek().kind == "annot":
            self.take()

    # -- statements -----------------------------------------------------------------------
    def statements(self, sink: "_State") -> None:
        """Parse every statement of the line, feeding labels and instructions to sink."""
        while True:
            self.labels(sink)
            tok = self.peek()
            if tok.comma:
                raise AssemblyError("unexpected ',' at the start of a statement",
                                    file=self.file, line=self.lineno, column=tok.comma,
                                    text=self.line, expected="an instruction")
            if tok.kind != "end" and not self.at(";"):
                if tok.kind == "id" and tok.text.startswith(".") and not self.at(":", 1):
                    self.directive()
                else:
                    self.check_tokens()
                    ins = self.statement()
                    ins.source = SourceLocation(self.file, self.lineno, tok.col, self.line)
                    try:  # the grammar only builds valid encodings; form_of has the last word
                        ins.validate()
                    except InvalidInstruction as exc:
                        raise self.error(tok, str(exc)) from None
                    sink.emit(ins)
            end = self.peek()
            if end.kind == "end":
                return
            if not self.accept(";"):
                raise self.error(end, f"unexpected {self.describe(end)} after the instruction",
                                 "end of line, ';' or a comment")

    def labels(self, sink: "_State") -> None:
        while self.at(":", 1) and self.peek().kind in ("id", "num"):
            tok = self.take()
            self.take()
            if tok.kind == "num":
                if not tok.text.isdigit():
                    raise self.error(tok, f"bad numeric label {tok.text!r}",
                                     "decimal digits, as in 1:")
                sink.numeric_label(tok.text.lstrip("0") or "0")
            elif self.is_reg(-2):
                raise self.error(tok, f"a register name ({tok.text}) cannot be a label")
            else:
                sink.label(tok.text, self.lineno, tok.col, self.line)

    def directive(self) -> None:
        tok = self.take()
        name = tok.text.lower()
        if name not in _IGNORED_DIRECTIVES:
            raise self.error(tok, f"directive {tok.text} is not supported (pybpf assembles "
                             "instructions; only directives that do not change them are "
                             "ignored)", ", ".join(sorted(_IGNORED_DIRECTIVES)))
        while not self.at_statement_end():
            self.take()

    def statement(self) -> Instruction:
        tok = self.peek()
        if tok.kind == "id":
            word = tok.text.lower()
            if _REG_TOKEN.match(tok.text):
                return self.assignment()
            method = _KEYWORDS.get(word)
            if method is not None:
                self.take()
                return method(self, tok)
        if self.at("*"):
            return self.store()
        raise self.error(tok, f"unknown instruction starting with {self.describe(tok)}",
                         "an instruction such as 'r0 = 1', 'r1 += r2', 'if r1 > 3 goto +2', "
                         "'*(u32 *)(r10 - 4) = r1', 'call 1', 'exit', or a label 'name:'")

    # keyword statements
    def s_if(self, kw: _Tok) -> Instruction:
        d = self.reg("a register to compare, as in 'if r1 > 3 goto +2'")
        tok = self.peek()
        op = self.operator(_JMP_OPS)
        if op is None:
            raise self.error(tok, f"unexpected {self.describe(tok)}",
                             "a comparison: == != > >= < <= s> s>= s< s<= &")
        opcode = _JMP_CODE[op] | (0x05 if d.wide else 0x06)
        if self.is_reg():
            s = self.reg_of(d.wide, "a register")
            src, imm = s.num, 0
            opcode |= 0x08
        else:
            src, imm = 0, self.imm32()
        self.expect("goto", "'goto' and the branch target")
        off, ref = self.target(16)
        self.skip_annotation()
        return Instruction(opcode, d.num, src, off, imm, reference=ref)

    def s_goto(self, kw: _Tok) -> Instruction:
        word = kw.text.lower()
        off, ref = self.target(32 if word == "gotol" else 16)
        self.skip_annotation()
        if word == "gotol":
            return Instruction(0x06, 0, 0, 0, off, reference=ref)
        return Instruction(_GOTO_OPCODE[word], 0, 0, off, 0, reference=ref)

    def s_call(self, kw: _Tok) -> Instruction:
        tok = self.peek()
        if (tok.kind == "id" and not self.is_reg()) or tok.kind == "lref":
            _, ref = self.target(32)
            self.skip_annotation()
            return Instruction(0x85, 0, 1, 0, 0, reference=ref)
        if self.is_reg():
            raise self.error(tok, "call takes a helper number or a function name; "
                             "use callx for a register", f"callx {tok.text}")
        imm = self.imm32("a helper number, a helper name or a function label")
        self.skip_annotation()
        return Instruction(0x85, 0, 0, 0, imm)

    def s_callx(self, kw: _Tok) -> Instruction:
        r = self.reg_of(True, "a 64-bit register holding the target, as in 'callx r3'")
        return Instruction(0x8D, r.num, 0, 0, 0)

    def s_exit(self, kw: _Tok) -> Instruction:
        return Instruction(0x95, 0, 0, 0, 0)

    def s_lock(self, kw: _Tok) -> Instruction:
        self.expect("*", "'*' as in 'lock *(u64 *)(r1 + 0) += r2'")
        name, size = self.cast({"u32": 0x00, "u64": 0x18}, "u64")
        base, off = self.mem()
        tok = self.peek()
        op = self.operator(_LOCK_OPS)
        if op is None:
            raise self.error(tok, f"unexpected {self.describe(tok)}",
                             "an atomic operation: += |= &= ^=")
        code = _LOCK_CODE[op[:-1]]
        if size == 0x18:
            s = self.reg_of(True, "a 64-bit register")
        else:
            s = self.reg("a register")
        return Instruction(0xC3 | size, base.num, s.num, off, code)

    def s_ld_pseudo(self, kw: _Tok) -> Instruction:
        d = self.reg_of(True, "a 64-bit destination register")
        tok = self.peek()
        src = self.expr("the pseudo source number (1-6)")
        if not 0 <= src <= 6:
            raise self.error(tok, f"pseudo source {_show(src)} is not defined",
                             "0 (a plain constant) to 6")
        if src == 4 and self.peek().kind in ("id", "lref") and not self.is_reg():
            _, ref = self.target(32)
            return Instruction(0x18, d.num, src, 0, 0, reference=ref)
        imm = self.imm32()
        return Instruction(0x18, d.num, src, 0, imm & _MASK32)

    def s_store_release(self, kw: _Tok) -> Instruction:
        self.expect("(", "'(' as in 'store_release((u64 *)(r1 + 0), r2)'")
        name, size = self.cast(_SIZE_CODE, "u64")
        base, off = self.mem()
        s = self.reg_of(True, "a 64-bit register") if size == 0x18 else self.reg()
        self.expect(")", "')'")
        return Instruction(0xC3 | size, base.num, s.num, off, 0x110)

    def store(self) -> Instruction:
        self.expect("*")
        name, size = self.cast(_SIZE_CODE, "u32")
        base, off = self.mem()
        self.expect("=", "'=' and the value to store")
        if self.is_reg():
            s = self.reg_of(True, "a 64-bit register") if size == 0x18 else self.reg()
            return Instruction(0x63 | size, base.num, s.num, off, 0)
        imm = self.imm32("a register or a 32-bit immediate to store")
        return Instruction(0x62 | size, base.num, 0, off, imm)

    def assignment(self) -> Instruction:
        d = self.reg()
        tok = self.peek()
        op = self.operator(_ASSIGN_OPS)
        if op is None:
            raise self.error(tok, f"unexpected {self.describe(tok)}",
                             "an assignment: = += -= *= /= %= |= &= ^= <<= >>= s>>= s/= s%=")
        if op != "=":
            op = op[:-1]
            cls = 0x07 if d.wide else 0x04
            off = 1 if op in ("s/", "s%") else 0
            if self.is_reg():
                s = self.reg_of(d.wide, "a register")
                return Instruction(cls | _ALU_CODE[op] | 0x08, d.num, s.num, off, 0)
            return Instruction(cls | _ALU_CODE[op], d.num, 0, off, self.imm32())
        return self.rhs(d)

    def rhs(self, d: _Reg) -> Instruction:
        tok = self.peek()
        if self.is_reg():
            s = self.reg_of(d.wide, "a register")
            if self.at("ll"):
                raise self.error(self.peek(), "'ll' loads a constant, not a register")
            return Instruction(0xBF if d.wide else 0xBC, d.num, s.num, 0, 0)
        if self.at("-") and self.is_reg(1):
            self.take()
            self.same_reg(d, "the destination register (neg works in place)")
            return Instruction(0x87 if d.wide else 0x84, d.num, 0, 0, 0)
        if self.at("*"):
            return self.load(d)
        if self.at("(") and self.peek(1).kind == "id" and \
                self.peek(1).text.lower() in ("s8", "s16", "s32"):
            self.take()
            width = int(self.take().text[1:])
            self.expect(")", f"')' as in (s{width})")
            if not d.wide and width == 32:
                raise self.error(tok, "(s32) sign extension needs 64-bit registers",
                                 "(s8) or (s16) with w registers")
            s = self.reg_of(d.wide, "the source register")
            return Instruction(0xBF if d.wide else 0xBC, d.num, s.num, width, 0)
        if tok.kind == "id":
            word = tok.text.lower()
            m = re.match(r"(le|be|bswap)(16|32|64)\Z", word)
            if m:
                self.take()
                if not d.wide:
                    raise self.error(d.tok, "byte swaps work on 64-bit registers",
                                     f"r{d.num} = {word} r{d.num}")
                self.same_reg(d, "the destination register (byte swaps work in place)")
                return Instruction(_END_OPCODE[m.group(1)], d.num, 0, 0, int(m.group(2)))
            if word.startswith("atomic_fetch_") and word[13:] in _FETCH_CODE:
                self.take()
                return self.fetch(d, _FETCH_CODE[word[13:]])
            if word in _XCHG:
                self.take()
                return self.xchg(d, tok, *_XCHG[word])
            if word == "addr_space_cast":
                self.take()
                return self.addr_space_cast(d)
            if word == "load_acquire":
                self.take()
                return self.load_acquire(d)
        value = self.expr("a register, a number, or a load such as *(u32 *)(r1 + 0)")
        if self.accept("ll"):
            if not d.wide:
                raise self.error(d.tok, "a 64-bit constant load needs a 64-bit register",
                                 f"r{d.num}")
            if not -(1 << 63) <= value <= _MASK64:
                raise self.error(tok, f"constant {_show(value)} does not fit in 64 bits")
            return Instruction(0x18, d.num, 0, 0, value & _MASK64)
        imm = _imm32(value)
        if imm is None:
            raise self.error(tok, f"immediate {_show(value)} does not fit in 32 bits",
                             "a value from -0x80000000 to 0xffffffff, or a 64-bit "
                             "constant with 'll'")
        return Instruction(0xB7 if d.wide else 0xB4, d.num, 0, 0, imm)

    def load(self, d: _Reg) -> Instruction:
        self.take()  # '*'
        types = dict(_SIZE_CODE)
        types.update({"s8": 0x110, "s16": 0x108, "s32": 0x100})
        type_tok = self.peek(1)
        name, size = self.cast(types, "u32")
        if self.at("skb"):
            self.take()
            if (d.wide, d.num) != (True, 0):
                raise self.error(d.tok, "legacy packet loads always write r0", "r0")
            if name not in ("u8", "u16", "u32"):
                raise self.error(type_tok, f"legacy packet loads of {name} do not exist",
                                 "u8, u16 or u32")
            self.expect("[", "'[' after skb")
            if self.is_reg():
                s = self.reg_of(True, "a 64-bit register")
                self.expect("]", "']'")
                return Instruction(0x40 | size, 0, s.num, 0, 0)
            imm = self.imm32("a register or a 32-bit offset")
            self.expect("]", "']'")
            return Instruction(0x20 | size, 0, 0, 0, imm)
        base, off = self.mem()
        if size & 0x100:
            if not d.wide:
                raise self.error(d.tok, "sign-extending loads write 64-bit registers",
                                 f"r{d.num}")
            return Instruction(0x81 | (size & 0x18), d.num, base.num, off, 0)
        if size == 0x18 and not d.wide:
            raise self.error(d.tok, "a u64 load needs a 64-bit destination register",
                             f"r{d.num}")
        return Instruction(0x61 | size, d.num, base.num, off, 0)

    def fetch(self, d: _Reg, code: int) -> Instruction:
        self.expect("(", "'(' as in atomic_fetch_add((u64 *)(r1 + 0), r2)")
        name, size = self.cast({"u32": 0x00, "u64": 0x18}, "u64")
        if (size == 0x18) != d.wide:
            raise self.error(d.tok, f"a {name} atomic uses {'r' if size else 'w'} registers",
                             f"{'r' if size else 'w'}{d.num}")
        base, off = self.mem()
        self.same_reg(d, "the destination register (it is also the operand)")
        self.expect(")", "')'")
        return Instruction(0xC3 | size, base.num, d.num, off, code)

    def xchg(self, d: _Reg, kw: _Tok, is64: bool, cmp: bool) -> Instruction:
        if d.wide != is64:
            raise self.error(d.tok, f"{kw.text} uses {'r' if is64 else 'w'} registers",
                             f"{'r' if is64 else 'w'}{d.num}")
        if cmp and d.num != 0:
            raise self.error(d.tok, f"{kw.text} compares with and returns in r0",
                             "r0" if is64 else "w0")
        self.expect("(", f"'(' as in {kw.text}(r1 + 0, ...)")
        base = self.reg_of(True, "the 64-bit base register of the address")
        off = self.offset()
        if cmp:
            self.same_reg(d, "r0 (the expected value)")
            s = self.reg_of(is64, "a register")
        else:
            s = self.same_reg(d, "the destination register (it is also the operand)")
        self.expect(")", "')'")
        return Instruction(0xDB if is64 else 0xC3, base.num, s.num, off,
                           0xF1 if cmp else 0xE1)

    def addr_space_cast(self, d: _Reg) -> Instruction:
        if not d.wide:
            raise self.error(d.tok, "addr_space_cast works on 64-bit registers", f"r{d.num}")
        self.expect("(", "'(' as in addr_space_cast(r2, 0, 1)")
        s = self.reg_of(True, "a 64-bit source register")
        spaces = []
        first = self.peek()
        for _ in range(2):
            tok = self.peek()
            value = self.expr("an address space number")
            if not -0x8000 <= value <= 0xFFFF:
                raise self.error(tok, f"address space {_show(value)} does not fit in 16 bits",
                                 "0 to 0xffff")
            spaces.append(value & 0xFFFF)
        self.expect(")", "')'")
        imm = (spaces[0] << 16) | spaces[1]
        ins = Instruction(0xBF, d.num, s.num, 1, imm - (1 << 32) if imm >> 31 else imm)
        try:
            ins.validate()
        except InvalidInstruction as exc:
            raise self.error(first, str(exc), "addr_space_cast(rS, 0x0, 0x1) or "
                             "addr_space_cast(rS, 0x1, 0x0)") from None
        return ins

    def load_acquire(self, d: _Reg) -> Instruction:
        self.expect("(", "'(' as in load_acquire((u64 *)(r1 + 0))")
        name, size = self.cast(_SIZE_CODE, "u64")
        if size == 0x18 and not d.wide:
            raise self.error(d.tok, "a u64 load needs a 64-bit destination register",
                             f"r{d.num}")
        base, off = self.mem()
        self.expect(")", "')'")
        return Instruction(0xC3 | size, d.num, base.num, off, 0x100)


class _OpSet:
    """A set of operators and all their prefixes (for :meth:`_Parser.operator`)."""

    def __init__(self, operators: List[str]) -> None:
        self.operators = frozenset(operators)
        self.prefixes = frozenset(op[:k] for op in operators for k in range(1, len(op) + 1))


_ASSIGN_OPS = _OpSet(["="] + [op + "=" for op in _ALU_CODE])
_JMP_OPS = _OpSet(list(_JMP_CODE))
_LOCK_OPS = _OpSet([op + "=" for op in _LOCK_CODE])

_KEYWORDS: Dict[str, Callable[[_Parser, _Tok], Instruction]] = {
    "if": _Parser.s_if, "goto": _Parser.s_goto, "gotol": _Parser.s_goto,
    "may_goto": _Parser.s_goto, "call": _Parser.s_call, "callx": _Parser.s_callx,
    "exit": _Parser.s_exit, "lock": _Parser.s_lock, "ld_pseudo": _Parser.s_ld_pseudo,
    "store_release": _Parser.s_store_release,
}


def _show(value: int) -> str:
    if value.bit_length() > 128:
        return f"({value.bit_length()}-bit number)"
    return f"-{-value:#x}" if value < 0 else f"{value:#x}"


# =========================================================================================
# Path (1): llvm-objdump's spacing, split on whitespace.
# =========================================================================================
# Lines spaced the way llvm-objdump prints them (and the way people usually write them)
# split into predictable tokens: ["if", "r1", ">", "0x3", "goto", "+0x2"]. A handler per
# leading token checks the exact shape and returns None for anything else, which then
# goes to the regular expression above (and from there to the slow path). Lines with a
# memory operand skip the split: the three characters before their first '(' pick a
# small regular expression that matches the whole line (see _PAREN_T0).

def _num(tok: str) -> int:
    """A plain number token (optional sign, decimal / 0x / 0b); ValueError otherwise.

    ``int(tok, 0)`` alone would also take what llvm-mc does not (``1_0``, ``0o7``,
    non-ASCII digits), hence the check before each ``int(tok, 0)`` of this path; octal
    ``017`` raises and is left to the slow path.
    """
    if "_" in tok or "o" in tok or "O" in tok or not tok.isascii():
        raise ValueError(tok)
    return int(tok, 0)


_IDENT_FULL = re.compile(_IDENT + r"\Z").match

# The memory-operand shapes are checked by one small regex each on the whole line
# (llvm-objdump spacing): cheaper than picking the tokens apart in Python.
_T0_REG = r"([rw](?:10|[0-9]))"
_T0_MEM = r"\((r(?:10|[0-9])) ([-+]) (0x[0-9a-fA-F]+|[1-9][0-9]*|0)\)"
_T0_STORE = re.compile(
    rf"[ \t]*\*\((u8|u16|u32|u64) \*\){_T0_MEM} = "
    rf"(?:{_T0_REG}|([-+]?(?:0x[0-9a-fA-F]+|[1-9][0-9]*|0)))[ \t]*\Z").match
_T0_LOCK = re.compile(
    rf"[ \t]*lock \*\((u32|u64) \*\){_T0_MEM} ([+|&^])= {_T0_REG}[ \t]*\Z").match
_T0_LOAD = re.compile(
    rf"[ \t]*{_T0_REG} = \*\(([us](?:8|16|32|64)) \*\)(?:{_T0_MEM}|skb\[(?:{_T0_REG}"
    rf"|([-+]?(?:0x[0-9a-fA-F]+|[1-9][0-9]*|0)))\])[ \t]*\Z").match
_T0_FETCH = re.compile(
    rf"[ \t]*{_T0_REG} = atomic_fetch_(add|or|and|xor)\(\((u32|u64) \*\){_T0_MEM}, "
    rf"{_T0_REG}\)[ \t]*\Z").match
_T0_XCHG = re.compile(
    rf"[ \t]*{_T0_REG} = (xchg_64|xchg32_32|cmpxchg_64|cmpxchg32_32)"
    rf"\((r(?:10|[0-9])) ([-+]) (0x[0-9a-fA-F]+|[1-9][0-9]*|0), (?:{_T0_REG}, )?{_T0_REG}\)"
    rf"[ \t]*\Z").match


def _is_annotation(tok: str) -> bool:
    return tok[0] == "<" and tok.find(">") == len(tok) - 1 and tok.find("<", 1) < 0


def _symbol(tok: str) -> Optional[str]:
    """``tok`` if it is a label name (not a register), else None."""
    if _IDENT_FULL(tok) is None or _REG_TOKEN.match(tok) is not None:
        return None
    return tok


def _branch(tok: str, bits: int) -> Tuple[int, Optional[str]]:
    """A branch target token: (offset, None) or (0, label); ValueError if neither."""
    c = tok[0]
    if c == "+" or c == "-" or "0" <= c <= "9":
        if "_" in tok or "o" in tok or "O" in tok or not tok.isascii():
            raise ValueError(tok)
        value = int(tok, 0)
        limit = 1 << (bits - 1)
        if not -limit <= value < limit:
            raise ValueError(tok)
        return value, None
    name = _symbol(tok)
    if name is None:
        raise ValueError(tok)
    return 0, name


def _memtok(base: str, sign: str, num: str) -> Tuple[int, int]:
    """``r1``, ``+``, ``0x4`` -> (base register, offset); ValueError/KeyError if not."""
    b = _REGNUM[base]
    if base[0] != "r" or num[0] == "+" or num[0] == "-" \
            or "_" in num or "o" in num or "O" in num or not num.isascii():
        raise ValueError(base)
    value = int(num, 0)
    if sign == "-":
        value = -value
    elif sign != "+":
        raise ValueError(sign)
    if not -0x8000 <= value <= 0x7FFF:
        raise ValueError(num)
    return b, value


def _t_if(t: List[str], line: str) -> Optional[Instruction]:
    # if r1 > 0x3 goto +0x2 [<annotation>]
    if len(t) != 6:
        if len(t) != 7 or not _is_annotation(t[6]):
            return None
        t = t[:6]
    _, d, op, s, kw, target = t
    if kw != "goto":
        return None
    dn = _REGNUM[d]
    code = _JMP_CODE[op]
    c = target[0]
    if c == "+" or c == "-" or "0" <= c <= "9":
        if "_" in target or "o" in target or "O" in target or not target.isascii():
            return None
        off = int(target, 0)
        if off > 0x7FFF or off < -0x8000:
            return None
        label = None
    else:
        label = _symbol(target)
        if label is None:
            return None
        off = 0
    sn = _REGNUM.get(s)
    if sn is not None:
        if s[0] != d[0]:
            return None
        ins = Instruction(code | (0x0D if d[0] == "r" else 0x0E), dn, sn, off, 0)
    else:
        if "_" in s or "o" in s or "O" in s or not s.isascii():
            return None
        imm = int(s, 0)
        if imm > 0x7FFFFFFF:
            if imm > 0xFFFFFFFF:
                return None
            imm -= 0x100000000
        elif imm < -0x80000000:
            return None
        ins = Instruction(code | (0x05 if d[0] == "r" else 0x06), dn, 0, off, imm)
    if label is not None:
        ins.reference = label
    return ins


def _t_goto(t: List[str], line: str) -> Optional[Instruction]:
    # goto +0x5 [<annotation>]   gotol ...   may_goto ...
    n = len(t)
    if n != 2 and (n != 3 or not _is_annotation(t[2])):
        return None
    word = t[0]
    if word == "gotol":
        off, label = _branch(t[1], 32)
        ins = Instruction(0x06, 0, 0, 0, off)
    else:
        off, label = _branch(t[1], 16)
        ins = Instruction(_GOTO_OPCODE[word], 0, 0, off, 0)
    if label is not None:
        ins.reference = label
    return ins


def _t_call(t: List[str], line: str) -> Optional[Instruction]:
    # call 0xe   call name
    if len(t) != 2:
        return None
    tok = t[1]
    c = tok[0]
    if c == "+" or c == "-" or "0" <= c <= "9":
        imm = _imm32(_num(tok))
        if imm is None:
            return None
        return Instruction(0x85, 0, 0, 0, imm)
    name = _symbol(tok)
    if name is None:
        return None
    return Instruction(0x85, 0, 1, 0, 0, reference=name)


def _t_callx(t: List[str], line: str) -> Optional[Instruction]:
    if len(t) != 2 or t[1][0] != "r":
        return None
    return Instruction(0x8D, _REGNUM[t[1]], 0, 0, 0)


def _t_exit(t: List[str], line: str) -> Optional[Instruction]:
    if len(t) != 1:
        return None
    return Instruction(0x95, 0, 0, 0, 0)


def _t_store(t: List[str], line: str) -> Optional[Instruction]:
    return _p_store(line)


def _p_store(line: str) -> Optional[Instruction]:
    # *(u32 *)(r10 - 0x8) = 0x5   /   = w1
    m = _T0_STORE(line)
    if m is None:
        return None
    typ, base, sign, num, reg, imm = m.groups()
    size = _SIZE_CODE[typ]
    off = int(num, 0)
    if sign == "-":
        off = -off
    if off > 0x7FFF or off < -0x8000:
        return None
    if reg is not None:
        if size == 0x18 and reg[0] != "r":
            return None
        return Instruction(0x63 | size, _REGNUM[base], _REGNUM[reg], off, 0)
    value = int(imm, 0)
    if value > 0x7FFFFFFF:
        if value > 0xFFFFFFFF:
            return None
        value -= 0x100000000
    elif value < -0x80000000:
        return None
    return Instruction(0x62 | size, _REGNUM[base], 0, off, value)


def _t_lock(t: List[str], line: str) -> Optional[Instruction]:
    return _p_lock(line)


def _p_lock(line: str) -> Optional[Instruction]:
    # lock *(u64 *)(r1 + 0x0) += r2
    m = _T0_LOCK(line)
    if m is None:
        return None
    typ, base, sign, num, op, reg = m.groups()
    off = int(num, 0)
    if sign == "-":
        off = -off
    if off > 0x7FFF or off < -0x8000 or (typ == "u64" and reg[0] != "r"):
        return None
    return Instruction(0xDB if typ == "u64" else 0xC3, _REGNUM[base], _REGNUM[reg], off,
                       _LOCK_CODE[op])


def _t_ld_pseudo(t: List[str], line: str) -> Optional[Instruction]:
    # ld_pseudo r1, 0x1, 0x5
    if len(t) != 4 or t[1][-1] != "," or t[2][-1] != ",":
        return None
    d = t[1][:-1]
    src = _num(t[2][:-1])
    imm = _imm32(_num(t[3]))
    if d[0] != "r" or not 0 <= src <= 6 or imm is None:
        return None
    return Instruction(0x18, _REGNUM[d], src, 0, imm & _MASK32)


def _t_store_release(t: List[str], line: str) -> Optional[Instruction]:
    # store_release((u64 *)(r1 + 0x0), r2)
    if len(t) != 5 or t[1][:3] != "*)(" or t[3][-2:] != ")," or t[4][-1] != ")":
        return None
    size = _SIZE_CODE[t[0][15:]]
    b, off = _memtok(t[1][3:], t[2], t[3][:-2])
    s = t[4][:-1]
    sn = _REGNUM[s]
    if size == 0x18 and s[0] != "r":
        return None
    return Instruction(0xC3 | size, b, sn, off, 0x110)


def _t_reg(t: List[str], line: str) -> Optional[Instruction]:
    """Lines starting with a register: dispatch on the assignment operator."""
    n = len(t)
    if n == 3:
        d, op, s = t
    else:
        d = t[0]
        op = t[1]
        s = t[2]
    dn = _REGNUM[d]
    wide = d[0] == "r"
    if op != "=":
        # r1 += 0x3   w1 s>>= w2
        if n != 3:
            return None
        code = _ALU_ASSIGN[op] | (0x07 if wide else 0x04)
        off = 1 if op == "s/=" or op == "s%=" else 0
        sn = _REGNUM.get(s)
        if sn is not None:
            if s[0] != d[0]:
                return None
            return Instruction(code | 0x08, dn, sn, off, 0)
        if "_" in s or "o" in s or "O" in s or not s.isascii():
            return None
        imm = int(s, 0)
        if imm > 0x7FFFFFFF:
            if imm > 0xFFFFFFFF:
                return None
            imm -= 0x100000000
        elif imm < -0x80000000:
            return None
        return Instruction(code, dn, 0, off, imm)
    rhs = s
    if n == 3:
        sn = _REGNUM.get(rhs)
        if sn is not None:
            # r1 = r2
            if rhs[0] != d[0]:
                return None
            return Instruction(0xBF if wide else 0xBC, dn, sn, 0, 0)
        c = rhs[0]
        if c == "(":
            # r1 = (s8)r2
            cut = 4 if rhs[3] == ")" else 5
            width = _MOVSX[rhs[:cut]]
            s = rhs[cut:]
            if s[0] != d[0] or (not wide and width == 32):
                return None
            return Instruction(0xBF if wide else 0xBC, dn, _REGNUM[s], width, 0)
        if c == "-" and rhs[1:] == d:
            # r1 = -r1
            return Instruction(0x87 if wide else 0x84, dn, 0, 0, 0)
        # r1 = 0x5
        if "_" in rhs or "o" in rhs or "O" in rhs or not rhs.isascii():
            return None
        imm = int(rhs, 0)
        if imm > 0x7FFFFFFF:
            if imm > 0xFFFFFFFF:
                return None
            imm -= 0x100000000
        elif imm < -0x80000000:
            return None
        return Instruction(0xB7 if wide else 0xB4, dn, 0, 0, imm)
    if n == 4 and t[3] == "ll":
        # r1 = 0x1234 ll
        value = _num(rhs)
        if not wide or not -(1 << 63) <= value <= _MASK64:
            return None
        return Instruction(0x18, dn, 0, 0, value & _MASK64)
    return _ASSIGN_RHS_T0[rhs[:3]](t, line, d, dn, wide)


def _t_end(t: List[str], line: str, d: str, dn: int, wide: bool) -> Optional[Instruction]:
    # r1 = be16 r1   r1 = bswap64 r1
    opcode = _END_T0.get(t[2])
    if len(t) != 4 or opcode is None or t[3] != d or not wide:
        return None
    return Instruction(opcode, dn, 0, 0, int(t[2][-2:]))


def _p_load(line: str) -> Optional[Instruction]:
    # w0 = *(u32 *)(r1 + 0x4)   r0 = *(s8 *)(r1 + 0x4)   r0 = *(u8 *)skb[0x2] / skb[r3]
    m = _T0_LOAD(line)
    if m is None:
        return None
    d, typ, base, sign, num, preg, pimm = m.groups()
    wide = d[0] == "r"
    if base is None:  # legacy packet load
        return _packet_load(d, typ, preg, pimm)
    off = int(num, 0)
    if sign == "-":
        off = -off
    if off > 0x7FFF or off < -0x8000:
        return None
    size = _SIZE_CODE.get(typ)
    if size is not None:
        if size == 0x18 and not wide:
            return None
        return Instruction(0x61 | size, _REGNUM[d], _REGNUM[base], off, 0)
    size = _SSIZE_CODE.get(typ)
    if size is None or not wide:
        return None
    return Instruction(0x81 | size, _REGNUM[d], _REGNUM[base], off, 0)


def _p_fetch(line: str) -> Optional[Instruction]:
    # r0 = atomic_fetch_add((u64 *)(r1 + 0x0), r0)
    m = _T0_FETCH(line)
    if m is None:
        return None
    d, op, typ, base, sign, num, reg = m.groups()
    off = int(num, 0)
    if sign == "-":
        off = -off
    wide = d[0] == "r"
    if off > 0x7FFF or off < -0x8000 or reg != d or wide != (typ == "u64"):
        return None
    return Instruction(0xDB if wide else 0xC3, _REGNUM[base], _REGNUM[d], off,
                       _FETCH_CODE[op])


def _p_xchg(line: str) -> Optional[Instruction]:
    # r2 = xchg_64(r1 + 0x0, r2)   r0 = cmpxchg_64(r1 + 0x0, r0, r2)
    m = _T0_XCHG(line)
    if m is None:
        return None
    d, op, base, sign, num, old, reg = m.groups()
    is64, cmp = _XCHG[op]
    off = int(num, 0)
    if sign == "-":
        off = -off
    wide = d[0] == "r"
    if off > 0x7FFF or off < -0x8000 or is64 != wide or (reg[0] == "r") != wide:
        return None
    if cmp:
        if old != d or d[1:] != "0":
            return None
        return Instruction(0xDB if wide else 0xC3, _REGNUM[base], _REGNUM[reg], off, 0xF1)
    if old is not None or reg != d:
        return None
    return Instruction(0xDB if wide else 0xC3, _REGNUM[base], _REGNUM[d], off, 0xE1)


def _t_cast(t: List[str], line: str, d: str, dn: int, wide: bool) -> Optional[Instruction]:
    # r1 = addr_space_cast(r2, 0x0, 0x1)
    head = t[2]
    if len(t) != 5 or head[:16] != "addr_space_cast(" or head[-1] != "," or not wide \
            or t[3][-1] != "," or t[4][-1] != ")":
        return None
    s = head[16:-1]
    a = _num(t[3][:-1])
    b = _num(t[4][:-1])
    if s[0] != "r" or not -0x8000 <= a <= 0xFFFF or not -0x8000 <= b <= 0xFFFF:
        return None
    imm = ((a & 0xFFFF) << 16) | (b & 0xFFFF)
    return _valid_or_none(Instruction(0xBF, dn, _REGNUM[s], 1,
                                      imm - (1 << 32) if imm >> 31 else imm))


def _t_load_acquire(t: List[str], line: str, d: str, dn: int, wide: bool) -> Optional[Instruction]:
    # r0 = load_acquire((u64 *)(r1 + 0x0))
    head = t[2]
    if len(t) != 6 or head[:14] != "load_acquire((" or t[3][:3] != "*)(" \
            or t[5][-2:] != "))":
        return None
    size = _SIZE_CODE[head[14:]]
    if size == 0x18 and not wide:
        return None
    b, off = _memtok(t[3][3:], t[4], t[5][:-2])
    return Instruction(0xC3 | size, dn, b, off, 0x100)


_ALU_ASSIGN = {op + "=": code for op, code in _ALU_CODE.items()}
_MOVSX = {"(s8)": 8, "(s16)": 16, "(s32)": 32}
_END_T0 = {f"{name}{w}": code for name, code in _END_OPCODE.items() for w in (16, 32, 64)}
_ASSIGN_RHS_T0: Dict[str, Callable[[List[str], str, str, int, bool],
                                   Optional[Instruction]]] = {
    "le1": _t_end, "le3": _t_end, "le6": _t_end, "be1": _t_end, "be3": _t_end,
    "be6": _t_end, "bsw": _t_end, "add": _t_cast, "loa": _t_load_acquire,
}
for _key, _fn in (("*(u", _p_load), ("*(s", _p_load), ("ato", _p_fetch), ("xch", _p_xchg),
                  ("cmp", _p_xchg)):
    _ASSIGN_RHS_T0[_key] = lambda t, line, d, dn, wide, _fn=_fn: _fn(line)
del _key, _fn

#: Lines with a memory operand, keyed on the three characters before their first '(':
#: their regex does all the work, so they skip the split.
_PAREN_T0: Dict[str, Callable[[str], Optional[Instruction]]] = {
    "": _p_store, "k *": _p_lock, "= *": _p_load, "add": _p_fetch, "_or": _p_fetch,
    "and": _p_fetch, "xor": _p_fetch, "_64": _p_xchg, "_32": _p_xchg,
}

_T0: Dict[str, Callable[[List[str], str], Optional[Instruction]]] = {
    "if": _t_if, "goto": _t_goto, "gotol": _t_goto, "may_goto": _t_goto, "call": _t_call,
    "callx": _t_callx, "exit": _t_exit, "lock": _t_lock, "ld_pseudo": _t_ld_pseudo,
}
for _r in _REGNUM:
    _T0[_r] = _t_reg
for _ty in _SIZE_CODE:
    _T0["*(" + _ty] = _t_store
    _T0["store_release((" + _ty] = _t_store_release
del _r, _ty


# =========================================================================================
# Labels and the driver
# =========================================================================================

class _State:
    """What parse() accumulates: instructions, labels waiting for their instruction,
    and the references to resolve at the end."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.out: List[Instruction] = []
        self.pending: List[str] = []                       # labels for the next instruction
        self.defined: Dict[str, Tuple[int, int, str]] = {}  # label -> (line, column, text)
        self.alias: Dict[str, str] = {}                    # extra label -> instruction label
        self.numeric: List[Tuple[str, int]] = []           # (number, instruction index)
        self.refs: List[int] = []                          # instructions with a reference

    def label(self, name: str, line: int, column: int, text: str) -> None:
        if name in self.defined:
            first = self.defined[name]
            raise AssemblyError(f"label {name!r} is already defined on line {first[0]}",
                                file=self.file, line=line, column=column, text=text,
                                expected="a new label name")
        self.defined[name] = (line, column, text)
        self.pending.append(name)

    def numeric_label(self, number: str) -> None:
        self.numeric.append((number, len(self.out)))

    def emit(self, ins: Instruction) -> None:
        if self.pending:
            self.attach(ins)
        if ins.reference is not None:
            self.refs.append(len(self.out))
        self.out.append(ins)

    def attach(self, ins: Instruction) -> None:
        first = self.pending[0]
        ins.label = first
        for other in self.pending[1:]:
            self.alias[other] = first
        self.pending.clear()  # in place: parse() holds a reference to the list

    def resolve(self) -> List[Instruction]:
        out = self.out
        at_end = set(self.pending)
        numbers: Dict[str, List[int]] = {}
        for number, index in self.numeric:
            numbers.setdefault(number, []).append(index)
        for index in self.refs:
            ins = out[index]
            ref = ins.reference
            if isinstance(ref, _LocalRef):
                ref = self._local(ins, index, ref, numbers, at_end)
            else:
                ref = self.alias.get(ref, ref)
                if ref in at_end:
                    raise _at(ins, f"label {ref!r} is at the end of the program: there is "
                              "no instruction to branch to", "a label before an instruction")
            if ins.opcode == 0x85 and ins.src == 1 and ref not in self.defined:
                found = _helper_id(ref)
                if found is not None:
                    ins.src = 0
                    ins.imm = found
                    ins.reference = None
                    continue
            ins.reference = ref
        return out

    def _local(self, ins: Instruction, index: int, ref: _LocalRef,
               numbers: Dict[str, List[int]], at_end: Set[str]) -> str:
        seq = numbers.get(ref.number, [])
        if ref.direction == _REF_BACK:
            k = bisect.bisect_right(seq, index) - 1
            target = seq[k] if k >= 0 else None
        else:
            k = bisect.bisect_right(seq, index)
            target = seq[k] if k < len(seq) else None
        if target is None:
            where = "before" if ref.direction == _REF_BACK else "after"
            raise _at(ins, f"no local label {ref.number}: {where} this instruction",
                      f"a line '{ref.number}:' {where} it")
        if target >= len(self.out):
            raise _at(ins, f"local label {ref.number}: is at the end of the program: there "
                      "is no instruction to branch to")
        dest = self.out[target]
        if dest.label is None:
            # an ordinary symbol name, so that listings can refer to it (`goto .L1`)
            name = f".L{ref.number}"
            n = 1
            while name in self.defined:
                n += 1
                name = f".L{ref.number}_{n}"
            dest.label = name
            self.defined[name] = (0, 0, "")
        return dest.label


def _helper_id(name: str) -> Optional[int]:
    try:
        return helper(name).id
    except KeyError:
        return None


def _at(ins: Instruction, message: str, expected: Optional[str] = None) -> AssemblyError:
    src = ins.source
    if src is None:
        return AssemblyError(message, expected=expected)
    return AssemblyError(message, file=src.file, line=src.line, column=src.column,
                         text=src.text, expected=expected)


def _blank_block_comments(text: str, file: str) -> str:
    """Replace each ``/* ... */`` by spaces, keeping newlines so positions stay."""
    parts: List[str] = []
    pos = 0
    while True:
        start = text.find("/*", pos)
        if start < 0:
            parts.append(text[pos:])
            return "".join(parts)
        # a '/*' inside a line comment is part of the comment
        line_start = text.rfind("\n", 0, start) + 1
        head = text[line_start:start]
        if "#" in head or "//" in head:
            end_of_line = text.find("\n", start)
            end_of_line = len(text) if end_of_line < 0 else end_of_line
            parts.append(text[pos:end_of_line])
            pos = end_of_line
            continue
        end = text.find("*/", start + 2)
        if end < 0:
            line = text.count("\n", 0, start) + 1
            line_text = text[line_start:].split("\n", 1)[0]
            raise AssemblyError("unterminated /* comment", file=file, line=line,
                                column=start - line_start + 1, text=line_text,
                                expected="'*/'")
        parts.append(text[pos:start])
        parts.append(re.sub(r"[^\n]", " ", text[start:end + 2]))
        pos = end + 2


_new_location = tuple.__new__


def parse(text: str, *, file: str = "<input>") -> List[Instruction]:
    """Parse LLVM-syntax BPF assembly into unlinked instructions.

    Labels are set as ``label`` on the instruction they name (the first one, when several
    name the same instruction; a numeric label ``1:`` that ``1b``/``1f`` refers to is
    named ``.L1``); jumps and local calls to labels carry the label in ``reference``
    (resolve them with :func:`pybpf.asm.program.link`); ``call NAME`` of a name that is
    not a label of this text is a helper call. Every instruction gets ``source``. Raises
    :class:`~pybpf.asm.errors.AssemblyError` (with file, line, column and what was
    expected) on any mistake.
    """
    return _parse(text, file).out


def assemble(text: str, *, file: str = "<input>", long_jumps: bool = False
             ) -> List[Instruction]:
    """Assemble LLVM-syntax BPF assembly into linked instructions.

    This is :func:`parse` followed by label resolution
    (:func:`pybpf.asm.textutil.finish`); with ``long_jumps`` an unconditional ``goto``
    whose label is too far for 16 bits becomes ``gotol``. Every mistake, including an
    undefined label or an unknown helper name, raises
    :class:`~pybpf.asm.errors.AssemblyError` located in ``text``.
    """
    state = _parse(text, file)
    instructions = state.out
    if not state.refs:
        # Nothing refers to a label, and parse() already rejected duplicate labels and
        # builds only valid encodings: linking would return the same instructions.
        return instructions
    labels = None
    for index in state.refs:
        ins = instructions[index]
        if ins.opcode == 0x85 and ins.reference is not None:
            if labels is None:
                labels = {i.label for i in instructions if i.label is not None}
            if ins.reference not in labels:
                raise _unknown_call(ins, ins.reference)
    # parse() builds only encodings that satisfy form_of, so skip re-validating them
    return finish(instructions, long_jumps=long_jumps, validate=False)


def _parse(text: str, file: str, fast: bool = True) -> _State:
    """Parse ``text``; ``fast=False`` sends every line through the slow path (the
    reference the fast paths are tested against)."""
    # Parsing allocates a few objects per line and keeps them all: the cyclic garbage
    # collector would only rescan them, over and over. Pause it (none of these objects
    # form cycles).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        if "/*" in text:
            text = _blank_block_comments(text, file)
        state = _State(file)
        if fast:
            _parse_lines(text.split("\n"), state)
        else:
            for lineno, line in enumerate(text.split("\n"), 1):
                if line.strip():
                    _Parser(line, lineno, file).statements(state)
        state.resolve()
    finally:
        if gc_was_enabled:
            gc.enable()
    return state


_SEEN_LIMIT = 1 << 16


def _parse_lines(lines: List[str], state: _State) -> None:
    file = state.file
    out = state.out
    append = out.append
    refs = state.refs
    pending = state.pending
    match = _FAST.match
    handlers = _HANDLERS
    new_loc = _new_location
    loc_type = SourceLocation
    t0 = _T0.get
    paren = _PAREN_T0.get
    make = Instruction
    # Assembly repeats itself (exit, r0 = 0x0, r1 = r10, call 0x1, ...): remember the
    # instruction each distinct canonical line gave, up to a bound.
    seen: Dict[str, Instruction] = {}
    seen_get = seen.get
    room = _SEEN_LIMIT
    # Every line's location, made in one pass at C speed (column 1: the usual case;
    # indented lines get their own below).
    locations = list(map(new_loc, repeat(loc_type), zip(repeat(file), count(1), repeat(1),
                                                         lines)))
    for loc in locations:
        line = loc[3]
        c = seen_get(line)
        if c is not None:
            ins = make(c.opcode, c.dst, c.src, c.off, c.imm)
            col = c.source[2]  # type: ignore[index]
            ins.source = loc if col == 1 else new_loc(loc_type, (file, loc[1], col, line))
            if pending:
                state.attach(ins)
            append(ins)
            continue
        # 1. llvm-objdump spacing: memory operands by regex, the rest split into tokens
        #    with one handler per leading token
        p = line.find("(")
        if p >= 0:
            hp = paren(line[p - 3:p])
            if hp is not None:
                try:
                    ins = hp(line)
                except (ValueError, KeyError, IndexError):
                    ins = None
                if ins is not None:
                    ins.source = loc if line[0] > " " else new_loc(
                        loc_type, (file, loc[1], len(line) - len(line.lstrip()) + 1, line))
                    if pending:
                        state.attach(ins)
                    if room:
                        seen[line] = ins
                        room -= 1
                    append(ins)
                    continue
        t = line.split()
        if not t:
            continue
        h = t0(t[0])
        if h is not None:
            try:
                ins = h(t, line)
            except (ValueError, KeyError, IndexError):
                ins = None
            if ins is not None:
                first = t[0]
                ins.source = loc if line[0] == first[0] else new_loc(
                    loc_type, (file, loc[1], line.find(first) + 1, line))
                if pending:
                    state.attach(ins)
                if ins.reference is not None:
                    refs.append(len(out))
                elif room:
                    seen[line] = ins
                    room -= 1
                append(ins)
                continue
        # 2. any spacing, labels, comments: one regular expression
        m = match(line)
        if m is not None:
            k = m.lastindex
            handler = handlers[k]
            if handler is not None:
                try:
                    ins = handler(m)
                except ValueError:  # int() of a number too long to convert
                    ins = None
                if ins is not None:
                    lineno = loc[1]
                    label = m.group(1)
                    if label is not None:
                        if label[0].isdigit():
                            state.numeric_label(label.lstrip("0") or "0")
                        else:
                            state.label(label, lineno, m.start(1) + 1, line)
                    ins.source = new_loc(loc_type,
                                         (file, lineno, m.start(_G_AT) + 1, line))
                    if pending:
                        state.attach(ins)
                    if ins.reference is not None:
                        refs.append(len(out))
                    append(ins)
                    continue
            elif k == _K_EMPTY:
                label = m.group(1)
                if label is not None:
                    if label[0].isdigit():
                        state.numeric_label(label.lstrip("0") or "0")
                    else:
                        state.label(label, loc[1], m.start(1) + 1, line)
                continue
        # 3. everything else, and every error: tokenizer and recursive descent
        _Parser(line, loc[1], file).statements(state)


def _unknown_call(ins: Instruction, name: str) -> AssemblyError:
    try:
        helper(name)
        hint = ""
    except KeyError as exc:
        hint = str(exc).strip("'\"")
    message = f"call {name}: no label {name!r} in this program and no helper of that name"
    if "did you mean" in hint:
        message += "; " + hint.split("; ", 1)[1]
    return _at(ins, message, "a label defined in the program or a helper name such as "
               "bpf_map_lookup_elem")

