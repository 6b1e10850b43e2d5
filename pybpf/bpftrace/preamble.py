"""The C preamble of a bpftrace program, read without clang.

bpftrace 0.17 hands the lines before the first probe to libclang. This reader covers what
bpftrace's own tools and typical scripts put there:

* ``#include <x.h>`` / ``"x.h"``: recorded (kernel types come from BTF later);
* ``#define NAME text`` (object-like): the macro, expanded in the program like bpftrace's
  second parse does, and its integer value when the text is a constant expression;
  ``#undef``;
* ``#if``/``#ifdef``/``#ifndef``/``#elif``/``#else``/``#endif`` with ``defined``,
  integer arithmetic and macros; ``BPFTRACE_HAVE_BTF`` is defined when BTF is in use
  (as bpftrace defines it);
* ``struct``/``union`` definitions: field names, type text, pointer depth, array sizes
  (constant expressions) and bit widths, nested and anonymous members; ``enum``
  definitions with their constants.

Anything else (function-like macros, ``#pragma``, function pointers, typedefs...) is a
:class:`~pybpf.bpftrace.errors.BpftraceSyntaxError` naming the line. Layouts (sizes,
offsets) are computed later, with BTF for the types the definitions name.
"""

from __future__ import annotations

import re
from typing import Callable, Dict, List, Optional, Sequence

from .ast import CDefinition
from .errors import BpftraceSyntaxError, Diagnostic, Location
from .._records import field, record

__all__ = ["Include", "CType", "CField", "CStruct", "CEnum", "Preamble", "read_preamble",
           "eval_c_int"]


@record
class Include:
    """An ``#include``: ``path`` as written, ``system`` for ``<...>``."""

    path: str
    system: bool
    loc: Location


@record
class CType:
    """A field type: ``base`` (``unsigned int``, ``u64``, ``struct qstr``; for an anonymous
    nested definition, ``nested`` holds it), ``pointer`` stars, ``array`` sizes."""

    base: str
    pointer: int = 0
    array: List[int] = field(default_factory=list)
    nested: Optional["CStruct"] = None


@record
class CField:
    """One member; ``name`` is "" for an anonymous struct/union member; ``bits`` for a
    bit-field."""

    name: str
    type: CType
    bits: Optional[int] = None


@record
class CStruct:
    """A ``struct`` or ``union`` (``kind``) definition; ``name`` "" when anonymous."""

    kind: str
    name: str
    fields: List[CField]
    loc: Location


@record
class CEnum:
    """An ``enum`` definition and its constants in order."""

    name: str
    values: Dict[str, int]
    loc: Location


@record
class Preamble:
    """What the preamble declares. ``structs`` is keyed ``"struct name"``/``"union name"``;
    ``macros`` are the replacement texts, ``constants`` the integer-valued ones (enum
    constants included); ``header_enums`` the enumerators of ``#include``-d headers that
    the program names (:func:`~pybpf.bpftrace.headers.header_symbols`)."""

    includes: List[Include] = field(default_factory=list)
    macros: Dict[str, str] = field(default_factory=dict)
    constants: Dict[str, int] = field(default_factory=dict)
    structs: Dict[str, CStruct] = field(default_factory=dict)
    enums: Dict[str, CEnum] = field(default_factory=dict)
    header_enums: Dict[str, int] = field(default_factory=dict)


class _CError(Exception):
    def __init__(self, message: str, offset: int = 0) -> None:
        super().__init__(message)
        self.offset = offset


_C_TOKEN = re.compile(r"\s*(?:(0[xX][0-9a-fA-F]+|[0-9]+)[uUlL]*|([_a-zA-Z][_a-zA-Z0-9]*)"
                      r"|(<<|>>|<=|>=|==|!=|&&|\|\||[-+*/%<>&|^!~(){}\[\];,:?=.]))")
_COMMENTS = re.compile(r"//[^\n]*|/\*.*?\*/", re.S)


def _strip_comments(text: str) -> str:
    """Comments replaced by spaces of the same length (newlines kept: offsets hold)."""
    return _COMMENTS.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)


def _ctokens(text: str) -> List[tuple]:
    """(kind, text, offset) of C tokens: ``num``, ``id``, ``op``."""
    out, pos = [], 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return out
        m = _C_TOKEN.match(text, pos)
        if m is None:
            raise _CError(f"unexpected character {text[pos]!r}", pos)
        kind = "num" if m.group(1) else "id" if m.group(2) else "op"
        out.append((kind, m.group(1) or m.group(2) or m.group(3), m.start(m.lastindex or 0)))
        pos = m.end()


