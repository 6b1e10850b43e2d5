"""Where a compiled function's code comes from: its ``ast`` and source lines, read from
its file (parsed once per file) or through :mod:`inspect`, and the
:class:`~pybpf.asm.instruction.SourceLocation` of each node."""

from __future__ import annotations

import ast
import inspect
import textwrap
import types as _pytypes
from typing import Any, Callable, Dict, List, Optional, Tuple

from ...asm.instruction import SourceLocation
from ...compiler.errors import CompileError

__all__ = ["Source", "parse_function"]


class Source:
    """The source of one function: its ``ast.FunctionDef``, file name, and lines."""

    def __init__(self, node: ast.FunctionDef, file: str, lines: List[str],
                 line_offset: int, col_offset: int, globals_: Dict[str, Any]) -> None:
        self.node = node
        self.file = file
        self.lines = lines
        self.line_offset = line_offset
        self.col_offset = col_offset
        self.globals = globals_

    def loc(self, node: Any) -> SourceLocation:
        """The :class:`SourceLocation` of an ast node (file lines, 1-based columns)."""
        line = getattr(node, "lineno", 1) + self.line_offset
        col = getattr(node, "col_offset", 0) + self.col_offset + 1
        text = self.lines[line - 1].rstrip("\n") if 0 < line <= len(self.lines) else ""
        return SourceLocation(self.file, line, col, text)


def parse_function(fn: Callable[..., Any]) -> Source:
    """Parse a Python function's source into a :class:`Source`."""
    if not isinstance(fn, _pytypes.FunctionType):
        raise CompileError(f"{fn!r} is not a Python function",
                           suggestion="pass a function defined with def")
    found = _from_file_tree(fn)
    if found is not None:
        return found
    try:
        file = inspect.getsourcefile(fn) or "<unknown>"
        lines, start = inspect.findsource(fn)
        block = inspect.getblock(lines[fn.__code__.co_firstlineno - 1:])
    except (OSError, TypeError) as exc:
        raise CompileError(f"cannot read the source of {fn.__name__}: {exc}",
                           suggestion="define the function in a file, not in a REPL") from None
    first = fn.__code__.co_firstlineno
    text = "".join(block)
    dedented = textwrap.dedent(text)
    indent = len(block[0]) - len(block[0].lstrip()) if dedented != text else 0
    tree = ast.parse(dedented)
    node = next(n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))
    if isinstance(node, ast.AsyncFunctionDef):
        raise CompileError("async functions cannot be compiled",
                           SourceLocation(file, first, 1, lines[first - 1]),
                           "use a plain def")
    # the block starts at co_firstlineno (the first decorator's line, if any)
    return Source(node, file, lines, first - 1, indent, fn.__globals__)


_TREES: Dict[str, Tuple[Tuple[float, int], List[str], Dict[int, ast.FunctionDef]]] = {}


def _from_file_tree(fn: Any) -> Optional[Source]:
    """The function's :class:`Source` from its file parsed once (cached by path, mtime
    and size): many programs in one module cost one parse. None when the file cannot be
    read or the function is not found there (then :mod:`inspect` is used)."""
    import linecache
    import os
    file = fn.__code__.co_filename
    try:
        st = os.stat(file)
    except OSError:
        return None
    key = (st.st_mtime, st.st_size)
    cached = _TREES.get(file)
    if cached is None or cached[0] != key:
        lines = linecache.getlines(file)
        if not lines:
            return None
        try:
            tree = ast.parse("".join(lines))
        except SyntaxError:
            return None
        by_line: Dict[int, ast.FunctionDef] = {}
        for n in ast.walk(tree):
            if isinstance(n, ast.FunctionDef):
                first = n.decorator_list[0].lineno if n.decorator_list else n.lineno
                by_line[first] = n
        cached = (key, lines, by_line)
        _TREES[file] = cached
    _, lines, by_line = cached
    node = by_line.get(fn.__code__.co_firstlineno)
    if node is None or node.name != fn.__name__:
        return None
    return Source(node, file, lines, 0, 0, fn.__globals__)
