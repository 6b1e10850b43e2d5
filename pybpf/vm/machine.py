"""The interpreter: registers, call frames, single-stepping and running.

A :class:`Machine` is built from a linked program (a list of
:class:`~pybpf.asm.Instruction`, or raw bytes). Building it checks every instruction and
turns each one into a small Python closure that does the work and returns the slot index
of the next instruction; running is then a tight loop ``pc = ops[pc]()``. Registers are a
list of eleven unsigned 64-bit ints. Nothing is allocated per step on the fast path.

Semantics follow RFC 9669; where the RFC leaves a choice the kernel's behaviour is used:

* 32-bit ALU results, 32-bit loads and ``mov32`` zero-extend into the full register;
* unsigned division by zero gives 0, modulo by zero leaves dst unchanged (the 32-bit forms
  still zero-extend it); signed ``INT_MIN / -1`` is ``INT_MIN`` and ``INT_MIN % -1`` is 0;
  signed division truncates toward zero and the remainder takes the dividend's sign;
* shift amounts are masked to 63 (64-bit) or 31 (32-bit);
* the host is little-endian: ``le`` truncates to its width, ``be`` and ``bswap`` swap;
* atomics with FETCH load the old value into src; ``cmpxchg`` compares with r0 and always
  loads the old value into r0 (zero-extended for the 32-bit form);
* a helper call sets r0 and overwrites r1-r5 with :data:`CLOBBERED` (the kernel's verifier
  forbids reading them afterwards; the poison makes a mistake visible);
* a local call pushes a frame: r6-r9 and r10 are saved, the callee gets a fresh 512-byte
  stack and r10 pointing at its end; ``exit`` in a callee restores them and returns to the
  instruction after the call. At most ``max_frames`` (8, as in Linux) frames;
* ``callx reg``: if the register holds a function address (from ``lddw`` with pseudo
  source 4) the call is a local call to that function; otherwise the register's value is a
  helper id. This matches the conformance suite's ``callx`` test, which calls helper 5
  through a register;
* ``ldabs``/``ldind`` read big-endian from the input memory (the packet); an access
  outside it ends the program with r0 = 0, as in Linux;
* ``may_goto`` jumps once its frame's budget of 8M iterations is used up;
* ``load_acquire``/``store_release`` are plain loads and stores (one thread).

Input memory is at the address in r1 and its length is in r2 (the conformance suite's
convention); with a ``ctx`` the context's address is in r1 instead and r2 is 0.
"""

from __future__ import annotations

import gc
import struct
from typing import (
    Any, Callable, Dict, Iterator, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union,
)

from pybpf.asm.encoding import decode
from pybpf.asm.errors import AsmError, InvalidInstruction
from pybpf.asm.instruction import Instruction, form_of
from pybpf.asm.opcodes import CallKind, Pseudo
from pybpf.asm.program import link

from .errors import HelperError, ProgramError, StepLimitExceeded, VMError
from .helpers import HELPERS, Environment, HelperFn, helper_label
from .maps import ArrayMap, BpfMap, RingBuf
from .memory import Memory, Region

__all__ = [
    "Machine", "TraceRecord", "run", "format_trace", "CLOBBERED", "STACK_SIZE",
    "MAX_FRAMES", "DEFAULT_MAX_STEPS",
]

M64 = (1 << 64) - 1
M32 = 0xFFFFFFFF
S64 = 1 << 63
S32 = 1 << 31

#: what r1-r5 hold after a helper call
CLOBBERED = 0xBAD0C0DEBAD0C0DE
#: bytes of stack per call frame
STACK_SIZE = 512
#: call frames, the main program included (Linux: MAX_CALL_FRAMES)
MAX_FRAMES = 8
#: default limit on executed instructions per :meth:`Machine.run`
DEFAULT_MAX_STEPS = 50_000_000
#: may_goto iterations per frame (Linux: BPF_MAX_LOOPS)
MAY_GOTO_BUDGET = 8 * 1024 * 1024

MapsArg = Union[Mapping[Any, Any], Sequence[Any], None]
ProgramArg = Union[Sequence[Instruction], bytes, bytearray]


class _Halt(Exception):
    """Raised by ``exit`` in the outermost frame: the program is done."""


class _Return(Exception):
    """Raised when a function called from Python (a helper callback) returns."""


# ---------------------------------------------------------------------------------------
# Arithmetic that does not fit in one expression
# ---------------------------------------------------------------------------------------

def _sdiv(a: int, b: int, bits: int) -> int:
    """Signed division of two ``bits``-wide two's complement values, truncating toward 0;
    the result is masked to ``bits``. Division by zero gives 0."""
    mask = (1 << bits) - 1
    a &= mask
    b &= mask
    if b == 0:
        return 0
    sign = 1 << (bits - 1)
    a = (a ^ sign) - sign
    b = (b ^ sign) - sign
    q = abs(a) // abs(b)
    return (-q if (a < 0) != (b < 0) else q) & mask


def _smod(a: int, b: int, bits: int) -> int:
    """Signed remainder (sign of the dividend), masked to ``bits``; by zero: ``a``."""
    mask = (1 << bits) - 1
    a &= mask
    b &= mask
    if b == 0:
        return a
    sign = 1 << (bits - 1)
    a = (a ^ sign) - sign
    b = (b ^ sign) - sign
    rem = abs(a) % abs(b)
    return (-rem if a < 0 else rem) & mask


def _sdiv64(a: int, b: int) -> int:
    return _sdiv(a, b, 64)


def _sdiv32(a: int, b: int) -> int:
    return _sdiv(a, b, 32)