_BIN = {"*": 10, "/": 10, "%": 10, "+": 9, "-": 9, "<<": 8, ">>": 8, "<": 7, "<=": 7,
        ">": 7, ">=": 7, "==": 6, "!=": 6, "&": 5, "^": 4, "|": 3, "&&": 2, "||": 1}


def eval_c_int(text: str, lookup: Callable[[str], Optional[int]],
               defined: Callable[[str], bool] = lambda n: False) -> int:
    """The value of a C integer constant expression (``defined X`` supported); ``lookup``
    gives a name's value or None (an unknown name is an error)."""
    toks = _ctokens(text)
    pos = 0

    def peek() -> Optional[tuple]:
        return toks[pos] if pos < len(toks) else None

    def take() -> tuple:
        nonlocal pos
        if pos >= len(toks):
            raise _CError("incomplete expression", len(text))
        pos += 1
        return toks[pos - 1]

    def unary() -> int:
        kind, tx, off = take()
        if kind == "num":
            return int(tx, 0) if not re.fullmatch(r"0[0-7]+", tx) else int(tx, 8)
        if kind == "id":
            if tx == "defined":
                paren = peek() is not None and peek()[1] == "("  # type: ignore[index]
                if paren:
                    take()
                name = take()
                if paren and take()[1] != ")":
                    raise _CError("expected ) after defined(", off)
                return int(defined(name[1]))
            value = lookup(tx)
            if value is None:
                raise _CError(f"'{tx}' is not an integer constant", off)
            return value
        if tx == "(":
            v = ternary()
            if take()[1] != ")":
                raise _CError("expected )", off)
            return v
        if tx in "-+~!":
            v = unary()
            return {"-": -v, "+": v, "~": ~v, "!": int(not v)}[tx]
        raise _CError(f"unexpected '{tx}' in expression", off)

    def binary(min_prec: int) -> int:
        left = unary()
        while peek() is not None and _BIN.get(peek()[1], 0) >= max(min_prec, 1):  # type: ignore
            op = take()[1]
            right = binary(_BIN[op] + 1)
            if op in "/%" and right == 0:
                raise _CError("division by zero")
            left = {
                "*": lambda: left * right, "/": lambda: int(left / right),
                "%": lambda: left - int(left / right) * right, "+": lambda: left + right,
                "-": lambda: left - right, "<<": lambda: left << right,
                ">>": lambda: left >> right, "<": lambda: int(left < right),
                "<=": lambda: int(left <= right), ">": lambda: int(left > right),
                ">=": lambda: int(left >= right), "==": lambda: int(left == right),
                "!=": lambda: int(left != right), "&": lambda: left & right,
                "^": lambda: left ^ right, "|": lambda: left | right,
                "&&": lambda: int(bool(left) and bool(right)),
                "||": lambda: int(bool(left) or bool(right)),
            }[op]()
        return left

    def ternary() -> int:
        c = binary(1)
        if peek() is not None and peek()[1] == "?":  # type: ignore[index]
            take()
            a = ternary()
            if take()[1] != ":":
                raise _CError("expected : in ?:")
            b = ternary()
            return a if c else b
        return c

    value = ternary()
    if pos != len(toks):
        raise _CError(f"unexpected '{toks[pos][1]}' in expression", toks[pos][2])
    return value


