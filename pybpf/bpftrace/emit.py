"""What ``pybpf trace`` shows of the compiled code instead of running it.

* :func:`write_elf` is ``--emit-elf FILE``: the lowered programs as a relocatable BPF
  ELF object (:func:`pybpf.object.writer.build_object`), one section per program named
  as bpftrace 0.17 names them (``s_<probe>_<n>``: the probe's attach points as bpftrace
  spells them, or the expanded match when the probe is compiled once per match, and a
  counter per probe name), and the maps the programs use, so ``llvm-objdump -d`` and
  pybpf's own object reader read it.
* :func:`disassembly` is what ``-d``/``-dd`` print after the typed trees where bpftrace
  prints LLVM IR: each program's instructions in llvm-objdump's dialect
  (:func:`pybpf.asm.disasm.disassemble`), map loads named by the map they load.
"""

from __future__ import annotations

from typing import Any, List

__all__ = ["write_elf", "disassembly"]


def write_elf(mod: Any, path: str) -> bytes:
    """Write lowered module ``mod`` (:class:`~pybpf.bpftrace.lower.LoweredModule`) to
    ``path`` as an ELF object and return its bytes (license GPL, as bpftrace's)."""
    from ..object.writer import ObjectProgram, build_object
    programs = [ObjectProgram(p.section, p.name, p.instructions) for p in mod.programs]
    used = {i.reference for p in mod.programs for i in p.instructions
            if getattr(i, "reference", None)}
    maps = {name: decl.spec(name) for name, decl in mod.unit.maps.items() if name in used}
    return build_object(programs, maps, license="GPL", path=path)


def disassembly(mod: Any) -> str:
    """The ``Disassembly`` section of ``-d``: every program under its bpftrace section
    name, in llvm-objdump's text."""
    from ..asm.disasm import disassemble
    out: List[str] = ["Disassembly\n-------------------\n"]
    for p in mod.programs:
        refs = [i.reference for i in p.instructions
                if i.opcode == 0x18 and getattr(i, "reference", None)]
        lines = []
        for line in disassemble(p.instructions, section=p.section).split("\n"):
            if line.endswith("# map fd") and refs:
                line = line[:-len("map fd")] + f"map {refs.pop(0)}"
            lines.append(line)
        out.append(f"{p.section} ({p.prog_type.replace('BPF_PROG_TYPE_', '').lower()}):\n")
        out.append("\n".join(lines).rstrip("\n") + "\n\n")
    return "".join(out)
