"""Python ``ast`` of a function -> typed IR (:mod:`.ir`), with source locations.

One :class:`FunctionCompiler` per function. Expressions are compiled to a fresh virtual
register (or a small immediate); conditions in ``if`` and loops are compiled to
conditional jumps directly (no 0/1 value in between). Names are resolved in this order:
locals, then the function's globals: integer types (as conversions), helpers, other
Python functions (compiled as bpf-to-bpf calls), :func:`~pybpf.dsl.types.const` values
and plain ``int`` globals (compile-time constants).
"""

from __future__ import annotations

import ast
import types as _pytypes
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from ...asm.instruction import SourceLocation
from ...compiler import types as T
from ...compiler.errors import CompileError
from ...compiler.blocks import MapRef
from ...compiler.ir import Function, KType, Operand, PtrType, VReg
from ...compiler.lowering import Lowering
from ...compiler.maps import MapDecl
from ...compiler.memory import NULLABLE, CtxRef, Place
from ...compiler.unit import RODATA_MAP, Unit
from ..types import Const
from .assign import AssignMixin
from .builtins import DEST_HELPERS, BuiltinsMixin
from .loops import UNROLL_LIMIT, LoopsMixin, _Loop
from .packet import PacketMixin
from .source import Source, parse_function
from .stale import Restale, StaleMixin, Staleness, merge_stale
from .typing_rules import TypingMixin, _Widen, _a

__all__ = ["HELPERS", "Source", "parse_function", "FunctionCompiler", "UNROLL_LIMIT"]

#: readable helper names -> (kernel helper, result type, post-processing)
HELPERS: Dict[str, Tuple[str, T.IntType, str]] = {
    "ktime_ns": ("ktime_get_ns", T.u64, ""),
    "pid_tgid": ("get_current_pid_tgid", T.u64, ""),
    "pid": ("get_current_pid_tgid", T.u32, "high"),     # the process id (tgid), as bpftrace
    "tgid": ("get_current_pid_tgid", T.u32, "high"),
    "tid": ("get_current_pid_tgid", T.u32, "low"),      # the thread id
    "uid": ("get_current_uid_gid", T.u32, "low"),
    "gid": ("get_current_uid_gid", T.u32, "high"),
    "cpu": ("get_smp_processor_id", T.u32, ""),
    "random": ("get_prandom_u32", T.u32, ""),
    "boot_ns": ("ktime_get_boot_ns", T.u64, ""),
    "uid_gid": ("get_current_uid_gid", T.u64, ""),
    "cgroup_id": ("get_current_cgroup_id", T.u64, ""),
    "current_task": ("get_current_task", T.u64, "task"),
}

_CMP = {ast.Eq: ("eq", "eq"), ast.NotEq: ("ne", "ne"), ast.Lt: ("ult", "slt"),
        ast.LtE: ("ule", "sle"), ast.Gt: ("ugt", "sgt"), ast.GtE: ("uge", "sge")}
_NEGATE = {"eq": "ne", "ne": "eq", "ult": "uge", "uge": "ult", "ule": "ugt", "ugt": "ule",
           "slt": "sge", "sge": "slt", "sle": "sgt", "sgt": "sle"}
_BINOP_NAMES = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.FloorDiv: "//",
                ast.Mod: "%", ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^",
                ast.LShift: "<<", ast.RShift: ">>"}


