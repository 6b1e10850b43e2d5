"""tracefs: finding it, its events, their record layouts, and probe definitions.

* :func:`tracefs_root` finds the mounted tracefs (``/sys/kernel/tracing``, or
  ``tracing/`` under debugfs on older systems), mounting it when it is not;
* :func:`list_events` lists tracepoints by glob (``"syscalls:sys_enter_*"``) and
  :func:`event_id` gives an event's id, raising :class:`UnknownTracepointError` with close
  matches for a name that does not exist;
* :func:`event_format` parses an event's ``format`` file into an :class:`EventFormat`:
  typed :class:`Field` objects (scalars, pointers, fixed arrays, ``__data_loc`` and
  ``__rel_loc`` dynamic data) that a program reads by name (``fmt.args.filename.offset``)
  and that :meth:`EventFormat.decode` turns back into Python values;
* :func:`add_probe_event` / :func:`remove_probe_event` write ``kprobe_events`` and
  ``uprobe_events`` (the fallback when the kernel has no kprobe/uprobe PMU). Lines are
  appended with ``O_WRONLY|O_APPEND`` and never with truncation (opening those files for
  writing without append deletes every probe on the system). Every name is validated
  first; pybpf's events live in the group :data:`GROUP` and are named
  ``pybpf_<pid>_<n>_<what>`` so that :func:`stale_probe_events` can find those whose
  process has died.
"""

from __future__ import annotations

import errno as _errno
import fnmatch
import itertools
import os
import re
import struct
import _thread
from types import SimpleNamespace
from typing import Any, Dict, Iterator, List, Optional, Tuple

from ._records import field, record
from .errors import UnknownNameError, close_matches
from .syscall.errors import NotSupportedError

__all__ = [
    "parse_format", "iter_pybpf_events", "TRACEFS_CANDIDATES", "GROUP", "tracefs_root", "list_events", "split_event",
    "event_id", "event_format", "EventFormat", "Field", "UnknownTracepointError",
    "close_matches", "validate_name", "validate_probe_target", "unique_event_name",
    "ProbeEvent", "add_probe_event", "remove_probe_event", "list_probe_events",
    "stale_probe_events", "pid_of_event", "pid_alive", "TracefsPermissionError",
]

#: where tracefs is looked for, in order
TRACEFS_CANDIDATES = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
#: the event group of every probe pybpf defines in tracefs
GROUP = "pybpf"

_root: Optional[str] = None
_root_lock = _thread.allocate_lock()


def _mounted_tracefs() -> List[str]:
    found = []
    try:
        with open("/proc/self/mounts", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) >= 3 and parts[2] == "tracefs":
                    found.append(parts[1].replace("\\040", " "))
                elif len(parts) >= 3 and parts[2] == "debugfs":
                    found.append(parts[1] + "/tracing")
    except OSError:
        pass
    return found


class TracefsPermissionError(PermissionError):
    """tracefs is there but this user may not read it (it is mode 0700, root's, on most
    systems): ``root`` is where it is mounted, ``path`` what could not be read."""

    def __init__(self, root: str, path: str = "") -> None:
        self.root = root
        super().__init__(_errno.EACCES,
                         f"tracefs at {root} is not readable by this user (permission "
                         f"denied{' on ' + path if path and path != root else ''}): "
                         f"run as root", path or root)

    def __str__(self) -> str:
        return str(self.strerror)


def _denied(path: str) -> bool:
    """Whether ``path`` exists but this process may not look inside it."""
    try:
        os.stat(path)
    except PermissionError:
        return True                     # a parent this user may not enter
    except OSError:
        return False
    return not os.access(path, os.R_OK | os.X_OK)


def _mount(source: str, target: str, fstype: str) -> bool:
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    ok = libc.mount(source.encode(), target.encode(), fstype.encode(), 0, None) == 0
    return ok or ctypes.get_errno() == _errno.EBUSY


