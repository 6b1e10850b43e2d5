"""Pointers into hash maps that a later update or delete may have invalidated, and the
None checks of pointer locals (:meth:`StaleMixin.deref`: a read through a pointer).

In the kernel a hash map's update of an existing key does not write the value in place:
it links a new element and frees the old one, which the map may hand out again for
another key; a delete frees the element too. An LRU map may also evict any element to
make room for a new key. A pointer looked up before such a statement may read a freed or
reused element, so the compiler tracks, flow-sensitively like the None checks, which
pointer locals may be *stale* and refuses a read or write through one at its use.

The facts are a dict ``name -> (map name, line, reason)`` in ``self.stale``; a name is
stale after a join when it is stale on any incoming path. Which maps a pointer local may
point into is accumulated over the function in ``self.ptr_maps`` (a local re-bound to
another map keeps both: conservative). Keys are not compared: a store into any key of
the map makes every pointer into the map stale.
"""

from __future__ import annotations

import ast
import types as _pytypes
from typing import Any, Dict, List, Optional, Set, Tuple

from ...compiler.errors import CompileError
from ...compiler.ir import PtrType, VReg
from ...compiler.maps import MapDecl
from ...compiler.memory import NULLABLE, Place

__all__ = ["StaleMixin", "HASH_KINDS", "Restale"]

#: map kinds whose update of an existing key replaces the element
HASH_KINDS = frozenset({"hash", "lru_hash", "percpu_hash", "lru_percpu_hash"})

#: (map name, line, reason) of the statement that may have replaced a pointer's element
Staleness = Tuple[str, int, str]


class Restale(Exception):
    """A loop's body makes a pointer stale that was not assumed stale at the loop's
    head: the function is compiled again with the larger assumption (kept in
    ``loop_heads``, which only grows, so this ends)."""


def merge_stale(*states: Optional[Dict[str, Staleness]]) -> Dict[str, Staleness]:
    """The facts after a join: stale on any incoming path (``None`` = a path that does
    not reach the join); the earliest line is kept."""
    out: Dict[str, Staleness] = {}
    for state in states:
        for name, fact in (state or {}).items():
            if name not in out or fact[1] < out[name][1]:
                out[name] = fact
    return out


def _is_lru(decl: Any) -> bool:
    return str(getattr(decl, "kind", "")).startswith("lru")


