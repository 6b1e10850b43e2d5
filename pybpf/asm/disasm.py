"""Disassembly in the LLVM dialect, exactly as ``llvm-objdump`` prints it.

:func:`format_instruction` turns one instruction into the text that
``llvm-objdump-19 -d --no-show-raw-insn --mcpu=v4`` prints for it (``r0 = 0x1``,
``if r1 > 0x3 goto +0x2 <.text+0x28>``, ``w0 = *(u32 *)(r1 + 0x4)``). The text is the
same byte for byte, so pybpf listings can be diffed against LLVM's, and every line
assembles back with :func:`pybpf.asm.llvm_asm.assemble` (and, where LLVM 19 knows the
instruction, with ``llvm-mc``).

:func:`disassemble` builds a listing for reading, in the spirit of :mod:`dis` (the
address column is followed by a tab, as in llvm-objdump)::

           0:  r1 = 0x0
           1:  call 0xe  # bpf_get_current_pid_tgid
           2:  exit

:func:`iter_listing` yields the same information as :class:`ListingLine` records for
programs that want to inspect it.

LLVM's text has quirks, reproduced here on purpose: with ``--mcpu=v4`` loads and stores
narrower than 64 bits show ``w`` registers (``w0 = *(u8 *)(r1 + 0x0)``) while
sign-extending loads and ``le``/``be`` show ``r`` registers; ``ld_pseudo`` is followed by
a tab and shows only the low 32 bits of the immediate; ``r0 = *(u32 *)skb[r3]`` omits the
immediate the kernel adds; helper, local and kfunc calls all print as ``call N``; and
branches, not calls, get the ``<section+offset>`` annotation, computed modulo 2**64.

The ``w`` spelling of those loads and stores comes from LLVM's ``alu32`` subtarget
feature, which ``--mcpu=v3``, ``--mcpu=v4`` and ``--mattr=+alu32`` turn on. Without it
(llvm-objdump's default CPU, and so ``llvm-objdump -d FILE.o`` for every object, as
nothing in a BPF ELF file records the CPU it was built for) the same loads and stores
show ``r`` registers, the 32-bit ``lock ... +=`` and ``atomic_fetch_add`` both print as
``lock *(u32 *)(rD + off) += rS``, and the other 32-bit atomic operations are
``<unknown>``. Every function here takes ``alu32`` (default True, the ``--mcpu=v4``
text) to choose between the two.

Two instruction families are newer than LLVM 19, which prints them wrongly or as
``<unknown>``: load-acquire and store-release (Linux 6.15). They are printed the way
LLVM 20 does: ``r0 = load_acquire((u64 *)(r1 + 0x0))`` and
``store_release((u64 *)(r1 + 0x0), r2)``.
"""

from __future__ import annotations

import bisect
import re
from typing import (
    Callable, Dict, Iterable, Iterator, List, Mapping, NamedTuple, Optional, Sequence,
    Union,
)

from .encoding import decode
from .errors import InvalidInstruction
from .helpers import helper_name
from .instruction import Instruction, form_of

__all__ = ["format_instruction", "disassemble", "iter_listing", "ListingLine",
           "jump_target", "UNKNOWN"]

#: What llvm-objdump prints for bytes it cannot decode; pybpf prints it for any
#: instruction that breaks the encoding rules.
UNKNOWN = "<unknown>"

_MASK64 = (1 << 64) - 1

_ALU_OPS = {
    0x00: "+=", 0x10: "-=", 0x20: "*=", 0x30: "/=", 0x40: "|=", 0x50: "&=", 0x60: "<<=",
    0x70: ">>=", 0x90: "%=", 0xA0: "^=", 0xB0: "=", 0xC0: "s>>=",
}
_SIGNED_ALU_OPS = {0x30: "s/=", 0x90: "s%="}
_JMP_OPS = {
    0x10: "==", 0x20: ">", 0x30: ">=", 0x40: "&", 0x50: "!=", 0x60: "s>", 0x70: "s>=",
    0xA0: "<", 0xB0: "<=", 0xC0: "s<", 0xD0: "s<=",
}
_SIZE_TYPE = {0x00: "u32", 0x08: "u16", 0x10: "u8", 0x18: "u64"}
_SIGNED_TYPE = {0x00: "s32", 0x08: "s16", 0x10: "s8"}
_ATOMIC_LOCK = {0x00: "+=", 0x40: "|=", 0x50: "&=", 0xA0: "^="}
_ATOMIC_FETCH = {0x01: "add", 0x41: "or", 0x51: "and", 0xA1: "xor"}

