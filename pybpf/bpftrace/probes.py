"""Attach points as bpftrace 0.17 reads them: providers, aliases, targets, offsets,
addresses, units, event names, and the errors it reports for each.

bpftrace checks an attach point in two stages, and so does this module:

1. :func:`parse_attach_points` splits each attach point's text (``raw``, as
   :mod:`~pybpf.bpftrace.parser` glues it back from tokens) on ``:`` outside quotes,
   substitutes ``$N``, expands a wildcard provider (``*:sys_enter_read``, ``u*:/bin/x:f``)
   into one attach point per matching provider, and fills an :class:`AttachPoint`
   (0.17's ``src/ast/attachpoint_parser.cpp``). Every bad attach point of the program
   is reported (``stdin:1:7-22: ERROR: profile probe type requires 2 arguments``), then
   ``No attach points for probe`` for a probe left without any. An unknown provider is
   bpftrace's ``FATAL: Invalid probe type made it to attachpoint parser`` (it aborts).
2. :func:`check_attach_point` applies the rules 0.17's semantic analyser has for attach
   points (units of time, event names, watchpoint modes, uprobe and usdt targets that
   resolve to files, kfunc availability...) and returns located diagnostics.

Providers and aliases are 0.17's ``PROBE_LIST``; ``rawtracepoint``/``rt`` (bpftrace
0.18: ``rawtracepoint:event``) is accepted only with ``ProbeEnv(extensions=True)``, and
0.17's own refusal is kept otherwise. Wildcard matching and probe sources live in
:mod:`pybpf.bpftrace.probe_match`.
"""

from __future__ import annotations

import os
from typing import (TYPE_CHECKING, Any, Dict, List, NamedTuple, Optional, Sequence, Set, Tuple,
                    Union)

from .._nogc import gc_paused
from .errors import BpftraceError, Diagnostic, Location
from .._records import field, record
from .targets import resolve_binary_path, which_so

if TYPE_CHECKING:
    from . import ast as A

__all__ = [
    "PROBE_LIST", "PROVIDERS", "PerfEvent", "SOFTWARE_EVENTS", "HARDWARE_EVENTS",
    "AttachPoint", "ProbeEnv", "AttachPointError", "probe_type", "provider_name",
    "has_wildcard", "to_uint", "parse_attach_points", "parse_attach_point",
    "check_attach_point", "check_attach_points", "resolve_binary_path", "which_so",
    "ORIGIN", "INVALID_PROBE_TYPE",
]

#: bpftrace 0.17's providers in its ``PROBE_LIST`` order: (name, alias, kind); BEGIN
#: and END are of kind ``special``
PROBE_LIST: Tuple[Tuple[str, str, str], ...] = (
    ("kprobe", "k", "kprobe"), ("kretprobe", "kr", "kretprobe"),
    ("uprobe", "u", "uprobe"), ("uretprobe", "ur", "uretprobe"), ("usdt", "U", "usdt"),
    ("BEGIN", "BEGIN", "special"), ("END", "END", "special"),
    ("tracepoint", "t", "tracepoint"), ("profile", "p", "profile"),
    ("interval", "i", "interval"), ("software", "s", "software"),
    ("hardware", "h", "hardware"), ("watchpoint", "w", "watchpoint"),
    ("asyncwatchpoint", "aw", "asyncwatchpoint"), ("kfunc", "f", "kfunc"),
    ("kretfunc", "fr", "kretfunc"), ("iter", "it", "iter"),
)
#: the 0.18 provider accepted as an extension
_EXTENSION_LIST = (("rawtracepoint", "rt", "rawtracepoint"),)

#: every spelling -> canonical provider name (0.17's, without the extension)
PROVIDERS: Dict[str, str] = {}
for _name, _abbr, _kind in PROBE_LIST:
    PROVIDERS.setdefault(_name, _name)
    PROVIDERS.setdefault(_abbr, _name)

#: every spelling -> kind, first entry first (without, then with the extension)
_KINDS: Dict[str, str] = {}
for _name, _abbr, _kind in PROBE_LIST:
    _KINDS.setdefault(_name, _kind)
    _KINDS.setdefault(_abbr, _kind)
_KINDS_EXT = dict(_KINDS)
for _name, _abbr, _kind in _EXTENSION_LIST:
    _KINDS_EXT.setdefault(_name, _kind)
    _KINDS_EXT.setdefault(_abbr, _kind)

