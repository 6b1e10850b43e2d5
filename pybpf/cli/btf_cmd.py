"""``pybpf btf dump|find|field``: the kernel's types, as C or as a raw listing."""

from __future__ import annotations

import argparse
import sys
from typing import Any, List, Optional, TextIO

__all__ = ["register", "run_dump", "run_find", "run_field"]

EXAMPLES = """examples:
  pybpf btf dump task_struct              struct task_struct as C, with offsets
  pybpf btf dump 'union bpf_attr'         a tagged name
  pybpf btf dump --format c > vmlinux.h   every type: a header gcc/clang accept
  pybpf btf dump                          every type, one raw line each
  pybpf btf dump --module kvm kvm_vcpu    a module's type (split BTF on vmlinux)
  pybpf btf dump --file prog.o            the .BTF of an ELF object, or a raw blob
  pybpf btf find bpf_iter_task            every type with that name, vmlinux and modules
  pybpf btf find --json task_struct       the same as JSON
  pybpf btf field task_struct.real_parent.tgid
                                          the loads that read a field through pointers
"""


def register(sub: "argparse._SubParsersAction") -> None:
    """Add the ``btf`` subcommand with ``dump``, ``find`` and ``field``."""
    p = sub.add_parser("btf", help="show kernel types (BTF) as C",
                       description="Read BTF: the running kernel's "
                                   "(/sys/kernel/btf/vmlinux), a module's, or a file's.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True

    def source_args(q: argparse.ArgumentParser) -> None:
        q.add_argument("--file", metavar="PATH",
                       help="read BTF from PATH (a raw blob or an ELF file with .BTF) "
                            "instead of the kernel")
        q.add_argument("--module", metavar="NAME",
                       help="a kernel module's BTF (split on vmlinux; with --file, "
                            "PATH is split on the kernel's vmlinux)")

    dump = actions.add_parser("dump", help="one type as C, or every type",
                              description="Print TYPE (a name, 'struct NAME', or an id) as "
                                          "C, or without TYPE every type: a raw listing, "
                                          "or with --format c a header equivalent to "
                                          "vmlinux.h.")
    dump.add_argument("type", nargs="?", metavar="TYPE", help="the type to show")
    dump.add_argument("--format", choices=("c", "text"), default=None,
                      help="c: C definitions (default with TYPE); text: raw lines "
                           "(default without TYPE)")
    dump.add_argument("--no-offsets", action="store_true",
                      help="leave out the /* offset size */ comments")
    source_args(dump)
    dump.set_defaults(handler=run_dump)

    find = actions.add_parser("find", help="where a name is defined",
                              description="List every type named NAME, in vmlinux and "
                                          "in each module's BTF.")
    find.add_argument("name", metavar="NAME")
    find.add_argument("--kind", help="only this kind (struct, func, typedef, ...)")
    find.add_argument("--json", action="store_true",
                      help="print JSON: a list of {source, id, kind, name[, size, type]}")
    source_args(find)
    find.set_defaults(handler=run_find)

    field = actions.add_parser("field", help="resolve a field path",
                               description="Show the loads that read PATH "
                                           "(type.member[.member...], through pointers).")
    field.add_argument("path", metavar="PATH")
    field.add_argument("--json", action="store_true",
                       help="print JSON: a list of loads {offset, size, deref, ...}")
    source_args(field)
    field.set_defaults(handler=run_field)


def _source(args: argparse.Namespace) -> Any:
    from pybpf.btf.parser import BTF, load_module, vmlinux
    if args.file:
        base = vmlinux() if args.module else None
        with open(args.file, "rb") as fh:
            elf = fh.read(4) == b"\x7fELF"
        if elf:
            return BTF.from_elf(args.file, base=base)
        return BTF.from_file(args.file, base=base)
    if args.module:
        return load_module(args.module)
    return vmlinux()


def _matches(btf: Any, text: str, kind: Optional[str] = None) -> List[int]:
    from pybpf.btf.errors import TypeNotFoundError
    from pybpf.btf.resolve import resolve_type
    text = text.strip()
    if text.isdigit():
        return [resolve_type(btf, int(text))]
    words = text.split()
    if len(words) == 2 and words[0] in ("struct", "union", "enum", "typedef", "func"):
        return [resolve_type(btf, text)]
    found = btf.ids(text, kind, own=btf.base is not None)
    if not found:
        raise TypeNotFoundError(f"{btf.name}: no type named {text!r}")
    return found


def run_dump(args: argparse.Namespace, out: Optional[TextIO] = None) -> int:
    """``pybpf btf dump``."""
    from pybpf.btf.render import raw_line, render_header, render_raw, render_type
    out = out or sys.stdout
    btf = _source(args)
    fmt = args.format or ("c" if args.type else "text")
    if args.type is None:
        if fmt == "c":
            out.write(render_header(btf))
        else:
            for line in render_raw(btf):
                out.write(line + "\n")
        return 0
    ids = _matches(btf, args.type)
    for n, type_id in enumerate(ids):
        if fmt == "c":
            if n:
                out.write("\n")
            out.write(f"/* [{type_id}] {btf.kind(type_id).name} */\n")
            out.write(render_type(btf, type_id, offsets=not args.no_offsets) + "\n")
        else:
            out.write(raw_line(btf, type_id) + "\n")
    return 0


def run_find(args: argparse.Namespace, out: Optional[TextIO] = None) -> int:
    """``pybpf btf find``: every type named NAME, in vmlinux and each module."""
    from pybpf.btf.parser import load_module, module_names
    from pybpf.btf.resolve import type_name
    out = out or sys.stdout
    if args.file or args.module:
        sources = [_source(args)]
    else:
        sources = [_source(args)]
        for mod in module_names():
            try:
                sources.append(load_module(mod))
            except (OSError, ValueError):
                continue
    count = 0
    records = []
    for btf in sources:
        own = btf.base is not None
        for type_id in btf.ids(args.name, args.kind, own=own):
            t = btf.type(type_id)
            size = getattr(t, "size", None)
            detail = f" size={size}" if isinstance(size, int) and size else ""
            rec = {"source": btf.name or "file", "id": type_id, "kind": t.kind.name,
                   "name": t.name}
            if isinstance(size, int) and size:
                rec["size"] = size
            if t.kind.name in ("TYPEDEF", "VAR", "PTR"):
                detail += f" -> {type_name(btf, t.type)}"  # type: ignore[attr-defined]
                rec["type"] = type_name(btf, t.type)  # type: ignore[attr-defined]
            records.append(rec)
            if not getattr(args, "json", False):
                out.write(f"{btf.name or 'file'}\t[{type_id}] {t.kind.name} {t.name}"
                          f"{detail}\n")
            count += 1
    if count and getattr(args, "json", False):
        from pybpf.cli.common import emit_json
        emit_json(records, out)
    if not count:
        from pybpf.btf.errors import TypeNotFoundError
        raise TypeNotFoundError(f"no type named {args.name!r}"
                                + (f" of kind {args.kind}" if args.kind else ""))
    return 0


def run_field(args: argparse.Namespace, out: Optional[TextIO] = None) -> int:
    """``pybpf btf field``: the loads of a field path."""
    from pybpf.btf.resolve import field_path, type_name
    out = out or sys.stdout
    btf = _source(args)
    fp = field_path(btf, args.path)
    if getattr(args, "json", False):
        from pybpf.cli.common import emit_json
        emit_json([{"offset": step.offset, "size": step.size, "deref": step.deref,
                    "signed": step.signed, "bit_shift": step.bit_shift,
                    "bit_size": step.bit_size, "text": step.text,
                    "type": type_name(btf, step.type_id)} for step in fp.steps], out)
        return 0
    for n, step in enumerate(fp.steps):
        what = "pointer, followed" if step.deref else (
            "signed" if step.signed else "unsigned")
        bits = (f", bits {step.bit_shift}..{step.bit_shift + step.bit_size - 1}"
                if step.bit_size else "")
        out.write(f"{n}: load {step.size} bytes at offset {step.offset} ({what}{bits})"
                  f"\t{step.text}: {type_name(btf, step.type_id)}\n")
    return 0
