"""One entry point for both assembly dialects."""

from __future__ import annotations

from typing import List

from .instruction import Instruction

__all__ = ["assemble", "DIALECTS"]

#: dialect name -> module implementing ``assemble(text, *, file, long_jumps)``
DIALECTS = {"llvm": "pybpf.asm.llvm_asm", "ubpf": "pybpf.asm.ubpf_asm"}


def assemble(text: str, *, dialect: str = "llvm", file: str = "<input>",
             long_jumps: bool = False) -> List[Instruction]:
    """Assemble ``text`` into linked instructions.

    ``dialect`` is ``"llvm"`` (``r0 = 1``, as llvm-objdump prints) or ``"ubpf"``
    (``mov %r0, 1``, as the conformance suite writes). Errors are
    :class:`~pybpf.asm.errors.AssemblyError` with ``file:line:column``.
    """
    import importlib

    try:
        module = importlib.import_module(DIALECTS[dialect])
    except KeyError:
        raise ValueError(f"unknown dialect {dialect!r} (known: {', '.join(DIALECTS)})") from None
    return module.assemble(text, file=file, long_jumps=long_jumps)