#: the message bpftrace 0.17 aborts with for an unknown provider
INVALID_PROBE_TYPE = "Invalid probe type made it to attachpoint parser"
#: where bpftrace puts what has no location of its own (1:1-1)
ORIGIN = Location(1, 1, 1, 1)


class PerfEvent(NamedTuple):
    """A software or hardware perf event as bpftrace names it: ``name``, its short
    ``alias`` (or ""), the ``PERF_COUNT_*`` ``config`` and bpftrace's default sample
    period when no count is given."""

    name: str
    alias: str
    config: int
    default_period: int


#: ``software:`` events, in bpftrace's order (``PERF_TYPE_SOFTWARE`` configs)
SOFTWARE_EVENTS: Tuple[PerfEvent, ...] = (
    PerfEvent("alignment-faults", "", 7, 1), PerfEvent("bpf-output", "", 10, 1),
    PerfEvent("context-switches", "cs", 3, 1000), PerfEvent("cpu-clock", "cpu", 0, 1000000),
    PerfEvent("cpu-migrations", "", 4, 1), PerfEvent("dummy", "", 9, 1),
    PerfEvent("emulation-faults", "", 8, 1), PerfEvent("major-faults", "", 6, 1),
    PerfEvent("minor-faults", "", 5, 100), PerfEvent("page-faults", "faults", 2, 100),
    PerfEvent("task-clock", "", 1, 1),
)
#: ``hardware:`` events, in bpftrace's order (``PERF_TYPE_HARDWARE`` configs)
HARDWARE_EVENTS: Tuple[PerfEvent, ...] = (
    PerfEvent("backend-stalls", "", 8, 1000000),
    PerfEvent("branch-instructions", "branches", 4, 100000),
    PerfEvent("branch-misses", "", 5, 100000), PerfEvent("bus-cycles", "", 6, 100000),
    PerfEvent("cache-misses", "", 3, 1000000), PerfEvent("cache-references", "", 2, 1000000),
    PerfEvent("cpu-cycles", "cycles", 0, 1000000),
    PerfEvent("frontend-stalls", "", 7, 1000000), PerfEvent("instructions", "", 1, 1000000),
    PerfEvent("ref-cycles", "", 9, 1000000),
)

_MAX_ARG_X86 = 5          # bpftrace's arch::max_arg() on x86-64 (arg0..arg5)


def probe_type(name: str, extensions: bool = False) -> str:
    """The kind of provider ``name`` (any spelling): ``kprobe``, ``special`` for
    BEGIN/END, ..., or ``invalid``."""
    return (_KINDS_EXT if extensions else _KINDS).get(name, "invalid")


def provider_name(name: str, extensions: bool = False) -> str:
    """The canonical name of provider spelling ``name`` (``k`` -> ``kprobe``); an
    unknown name is returned as is."""
    for n, a, _kind in PROBE_LIST + (_EXTENSION_LIST if extensions else ()):
        if name in (n, a):
            return n
    return name


def has_wildcard(text: str) -> bool:
    """bpftrace's test for a wildcard: a ``*``, or both ``[`` and ``]``."""
    return "*" in text or ("[" in text and "]" in text)


class AttachPointError(ValueError):
    """One attach point bpftrace refuses: ``message`` as bpftrace words it."""


def _strtoull(text: str) -> Tuple[int, int]:
    """C's ``std::stoull(text, &idx, 0)``: (value mod 2**64, characters used); raises
    AttachPointError("stoull") when no number starts the text."""
    i, n = 0, len(text)
    while i < n and text[i] in " \t\n\v\f\r":
        i += 1
    neg = False
    if i < n and text[i] in "+-":
        neg, i = text[i] == "-", i + 1
    base, digits = 10, "0123456789"
    if text[i:i + 2].lower() == "0x" and i + 2 < n and text[i + 2] in "0123456789abcdefABCDEF":
        base, digits, i = 16, "0123456789abcdefABCDEF", i + 2
    elif text[i:i + 1] == "0":
        base, digits = 8, "01234567"
    start = i
    while i < n and text[i] in digits:
        i += 1
    if i == start:
        raise AttachPointError("stoull")
    value = int(text[start:i], base)
    if value >= 1 << 64:
        raise AttachPointError("stoull")
    return ((-value) % (1 << 64) if neg else value), i


