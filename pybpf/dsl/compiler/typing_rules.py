"""The typing rules of the language: what value may go where (docs/language.md, "Types").

Nothing is cut or reinterpreted silently. :class:`TypingMixin` owns the rules that decide
this, for :class:`.frontend.FunctionCompiler`, which compiles the statements and
expressions and asks these methods wherever a value goes somewhere:

* the types of values: of an operand, of a literal (C's: ``i32``, else ``i64``, else
  ``u64``), of an annotation;
* the types of locals: an annotated local keeps its type (every value assigned must fit);
  an unannotated one has the type of its first assignment, widened to the first of
  ``i32``, ``u32``, ``i64``, ``u64`` that holds every value assigned to it (:class:`_Widen`
  makes the function compile again from the start); a local keeps one kind of value
  (:meth:`~TypingMixin.rebind_error`);
* stores: every number stored (a field, an array element, a map key or value, an
  argument, a return value) must be a value of the destination's type, a literal by its
  value (:meth:`~TypingMixin.check_store`, :meth:`~TypingMixin.check_literal`); strings
  and arrays are never cut (:meth:`~TypingMixin.check_string`,
  :meth:`~TypingMixin.check_copy`);
* pointers are not numbers (:meth:`~TypingMixin.not_a_number`);
* values, types and pointers in words, for the errors.
"""

from __future__ import annotations

import ast
from typing import Any, Dict, List, Optional, Tuple

from ...compiler import types as T
from ...compiler.errors import CompileError
from ...compiler.ir import KType, Operand, PtrType, VReg
from ...compiler.memory import Place

__all__ = ["TypingMixin"]