def _smod64(a: int, b: int) -> int:
    return _smod(a, b, 64)


def _smod32(a: int, b: int) -> int:
    return _smod(a, b, 32)


# ---------------------------------------------------------------------------------------
# Closure factories for ALU and jump instructions, generated once from the expression
# tables below. ``B`` stands for the operand: ``r[s]`` for the register form, ``k`` for the
# immediate form (already sign-extended/masked as the operation needs). A factory is called
# once per instruction as factory(r, d, s, k, t, nxt) and returns the closure that
# executes it: r is the register list, d/s the register numbers, t a jump target and nxt
# the next slot.
# ---------------------------------------------------------------------------------------

_ALU64 = {
    "add": "r[d] = (r[d] + B) & M64",
    "sub": "r[d] = (r[d] - B) & M64",
    "mul": "r[d] = (r[d] * B) & M64",
    "div": "b = B\nr[d] = r[d] // b if b else 0",
    "sdiv": "r[d] = sdiv64(r[d], B)",
    "mod": "b = B\nif b:\n    r[d] = r[d] % b",
    "smod": "r[d] = smod64(r[d], B)",
    "or": "r[d] = r[d] | B",
    "and": "r[d] = r[d] & B",
    "xor": "r[d] = r[d] ^ B",
    "lsh": "r[d] = (r[d] << (B & 63)) & M64",
    "rsh": "r[d] = r[d] >> (B & 63)",
    "arsh": "r[d] = (((r[d] ^ S64) - S64) >> (B & 63)) & M64",
    "mov": "r[d] = B",
}
_ALU32 = {
    "add": "r[d] = (r[d] + B) & M32",
    "sub": "r[d] = (r[d] - B) & M32",
    "mul": "r[d] = (r[d] * B) & M32",
    "div": "b = B & M32\nr[d] = (r[d] & M32) // b if b else 0",
    "sdiv": "r[d] = sdiv32(r[d], B)",
    "mod": "b = B & M32\nr[d] = (r[d] & M32) % b if b else r[d] & M32",
    "smod": "r[d] = smod32(r[d], B)",
    "or": "r[d] = (r[d] | B) & M32",
    "and": "r[d] = r[d] & B & M32",
    "xor": "r[d] = (r[d] ^ B) & M32",
    "lsh": "r[d] = (r[d] << (B & 31)) & M32",
    "rsh": "r[d] = (r[d] & M32) >> (B & 31)",
    "arsh": "r[d] = ((((r[d] & M32) ^ S32) - S32) >> (B & 31)) & M32",
    "mov": "r[d] = B & M32",
}
# Conditions. ``A``/``B`` are the unsigned operands; for the signed comparisons both are
# offset by the sign bit (x ^ S), which maps signed order onto unsigned order.
_JCMP = {
    "jeq": "A == B", "jne": "A != B", "jgt": "A > B", "jge": "A >= B", "jlt": "A < B",
    "jle": "A <= B", "jset": "A & B", "jsgt": "A > B", "jsge": "A >= B", "jslt": "A < B",
    "jsle": "A <= B",
}
_SIGNED_JUMPS = ("jsgt", "jsge", "jslt", "jsle")

_NAMESPACE = {
    "M64": M64, "M32": M32, "S64": S64, "S32": S32, "sdiv64": _sdiv64, "sdiv32": _sdiv32,
    "smod64": _smod64, "smod32": _smod32,
}

Factory = Callable[..., Callable[[], int]]


def _make_factory(body: str, tail: str = "return nxt") -> Factory:
    lines = body.splitlines() + [tail]
    src = ("def factory(r, d, s, k, t, nxt):\n    def op():\n"
           + "".join(f"        {line}\n" for line in lines) + "    return op\n")
    namespace: Dict[str, Any] = {}
    exec(compile(src, "<pybpf.vm ops>", "exec"), dict(_NAMESPACE), namespace)
    return namespace["factory"]


def _alu_factories() -> Dict[Tuple[str, bool, bool], Factory]:
    """(operation, 64-bit?, register source?) -> factory."""
    out: Dict[Tuple[str, bool, bool], Factory] = {}
    for is64, table in ((True, _ALU64), (False, _ALU32)):
        for name, body in table.items():
            out[(name, is64, True)] = _make_factory(body.replace("B", "r[s]"))
            out[(name, is64, False)] = _make_factory(body.replace("B", "k"))
    return out


def _jump_factories() -> Dict[Tuple[str, bool, bool], Factory]:
    """(condition, 64-bit?, register source?) -> factory. For the immediate forms of the
    signed conditions, ``k`` must already be offset by the sign bit."""
    out: Dict[Tuple[str, bool, bool], Factory] = {}
    for name, cond in _JCMP.items():
        signed = name in _SIGNED_JUMPS
        for is64 in (True, False):
            a = "r[d]" if is64 else "(r[d] & M32)"
            b = "r[s]" if is64 else "(r[s] & M32)"
            if signed:
                sign = "S64" if is64 else "S32"
                a, b = f"({a} ^ {sign})", f"({b} ^ {sign})"
            for reg in (True, False):
                expr = cond.replace("A", a).replace("B", b if reg else "k")
                out[(name, is64, reg)] = _make_factory("", f"return t if {expr} else nxt")
    return out


_ALU_FACTORIES = _alu_factories()
_JUMP_FACTORIES = _jump_factories()

_ALU_OPS = {0x00: "add", 0x10: "sub", 0x20: "mul", 0x30: "div", 0x40: "or", 0x50: "and",
            0x60: "lsh", 0x70: "rsh", 0x90: "mod", 0xA0: "xor", 0xB0: "mov", 0xC0: "arsh"}