def _parse_int(text: str, base10: bool = False) -> int:
    if base10:        # stoull(.., 10): no prefix forms
        stripped = text.lstrip(" \t\n\v\f\r")
        body = stripped[1:] if stripped[:1] in "+-" else stripped
        digits = len(body) - len(body.lstrip("0123456789"))
        if digits == 0:
            raise AttachPointError("stoull")
        used = len(text) - len(body) + digits
        value = int(text[:used])
        if abs(value) >= 1 << 64:
            raise AttachPointError("stoull")
        value %= 1 << 64
    else:
        value, used = _strtoull(text)
    trail = text[used:]
    if trail and trail.lower() not in ("u", "l", "ll", "ul", "ull"):
        raise AttachPointError("Found trailing non-numeric characters")
    return value


def to_uint(text: str) -> int:
    """bpftrace 0.17's ``int_parser::to_uint(text, 0)``: ``_`` ignored, C prefixes
    (``0x``, octal ``0``), integer scientific form (``1e3``), C suffixes; raises
    :class:`AttachPointError` with bpftrace's message."""
    n = text.replace("_", "")
    if n[:2] in ("0x", "0X"):
        return _parse_int(n)
    pos = min((p for p in (n.find("e"), n.find("E")) if p >= 0), default=-1)
    if pos < 0:
        return _parse_int(n)
    coeff, exp = n[:pos], n[pos + 1:]
    try:
        c = _parse_int(coeff, base10=True)
    except AttachPointError as exc:
        raise AttachPointError("Coefficient part of scientific literal is not a valid "
                               f"number: {coeff}: {exc}") from None
    try:
        e = _parse_int(exp, base10=True)
    except AttachPointError as exc:
        raise AttachPointError("Exponent part of scientific literal is not a valid "
                               f"number: {exp}: {exc}") from None
    if c > 9:
        raise AttachPointError("Coefficient part of scientific literal must be in range "
                               f"(0,9), got: {coeff}")
    if e > 16:
        raise AttachPointError(f"Exponent will overflow integer range: {exp}")
    return (c * 10 ** e) % (1 << 64)


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


@record
class AttachPoint:
    """One parsed attach point (bpftrace's ``ast::AttachPoint`` after its attach-point
    parser): ``provider`` canonical (``kprobe``, ``BEGIN``...), ``target`` (binary or
    library path, tracepoint category, kfunc module, software/hardware event name,
    profile/interval unit), ``ns`` (usdt provider), ``func``, ``func_offset``,
    ``address`` (uprobe address; watchpoint address or argument number), ``freq``
    (profile/interval rate, software/hardware count), ``len`` and ``mode``
    (watchpoint), ``is_async``, ``pin`` (iter), ``need_expansion`` (wildcards to
    match), ``ignore_invalid`` (made by expanding a wildcard provider), ``raw`` (the
    text as written) and ``loc`` (bpftrace's location for it)."""

    raw: str
    provider: str = ""
    target: str = ""
    ns: str = ""
    func: str = ""
    func_offset: int = 0
    address: int = 0
    freq: int = 0
    len: int = 0
    mode: str = ""
    is_async: bool = False
    pin: str = ""
    need_expansion: bool = False
    ignore_invalid: bool = False
    loc: Location = field(default=ORIGIN, compare=False)

    @property
    def kind(self) -> str:
        """The provider's kind (``special`` for BEGIN/END)."""
        return probe_type(self.provider, extensions=True)

    def name(self, target: Optional[str] = None, func: Optional[str] = None) -> str:
        """The probe name bpftrace gives this attach point (the ``probe`` builtin):
        ``provider[:target][:ns][:func[+offset]][:address][:freq][:len][:mode]``, with
        ``target``/``func`` overriding the parsed ones (a wildcard's match)."""
        target = self.target if target is None else target
        func = self.func if func is None else func
        out = self.provider
        if target:
            out += ":" + target
        if self.ns:
            out += ":" + self.ns
        if func:
            out += ":" + func
            if self.func_offset:
                out += f"+{self.func_offset}"
        for part in (self.address, self.freq, self.len):
            if part:
                out += f":{part}"
        if self.mode:
            out += ":" + self.mode
        return out

    def copy(self) -> "AttachPoint":
        """A shallow copy (for expansions)."""
        import copy
        return copy.copy(self)


