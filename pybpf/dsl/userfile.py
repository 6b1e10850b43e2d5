"""Errors at the boundary between a user's file and pybpf, located in that file.

A pybpf tool is a Python file: its top level declares structs, maps and decorated
programs, and pybpf runs it before compiling anything. What goes wrong there is
reported as a :class:`~pybpf.compiler.errors.CompileError` at the user's line and column,
like a compile error, instead of a traceback that ends deep inside pybpf:

* a ``SyntaxError`` in the file (:func:`syntax_error`);
* an exception raised while the file's top level runs (:func:`top_level_error`): the
  innermost frame that belongs to the user (not to pybpf, not to Python's library)
  names the line, and a hint is added where one is known (the signature of the
  pybpf object called with the wrong arguments, a close name for a ``NameError``,
  the field of a :class:`~pybpf.dsl.Struct` whose type is not a pybpf type);
* an attach point that does not exist (:func:`attach_error`), at the decorator.
"""

from __future__ import annotations

import ast
import os
import sysconfig
from typing import Any, Dict, List, Optional, Tuple

from ..asm.instruction import SourceLocation
from ..compiler.errors import CompileError

__all__ = ["import_user_file", "syntax_error", "top_level_error", "attach_error", "decorator_location",
           "DEBUG_HINT"]

#: the hint of an error without a more specific one
DEBUG_HINT = "pybpf --debug shows the traceback"

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _library_dirs() -> Tuple[str, ...]:
    paths = sysconfig.get_paths()
    found = {os.path.abspath(paths[k]) for k in ("stdlib", "platstdlib", "purelib",
                                                 "platlib") if paths.get(k)}
    return tuple(sorted(found)) + (_PACKAGE,)


def _is_user_file(path: str) -> bool:
    if not path or path.startswith("<"):
        return False
    full = os.path.abspath(path)
    return not any(full == d or full.startswith(d + os.sep) for d in _library_dirs())


def _line_text(path: str, line: int) -> str:
    import linecache
    return linecache.getline(path, line).rstrip("\n")


def _loc(path: str, line: int, col: int) -> SourceLocation:
    """A location with a 1-based column (``col`` is 0-based, as ast and tracebacks)."""
    return SourceLocation(path, line, col + 1, _line_text(path, line))


def import_user_file(path: str, prefix: str) -> Any:
    """Import the Python file ``path`` as a module named ``prefix`` + its stem (taken out
    of ``sys.modules`` again afterwards). A syntax error in it, or an exception its top
    level raises (a map with bad arguments, a Struct field that is no pybpf type, ...),
    is a :class:`CompileError` at the user's own line."""
    import importlib.util
    import sys
    name = prefix + os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise CompileError(f"cannot import {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        raise syntax_error(exc, f"python3 -m py_compile {path} shows Python's own "
                           "report") from exc
    except Exception as exc:
        located = top_level_error(exc)
        if located is None or located is exc:
            raise
        raise located from exc
    finally:
        sys.modules.pop(name, None)
    return module


def syntax_error(exc: SyntaxError, hint: str = "") -> CompileError:
    """``SyntaxError: message`` at the file, line and column Python reported."""
    path = str(exc.filename or "<unknown>")
    line, col = exc.lineno or 0, max((exc.offset or 1) - 1, 0)
    loc = SourceLocation(path, line, col + 1, (exc.text or "").rstrip("\n")
                         or _line_text(path, line))
    return CompileError(f"SyntaxError: {exc.msg}", loc, hint)


def top_level_error(exc: BaseException, *, top_level_only: bool = False
                    ) -> Optional[CompileError]:
    """``exc`` (raised while a user's file was being run) as a located
    :class:`CompileError`, or None when no frame of its traceback is the user's (or,
    with ``top_level_only``, when the user's innermost frame is inside a function:
    a module's or class body's own code is the top level)."""
    if isinstance(exc, CompileError):
        return exc
    import traceback
    tb = exc.__traceback__
    frames: List[Any] = []
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    summaries = traceback.extract_tb(exc.__traceback__)
    for frame, summary in reversed(list(zip(frames, summaries))):
        if _is_user_file(summary.filename):
            break
    else:
        return None
    if top_level_only and frame.f_code.co_flags & 1:       # CO_OPTIMIZED: a function
        return None
    path, line = summary.filename, summary.lineno or 0
    col = getattr(summary, "colno", None) or 0
    loc = _loc(path, line, col)
    # pybpf's own exceptions are written for users; Python's need their type's name
    own = type(exc).__module__.startswith("pybpf.")
    message = str(exc) if own else f"{type(exc).__name__}: {exc}"
    hint = ""
    from .structs import FieldTypeError
    if isinstance(exc, FieldTypeError):
        loc = _field_location(path, line, exc.struct_name, exc.field) or loc
    if isinstance(getattr(exc, "hint", None), str):        # pybpf's errors may carry one
        hint = exc.hint                                    # type: ignore[attr-defined]
    elif isinstance(exc, NameError) and getattr(exc, "name", None):
        hint = _name_hint(exc.name, frame)
    elif isinstance(exc, AttributeError) and getattr(exc, "name", None):
        hint = _attribute_hint(exc)
    elif isinstance(exc, TypeError):
        hint = _call_hint(path, line, col, frame)
    error = CompileError(message, loc, hint or DEBUG_HINT)
    error.__cause__ = exc
    return error


