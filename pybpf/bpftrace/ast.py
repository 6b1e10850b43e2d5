"""The typed syntax tree of a bpftrace program (what :mod:`pybpf.bpftrace.parser` builds).

Every node has ``loc``: the :class:`~pybpf.bpftrace.errors.Location` bpftrace 0.17 gives
that node (so later errors point where bpftrace's do: a binary operation at its
operator, a call or map over its whole text, a cast from ``(`` to its first ``)`` or
``*``), and ``span``: the whole text of the node. Neither takes part in ``==``, so two
trees compare equal when they mean the same program.

Departures from bpftrace's own tree, for a faithful printer: ``a->f`` is
``FieldAccess(arrow=True)`` (bpftrace wraps ``a`` in a dereference), ``t.0`` is
``TupleAccess``, and compound assignments keep their operator (``op``) and right-hand
side instead of a built ``Binop``; :meth:`AssignMap.value_expr` gives that ``Binop``.
"""

from __future__ import annotations

from typing import List, Optional, Union

from .errors import Location
from .._records import field, record

__all__ = [
    "Node", "Expr", "Integer", "String", "StackMode", "Builtin", "Identifier",
    "PositionalParameter", "Variable", "Map", "Call", "Binop", "Unop", "Ternary",
    "FieldAccess", "TupleAccess", "ArrayAccess", "Cast", "Tuple", "Stmt",
    "ExprStatement", "AssignMap", "AssignVar", "Jump", "If", "Unroll", "While", "For",
    "Predicate", "AttachPoint", "Probe", "CDefinition", "Program", "BINARY_OPS",
    "UNARY_OPS", "COMPOUND_OPS",
]

_NOWHERE = Location(1, 1, 1, 1)

#: binary operators by bpftrace 0.17's precedence level (higher binds tighter); all
#: are left-associative
BINARY_OPS = {
    "||": 1, "&&": 2, "|": 3, "^": 4, "&": 5, "==": 6, "!=": 6,
    "<": 7, "<=": 7, ">": 7, ">=": 7, "<<": 8, ">>": 8, "+": 9, "-": 9,
    "*": 10, "/": 10, "%": 10,
}
#: prefix operators: dereference, bitwise not, logical not, negation, ++, --
UNARY_OPS = ("*", "~", "!", "-", "++", "--")
#: operators of compound assignments (``x OP= v``)
COMPOUND_OPS = ("<<", ">>", "+", "-", "*", "/", "%", "&", "|", "^")


@record
class Node:
    """Base of every node: ``loc`` where bpftrace reports it, ``span`` its whole text."""


def _loc() -> Location:
    return field(default=_NOWHERE, compare=False, repr=False)  # type: ignore[return-value]


@record
class Expr(Node):
    """An expression."""


@record
class Integer(Expr):
    """An integer literal; ``value`` is the 64-bit word as a signed number (bpftrace 0.17
    types every literal int64); ``-5`` is one literal."""

    value: int
    loc: Location = _loc()
    span: Location = _loc()


@record
class String(Expr):
    """A string literal; ``value`` holds its bytes after escapes."""

    value: bytes
    loc: Location = _loc()
    span: Location = _loc()


@record
class StackMode(Expr):
    """``bpftrace`` or ``perf`` (an argument of ``kstack``/``ustack``)."""

    name: str
    loc: Location = _loc()
    span: Location = _loc()


@record
class Builtin(Expr):
    """A builtin variable: ``pid``, ``arg0``, ``kstack`` (without parentheses)..."""

    name: str
    loc: Location = _loc()
    span: Location = _loc()


@record
class Identifier(Expr):
    """A bare name: a type in ``sizeof(T)``, an enum constant, a struct type name."""

    name: str
    loc: Location = _loc()
    span: Location = _loc()


@record
class PositionalParameter(Expr):
    """``$N`` (``n`` >= 1) or ``$#`` (``is_count``, ``n`` = 0)."""

    n: int
    is_count: bool = False
    loc: Location = _loc()
    span: Location = _loc()


@record
class Variable(Expr):
    """A scratch variable, ``name`` with its ``$``."""

    name: str
    loc: Location = _loc()
    span: Location = _loc()


@record
class Map(Expr):
    """A map, ``name`` with its ``@`` (``@`` alone is the anonymous map); ``keys`` are the
    bracketed expressions (several make a tuple key; none: a scalar map)."""

    name: str
    keys: List[Expr] = field(default_factory=list)
    loc: Location = _loc()
    span: Location = _loc()


@record
class Call(Expr):
    """A function call ``name(args)``."""

    name: str
    args: List[Expr] = field(default_factory=list)
    loc: Location = _loc()
    span: Location = _loc()


@record
class Binop(Expr):
    """``left op right``; ``loc`` is the operator's."""

    left: Expr
    op: str
    right: Expr
    loc: Location = _loc()
    span: Location = _loc()


@record
class Unop(Expr):
    """``op expr`` (prefix: ``*``, ``~``, ``!``, ``-``, ``++``, ``--``) or, with
    ``is_post``, ``expr++``/``expr--``."""

    op: str
    expr: Expr
    is_post: bool = False
    loc: Location = _loc()
    span: Location = _loc()


@record
class Ternary(Expr):
    """``cond ? left : right``."""

    cond: Expr
    left: Expr
    right: Expr
    loc: Location = _loc()
    span: Location = _loc()