class TypingMixin:
    """The typing rules (see the module docstring) for
    :class:`.frontend.FunctionCompiler`: the types of values, annotations and locals
    (with the widening of unannotated locals), the checks of stores, literals, strings,
    copies and pointers used as numbers, and the words that describe them in errors."""

    src: Any
    locals: Dict[str, VReg]
    objects: Dict[str, Place]
    held: Dict[str, Tuple[int, str]]
    annotated: Dict[str, Tuple[T.IntType, int]]
    assigned: Dict[str, List[Tuple[int, Optional[T.IntType], Optional[int]]]]
    widened: Dict[str, T.IntType]
    loop_ranges: Dict[str, Tuple[int, int]]

    # -- types of values ----------------------------------------------------------------
    def literal_of(self, v: Operand, node: Any) -> Optional[int]:
        """The value of ``v`` when it is a compile-time integer (an immediate, or the
        literal ``node``: ``5``, ``-1``, ``2**40`` written out); else None."""
        if isinstance(v, int):
            return v
        lit = node.operand if isinstance(node, ast.UnaryOp) and \
            isinstance(node.op, ast.USub) else node
        if isinstance(lit, ast.Constant) and type(lit.value) is int:
            return -lit.value if lit is not node else lit.value
        return None

    def type_of_annotation(self, ann: Any) -> T.IntType:
        """The integer type an annotation names."""
        if isinstance(ann, ast.Name):
            if ann.id == "int" and self.src.globals.get("int", int) is int:
                return T.i64                    # a plain Python int: 64-bit signed
            t = self.src.globals.get(ann.id, T.INT_TYPES.get(ann.id))
            if isinstance(t, T.IntType):
                return t
        if isinstance(ann, ast.Constant) and isinstance(ann.value, str) and \
                ann.value in T.INT_TYPES:
            return T.INT_TYPES[ann.value]
        raise self.error(f"unsupported type annotation {ast.unparse(ann) if hasattr(ast, 'unparse') else ''}".rstrip(),  # type: ignore[attr-defined]
                         ann, "use an integer type: u8 u16 u32 u64 i8 i16 i32 i64")

    # -- typing of locals ---------------------------------------------------------------
    def local_type(self, name: str, v: Operand, value: Any, node: Any,
                   annotation: Optional[T.IntType]) -> T.IntType:
        """The type of local ``name`` given ``v`` (the compiled ``value``) on the
        statement ``node``. A literal counts by its value, anything else by its type.
        Annotated: ``v`` must fit the annotation, else a CompileError (convert
        explicitly). Unannotated: the type of its first assignment, widened when a
        later value does not fit (raises :class:`_Widen` to recompile), a
        CompileError when no type holds all its values."""
        lit = self.literal_of(v, value)
        vt = None if lit is not None else self.type_of(v)
        line = self.src.loc(node).line
        if annotation is not None or name in self.annotated:
            if annotation is not None:
                self.annotated[name] = (annotation, line)
            t, decl = self.annotated[name]
            if lit is not None:
                self.check_literal(lit, t, value if value is not None else node, repr(name))
            elif not t.contains(vt):                    # type: ignore[arg-type]
                later = "" if decl == line else f" (annotated on line {decl})"
                raise self.error(                           # type: ignore[attr-defined]
                    f"{name!r} is {_a(t.name)}{later}; here it gets {_a(vt.name)}, "  # type: ignore[union-attr]
                    "which it cannot hold", node,
                    f"convert explicitly: {t.name}(...), or annotate {name!r} with a type "
                    f"that holds {_a(vt.name)}")                 # type: ignore[union-attr]
            return t
        records = self.assigned.setdefault(name, [])
        records.append((line, vt, lit))
        if name not in self.locals:
            if name in self.widened:
                return self.widened[name]
            # a literal's own type (C's: -2147483648 is an i64, as 2147483648 is)
            return self.type_of(v) if isinstance(v, VReg) else self.const_type(value, lit)
        current = self.locals[name].type
        if _fits(current, vt, lit):
            return current
        for c in (T.i32, T.u32, T.i64, T.u64):
            if all(_fits(c, rt, rl) for _, rt, rl in records):
                raise _Widen(name, c)
        other = next((r for r in records[:-1]
                      if not any(_fits(c, r[1], r[2]) and _fits(c, vt, lit)
                                 for c in (T.i64, T.u64))), records[0])

        def what(rt: Optional[T.IntType], rl: Optional[int]) -> str:
            return _a(rt.name) if rt is not None else f"the literal {rl}"
        raise self.error(f"{name!r} gets {what(other[1], other[2])} on line {other[0]} and "  # type: ignore[attr-defined]
                         f"{what(vt, lit)} here: no integer type holds both", node,
                         f"annotate {name!r} on line {records[0][0]} (e.g. {name}: i64 = "
                         "...) and convert the other value explicitly")

    def rebind_error(self, name: str, new: str, node: Any) -> CompileError:
        """``name`` holds one kind of value and is assigned another."""
        if name in self.held:
            line, what = self.held[name]
            old = f"{what} from line {line}"
        elif name in self.objects:
            old = self.describe_type(self.objects[name].type)
        else:
            old = self.describe_value(self.locals.get(name), None)
        return self.error(f"{name!r} holds {old}; here it gets {new}", node,  # type: ignore[attr-defined]
                          "a local keeps one kind of value: use another name for this one")

    # -- stores -------------------------------------------------------------------------
    def check_store(self, value: Operand, t: T.IntType, node: Any, what: str,
                    widen: str) -> None:
        """The rule for every store of a number (a struct field, an array element, a
        map key or value, an argument, a return value): ``value`` (the compiled
        expression ``node``) must be a value of ``t``, as for an annotated local. A
        literal counts by its value (:meth:`check_literal`), anything else by its type:
        a type that ``t`` does not contain is refused, never cut silently; ``widen``
        ends the hint (``or widen the field``)."""
        if self.literal_of(value, node) is not None:
            self.check_literal(value, t, node, what)
            return
        bounds = self.loop_ranges.get(node.id) if isinstance(node, ast.Name) else None
        if bounds is not None and t.min <= bounds[0] and bounds[1] <= t.max:
            return                      # a range() loop's variable: every value fits
        vt = self.type_of(value)
        if isinstance(vt, T.IntType) and not isinstance(vt, PtrType) and not t.contains(vt):
            expr = ast.unparse(node) if node is not None else "..."
            raise self.error(f"{_a(vt.name)} does not fit in {what}, {_a(t.name)}", node,  # type: ignore[attr-defined]
                             f"cut it explicitly: {t.name}({expr}), {widen}")

    def check_literal(self, value: Operand, t: T.IntType, node: Any, what: str) -> None:
        """Refuse an integer literal (``1000``, ``-1``: the compiled ``value`` of the
        expression ``node``) that is no value of ``t``, as in ``x: u8 = 1000``, which C
        would cut silently. Other expressions convert as in C."""
        if not isinstance(value, int):
            literal = node.operand if isinstance(node, ast.UnaryOp) and \
                isinstance(node.op, ast.USub) else node
            if not (isinstance(literal, ast.Constant) and type(literal.value) is int):
                return
            value = -literal.value if literal is not node else literal.value
        if not t.min <= value <= t.max:
            raise self.error(f"{value} does not fit in {what}, a {t.name} "  # type: ignore[attr-defined]
                             f"({t.min}..{t.max})", node,
                             f"use a wider type than {t.name}, or a value in range")

    def check_string(self, dst: Place, text: str, node: Any) -> None:
        """Refuse a literal string that a ``char[N]`` cannot hold with its NUL (at most
        N - 1 bytes): it is never cut silently."""
        t = dst.type
        n = len(text.encode())
        if isinstance(t, T.ArrayType) and t.is_string and n > t.count - 1:
            raise self.error(f"the string {text!r} ({n} bytes and a NUL) does not fit in "  # type: ignore[attr-defined]
                             f"a {t!r}", node, f"use a char[{n + 1}] or more, or a shorter "
                             "string")

    def check_copy(self, dst: Place, src: Place, node: Any) -> None:
        """Refuse copying ``src`` into ``dst`` when their types differ or the source is
        bigger (nothing is cut silently: ``s[:4]`` copies a part explicitly)."""
        dt, st = dst.type, src.type
        if isinstance(st, KType) or isinstance(dt, KType):
            if self.object_size(st) > self.object_size(dt):  # type: ignore[attr-defined]
                raise self.error(f"a {st!r} ({self.object_size(st)} bytes) does not fit in "  # type: ignore[attr-defined]
                                 f"{self.describe_type(dt)} ({self.object_size(dt)} bytes)",  # type: ignore[attr-defined]
                                 node, "copy it into a destination of its size")
            return
        if T.is_struct(dt) or T.is_struct(st):
            if dt is not st:
                raise self.error(f"cannot store {self.describe_type(st)} into "  # type: ignore[attr-defined]
                                 f"{self.describe_type(dt)}", node,
                                 "copy field by field, or use the same struct type")
            return
        if isinstance(dt, T.ArrayType) and isinstance(st, T.ArrayType):
            if dt.elem != st.elem:
                raise self.error(f"cannot store {self.describe_type(st)} into "  # type: ignore[attr-defined]
                                 f"{self.describe_type(dt)}: the elements differ", node)
            if st.count > dt.count:
                expr = ast.unparse(node) if isinstance(node, ast.AST) else "s"
                raise self.error(f"{self.describe_type(st)} does not fit in "  # type: ignore[attr-defined]
                                 f"{self.describe_type(dt)}: it would be cut", node,
                                 f"copy a part explicitly: {expr}[:{dt.count}]")
        elif dt != st:
            raise self.error(f"cannot store {self.describe_type(st)} into "  # type: ignore[attr-defined]
                             f"{self.describe_type(dt)}", node, "store into one of its "
                             "fields or elements")

    def destination(self, target: ast.expr) -> Optional[str]:
        """A store's target in words, for errors: ``field 'a' of Rec`` (the struct of
        the field :meth:`member` resolved last), ``an element of e.arr``."""
        if isinstance(target, ast.Attribute):
            last = getattr(self, "last_field", None)
            if last is not None and last[1] == target.attr:
                return f"field {target.attr!r} of {last[0]}"
            return f"field {target.attr!r}"
        if isinstance(target, ast.Subscript):
            base = target.value
            if isinstance(base, ast.Name) and base.id in self.locals and \
                    isinstance(self.locals[base.id].type, PtrType):
                return f"the map value {base.id!r} points to"
            return f"an element of {ast.unparse(base)}"
        return None

    # -- pointers -----------------------------------------------------------------------
    def describe_pointer(self, pt: PtrType) -> str:
        """What a pointer points to, in words (``a pointer to a map value (u64)``)."""
        target = pt.target
        what = target.__name__ if T.is_struct(target) else repr(target)
        if pt.space == "map":
            return f"a pointer to a map value ({what})"
        if pt.space == "packet":
            return f"a pointer into the packet ({what})"
        if pt.space == "ctx":
            return "the program's context"
        return f"a {pt.space} pointer ({what if target is not None else 'untyped'})"

    def not_a_number(self, v: VReg, node: Any) -> CompileError:
        """The error for a pointer used as a number (arithmetic, comparison, stored,
        printed, passed, returned), with the read the user probably meant."""
        pt = v.type
        assert isinstance(pt, PtrType)
        name = ast.unparse(node) if isinstance(node, ast.AST) else "p"
        target = pt.target
        if isinstance(target, T.IntType):
            hint = f"did you mean {name}[0], the {target.name} it points to?"
        elif T.is_struct(target):
            fields = [f.name for f in target.__pybpf_layout__.fields]
            hint = f"did you mean {name}.{fields[0]}? ({target.__name__} has " \
                f"{', '.join(fields)})"
        elif pt.space in ("kernel", "user"):
            hint = (f"read a member ({name}.member), or use the address as a number "
                    f"explicitly: u64({name})")
        else:
            hint = "read what it points to"
        hint += f"; a pointer is only tested: 'if {name}:', '{name} is None'"
        return self.error(f"{name!r} is {self.describe_pointer(pt)}, not a number", node,  # type: ignore[attr-defined]
                          hint)

    # -- in words -----------------------------------------------------------------------
    def describe_type(self, t: Any) -> str:
        """A language type in words: ``a Start struct``, ``a char[16] string``."""
        if T.is_struct(t):
            return f"a {t.__name__} struct"
        if isinstance(t, T.ArrayType):
            return f"a {t!r} {'string' if t.is_string else 'array'}"
        if isinstance(t, KType):
            return f"a kernel {t!r}"
        return _a(f"{t.name} number") if isinstance(t, T.IntType) else repr(t)

    def describe_value(self, v: Any, node: Any) -> str:
        """What a compiled value is, in words, with where a pointer comes from."""
        if isinstance(v, Place):
            return self.describe_type(v.type)
        if isinstance(v, VReg) and isinstance(v.type, PtrType):
            if isinstance(node, ast.Call):
                return f"a pointer from {ast.unparse(node.func)}()"
            return f"{self.describe_pointer(v.type)} ({ast.unparse(node)})"
        if isinstance(v, (int, VReg)):
            return _a(f"{self.type_of(v).name} number")
        return "another kind of value"

    # -- places -------------------------------------------------------------------------
    def _scalar_or_none(self, p: Place, node: Any) -> Any:
        """The scalar type of a place, or None for aggregates."""
        if isinstance(p.type, T.ArrayType) or T.is_struct(p.type) or self._is_kaggregate(p):
            return None
        return self.scalar_type(p, node)                    # type: ignore[attr-defined]

    def _is_kaggregate(self, p: Place) -> bool:
        """True when a kernel place holds a struct or array (copied, not read)."""
        if not isinstance(p.type, KType):
            return False
        from ...btf import vmlinux
        from ...btf.resolve import skip_modifiers
        from ...btf.types import Array, Composite
        btf = vmlinux()
        return isinstance(btf.type(skip_modifiers(btf, p.type.type_id)), (Array, Composite))


class _Widen(Exception):
    """Internal: local ``name`` needs the wider type ``type``; compile again."""

    def __init__(self, name: str, type: T.IntType) -> None:
        super().__init__(name)
        self.name = name
        self.type = type


def _a(words: str) -> str:
    """``words`` with its indefinite article: ``an i32``, ``a u32``."""
    return ("an " if words[:1] in "aeio" else "a ") + words


def _fits(t: T.IntType, vt: Optional[T.IntType], lit: Optional[int]) -> bool:
    """True if a value of type ``vt`` (or the literal ``lit``) is a value of ``t``."""
    if lit is not None:
        return t.min <= lit <= t.max
    return vt is not None and not isinstance(vt, PtrType) and t.contains(vt)
