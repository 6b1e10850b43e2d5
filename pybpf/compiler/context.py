"""What a program's context parameter holds, by attach point.

Each program kind describes its context as named fields (:class:`CtxField`): a
tracepoint's fields from its tracefs ``format`` file, a kernel function's arguments by
name from its BTF prototype (kprobes read them from ``pt_regs``, fentry/fexit/tp_btf and
raw tracepoints from 64-bit slots), ``retval`` for return probes, ``arg0``..``arg5`` for
uprobes, the fields of ``xdp_md`` and ``__sk_buff`` for packet programs. The compiler
turns ``ctx.name`` into the load the field needs.
"""

from __future__ import annotations

from typing import Any, Dict, List, NamedTuple, Optional, Tuple

from .types import ArrayType, IntType, char, i8, i16, i32, i64, u8, u16, u32, u64

__all__ = ["CtxField", "Context", "tracepoint_context", "slot_context", "pt_regs_context",
           "usdt_context", "PT_REGS_SYSCALL_ARGS", "PT_REGS_SYSCALL_NR",
           "fixed_context", "XDP_FIELDS", "SKB_FIELDS", "PERF_EVENT_FIELDS"]

_INTS = {(1, False): u8, (2, False): u16, (4, False): u32, (8, False): u64,
         (1, True): i8, (2, True): i16, (4, True): i32, (8, True): i64}


class CtxField(NamedTuple):
    """One context field. ``kind``:

    * ``"load"``: ``type`` (an integer type) at ``offset`` of the context, read directly;
    * ``"slot"``: a 64-bit slot at ``offset`` holding a value of ``type`` (an integer type,
      or a ``("kptr", btf_type_id)`` pointer into the kernel);
    * ``"array"``: a fixed array (``type`` an :class:`ArrayType`) inside the context;
    * ``"data_loc"``: a tracepoint's dynamic array (a 32-bit locator at ``offset``);
    * ``"const"``: the number ``offset`` (a USDT argument the compiler made a constant);
    * ``"umem"``: a USDT argument in user memory: ``type`` is ``(int type, base register
      offset in pt_regs, displacement, index register offset or -1, scale)``.
    """

    name: str
    kind: str
    offset: int
    type: Any


class Context:
    """The named fields of a program's context (``description`` for messages)."""

    def __init__(self, description: str, fields: List[CtxField]) -> None:
        self.description = description
        self.fields: Dict[str, CtxField] = {f.name: f for f in fields}
        #: the command that lists the attach point's fields with their C types (set by
        #: :meth:`pybpf.dsl.attach.ProgramKind.context`; "" for the fixed contexts)
        self.listing = ""

    def unknown_field(self, name: str) -> Tuple[str, str]:
        """``(message, hint)`` for ``ctx.name`` that is not a field: the closest names,
        and the command listing every field (or, for a small fixed context, the list)."""
        from ..errors import close_matches
        message = f"{self.description} has no field {name!r}"
        matches = close_matches(name, self.names(), n=3)
        if matches:
            message += f"; did you mean {' or '.join(matches)}?"
        if self.listing:
            return message, f"{self.listing} lists its fields"
        return message, f"fields: {', '.join(self.names())}"

    def field(self, name: str) -> Optional[CtxField]:
        """The field called ``name``, or None."""
        return self.fields.get(name)

    def names(self) -> List[str]:
        """The field names, for hints."""
        return list(self.fields)


def int_type(size: int, signed: bool) -> IntType:
    """The integer type of ``size`` bytes (1, 2, 4, 8)."""
    return _INTS[(size, signed)]


