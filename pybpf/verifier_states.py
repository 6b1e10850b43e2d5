"""The verifier's walk, read from a log level 2 verifier log into data.

:func:`parse_states` turns the text the kernel writes with ``BPF_LOG_LEVEL2`` (the
``log_level=2`` of :meth:`pybpf.program.ProgramSpec.load`) into a :class:`Trace`: every
visit of every instruction on every path the verifier walked, with the register and
stack state before it (:class:`State`, :class:`Value`, :class:`Slot`), the branches it
explored (``from 12 to 15:``), the visits it pruned (``15: safe``), its statistics
line and, for a refused program, the path to the failing instruction and the complaint.
Everything has ``to_dict()`` giving plain JSON data (``pybpf explain --json``).

The kernel prints a state in full at the start of a path and afterwards only what an
instruction changed (after ``;`` on the instruction's line, or on a line of its own);
the state before each visit is rebuilt by applying those changes in order, and a helper
call forgets R1-R5 as the verifier does (it never prints registers it no longer
tracks). Both printer generations are read: Linux 6.1 (``R1=ctx(off=0,imm=0)``,
liveness marks ``R0_w=``, ``s32_min=`` bounds, spilled pointers by type name only) and
6.18 (``R1=ctx()``, equal bounds chained as ``smax=umax=255``, spilled registers in
full, the ``Live regs before insn:`` table of 6.15 and later).

Imported only by ``pybpf explain`` and its users, never by ``import pybpf``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Tuple

__all__ = ["Tnum", "Value", "ValueTable", "Slot", "State", "Visit", "Branch", "Prune",
           "Failure", "Trace", "parse_state", "parse_value", "parse_states"]


@dataclass
class Tnum:
    """A tracked number (``var_off=(0x0; 0xff)``): the bits in ``mask`` are unknown,
    the others equal those of ``value``."""

    value: int
    mask: int

    def to_dict(self) -> Dict[str, int]:
        """``{"value": .., "mask": ..}``."""
        return {"value": self.value, "mask": self.mask}


#: the verifier's names of bounds, older spellings -> the 6.18 ones
_BOUND_NAMES = {"smin": "smin", "smax": "smax", "umin": "umin", "umax": "umax",
                "smin32": "smin32", "smax32": "smax32", "umin32": "umin32",
                "umax32": "umax32", "s32_min": "smin32", "s32_max": "smax32",
                "u32_min": "umin32", "u32_max": "umax32"}


@dataclass
class Value:
    """What the verifier knows of a register or a spilled register.

    ``type`` is the kernel's name (``scalar``, ``ctx``, ``map_value_or_null``, ``pkt``,
    ``pkt_end``, ``fp`` for a stack pointer, ...; empty for a 6.1 spilled scalar
    whose bounds it does not print); ``const`` the known value of a scalar or the
    offset of a stack pointer; ``precise`` the verifier's precision mark (``P``);
    ``live`` the 6.1 liveness marks (``r``, ``w``, ``D``; 6.18 prints none);
    ``fields`` the other attributes (``id``, ``off``, ``r``, ``ks``, ``vs``, ``imm``,
    ``map``, ``ref_obj_id``...); ``bounds`` the printed ranges (``smin``, ``smax``,
    ``umin``, ``umax`` and their 32-bit ``...32`` forms); ``var_off`` the known bits;
    ``text`` what the log said."""

    type: str
    const: Optional[int] = None
    precise: bool = False
    live: str = ""
    fields: Dict[str, Any] = field(default_factory=dict)
    bounds: Dict[str, int] = field(default_factory=dict)
    var_off: Optional[Tnum] = None
    text: str = ""

    @property
    def umax(self) -> Optional[int]:
        """The largest unsigned value: the printed ``umax``, else a constant's value,
        else what the known bits allow; None when nothing bounds it."""
        if "umax" in self.bounds:
            return self.bounds["umax"]
        if self.const is not None and self.type == "scalar":
            return self.const & ((1 << 64) - 1)
        if self.var_off is not None:
            return self.var_off.value | self.var_off.mask
        return None

    def short(self) -> str:
        """A compact spelling: ``scalar(umax=255)``, ``scalar(smin=-4,smax=9)``,
        ``map_value(map=counts,off=4)``, ``pkt(off=14,r=14)``, ``fp-8``, ``7`` (ids, key and
        value sizes, zero offsets, the 32-bit bounds, the signed range of a value never
        negative and a bounded scalar's var_off are left out)."""
        pre = "P" if self.precise else ""
        if self.type == "fp":
            return f"{pre}fp{self.const}"
        if self.type == "scalar" and self.const is not None:
            return f"{pre}{self.const}"
        b = self.bounds
        if b.get("smin", 0) >= 0:      # never negative: the unsigned range says it all
            keys = ["umin"] if b.get("umin") else []
            keys.append("umax" if "umax" in b else "smax")
        else:
            keys = ["smin", "smax"]
        shown = [f"{k}={b[k]}" for k in keys if k in b]
        shown += [f"{k}={v}" for k, v in self.fields.items()
                  if k in ("r", "map") or (k in ("off", "imm") and v not in (0, "0"))]
        if self.type == "scalar" and not shown and self.var_off is not None:
            shown.append(f"var_off=(0x{self.var_off.value:x}; 0x{self.var_off.mask:x})")
        return f"{pre}{self.type}({','.join(shown)})" if self.type else pre + "scalar"

    def to_dict(self) -> Dict[str, Any]:
        """The value as JSON data."""
        out: Dict[str, Any] = {"type": self.type}
        if self.const is not None:
            out["const"] = self.const
        if self.precise:
            out["precise"] = True
        if self.live:
            out["live"] = self.live
        if self.fields:
            out["fields"] = dict(self.fields)
        if self.bounds:
            out["bounds"] = dict(self.bounds)
        if self.var_off is not None:
            out["var_off"] = self.var_off.to_dict()
        out["text"] = self.text
        return out


_SLOT_CHARS = re.compile(r"^[?rm0difz]{8}$")
#: a spill of 4, 2 or 1 bytes (6.18): the other bytes' types, then the value
_PART_SPILL = re.compile(r"^([?rm0difz]{4}|[?rm0difz]{6,7})(P?[A-Za-z_].*|P?-?\d+)$",
                         re.S)


@dataclass
class Slot:
    """An 8-byte stack slot at ``offset`` (-8, -16, ...) below the frame pointer.

    ``kind`` is ``spill`` (a register was stored whole: ``value``), ``bytes`` (each
    byte typed by one character of ``bytes``: ``m`` any data, ``0`` zero, ``?``
    unwritten, ``r`` part of a spill, ``d`` dynptr, ``i`` iterator, ``f`` irq flag),
    ``dynptr`` or ``iter``; ``live`` the 6.1 liveness marks; ``text`` the log's text."""

    offset: int
    kind: str
    bytes: str = ""
    value: Optional[Value] = None
    live: str = ""
    text: str = ""

    def short(self) -> str:
        """``fp-8=mmmmmmmm`` or ``fp-16=scalar(umax=255)``."""
        if self.value is not None:
            return f"fp{self.offset}={self.bytes}{self.value.short()}"
        return f"fp{self.offset}={self.bytes or self.text}"

    def to_dict(self, table: Optional["ValueTable"] = None) -> Dict[str, Any]:
        """The slot as JSON data (``table``: the spilled value as its index there)."""
        out: Dict[str, Any] = {"offset": self.offset, "kind": self.kind}
        if self.bytes:
            out["bytes"] = self.bytes
        if self.value is not None:
            out["value"] = table.index(self.value) if table is not None \
                else self.value.to_dict()
        if self.live:
            out["live"] = self.live
        out["text"] = self.text
        return out


@dataclass
class State:
    """The registers (by number) and stack slots (by offset) of one function frame
    (``frame`` 0 is the program, 1.. the BPF-to-BPF calls), the ids of the
    references held (``refs``) and other marks (``cb``, ``async_cb``, unread text)."""

    frame: int = 0
    regs: Dict[int, Value] = field(default_factory=dict)
    stack: Dict[int, Slot] = field(default_factory=dict)
    refs: List[int] = field(default_factory=list)
    marks: List[str] = field(default_factory=list)

    def copy(self) -> "State":
        """A copy that later changes to this state do not reach (values are shared:
        they are never changed in place)."""
        return State(self.frame, dict(self.regs), dict(self.stack), list(self.refs),
                     list(self.marks))

    def apply(self, change: "State") -> None:
        """Take the registers, slots and references ``change`` prints."""
        self.regs.update(change.regs)
        self.stack.update(change.stack)
        if change.refs:
            self.refs = list(change.refs)

    def changed_from(self, before: Optional["State"]) -> List[str]:
        """The registers and slots that differ from ``before``, compact
        (``R2=scalar(umax=255)``, ``fp-8=mmmmmmmm``, ``R3=-`` for a dropped one)."""
        regs = self.regs
        old_regs = before.regs if before is not None else {}
        old_stack = before.stack if before is not None else {}
        changed = [n for n, v in regs.items() if old_regs.get(n) is not v]
        changed += [n for n in old_regs if n not in regs]
        out = []
        for n in sorted(changed):
            new, was = regs.get(n), old_regs.get(n)
            if new is None:
                out.append(f"R{n}=-")
            elif was is None or was.text != new.text:
                out.append(f"R{n}={new.short()}")
        slots = [o for o, slot in self.stack.items() if old_stack.get(o) is not slot]
        for off in sorted(slots, reverse=True):
            slot, was_slot = self.stack[off], old_stack.get(off)
            if was_slot is None or was_slot.text != slot.text:
                out.append(slot.short())
        return out

    def to_dict(self, table: Optional["ValueTable"] = None) -> Dict[str, Any]:
        """The state as JSON data (register keys ``"R0"``.., slot keys ``"fp-8"``..;
        ``table``: each value as its index in that :class:`ValueTable`)."""
        out: Dict[str, Any] = {"frame": self.frame,
                               "regs": {f"R{n}": table.index(v) if table is not None
                                        else v.to_dict()
                                        for n, v in sorted(self.regs.items())},
                               "stack": {f"fp{o}": table.slot_index(s) if table is not None
                                         else s.to_dict()
                                         for o, s in sorted(self.stack.items(),
                                                            reverse=True)}}
        if self.refs:
            out["refs"] = list(self.refs)
        if self.marks:
            out["marks"] = list(self.marks)
        return out


class ValueTable:
    """Distinct values numbered in order of first use: a long walk repeats the same
    few hundred values thousands of times, so its JSON names them by number."""

    def __init__(self) -> None:
        self.values: List[Value] = []
        self.slots: List["Slot"] = []
        self._index: Dict[Tuple[str, str], int] = {}
        self._slot_index: Dict[Tuple[str, str], int] = {}

    def index(self, value: Value) -> int:
        """The number of ``value`` (added when new)."""
        key = (value.text, value.live)
        found = self._index.get(key)
        if found is None:
            found = self._index[key] = len(self.values)
            self.values.append(value)
        return found

    def slot_index(self, slot: "Slot") -> int:
        """The number of what stack slot ``slot`` holds, in :attr:`slots`."""
        key = (slot.text, slot.live)
        found = self._slot_index.get(key)
        if found is None:
            found = self._slot_index[key] = len(self.slots)
            self.slots.append(slot)
        return found

    def to_list(self) -> List[Dict[str, Any]]:
        """The values as JSON data, by number."""
        return [v.to_dict() for v in self.values]

    def slots_list(self) -> List[Dict[str, Any]]:
        """The slot contents as JSON data, by number (without their offsets)."""
        out = []
        for slot in self.slots:
            item = slot.to_dict(self)
            del item["offset"]
            out.append(item)
        return out


def _split_top(text: str, sep: str) -> Iterator[str]:
    """``text`` split at ``sep`` outside parentheses."""
    depth, start = 0, 0
    for i, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth = max(depth - 1, 0)
        elif char == sep and depth == 0:
            if i > start:
                yield text[start:i]
            start = i + 1
    if start < len(text):
        yield text[start:]


_NUMBER = re.compile(r"^-?\d+$")
_INT = re.compile(r"^-?(?:\d+|0x[0-9a-f]+)$")
_TNUM = re.compile(r"^\((0x[0-9a-f]+); ?(0x[0-9a-f]+)\)$")
_TYPED = re.compile(r"^([A-Za-z_][\w]*)(?:\((.*)\))?$", re.S)


def _number(text: str) -> Any:
    if _NUMBER.match(text):
        return int(text)
    if text.startswith("0x"):
        try:
            return int(text, 16)
        except ValueError:
            pass
    return text


def parse_value(text: str, live: str = "") -> Value:
    """One register value as the log prints it (``scalar(umax=255,var_off=(0x0;
    0xff))``, ``P0``, ``fp-8``, ``map_value_or_null(id=1,off=0,ks=4,vs=8,imm=0)``).
    Values repeat a lot in a log: equal texts give the same (shared, never changed)
    object."""
    key = (text, live)
    value = _VALUES.get(key)
    if value is None:
        if len(_VALUES) > 50000:
            _VALUES.clear()
        value = _VALUES[key] = _parse_value(text, live)
    return value


_VALUES: Dict[Tuple[str, str], "Value"] = {}


def _parse_value(text: str, live: str) -> Value:
    body = text
    precise = body.startswith("P")
    if precise:
        body = body[1:]
    if body == "":
        return Value("scalar" if precise else "", precise=precise, live=live, text=text)
    if _NUMBER.match(body):
        return Value("scalar", const=int(body), precise=precise, live=live, text=text)
    if body.startswith("fp") and _NUMBER.match(body[2:]):
        return Value("fp", const=int(body[2:]), precise=precise, live=live, text=text)
    found = _TYPED.match(body)
    if not found:
        return Value("?", precise=precise, live=live, text=text)
    value = Value(found.group(1), precise=precise, live=live, text=text)
    inner = found.group(2) or ""
    for item in (_split_top(inner, ",") if "(" in inner.replace("var_off=(", "")
                 else inner.split(",")):
        parts = item.split("=")
        if len(parts) < 2:
            value.fields[item] = True
            continue
        raw = parts[-1]
        for key in parts[:-1]:
            key = key[:-6] if key.endswith("_value") else key   # 5.x smin_value=
            if key == "var_off":
                tn = _TNUM.match(raw)
                if tn:
                    value.var_off = Tnum(int(tn.group(1), 16), int(tn.group(2), 16))
                else:
                    value.fields[key] = raw
            elif key in _BOUND_NAMES and _INT.match(raw):
                name = _BOUND_NAMES[key]
                number = int(raw, 0)            # 6.18 prints big ones in hex, unsigned
                bits = 32 if name.endswith("32") else 64
                if name.startswith("s") and number >= 1 << (bits - 1):
                    number -= 1 << bits
                value.bounds[name] = number
            elif key == "imm":
                try:
                    value.fields[key] = int(raw, 16)         # printed as %llx
                except ValueError:
                    value.fields[key] = raw
            else:
                number = _number(raw)
                if key == "r" and isinstance(number, int) and number >= 1 << 63:
                    number -= 1 << 64       # 6.18 prints the packet-end marks in hex
                value.fields[key] = number
    if value.type == "scalar" and value.const is None and value.var_off is not None \
            and value.var_off.mask == 0:
        value.const = value.var_off.value
    return value


_REG_TOKEN = re.compile(r"^R(\d+)(?:_([rwD]+))?=(.*)$", re.S)
_SLOT_TOKEN = re.compile(r"^fp(-\d+)(?:_([rwD]+))?=(.*)$", re.S)
_FRAME_TOKEN = re.compile(r"^frame(\d+):$")


#: token text -> what it says (kind, key, shared object): a long log repeats them
_TOKENS: Dict[str, Tuple[str, Any, Any]] = {}


def _parse_token(token: str) -> Tuple[str, Any, Any]:
    reg = _REG_TOKEN.match(token)
    if reg:
        return "R", int(reg.group(1)), parse_value(reg.group(3), reg.group(2) or "")
    slot = _SLOT_TOKEN.match(token)
    if slot:
        off, live, raw = int(slot.group(1)), slot.group(2) or "", slot.group(3)
        part = _PART_SPILL.match(raw)
        if _SLOT_CHARS.match(raw):
            return "fp", off, Slot(off, "bytes", bytes=raw, live=live, text=raw)
        if part:
            return "fp", off, Slot(off, "spill", bytes=part.group(1),
                                   value=parse_value(part.group(2), live), live=live,
                                   text=raw)
        if raw.startswith(("dynptr_", "iter_")):
            return "fp", off, Slot(off, raw.split("_", 1)[0], live=live, text=raw)
        return "fp", off, Slot(off, "spill", value=parse_value(raw, live), live=live,
                               text=raw)
    frame = _FRAME_TOKEN.match(token)
    if frame:
        return "frame", int(frame.group(1)), None
    if token.startswith("refs="):
        return "refs", None, tuple(int(x) for x in token[5:].split(",") if x.isdigit())
    return "mark", None, token


def parse_state(text: str) -> State:
    """A state as the log prints it: `` R1=ctx() R10=fp0 fp-8=mmmmmmmm``, optionally
    preceded by ``frame1:``; tokens it does not know are kept in ``marks``."""
    state = State()
    # the only blank inside a token is var_off's "; ": without it, a plain split does
    text = text.replace("; ", ";")
    tokens = _split_top(text, " ") if "( " in text else text.split()
    for token in tokens:
        parsed = _TOKENS.get(token)
        if parsed is None:
            if len(_TOKENS) > 50000:
                _TOKENS.clear()
            parsed = _TOKENS[token] = _parse_token(token.replace(";", "; ")
                                                   if ";" in token else token)
        kind, key, item = parsed
        if kind == "R":
            state.regs[key] = item
        elif kind == "fp":
            state.stack[key] = item
        elif kind == "frame":
            state.frame = key
        elif kind == "refs":
            state.refs = list(item)
        else:
            state.marks.append(item)
    return state


@dataclass
class Visit:
    """One time the verifier checked instruction ``index``: ``seq`` counts visits in
    log order, ``path`` the path (see :attr:`Trace.paths`) it belongs to, ``line`` the
    log line, ``text`` the instruction as the verifier printed it, ``before`` the state
    of the current frame before it, ``after`` what the instruction changed as printed
    (None when the log printed nothing: the path ended or failed there), ``notes``
    the log lines about it (precision tracking, helper messages)."""

    seq: int
    index: int
    path: int
    line: int
    text: str
    before: State
    after: Optional[State] = None
    notes: List[str] = field(default_factory=list)

    #: notes kept per visit in JSON (precision tracking can log thousands)
    JSON_NOTES = 40

    def to_dict(self, table: Optional[ValueTable] = None) -> Dict[str, Any]:
        """The visit as JSON data (``table``: values by number; at most
        :attr:`JSON_NOTES` notes, then ``notes_left_out``)."""
        out: Dict[str, Any] = {"seq": self.seq, "index": self.index, "path": self.path,
                               "line": self.line, "text": self.text,
                               "before": self.before.to_dict(table),
                               "after": self.after.to_dict(table) if self.after else None}
        if self.notes:
            out["notes"] = self.notes[:self.JSON_NOTES]
            if len(self.notes) > self.JSON_NOTES:
                out["notes_left_out"] = len(self.notes) - self.JSON_NOTES
        return out


@dataclass
class Branch:
    """A path the verifier took up from its stack (``from 14 to 15:``): the jump at
    ``source`` (-1 when the log gives none) to ``target``; ``path`` the path it starts,
    ``parent`` the ``seq`` of the visit of ``source`` that queued it (found as the
    latest visit of ``source`` not yet taken up; None if the log shows none),
    ``speculative`` for a path the verifier walks against speculative execution,
    ``pruned`` when it was found safe at once."""

    source: int
    target: int
    line: int
    path: int
    parent: Optional[int] = None
    speculative: bool = False
    pruned: bool = False

    def to_dict(self) -> Dict[str, Any]:
        """The branch as JSON data."""
        return {"from": self.source, "to": self.target, "line": self.line,
                "path": self.path, "parent": self.parent,
                "speculative": self.speculative, "pruned": self.pruned}


@dataclass
class Prune:
    """A path the verifier stopped at ``index`` because a state it had proved safe
    there covers this one (``15: safe``); ``source`` the jump when it came with a
    branch, ``path`` the path it ended, ``notes`` the precision marks propagated."""

    index: int
    line: int
    path: int
    source: Optional[int] = None
    notes: List[str] = field(default_factory=list)

    def to_dict(self) -> Dict[str, Any]:
        """The prune as JSON data."""
        return {"index": self.index, "line": self.line, "path": self.path,
                "from": self.source, "notes": list(self.notes)}


@dataclass
class Failure:
    """Why a program was refused: the instruction it failed at (``index``, None when
    the log names none), the visit (``seq``), the ``complaint`` and ``path``, the
    instruction indexes from the program's start to the failure along the walk."""

    index: Optional[int]
    complaint: str
    seq: Optional[int] = None
    path: List[int] = field(default_factory=list)

    def to_dict(self) -> Dict[str, Any]:
        """The failure as JSON data."""
        return {"index": self.index, "seq": self.seq, "complaint": self.complaint,
                "path": list(self.path)}


@dataclass
class Trace:
    """Everything a level 2 verifier log says: ``visits`` in order, ``branches`` and
    ``prunes``, ``paths`` (path number -> the ``seq`` of the visit it continues from,
    None for the first), ``live`` (instruction -> the live registers the 6.15+ table
    lists, such as ``"012"``), ``stats`` (``processed``, ``limit``,
    ``max_states_per_insn``, ``total_states``, ``peak_states``, ``mark_read``,
    ``verification_time_usec``, ``stack_depth``; what the kernel printed) and
    ``failure`` for a refused program."""

    visits: List[Visit] = field(default_factory=list)
    branches: List[Branch] = field(default_factory=list)
    prunes: List[Prune] = field(default_factory=list)
    paths: Dict[int, Optional[int]] = field(default_factory=dict)
    live: Dict[int, str] = field(default_factory=dict)
    stats: Dict[str, Any] = field(default_factory=dict)
    failure: Optional[Failure] = None

    def visits_of(self, index: int) -> List[Visit]:
        """The visits of instruction ``index``, in order."""
        return [v for v in self.visits if v.index == index]

    def path_to(self, seq: int) -> List[int]:
        """The ``seq`` numbers of the visits from the start of the walk to visit
        ``seq``: back along its path, then through the visit each branch came from."""
        by_seq = {v.seq: v for v in self.visits}
        on_path: Dict[int, List[int]] = {}
        for v in self.visits:
            on_path.setdefault(v.path, []).append(v.seq)
        parts: List[List[int]] = []
        visit = by_seq.get(seq)
        while visit is not None:
            parts.append([s for s in on_path[visit.path] if s <= visit.seq])
            parent = self.paths.get(visit.path)
            visit = by_seq.get(parent) if parent is not None else None
        return [s for part in reversed(parts) for s in part]

    def to_dict(self) -> Dict[str, Any]:
        """The whole trace as JSON data: ``values`` lists each distinct register value
        once and ``slots`` each distinct stack slot content; the states of ``visits``
        name them by their number there."""
        table = ValueTable()
        visits = [v.to_dict(table) for v in self.visits]
        return {"values": table.to_list(), "slots": table.slots_list(), "visits": visits,
                "branches": [b.to_dict() for b in self.branches],
                "prunes": [p.to_dict() for p in self.prunes],
                "paths": {str(k): v for k, v in self.paths.items()},
                "live": {str(k): v for k, v in sorted(self.live.items())},
                "stats": dict(self.stats),
                "failure": self.failure.to_dict() if self.failure else None}


_INSN = re.compile(r"^(\d+): \(([0-9a-f]{2})\) (.*?)(?:\s+; (.*))?$")
_STATE_AT = re.compile(r"^(\d+):((?: frame\d+:)?(?: (?:R\d|fp-|refs=|cb|async_cb).*)?)$")
_FROM = re.compile(r"^from (-?\d+) to (\d+)( \(speculative execution\))?:(.*)$")
_SAFE = re.compile(r"^(\d+): safe$")
_BARE_STATE = re.compile(r"^\s*(?:frame\d+:)?\s*(?:R\d+(?:_[rwD]+)?=|fp-\d+)")
_LIVE_ROW = re.compile(r"^\s+(\d+): ([0-9.]{10,12}) \(")
_PROCESSED = re.compile(r"^processed (\d+) insns \(limit (\d+)\)(.*)$")
_PAIRS = re.compile(r"(\w+) (\d+)")
_CALLER_SAVED = (1, 2, 3, 4, 5)


_COND = re.compile(r"^if [rw](\d+) \S+ (?:[rw](\d+)|(0x[0-9a-f]+|-?\d+)) goto")


def _may_queue(text: str, state: State) -> bool:
    """Whether the verifier may have queued the other side of the instruction at this
    visit: not for a jump between constants, where it follows only the side taken
    (other jumps it decides alone, such as some pointer tests, can still be counted)."""
    if not text.startswith(("if ", "may_goto", "call ")):
        return False
    cond = _COND.match(text)
    if cond is None:
        return True
    left = state.regs.get(int(cond.group(1)))
    if left is None:
        return True
    if cond.group(2) is not None:
        right = state.regs.get(int(cond.group(2)))
        return not (right is not None and left.type == right.type == "scalar"
                    and left.const is not None and right.const is not None)
    return not (left.type == "scalar" and left.const is not None)


def parse_states(log: str, refused: Optional[bool] = None) -> Trace:
    """Read a level 2 verifier log (Linux 6.1 or 6.18 wording) into a :class:`Trace`.
    A log of a lower level gives the visits it shows (level 1: the failing path).
    ``refused``: whether the kernel refused the program (None: judged from the log,
    a complaint after the last instruction)."""
    from .verifier import parse_verifier_log
    trace = Trace()
    frames: Dict[int, State] = {0: State()}
    cur = 0
    path = 0
    trace.paths[0] = None
    pending: Dict[int, List[int]] = {}      # jump index -> visits not yet taken up
    last: Optional[Visit] = None
    last_prune: Optional[Prune] = None
    returning: Optional[int] = None         # the caller's next instruction, after exit
    lines = log.split("\n") if log else []
    for n, line in enumerate(lines):
        if line.startswith("mark_precise"):         # most lines of a long log
            if last is not None:
                last.notes.append(line)
            continue
        found = _INSN.match(line) if line[:1].isdigit() else None
        if found:
            index, text = int(found.group(1)), found.group(3).rstrip()
            state = frames.setdefault(cur, State(cur))
            last = Visit(len(trace.visits), index, path, n, text, state.copy())
            trace.visits.append(last)
            if _may_queue(text, state):
                pending.setdefault(index, []).append(last.seq)
            if text.startswith("call ") and not text.startswith("call pc"):
                for r in _CALLER_SAVED:         # a helper or kfunc clobbers R1-R5
                    state.regs.pop(r, None)
            if found.group(4) is not None:
                change = parse_state(found.group(4))
                last.after = change
                cur = change.frame
                frames.setdefault(cur, State(cur)).apply(change)
            last_prune = None
            continue
        safe = _SAFE.match(line)
        if safe:
            last_prune = Prune(int(safe.group(1)), n, path)
            trace.prunes.append(last_prune)
            continue
        branch = _FROM.match(line)
        if branch and returning is not None and int(branch.group(2)) == returning:
            # 6.18 words the return from a BPF-to-BPF call as "from EXIT to NEXT:": the
            # same path goes on in the caller (or ends there: "safe")
            returning = None
            if branch.group(4).strip() == "safe":
                last_prune = Prune(int(branch.group(2)), n, path, int(branch.group(1)))
                trace.prunes.append(last_prune)
                continue
            full = parse_state(branch.group(4))
            cur = full.frame
            frames = {k: v for k, v in frames.items() if k < cur}
            frames[cur] = full
            returning = None
            continue
        if branch:
            source, target = int(branch.group(1)), int(branch.group(2))
            rest = branch.group(4).strip()
            path += 1
            queued = pending.get(source)
            parent = queued.pop() if queued else None
            trace.paths[path] = parent
            edge = Branch(source, target, n, path, parent, bool(branch.group(3)),
                          rest == "safe")
            trace.branches.append(edge)
            if rest == "safe":
                last_prune = Prune(target, n, path, source)
                trace.prunes.append(last_prune)
            else:
                full = parse_state(rest)
                cur = full.frame
                frames = {k: v for k, v in frames.items() if k < cur}
                frames[cur] = full
                last_prune = None
            continue
        at = _STATE_AT.match(line)
        if at and at.group(2).strip():
            change = parse_state(at.group(2))
            if last is not None and last.after is None and last.path == path:
                last.after = change
            cur = change.frame
            frames.setdefault(cur, State(cur)).apply(change)
            continue
        if line.startswith("to caller at "):
            returning = int(line[len("to caller at "):].rstrip(":"))
            continue
        if _BARE_STATE.match(line):         # caller:/callee:/to caller at N: states
            full = parse_state(line)
            cur = full.frame
            frames[cur] = full
            continue
        live = _LIVE_ROW.match(line)
        if live:
            trace.live[int(live.group(1))] = "".join(c for c in live.group(2) if c != ".")
            continue
        processed = _PROCESSED.match(line)
        if processed:
            trace.stats["processed"] = int(processed.group(1))
            trace.stats["limit"] = int(processed.group(2))
            for key, value in _PAIRS.findall(processed.group(3)):
                trace.stats[key] = int(value)
            continue
        if line.startswith("verification time "):
            trace.stats["verification_time_usec"] = int(line.split()[2])
            continue
        if line.startswith("stack depth "):
            trace.stats["stack_depth"] = line[len("stack depth "):].strip()
            continue
        if "propagating" in line and last_prune is not None:
            last_prune.notes.append(line.strip())
        elif line.startswith(("mark_precise", "(")) or not line.strip() \
                or line.startswith(("; ", "func#", "Live regs", "caller:", "callee:",
                                    "returning from", "to caller at", "Validating")):
            if line.startswith("mark_precise") and last is not None:
                last.notes.append(line)
        elif last is not None:
            last.notes.append(line)
    if refused is False:
        return trace
    _, failing, complaint = parse_verifier_log(log)
    complaint = "\n".join(ln for ln in complaint.split("\n") if not _structure(ln))
    if refused is None:
        refused = bool(complaint.strip())
    if refused:
        trace.failure = _failure(trace, failing, complaint)
    return trace


def _structure(line: str) -> bool:
    """True for the lines of a log that describe the walk rather than complain."""
    return bool(_SAFE.match(line) or _FROM.match(line) or _BARE_STATE.match(line)
                or line.startswith(("(", "returning from callee", "to caller at",
                                    "caller:", "callee:")))


def _failure(trace: Trace, failing: Optional[int], complaint: str) -> Failure:
    """The failure at instruction ``failing``: its last visit (the walk stops at the
    first error) and the path there."""
    by_seq = {v.seq: v for v in trace.visits}
    loop = re.search(r"infinite loop detected at insn (\d+)", complaint)
    if loop:
        # the verifier refuses the arrival at the loop's head (never printed as a visit):
        # the path is the one through the latest jump back to it
        head = int(loop.group(1))
        for v in reversed(trace.visits):
            jump = re.search(r"goto pc([+-]\d+)", v.text)
            if jump and v.index + 1 + int(jump.group(1)) == head:
                path = [by_seq[s].index for s in trace.path_to(v.seq)] + [head]
                return Failure(head, complaint, None, path)
    found = trace.visits_of(failing) if failing is not None else trace.visits[-1:]
    visit = found[-1] if found else None
    path = [by_seq[s].index for s in trace.path_to(visit.seq)] if visit else []
    return Failure(failing, complaint, visit.seq if visit else None, path)
