"""Object-like macros of the headers a bpftrace program ``#include``\\ s, without clang.

bpftrace 0.17 gives the preamble to clang with the kernel's header directories
(``/lib/modules/$(uname -r)/source`` and ``build``) and the system's, and then expands
every object-like macro clang saw (``AF_INET`` from ``<sys/socket.h>``,
``TASK_RUNNING`` from ``<linux/sched.h>``) in a second parse of the program. This
module finds the definitions of the macros a program names: it follows ``#include``
lines depth-first from the program's includes, in the same directory order, reading
``#define NAME TEXT`` lines (continued lines joined, comments dropped), and stops as
soon as every wanted name and the names their texts use are defined.

The same walk finds the enumerators of the ``enum`` definitions in those headers
(:func:`header_symbols`): clang sees them, so a program may name them
(``TCP_FIN_WAIT1`` of ``<net/tcp_states.h>``) and they take their values from the
header, before the kernel's BTF (which bpftrace also offers, without an include).

Simplification: conditionals in headers are not evaluated (the first definition met
wins); function-like macros are skipped, as bpftrace's expansion skips them; an
enumerator whose value is not a plain integer expression (a cast, ``sizeof``, a
function-like macro) is left out, with the ones after it in its enum.
"""

from __future__ import annotations

import os
import re
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple

__all__ = ["include_dirs", "header_macros", "header_symbols"]

_DEFINE = re.compile(r"^[ \t]*#[ \t]*define[ \t]+([A-Za-z_]\w*)(\(?)[ \t]*(.*)$")
_INCLUDE = re.compile(r'^[ \t]*#[ \t]*include[ \t]*([<"])([^>"]+)[>"]')
_COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)
_IDENT = re.compile(r"[A-Za-z_]\w*")
_ENUM = re.compile(r"\benum\b[ \t\n]*(?:[A-Za-z_]\w*[ \t\n]*)?\{([^{}]*)\}")


def include_dirs(extra: Sequence[str] = (), release: Optional[str] = None) -> List[str]:
    """The directories searched, in bpftrace 0.17's order: ``-I`` dirs, the kernel's
    (``arch/x86/include``, generated, ``include``, the uapi ones, from ``source`` and
    ``build``), then the system's."""
    rel = release or os.uname().release
    base = f"/lib/modules/{rel}"
    src, obj = f"{base}/source", f"{base}/build"
    if not os.path.isdir(src):
        src = obj
    if not os.path.isdir(obj):
        obj = src
    dirs = list(extra)
    if os.path.isdir(src):
        dirs += [f"{src}/arch/x86/include", f"{obj}/arch/x86/include/generated",
                 f"{src}/include", f"{obj}/include", f"{src}/arch/x86/include/uapi",
                 f"{obj}/arch/x86/include/generated/uapi", f"{src}/include/uapi",
                 f"{obj}/include/generated/uapi"]
    dirs += ["/usr/local/include", "/usr/include/x86_64-linux-gnu", "/usr/include"]
    seen: Set[str] = set()
    return [d for d in dirs if os.path.isdir(d) and not (d in seen or seen.add(d))]


def _find(name: str, quoted: bool, here: str, dirs: Sequence[str]) -> Optional[str]:
    if quoted:
        p = os.path.join(here, name)
        if os.path.isfile(p):
            return p
    for d in dirs:
        p = os.path.join(d, name)
        if os.path.isfile(p):
            return p
    return None


def _lines(path: str) -> List[str]:
    try:
        with open(path, encoding="latin-1") as f:
            text = f.read()
    except OSError:
        return []
    text = text.replace("\\\n", " ")
    text = _COMMENT.sub(" ", text)
    return text.split("\n")


class _Scan:
    """What the walk needs of one header, in file order: ``events`` are
    ``(True, name, text)`` for an object-like ``#define`` with a text and
    ``(False, name, quoted)`` for an ``#include``; ``enums`` the body of each ``enum``
    definition outside ``#`` lines with the identifiers it holds."""

    __slots__ = ("events", "enums")

    def __init__(self, lines: List[str]) -> None:
        events: List[Tuple[bool, str, object]] = []
        for line in lines:
            m = _DEFINE.match(line)
            if m:
                name, paren, value = m.group(1), m.group(2), m.group(3).strip()
                if not paren and value:
                    events.append((True, name, value))
                continue
            m = _INCLUDE.match(line)
            if m:
                events.append((False, m.group(2), m.group(1) == '"'))
        self.events = events
        self.enums: List[Tuple[str, Set[str]]] = []
        if "enum" in "".join(lines):
            text = "\n".join(l for l in lines if not l.lstrip().startswith("#"))
            self.enums = [(m.group(1), set(_IDENT.findall(m.group(1))))
                          for m in _ENUM.finditer(text)]