def tracefs_root(mount: bool = True) -> str:
    """The directory where tracefs is mounted. Looks at the mount table, then at
    :data:`TRACEFS_CANDIDATES`; if none has events and ``mount`` is true, mounts tracefs
    on ``/sys/kernel/tracing`` (needs root). Raises :class:`TracefsPermissionError` when
    tracefs is mounted but this user may not read it, and
    :class:`~pybpf.syscall.errors.NotSupportedError` when there is none (tracefs is
    Linux 4.1; debugfs' ``tracing`` before)."""
    global _root
    with _root_lock:
        if _root is not None and os.path.isdir(os.path.join(_root, "events")):
            return _root
        denied: Optional[str] = None
        mounted = _mounted_tracefs()
        for path in mounted + list(TRACEFS_CANDIDATES):
            if os.path.isdir(os.path.join(path, "events")):
                _root = path
                return path
            if denied is None and _denied(path) and (
                    path in mounted or path == TRACEFS_CANDIDATES[0]):
                denied = path
        if denied is not None:
            raise TracefsPermissionError(denied)
        if mount and os.path.isdir(TRACEFS_CANDIDATES[0]) and \
                _mount("tracefs", TRACEFS_CANDIDATES[0], "tracefs") and \
                os.path.isdir(os.path.join(TRACEFS_CANDIDATES[0], "events")):
            _root = TRACEFS_CANDIDATES[0]
            return _root
    raise NotSupportedError("tracefs", (4, 1), errnum=_errno.ENOENT,
                            detail="not mounted at /sys/kernel/tracing or "
                                   "/sys/kernel/debug/tracing, and mounting it failed "
                                   "(needs root and CONFIG_TRACING)")


