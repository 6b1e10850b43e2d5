"""bpftrace 0.17's grammar (its ``src/parser.yy``) as a recursive-descent parser.

Precedence, lowest first, all binary operators left-associative: ``?:`` (right), ``||``,
``&&``, ``|``, ``^``, ``&``, ``== !=``, ``< <= > >=``, ``<< >>``, ``+ -``, ``* / %``, then
casts and prefix ``* ~ ! -``, prefix ``++ --`` (maps and variables only), and postfix
``.field ->field .N [i]`` and ``++ --``. Like bpftrace:

* ``-5`` is one literal, ``-$x`` a negation; ``(name)`` and ``(name *)`` are always casts,
  so ``(x) + 1`` is a syntax error at ``+``;
* assignment is a statement, not an expression: ``$a = $b = 1`` is an error at the
  second ``=``; ``$t.0 = 1`` is "Tuples are immutable..."; ``f(...)`` for a name that is
  not a function is "Unknown function: f"; ``++`` on a builtin is an error;
* statements are separated by ``;`` (optional after the last one and never after a
  block-ending ``if``/``while``/``unroll``); a probe is attach points, an optional
  ``/predicate/`` and a block; preamble items come before the first probe.

The parser stops at the first syntax error and reports it where bison does (the first
token that cannot continue the program), after every lexical error met up to that token.
Errors are :class:`~pybpf.bpftrace.errors.BpftraceSyntaxError`. ``allow_for=True`` also
accepts newer syntax 0.17 refuses: ``for ($kv : @map) { }`` (bpftrace 0.21) and
``offsetof(struct x, f)`` (0.18: a call to ``offsetof``).
"""

from __future__ import annotations

from operator import is_
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

from .._nogc import gc_paused
from . import ast as A
from .errors import BpftraceSyntaxError, Diagnostic, Location
from .lexer import TOKEN_NAMES, LexResult, Token, tokenize

__all__ = ["parse", "parse_program", "parse_expression", "parse_listing", "Parser"]

_BINOPS: Dict[str, Tuple[str, int]] = {
    "LOR": ("||", 1), "LAND": ("&&", 2), "BOR": ("|", 3), "BXOR": ("^", 4),
    "BAND": ("&", 5), "EQ": ("==", 6), "NE": ("!=", 6), "LE": ("<=", 7), "GE": (">=", 7),
    "LT": ("<", 7), "GT": (">", 7), "LEFT": ("<<", 8), "RIGHT": (">>", 8),
    "PLUS": ("+", 9), "MINUS": ("-", 9), "MUL": ("*", 10), "DIV": ("/", 10),
    "MOD": ("%", 10),
}
_COMPOUND = {"LEFTASSIGN": "<<", "RIGHTASSIGN": ">>", "PLUSASSIGN": "+", "MINUSASSIGN": "-",
             "MULASSIGN": "*", "DIVASSIGN": "/", "MODASSIGN": "%", "BANDASSIGN": "&",
             "BORASSIGN": "|", "BXORASSIGN": "^"}
_UNARY = {"MUL": "*", "BNOT": "~", "LNOT": "!", "MINUS": "-"}
_IDENT_KINDS = frozenset(["IDENT", "BUILTIN", "CALL", "CALL_BUILTIN", "STACK_MODE"])
_EXPR_START = frozenset(["VAR", "MAP", "INT", "MINUS", "STRING", "STACK_MODE", "BUILTIN",
                         "CALL_BUILTIN", "CALL", "IDENT", "LPAREN", "PARAM", "PARAMCOUNT",
                         "MUL", "BNOT", "LNOT", "INCREMENT", "DECREMENT"])
#: the first tokens of a primary expression (no prefix operator, no cast) and what may
#: follow a primary expression in a postfix one
_PLAIN_START = frozenset(["VAR", "MAP", "INT", "STRING", "STACK_MODE", "BUILTIN",
                          "CALL_BUILTIN", "CALL", "IDENT", "PARAM", "PARAMCOUNT"])
