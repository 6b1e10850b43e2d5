"""Semantic analysis of a bpftrace program with bpftrace 0.17's rules.

:func:`analyse` takes a parsed program (:func:`pybpf.bpftrace.parser.parse_program`) and
its attach points (:func:`pybpf.bpftrace.probes.parse_attach_points`) and returns an
:class:`Analysis`, or raises :class:`~pybpf.bpftrace.errors.BpftraceError` with
bpftrace's messages at bpftrace's locations.

How 0.17 checks a program, and so how this module does:

1. field resolution: for kfunc probes that use ``args``/``retval``, the arguments are
   read from BTF (an error such as ``kfunc:f: no BTF data for f`` ends the run);
2. tracepoint formats: every ``tracepoint:cat:ev`` must have a format file
   (``tracepoint not found: cat:ev``; a warning when the probe has other attach points);
3. the semantic passes: the whole program is visited up to ten times (a map may be
   used before the statement that gives it a type); errors are collected during a pass
   and, when there are any, reported together at its end and the run stops. Checks
   that need every type (argument types, printf formats, undefined maps) run only in
   the tenth pass. (Passes 2 to 9 are one function of the state: once one leaves it as
   it found it, the next ones would repeat it to the letter, so pybpf goes on with the
   tenth, repeating that pass's warnings as 0.17 prints them.) Warnings are printed as they are found (some every pass, as 0.17
   does); they are in :attr:`Analysis.warnings` and, on failure, on the error
   (``err.warnings``) in the order bpftrace prints them;
4. the resource pass: lhist bounds per map, the async actions and their formats.

The result (the data model a lowering stage consumes)
-------------------------------------------------------
* every expression node gets ``node.ty``, a :class:`~pybpf.bpftrace.types.SizedType`
  (its ``str()``/``dump()`` are bpftrace's); the tree is changed as 0.17 changes it:
  integer map keys narrower than 64 bits are wrapped in a ``Cast`` to ``uint64`` or
  ``int64`` (``cast.implicit`` is True); ``a->f`` gets ``node.deref``, the typed
  ``Unop('*')`` bpftrace puts under it; compound assignments get ``stmt.binop``, the
  typed ``Binop`` bpftrace stores (``$x += 1`` is ``$x = $x + 1``); ``str($1)`` gets
  ``call.is_literal``; a map given to ``print``/``clear``/``zero`` gets
  ``map.skip_key_validation``;
* :attr:`Analysis.maps`: name -> :class:`MapInfo` (key types, value type, kind,
  lhist bounds) for every map of the program;
* :attr:`Analysis.probes`: per probe a :class:`ProbeInfo` (its attach points, the type
  of each ``$variable``, the kfunc arguments, whether it needs one program per match);
* :attr:`Analysis.actions`: the async actions in program order (:class:`AsyncAction`:
  printf/system/cat/debugf with their format and argument types, time, strftime,
  join, print of a map or a value, clear, zero, exit, cgroup_path).
"""

from __future__ import annotations

from operator import attrgetter

from .._nogc import gc_paused
from .._records import field, record
from typing import Any, Dict, List, Optional, Sequence, Tuple

from . import ast as A
from .errors import BpftraceError, Diagnostic, Location
from . import sema_calls, sema_exprs, sema_maps
from .probes import AttachPoint, CheckState, ProbeEnv, check_attach_point
from .structs import StructManager
from .types import (INT_CASTS, STRING_SIZE, SizedType, Struct, create_int64, create_integer,
                    create_none, create_stack_mode, create_string, create_tuple,
                    create_uint64, node_type as _ty, typestr)

__all__ = ["analyse", "Analysis", "MapInfo", "ProbeInfo", "AsyncAction", "SemaOptions",
           "NUM_PASSES", "find_addrspace", "progtype", "stoll"]

#: how many times 0.17 visits the program
NUM_PASSES = 10
_MAX_ARG = 5          # x86-64: arg0..arg5