def tracepoint_context(group: str, name: str) -> Context:
    """The fields of tracepoint ``group:name`` from tracefs (``common_pid`` included)."""
    from ..tracefs import event_format
    fmt = event_format(group, name)
    fields: List[CtxField] = []
    for f in list(fmt.common_fields) + list(fmt.fields):
        if f.kind in ("data_loc", "rel_loc"):
            fields.append(CtxField(f.name, "data_loc" if f.kind == "data_loc" else "rel_loc",
                                   f.offset, None))
        elif f.kind == "array" and f.count:
            elem = char if f.is_string else int_type(f.elem_size, f.signed)
            fields.append(CtxField(f.name, "array", f.offset, ArrayType(elem, f.count)))
        elif f.size in (1, 2, 4, 8):
            fields.append(CtxField(f.name, "load", f.offset, int_type(f.size, f.signed)))
    return Context(f"tracepoint {group}:{name}", fields)


def _arg_type(btf: Any, type_id: int, size: int, signed: bool, pointer: bool) -> Any:
    from ..btf.resolve import skip_modifiers
    from ..btf.types import Ptr
    if pointer:
        t = btf.type(skip_modifiers(btf, type_id))
        assert isinstance(t, Ptr)
        return ("kptr", t.type)
    if size in (1, 2, 4, 8):
        return int_type(size, signed)
    return u64


def slot_context(description: str, proto: Any = None, nslots: int = 6,
                 retval: Optional[int] = None) -> Context:
    """Arguments in 64-bit slots (raw tracepoints, tp_btf, fentry/fexit): by name from
    the BTF prototype ``proto`` when given, and as ``arg0``.. always; ``retval`` (fexit)
    at slot offset ``retval``."""
    fields: List[CtxField] = [CtxField(f"arg{i}", "slot", 8 * i, u64) for i in range(nslots)]
    if proto is not None:
        from ..btf import vmlinux
        btf = vmlinux()
        for a in proto.args:
            t = _arg_type(btf, a.type_id, a.size, a.signed, a.pointer)
            fields[a.index:a.index + 1] = [CtxField(f"arg{a.index}", "slot", a.ctx_offset, t)]
            if a.name:
                fields.append(CtxField(a.name, "slot", a.ctx_offset, t))
        if retval is not None:
            rt = _ret_type(btf, proto.return_type)
            fields.append(CtxField("retval", "slot", retval, rt))
    elif retval is not None:
        fields.append(CtxField("retval", "slot", retval, u64))
    return Context(description, fields)


def _ret_type(btf: Any, type_id: int) -> Any:
    from ..btf.resolve import is_signed, sizeof, skip_modifiers
    from ..btf.types import Ptr, Void
    if type_id == 0:
        return u64
    t = btf.type(skip_modifiers(btf, type_id))
    if isinstance(t, Ptr):
        return ("kptr", t.type)
    if isinstance(t, Void):
        return u64
    size = sizeof(btf, t.id)
    return int_type(size, is_signed(btf, t.id)) if size in (1, 2, 4, 8) else u64


#: x86-64 ``struct pt_regs`` offsets of the argument registers, the return value, ip, sp
PT_REGS_ARGS = (112, 104, 96, 88, 72, 64)      # di si dx cx r8 r9
PT_REGS_RET, PT_REGS_IP, PT_REGS_SP = 80, 128, 152
#: x86-64 ``struct pt_regs`` offsets of a system call's arguments 0..5 as the kernel saved
#: them at the call's entry (the syscall ABI passes the fourth in r10, not cx)
PT_REGS_SYSCALL_ARGS = (112, 104, 96, 56, 72, 64)  # di si dx r10 r8 r9
#: ... and of its number (``orig_ax``: ``ax`` holds the result once the call returns)
PT_REGS_SYSCALL_NR = 120


