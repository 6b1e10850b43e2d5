"""Wake-up policy: when a producer in the kernel wakes the reader in user space.

Waking a sleeping reader costs the traced task an ``irq_work`` (a self-interrupt) and a
scheduler wake-up; under a storm of events that alone can slow the traced workload
several times. pybpf makes the choice explicit, per ring buffer, with
:class:`WakeupPolicy`:

* ``ADAPTIVE`` (the default): a producer forces a wake-up (``BPF_RB_FORCE_WAKEUP``)
  only for the record that makes the ring's fill level *cross* a threshold (a quarter of
  the ring by default): the level before the record is below the threshold and the
  level with it (before + the record's footprint, :func:`record_footprint`) reaches it.
  Every other record is submitted with ``BPF_RB_NO_WAKEUP``. The fill level is
  ``bpf_ringbuf_query(ring, BPF_RB_AVAIL_DATA)`` (Linux 5.8). The reader also polls
  with a timeout (:attr:`Wakeup.interval`, 5 ms), which bounds how long a quietly posted
  record waits. So a burst costs one wake-up per crossing, i.e. per time the reader
  drained the ring below the threshold and producers filled it again, never one per
  record while the ring stays full.
* ``PER_EVENT``: flags 0, the kernel's own rule: wake the reader whenever it has caught
  up (in practice once per event when the reader keeps pace). Lowest latency.
* ``NONE``: always ``BPF_RB_NO_WAKEUP``; the reader's timed poll does everything.

Races and worst case of ``ADAPTIVE`` (producers do not lock anything): a producer reads
the level, then commits; records of other CPUs may land in between. So

* several CPUs may each see the same crossing: at most one forced wake-up per CPU (per
  nesting level of programs on it) per crossing, since a producer's next record sees a
  level that includes its previous one;
* a crossing may be seen by nobody (two CPUs each read a level just below, neither of
  their records alone reaches the threshold, both together do): then no wake-up comes
  and the reader's timed poll finds the records, at most one interval later;
* so the latency of a record is bounded by the poll interval (plus the time the reader
  needs to get a CPU), and records are lost only when the ring fills completely within
  one poll interval (or while the reader is busy with earlier records): a full ring
  refuses records, which the programs count (:func:`count_drop`) and tools report.

An earlier version forced a wake-up on *every* record while the ring was at or above the
threshold: a storm that the reader cannot keep up with keeps the ring above it, and every
record paid a self-interrupt (the exit program of opensnoop went from ~400 ns to
~1,700-2,800 ns per run on the test machine): the tracer throttled what it observed.

The program side is given as lists of :class:`~pybpf.asm.instruction.Instruction` to
splice into a program (the building blocks the DSL uses; its compiler emits the same
test from :func:`adaptive_window`):

* :func:`wakeup_flags`: compute the flags for a policy into a register;
* :func:`ringbuf_output`: ``bpf_ringbuf_output`` of stack data with a policy, counting
  failures (a full ring) in an optional drop counter;
* :func:`ringbuf_submit`, :func:`ringbuf_discard`: for ``bpf_ringbuf_reserve``d records;
* :func:`perf_event_output`: ``bpf_perf_event_output`` to the current CPU's slot;
* :func:`count_drop`: add one to a drop counter (a u64 in an array map's value).

Each block documents the registers it uses; helper calls clobber r0-r5 as always.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any, List, Optional, Tuple, Union

from .._enum import enum_of
from .._records import record

if TYPE_CHECKING:      # the program-side blocks import the assembler when called: readers
    from ..asm import Instruction, Reg      # (ringbuf, perfbuf) import this module too

__all__ = [
    "WakeupPolicy", "Wakeup", "BPF_RB_NO_WAKEUP", "BPF_RB_FORCE_WAKEUP", "BPF_RB_AVAIL_DATA",
    "BPF_RB_RING_SIZE", "BPF_RB_CONS_POS", "BPF_RB_PROD_POS", "BPF_F_CURRENT_CPU",
    "DEFAULT_FRACTION", "DEFAULT_INTERVAL", "RINGBUF_HEADER", "as_wakeup", "record_footprint",
    "adaptive_window", "wakeup_flags", "ringbuf_output",
    "ringbuf_submit", "ringbuf_discard", "perf_event_output", "count_drop",
]

#: ``flags`` of ``bpf_ringbuf_output``/``submit``/``discard``: do not wake the reader
BPF_RB_NO_WAKEUP = 1
#: ... wake the reader whatever its position
BPF_RB_FORCE_WAKEUP = 2
#: ``bpf_ringbuf_query`` questions: bytes not yet consumed, ring size, positions
BPF_RB_AVAIL_DATA = 0
BPF_RB_RING_SIZE = 1
BPF_RB_CONS_POS = 2
BPF_RB_PROD_POS = 3
#: ``flags`` of ``bpf_perf_event_output``: the slot of the CPU the program runs on
BPF_F_CURRENT_CPU = 0xFFFFFFFF

#: the fill level (a fraction of the ring) whose crossing makes an adaptive producer
#: force a wake-up
DEFAULT_FRACTION = 0.25
#: bytes of the header the kernel puts before each ring buffer record
#: (``BPF_RINGBUF_HDR_SZ``)
RINGBUF_HEADER = 8
#: the reader's timed poll under the adaptive and "none" policies, in seconds
DEFAULT_INTERVAL = 0.005


@enum_of(enum.Enum)
class WakeupPolicy:
    """Who wakes the reader: see the module description."""

    ADAPTIVE = "adaptive"
    PER_EVENT = "per_event"
    NONE = "none"


@record(frozen=True)
class Wakeup:
    """A wake-up policy with its parameters.

    ``fraction``: for ``ADAPTIVE``, how full (0 < fraction <= 1) the ring may be before
    producers force a wake-up; ``interval``: the reader's timed poll in seconds (None:
    the policy's default, :data:`DEFAULT_INTERVAL` for ``ADAPTIVE`` and ``NONE``, no
    timed poll for ``PER_EVENT``, where every wake-up is signalled).
    """

    policy: WakeupPolicy = WakeupPolicy.ADAPTIVE
    fraction: float = DEFAULT_FRACTION
    interval: Optional[float] = None

    def __post_init__(self) -> None:
        if not 0 < self.fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1], not {self.fraction}")
        if self.interval is not None and self.interval <= 0:
            raise ValueError(f"interval must be positive seconds, not {self.interval}")

    def threshold(self, ring_size: int) -> int:
        """The fill level in bytes whose crossing makes adaptive producers force a
        wake-up."""
        return max(1, int(ring_size * self.fraction))

    def window(self, ring_size: int, record_size: int, *,
               reserved: bool = False) -> Tuple[int, int]:
        """:func:`adaptive_window` with this policy's fraction."""
        return adaptive_window(ring_size, record_size, self.fraction, reserved=reserved)

    @property
    def reader_interval(self) -> Optional[float]:
        """The reader's timed poll for this policy (None: wait for wake-ups only)."""
        if self.interval is not None:
            return self.interval
        return None if self.policy is WakeupPolicy.PER_EVENT else DEFAULT_INTERVAL