class ProbeEnv:
    """What bpftrace consults while reading attach points: ``pid`` (``-p``),
    ``params`` (``$1``...), ``listing`` (``-l``), ``has_child`` (``-c``),
    ``extensions`` (accept ``rawtracepoint``), and the machine's facts, found lazily
    and cached: the traceable kernel functions (``available_filter_functions``),
    whether kfunc programs and iterators can be loaded. Tests set the ``_``-prefixed
    caches or pass ``kfunc``/``iters`` explicitly."""

    def __init__(self, *, pid: Optional[int] = None, params: Sequence[str] = (),
                 listing: bool = False, has_child: bool = False, extensions: bool = False,
                 kfunc: Optional[bool] = None, iters: Optional[bool] = None,
                 command: Optional[str] = None) -> None:
        self.pid, self.params = pid, list(params)
        #: the ``-c`` command line (watchpoints name its binary)
        self.command = command
        self.listing, self.has_child, self.extensions = listing, has_child, extensions
        self._kfunc, self._iters = kfunc, iters
        self._traceable: Optional[Dict[str, Set[str]]] = None
        self.traceable_error: Optional[str] = None
        #: warnings bpftrace prints without a location (``WARNING: ...``), in order
        self.warnings: List[str] = []
        self._targets: Dict[Tuple[str, str], Any] = {}

    def target(self, how: str, name: str) -> Any:
        """``which_so(name)`` (``how`` = ``"lib"``) or ``resolve_binary_path(name)``
        (``"path"``) for this run's ``pid``, each asked once per run: a tool naming one
        library in many attach points looks it up once, as one snapshot."""
        key = (how, name)
        if key not in self._targets:
            self._targets[key] = which_so(name, self.pid) if how == "lib" else \
                tuple(resolve_binary_path(name, self.pid))
        return self._targets[key]

    def get_param(self, n: int) -> str:
        """``$n`` as text inside an attach point ("" when not given)."""
        return self.params[n - 1] if 1 <= n <= len(self.params) else ""

    def has_kfunc(self) -> bool:
        """Can fentry (kfunc) programs be loaded here (bpftrace's ``has_kfunc``)?"""
        if self._kfunc is None:
            self._kfunc = _tracing_loads()
        return self._kfunc

    def has_iter(self, name: str) -> bool:
        """Can an iterator program of ``name`` (``task``, ``task_file``) be loaded?"""
        if self._iters is None:
            self._iters = _tracing_loads() and os.path.exists("/sys/kernel/btf/vmlinux")
        return self._iters

    def traceable_functions(self) -> Dict[str, Set[str]]:
        """Kernel function -> modules, from ``available_filter_functions`` (empty, with
        :attr:`traceable_error` set, when it cannot be read, as bpftrace does)."""
        if self._traceable is None:
            from .probe_match import kernel_function_lines
            table: Dict[str, Set[str]] = {}
            try:
                for line in kernel_function_lines():
                    fn, mod = _split_module(line)
                    table.setdefault(fn, set()).add(mod or "vmlinux")
            except OSError as exc:
                self.traceable_error = f"{exc.filename}: {os.strerror(exc.errno or 0)}"
            self._traceable = table
        return self._traceable


def _split_module(line: str) -> Tuple[str, str]:
    """``func [module]`` -> (func, module); (line, "") without a module."""
    if line.endswith("]"):
        idx = line.rfind(" [")
        if idx >= 0:
            return line[:idx], line[idx + 2:-1]
    return line, ""


def _tracing_loads() -> bool:
    try:
        from pybpf.features import have_prog_type
        from pybpf.syscall.bpf import ProgType
        return bool(have_prog_type(ProgType.TRACING))
    except (OSError, ImportError, ValueError):
        return False


# ---------------------------------------------------------------------------------------
# stage 1: the attach-point parser
# ---------------------------------------------------------------------------------------

class _Unnamed(AttachPointError):
    """An error met before the provider is known: bpftrace drops such an attach point
    (so its probe may end up with none)."""


class _Skip(Exception):
    """An expanded attach point that does not fit its provider: dropped silently."""


def _lex(raw: str, env: ProbeEnv) -> List[str]:
    """Split on ``:`` outside double quotes; quotes dropped, ``\\x`` inside quotes is
    ``x``, ``$N`` replaced by parameter N."""
    parts: List[str] = []
    arg, in_quotes, i = "", False, 0
    while i < len(raw):
        ch = raw[i]
        if ch == ":" and not in_quotes:
            parts.append(arg)
            arg = ""
        elif ch == '"':
            in_quotes = not in_quotes
        elif in_quotes and ch == "\\" and i + 1 < len(raw):
            arg += raw[i + 1]
            i += 1
        elif not in_quotes and ch == "$":
            j = i + 1
            while j < len(raw) and raw[j] not in '":':
                j += 1
            text = raw[i + 1:j]
            digits = len(text) - len(text.lstrip("0123456789"))
            if digits < len(text):
                raise AttachPointError(
                    f"Found trailing text '{text[digits:]}' in positional parameter "
                    "index. Try quoting the trailing text.")
            arg += env.get_param(int(text))
            i = j - 1
        else:
            arg += ch
        i += 1
    parts.append(arg)
    return parts