def pt_regs_context(description: str, proto: Any = None, ret: bool = False) -> Context:
    """A ``pt_regs`` context (kprobes, uprobes, perf events on x86-64): ``arg0``..``arg5``,
    the kernel function's arguments by name (``proto``), ``retval`` for return probes,
    ``ip`` and ``sp``."""
    fields = [CtxField(f"arg{i}", "load", off, u64) for i, off in enumerate(PT_REGS_ARGS)]
    fields += [CtxField("ip", "load", PT_REGS_IP, u64), CtxField("sp", "load", PT_REGS_SP, u64)]
    if proto is not None:
        from ..btf import vmlinux
        btf = vmlinux()
        for a in proto.args[:6]:
            t = _arg_type(btf, a.type_id, a.size, a.signed, a.pointer)
            if a.name:
                fields.append(CtxField(a.name, "slot", PT_REGS_ARGS[a.index], t))
        if ret:
            fields.append(CtxField("retval", "slot", PT_REGS_RET,
                                   _ret_type(btf, proto.return_type)))
    elif ret:
        fields.append(CtxField("retval", "load", PT_REGS_RET, u64))
    return Context(description, fields)


def fixed_context(description: str, layout: Dict[str, int], size: Optional[Dict[str, IntType]] = None
                  ) -> Context:
    """A context with fixed u32 fields (``xdp_md``, ``__sk_buff``) at ``layout`` offsets."""
    size = size or {}
    return Context(description, [CtxField(n, "load", off, size.get(n, u32))
                                 for n, off in layout.items()])


def usdt_context(description: str, binary: str, probe: str, pid: int = -1) -> Context:
    """The arguments of USDT probe ``provider:name`` (or ``name``) in ``binary``, as
    ``arg0``.. with their note's sizes: a register is read from ``pt_regs``, a memory
    operand with ``bpf_probe_read_user``, a constant is compiled in. Every site of the
    probe must pass its arguments the same way (the compiler makes one program)."""
    from ..elf.libs import resolve_binary
    from ..elf.usdt import find_usdt
    path = resolve_binary(binary, pid if pid > 0 else None)
    provider, _, name = probe.rpartition(":")
    sites = find_usdt(path, provider or None, name)
    specs = {tuple(a.text for a in s.args) for s in sites}
    if len(specs) > 1:
        raise ValueError(f"the {len(sites)} sites of USDT probe {probe} in {path} pass their "
                         f"arguments differently ({'; '.join(' '.join(x) for x in specs)}): "
                         "one compiled program cannot read them all")
    fields: List[CtxField] = []
    for i, a in enumerate(sites[0].args):
        t = int_type(a.size, a.signed) if a.size in (1, 2, 4, 8) else u64
        if a.kind == "const":
            fields.append(CtxField(f"arg{i}", "const", t.wrap(a.value), t))
            continue
        base = a.pt_regs_offset
        if base is None:
            raise ValueError(f"USDT probe {probe}: argument {i} ({a.text}) uses register "
                             f"{a.reg!r}, which pybpf cannot read from pt_regs")
        if a.kind == "reg":
            fields.append(CtxField(f"arg{i}", "load", base, t))
        else:
            from ..elf.usdt import PT_REGS_OFFSETS, _canonical_reg
            index = PT_REGS_OFFSETS.get(_canonical_reg(a.index), -1) if a.index else -1
            fields.append(CtxField(f"arg{i}", "umem", 0, (t, base, a.offset, index, a.scale)))
    return Context(description, fields)


#: ``struct xdp_md``
XDP_FIELDS = {"data": 0, "data_end": 4, "data_meta": 8, "ingress_ifindex": 12,
              "rx_queue_index": 16, "egress_ifindex": 20}
#: ``struct __sk_buff`` (the fields socket filters and tc programs read most)
SKB_FIELDS = {"len": 0, "pkt_type": 4, "mark": 8, "queue_mapping": 12, "protocol": 16,
              "vlan_present": 20, "vlan_tci": 24, "vlan_proto": 28, "priority": 32,
              "ingress_ifindex": 36, "ifindex": 40, "tc_index": 44, "hash": 68,
              "tc_classid": 72, "napi_id": 84, "family": 88, "remote_ip4": 92,
              "local_ip4": 96, "remote_port": 132, "local_port": 136}
#: ``struct bpf_perf_event_data`` beyond its ``pt_regs``
PERF_EVENT_FIELDS = {"sample_period": 168, "addr": 176}