class _Reader:
    def __init__(self, pre: Preamble) -> None:
        self.pre = pre
        self._last: Optional[CStruct] = None

    def lookup(self, name: str, depth: int = 0) -> Optional[int]:
        if name in self.pre.constants:
            return self.pre.constants[name]
        text = self.pre.macros.get(name)
        if text is None or depth > 50:
            return None
        try:
            return eval_c_int(text, lambda n: self.lookup(n, depth + 1))
        except _CError:
            return None

    def record(self, kind: str, text: str, loc: Location) -> None:
        toks = _ctokens(_strip_comments(text))
        pos = self.definition(toks, 0, loc)
        if pos < len(toks) and toks[pos][1] == ";":
            pos += 1
        if pos != len(toks):
            raise _CError(f"unexpected '{toks[pos][1]}' after the definition", toks[pos][2])

    def definition(self, toks: Sequence[tuple], pos: int, loc: Location) -> int:
        """``struct|union|enum [name] { ... }`` at ``pos``; returns the next position."""
        kind = toks[pos][1]
        pos += 1
        name = ""
        if pos < len(toks) and toks[pos][0] == "id":
            name = toks[pos][1]
            pos += 1
        if pos >= len(toks) or toks[pos][1] != "{":
            off = toks[pos][2] if pos < len(toks) else 0
            raise _CError(f"expected '{{' in the definition of {kind} {name}".rstrip(), off)
        pos += 1
        if kind == "enum":
            values: Dict[str, int] = {}
            nxt = 0
            while toks[pos][1] != "}":
                const = toks[pos]
                if const[0] != "id":
                    raise _CError(f"expected an enumerator, got '{const[1]}'", const[2])
                pos += 1
                if toks[pos][1] == "=":
                    end = pos + 1
                    while toks[end][1] not in (",", "}"):
                        end += 1
                    expr = " ".join(t[1] for t in toks[pos + 1:end])
                    nxt = eval_c_int(expr, lambda n: values.get(n, self.lookup(n)))
                    pos = end
                values[const[1]] = nxt
                self.pre.constants[const[1]] = nxt
                nxt += 1
                if toks[pos][1] == ",":
                    pos += 1
            en = CEnum(name, values, loc)
            if name:
                self.pre.enums[name] = en
            return pos + 1
        fields: List[CField] = []
        while toks[pos][1] != "}":
            pos = self.member(toks, pos, fields, loc)
        st = CStruct(kind, name, fields, loc)
        if name:
            self.pre.structs[f"{kind} {name}"] = st
        self._last = st
        return pos + 1

    def member(self, toks: Sequence[tuple], pos: int, fields: List[CField],
               loc: Location) -> int:
        words: List[str] = []
        nested: Optional[CStruct] = None
        while toks[pos][0] == "id" or toks[pos][1] == "{":
            w = toks[pos][1]
            if w in ("struct", "union", "enum") and (
                    toks[pos + 1][1] == "{" or toks[pos + 2][1] == "{"):
                pos = self.definition(toks, pos, loc)
                nested = self._last if w != "enum" else None
                words.append(f"{w} {nested.name}".strip() if nested else "int")
                continue
            if w in ("const", "volatile", "__volatile__", "restrict"):
                pos += 1
                continue
            if w == "typedef":
                raise _CError("typedef is not supported in the preamble", toks[pos][2])
            # a word is part of the type unless it is the declarator's name
            nxt = toks[pos + 1][1]
            if words and words[-1] not in ("struct", "union", "enum") and \
                    nxt in (";", ",", "[", ":") and not _is_type_word(w):
                break
            words.append(w)
            pos += 1
        if not words:
            raise _CError(f"expected a type, got '{toks[pos][1]}'", toks[pos][2])
        base = " ".join(words)
        if nested is None and base.split()[0] in ("struct", "union") and len(words) == 1:
            raise _CError("expected a name after " + base, toks[pos][2])
        if toks[pos][1] == ";" and nested is not None:        # anonymous member
            fields.append(CField("", CType(base, nested=nested)))
            return pos + 1
        while True:
            stars = 0
            while toks[pos][1] == "*":
                stars += 1
                pos += 1
            if toks[pos][1] == "(":
                raise _CError("function pointer fields are not supported", toks[pos][2])
            if toks[pos][0] != "id":
                raise _CError(f"expected a field name, got '{toks[pos][1]}'", toks[pos][2])
            fname = toks[pos][1]
            pos += 1
            dims: List[int] = []
            while toks[pos][1] == "[":
                end = pos + 1
                while toks[end][1] != "]":
                    end += 1
                dims.append(eval_c_int(" ".join(t[1] for t in toks[pos + 1:end]),
                                       self.lookup))
                pos = end + 1
            bits = None
            if toks[pos][1] == ":":
                end = pos + 1
                while toks[end][1] not in (",", ";"):
                    end += 1
                bits = eval_c_int(" ".join(t[1] for t in toks[pos + 1:end]), self.lookup)
                pos = end
            fields.append(CField(fname, CType(base, stars, dims, nested), bits))
            if toks[pos][1] == ",":
                pos += 1
                continue
            if toks[pos][1] != ";":
                raise _CError(f"expected ';' after field {fname}", toks[pos][2])
            return pos + 1