_POSTFIX = frozenset(["DOT", "PTR", "LBRACKET", "INCREMENT", "DECREMENT"])
_JUMPS = {"BREAK": "break", "CONTINUE": "continue", "RETURN": "return"}
_AP_TEXT = {"COLON": ":", "DOT": ".", "PLUS": "+", "MUL": "*", "LBRACKET": "[",
            "RBRACKET": "]"}
_LONG_MAX = (1 << 63) - 1
_ORIGIN = Location(1, 1, 1, 1)


class _Stop(Exception):
    def __init__(self, diag: Diagnostic, index: int) -> None:
        super().__init__(diag.message)
        self.diag, self.index = diag, index


def _signed64(v: int) -> int:
    v &= (1 << 64) - 1
    return v - (1 << 64) if v >= 1 << 63 else v


class Parser:
    """One parse of one source text; :meth:`program` and :meth:`expression` are the
    entry points (use :func:`parse`)."""

    def __init__(self, source: str, filename: str = "stdin",
                 macros: Optional[Dict[str, str]] = None, allow_for: bool = False,
                 listing: bool = False, reuse: Optional[LexResult] = None,
                 record: bool = False, stmts_from: Optional["Parser"] = None) -> None:
        self.source, self.filename, self.allow_for = source, filename, allow_for
        self.listing = listing
        self.lexed = tokenize(source, macros, reuse)
        self.toks: List[Token] = self.lexed.tokens
        #: the tokens' kinds, then the last one's again: ``kinds[i + k]`` is
        #: ``peek(k).kind`` for k up to 3 (the hot paths read it without a call)
        self.kinds: List[str] = [t.kind for t in self.toks] + [self.toks[-1].kind] * 3
        self.i = 0
        self._paren: Set[int] = set()
        #: with ``record``: each statement parsed, by the index of its first token:
        #: (tokens it took, the statement)
        self.made: Optional[Dict[int, Tuple[int, A.Stmt]]] = {} if record else None
        #: a parser (with ``record``) of the same source whose statements are taken
        #: where the same tokens (the same objects) are met again (see
        #: :meth:`reused_stmt`), and the index of each of its tokens
        self.stmts_from = stmts_from
        if stmts_from is not None:
            assert stmts_from.made is not None and stmts_from.allow_for == allow_for
            self._first_index = {id(t): j for j, t in enumerate(stmts_from.toks)}

    # token access ---------------------------------------------------------------------
    def peek(self, k: int = 0) -> Token:
        j, toks = self.i + k, self.toks
        return toks[j] if j < len(toks) else toks[-1]

    def advance(self) -> Token:
        tok = self.toks[self.i]
        if self.i < len(self.toks) - 1:
            self.i += 1
        return tok

    def expect(self, kind: str) -> Token:
        if self.kinds[self.i] != kind:
            self.syntax_error(expected=(kind,))
        return self.advance()

    def syntax_error(self, k: int = 0, expected: Tuple[str, ...] = ()) -> None:
        tok = self.peek(k)
        msg = f"syntax error, unexpected {tok.display()}"
        if expected:
            msg += ", expecting " + " or ".join(TOKEN_NAMES.get(e, e) for e in expected)
        raise _Stop(Diagnostic(tok.loc, msg), min(self.i + k, len(self.toks) - 1))

    def fail(self, loc: Location, message: str) -> None:
        raise _Stop(Diagnostic(loc, message), self.i)

    def span(self, start: int) -> Location:
        """From token ``start`` to the last token consumed."""
        toks, j = self.toks, self.i - 1
        a, b = toks[start].loc, toks[j if j > start else start].loc
        return Location(a.line, a.col, b.end_line, b.end_col)

    # program --------------------------------------------------------------------------
    def program(self) -> A.Program:
        """``c_definitions probes END``."""
        cdefs: List[A.CDefinition] = []
        while self.peek().kind in ("CPREPROC", "STRUCT_DEFN"):
            t = self.advance()
            kind = "preproc" if t.kind == "CPREPROC" else "struct"
            real = Location(t.line, t.col, t.loc.end_line, t.loc.end_col)
            cdefs.append(A.CDefinition(kind, str(t.value), loc=t.loc, span=real))
        probes = [self.probe()]
        while self.peek().kind != "END":
            probes.append(self.probe())
        return A.Program(cdefs, probes, span=self.span(0))

    def probe(self) -> A.Probe:
        start = self.i
        aps = [self.attach_point()]
        while self.peek().kind == "COMMA":
            self.advance()
            aps.append(self.attach_point())
        pred = None
        if self.listing and self.peek().kind == "END":
            return A.Probe(aps, None, [], loc=_ORIGIN, span=self.span(start))
        if self.peek().kind == "DIV":
            d = self.advance()
            e = self.expr()
            end = self.expect("ENDPRED")
            pred = A.Predicate(e, loc=d.loc + end.loc, span=d.loc + end.loc)
        elif self.peek().kind == "END":
            self.fail(aps[0].loc + self.peek().loc, "unexpected end of file, expected {")
        if self.peek().kind != "LBRACE":
            self.syntax_error(expected=("LBRACE",) if pred is None else ())
        body = self.block()
        if self.listing:
            # bpftrace's rule for a listing query refuses a whole probe with a block
            self.fail(aps[0].loc + self.toks[self.i - 1].loc,
                      "unexpected listing query format")
        return A.Probe(aps, pred, body, loc=aps[0].loc, span=self.span(start))

    def attach_point(self) -> A.AttachPoint:
        start, parts = self.i, []
        while True:
            t = self.peek()
            if t.kind in _IDENT_KINDS or t.kind == "PATH":
                parts.append(str(t.value))
            elif t.kind == "INT":
                parts.append(str(t.value))
            elif t.kind == "STRING":
                text = bytes(t.value).decode("latin-1")  # type: ignore[arg-type]
                parts.append('"' + text.replace('"', '\\"') + '"')
            elif t.kind in _AP_TEXT:
                parts.append(_AP_TEXT[t.kind])
            elif t.kind == "PARAM":
                parts.append("$" + str(self.param_number(t)))
            elif t.kind == "PARAMCOUNT":
                self.advance()
                prev = self.toks[start - 1].loc if start > 0 else Location(1, 1, 1, 1)
                self.fail(Location(prev.end_line, prev.end_col, t.loc.end_line,
                                   t.loc.end_col), "Not a positional parameter")
            else:
                break
            self.advance()
        # bison builds an attach point from an empty rule, so its range starts where
        # the previous token ended (after the comma, or on the line of the previous "}")
        prev = self.toks[start - 1].loc if start > 0 else Location(1, 1, 1, 1)
        end = self.toks[self.i - 1].loc if self.i > start else prev
        loc = Location(prev.end_line, prev.end_col, end.end_line, end.end_col)
        span = self.span(start) if self.i > start else loc
        return A.AttachPoint("".join(parts), loc=loc, span=span)

    def param_number(self, t: Token) -> int:
        text = str(t.value)
        n = int(text[1:])
        if n == 0 or n > _LONG_MAX:
            self.fail(t.loc, f"param {text} is out of integer range [1, {_LONG_MAX}]")
        return n

    # statements -----------------------------------------------------------------------
    def block(self) -> List[A.Stmt]:
        self.expect("LBRACE")
        stmts = self.stmt_list()
        self.expect("RBRACE")
        return stmts

    def stmt_list(self) -> List[A.Stmt]:
        stmts: List[A.Stmt] = []
        kinds, made, again = self.kinds, self.made, self.stmts_from is not None
        while True:
            i = self.i
            k = kinds[i]
            block = k in ("IF", "UNROLL", "WHILE") or (k == "FOR" and self.allow_for)
            if not block and k not in _EXPR_START and k not in _JUMPS:
                return stmts
            s = self.reused_stmt(i) if again else None
            if s is None:
                s = self.block_stmt() if block else self.expr_stmt()
                if made is not None:
                    made[i] = (self.i - i, s)
            stmts.append(s)
            if block:
                continue
            if kinds[self.i] == "SEMI":
                self.i += 1
                continue
            return stmts

    def reused_stmt(self, i: int) -> Optional[A.Stmt]:
        """The statement that starts at token ``i`` taken from :attr:`stmts_from` (and
        the tokens it took skipped), or None. It is taken when that parser parsed a
        statement from the same token object and the tokens it took and the three after
        them (more than the parser ever looks ahead: two) are the same objects here:
        a statement's parse is a function of those tokens alone (and of ``allow_for``,
        the same in both), so parsing them again would build the same statement. The
        second parse with macros expanded (:func:`parse_program`) meets the first
        parse's tokens again on every line without a macro."""
        first = self.stmts_from
        assert first is not None and first.made is not None
        j = self._first_index.get(id(self.toks[i]))
        if j is None:
            return None
        hit = first.made.get(j)
        if hit is None:
            return None
        n, stmt = hit
        here, there = self.toks[i:i + n + 3], first.toks[j:j + n + 3]
        if len(here) != len(there) or not all(map(is_, here, there)):
            return None
        del first.made[j]                   # one tree node in one place
        self.i = i + n
        return stmt

    def expr_stmt(self) -> A.Stmt:
        t = self.peek()
        if t.kind in _JUMPS:
            self.advance()
            return A.Jump(_JUMPS[t.kind], loc=t.loc, span=t.loc)
        start = self.i
        e = self.expr()
        op_tok = self.peek()
        if op_tok.kind == "ASSIGN" or op_tok.kind in _COMPOUND:
            first = self.toks[start].kind
            bare = id(e) not in self._paren
            if isinstance(e, (A.Map, A.Variable)) and first in ("MAP", "VAR") and bare:
                self.advance()
                value = self.expr()
                op = _COMPOUND.get(op_tok.kind)
                loc = op_tok.loc if op is None else self.span(start)
                if isinstance(e, A.Map):
                    return A.AssignMap(e, value, op, loc=loc, span=self.span(start),
                                       op_loc=op_tok.loc)
                return A.AssignVar(e, value, op, loc=loc, span=self.span(start),
                                   op_loc=op_tok.loc)
            if isinstance(e, A.TupleAccess) and bare and op_tok.kind == "ASSIGN":
                self.advance()
                value = self.expr()
                self.fail(e.span + value.span, "Tuples are immutable once created. "
                          "Consider creating a new tuple and assigning it instead.")
            self.syntax_error()
        return A.ExprStatement(e, loc=e.span, span=e.span)

    def block_stmt(self) -> A.Stmt:
        t = self.peek()
        if t.kind == "IF":
            return self.if_stmt()
        start = self.i
        self.advance()
        self.expect("LPAREN")
        if t.kind == "UNROLL":
            c = self.peek()
            count: A.Expr
            if c.kind == "INT" or (c.kind == "MINUS" and self.peek(1).kind == "INT"):
                count = self.integer()
            elif c.kind in ("PARAM", "PARAMCOUNT"):
                count = self.primary()
            else:
                self.syntax_error()
            rp = self.expect("RPAREN")
            body = self.block()
            return A.Unroll(count, body, loc=t.loc + rp.loc,  # type: ignore[arg-type]
                            span=self.span(start))
        if t.kind == "WHILE":
            cond = self.expr()
            self.expect("RPAREN")
            body = self.block()
            return A.While(cond, body, loc=t.loc, span=self.span(start))
        v = self.expect("VAR")
        self.expect("COLON")
        m = self.expect("MAP")
        self.expect("RPAREN")
        body = self.block()
        return A.For(A.Variable(str(v.value), loc=v.loc, span=v.loc),
                     A.Map(str(m.value), [], loc=m.loc, span=m.loc), body, loc=t.loc,
                     span=self.span(start))

    def if_stmt(self) -> A.If:
        start = self.i
        self.advance()
        self.expect("LPAREN")
        cond = self.expr()
        self.expect("RPAREN")
        then = self.block()
        orelse: Optional[List[A.Stmt]] = None
        if self.peek().kind == "ELSE":
            self.advance()
            orelse = [self.if_stmt()] if self.peek().kind == "IF" else self.block()
        # bpftrace 0.17 gives an if statement no location (its errors say 1:1-1)
        return A.If(cond, then, orelse, loc=Location(1, 1, 1, 1), span=self.span(start))

    # expressions ----------------------------------------------------------------------
    def expr(self) -> A.Expr:
        """``conditional_expr``: ``a ? b : c`` (right-associative) or a binary chain."""
        start = self.i
        cond = self.binary(1)
        if self.kinds[self.i] != "QUES":
            return cond
        self.advance()
        left = self.expr()
        self.expect("COLON")
        right = self.expr()
        span = self.span(start)
        return A.Ternary(cond, left, right, loc=span, span=span)

    def binary(self, min_prec: int) -> A.Expr:
        start = self.i
        left = self.cast_expr()
        kinds = self.kinds
        while True:
            i = self.i
            entry = _BINOPS.get(kinds[i])
            if entry is None or entry[1] < min_prec:
                return left
            t = self.toks[i]
            self.i = i + 1
            right = self.binary(entry[1] + 1)
            left = A.Binop(left, entry[0], right, loc=t.loc, span=self.span(start))

    def cast_expr(self) -> A.Expr:
        kinds, i = self.kinds, self.i
        k = kinds[i]
        if k in _PLAIN_START and kinds[i + 1] not in ("INCREMENT", "DECREMENT"):
            return self.postfix_expr()          # what unary_expr does with these
        if (k == "LPAREN" and kinds[i + 1] == "IDENT"
                and kinds[i + 2] in ("RPAREN", "MUL")):
            start = self.i
            lp = self.advance()
            name = str(self.advance().value)
            depth, end = 0, self.peek()
            if end.kind == "MUL":
                self.advance()
                depth = 1
                if self.peek().kind == "MUL":
                    self.advance()
                    depth = 2
                    self.expect("RPAREN")
                elif self.peek().kind != "RPAREN":
                    self.syntax_error(expected=("RPAREN", "MUL"))
                else:
                    self.advance()
            else:
                self.advance()
            operand = self.cast_expr()
            return A.Cast(name, depth, operand, loc=lp.loc + end.loc, span=self.span(start))
        return self.unary_expr()

    def unary_expr(self) -> A.Expr:
        t = self.peek()
        if t.kind == "MINUS" and self.peek(1).kind == "INT":
            return self.postfix_expr()
        if t.kind in _UNARY:
            start = self.i
            self.advance()
            operand = self.cast_expr()
            return A.Unop(_UNARY[t.kind], operand, loc=t.loc, span=self.span(start))
        if t.kind in ("INCREMENT", "DECREMENT"):
            op = "++" if t.kind == "INCREMENT" else "--"
            nxt = self.peek(1)
            if nxt.kind in ("VAR", "MAP"):
                start = self.i
                self.advance()
                target = self.primary()
                return A.Unop(op, target, loc=t.loc, span=self.span(start))
            if nxt.kind in _IDENT_KINDS:
                self.advance()
                self.advance()
                self.fail(t.loc, f"The {op} operator must be applied to a map or variable")
            self.syntax_error(1)
        if t.kind in _IDENT_KINDS and self.peek(1).kind in ("INCREMENT", "DECREMENT"):
            op = "++" if self.peek(1).kind == "INCREMENT" else "--"
            self.advance()
            self.advance()
            self.fail(t.loc, f"The {op} operator must be applied to a map or variable")
        return self.postfix_expr()

    def postfix_expr(self) -> A.Expr:
        start = self.i
        kinds = self.kinds
        bare = kinds[start] in ("VAR", "MAP")
        node = self.primary()
        while True:
            if kinds[self.i] not in _POSTFIX:
                return node
            t = self.toks[self.i]
            if t.kind in ("DOT", "PTR"):
                n = self.peek(1)
                if t.kind == "DOT" and n.kind == "INT":
                    self.advance()
                    self.advance()
                    node = A.TupleAccess(node, int(n.value),  # type: ignore[arg-type]
                                         loc=n.loc, span=self.span(start))
                elif n.kind in _IDENT_KINDS:
                    self.advance()
                    self.advance()
                    arrow = t.kind == "PTR"
                    span = self.span(start)
                    node = A.FieldAccess(node, str(n.value), arrow,
                                         loc=span if arrow else t.loc, span=span,
                                         op_loc=t.loc)
                else:
                    self.syntax_error(1)
            elif t.kind == "LBRACKET":
                self.advance()
                index = self.expr()
                rb = self.expect("RBRACKET")
                node = A.ArrayAccess(node, index, loc=t.loc + rb.loc, span=self.span(start))
            elif t.kind in ("INCREMENT", "DECREMENT") and bare:
                self.advance()
                node = A.Unop("++" if t.kind == "INCREMENT" else "--", node, True,
                              loc=t.loc, span=self.span(start))
            else:
                return node
            bare = False

    def integer(self) -> A.Integer:
        t = self.advance()
        if t.kind == "MINUS":
            n = self.advance()
            loc = t.loc + n.loc
            return A.Integer(_signed64(-int(n.value)), loc=loc, span=loc)  # type: ignore
        return A.Integer(int(t.value), loc=t.loc, span=t.loc)  # type: ignore[arg-type]

    def primary(self) -> A.Expr:
        start = self.i
        t = self.toks[start]
        k = t.kind
        if k == "VAR":
            self.i = start + 1
            return A.Variable(t.value, loc=t.loc, span=t.loc)  # type: ignore[arg-type]
        if k == "INT" or (k == "MINUS" and self.kinds[start + 1] == "INT"):
            return self.integer()
        if k == "LPAREN":
            self.advance()
            e = self.expr()
            if self.peek().kind == "COMMA":
                elems = [e]
                while self.peek().kind == "COMMA":
                    self.advance()
                    elems.append(self.expr())
                self.expect("RPAREN")
                span = self.span(start)
                return A.Tuple(elems, loc=span, span=span)
            self.expect("RPAREN")
            self._paren.add(id(e))
            return e
        if k not in _EXPR_START:
            self.syntax_error()
        self.i = start + 1                      # k is not END: never the last token
        name = str(t.value)
        if k in _IDENT_KINDS and self.kinds[start + 1] == "LPAREN":
            self.advance()
            args: List[A.Expr] = []
            if self.peek().kind != "RPAREN":
                args = self.vargs()
            self.expect("RPAREN")
            if k not in ("CALL", "CALL_BUILTIN") and not (
                    name == "offsetof" and self.allow_for):    # newer syntax: 0.18
                self.fail(t.loc, f"Unknown function: {name}")
            span = self.span(start)
            if name == "offsetof" and len(args) == 1 and isinstance(args[0], A.Identifier) \
                    and "," in args[0].name:
                # 0.17's lexer reads `struct x, f` up to the `)` as one struct name
                rec, fld = (w.strip() for w in args[0].name.split(",", 1))
                a0 = args[0]
                args = [A.Identifier(rec, loc=a0.loc, span=a0.span),
                        A.Identifier(fld, loc=a0.loc, span=a0.span)]
            return A.Call(name, args, loc=span, span=span)
        if k == "CALL":
            self.syntax_error()
        if k == "STRING":
            return A.String(t.value, loc=t.loc, span=t.loc)  # type: ignore[arg-type]
        if k == "STACK_MODE":
            return A.StackMode(name, loc=t.loc, span=t.loc)
        if k in ("BUILTIN", "CALL_BUILTIN"):
            return A.Builtin(name, loc=t.loc, span=t.loc)
        if k == "IDENT":
            return A.Identifier(name, loc=t.loc, span=t.loc)
        if k == "PARAM":
            return A.PositionalParameter(self.param_number(t), loc=t.loc, span=t.loc)
        if k == "PARAMCOUNT":
            return A.PositionalParameter(0, True, loc=t.loc, span=t.loc)
        if k == "VAR":
            return A.Variable(name, loc=t.loc, span=t.loc)
        if k == "MAP":
            keys: List[A.Expr] = []
            if self.peek().kind == "LBRACKET":
                self.advance()
                keys = self.vargs()
                self.expect("RBRACKET")
            span = self.span(start)
            return A.Map(name, keys, loc=span, span=span)
        self.i = start
        self.syntax_error()
        raise AssertionError("unreachable")

    def vargs(self) -> List[A.Expr]:
        out = [self.expr()]
        while self.peek().kind == "COMMA":
            self.advance()
            out.append(self.expr())
        return out


