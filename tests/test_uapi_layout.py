"""Every ctypes structure in pybpf.syscall against the installed ``linux/bpf.h``.

The test finds the structures by introspection: every ``ctypes.Structure`` or
``ctypes.Union`` defined in a module of :mod:`pybpf.syscall`. Each says what it mirrors:

* ``_c_name_``: the C type (``"union bpf_attr"``, ``"struct bpf_prog_info"``);
* ``_c_member_`` (optional): a named member of that type (``"test"``, ``"link_create"``);
  without it the fields are looked up directly in the type, which is how the anonymous
  structs of ``union bpf_attr`` are reached (their field names are unique in the union);
* ``_newer_fields_`` (optional): ``{field: (major, minor)}`` for fields newer than the
  header; they are skipped (and reported) unless ``PYBPF_UAPI_INCLUDE`` names an include
  directory with a newer ``linux/bpf.h``.

Nested structures and unions used as fields are walked: a named field adds a component to
the C path (``link_create.kprobe_multi.cnt``), an ``_anonymous_`` one does not. Classes
without ``_c_name_`` must be reached that way from one that has it. Fields named ``_...``
are padding. For each field the test checks offset and size (bit position and width for
bitfields); for each structure that its size is the C end of its fields, rounded up to its
alignment. One C file is generated, compiled with gcc and run: a few seconds.
"""

from __future__ import annotations

import ctypes
import importlib
import inspect
import os
import pkgutil
import re
import shutil
import subprocess
from typing import Dict, List, NamedTuple, Optional, Set, Tuple, Type

import pytest

import pybpf.syscall

Aggregate = Type[ctypes.Structure]


class Leaf(NamedTuple):
    owner: str            # class that declares the structure being checked
    path: str             # C member path inside the checked type
    offset: int           # byte offset from the start of the C type (ctypes side)
    size: int             # byte size (ctypes side)
    bits: Optional[Tuple[int, int]]   # (first bit from the start of the type, width)


class Check(NamedTuple):
    cls: Aggregate
    c_type: str
    member: str
    leaves: List[Leaf]
    skipped: List[Tuple[str, Tuple[int, int]]]


def _structures() -> List[Aggregate]:
    found = []
    for info in pkgutil.iter_modules(pybpf.syscall.__path__):
        module = importlib.import_module(f"pybpf.syscall.{info.name}")
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if (issubclass(obj, (ctypes.Structure, ctypes.Union))
                    and obj.__module__ == module.__name__):
                found.append(obj)
    return found


def _bit_span(cls: Aggregate, name: str) -> Tuple[int, int]:
    """(first bit, width) of a bitfield, measured by setting it to all ones."""
    obj = cls()
    setattr(obj, name, -1 if _is_signed(cls, name) else (1 << 64) - 1)
    value = int.from_bytes(bytes(obj), "little")
    first = (value & -value).bit_length() - 1
    return first, bin(value).count("1")


def _is_signed(cls: Aggregate, name: str) -> bool:
    ctype = next(entry[1] for entry in cls._fields_ if entry[0] == name)
    return ctype in (ctypes.c_int8, ctypes.c_int16, ctypes.c_int32, ctypes.c_int64)


def _walk(cls: Aggregate, base: int, prefix: str, newer_ok: bool, leaves: List[Leaf],
          skipped: List[Tuple[str, Tuple[int, int]]], seen: Set[type]) -> None:
    seen.add(cls)
    anonymous = set(getattr(cls, "_anonymous_", ()))
    newer: Dict[str, Tuple[int, int]] = dict(getattr(cls, "_newer_fields_", {}))
    for entry in cls._fields_:
        name, ctype = entry[0], entry[1]
        if name in newer and not newer_ok:
            skipped.append((prefix + name, newer[name]))
            if isinstance(ctype, type) and issubclass(ctype, (ctypes.Structure, ctypes.Union)):
                _walk(ctype, 0, "", newer_ok, [], [], seen)     # reached, not checkable
            continue
        descr = getattr(cls, name)
        offset = base + descr.offset
        if name in anonymous:
            _walk(ctype, offset, prefix, newer_ok, leaves, skipped, seen)
            continue
        if name.startswith("_"):
            continue
        path = prefix + name
        if isinstance(ctype, type) and issubclass(ctype, (ctypes.Structure, ctypes.Union)):
            inner: List[Leaf] = []
            inner_skipped: List[Tuple[str, Tuple[int, int]]] = []
            _walk(ctype, offset, path + ".", newer_ok, inner, inner_skipped, seen)
            if inner:        # the member exists in this header: check where it is
                leaves.append(Leaf(cls.__qualname__, path, offset,
                                   ctypes.sizeof(ctype) if not inner_skipped else -1, None))
            leaves.extend(inner)
            skipped.extend(inner_skipped)
            continue
        bits = None
        if len(entry) == 3:
            first, width = _bit_span(cls, name)
            bits = (first + base * 8, width)
        leaves.append(Leaf(cls.__qualname__, path, offset, ctypes.sizeof(ctype), bits))


