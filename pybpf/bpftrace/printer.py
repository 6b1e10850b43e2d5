"""A syntax tree back to canonical bpftrace source (parsing the output gives an equal
tree): one statement per line, tab indentation, spaces around binary operators and
``:``, parentheses only where precedence needs them, strings with ``\\xNN`` for
anything not printable. Preamble items are printed as they were written.

Limit: a parenthesised expression that begins with a bare identifier followed by ``*``
(``(x * 2)``) cannot be written in bpftrace's syntax at all (it lexes as a cast); the
parser never produces one inside parentheses, so the printer never needs it.
"""

from __future__ import annotations

from typing import List

from . import ast as A

__all__ = ["format_program", "format_expr", "format_stmts"]

_TERNARY, _UNARY, _POSTFIX = 0, 11, 12


def _string(value: bytes) -> str:
    out = ['"']
    for b in value:
        ch = chr(b)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif 0x20 <= b < 0x7F:
            out.append(ch)
        else:
            out.append(f"\\x{b:02x}")
    out.append('"')
    return "".join(out)


def _prec(e: A.Expr) -> int:
    if isinstance(e, A.Ternary):
        return _TERNARY
    if isinstance(e, A.Binop):
        return A.BINARY_OPS[e.op]
    if isinstance(e, A.Cast) or (isinstance(e, A.Unop) and not e.is_post):
        return _UNARY
    if isinstance(e, A.Integer) and e.value < 0:
        return _UNARY                    # "-5" must not follow "." or "-" unspaced
    return _POSTFIX


def _wrap(e: A.Expr, need: int) -> str:
    text = format_expr(e)
    return f"({text})" if _prec(e) < need else text


def format_expr(e: A.Expr) -> str:
    """Source text of one expression."""
    if isinstance(e, A.Integer):
        return str(e.value)
    if isinstance(e, A.String):
        return _string(e.value)
    if isinstance(e, (A.StackMode, A.Builtin, A.Identifier, A.Variable)):
        return e.name
    if isinstance(e, A.PositionalParameter):
        return "$#" if e.is_count else f"${e.n}"
    if isinstance(e, A.Map):
        if not e.keys:
            return e.name
        return e.name + "[" + ", ".join(format_expr(k) for k in e.keys) + "]"
    if isinstance(e, A.Call):
        return e.name + "(" + ", ".join(format_expr(a) for a in e.args) + ")"
    if isinstance(e, A.Binop):
        p = A.BINARY_OPS[e.op]
        return f"{_wrap(e.left, p)} {e.op} {_wrap(e.right, p + 1)}"
    if isinstance(e, A.Unop):
        if e.is_post:
            return format_expr(e.expr) + e.op
        inner = _wrap(e.expr, _UNARY)
        if e.op == "-" and (inner[:1].isdigit() or inner[:1] == "-"):
            inner = f"({inner})" if inner[:1].isdigit() else " " + inner
        return e.op + inner
    if isinstance(e, A.Ternary):
        return (f"{_wrap(e.cond, 1)} ? {format_expr(e.left)} : "
                f"{_wrap(e.right, _TERNARY)}")
    if isinstance(e, A.FieldAccess):
        return _wrap(e.expr, _POSTFIX) + ("->" if e.arrow else ".") + e.field
    if isinstance(e, A.TupleAccess):
        return f"{_wrap(e.expr, _POSTFIX)}.{e.index}"
    if isinstance(e, A.ArrayAccess):
        return f"{_wrap(e.expr, _POSTFIX)}[{format_expr(e.index)}]"
    if isinstance(e, A.Cast):
        stars = " " + "*" * e.ptr_depth if e.ptr_depth else ""
        return f"({e.type_name}{stars}){_wrap(e.expr, _UNARY)}"
    if isinstance(e, A.Tuple):
        return "(" + ", ".join(format_expr(x) for x in e.elems) + ")"
    raise TypeError(f"not an expression node: {type(e).__name__}")


def _stmt(s: A.Stmt, indent: str, out: List[str]) -> None:
    if isinstance(s, A.ExprStatement):
        out.append(f"{indent}{format_expr(s.expr)};")
    elif isinstance(s, (A.AssignMap, A.AssignVar)):
        target = s.map if isinstance(s, A.AssignMap) else s.var
        op = (s.op or "") + "="
        out.append(f"{indent}{format_expr(target)} {op} {format_expr(s.value)};")
    elif isinstance(s, A.Jump):
        out.append(f"{indent}{s.kind};")
    elif isinstance(s, A.If):
        head = f"if ({format_expr(s.cond)}) {{"
        out.append(indent + head)
        while True:
            _block(s.then, indent, out)
            if s.orelse is None:
                out.append(indent + "}")
                return
            if len(s.orelse) == 1 and isinstance(s.orelse[0], A.If):
                s = s.orelse[0]
                out.append(f"{indent}}} else if ({format_expr(s.cond)}) {{")
                continue
            out.append(indent + "} else {")
            _block(s.orelse, indent, out)
            out.append(indent + "}")
            return
    elif isinstance(s, A.Unroll):
        out.append(f"{indent}unroll ({format_expr(s.count)}) {{")
        _block(s.body, indent, out)
        out.append(indent + "}")
    elif isinstance(s, A.While):
        out.append(f"{indent}while ({format_expr(s.cond)}) {{")
        _block(s.body, indent, out)
        out.append(indent + "}")
    elif isinstance(s, A.For):
        out.append(f"{indent}for ({s.var.name} : {s.map.name}) {{")
        _block(s.body, indent, out)
        out.append(indent + "}")
    else:
        raise TypeError(f"not a statement node: {type(s).__name__}")


def _block(stmts: List[A.Stmt], indent: str, out: List[str]) -> None:
    for s in stmts:
        _stmt(s, indent + "\t", out)


def format_stmts(stmts: List[A.Stmt], indent: str = "") -> str:
    """Source lines of a statement list."""
    out: List[str] = []
    for s in stmts:
        _stmt(s, indent, out)
    return "\n".join(out)


def format_program(prog: A.Program) -> str:
    """Source text of a whole program (ends with a newline)."""
    out: List[str] = [d.text for d in prog.c_definitions]
    if out:
        out.append("")
    for probe in prog.probes:
        out.append(",\n".join(ap.raw for ap in probe.attach_points))
        if probe.pred is not None:
            out.append(f"/ {format_expr(probe.pred.expr)} /")
        out.append("{")
        _block(probe.body, "", out)
        out.append("}")
        out.append("")
    return "\n".join(out)