def _offset_split(ap: AttachPoint, text: str, allow_offset: bool) -> None:
    plus = text.count("+")
    if not plus:
        ap.func = text
        return
    if not allow_offset:
        raise AttachPointError("Offset not allowed")
    if plus != 1:
        raise AttachPointError("Cannot take more than one offset")
    pieces = [p for p in text.split("+") if p]
    if len(pieces) != 2:
        raise AttachPointError("Invalid offset")
    ap.func = pieces[0]
    ap.func_offset = to_uint(pieces[1])


def _need(ap: AttachPoint, ok: bool, message: str) -> None:
    if not ok:
        if ap.ignore_invalid:
            raise _Skip()
        raise AttachPointError(message)


def _fill(ap: AttachPoint, parts: List[str], env: ProbeEnv) -> None:
    """Fill ``ap`` from ``parts`` by provider (``ap.provider`` already canonical)."""
    kind, p = ap.kind, ap.provider
    if kind == "special":
        if len(parts) == 2 and parts[1] == "*":
            parts.pop()
        if len(parts) != 1:
            raise AttachPointError(f"{p} probe type requires 0 arguments")
    elif kind in ("kprobe", "kretprobe"):
        _need(ap, len(parts) == 2, f"{p} probe type requires 1 argument")
        _offset_split(ap, parts[1], kind == "kprobe")
        ap.need_expansion = "*" in ap.func
    elif kind in ("uprobe", "uretprobe"):
        if len(parts) == 2 and env.pid:
            exe = os.path.realpath(f"/proc/{env.pid}/exe")
            parts = [parts[0], f"/proc/{env.pid}/root" + exe, parts[1]]
        _need(ap, len(parts) == 3, f"{p} probe type requires 2 arguments")
        target = parts[1]
        ap.target = ""
        if not has_wildcard(target) and target.startswith("lib"):
            ap.target = env.target("lib", target[3:]) or ""
        ap.target = ap.target or target
        if "+" in parts[2]:
            _offset_split(ap, parts[2], kind == "uprobe")
        elif kind == "uprobe":
            try:
                ap.address = to_uint(parts[2])
            except AttachPointError:
                ap.address, ap.func = 0, parts[2]
            else:
                if has_wildcard(ap.target):
                    raise AttachPointError("Cannot use wildcards with absolute address")
        else:
            ap.func = parts[2]
        ap.need_expansion = "*" in ap.target or "*" in ap.func
    elif kind == "usdt":
        if env.pid and len(parts) == 2:
            parts = [parts[0], "", parts[1]]
        _need(ap, len(parts) in (3, 4), f"{p} probe type requires 2 or 3 arguments")
        ap.target, ap.func = parts[1], parts[-1]
        ap.ns = parts[2] if len(parts) == 4 else ""
        ap.need_expansion = ("*" in ap.target or "*" in ap.ns or not ap.ns
                             or "*" in ap.func or bool(env.pid))
    elif kind == "tracepoint":
        if len(parts) == 2 and has_wildcard(parts[1]):
            parts.insert(1, "*")
        _need(ap, len(parts) == 3, f"{p} probe type requires 2 arguments")
        ap.target, ap.func = parts[1], parts[2]
        ap.need_expansion = "*" in ap.target or "*" in ap.func
    elif kind in ("profile", "interval"):
        if len(parts) != 3:
            raise AttachPointError(f"{p} probe type requires 2 arguments")
        ap.target = parts[1]
        ap.freq = _signed(to_uint(parts[2]))
    elif kind in ("software", "hardware"):
        _need(ap, len(parts) in (2, 3), f"{p} probe type requires 1 or 2 arguments")
        ap.target = parts[1]
        if len(parts) == 3 and parts[2] != "*":
            ap.freq = _signed(to_uint(parts[2]))
    elif kind in ("watchpoint", "asyncwatchpoint"):
        if len(parts) != 4:
            raise AttachPointError(f"{p} probe type requires 3 arguments")
        if "+" not in parts[1]:
            ap.address = to_uint(parts[1])
        else:
            pieces = [x for x in parts[1].split("+") if x]
            if len(pieces) != 2:
                raise AttachPointError("Invalid function/address argument")
            ap.func = pieces[0]
            ap.need_expansion = "*" in ap.func
            if len(pieces[1]) <= 3 or not pieces[1].startswith("arg"):
                raise AttachPointError("Invalid function argument")
            ap.address = to_uint(pieces[1][3:])
        ap.len = to_uint(parts[2])
        ap.target = watchpoint_binary(env)
        ap.mode, ap.is_async = parts[3], kind == "asyncwatchpoint"
    elif kind in ("kfunc", "kretfunc"):
        _need(ap, len(parts) in (2, 3), f"{p} probe type requires 1 or 2 arguments")
        if len(parts) == 3:
            ap.target, ap.func = parts[1], parts[2]
        else:
            ap.func = parts[1]
            if "*" in ap.func:
                ap.target = "*"
            else:
                mods = env.traceable_functions().get(ap.func, set())
                if len(mods) == 1:
                    ap.target = next(iter(mods))
                elif len(mods) > 1:
                    if not env.listing:
                        raise AttachPointError(
                            "ambiguous attach point, please specify module containing "
                            f"the function '{ap.func}'")
                    ap.target = "*"
        ap.need_expansion = "*" in ap.func or "*" in ap.target
    elif kind == "iter":
        _need(ap, len(parts) in (2, 3), f"{p} probe type takes 2 arguments (1 optional)")
        if "*" in parts[1]:
            if not env.listing:
                _need(ap, False, f"{p} probe type does not support wildcards")
            ap.need_expansion = True
        ap.func = parts[1]
        ap.pin = parts[2] if len(parts) == 3 else ""
    elif kind == "rawtracepoint":            # bpftrace 0.18: rawtracepoint:event
        _need(ap, len(parts) == 2, f"{p} probe type requires 1 argument")
        ap.func = parts[1]
        ap.need_expansion = "*" in ap.func