_R = tuple(f"r{i}" for i in range(16))
_W = tuple(f"w{i}" for i in range(16))


def _hex(value: int) -> str:
    """LLVM's signed hexadecimal: ``0x1f``, ``-0x8``."""
    return f"-{-value:#x}" if value < 0 else f"{value:#x}"


def _rel(value: int) -> str:
    """A branch offset as LLVM prints it: always signed, ``+0x0`` for zero."""
    return f"-{-value:#x}" if value < 0 else f"+{value:#x}"


def _mem(reg: int, off: int) -> str:
    """``r1 + 0x4`` / ``r10 - 0x8``: the inside of a memory operand."""
    return f"r{reg} - {-off:#x}" if off < 0 else f"r{reg} + {off:#x}"


# -- one formatter per Form.kind ----------------------------------------------------------
# Each takes the fields and returns the text; validity was checked by form_of.

def _f_alu(op: int, dst: int, src: int, off: int, imm: int) -> str:
    regs = _R if op & 0x07 == 0x07 else _W
    sym = _SIGNED_ALU_OPS[op & 0xF0] if off == 1 else _ALU_OPS[op & 0xF0]
    if op & 0x08:
        return f"{regs[dst]} {sym} {regs[src]}"
    return f"{regs[dst]} {sym} {_hex(imm)}"


def _f_neg(op: int, dst: int, src: int, off: int, imm: int) -> str:
    reg = (_R if op & 0x07 == 0x07 else _W)[dst]
    return f"{reg} = -{reg}"


def _f_end(op: int, dst: int, src: int, off: int, imm: int) -> str:
    return f"r{dst} = {'be' if op & 0x08 else 'le'}{imm} r{dst}"


def _f_bswap(op: int, dst: int, src: int, off: int, imm: int) -> str:
    return f"r{dst} = bswap{imm} r{dst}"


def _f_movsx(op: int, dst: int, src: int, off: int, imm: int) -> str:
    regs = _R if op & 0x07 == 0x07 else _W
    return f"{regs[dst]} = (s{off}){regs[src]}"


def _f_addr_space_cast(op: int, dst: int, src: int, off: int, imm: int) -> str:
    return (f"r{dst} = addr_space_cast(r{src}, {(imm >> 16) & 0xFFFF:#x}, "
            f"{imm & 0xFFFF:#x})")


def _f_ja(op: int, dst: int, src: int, off: int, imm: int) -> str:
    return f"goto {_rel(off)}"


def _f_gotol(op: int, dst: int, src: int, off: int, imm: int) -> str:
    return f"gotol {_rel(imm)}"


def _f_may_goto(op: int, dst: int, src: int, off: int, imm: int) -> str:
    return f"may_goto {_rel(off)}"


def _f_call(op: int, dst: int, src: int, off: int, imm: int) -> str:
    return f"call {_hex(imm)}"


def _f_callx(op: int, dst: int, src: int, off: int, imm: int) -> str:
    return f"callx r{dst}"


def _f_exit(op: int, dst: int, src: int, off: int, imm: int) -> str:
    return "exit"


def _f_jcmp(op: int, dst: int, src: int, off: int, imm: int) -> str:
    regs = _R if op & 0x07 == 0x05 else _W
    rhs = regs[src] if op & 0x08 else _hex(imm)
    return f"if {regs[dst]} {_JMP_OPS[op & 0xF0]} {rhs} goto {_rel(off)}"


def _f_lddw(op: int, dst: int, src: int, off: int, imm: int) -> str:
    if src:
        return f"ld_pseudo\tr{dst}, {src:#x}, {imm & 0xFFFFFFFF:#x}"
    imm &= _MASK64
    return f"r{dst} = {_hex(imm - (1 << 64) if imm >> 63 else imm)} ll"


def _f_ldabs(op: int, dst: int, src: int, off: int, imm: int) -> str:
    return f"r0 = *({_SIZE_TYPE[op & 0x18]} *)skb[{_hex(imm)}]"


def _f_ldind(op: int, dst: int, src: int, off: int, imm: int) -> str:
    # LLVM prints no immediate here, although the kernel adds it to the offset.
    return f"r0 = *({_SIZE_TYPE[op & 0x18]} *)skb[r{src}]"


