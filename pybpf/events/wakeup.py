"""Wake-up policy: when a producer in the kernel wakes the reader in user space.

Waking a sleeping reader costs the traced task an ``irq_work`` and a scheduler wake-up
per event; under a storm of events that alone can slow the traced workload several
times. pybpf makes the choice explicit, per ring buffer, with :class:`WakeupPolicy`:

* ``ADAPTIVE`` (the default): while the ring holds less than a set fraction of its size
  the program submits with ``BPF_RB_NO_WAKEUP``; past it, with ``BPF_RB_FORCE_WAKEUP``
  (the fill level comes from ``bpf_ringbuf_query(ring, BPF_RB_AVAIL_DATA)``, Linux
  5.8). The reader polls with a timeout (:attr:`Wakeup.interval`), which bounds how long
  a quietly posted record waits. Few wake-ups, no loss as long as the ring absorbs one
  interval of events.
* ``PER_EVENT``: flags 0, the kernel's own rule: wake the reader whenever it has caught
  up (in practice once per event when the reader keeps pace). Lowest latency.
* ``NONE``: always ``BPF_RB_NO_WAKEUP``; the reader's timed poll does everything.

The program side is given as lists of :class:`~pybpf.asm.instruction.Instruction` to
splice into a program (the building blocks the DSL uses):

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
from dataclasses import dataclass
from typing import Any, List, Optional, Union

from ..asm import Instruction, Reg
from ..asm.builder import (
    DW, add, atomic_add, call, jeq, jlt, ld_map_fd, ld_map_value, lddw, mov, mov32,
)

__all__ = [
    "WakeupPolicy", "Wakeup", "BPF_RB_NO_WAKEUP", "BPF_RB_FORCE_WAKEUP", "BPF_RB_AVAIL_DATA",
    "BPF_RB_RING_SIZE", "BPF_RB_CONS_POS", "BPF_RB_PROD_POS", "BPF_F_CURRENT_CPU",
    "DEFAULT_FRACTION", "DEFAULT_INTERVAL", "as_wakeup", "wakeup_flags", "ringbuf_output",
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

#: how full the ring may get before adaptive producers force a wake-up
DEFAULT_FRACTION = 0.25
#: the reader's timed poll under the adaptive and "none" policies, in seconds
DEFAULT_INTERVAL = 0.005


class WakeupPolicy(enum.Enum):
    """Who wakes the reader: see the module description."""

    ADAPTIVE = "adaptive"
    PER_EVENT = "per_event"
    NONE = "none"


@dataclass(frozen=True)
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
        """The fill level in bytes from which adaptive producers force a wake-up."""
        return max(1, int(ring_size * self.fraction))

    @property
    def reader_interval(self) -> Optional[float]:
        """The reader's timed poll for this policy (None: wait for wake-ups only)."""
        if self.interval is not None:
            return self.interval
        return None if self.policy is WakeupPolicy.PER_EVENT else DEFAULT_INTERVAL


WakeupLike = Union[Wakeup, WakeupPolicy, str, None]


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
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10:
        raise ValueError(f"{what} must be a register, not {value!r}")
    return Reg(value)