class _Fatal(Exception):
    pass


def parse_attach_point(raw: str, env: ProbeEnv, loc: Location = ORIGIN,
                       ignore_invalid: bool = False
                       ) -> Union[AttachPoint, List[AttachPoint], None]:
    """One attach point's text: an :class:`AttachPoint`; a list of new (unparsed,
    ``ignore_invalid``) attach points when a wildcard provider matched several; None
    when it is to be dropped (empty text, or an expansion that does not fit).
    Raises :class:`AttachPointError` with bpftrace's message."""
    from .probe_match import expand_provider
    try:
        parts = _lex(raw, env)
    except AttachPointError as exc:
        raise _Unnamed(str(exc)) from None
    if not parts[0]:
        return None
    types = (expand_provider("*" if len(parts) == 1 else parts[0], parts, env)
             if has_wildcard(parts[0]) else [parts[0]])
    if not types:
        if has_wildcard(parts[0]):
            raise _Unnamed(f"No probe type matched for {parts[0]}")
        raise _Unnamed(f"Invalid probe type: {parts[0]}")
    if len(types) > 1:
        rest = raw.split(":", 1)[1] if len(parts) > 1 else raw
        return [AttachPoint(f"{t}:{rest}", ignore_invalid=True) for t in types]
    ap = AttachPoint(raw, loc=loc, ignore_invalid=ignore_invalid)
    ap.provider = provider_name(types[0], env.extensions)
    if probe_type(ap.provider, env.extensions) == "invalid":
        raise _Fatal()
    try:
        _fill(ap, parts, env)
    except _Skip:
        return None
    return ap


@gc_paused
def parse_attach_points(program: A.Program, env: ProbeEnv, source: str = "",
                        filename: str = "stdin") -> List[List[AttachPoint]]:
    """Stage 1 for a whole program: per probe, its attach points in bpftrace's order
    (the matches of a wildcard provider replace it at the end of its probe's list).
    Raises :class:`~pybpf.bpftrace.errors.BpftraceError` with a diagnostic per bad
    attach point and per probe left without attach points; an unknown provider ends
    with bpftrace's unlocated ``FATAL`` diagnostic (``fatal`` is set on the error)."""
    diags: List[Diagnostic] = []
    out: List[List[AttachPoint]] = []
    for probe in program.probes:
        todo: List[Tuple[str, Location, bool]] = [(a.raw, a.loc, False)
                                                  for a in probe.attach_points]
        done: List[AttachPoint] = []
        i = kept = 0
        while i < len(todo):
            raw, loc, ignore = todo[i]
            i += 1
            try:
                res = parse_attach_point(raw, env, loc, ignore)
            except AttachPointError as exc:
                diags.append(Diagnostic(loc, str(exc)))
                # bpftrace keeps an invalid attach point whose provider is known
                kept += not isinstance(exc, _Unnamed)
                continue
            except _Fatal:
                diags.append(Diagnostic(None, INVALID_PROBE_TYPE, "FATAL"))
                err = BpftraceError(diags, source, filename)
                err.fatal = True            # type: ignore[attr-defined]
                raise err from None
            if isinstance(res, list):
                todo += [(r.raw, ORIGIN, True) for r in res]
            elif res is not None:
                done.append(res)
        if not done and not kept:
            diags.append(Diagnostic(ORIGIN, "No attach points for probe"))
        out.append(done)
    if diags:
        raise BpftraceError(diags, source, filename)
    return out


