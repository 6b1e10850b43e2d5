"""The Python language's calls that are not plain integer helpers, as the function
compiler emits them (mixed into it): map subscripts and methods (``m[k] op= v``,
``m.get()``, ``m.setdefault()``, ``.output()``, ``.stackid()``, queues), ``with
ring.reserve() as e:``, helpers with destinations, ``print()``, ``trace_printk()``,
``log2()``, ``strlen()``, ``startswith()``, ``syscall_arg()``, ``syscall_nr()`` and
string comparisons. The code they emit comes from the shared building blocks
(:mod:`pybpf.compiler.blocks`)."""

from __future__ import annotations

import ast
from typing import Any, List, Optional, Tuple

from ...compiler import types as T
from ...compiler.blocks import BPF_NOEXIST, MapRef
from ...compiler.context import PT_REGS_SYSCALL_ARGS, PT_REGS_SYSCALL_NR
from ...compiler.ir import FrameAddr, MapFd, Operand, PtrType, VReg
from ...compiler.maps import PerfEventArray, QueueMap, RingBuf, StackTraceMap
from ...compiler.memory import Place
from ...compiler.unit import PRINT_MAP

__all__ = ["BuiltinsMixin", "DEST_HELPERS"]

#: helpers that write into a destination (``dst = helper(...)``)
DEST_HELPERS = ("comm", "probe_read_user_str", "probe_read_kernel_str", "probe_read_user",
                "probe_read_kernel")
#: the program kinds where ``syscall_arg()`` means something: the task may be in a
#: system call and ``bpf_task_pt_regs`` is allowed
_SYSCALL_ARG_KINDS = ("tracepoint", "raw_tracepoint", "tp_btf", "kprobe", "kretprobe",
                      "fentry", "fexit")
#: compound assignments that have an atomic instruction (``-=`` adds the negation;
#: or/and/xor are ISA v3, Linux 5.12)
_ATOMIC_OPS = {ast.Add: "add", ast.Sub: "add", ast.BitOr: "or", ast.BitAnd: "and",
               ast.BitXor: "xor"}
_OP_SYMBOLS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.FloorDiv: "//", ast.Mod: "%",
               ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^", ast.LShift: "<<",
               ast.RShift: ">>", ast.Div: "/", ast.Pow: "**"}