@record
class SemaOptions:
    """What the analysis depends on beyond the program: ``unsafe`` (``--unsafe``),
    ``strlen`` (``BPFTRACE_STRLEN``), ``has_child`` (``-c``), ``btf`` (a
    :class:`pybpf.btf.BTF`, a callable returning one, or None for no BTF; by default
    the kernel's), ``structs`` (a ready :class:`StructManager`), and helper
    availability (``features``: names such as ``get_current_cgroup_id``,
    ``send_signal``, ``override_return``, ``d_path``, ``skb_output``, ``loop``; all
    available unless listed False)."""

    unsafe: bool = False
    strlen: int = STRING_SIZE
    has_child: bool = False
    btf: Any = "kernel"
    structs: Optional[StructManager] = None
    features: Dict[str, bool] = field(default_factory=dict)
    #: accept what later releases do (``offsetof``; ``for`` is refused more plainly)
    extensions: bool = False

    def has(self, feature: str) -> bool:
        """Is helper/feature ``feature`` available? ``d_path`` and ``skb_output`` need
        tracing (fentry) programs, probed once when not given."""
        if feature not in self.features:
            if feature in ("d_path", "skb_output"):
                from .probes import _tracing_loads
                self.features[feature] = _tracing_loads()
            else:
                return True
        return self.features[feature]


@record
class MapInfo:
    """A map: ``key`` types (empty for a scalar map; integers are 64-bit unsigned, as
    0.17 stores keys), ``value`` type (``kind`` says count/hist/... or integer,
    string...), ``lhist`` bounds (min, max, step) for lhist maps."""

    name: str
    key: List[SizedType]
    value: SizedType
    lhist: Optional[Tuple[int, int, int]] = None

    @property
    def kind(self) -> str:
        """The value's kind (``count``, ``hist``, ``integer``, ``string``...)."""
        return self.value.kind


@record
class ProbeInfo:
    """One probe after analysis: the AST ``probe``, its ``attach_points`` (not yet
    expanded), ``variables`` (name -> type), kfunc ``args`` (name -> type; ``$retval``),
    ``need_expansion`` (it uses ``probe`` or tracepoint ``args``: one program per
    match)."""

    probe: A.Probe
    attach_points: List[AttachPoint]
    variables: Dict[str, SizedType] = field(default_factory=dict)
    args: Dict[str, SizedType] = field(default_factory=dict)
    need_expansion: bool = False


@record
class AsyncAction:
    """An action done in user space, in program order: ``kind`` (``printf system cat
    debugf time strftime join print print_non_map clear zero exit cgroup_path``),
    the ``call`` node, ``probe`` index, ``fmt`` (format, delimiter or filter text, or
    None) and ``args`` (argument types as sent: non-aggregates widened to 8 bytes)."""

    kind: str
    call: A.Call
    probe: int
    fmt: Optional[str] = None
    args: List[SizedType] = field(default_factory=list)


@record
class Analysis:
    """The typed program (see the module docstring)."""

    program: A.Program
    probes: List[ProbeInfo]
    maps: Dict[str, MapInfo]
    actions: List[AsyncAction]
    warnings: List[Diagnostic]
    structs: StructManager
    stack_types: List[Tuple[str, int, str]] = field(default_factory=list)
    needs_elapsed_map: bool = False
    needs_join_map: bool = False


def progtype(kind: str) -> str:
    """The BPF program type 0.17 uses for a provider kind."""
    return {"special": "BPF_PROG_TYPE_RAW_TRACEPOINT", "tracepoint": "BPF_PROG_TYPE_TRACEPOINT",
            "profile": "BPF_PROG_TYPE_PERF_EVENT", "interval": "BPF_PROG_TYPE_PERF_EVENT",
            "software": "BPF_PROG_TYPE_PERF_EVENT", "hardware": "BPF_PROG_TYPE_PERF_EVENT",
            "watchpoint": "BPF_PROG_TYPE_PERF_EVENT",
            "asyncwatchpoint": "BPF_PROG_TYPE_PERF_EVENT",
            "kfunc": "BPF_PROG_TYPE_TRACING", "kretfunc": "BPF_PROG_TYPE_TRACING",
            "iter": "BPF_PROG_TYPE_TRACING",
            "rawtracepoint": "BPF_PROG_TYPE_RAW_TRACEPOINT"}.get(kind, "BPF_PROG_TYPE_KPROBE")


def find_addrspace(kind: str) -> str:
    """Which memory a probe type's pointers point into (0.17's ``find_addrspace``)."""
    if kind in ("kprobe", "kretprobe", "kfunc", "kretfunc", "tracepoint", "iter",
                "rawtracepoint"):
        return "kernel"
    if kind in ("uprobe", "uretprobe", "usdt"):
        return "user"
    return "none"