@record
class FieldAccess(Expr):
    """``expr.field`` or, with ``arrow``, ``expr->field``."""

    expr: Expr
    field: str
    arrow: bool = False
    loc: Location = _loc()
    span: Location = _loc()
    #: where the ``->`` or ``.`` token is (bpftrace puts the implicit dereference of
    #: ``a->f`` there)
    op_loc: Location = _loc()


@record
class TupleAccess(Expr):
    """``expr.N``: element N of a tuple."""

    expr: Expr
    index: int
    loc: Location = _loc()
    span: Location = _loc()


@record
class ArrayAccess(Expr):
    """``expr[index]``."""

    expr: Expr
    index: Expr
    loc: Location = _loc()
    span: Location = _loc()


@record
class Cast(Expr):
    """``(type)expr``, ``(type *)expr`` or ``(type **)expr``: ``type_name`` is as lexed
    (``uint32``, ``struct task_struct``), ``ptr_depth`` the number of stars."""

    type_name: str
    ptr_depth: int
    expr: Expr
    loc: Location = _loc()
    span: Location = _loc()


@record
class Tuple(Expr):
    """``(a, b, ...)``, two elements or more."""

    elems: List[Expr]
    loc: Location = _loc()
    span: Location = _loc()


@record
class Stmt(Node):
    """A statement."""


@record
class ExprStatement(Stmt):
    """An expression evaluated for its effect (a call, ``@x++``)."""

    expr: Expr
    loc: Location = _loc()
    span: Location = _loc()


@record
class AssignMap(Stmt):
    """``map = value`` or, with ``op``, ``map op= value``."""

    map: Map
    value: Expr
    op: Optional[str] = None
    loc: Location = _loc()
    span: Location = _loc()
    #: where the compound operator is (``+=``), bpftrace's location for the ``Binop``
    op_loc: Location = _loc()

    def value_expr(self) -> Expr:
        """The value stored: ``value``, or ``map op value`` for a compound assignment."""
        if self.op is None:
            return self.value
        return Binop(self.map, self.op, self.value, loc=self.op_loc, span=self.span)


@record
class AssignVar(Stmt):
    """``$var = value`` or, with ``op``, ``$var op= value``."""

    var: Variable
    value: Expr
    op: Optional[str] = None
    loc: Location = _loc()
    span: Location = _loc()
    #: where the compound operator is (``+=``), bpftrace's location for the ``Binop``
    op_loc: Location = _loc()

    def value_expr(self) -> Expr:
        """The value stored: ``value``, or ``var op value`` for a compound assignment."""
        if self.op is None:
            return self.value
        return Binop(self.var, self.op, self.value, loc=self.op_loc, span=self.span)


@record
class Jump(Stmt):
    """``break``, ``continue`` or ``return`` (``kind``)."""

    kind: str
    loc: Location = _loc()
    span: Location = _loc()


@record
class If(Stmt):
    """``if (cond) {then} else {orelse}``; ``else if`` is an ``orelse`` of one ``If``;
    ``orelse`` is None without ``else``. ``loc`` is 1:1-1 as in bpftrace 0.17 (which
    gives ``if`` no location); ``span`` is the real range."""

    cond: Expr
    then: List[Stmt]
    orelse: Optional[List[Stmt]] = None
    loc: Location = _loc()
    span: Location = _loc()


@record
class Unroll(Stmt):
    """``unroll (count) {body}``; ``count`` is an integer literal or a ``$N``."""

    count: Union[Integer, PositionalParameter]
    body: List[Stmt]
    loc: Location = _loc()
    span: Location = _loc()


@record
class While(Stmt):
    """``while (cond) {body}``."""

    cond: Expr
    body: List[Stmt]
    loc: Location = _loc()
    span: Location = _loc()


@record
class For(Stmt):
    """``for ($kv : @map) {body}`` (bpftrace 0.21; accepted only when the parser is asked
    for newer syntax)."""

    var: Variable
    map: Map
    body: List[Stmt]
    loc: Location = _loc()
    span: Location = _loc()


@record
class Predicate(Node):
    """``/expr/`` before a probe's block."""

    expr: Expr
    loc: Location = _loc()
    span: Location = _loc()


@record
class AttachPoint(Node):
    """One attach point as bpftrace 0.17 reassembles it from tokens (``raw``): white space
    dropped, integers in decimal (``kprobe:f+0x10`` is ``kprobe:f+16``), strings
    re-quoted, ``$N`` kept. Splitting it into provider, target and function is the next
    stage's work (bpftrace's attach-point parser)."""

    raw: str
    loc: Location = _loc()
    span: Location = _loc()

    @property
    def provider(self) -> str:
        """The text before the first ``:`` (``kprobe``, ``t``, ``BEGIN``)."""
        return self.raw.split(":", 1)[0]


@record
class Probe(Node):
    """``ap1, ap2 /pred/ { body }``."""

    attach_points: List[AttachPoint]
    pred: Optional[Predicate]
    body: List[Stmt]
    loc: Location = _loc()
    span: Location = _loc()


@record
class CDefinition(Node):
    """A preamble item as lexed: ``kind`` is ``preproc`` (one ``#`` line) or ``struct``
    (a whole ``struct``/``union``/``enum`` definition), ``text`` its raw text."""

    kind: str
    text: str
    loc: Location = _loc()
    span: Location = _loc()


@record
class Program(Node):
    """A whole program: preamble items then probes. ``preamble`` is filled by
    :func:`pybpf.bpftrace.parser.parse_program` (a ``preamble.Preamble``)."""

    c_definitions: List[CDefinition]
    probes: List[Probe]
    preamble: object = field(default=None, compare=False, repr=False)
    loc: Location = _loc()
    span: Location = _loc()