def _checks(newer_ok: bool) -> Tuple[List[Check], List[str]]:
    checks, problems = [], []
    reached: Set[type] = set()
    classes = _structures()
    for cls in classes:
        c_type = cls.__dict__.get("_c_name_")
        if c_type is None:
            continue
        member = cls.__dict__.get("_c_member_", "")
        leaves: List[Leaf] = []
        skipped: List[Tuple[str, Tuple[int, int]]] = []
        prefix = member + "." if member else ""
        _walk(cls, 0, prefix, newer_ok, leaves, skipped, reached)
        checks.append(Check(cls, c_type, member, leaves, skipped))
    for cls in classes:
        if "_c_name_" not in cls.__dict__ and cls not in reached:
            problems.append(f"{cls.__module__}.{cls.__qualname__}: declares no _c_name_ "
                            f"and no checked structure contains it")
    return checks, problems


def _c_program(checks: List[Check]) -> Tuple[List[str], List[Optional[str]]]:
    """The C source as lines, and for each line the key it measures (or None)."""
    lines = ["#include <stddef.h>", "#include <stdio.h>", "#include <string.h>",
             "#include <linux/bpf.h>", "#include <linux/perf_event.h>", "",
             "static void bits(const char *key, const unsigned char *p, size_t n) {",
             "    int first = -1, count = 0;",
             "    for (size_t i = 0; i < n * 8; i++)",
             "        if (p[i / 8] >> (i % 8) & 1) { if (first < 0) first = (int)i; count++; }",
             '    printf("%s bits %d %d\\n", key, first, count);',
             "}", "", "int main(void) {"]
    keys: List[Optional[str]] = [None] * len(lines)
    for check in checks:
        cls_key = f"{check.cls.__module__}.{check.cls.__qualname__}"
        if check.member and check.leaves:
            base_expr = f"offsetof({check.c_type}, {check.member})"
            lines.append(f'    printf("%s base %zu\\n", "{cls_key}", {base_expr});')
            keys.append(cls_key)
        for leaf in check.leaves:
            key = f"{cls_key}:{leaf.path}"
            keys.append(key)
            if leaf.bits is not None:
                lines.append(f"    {{ {check.c_type} v; memset(&v, 0, sizeof v); "
                             f"v.{leaf.path} = -1; bits(\"{key}\", "
                             f"(const unsigned char *)&v, sizeof v); }}")
                continue
            lines.append(f'    printf("%s at %zu %zu\\n", "{key}", '
                         f"offsetof({check.c_type}, {leaf.path}), "
                         f"sizeof((({check.c_type} *)0)->{leaf.path}));")
    lines += ["    return 0;", "}", ""]
    keys += [None] * 3
    return lines, keys


def _compile_and_run(lines: List[str], keys: List[Optional[str]], work: "os.PathLike[str]",
                     include: Optional[str]) -> Tuple[str, Dict[str, str]]:
    """Compile and run; lines gcc rejects (a member the header lacks) are dropped and
    returned as {key: gcc's message}."""
    rejected: Dict[str, str] = {}
    source = os.path.join(work, "layout.c")
    binary = os.path.join(work, "layout")
    for _ in range(3):
        with open(source, "w") as fh:
            fh.write("\n".join(lines))
        cmd = ["gcc", "-O0", "-w", "-o", binary, source]
        if include:
            cmd[1:1] = ["-I", include]
        built = subprocess.run(cmd, capture_output=True, text=True)
        if built.returncode == 0:
            run = subprocess.run([binary], capture_output=True, text=True, check=True)
            return run.stdout, rejected
        bad = {}
        for found in re.finditer(r"layout\.c:(\d+):\d+: error: (.*)", built.stderr):
            bad.setdefault(int(found.group(1)) - 1, found.group(2))
        if not bad or any(keys[i] is None for i in bad):
            raise AssertionError(f"generated C does not compile:\n{built.stderr[:4000]}")
        for i, message in bad.items():
            rejected[str(keys[i])] = message
            lines[i] = "    /* dropped */"
    raise AssertionError("generated C does not compile")


def _include_dir() -> Optional[str]:
    return os.environ.get("PYBPF_UAPI_INCLUDE") or None