# ---------------------------------------------------------------------------------------
# stage 2: the semantic analyser's rules for attach points
# ---------------------------------------------------------------------------------------

@record
class CheckState:
    """What the attach-point checks remember across a program (one BEGIN, one END)."""

    has_begin: bool = False
    has_end: bool = False


_UNITS = ("hz", "us", "ms", "s")


def _resolve_target(ap: AttachPoint, env: ProbeEnv, what: str,
                    errors: List[str], warnings: List[str]) -> None:
    paths = env.target("path", ap.target)
    if not paths:
        errors.append(f"{what} target file '{ap.target}' does not exist or is not "
                      "executable")
    elif len(paths) == 1:
        ap.target = paths[0]
    elif "*" not in ap.target:
        warnings.append(f"attaching to {what} target file '{paths[0]}' but matched "
                        f"{len(paths)} binaries")
        ap.target = paths[0]


def _check_perf(ap: AttachPoint, env: ProbeEnv, errors: List[str]) -> None:
    kind = ap.kind
    table = SOFTWARE_EVENTS if kind == "software" else HARDWARE_EVENTS
    if not ap.target:
        errors.append(f"{kind} probe must have a {kind} event name")
    elif not has_wildcard(ap.target) and not ap.ignore_invalid:
        if not any(ap.target in (e.name, e.alias) and ap.target for e in table):
            errors.append(f"{ap.target} is not a {kind} probe")
    elif not env.listing:
        # 0.17 names hardware in both messages
        errors.append("wildcards are not allowed for hardware probe type")
    if ap.func:
        errors.append(f"{kind} probe can only have an integer count")
    elif ap.freq < 0:
        errors.append("software count should be a positive integer" if kind == "software"
                      else "hardware frequency should be a positive integer")


def watchpoint_binary(env: "ProbeEnv") -> str:
    """The binary a watchpoint's function is looked up in, as 0.17 names it: the ``-c``
    command's program found as bpftrace finds it (``./prog`` stays ``./prog``), else
    ``/proc/PID/exe`` of ``-p``, else nothing (an error for the function form)."""
    if env.command:
        words = env.command.split()
        if words:
            found = resolve_binary_path(words[0])
            return found[0] if found else words[0]
    if env.pid:
        return f"/proc/{env.pid}/exe"
    return ""


def _check_watchpoint(ap: AttachPoint, env: ProbeEnv, errors: List[str]) -> None:
    if ap.func:
        if not env.pid and not env.has_child:
            errors.append("-p PID or -c CMD required for watchpoint")
        if ap.address > _MAX_ARG_X86:
            errors.append(f"x86_64 doesn't support arg{ap.address}")
    elif ap.provider == "asyncwatchpoint":
        errors.append(f"{ap.provider} requires a function name")
    elif not ap.address:
        errors.append("watchpoint must be attached to a non-zero address")
    if ap.len not in (1, 2, 4, 8):
        errors.append("watchpoint length must be one of (1,2,4,8)")
    if not ap.mode:
        errors.append("watchpoint mode must be combination of (r,w,x)")
    ap.mode = "".join(sorted(ap.mode))
    for c in ap.mode:
        if c not in "rwx":
            errors.append("watchpoint mode must be combination of (r,w,x)")
    for a, b in zip(ap.mode, ap.mode[1:]):
        if a == b:
            errors.append("watchpoint modes may not be duplicated")
    if ap.mode in ("r", "rx", "wx", "rwx"):      # x86-64 cannot watch these
        errors.append(f"invalid watchpoint mode: {ap.mode}")


