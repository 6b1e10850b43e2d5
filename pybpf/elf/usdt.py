"""USDT probes (SystemTap SDT notes, ``sys/sdt.h``): listing them and describing their
arguments.

Each ``DTRACE_PROBE``/``STAP_PROBE`` site leaves a note in ``.note.stapsdt`` holding
the probe's address, the link-time address of ``.stapsdt.base`` (to correct for
prelinking), the address of its semaphore (0 without one), the provider and probe
names, and an argument string such as ``-4@-20(%rbp) 8@%rax 4@$5``: per argument its
size (negative: signed) and where the value is (a register, memory at register plus
offset, or a constant). :func:`usdt_probes` returns them as :class:`UsdtProbe` objects
with file offsets ready for uprobes (``offset``, and ``semaphore_offset`` for the
kernel's reference counter, Linux 4.20). :data:`PT_REGS_OFFSETS` says where each x86-64
register sits in ``struct pt_regs``, which is what a probe program reads.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from ..errors import UnknownNameError, close_matches
from .symbols import ElfFile, SHT_NOTE

__all__ = ["UsdtArg", "UsdtProbe", "usdt_probes", "find_usdt", "parse_args",
           "PT_REGS_OFFSETS", "UnknownProbeError"]

_NT_STAPSDT = 3


class UnknownProbeError(UnknownNameError):
    """A USDT probe the binary does not have (``matches`` lists close ones)."""


@dataclass(frozen=True)
class UsdtArg:
    """One probe argument: ``size`` in bytes, ``signed``, and its location: ``kind``
    ``"const"`` (``value``), ``"reg"`` (the register ``reg``) or ``"mem"`` (at
    ``reg`` + ``offset``, plus ``index`` * ``scale`` when an index register is given).
    ``text`` is the note's own spelling."""

    size: int
    signed: bool
    kind: str
    reg: str = ""
    offset: int = 0
    value: int = 0
    index: str = ""
    scale: int = 1
    text: str = ""

    @property
    def pt_regs_offset(self) -> Optional[int]:
        """Where ``reg`` is in x86-64 ``struct pt_regs`` (None if unknown)."""
        return PT_REGS_OFFSETS.get(_canonical_reg(self.reg)) if self.reg else None


@dataclass(frozen=True)
class UsdtProbe:
    """One probe site. ``address`` is the (prelink-corrected) virtual address,
    ``offset`` its file offset, ``semaphore`` the semaphore's address and
    ``semaphore_offset`` its file offset (0 without a semaphore)."""

    provider: str
    name: str
    address: int
    offset: int
    semaphore: int
    semaphore_offset: int
    args: Tuple[UsdtArg, ...]
    arg_text: str
    path: str

    @property
    def full_name(self) -> str:
        """``provider:name``."""
        return f"{self.provider}:{self.name}"


# x86-64 struct pt_regs: r15 r14 r13 r12 bp bx r11 r10 r9 r8 ax cx dx si di orig_ax ip cs
# flags sp ss, 8 bytes each
_PT_REGS_ORDER = ("r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8",
                  "rax", "rcx", "rdx", "rsi", "rdi", "orig_rax", "rip", "cs", "eflags",
                  "rsp", "ss")
#: byte offset of each 64-bit x86 register in ``struct pt_regs``
PT_REGS_OFFSETS: Dict[str, int] = {r: i * 8 for i, r in enumerate(_PT_REGS_ORDER)}

_SUBREGS = {
    "rax": ("eax", "ax", "al", "ah"), "rbx": ("ebx", "bx", "bl", "bh"),
    "rcx": ("ecx", "cx", "cl", "ch"), "rdx": ("edx", "dx", "dl", "dh"),
    "rsi": ("esi", "si", "sil"), "rdi": ("edi", "di", "dil"),
    "rbp": ("ebp", "bp", "bpl"), "rsp": ("esp", "sp", "spl"), "rip": ("eip", "ip"),
}
_ALIASES = {sub: full for full, subs in _SUBREGS.items() for sub in subs}
for _n in range(8, 16):
    for _suffix in ("d", "w", "b"):
        _ALIASES[f"r{_n}{_suffix}"] = f"r{_n}"


def _canonical_reg(reg: str) -> str:
    reg = reg.lstrip("%").lower()
    return _ALIASES.get(reg, reg)


_X86_MEM = re.compile(r"^(?P<off>[-+]?(?:0x[0-9a-fA-F]+|\d+))?\((?P<base>%\w+)?"
                      r"(?:,(?P<index>%\w+)(?:,(?P<scale>\d+))?)?\)$")
