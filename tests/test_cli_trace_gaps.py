"""``pybpf trace`` options closed after the first CLI (issue 19's gaps): ``--include``,
``-B``, ``-k``/``-kk``, ``--emit-elf``, ``-d``'s disassembly, the newer constructs
behind extensions, and the semantic corpus through load. Differential against the
installed bpftrace 0.17 where it has the behaviour (the helpers of
``tests/test_cli_trace.py``), real effects otherwise."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from typing import List

import pytest

from test_cli_trace import BPFTRACE, ROOT, needs_oracle, oracle, ours, _dry

HEADER = """\
#define FOO 42
#define BAR (FOO + 1)
#include <linux/limits.h>
struct mystruct { int a; long b; char c[8]; };
enum colour { RED = 3, GREEN };
"""


def _both(args: List[str]):
    return ours(args), oracle(args)


# ---------------------------------------------------------------------------------------
# --include FILE: clang's -include, before the program's own preamble
# ---------------------------------------------------------------------------------------

@needs_oracle
@pytest.mark.parametrize("prog", [
    'BEGIN { printf("%d %d %d %d\\n", FOO, BAR, sizeof(struct mystruct), PATH_MAX); '
    'exit(); }',
    'BEGIN { $p = (struct mystruct *)0; printf("%d\\n", sizeof($p->c)); exit(); }',
    '#define FOO 7\nBEGIN { printf("%d\\n", FOO); exit(); }',
])
def test_include_file_like_bpftrace(prog: str, tmp_path) -> None:
    hdr = tmp_path / "h.h"
    hdr.write_text(HEADER)
    mine, theirs = _both(["--include", str(hdr), "-e", prog])
    assert mine == theirs
    assert mine[0] == 0 and mine[1].startswith("Attaching 1 probe...\n")


@needs_oracle
def test_include_found_in_include_dir(tmp_path) -> None:
    (tmp_path / "h.h").write_text(HEADER)
    args = ["-I", str(tmp_path), "--include", "h.h", "-e",
            'BEGIN { printf("%d\\n", BAR); exit(); }']
    mine, theirs = _both(args)
    assert mine == theirs == (0, "Attaching 1 probe...\n43\n\n\n", "")


@needs_oracle
def test_include_missing_file_like_bpftrace() -> None:
    args = ["--include", "no-such-header.h", "-e", "BEGIN { exit(); }"]
    mine, theirs = _both(args)
    assert mine == theirs == (1, "", "fatal error: 'no-such-header.h' file not found\n")


@needs_oracle
def test_include_in_dry_run(tmp_path) -> None:
    hdr = tmp_path / "h.h"
    hdr.write_text(HEADER)
    args = ["-d", "--include", str(hdr), "-e",
            'BEGIN { $p = (struct mystruct *)0; printf("%d\\n", $p->b); }']
    mine, theirs = _both(args)
    assert mine[0] == theirs[0] == 0
    assert _dry(mine[1]).split("\nDisassembly")[0] == _dry(theirs[1])


def test_include_unreadable_construct_names_its_line(tmp_path) -> None:
    hdr = tmp_path / "t.h"
    hdr.write_text("#define Q 5\ntypedef int myint;\n")
    status, out, err = ours(["--include", str(hdr), "-e", "BEGIN { exit(); }"])
    assert status == 1 and out == ""
    assert err.startswith(f"{hdr}:2:1-8: ERROR: ")


# ---------------------------------------------------------------------------------------
# --emit-elf FILE: an object llvm-objdump and libbpf (bpftool) read
# ---------------------------------------------------------------------------------------

OBJDUMP = shutil.which("llvm-objdump-19")
BPFTOOL = shutil.which("bpftool")
needs_objdump = pytest.mark.skipif(OBJDUMP is None, reason="needs llvm-objdump-19")


def _sections(path: str) -> List[str]:
    """The program sections of an object, as llvm-objdump-19 lists them."""
    out = subprocess.run([OBJDUMP, "-h", path], capture_output=True, text=True,
                         check=True).stdout
    names = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[0].isdigit() and parts[-1] == "TEXT" \
                and parts[1] != ".text":
            names.append(parts[1])
    return names


ELF_PROGRAMS = [
    'BEGIN { @x = 1; printf("hi\\n"); } tracepoint:syscalls:sys_enter_openat '
    '{ @c[comm] = count(); } END { exit(); }',
    'tracepoint:syscalls:sys_enter_open* { @[probe] = count(); } '
    'tracepoint:syscalls:sys_enter_open* { @x[probe] = count(); }',
    't:syscalls:sys_enter_openat* { @ = count(); } i:s:1 { exit(); } i:s:1 { exit(); }',
    'tracepoint:syscalls:sys_enter_openat, tracepoint:syscalls:sys_enter_close '
    '{ @ = count(); }',
    'uprobe:/bin/bash:readline { @ = count(); }',
]


@needs_oracle
@needs_objdump
@pytest.mark.parametrize("prog", ELF_PROGRAMS)
def test_emit_elf_sections_like_bpftrace(prog: str, tmp_path) -> None:
    mine, theirs = str(tmp_path / "mine.o"), str(tmp_path / "theirs.o")
    assert ours(["--emit-elf", mine, "-e", prog]) == (0, "", "")
    assert oracle(["--emit-elf", theirs, "-e", prog])[:2] == (0, "")
    assert _sections(mine) == _sections(theirs)
    assert _sections(mine)


@needs_objdump
def test_emit_elf_disassembles_as_lowered(tmp_path) -> None:
    """llvm-objdump-19 disassembles every program section: as many instructions as
    pybpf lowered, a relocation to the right map at each map load."""
    from pybpf.bpftrace.lower import lower_program
    from pybpf.bpftrace.session import TraceOptions, front
    prog = ELF_PROGRAMS[0]
    path = str(tmp_path / "o.o")
    assert ours(["--emit-elf", path, "-e", prog])[0] == 0
    opts = TraceOptions()
    mod = lower_program(front(prog, "stdin", opts), opts)
    text = subprocess.run([OBJDUMP, "-dr", "--no-show-raw-insn", "--mcpu=v4", path],
                          capture_output=True, text=True, check=True).stdout
    chunks = text.split("Disassembly of section ")[1:]
    assert [c.split(":\n", 1)[0] for c in chunks] == [p.section for p in mod.programs]
    for chunk, p in zip(chunks, mod.programs):
        slots = [int(ln.split(":", 1)[0]) for ln in chunk.splitlines()
                 if ln[:8].strip().isdigit() and ln[8:9] == ":"]
        want, slot = [], 0
        for i in p.instructions:
            want.append(slot)
            slot += 2 if i.opcode == 0x18 else 1                 # ld_imm64: two slots
        assert slots == want
        relocs = [ln.split()[-1] for ln in chunk.splitlines() if "R_BPF_64_64" in ln]
        assert relocs == [i.reference for i in p.instructions
                          if i.opcode == 0x18 and i.reference in mod.unit.maps]
        assert relocs or p.section == "s_END_1"


@needs_oracle
@pytest.mark.skipif(BPFTOOL is None, reason="needs bpftool")
@pytest.mark.parametrize("prog,ptype", [
    ('BEGIN { @x = 1; printf("hi %d\\n", 5); } END { @y[1] = count(); }',
     "raw_tracepoint"),
    ('tracepoint:syscalls:sys_enter_openat { @[comm] = count(); '
     'printf("%s\\n", str(args->filename)); }', "tracepoint"),
])
def test_emit_elf_loads_with_libbpf(prog: str, ptype: str, tmp_path) -> None:
    """bpftool (libbpf) creates the maps from the object's BTF, relocates the map loads
    and the kernel's verifier accepts every program."""
    path = str(tmp_path / "o.o")
    assert ours(["--emit-elf", path, "-e", prog])[0] == 0
    pins = f"/sys/fs/bpf/pybpf_emit_{os.getpid()}"
    try:
        res = subprocess.run([BPFTOOL, "prog", "loadall", path, pins, "type", ptype],
                             capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        names = sorted(os.listdir(pins))
        assert len(names) == len(_sections(path))
        for n in names:
            show = subprocess.run([BPFTOOL, "prog", "show", "pinned", f"{pins}/{n}"],
                                  capture_output=True, text=True, check=True).stdout
            assert ptype in show and "map_ids" in show
    finally:
        shutil.rmtree(pins, ignore_errors=True)


# ---------------------------------------------------------------------------------------
# -B none|line|full: what the output file holds at a given point of the run
# ---------------------------------------------------------------------------------------

def _to_file(cmd: List[str], path: str, args: List[str]) -> str:
    """Run ``cmd args`` with stdout to ``path`` (a real file: the buffering of the
    process shows) and return the file's content."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BPFTRACE_")}
    env["PYTHONPATH"] = ROOT
    with open(path, "w") as fh:
        res = subprocess.run(cmd + args, stdout=fh, stderr=subprocess.PIPE, env=env,
                             timeout=120, check=False)
    assert res.returncode == 0, res.stderr
    with open(path) as fh:
        return fh.read()


BUFFERED = [
    # system() runs synchronously in the tracer: `cat` shows what was written out so far
    'BEGIN { printf("a\\n"); printf("b"); system("cat {out}"); exit(); }',
    'BEGIN { printf("a"); @x = 1; print(@x); printf("b\\n"); printf("c"); '
    'system("cat {out}"); exit(); }',
    'BEGIN { printf("a"); time("%Y\\n"); printf("b"); system("cat {out}"); exit(); }',
    # one message with text after its newline: line buffering keeps that text
    'BEGIN { printf("a\\nb"); printf("c\\nd"); system("cat {out}"); exit(); }',
]


@needs_oracle
@pytest.mark.parametrize("prog", BUFFERED)
@pytest.mark.parametrize("mode", [[], ["-B", "none"], ["-B", "line"], ["-B", "full"],
                                  ["-f", "json", "-B", "full"]])
def test_buffering_like_bpftrace(prog: str, mode: List[str]) -> None:
    import tempfile
    short = tempfile.mkdtemp(prefix="bt")      # the path must fit in a 64-byte string
    mine_path, theirs_path = f"{short}/m", f"{short}/t"
    mine = _to_file([sys.executable, "-m", "pybpf", "trace"], mine_path,
                    ["--unsafe", *mode, "-e", prog.replace("{out}", mine_path)])
    theirs = _to_file([BPFTRACE], theirs_path,
                      ["--unsafe", *mode, "-e", prog.replace("{out}", theirs_path)])
    shutil.rmtree(short, ignore_errors=True)
    assert mine == theirs
    assert mine.count("Attaching 1 probe...") == 2 or '"attached_probes"' in mine


# ---------------------------------------------------------------------------------------
# -k / -kk: failed helper calls reported where they happen
# ---------------------------------------------------------------------------------------

HELPER_ERRORS = [
    'BEGIN { @a[1] = 1; @a[2] = 2; @a[3] = 3; delete(@a[5]); $x = *(uint64 *)0; '
    'printf("%d %s\\n", @a[7], str(0)); @c = count(); exit(); }',
    'BEGIN { @h = hist(5); @s[1] = sum(2); @s[2] = sum(3); @s[3] = sum(4); '
    '$x = (uint8 *)8; printf("%d\\n", $x[1]); delete(@s[9]); exit(); }',
]


@needs_oracle
@pytest.mark.parametrize("prog", HELPER_ERRORS)
@pytest.mark.parametrize("level", ["-k", "-kk"])
@pytest.mark.parametrize("fmt", ["text", "json"])
def test_helper_errors_like_bpftrace(prog: str, level: str, fmt: str) -> None:
    env = {"BPFTRACE_MAP_KEYS_MAX": "2"}
    args = [level, "-f", fmt, "-e", prog]
    mine, theirs = ours(args, env), oracle(args, env)
    assert mine[:2] == theirs[:2]
    assert ("Failed to map_delete_elem: No such file or directory (-2)" in mine[1]
            or '"helper": "map_delete_elem", "retcode": -2' in mine[1])


@needs_oracle
@pytest.mark.parametrize("level", ["", "-k", "-kk"])
def test_helper_errors_in_tracepoint_like_bpftrace(level: str) -> None:
    """Reads of user memory that fail (-kk), a count() on a new key (-kk: the lookup
    misses), in a tracepoint fired by the -c command's own openat calls."""
    prog = ('tracepoint:syscalls:sys_enter_openat /pid == cpid/ '
            '{ printf("%s\\n", str(args->filename)); @[comm] = count(); '
            '$p = (uint64 *)args->flags; printf("%d\\n", *$p); '
            'printf("%s\\n", str(args->mode)); }')
    args = ([level] if level else []) + ["-q", "-c", "/usr/bin/true", "-e", prog]
    mine, theirs = ours(args), oracle(args)
    assert mine[:2] == theirs[:2]
    assert ("probe_read_user" in mine[1]) == (level == "-kk")


# ---------------------------------------------------------------------------------------
# newer constructs behind PYBPF_TRACE_EXTENSIONS=1: offsetof (0.18), for (0.21)
# ---------------------------------------------------------------------------------------

EXT = {"PYBPF_TRACE_EXTENSIONS": "1"}
GCC = shutil.which("gcc")


def _btf_offset(struct: str, member: str) -> int:
    """A member's byte offset in the kernel's BTF, as bpftool reads it."""
    out = subprocess.run([BPFTOOL, "btf", "dump", "file", "/sys/kernel/btf/vmlinux"],
                         capture_output=True, text=True, check=True).stdout
    block = out.split(f"STRUCT '{struct}'", 1)[1].split("\n[", 1)[0]
    for line in block.splitlines():
        if line.strip().startswith(f"'{member}' "):
            return int(line.split("bits_offset=")[1].split()[0]) // 8
    raise LookupError(member)


@pytest.mark.skipif(BPFTOOL is None or os.geteuid() != 0, reason="needs bpftool, root")
def test_offsetof_of_kernel_structs_matches_btf() -> None:
    prog = ('BEGIN { printf("%d %d %d\\n", offsetof(struct task_struct, comm), '
            'offsetof(struct task_struct, pid), offsetof(*curtask, tgid)); exit(); }')
    status, out, err = ours(["-q", "-e", prog], EXT)
    assert (status, err) == (0, "")
    want = [_btf_offset("task_struct", m) for m in ("comm", "pid", "tgid")]
    assert out.split("\n")[0].split() == [str(w) for w in want]


@pytest.mark.skipif(GCC is None or os.geteuid() != 0, reason="needs gcc, root")
def test_offsetof_of_preamble_structs_matches_gcc(tmp_path) -> None:
    hdr = tmp_path / "h.h"
    hdr.write_text(HEADER + "struct outer { char x; struct mystruct in; short y; };\n")
    fields = [("mystruct", "a"), ("mystruct", "b"), ("mystruct", "c"), ("outer", "in"),
              ("outer", "y")]
    src = tmp_path / "o.c"
    src.write_text(f'#include <stdio.h>\n#include <stddef.h>\n#include "{hdr}"\n'
                   "int main(void) { printf(\"" + " ".join(["%zu"] * len(fields)) +
                   "\\n\", " + ", ".join(f"offsetof(struct {s}, {f})" for s, f in fields)
                   + "); return 0; }\n")
    subprocess.run([GCC, "-o", str(tmp_path / "o"), str(src)], check=True)
    want = subprocess.run([str(tmp_path / "o")], capture_output=True, text=True,
                          check=True).stdout
    prog = ('BEGIN { printf("' + " ".join(["%d"] * len(fields)) + '\\n", ' +
            ", ".join(f"offsetof(struct {s}, {f})" for s, f in fields) + "); exit(); }")
    status, out, err = ours(["-q", "--include", str(hdr), "-e", prog], EXT)
    assert (status, err) == (0, "")
    assert out.split("\n")[0] + "\n" == want


@pytest.mark.parametrize("prog,message", [
    ("BEGIN { @ = offsetof(struct nope, b); }", "'struct nope' does not exist."),
    ("BEGIN { @ = offsetof(struct task_struct, nope); }",
     "'struct task_struct' has no field named 'nope'"),
    ("BEGIN { @ = offsetof(1, b); }", "offsetof() 1st argument is not of a record type."),
    ("BEGIN { for ($kv : @m) { } }", "for loops over maps (bpftrace 0.21) are not "
     "supported by pybpf yet: use print() or a loop over known keys"),
])
def test_extension_errors_are_located(prog: str, message: str) -> None:
    status, out, err = ours(["-e", prog], EXT)
    assert status == 1 and out == ""
    assert err.split("\n")[0].endswith(f": ERROR: {message}")
    assert err.startswith("stdin:1:")


@needs_oracle
@pytest.mark.parametrize("prog", ["BEGIN { @ = offsetof(struct task_struct, comm); }",
                                  "BEGIN { for ($kv : @m) { } }"])
def test_without_extensions_refused_like_bpftrace(prog: str) -> None:
    mine, theirs = _both(["-e", prog])
    assert mine == theirs and mine[0] == 1
