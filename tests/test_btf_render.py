"""pybpf.btf.render: C text from BTF.

* the whole ``pybpf btf dump --format c`` of the running kernel compiles with gcc, and
  gcc lays every named struct and union out as the BTF says (size and the offset of
  every member, checked with ``_Static_assert``; bitfields by setting them at run time);
* a built blob full of awkward cases (packed and over-aligned aggregates, straddling
  bitfields, duplicate names, anonymous and small enums, function pointers) does too;
* single-type rendering reads as C.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from typing import List

import pytest

from pybpf.btf import Kind
from pybpf.btf.builder import BTFBuilder
from pybpf.btf.render import HeaderRenderer, render_header, render_type
from pybpf.btf.types import Composite

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HAVE_VMLINUX = os.path.exists("/sys/kernel/btf/vmlinux")
needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")
needs_vmlinux = pytest.mark.skipif(not HAVE_VMLINUX, reason="no /sys/kernel/btf/vmlinux")


def _gcc(tmp_path, name: str, source: str, *, run: bool = False) -> str:
    path = tmp_path / name
    path.write_text(source)
    if not run:
        done = subprocess.run(["gcc", "-fsyntax-only", "-w", str(path)], capture_output=True,
                              text=True, cwd=tmp_path, timeout=300)
        assert done.returncode == 0, done.stderr[-4000:]
        return ""
    exe = tmp_path / (name + ".bin")
    done = subprocess.run(["gcc", "-O0", "-w", "-o", str(exe), str(path)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    return subprocess.run([str(exe)], capture_output=True, text=True, check=True,
                          timeout=120).stdout


def _layout_checks(btf, renderer: HeaderRenderer, header: str) -> List[str]:
    """_Static_asserts of every named aggregate's size and named members' offsets."""
    lines = [f'#include "{header}"', "#define OFF(t, m) __builtin_offsetof(t, m)"]
    for kind in (Kind.STRUCT, Kind.UNION):
        for type_id in btf.ids_of_kind(kind, own=False):
            t = btf.type(type_id)
            if not t.name:
                continue
            tag = f"{t.kind_name} {renderer.tag_name(t)}"
            lines.append(f'_Static_assert(sizeof({tag}) == {t.size}, "[{type_id}] size");')
            for m in t.members:
                if m.name and not m.bitfield_size:
                    lines.append(f"_Static_assert(OFF({tag}, {m.name}) == {m.bit_offset // 8}"
                                 f', "[{type_id}] {m.name}");')
    return lines


def _bitfield_program(btf, renderer: HeaderRenderer, header: str, limit: int) -> str:
    """A program printing where gcc puts each bitfield (first bit, width)."""
    lines = ["#include <stdio.h>", "#include <string.h>", f'#include "{header}"',
             "static unsigned char buf[1 << 16];",
             "static void bits(int id, const char *m, unsigned long n) {",
             "  unsigned long first = ~0UL, count = 0;",
             "  for (unsigned long i = 0; i < n * 8; i++)",
             "    if (buf[i / 8] >> (i % 8) & 1) { if (first == ~0UL) first = i; count++; }",
             '  printf("%d %s %lu %lu\\n", id, m, first, count); }',
             "int main(void) {"]
    count = 0
    for type_id in btf.ids_of_kind(Kind.STRUCT, own=False):
        t = btf.type(type_id)
        if not t.name:
            continue
        for m in t.members:
            if m.bitfield_size and m.name and count < limit:
                tag = f"struct {renderer.tag_name(t)}"
                lines.append(f"  memset(buf, 0, sizeof(buf)); (({tag} *)buf)->{m.name} = -1;")
                lines.append(f'  bits({type_id}, "{m.name}", sizeof({tag}));')
                count += 1
    return "\n".join(lines + ["  return 0;", "}"]) + "\n"


def _check_bitfields(btf, output: str) -> int:
    checked = 0
    for line in output.splitlines():
        type_id, name, first, width = line.split()
        member = btf.type(int(type_id)).member(name)
        assert (int(first), int(width)) == (member.bit_offset, member.bitfield_size), line
        checked += 1
    return checked


# ---------------------------------------------------------------------------------------
# The running kernel
# ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def kernel_header(tmp_path_factory):
    if not HAVE_VMLINUX or shutil.which("gcc") is None:
        pytest.skip("needs /sys/kernel/btf/vmlinux and gcc")
    work = tmp_path_factory.mktemp("header")
    path = work / "vmlinux.h"
    with open(path, "w") as fh:
        run = subprocess.run([sys.executable, "-m", "pybpf", "btf", "dump", "--format", "c"],
                             stdout=fh, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                             timeout=300)
    assert run.returncode == 0, run.stderr
    return work, path


@needs_vmlinux
@needs_gcc
def test_full_dump_compiles(kernel_header) -> None:
    work, path = kernel_header
    text = path.read_text()
    assert "struct task_struct {" in text and text.rstrip().endswith("*/")
    source = work / "use.c"
    source.write_text('#include "vmlinux.h"\n'
                      "int f(struct task_struct *t) { return t->pid + t->real_parent->tgid; }\n"
                      "int g(struct sk_buff *s) { return s->len; }\n")
    done = subprocess.run(["gcc", "-c", "-Wall", "-o", os.devnull, str(source)],
                          capture_output=True, text=True, cwd=work, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]


@needs_vmlinux
@needs_gcc
def test_full_dump_layouts_match_btf(kernel_header) -> None:
    from pybpf.btf import vmlinux
    work, _ = kernel_header
    btf = vmlinux()
    renderer = HeaderRenderer(btf)
    renderer.render()                      # the names it chooses (same as the CLI's)
    lines = _layout_checks(btf, renderer, "vmlinux.h")
    assert len(lines) > 1000
    _gcc(work, "layout.c", "\n".join(lines) + "\n")


@needs_vmlinux
@needs_gcc
def test_full_dump_bitfields_match_btf(kernel_header) -> None:
    from pybpf.btf import vmlinux
    work, _ = kernel_header
    btf = vmlinux()
    renderer = HeaderRenderer(btf)
    renderer.render()
    out = _gcc(work, "bits.c", _bitfield_program(btf, renderer, "vmlinux.h", 3000),
               run=True)
    assert _check_bitfields(btf, out) > 100


@needs_vmlinux
def test_render_type_reads_as_c() -> None:
    from pybpf.btf import vmlinux
    btf = vmlinux()
    text = render_type(btf, "task_struct")
    assert text.startswith("struct task_struct {")
    assert "\tstruct task_struct *real_parent;" in text
    assert "char comm[16];" in text
    off = btf.find("task_struct").member("real_parent").bit_offset // 8
    assert f"*real_parent;\t/* {off} 8 */" in text
    plain = render_type(btf, "task_struct", offsets=False)
    assert "/*" not in plain
    assert render_type(btf, "btf_trace_sched_switch").startswith("typedef void (*btf_trace_")
    assert "kfree(const void *object);" in render_type(btf, "kfree")
    attr = render_type(btf, "union bpf_attr")
    assert attr.startswith("union bpf_attr {") and "\tstruct {" in attr


# ---------------------------------------------------------------------------------------
# Awkward cases, built
# ---------------------------------------------------------------------------------------

def awkward_blob() -> BTFBuilder:
    b = BTFBuilder()
    char = b.add_int("char", 1, char=True)
    u8 = b.add_int("unsigned char", 1)
    u16 = b.add_int("short unsigned int", 2)
    u32 = b.add_int("unsigned int", 4)
    s32 = b.add_int("int", 4, signed=True)
    u64 = b.add_int("long long unsigned int", 8)
    odd = b.add_int("ssizetype", 8, signed=True)            # not a C spelling
    # packed: a u32 at offset 1, size 5
    b.add_struct("packed_one", 5, [("c", u8, 0), ("v", u32, 8)])
    # over-aligned: members end at 12, size 64 (a ____cacheline_aligned struct)
    b.add_struct("cacheline", 64, [("a", u64, 0), ("b", u32, 64)])
    # a gap in the middle (an aligned member) and a bitfield crossing its unit (packed)
    b.add_struct("gappy", 48, [("a", u8, 0), ("b", u64, 256), ("x", u32, 320, 3)])
    b.add_struct("crossing", 8, [("lo", u32, 0, 30), ("hi", u32, 30, 4), ("z", u16, 48)])
    # a union larger than its members
    b.add_union("big_union", 32, [("a", u32, 0), ("b", u64, 0)])
    # duplicate tags and typedefs, a struct and a union of one name
    b.add_struct("dup", 4, [("x", u32, 0)])
    second = b.add_struct("dup", 8, [("x", u64, 0)])
    b.add_union("dup", 2, [("y", u16, 0)])
    b.add_typedef("dup_t", u32)
    b.add_typedef("dup_t", u64)
    # enums: a small one, an anonymous one used twice, one typedef'd, duplicates, 64-bit
    small = b.add_enum("tiny", [("T_A", 0), ("T_B", 3)], size=1)
    anon = b.add_enum("", [("ANON_A", 1), ("ANON_B", 2)])
    anon2 = b.add_enum("", [("ONLY_TD", 1)])
    b.add_typedef("only_td_t", anon2)
    b.add_enum("again", [("T_A", 7)])                         # T_A defined twice
    wide = b.add_enum("wide", [("W_BIG", 1 << 40), ("W_NEG", -5)], size=8)
    odd_size = b.add_enum("odd_size", [("O_ONE", 1)], size=2)
    # function pointers, arrays of them, const pointers
    proto = b.add_func_proto(s32, [("a", b.add_ptr(char)), ("n", u32)], variadic=True)
    fptr = b.add_ptr(proto)
    cptr = b.add_const(b.add_ptr(b.add_const(char)))
    b.add_typedef("handler_t", fptr)
    holder = b.add_struct("holder", 96, [
        ("table", b.add_array(fptr, 4), 0),
        ("name", cptr, 256),
        ("t", small, 320), ("e1", anon, 352), ("e2", anon, 384),
        ("w", wide, 448), ("o", odd_size, 512), ("d", second, 576), ("n", odd, 640),
        ("anon", b.add_struct("", 8, [("p", u32, 0), ("q", u32, 32, 5)]), 704),
    ])
    b.add_ptr(holder)
    # a self-referential struct through a typedef
    node = b.reserve()
    node_t = b.add_typedef("node_t", node)
    b.add_struct("node", 16, [("next", b.add_ptr(node_t), 0), ("v", s32, 64)], id=node)
    b.add_float("double", 8)
    b.add_type_tag("rcu", u32)
    return b


@needs_gcc
def test_awkward_blob_header_compiles_with_btf_layouts(tmp_path) -> None:
    btf = awkward_blob().parse("awkward")
    renderer = HeaderRenderer(btf)
    text = renderer.render()
    (tmp_path / "awkward.h").write_text(text)
    lines = _layout_checks(btf, renderer, "awkward.h")
    lines.append('_Static_assert(sizeof(enum tiny) == 1, "tiny");')
    lines.append("int use(void) { return T_A + T_A___2 + ANON_B + W_BIG > 0; }")
    _gcc(tmp_path, "awkward.c", "\n".join(lines) + "\n")
    out = _gcc(tmp_path, "awkward_bits.c",
               _bitfield_program(btf, renderer, "awkward.h", 100), run=True)
    assert _check_bitfields(btf, out) == 3
    assert "struct dup___2 {" in text and "union dup___3 {" in text
    assert "typedef long long unsigned int dup_t___2;" in text
    assert "typedef enum {" in text and "} only_td_t;" in text
    assert "__attribute__((packed))" in text


def test_render_type_on_built_blob() -> None:
    btf = awkward_blob().parse("awkward")
    holder = render_type(btf, "holder")
    assert "int (*table[4])(char *a, unsigned int n, ...);" in holder
    assert "const char *const name;" in holder
    assert "\tstruct {\n" in holder and "unsigned int q: 5;\t/* 92:0 5 bits */" in holder
    assert render_type(btf, "handler_t").startswith("typedef int (*handler_t)(")
    assert "struct node_t" not in render_type(btf, "node") and \
        "node_t *next;" in render_type(btf, "node")
    assert render_type(btf, "enum wide", offsets=False) == \
        "enum wide {\n\tW_BIG = 1099511627776ULL,\n\tW_NEG = -5,\n};"
    assert isinstance(btf.find("holder"), Composite)
    assert render_header(btf).count("struct holder {") == 1


@needs_vmlinux
def test_cli_dump_find_field(capsys) -> None:
    from pybpf.cli import main
    assert main(["btf", "dump", "struct list_head"]) == 0
    out = capsys.readouterr().out
    assert "struct list_head {" in out and "*next;\t/* 0 8 */" in out
    assert main(["btf", "dump", "list_head", "--format", "text"]) == 0
    assert "STRUCT 'list_head' size=16 vlen=2" in capsys.readouterr().out
    assert main(["btf", "find", "bpf_iter_task"]) == 0
    found = capsys.readouterr().out
    assert "STRUCT bpf_iter_task" in found and "FUNC bpf_iter_task" in found
    assert main(["btf", "field", "task_struct.real_parent.tgid"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and "pointer, followed" in lines[0]
    assert main(["btf", "dump", "no_such_type_anywhere"]) == 1
    assert "no type named 'no_such_type_anywhere'" in capsys.readouterr().err
