"""``pybpf prog list|show|dump``: the programs loaded in the kernel, as bpftool shows them."""

from __future__ import annotations

import argparse
import errno
import sys
import time
from typing import Any, Dict, List, Optional

from pybpf.cli.common import add_json_flag, emit_json, print_record, print_records

__all__ = ["register", "program_record", "format_record", "list_programs"]

EXAMPLES = """examples:
  pybpf prog list                   every loaded program (bpftool prog list)
  pybpf prog list --json            the same as JSON (bpftool's keys)
  pybpf prog show 42                one program
  pybpf prog dump 42                its translated instructions, disassembled
"""


def register(sub: "argparse._SubParsersAction") -> None:
    """Add the ``prog`` subcommand with ``list``, ``show`` and ``dump``."""
    p = sub.add_parser("prog", help="list, show and dump loaded programs",
                       description="Inspect the BPF programs loaded in the kernel "
                                   "(needs root or CAP_SYS_ADMIN).",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    lst = actions.add_parser("list", aliases=["ls"], help="every loaded program")
    add_json_flag(lst)
    lst.set_defaults(handler=run_list)
    show = actions.add_parser("show", help="one program by id")
    show.add_argument("id", type=int, help="program id")
    add_json_flag(show)
    show.set_defaults(handler=run_show)
    dump = actions.add_parser("dump", help="the translated instructions of a program")
    dump.add_argument("id", type=int, help="program id")
    add_json_flag(dump)
    dump.set_defaults(handler=run_dump)


def _type_name(value: int) -> str:
    from pybpf.syscall.bpf import ProgType
    try:
        return ProgType(value).name.lower()
    except ValueError:
        return f"type {value}"


def _memlock(fd: int) -> Optional[int]:
    try:
        with open(f"/proc/self/fdinfo/{fd}", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("memlock:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def full_name(prog: Any, info: Any) -> str:
    """The program's name as bpftool shows it: the kernel keeps 15 characters, so a
    name that long is replaced by its main function's name from the program's BTF
    (func_info record 0) when there is one."""
    name = info.name
    raw = getattr(info, "raw", None)
    if len(name) < 15 or raw is None or not raw.btf_id or not raw.nr_func_info:
        return name
    import ctypes
    import struct
    from pybpf.syscall.objects import (
        ProgInfoStruct, btf_get_fd_by_id, btf_info, obj_get_info_by_fd,
    )
    try:
        rec = raw.func_info_rec_size
        buf = ctypes.create_string_buffer(rec * raw.nr_func_info)
        second = ProgInfoStruct()
        second.nr_func_info = raw.nr_func_info
        second.func_info_rec_size = rec
        second.func_info = ctypes.addressof(buf)
        obj_get_info_by_fd(prog.fileno(), second)
        type_id = struct.unpack_from("<I", buf.raw, 4)[0]
        with btf_get_fd_by_id(raw.btf_id) as fd:
            data = btf_info(fd, data=True).data or b""
        from pybpf.btf import BTF
        func_name = BTF(data).type(type_id).name
    except (OSError, ValueError, LookupError, struct.error):
        return name
    return func_name or name


def program_record(prog: Any) -> Dict[str, Any]:
    """bpftool's JSON object for an open :class:`~pybpf.program.Program`."""
    from pybpf.program import loaded_at
    info = prog.info()
    record: Dict[str, Any] = {
        "id": info.id, "type": _type_name(int(info.type)), "name": full_name(prog, info),
        "tag": info.tag_hex, "gpl_compatible": info.gpl_compatible,
        "loaded_at": int(loaded_at(info)), "uid": info.created_by_uid,
    }
    if info.run_cnt or info.run_time_ns:
        record["run_time_ns"] = info.run_time_ns
        record["run_cnt"] = info.run_cnt
    if info.recursion_misses:
        record["recursion_misses"] = info.recursion_misses
    record["bytes_xlated"] = info.xlated_prog_len
    record["jited"] = bool(info.jited_prog_len)
    if info.jited_prog_len:
        record["bytes_jited"] = info.jited_prog_len
    memlock = _memlock(prog.fileno())
    if memlock is not None:
        record["bytes_memlock"] = memlock
    if info.map_ids:
        record["map_ids"] = list(info.map_ids)
    if info.btf_id:
        record["btf_id"] = info.btf_id
    if info.verified_insns:
        record["verified_insns"] = info.verified_insns
    return record


def format_record(rec: Dict[str, Any]) -> str:
    """bpftool's plain-text form of a record from :func:`program_record`."""
    head = f"{rec['id']}: {rec['type']}"
    if rec.get("name"):
        head += f"  name {rec['name']}"
    head += f"  tag {rec['tag']}" + ("  gpl" if rec.get("gpl_compatible") else "")
    if "run_cnt" in rec:
        head += f"  run_time_ns {rec['run_time_ns']} run_cnt {rec['run_cnt']}"
    if rec.get("recursion_misses"):
        head += f"  recursion_misses {rec['recursion_misses']}"
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(rec["loaded_at"]))
    lines = [head, f"\tloaded_at {stamp}  uid {rec['uid']}"]
    third = f"\txlated {rec['bytes_xlated']}B"
    third += f"  jited {rec['bytes_jited']}B" if rec.get("jited") else "  not jited"
    if "bytes_memlock" in rec:
        third += f"  memlock {rec['bytes_memlock']}B"
    if rec.get("map_ids"):
        third += "  map_ids " + ",".join(str(i) for i in rec["map_ids"])
    lines.append(third)
    if rec.get("btf_id"):
        lines.append(f"\tbtf_id {rec['btf_id']}")
    return "\n".join(lines)


def _open(prog_id: int) -> Any:
    from pybpf.program import Program
    try:
        return Program.from_id(prog_id)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            raise ValueError(f"no program with id {prog_id}") from None
        raise


def list_programs() -> List[Dict[str, Any]]:
    """A record (:func:`program_record`) per loaded program, by id; programs unloaded
    during the walk are left out."""
    from pybpf.program import Program
    from pybpf.syscall.objects import iter_ids
    records = []
    for prog_id in iter_ids("prog"):
        try:
            prog = Program.from_id(prog_id)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                continue              # gone since the id was listed
            raise
        with prog:
            records.append(program_record(prog))
    return records


def run_list(args: argparse.Namespace) -> int:
    """Handler of ``pybpf prog list``."""
    records = list_programs()
    return print_records(records, format_record, as_json=args.json)


def run_show(args: argparse.Namespace) -> int:
    """Handler of ``pybpf prog show ID``."""
    with _open(args.id) as prog:
        rec = program_record(prog)
    return print_record(rec, format_record, as_json=args.json)


def run_dump(args: argparse.Namespace) -> int:
    """Handler of ``pybpf prog dump ID``."""
    from pybpf.program import dump_lines
    with _open(args.id) as prog:
        lines = dump_lines(prog.xlated())
    if args.json:
        emit_json([{"pc": ln.address, "opcode": ln.opcode,
                "disasm": f"({ln.opcode:02x}) {ln.text}", "comment": ln.comment}
               for ln in lines])
    else:
        sys.stdout.write("".join(f"{ln}\n" for ln in lines))
    return 0