def _f_ldx(op: int, dst: int, src: int, off: int, imm: int) -> str:
    size = op & 0x18
    reg = _R[dst] if size == 0x18 else _W[dst]
    return f"{reg} = *({_SIZE_TYPE[size]} *)({_mem(src, off)})"


def _f_ldxsx(op: int, dst: int, src: int, off: int, imm: int) -> str:
    return f"r{dst} = *({_SIGNED_TYPE[op & 0x18]} *)({_mem(src, off)})"


def _f_st(op: int, dst: int, src: int, off: int, imm: int) -> str:
    return f"*({_SIZE_TYPE[op & 0x18]} *)({_mem(dst, off)}) = {_hex(imm)}"


def _f_stx(op: int, dst: int, src: int, off: int, imm: int) -> str:
    size = op & 0x18
    reg = _R[src] if size == 0x18 else _W[src]
    return f"*({_SIZE_TYPE[size]} *)({_mem(dst, off)}) = {reg}"


def _f_atomic(op: int, dst: int, src: int, off: int, imm: int) -> str:
    is64 = op & 0x18 == 0x18
    regs = _R if is64 else _W
    typ = "u64" if is64 else "u32"
    addr = _mem(dst, off)
    s = regs[src]
    if imm in _ATOMIC_LOCK:
        return f"lock *({typ} *)({addr}) {_ATOMIC_LOCK[imm]} {s}"
    if imm in _ATOMIC_FETCH:
        return f"{s} = atomic_fetch_{_ATOMIC_FETCH[imm]}(({typ} *)({addr}), {s})"
    sfx = "_64" if is64 else "32_32"
    if imm == 0xE1:
        return f"{s} = xchg{sfx}({addr}, {s})"
    r0 = regs[0]
    return f"{r0} = cmpxchg{sfx}({addr}, {r0}, {s})"


def _f_load_acquire(op: int, dst: int, src: int, off: int, imm: int) -> str:
    size = op & 0x18
    reg = _R[dst] if size == 0x18 else _W[dst]
    return f"{reg} = load_acquire(({_SIZE_TYPE[size]} *)({_mem(src, off)}))"


def _f_store_release(op: int, dst: int, src: int, off: int, imm: int) -> str:
    size = op & 0x18
    reg = _R[src] if size == 0x18 else _W[src]
    return f"store_release(({_SIZE_TYPE[size]} *)({_mem(dst, off)}), {reg})"


def _f_ldx_r(op: int, dst: int, src: int, off: int, imm: int) -> str:
    return f"r{dst} = *({_SIZE_TYPE[op & 0x18]} *)({_mem(src, off)})"


def _f_stx_r(op: int, dst: int, src: int, off: int, imm: int) -> str:
    return f"*({_SIZE_TYPE[op & 0x18]} *)({_mem(dst, off)}) = r{src}"


def _f_atomic_r(op: int, dst: int, src: int, off: int, imm: int) -> str:
    if op & 0x18 == 0x18:
        return _f_atomic(op, dst, src, off, imm)
    # Without alu32 the only 32-bit atomic LLVM decodes is the old add, and it reads
    # the fetch bit of add as that same add.
    if imm in (0x00, 0x01):
        return f"lock *(u32 *)({_mem(dst, off)}) += r{src}"
    return UNKNOWN


_FORMATTERS: Dict[str, Callable[[int, int, int, int, int], str]] = {
    "alu": _f_alu, "neg": _f_neg, "end": _f_end, "bswap": _f_bswap, "movsx": _f_movsx,
    "addr_space_cast": _f_addr_space_cast, "ja": _f_ja, "gotol": _f_gotol,
    "may_goto": _f_may_goto, "call": _f_call, "callx": _f_callx, "exit": _f_exit,
    "jcmp": _f_jcmp, "lddw": _f_lddw, "ldabs": _f_ldabs, "ldind": _f_ldind, "ldx": _f_ldx,
    "ldxsx": _f_ldxsx, "st": _f_st, "stx": _f_stx, "atomic": _f_atomic,
    "load_acquire": _f_load_acquire, "store_release": _f_store_release,
}

#: The formatters that differ without the alu32 feature (llvm-objdump's default CPU).
_NO_ALU32: Dict[str, Callable[[int, int, int, int, int], str]] = {
    "ldx": _f_ldx_r, "stx": _f_stx_r, "atomic": _f_atomic_r,
}