def _run(parser: Parser, entry: str) -> object:
    stop: Optional[_Stop] = None
    result = None
    try:
        result = getattr(parser, entry)()
        if entry == "expr" and parser.peek().kind != "END":
            parser.syntax_error()
    except _Stop as s:
        stop = s
    limit = stop.index if stop else len(parser.toks)
    diags = [d for k, d in parser.lexed.errors if k <= limit]
    if stop:
        diags.append(stop.diag)
    if diags:
        raise BpftraceSyntaxError(diags, parser.source, parser.filename)
    return result


def parse(source: str, filename: str = "stdin", macros: Optional[Dict[str, str]] = None,
          allow_for: bool = False, reuse: Optional[LexResult] = None) -> A.Program:
    """The syntax tree of a program (one pass, no preamble reading); raises
    :class:`BpftraceSyntaxError` with bpftrace's messages and locations. ``filename`` is
    what errors are prefixed with (``stdin`` for ``-e``); ``macros`` are object-like
    ``#define``s to expand; ``reuse`` the tokens of a pass without them (see
    :func:`~pybpf.bpftrace.lexer.tokenize`)."""
    return _run(Parser(source, filename, macros, allow_for, reuse=reuse),  # type: ignore
                "program")


def parse_listing(search: str) -> A.Program:
    """A ``bpftrace -l`` search (``'tracepoint:syscalls:*open*'``, ``'k:a, t:b:c'``) as
    bpftrace 0.17 parses it: attach points only, named ``stdin``; a probe with a block
    is "unexpected listing query format". Each probe's ``loc`` is 1:1-1 (bpftrace gives
    a listing probe no location)."""
    return _run(Parser(search, "stdin", listing=True), "program")  # type: ignore


