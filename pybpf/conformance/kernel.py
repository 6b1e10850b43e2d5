"""Running a conformance program in the Linux kernel with ``BPF_PROG_TEST_RUN``.

XDP programs return only 32 bits and receive a packet, while a conformance test needs
its input memory in r1, the length in r2, and its full 64-bit r0. So the test body is
loaded as a subprogram behind a small XDP main part::

    main:   r1 = &input[0]          lookup of slot 0 of an ARRAY map holding the memory
            if r1 == NULL: return XDP_PASS
            r2 = len(mem)
            call local body         the test, with its own calls and exits
            result[0] = r0          lookup of slot 0 of a second ARRAY map (u64)
            return XDP_PASS
    body:   ...the test program...

User space fills the input map before the run and reads the result map after it. As the
body is appended unchanged, its relative jumps and calls stay valid; only main's call
into the body is computed.
"""

from __future__ import annotations

import errno
import os
from typing import Dict, List, Optional, Sequence

from ..asm.encoding import encode
from ..asm.instruction import Instruction
from ..asm.opcodes import (
    AluOp, CallKind, Class, JmpOp, Mode, Pseudo, Size, Source,
)
from ..asm.program import link, slot_count
from ..syscall.bpf import MapType, ProgType
from ..syscall.maps import map_create, map_lookup_elem, map_update_elem
from ..syscall.progs import prog_load, prog_test_run
from ..syscall.errors import BPFError

__all__ = ["KERNEL_SKIPS", "KernelRunner", "build_harness", "kernel_unavailable"]

#: What this kernel cannot run, by feature name (a :class:`~pybpf.asm.instruction.Form`
#: name or a :data:`~pybpf.conformance.runner.SPECIAL_FEATURES` name), with the reason
#: reported for every test that needs it. Only things Linux does not implement belong
#: here; everything else must pass.
KERNEL_SKIPS: Dict[str, str] = {
    "callx": ("callx (BPF_CALL | BPF_X, opcode 0x8d): the Linux verifier has no "
              "register-indirect call and rejects the opcode"),
    "shift_imm_out_of_range": (
        "a shift by an immediate outside 0..width-1: the Linux verifier refuses it at load "
        "time ('invalid shift', EINVAL) where RFC 9669 masks the count (& 31 or & 63); "
        "shifts by such a count in a register run and are masked"),
}

_XDP_PASS = 2
_HELPER_MAP_LOOKUP_ELEM = 1
_ETH_HLEN = 14          # BPF_PROG_TEST_RUN refuses XDP input shorter than this


def _ins(opcode: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0,
         **meta: object) -> Instruction:
    return Instruction(opcode, dst, src, off, imm, **meta)  # type: ignore[arg-type]


def _lookup_slot0(map_fd: int) -> List[Instruction]:
    """r0 = bpf_map_lookup_elem(map, &(u32){0}); clobbers r1-r5 and fp-4."""
    return [
        _ins(Mode.MEM | Size.W | Class.ST, 10, 0, -4, 0),                # *(u32 *)(r10-4) = 0
        _ins(AluOp.MOV | Source.X | Class.ALU64, 2, 10),                   # r2 = r10
        _ins(AluOp.ADD | Source.K | Class.ALU64, 2, 0, 0, -4),            # r2 += -4
        _ins(Mode.IMM | Size.DW | Class.LD, 1, Pseudo.MAP_FD, 0, map_fd),   # r1 = map
        _ins(JmpOp.CALL | Class.JMP, 0, CallKind.HELPER, 0, _HELPER_MAP_LOOKUP_ELEM),
    ]


def build_harness(input_map_fd: int, result_map_fd: int, mem_len: int,
                  body: Sequence[Instruction]) -> List[Instruction]:
    """The XDP main part followed by ``body``: see the module docstring."""
    jeq_k = JmpOp.JEQ | Source.K | Class.JMP
    main = [
        *_lookup_slot0(input_map_fd),
        _ins(jeq_k, 0, 0, 0, 0, reference="out"),                       # if r0 == 0 goto out
        _ins(AluOp.MOV | Source.X | Class.ALU64, 1, 0),                   # r1 = r0
        _ins(AluOp.MOV | Source.K | Class.ALU64, 2, 0, 0, mem_len),       # r2 = len(mem)
        _ins(JmpOp.CALL | Class.JMP, 0, CallKind.LOCAL, 0, 0, label="call_body"),
        _ins(AluOp.MOV | Source.X | Class.ALU64, 6, 0),                   # r6 = r0
        *_lookup_slot0(result_map_fd),
        _ins(jeq_k, 0, 0, 0, 0, reference="out"),                       # if r0 == 0 goto out
        _ins(Mode.MEM | Size.DW | Class.STX, 0, 6, 0, 0),                 # *(u64 *)r0 = r6
        _ins(AluOp.MOV | Source.K | Class.ALU64, 0, 0, 0, _XDP_PASS, label="out"),
        _ins(JmpOp.EXIT | Class.JMP),
    ]
    main = link(main)
    # the call into the body: relative to the slot after the call
    slot = 0
    for i, ins in enumerate(main):
        if ins.label == "call_body":
            main[i] = ins.replace(imm=slot_count(main) - (slot + 1))
            break
        slot += ins.slots
    return main + list(body)


def kernel_unavailable() -> Optional[str]:
    """Why programs cannot be run in this kernel, or None if they can."""
    if os.geteuid() != 0:
        return "not running as root (loading XDP programs needs CAP_BPF and CAP_NET_ADMIN)"
    try:
        with map_create(MapType.ARRAY, 4, 8, 1):
            pass
    except OSError as exc:
        return f"bpf() is not usable: {exc}"
    return None


class KernelRunner:
    """Runs conformance programs in the running kernel (see the module docstring).

    ``skips`` (:data:`KERNEL_SKIPS`) maps the features this backend cannot run to the
    reason.
    """

    name = "kernel"
    skips: Dict[str, str] = KERNEL_SKIPS

    def run(self, body: Sequence[Instruction], mem: bytes = b"") -> int:
        """Load ``body`` behind the harness, run it once with ``mem`` as its input memory
        and return the 64-bit r0. Raises :class:`~pybpf.syscall.errors.VerifierError` if
        the kernel refuses the program and :class:`~pybpf.syscall.errors.BPFError` for
        other failures."""
        if not body:
            raise ValueError("empty program")
        value_size = max(len(mem), 1)
        with map_create(MapType.ARRAY, 4, value_size, 1,
                                name="conf_input") as input_map, \
                map_create(MapType.ARRAY, 4, 8, 1,
                                   name="conf_result") as result_map:
            zero = bytes(4)
            map_update_elem(input_map, zero, mem.ljust(value_size, b"\0"))
            program = build_harness(input_map.fileno(), result_map.fileno(), len(mem), body)
            with prog_load(ProgType.XDP, encode(program),
                                   name="conformance") as prog:
                packet = mem.ljust(_ETH_HLEN, b"\0")
                outcome = prog_test_run(prog, packet)
            if outcome.retval != _XDP_PASS:
                raise BPFError(errno.EIO, f"the harness returned {outcome.retval}, not "
                               f"XDP_PASS: the program did not complete",
                               command="BPF_PROG_TEST_RUN")
            raw = map_lookup_elem(result_map, zero, 8)
            assert raw is not None        # slot 0 of an array always exists
            return int.from_bytes(raw, "little")
