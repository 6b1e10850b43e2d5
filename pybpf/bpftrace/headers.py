"""Object-like macros of the headers a bpftrace program ``#include``\\ s, without clang.

bpftrace 0.17 gives the preamble to clang with the kernel's header directories
(``/lib/modules/$(uname -r)/source`` and ``build``) and the system's, and then expands
every object-like macro clang saw (``AF_INET`` from ``<sys/socket.h>``,
``TASK_RUNNING`` from ``<linux/sched.h>``) in a second parse of the program. This
module finds the definitions of the macros a program names: it follows ``#include``
lines depth-first from the program's includes, in the same directory order, reading
``#define NAME TEXT`` lines (continued lines joined, comments dropped), and stops as
soon as every wanted name and the names their texts use are defined.

Simplification: conditionals in headers are not evaluated (the first definition met
wins); function-like macros are skipped, as bpftrace's expansion skips them.
"""

from __future__ import annotations

import os
import re
from typing import Dict, Iterable, List, Optional, Sequence, Set

__all__ = ["include_dirs", "header_macros"]

_DEFINE = re.compile(r"^[ \t]*#[ \t]*define[ \t]+([A-Za-z_]\w*)(\(?)[ \t]*(.*)$")
_INCLUDE = re.compile(r'^[ \t]*#[ \t]*include[ \t]*([<"])([^>"]+)[>"]')
_COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)
_IDENT = re.compile(r"[A-Za-z_]\w*")


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
    dirs = include_dirs() if dirs is None else dirs
    want: Set[str] = set(wanted)
    found: Dict[str, str] = {}
    visited: Set[str] = set()

    def satisfied() -> bool:
        todo = [n for n in want if n in found]
        if len(todo) < len(want):
            return False
        seen = set(todo)
        while todo:
            n = todo.pop()
            for ref in _IDENT.findall(found[n]):
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
        for line in _lines(path):
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
        return satisfied()

    if not want:
        return {}
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
    return out