_ARM_MEM = re.compile(r"^\[(?P<base>\w+)(?:,\s*#?(?P<off>[-+]?(?:0x[0-9a-fA-F]+|\d+)))?\]$")


def _parse_one(text: str) -> UsdtArg:
    size_text, at, loc = text.partition("@")
    if not at:
        size_text, loc = "8", text        # very old notes have no size
    try:
        size = int(size_text)
    except ValueError:
        raise ValueError(f"USDT argument {text!r}: bad size {size_text!r}") from None
    signed, size = size < 0, abs(size)
    if loc.startswith("$"):
        return UsdtArg(size, signed, "const", value=int(loc[1:], 0), text=text)
    if loc.startswith("%"):
        return UsdtArg(size, signed, "reg", reg=_canonical_reg(loc), text=text)
    found = _X86_MEM.match(loc)
    if found:
        return UsdtArg(size, signed, "mem", reg=_canonical_reg(found.group("base") or ""),
                       offset=int(found.group("off") or "0", 0),
                       index=_canonical_reg(found.group("index") or ""),
                       scale=int(found.group("scale") or "1"), text=text)
    found = _ARM_MEM.match(loc)
    if found:
        return UsdtArg(size, signed, "mem", reg=found.group("base"),
                       offset=int(found.group("off") or "0", 0), text=text)
    if re.fullmatch(r"[-+]?(?:0x[0-9a-fA-F]+|\d+)", loc):
        return UsdtArg(size, signed, "const", value=int(loc, 0), text=text)
    if re.fullmatch(r"\w+", loc):
        return UsdtArg(size, signed, "reg", reg=loc, text=text)
    raise ValueError(f"USDT argument {text!r}: unknown location {loc!r}")


def parse_args(text: str) -> Tuple[UsdtArg, ...]:
    """The arguments of a probe's argument string (``"-4@-20(%rbp) 8@%rax"``)."""
    # split on spaces that are not inside brackets (aarch64 writes "[sp, 16]")
    parts, depth, cur = [], 0, ""
    for ch in text.strip():
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        if ch == " " and depth == 0:
            if cur:
                parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur:
        parts.append(cur)
    return tuple(_parse_one(p) for p in parts)


def _cstr(data: bytes, start: int) -> Tuple[str, int]:
    end = data.find(b"\0", start)
    if end < 0:
        end = len(data)
    return data[start:end].decode(errors="replace"), end + 1


def usdt_probes(path: str) -> List[UsdtProbe]:
    """Every USDT probe site in the ELF file ``path`` (empty if it has none)."""
    with ElfFile(path) as elf:
        notes = [s for s in elf.sections if s.name == ".note.stapsdt" and s.type == SHT_NOTE]
        base_sec = elf.section(".stapsdt.base")
        word = 8 if elf.is64 else 4
        addr_fmt = elf.endian + ("QQQ" if elf.is64 else "III")
        out: List[UsdtProbe] = []
        for sec in notes:
            data = bytes(elf.section_data(sec))
            pos = 0
            while pos + 12 <= len(data):
                namesz, descsz, ntype = struct.unpack_from(elf.endian + "III", data, pos)
                pos += 12
                name = data[pos:pos + namesz]
                pos += (namesz + 3) & ~3
                desc = data[pos:pos + descsz]
                pos += (descsz + 3) & ~3
                if ntype != _NT_STAPSDT or name.rstrip(b"\0") != b"stapsdt":
                    continue
                pc, base, sem = struct.unpack_from(addr_fmt, desc, 0)
                provider, at = _cstr(desc, 3 * word)
                probe, at = _cstr(desc, at)
                args, _ = _cstr(desc, at)
                if base_sec is not None and base:
                    adjust = base_sec.addr - base
                    pc += adjust
                    if sem:
                        sem += adjust
                offset = elf.file_offset(pc)
                sem_off = elf.file_offset(sem) if sem else 0
                out.append(UsdtProbe(provider, probe, pc, offset, sem, sem_off,
                                     parse_args(args), args, path))
        return out


def find_usdt(path: str, provider: Optional[str], name: str) -> List[UsdtProbe]:
    """The sites of probe ``provider:name`` (``provider`` None: any provider) in
    ``path``. Raises :class:`UnknownProbeError` with close matches."""
    every = usdt_probes(path)
    found = [p for p in every if p.name == name and (provider is None or
                                                     p.provider == provider)]
    if not found:
        wanted = f"{provider}:{name}" if provider else name
        names = sorted({p.full_name for p in every})
        raise UnknownProbeError("USDT probe", wanted, close_matches(wanted, names),
                                detail=f"in {path}" + ("" if every else ", which has no "
                                                       "USDT probes"))
    return found
