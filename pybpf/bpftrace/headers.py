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
import stat
import time
from collections import deque
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
    ``(False, name, quoted)`` for an ``#include``; ``segments`` the same in runs:
    ``(names, texts, include)`` for the ``#define`` lines up to an ``#include``
    (``(name, quoted)``, None after the last one); ``enums`` the body of each ``enum``
    definition outside ``#`` lines with the identifiers it holds."""

    __slots__ = ("events", "segments", "enums")

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
        self.segments: List[Tuple[List[str], List[str], Optional[Tuple[str, bool]]]] = []
        names: List[str] = []
        texts: List[str] = []
        for is_define, name, arg in events:
            if is_define:
                names.append(name)
                texts.append(arg)                   # type: ignore[arg-type]
            else:
                self.segments.append((names, texts, (name, bool(arg))))
                names, texts = [], []
        if names:
            self.segments.append((names, texts, None))
        self.enums: List[Tuple[str, Set[str]]] = []
        if "enum" in "".join(lines):
            text = "\n".join(l for l in lines if not l.lstrip().startswith("#"))
            self.enums = [(m.group(1), set(_IDENT.findall(m.group(1))))
                          for m in _ENUM.finditer(text)]


# A cached answer is trusted only while what it was read from keeps its identity; a
# time stamp this close to the present may yet be followed by a change within the file
# system's time stamp granularity, so such answers are not kept (git's "racy" rule).
_RACY_NS = 2_000_000_000
_MISSING = object()

# path -> (identity: device, inode, size, modification time; scan)
_SCANS: Dict[str, Tuple[Tuple[int, int, int, int], _Scan]] = {}
# (name, quoted, including directory if quoted, search dirs) -> (path or None, the
# directories whose identity (device, inode, modification time) the answer rests on)
_FINDS: Dict[Tuple[str, bool, str, Tuple[str, ...]],
             Tuple[Optional[str], Tuple[Tuple[str, Tuple[int, int, int]], ...]]] = {}


def _scan(path: str, st: os.stat_result) -> _Scan:
    """The :class:`_Scan` of ``path`` (whose ``os.stat`` is ``st``), from the cache
    when the file is unchanged."""
    ident = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    hit = _SCANS.get(path)
    if hit is not None and hit[0] == ident:
        return hit[1]
    scan = _Scan(_lines(path))
    if time.time_ns() - st.st_mtime_ns > _RACY_NS:
        _SCANS[path] = (ident, scan)
    return scan


class _Finder:
    """:func:`_find` with its answers kept across walks: an answer holds while the
    directories it rests on are unchanged (creating, removing or renaming an entry
    changes its directory's modification time; replacing a directory changes the
    inode its path leads to). A miss rests on the deepest existing directory above the
    candidate, a hit on the directory holding it; a hit through a symbolic link, or a
    candidate that exists but is not a regular file, is not kept. Directories are
    looked at once per walk (``seen``)."""

    def __init__(self, dirs: Sequence[str]) -> None:
        self.dirs = tuple(dirs)
        self.seen: Dict[str, Optional[Tuple[int, int, int]]] = {}
        self.links: Dict[str, bool] = {}

    def ident(self, path: str) -> Optional[Tuple[int, int, int]]:
        got = self.seen.get(path, _MISSING)
        if got is _MISSING:
            try:
                st = os.stat(path)
                got = (st.st_dev, st.st_ino, st.st_mtime_ns)
            except OSError:
                got = None
            self.seen[path] = got
        return got          # type: ignore[return-value]

    def find(self, name: str, quoted: bool, here: str) -> Optional[str]:
        key = (name, quoted, here if quoted else "", self.dirs)
        hit = _FINDS.get(key)
        if hit is not None:
            seen = self.seen
            for d, i in hit[1]:
                got = seen.get(d, _MISSING)
                if (self.ident(d) if got is _MISSING else got) != i:
                    break
            else:
                return hit[0]
        found, anchors = self._probe(name, quoted, here)
        if anchors is not None:
            _FINDS[key] = (found, anchors)
        elif hit is not None:
            del _FINDS[key]
        return found

    def _probe(self, name: str, quoted: bool, here: str
               ) -> Tuple[Optional[str], Optional[Tuple[Tuple[str, Tuple[int, int, int]], ...]]]:
        """Where ``name`` is found: the first candidate (the including file's directory
        for a quoted name, then ``dirs`` in order) that is a regular file, links
        followed; one ``lstat`` a candidate; and what the answer rests on (None: not
        to be kept)."""
        anchors: List[str] = []
        keep = True
        found: Optional[str] = None
        for d in ([here] if quoted else []) + list(self.dirs):
            cand = os.path.join(d, name)
            try:
                st = os.lstat(cand)
            except (OSError, ValueError) as exc:
                if not isinstance(exc, (FileNotFoundError, NotADirectoryError)):
                    keep = False
                elif keep:
                    up = os.path.dirname(cand)        # the deepest directory there is
                    while self.ident(up) is None and up != os.path.dirname(up):
                        if self.is_link(up):
                            keep = False           # a dangling link on the way
                            break
                        up = os.path.dirname(up)
                    anchors.append(up)
                continue
            if stat.S_ISREG(st.st_mode):
                found = cand
                anchors.append(os.path.dirname(cand))
                break
            keep = False        # a link (its target may change), a directory...
            if stat.S_ISLNK(st.st_mode) and os.path.isfile(cand):
                found = cand
                break
        if not keep:
            return found, None
        now = time.time_ns()
        out = []
        for d in anchors:
            i = self.ident(d)
            if i is None or now - i[2] <= _RACY_NS:
                return found, None
            out.append((d, i))
        return found, tuple(out)

    def is_link(self, path: str) -> bool:
        got = self.links.get(path)
        if got is None:
            got = self.links[path] = os.path.islink(path)
        return got


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
    visited: Set[Tuple[int, int]] = set()
    visited_paths: Set[str] = set()
    finder = _Finder(dirs)

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

    missing = list(want)            # wanted names not yet defined (found, enums only grow)

    def satisfied() -> bool:
        while missing:
            if missing[-1] in found or missing[-1] in enums:
                missing.pop()
            else:
                return False
        todo = list(want)
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
        # one visit per file (device and inode, as clang tells files apart); a path
        # visited already in this walk is that file again
        if path in visited_paths:
            return False
        try:
            st = os.stat(path)
        except OSError:
            return satisfied()
        if (st.st_dev, st.st_ino) in visited:
            return False
        visited.add((st.st_dev, st.st_ino))
        visited_paths.add(path)
        here = ""
        scan = _scan(path, st)
        for names, texts, include in scan.segments:
            # the first definition of a name wins: setdefault on each, in order
            deque(map(found.setdefault, names, texts), 0)
            if include is None:
                break
            name, quoted = include
            if quoted and not here:
                here = os.path.dirname(path)
            inner = finder.find(name, quoted, here)
            if inner is not None and visit(inner):
                return True
        # enums after the file's macros and includes, which their values may use
        if scan.enums:
            _read_enums(scan.enums, want, enums, lookup)
        return satisfied()

    if not want:
        return {}, {}
    for inc in includes:
        path = finder.find(inc, False, "")
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