# path -> (identity, scan): a header is read and scanned once per process while its
# identity (device, inode, size, modification time) stays the same
_SCANS: Dict[str, Tuple[Tuple[int, int, int, int], _Scan]] = {}


def _scan(path: str) -> _Scan:
    """The :class:`_Scan` of ``path``, from the cache when the file is unchanged."""
    try:
        st = os.stat(path)
    except OSError:
        return _Scan([])
    ident = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    hit = _SCANS.get(path)
    if hit is not None and hit[0] == ident:
        return hit[1]
    scan = _Scan(_lines(path))
    _SCANS[path] = (ident, scan)
    return scan


def header_macros(includes: Iterable[str], wanted: Iterable[str],
                  dirs: Optional[Sequence[str]] = None) -> Dict[str, str]:
    """Definitions (name -> replacement text) of the ``wanted`` names and of the names
    their texts use, found in the closure of ``includes`` (``sys/socket.h``...)."""
    return header_symbols(includes, wanted, dirs)[0]


def _split_enumerators(body: str) -> List[str]:
    """The comma-separated items of an enum body (commas inside parentheses kept)."""
    items, depth, start = [], 0, 0
    for i, c in enumerate(body):
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "," and depth == 0:
            items.append(body[start:i])
            start = i + 1
    items.append(body[start:])
    return [x.strip() for x in items if x.strip()]


def _read_enums(bodies: Sequence[Tuple[str, Set[str]]], want: Set[str], enums: Dict[str, int],
                lookup: Callable[[str], Optional[int]]) -> None:
    """Add to ``enums`` the enumerators of the enum ``bodies`` (with the identifiers
    each holds) that define a wanted name (each enum's constants in order, until one
    cannot be evaluated)."""
    from .preamble import _CError, eval_c_int
    for body, idents in bodies:
        if want.isdisjoint(idents):
            continue
        local: Dict[str, int] = {}
        nxt = 0
        for item in _split_enumerators(body):
            name, eq, expr = item.partition("=")
            name = name.strip()
            if not re.fullmatch(r"[A-Za-z_]\w*", name):
                break
            if eq:
                try:
                    nxt = eval_c_int(expr, lambda n: local.get(n, lookup(n)))
                except (_CError, ZeroDivisionError, IndexError, ValueError):
                    break
            local[name] = nxt
            enums.setdefault(name, nxt)
            nxt += 1


def header_symbols(includes: Iterable[str], wanted: Iterable[str],
                   dirs: Optional[Sequence[str]] = None
                   ) -> Tuple[Dict[str, str], Dict[str, int]]:
    """(macros, enumerators) of the closure of ``includes``: the definitions of the
    ``wanted`` macros and of the names their texts use (:func:`header_macros`), and
    the values of the ``wanted`` names that are enumerators of the headers' enums."""
    dirs = include_dirs() if dirs is None else dirs
    want: Set[str] = set(wanted)
    found: Dict[str, str] = {}
    enums: Dict[str, int] = {}
    visited: Set[str] = set()

    def lookup(name: str, depth: int = 0) -> Optional[int]:
        from .preamble import _CError, eval_c_int
        if name in enums:
            return enums[name]
        text = found.get(name)
        if text is None or depth > 30:
            return None
        try:
            return eval_c_int(text, lambda n: lookup(n, depth + 1))
        except (_CError, ZeroDivisionError, IndexError, ValueError):
            return None

    def satisfied() -> bool:
        todo = [n for n in want if n in found or n in enums]
        if len(todo) < len(want):
            return False
        seen = set(todo)
        while todo:
            n = todo.pop()
            for ref in _IDENT.findall(found.get(n, "")):
                if ref not in seen:
                    if ref not in found:
                        return False
                    seen.add(ref)
                    todo.append(ref)
        return True

    def visit(path: str) -> bool:
        real = os.path.realpath(path)
        if real in visited:
            return False
        visited.add(real)
        here = os.path.dirname(path)
        scan = _scan(path)
        for is_define, name, arg in scan.events:
            if is_define:
                if name not in found:
                    found[name] = arg     # type: ignore[assignment]
                continue
            inner = _find(name, bool(arg), here, dirs)
            if inner is not None and visit(inner):
                return True
        # enums after the file's macros and includes, which their values may use
        if scan.enums:
            _read_enums(scan.enums, want, enums, lookup)
        return satisfied()

    if not want:
        return {}, {}
    for inc in includes:
        path = _find(inc, False, "", dirs)
        if path is not None and visit(path):
            break
    out: Dict[str, str] = {}
    todo = [n for n in want if n in found]
    while todo:
        n = todo.pop()
        if n in out:
            continue
        out[n] = found[n]
        todo += [r for r in _IDENT.findall(found[n]) if r in found and r not in out]
    return out, {n: v for n, v in enums.items() if n in want}