_JMP_OPS = {0x10: "jeq", 0x20: "jgt", 0x30: "jge", 0x40: "jset", 0x50: "jne", 0x60: "jsgt",
            0x70: "jsge", 0xA0: "jlt", 0xB0: "jle", 0xC0: "jslt", 0xD0: "jsle"}
_SIZES = {0x00: 4, 0x08: 2, 0x10: 1, 0x18: 8}
_UNSIGNED = {1: struct.Struct("<B"), 2: struct.Struct("<H"), 4: struct.Struct("<I"),
             8: struct.Struct("<Q")}
_SIGNED = {1: struct.Struct("<b"), 2: struct.Struct("<h"), 4: struct.Struct("<i")}
_BIG = {1: struct.Struct(">B"), 2: struct.Struct(">H"), 4: struct.Struct(">I")}


# ---------------------------------------------------------------------------------------
# Tracing
# ---------------------------------------------------------------------------------------

class TraceRecord(NamedTuple):
    """One executed instruction: where it was, what it was, and what it changed.

    ``index`` is the position in the instruction list and ``pc`` the slot index (they
    differ after a ``lddw``); ``changes`` lists ``(register, old, new)``; ``depth`` is the
    number of active call frames before the instruction (1 in the main program);
    ``halted`` is true for the final ``exit``.
    """

    index: int
    pc: int
    instruction: Instruction
    changes: Tuple[Tuple[int, int, int], ...]
    depth: int
    halted: bool

    def format(self) -> str:
        """``    3: r0 += r1     ; r0 0x1 -> 0x3``: the slot, the instruction (indented by
        call depth) and the changed registers; one line, no newline."""
        return format_trace(self)


def _text(ins: Instruction) -> str:
    try:
        from pybpf.asm.disasm import format_instruction
    except ImportError:  # pragma: no cover - the disassembler is optional
        return repr(ins)
    try:
        return format_instruction(ins)
    except Exception:  # pragma: no cover - never let a printer hide the real error
        return repr(ins)


def format_trace(record: TraceRecord) -> str:
    """The text ``pybpf vm run --trace`` prints for one :class:`TraceRecord`."""
    indent = "  " * (record.depth - 1)
    head = f"{record.pc:5d}: {indent}{_text(record.instruction)}"
    if record.changes:
        parts = [f"r{reg} {old:#x} -> {new:#x}" for reg, old, new in record.changes]
        head = f"{head:<44} ; " + ", ".join(parts)
    return head


# ---------------------------------------------------------------------------------------
# The machine
# ---------------------------------------------------------------------------------------