def stoll(s: str) -> Optional[int]:
    """C++ ``std::stoll(s, &idx, 0)`` when it consumes all of ``s`` (bpftrace's
    ``is_numeric``), else None."""
    t = s.lstrip(" \t\n\v\f\r")
    neg = t[:1] == "-"
    if t[:1] in ("+", "-"):
        t = t[1:]
    if t[:2] in ("0x", "0X") and len(t) > 2:
        base, digits = 16, t[2:]
        ok = all(c in "0123456789abcdefABCDEF" for c in digits)
    elif t[:1] == "0":
        base, digits = 8, t
        ok = all(c in "01234567" for c in digits)
    else:
        base, digits = 10, t
        ok = digits.isdigit() and digits.isascii()
    if not digits or not ok:
        return None
    v = int(digits, base)
    v = -v if neg else v
    if not -(1 << 63) <= v < (1 << 63):
        return None
    return v


#: the state is compared after passes 2 to this one (pass 1 is not the others'
#: function: it adds the implicit casts and gives map keys no types; a program whose
#: passes keep changing the state goes on without the comparisons' cost)
_FIXPOINT_TRIES = 4

#: the analyser's attributes that are not state a pass reads: the pass number and the
#: diagnostics (handled by :meth:`Analyser.run`), constant inputs, the tree (its probes
#: are compared on their own), caches of answers that do not change, the indexes of
#: the tree made before the passes
_NOT_STATE = frozenset(["pass_", "stage", "errors", "warnings", "program", "env", "opts",
                        "source", "filename", "structs", "_matches", "arg_uses",
                        "parents", "assigned_map"])


class _State:
    """A deep snapshot, for equality, of the objects a semantic pass reads and changes:
    tree nodes, types, attach points and the analyser's tables, every attribute, lists,
    dicts and tuples, and which objects are shared (the same object twice): their
    pickle. Structs (from BTF, loaded as used) are kept by identity: a pass that made a
    new one counts as a change. Two snapshots are equal when a pass started from either
    would do the same. Something that cannot be pickled makes a snapshot equal to
    none."""

    __slots__ = ("key", "keep")

    def __init__(self, roots: List[Any]) -> None:
        import io
        from _pickle import Pickler             # the C pickler alone: no pickle module
        keep: List[Any] = []                    # kept alive: their ids stay theirs

        def by_identity(obj: Any) -> Tuple[Any, Tuple[int]]:
            keep.append(obj)
            return _object, (id(obj),)

        # the records by their attributes: what pickle's default does, without its
        # generic (and slower) path through copyreg, nor a Python call per object
        table: Dict[type, Any] = dict.fromkeys(_record_classes(), _BY_ATTRIBUTES)
        table[Struct] = by_identity
        buf = io.BytesIO()
        pickler = Pickler(buf, 4)
        pickler.dispatch_table = table
        try:
            pickler.dump(roots)
            self.key: Optional[bytes] = buf.getvalue()
        except Exception:                       # noqa: BLE001 - no snapshot, no skip
            self.key = None
        self.keep = keep

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _State) and self.key is not None and \
            self.key == other.key


def _object(ident: int) -> None:
    """Stands for an object a :class:`_State` keeps by identity (never called)."""


#: a record's reduction for :class:`_State`'s pickler, ``(type(obj), (), obj.__dict__)``:
#: its class (never called: the snapshot is only compared), ``()`` (``_snapshot_args``, a
#: class attribute that :func:`_record_classes` gives the record classes) and its
#: attributes; ``attrgetter`` makes the tuple without a Python call per object
_BY_ATTRIBUTES = attrgetter("__class__", "_snapshot_args", "__dict__")


def _record_classes() -> List[type]:
    """The classes a :class:`_State` takes apart: tree nodes, types, attach points,
    locations and the attach-point checks' state."""
    out: List[type] = [SizedType, AttachPoint, CheckState, Location]
    todo: List[type] = [A.Node]
    while todo:
        cls = todo.pop()
        out.append(cls)
        todo.extend(cls.__subclasses__())
    for cls in out:
        if "_snapshot_args" not in cls.__dict__:
            cls._snapshot_args = ()                     # type: ignore[attr-defined]
    return out