def parse_expression(source: str, filename: str = "stdin") -> A.Expr:
    """One expression on its own (for tests and tools): the whole text must be it."""
    return _run(Parser(source, filename), "expr")  # type: ignore[return-value]


@gc_paused
def parse_program(source: str, filename: str = "stdin", btf: bool = True,
                  allow_for: bool = False, headers: bool = False,
                  include_dirs: Optional[List[str]] = None,
                  include_files: Sequence[str] = ()) -> A.Program:
    """Parse like bpftrace does: once, read the preamble (``#define``s, ``struct``s,
    ``#include``s, conditionals on ``BPFTRACE_HAVE_BTF``, which ``btf`` defines), then,
    when the preamble defines macros, once more with them expanded. The tree's
    ``preamble`` is the :class:`~pybpf.bpftrace.preamble.Preamble`.

    With ``headers``, the object-like macros of the ``#include``-d headers that the
    program names are expanded too (:mod:`pybpf.bpftrace.headers`; ``include_dirs`` are
    ``-I`` directories), as bpftrace's clang pass provides them; the enumerators of those
    headers that it names go to the preamble's ``header_enums``.

    ``include_files`` are ``--include`` files: read as a preamble placed before the
    program's own (clang's ``-include``: macros, structs and enums they define are
    visible to the program, whose own definitions win)."""
    from .preamble import read_preamble
    first = Parser(source, filename, allow_for=allow_for, record=True)
    prog: A.Program = _run(first, "program")  # type: ignore[assignment]
    pre = read_preamble(prog.c_definitions, source, filename, btf=btf)
    for path in reversed(list(include_files)):
        pre = _merge_preamble(read_include_file(path, include_dirs or [], btf), pre)
    macros = dict(pre.macros)
    if headers and pre.includes:
        from .headers import header_symbols, include_dirs as default_dirs
        _check_includes(prog.c_definitions, pre.includes, default_dirs(include_dirs or []))
        words = {str(t.value) for t in first.lexed.tokens if t.kind == "IDENT"}
        found, pre.header_enums = header_symbols(
            [i.path for i in pre.includes], words - set(macros),
            default_dirs(include_dirs or []))
        macros = {**found, **macros}
    if macros:
        # the second parse takes the first one's tokens on the lines without a macro
        # and its statements made of those tokens alone
        prog = _run(Parser(source, filename, macros, allow_for, reuse=first.lexed,
                           stmts_from=first), "program")  # type: ignore[assignment]
    prog.preamble = pre
    return prog