def _text(kind: str, ins: Instruction, alu32: bool) -> str:
    """The llvm-objdump text of ``ins`` of form kind ``kind`` (no annotation)."""
    table = _FORMATTERS if alu32 else _NO_ALU32
    fmt = table.get(kind) or _FORMATTERS[kind]
    return fmt(ins.opcode, ins.dst, ins.src, ins.off, ins.imm)


#: Form kinds after which llvm-objdump prints the branch target.
_BRANCH_KINDS = frozenset(("ja", "gotol", "may_goto", "jcmp"))


def jump_target(ins: Instruction, pc: int) -> Optional[int]:
    """The slot a jump at slot ``pc`` lands on (``pc + 1 + offset``), or None if ``ins``
    is not a jump. Local calls are not jumps here: llvm-objdump 19 does not annotate them.
    """
    op = ins.opcode
    cls = op & 0x07
    if cls == 0x05:
        if op in (0x85, 0x8D, 0x95):
            return None
        return pc + 1 + ins.off
    if cls == 0x06:
        if op == 0x06:
            return pc + 1 + ins.imm
        return pc + 1 + ins.off
    return None


class _Symbols:
    """Address -> name lookup the way llvm-objdump picks a branch annotation: the
    closest symbol at or below the target address (compared as unsigned 64-bit),
    with the section itself as a symbol at address 0."""

    __slots__ = ("addresses", "names")

    def __init__(self, section: str, labels: Optional[Mapping[int, str]]) -> None:
        table = {0: section}
        if labels:
            for slot, name in labels.items():
                table[(slot * 8) & _MASK64] = name
        self.addresses = sorted(table)
        self.names = [table[a] for a in self.addresses]

    def annotate(self, target_slot: int) -> str:
        address = (target_slot * 8) & _MASK64
        i = bisect.bisect_right(self.addresses, address) - 1
        delta = address - self.addresses[i]
        return f"<{self.names[i]}+{delta:#x}>" if delta else f"<{self.names[i]}>"


def format_instruction(ins: Instruction, *, pc: Optional[int] = None,
                       section: Optional[str] = None,
                       labels: Optional[Mapping[int, str]] = None,
                       alu32: bool = True) -> str:
    """The text llvm-objdump prints for ``ins`` (without the address column).

    With ``pc`` (the instruction's slot index) and ``section`` (e.g. ``".text"``), jumps
    get llvm's target annotation: `` <.text+0x38>``, or `` <name+0x8>`` relative to the
    closest of ``labels`` (a mapping slot -> name) at or below the target. An instruction
    that breaks the encoding rules prints as ``<unknown>``, as llvm-objdump prints
    undecodable bytes.

    ``alu32=True`` gives the text of ``llvm-objdump --mcpu=v4`` (``w`` registers in
    loads and stores narrower than 64 bits), ``alu32=False`` that of llvm-objdump's
    default CPU, which is what ``llvm-objdump -d FILE.o`` prints (see the module
    documentation).
    """
    op = ins.opcode
    try:
        kind = form_of(op, ins.dst, ins.src, ins.off, ins.imm).kind
    except InvalidInstruction:
        return UNKNOWN
    text = _text(kind, ins, alu32)
    if text == UNKNOWN:
        return text
    if pc is not None and section is not None and kind in _BRANCH_KINDS:
        target = jump_target(ins, pc)
        assert target is not None
        text += " " + _Symbols(section, labels).annotate(target)
    return text


# -- listings -----------------------------------------------------------------------------

class ListingLine(NamedTuple):
    """One instruction of a listing.

    ``address`` is the slot index (llvm-objdump's address column), ``text`` the
    llvm-objdump text (with the branch annotation when the listing has a section),
    ``comment`` pybpf's explanation (a helper's name, ...) or ``""``, and ``label`` the
    name of this address or ``None``.
    """

    address: int
    instruction: Instruction
    text: str
    comment: str
    label: Optional[str]


Code = Union[bytes, bytearray, memoryview, Iterable[Instruction]]


def _as_instructions(code: Code) -> List[Instruction]:
    if isinstance(code, (bytes, bytearray, memoryview)):
        return decode(bytes(code), validate=False)
    return list(code)