@pytest.fixture(scope="module")
def c_layout(tmp_path_factory: pytest.TempPathFactory) -> Tuple[List[Check], Dict[str, tuple], Dict[str, tuple], List[str]]:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    include = _include_dir()
    if include is None and not os.path.exists("/usr/include/linux/bpf.h"):
        pytest.skip("no linux/bpf.h (install the kernel UAPI headers)")
    checks, problems = _checks(newer_ok=include is not None)
    lines, keys = _c_program(checks)
    work = str(tmp_path_factory.mktemp("uapi"))
    out, rejected = _compile_and_run(lines, keys, work, include)
    measured: Dict[str, tuple] = {}
    for line in out.splitlines():
        key, kind, *nums = line.split()
        measured[key] = (kind, *map(int, nums))
    for key, message in rejected.items():
        measured[key] = ("missing", message)
    return checks, {}, measured, problems


def test_every_structure_declares_what_it_mirrors(c_layout: tuple) -> None:
    checks, _, _, problems = c_layout
    assert not problems, "\n".join(problems)
    assert len(checks) >= 10


def test_field_offsets_and_sizes(c_layout: tuple) -> None:
    checks, expected, measured, _ = c_layout
    wrong = []
    bases: Dict[str, int] = {k: v[1] for k, v in measured.items() if v[0] == "base"}
    for check in checks:
        cls_key = f"{check.cls.__module__}.{check.cls.__qualname__}"
        if measured.get(cls_key, ("",))[0] == "missing":
            wrong.append(f"{cls_key}: linux/bpf.h has no member {check.member!r} in "
                         f"{check.c_type}")
            continue
        base = bases.get(cls_key, 0)
        for leaf in check.leaves:
            key = f"{cls_key}:{leaf.path}"
            got = measured[key]
            if got[0] == "missing":
                wrong.append(f"{key}: not found in {check.c_type} ({got[1]}); a "
                             f"member of union bpf_attr needs _c_member_, a newer field "
                             f"_newer_fields_")
                continue
            if leaf.bits is not None:
                c_first, c_width = got[1], got[2]
                want = (leaf.bits[0] + base * 8, leaf.bits[1])
                if (c_first, c_width) != want:
                    wrong.append(f"{key}: bits at {want[0]} width {want[1]} in pybpf, "
                                 f"{c_first}/{c_width} in linux/bpf.h")
                continue
            c_off, c_size = got[1], got[2]
            if c_off != leaf.offset + base:
                wrong.append(f"{key}: offset {leaf.offset + base} in pybpf, {c_off} in "
                             f"linux/bpf.h")
            if leaf.size >= 0 and c_size != leaf.size:
                wrong.append(f"{key}: size {leaf.size} in pybpf, {c_size} in linux/bpf.h")
    assert not wrong, "\n".join(wrong)


def test_structure_sizes(c_layout: tuple) -> None:
    """A structure ends where its last declared C field ends, rounded up to its
    alignment (so no field is missing at the end and no padding is wrong)."""
    checks, _, measured, _ = c_layout
    wrong = []
    for check in checks:
        if check.skipped or not check.leaves or issubclass(check.cls, ctypes.Union):
            continue
        cls_key = f"{check.cls.__module__}.{check.cls.__qualname__}"
        base = measured.get(cls_key, ("base", 0))[1] if check.member else 0
        ends = []
        for leaf in check.leaves:
            got = measured[f"{cls_key}:{leaf.path}"]
            if got[0] == "missing":
                break
            if got[0] == "at":
                ends.append(got[1] - base + got[2])
            else:
                ends.append((got[1] + got[2] + 7) // 8 - base)
        else:
            ends = ends or [0]
        if len(ends) != len(check.leaves):
            continue          # reported by test_field_offsets_and_sizes
        align = ctypes.alignment(check.cls)
        want = -(-max(ends) // align) * align
        if ctypes.sizeof(check.cls) != want:
            wrong.append(f"{cls_key}: {ctypes.sizeof(check.cls)} bytes in pybpf, its "
                         f"fields end at {max(ends)} in linux/bpf.h (so {want})")
    assert not wrong, "\n".join(wrong)


def test_newer_fields_are_declared_with_a_release(c_layout: tuple) -> None:
    checks, _, _, _ = c_layout
    for check in checks:
        for path, version in check.skipped:
            assert isinstance(version, tuple) and len(version) == 2, (check.cls, path)
            assert version > (6, 1), f"{check.cls.__qualname__}.{path}: {version} is " \
                                     f"not newer than the 6.1 header"
    if _include_dir() is None:
        names = sorted(f"{c.cls.__qualname__}:{p} ({v[0]}.{v[1]})"
                       for c in checks for p, v in c.skipped)
        if names:
            print("skipped, newer than the installed header:", ", ".join(names))