def check_attach_point(ap: AttachPoint, env: ProbeEnv,
                       state: Optional[CheckState] = None, final_pass: bool = True
                       ) -> List[Diagnostic]:
    """bpftrace 0.17's semantic rules for one attach point: errors and warnings at
    ``ap.loc``, in bpftrace's order. Resolves uprobe/usdt targets to paths as bpftrace
    does (``bash`` -> the first ``$PATH`` match)."""
    errors: List[str] = []
    warnings: List[str] = []
    kind, p = ap.kind, ap.provider
    if kind in ("kprobe", "kretprobe"):
        if ap.target:
            errors.append("kprobes should not have a target")
        if not ap.func:
            errors.append("kprobes should be attached to a function")
        if final_pass and not has_wildcard(ap.func) and \
                ap.func not in env.traceable_functions():
            warnings.append(f"{ap.func} is not traceable (either non-existing, inlined, "
                            'or marked as "notrace"); attaching to it will likely fail')
    elif kind in ("uprobe", "uretprobe"):
        if not ap.target:
            errors.append(f"{p} should have a target")
        if not ap.func and ap.address == 0:
            errors.append(f"{p} should be attached to a function and/or address")
        if kind == "uretprobe" and ap.func_offset:
            errors.append("uretprobes can not be attached to a function offset")
        _resolve_target(ap, env, "uprobe", errors, warnings)
    elif kind == "usdt":
        if not ap.func:
            errors.append("usdt probe must have a target function or wildcard")
        if ap.target and not (env.pid and has_wildcard(ap.target)):
            _resolve_target(ap, env, "usdt", errors, warnings)
        if not env.pid and not ap.target:
            errors.append("usdt probe must specify at least path or pid to probe")
    elif kind == "tracepoint":
        if not ap.target or not ap.func:
            errors.append("tracepoint probe must have a target")
    elif kind in ("profile", "interval"):
        if not ap.target:
            errors.append(f"{kind} probe must have unit of time")
        elif ap.target not in _UNITS:
            errors.append(f"{ap.target} is not an accepted unit of time")
        if ap.func:
            errors.append(f"{kind} probe must have an integer frequency")
        elif kind == "profile" and ap.freq <= 0:
            errors.append("profile frequency should be a positive integer")
    elif kind in ("software", "hardware"):
        _check_perf(ap, env, errors)
    elif kind in ("watchpoint", "asyncwatchpoint"):
        _check_watchpoint(ap, env, errors)
    elif kind == "special":
        if ap.target or ap.func:
            errors.append("BEGIN/END probes should not have a target")
        if final_pass and state is not None:
            seen = state.has_begin if p == "BEGIN" else state.has_end
            if seen:
                errors.append(f"More than one {p} probe defined")
            if p == "BEGIN":
                state.has_begin = True
            else:
                state.has_end = True
    elif kind in ("kfunc", "kretfunc"):
        if not env.has_kfunc():
            errors.append("kfunc/kretfunc not available for your kernel version.")
        elif not ap.func:
            errors.append("kfunc should specify a function")
    elif kind == "iter":
        if ap.func in ("task", "task_file"):
            ok = env.has_iter(ap.func)
        else:
            ok = env.listing
        if not ok:
            errors.append(f"iter {ap.func} not available for your kernel version.")
    elif kind != "rawtracepoint":
        errors.append(f"Invalid provider: '{p}'")
    out = [Diagnostic(ap.loc, m) for m in errors]
    return out + [Diagnostic(ap.loc, m, "WARNING") for m in warnings]


def check_attach_points(probes: List[List[AttachPoint]], env: ProbeEnv, source: str = "",
                        filename: str = "stdin") -> List[Diagnostic]:
    """:func:`check_attach_point` over a program's attach points (one pass, as in
    listing mode): returns the warnings; raises
    :class:`~pybpf.bpftrace.errors.BpftraceError` with every error when there is one
    (its ``warnings`` holds the warnings, which bpftrace prints before the errors)."""
    state = CheckState()
    diags: List[Diagnostic] = []
    for aps in probes:
        for ap in aps:
            if not env.listing and len(aps) > 1 and ap.kind == "iter":
                diags.append(Diagnostic(ap.loc, "Only single iter attach point is allowed."))
                break
            diags += check_attach_point(ap, env, state, final_pass=not env.listing)
    errors = [d for d in diags if d.level == "ERROR"]
    warnings = [d for d in diags if d.level != "ERROR"]
    if errors:
        err = BpftraceError(errors, source, filename)
        err.warnings = warnings             # type: ignore[attr-defined]
        raise err
    return warnings
