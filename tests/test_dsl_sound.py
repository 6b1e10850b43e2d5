"""Property test of the language's typing rules with maps and pointers.

Hypothesis generates programs that mix literals, casts, locals of every width, map
values (hash and array maps of u8..u64 and i16..i64 values, and a struct map with
fields of mixed widths) and pointers to them: ``p = m.get(k)`` with ``if p is not
None:`` / ``if p is None: return ...``, ``p = m.setdefault(k)``, reads ``p[0]`` and
``p.field``, stores ``m[k] = v`` and ``p.field = v``, atomic updates ``m[k] += v`` and
``p.field |= v``, ``k in m``, ``del m[k]``, over maps that start with random contents.

Every program is either accepted or refused, as the rules of docs/language.md ("Types"
and "Maps") say, and this file decides which by itself (it calls no compiler code to
decide). An accepted program must load in the kernel (a verifier refusal is a failure
that shows the source and the verifier's complaint: the compiler must refuse what the
kernel would) and must return, in the kernel (BPF_PROG_TEST_RUN, full 64-bit r0) and on
:mod:`pybpf.vm`, what the reference evaluation returns (:mod:`pybpf.dsl.semantics` for
the integers, a model of the maps here), leaving the maps with the contents the model
has. A refused program holds one bad line (pointer arithmetic or comparison, a pointer
stored, returned or converted, a value pointer read without its None check, a pointer
into a hash map read or written after a store into or delete from that map, a literal
that does not fit, an 8/16-bit or non-atomic compound update of a shared map value, an
annotated local that cannot hold ``x op e``, a typed value stored into a map value, a
field or a map key whose type does not hold it): it must raise a :class:`CompileError`
located at that line.
"""

# no "from __future__ import annotations": Rec's field annotations must be types

import copy
import os
import struct
from typing import Any, Dict, List, Optional, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pybpf.compiler.unit import Unit
from pybpf.dsl import ArrayMap, CompileError, HashMap, Struct, i16, i32, i64, u8, u32, u64
from pybpf.dsl import semantics as S
from pybpf.dsl.compiler import compile_functions
from pybpf.dsl import _module_from_source

from bpfenv import BPF_UNAVAILABLE
from test_dsl_diff import ARITH, TYPES, _holds, _into, expressions

#: examples per test; two tests, so 2 x this (ISSUE: at least 2,000 in CI)
EXAMPLES = int(os.environ.get("PYBPF_DSL_SOUND_EXAMPLES", "1000"))


class Rec(Struct):
    """A map value with fields of mixed widths (C layout: a@0 b@2 c@4 d@8 e@16)."""
    a: u8
    b: i16
    c: u32
    d: u64
    e: i64


#: the Rec layout written out independently of pybpf.dsl.structs
_REC = struct.Struct("<BxhIQq")
_REC_FIELDS = (("a", "u8"), ("b", "i16"), ("c", "u32"), ("d", "u64"), ("e", "i64"))

#: name -> (kind, value type: a type name or "Rec", max_entries); keys are u32 0..4, so
#: index 4 is out of range for the arrays and h32 (3 entries) can be full
MAPS: Dict[str, Tuple[str, str, int]] = {
    "h8": ("hash", "u8", 4),
    "a16": ("array", "i16", 4),
    "h32": ("hash", "u32", 3),
    "ai32": ("array", "i32", 4),
    "h64": ("hash", "i64", 8),
    "a64": ("array", "u64", 4),
    "hs": ("hash", "Rec", 4),
}
KEYS = 5
_DSL_TYPES = {"u8": u8, "i16": i16, "u32": u32, "i32": i32, "u64": u64, "i64": i64,
              "Rec": Rec}
ATOMIC = ("+", "-", "|", "&", "^")           # compound assignments that have an atomic form
NOT_ATOMIC = ("*", "//", "%", "<<", ">>")


def _namespace() -> Dict[str, Any]:
    ns: Dict[str, Any] = {"Rec": Rec}
    for name, (kind, vt, n) in MAPS.items():
        value = _DSL_TYPES[vt]
        ns[name] = HashMap(u32, value, max_entries=n) if kind == "hash" else ArrayMap(value, n)
    return ns


def _value_size(vt: str) -> int:
    return _REC.size if vt == "Rec" else S.WIDTH[vt] // 8