WakeupLike = Union[Wakeup, WakeupPolicy, str, None]


def record_footprint(size: int) -> int:
    """Bytes a record of ``size`` bytes takes in a ring buffer: the 8-byte header plus
    the data rounded up to 8 (what ``BPF_RB_AVAIL_DATA`` grows by when it is posted)."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ValueError(f"a record size must be a count of bytes, not {size!r}")
    return RINGBUF_HEADER + (size + 7) // 8 * 8


def adaptive_window(ring_size: int, record_size: int, fraction: float = DEFAULT_FRACTION,
                    *, reserved: bool = False) -> Tuple[int, int]:
    """``(low, high)``: an adaptive producer posting a ``record_size``-byte record forces
    a wake-up when ``low <= avail < high``, ``avail`` being
    ``bpf_ringbuf_query(ring, BPF_RB_AVAIL_DATA)`` read just before it posts, else it
    posts with ``BPF_RB_NO_WAKEUP``. This is the crossing rule of the module
    description: level before the record ``< threshold <=`` level with it.

    ``reserved``: ``avail`` is read after ``bpf_ringbuf_reserve`` (before the submit),
    so it already includes this record. The test compiles to a subtraction and one
    unsigned comparison: ``avail - low < high - low``."""
    threshold = Wakeup(WakeupPolicy.ADAPTIVE, fraction).threshold(ring_size)
    footprint = record_footprint(record_size)
    if reserved:                    # avail = before + footprint
        return threshold, threshold + footprint
    return max(0, threshold - footprint), threshold


def as_wakeup(value: WakeupLike) -> Wakeup:
    """A :class:`Wakeup` from a policy, its name (``"adaptive"``, ``"per_event"``,
    ``"none"``), a :class:`Wakeup` or None (the default: adaptive)."""
    if value is None:
        return Wakeup()
    if isinstance(value, Wakeup):
        return value
    if isinstance(value, str):
        value = WakeupPolicy(value.lower())
    if isinstance(value, WakeupPolicy):
        return Wakeup(value)
    raise TypeError(f"expected a Wakeup, a WakeupPolicy or its name, not {value!r}")


def _reg(value: Any, what: str) -> Reg:
    from ..asm.opcodes import Reg
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10:
        raise ValueError(f"{what} must be a register, not {value!r}")
    return Reg(value)


def _callee_saved(value: Any, what: str) -> Reg:
    from ..asm.opcodes import Reg
    reg = _reg(value, what)
    if not Reg.R6 <= reg <= Reg.R9:
        raise ValueError(f"{what} must survive helper calls: one of r6-r9, not {reg}")
    return reg


def _ring_size(ringbuf: Any, ring_size: Optional[int]) -> int:
    if ring_size is not None:
        return ring_size
    for attr in ("size", "max_entries"):
        value = getattr(ringbuf, attr, None)
        if isinstance(value, int):
            return value
    raise ValueError("the ring's size is needed for the adaptive threshold: pass a RingBuf "
                     "map or ring_size=")


def wakeup_flags(dst: Reg, ringbuf: Any, wakeup: WakeupLike = None, *,
                 record_size: Optional[int] = None, ring_size: Optional[int] = None,
                 reserved: bool = False) -> List[Instruction]:
    """Instructions that leave the submit flags of ``wakeup`` in ``dst``.

    For ``ADAPTIVE``: ``BPF_RB_FORCE_WAKEUP`` if posting a ``record_size``-byte record
    now makes the ring's fill level cross the threshold, else ``BPF_RB_NO_WAKEUP``
    (:func:`adaptive_window`; ``reserved=True`` when the record was already reserved).
    The ring's size is the map's ``size`` or ``ring_size``. This calls
    ``bpf_ringbuf_query``, so ``dst`` must be one of r6-r9 and r0-r5 are clobbered.
    ``PER_EVENT`` and ``NONE`` are one ``mov``. ``ringbuf`` is the map (object or
    name) as for :func:`~pybpf.asm.builder.ld_map_fd`. Linux 5.8
    (``bpf_ringbuf_query``)."""
    from ..asm.builder import call, jge, ld_map_fd, lddw, mov, sub
    from ..asm.opcodes import Reg
    w = as_wakeup(wakeup)
    if w.policy is WakeupPolicy.PER_EVENT:
        return [mov(_reg(dst, "dst"), 0)]
    if w.policy is WakeupPolicy.NONE:
        return [mov(_reg(dst, "dst"), BPF_RB_NO_WAKEUP)]
    out = _callee_saved(dst, "dst")
    if record_size is None:
        raise ValueError("the record's size is needed for the adaptive policy's crossing "
                         "test: pass record_size=")
    low, high = w.window(_ring_size(ringbuf, ring_size), record_size, reserved=reserved)
    code = [ld_map_fd(Reg.R1, ringbuf), mov(Reg.R2, BPF_RB_AVAIL_DATA),
            call("ringbuf_query"), mov(out, BPF_RB_NO_WAKEUP)]
    if low:
        code += [lddw(Reg.R1, low), sub(Reg.R0, Reg.R1)] if low > 0x7FFFFFFF \
            else [sub(Reg.R0, low)]
    span = high - low
    if span <= 0x7FFFFFFF:
        code.append(jge(Reg.R0, span, 1))
    else:
        code += [lddw(Reg.R1, span), jge(Reg.R0, Reg.R1, 1)]
    code.append(mov(out, BPF_RB_FORCE_WAKEUP))
    return code


def count_drop(drops: Any, index: int = 0) -> List[Instruction]:
    """Add one to the u64 at ``index`` (in u64 units) of the value of key 0 of array map
    ``drops`` (direct value access, Linux 5.2; an atomic add). Uses r1 and r2."""
    from ..asm.builder import DW, atomic_add, ld_map_value, mov
    from ..asm.opcodes import Reg
    return [ld_map_value(Reg.R1, drops, 8 * index), mov(Reg.R2, 1),
            atomic_add(DW, Reg.R1, 0, Reg.R2)]


def _slots(code: List[Instruction]) -> int:
    return sum(ins.slots for ins in code)


def ringbuf_output(ringbuf: Any, stack_offset: int, size: int, wakeup: WakeupLike = None, *,
                   flags_reg: Reg = 9, drops: Any = None, drop_index: int = 0,
                   ring_size: Optional[int] = None) -> List[Instruction]:
    """``bpf_ringbuf_output(ringbuf, r10 + stack_offset, size, flags)`` with the flags
    of ``wakeup`` (computed into ``flags_reg``, one of r6-r9, default r9, see
    :func:`wakeup_flags`).
    If the ring is full (the helper fails) and ``drops`` is an array map, the u64 at
    ``drop_index`` of its value is incremented (:func:`count_drop`). Leaves the helper's
    result in r0. Linux 5.8."""
    from ..asm.builder import add, call, jeq, ld_map_fd, mov
    from ..asm.opcodes import Reg
    if not -512 <= stack_offset < 0 or stack_offset + size > 0:
        raise ValueError(f"{size} bytes at r10{stack_offset:+d} are not inside the stack")
    w = as_wakeup(wakeup)
    if w.policy is WakeupPolicy.ADAPTIVE:
        code = wakeup_flags(flags_reg, ringbuf, w, record_size=size, ring_size=ring_size)
        flags: Union[Reg, int] = _callee_saved(flags_reg, "flags_reg")
    else:
        code = []
        flags = 0 if w.policy is WakeupPolicy.PER_EVENT else BPF_RB_NO_WAKEUP
    code += [ld_map_fd(Reg.R1, ringbuf), mov(Reg.R2, Reg.R10), add(Reg.R2, stack_offset),
             mov(Reg.R3, size), mov(Reg.R4, flags), call("ringbuf_output")]
    if drops is not None:
        bump = count_drop(drops, drop_index)
        code += [jeq(Reg.R0, 0, _slots(bump))] + bump
    return code


def ringbuf_submit(record: Reg, flags: Union[Reg, int] = 0) -> List[Instruction]:
    """``bpf_ringbuf_submit(record, flags)``: commit a record from
    ``bpf_ringbuf_reserve`` (``record`` holds its pointer; ``flags`` a register from
    :func:`wakeup_flags` or a constant). Linux 5.8."""
    from ..asm.builder import call, mov
    from ..asm.opcodes import Reg
    return [mov(Reg.R1, _reg(record, "record")), mov(Reg.R2, flags), call("ringbuf_submit")]


def ringbuf_discard(record: Reg, flags: Union[Reg, int] = 0) -> List[Instruction]:
    """``bpf_ringbuf_discard(record, flags)``: give back a reserved record; readers skip
    it. Linux 5.8."""
    from ..asm.builder import call, mov
    from ..asm.opcodes import Reg
    return [mov(Reg.R1, _reg(record, "record")), mov(Reg.R2, flags), call("ringbuf_discard")]


def perf_event_output(ctx: Reg, perf_map: Any, stack_offset: int, size: int, *,
                      drops: Any = None, drop_index: int = 0) -> List[Instruction]:
    """``bpf_perf_event_output(ctx, perf_map, BPF_F_CURRENT_CPU, r10 + stack_offset,
    size)``: send stack data to the perf buffer of the CPU the program runs on. ``ctx``
    is the register holding the program's context (save r1 in r6-r9 at entry). A
    failure (no event in the slot, ...) is counted in ``drops`` when given; records the
    kernel drops because a CPU's buffer is full are reported by the reader instead
    (``PERF_RECORD_LOST``). Linux 4.4."""
    from ..asm.builder import add, call, jeq, ld_map_fd, mov, mov32
    from ..asm.opcodes import Reg
    if not -512 <= stack_offset < 0 or stack_offset + size > 0:
        raise ValueError(f"{size} bytes at r10{stack_offset:+d} are not inside the stack")
    code = [mov(Reg.R1, _reg(ctx, "ctx")), ld_map_fd(Reg.R2, perf_map),
            mov32(Reg.R3, -1),          # BPF_F_CURRENT_CPU, zero-extended
            mov(Reg.R4, Reg.R10), add(Reg.R4, stack_offset), mov(Reg.R5, size),
            call("perf_event_output")]
    if drops is not None:
        bump = count_drop(drops, drop_index)
        code += [jeq(Reg.R0, 0, _slots(bump))] + bump
    return code
