"""The tokenizer of bpftrace 0.17's language (the rules of its ``src/lexer.l``).

It behaves like that flex scanner, quirks included, so that locations and errors match
bpftrace's:

* longest match wins, ties go to the earlier rule; a trailing-context rule (the predicate
  end ``/`` followed by ``/`` or ``{``, a ``//`` comment that must end in a newline) counts
  its context in the length. A ``//`` comment on the last line without a newline is
  therefore not a comment (bpftrace then reports a syntax error), and ``a ? b :c`` lexes
  ``:c`` as a *path*, as in bpftrace;
* words: ``arg0``-``arg9``/``sarg0``-``sarg9`` (one digit) and the other builtins, the
  calls, ``kstack``/``ustack`` (call or builtin), ``bpftrace``/``perf`` (stack modes), the
  keywords; ``struct``/``union``/``enum`` start a type name (``(struct x *)`` gives one
  identifier ``struct x``) or, with a brace, a whole C definition kept as raw text;
* numbers: decimal with ``_`` separators and C suffixes (``u``, ``l``, ``ll``, ``ul``,
  ``ull``), octal ``0nn``, hex, integer scientific ``2e3`` (coefficient 0-9, exponent
  <= 16); a value is a 64-bit word kept as a signed number (``0xffffffffffffffff`` is -1);
* strings with ``\\n \\t \\r \\" \\\\``, octal ``\\0``-``\\377`` and hex ``\\xN``/``\\xNN``
  escapes (values are bytes); there are no character literals (``'`` is an invalid
  character in 0.17);
* ``#...`` lines are preprocessor directives (raw text), ``#!`` at a line start is a
  shebang, ``$1``..``$N``/``$#`` are positional parameters, ``@name``/``@`` maps.

Probe attach points are not lexed specially: ``kprobe:fn+0x10`` is the identifier
``kprobe``, the path ``:fn``, ``+`` and the integer 16; the parser glues them back
together as bpftrace does.

Locations follow bpftrace: a token's range starts where white space was last skipped
(``loc``), columns count bytes, ``\\r`` counts as a line break, and a struct cast or an
expanded ``#define`` shifts later columns on its line as it does in bpftrace. ``line`` and
``col`` give the token's own first character.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from typing import Dict, List, Optional, Tuple, Union

from .errors import Diagnostic, Location
from .._records import field, record

__all__ = ["Token", "LexResult", "tokenize", "BUILTINS", "CALLS", "CALL_BUILTINS",
           "KEYWORDS", "TOKEN_NAMES", "int_literal"]

BUILTINS = frozenset(
    [f"arg{i}" for i in range(10)] + [f"sarg{i}" for i in range(10)] +
    "args cgroup comm cpid numaid cpu ctx curtask elapsed func gid nsecs pid probe rand "
    "retval tid uid username".split())
CALLS = frozenset(
    "avg buf cat cgroupid clear count delete exit hist join kaddr kptr ksym lhist macaddr "
    "max min ntop override print printf cgroup_path reg signal sizeof stats str strerror "
    "strftime strncmp strcontains sum system time uaddr uptr usym zero path unwatch bswap "
    "skboutput pton debugf".split())
CALL_BUILTINS = frozenset(["kstack", "ustack"])
STACK_MODES = frozenset(["bpftrace", "perf"])
KEYWORDS = {"if": "IF", "else": "ELSE", "unroll": "UNROLL", "while": "WHILE", "for": "FOR",
            "return": "RETURN", "continue": "CONTINUE", "break": "BREAK"}

# operators, longest first (all are literal rules of the flex file)
_PUNCT = [
    ("<<=", "LEFTASSIGN"), (">>=", "RIGHTASSIGN"),
    ("+=", "PLUSASSIGN"), ("-=", "MINUSASSIGN"), ("*=", "MULASSIGN"), ("/=", "DIVASSIGN"),
    ("%=", "MODASSIGN"), ("&=", "BANDASSIGN"), ("|=", "BORASSIGN"), ("^=", "BXORASSIGN"),
    ("==", "EQ"), ("!=", "NE"), ("<=", "LE"), (">=", "GE"), ("<<", "LEFT"), (">>", "RIGHT"),
    ("&&", "LAND"), ("||", "LOR"), ("++", "INCREMENT"), ("--", "DECREMENT"), ("->", "PTR"),
    (":", "COLON"), (";", "SEMI"), ("{", "LBRACE"), ("}", "RBRACE"), ("[", "LBRACKET"),
    ("]", "RBRACKET"), ("(", "LPAREN"), (")", "RPAREN"), (",", "COMMA"), ("=", "ASSIGN"),
    ("<", "LT"), (">", "GT"), ("+", "PLUS"), ("-", "MINUS"), ("*", "MUL"), ("/", "DIV"),
    ("%", "MOD"), ("&", "BAND"), ("|", "BOR"), ("^", "BXOR"), ("!", "LNOT"), ("~", "BNOT"),
    (".", "DOT"), ("?", "QUES"),
]
_PUNCT_BY_CHAR: Dict[str, List[Tuple[str, str]]] = {}
for _text, _kind in _PUNCT:
    _PUNCT_BY_CHAR.setdefault(_text[0], []).append((_text, _kind))

# How bison names each token in "unexpected X" (quotes dropped as bison's yytnamerr does,
# kept where the alias holds a comma).
TOKEN_NAMES: Dict[str, str] = {kind: text for text, kind in _PUNCT}
TOKEN_NAMES.update({
    "END": "end of file", "COMMA": '","', "ENDPRED": "end predicate", "PARAMCOUNT": "$#",
    "BUILTIN": "builtin", "CALL": "call", "CALL_BUILTIN": "call_builtin",
    "IDENT": "identifier", "PATH": "path", "CPREPROC": "preprocessor directive",
    "STRUCT_DEFN": "struct definition", "STRING": "string", "MAP": "map", "VAR": "variable",
    "PARAM": "positional parameter", "INT": "integer", "STACK_MODE": "stack_mode",
})
TOKEN_NAMES.update({v: k for k, v in KEYWORDS.items()})

# what the scan loop reads fast (:meth:`_Scanner.run`): the kind of each word that is
# not an identifier (``struct`` for struct/union/enum, which go the long way), and the
# operators by length; ``/`` and ``:`` are not among them (comments, predicates, paths)
_WORD_KIND: Dict[str, str] = {}
for _w in ("struct", "union", "enum"):
    _WORD_KIND[_w] = "struct"
for _w, _kw in KEYWORDS.items():
    _WORD_KIND[_w] = _kw
for _w in CALL_BUILTINS:
    _WORD_KIND[_w] = "CALL_BUILTIN"
for _w in CALLS:
    _WORD_KIND[_w] = "CALL"
for _w in BUILTINS:
    _WORD_KIND[_w] = "BUILTIN"
for _w in STACK_MODES:
    _WORD_KIND[_w] = "STACK_MODE"
_KEYWORD_KINDS = frozenset(KEYWORDS.values())
_WORD_START = frozenset("_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_PUNCT3 = {t: k for t, k in _PUNCT if len(t) == 3}
_PUNCT2 = {t: k for t, k in _PUNCT if len(t) == 2 and t[0] not in "/:"}
_PUNCT1 = {t: k for t, k in _PUNCT if len(t) == 1 and t not in "/:"}
_PUNCT_FAST = frozenset(_PUNCT1)

_INT = r"[0-9](?:[0-9_]*[0-9])?(?:[uU]?[lL]?[lL]|[uU])?"
_INT_RE = re.compile(_INT)
#: a plain decimal number (no leading 0, ``_``, suffix, exponent, or hex: what
#: :meth:`_Scanner.number` reads as the digits' value, when it fits in 64 bits)
_DEC_RE = re.compile(r"(?:0|[1-9][0-9]*)(?![0-9_xXeEuUlL])")
_HEX_RE = re.compile(r"0[xX][0-9a-fA-F]+")
_EXP_RE = re.compile(_INT + r"[eE]" + _INT)
_WORD_RE = re.compile(r"[_a-zA-Z][_a-zA-Z0-9]*")
_PATH_RE = re.compile(r":(?:\\[^\n]|[-_./a-zA-Z0-9#*])+")
_ENDPRED_RE = re.compile(r"/[ \t\n\r]*[/{]")
_HSPACE_RE = re.compile(r"[ \t]+")
_VSPACE_RE = re.compile(r"[\n\r]+")
_STR_PLAIN_RE = re.compile(r'[^\\\n"]+')
_STR_SIMPLE_RE = re.compile(r'"[^\\\n"]*"')          # a string without escapes
_COMMENT_TEXT_RE = re.compile(r"[^*\n]+")
_OCT_RE = re.compile(r"\\[0-7]{1,3}")
_HEXESC_RE = re.compile(r"\\[xX][0-9a-fA-F]{1,2}")
_SUFFIX_RE = re.compile(r"(u|u?l?l)", re.IGNORECASE)
_SIMPLE_ESC = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}


@record
class Token:
    """One token. ``kind`` is the grammar's token name (``IDENT``, ``INT``, ``PLUS``...),
    ``value`` its meaning (the text for names, an ``int`` for ``INT``, ``bytes`` for
    ``STRING``, the raw text for ``PATH``/``CPREPROC``/``STRUCT_DEFN``), ``loc``
    bpftrace's range for it, ``line``/``col``/``end_col`` where its own text is (1-based,
    ``end_col`` exclusive)."""

    kind: str
    value: Union[str, int, bytes, None]
    loc: Location
    line: int = 0
    col: int = 0
    end_col: int = 0

    def display(self) -> str:
        """The token as bison names it in "unexpected ..."."""
        return TOKEN_NAMES.get(self.kind, self.kind)


@record
class LexResult:
    """Tokens (ending with ``END``) and lexical errors, each error tagged with the number
    of tokens produced before it (a parser that stops at token i reports only the
    errors bpftrace's scanner would have met by then)."""

    tokens: List[Token] = field(default_factory=list)
    errors: List[Tuple[int, Diagnostic]] = field(default_factory=list)
    #: of a scan without macros, the scanner's state at each line start where it was
    #: between tokens (see :func:`tokenize`'s ``reuse``): (position, tokens, errors
    #: and token starts so far, the last token start's line and column, bison's begin
    #: and end line and column, the real line and column)
    line_starts: List[Tuple[int, ...]] = field(default_factory=list, compare=False,
                                               repr=False)


def _stoull(text: str, base: int) -> Tuple[int, int]:
    """C's ``strtoull`` prefix parse for base 10 or 0 (octal with a leading 0, hex with
    0x): (value, characters used); ValueError("stoull") when nothing parses or it does
    not fit in 64 bits."""
    if base == 0 and text[:2].lower() == "0x":
        m = re.match(r"0[xX]([0-9a-fA-F]+)", text)
        digits, radix, used = (m.group(1), 16, m.end()) if m else ("0", 10, 1)
    elif base == 0 and text.startswith("0"):
        m = re.match(r"0[0-7]*", text)
        assert m is not None
        digits, radix, used = m.group(0), 8, m.end()
    else:
        m = re.match(r"[0-9]+", text)
        if m is None:
            raise ValueError("stoull")
        digits, radix, used = m.group(0), 10, m.end()
    value = int(digits, radix)
    if value >= 1 << 64:
        raise ValueError("stoull")
    return value, used


def _parse_int(text: str, base: int) -> int:
    value, used = _stoull(text, base)
    if used != len(text) and not _SUFFIX_RE.fullmatch(text[used:]):
        raise ValueError("Found trailing non-numeric characters")
    return value


def int_literal(text: str) -> int:
    """The unsigned 64-bit value of a number token's text, as bpftrace 0.17 reads it;
    ValueError with bpftrace's message for a bad one."""
    n = text.replace("_", "")
    if n[:2].lower() == "0x":
        return _parse_int(n, 0)
    pos = min([i for i in (n.find("e"), n.find("E")) if i >= 0], default=-1)
    if pos < 0:
        return _parse_int(n, 0)
    coeff, exp = n[:pos], n[pos + 1:]
    try:
        c = _parse_int(coeff, 10)
    except ValueError as err:
        raise ValueError("Coefficient part of scientific literal is not a valid number: "
                         f"{coeff}: {err}") from None
    try:
        e = _parse_int(exp, 10)
    except ValueError as err:
        raise ValueError("Exponent part of scientific literal is not a valid number: "
                         f"{exp}: {err}") from None
    if c > 9:
        raise ValueError("Coefficient part of scientific literal must be in range (0,9), "
                         f"got: {coeff}")
    if e > 16:
        raise ValueError(f"Exponent will overflow integer range: {exp}")
    return c * 10 ** e


def _signed64(v: int) -> int:
    v &= (1 << 64) - 1
    return v - (1 << 64) if v >= 1 << 63 else v


class _Scanner:
    """The scanner's state: the text (bytes as latin-1), bison's running location and
    the real position of the next character."""

    def __init__(self, source: str, macros: Optional[Dict[str, str]],
                 reuse: Optional[LexResult] = None) -> None:
        self.text = source.encode("utf-8").decode("latin-1")
        self.macros = {k: v.encode("utf-8").decode("latin-1")
                       for k, v in (macros or {}).items()}
        self.record = not self.macros                        # keep line_starts
        self.shift = 0                  # characters of macro text inserted before pos
        self.reuse: Optional[LexResult] = None
        if reuse is not None and self.macros and reuse.line_starts and not any(
                "\n" in body or "\r" in body for body in self.macros.values()):
            self.reuse = reuse
            self.reuse_at = {st[0]: i for i, st in enumerate(reuse.line_starts)}
            self.reuse_ntok = [st[1] for st in reuse.line_starts]
            # the tokens of the scan without macros that expand here
            self.reuse_macros = [i for i, t in enumerate(reuse.tokens)
                                 if t.kind == "IDENT" and t.value in self.macros
                                 and self.macros[t.value] != t.value]  # type: ignore
        self.pos = 0
        self.bl, self.bc, self.el, self.ec = 1, 1, 1, 1      # bison's begin/end
        self.rline, self.rcol = 1, 1                         # real next character
        self.out = LexResult()
        self.unput_count = 0
        self.tok_line, self.tok_col = 1, 1
        self.marks = 0                              # mark() calls so far

    # bison location operations
    def columns(self, n: int) -> None:
        self.ec = max(1, self.ec + n)

    def lines(self, n: int) -> None:
        self.el += n
        self.ec = 1

    def step(self) -> None:
        self.bl, self.bc = self.el, self.ec

    def loc(self) -> Location:
        return Location(self.bl, self.bc, self.el, self.ec)

    def eat(self, n: int, count: bool = True) -> str:
        """Consume ``n`` characters (a flex match: the columns grow by ``n``)."""
        pos = self.pos
        seg = self.text[pos:pos + n]
        self.pos = pos + n
        if count:                                   # columns(n), inline
            ec = self.ec + n
            self.ec = ec if ec > 1 else 1
        nl = seg.count("\n")
        if nl:
            self.rline += nl
            self.rcol = n - seg.rfind("\n")
        else:
            self.rcol += n
        return seg

    def mark(self) -> None:
        self.tok_line, self.tok_col = self.rline, self.rcol
        self.marks += 1

    def emit(self, kind: str, value: Union[str, int, bytes, None]) -> None:
        end = self.rcol if self.rline == self.tok_line else self.tok_col + 1
        self.out.tokens.append(Token(kind, value, self.loc(), self.tok_line, self.tok_col,
                                     end))

    def error(self, message: str) -> None:
        msg = message.encode("latin-1", "replace").decode("utf-8", "replace")
        self.out.errors.append((len(self.out.tokens), Diagnostic(self.loc(), msg)))

    # the INITIAL state
    def run(self) -> LexResult:
        """Scan to the end. The common tokens (words that are not macros or ``struct``,
        operators, maps, white space) are scanned here with the state in local variables
        (what :meth:`eat`, :meth:`mark` and :meth:`emit` do, written out); the others
        go through the methods, with the state stored before and loaded after."""
        out = self.out
        append = out.tokens.append
        record, line_starts = self.record, out.line_starts
        text = self.text
        pos, bl, bc, el, ec = self.pos, self.bl, self.bc, self.el, self.ec
        rline, rcol = self.rline, self.rcol
        word_match, hspace_match = _WORD_RE.match, _HSPACE_RE.match
        macros = self.macros
        while pos < len(text):
            c = text[pos]
            if c == " " or c == "\t":
                n = hspace_match(text, pos).end() - pos  # type: ignore[union-attr]
                pos += n
                ec += n
                rcol += n
                bl, bc = el, ec
                continue
            if c in _WORD_START:
                m = word_match(text, pos)
                end = m.end()                                # type: ignore[union-attr]
                w = text[pos:end]
                kind = _WORD_KIND.get(w)
                if (kind != "struct") if kind is not None \
                        else (w not in macros or macros[w] == w):
                    n = end - pos
                    self.tok_line, self.tok_col = rline, rcol
                    self.marks += 1
                    pos = end
                    ec += n
                    tcol = rcol
                    rcol += n
                    if kind is None:            # a name, not a macro's
                        self.unput_count = 0
                        append(Token("IDENT", w, Location(bl, bc, el, ec), rline, tcol,
                                     rcol))
                    else:
                        append(Token(kind, None if kind in _KEYWORD_KINDS else w,
                                     Location(bl, bc, el, ec), rline, tcol, rcol))
                    continue
            elif c in _PUNCT_FAST:
                lit = text[pos:pos + 3]
                kind = _PUNCT3.get(lit)
                if kind is None:
                    lit = lit[:2]
                    kind = _PUNCT2.get(lit)
                    if kind is None:
                        kind = _PUNCT1[c]
                        n = 1
                    else:
                        n = 2
                else:
                    n = 3
                self.tok_line, self.tok_col = rline, rcol
                self.marks += 1
                pos += n
                ec += n
                tcol = rcol
                rcol += n
                append(Token(kind, None, Location(bl, bc, el, ec), rline, tcol, rcol))
                continue
            elif c == "\n" or c == "\r":
                n = _VSPACE_RE.match(text, pos).end() - pos  # type: ignore[union-attr]
                nl = text.count("\n", pos, pos + n)
                if nl:
                    rline += nl
                    rcol = n - (text.rfind("\n", pos, pos + n) - pos)
                else:
                    rcol += n
                pos += n
                el += n
                bl, bc, ec = el, 1, 1
                if record:
                    line_starts.append((pos, len(out.tokens), len(out.errors), self.marks,
                                        self.tok_line, self.tok_col, bl, bc, el, ec,
                                        rline, rcol))
                    continue
                if self.reuse is None or self.unput_count != 0:
                    continue
                self.pos, self.bl, self.bc, self.el, self.ec = pos, bl, bc, el, ec
                self.rline, self.rcol = rline, rcol
                self.skip_unchanged()
                pos, bl, bc, el, ec = self.pos, self.bl, self.bc, self.el, self.ec
                rline, rcol = self.rline, self.rcol
                continue
            elif c in "0123456789":
                m = _DEC_RE.match(text, pos)
                if m is not None:
                    end = m.end()
                    value = int(text[pos:end])
                    if value < 1 << 64:
                        n = end - pos
                        self.tok_line, self.tok_col = rline, rcol
                        self.marks += 1
                        pos = end
                        ec += n
                        tcol = rcol
                        rcol += n
                        append(Token("INT", _signed64(value), Location(bl, bc, el, ec),
                                     rline, tcol, rcol))
                        continue
            elif c == "$":
                m = word_match(text, pos + 1)
                if m is not None:
                    end = m.end()
                    n = end - pos
                    self.tok_line, self.tok_col = rline, rcol
                    self.marks += 1
                    w = text[pos:end]
                    pos = end
                    ec += n
                    tcol = rcol
                    rcol += n
                    append(Token("VAR", w, Location(bl, bc, el, ec), rline, tcol, rcol))
                    continue
            elif c == '"':
                m = _STR_SIMPLE_RE.match(text, pos)
                if m is not None:
                    end = m.end()
                    n = end - pos
                    self.tok_line, self.tok_col = rline, rcol
                    self.marks += 1
                    w = text[pos + 1:end - 1]
                    pos = end
                    ec += n
                    tcol = rcol
                    rcol += n
                    append(Token("STRING", w.encode("latin-1", "replace"),
                                 Location(bl, bc, el, ec), rline, tcol, rcol))
                    continue
            elif c == "@":
                m = word_match(text, pos + 1)
                n = 1 + (m.end() - pos - 1 if m else 0)
                self.tok_line, self.tok_col = rline, rcol
                self.marks += 1
                w = text[pos:pos + n]
                pos += n
                ec += n
                tcol = rcol
                rcol += n
                append(Token("MAP", w, Location(bl, bc, el, ec), rline, tcol, rcol))
                continue
            # the other tokens: through the methods, with the state in ``self``
            self.pos, self.bl, self.bc, self.el, self.ec = pos, bl, bc, el, ec
            self.rline, self.rcol = rline, rcol
            if c in "\n\r":
                n = _VSPACE_RE.match(text, self.pos).end() - self.pos  # type: ignore
                self.eat(n)
                self.lines(n)
                self.step()
                if record:
                    line_starts.append((
                        self.pos, len(out.tokens), len(out.errors),
                        self.marks, self.tok_line, self.tok_col, self.bl, self.bc,
                        self.el, self.ec, self.rline, self.rcol))
                elif self.reuse is not None and self.unput_count == 0:
                    self.skip_unchanged()
            else:
                self.mark()
                if c == "/":
                    self.slash()
                elif c == "#":
                    self.hash()
                elif c in "0123456789":
                    self.number()
                elif c == "_" or c.isalpha() and c.isascii():
                    if not self.word():
                        return out
                elif c == ":":
                    m = _PATH_RE.match(text, self.pos)
                    if m:
                        self.emit("PATH", self.eat(m.end() - self.pos).encode(
                            "latin-1").decode("utf-8", "replace"))
                    else:
                        self.eat(1)
                        self.emit("COLON", None)
                elif c == "$":
                    self.dollar()
                elif c == '"':
                    self.string()
                elif c in _PUNCT_BY_CHAR:
                    for lit, kind in _PUNCT_BY_CHAR[c]:
                        if text.startswith(lit, self.pos):
                            self.eat(len(lit))
                            self.emit(kind, None)
                            break
                else:
                    ch = self.eat(1)
                    self.error(f"invalid character '{ch}'")
            text = self.text
            pos, bl, bc, el, ec = self.pos, self.bl, self.bc, self.el, self.ec
            rline, rcol = self.rline, self.rcol
        self.pos, self.bl, self.bc, self.el, self.ec = pos, bl, bc, el, ec
        self.rline, self.rcol = rline, rcol
        self.emit("END", None)
        return out

    def skip_unchanged(self) -> None:
        """At a line start, in the same state as the scan without macros at the same
        place of the source: take that scan's tokens (and errors) up to its last line
        start before a macro's name, and go on from there in its state. The scan from
        a state depends only on the text after it (the same: every macro text
        inserted is before) and on the macros it meets."""
        prev = self.reuse
        assert prev is not None
        i = self.reuse_at.get(self.pos - self.shift)
        if i is None:
            return
        here = prev.line_starts[i]
        if here[6:] != (self.bl, self.bc, self.el, self.ec, self.rline, self.rcol):
            return
        k = bisect_left(self.reuse_macros, here[1])
        if k < len(self.reuse_macros):
            j = bisect_right(self.reuse_ntok, self.reuse_macros[k]) - 1
        else:
            j = len(prev.line_starts) - 1
        if j <= i:
            return
        there = prev.line_starts[j]
        out = self.out
        base = len(out.tokens) - here[1]
        out.tokens.extend(prev.tokens[here[1]:there[1]])
        out.errors.extend((n + base, d) for n, d in prev.errors[here[2]:there[2]])
        self.pos = there[0] + self.shift
        self.bl, self.bc, self.el, self.ec, self.rline, self.rcol = there[6:]
        if there[3] != here[3]:             # a token (or comment) began on the way
            self.marks += there[3] - here[3]
            self.tok_line, self.tok_col = there[4], there[5]

    def slash(self) -> None:
        text, pos = self.text, self.pos
        cands: List[Tuple[int, int, str]] = []      # (length, -rule order, what)
        if text.startswith("//", pos):
            nl = text.find("\n", pos)
            if nl >= 0:
                cands.append((nl - pos + 1, -1, "line-comment"))
        if text.startswith("/*", pos):
            cands.append((2, -2, "comment"))
        m = _ENDPRED_RE.match(text, pos)
        if m:
            cands.append((m.end() - pos, -3, "ENDPRED"))
        if text.startswith("/=", pos):
            cands.append((2, -4, "DIVASSIGN"))
        cands.append((1, -5, "DIV"))
        _, _, what = max(cands)
        if what == "line-comment":
            self.eat(text.find("\n", pos) - pos)
        elif what == "comment":
            self.eat(2)
            self.comment()
        else:
            self.eat(2 if what == "DIVASSIGN" else 1)
            self.emit(what, None)

    def comment(self) -> None:
        text = self.text
        end = text.find("*/", self.pos)
        if end >= 0:                    # the loop below, for a comment that ends
            seg = text[self.pos:end + 2]
            k = seg.count("\n")
            if not k:
                self.eat(len(seg))
                return
            tail = len(seg) - seg.rfind("\n") - 1
            self.pos = end + 2
            self.el += k
            self.ec = 1 + tail
            self.bl, self.bc = self.el, 1
            self.rline += k
            self.rcol = 1 + tail
            return
        while True:
            if self.pos >= len(text):
                self.error("end of file during comment")
                return
            if text.startswith("*/", self.pos):
                self.eat(2)
                return
            c = text[self.pos]
            if c == "\n":
                self.eat(1)
                self.lines(1)
                self.step()
            elif c == "*":
                self.eat(1)
            else:
                self.eat(_COMMENT_TEXT_RE.match(text, self.pos).end() - self.pos)  # type: ignore

    def hash(self) -> None:
        text, pos = self.text, self.pos
        at_line_start = pos == 0 or text[pos - 1] == "\n"
        if text.startswith("#!", pos):
            nl = text.find("\n", pos)
            if at_line_start and nl >= 0:
                self.eat(nl - pos)
            else:
                self.eat(1)
                self.error("invalid character '#'")
            return
        if pos + 1 >= len(text):
            self.eat(1)
            self.error("invalid character '#'")
            return
        nl = text.find("\n", pos + 2)
        end = len(text) if nl < 0 else nl
        raw = self.eat(end - pos)
        self.emit("CPREPROC", raw.encode("latin-1").decode("utf-8", "replace"))

    def number(self) -> None:
        text, pos = self.text, self.pos
        n = max((m.end() - pos for m in (r.match(text, pos) for r in
                                         (_INT_RE, _HEX_RE, _EXP_RE)) if m), default=1)
        raw = self.eat(n)
        try:
            self.emit("INT", _signed64(int_literal(raw)))
        except ValueError as err:
            self.error(str(err))

    def dollar(self) -> None:
        text, pos = self.text, self.pos
        m = _WORD_RE.match(text, pos + 1)
        if m:
            self.emit("VAR", self.eat(m.end() - pos))
            return
        m = re.compile(r"[0-9]+").match(text, pos + 1)
        if m:
            self.emit("PARAM", self.eat(m.end() - pos))
        elif text.startswith("$#", pos):
            self.eat(2)
            self.emit("PARAMCOUNT", None)
        else:
            self.eat(1)
            self.error("invalid character '$'")

    def word(self) -> bool:
        """A word; False when a macro expansion hit the recursion limit (end of input)."""
        m = _WORD_RE.match(self.text, self.pos)
        assert m is not None
        w = self.eat(m.end() - self.pos)
        if w in STACK_MODES:
            self.emit("STACK_MODE", w)
        elif w in BUILTINS:
            self.emit("BUILTIN", w)
        elif w in CALLS:
            self.emit("CALL", w)
        elif w in CALL_BUILTINS:
            self.emit("CALL_BUILTIN", w)
        elif w in KEYWORDS:
            self.emit(KEYWORDS[w], None)
        elif w in ("struct", "union", "enum"):
            self.struct(w)
        elif w in self.macros and self.macros[w] != w:
            body = self.macros[w]
            if self.unput_count + len(body) > 1000:
                self.error(f"Macro recursion limit reached: {w}, {body}")
                self.emit("END", None)
                return False
            self.unput_count += len(body)
            self.shift += len(body)
            self.text = self.text[:self.pos] + body + self.text[self.pos:]
        else:
            self.unput_count = 0
            self.emit("IDENT", w)
        return True

    def struct(self, kind: str) -> None:
        """After ``struct``/``union``/``enum``: a type name up to ``*`` or ``)`` (which is
        then lexed again) or a definition up to its closing brace."""
        text, buf, depth = self.text, [], 0
        while self.pos < len(text):
            c = text[self.pos]
            if c in "*)" and depth == 0:
                self.columns(1)              # flex counted it before putting it back
                self.emit("IDENT", kind + " " + "".join(buf).strip(" \t\n\r\f\v"))
                return
            if c == "{":
                depth += 1
                buf.append(self.eat(1))
            elif c == "}":
                n = 2 if text.startswith("};", self.pos) else 1
                buf.append(self.eat(n))
                depth -= 1
                if depth == 0:
                    raw = kind + "".join(buf)
                    self.emit("STRUCT_DEFN", raw.encode("latin-1").decode("utf-8", "replace"))
                    return
                if depth < 0:                # "}" in a type name: the state just ends
                    return
            elif c == "\n":
                buf.append(self.eat(1))
                self.lines(1)
                self.step()
            else:
                buf.append(self.eat(1))
        # end of input inside a type name or definition: flex just ends

    def string(self) -> None:
        text = self.text
        self.eat(1)
        buf: List[str] = []
        while True:
            if self.pos >= len(text):
                self.error("unterminated string")
                return
            c = text[self.pos]
            if c == '"':
                self.eat(1)
                self.emit("STRING", "".join(buf).encode("latin-1", "replace"))
                return
            if c == "\n":
                self.eat(1)
                self.error("unterminated string")
                self.lines(1)
                self.step()
                return
            if c != "\\":
                m = _STR_PLAIN_RE.match(text, self.pos)
                assert m is not None
                buf.append(self.eat(m.end() - self.pos))
                continue
            nxt = text[self.pos + 1] if self.pos + 1 < len(text) else ""
            if nxt in _SIMPLE_ESC:
                self.eat(2)
                buf.append(_SIMPLE_ESC[nxt])
                continue
            m = _OCT_RE.match(text, self.pos) or _HEXESC_RE.match(text, self.pos)
            if m:
                raw = self.eat(m.end() - self.pos)
                if raw[1] in "xX":
                    buf.append(chr(int(raw[2:], 16)))
                else:
                    value = int(raw[1:], 8)
                    if value > 255:
                        self.error(f"octal escape sequence out of range '{raw}'")
                    buf.append(chr(value & 0xFF))
                continue
            if nxt and nxt != "\n":
                raw = self.eat(2)
                self.error(f"invalid escape character '{raw}'")
                continue
            self.eat(1)
            self.error("invalid character")
            return


def tokenize(source: str, macros: Optional[Dict[str, str]] = None,
             reuse: Optional[LexResult] = None) -> LexResult:
    """Tokens and lexical errors of ``source``. ``macros`` maps names of ``#define``d
    object-like macros to their replacement text: an identifier with such a name is
    replaced by that text, re-lexed (bpftrace's second parse does this). ``reuse``: the
    result of ``tokenize(source)`` (the first parse's), whose tokens are taken as they
    are for the lines from a line start up to one with a macro's name (the result is
    the same, without scanning those lines again)."""
    return _Scanner(source, macros, reuse).run()