_TYPE_WORDS = frozenset("unsigned signed short long int char _Bool bool void float "
                        "double".split())


def _is_type_word(w: str) -> bool:
    return w in _TYPE_WORDS


_DIRECTIVE = re.compile(r"#\s*([A-Za-z_]*)\s*(.*)", re.S)


def read_preamble(defs: Sequence[CDefinition], source: str = "", filename: str = "stdin",
                  btf: bool = True) -> Preamble:
    """Read the preamble items of a parsed program (``Program.c_definitions``)."""
    pre = Preamble()
    reader = _Reader(pre)
    defined = {"BPFTRACE_HAVE_BTF"} if btf else set()
    stack: List[List[bool]] = []        # [active, a branch was taken, parent active]

    def fail(d: CDefinition, message: str, offset: int = 0) -> None:
        line = d.span.line + d.text[:offset].count("\n")
        text = d.text.split("\n")[d.text[:offset].count("\n")]
        loc = Location(line, 1, line, len(text.encode()) + 1)
        raise BpftraceSyntaxError([Diagnostic(loc, message)], source, filename)

    def is_defined(name: str) -> bool:
        return name in defined or name in pre.macros

    def active() -> bool:
        return all(s[0] for s in stack)

    def cond(d: CDefinition, expr: str) -> bool:
        try:
            return bool(eval_c_int(_strip_comments(expr), lambda n: reader.lookup(n) or 0,
                                   is_defined))
        except _CError as err:
            fail(d, f"cannot evaluate #if condition: {err}")
            return False

    for d in defs:
        if d.kind == "struct":
            if active():
                try:
                    reader.record(d.kind, d.text, d.span)
                except _CError as err:
                    fail(d, f"cannot read the C definition: {err}", err.offset)
                except IndexError:
                    fail(d, "cannot read the C definition: it ends too early",
                         len(d.text) - 1)
            continue
        m = _DIRECTIVE.match(d.text)
        assert m is not None
        word, rest = m.group(1), _strip_comments(m.group(2)).strip()
        if word in ("ifdef", "ifndef"):
            taken = is_defined(rest.split()[0] if rest else "") == (word == "ifdef")
            stack.append([taken, taken])
        elif word == "if":
            taken = active() and cond(d, rest)
            stack.append([taken, taken])
        elif word in ("elif", "else", "endif"):
            if not stack:
                fail(d, f"#{word} without #if")
            if word == "endif":
                stack.pop()
                continue
            top = stack[-1]
            if top[1]:
                top[0] = False
            elif word == "else":
                top[0] = top[1] = True
            else:
                stack.pop()
                outer = active()
                stack.append([False, False])
                if outer and cond(d, rest):
                    stack[-1] = [True, True]
        elif not active():
            continue
        elif word == "include":
            im = re.fullmatch(r'<([^>]+)>|"([^"]+)"', rest)
            if im is None:
                fail(d, f"malformed #include: {d.text.strip()}")
            else:
                pre.includes.append(Include(im.group(1) or im.group(2),
                                            im.group(1) is not None, d.loc))
        elif word == "define":
            dm = re.match(r"([_a-zA-Z][_a-zA-Z0-9]*)(\(?)\s*(.*)", m.group(2), re.S)
            if dm is None:
                fail(d, "#define without a name")
            elif dm.group(2):
                fail(d, f"function-like macro {dm.group(1)}() is not supported "
                        "(only #define NAME value)")
            else:
                name, value = dm.group(1), _strip_comments(dm.group(3)).strip()
                pre.macros[name] = value
                pre.constants.pop(name, None)
                v = reader.lookup(name)
                if v is not None:
                    pre.constants[name] = v
        elif word == "undef":
            pre.macros.pop(rest, None)
            pre.constants.pop(rest, None)
            defined.discard(rest)
        elif word == "error":
            fail(d, f"#error {rest}")
        else:
            fail(d, f"unsupported preprocessor directive '#{word}' (the preamble takes "
                    "#include, #define, #undef and #if/#ifdef/#ifndef/#else/#endif)")
    if stack:
        last = [d for d in defs if d.kind == "preproc"][-1]
        fail(last, "unterminated #if/#ifdef/#ifndef at the end of the preamble")
    return pre
