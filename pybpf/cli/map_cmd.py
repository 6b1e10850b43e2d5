"""``pybpf map list|show|dump``: the maps in the kernel, as bpftool shows them."""

from __future__ import annotations

import argparse
import errno
import sys
from typing import Any, Dict, List, Optional, Tuple

from pybpf.cli.common import add_json_flag, emit_json, print_record, print_records

__all__ = ["register", "map_record", "format_record", "list_maps", "dump_entries",
           "format_entry"]

EXAMPLES = """examples:
  pybpf map list                    every map (bpftool map list)
  pybpf map list --json             the same as JSON (bpftool's keys)
  pybpf map show 42                 one map
  pybpf map dump 42                 its keys and values as hex bytes
  pybpf map dump /sys/fs/bpf/x      a pinned map

Keys and values are shown as raw bytes (per CPU for per-CPU maps); decoding them with
BTF is not done yet.
"""

_PERCPU = ("percpu_hash", "percpu_array", "lru_percpu_hash", "percpu_cgroup_storage")


def register(sub: "argparse._SubParsersAction") -> None:
    """Add the ``map`` subcommand with ``list``, ``show`` and ``dump``."""
    p = sub.add_parser("map", help="list, show and dump maps",
                       description="Inspect the BPF maps in the kernel (needs root or "
                                   "CAP_SYS_ADMIN).",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    lst = actions.add_parser("list", aliases=["ls"], help="every map")
    add_json_flag(lst)
    lst.set_defaults(handler=run_list)
    show = actions.add_parser("show", help="one map, by id or pin path")
    show.add_argument("map", help="map id, or the path where it is pinned")
    add_json_flag(show)
    show.set_defaults(handler=run_show)
    dump = actions.add_parser("dump", help="the keys and values of a map")
    dump.add_argument("map", help="map id, or the path where it is pinned")
    add_json_flag(dump)
    dump.set_defaults(handler=run_dump)


def _fdinfo(fd: int) -> Dict[str, str]:
    fields: Dict[str, str] = {}
    try:
        with open(f"/proc/self/fdinfo/{fd}", encoding="ascii") as fh:
            for line in fh:
                name, _, value = line.partition(":")
                fields[name.strip()] = value.strip()
    except OSError:
        pass
    return fields


def _type_value(map_type: int) -> Any:
    """The map type as bpftool writes it: its name, or the number when unknown."""
    from pybpf.maps.spec import type_name
    name = type_name(map_type)
    return int(name) if name.isdigit() else name


def map_record(fd: Any) -> Dict[str, Any]:
    """bpftool's JSON object for the map behind ``fd`` (an FD or a Map)."""
    from pybpf.syscall.objects import map_info
    info = map_info(fd)
    record: Dict[str, Any] = {"id": info.id, "type": _type_value(int(info.type))}
    if info.name:                       # bpftool leaves an empty name out
        record["name"] = info.name
    record.update({"flags": info.map_flags, "bytes_key": info.key_size,
                   "bytes_value": info.value_size, "max_entries": info.max_entries})
    fdinfo = _fdinfo(fd.fileno())
    if fdinfo.get("memlock", "").isdigit():
        record["bytes_memlock"] = int(fdinfo["memlock"])
    if info.map_extra:
        record["map_extra"] = info.map_extra
    if "owner_prog_type" in fdinfo:
        from pybpf.syscall.bpf import ProgType
        try:
            record["owner_prog_type"] = ProgType(int(fdinfo["owner_prog_type"])).name.lower()
        except ValueError:
            record["owner_prog_type"] = int(fdinfo["owner_prog_type"])
        record["owner_jited"] = fdinfo.get("owner_jited") == "1"
    record["frozen"] = int(fdinfo.get("frozen", "0") or 0)
    if info.btf_id:
        record["btf_id"] = info.btf_id
    return record


def format_record(rec: Dict[str, Any]) -> str:
    """bpftool's plain-text form of a record from :func:`map_record`."""
    head = f"{rec['id']}: {rec['type']}"
    if rec.get("name"):
        head += f"  name {rec['name']}"
    head += f"  flags {rec['flags']:#x}"
    second = (f"\tkey {rec['bytes_key']}B  value {rec['bytes_value']}B  "
              f"max_entries {rec['max_entries']}")
    if "bytes_memlock" in rec:
        second += f"  memlock {rec['bytes_memlock']}B"
    lines = [head, second]
    extra = []
    if "owner_prog_type" in rec:
        extra.append(f"owner_prog_type {rec['owner_prog_type']}  "
                     f"owner{'' if rec['owner_jited'] else ' not'} jited")
    if rec.get("frozen"):
        extra.append("frozen")
    if rec.get("btf_id"):
        extra.append(f"btf_id {rec['btf_id']}")
    if extra:
        lines.append("\t" + "  ".join(extra))
    return "\n".join(lines)


def _open_fd(which: str) -> Any:
    """An FD for ``which``: a map id or a pin path (ValueError if there is none)."""
    from pybpf.syscall.objects import map_get_fd_by_id, obj_get, object_kind
    if which.isdigit():
        try:
            return map_get_fd_by_id(int(which))
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                raise ValueError(f"no map with id {which}") from None
            raise
    if not which.startswith(("/", ".")):
        raise ValueError(f"{which!r} is neither a map id nor a pin path")
    fd = obj_get(which)
    if object_kind(fd) != "map":
        fd.close()
        raise ValueError(f"{which} is not a pinned map")
    return fd


def list_maps() -> List[Dict[str, Any]]:
    """A record (:func:`map_record`) per map, by id; maps freed during the walk are left
    out."""
    from pybpf.syscall.objects import iter_ids, map_get_fd_by_id
    records = []
    for map_id in iter_ids("map"):
        try:
            fd = map_get_fd_by_id(map_id)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                continue              # freed since the id was listed
            raise
        with fd:
            records.append(map_record(fd))
    return records


def _hex(raw: bytes) -> str:
    """Bytes in bpftool's layout: two-digit hex, an extra space between the two halves
    of each 16-byte row, one row per line."""
    rows = []
    for at in range(0, len(raw), 16):
        halves = (raw[at:at + 8], raw[at + 8:at + 16])
        rows.append("  ".join(" ".join(f"{b:02x}" for b in half) for half in halves if half))
    return "\n".join(rows)


def _json_bytes(raw: bytes) -> List[str]:
    return [f"0x{b:02x}" for b in raw]


def dump_entries(fd: Any) -> Tuple[str, List[Tuple[bytes, Any]], Optional[str]]:
    """The map's type name, its ``(key, value)`` pairs as bytes (per-CPU: a list of
    bytes per key; None for a value the kernel will not show), and why the map cannot
    be dumped (None if it can). ``fd`` is taken over and closed."""
    from pybpf.maps import Map
    from pybpf.maps.codec import Codec, PerCPUCodec
    from pybpf.maps.fdarray import WriteOnlyFdArray
    from pybpf.maps.keyless import KeylessMap
    from pybpf.maps.percpu import possible_cpus

    class RawView(Map):
        """Any map, keys and values left as bytes."""

        def _value_codec(self, spec: Any) -> Any:
            codec = Codec(spec.value_size, spec.label, "value")
            if _type_value(int(spec.type)) in _PERCPU:
                return PerCPUCodec(codec, possible_cpus())
            return codec

    view = RawView.from_fd(fd)
    with view:
        name = str(_type_value(int(view.type)))
        cls = Map.class_for(view.type)
        if issubclass(cls, KeylessMap):
            return name, [], f"a {name} map has no keys to dump"
        if issubclass(cls, WriteOnlyFdArray):
            return name, [(k, None) for k in view.keys()], None
        return name, list(view.items()), None


def format_entry(key: bytes, value: Any) -> str:
    """bpftool's text for one element: on one line while key and value are short (24
    bytes together), on two lines while each fits a row (16 bytes), else with the bytes
    under ``key:`` and ``value:`` headings. Per-CPU values get a line per CPU."""
    if isinstance(value, list):
        lines = ["key:", _hex(key)]
        for cpu, part in enumerate(value):
            sep = "\n" if len(part) > 16 else " "
            lines.append(f"value (CPU {cpu:02d}):{sep}{_hex(part)}")
        return "\n".join(lines)
    shown = "<cannot be read from user space>" if value is None else _hex(value)
    size = 0 if value is None else len(value)
    if len(key) > 16 or size > 16:
        return f"key:\n{_hex(key)}\nvalue:\n{shown}"
    if len(key) + size <= 24:
        return f"key: {_hex(key)}  value: {shown}"
    return f"key: {_hex(key)}\nvalue: {shown}"


def _entry_json(key: bytes, value: Any) -> Dict[str, Any]:
    if value is None:
        return {"key": _json_bytes(key), "value": None}
    if isinstance(value, list):
        return {"key": _json_bytes(key),
                "values": [{"cpu": cpu, "value": _json_bytes(v)}
                           for cpu, v in enumerate(value)]}
    return {"key": _json_bytes(key), "value": _json_bytes(value)}


def run_list(args: argparse.Namespace) -> int:
    """Handler of ``pybpf map list``."""
    records = list_maps()
    return print_records(records, format_record, as_json=args.json)


def run_show(args: argparse.Namespace) -> int:
    """Handler of ``pybpf map show``."""
    with _open_fd(args.map) as fd:
        rec = map_record(fd)
    return print_record(rec, format_record, as_json=args.json)


def run_dump(args: argparse.Namespace) -> int:
    """Handler of ``pybpf map dump``."""
    name, entries, why_not = dump_entries(_open_fd(args.map))
    if why_not:
        raise ValueError(f"cannot dump: {why_not}")
    if args.json:
        emit_json([_entry_json(k, v) for k, v in entries])
    else:
        for key, value in entries:
            sys.stdout.write(format_entry(key, value) + "\n")
        sys.stdout.write(f"Found {len(entries)} element{'s' if len(entries) != 1 else ''}\n")
    return 0