#: the headers bpftrace 0.17 carries in itself (``-isystem /bpftrace/include``): found
#: whatever the machine has
_BUILTIN_HEADERS = frozenset({"__stddef_max_align_t.h", "float.h", "limits.h", "stdarg.h",
                              "stdbool.h", "stddef.h", "stdint.h", "clang_workarounds.h",
                              "__btf_generated_header.h"})


def _check_includes(defs: Sequence[A.CDefinition], includes: Sequence[Any],
                    dirs: Sequence[str]) -> None:
    """Refuse a program whose preamble includes a file that is nowhere, with the
    fatal error clang gives bpftrace 0.17. bpftrace hands clang the preamble as
    ``definitions.h``: a first line that includes its BTF header, then each preamble
    item on its own lines, so the error names that file, the item's line there and the
    column of the file name. (A missing file included by a header is not looked for.)"""
    import os
    lines: Dict[Tuple[int, int], Tuple[int, int]] = {}
    line = 2
    for d in defs:
        if d.kind == "preproc":
            first = d.text.split("\n", 1)[0]
            col = min((i for i in (first.find("<"), first.find('"')) if i >= 0),
                      default=0) + 1
            lines[(d.loc.line, d.loc.col)] = (line, col)
        line += d.text.count("\n") + 1
    for inc in includes:
        if inc.path in _BUILTIN_HEADERS:          # clang finds them in both forms
            continue
        where = ([os.getcwd()] if not inc.system else []) + list(dirs)
        if os.path.isabs(inc.path):
            where = [""]
        if any(os.path.isfile(os.path.join(d, inc.path)) for d in where):
            continue
        at = lines.get((inc.loc.line, inc.loc.col))
        prefix = f"definitions.h:{at[0]}:{at[1]}: " if at else ""
        from .errors import BpftraceError
        raise BpftraceError([Diagnostic(None, f"'{inc.path}' file not found",
                                        f"{prefix}fatal error")], "", "definitions.h")


