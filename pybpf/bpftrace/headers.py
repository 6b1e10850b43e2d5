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


def _read_enums(text: str, want: Set[str], enums: Dict[str, int],
                lookup: Callable[[str], Optional[int]]) -> None:
    """Add to ``enums`` the enumerators of the enums in ``text`` that define a wanted
    name (each enum's constants in order, until one cannot be evaluated)."""
    from .preamble import _CError, eval_c_int
    for m in _ENUM.finditer(text):
        body = m.group(1)
        if not want.intersection(_IDENT.findall(body)):
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
        lines = _lines(path)
        for line in lines:
            m = _DEFINE.match(line)
            if m:
                name, paren, value = m.group(1), m.group(2), m.group(3).strip()
                if not paren and value and name not in found:
                    found[name] = value
                continue
            m = _INCLUDE.match(line)
            if m:
                inner = _find(m.group(2), m.group(1) == '"', here, dirs)
                if inner is not None and visit(inner):
                    return True
        # enums after the file's macros and includes, which their values may use
        if "enum" in "".join(lines):
            _read_enums("\n".join(l for l in lines if not l.lstrip().startswith("#")),
                        want, enums, lookup)
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
