"""``for i in range(...)`` in the Python language: unrolled up to :data:`UNROLL_LIMIT`
iterations, else a counted loop the verifier can bound; ``break``/``continue`` targets
and the pointer facts that flow through a loop (mixed into the function compiler)."""

from __future__ import annotations

import ast
from typing import Dict, List, Set

from ...compiler import types as T
from ...compiler.ir import PtrType, VReg
from .stale import Staleness, merge_stale
from .typing_rules import _a

__all__ = ["LoopsMixin", "UNROLL_LIMIT"]

#: ``for i in range(N)`` is unrolled up to this many iterations, else a bounded loop
UNROLL_LIMIT = 8


class _Loop:
    def __init__(self, break_label: str, continue_label: str) -> None:
        # stale pointer facts where the loop's breaks / continues leave
        self.stale_breaks: List[Dict[str, Staleness]] = []
        self.stale_continues: List[Dict[str, Staleness]] = []
        self.break_label = break_label
        self.continue_label = continue_label


class LoopsMixin:
    """``for`` loops over ``range()`` for :class:`.frontend.FunctionCompiler`."""

    def _referenced(self, label: str) -> bool:
        return any(op.target == label for op in self.fn.ops)

    def for_range(self, s: ast.For) -> bool:
        """``for i in range(...)`` with constant bounds: unrolled or a bounded loop."""
        it = s.iter
        if s.orelse:
            raise self.error("for ... else is not supported", s, "move the else part after the loop")
        if not (isinstance(it, ast.Call) and isinstance(it.func, ast.Name) and
                it.func.id == "range" and 1 <= len(it.args) <= 3 and not it.keywords):
            raise self.error("only for loops over range(...) are supported", it,
                             "write for i in range(N) with a constant N")
        if not isinstance(s.target, ast.Name):
            raise self.error("the loop variable must be a name", s.target)
        bounds = [self.constant_value(a) for a in it.args]
        start, stop, step = (0, bounds[0], 1) if len(bounds) == 1 else \
            (bounds[0], bounds[1], bounds[2] if len(bounds) == 3 else 1)
        if step == 0:
            raise self.error("range() step must not be zero", it)
        values = range(start, stop, step)
        t = T.i32 if all(T.i32.min <= v <= T.i32.max for v in (start, stop)) else T.i64
        name = s.target.id
        # null facts inside and after a loop: those from before it about pointers the
        # loop does not assign (a check inside may be skipped by break/continue or by a
        # loop that runs zero times)
        loop_facts = self.nonnull - _assigned_names(s.body)
        self.nonnull = set(loop_facts)
        existed = name in self.locals
        if name in self.objects or (existed and isinstance(self.locals[name].type, PtrType)):
            raise self.rebind_error(name, f"the {t.name} numbers of a loop", s.target)
        t = self.local_type(name, VReg(0, t), None, s, None)
        if existed:
            var = self.locals[name]
        else:
            var = self.locals[name] = self.vreg(t, local=True)
            self.held[name] = (self.src.loc(s).line, _a(f"{t.name} number"))
        brk, cont = self.label("endfor"), self.label("next")
        bounded = len(values) > 0 and name not in _assigned_names(s.body)
        if bounded:
            self.loop_ranges[name] = (min(values[0], values[-1]), max(values[0], values[-1]))
        try:
            return self._for_range_body(s, name, values, var, t, step, stop, start,
                                        existed, loop_facts, brk, cont)
        finally:
            if bounded:
                self.loop_ranges.pop(name, None)

    def _for_range_body(self, s: ast.For, name: str, values: range, var: VReg,
                        t: T.IntType, step: int, stop: int, start: int, existed: bool,
                        loop_facts: Set[str], brk: str, cont: str) -> bool:
        """The rest of :meth:`for_range`: the loop unrolled, or a counted loop."""
        if len(values) <= UNROLL_LIMIT:
            falls = True
            breaks: List[Dict[str, Staleness]] = []
            for v in values:
                self.loc = self.src.loc(s)
                self.convert_into(var, self.load_const(v, s))
                self.loop_consts[name] = v
                self.nonnull = set(loop_facts)
                loop = _Loop(brk, cont)
                self.loops.append(loop)
                ends = self.body(s.body)
                self.loops.pop()
                # stale pointers flow on to the next iteration (an unrolled loop has
                # each iteration's own code); breaks to the loop's end
                breaks += loop.stale_breaks
                self.stale = merge_stale(None if ends else self.stale, *loop.stale_continues)
                if ends and not self._referenced(cont):
                    falls = False               # the next iterations are unreachable
                    break
                self.emit("label", name=cont)
                cont = self.label("next")
            self.loop_consts.pop(name, None)
            self.nonnull = set(loop_facts)
            self.stale = merge_stale(self.stale if falls else None, *breaks)
            if not falls and not self._referenced(brk):
                return True
            self.emit("label", name=brk)
            return False
        first = len(self.fn.ops)
        top = self.label("for")
        if existed or self._used_elsewhere(name, s):
            counter = self.vreg(t, local=True)
        else:
            counter = var
        self.emit("mov", dst=counter, a=self.load_const(start, s))
        self.emit("label", name=top)
        self.emit("branch", name="sge" if step > 0 else "sle", a=counter,
                  b=self.load_const(stop, s), target=brk)
        if counter.id != var.id:
            self.emit("mov", dst=var, a=counter)
        loop = _Loop(brk, cont)
        head = self.loop_head(s)
        self.stale = dict(head)
        self.loops.append(loop)
        ends = self.body(s.body)
        self.loops.pop()
        # stale pointers at the end of the body and at continues flow back to the head
        self.loop_back(s, head, merge_stale(None if ends else self.stale,
                                            *loop.stale_continues))
        self.stale = merge_stale(head, *loop.stale_breaks)
        self.loc = self.src.loc(s)
        if not ends or self._referenced(cont):
            self.emit("label", name=cont)
            self.emit("binop", name="add", dst=counter, a=counter,
                      b=self.load_const(step, s))
            self.emit("jump", target=top)
        self.emit("label", name=brk)
        self.fn.loops.append((first, len(self.fn.ops) - 1))
        self.fn.loop_bounds.append((top, len(values), self.src.loc(s)))

        self.nonnull = set(loop_facts)
        return False

    def _used_elsewhere(self, name: str, loop: ast.For) -> bool:
        """True if ``name`` appears outside the loop's body, or is assigned in it."""
        inside = {id(n) for n in ast.walk(loop)}
        for n in ast.walk(self.src.node):
            if isinstance(n, ast.Name) and n.id == name and id(n) not in inside:
                return True
            if isinstance(n, ast.arg) and n.arg == name:
                return True
        for n in ast.walk(loop):
            if isinstance(n, (ast.Assign, ast.AugAssign, ast.AnnAssign)) and any(
                    isinstance(t, ast.Name) and t.id == name for t in ast.walk(n)
                    if t is not getattr(n, "value", None)) and n is not loop:
                targets = n.targets if isinstance(n, ast.Assign) else [n.target]
                if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                    return True
        return False


def _assigned_names(stmts: List[ast.stmt]) -> Set[str]:
    """The names that statements (and the statements nested in them) assign."""
    names: Set[str] = set()
    for stmt in stmts:
        for n in ast.walk(stmt):
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
                names.add(n.id)
    return names
