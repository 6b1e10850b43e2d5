"""Kernel helpers implemented for the VM, by helper id.

A helper implementation is a function ``fn(vm, r1, r2, r3, r4, r5) -> int`` that gets the
:class:`~pybpf.vm.machine.Machine` and the five argument registers (unsigned 64-bit) and
returns r0. Names and ids come from :mod:`pybpf.asm.helpers`. :data:`HELPERS` holds the
built-in ones; a machine can add or replace any with its ``helpers=`` argument.

What the built-ins see of "the current task" and the clock comes from an
:class:`Environment`, so runs are reproducible: pass ``Environment(ktime_ns=lambda: 0)``
for a fixed clock.
"""

from __future__ import annotations

import random
import re
import time
from typing import TYPE_CHECKING, Callable, Dict, List, Optional

from pybpf.asm.helpers import helper as _helper_info

from .errors import HelperError, MemoryFault
from .maps import EFAULT, EINVAL, BpfMap, RingBuf

if TYPE_CHECKING:  # pragma: no cover
    from .machine import Machine

__all__ = ["Environment", "HelperFn", "HELPERS", "helper_label", "format_printk"]

HelperFn = Callable[..., int]

_M64 = (1 << 64) - 1


class Environment:
    """What the helpers report about the world.

    ``pid``/``tgid``/``uid``/``gid``/``comm``/``cpu`` describe the "current task";
    ``ktime_ns`` is a zero-argument callable giving the clock in nanoseconds (default:
    ``time.monotonic_ns``); ``seed`` seeds ``get_prandom_u32``.
    """

    def __init__(self, *, pid: int = 4242, tgid: Optional[int] = None, uid: int = 1000,
                 gid: int = 1000, comm: str = "pybpf-vm", cpu: int = 0,
                 ktime_ns: Optional[Callable[[], int]] = None, seed: int = 0) -> None:
        self.pid = pid
        self.tgid = pid if tgid is None else tgid
        self.uid = uid
        self.gid = gid
        self.comm = comm
        self.cpu = cpu
        self.ktime_ns: Callable[[], int] = ktime_ns or time.monotonic_ns
        self.random = random.Random(seed)

    def __repr__(self) -> str:
        return (f"Environment(pid={self.pid}, tgid={self.tgid}, uid={self.uid}, "
                f"gid={self.gid}, comm={self.comm!r}, cpu={self.cpu})")


def helper_label(helper_id: int) -> str:
    """``bpf_<name> (id N)`` for error messages, or ``helper N`` if the id is unknown."""
    try:
        return f"bpf_{_helper_info(helper_id).name} (id {helper_id})"
    except KeyError:
        return f"helper {helper_id}"


def _neg(err: int) -> int:
    return err & _M64


# -- maps ----------------------------------------------------------------------------------

def _kv_map(vm: "Machine", handle: int, what: str) -> BpfMap:
    found = vm.map_at(handle)
    if not isinstance(found, BpfMap):
        raise HelperError(f"{what}: r1 ({handle:#x}) is not a pointer to a hash or array map")
    return found