class Analyser:
    """One analysis (use :func:`analyse`)."""

    def __init__(self, program: A.Program, attach_points: List[List[AttachPoint]],
                 env: ProbeEnv, options: SemaOptions, source: str,
                 filename: str) -> None:
        self.program, self.aps_all, self.env = program, attach_points, env
        self.opts, self.source, self.filename = options, source, filename
        if options.structs is not None:
            self.structs = options.structs
        else:
            btf: Any = options.btf
            if btf == "kernel":
                def btf() -> Any:  # noqa: F811 - the kernel's BTF, or None
                    from pybpf.btf import vmlinux     # only when a type is looked up
                    try:
                        return vmlinux()
                    except (OSError, ValueError):
                        return None
            self.structs = StructManager(program.preamble, btf)
        self.pass_ = 0
        #: where an error stops the analysis, as -d shows it: "before" the passes (bpftrace
        #: fails while parsing: no tree printed), in the "passes" (after the parser's
        #: tree), in the "resources" pass (after the Semantic and NodeCounter trees)
        self.stage = "before"
        self.errors: List[Diagnostic] = []
        self.warnings: List[Diagnostic] = []
        self.func_ = ""
        self.func_arg_idx = -1
        self.variables: List[Dict[str, SizedType]] = [{} for _ in program.probes]
        self.map_val: Dict[str, SizedType] = {}
        self.map_key: Dict[str, List[SizedType]] = {}
        self.ap_args: Dict[str, SizedType] = {}
        self.probe_args: List[Dict[str, SizedType]] = [{} for _ in program.probes]
        self.need_expansion = [False] * len(program.probes)
        self.loop_depth = 0
        self.has_pos_param = False
        self.check_state = CheckState()
        self.pi = 0
        self.probe: A.Probe = program.probes[0] if program.probes else None  # type: ignore
        self.aps: List[AttachPoint] = []
        self.parents: Dict[int, str] = {}
        self.assigned_map: Dict[int, str] = {}
        self._matches: Dict[int, List[str]] = {}
        #: per probe, its uses of ``args`` and ``retval``
        self.arg_uses: List[List[A.Builtin]] = []
        self._index_parents()

    # -- diagnostics --------------------------------------------------------------------
    def err(self, loc: Optional[Location], msg: str) -> None:
        """Record an error of this pass."""
        self.errors.append(Diagnostic(loc, msg))

    def warn(self, loc: Optional[Location], msg: str) -> None:
        """Print a warning now (bpftrace writes them as found)."""
        self.warnings.append(Diagnostic(loc, msg, "WARNING"))

    def say(self, msg: str) -> None:
        """An unlocated ``ERROR:`` bpftrace prints at once without failing the pass."""
        self.warnings.append(Diagnostic(None, msg, "ERROR"))

    def fail(self, diags: Sequence[Diagnostic]) -> None:
        err = BpftraceError(list(diags), self.source, self.filename)
        err.warnings = list(self.warnings)       # type: ignore[attr-defined]
        err.stage = self.stage                   # type: ignore[attr-defined]
        err.program, err.attach_points = (     # type: ignore[attr-defined]
            self.program, self.aps_all)
        raise err

    @property
    def final(self) -> bool:
        """Is this the last pass (where 0.17 runs its full checks)?"""
        return self.pass_ == NUM_PASSES

    # -- tree facts 0.17 keeps on nodes ------------------------------------------------
    def _index_parents(self) -> None:
        """The parents of expressions; the ``args``/``retval`` of each probe (for the
        field resolution, before the passes)."""
        uses: List[A.Builtin] = []
        parents, assigned = self.parents, self.assigned_map
        containers = (A.Node, list)

        def walk(n: Any) -> None:                   # a node
            if isinstance(n, A.AssignMap) and n.op is None:
                parents[id(n.value)] = "map"
                assigned[id(n.value)] = n.map.name
            elif isinstance(n, A.AssignVar) and n.op is None:
                parents[id(n.value)] = "var"
            elif isinstance(n, A.Map):
                for k in n.keys:
                    parents[id(k)] = "key"
            elif isinstance(n, A.Builtin) and n.name in ("args", "retval"):
                uses.append(n)
            for v in vars(n).values():
                if isinstance(v, containers):
                    if isinstance(v, list):
                        walk_list(v)
                    else:
                        walk(v)

        def walk_list(items: List[Any]) -> None:    # nodes and lists, in order
            for x in items:
                if isinstance(x, containers):
                    if isinstance(x, list):
                        walk_list(x)
                    else:
                        walk(x)

        for probe in self.program.probes:
            uses = []
            walk_list([probe.pred, probe.body])
            self.arg_uses.append(uses)

    def parent(self, node: A.Node) -> Optional[str]:
        """``map``/``var``/``key``: where an expression's value goes directly."""
        return self.parents.get(id(node))

    @staticmethod
    def is_literal(node: A.Node) -> bool:
        """bpftrace's ``is_literal``."""
        return isinstance(node, (A.Integer, A.String, A.StackMode,
                                 A.PositionalParameter)) or \
            bool(getattr(node, "is_literal", False))

    def param(self, n: int, is_str: bool) -> str:
        """``$n`` as given ("" or "0" when not given)."""
        params = self.env.params
        if n > len(params):
            return "" if is_str else "0"
        return params[n - 1]

    def int_literal(self, node: A.Node) -> Optional[int]:
        """bpftrace's ``get_int_literal``."""
        if isinstance(node, A.Integer):
            return node.value
        if isinstance(node, A.PositionalParameter):
            if node.is_count:
                return len(self.env.params)
            text = self.param(node.n, False)
            v = stoll(text)
            if v is not None:
                return v
            self.warnings.append(Diagnostic(
                node.loc, f'${node.n} used numerically but given "{text}"', "ERROR"))
        return None

    def string_literal(self, node: A.Node) -> str:
        """bpftrace's ``get_string_literal``."""
        if isinstance(node, A.String):
            return node.value.decode("latin-1")
        if isinstance(node, A.Call) and getattr(node, "is_literal", False) and \
                node.name == "str" and node.args and \
                isinstance(node.args[0], A.PositionalParameter):
            return self.param(node.args[0].n, True)
        self.say(f"Expected string literal, got {_ty(node)}")
        return ""

    def matches(self, ap: AttachPoint) -> List[str]:
        """What ``ap`` matches (``probe_match.matches_for``), once per analysis; [] when
        the probe sources cannot be read."""
        key = id(ap)
        found = self._matches.get(key)
        if found is None:
            from .probe_match import ExpansionError, matches_for
            try:
                found = sorted(matches_for(ap, self.env))
            except (ExpansionError, OSError):
                found = []
            self._matches[key] = found
        return found

    def single_provider_type(self) -> str:
        """The probe's one provider kind, or ``invalid`` when they differ."""
        kind = "invalid"
        for ap in self.aps:
            k = ap.kind
            if kind == "invalid":
                kind = k
            if kind != k:
                return "invalid"
        return kind

    # -- the run ------------------------------------------------------------------------
    def run(self) -> Analysis:
        sema_maps.resolve_fields(self)
        sema_maps.tracepoint_formats(self)
        self.stage = "passes"
        before: Optional[_State] = None
        self.pass_ = 1
        while self.pass_ <= NUM_PASSES:
            first_warning = len(self.warnings)
            for self.pi, probe in enumerate(self.program.probes):
                self.visit_probe(probe)
            if self.errors:
                self.fail(self.errors)
            if 2 <= self.pass_ <= _FIXPOINT_TRIES:
                after = self._state()
                if before is not None and after == before:
                    # passes 2 to 9 are one function of the state: a pass that left it
                    # as it found it would be repeated to the letter up to the last one
                    # (the same warnings each time), which sees this state
                    repeats = NUM_PASSES - 1 - self.pass_
                    self.warnings.extend(self.warnings[first_warning:] * repeats)
                    self.pass_ = NUM_PASSES - 1
                before = after
            self.pass_ += 1
        self.pass_ = NUM_PASSES
        self.stage = "resources"
        return sema_maps.collect(self)

    def _state(self) -> "_State":
        """What a pass reads of what the passes before it did (see :class:`_State`)."""
        attrs = {k: v for k, v in vars(self).items() if k not in _NOT_STATE}
        return _State([attrs, self.program.probes])

    def visit_probe(self, probe: A.Probe) -> None:
        """bpftrace's ``visit(Probe)``."""
        self.probe = probe
        self.aps = self.aps_all[self.pi] if self.pi < len(self.aps_all) else []
        for ap in self.aps:
            if not self.env.listing and len(self.aps) > 1 and ap.kind == "iter":
                self.err(ap.loc, "Only single iter attach point is allowed.")
                return
            self.visit_attach_point(ap)
        if probe.pred is not None:
            self.expr(probe.pred.expr)
            if self.final:
                t = _ty(probe.pred.expr)
                if not t.is_int() and not t.is_ptr():
                    self.err(probe.pred.loc, f"Invalid type for predicate: {typestr(t.kind)}")
        for stmt in probe.body:
            self.stmt(stmt)

    def visit_attach_point(self, ap: AttachPoint) -> None:
        for d in check_attach_point(ap, self.env, self.check_state, final_pass=self.final):
            (self.errors if d.level == "ERROR" else self.warnings).append(d)
        if ap.kind in ("uprobe", "uretprobe", "kfunc", "kretfunc") and \
                self.probe_args[self.pi]:
            if ap.kind in ("uprobe", "uretprobe") or self.env.has_kfunc():
                self.ap_args = dict(self.probe_args[self.pi])

    # -- statements ---------------------------------------------------------------------
    def stmts(self, body: List[A.Stmt]) -> None:
        """bpftrace's ``accept_statements`` (blocks of if/unroll/while)."""
        for i, s in enumerate(body):
            self.stmt(s)
            if self.final and isinstance(s, A.Jump) and i < len(body) - 1:
                self.warn(s.loc, f"All code after a '{s.kind}' is unreachable.")

    def stmt(self, s: A.Stmt) -> None:
        """Visit one statement."""
        if isinstance(s, A.ExprStatement):
            self.expr(s.expr)
        elif isinstance(s, A.AssignMap):
            sema_maps.assign_map(self, s)
        elif isinstance(s, A.AssignVar):
            sema_maps.assign_var(self, s)
        elif isinstance(s, A.If):
            self.expr(s.cond)
            if self.final and _ty(s.cond).kind != "integer":
                self.err(s.loc, f"Invalid condition in if(): {typestr(_ty(s.cond).kind)}")
            self.stmts(s.then)
            if s.orelse is not None:
                self.stmts(s.orelse)
        elif isinstance(s, A.Unroll):
            self.expr(s.count)
            n = self.int_literal(s.count)
            if n is None:
                self.err(s.loc, "invalid unroll value")
                return
            s.var = n                                   # type: ignore[attr-defined]
            if n > 100:
                self.err(s.loc, "unroll maximum value is 100")
            elif n < 1:
                self.err(s.loc, "unroll minimum value is 1")
            self.stmts(s.body)
        elif isinstance(s, A.While):
            if self.final and not self.opts.has("loop"):
                self.warn(s.loc, "Kernel does not support bounded loops. Depending on "
                                 "LLVMs loop unroll to generate loadable code.")
            self.expr(s.cond)
            self.loop_depth += 1
            self.stmts(s.body)
            self.loop_depth -= 1
        elif isinstance(s, A.Jump):
            if s.kind in ("break", "continue") and self.loop_depth <= 0:
                self.err(s.loc, f"{s.kind} used outside of a loop")
        elif isinstance(s, A.For):
            if self.opts.extensions:
                self.err(s.loc, "for loops over maps (bpftrace 0.21) are not supported "
                                "by pybpf yet: use print() or a loop over known keys")
            else:
                self.err(s.loc, "for loops are not supported by bpftrace 0.17")

    # -- expressions --------------------------------------------------------------------
    def expr(self, e: A.Expr) -> None:
        """Visit (type) one expression."""
        getattr(self, "x_" + type(e).__name__)(e)

    def x_Integer(self, e: A.Integer) -> None:
        e.ty = create_int64()                           # type: ignore[attr-defined]

    def x_String(self, e: A.String) -> None:
        e.ty = create_string(len(e.value) + 1)          # type: ignore[attr-defined]
        if self.func_ == "printf" and self.func_arg_idx == 0:
            return
        if self.func_ != "cgroupid" and len(e.value) > STRING_SIZE - 1:
            self.err(e.loc, f"String is too long (over {STRING_SIZE} bytes): "
                            f"{e.value.decode('latin-1')}")
        e.ty.addrspace = "kernel"                       # type: ignore[attr-defined]

    def x_StackMode(self, e: A.StackMode) -> None:
        if e.name in ("bpftrace", "perf"):
            e.ty = create_stack_mode(e.name)            # type: ignore[attr-defined]
        else:
            e.ty = create_none()                        # type: ignore[attr-defined]
            self.err(e.loc, f"Unknown stack mode: '{e.name}'")

    def x_Identifier(self, e: A.Identifier) -> None:
        name = " ".join(e.name.split())
        value = self.structs.enum_value(name)
        if value is not None:          # an enumerator (preamble or kernel BTF): 0.17's
            e.value = value                             # type: ignore[attr-defined]
            e.ty = create_uint64()     # clang pass gives every BTF enum without #include
        elif self.structs.has(name):
            e.ty = self.structs.record(name)            # type: ignore[attr-defined]
        elif self.func_ == "sizeof" and name in INT_CASTS:
            e.ty = create_integer(INT_CASTS[name][0], True)  # type: ignore[attr-defined]
        else:
            e.ty = create_none()                        # type: ignore[attr-defined]
            self.err(e.loc, f"Unknown identifier: '{e.name}'")

    def x_PositionalParameter(self, e: A.PositionalParameter) -> None:
        e.ty = create_int64()                           # type: ignore[attr-defined]
        if self.func_ == "str":
            e.is_in_str = True                          # type: ignore[attr-defined]
            self.has_pos_param = True
        in_str = bool(getattr(e, "is_in_str", False))
        if not e.is_count:
            if e.n <= 0:
                self.err(e.loc, f"${e.n} is not a valid parameter")
            if self.final:
                text = self.param(e.n, in_str)
                if stoll(text) is None and not in_str:
                    self.err(e.loc, f'${e.n} used numerically but given "{text}". '
                                    f"Try using str(${e.n}).")
                if in_str:
                    e.ty.addrspace = "kernel"           # type: ignore[attr-defined]
        elif in_str:
            self.err(e.loc, "use $#, not str($#)")

    def x_Builtin(self, e: A.Builtin) -> None:
        sema_exprs.builtin(self, e)

    def x_Call(self, e: A.Call) -> None:
        if e.name == "offsetof":               # only parsed with newer syntax (0.18)
            sema_calls.offsetof(self, e)
            return
        sema_calls.call(self, e)

    def x_Map(self, e: A.Map) -> None:
        sema_maps.visit_map(self, e)

    def x_Variable(self, e: A.Variable) -> None:
        found = self.variables[self.pi].get(e.name)
        if found is not None:
            e.ty = found                                # type: ignore[attr-defined]
        else:
            self.err(e.loc, f"Undefined or undeclared variable: {e.name}")
            e.ty = create_none()                        # type: ignore[attr-defined]

    def x_Binop(self, e: A.Binop) -> None:
        sema_exprs.binop(self, e)

    def x_Unop(self, e: A.Unop) -> None:
        sema_exprs.unop(self, e)

    def x_Ternary(self, e: A.Ternary) -> None:
        sema_exprs.ternary(self, e)

    def x_FieldAccess(self, e: A.FieldAccess) -> None:
        sema_exprs.field_access(self, e)

    def x_TupleAccess(self, e: A.TupleAccess) -> None:
        sema_exprs.tuple_access(self, e)

    def x_ArrayAccess(self, e: A.ArrayAccess) -> None:
        sema_exprs.array_access(self, e)

    def x_Cast(self, e: A.Cast) -> None:
        sema_exprs.cast(self, e)

    def x_Tuple(self, e: A.Tuple) -> None:
        elems: List[SizedType] = []
        for x in e.elems:
            self.expr(x)
            t = _ty(x)
            if t.is_none() or t.size == 0:
                return
            elems.append(t)
        e.ty = create_tuple(elems)                      # type: ignore[attr-defined]


@gc_paused
def analyse(program: A.Program, attach_points: List[List[AttachPoint]],
            env: Optional[ProbeEnv] = None, options: Optional[SemaOptions] = None,
            source: str = "", filename: str = "stdin") -> Analysis:
    """Type and check ``program`` as bpftrace 0.17 does (see the module docstring);
    ``attach_points`` are :func:`~pybpf.bpftrace.probes.parse_attach_points`'s result,
    ``env`` the positional parameters, ``-p`` and the machine's facts."""
    return Analyser(program, attach_points, env or ProbeEnv(), options or SemaOptions(),
                    source, filename).run()