class Machine:
    """A BPF program loaded into the interpreter, with its registers and memory.

    ``program``: linked instructions (unresolved label references are linked here) or raw
    little-endian bytes. ``mem``: the input memory (r1 points at it, r2 holds its length).
    ``ctx``: optional context bytes; when given r1 points at it instead and r2 is 0.
    ``maps``: the maps the program's ``lddw`` map loads refer to, as a mapping from name
    or fd to map, or a list (index = fd); instructions whose ``reference`` is a map object
    use it directly. ``fd_array``: maps for pseudo sources 5 and 6. ``helpers``: extra or
    replacement helper implementations by id or name (see :mod:`pybpf.vm.helpers`).
    ``env``: the :class:`~pybpf.vm.helpers.Environment`. ``max_steps`` bounds a
    :meth:`run`; ``max_frames`` the call depth.

    ::

        vm = Machine(program, mem=b"\\x2a\\0\\0\\0")
        r0 = vm.run()                        # or, one at a time:
        vm.reset(); rec = vm.step(); print(rec.format(), vm.registers)
    """

    def __init__(self, program: ProgramArg, *, mem: Union[bytes, bytearray] = b"",
                 ctx: Optional[Union[bytes, bytearray]] = None, maps: MapsArg = None,
                 fd_array: Optional[Sequence[Any]] = None,
                 helpers: Optional[Mapping[Union[int, str], HelperFn]] = None,
                 env: Optional[Environment] = None, max_steps: int = DEFAULT_MAX_STEPS,
                 max_frames: int = MAX_FRAMES) -> None:
        self.instructions: List[Instruction] = self._load(program)
        self.env = env or Environment()
        self.max_steps = max_steps
        self.max_frames = max_frames
        self.memory = Memory()
        #: lines written by bpf_trace_printk
        self.printk: List[str] = []
        #: executed instructions since the last reset
        self.steps = 0
        self.pc = 0
        self.halted = False
        self._regs: List[int] = [0] * 11
        self._frames: List[tuple] = []
        self._stack: Optional[Region] = None
        self._input: Optional[Region] = None
        self._ctx: Optional[Region] = None
        self._loop_budget = MAY_GOTO_BUDGET
        self._helpers: Dict[int, HelperFn] = dict(HELPERS)
        for key, fn in (helpers or {}).items():
            if isinstance(key, str):
                from pybpf.asm.helpers import helper
                key = helper(key).id
            self._helpers[key] = fn
        self._maps_by_key: Dict[Any, Any] = self._map_table(maps)
        self._fd_array = list(fd_array or [])
        self._map_handles: Dict[int, Any] = {}
        self._handle_of: Dict[int, int] = {}
        self._values: Dict[Tuple[int, bytes], Region] = {}
        self._code = self.memory.map("the program's code", "code", 0, accessible=False)
        self._ops: List[Callable[[], int]] = []
        self._index_of_slot: List[int] = []
        self._compile()
        self.reset(mem=mem, ctx=ctx)

    # -- loading ----------------------------------------------------------------------
    @staticmethod
    def _load(program: ProgramArg) -> List[Instruction]:
        if isinstance(program, (bytes, bytearray, memoryview)):
            try:
                return decode(bytes(program))
            except AsmError as exc:
                raise ProgramError(str(exc)) from None
        prog = list(program)
        for ins in prog:
            if not isinstance(ins, Instruction):
                raise TypeError(f"a program is a list of Instruction, not {type(ins).__name__}")
        if any(isinstance(ins.reference, str) and (ins.opcode != 0x18 or ins.src == Pseudo.FUNC)
               for ins in prog):
            prog = link(prog)
        return prog

    @staticmethod
    def _map_table(maps: MapsArg) -> Dict[Any, Any]:
        table: Dict[Any, Any] = {}
        if maps is None:
            return table
        if isinstance(maps, Mapping):
            for key, m in maps.items():
                table[key] = m
                table.setdefault(getattr(m, "name", None), m)
        else:
            for fd, m in enumerate(maps):
                table[fd] = m
                table.setdefault(getattr(m, "name", None), m)
        table.pop(None, None)
        return table

    # -- state ------------------------------------------------------------------------
    def reset(self, *, mem: Optional[Union[bytes, bytearray]] = None,
              ctx: Optional[Union[bytes, bytearray]] = None) -> None:
        """Start over: registers zeroed, one fresh stack frame, pc 0, the input memory
        (and context) replaced if given, else restored to their initial bytes. Maps keep
        their contents."""
        for frame in self._frames:
            self.memory.unmap(frame[6])
        self._frames.clear()
        if self._stack is not None:
            self.memory.unmap(self._stack)
        if mem is None:
            mem = self._initial_mem
        if ctx is None and self._ctx is not None:
            ctx = self._initial_ctx
        self._initial_mem = bytes(mem)
        self._initial_ctx = None if ctx is None else bytes(ctx)
        for old in (self._input, self._ctx):
            if old is not None:
                self.memory.unmap(old)
        self._input = self.memory.map("input memory", "mem", bytearray(mem))
        self._ctx = None
        if ctx is not None:
            self._ctx = self.memory.map("context", "ctx", bytearray(ctx))
        self._stack = self._new_stack(0)
        r = self._regs
        r[:] = [0] * 11
        if self._ctx is not None:
            r[1] = self._ctx.base
        else:
            r[1] = self._input.base
            r[2] = len(mem)
        r[10] = self._stack.end
        self._loop_budget = MAY_GOTO_BUDGET
        self.pc = 0
        self.steps = 0
        self.halted = False
        self.printk.clear()

    def _new_stack(self, depth: int) -> Region:
        return self.memory.map(f"the stack of frame {depth}", "stack", STACK_SIZE)

    @property
    def registers(self) -> Tuple[int, ...]:
        """r0-r10 as unsigned 64-bit ints (a snapshot)."""
        return tuple(self._regs)

    def get_register(self, reg: int) -> int:
        """One register, unsigned."""
        return self._regs[reg]

    def set_register(self, reg: int, value: int) -> None:
        """Set r0-r9 (the value is taken modulo 2**64); r10 is read-only."""
        if not 0 <= reg <= 9:
            raise ValueError("only r0-r9 can be set (r10 is the read-only frame pointer)")
        self._regs[reg] = value & M64

    @property
    def depth(self) -> int:
        """Active call frames, the main program included."""
        return len(self._frames) + 1

    @property
    def mem_address(self) -> int:
        """Address of the input memory (the packet)."""
        assert self._input is not None
        return self._input.base

    @property
    def mem(self) -> bytes:
        """The input memory as it is now (the program may have written to it)."""
        assert self._input is not None
        return bytes(self._input.data)

    @property
    def ctx_address(self) -> Optional[int]:
        """Address of the context, if there is one."""
        return None if self._ctx is None else self._ctx.base

    @property
    def stack_address(self) -> int:
        """Address of the current frame's stack (r10 of the frame minus 512)."""
        assert self._stack is not None
        return self._stack.base

    def read(self, address: int, size: int) -> bytes:
        """Read the VM's memory (bounds-checked, raises :class:`MemoryFault`)."""
        return self.memory.read(address, size)

    def write(self, address: int, data: bytes) -> None:
        """Write the VM's memory (bounds-checked, raises :class:`MemoryFault`)."""
        self.memory.write(address, data)

    def instruction_at(self, pc: int) -> Instruction:
        """The instruction at slot ``pc``."""
        return self.instructions[self._index_of_slot[pc]]

    @property
    def next_instruction(self) -> Optional[Instruction]:
        """The instruction :meth:`step` would execute, or None once halted."""
        if self.halted or self.pc >= len(self._index_of_slot):
            return None
        return self.instruction_at(self.pc)

    # -- running ----------------------------------------------------------------------
    def run(self, max_steps: Optional[int] = None) -> int:
        """Run until the program exits and return r0 (unsigned 64-bit).

        Raises a :class:`VMError` naming the instruction on a fault, and
        :class:`StepLimitExceeded` after ``max_steps`` instructions (default: the
        machine's); the machine then stays where it stopped, and ``run()`` continues.
        """
        self._check_runnable()
        budget = self.max_steps if max_steps is None else max_steps
        ops = self._ops
        pc = self.pc
        n = -1
        try:
            for n in range(budget):
                pc = ops[pc]()
        except _Halt:
            self.steps += n + 1
            self.pc = pc
            self.halted = True
            return self._regs[0]
        except VMError as exc:
            self.steps += max(n, 0)
            self.pc = pc
            raise self._locate(exc, pc) from None
        self.steps += budget
        self.pc = pc
        raise self._locate(StepLimitExceeded(
            f"stopped after {budget} instructions (an endless loop? raise max_steps)"), pc)

    def step(self) -> TraceRecord:
        """Execute one instruction and say what it changed."""
        self._check_runnable()
        r = self._regs
        before = list(r)
        pc = self.pc
        depth = len(self._frames) + 1
        halted = False
        try:
            nxt = self._ops[pc]()
        except _Halt:
            nxt, halted = pc, True
        except VMError as exc:
            raise self._locate(exc, pc) from None
        self.pc = nxt
        self.halted = halted
        self.steps += 1
        changes = tuple((i, before[i], r[i]) for i in range(11) if before[i] != r[i])
        return TraceRecord(self._index_of_slot[pc], pc, self.instruction_at(pc), changes,
                           depth, halted)

    def trace(self, max_steps: Optional[int] = None) -> Iterator[TraceRecord]:
        """Step until the program exits, yielding a :class:`TraceRecord` per instruction."""
        budget = self.max_steps if max_steps is None else max_steps
        for _ in range(budget):
            record = self.step()
            yield record
            if record.halted:
                return
        raise self._locate(StepLimitExceeded(f"stopped after {budget} instructions"), self.pc)

    def _check_runnable(self) -> None:
        if self.halted:
            raise VMError("the program has exited; call reset() to run it again")

    def _locate(self, exc: VMError, pc: int) -> VMError:
        if exc.index is None:
            if pc == self._end_slot and self.instructions:
                # only the last instruction can fall through to here: blame it
                pc -= self.instructions[-1].slots
            if 0 <= pc < len(self._index_of_slot):
                ins = self.instruction_at(pc)
                exc.locate(self._index_of_slot[pc], pc, ins, _text(ins))
            else:
                exc.locate(len(self.instructions), pc, None, "past the end")
        return exc

    # -- frames -----------------------------------------------------------------------
    def _push_frame(self, return_pc: int) -> None:
        frames = self._frames
        if len(frames) + 1 >= self.max_frames:
            raise VMError(f"call depth limit reached ({self.max_frames} frames)")
        r = self._regs
        frames.append((return_pc, r[6], r[7], r[8], r[9], r[10], self._stack,
                       self._loop_budget))
        self._stack = self._new_stack(len(frames))
        r[10] = self._stack.end
        self._loop_budget = MAY_GOTO_BUDGET

    def _pop_frame(self) -> int:
        r = self._regs
        (ret, r[6], r[7], r[8], r[9], r[10], stack,
         self._loop_budget) = self._frames.pop()
        assert self._stack is not None
        self.memory.unmap(self._stack)
        self._stack = stack
        return ret

    def call_function(self, target: int, args: Sequence[int]) -> int:
        """Call the function at slot ``target`` with r1-r5 = ``args`` in a new frame, run it
        to its ``exit`` and return r0. For helpers that take callbacks (``bpf_loop``)."""
        r = self._regs
        r[1:6] = [a & M64 for a in args]
        self._push_frame(self._return_slot)
        ops = self._ops
        pc = target
        budget = max(self.max_steps - self.steps, 0)
        n = -1
        try:
            for n in range(budget):
                pc = ops[pc]()
        except _Return:
            self.steps += n + 1
            return r[0]
        except VMError as exc:
            raise self._locate(exc, pc) from None
        raise self._locate(StepLimitExceeded(
            f"a callback ran past the limit of {self.max_steps} instructions"), pc)

    def code_target(self, address: int, what: str) -> int:
        """The slot a function address (``lddw`` pseudo source 4) points at."""
        offset = address - self._code.base
        if offset % 8 or not 0 <= offset // 8 < len(self._index_of_slot) or \
                self._index_of_slot[offset // 8] < 0:
            raise HelperError(f"{what}: {address:#x} is not the address of a function")
        return offset // 8

    # -- maps -------------------------------------------------------------------------
    def map_handle(self, m: Any) -> int:
        """The address that stands for map ``m`` in registers (created on first use)."""
        handle = self._handle_of.get(id(m))
        if handle is None:
            region = self.memory.map(f"map {getattr(m, 'name', '?')!r}", "map", 0,
                                     accessible=False, owner=m)
            handle = region.base
            self._handle_of[id(m)] = handle
            self._map_handles[handle] = m
        return handle

    def map_at(self, address: int) -> Any:
        """The map whose handle is ``address``; raises :class:`HelperError` otherwise."""
        found = self._map_handles.get(address)
        if found is None:
            raise HelperError(f"{address:#x} is not a map pointer")
        return found

    def value_address(self, m: Any, key: bytes, store: Union[bytearray, memoryview]) -> int:
        """The address of a map value's live bytes (one region per entry)."""
        cache_key = (id(m), bytes(key))
        region = self._values.get(cache_key)
        if region is None or region.data is not store or region.id not in self.memory.regions:
            if region is not None:
                self.memory.unmap(region)
            label = key.hex() if len(key) <= 16 else key[:16].hex() + "..."
            region = self.memory.map(f"the value of key {label} in map {m.name!r}",
                                     "map_value", store, owner=m)
            self._values[cache_key] = region
        return region.base

    def forget_value(self, m: Any, key: bytes) -> None:
        """Unmap a deleted entry's value, so stale pointers to it fault."""
        region = self._values.pop((id(m), bytes(key)), None)
        if region is not None:
            self.memory.unmap(region)

    def _resolve_map(self, ins: Instruction) -> Any:
        ref = ins.reference
        src = ins.src
        if src in (Pseudo.MAP_IDX, Pseudo.MAP_IDX_VALUE):
            index = ins.imm & M32
            if index >= len(self._fd_array):
                raise ProgramError(f"fd_array has no map at index {index}")
            return self._fd_array[index]
        if isinstance(ref, (BpfMap, RingBuf)):
            return ref
        for key in (ref, getattr(ref, "name", None), ins.imm & M32):
            if key is not None and not isinstance(key, (bytes, bytearray)):
                try:
                    found = self._maps_by_key.get(key)
                except TypeError:
                    found = None
                if found is not None:
                    return found
        what = repr(ref) if ref is not None else f"fd {ins.imm & M32}"
        known = ", ".join(repr(k) for k in self._maps_by_key) or "none"
        raise ProgramError(f"unknown map {what} (maps given to the VM: {known})")

    # -- compilation ------------------------------------------------------------------
    def _compile(self) -> None:
        index_of_slot: List[int] = []
        for i, ins in enumerate(self.instructions):
            index_of_slot.append(i)
            if ins.opcode == 0x18:
                index_of_slot.append(-1)
        self._index_of_slot = index_of_slot
        nslots = len(index_of_slot)
        self._end_slot = nslots
        self._return_slot = nslots + 1
        ops: List[Callable[[], int]] = []
        valid: set = set()      # encodings already checked by form_of
        pc = 0
        # Every instruction becomes a closure, and allocating that many tracked objects
        # makes the cyclic collector run over and over: pause it while compiling.
        collecting = gc.isenabled()
        gc.disable()
        try:
            for i, ins in enumerate(self.instructions):
                try:
                    key = (ins.opcode, ins.dst, ins.src, ins.off, ins.imm)
                    if key not in valid:
                        form_of(*key)
                        valid.add(key)
                    ops.append(self._compile_one(ins, pc))
                except (InvalidInstruction, VMError) as exc:
                    err = exc if isinstance(exc, VMError) else ProgramError(str(exc))
                    raise err.locate(i, pc, ins, _text(ins)) from None
                if ins.opcode == 0x18:
                    ops.append(_raiser(ProgramError("execution reached the second slot of "
                                                    "lddw")))
                    pc += 2
                else:
                    pc += 1
        finally:
            if collecting:
                gc.enable()

        def fell_off() -> int:
            raise VMError("execution continued past the last instruction (missing exit?)")

        def returned() -> int:
            raise _Return

        ops.append(fell_off)
        ops.append(returned)
        self._ops = ops

    def _target(self, pc: int, delta: int) -> int:
        target = pc + 1 + delta
        if not 0 <= target < len(self._index_of_slot):
            raise ProgramError(f"jump target {delta:+d} (slot {target}) is outside the "
                               f"program (slots 0-{len(self._index_of_slot) - 1})")
        if self._index_of_slot[target] < 0:
            raise ProgramError(f"jump target {delta:+d} lands in the middle of lddw "
                               f"(slot {target})")
        return target

    def _compile_one(self, ins: Instruction, pc: int) -> Callable[[], int]:
        op = ins.opcode
        cls = op & 0x07
        d, s, off, imm = ins.dst, ins.src, ins.off, ins.imm
        nxt = pc + 1
        r = self._regs
        if cls in (0x04, 0x07):
            return self._compile_alu(ins, op, cls == 0x07, d, s, off, imm, nxt)
        if cls in (0x05, 0x06):
            return self._compile_jmp(ins, op, cls == 0x05, d, s, off, imm, pc)
        if cls == 0x00:
            if op == 0x18:
                return self._compile_lddw(ins, d, s, imm, pc + 2)
            return self._compile_ldpkt(op, s, imm, nxt)
        size = _SIZES[op & 0x18]
        mode = op & 0xE0
        if cls == 0x01:
            if d == 10:
                raise ProgramError("r10 is read-only")
            return _load(r, self.memory, d, s, off, size, mode == 0x80, nxt)
        if cls == 0x02:
            return _store(r, self.memory, d, 0, off, size, imm & ((1 << (8 * size)) - 1),
                          nxt)
        if mode == 0x60:
            return _store(r, self.memory, d, s, off, size, None, nxt)
        # atomics
        if imm == 0x100:  # load-acquire: dst = *(src + off)
            if d == 10:
                raise ProgramError("r10 is read-only")
            return _load(r, self.memory, d, s, off, size, False, nxt)
        if imm == 0x110:  # store-release: *(dst + off) = src
            return _store(r, self.memory, d, s, off, size, None, nxt)
        if imm & 1 and imm != 0xF1 and s == 10:
            raise ProgramError("r10 is read-only (a fetching atomic writes its src register)")
        return _atomic(r, self.memory, d, s, off, size, imm, nxt)

    def _compile_alu(self, ins: Instruction, op: int, is64: bool, d: int, s: int, off: int,
                     imm: int, nxt: int) -> Callable[[], int]:
        r = self._regs
        if d == 10:
            raise ProgramError("r10 is read-only")
        code = op & 0xF0
        reg = bool(op & 0x08)
        if code == 0x80:  # neg
            mask = M64 if is64 else M32

            def neg() -> int:
                r[d] = -r[d] & mask
                return nxt
            return neg
        if code == 0xD0:  # le / be / bswap
            return _byteswap(r, d, imm, swap=is64 or reg, nxt=nxt)
        if code == 0xB0 and reg and off:
            if off == 1:  # addr_space_cast
                return _raiser(VMError("addr_space_cast needs a BPF arena, which the VM "
                                       "does not model"))
            return _movsx(r, d, s, off, is64, nxt)
        name = _ALU_OPS[code]
        if code in (0x30, 0x90) and off == 1:
            name = "s" + name
        k = imm & M64 if is64 else imm & M32
        return _ALU_FACTORIES[(name, is64, reg)](r, d, s, k, 0, nxt)

    def _compile_jmp(self, ins: Instruction, op: int, is64: bool, d: int, s: int, off: int,
                     imm: int, pc: int) -> Callable[[], int]:
        r = self._regs
        code = op & 0xF0
        nxt = pc + 1
        if code == 0x00:  # ja / gotol
            target = self._target(pc, off if is64 else imm)

            def ja() -> int:
                return target
            return ja
        if code == 0x90:
            return self._compile_exit()
        if code == 0x80:
            return self._compile_call(ins, d, s, imm, pc)
        if code == 0xE0:  # may_goto
            return self._compile_may_goto(self._target(pc, off), nxt)
        name = _JMP_OPS[code]
        reg = bool(op & 0x08)
        k = imm & M64 if is64 else imm & M32
        if name in _SIGNED_JUMPS:
            k ^= S64 if is64 else S32
        return _JUMP_FACTORIES[(name, is64, reg)](r, d, s, k, self._target(pc, off), nxt)

    def _compile_exit(self) -> Callable[[], int]:
        frames = self._frames
        pop = self._pop_frame

        def exit_() -> int:
            if frames:
                return pop()
            raise _Halt
        return exit_

    def _compile_call(self, ins: Instruction, d: int, s: int, imm: int,
                      pc: int) -> Callable[[], int]:
        r = self._regs
        nxt = pc + 1
        push = self._push_frame
        if ins.opcode == 0x8D:  # callx
            code = self._code
            nslots = len(self._index_of_slot)
            index_of_slot = self._index_of_slot
            helpers = self._helpers
            vm = self

            def callx() -> int:
                value = r[d]
                delta = value - code.base
                if 0 <= delta < 8 * nslots and not delta & 7:
                    slot = delta >> 3
                    if index_of_slot[slot] < 0:
                        raise VMError(f"callx r{d}: {value:#x} points into the middle of lddw")
                    push(nxt)
                    return slot
                if value > M32:
                    raise HelperError(f"callx r{d}: {value:#x} is neither a function address "
                                      "nor a helper id")
                fn = helpers.get(value)
                if fn is None:
                    raise HelperError(f"callx r{d}: {helper_label(value)} is not "
                                      "implemented by the VM")
                _call_helper(vm, fn, value, r)
                return nxt
            return callx
        if s == CallKind.LOCAL:
            target = self._target(pc, imm)

            def call_local() -> int:
                push(nxt)
                return target
            return call_local
        if s == CallKind.KFUNC:
            return _raiser(HelperError(f"kfunc calls (BTF id {imm}) need a kernel; the VM "
                                       "has none"))
        fn = self._helpers.get(imm)
        if fn is None:
            return _raiser(HelperError(f"{helper_label(imm)} is not implemented by the VM "
                                       "(pass helpers={id: function} to Machine)"))
        vm = self
        hid = imm

        def call_helper() -> int:
            _call_helper(vm, fn, hid, r)
            return nxt
        return call_helper

    def _compile_may_goto(self, target: int, nxt: int) -> Callable[[], int]:
        vm = self

        def may_goto() -> int:
            if vm._loop_budget == 0:
                return target
            vm._loop_budget -= 1
            return nxt
        return may_goto

    def _compile_lddw(self, ins: Instruction, d: int, s: int, imm: int,
                      nxt: int) -> Callable[[], int]:
        r = self._regs
        if d == 10:
            raise ProgramError("r10 is read-only")
        value = imm & M64
        if s in (Pseudo.MAP_FD, Pseudo.MAP_IDX):
            value = self.map_handle(self._resolve_map(ins))
        elif s in (Pseudo.MAP_VALUE, Pseudo.MAP_IDX_VALUE):
            m = self._resolve_map(ins)
            offset = value >> 32
            if not isinstance(m, ArrayMap) or m.max_entries < 1:
                raise ProgramError(f"a direct map value load needs an array map, not {m!r}")
            if offset >= m.value_size:
                raise ProgramError(f"offset {offset} is beyond the {m.value_size}-byte value "
                                   f"of map {m.name!r}")
            key = (0).to_bytes(4, "little")
            store = m.lookup(key)
            assert store is not None
            value = self.value_address(m, key, store) + offset
        elif s == Pseudo.FUNC:
            delta = imm & M32
            delta = delta - (1 << 32) if delta & S32 else delta
            target = (nxt - 2) + 1 + delta
            self._target(nxt - 2, delta)
            value = self._code.base + 8 * target
        elif s == Pseudo.BTF_ID:
            return _raiser(VMError("lddw of a kernel variable (BTF id) needs a kernel; the "
                                   "VM has none"))

        def lddw() -> int:
            r[d] = value
            return nxt
        return lddw

    def _compile_ldpkt(self, op: int, s: int, imm: int, nxt: int) -> Callable[[], int]:
        r = self._regs
        size = _SIZES[op & 0x18]
        unpack = _BIG[size].unpack_from
        indirect = (op & 0xE0) == 0x40
        vm = self

        def ld_packet() -> int:
            off = imm + (r[s] if indirect else 0)
            off = (off & M32) - ((off & S32) << 1)
            data = vm._input.data  # type: ignore[union-attr]
            if 0 <= off <= len(data) - size:
                r[0] = unpack(data, off)[0]
                return nxt
            # the kernel ends the program with r0 = 0 on an out-of-packet legacy load
            while vm._frames:
                vm._pop_frame()
            r[0] = 0
            raise _Halt
        return ld_packet


# ---------------------------------------------------------------------------------------
# Closure factories for the rest
# ---------------------------------------------------------------------------------------

def _raiser(error: VMError) -> Callable[[], int]:
    def fail() -> int:
        raise error
    return fail


def _call_helper(vm: Machine, fn: HelperFn, hid: int, r: List[int]) -> None:
    try:
        ret = fn(vm, r[1], r[2], r[3], r[4], r[5])
    except VMError as exc:
        if not exc.reason.startswith("bpf_") and not exc.reason.startswith("helper"):
            exc.reason = f"{helper_label(hid)}: {exc.reason}"
            exc.args = (exc.reason,)
        raise
    except Exception as exc:  # a user-supplied helper went wrong
        raise HelperError(f"{helper_label(hid)} raised {exc!r}") from exc
    r[0] = int(ret) & M64
    r[1] = r[2] = r[3] = r[4] = r[5] = CLOBBERED


def _byteswap(r: List[int], d: int, bits: int, swap: bool, nxt: int) -> Callable[[], int]:
    nbytes = bits // 8
    mask = (1 << bits) - 1
    if not swap:
        def le() -> int:
            r[d] &= mask
            return nxt
        return le
    if nbytes == 2:
        def swap16() -> int:
            v = r[d]
            r[d] = ((v & 0xFF) << 8) | ((v >> 8) & 0xFF)
            return nxt
        return swap16

    def swapn() -> int:
        r[d] = int.from_bytes((r[d] & mask).to_bytes(nbytes, "little"), "big")
        return nxt
    return swapn


def _movsx(r: List[int], d: int, s: int, bits: int, is64: bool,
           nxt: int) -> Callable[[], int]:
    mask = (1 << bits) - 1
    sign = 1 << (bits - 1)
    out = M64 if is64 else M32

    def movsx() -> int:
        r[d] = (((r[s] & mask) ^ sign) - sign) & out
        return nxt
    return movsx


def _load(r: List[int], memory: Memory, d: int, s: int, off: int, size: int, signed: bool,
          nxt: int) -> Callable[[], int]:
    readable = memory.readable.get
    fault = memory.fault
    if signed:
        unpack = _SIGNED[size].unpack_from

        def load_signed() -> int:
            a = (r[s] + off) & M64
            g = readable(a >> 32)
            if g is not None and g.base <= a and a + size <= g.end:
                r[d] = unpack(g.data, a - g.base)[0] & M64
                return nxt
            raise fault(a, size, "read")
        return load_signed
    unpack = _UNSIGNED[size].unpack_from

    def load() -> int:
        a = (r[s] + off) & M64
        g = readable(a >> 32)
        if g is not None and g.base <= a and a + size <= g.end:
            r[d] = unpack(g.data, a - g.base)[0]
            return nxt
        raise fault(a, size, "read")
    return load


def _store(r: List[int], memory: Memory, d: int, s: int, off: int, size: int,
           value: Optional[int], nxt: int) -> Callable[[], int]:
    writable = memory.writable.get
    fault = memory.fault
    pack = _UNSIGNED[size].pack_into
    mask = (1 << (8 * size)) - 1
    if value is not None:
        def store_imm() -> int:
            a = (r[d] + off) & M64
            g = writable(a >> 32)
            if g is not None and g.base <= a and a + size <= g.end:
                pack(g.data, a - g.base, value)
                return nxt
            raise fault(a, size, "write", store=True)
        return store_imm

    def store_reg() -> int:
        a = (r[d] + off) & M64
        g = writable(a >> 32)
        if g is not None and g.base <= a and a + size <= g.end:
            pack(g.data, a - g.base, r[s] & mask)
            return nxt
        raise fault(a, size, "write", store=True)
    return store_reg


_ATOMIC_OPS: Dict[int, Callable[[int, int], int]] = {
    0x00: lambda old, v: old + v,
    0x40: lambda old, v: old | v,
    0x50: lambda old, v: old & v,
    0xA0: lambda old, v: old ^ v,
    0xE0: lambda old, v: v,   # xchg
}


def _atomic(r: List[int], memory: Memory, d: int, s: int, off: int, size: int, imm: int,
            nxt: int) -> Callable[[], int]:
    writable = memory.writable.get
    fault = memory.fault
    st = _UNSIGNED[size]
    unpack, pack = st.unpack_from, st.pack_into
    mask = (1 << (8 * size)) - 1

    def locate() -> Tuple[Any, int]:
        a = (r[d] + off) & M64
        g = writable(a >> 32)
        if g is not None and g.base <= a and a + size <= g.end:
            return g.data, a - g.base
        raise fault(a, size, "atomic access", store=True)

    if imm == 0xF1:  # cmpxchg
        def cmpxchg() -> int:
            data, o = locate()
            old = unpack(data, o)[0]
            if old == r[0] & mask:
                pack(data, o, r[s] & mask)
            r[0] = old
            return nxt
        return cmpxchg
    combine = _ATOMIC_OPS[imm & ~1]
    fetch = bool(imm & 1)

    def atomic() -> int:
        data, o = locate()
        old = unpack(data, o)[0]
        pack(data, o, combine(old, r[s] & mask) & mask)
        if fetch:
            r[s] = old
        return nxt
    return atomic


def run(program: ProgramArg, mem: Union[bytes, bytearray] = b"", **options: Any) -> int:
    """Build a :class:`Machine` for ``program`` (options as for the class) and return
    the r0 it exits with."""
    return Machine(program, mem=mem, **options).run()