class FunctionCompiler(AssignMixin, LoopsMixin, PacketMixin, BuiltinsMixin, StaleMixin,
                       TypingMixin, Lowering):
    """Compiles one Python function to a :class:`~pybpf.compiler.ir.Function` (the
    shared :class:`~pybpf.compiler.lowering.Lowering` emits the IR).

    ``resolve_function`` is called with a Python function called from this one and
    returns its compiled signature (parameter types, return type), scheduling it for
    compilation; ``entry`` is True for the program's entry (its one parameter is the
    context pointer, ignored in this version).
    """

    def __init__(self, src: Source, resolve_function: Callable[[Any, SourceLocation], Tuple[str, List[T.IntType], T.IntType]],
                 entry: bool = False, unit: Optional[Unit] = None, kind: Any = None) -> None:
        node = src.node
        Lowering.__init__(self, Function(node.name, [], T.i64, loc=src.loc(node),
                                         is_entry=entry),
                          unit if unit is not None else Unit(), kind)
        self.src = src
        self.objects: Dict[str, Place] = {}         # struct and array locals
        self.nonnull: Set[str] = set()              # pointer locals known not to be None
        self.nonnull_ids: Set[int] = set()          # registers never None (setdefault())
        self.stale: Dict[str, Staleness] = {}       # pointer locals maybe replaced (stale.py)
        self.ptr_maps: Dict[str, Set[str]] = {}     # hash maps a pointer local may point into
        self.map_ptr_ids: Dict[int, str] = {}       # registers from lookups in hash maps
        self.loop_heads: Dict[Tuple[int, int], Dict[str, Staleness]] = {}  # kept on recompiling
        self.loop_consts: Dict[str, int] = {}      # variables of unrolled loops
        # variables of constant range() loops whose body does not assign them: their
        # lowest and highest values, so a store checks them by value, not by type
        self.loop_ranges: Dict[str, Tuple[int, int]] = {}
        self.reserving = 0                          # depth of 'with ring.reserve()' blocks
        self.resolve_function = resolve_function
        self.entry = entry
        self.locals: Dict[str, VReg] = {}
        self.loops: List[_Loop] = []
        self.ctx_name: Optional[str] = None
        # typing of locals: what each name holds and since which line; annotated
        # locals' declared types; the assignments seen to each unannotated number
        # local; the types found by widening (kept across recompilations)
        self.held: Dict[str, Tuple[int, str]] = {}
        self.annotated: Dict[str, Tuple[T.IntType, int]] = {}
        self.assigned: Dict[str, List[Tuple[int, Optional[T.IntType], Optional[int]]]] = {}
        self.widened: Dict[str, T.IntType] = {}

    # -- helpers ------------------------------------------------------------------------
    def error(self, message: str, node: Any, suggestion: str = "") -> CompileError:
        """A :class:`CompileError` located at ``node``."""
        return CompileError(message, self.src.loc(node), suggestion)

    # -- function -----------------------------------------------------------------------
    def compile(self) -> Function:
        """Compile the function and return its IR. An unannotated local that gets a
        value its type cannot hold is widened (:meth:`local_type`) and the function is
        compiled again from the start, with the wider type from the first assignment
        on; print sites registered by the abandoned attempt are dropped."""
        prints = len(self.unit.prints)
        while True:
            try:
                return self._compile_once()
            except (_Widen, Restale) as w:
                widened, heads = dict(self.widened), self.loop_heads
                if isinstance(w, _Widen):
                    widened[w.name] = w.type
                del self.unit.prints[prints:]
                self.__init__(self.src, self.resolve_function, self.entry,  # type: ignore[misc]
                              self.unit, self.kind)
                self.widened, self.loop_heads = widened, heads

    def _compile_once(self) -> Function:
        node = self.src.node
        self.loc = self.src.loc(node)
        a = node.args
        if a.vararg or a.kwarg or a.kwonlyargs or a.defaults or \
                getattr(a, "posonlyargs", []):
            raise self.error("only plain positional parameters are supported", node,
                             "remove *args, **kwargs, keyword-only parameters and defaults")
        if node.returns is not None:
            self.fn.ret = self.type_of_annotation(node.returns)
        if self.entry:
            if len(a.args) > 1:
                raise self.error("a program takes one parameter: its context", node,
                                 "declare the program as def prog(ctx):")
            if a.args:
                self.ctx_name = a.args[0].arg
            reg = self.vreg(PtrType(None, "ctx"), local=True)
            self.emit("param", dst=reg, a=0)
            self.ctx = CtxRef(reg)
        else:
            if len(a.args) > 5:
                raise self.error("a BPF function takes at most 5 arguments", node,
                                 "pass fewer values")
            for i, arg in enumerate(a.args):
                if arg.annotation is None:
                    raise self.error(f"parameter {arg.arg!r} needs a type annotation",
                                     arg, f"write {arg.arg}: u64 (or another integer type)")
                t = self.type_of_annotation(arg.annotation)
                self.fn.params.append(t)
                reg = self.vreg(t, local=True)
                self.locals[arg.arg] = reg
                line = self.src.loc(arg).line
                self.annotated[arg.arg] = (t, line)
                self.held[arg.arg] = (line, _a(f"{t.name} number"))
                self.emit("param", dst=reg, a=i)
            if self.kind is not None and len(a.args) < 5:
                # the program's context comes as a hidden last argument, so functions
                # called by a program can read ctx fields and send perf events too
                reg = self.vreg(PtrType(None, "ctx"), local=True)
                self.emit("param", dst=reg, a=len(a.args))
                self.ctx = CtxRef(reg)
        if not self.body(node.body):
            self.loc = self.src.loc(node)
            self.emit("ret", a=0)
        if self.ctx is not None and not self._uses_reg(self.ctx.reg.id):
            self.fn.ops = [op for op in self.fn.ops
                           if not (op.kind == "param" and op.dst is self.ctx.reg)]
        return self.fn

    def _uses_reg(self, vid: int) -> bool:
        for op in self.fn.ops:
            if op.kind == "param":
                continue
            for x in (op.a, op.b, op.base, *op.args):
                if isinstance(x, VReg) and x.id == vid:
                    return True
        return False

    # -- statements ---------------------------------------------------------------------
    def body(self, stmts: List[ast.stmt]) -> bool:
        """Compile a list of statements; True if control never falls off its end
        (the statements after a ``return``, ``break`` or ``continue`` are dead and are
        not compiled: the verifier refuses unreachable instructions)."""
        for stmt in stmts:
            if self.stmt(stmt):
                return True
        return False

    def stmt(self, s: ast.stmt) -> bool:
        """Compile one statement; True if control does not continue after it."""
        self.loc = self.src.loc(s)
        if isinstance(s, ast.AnnAssign):
            if not isinstance(s.target, ast.Name):
                raise self.error("only local variables can be assigned", s.target)
            t = self.type_of_annotation(s.annotation)
            name = s.target.id
            if (name in self.locals and self.locals[name].type != t) or name in self.objects:
                line, what = self.held[name]
                raise self.error(f"{name!r} is already declared: it holds {what} from "
                                 f"line {line}", s, "declare a local once; use another "
                                 "name for a value of another type")
            if s.value is None:
                raise self.error("a declaration needs a value", s, f"write {name}: {t.name} = 0")
            self.assign(name, s.value, t, s)
        elif isinstance(s, ast.Assign):
            if len(s.targets) != 1 or isinstance(s.targets[0], (ast.Tuple, ast.List)):
                raise self.error("only assignments to one target are supported", s,
                                 "write one assignment per line: x = ...")
            target = s.targets[0]
            if isinstance(target, ast.Name):
                self.assign(target.id, s.value, None, s)
            else:
                self.assign_target(target, s.value, s)
        elif isinstance(s, ast.Delete):
            for target in s.targets:
                ref = self.value(target.value) if isinstance(target, ast.Subscript) else None
                if not isinstance(ref, MapRef):
                    raise self.error("only map entries can be deleted", target,
                                     "write del m[key]")
                self.map_delete(ref, target.slice)              # type: ignore[union-attr]
                self.note_delete(ref, s)
        elif isinstance(s, ast.AugAssign) and not isinstance(s.target, ast.Name):
            if isinstance(s.target, ast.Subscript):
                ref = self.value(s.target.value)
                if isinstance(ref, MapRef):
                    self.map_update(ref, s.target.slice, s.op, s.value, s)
                    return False
            array = self.variable_index_target(s.target)
            skip = ""
            if array is not None:
                rhs = self.expr(s.value)
                ptr, elem = self.element_pointer(array, s.target.slice, s.target)  # type: ignore[union-attr]
                skip = self.label("noelem")
                self.emit("branch", name="eq", a=ptr, b=0, target=skip)
                place = Place(ptr, 0, elem, array.space)
            else:
                place = self.value(s.target)
                if not isinstance(place, Place):
                    raise self.error("this cannot be assigned", s.target)
                rhs = self.expr(s.value)
            self.loc = self.src.loc(s)
            if self.shared_value(place):
                self.atomic_update(place, s.op, rhs, s)
            else:
                old = self.read(place, s.target)
                self.write(place, self.binop(s.op, old, rhs, s), s)
            if skip:
                self.emit("label", name=skip)
        elif isinstance(s, ast.AugAssign):
            name = s.target.id
            if name not in self.locals:
                raise self.error(f"{name!r} is not defined before this augmented assignment",
                                 s.target, f"declare it first, e.g. {name}: u64 = 0")
            dst = self.locals[name]
            if isinstance(dst.type, PtrType):
                raise self.not_a_number(dst, s.target)
            value = self.binop(s.op, dst, self.expr(s.value), s, into=dst)
            # x op= e is x = x op e: the result must fit (or widens an unannotated x)
            self.local_type(name, value, None, s, None)
            self.convert_into(dst, value)
        elif isinstance(s, ast.With):
            self.reserve_block(s)
        elif isinstance(s, (ast.Return, ast.Break, ast.Continue)) and self.reserving:
            raise self.error(f"{type(s).__name__.lower()} inside a 'with ....reserve()' block "
                             "would leave a ring buffer record neither sent nor discarded",
                             s, "let the block end; test a flag after it")
        elif isinstance(s, ast.Return):
            value: Operand = 0
            if s.value is not None:
                value = self.expr(s.value)
                if self.src.node.returns is not None:       # a declared return type
                    self.check_store(value, self.fn.ret, s.value, "the return type",
                                     "or declare a wider return type")
                value = self.convert(value, self.fn.ret)
            self.emit("ret", a=value)
            return True
        elif isinstance(s, ast.If):
            else_label, end_label = self.label("else"), self.label("endif")
            before = set(self.nonnull)
            when_true, when_false = self.null_facts(s.test)
            self.branch(s.test, False, else_label if s.orelse else end_label)
            self.nonnull = before | when_true
            stale_before = dict(self.stale)
            body_ends = self.body(s.body)
            body_facts, else_facts = set(self.nonnull), before | when_false
            body_stale, self.stale = self.stale, dict(stale_before)
            else_ends = False
            if s.orelse:
                if not body_ends:
                    self.emit("jump", target=end_label)
                self.emit("label", name=else_label)
                self.nonnull = before | when_false
                else_ends = self.body(s.orelse)
                else_facts = set(self.nonnull)
                if else_ends and body_ends:
                    self.nonnull = before
                    return True
            self.emit("label", name=end_label)
            # after the if: what holds at the end of every branch that falls through
            # (a re-check inside 'if p is None:' counts; a reassignment there undoes)
            if body_ends:
                self.nonnull = else_facts
            elif else_ends:
                self.nonnull = body_facts
            else:
                self.nonnull = body_facts & else_facts
            # stale pointers: stale on any branch that falls through
            self.stale = merge_stale(None if body_ends else body_stale,
                                     None if else_ends else self.stale)
        elif isinstance(s, ast.For):
            return self.for_range(s)
        elif isinstance(s, ast.While):
            raise self.error("while loops are not supported: the verifier needs a bound",
                             s, "use for i in range(N) with a constant N, and break")
        elif isinstance(s, (ast.Break, ast.Continue)):
            if not self.loops:
                raise self.error("break/continue outside a loop", s)
            loop = self.loops[-1]
            (loop.stale_breaks if isinstance(s, ast.Break) else
             loop.stale_continues).append(dict(self.stale))
            self.emit("jump", target=loop.break_label if isinstance(s, ast.Break)
                      else loop.continue_label)
            return True
        elif isinstance(s, ast.Pass):
            pass
        elif isinstance(s, ast.Expr):
            if isinstance(s.value, ast.Constant) and isinstance(s.value.value, str):
                return False                            # a docstring
            v = s.value
            if isinstance(v, ast.Call) and isinstance(v.func, ast.Name) and \
                    v.func.id == "print" and self.src.globals.get("print", print) is print:
                self.print_call(v)
            else:
                self.value(v)
        else:
            raise self.error(f"{type(s).__name__} statements are not supported", s,
                             "use assignments, if/elif/else, for i in range(N), return")
        return False

    def null_facts(self, test: ast.expr) -> Tuple[Set[str], Set[str]]:
        """Pointer locals known not to be None when ``test`` is true / false."""
        def ptr_name(n: ast.expr) -> Optional[str]:
            if isinstance(n, ast.Name) and n.id in self.locals and \
                    isinstance(self.locals[n.id].type, PtrType):
                return n.id
            return None
        name = ptr_name(test)
        if name:
            return {name}, set()
        if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
            t, f = self.null_facts(test.operand)
            return f, t
        if isinstance(test, ast.Compare) and len(test.ops) == 1 and \
                isinstance(test.comparators[0], ast.Constant) and \
                test.comparators[0].value in (None, 0):
            name = ptr_name(test.left)
            if name:
                if isinstance(test.ops[0], (ast.IsNot, ast.NotEq)):
                    return {name}, set()
                if isinstance(test.ops[0], (ast.Is, ast.Eq)):
                    return set(), {name}
        if isinstance(test, ast.BoolOp):
            facts = [self.null_facts(v) for v in test.values]
            if isinstance(test.op, ast.And):
                return set().union(*(t for t, _ in facts)), set()
            return set(), set().union(*(f for _, f in facts))
        return set(), set()

    def constant_value(self, node: ast.expr) -> int:
        """The value of a constant integer expression (literal, -literal, int global, const)."""
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return node.value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -self.constant_value(node.operand)
        if isinstance(node, ast.Name) and node.id in self.loop_consts:
            return self.loop_consts[node.id]
        if isinstance(node, ast.Name) and node.id not in self.locals:
            g = self.src.globals.get(node.id)
            if isinstance(g, Const):
                return g.value
            if type(g) is int:
                return g
        raise self.error("range() bounds must be constant integers", node,
                         "use a literal, a module-level int, or a const()")

    # -- conditions ---------------------------------------------------------------------
    def branch(self, node: ast.expr, when: bool, target: str) -> None:
        """Jump to ``target`` if the truth of ``node`` equals ``when``; else fall through."""
        self.loc = self.src.loc(node) if hasattr(node, "lineno") else self.loc
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            self.branch(node.operand, not when, target)
        elif isinstance(node, ast.BoolOp):
            is_and = isinstance(node.op, ast.And)
            saved = set(self.nonnull)
            if is_and != when:
                # and-false / or-true: any operand decides
                for v in node.values:
                    self.branch(v, when, target)
                    self.nonnull |= self.null_facts(v)[0 if is_and else 1]
            else:
                skip = self.label("sc")
                for v in node.values[:-1]:
                    self.branch(v, not when, skip)
                    self.nonnull |= self.null_facts(v)[0 if is_and else 1]
                self.branch(node.values[-1], when, target)
                self.emit("label", name=skip)
            self.nonnull = saved
        elif isinstance(node, ast.Compare) and self.special_compare(node, when, target):
            pass
        elif isinstance(node, ast.Compare):
            skip = self.label("cmp") if len(node.ops) > 1 else ""
            left = self.expr(node.left)
            for i, (op, right_node) in enumerate(zip(node.ops, node.comparators)):
                right = self.expr(right_node)
                cond, a, b = self.compare(op, left, right, right_node)
                last = i == len(node.ops) - 1
                if when and not last:           # all must hold: leave early if one fails
                    self.emit("branch", name=_NEGATE[cond], a=a, b=b, target=skip)
                elif when:
                    self.emit("branch", name=cond, a=a, b=b, target=target)
                else:
                    self.emit("branch", name=_NEGATE[cond], a=a, b=b, target=target)
                left = right
            if skip:
                self.emit("label", name=skip)
        else:
            v = self.truth_operand(node)
            if isinstance(v, int):              # a register keeps both edges reachable
                v = self.materialize(v)
            self.emit("branch", name="ne" if when else "eq", a=v, b=0, target=target)

    def truth_operand(self, node: ast.expr) -> Operand:
        """``node`` for a truth test or ``is None``: a number, or a pointer (tested
        against NULL; the one thing a pointer takes part in besides reads)."""
        if isinstance(node, (ast.Name, ast.Attribute, ast.Subscript, ast.Call)):
            v = self.value(node)
            if isinstance(v, Place) and isinstance(self.scalar_type(v, node), PtrType):
                v = self.read(v, node)
            if isinstance(v, VReg) and isinstance(v.type, PtrType):
                return VReg(v.id, T.u64, v.local)
            return self.as_int(v, node)
        return self.expr(node)

    def special_compare(self, node: ast.Compare, when: bool, target: str) -> bool:
        """``k in m``, ``p is None``, ``s == "text"``: emitted, True; else False."""
        if len(node.ops) != 1:
            return False
        op, right = node.ops[0], node.comparators[0]
        if isinstance(op, (ast.In, ast.NotIn)):
            ref = self.value(right)
            if not isinstance(ref, MapRef):
                raise self.error("'in' tests map keys", right, "write key in some_map")
            ptr = self.lookup(ref, node.left)
            hit = isinstance(op, ast.In) == when
            self.emit("branch", name="ne" if hit else "eq", a=ptr, b=0, target=target)
            return True
        if isinstance(op, (ast.Is, ast.IsNot)):
            if not (isinstance(right, ast.Constant) and right.value is None):
                raise self.error("'is' only compares with None", node, "use == for numbers")
            v = self.materialize(self.truth_operand(node.left), T.u64)
            null = isinstance(op, ast.Is) == when
            self.emit("branch", name="eq" if null else "ne", a=v, b=0, target=target)
            return True
        if isinstance(op, (ast.Eq, ast.NotEq)):
            for a, b in ((node.left, right), (right, node.left)):
                if isinstance(b, ast.Constant) and isinstance(b.value, str):
                    self.string_branch(a, b.value, True, when == isinstance(op, ast.Eq), target)
                    return True
        return False

    def compare(self, op: ast.cmpop, left: Operand, right: Operand,
                node: Any) -> Tuple[str, Operand, Operand]:
        """The jump condition and operands of ``left op right`` (usual conversions)."""
        if type(op) not in _CMP:
            raise self.error(f"the {type(op).__name__} comparison is not supported", node,
                             "compare integers with == != < <= > >=")
        t = T.common_type(self.type_of(left), self.type_of(right))
        a, b = self.convert(left, t), self.convert(right, t)
        if isinstance(a, int):
            a = self.materialize(a)
        return _CMP[type(op)][1 if t.signed else 0], a, b

    # -- expressions --------------------------------------------------------------------
    def expr(self, node: ast.expr) -> Operand:
        """Compile an expression: an immediate (small non-negative literal) or a register."""
        if isinstance(node, ast.Constant):
            if type(node.value) is bool:
                return int(node.value)
            if type(node.value) is int:
                return self.load_const(node.value, node) if node.value < 1 << 31 else \
                    self.load_const(node.value, node, self.const_type(node, node.value))
            if isinstance(node.value, float):
                raise self.error("floating point is not supported in BPF programs", node,
                                 "use integers (e.g. nanoseconds instead of seconds)")
            if isinstance(node.value, str):
                raise self.error("a string literal is not a number", node,
                                 "store it in a char[N] field, compare a char[N] with it, "
                                 "or print it")
            raise self.error(f"unsupported constant {node.value!r}", node)
        if isinstance(node, (ast.Name, ast.Attribute, ast.Subscript)):
            return self.as_int(self.value(node), node)
        if isinstance(node, ast.BinOp):
            if type(node.op) not in _BINOP_NAMES:
                hint = "use // for integer division" if isinstance(node.op, ast.Div) else \
                    "use + - * // % & | ^ << >>"
                raise self.error(f"the operator {type(node.op).__name__} is not supported",
                                 node, hint)
            left = self.expr(node.left)
            right = self.expr(node.right)
            self.loc = self.src.loc(node)
            return self.binop(node.op, left, right, node)
        if isinstance(node, ast.UnaryOp):
            return self.unary(node)
        if isinstance(node, (ast.Compare, ast.BoolOp)):
            dst = self.vreg(T.i32)
            false = self.label("false")
            self.emit("mov", dst=dst, a=0)
            self.branch(node, False, false)
            self.emit("mov", dst=dst, a=1)
            self.emit("label", name=false)
            return dst
        if isinstance(node, ast.IfExp):
            return self.ifexp(node)
        if isinstance(node, ast.Call):
            return self.as_int(self.call(node), node)
        raise self.error(f"{type(node).__name__} expressions are not supported", node,
                         "use integer arithmetic, comparisons, and calls")

    def value(self, node: ast.expr) -> Any:
        """Compile an expression to any value: an operand, a :class:`Place`, a map, the
        context, or a pointer register."""
        if isinstance(node, ast.Name):
            return self.name(node)
        if isinstance(node, ast.Attribute):
            base = self.value(node.value)
            self.loc = self.src.loc(node)
            if isinstance(base, CtxRef):
                return self.ctx_field(base, node.attr, node)
            if isinstance(base, VReg) and isinstance(base.type, PtrType):
                name = node.value.id if isinstance(node.value, ast.Name) else ""
                if base.type.space in NULLABLE and not name and base.id not in self.nonnull_ids:
                    raise self.error("this map value may be None", node,
                                     "assign it to a local and check it: if p: ...")
                return self.member(self.deref(base, node, name), node.attr, node)
            if isinstance(base, Place):
                return self.member(base, node.attr, node)
            if isinstance(base, MapRef):
                raise self.error(f"map {base.name!r} has no attribute {node.attr!r} in "
                                 "programs", node, "call its methods: m.get(k), e.output(x)")
            raise self.error(f"a number has no field {node.attr!r}", node,
                             "use kernel_ptr(value, 'struct name') to read kernel memory")
        if isinstance(node, ast.Subscript):
            base = self.value(node.value)
            self.loc = self.src.loc(node)
            if isinstance(base, MapRef):
                return self.map_read(base, node.slice, None, node)
            if isinstance(base, VReg) and isinstance(base.type, PtrType):
                name = node.value.id if isinstance(node.value, ast.Name) else ""
                base = self.deref(base, node, name)
            if isinstance(node.slice, ast.Slice):
                return self.slice_place(base, node)
            if isinstance(base, Place):
                idx = self.constant_or_none(node.slice)
                if idx is None:
                    return self.read_variable_index(base, node)
                return self.index(base, idx, node)
            raise self.error("this value cannot be indexed", node)
        if isinstance(node, ast.Call):
            return self.call(node)
        return self.expr(node)

    def place_of(self, node: ast.expr) -> Any:
        """Like :meth:`value`, with a pointer local to a struct or array turned into the
        place it points to (checked for None first)."""
        v = self.value(node)
        if isinstance(v, VReg) and isinstance(v.type, PtrType) and v.type.space in NULLABLE \
                and not isinstance(v.type.target, T.IntType):
            name = node.id if isinstance(node, ast.Name) else ""
            if not name and v.id not in self.nonnull_ids:
                raise self.error("this map value may be None", node,
                                 "assign it to a local and check it: if p: ...")
            return self.deref(v, node, name)
        return v

    def constant_or_none(self, node: ast.expr) -> Optional[int]:
        """The value of a constant index: a literal, or a local holding a constant
        (the loop variable of an unrolled loop)."""
        try:
            return self.constant_value(node)
        except CompileError:
            return None

    def as_int(self, v: Any, node: Any) -> Operand:
        """A value as an integer operand (places are read). A pointer is never a
        number: using one as a number is a :class:`CompileError` (:meth:`not_a_number`)."""
        if isinstance(v, (int, VReg)) and not isinstance(v, bool):
            if isinstance(v, VReg) and isinstance(v.type, PtrType):
                raise self.not_a_number(v, node)
            return v
        if isinstance(v, Place):
            r = self.read(v, node)
            if isinstance(r.type, PtrType):
                raise self.not_a_number(r, node)
            return r
        if isinstance(v, MapRef):
            raise self.error(f"map {v.name!r} is not a number", node,
                             "read an entry: m[key]")
        if isinstance(v, CtxRef):
            raise self.error("the context is not a number", node, "read a field: ctx.name")
        raise self.error("this is not a number", node)

    def address(self, node: ast.expr) -> Operand:
        """An address argument (``probe_read_user(addr, T)``, ``kernel_ptr(addr, ...)``):
        a number, or a kernel/user pointer used as its address."""
        v = self.value(node)
        if isinstance(v, Place) and not isinstance(v.type, (T.ArrayType,)) and \
                not T.is_struct(v.type):
            v = self.read(v, node)
        if isinstance(v, VReg) and isinstance(v.type, PtrType) and \
                v.type.space in ("kernel", "user"):
            return VReg(v.id, T.u64, v.local)
        return self.convert(self.as_int(v, node), T.u64)

    def ifexp(self, node: ast.IfExp) -> Operand:
        """``a if cond else b``: the common type of both branches."""
        # type both branches first with a dry compile would cost code: compile each into
        # its own register, then convert into the result in each branch
        else_label, end = self.label("else"), self.label("endif")
        self.branch(node.test, False, else_label)
        before = self.nonnull
        when_true, when_false = self.null_facts(node.test)
        start = len(self.fn.ops)
        self.nonnull = before | when_true               # p.x if p else 0
        body = self.expr(node.body)
        ops_body = self.fn.ops[start:]
        del self.fn.ops[start:]
        start2 = len(self.fn.ops)
        self.nonnull = before | when_false
        orelse = self.expr(node.orelse)
        self.nonnull = before
        ops_else = self.fn.ops[start2:]
        del self.fn.ops[start2:]
        t = T.common_type(self.type_of(body), self.type_of(orelse))
        dst = self.vreg(t)
        self.fn.ops.extend(ops_body)
        self.convert_into(dst, self.convert(body, t))
        self.emit("jump", target=end)
        self.emit("label", name=else_label)
        self.fn.ops.extend(ops_else)
        self.convert_into(dst, self.convert(orelse, t))
        self.emit("label", name=end)
        return dst

    def name(self, node: ast.Name) -> Operand:
        """A local, or a constant global."""
        if node.id in self.locals:
            return self.locals[node.id]
        if node.id in self.objects:
            return self.objects[node.id]
        if node.id == self.ctx_name:
            assert self.ctx is not None
            return self.ctx
        if node.id in ("True", "False"):
            return int(node.id == "True")
        g = self.src.globals.get(node.id, _MISSING)
        if isinstance(g, MapDecl):
            return MapRef(g, self.unit.map_name(g, node.id))
        if isinstance(g, Const):
            if self.unit.rodata:
                off = self.unit.const_offset(node.id, g)
                addr = self.vreg(T.u64)
                self.emit("ldmapval", dst=addr, name=RODATA_MAP, off=0)
                return self.read(Place(addr, off, g.type, "map"), node)
            return self.load_const(g.value, node, g.type)
        if type(g) is int:
            return self.load_const(g, node)
        if g is _MISSING:
            raise self.error(f"unknown name {node.id!r}", node,
                             "assign the local before using it, or define the global")
        raise self.error(f"{node.id!r} ({type(g).__name__}) cannot be used as a value", node,
                         "only integers, const() values and locals are values")

    def result(self, t: T.IntType, a: VReg, into: Optional[VReg]) -> VReg:
        """The register for a result of type ``t`` computed from ``a``: ``into`` if it
        has that type, else ``a`` itself when it is a temporary, else a new one."""
        if into is not None and into.type == t:
            return into
        if not a.local and a.id not in self.local_ids:
            return VReg(a.id, t)
        return self.vreg(t)

    def binop(self, op: ast.operator, left: Operand, right: Operand, node: Any,
              into: Optional[VReg] = None) -> Operand:
        """``left op right`` with C semantics (computed in ``into`` when possible)."""
        sym = _BINOP_NAMES.get(type(op))
        if sym is None:
            raise self.error(f"the operator {type(op).__name__} is not supported", node,
                             "use // for integer division" if isinstance(op, ast.Div) else "")
        lt, rt = self.type_of(left), self.type_of(right)
        if sym in ("<<", ">>"):
            t = T.promote(lt)
            a = self.convert(left, t)
            if isinstance(right, int):
                count: Operand = right & (t.bits - 1)
            else:
                count = self.vreg(T.u64)
                self.emit("mov", dst=count, a=right)
                self.emit("binop", name="and", dst=count, a=count, b=t.bits - 1)
            name = "lsh" if sym == "<<" else ("arsh" if t.signed else "rsh")
            ma = self.materialize(a, t)
            dst = self.result(t, ma, into if not (isinstance(count, VReg) and into is not None
                                                   and count.id == into.id) else None)
            self.emit("binop", name=name, dst=dst, a=ma, b=count)
            if name == "lsh" and t.bits < 64:
                self.emit("norm", dst=dst, a=dst)
            return dst
        t = T.common_type(lt, rt)
        a, b = self.convert(left, t), self.convert(right, t)
        name = {"+": "add", "-": "sub", "*": "mul", "&": "and", "|": "or", "^": "xor",
                "//": "sdiv" if t.signed else "udiv",
                "%": "smod" if t.signed else "umod"}[sym]
        if isinstance(b, int) and b == 0 and name in ("sdiv", "udiv", "smod", "umod"):
            b = self.materialize(b, t)      # the verifier refuses a division by imm 0
        ma = self.materialize(a, t)
        hint = into if not (isinstance(b, VReg) and into is not None and b.id == into.id
                            and ma.id != into.id) else None
        dst = self.result(t, ma, hint)
        if isinstance(b, VReg) and b.id == dst.id and ma.id != dst.id:
            dst = self.vreg(t)
        self.emit("binop", name=name, dst=dst, a=ma, b=b)
        if t.bits < 64 and name in ("add", "sub", "mul", "sdiv", "smod"):
            self.emit("norm", dst=dst, a=dst)
        return dst

    def unary(self, node: ast.UnaryOp) -> Operand:
        """``-x``, ``~x``, ``+x``, ``not x``."""
        if isinstance(node.op, ast.Not):
            dst = self.vreg(T.i32)
            true = self.label("not")
            self.emit("mov", dst=dst, a=1)
            self.branch(node.operand, False, true)
            self.emit("mov", dst=dst, a=0)
            self.emit("label", name=true)
            return dst
        v = self.expr(node.operand)
        self.loc = self.src.loc(node)
        t = T.promote(self.type_of(v))
        a = self.materialize(self.convert(v, t), t)
        dst = self.result(t, a, None)
        if isinstance(node.op, ast.UAdd):
            return a
        if isinstance(node.op, ast.USub):
            self.emit("neg", dst=dst, a=a)
            if t.bits < 64:
                self.emit("norm", dst=dst, a=dst)
            return dst
        # ~x
        self.emit("binop", name="xor", dst=dst, a=a, b=-1)
        if t.bits < 64 and not t.signed:
            self.emit("norm", dst=dst, a=dst)
        return dst

    def conversion_operand(self, node: ast.expr, t: T.IntType) -> Operand:
        """The operand of ``t(value)``: a number; a kernel or user pointer only as
        ``u64(p)`` (its address, e.g. as a map key); other pointers are refused."""
        if isinstance(node, (ast.Name, ast.Attribute, ast.Subscript, ast.Call)):
            v = self.value(node)
            if isinstance(v, Place) and not isinstance(v.type, T.ArrayType) and \
                    not T.is_struct(v.type) and isinstance(self.scalar_type(v, node), PtrType):
                v = self.read(v, node)
            if isinstance(v, VReg) and isinstance(v.type, PtrType) and t == T.u64 and \
                    v.type.space in ("kernel", "user"):
                return VReg(v.id, T.u64, v.local)
            return self.as_int(v, node)
        return self.expr(node)

    def call(self, node: ast.Call) -> Any:
        """Conversions (``u8(x)``), helpers, map methods and calls of other compiled
        functions."""
        if isinstance(node.func, ast.Attribute):
            ref = self.value(node.func.value)
            if isinstance(ref, MapRef):
                self.loc = self.src.loc(node)
                return self.map_method(ref, node.func.attr, node)
            if isinstance(ref, CtxRef) and node.func.attr == "load":
                self.loc = self.src.loc(node)
                return self.packet_load(ref, node)
            raise self.error("only map methods and ctx.load() can be called this way", node,
                             "call helpers and functions by name")
        if not isinstance(node.func, ast.Name):
            raise self.error("only calls of plain names are supported", node,
                             "call helpers and functions by name")
        fname = node.func.id
        target = self.src.globals.get(fname, _MISSING)
        if fname == "print" and target in (_MISSING, print):
            self.print_call(node)
            return 0
        if T.is_struct(target):
            raise self.error(f"{fname}() makes a struct: assign it to a local", node,
                             f"e = {fname}()")
        helper_name = getattr(target, "__pybpf_helper__", None) or (
            fname if target is _MISSING else None)
        if helper_name in DEST_HELPERS and self.dest_helper(node) is not None:
            raise self.error(f"{fname}() writes into a destination: assign it", node,
                             f"e.field = {fname}(...), or x = {fname}(...)")
        if helper_name is not None and helper_name not in HELPERS:
            self.loc = self.src.loc(node)
            got = self.builtin(helper_name, node)
            if got is not None:
                return got
        if node.keywords:
            raise self.error("keyword arguments are not supported", node, "pass arguments by position")
        if isinstance(target, T.IntType) or (target is _MISSING and fname in T.INT_TYPES):
            t = target if isinstance(target, T.IntType) else T.INT_TYPES[fname]
            if len(node.args) != 1:
                raise self.error(f"{fname}() takes one value", node)
            v = self.conversion_operand(node.args[0], t)
            self.loc = self.src.loc(node)
            if isinstance(v, int):
                return self.load_const(t.wrap(v), node, t)
            dst = self.vreg(t)
            self.convert_into(dst, v)
            return dst
        helper = getattr(target, "__pybpf_helper__", None) or (
            fname if target is _MISSING and fname in HELPERS else None)
        if helper in HELPERS:
            kernel_name, t, post = HELPERS[helper]
            if node.args:
                raise self.error(f"{fname}() takes no arguments", node)
            self.loc = self.src.loc(node)
            raw = self.vreg(T.u64)
            self.emit("helper", dst=raw, name=kernel_name)
            if post == "task":
                from ...btf import vmlinux
                from ...btf.format import Kind
                tid_ = vmlinux().type_id("task_struct", Kind.STRUCT)
                return VReg(raw.id, PtrType(KType(tid_, "struct task_struct"), "kernel"))
            if post == "high":
                dst = self.vreg(t)
                self.emit("binop", name="rsh", dst=dst, a=raw, b=32)
                return dst
            if post == "low" or t.bits < 64:
                dst = self.vreg(t)
                self.emit("norm", dst=dst, a=raw)
                return dst
            return raw
        if isinstance(target, _pytypes.FunctionType):
            name, params, ret = self.resolve_function(target, self.src.loc(node))
            if len(node.args) != len(params):
                raise self.error(f"{fname}() takes {len(params)} arguments, "
                                 f"{len(node.args)} given", node)
            args = []
            for i, (arg, pt) in enumerate(zip(node.args, params)):
                v = self.expr(arg)
                self.check_store(v, pt, arg, f"parameter {target.__code__.co_varnames[i]!r} "
                                 f"of {fname}()", "or widen the parameter")
                args.append(self.convert(v, pt))
            self.loc = self.src.loc(node)
            dst = self.vreg(ret)
            if self.kind is not None and self.ctx is not None and len(params) < 5:
                args.append(self.ctx.reg)       # the hidden context argument
            self.emit("call", dst=dst, name=name, args=tuple(args))
            if name not in self.fn.calls:
                self.fn.calls.append(name)
            self.note_call(target, node)
            return dst
        if target is _MISSING:
            raise self.error(f"unknown function {fname!r}", node,
                             "available helpers: " + ", ".join(sorted(HELPERS)))
        raise self.error(f"{fname!r} cannot be called in a BPF program", node,
                         "call helpers, integer types, or other plain functions")


_MISSING = object()
