"""The error of :mod:`pybpf.object`."""

from __future__ import annotations

__all__ = ["ObjectError"]


class ObjectError(ValueError):
    """A BPF ELF object pybpf cannot read: the message names the section, symbol or
    relocation at fault."""
