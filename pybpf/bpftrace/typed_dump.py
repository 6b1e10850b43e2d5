"""The typed tree as ``bpftrace -d`` prints it after its semantic pass (0.17's AST
printer): one node a line, one space of indent per level, ``:: type[T, ctx: N,
AS(space)]`` after the nodes 0.17 prints types for (literals, builtins, identifiers,
calls, maps, variables, binary operators). Used to compare our types with bpftrace's,
and by ``-d``.

0.17's quirks are kept: a post-increment prints its operand first, ``while`` leaves
the indent two levels deeper for what follows, a double-pointer cast prints one
``*``, ``a->f`` prints as ``.`` over ``dereference``.
"""

from __future__ import annotations

from typing import Any, List, Optional

from . import ast as A
from .types import node_type

__all__ = ["dump_program"]

_UNOP = {"*": "dereference", "~": "~", "!": "!", "-": "-", "++": "++", "--": "--"}


def _escape(data: bytes) -> str:
    out = []
    for b in data:
        c = chr(b)
        if 32 <= b < 127:
            out.append("\\\\" if c == "\\" else '\\"' if c == '"' else c)
        elif c == "\n":
            out.append("\\n")
        elif c == "\t":
            out.append("\\t")
        elif c == "\r":
            out.append("\\r")
        else:
            out.append(f"\\x{b:02x}")
    return "".join(out)


class _Printer:
    def __init__(self, types: bool) -> None:
        self.lines: List[str] = []
        self.depth = 0
        self.types = types

    def t(self, node: Any) -> str:
        return " :: " + node_type(node).dump() if self.types else ""

    def out(self, text: str) -> None:
        self.lines.append(" " * self.depth + text)

    def expr(self, e: A.Expr) -> None:
        d = self.depth
        if isinstance(e, A.Integer):
            self.out(f"int: {e.value}{self.t(e)}")
        elif isinstance(e, A.PositionalParameter):
            self.out(("param: $#" if e.is_count else f"param: ${e.n}") + self.t(e))
        elif isinstance(e, A.String):
            self.out(f"string: {_escape(e.value)}{self.t(e)}")
        elif isinstance(e, A.StackMode):
            self.out(f"stack_mode: {e.name}{self.t(e)}")
        elif isinstance(e, A.Builtin):
            self.out(f"builtin: {e.name}{self.t(e)}")
        elif isinstance(e, A.Identifier):
            self.out(f"identifier: {e.name}{self.t(e)}")
        elif isinstance(e, A.Call):
            self.out(f"call: {e.name}{self.t(e)}")
            self.children(e.args)
        elif isinstance(e, A.Map):
            self.out(f"map: {e.name}{self.t(e)}")
            self.children(e.keys)
        elif isinstance(e, A.Variable):
            self.out(f"variable: {e.name}{self.t(e)}")
        elif isinstance(e, A.Binop):
            self.out(f"{e.op}{self.t(e)}")
            self.children([e.left, e.right])
        elif isinstance(e, A.Unop):
            if e.is_post:
                self.expr(e.expr)
                self.lines.append(" " * (d + 1) + _UNOP[e.op])
            else:
                self.out(_UNOP[e.op])
                self.children([e.expr])
        elif isinstance(e, A.Ternary):
            self.out("?:")
            self.children([e.cond, e.left, e.right])
        elif isinstance(e, A.FieldAccess):
            self.out(".")
            inner = getattr(e, "deref", None)
            if e.arrow and inner is None:
                inner = A.Unop("*", e.expr)
            self.children([inner if e.arrow else e.expr])
            self.lines.append(" " * d + " " + e.field)
        elif isinstance(e, A.TupleAccess):
            self.out(".")
            self.children([e.expr])
            self.lines.append(" " * d + f" {e.index}")
        elif isinstance(e, A.ArrayAccess):
            self.out("[]")
            self.children([e.expr, e.index])
        elif isinstance(e, A.Cast):
            star = "*" if e.ptr_depth else ""
            self.out(f"({e.type_name}{star})")
            self.children([e.expr])
        elif isinstance(e, A.Tuple):
            self.out("tuple:")
            self.children(e.elems)

    def children(self, nodes: List[Any]) -> None:
        self.depth += 1
        for n in nodes:
            self.expr(n)
        self.depth -= 1

    def stmt(self, s: A.Stmt) -> None:
        d = self.depth
        ind = " " * d
        if isinstance(s, A.ExprStatement):
            self.expr(s.expr)
        elif isinstance(s, (A.AssignMap, A.AssignVar)):
            self.out("=")
            target = s.map if isinstance(s, A.AssignMap) else s.var
            value = getattr(s, "binop", None) or s.value_expr()
            self.children([target, value])
        elif isinstance(s, A.If):
            self.out("if")
            self.depth += 1
            self.expr(s.cond)
            self.depth += 1
            self.lines.append(ind + " then")
            for x in s.then:
                self.stmt(x)
            if s.orelse is not None:
                self.lines.append(ind + " else")
                for x in s.orelse:
                    self.stmt(x)
            self.depth -= 2
        elif isinstance(s, A.Unroll):
            self.out("unroll")
            self.depth += 1
            self.expr(s.count)
            self.lines.append(ind + " block")
            self.depth += 1
            for x in s.body:
                self.stmt(x)
            self.depth -= 2
        elif isinstance(s, A.While):
            self.out("while(")
            self.depth += 1
            self.expr(s.cond)
            self.depth += 1
            self.lines.append(ind + " )")
            for x in s.body:
                self.stmt(x)
        elif isinstance(s, A.Jump):
            self.out(s.kind)


def dump_program(program: A.Program, attach_points: Optional[List[List[Any]]] = None,
                 types: bool = True) -> str:
    """``Program`` and everything under it, as 0.17's ``-d`` prints the tree after
    semantic analysis (``types=False``: as after parsing). ``attach_points`` (parsed
    :class:`~pybpf.bpftrace.probes.AttachPoint` lists) give the probe names; without
    them the raw attach-point text is printed."""
    p = _Printer(types)
    p.lines.append("Program")
    p.depth = 1
    for i, probe in enumerate(program.probes):
        if attach_points is not None and i < len(attach_points):
            names = [ap.name() for ap in attach_points[i]]
        else:
            names = [ap.raw for ap in probe.attach_points]
        for n in names:
            p.out(n)
        p.depth += 1
        if probe.pred is not None:
            p.out("pred")
            p.children([probe.pred.expr])
        for s in probe.body:
            p.stmt(s)
        p.depth -= 1
    return "\n".join(p.lines) + "\n"