def _encode(vt: str, value: Any) -> bytes:
    if vt == "Rec":
        return _REC.pack(*(value[f] for f, _ in _REC_FIELDS))
    return (value % (1 << S.WIDTH[vt])).to_bytes(S.WIDTH[vt] // 8, "little")


def _decode(vt: str, raw: bytes) -> Any:
    if vt == "Rec":
        return dict(zip((f for f, _ in _REC_FIELDS), _REC.unpack(bytes(raw))))
    return S.wrap(vt, int.from_bytes(bytes(raw), "little"))


def _zero(vt: str) -> Any:
    return {f: 0 for f, _ in _REC_FIELDS} if vt == "Rec" else 0


# -- the model -------------------------------------------------------------------------
class Ptr:
    """A pointer local: where it points (a map entry, the setdefault scratch slot, or
    None), whether the compiler knows it is not None here, and whether reading it is
    still meaningful (see ``stale``)."""

    def __init__(self, name: str, map_name: str, key: Optional[int], nullable: bool) -> None:
        self.name, self.map, self.key = name, map_name, key
        self.nullable = nullable        # from get(): must be checked before use
        self.checked = not nullable
        # A pointer into a hash map is stale after a store into or delete from that map
        # (any key, on any path that reaches here): the kernel replaces a hash element
        # on update and frees it on delete, so the language refuses a read or write
        # through it at the use ("Pointers after an update"); accepted programs do not
        # use it, and the "stale" refusal does.
        self.stale = False
        self.misused = False            # made for a refused line (see Program.pointer)
        # A pointer at the setdefault scratch slot (key None) whose slot a later miss
        # refilled: one per-CPU scratch value serves every setdefault() of the module,
        # so the slot now holds the later default, laid out as the later map's value.
        # Accepted as the language is; the model does not follow the bytes, so the
        # generator stops using it.
        self.shadowed = False

    @property
    def vt(self) -> str:
        return MAPS[self.map][1]


class Model:
    """The maps' contents and the program's state while generating: every statement is
    evaluated as it is generated (``live`` is False once the program has returned)."""

    def __init__(self, contents: Dict[str, Dict[int, Any]]) -> None:
        self.maps = copy.deepcopy(contents)
        self.scratch: Any = None
        self.env: Dict[str, Tuple[str, int]] = {}
        self.ptrs: List[Ptr] = []
        self.live = True
        self.result: Optional[Tuple[str, int]] = None

    def present(self, m: str, k: int) -> bool:
        return k in self.maps[m]

    def room(self, m: str, k: int) -> bool:
        kind, _, n = MAPS[m]
        return k in self.maps[m] or (kind == "hash" and len(self.maps[m]) < n)

    def read(self, p: Ptr) -> Any:
        if p.key is None:
            return self.scratch
        return self.maps[p.map].get(p.key, _zero(p.vt))

    def target(self, p: Ptr) -> Any:
        """The mutable container of ``p``'s value: (dict, key)."""
        if p.key is None:
            return self, "scratch"
        return self.maps[p.map], p.key

    def store(self, m: str, k: int, value: Any) -> None:
        if self.live and self.room(m, k):
            self.maps[m][k] = value
        if MAPS[m][0] == "hash":
            self.invalidate(m)

    def invalidate(self, m: str) -> None:
        for p in self.ptrs:
            if p.map == m:
                p.stale = True

    def usable(self) -> List[Ptr]:
        return [p for p in self.ptrs
                if p.checked and not p.stale and not p.misused and not p.shadowed]

    def atoms(self, draw: st.DrawFn) -> Dict[str, Tuple[str, int]]:
        """Leaves an expression may use: integer locals, map reads, ``k in m`` and
        reads through checked pointers."""
        out = dict(self.env)
        for _ in range(draw(st.integers(0, 3))):
            m = draw(st.sampled_from(sorted(MAPS)))
            k = draw(st.integers(0, KEYS - 1))
            vt = MAPS[m][1]
            if vt == "Rec" or draw(st.booleans()):
                out[f"({k} in {m})"] = ("i32", int(self.present(m, k)))
            else:
                out[f"{m}[{k}]"] = (vt, self.maps[m].get(k, 0))
        for p in self.usable():
            if p.vt == "Rec":
                f, ft = draw(st.sampled_from(_REC_FIELDS))
                out[f"{p.name}.{f}"] = (ft, self.read(p)[f] if self.live else 0)
            else:
                out[f"{p.name}[0]"] = (p.vt, self.read(p) if self.live else 0)
        return out


def _fit_literal(draw: st.DrawFn, t: str) -> int:
    bits = S.WIDTH[t]
    low, high = (-(1 << bits - 1), (1 << bits - 1) - 1) if t[0] == "i" else (0, (1 << bits) - 1)
    return draw(st.integers(low, high) | st.sampled_from([low, high, 0, 1]))


def _bad_literal(draw: st.DrawFn, t: str) -> int:
    bits = S.WIDTH[t]
    low, high = (-(1 << bits - 1), (1 << bits - 1) - 1) if t[0] == "i" else (0, (1 << bits) - 1)
    return draw(st.sampled_from([high + 1, low - 1, high + 1000, -(1 << 63)]
                                if low - 1 >= -(1 << 63) else [high + 1, high + 7]))


class Program:
    """Lines of ``def prog(ctx) -> i64:`` being generated, with the model."""

    def __init__(self, draw: st.DrawFn, model: Model) -> None:
        self.draw, self.m = draw, model
        self.lines: List[str] = ["def prog(ctx) -> i64:"]
        self.ints = 0
        self.nptrs = 0
        self.bad_line: Optional[int] = None

    def emit(self, text: str, indent: int = 1) -> int:
        self.lines.append("    " * indent + text)
        return len(self.lines)          # the 1-based line number of ``text``

    def expr(self, depth: int = 2) -> Tuple[str, Tuple[str, int]]:
        return self.draw(expressions(self.m.atoms(self.draw), depth))

    def key(self) -> Tuple[str, int]:
        """A key: a literal, or sometimes a run-time value of a local."""
        d = self.draw
        if self.m.env and d(st.integers(0, 4)) == 0:
            name = d(st.sampled_from(sorted(self.m.env)))
            return f"u32({name}) % {KEYS}", S.wrap("u32", self.m.env[name][1]) % KEYS
        k = d(st.integers(0, KEYS - 1))
        return str(k), k

    def value_for(self, t: str) -> Tuple[str, int]:
        """Text of a value stored into a ``t``: an expression that fits (a literal by its
        value, anything else by its type) or an explicit cast, and the stored value."""
        text, value = self.expr(1)
        return _into(t, text, value[0]), S.wrap(t, value[1])

    # -- statements ----------------------------------------------------------------------
    def declare(self) -> None:
        t = self.draw(st.sampled_from(TYPES))
        value = _fit_literal(self.draw, t)
        name = f"v{self.ints}"
        self.ints += 1
        self.emit(f"{name}: {t} = {value}")
        self.m.env[name] = (t, value)

    def assign_local(self, indent: int) -> None:
        if not self.m.env:
            return self.declare() if indent == 1 else self.map_update(indent)
        name = self.draw(st.sampled_from(sorted(self.m.env)))
        t = self.m.env[name][0]
        if self.draw(st.booleans()):
            text, value = self.value_for(t)
            self.emit(f"{name} = {text}", indent)
            new = value
        else:
            op = self.draw(st.sampled_from(ARITH))
            text, value = self.expr(1)
            result = S.binary(op, self.m.env[name], value)
            if _holds(t, result[0]):
                self.emit(f"{name} {op}= {text}", indent)
            else:
                self.emit(f"{name} = {t}({name} {op} {text})", indent)
            new = S.wrap(t, result[1])
        if self.m.live:
            self.m.env[name] = (t, new)

    def map_store(self, indent: int) -> None:
        m = self.draw(st.sampled_from(sorted(MAPS)))
        ktext, k = self.key()
        vt = MAPS[m][1]
        if vt == "Rec":
            rec = _zero("Rec")
            parts = []
            for f, ft in _REC_FIELDS:
                if self.draw(st.booleans()):
                    text, rec[f] = self.value_for(ft)
                    parts.append(f"{f}={text}")
            self.emit(f"{m}[{ktext}] = Rec({', '.join(parts)})", indent)
            self.m.store(m, k, rec)
            return
        text, value = self.value_for(vt)
        self.emit(f"{m}[{ktext}] = {text}", indent)
        self.m.store(m, k, value)

    def map_update(self, indent: int) -> None:
        m = self.draw(st.sampled_from([n for n, (_, vt, _) in MAPS.items()
                                       if vt != "Rec" and S.WIDTH[vt] >= 32]))
        ktext, k = self.key()
        vt = MAPS[m][1]
        op = self.draw(st.sampled_from(ATOMIC))
        text, value = self.expr(1)
        self.emit(f"{m}[{ktext}] {op}= {text}", indent)
        if self.m.live and self.m.room(m, k):
            old = self.m.maps[m].get(k, 0)      # absent: inserted as 0 op v
            self.m.maps[m][k] = S.wrap(vt, S.binary(op, (vt, old), value)[1])

    def delete(self, indent: int) -> None:
        m = self.draw(st.sampled_from([n for n, spec in MAPS.items() if spec[0] == "hash"]))
        ktext, k = self.key()
        self.emit(f"del {m}[{ktext}]", indent)
        if self.m.live:
            self.m.maps[m].pop(k, None)
        self.m.invalidate(m)

    def through_pointer(self, p: Ptr, indent: int) -> None:
        """A store or atomic update through a checked pointer."""
        if p.vt == "Rec":
            f, ft = self.draw(st.sampled_from(_REC_FIELDS))
            place = f"{p.name}.{f}"
        else:
            f, ft = None, p.vt
            place = f"{p.name}[0]"
        box, key = self.m.target(p)

        def put(value: int) -> None:
            if not self.m.live:
                return
            if key == "scratch":
                if f is None:
                    self.m.scratch = value
                else:
                    self.m.scratch[f] = value
            elif f is None:
                box[key] = value
            else:
                box[key][f] = value

        if S.WIDTH[ft] >= 32 and self.draw(st.booleans()):
            op = self.draw(st.sampled_from(ATOMIC))
            text, value = self.expr(1)
            self.emit(f"{place} {op}= {text}", indent)
            old = self.m.read(p) if self.m.live else 0
            old = old[f] if f is not None and self.m.live else old
            put(S.wrap(ft, S.binary(op, (ft, old), value)[1]))
        else:
            text, value = self.value_for(ft)
            self.emit(f"{place} = {text}", indent)
            put(value)

    def lookup(self) -> None:
        """``p = m.get(k)`` checked one of four ways, or ``p = m.setdefault(k)``."""
        d, model = self.draw, self.m
        m = d(st.sampled_from(sorted(MAPS)))
        ktext, k = self.key()
        name = f"p{self.nptrs}"
        self.nptrs += 1
        if d(st.integers(0, 2)) == 0:
            self.emit(f"{name} = {m}.setdefault({ktext})")
            key: Optional[int] = k
            if model.live and not model.present(m, k):
                if model.room(m, k):
                    model.maps[m][k] = _zero(MAPS[m][1])
                else:                   # full, or an array index out of range
                    key = None
                    for q in model.ptrs:
                        if q.key is None:
                            q.shadowed = True
                    model.scratch = _zero(MAPS[m][1])
            p = Ptr(name, m, key, nullable=False)
            model.ptrs.append(p)
            return
        self.emit(f"{name} = {m}.get({ktext})")
        found = model.live and model.present(m, k)
        p = Ptr(name, m, k, nullable=True)
        model.ptrs.append(p)
        form = d(st.sampled_from(["is not None", "truth", "is None", "not"]))
        if form in ("is None", "not"):
            self.emit(f"if {name} is None:" if form == "is None" else f"if not {name}:")
            text, value = self.expr(2)
            self.emit(f"return {_into('i64', text, value[0])}", 2)
            if model.live and not found:
                model.result, model.live = value, False
            p.checked = True
            return
        self.emit(f"if {name} is not None:" if form == "is not None" else f"if {name}:")
        was_live = model.live
        model.live = was_live and found
        p.checked = True
        for _ in range(d(st.integers(1, 3))):
            self.block_statement(p)
        p.checked = False
        model.live = was_live and model.result is None

    def block_statement(self, p: Ptr) -> None:
        choice = self.draw(st.integers(0, 3))
        if choice == 0 and not p.stale:
            self.through_pointer(p, 2)
        elif choice == 1:
            self.map_update(2)
        elif choice == 2:
            self.map_store(2)
        else:
            self.assign_local(2)

    def statement(self) -> None:
        choice = self.draw(st.sampled_from(["local", "declare", "store", "update", "del",
                                            "lookup", "lookup", "through"]))
        usable = self.m.usable()
        if choice == "declare":
            self.declare()
        elif choice == "local":
            self.assign_local(1)
        elif choice == "store":
            self.map_store(1)
        elif choice == "update":
            self.map_update(1)
        elif choice == "del":
            self.delete(1)
        elif choice == "through" and usable:
            self.through_pointer(self.draw(st.sampled_from(usable)), 1)
        else:
            self.lookup()

    # -- refusals ------------------------------------------------------------------------
    def pointer(self, nullable_ok: bool = True) -> Ptr:
        """A pointer local to misuse: an existing one, or a new ``setdefault()`` one."""
        existing = [p for p in self.m.ptrs if nullable_ok or p.checked]
        if existing and self.draw(st.booleans()):
            return self.draw(st.sampled_from(existing))
        m = self.draw(st.sampled_from(sorted(MAPS)))
        name = f"p{self.nptrs}"
        self.nptrs += 1
        self.emit(f"{name} = {m}.setdefault({self.draw(st.integers(0, KEYS - 1))})")
        p = Ptr(name, m, 0, nullable=False)
        p.misused = True                # the program is refused: no values needed
        self.m.ptrs.append(p)
        return p

    def stale_pointer(self) -> Ptr:
        """A checked pointer into a hash map that a store or delete has made stale: an
        existing one, or a new ``setdefault()`` one followed by a store or delete."""
        d = self.draw
        existing = [p for p in self.m.ptrs if p.stale and p.checked and not p.misused]
        if existing and d(st.booleans()):
            return d(st.sampled_from(existing))
        m = d(st.sampled_from([n for n, spec in MAPS.items() if spec[0] == "hash"]))
        name = f"p{self.nptrs}"
        self.nptrs += 1
        self.emit(f"{name} = {m}.setdefault({d(st.integers(0, KEYS - 1))})")
        p = Ptr(name, m, 0, nullable=False)
        self.m.ptrs.append(p)
        k = d(st.integers(0, KEYS - 1))
        if d(st.booleans()):
            self.emit(f"del {m}[{k}]")
        else:
            self.emit(f"{m}[{k}] = {'Rec()' if MAPS[m][1] == 'Rec' else 0}")
        self.m.invalidate(m)
        return p

    def bad(self) -> str:
        """Emit one line the compiler must refuse; returns what it is (for messages)."""
        d = self.draw
        kind = d(st.sampled_from(["arith", "compare", "store", "annotated", "convert",
                                  "unchecked", "literal", "map_literal", "field_literal",
                                  "narrow_atomic", "not_atomic", "narrow_local", "stale",
                                  "typed_store"]))
        if kind == "arith":
            p = self.pointer()
            op = d(st.sampled_from(ARITH))
            text, _ = self.expr(1)
            form = d(st.sampled_from([f"{p.name} {op} {text}", f"{text} {op} {p.name}",
                                      f"-{p.name}", f"~{p.name}"]))
            self.bad_line = self.emit(f"bad = {form}")
        elif kind == "compare":
            p = self.pointer()
            op = d(st.sampled_from(["==", "!=", "<", "<=", ">", ">="]))
            text, _ = self.expr(1)
            self.bad_line = self.emit(f"bad = {p.name} {op} {text}")
        elif kind == "store":
            p = self.pointer()
            m = d(st.sampled_from([n for n, spec in MAPS.items() if spec[1] != "Rec"]))
            self.bad_line = self.emit(f"{m}[{d(st.integers(0, KEYS - 1))}] = {p.name}")
        elif kind == "annotated":
            p = self.pointer()
            self.bad_line = self.emit(f"bad: {d(st.sampled_from(TYPES))} = {p.name}")
        elif kind == "convert":
            p = self.pointer()
            self.bad_line = self.emit(f"bad = {d(st.sampled_from(TYPES))}({p.name})")
        elif kind == "stale":
            p = self.stale_pointer()
            place = f"{p.name}.{d(st.sampled_from(_REC_FIELDS))[0]}" if p.vt == "Rec" \
                else f"{p.name}[0]"
            form = d(st.sampled_from([f"bad = {place} + 1", f"{place} = 1"]))
            self.bad_line = self.emit(form)
        elif kind == "unchecked":
            m = d(st.sampled_from(sorted(MAPS)))
            name = f"p{self.nptrs}"
            self.nptrs += 1
            self.emit(f"{name} = {m}.get({d(st.integers(0, KEYS - 1))})")
            read = f"{name}.c" if MAPS[m][1] == "Rec" else f"{name}[0]"
            self.bad_line = self.emit(f"bad = {read} + 1")
        elif kind == "literal":
            t = d(st.sampled_from(TYPES))
            self.bad_line = self.emit(f"bad: {t} = {_bad_literal(d, t)}")
        elif kind == "map_literal":
            m = d(st.sampled_from([n for n, spec in MAPS.items() if spec[1] != "Rec"]))
            self.bad_line = self.emit(f"{m}[{d(st.integers(0, KEYS - 1))}] = "
                                      f"{_bad_literal(d, MAPS[m][1])}")
        elif kind == "field_literal":
            p = self.pointer(nullable_ok=False)
            if p.vt == "Rec":
                f, ft = d(st.sampled_from(_REC_FIELDS))
                place = f"{p.name}.{f}"
            else:
                place, ft = f"{p.name}[0]", p.vt
            self.bad_line = self.emit(f"{place} = {_bad_literal(d, ft)}")
        elif kind == "narrow_atomic":
            op = d(st.sampled_from(ATOMIC))
            text, _ = self.expr(1)
            if d(st.booleans()):
                m = d(st.sampled_from(["h8", "a16"]))
                place = f"{m}[{d(st.integers(0, KEYS - 1))}]"
            else:
                p = self.pointer(nullable_ok=False)
                place = f"{p.name}.{d(st.sampled_from(['a', 'b']))}" if p.vt == "Rec" \
                    else f"{p.name}[0]"
                if p.vt != "Rec" and S.WIDTH[p.vt] >= 32:
                    op = d(st.sampled_from(NOT_ATOMIC))     # still refused
            self.bad_line = self.emit(f"{place} {op}= {text}")
        elif kind == "not_atomic":
            m = d(st.sampled_from(sorted(MAPS)))
            op = d(st.sampled_from(NOT_ATOMIC))
            text, _ = self.expr(1)
            place = f"{m}[{d(st.integers(0, KEYS - 1))}]"
            if MAPS[m][1] == "Rec":
                place = f"{self.pointer(nullable_ok=False).name}.d"
            self.bad_line = self.emit(f"{place} {op}= {text}")
        elif kind == "typed_store":
            # a typed value goes only where its type fits, as into an annotated local:
            # a map value, a field, a map key (u32) whose type does not hold it
            where = d(st.sampled_from(["value", "field", "key"]))
            if where == "key":
                dt = "u32"
            elif where == "value":
                m = d(st.sampled_from([n for n, spec in MAPS.items() if spec[1] != "Rec"]))
                dt = MAPS[m][1]
            else:
                p = self.pointer(nullable_ok=False)
                f, dt = d(st.sampled_from(_REC_FIELDS)) if p.vt == "Rec" else (None, p.vt)
            wide = [w for w in TYPES if not _holds(dt, w)]     # never empty: see i64, u64
            name = f"v{self.ints}"
            self.ints += 1
            self.emit(f"{name}: {d(st.sampled_from(wide))} = 0")
            if where == "key":
                m = d(st.sampled_from(sorted(MAPS)))
                line = d(st.sampled_from([f"bad = {name} in {m}", f"p{self.nptrs} = "
                                          f"{m}.get({name})"]))
                self.nptrs += 1
            elif where == "value":
                line = f"{m}[{d(st.integers(0, KEYS - 1))}] = {name}"
            else:
                line = f"{p.name}.{f} = {name}" if f is not None else f"{p.name}[0] = {name}"
            self.bad_line = self.emit(line)
        else:
            # x op= e on an annotated local is x = x op e: refused when the result's type
            # does not fit (u8 += 1 is an i32); the operand is a typed local, not a literal
            t = d(st.sampled_from(["u8", "i8", "u16", "i16", "u32", "i32"]))
            wide = d(st.sampled_from([w for w in TYPES if not _holds(t, S.binary(
                "+", (t, 0), (w, 0))[0])]))
            n = self.ints
            self.ints += 2
            self.emit(f"v{n}: {t} = 0")
            self.emit(f"v{n + 1}: {wide} = 1")
            op = d(st.sampled_from([o for o in ARITH if o not in ("<<", ">>")]))
            self.bad_line = self.emit(f"v{n} {op}= v{n + 1}")
        return kind


@st.composite
def cases(draw: st.DrawFn) -> Tuple[str, Dict[str, Dict[int, Any]], Optional[int],
                                     Optional[Dict[str, Dict[int, Any]]], Optional[int]]:
    """(source, initial map contents, expected r0 or None when refused, final map
    contents, the refused line)."""
    contents: Dict[str, Dict[int, Any]] = {}
    for name, (kind, vt, n) in MAPS.items():
        keys = range(n) if kind == "array" else \
            draw(st.lists(st.integers(0, KEYS - 1), max_size=n, unique=True))
        values = {}
        for k in keys:
            if vt == "Rec":
                values[k] = {f: _fit_literal(draw, ft) for f, ft in _REC_FIELDS}
            else:
                values[k] = _fit_literal(draw, vt) if draw(st.booleans()) else 0
        contents[name] = values
    model = Model(contents)
    prog = Program(draw, model)
    for _ in range(draw(st.integers(0, 2))):
        prog.declare()
    count = draw(st.integers(1, 6))
    # about one program in three holds a bad line, before statement ``refuse_at``
    refuse_at = draw(st.integers(0, count)) if draw(st.integers(0, 2)) == 2 else -1
    for i in range(count):
        if i == refuse_at:
            prog.bad()
        prog.statement()
    if refuse_at == count:
        if draw(st.booleans()):
            prog.bad()
        else:
            p = prog.pointer()
            prog.bad_line = prog.emit(f"return {p.name}")
            return "\n".join(prog.lines) + "\n", contents, None, None, prog.bad_line
    text, value = prog.expr(3)
    prog.emit(f"return {_into('i64', text, value[0])}")    # the declared -> i64
    source = "\n".join(prog.lines) + "\n"
    if prog.bad_line is not None:
        return source, contents, None, None, prog.bad_line
    if model.live:
        model.result = value
    assert model.result is not None
    expected = S.wrap("u64", S.convert(model.result, "i64")[1])
    return source, contents, expected, model.maps, None


# -- running ---------------------------------------------------------------------------
def _compile(source: str) -> Tuple[List[Any], Unit]:
    module = _module_from_source(source, "<dsl-sound>", _namespace())
    unit = Unit()
    _, instructions = compile_functions(module.prog, unit)
    return instructions, unit


class KernelMaps:
    """The maps, created once and reset before each example (a load costs a few ms; a
    map create as much again)."""

    def __init__(self) -> None:
        from pybpf.syscall.bpf import MapType
        from pybpf.syscall.maps import map_create
        self.live: Dict[str, Any] = {}
        for name, (kind, vt, n) in MAPS.items():
            mtype = MapType.HASH if kind == "hash" else MapType.ARRAY
            self.live[name] = map_create(mtype, 4, _value_size(vt), n, name=name)
        self.input = map_create(MapType.ARRAY, 4, 8, 1, name="sound_in")
        self.result = map_create(MapType.ARRAY, 4, 8, 1, name="sound_out")
        self.scratch: Dict[Tuple[str, int], Any] = {}

    def fill(self, contents: Dict[str, Dict[int, Any]]) -> None:
        from pybpf.syscall.maps import map_delete_elem, map_get_next_key, map_update_elem
        for name, (kind, vt, n) in MAPS.items():
            fd = self.live[name]
            if kind == "hash":
                while True:
                    k = map_get_next_key(fd, None, 4)
                    if k is None:
                        break
                    map_delete_elem(fd, k)
            for k in range(n if kind == "array" else 0):
                map_update_elem(fd, k.to_bytes(4, "little"), bytes(_value_size(vt)))
            for k, v in contents[name].items():
                map_update_elem(fd, k.to_bytes(4, "little"), _encode(vt, v))

    def read(self) -> Dict[str, Dict[int, Any]]:
        from pybpf.syscall.maps import map_get_next_key, map_lookup_elem
        out: Dict[str, Dict[int, Any]] = {}
        for name, (kind, vt, n) in MAPS.items():
            fd, got, key = self.live[name], {}, None
            while True:
                key = map_get_next_key(fd, key, 4)
                if key is None:
                    break
                got[int.from_bytes(key, "little")] = _decode(
                    vt, map_lookup_elem(fd, key, _value_size(vt)))
            out[name] = got
        return out

    def maps_for(self, unit: Unit) -> Dict[str, Any]:
        maps = dict(self.live)
        for name, decl in unit.maps.items():
            if name not in maps:
                spec = decl.spec(name)
                tag = (name, spec.value_size)
                if tag not in self.scratch:
                    self.scratch[tag] = spec.create()
                maps[name] = self.scratch[tag]
        return maps

    def run(self, source: str, instructions: List[Any], unit: Unit) -> int:
        from pybpf.conformance.kernel import build_harness
        from pybpf.program import ProgramSpec, VerifierError
        from pybpf.syscall.bpf import ProgType
        from pybpf.syscall.maps import map_lookup_elem
        body = build_harness(self.input.fileno(), self.result.fileno(), 0, instructions)
        try:
            prog = ProgramSpec(ProgType.XDP, body, name="sound").load(
                maps=self.maps_for(unit))
        except VerifierError as exc:
            pytest.fail(f"the compiler accepted a program the verifier refuses (it must "
                        f"refuse it itself, at the cause):\n{source}\n{exc}")
        with prog:
            assert prog.test_run(bytes(14)).retval == 2, f"the program did not finish\n{source}"
        raw = map_lookup_elem(self.result, bytes(4), 8)
        assert raw is not None
        return int.from_bytes(raw, "little")

    def close(self) -> None:
        """Release every map."""
        for m in [*self.live.values(), self.input, self.result, *self.scratch.values()]:
            m.close()


def _vm_run(instructions: List[Any], unit: Unit,
            contents: Dict[str, Dict[int, Any]]) -> Tuple[int, Dict[str, Dict[int, Any]]]:
    from pybpf.vm import ArrayMap as VMArray, HashMap as VMHash, Machine
    maps: Dict[str, Any] = {}
    for name, (kind, vt, n) in MAPS.items():
        size = _value_size(vt)
        vm_map = VMHash(4, size, n, name) if kind == "hash" else VMArray(size, n, name)
        for k, v in contents[name].items():
            vm_map[k] = _encode(vt, v)
        maps[name] = vm_map
    for name, decl in unit.maps.items():
        if name not in maps:        # the per-CPU scratch map: one CPU here
            maps[name] = VMArray(decl.spec(name).value_size, 1, name)
    r0 = Machine(instructions, maps=maps).run(10_000_000)
    final = {}
    for name, (kind, vt, n) in MAPS.items():
        final[name] = {int.from_bytes(k, "little"): _decode(vt, maps[name].lookup(k))
                       for k in maps[name].keys()}
    return r0, final


_kernel: Optional[KernelMaps] = None


@pytest.fixture(scope="module", autouse=True)
def _close_kernel_maps() -> Any:
    """Release the maps the kernel runs share, after this file's tests."""
    global _kernel
    yield
    if _kernel is not None:
        _kernel.close()
        _kernel = None


def _check(case: Tuple[str, Dict[str, Dict[int, Any]], Optional[int],
                       Optional[Dict[str, Dict[int, Any]]], Optional[int]],
           kernel: bool) -> None:
    global _kernel
    source, contents, expected, final, bad_line = case
    if expected is None:
        with pytest.raises(CompileError) as info:
            _compile(source)
        err = info.value
        assert err.loc is not None and err.loc.line == bad_line, \
            f"refused at {err.loc and err.loc.line}, not line {bad_line}:\n{source}\n{err}"
        return
    assert final is not None
    try:
        instructions, unit = _compile(source)
    except CompileError as exc:
        pytest.fail(f"refused a program the rules accept:\n{source}\n{exc}")
    contents_text = f"maps before: {contents}"
    got, vm_final = _vm_run(instructions, unit, contents)
    assert got == expected, f"vm: {got:#x} != {expected:#x}\n{source}{contents_text}"
    assert vm_final == final, f"vm maps: {vm_final} != {final}\n{source}{contents_text}"
    if kernel:
        if _kernel is None:
            _kernel = KernelMaps()
        _kernel.fill(contents)
        got = _kernel.run(source, instructions, unit)
        assert got == expected, f"kernel: {got:#x} != {expected:#x}\n{source}{contents_text}"
        kernel_final = _kernel.read()
        assert kernel_final == final, \
            f"kernel maps: {kernel_final} != {final}\n{source}{contents_text}"


_SETTINGS = dict(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck),
                 database=None)


