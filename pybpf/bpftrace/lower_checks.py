"""``-k``/``-kk``: helper error checks, as bpftrace 0.17 emits them.

After a checked helper call, a failed result sends a ``helper_error`` record (the
helper's name as bpftrace names it, the return code, the location of the bpftrace
node whose code made the call); the runtime prints it on stdout as bpftrace does
(``stdin:1:27-33: WARNING: Failed to map_update_elem: Argument list too long (-7)``
plus the source line and marks; ``-f json``: ``{"type": "helper_error", ...}``).

Which calls (0.17's ``return_zero_if_err``): ``-k`` checks map updates and deletes,
``get_stackid``, ``get_current_comm``, ``send_signal``, ``d_path`` and
``seq_printf`` (a negative result is an error); ``-kk`` adds the probe reads (negative
result) and map lookups (a missing key is an error with code 0), whose failures
otherwise just read as zero. The helpers pybpf calls for its own machinery (the
event ring, its drop counters) are not checked, as bpftrace has no such calls.

Reads through a pointer without an address space (``*(uint64 *)$p`` with an integer
``$p``, in BEGIN...) call ``bpf_probe_read``/``bpf_probe_read_str``, as 0.17 does
(with or without ``-k``): on x86 they read kernel and user addresses, and fail with
the same codes as bpftrace's.
"""

from __future__ import annotations

from typing import Any, List, Optional, Tuple

from ..compiler import types as T
from ..compiler.ir import FrameAddr, Op

__all__ = ["HelperCheckMixin", "CHECKED_K", "CHECKED_KK"]

#: checked from ``-k`` on
CHECKED_K = frozenset({"map_update_elem", "map_delete_elem", "get_stackid",
                       "get_current_comm", "send_signal", "d_path", "seq_printf"})
#: checked only with ``-kk``
CHECKED_KK = frozenset({"map_lookup_elem", "probe_read", "probe_read_str",
                        "probe_read_kernel", "probe_read_kernel_str",
                        "probe_read_user", "probe_read_user_str"})


class HelperCheckMixin:
    """Tracks the bpftrace node being lowered (the location an error names) and adds
    the checks after helper calls when ``opts.helper_check_level`` asks."""

    _node_stack: Optional[List[Any]] = None
    _checking = False

    @property
    def check_level(self) -> int:
        """``-k``: 1, ``-kk``: 2, else 0."""
        return int(getattr(self.mb.opts, "helper_check_level", 0) or 0)  # type: ignore

    def push_node(self, node: Any) -> None:
        """``node`` is the one being lowered until :meth:`pop_node`."""
        if self._node_stack is None:
            self._node_stack = []
        self._node_stack.append(node)

    def pop_node(self) -> None:
        """Back to the enclosing node."""
        if self._node_stack:
            self._node_stack.pop()

    def expr(self, e: Any) -> Any:
        """Lower ``e`` (the mixin's parent does) with ``e`` as the current node."""
        stack = self._node_stack                # push_node, pop_node: inline (per node)
        if stack is None:
            stack = self._node_stack = []
        stack.append(e)
        try:
            return super().expr(e)                              # type: ignore[misc]
        finally:
            if self._node_stack:
                self._node_stack.pop()

    def emit(self, kind: str, dst: Any = None, a: Any = None, b: Any = None,
             name: str = "", target: str = "", args: Tuple[Any, ...] = (),
             base: Any = None, off: int = 0, size: int = 0) -> Any:
        """Append an operation (:meth:`Lowering.emit`'s fields); after a checked helper
        call, its check."""
        if kind != "helper":
            # the lowering's most frequent call: what the base's emit does (Lowering.emit:
            # no other class between this mixin and it has one; a test checks both)
            op = Op(kind, dst, a, b, name, target, args, self.loc,  # type: ignore[attr-defined]
                    base, off, size)
            self.fn.ops.append(op)                              # type: ignore[attr-defined]
            return op
        if name in ("probe_read_kernel", "probe_read_kernel_str") \
                and self._space_of_read() == "none":
            name = name.replace("_kernel", "")                  # 0.17's choice
        checked = (not self._checking and self.check_level > 0
                   and (name in CHECKED_K or
                        (self.check_level >= 2 and name in CHECKED_KK)))
        if checked and dst is None:                             # keep the result to test it
            dst = self.vreg(T.i64)                              # type: ignore[attr-defined]
        op = super().emit(kind, dst, a, b, name, target, args,  # type: ignore[misc]
                          base, off, size)
        if checked:
            self._helper_check(str(name), dst)
        return op

    def ring_output(self, ref: Any, addr: Any, size: int) -> Any:
        """The event ring's output: its own helper calls are not checked."""
        was, self._checking = self._checking, True
        try:
            return super().ring_output(ref, addr, size)         # type: ignore[misc]
        finally:
            self._checking = was

    def _space_of_read(self) -> Optional[str]:
        """The address space of the pointer the current node reads through (``none``:
        bpftrace 0.17 reads it with ``bpf_probe_read``, which on x86 reads kernel and
        user addresses alike), or None when the node is not such a read."""
        from . import ast as A
        node = self._node_stack[-1] if self._node_stack else None
        if isinstance(node, (A.Unop, A.FieldAccess, A.ArrayAccess)):
            src = node.expr
        elif isinstance(node, A.Call) and node.name in ("str", "buf") and node.args:
            src = node.args[0]
        else:
            return None
        ty = getattr(src, "ty", None)
        if ty is None or ty.kind not in ("pointer", "integer"):
            return None
        return ty.addrspace

    def _helper_check(self, name: str, dst: Any) -> None:
        from .types import create_int64
        node = self._node_stack[-1] if self._node_stack else None
        loc = getattr(node, "loc", None)
        self._checking = True
        try:
            ok = self.label("helper_ok")                        # type: ignore[attr-defined]
            if name == "map_lookup_elem":
                self.emit("branch", name="ne", a=dst, b=0, target=ok)
                code: Any = 0
            else:
                code = self.convert(self.convert(dst, T.i32), T.i64)  # type: ignore
                code = self.materialize(code, T.i64)            # type: ignore[attr-defined]
                self.emit("branch", name="sge", a=code, b=0, target=ok)
            site = self.mb.add_site("helper_error", self.index,  # type: ignore
                                    name, [create_int64()],
                                    extra=loc)
            off = self.temp("helper_error", site.size)          # type: ignore
            self.emit("store", base=None, off=off, size=8, a=site.id)
            self.emit("store", base=None, off=off + site.args[0][1], size=8,
                      a=code if isinstance(code, int) else
                      self.materialize(code, T.u64))            # type: ignore
            self.ring_output(self.mb.events, FrameAddr(off), site.size)  # type: ignore
            self.emit("label", name=ok)
        finally:
            self._checking = False
