"""Assignments in the Python language: locals (declared on first assignment, typed by
:mod:`.typing_rules`), struct and array objects on the stack, fields, array items
(constant and variable indexes) and map entries (mixed into the function compiler)."""

from __future__ import annotations

import ast
from typing import Any, Optional, Tuple

from ...compiler import types as T
from ...compiler.blocks import MapRef
from ...compiler.errors import CompileError
from ...compiler.ir import PtrType, VReg
from ...compiler.memory import Place
from .builtins import DEST_HELPERS
from .typing_rules import _a

__all__ = ["AssignMixin"]

_MISSING = object()


class AssignMixin:
    """``x = ...``, ``obj.field = ...``, ``arr[i] = ...``, ``m[k] = ...`` for
    :class:`.frontend.FunctionCompiler`."""

    def assign(self, name: str, value: ast.expr, t: Optional[T.IntType], node: Any) -> None:
        """Compile ``name = value`` (declaring ``name`` on first assignment)."""
        if name == self.ctx_name:
            raise self.error(f"{name!r} is the program's context and cannot be assigned", node)
        line = self.src.loc(node).line
        if name in self.objects:
            obj = self.objects[name]
            if self.struct_class(value) is not None or self.dest_helper(value) is not None \
                    or (isinstance(value, ast.Constant) and isinstance(value.value, str)):
                cls = self.struct_class(value)
                if cls is not None and cls is not obj.type:
                    raise self.rebind_error(name, f"a {cls.__name__} struct", node)
                self.assign_place(obj, value, node)
                return
            v = self.value(value)
            if isinstance(v, Place) and not isinstance(self._scalar_or_none(v, value),
                                                       (T.IntType, PtrType)):
                self.store_value(obj, v, value)
                return
            raise self.rebind_error(name, self.describe_value(v, value), node)
        made = self.new_object(name, value, node)
        if made:
            return
        v = self.value(value)
        if isinstance(v, Place):
            if isinstance(v.type, (T.ArrayType,)) or T.is_struct(v.type) or \
                    self._is_kaggregate(v):
                if name in self.locals:
                    raise self.rebind_error(name, self.describe_value(v, value), node)
                size = self.object_size(v.type)
                obj = Place(None, self.alloc(size), v.type, "stack")
                self.objects[name] = obj
                self.held[name] = (line, self.describe_value(v, value))
                self.copy(obj, v, value)
                return
            v = self.read(v, value)
        if isinstance(v, VReg) and isinstance(v.type, PtrType):
            if t is not None:
                raise self.not_a_number(v, value)
            self.nonnull.discard(name)
            if v.id in self.nonnull_ids:
                self.nonnull.add(name)
            self.track_pointer(name, value, v)
            if name in self.locals:
                if self.locals[name].type != v.type:
                    raise self.rebind_error(name, self.describe_value(v, value), node)
                self.emit("mov", dst=self.locals[name], a=VReg(v.id, T.u64))
                return
            dst = self.vreg(v.type, local=True)
            self.locals[name] = dst
            self.held[name] = (line, self.describe_value(v, value))
            self.emit("mov", dst=dst, a=VReg(v.id, T.u64))
            return
        if name in self.locals and isinstance(self.locals[name].type, PtrType):
            raise self.rebind_error(name, self.describe_value(v, value), node)
        v = self.as_int(v, value)
        declared = self.local_type(name, v, value, node, t)
        if name in self.locals:
            self.convert_into(self.locals[name], v)
            return
        t = declared
        self.held[name] = (line, _a(f"{t.name} number"))
        if isinstance(v, VReg) and v.type == t and not v.local and v.id not in self.local_ids:
            self.local_ids.add(v.id)            # the temporary becomes the local
            self.locals[name] = VReg(v.id, t, True)
            return
        dst = self.vreg(t, local=True)
        self.locals[name] = dst
        self.convert_into(dst, v)

    def struct_class(self, node: ast.expr) -> Any:
        """The Struct class a call constructs (``Event()``), or None."""
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            t = self.src.globals.get(node.func.id)
            if T.is_struct(t):
                return t
        return None

    def dest_helper(self, node: ast.expr) -> Optional[str]:
        """The destination helper a call names (``comm()``...), or None."""
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            target = self.src.globals.get(node.func.id, _MISSING)
            name = getattr(target, "__pybpf_helper__", None) or (
                node.func.id if target is _MISSING else None)
            if name in DEST_HELPERS:
                if name in ("probe_read_user", "probe_read_kernel"):
                    t = self.type_arg(node, 1)
                    if isinstance(t, T.IntType):
                        return None
                return name
        return None

    def new_object(self, name: str, value: ast.expr, node: Any) -> bool:
        """``name = Event(...)`` or ``name = comm()``: a new frame object; False when
        ``value`` is neither."""
        cls = self.struct_class(value)
        helper = self.dest_helper(value)
        if cls is None and helper is None:
            return False
        t = cls if cls is not None else self.dest_type(helper, value)  # type: ignore[arg-type]
        if name in self.locals:
            raise self.rebind_error(name, self.describe_type(t), node)
        obj = Place(None, self.alloc(T.sizeof(t)), t, "stack")
        self.objects[name] = obj
        self.held[name] = (self.src.loc(node).line, self.describe_type(t))
        self.assign_place(obj, value, node)
        return True

    def assign_place(self, dst: Place, value: ast.expr, node: Any,
                     what: Optional[str] = None) -> None:
        """Store ``value`` into the place ``dst`` (numbers, structs, strings, helpers;
        ``what`` names ``dst`` in errors)."""
        cls = self.struct_class(value)
        if cls is not None:
            if dst.type is not cls:
                raise self.error(f"cannot store a {cls.__name__} into a {dst.type!r}", node)
            call = value
            assert isinstance(call, ast.Call)
            if call.args:
                raise self.error(f"{cls.__name__}() takes field values by keyword", call,
                                 f"write {cls.__name__}(pid=pid())")
            if dst.base is not None:
                raise self.error("a struct can only be built in a local", node)
            self.zero(dst)
            for kw in call.keywords:
                if kw.arg is None:
                    raise self.error("** is not supported here", call)
                self.assign_place(self.member(dst, kw.arg, call), kw.value, call,
                                  f"field {kw.arg!r} of {cls.__name__}")
            return
        helper = self.dest_helper(value)
        if helper is not None:
            assert isinstance(value, ast.Call)
            self.dest_call(helper, value, dst)
            return
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            self.check_string(dst, value.value, value)
            self.store_string(dst, value.value, node)
            return
        self.store_value(dst, self.value(value), value, what)

    def slice_place(self, base: Any, node: ast.Subscript) -> Place:
        """``arr[lo:hi]`` with constant bounds: the part of an array as a
        ``T[hi - lo]`` place (to copy a part explicitly: ``e.tag = s[:4]``)."""
        sl = node.slice
        assert isinstance(sl, ast.Slice)
        if not isinstance(base, Place) or not isinstance(base.type, T.ArrayType):
            raise self.error("only arrays and strings of the program (struct fields, "
                             "locals, map values) can be sliced", node,
                             "copy it into a char[N] or T[N] local first")
        t = base.type
        if sl.step is not None:
            raise self.error("a slice takes no step", sl, "write [lo:hi]")
        lo = 0 if sl.lower is None else self.slice_bound(sl.lower)
        hi = t.count if sl.upper is None else self.slice_bound(sl.upper)
        if not 0 <= lo < hi <= t.count:
            raise self.error(f"[{lo}:{hi}] is not a part of a {t!r}", sl,
                             f"bounds in 0..{t.count}, the first below the second")
        return base.at(lo * T.sizeof(t.elem), T.ArrayType(t.elem, hi - lo))

    def slice_bound(self, node: ast.expr) -> int:
        """A constant slice bound."""
        try:
            return self.constant_value(node)
        except CompileError:
            raise self.error("slice bounds must be constant integers", node,
                             "use literals, module-level ints or const() values") from None

    def store_value(self, dst: Place, v: Any, node: Any, what: Optional[str] = None) -> None:
        """Store a compiled value (number, pointer or place) into ``dst`` (``what``
        names it in errors: ``field 'a' of Rec``)."""
        if isinstance(v, Place) and (not isinstance(dst.type, T.IntType)):
            self.check_copy(dst, v, node)
            self.copy(dst, v, node)
            return
        if not isinstance(dst.type, T.IntType):
            raise self.error(f"cannot store a number into a {dst.type!r}", node,
                             "store into one of its fields")
        value = self.as_int(v, node)
        what = what or "this field"
        self.check_store(value, dst.type, node, what, "or widen the " + (
            "field" if what.startswith(("field", "this")) else "map's value type"
            if what.startswith("the map") else "array's element type"))
        self.write(dst, value, node)

    def element_pointer(self, array: Place, index: ast.expr, node: Any) -> Tuple[VReg, Any]:
        """A pointer to ``array[index]`` for an index known only at run time, and the
        element type: 0 (None) when the index is out of range, so the access is
        skipped, which is also the bounds check the verifier needs."""
        t = array.type
        if not isinstance(t, T.ArrayType):
            raise self.error(f"a {t!r} cannot be indexed", node)
        i = self.materialize(self.convert(self.expr(index), T.u64), T.u64)
        size = T.sizeof(t.elem)
        ptr = self.vreg(PtrType(t.elem, array.space, isinstance(array.base, VReg) and
                                getattr(array.base.type, "private", False)))
        out = self.label("outofrange")
        done = self.label("inrange")
        self.emit("branch", name="uge", a=i, b=t.count, target=out)
        off = self.vreg(T.u64)
        self.emit("mov", dst=off, a=i)
        if size > 1:
            if size & (size - 1) == 0:
                self.emit("binop", name="lsh", dst=off, a=off, b=size.bit_length() - 1)
            else:
                self.emit("binop", name="mul", dst=off, a=off, b=size)
        self.emit("addr", dst=ptr, base=array.base, off=array.off)
        self.emit("binop", name="add", dst=ptr, a=ptr, b=off)
        self.emit("jump", target=done)
        self.emit("label", name=out)
        self.emit("mov", dst=ptr, a=0)
        self.emit("label", name=done)
        return ptr, t.elem

    def read_variable_index(self, array: Place, node: ast.Subscript) -> VReg:
        """``arr[i]`` with ``i`` known at run time: the element, or 0 out of range."""
        ptr, elem = self.element_pointer(array, node.slice, node)
        if not isinstance(elem, T.IntType):
            raise self.error("only arrays of numbers take run-time indexes", node,
                             "index arrays of structs with constants")
        res = self.vreg(elem)
        self.emit("mov", dst=res, a=0)
        skip = self.label("noelem")
        self.emit("branch", name="eq", a=ptr, b=0, target=skip)
        self.convert_into(res, self.read(Place(ptr, 0, elem, array.space), node))
        self.emit("label", name=skip)
        return res

    def variable_index_target(self, target: ast.expr, base: Any = None) -> Optional[Place]:
        """The array place of ``target`` when it is ``place[i]`` with a run-time ``i``
        (``base``: ``target.value`` already compiled)."""
        if not isinstance(target, ast.Subscript) or \
                self.constant_or_none(target.slice) is not None:
            return None
        if base is None:
            base = self.value(target.value)
        if isinstance(base, VReg) and isinstance(base.type, PtrType):
            name = target.value.id if isinstance(target.value, ast.Name) else ""
            base = self.deref(base, target, name)
        return base if isinstance(base, Place) else None

    def assign_target(self, target: ast.expr, value: ast.expr, node: Any) -> None:
        """``m[k] = v``, ``e.field = v``, ``e.arr[i] = v`` (a run-time ``i`` out of range
        skips the store)."""
        if isinstance(target, ast.Subscript):
            ref = self.value(target.value)
            if isinstance(ref, MapRef):
                self.map_store(ref, target.slice, value, node)
                return
            array = self.variable_index_target(target, ref)
            if array is not None:
                ptr, elem = self.element_pointer(array, target.slice, target)
                skip = self.label("noelem")
                self.emit("branch", name="eq", a=ptr, b=0, target=skip)
                self.assign_place(Place(ptr, 0, elem, array.space), value, node,
                                  self.destination(target))
                self.emit("label", name=skip)
                return
        place = self.value(target)
        if not isinstance(place, Place):
            raise self.error("this cannot be assigned", target,
                             "assign locals, struct fields, array items and map entries")
        self.assign_place(place, value, node, self.destination(target))
