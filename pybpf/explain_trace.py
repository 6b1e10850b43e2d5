"""``pybpf explain --trace INPUT``: run an explained program on :mod:`pybpf.vm` and set
what happened beside what the verifier assumed.

:func:`run_report` runs the instructions of a :class:`pybpf.explain.ProgramReport` on
the reference interpreter with INPUT as the program's input and records, for each
step, the registers after it. The input is

- for ``xdp``: the packet; r1 points at an ``xdp_md`` whose ``data``/``data_end`` (and
  ``data_meta``) hold the packet's bounds (the packet is placed where a 32-bit field
  can point at it, as the kernel's context rewrite allows);
- for ``socket_filter``, ``sched_cls`` and ``sched_act``: the packet; r1 points at a
  ``__sk_buff`` with ``len`` set and ``data``/``data_end`` bounding the packet, and
  ``ld_abs``/``ld_ind`` read it;
- for any other type: the context bytes themselves (r1 points at them).

Maps start empty: each map the verifier names (``map_ptr(map=NAME,ks=K,vs=V)``)
becomes a :class:`pybpf.vm.HashMap` of those sizes. A program that calls a helper the
vm does not implement is refused before it runs, with a one-line error naming it.

A top layer beside :mod:`pybpf.explain`; standard library only.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

__all__ = ["TraceInputError", "Run", "read_input", "run_report", "PACKET_TYPES"]

#: program types whose INPUT is a packet (with the context built around it)
PACKET_TYPES = ("xdp", "socket_filter", "sched_cls", "sched_act")
#: steps recorded at most (a loop runs long; the page stays small)
MAX_STEPS = 10000
_SKB_SIZE = 192           # sizeof(struct __sk_buff) on 6.x
_SKB_LEN, _SKB_DATA, _SKB_DATA_END = 0, 76, 80


class TraceInputError(ValueError):
    """INPUT cannot be read, or the program cannot run on the vm (a helper it lacks)."""


def read_input(path: str) -> bytes:
    """The bytes of ``path`` (the program's input for ``--trace``)."""
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise TraceInputError(f"--trace {path}: {exc.strerror or exc} (give a file of "
                              "the input bytes: the packet, or the context)") from None


@dataclass
class Step:
    """One executed instruction: ``pc`` (slot), the registers it changed as ``(reg,
    old, new)`` and all registers after it."""

    step: int
    pc: int
    changes: List[Tuple[int, int, int]]
    regs: Tuple[int, ...]

    def to_dict(self) -> Dict[str, Any]:
        """The step as JSON data (registers as hex strings: 64-bit values survive
        JavaScript)."""
        return {"step": self.step, "pc": self.pc,
                "changes": [f"r{r} {o:#x} -> {n:#x}" for r, o, n in self.changes],
                "regs": [f"r{i}={v:#x}" for i, v in enumerate(self.regs)]}


@dataclass
class Run:
    """A run of a program on :mod:`pybpf.vm`: its steps, the result (r0 at exit) or the
    error that stopped it (a fault, the step limit, a helper it lacks)."""

    input_len: int
    steps: List[Step] = field(default_factory=list)
    result: Optional[int] = None
    error: Optional[str] = None

    def to_dict(self) -> Dict[str, Any]:
        """The run as JSON data (``result`` a hex string)."""
        return {"input_len": self.input_len, "steps": [s.to_dict() for s in self.steps],
                "result": None if self.result is None else f"{self.result:#x}",
                "error": self.error}

    def render(self, report: Any, out: Any, paint: Any) -> None:
        """Write the run as text: per step the instruction, the registers it changed
        and what the verifier assumed of them after that instruction (all paths)."""
        head = f"run of {report.name} on pybpf.vm ({self.input_len} bytes of input): " \
               f"{len(self.steps)} steps, "
        head += (f"returned {self.result:#x}" if self.error is None
                 else f"stopped: {self.error}")
        out.write(paint("1", head) + "\n")
        assumed = _assumed_after(report)
        for s in self.steps:
            ins = report.instructions.get(s.pc)
            text = _text(ins) if ins is not None else "?"
            line = f"  {s.step:5} {s.pc:5}: {text}"
            if s.changes:
                got = " ".join(f"r{r}={n:#x}" for r, _, n in s.changes)
                line = f"{line:<44} {paint('32', got)}"
                seen = [f"R{r}={'|'.join(sorted(assumed[(s.pc, r)]))}"
                        for r, _, _ in s.changes if assumed.get((s.pc, r))]
                if seen:
                    line += paint("2", "   verifier: " + " ".join(seen))
            out.write(line + "\n")
        out.write("\n")


def _text(ins: Any) -> str:
    from .asm.disasm import format_instruction
    return format_instruction(ins)


def _assumed_after(report: Any) -> Dict[Tuple[int, int], set]:
    """(slot, register) -> the log's texts of the register after that instruction."""
    out: Dict[Tuple[int, int], set] = {}
    if report.trace is None:
        return out
    for v in report.trace.visits:
        if v.after is None:
            continue
        for reg, value in v.after.regs.items():
            out.setdefault((v.index, reg), set()).add(value.text)
    return out


def _vm_maps(report: Any) -> Dict[str, Any]:
    from .vm import HashMap
    maps: Dict[str, Any] = {}
    if report.trace is None:
        return maps
    for v in report.trace.visits:
        for value in list(v.before.regs.values()) + (
                list(v.after.regs.values()) if v.after else []):
            if value.type != "map_ptr":
                continue
            name, ks, vs = (value.fields.get(k) for k in ("map", "ks", "vs"))
            if name and ks and vs and name not in maps:
                maps[str(name)] = HashMap(int(ks), int(vs), 1024, name=str(name))
    return maps


def _check_helpers(report: Any) -> None:
    from .asm.helpers import helper
    from .vm import HELPERS
    for index, ins in sorted(report.instructions.items()):
        if ins.is_helper_call and ins.imm not in HELPERS:
            try:
                name = "bpf_" + helper(ins.imm).name
            except Exception:
                name = "a helper"
            raise TraceInputError(
                f"--trace: {report.name} calls {name} (id {ins.imm}) at instruction "
                f"{index}, which pybpf.vm does not implement (hint: leave out --trace; "
                "the vm runs programs calling map, time, random, pid/uid/comm, "
                "probe_read, printk, ringbuf and loop helpers: docs/explain.md)")


def run_report(report: Any, data: bytes) -> Run:
    """Run ``report``'s program on :mod:`pybpf.vm` with ``data`` as its input (see the
    module docstring); raises :class:`TraceInputError` when a helper it calls is not
    implemented by the vm. A fault or the step limit ends the run with ``error`` set."""
    from .vm import Machine, VMError
    _check_helpers(report)
    program = [ins for _, ins in sorted(report.instructions.items())]
    run = Run(len(data))
    try:
        if report.type in PACKET_TYPES:
            xdp = report.type == "xdp"
            vm = Machine(program, mem=data, ctx=bytes(24 if xdp else _SKB_SIZE),
                         maps=_vm_maps(report))
            # the 32-bit pointer fields of the context can hold only an address below
            # 4 GiB: the packet is mapped again in the lowest window, where they can
            pkt = vm.memory.map("the packet", "mem", bytearray(data), low=True)
            ctx = vm.ctx_address
            assert ctx is not None
            if xdp:
                vm.write(ctx, struct.pack("<6I", pkt.base, pkt.end, pkt.base, 1, 0, 0))
            else:
                vm.write(ctx + _SKB_LEN, struct.pack("<I", len(data)))
                vm.write(ctx + _SKB_DATA, struct.pack("<II", pkt.base, pkt.end))
        else:
            vm = Machine(program, ctx=data, maps=_vm_maps(report))
        regs_steps = vm.trace(MAX_STEPS)
        for n, rec in enumerate(regs_steps, 1):
            run.steps.append(Step(n, rec.pc, list(rec.changes), vm.registers))
        run.result = vm.get_register(0)
    except VMError as exc:
        run.error = str(exc).split("\n")[0]
    return run