class BuiltinsMixin:
    """Calls that are not plain integer helpers (see the module docstring)."""

    # -- maps ---------------------------------------------------------------------------
    def key_arg(self, ref: MapRef, node: ast.expr, pre: Any = None) -> Any:
        """The address of a key (integers go through a frame slot; ``pre``: the key
        already evaluated to an integer operand)."""
        kt = ref.decl.key
        if pre is not None:
            if isinstance(pre, (int, VReg)):
                off = self.temp("key", kt.size)                 # type: ignore[attr-defined]
                self.write(Place(None, off, kt, "stack"), pre, node)  # type: ignore[attr-defined]
                return FrameAddr(off)
            return pre
        if isinstance(kt, T.IntType):
            v = self.expr(node)                                 # type: ignore[attr-defined]
            self.check_store(v, kt, node, f"a key of map {ref.name!r}",  # type: ignore[attr-defined]
                             "or declare the map with a wider key type")
            off = self.temp("key", kt.size)                     # type: ignore[attr-defined]
            self.write(Place(None, off, kt, "stack"), v, node)  # type: ignore[attr-defined]
            return FrameAddr(off)
        p = self.place_of(node)                                    # type: ignore[attr-defined]
        if not isinstance(p, Place) or p.type != kt or p.space not in ("stack", "map"):
            raise self.error(f"map {ref.name!r} needs a {getattr(kt, '__name__', kt)!r} key",  # type: ignore[attr-defined]
                             node, "build the key in a struct local first")
        return self.addr_arg(p)                                 # type: ignore[attr-defined]

    def value_arg(self, ref: MapRef, node: ast.expr) -> Any:
        """The address of a value to store."""
        vt = ref.decl.value
        if isinstance(vt, T.IntType):
            v = self.expr(node)                                 # type: ignore[attr-defined]
            self.check_store(v, vt, node, f"a value of map {ref.name!r}",  # type: ignore[attr-defined]
                             "or declare the map with a wider value type")
            off = self.temp("value", vt.size)                   # type: ignore[attr-defined]
            return off, v
        cls = self.struct_class(node)                           # type: ignore[attr-defined]
        if cls is not None and cls is vt:                       # m[k] = Value(f=...)
            built = Place(None, self.temp("mapstruct", T.sizeof(vt)), vt, "stack")  # type: ignore[attr-defined]
            self.assign_place(built, node, node)                # type: ignore[attr-defined]
            return None, FrameAddr(built.off)
        p = self.place_of(node) if cls is None else None        # type: ignore[attr-defined]
        if not isinstance(p, Place) or p.space not in ("stack", "map") or \
                self.object_size(p.type) != T.sizeof(vt):       # type: ignore[attr-defined]
            raise self.error(f"map {ref.name!r} stores {getattr(vt, '__name__', vt)!r} values",  # type: ignore[attr-defined]
                             node, "store a struct local of that type")
        return None, self.addr_arg(p)                           # type: ignore[attr-defined]

    def lookup(self, ref: MapRef, key: ast.expr, pre: Any = None) -> VReg:
        """``map_lookup_elem``: a nullable pointer to the value."""
        if not ref.decl.keyed:
            raise self.error(f"map {ref.name!r} has no keys", key)  # type: ignore[attr-defined]
        k = self.key_arg(ref, key, pre)
        dst = self.map_lookup(ref, k)                           # type: ignore[attr-defined]
        self.note_map_pointer(dst, ref)                         # type: ignore[attr-defined]
        return dst

    def map_read(self, ref: MapRef, key: ast.expr, default: Optional[ast.expr], node: Any) -> VReg:
        """``m[k]`` / ``m.get(k, default)`` for integer values."""
        vt = ref.decl.value
        if not isinstance(vt, T.IntType):
            raise self.error(f"map {ref.name!r} holds {getattr(vt, '__name__', vt)!r} values",  # type: ignore[attr-defined]
                             node, f"use p = {ref.name}.get(key), check p, then read p.field")
        d = self.expr(default) if default is not None else 0   # type: ignore[attr-defined]
        ptr = self.lookup(ref, key)
        res = self.vreg(vt)                                     # type: ignore[attr-defined]
        self.convert_into(res, self.convert(d, vt))             # type: ignore[attr-defined]
        done = self.label("mapget")                             # type: ignore[attr-defined]
        self.emit("branch", name="eq", a=ptr, b=0, target=done)  # type: ignore[attr-defined]
        got = self.read(Place(ptr, 0, vt, "map"), node)         # type: ignore[attr-defined]
        self.convert_into(res, got)                             # type: ignore[attr-defined]
        self.emit("label", name=done)                           # type: ignore[attr-defined]
        return res

    def map_store(self, ref: MapRef, key: ast.expr, value: ast.expr, node: Any) -> None:
        """``m[k] = v``."""
        off, v = self.value_arg(ref, value)
        k = self.key_arg(ref, key)
        if off is not None:
            self.write(Place(None, off, ref.decl.value, "stack"), v, node)  # type: ignore[attr-defined]
            v = FrameAddr(off)
        self.map_update_elem(ref, k, v, 0)                      # type: ignore[attr-defined]
        self.note_store(ref, node)                              # type: ignore[attr-defined]

    def map_update(self, ref: MapRef, key: ast.expr, op: ast.operator, value: ast.expr,
                   node: Any) -> None:
        """``m[k] op= v``: in place when present (atomically unless the map is per-CPU:
        :meth:`atomic_update`), else inserted as ``0 op v``."""
        vt = ref.decl.value
        if not isinstance(vt, T.IntType):
            raise self.error(f"map {ref.name!r} holds {getattr(vt, '__name__', vt)!r} values",  # type: ignore[attr-defined]
                             node, "update a field through p = m.get(k)")
        v = self.convert(self.expr(value), vt)                  # type: ignore[attr-defined]
        k = self.key_arg(ref, key)
        ptr = self.vreg(PtrType(vt, "map", ref.decl.per_cpu))  # type: ignore[attr-defined]
        place = Place(ptr, 0, vt, "map")
        if not ref.decl.per_cpu:
            self.check_atomic(place, op, node)                  # refused before any code
        self.emit("helper", dst=ptr, name="map_lookup_elem", args=(MapFd(ref.name), k))  # type: ignore[attr-defined]
        init, done = self.label("insert"), self.label("updated")  # type: ignore[attr-defined]
        self.emit("branch", name="eq", a=ptr, b=0, target=init)  # type: ignore[attr-defined]
        if not ref.decl.per_cpu:
            self.atomic_update(place, op, v, node)
        else:
            old = self.read(place, node)                        # type: ignore[attr-defined]
            self.write(place, self.binop(op, old, v, node), node)  # type: ignore[attr-defined]
        if ref.decl.kind in ("array", "percpu_array"):
            # every index below max_entries exists: a miss is an index out of range,
            # which an insert could not fix either
            self.emit("label", name=init)                       # type: ignore[attr-defined]
            self.emit("label", name=done)                       # type: ignore[attr-defined]
            return
        self.emit("jump", target=done)                          # type: ignore[attr-defined]
        self.emit("label", name=init)                           # type: ignore[attr-defined]
        if isinstance(op, (ast.Add, ast.BitOr, ast.BitXor)):
            first: Operand = v                                  # 0 op v
        else:
            first = self.binop(op, self.load_const(0, node, vt), v, node)  # type: ignore[attr-defined]
        off = self.temp("value", vt.size)                       # type: ignore[attr-defined]
        self.write(Place(None, off, vt, "stack"), first, node)  # type: ignore[attr-defined]
        # the key is still in its frame slot (nothing above writes "key" temps)
        self.map_update_elem(ref, k, FrameAddr(off), BPF_NOEXIST)  # type: ignore[attr-defined]
        self.emit("label", name=done)                           # type: ignore[attr-defined]
        self.note_insert(ref, node)                             # type: ignore[attr-defined]

    def map_setdefault(self, ref: MapRef, node: ast.Call) -> VReg:
        """``m.setdefault(k[, default])``: a pointer to the value of ``k``, never None.
        A miss inserts the default (zeroed without one) with ``BPF_NOEXIST`` and looks
        up again: when another CPU inserted the key in between, the insert fails with
        EEXIST and the second lookup finds that CPU's value. When the second lookup
        misses too (the map is full, or another CPU deleted the key at that moment;
        for arrays: an index out of range) the pointer goes to a copy of the default in
        this CPU's slot of the module's scratch map
        (:data:`pybpf.compiler.unit.DEFAULTS_MAP`): the program goes on, and what it writes there is not stored. (A map value, not the
        stack, so every access valid on the real value is valid there too. The lookup
        of that slot cannot miss; the verifier still wants a branch for a miss, which
        returns 0.)"""
        decl = ref.decl
        if not 1 <= len(node.args) <= 2 or node.keywords:
            raise self.error("setdefault() takes a key and an optional default value", node)  # type: ignore[attr-defined]
        if self.reserving:                                      # type: ignore[attr-defined]
            raise self.error("setdefault() inside a 'with ....reserve()' block", node,  # type: ignore[attr-defined]
                             "call it before the block (its impossible miss branch returns, "
                             "which would leave the record neither sent nor discarded)")
        vt = decl.value
        slot = Place(None, self.alloc(T.sizeof(vt)), vt, "stack")  # type: ignore[attr-defined]
        if len(node.args) == 2:                                 # evaluated first, as in Python
            d = node.args[1]
            if isinstance(vt, T.IntType):
                v = self.expr(d)                                # type: ignore[attr-defined]
                self.check_store(v, vt, d, f"a value of map {ref.name!r}",  # type: ignore[attr-defined]
                                 "or declare the map with a wider value type")
                self.write(slot, v, d)                          # type: ignore[attr-defined]
            elif self.struct_class(d) is vt:                    # type: ignore[attr-defined]
                self.assign_place(slot, d, d)                   # type: ignore[attr-defined]
            else:
                p = self.place_of(d)                            # type: ignore[attr-defined]
                if not (isinstance(p, Place) and p.space in ("stack", "map") and p.type is vt):
                    raise self.error(f"map {ref.name!r} stores "  # type: ignore[attr-defined]
                                     f"{getattr(vt, '__name__', vt)!r} values", d,
                                     f"pass a {getattr(vt, '__name__', vt)}(...) or a struct "
                                     "local of that type")
                self.copy(slot, p, d)                           # type: ignore[attr-defined]
        k = self.key_arg(ref, node.args[0])
        self.loc = self.src.loc(node)                           # type: ignore[attr-defined]
        ptr = self.vreg(PtrType(vt, "map", decl.per_cpu))       # type: ignore[attr-defined]
        done = self.label("found")                              # type: ignore[attr-defined]
        self.emit("helper", dst=ptr, name="map_lookup_elem", args=(MapFd(ref.name), k))  # type: ignore[attr-defined]
        self.emit("branch", name="ne", a=ptr, b=0, target=done)  # type: ignore[attr-defined]
        if len(node.args) == 1:
            self.zero(slot)                                     # type: ignore[attr-defined]
        if decl.kind not in ("array", "percpu_array"):          # array entries all exist
            self.map_update_elem(ref, k, FrameAddr(slot.off), BPF_NOEXIST)  # type: ignore[attr-defined]
            self.emit("helper", dst=ptr, name="map_lookup_elem",  # type: ignore[attr-defined]
                      args=(MapFd(ref.name), k))
            self.emit("branch", name="ne", a=ptr, b=0, target=done)  # type: ignore[attr-defined]
        scratch = self.unit.defaults_map(T.sizeof(vt))          # type: ignore[attr-defined]
        zero = self.temp("key", 4)                              # type: ignore[attr-defined]
        self.emit("store", base=None, off=zero, size=4, a=0)    # type: ignore[attr-defined]
        self.emit("helper", dst=ptr, name="map_lookup_elem",    # type: ignore[attr-defined]
                  args=(MapFd(scratch), FrameAddr(zero)))
        found = self.label("scratch")                           # type: ignore[attr-defined]
        self.emit("branch", name="ne", a=ptr, b=0, target=found)  # type: ignore[attr-defined]
        self.emit("ret", a=0)                                   # type: ignore[attr-defined]
        self.emit("label", name=found)                          # type: ignore[attr-defined]
        self.copy(Place(ptr, 0, vt, "map"), slot, node)         # type: ignore[attr-defined]
        self.emit("label", name=done)                           # type: ignore[attr-defined]
        self.nonnull_ids.add(ptr.id)                            # type: ignore[attr-defined]
        self.note_insert(ref, node)                             # type: ignore[attr-defined]
        self.note_map_pointer(ptr, ref)                         # type: ignore[attr-defined]
        return ptr

    def shared_value(self, place: Place) -> bool:
        """True when ``place`` is in a map value that other CPUs may update at the same
        time (a hash or array map that is not per-CPU)."""
        b = place.base
        return place.space == "map" and b is not None and isinstance(b.type, PtrType) \
            and not b.type.private

    def check_atomic(self, place: Place, op: ast.operator, node: Any) -> None:
        """Refuse ``place op= v`` when it cannot be one atomic instruction."""
        t = place.type
        sym = _OP_SYMBOLS.get(type(op), "?")
        what = ast.unparse(node.target) if isinstance(node, ast.AugAssign) else "this value"
        hint = (f"use a per-CPU map, or write {what} = {what} {sym} ... to accept a plain "
                "read and write")
        if type(op) not in _ATOMIC_OPS:
            raise self.error(f"'{sym}=' on a shared map value cannot be atomic: an update "  # type: ignore[attr-defined]
                             "another CPU makes in between would be lost", node,
                             "only += -= |= &= ^= are atomic; " + hint)
        if not isinstance(t, T.IntType) or t.bits not in (32, 64) or place.bitfield:
            name = getattr(t, "name", repr(t))
            raise self.error(f"{what} is a {name}: BPF has atomic updates of 32- and 64-bit "  # type: ignore[attr-defined]
                             "values only, and a plain one on a shared map value loses "
                             "updates other CPUs make at the same time", node,
                             "make it a u32 or u64, " + hint)

    def atomic_update(self, place: Place, op: ast.operator, value: Operand, node: Any) -> None:
        """``place op= value`` as one atomic instruction (``-=`` adds the negation;
        ``|=``, ``&=``, ``^=`` need Linux 5.12); refused when there is none."""
        self.check_atomic(place, op, node)
        self.atomic_op(place, _ATOMIC_OPS[type(op)], value,    # type: ignore[attr-defined]
                       isinstance(op, ast.Sub))

    def map_delete(self, ref: MapRef, key: ast.expr) -> None:
        """``del m[k]``."""
        k = self.key_arg(ref, key)
        self.map_delete_elem(ref, k)                            # type: ignore[attr-defined]

    def map_method(self, ref: MapRef, method: str, node: ast.Call) -> Any:
        """``m.get(k[, default])``, ``events.output(e)``, ``stacks.stackid(user=False)``."""
        decl = ref.decl
        if method == "setdefault" and decl.keyed:
            return self.map_setdefault(ref, node)
        if method == "get" and decl.keyed:
            if not 1 <= len(node.args) <= 2 or node.keywords:
                raise self.error("get() takes a key and an optional default", node)  # type: ignore[attr-defined]
            if len(node.args) == 2:
                return self.map_read(ref, node.args[0], node.args[1], node)
            return self.lookup(ref, node.args[0])
        if method in ("push", "pop", "peek") and isinstance(decl, QueueMap):
            vt = decl.value
            if not isinstance(vt, T.IntType):
                raise self.error("queues of structs are not supported in programs yet", node)  # type: ignore[attr-defined]
            want = 1 if method == "push" else (0, 1)
            if len(node.args) not in ((want,) if isinstance(want, int) else want) or node.keywords:
                raise self.error(f"{method}() takes {'a value' if method == 'push' else 'an optional default'}",  # type: ignore[attr-defined]
                                 node)
            off = self.temp("value", vt.size)                   # type: ignore[attr-defined]
            ret = self.vreg(T.i64)                              # type: ignore[attr-defined]
            if method == "push":
                v = self.expr(node.args[0])                     # type: ignore[attr-defined]
                self.check_store(v, vt, node.args[0], f"a value of queue {ref.name!r}",  # type: ignore[attr-defined]
                                 "or declare the queue with a wider value type")
                self.write(Place(None, off, vt, "stack"), v, node)  # type: ignore[attr-defined]
                self.emit("helper", dst=ret, name="map_push_elem",  # type: ignore[attr-defined]
                          args=(MapFd(ref.name), FrameAddr(off), 0))
                return ret
            d = self.expr(node.args[0]) if node.args else 0     # type: ignore[attr-defined]
            res = self.vreg(vt)                                 # type: ignore[attr-defined]
            self.convert_into(res, self.convert(d, vt))        # type: ignore[attr-defined]
            self.emit("helper", dst=ret, name=f"map_{method}_elem",  # type: ignore[attr-defined]
                      args=(MapFd(ref.name), FrameAddr(off)))
            done = self.label("empty")                          # type: ignore[attr-defined]
            self.emit("branch", name="ne", a=ret, b=0, target=done)  # type: ignore[attr-defined]
            self.convert_into(res, self.read(Place(None, off, vt, "stack"), node))  # type: ignore[attr-defined]
            self.emit("label", name=done)                       # type: ignore[attr-defined]
            return res
        if method == "output" and isinstance(decl, (RingBuf, PerfEventArray)):
            if len(node.args) != 1 or node.keywords:
                raise self.error("output() takes one struct", node)  # type: ignore[attr-defined]
            p = self.place_of(node.args[0])                        # type: ignore[attr-defined]
            if not isinstance(p, Place) or p.space not in ("stack", "map"):
                raise self.error("output() sends a struct local or map value", node.args[0])  # type: ignore[attr-defined]
            if p.type is not decl.event:
                raise self.error(f"map {ref.name!r} carries {getattr(decl.event, '__name__', decl.event)}"  # type: ignore[attr-defined]
                                 f" records, not {getattr(p.type, '__name__', p.type)}", node.args[0])
            size = T.sizeof(p.type)
            dst = self.vreg(T.i64)                              # type: ignore[attr-defined]
            if isinstance(decl, RingBuf):
                return self.ring_output(ref, self.addr_arg(p), size)  # type: ignore[attr-defined]
            ctx = self.need_ctx(node)
            return self.perf_output(dst, ref, ctx, self.addr_arg(p), size)  # type: ignore[attr-defined]
        if method == "stackid" and isinstance(decl, StackTraceMap):
            user = False
            for kw in node.keywords:
                if kw.arg != "user":
                    raise self.error(f"stackid() has no argument {kw.arg!r}", node)  # type: ignore[attr-defined]
                if isinstance(kw.value, ast.Constant) and type(kw.value.value) is bool:
                    user = kw.value.value                      # stackid(user=True)
                else:
                    user = bool(self.constant_value(kw.value))  # type: ignore[attr-defined]
            return self.stack_id(ref, self.need_ctx(node), user)  # type: ignore[attr-defined]
        raise self.error(f"{type(decl).__name__} has no method {method!r} in programs", node,  # type: ignore[attr-defined]
                         "maps support m[k], m[k] = v, m[k] += v, del m[k], k in m, m.get(k), "
                         "m.setdefault(k); "
                         "ring/perf buffers .output(e); stack maps .stackid(); queues "
                         ".push(v), .pop(), .peek()")

    def reserve_block(self, s: ast.With) -> None:
        """``with events.reserve() as e:``: the record is reserved in the ring buffer
        itself (no 512-byte stack limit), zeroed, filled by the block and submitted when
        the block ends; when the ring is full the block is skipped and the drop counted
        (Linux 5.8)."""
        if len(s.items) != 1 or not isinstance(s.items[0].optional_vars, ast.Name):
            raise self.error("write 'with ring.reserve() as e:'", s)  # type: ignore[attr-defined]
        call = s.items[0].context_expr
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                and call.func.attr == "reserve" and not call.args and not call.keywords):
            raise self.error("only 'with ring.reserve() as e:' blocks are supported", s)  # type: ignore[attr-defined]
        ref = self.value(call.func.value)                       # type: ignore[attr-defined]
        if not (isinstance(ref, MapRef) and isinstance(ref.decl, RingBuf)):
            raise self.error("reserve() is a ring buffer method", call)  # type: ignore[attr-defined]
        name = s.items[0].optional_vars.id
        if name in self.locals or name in self.objects:         # type: ignore[attr-defined]
            raise self.error(f"{name!r} is already a local", s)  # type: ignore[attr-defined]
        t = ref.decl.event
        size = T.sizeof(t)
        self.loc = self.src.loc(s)                              # type: ignore[attr-defined]
        ptr, full, end = self.ring_reserve(ref, t, size)        # type: ignore[attr-defined]
        self.locals[name] = ptr                                 # type: ignore[attr-defined]
        self.nonnull.add(name)                                  # type: ignore[attr-defined]
        self.reserving += 1                                     # type: ignore[attr-defined]
        self.body(s.body)                                       # type: ignore[attr-defined]
        self.reserving -= 1                                     # type: ignore[attr-defined]
        del self.locals[name]                                   # type: ignore[attr-defined]
        self.nonnull.discard(name)                              # type: ignore[attr-defined]
        self.loc = self.src.loc(s)                              # type: ignore[attr-defined]
        self.ring_submit(ref, ptr, size, full, end)             # type: ignore[attr-defined]

    def need_ctx(self, node: Any) -> VReg:
        """The context register (for helpers that take it)."""
        if self.ctx is None:                                    # type: ignore[attr-defined]
            raise self.error("this needs the program's context, which only a program and "  # type: ignore[attr-defined]
                             "the functions it calls (with at most 4 parameters) have", node,
                             "call it in the decorated function")
        return self.ctx.reg                                     # type: ignore[attr-defined]

    # -- helpers with destinations ------------------------------------------------------
    def dest_type(self, name: str, node: ast.Call) -> Any:
        """The type of a new local assigned from destination helper ``name``."""
        if name == "comm":
            return T.char[16]
        if name in ("probe_read_user_str", "probe_read_kernel_str"):
            if len(node.args) != 2:
                raise self.error(f"{name}() into a new local needs its size", node,  # type: ignore[attr-defined]
                                 f"write {name}(ptr, 64), or assign to a char[N] field")
            return T.char[self.constant_value(node.args[1])]   # type: ignore[attr-defined]
        return self.type_arg(node, 1)

    def type_arg(self, node: ast.Call, i: int) -> Any:
        """The language type named by argument ``i`` of a call."""
        if len(node.args) <= i:
            raise self.error("missing type argument", node, "e.g. probe_read_kernel(ptr, u64)")  # type: ignore[attr-defined]
        arg = node.args[i]
        t = None
        if isinstance(arg, ast.Name):
            t = self.src.globals.get(arg.id, T.INT_TYPES.get(arg.id))  # type: ignore[attr-defined]
        elif isinstance(arg, ast.Subscript):
            try:
                t = eval(compile(ast.Expression(arg), "<type>", "eval"),  # noqa: S307 (a type expression)
                         dict(self.src.globals))                 # type: ignore[attr-defined]
            except Exception:
                t = None
        if not (isinstance(t, (T.IntType, T.ArrayType)) or T.is_struct(t)):
            raise self.error("expected a type (u32, char[16], a Struct)", arg)  # type: ignore[attr-defined]
        return t

    def dest_call(self, name: str, node: ast.Call, dst: Place) -> None:
        """Call destination helper ``name`` writing into ``dst``."""
        if dst.space not in ("stack", "map"):
            raise self.error(f"{name}() must write into a struct local, its field, or a map "  # type: ignore[attr-defined]
                             "value", node)
        size = self.object_size(dst.type)                       # type: ignore[attr-defined]
        if name == "comm":
            if node.args:
                raise self.error("comm() takes no arguments", node)  # type: ignore[attr-defined]
            self.emit("helper", dst=self.vreg(T.i64), name="get_current_comm",  # type: ignore[attr-defined]
                      args=(self.addr_arg(dst), min(size, 16)))  # type: ignore[attr-defined]
            return
        if not node.args:
            raise self.error(f"{name}() needs an address", node)  # type: ignore[attr-defined]
        ptr = self.address(node.args[0])                        # type: ignore[attr-defined]
        if name.endswith("_str"):
            if not (isinstance(dst.type, T.ArrayType) and dst.type.is_string):
                raise self.error(f"{name}() writes a char[N], not {dst.type!r}", node)  # type: ignore[attr-defined]
        else:
            want = self.type_arg(node, 1)
            if T.sizeof(want) > size:
                raise self.error(f"{name}() of a {want!r} does not fit in {dst.type!r}", node)  # type: ignore[attr-defined]
            size = T.sizeof(want)
        self.emit("helper", dst=self.vreg(T.i64), name=name,   # type: ignore[attr-defined]
                  args=(self.addr_arg(dst), size, self.convert(ptr, T.u64)))  # type: ignore[attr-defined]

    def syscall_arg(self, name: str, node: ast.Call) -> VReg:
        """``syscall_arg(n)``: the current system call's argument ``n``, and
        ``syscall_nr()``: its number, loaded from the user registers the kernel saved at
        its entry (the task's ``pt_regs``, which ``bpf_task_pt_regs`` returns as a BTF
        pointer the verifier lets us load from)."""
        if name == "syscall_nr":
            if node.args:
                raise self.error("syscall_nr() takes no arguments", node)  # type: ignore[attr-defined]
            off = PT_REGS_SYSCALL_NR
        elif not (len(node.args) == 1 and isinstance(node.args[0], ast.Constant)
                  and type(node.args[0].value) is int
                  and 0 <= node.args[0].value < len(PT_REGS_SYSCALL_ARGS)):
            raise self.error("syscall_arg(n) takes one constant argument number, 0 to "  # type: ignore[attr-defined]
                             f"{len(PT_REGS_SYSCALL_ARGS) - 1}", node)
        else:
            off = PT_REGS_SYSCALL_ARGS[node.args[0].value]
        kind = self.kind                                        # type: ignore[attr-defined]
        if kind is not None and kind.decorator not in _SYSCALL_ARG_KINDS:
            raise self.error(f"{name}() cannot be used in a {kind.decorator} program",  # type: ignore[attr-defined]
                             node, "it reads a system call's saved registers: use it in "
                             "a tracepoint, raw tracepoint, kprobe or fentry program")
        self.loc = self.src.loc(node)                           # type: ignore[attr-defined]
        task = self.vreg(T.u64)                                 # type: ignore[attr-defined]
        self.emit("helper", dst=task, name="get_current_task_btf")  # type: ignore[attr-defined]
        regs = self.vreg(T.u64)                                 # type: ignore[attr-defined]
        self.emit("helper", dst=regs, name="task_pt_regs", args=(task,))  # type: ignore[attr-defined]
        dst = self.vreg(T.u64)                                  # type: ignore[attr-defined]
        self.emit("load", dst=dst, base=regs, off=off, size=8)  # type: ignore[attr-defined]
        return dst

    # -- value-returning helpers ---------------------------------------------------------
    def builtin(self, name: str, node: ast.Call) -> Any:
        """Helpers with arguments that return a value; None if ``name`` is not one."""
        if name in ("probe_read_user", "probe_read_kernel"):
            t = self.type_arg(node, 1)
            if not isinstance(t, T.IntType):
                raise self.error(f"{name}() of a {t!r} must be assigned to a place of that type",  # type: ignore[attr-defined]
                                 node, "e.g. e.buf = probe_read_user(ptr, char[32])")
            ptr = self.address(node.args[0])                    # type: ignore[attr-defined]
            base = self.materialize(ptr, T.u64)                 # type: ignore[attr-defined]
            return self.read(Place(base, 0, t, "user" if name.endswith("user") else "kernel"),  # type: ignore[attr-defined]
                             node)
        if name == "kernel_ptr":
            if len(node.args) != 2 or not (isinstance(node.args[1], ast.Constant)
                                           and isinstance(node.args[1].value, str)):
                raise self.error("kernel_ptr(value, 'type name') takes a value and a type name",  # type: ignore[attr-defined]
                                 node)
            kt = self.kernel_type(node.args[1].value, node)
            v = self.materialize(self.address(node.args[0]), T.u64)  # type: ignore[attr-defined]
            dst = self.vreg(PtrType(kt, "kernel"))              # type: ignore[attr-defined]
            self.emit("mov", dst=dst, a=v)                      # type: ignore[attr-defined]
            return dst
        if name in ("syscall_arg", "syscall_nr"):
            return self.syscall_arg(name, node)
        if name in ("ntohs", "htons", "ntohl", "htonl", "ntohll", "htonll"):
            if len(node.args) != 1:
                raise self.error(f"{name}() takes one value", node)  # type: ignore[attr-defined]
            bits = {"s": 16, "l": 32}.get(name[-1], 64) if not name.endswith("ll") else 64
            return self.byte_swap(self.expr(node.args[0]), bits, node)  # type: ignore[attr-defined]
        if name == "log2":
            if len(node.args) != 1:
                raise self.error("log2() takes one value", node)  # type: ignore[attr-defined]
            return self.log2(self.expr(node.args[0]), node)     # type: ignore[attr-defined]
        if name == "startswith":
            if len(node.args) != 2 or not (isinstance(node.args[1], ast.Constant)
                                           and isinstance(node.args[1].value, str)):
                raise self.error("startswith(s, 'prefix') takes a char array and a literal", node)  # type: ignore[attr-defined]
            return self.bool_value(lambda target, when: self.string_branch(
                node.args[0], node.args[1].value, False, when, target))
        if name == "trace_printk":
            return self.trace_printk(node)
        if name == "strlen":
            if len(node.args) != 1:
                raise self.error("strlen() takes one char array", node)  # type: ignore[attr-defined]
            return self.strlen(node.args[0])
        return None

    def strlen(self, node: ast.expr) -> VReg:
        """The length of the NUL-terminated text in a char array (its size when there is
        no NUL)."""
        p = self.place_of(node)                                 # type: ignore[attr-defined]
        if not (isinstance(p, Place) and isinstance(p.type, T.ArrayType) and p.type.is_string):
            raise self.error("strlen() needs a char[N] value", node)  # type: ignore[attr-defined]
        return self.string_length(p, node)                      # type: ignore[attr-defined]

    def string_branch(self, node: ast.expr, text: str, exact: bool, when: bool,
                      target: str) -> None:
        """Jump to ``target`` if (the char array ``node`` equals / starts with ``text``)
        is ``when``."""
        p = self.place_of(node)                                    # type: ignore[attr-defined]
        if not (isinstance(p, Place) and isinstance(p.type, T.ArrayType) and p.type.is_string):
            raise self.error("string comparisons need a char[N] value", node)  # type: ignore[attr-defined]
        self.string_compare(p, text.encode() + (b"\0" if exact else b""), when, target,  # type: ignore[attr-defined]
                            node)

    def trace_printk(self, node: ast.Call) -> VReg:
        """``trace_printk("fmt", a, b, c)``."""
        if not node.args or not (isinstance(node.args[0], ast.Constant)
                                 and isinstance(node.args[0].value, str)):
            raise self.error("trace_printk() needs a literal format string", node)  # type: ignore[attr-defined]
        if len(node.args) > 4:
            raise self.error("trace_printk() takes at most 3 values", node,  # type: ignore[attr-defined]
                             "use print(), which has no limit")
        args = [self.convert(self.expr(a), T.u64) for a in node.args[1:]]  # type: ignore[attr-defined]
        text = node.args[0].value
        if not text.endswith("\n"):
            text += "\n"
        n = len(text.encode()) + 1
        fmt = Place(None, self.temp("printk", n), T.char[n], "stack")  # type: ignore[attr-defined]
        self.store_string(fmt, text, node)                      # type: ignore[attr-defined]
        dst = self.vreg(T.i64)                                  # type: ignore[attr-defined]
        self.emit("helper", dst=dst, name="trace_printk",       # type: ignore[attr-defined]
                  args=(FrameAddr(fmt.off), n, *args))
        return dst

    # -- print() ------------------------------------------------------------------------
    def print_call(self, node: ast.Call) -> None:
        """``print(...)``: a record (site id, values) in the print ring buffer, formatted
        in user space with Python's own formatting."""
        sep, end = " ", "\n"
        for kw in node.keywords:
            if kw.arg in ("sep", "end") and isinstance(kw.value, ast.Constant) and \
                    isinstance(kw.value.value, str):
                if kw.arg == "sep":
                    sep = kw.value.value
                else:
                    end = kw.value.value
            else:
                raise self.error(f"print() argument {kw.arg!r} is not supported", node,  # type: ignore[attr-defined]
                                 "use sep='...' or end='...' with literal strings")
        pieces: List[Tuple[Any, str, Optional[int]]] = []   # (node or str, spec, conversion)
        for i, arg in enumerate(node.args):
            if i:
                pieces.append((sep, "", None))
            if isinstance(arg, ast.JoinedStr):
                for v in arg.values:
                    if isinstance(v, ast.Constant):
                        pieces.append((str(v.value), "", None))
                    else:
                        assert isinstance(v, ast.FormattedValue)
                        spec = ""
                        if v.format_spec is not None:
                            if not all(isinstance(x, ast.Constant) for x in v.format_spec.values):  # type: ignore[attr-defined]
                                raise self.error("format specs must be literal", v)  # type: ignore[attr-defined]
                            spec = "".join(str(x.value) for x in v.format_spec.values)  # type: ignore[attr-defined]
                        pieces.append((v.value, spec, v.conversion if v.conversion != -1 else None))
            elif isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                pieces.append((arg.value, "", None))
            else:
                pieces.append((arg, "", None))
        # evaluate values first, then lay out the record
        values: List[Tuple[str, Any, Any, str, Optional[int]]] = []
        for piece, spec, conv in pieces:
            if isinstance(piece, str):
                values.append(("lit", piece, None, "", None))
                continue
            v = self.place_of(piece)                               # type: ignore[attr-defined]
            if isinstance(v, Place) and isinstance(v.type, T.ArrayType) and v.type.is_string:
                values.append(("str", v, None, spec, conv))
            else:
                iv = self.as_int(v, piece)                      # type: ignore[attr-defined]
                t = self.type_of(iv)                            # type: ignore[attr-defined]
                values.append(("int", self.materialize(iv, t), t, spec, conv))  # type: ignore[attr-defined]
        size = 8
        parts: List[Any] = []
        layout: List[Tuple[int, Any, Any]] = []
        for kind, v, t, spec, conv in values:
            if kind == "lit":
                if parts and isinstance(parts[-1], str):
                    parts[-1] += v
                else:
                    parts.append(v)
            elif kind == "int":
                parts.append(("int", size, 8, bool(getattr(t, "signed", False)), spec, conv))
                layout.append((size, "int", v))
                size += 8
            else:
                n = v.type.count
                parts.append(("str", size, n, False, spec, conv))
                layout.append((size, "str", v))
                size += (n + 7) // 8 * 8
        if size > 480:
            raise self.error(f"this print() needs a {size}-byte record", node,  # type: ignore[attr-defined]
                             "print fewer or shorter strings")
        unit = self.unit                                        # type: ignore[attr-defined]
        if PRINT_MAP not in unit.maps:
            unit.maps[PRINT_MAP] = RingBuf(T.u8, size=256 * 1024, name=PRINT_MAP)
            unit.map_names[id(unit.maps[PRINT_MAP])] = PRINT_MAP
        site = unit.add_print(tuple(parts), size, self.loc, end)  # type: ignore[attr-defined]
        base = self.temp("print", size)                         # type: ignore[attr-defined]
        self.emit("store", base=None, off=base, size=8, a=site.id)  # type: ignore[attr-defined]
        for off, kind, v in layout:
            if kind == "int":
                self.emit("store", base=None, off=base + off, size=8, a=v)  # type: ignore[attr-defined]
            else:
                dst = Place(None, base + off, v.type, "stack")
                self.emit("zero", off=base + off, size=(v.type.count + 7) // 8 * 8)  # type: ignore[attr-defined]
                self.copy(dst, v, node)                         # type: ignore[attr-defined]
        self.ring_output(MapRef(unit.maps[PRINT_MAP], PRINT_MAP), FrameAddr(base), size)  # type: ignore[attr-defined]