def _read(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as fh:
        return fh.read()


# ---------------------------------------------------------------------------------------
# Events
# ---------------------------------------------------------------------------------------

class UnknownTracepointError(UnknownNameError):
    """A tracepoint that does not exist (a :class:`LookupError`; ``matches`` lists the
    closest that do)."""


def split_event(spec: str, name: Optional[str] = None) -> Tuple[str, str]:
    """``"group:name"`` (or ``"group/name"``, or ``spec, name``) as ``(group, name)``."""
    if name is not None:
        return spec, name
    for sep in (":", "/"):
        if sep in spec:
            group, _, event = spec.partition(sep)
            return group, event
    raise ValueError(f"a tracepoint is named 'group:name' (e.g. "
                     f"'syscalls:sys_enter_openat'), not {spec!r}")


def list_events(pattern: str = "*") -> List[str]:
    """Tracepoints (``"group:name"``) matching the shell-style ``pattern``, sorted:
    ``list_events("syscalls:sys_enter_open*")``. A pattern without ``:`` matches the
    event name in any group."""
    root = tracefs_root()
    try:
        names = _read(os.path.join(root, "available_events")).split()
    except OSError:
        names = [f"{g}:{e}" for g in os.listdir(os.path.join(root, "events"))
                 if os.path.isdir(os.path.join(root, "events", g))
                 for e in os.listdir(os.path.join(root, "events", g))
                 if os.path.isdir(os.path.join(root, "events", g, e))]
    if ":" not in pattern:
        pattern = "*:" + pattern
    return sorted(n for n in names if fnmatch.fnmatchcase(n, pattern))


def _check_component(part: str, what: str) -> None:
    if not part or not re.fullmatch(r"[A-Za-z0-9_.\-]+", part):
        raise ValueError(f"invalid {what} {part!r}: letters, digits, '_', '.', '-' only")


def _unknown_event(group: str, name: str) -> UnknownTracepointError:
    try:
        every = list_events()
    except OSError:
        every = []
    return UnknownTracepointError("tracepoint", f"{group}:{name}",
                                  close_matches(f"{group}:{name}", every))


def event_id(group: str, name: Optional[str] = None) -> int:
    """The id of tracepoint ``group:name`` (``attr.config`` of a tracepoint perf
    event). Raises :class:`UnknownTracepointError` with close matches."""
    group, name = split_event(group, name)
    _check_component(group, "event group")
    _check_component(name, "event name")
    path = os.path.join(tracefs_root(), "events", group, name, "id")
    try:
        return int(_read(path).strip())
    except FileNotFoundError:
        raise _unknown_event(group, name) from None


@record(frozen=True)
class Field:
    """One field of a trace event record.

    ``kind`` is ``"scalar"``, ``"pointer"``, ``"array"`` (fixed, ``count`` elements of
    ``elem_size`` bytes), ``"data_loc"`` or ``"rel_loc"`` (a 32-bit locator: the low 16
    bits are the data's offset, from the record's start or from the end of the locator,
    the high 16 its length). ``c_type`` is the declared type as written (``"const char
    *"``, ``"char[]"``), ``offset``/``size`` in bytes."""

    name: str
    c_type: str
    offset: int
    size: int
    signed: bool
    kind: str = "scalar"
    count: int = 1
    elem_size: int = 0
    elem_type: str = ""

    @property
    def is_string(self) -> bool:
        """A ``char`` array or dynamic ``char[]``: decoded as text."""
        return self.kind in ("array", "data_loc", "rel_loc") and \
            self.elem_type.replace("unsigned ", "").replace("signed ", "") == "char"

    def load(self, dst: int, ctx: int) -> Any:
        """A ``ldx`` instruction reading this field from the context pointer in register
        ``ctx`` into ``dst`` (scalars, pointers and locators: sizes 1, 2, 4, 8)."""
        from .asm.builder import ldx
        size = 4 if self.kind in ("data_loc", "rel_loc") else self.size
        if size not in (1, 2, 4, 8):
            raise ValueError(f"field {self.name!r} is {self.size} bytes: read it with "
                             f"probe_read into a buffer")
        return ldx(size, dst, ctx, self.offset)


#: patterns as text: ``re`` compiles each on its first use (not at import)
_FIELD_LINE = (r"^\s*field:(?P<decl>.*?);\s*offset:(?P<off>\d+);\s*"
               r"size:(?P<size>\d+);\s*(?:signed:(?P<signed>-?\d+);)?")
_UNPACK = {(1, False): "B", (1, True): "b", (2, False): "H", (2, True): "h",
           (4, False): "I", (4, True): "i", (8, False): "Q", (8, True): "q"}


def _parse_decl(decl: str, offset: int, size: int, signed: bool) -> Field:
    decl = decl.strip()
    dyn = None
    for marker in ("__data_loc", "__rel_loc"):
        if decl.startswith(marker + " "):
            dyn = "data_loc" if marker == "__data_loc" else "rel_loc"
            decl = decl[len(marker):].strip()
    found = re.match(r"^(?P<type>.*?)(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*"
                     r"(?:\[(?P<count>[^\]]*)\])?$", decl)
    if dyn is not None:
        # "char[] filename": the brackets belong to the type
        m = re.match(r"^(?P<type>.*?)\[\s*\]\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*)$", decl)
        if m:
            elem = m.group("type").strip()
            return Field(m.group("name"), elem + "[]", offset, size, signed, dyn, 0, 0, elem)
    if not found:
        return Field(decl, decl, offset, size, signed)
    ctype = found.group("type").strip()
    name = found.group("name")
    if dyn is not None:
        return Field(name, ctype, offset, size, signed, dyn, 0, 0, ctype.rstrip("[] "))
    if found.group("count") is not None:
        text = found.group("count").strip()
        count = int(text, 0) if re.fullmatch(r"0x[0-9a-fA-F]+|\d+", text) else 0
        elem_size = size // count if count else 0
        return Field(name, f"{ctype}[{text}]", offset, size, signed, "array", count,
                     elem_size, ctype)
    if ctype.endswith("*"):
        return Field(name, ctype, offset, size, signed, "pointer")
    return Field(name, ctype, offset, size, signed)


@record
class EventFormat:
    """The record layout of one trace event, from its ``format`` file.

    ``fields`` are the event's own fields in order; ``common_fields`` the header every
    record starts with (``common_type``, ``common_pid``, ...). ``args`` has one attribute
    per field (``fmt.args.filename`` is a :class:`Field`); ``fmt["filename"]`` too.
    ``size`` is where the last fixed field ends."""

    group: str
    name: str
    id: int
    fields: List[Field]
    common_fields: List[Field] = field(default_factory=list)
    print_fmt: str = ""

    @property
    def args(self) -> SimpleNamespace:
        """The event's fields by name."""
        return SimpleNamespace(**{f.name: f for f in self.fields})

    def __getitem__(self, name: str) -> Field:
        for f in self.fields + self.common_fields:
            if f.name == name:
                return f
        names = [f.name for f in self.fields]
        raise KeyError(f"{self.group}:{self.name} has no field {name!r}"
                       + (f"; close matches: {', '.join(close_matches(name, names))}"
                          if close_matches(name, names) else f"; fields: {', '.join(names)}"))

    def offset_of(self, name: str) -> int:
        """The byte offset of field ``name`` in the record (the program's context)."""
        return self[name].offset

    @property
    def size(self) -> int:
        """The end of the last fixed field."""
        every = self.fields + self.common_fields
        return max((f.offset + f.size for f in every), default=0)

    def decode(self, record: bytes) -> Dict[str, Any]:
        """The record's fields as Python values: integers, strings for ``char`` arrays
        and dynamic strings, bytes or lists for other arrays."""
        out: Dict[str, Any] = {}
        for f in self.common_fields + self.fields:
            raw = record[f.offset:f.offset + f.size]
            if f.kind in ("data_loc", "rel_loc"):
                loc = struct.unpack_from("<I", record, f.offset)[0]
                start, length = loc & 0xFFFF, loc >> 16
                if f.kind == "rel_loc":
                    start += f.offset + f.size
                data = record[start:start + length]
                out[f.name] = (data.split(b"\0", 1)[0].decode(errors="replace")
                               if f.is_string else data)
            elif f.kind == "array":
                if f.is_string:
                    out[f.name] = raw.split(b"\0", 1)[0].decode(errors="replace")
                elif f.elem_size in (1, 2, 4, 8) and f.count:
                    code = _UNPACK[(f.elem_size, f.signed)]
                    out[f.name] = list(struct.unpack(f"<{f.count}{code}", raw))
                else:
                    out[f.name] = raw
            elif (f.size, f.signed) in _UNPACK:
                out[f.name] = struct.unpack("<" + _UNPACK[(f.size, f.signed)], raw)[0]
            else:
                out[f.name] = raw
        return out


def parse_format(text: str, group: str = "", name: str = "") -> EventFormat:
    """Parse the text of a ``format`` file."""
    ev_id = 0
    fields: List[Field] = []
    common: List[Field] = []
    print_fmt = ""
    for line in text.splitlines():
        if line.startswith("name:") and not name:
            name = line.split(":", 1)[1].strip()
        elif line.startswith("ID:"):
            ev_id = int(line.split(":", 1)[1])
        elif line.startswith("print fmt:"):
            print_fmt = line.split(":", 1)[1].strip()
        else:
            found = re.match(_FIELD_LINE, line)
            if found:
                f = _parse_decl(found.group("decl"), int(found.group("off")),
                                int(found.group("size")),
                                found.group("signed") not in (None, "0"))
                (common if f.name.startswith("common_") else fields).append(f)
    return EventFormat(group, name, ev_id, fields, common, print_fmt)


#: lists to which :func:`event_format` appends the path of each format file it reads
#: (a cache of compiled programs notes what a compilation depended on)
FORMAT_READERS: List[List[str]] = []


def event_format(group: str, name: Optional[str] = None) -> EventFormat:
    """The parsed ``format`` of tracepoint ``group:name``; raises
    :class:`UnknownTracepointError` with close matches."""
    group, name = split_event(group, name)
    _check_component(group, "event group")
    _check_component(name, "event name")
    path = os.path.join(tracefs_root(), "events", group, name, "format")
    for reader in FORMAT_READERS:
        reader.append(path)
    try:
        text = _read(path)
    except FileNotFoundError:
        raise _unknown_event(group, name) from None
    return parse_format(text, group, name)


# ---------------------------------------------------------------------------------------
# Probe definitions (kprobe_events, uprobe_events)
# ---------------------------------------------------------------------------------------

_NAME_RE = r"[A-Za-z_][A-Za-z0-9_]*"
_SYMBOL_RE = r"[A-Za-z_.][A-Za-z0-9_.$]*"
_counter = itertools.count()


def validate_name(name: str, what: str = "event name") -> str:
    """``name`` if it is a valid tracefs event or group name (a C identifier, at most
    63 characters), else :class:`ValueError`: nothing but a name can reach tracefs."""
    if not isinstance(name, str) or not re.fullmatch(_NAME_RE, name) or len(name) > 63:
        raise ValueError(f"invalid {what} {name!r}: a letter or '_' then letters, digits "
                         f"or '_', at most 63 characters")
    return name


def validate_probe_target(text: str, what: str = "symbol") -> str:
    """``text`` if it is safe inside a probe definition line: a kernel symbol
    (``do_sys_open``, ``foo.isra.0``) or, with ``what="path"``, an absolute path without
    white space, control characters or ``:``. Else :class:`ValueError`."""
    if what == "path":
        if not text.startswith("/") or re.search(r"[\s:\x00-\x1f\x7f]", text):
            raise ValueError(f"invalid path {text!r} for a tracefs probe: absolute, without "
                             f"white space, control characters or ':'")
        return text
    if not re.fullmatch(_SYMBOL_RE, text) or len(text) > 255:
        raise ValueError(f"invalid {what} {text!r}: letters, digits, '_', '.', '$' only")
    return text


def unique_event_name(what: str = "") -> str:
    """A fresh event name ``pybpf_<pid>_<n>_<what>`` (``what`` cleaned up and cut so
    the name stays under 64 characters)."""
    head = f"pybpf_{os.getpid()}_{next(_counter)}"
    tail = re.sub(r"[^A-Za-z0-9_]", "_", what)[:63 - len(head) - 1]
    return validate_name(f"{head}_{tail}" if tail else head)


_EVENT_PID = r"^pybpf_(\d+)_"


def pid_of_event(name: str) -> Optional[int]:
    """The pid in a pybpf event name, or None for other names."""
    found = re.match(_EVENT_PID, name)
    return int(found.group(1)) if found else None


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@record(frozen=True)
class ProbeEvent:
    """One line of ``kprobe_events``/``uprobe_events``: ``kind`` (``"kprobe"`` or
    ``"uprobe"``), ``type`` (``"p"``, ``"r"``), ``group``, ``name`` and the rest of the
    definition."""

    kind: str
    type: str
    group: str
    name: str
    definition: str

    @property
    def pid(self) -> Optional[int]:
        """The creating pid, for pybpf's events."""
        return pid_of_event(self.name) if self.group == GROUP else None


def _events_file(kind: str) -> str:
    if kind not in ("kprobe", "uprobe"):
        raise ValueError(f"kind must be 'kprobe' or 'uprobe', not {kind!r}")
    return os.path.join(tracefs_root(), f"{kind}_events")


def _append(path: str, line: str) -> None:
    # O_APPEND without O_TRUNC: opening these files with truncation deletes every probe
    # on the system, and Python's "a" mode seeks, which tracefs refuses
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def _error_log_tail() -> str:
    try:
        lines = _read(os.path.join(tracefs_root(), "error_log")).strip().splitlines()
    except OSError:
        return ""
    return lines[-2].strip() + " " + lines[-1].strip() if len(lines) >= 2 else ""


def add_probe_event(kind: str, probe_type: str, name: str, location: str,
                    group: str = GROUP) -> int:
    """Define a probe: appends ``<type>:<group>/<name> <location>`` to ``<kind>_events``
    and returns the new event's id. ``probe_type`` is ``"p"``, ``"r"`` or ``"r<N>"``
    (maxactive). ``location`` must already be validated by the caller (symbol, offset,
    path); ``group`` and ``name`` are validated here."""
    validate_name(group, "event group")
    validate_name(name)
    if not re.fullmatch(r"[pr]\d*", probe_type):
        raise ValueError(f"invalid probe type {probe_type!r}")
    if re.search(r"[\n\r\x00]", location):
        raise ValueError(f"invalid probe location {location!r}")
    path = _events_file(kind)
    if not os.path.exists(path):
        raise NotSupportedError(f"{kind}_events in tracefs", errnum=_errno.ENOENT,
                                detail=f"no {path}")
    try:
        _append(path, f"{probe_type}:{group}/{name} {location}\n")
    except OSError as exc:
        tail = _error_log_tail()
        raise OSError(exc.errno, f"cannot add {kind} event {group}/{name} at {location}: "
                                 f"{exc.strerror}" + (f" (tracefs error_log: {tail})"
                                                      if tail else "")) from None
    try:
        return int(_read(os.path.join(tracefs_root(), "events", group, name, "id")))
    except (OSError, ValueError):
        remove_probe_event(kind, name, group)
        raise


def remove_probe_event(kind: str, name: str, group: str = GROUP) -> None:
    """Delete probe ``group/name`` (``-:<group>/<name>``); a probe that is already gone
    is not an error. ``EBUSY`` (still in use by an open perf event) propagates."""
    validate_name(group, "event group")
    validate_name(name)
    try:
        _append(_events_file(kind), f"-:{group}/{name}\n")
    except OSError as exc:
        if exc.errno != _errno.ENOENT:
            raise


def list_probe_events(kind: str) -> List[ProbeEvent]:
    """The probes defined in ``<kind>_events`` (all of them, not only pybpf's)."""
    try:
        text = _read(_events_file(kind))
    except FileNotFoundError:
        return []
    out = []
    for line in text.splitlines():
        head, _, rest = line.partition(" ")
        ptype, _, where = head.partition(":")
        group, _, name = where.partition("/")
        if name:
            out.append(ProbeEvent(kind, ptype, group, name, rest.strip()))
    return out


def stale_probe_events() -> List[ProbeEvent]:
    """pybpf's probes (group :data:`GROUP`) whose creating process is gone."""
    out = []
    for kind in ("kprobe", "uprobe"):
        for ev in list_probe_events(kind):
            if ev.group == GROUP and (ev.pid is None or not pid_alive(ev.pid)):
                out.append(ev)
    return out


def iter_pybpf_events() -> Iterator[ProbeEvent]:
    """Every probe in group :data:`GROUP`, live or stale."""
    for kind in ("kprobe", "uprobe"):
        for ev in list_probe_events(kind):
            if ev.group == GROUP:
                yield ev
