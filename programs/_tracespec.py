"""The probe language of BCC's trace (and argdist's probe part), the subset pybpf
supports, parsed into a :class:`TraceProbe`; expressions become pybpf.dsl source text.

::

    [p|r]:[LIB]:FUNC[(SIGNATURE)] [(FILTER)] ["FORMAT"[, VALUE, ...]]
    t:GROUP:EVENT [(FILTER)] ["FORMAT"[, VALUE, ...]]
    u:LIB:[PROVIDER:]PROBE [(FILTER)] ["FORMAT"[, VALUE, ...]]

``p::FUNC`` is a kernel function (kprobe), ``p:c:malloc`` a user function (uprobe),
``r:`` their returns. FILTER and VALUE are C expressions over ``arg1``..``arg6``
(``arg2@user``: a user pointer in a kernel function), ``retval`` or ``$retval``
(``r:`` only),
``args->FIELD`` (tracepoints), the SIGNATURE's parameter names, ``$pid`` (thread),
``$tgid``, ``$uid``, ``$gid``, ``$cpu``, integers, ``( )`` and the operators
``! ~ - * / % + - << >> < <= > >= == != & ^ | && ||``; values are signed 64-bit.
FORMAT takes BCC's conversions ``%d %i %u %x %c %s %K %U`` (with ``h``, ``l``, ``ll``;
``%K``/``%U``: a kernel/user address as a symbol), flags and widths. Anything else
(string comparisons, casts, struct members, ``$task``) is a :class:`ProbeSpecError`
naming its column.
"""

from __future__ import annotations

import re
from typing import Dict, List, NamedTuple, Optional, Tuple

if __package__:     # python3 -m programs.NAME: the helpers are its siblings
    from ._probespec import ProbeSpecError
else:               # programs/NAME.py, pybpf run NAME (programs/ on the path)
    from _probespec import ProbeSpecError

__all__ = ["TraceProbe", "Conversion", "parse_probe", "parse_format", "parse_expr",
           "Node", "ArgdistProbe", "parse_argdist", "VALUE_TYPES", "python_expr"]

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<num>0[xX][0-9a-fA-F]+|\d+)
  | (?P<arg>arg[1-6](?:@user)?\b)
  | (?P<field>args\s*->\s*[A-Za-z_]\w*)
  | (?P<var>\$[A-Za-z_]\w*)
  | (?P<name>[A-Za-z_]\w*)
  | (?P<op>&&|\|\||==|!=|<=|>=|<<|>>|[-+*/%<>&|^!~()])
