"""Generators of valid instructions for property and differential tests."""

from __future__ import annotations

import itertools
import random
from typing import Dict, List, Optional, Tuple

from pybpf.asm import Instruction, InvalidInstruction, form_of

_SPECIAL_IMMS = (0, 1, 16, 32, 64, 0x40, 0x41, 0x50, 0x51, 0xA0, 0xA1, 0xE1, 0xF1, 0x100, 0x110)
_SPECIAL_OFFS = (0, 1, 8, 16, 32)


def _valid(opcode: int, dst: int, src: int, off: int, imm: int) -> bool:
    try:
        form_of(opcode, dst, src, off, imm)
        return True
    except InvalidInstruction:
        return False


def _templates() -> List[Tuple[int, int, int, int]]:
    """(opcode, src, off, imm) combinations that fix the form; 'free' fields vary later."""
    out = []
    for opcode in range(256):
        for src, off, imm in itertools.product(range(7), _SPECIAL_OFFS, _SPECIAL_IMMS):
            if _valid(opcode, 1 if opcode & 7 not in (5, 6) or opcode in (0x8d,) else 0,
                      src, off, imm) or _valid(opcode, 0, src, off, imm):
                out.append((opcode, src, off, imm))
    return out


TEMPLATES = _templates()


def _group_templates() -> Dict[str, List[Tuple[int, int, int, int]]]:
    groups: Dict[str, List[Tuple[int, int, int, int]]] = {}
    for t in TEMPLATES:
        opcode, src, off, imm = t
        for dst in (1, 0):
            try:
                name = form_of(opcode, dst, src, off, imm).name
            except InvalidInstruction:
                continue
            groups.setdefault(name, []).append(t)
            break
    return groups


TEMPLATES_BY_FORM = _group_templates()
FORM_NAMES = sorted(TEMPLATES_BY_FORM)


def forms_by_name() -> Dict[str, Tuple[int, int, int, int]]:
    """One template per Form name."""
    return {name: ts[0] for name, ts in TEMPLATES_BY_FORM.items()}


def random_instruction(rng: random.Random) -> Instruction:
    """A random valid instruction: a template with its free fields randomised."""
    while True:
        opcode, src, off, imm = rng.choice(TEMPLATES_BY_FORM[rng.choice(FORM_NAMES)])
        dst = rng.randrange(11)
        cand: List[Tuple[int, int, int, int]] = []
        r_src = rng.randrange(11)
        r_off = rng.choice((rng.randrange(-0x8000, 0x8000), rng.randrange(-64, 64)))
        r_imm = rng.choice((rng.randrange(-(1 << 31), 1 << 31), rng.randrange(-300, 300)))
        if opcode == 0x18:
            r_imm = rng.randrange(0, 1 << 64) if src in (0, 2, 3, 6) else rng.randrange(0, 1 << 32)
        for s, o, i in itertools.product((r_src, src), (r_off, off), (r_imm, imm)):
            cand.append((dst, s, o, i))
        cand.append((0, src, off, imm))
        for d, s, o, i in cand:
            if _valid(opcode, d, s, o, i):
                return Instruction(opcode, d, s, o, i)


def random_program(n: int, seed: int = 0, rng: Optional[random.Random] = None) -> List[Instruction]:
    """``n`` random valid instructions."""
    rng = rng or random.Random(seed)
    return [random_instruction(rng) for _ in range(n)]