def _callee_saved(value: Any, what: str) -> Reg:
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
                 ring_size: Optional[int] = None) -> List[Instruction]:
    """Instructions that leave the submit flags of ``wakeup`` in ``dst``.

    For ``ADAPTIVE``: ``dst = bpf_ringbuf_query(ringbuf, BPF_RB_AVAIL_DATA) <
    threshold ? BPF_RB_NO_WAKEUP : BPF_RB_FORCE_WAKEUP``, with the threshold computed from
    the ring's size (the map's ``size``, or ``ring_size``); this calls a helper, so
    ``dst`` must be one of r6-r9 and r0-r5 are clobbered. ``PER_EVENT`` and ``NONE``
    are one ``mov``. ``ringbuf`` is the map (object or name) as for
    :func:`~pybpf.asm.builder.ld_map_fd`. Linux 5.8 (``bpf_ringbuf_query``).
    """
    w = as_wakeup(wakeup)
    if w.policy is WakeupPolicy.PER_EVENT:
        return [mov(_reg(dst, "dst"), 0)]
    if w.policy is WakeupPolicy.NONE:
        return [mov(_reg(dst, "dst"), BPF_RB_NO_WAKEUP)]
    out = _callee_saved(dst, "dst")
    threshold = w.threshold(_ring_size(ringbuf, ring_size))
    code = [ld_map_fd(Reg.R1, ringbuf), mov(Reg.R2, BPF_RB_AVAIL_DATA),
            call("ringbuf_query"), mov(out, BPF_RB_NO_WAKEUP)]
    if threshold <= 0x7FFFFFFF:
        code.append(jlt(Reg.R0, threshold, 1))
    else:
        code += [lddw(Reg.R1, threshold), jlt(Reg.R0, Reg.R1, 1)]
    code.append(mov(out, BPF_RB_FORCE_WAKEUP))
    return code


def count_drop(drops: Any, index: int = 0) -> List[Instruction]:
    """Add one to the u64 at ``index`` (in u64 units) of the value of key 0 of array map
    ``drops`` (direct value access, Linux 5.2; an atomic add). Uses r1 and r2."""
    return [ld_map_value(Reg.R1, drops, 8 * index), mov(Reg.R2, 1),
            atomic_add(DW, Reg.R1, 0, Reg.R2)]


def _slots(code: List[Instruction]) -> int:
    return sum(ins.slots for ins in code)


def ringbuf_output(ringbuf: Any, stack_offset: int, size: int, wakeup: WakeupLike = None, *,
                   flags_reg: Reg = Reg.R9, drops: Any = None, drop_index: int = 0,
                   ring_size: Optional[int] = None) -> List[Instruction]:
    """``bpf_ringbuf_output(ringbuf, r10 + stack_offset, size, flags)`` with the flags
    of ``wakeup`` (computed into ``flags_reg``, one of r6-r9, see :func:`wakeup_flags`).
    If the ring is full (the helper fails) and ``drops`` is an array map, the u64 at
    ``drop_index`` of its value is incremented (:func:`count_drop`). Leaves the helper's
    result in r0. Linux 5.8."""
    if not -512 <= stack_offset < 0 or stack_offset + size > 0:
        raise ValueError(f"{size} bytes at r10{stack_offset:+d} are not inside the stack")
    w = as_wakeup(wakeup)
    if w.policy is WakeupPolicy.ADAPTIVE:
        code = wakeup_flags(flags_reg, ringbuf, w, ring_size=ring_size)
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
    return [mov(Reg.R1, _reg(record, "record")), mov(Reg.R2, flags), call("ringbuf_submit")]


def ringbuf_discard(record: Reg, flags: Union[Reg, int] = 0) -> List[Instruction]:
    """``bpf_ringbuf_discard(record, flags)``: give back a reserved record; readers skip
    it. Linux 5.8."""
    return [mov(Reg.R1, _reg(record, "record")), mov(Reg.R2, flags), call("ringbuf_discard")]


def perf_event_output(ctx: Reg, perf_map: Any, stack_offset: int, size: int, *,
                      drops: Any = None, drop_index: int = 0) -> List[Instruction]:
    """``bpf_perf_event_output(ctx, perf_map, BPF_F_CURRENT_CPU, r10 + stack_offset,
    size)``: send stack data to the perf buffer of the CPU the program runs on. ``ctx``
    is the register holding the program's context (save r1 in r6-r9 at entry). A
    failure (no event in the slot, ...) is counted in ``drops`` when given; records the
    kernel drops because a CPU's buffer is full are reported by the reader instead
    (``PERF_RECORD_LOST``). Linux 4.4."""
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