""", re.X)

#: binary operators, loosest first: (C spelling, Python spelling)
_LEVELS = [[("||", "or")], [("&&", "and")], [("|", "|")], [("^", "^")], [("&", "&")],
           [("==", "=="), ("!=", "!=")],
           [("<", "<"), ("<=", "<="), (">", ">"), (">=", ">=")],
           [("<<", "<<"), (">>", ">>")], [("+", "+"), ("-", "-")],
           [("*", "*"), ("/", "//"), ("%", "%")]]
_VARS = {"$pid": "tid()", "$tgid": "pid()", "$uid": "uid()", "$gid": "gid()",
         "$cpu": "cpu()"}


class Node(NamedTuple):
    """An expression node: ``kind`` (``num``, ``arg``, ``retval``, ``field``, ``var``,
    ``unary``, ``binary``), ``value`` (number, 1-based argument, field name, variable,
    operator), ``parts`` (operands), ``column`` (1-based, in the whole probe) and
    ``user`` (``argN@user``)."""

    kind: str
    value: object
    parts: Tuple["Node", ...]
    column: int
    user: bool = False


class Conversion(NamedTuple):
    """One ``%`` conversion of a format: ``kind`` (``d u x c s K U``), ``bits`` (16, 32
    or 64; for d/u/x) and the ``python`` format text that prints it."""

    kind: str
    bits: int
    python: str


class TraceProbe(NamedTuple):
    """A parsed probe: ``kind`` p/r/t/u; ``library`` ("" for the kernel); ``name``
    (function, ``GROUP:EVENT``, or USDT ``[PROVIDER:]PROBE``); ``params`` (signature
    name -> 1-based argument); ``filter`` (a :class:`Node` or None); ``format`` (the
    text between the quotes), ``conversions`` and ``values`` (one :class:`Node` each);
    ``text`` the whole probe."""

    kind: str
    library: str
    name: str
    params: Dict[str, int]
    filter: Optional[Node]
    format: str
    conversions: List[Conversion]
    values: List[Node]
    text: str

    @property
    def display(self) -> str:
        """BCC's FUNC column: the function, the tracepoint's event, the USDT probe."""
        return self.name.split(":")[-1] if self.kind == "t" else self.name


class _Parser:
    def __init__(self, probe: str, text: str, start: int, params: Dict[str, int]) -> None:
        self.probe, self.params = probe, params
        self.toks: List[Tuple[str, str, int]] = []
        call = re.search(r"\b([A-Za-z_]\w*)\s*\(", text)
        if call:
            self.fail(start + call.start(), f"function calls ({call.group(1)}) are not "
                      "supported", "compare numbers: argN, retval, args->FIELD")
        pos = 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m:
                self.fail(start + pos, f"unexpected {text[pos]!r}",
                          "expressions take argN, retval, args->FIELD, $pid, numbers and "
                          "C operators")
            if m.lastgroup != "ws":
                self.toks.append((m.lastgroup, m.group(), start + pos))
            pos = m.end()
        self.end = start + len(text)
        self.i = 0

    def fail(self, column: int, problem: str, hint: str = "") -> None:
        raise ProbeSpecError(self.probe, column + 1, problem, hint)

    def peek(self) -> Optional[Tuple[str, str, int]]:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> Tuple[str, str, int]:
        tok = self.peek()
        if tok is None:
            self.fail(self.end, "the expression ends too early")
        self.i += 1
        return tok                                   # type: ignore[return-value]

    def parse(self) -> Node:
        if not self.toks:
            self.fail(self.end, "empty expression")
        node = self.binary(0)
        if self.peek() is not None:
            kind, text, col = self.peek()             # type: ignore[misc]
            self.fail(col, f"unexpected {text!r} after the expression")
        return node

    def binary(self, level: int) -> Node:
        if level == len(_LEVELS):
            return self.unary()
        node = self.binary(level + 1)
        ops = dict(_LEVELS[level])
        while self.peek() is not None and self.peek()[1] in ops:   # type: ignore[index]
            _, op, col = self.take()
            node = Node("binary", ops[op], (node, self.binary(level + 1)), col + 1)
        return node

    def unary(self) -> Node:
        kind, text, col = self.take()
        if text in ("!", "-", "~"):
            return Node("unary", {"!": "not ", "-": "-", "~": "~"}[text], (self.unary(),),
                        col + 1)
        if text == "(":
            node = self.binary(0)
            if self.peek() is None or self.peek()[1] != ")":    # type: ignore[index]
                self.fail(col, "unbalanced '('")
            self.take()
            return node
        if kind == "num":
            return Node("num", int(text, 0), (), col + 1)
        if kind == "arg":
            return Node("arg", int(text[3]), (), col + 1, text.endswith("@user"))
        if kind == "field":
            return Node("field", text.split("->")[1].strip(), (), col + 1)
        if kind == "var" and text == "$retval":           # argdist's spelling
            return Node("retval", text, (), col + 1)
        if kind == "var":
            if text not in _VARS:
                self.fail(col, f"unknown variable {text!r}", "known: " + ", ".join(_VARS))
            return Node("var", text, (), col + 1)
        if kind == "name" and text == "retval":
            return Node("retval", text, (), col + 1)
        if kind == "name" and text in self.params:
            return Node("arg", self.params[text], (), col + 1)
        self.fail(col, f"unsupported {text!r} in an expression",
                  "use argN, retval, args->FIELD, $pid/$tgid/$uid/$gid/$cpu or a number")
        raise AssertionError                          # pragma: no cover


def parse_expr(probe: str, text: str, start: int = 0,
               params: Optional[Dict[str, int]] = None) -> Node:
    """Parse expression ``text``, found at 0-based ``start`` of ``probe`` (errors name
    columns of ``probe``)."""
    return _Parser(probe, text, start, params or {}).parse()


_CONV = re.compile(r"%(?P<flags>[-+ 0#]*\d*(?:\.\d+)?)(?P<len>hh|h|ll|l)?(?P<conv>.?)")


def parse_format(probe: str, fmt: str, start: int) -> List[Conversion]:
    """The conversions of format text ``fmt`` (found at 0-based ``start`` of
    ``probe``); ``%%`` is a percent sign."""
    out: List[Conversion] = []
    pos = 0
    while True:
        pos = fmt.find("%", pos)
        if pos < 0:
            return out
        if fmt.startswith("%%", pos):
            pos += 2
            continue
        m = _CONV.match(fmt, pos)
        assert m is not None
        conv, length, flags = m.group("conv"), m.group("len") or "", m.group("flags")
        if conv == "i":
            conv = "d"
        if conv not in ("d", "u", "x", "c", "s", "K", "U") or \
                (length and conv not in "dux"):
            raise ProbeSpecError(probe, start + pos + 1,
                                 f"unsupported conversion {m.group()!r}",
                                 "use %d %u %x (with h, l, ll), %c, %s, %K or %U")
        bits = {"h": 16, "l": 64, "ll": 64}.get(length, 32)
        py = {"d": "d", "u": "d", "x": "x", "c": "c", "s": "s", "K": "s", "U": "s"}[conv]
        out.append(Conversion(conv, bits, f"%{flags}{py}"))
        pos = m.end()


def _closing(text: str, start: int, opener: str, closer: str) -> int:
    depth = 0
    for i in range(start, len(text)):
        if text[i] == opener:
            depth += 1
        elif text[i] == closer:
            depth -= 1
            if depth == 0:
                return i
    return -1


def _split_values(text: str) -> List[Tuple[str, int]]:
    """Comma-separated parts at parenthesis depth 0, with their offsets."""
    parts, depth, begin = [], 0, 0
    for i, ch in enumerate(text):
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append((text[begin:i], begin))
            begin = i + 1
    parts.append((text[begin:], begin))
    return parts


def parse_probe(text: str) -> TraceProbe:
    """Parse one trace probe (see the module doc); raises :class:`ProbeSpecError`."""
    m = re.match(r"\s*([^ \t(]+)", text)
    if not m:
        raise ProbeSpecError(text, 1, "empty probe", "write e.g. 'p:c:malloc \"%d\", arg1'")
    spec, pos = m.group(1), m.end()
    parts = spec.split(":")
    if len(parts) == 1:
        parts = ["p", "", parts[0]]
    elif len(parts) == 2:
        parts = ["p", parts[0], parts[1]]
    kind = parts[0] or "p"
    if kind not in ("p", "r", "t", "u"):
        raise ProbeSpecError(text, m.start(1) + 1, f"probe type must be 'p', 'r', 't' or "
                             f"'u', not {kind!r}")
    if kind == "t":
        if len(parts) != 3 or not parts[1] or not parts[2]:
            raise ProbeSpecError(text, m.start(1) + 1, "a tracepoint is t:GROUP:EVENT")
        library, name = "", f"{parts[1]}:{parts[2]}"
    elif kind == "u":
        if len(parts) not in (3, 4) or not parts[1] or not parts[-1]:
            raise ProbeSpecError(text, m.start(1) + 1, "a USDT probe is "
                                 "u:LIB:[PROVIDER:]PROBE")
        library, name = parts[1], ":".join(parts[2:])
    else:
        library, name = ":".join(parts[1:-1]), parts[-1]
        if not name:
            raise ProbeSpecError(text, m.end(1) + 1, "no function name")
        if "+" in name:
            raise ProbeSpecError(text, m.start(1) + spec.index("+") + 1,
                                 "offsets into functions are not supported")
    params: Dict[str, int] = {}
    if pos < len(text) and text[pos] == "(":
        if kind in ("t", "u"):
            raise ProbeSpecError(text, pos + 1, "tracepoints and USDT probes take no "
                                 "signature", "use args->FIELD or arg1, arg2, ...")
        close = text.find(")", pos)
        if close < 0:
            raise ProbeSpecError(text, pos + 1, "unbalanced '(' in the signature")
        for i, decl in enumerate(p for p in text[pos + 1:close].split(",") if p.strip()):
            words = re.findall(r"[A-Za-z_]\w*", decl)
            if not words:
                raise ProbeSpecError(text, pos + 2, "a parameter needs a name")
            params[words[-1]] = i + 1
        pos = close + 1
    while pos < len(text) and text[pos].isspace():
        pos += 1
    filt = None
    if pos < len(text) and text[pos] == "(":
        close = _closing(text, pos, "(", ")")
        if close < 0:
            raise ProbeSpecError(text, pos + 1, "unbalanced '(' in the filter")
        filt = parse_expr(text, text[pos + 1:close], pos + 1, params)
        pos = close + 1
    while pos < len(text) and text[pos].isspace():
        pos += 1
    fmt, conversions, values = "", [], []
    if pos < len(text):
        if text[pos] != '"':
            raise ProbeSpecError(text, pos + 1, "expected a \"format string\" or a "
                                 "(filter)")
        close = text.find('"', pos + 1)
        if close < 0:
            raise ProbeSpecError(text, pos + 1, "the format string has no closing '\"'")
        fmt = text[pos + 1:close]
        conversions = parse_format(text, fmt, pos + 1)
        rest, base = text[close + 1:], close + 1
        if rest.strip():
            lead = len(rest) - len(rest.lstrip())
            if rest[lead] != ",":
                raise ProbeSpecError(text, base + lead + 1, "expected ',' after the format")
            for part, off in _split_values(rest[lead + 1:]):
                values.append(parse_expr(text, part, base + lead + 1 + off, params))
        if len(values) != len(conversions):
            raise ProbeSpecError(text, pos + 1, f"the format has {len(conversions)} "
                                 f"conversions but {len(values)} values follow")
    probe = TraceProbe(kind, library, name, params, filt, fmt, conversions, values, text)
    _check_names(probe)
    return probe


def _walk(node: Node):
    yield node
    for part in node.parts:
        yield from _walk(part)


def _check_names(probe: TraceProbe) -> None:
    """Each probe kind's names only: argN not on tracepoints, retval on returns,
    args->FIELD on tracepoints."""
    for root in [probe.filter, *probe.values]:
        for node in _walk(root) if root is not None else ():
            if node.kind == "arg" and probe.kind == "t":
                raise ProbeSpecError(probe.text, node.column, "tracepoints have no argN",
                                     "use args->FIELD (pybpf list -v shows the fields)")
            if node.kind == "retval" and probe.kind != "r":
                raise ProbeSpecError(probe.text, node.column, "retval is only known in "
                                     "a return probe (r:)")
            if node.kind == "field" and probe.kind != "t":
                raise ProbeSpecError(probe.text, node.column, "args->FIELD is for "
                                     "tracepoints", "use arg1, arg2, ...")


def python_expr(node: Node, probe: TraceProbe) -> str:
    """The pybpf.dsl text of an expression (context parameter ``ctx``), as i64."""
    k = node.kind
    if k == "num":
        return f"i64({node.value})"
    if k == "arg":
        return f"i64(ctx.arg{int(node.value) - 1})"   # type: ignore[call-overload]
    if k == "retval":
        return "i64(ctx.retval)"
    if k == "field":
        return f"i64(ctx.{node.value})"
    if k == "var":
        return f"i64({_VARS[str(node.value)]})"
    if k == "unary":
        return f"({node.value}{python_expr(node.parts[0], probe)})"
    left, right = (python_expr(p, probe) for p in node.parts)
    return f"({left} {node.value} {right})"


# -- argdist's specifiers -----------------------------------------------------------------
#: argdist's value types: C name -> (bits, signed)
VALUE_TYPES = {
    "u8": (8, False), "u16": (16, False), "u32": (32, False), "u64": (64, False),
    "s8": (8, True), "s16": (16, True), "s32": (32, True), "s64": (64, True),
    "i8": (8, True), "i16": (16, True), "i32": (32, True), "i64": (64, True),
    "char": (8, True), "unsigned char": (8, False), "short": (16, True),
    "unsigned short": (16, False), "int": (32, True), "unsigned int": (32, False),
    "unsigned": (32, False), "long": (64, True), "unsigned long": (64, False),
    "long long": (64, True), "unsigned long long": (64, False), "size_t": (64, False),
    "ssize_t": (64, True), "pid_t": (32, True), "uid_t": (32, False),
    "gid_t": (32, False), "off_t": (64, True), "bool": (8, False),
}


class ArgdistProbe(NamedTuple):
    """A parsed argdist specifier: ``probe`` (a :class:`TraceProbe` for the attach point
    and filter; its ``values`` are the expressions), ``types`` ((bits, signed) per
    expression), ``exprs`` (their text, as the report shows them), ``default`` (no
    expression given: ``total calls``, or ``retval`` for a return probe), ``label``."""

    probe: TraceProbe
    types: List[Tuple[int, bool]]
    exprs: List[str]
    default: bool
    label: str


def parse_argdist(spec: str, histogram: bool) -> ArgdistProbe:
    """Parse ``TYPE:LIB:FUNC(SIGNATURE)[:TYPES:EXPRS[:FILTER]][#LABEL]`` (``-H`` when
    ``histogram``, else ``-C``); raises :class:`ProbeSpecError` naming the column."""
    body, _, label = spec.partition("#")
    parts = body.split(":")
    starts = [0]
    for p in parts[:-1]:
        starts.append(starts[-1] + len(p) + 1)
    if len(parts) < 3:
        raise ProbeSpecError(spec, 1, "at least the probe type, library and function "
                             "signature are needed", "write e.g. p:c:malloc(size_t size)")
    if len(parts) > 6:
        raise ProbeSpecError(spec, starts[6], "too many ':'-separated parts")
    kind = parts[0]
    if kind not in ("p", "r", "t", "u"):
        raise ProbeSpecError(spec, 1, f"probe type must be 'p', 'r', 't' or 'u', not "
                             f"{kind!r}")
    func = parts[2]
    m = re.fullmatch(r"\s*([^\s(]+)\s*\((.*)\)\s*", func)
    if not m:
        raise ProbeSpecError(spec, starts[2] + 1, f"function signature {func!r} has an "
                             "invalid format", "write FUNC(TYPE NAME, ...) or FUNC()")
    name, sig = m.group(1), m.group(2)
    params: Dict[str, int] = {}
    for i, decl in enumerate(p for p in sig.split(",") if p.strip()):
        words = re.findall(r"[A-Za-z_]\w*", decl)
        if not words:
            raise ProbeSpecError(spec, starts[2] + func.index("(") + 2,
                                 "a parameter needs a name")
        params[words[-1]] = i + 1
    default = len(parts) < 5
    types: List[Tuple[int, bool]] = []
    values: List[Node] = []
    exprs: List[str] = []
    if default:
        if len(parts) == 4:
            raise ProbeSpecError(spec, starts[3] + 1, "types need expressions after them",
                                 "write TYPE:EXPR, such as size_t:size")
        if histogram and kind != "r":
            raise ProbeSpecError(spec, len(body) + 1, "histograms need an expression",
                                 "add :TYPE:EXPR, such as :size_t:size")
        if kind == "r":
            types, exprs = [(32, True)], ["retval"]
            values = [Node("retval", "retval", (), len(body) + 1)]
        else:
            types, exprs = [(64, False)], ["1"]
            values = [Node("num", 1, (), len(body) + 1)]
    else:
        off = starts[3]
        for t in parts[3].split(","):
            key = " ".join(t.split())
            if key not in VALUE_TYPES:
                raise ProbeSpecError(spec, off + 1, f"unsupported type {t.strip()!r}",
                                     "integer types only: " + ", ".join(
                                         sorted(k for k in VALUE_TYPES if " " not in k)))
            types.append(VALUE_TYPES[key])
            off += len(t) + 1
        off = starts[4]
        for e in parts[4].split(","):
            values.append(parse_expr(spec, e, off, params))
            exprs.append(e.strip())
            off += len(e) + 1
        if len(values) != len(types):
            raise ProbeSpecError(spec, starts[4] + 1, f"{len(types)} types but "
                                 f"{len(values)} expressions")
        if histogram and len(values) > 1:
            raise ProbeSpecError(spec, starts[4] + 1, "a histogram takes one expression")
    filt = parse_expr(spec, parts[5], starts[5], params) if len(parts) == 6 else None
    probe = TraceProbe(kind, "" if kind == "t" else parts[1],
                       f"{parts[1]}:{name}" if kind == "t" else name, params, filt, "",
                       [], values, spec)
    _check_names(probe)
    return ArgdistProbe(probe, types, exprs, default, label.strip())