def map_lookup_elem(vm: "Machine", r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """``void *bpf_map_lookup_elem(map, key)``: pointer to the value, or NULL."""
    m = _kv_map(vm, r1, "bpf_map_lookup_elem")
    key = vm.memory.read(r2, m.key_size, "bpf_map_lookup_elem: read of the key")
    store = m.lookup(key)
    if store is None:
        return 0
    return vm.value_address(m, key, store)


def map_update_elem(vm: "Machine", r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """``long bpf_map_update_elem(map, key, value, flags)``: 0 or a negative errno."""
    m = _kv_map(vm, r1, "bpf_map_update_elem")
    key = vm.memory.read(r2, m.key_size, "bpf_map_update_elem: read of the key")
    value = vm.memory.read(r3, m.value_size, "bpf_map_update_elem: read of the value")
    return _neg(m.update(key, value, r4))


def map_delete_elem(vm: "Machine", r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """``long bpf_map_delete_elem(map, key)``: 0 or a negative errno."""
    m = _kv_map(vm, r1, "bpf_map_delete_elem")
    key = vm.memory.read(r2, m.key_size, "bpf_map_delete_elem: read of the key")
    err = m.delete(key)
    if err == 0:
        vm.forget_value(m, key)
    return _neg(err)


# -- time, task, randomness ------------------------------------------------------------------

def ktime_get_ns(vm: "Machine", r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """``u64 bpf_ktime_get_ns(void)`` (and the boot/coarse/tai variants): the
    environment's clock."""
    return vm.env.ktime_ns() & _M64


def get_prandom_u32(vm: "Machine", r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """``u32 bpf_get_prandom_u32(void)``, from the environment's seeded generator."""
    return vm.env.random.getrandbits(32)


def get_smp_processor_id(vm: "Machine", r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """``u32 bpf_get_smp_processor_id(void)``: the environment's cpu."""
    return vm.env.cpu & 0xFFFFFFFF


def get_numa_node_id(vm: "Machine", r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """``long bpf_get_numa_node_id(void)``: always node 0."""
    return 0


def get_current_pid_tgid(vm: "Machine", r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """``u64 bpf_get_current_pid_tgid(void)``: tgid in the high half, pid in the low."""
    return ((vm.env.tgid & 0xFFFFFFFF) << 32) | (vm.env.pid & 0xFFFFFFFF)


def get_current_uid_gid(vm: "Machine", r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """``u64 bpf_get_current_uid_gid(void)``: gid in the high half, uid in the low."""
    return ((vm.env.gid & 0xFFFFFFFF) << 32) | (vm.env.uid & 0xFFFFFFFF)


def get_current_comm(vm: "Machine", r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """``long bpf_get_current_comm(buf, size)``: the task name, NUL-terminated and
    zero-padded to ``size`` (truncated to 15 characters, as TASK_COMM_LEN is 16)."""
    size = r2 & 0xFFFFFFFF
    if size == 0:
        return _neg(-EINVAL)
    name = vm.env.comm.encode("utf-8", "replace")[:15][:size - 1]
    vm.memory.write(r1, name + bytes(size - len(name)), "bpf_get_current_comm: write of buf")
    return 0


# -- memory copies ---------------------------------------------------------------------------

def probe_read(vm: "Machine", r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """``long bpf_probe_read{,_kernel,_user}(dst, size, unsafe_ptr)``: copy ``size``
    bytes; an unreadable source zero-fills ``dst`` and returns -EFAULT."""
    size = r2 & 0xFFFFFFFF
    try:
        data = vm.memory.read(r3, size)
        ret = 0
    except MemoryFault:
        data, ret = bytes(size), -EFAULT
    vm.memory.write(r1, data, "bpf_probe_read: write of dst")
    return _neg(ret)


def probe_read_str(vm: "Machine", r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """``long bpf_probe_read{,_kernel,_user}_str(dst, size, unsafe_ptr)``: copy a
    NUL-terminated string of at most ``size - 1`` characters; returns its length
    including the NUL, or -EFAULT (``dst`` then holds an empty string)."""
    size = r2 & 0xFFFFFFFF
    if size == 0:
        return 0
    try:
        text = vm.memory.read_cstring(r3, size - 1)
    except MemoryFault:
        vm.memory.write(r1, b"\0", "bpf_probe_read_str: write of dst")
        return _neg(-EFAULT)
    vm.memory.write(r1, text + b"\0", "bpf_probe_read_str: write of dst")
    return len(text) + 1


# -- trace_printk ----------------------------------------------------------------------------

_SPEC = re.compile(r"%([-+ 0#]*)(\d*)(?:\.(\d+))?(hh|h|ll|l|z)?([diuxXocsp%])")


def format_printk(fmt: str, args: List[int], read_string: Callable[[int], str]) -> str:
    """Format a ``bpf_trace_printk`` string: ``%d %i %u %x %X %o %c %s %p`` with the
    ``l``/``ll``/``h``/``hh`` length modifiers, flags, width and precision. Without
    ``l``/``ll`` an integer is 32 bits wide, as in C. ``read_string`` reads ``%s``."""
    it = iter(args)

    def sub(m: "re.Match[str]") -> str:
        flags, width, prec, length, conv = m.groups()
        if conv == "%":
            return "%"
        value = next(it, 0) & _M64
        if conv == "s":   # pointers are 64-bit whatever the length modifier
            text = read_string(value)
            if prec:
                text = text[:int(prec)]
            return f"%{flags}{width}s" % text
        if conv == "p":
            return f"%{flags}{width}s" % f"0x{value:x}"
        if conv == "c":
            return f"%{flags}{width}c" % chr(value & 0xFF)
        bits = 64 if length in ("l", "ll", "z") else 16 if length == "h" else \
            8 if length == "hh" else 32
        value &= (1 << bits) - 1
        if conv in "di" and value >> (bits - 1):
            value -= 1 << bits
        spec = "%" + flags + width + (f".{prec}" if prec else "") + \
            {"i": "d", "u": "d"}.get(conv, conv)
        return spec % value

    return _SPEC.sub(sub, fmt)


def trace_printk(vm: "Machine", r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """``long bpf_trace_printk(fmt, fmt_size, ...)``: up to three arguments; the line is
    appended to ``vm.printk``. Returns the number of bytes, or -EINVAL if ``fmt`` is not
    NUL-terminated within ``fmt_size`` bytes."""
    size = r2 & 0xFFFFFFFF
    raw = vm.memory.read(r1, size, "bpf_trace_printk: read of fmt")
    nul = raw.find(b"\0")
    if nul < 0:
        return _neg(-EINVAL)
    fmt = raw[:nul].decode("utf-8", "replace")

    def read_string(address: int) -> str:
        try:
            return vm.memory.read_cstring(address, 4096).decode("utf-8", "replace")
        except MemoryFault:
            return "(efault)"

    line = format_printk(fmt, [r3, r4, r5], read_string)
    vm.printk.append(line)
    return len(line.encode("utf-8"))


# -- ring buffer ------------------------------------------------------------------------------

def _ringbuf(vm: "Machine", handle: int, what: str) -> RingBuf:
    found = vm.map_at(handle)
    if not isinstance(found, RingBuf):
        raise HelperError(f"{what}: r1 ({handle:#x}) is not a pointer to a ring buffer map")
    return found


def ringbuf_output(vm: "Machine", r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """``long bpf_ringbuf_output(ringbuf, data, size, flags)``: copy a record in; 0 or
    -EAGAIN when full."""
    rb = _ringbuf(vm, r1, "bpf_ringbuf_output")
    data = vm.memory.read(r2, r3, "bpf_ringbuf_output: read of data")
    return _neg(rb.output(data))


def ringbuf_reserve(vm: "Machine", r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """``void *bpf_ringbuf_reserve(ringbuf, size, flags)``: a writable record, or NULL."""
    rb = _ringbuf(vm, r1, "bpf_ringbuf_reserve")
    if r2 > rb.size:
        return 0
    store = rb.reserve(r2)
    if store is None:
        return 0
    return vm.memory.map(f"ring buffer record of {rb.name}", "ringbuf_record", store,
                         owner=rb).base


def _ringbuf_finish(vm: "Machine", address: int, submit: bool) -> int:
    what = "bpf_ringbuf_submit" if submit else "bpf_ringbuf_discard"
    region = vm.memory.region_of(address)
    if region is None or region.kind != "ringbuf_record" or address != region.base:
        raise HelperError(f"{what}: r1 ({address:#x}) is not a record from bpf_ringbuf_reserve")
    rb = region.owner
    assert isinstance(rb, RingBuf)
    rb.commit(region.data, submit)  # type: ignore[arg-type]
    vm.memory.unmap(region)
    return 0


def ringbuf_submit(vm: "Machine", r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """``void bpf_ringbuf_submit(data, flags)``: publish a reserved record."""
    return _ringbuf_finish(vm, r1, True)


def ringbuf_discard(vm: "Machine", r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """``void bpf_ringbuf_discard(data, flags)``: drop a reserved record."""
    return _ringbuf_finish(vm, r1, False)


def ringbuf_query(vm: "Machine", r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """``u64 bpf_ringbuf_query(ringbuf, flags)``: flags 0 or BPF_RB_AVAIL_DATA (1) give the
    bytes pending, BPF_RB_RING_SIZE (2) the size; other flags 0."""
    rb = _ringbuf(vm, r1, "bpf_ringbuf_query")
    if r2 in (0, 1):
        return sum(len(r) for r in rb.records)
    if r2 == 2:
        return rb.size
    return 0


# -- callbacks ---------------------------------------------------------------------------------

def loop(vm: "Machine", r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """``long bpf_loop(nr_loops, callback_fn, callback_ctx, flags)``: call the subprogram
    ``callback_fn(index, callback_ctx)`` until it returns non-zero or ``nr_loops`` calls
    were made; returns the number of calls. At most 1 << 23 loops, flags must be 0."""
    nr = r1 & 0xFFFFFFFF
    if r4 != 0 or nr > 1 << 23:
        return _neg(-EINVAL)
    target = vm.code_target(r2, "bpf_loop: callback_fn (r2)")
    for i in range(nr):
        if vm.call_function(target, (i, r3, 0, 0, 0)) & _M64:
            return i + 1
    return nr


HELPERS: Dict[int, HelperFn] = {
    1: map_lookup_elem, 2: map_update_elem, 3: map_delete_elem,
    4: probe_read, 5: ktime_get_ns, 6: trace_printk, 7: get_prandom_u32,
    8: get_smp_processor_id, 14: get_current_pid_tgid, 15: get_current_uid_gid,
    16: get_current_comm, 42: get_numa_node_id, 45: probe_read_str,
    112: probe_read, 113: probe_read, 114: probe_read_str, 115: probe_read_str,
    125: ktime_get_ns, 130: ringbuf_output, 131: ringbuf_reserve, 132: ringbuf_submit,
    133: ringbuf_discard, 134: ringbuf_query, 160: ktime_get_ns, 181: loop,
    208: ktime_get_ns,
}