@pytest.mark.skipif(bool(BPF_UNAVAILABLE), reason=BPF_UNAVAILABLE)
@settings(derandomize=True, **_SETTINGS)
@given(cases())
def test_maps_and_pointers_kernel_vm_and_reference_agree(case: Any) -> None:
    _check(case, kernel=True)


@settings(derandomize=False, **_SETTINGS)
@given(cases())
def test_maps_and_pointers_random_seed(case: Any) -> None:
    """The same with a fresh seed each run (on the VM only when BPF is not available)."""
    _check(case, kernel=not BPF_UNAVAILABLE)


def _empty() -> Dict[str, Dict[int, Any]]:
    return {name: {k: _zero(vt) for k in range(n)} if kind == "array" else {}
            for name, (kind, vt, n) in MAPS.items()}


def test_known_map_cases() -> None:
    """Hand-picked corners: pointers that stay valid after an update, a full hash map,
    an array index out of range, ``-=`` on an absent key, wrapping atomic and cast
    stores into a struct value."""
    full = _empty()
    full["h32"] = {0: 1, 1: 2, 2: 3}
    rec = _empty()
    rec["hs"] = {2: {"a": 0, "b": 0, "c": 1, "d": 0, "e": 0}}
    rec_after = copy.deepcopy(rec)
    rec_after["hs"][2].update(c=0, b=-25536)
    minus = _empty()
    minus["h32"] = {4: 0xFFFFFFFF}
    arr_after = _empty()
    arr_after["a64"][1] = 7
    hash_after = _empty()
    hash_after["h64"] = {1: 4, 2: 0}
    cases = [
        # an array updates in place: a pointer looked up before a store reads the new value
        ("p = a64.setdefault(1)\n    a64[1] = 7\n    return i64(p[0])", _empty(), 7, arr_after),
        # an atomic update in place and an insert of another key leave a hash pointer valid
        ("p = h64.setdefault(1)\n    h64[1] += 4\n    h64.setdefault(2)\n    return p[0]",
         _empty(), 4, hash_after),
        # the map is full: setdefault() points at the scratch copy, the map is unchanged
        ("p = h32.setdefault(4)\n    p[0] += 9\n    return p[0]", full, 9, full),
        # out of range: the same for an array
        ("p = a64.setdefault(4)\n    p[0] = 5\n    return i64(p[0] + a64[4])", _empty(), 5,
         _empty()),
        # an absent key is inserted as 0 - 1, a u32
        ("h32[4] -= 1\n    return h32[4]", _empty(), 0xFFFFFFFF, minus),
        ("p = hs.get(2)\n    if not p:\n        return -1\n    p.c += 0xFFFFFFFF\n"
         "    p.b = i16(40000)\n    return p.c + p.b", rec, 2**32 - 25536, rec_after),
    ]
    for body, before, want, after in cases:
        _check((f"def prog(ctx) -> i64:\n    {body}\n", before, want, after, None),
               kernel=not BPF_UNAVAILABLE)