def _comment(ins: Instruction, kind: str, pc: int, symbols: Optional[_Symbols]) -> str:
    if kind == "call":
        if ins.src == 0:
            return helper_name(ins.imm) or f"unknown helper {ins.imm}"
        if ins.src == 1:
            target = pc + 1 + ins.imm
            where = symbols.annotate(target) if symbols else f"slot {target}"
            return f"bpf-to-bpf call to {where}"
        return f"kfunc call, BTF id {ins.imm}" + (f", module BTF fd index {ins.off}"
                                                   if ins.off else "")
    if kind == "lddw" and ins.src:
        what = {1: "map fd", 2: "map fd + value offset", 3: "BTF id of a kernel variable",
                4: "subprogram", 5: "map index", 6: "map index + value offset"}[ins.src]
        extra = ""
        if ins.src in (2, 3, 6):
            high = (ins.imm & _MASK64) >> 32
            extra = f", second imm {high:#x}"
        if ins.src == 4:
            target = _target_of(ins, kind, pc)
            assert target is not None
            extra = " at " + (symbols.annotate(target) if symbols else f"slot {target}")
        return what + extra
    if kind == "ldind" and ins.imm:
        return f"offset is r{ins.src} + {_hex(ins.imm)} (llvm does not print the immediate)"
    return ""


def _target_of(ins: Instruction, kind: str, pc: int) -> Optional[int]:
    """The slot a jump, local call or subprogram load (``ld_pseudo rN, 4, imm``) at
    ``pc`` refers to, or None."""
    if kind in _BRANCH_KINDS:
        return jump_target(ins, pc)
    if kind == "call" and ins.src == 1:
        return pc + 1 + ins.imm
    if kind == "lddw" and ins.src == 4:  # the kernel counts from the first slot + 1
        low = ins.imm & 0xFFFFFFFF
        return pc + 1 + (low - (1 << 32) if low & 0x80000000 else low)
    return None


def _kinds(instructions: Sequence[Instruction]) -> List[Optional[str]]:
    kinds: List[Optional[str]] = []
    for ins in instructions:
        try:
            kinds.append(form_of(ins.opcode, ins.dst, ins.src, ins.off, ins.imm).kind)
        except InvalidInstruction:
            kinds.append(None)
    return kinds


_SYMBOL = re.compile(r"[A-Za-z_.$][\w.$]*\Z")
_REGISTER_LIKE = re.compile(r"[rRwW][0-9]+\Z")


def _usable_in_text(name: str) -> bool:
    """True if ``name`` reads back as a label in LLVM assembly (``goto name``)."""
    return _SYMBOL.match(name) is not None and _REGISTER_LIKE.match(name) is None


def _name_targets(instructions: Sequence[Instruction], kinds: Sequence[Optional[str]],
                  names: Dict[int, str]) -> None:
    """Give every target that starts an instruction a name ``L<slot>`` (in place)."""
    starts = set()
    pc = 0
    for ins in instructions:
        starts.add(pc)
        pc += 2 if ins.opcode == 0x18 else 1
    used = set(names.values())
    pc = 0
    for ins, kind in zip(instructions, kinds):
        target = _target_of(ins, kind, pc) if kind else None
        if target is not None and target in starts and \
                (target not in names or not _usable_in_text(names[target])):
            name = f"L{target}"
            while name in used:
                name += "_"
            names[target] = name
            used.add(name)
        pc += 2 if ins.opcode == 0x18 else 1