class StaleMixin:
    """Tracking of stale pointers for :class:`.frontend.FunctionCompiler`."""

    stale: Dict[str, Staleness]
    ptr_maps: Dict[str, Set[str]]
    map_ptr_ids: Dict[int, str]
    loop_heads: Dict[Tuple[int, int], Dict[str, Staleness]]

    def note_map_pointer(self, reg: Any, ref: Any) -> None:
        """``reg`` holds a pointer from a lookup in map ``ref``."""
        if getattr(ref.decl, "kind", "") in HASH_KINDS:
            self.map_ptr_ids[reg.id] = ref.name

    def track_pointer(self, name: str, value: ast.expr, reg: Any) -> None:
        """Pointer local ``name`` gets ``reg`` (the value of ``value``): a fresh lookup
        is not stale; a copy of another pointer local is as stale as that one."""
        maps = self.ptr_maps.setdefault(name, set())
        self.stale.pop(name, None)
        if isinstance(value, ast.Name) and value.id in self.ptr_maps:
            maps |= self.ptr_maps[value.id]
            if value.id in self.stale:
                self.stale[name] = self.stale[value.id]
        elif reg.id in self.map_ptr_ids:
            maps.add(self.map_ptr_ids[reg.id])

    def note_replaced(self, ref: Any, node: Any, reason: str) -> None:
        """A statement at ``node`` may replace or free elements of map ``ref``."""
        if getattr(ref.decl, "kind", "") in HASH_KINDS:
            self.mark_stale(ref.name, node, reason)

    def mark_stale(self, mname: str, node: Any, reason: str) -> None:
        """Every pointer local that may point into hash map ``mname`` becomes stale."""
        line = self.src.loc(node).line                          # type: ignore[attr-defined]
        for name, maps in self.ptr_maps.items():
            if mname in maps:
                self.stale[name] = (mname, line, reason)

    def note_store(self, ref: Any, node: Any) -> None:
        """``m[k] = v``."""
        self.note_replaced(ref, node, "storing into a hash map replaces the element "
                                      "and frees the old one")

    def note_delete(self, ref: Any, node: Any) -> None:
        """``del m[k]``."""
        self.note_replaced(ref, node, "a delete frees the element")

    def note_insert(self, ref: Any, node: Any) -> None:
        """``m.setdefault(k)``, ``m[k] op= v``: an insert, which on an LRU map may
        evict any element (on other maps it frees none)."""
        if _is_lru(ref.decl):
            self.note_replaced(ref, node, "an insert into an LRU map may evict any "
                                          "element to make room")

    def note_call(self, fn: Any, node: ast.Call) -> None:
        """A call of user function ``fn``: every hash map it (or a function it calls)
        stores into, deletes from or, for LRU maps, inserts into is treated as
        replaced at the call."""
        from .frontend import parse_function
        found: Dict[str, str] = {}
        seen: Set[int] = set()
        todo: List[Any] = [fn]
        while todo:
            f = todo.pop()
            if id(f) in seen:
                continue
            seen.add(id(f))
            try:
                src = parse_function(f)
            except (CompileError, OSError, TypeError):
                continue
            g = src.globals
            for n in ast.walk(src.node):
                if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and \
                        isinstance(g.get(n.func.id), _pytypes.FunctionType):
                    todo.append(g[n.func.id])
                for what, target in _map_writes(n):
                    decl = g.get(target)
                    if not isinstance(decl, MapDecl) or decl.kind not in HASH_KINDS:
                        continue
                    if what == "insert" and not _is_lru(decl):
                        continue
                    mname = self.unit.map_name(decl, target)    # type: ignore[attr-defined]
                    found.setdefault(mname, what)
        fname = getattr(fn, "__name__", "the function")
        for mname, what in found.items():
            verb = {"store": "stores into", "delete": "deletes from",
                    "insert": "inserts into"}[what]
            self.mark_stale(mname, node, f"{fname}() {verb} it")

    def check_fresh(self, name: str, node: Any) -> None:
        """Refuse a read or write through pointer local ``name`` when it may be stale."""
        fact = self.stale.get(name)
        if fact is None:
            return
        mname, line, reason = fact
        raise CompileError(
            f"{name!r} may point to an element of {mname!r} replaced on line {line} "
            f"({reason}): it may read a freed or reused element",
            self.src.loc(node),                                 # type: ignore[attr-defined]
            f"look it up again after line {line}: {name} = {mname}.get(...)")

    def deref(self, ptr: VReg, node: Any, name: str = "") -> Place:
        """The place a pointer register points to (map values must be checked first)."""
        pt = ptr.type
        assert isinstance(pt, PtrType)
        if pt.space in NULLABLE and ptr.id not in self.nonnull_ids:  # type: ignore[attr-defined]
            if not name:                        # m.get(k)[0]: no local to check
                raise self.error("this map value may be None", node,  # type: ignore[attr-defined]
                                 "assign it to a local and check it: if p: ...")
            if name not in self.nonnull:        # type: ignore[attr-defined]
                raise self.error(f"{name!r} may be None here", node,    # type: ignore[attr-defined]
                                 f"check it first: 'if {name}:' or 'if {name} is None: return'")
        if name:
            self.check_fresh(name, node)                        # type: ignore[attr-defined]
        if pt.target is None:
            raise self.error("this pointer has no type to read through", node,  # type: ignore[attr-defined]
                             "use kernel_ptr(value, 'struct name')")
        return Place(ptr, 0, pt.target, pt.space)

    def loop_head(self, loop: ast.For) -> Dict[str, Staleness]:
        """The facts assumed at the head of a (not unrolled) loop: those before it and
        those found at the end of its body in an earlier compilation."""
        return merge_stale(self.stale, self.loop_heads.get(_key(loop)))

    def loop_back(self, loop: ast.For, head: Dict[str, Staleness],
                  back: Dict[str, Staleness]) -> None:
        """Check the facts that flow back to the loop's head (end of body, continue)
        against what was assumed there; compile again if they are more."""
        if set(back) - set(head):
            self.loop_heads[_key(loop)] = merge_stale(head, back)
            raise Restale()


def _key(loop: ast.For) -> Tuple[int, int]:
    return (loop.lineno, loop.col_offset)


def _map_writes(n: ast.AST) -> List[Tuple[str, str]]:
    """The (kind, global name) of map writes statement ``n`` makes: ``"store"``
    (``m[k] = v``), ``"delete"`` (``del m[k]``), ``"insert"`` (``m[k] op= v``,
    ``m.setdefault(...)``)."""
    def name_of(t: ast.expr) -> Optional[str]:
        if isinstance(t, ast.Subscript) and isinstance(t.value, ast.Name):
            return t.value.id
        return None
    out: List[Tuple[str, str]] = []
    if isinstance(n, (ast.Assign, ast.AnnAssign)):
        for t in (n.targets if isinstance(n, ast.Assign) else [n.target]):
            if name_of(t):
                out.append(("store", name_of(t)))           # type: ignore[arg-type]
    elif isinstance(n, ast.Delete):
        out += [("delete", name_of(t)) for t in n.targets if name_of(t)]  # type: ignore[misc]
    elif isinstance(n, ast.AugAssign) and name_of(n.target):
        out.append(("insert", name_of(n.target)))           # type: ignore[arg-type]
    elif isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and \
            n.func.attr == "setdefault" and isinstance(n.func.value, ast.Name):
        out.append(("insert", n.func.value.id))
    return out