def _tree(path: str) -> Optional[ast.AST]:
    try:
        with open(path, encoding="utf-8") as fh:
            return ast.parse(fh.read(), path)
    except (OSError, SyntaxError, ValueError):
        return None


def _field_location(path: str, line: int, struct: str, field: str
                    ) -> Optional[SourceLocation]:
    """Where ``field: type`` is written in class ``struct`` (the class statement being
    run at ``line``)."""
    tree = _tree(path)
    if tree is None:
        return None
    classes = [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == struct]
    classes.sort(key=lambda n: (not (n.lineno <= line <= (n.end_lineno or n.lineno)
                                     or line <= n.lineno), abs(n.lineno - line)))
    for cls in classes:
        for stmt in cls.body:
            if (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
                    and stmt.target.id == field):
                node = stmt.annotation
                return _loc(path, node.lineno, node.col_offset)
    return None


def _name_hint(name: str, frame: Any) -> str:
    from . import __all__ as dsl_names
    from ..errors import close_matches
    import builtins
    if name in dsl_names:
        return f"import it: from pybpf.dsl import {name}"
    known = set(frame.f_globals) | set(frame.f_locals) | set(dir(builtins)) | set(dsl_names)
    matches = close_matches(name, sorted(n for n in known if not n.startswith("__")), n=3)
    return f"did you mean {' or '.join(matches)}?" if matches else ""


def _attribute_hint(exc: AttributeError) -> str:
    from ..errors import close_matches
    obj = getattr(exc, "obj", None)
    if obj is None:
        return ""
    matches = close_matches(str(exc.name), [n for n in dir(obj) if not n.startswith("_")],
                            n=3)
    return f"did you mean {' or '.join(matches)}?" if matches else ""


def _call_hint(path: str, line: int, col: int, frame: Any) -> str:
    """The signature of what the call at ``line:col`` calls (a name or dotted name), or
    how to write an array type for a subscript there."""
    import inspect
    tree = _tree(path)
    if tree is None:
        return ""
    here = [n for n in ast.walk(tree) if isinstance(n, (ast.Call, ast.Subscript))
            and n.lineno == line and n.col_offset == col]
    calls = [n for n in here if isinstance(n, ast.Call)]
    if not calls:
        if here:                                    # u32[-1], char[0]
            return "an array type is T[N] with a constant N >= 1 (char[16]: a string)"
        return ""
    parts: List[str] = []
    func: Any = calls[0].func
    while isinstance(func, ast.Attribute):
        parts.insert(0, func.attr)
        func = func.value
    if not isinstance(func, ast.Name):
        return ""
    parts.insert(0, func.id)
    scope: Dict[str, Any] = dict(frame.f_globals)
    scope.update(frame.f_locals)
    import builtins
    obj = scope.get(parts[0], getattr(builtins, parts[0], None))
    for part in parts[1:]:
        obj = getattr(obj, part, None)
    if obj is None or not callable(obj):
        return ""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return ""
    empty = inspect.Parameter.empty
    sig = sig.replace(parameters=[p.replace(annotation=empty)
                                  for p in sig.parameters.values()],
                      return_annotation=inspect.Signature.empty)
    return f"call it as {'.'.join(parts)}{sig}"


def decorator_location(fn: Any, kind: Any) -> Optional[SourceLocation]:
    """Where the decorator that gave ``fn`` the attach point ``kind`` is written (at
    its target string when that is a literal), or None when no decorator in the source
    says it (a point set at run time with :func:`~pybpf.dsl.retarget`)."""
    from .compiler.frontend import parse_function
    try:
        src = parse_function(fn)
    except (CompileError, OSError, TypeError):
        return None
    literal, computed = [], []
    for dec in src.node.decorator_list:
        call = dec if isinstance(dec, ast.Call) else None
        func = call.func if call is not None else dec
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name != kind.decorator:
            continue
        arg = call.args[0] if call is not None and call.args else None
        if isinstance(arg, ast.Constant):
            if arg.value == kind.target:
                literal.append(arg)
        else:
            computed.append(arg if arg is not None else dec)
    if literal:
        return src.loc(literal[0])
    if len(computed) == 1:
        return src.loc(computed[0])
    return None


def attach_error(fn: Any, kind: Any, exc: Exception) -> Optional[CompileError]:
    """``exc`` (the attach point of ``kind`` does not exist, or its name is malformed)
    as a :class:`CompileError` at ``fn``'s decorator; None when no decorator says it."""
    loc = decorator_location(fn, kind)
    if loc is None:
        return None
    message = str(exc)
    hint = _list_hint(kind)
    matches = getattr(exc, "matches", None)
    if matches:
        base = str(exc).split("; close matches:")[0]
        message = f"{base}; did you mean {' or '.join(matches[:3])}?"
    error = CompileError(message, loc, hint)
    error.__cause__ = exc
    return error


def _list_hint(kind: Any) -> str:
    """How to list the attach points of ``kind``'s sort."""
    d, t = kind.decorator, kind.target
    if d == "tracepoint":
        group = t.partition(":")[0] if ":" in t else ""
        pattern = f"tracepoint:{group}:*" if group else "tracepoint:*"
        return f"pybpf list '{pattern}' lists the tracepoints"
    if d in ("raw_tracepoint", "tp_btf"):
        return "pybpf list 'rawtracepoint:*' lists the raw tracepoints"
    return "pybpf list 'fentry:*PART*' lists the kernel functions whose names contain PART"