def iter_listing(code: Code, *, labels: Union[None, bool, Mapping[int, str]] = None,
                 section: Optional[str] = ".text", helper_comments: bool = True,
                 symbolic: bool = False, alu32: bool = True) -> Iterator[ListingLine]:
    """Yield a :class:`ListingLine` per instruction of ``code`` (bytes or instructions).

    ``labels`` names addresses: a mapping slot -> name; ``None`` (the default) uses the
    ``label`` of each given :class:`Instruction`, ``True`` also names every jump and
    call target ``L<slot>``, ``False`` uses no names. Branch annotations are computed
    against ``section`` and the labels, as llvm-objdump does with symbols;
    ``section=None`` leaves them out.
    ``helper_comments`` adds pybpf's comments (helper names, call targets, pseudo
    loads). Instructions that break the encoding rules are listed as ``<unknown>`` with
    the broken rule as comment.

    ``symbolic=True`` (a pybpf extension, not llvm-objdump's text) names every target
    and writes branches, local calls and subprogram loads with the name instead of the
    offset (``goto L5``, ``call L6``): such a listing assembles back exactly, local
    calls included, which llvm's ``call 0x2`` cannot do.

    ``alu32`` chooses the register spelling as in :func:`format_instruction`.
    """
    instructions = _as_instructions(code)
    kinds = _kinds(instructions)
    names: Dict[int, str] = {}
    if labels is None or labels is True:
        pc = 0
        for ins in instructions:
            if ins.label is not None:
                names[pc] = ins.label
            pc += 2 if ins.opcode == 0x18 else 1
    elif labels is not False:
        names = dict(labels)
    if labels is True or symbolic:
        _name_targets(instructions, kinds, names)
    symbols = _Symbols(section, names) if section is not None else None
    pc = 0
    for ins, kind in zip(instructions, kinds):
        op = ins.opcode
        if kind is None:
            reason = ""
            if helper_comments:
                try:
                    form_of(op, ins.dst, ins.src, ins.off, ins.imm)
                except InvalidInstruction as exc:
                    reason = str(exc)
            yield ListingLine(pc, ins, UNKNOWN, reason, names.get(pc))
            pc += 2 if op == 0x18 else 1
            continue
        text = _text(kind, ins, alu32)
        if text == UNKNOWN:
            reason = ("llvm-objdump decodes this 32-bit atomic operation only with alu32"
                      if helper_comments else "")
            yield ListingLine(pc, ins, UNKNOWN, reason, names.get(pc))
            pc += 2 if op == 0x18 else 1
            continue
        target = _target_of(ins, kind, pc)
        if symbolic and target is not None and target in names:
            # the target is the last operand: swap the number for the name
            text = text[:text.rindex(" ") + 1] + names[target]
        elif symbols is not None and kind in _BRANCH_KINDS:
            assert target is not None
            text += " " + symbols.annotate(target)
        comment = _comment(ins, kind, pc, symbols) if helper_comments else ""
        yield ListingLine(pc, ins, text, comment, names.get(pc))
        pc += 2 if op == 0x18 else 1


def disassemble(code: Code, *, helper_comments: bool = True,
                labels: Union[None, bool, Mapping[int, str]] = None,
                section: Optional[str] = ".text", addresses: bool = True,
                show_bytes: bool = False, symbolic: bool = False,
                alu32: bool = True) -> str:
    """A readable listing of ``code`` (bytes or instructions), one line per instruction.

    Each line is llvm-objdump's: the slot address right-aligned in 8 columns, a colon
    and a tab, then the instruction text, byte for byte what ``llvm-objdump -d
    --no-show-raw-insn --mcpu=v4`` prints. pybpf adds, for learners:

    * a ``# comment`` after helper calls (``call 0xe  # bpf_get_current_pid_tgid``),
      local and kfunc calls and pseudo map loads (``helper_comments=False`` drops them);
      ``#`` and not ``;`` because ``;`` separates statements in LLVM's BPF assembly;
    * a ``name:`` line before each labelled address, with a blank line before it, and
      branch annotations that use the labels as llvm-objdump uses symbols (see
      :func:`iter_listing` for ``labels``, ``section`` and ``symbolic``).

    ``addresses=False`` drops the address column; ``show_bytes=True`` adds the raw
    bytes like llvm-objdump without ``--no-show-raw-insn``. Without ``show_bytes`` the
    listing assembles back with :func:`pybpf.asm.llvm_asm.assemble` (the addresses
    read as numeric labels, the annotations and comments are ignored), up to what
    LLVM's text does not say: local and kfunc calls read back as helper calls
    (``symbolic=True`` keeps local calls), ``ld_pseudo`` loses the second immediate
    and ``skb[rN]`` its immediate. ``alu32=False`` gives the register spelling of
    llvm-objdump's default CPU instead of ``--mcpu=v4`` (see :func:`format_instruction`).
    """
    out: List[str] = []
    append = out.append
    for line in iter_listing(code, labels=labels, section=section,
                             helper_comments=helper_comments, symbolic=symbolic,
                             alu32=alu32):
        if line.label is not None:
            if out:
                append("")
            append(f"{line.label}:")
        head = f"{line.address:8d}:\t" if addresses else "\t"
        if show_bytes:
            head += _raw_bytes(line.instruction)
        text = line.text
        if line.comment:
            text += "  # " + line.comment
        append(head + text)
    return "\n".join(out) + ("\n" if out else "")


def _raw_bytes(ins: Instruction) -> str:
    try:
        raw = ins.encode()
    except InvalidInstruction:
        return "?? " * 7 + "??\t"
    return " ".join(f"{b:02x}" for b in raw) + "\t"