def _find_include(path: str, dirs: Sequence[str]) -> Optional[str]:
    """Where clang's ``-include PATH`` finds the file: as written (relative to the
    working directory), then in the ``-I`` directories."""
    import os
    if os.path.isfile(path):
        return path
    if not os.path.isabs(path):
        for d in dirs:
            cand = os.path.join(d, path)
            if os.path.isfile(cand):
                return cand
    return None


def read_include_file(path: str, include_dirs: Sequence[str] = (), btf: bool = True
                      ) -> Any:
    """The :class:`~pybpf.bpftrace.preamble.Preamble` of a ``--include`` file: its
    ``#define``/``#include``/``#if`` lines and ``struct``/``union``/``enum`` definitions
    (anything else is an error naming its line). A file that cannot be found is
    clang's ``fatal error: 'PATH' file not found``, as bpftrace 0.17 prints it."""
    from .errors import BpftraceError
    from .preamble import read_preamble
    found = _find_include(path, include_dirs)
    if found is None:
        raise BpftraceError([Diagnostic(None, f"'{path}' file not found", "fatal error")],
                            "", path)
    with open(found, "rb") as fh:
        text = fh.read().decode("utf-8", "replace")
    lexed = tokenize(text)
    if lexed.errors:
        raise BpftraceSyntaxError([lexed.errors[0][1]], text, found)
    defs: List[A.CDefinition] = []
    for t in lexed.tokens:
        if t.kind == "END":
            break
        if t.kind not in ("CPREPROC", "STRUCT_DEFN"):
            raise BpftraceSyntaxError([Diagnostic(
                t.loc, "pybpf reads only #define, #undef, #include, #if... and "
                "struct/union/enum definitions in an included file")], text, found)
        real = Location(t.line, t.col, t.loc.end_line, t.loc.end_col)
        defs.append(A.CDefinition("preproc" if t.kind == "CPREPROC" else "struct",
                                  str(t.value), loc=t.loc, span=real))
    return read_preamble(defs, text, found, btf=btf)


def _merge_preamble(first: Any, then: Any) -> Any:
    """``first``'s declarations followed by ``then``'s (later definitions win)."""
    then.includes = first.includes + then.includes
    for attr in ("macros", "constants", "structs", "enums"):
        setattr(then, attr, {**getattr(first, attr), **getattr(then, attr)})
    return then
