"""Semantic analysis of the bpftrace front end (``pybpf.bpftrace.semantic`` and its
helpers) against the installed bpftrace 0.17, the oracle.

``bpftrace -d`` parses, runs its semantic passes, prints the typed tree ("AST after:
Semantic") and compiles, without attaching anything. So for every program:

* accepted by bpftrace: our typed tree, printed by ``typed_dump`` the way bpftrace's
  ``-d`` prints it, is the same text (every literal, builtin, call, map, variable and
  operator with its type, context flag and address space; the inserted map-key casts;
  the attach points after resolution), and our warnings are bpftrace's;
* refused by bpftrace: we refuse it with the same diagnostics, byte for byte (every
  error of the failing pass, with its location, source line and marks, after the
  warnings printed before them);

for (a) bpftrace's own tools (``/usr/sbin/*.bt``: ``dpkg -L bpftrace``), and (b)/(c)
a corpus of refused and accepted programs (``tests/data/bpftrace_semantic_corpus.txt``:
type errors, unknown builtins and identifiers, wrong argument counts and types, bad
field access, map key/value mismatches, unsafe calls, printf formats, probe-type
restrictions, positional parameters; and programs covering every builtin, function,
operator and probe type this machine has). Only messages bpftrace prints after its
semantic stage (code generation: "Addrspace is not set", LLVM's stack limit, USDT
argument lookup, kernel symbol resolution) are set aside.

Plus unit tests of the parts with no oracle run (type spelling and layout, printf
format checks, C type mapping, the data model handed to lowering). The oracle tests
skip, naming why, without bpftrace or root.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
from typing import List, Optional, Sequence, Tuple

import pytest

from bpftrace_tools.harness import clang_header_refusal
from pybpf.bpftrace.errors import BpftraceError, render_diagnostic
from pybpf.bpftrace.parser import parse_program
from pybpf.bpftrace.probes import ProbeEnv, parse_attach_points
from pybpf.bpftrace.sema_calls import validate_format
from pybpf.bpftrace.semantic import SemaOptions, analyse, stoll
from pybpf.bpftrace.structs import StructManager
from pybpf.bpftrace.typed_dump import dump_program
from pybpf.bpftrace.types import (create_int, create_string, create_tuple, create_uint,
                                  create_uint64)

BPFTRACE = shutil.which("bpftrace")
needs_oracle = pytest.mark.skipif(
    BPFTRACE is None or os.geteuid() != 0,
    reason="needs bpftrace 0.17 (apt-get install bpftrace) and root")
CORPUS = os.path.join(os.path.dirname(__file__), "data", "bpftrace_semantic_corpus.txt")
#: what bpftrace prints outside its semantic stage (start-up, code generation)
_NOISE = re.compile(
    r"Error while reading traceable functions from [^\n]*?Operation not permitted"
    r"|ERROR: Unknown error -1: couldn't set RLIMIT_MEMLOCK[^\n]*\n?"
    r"|WARNING: Could not read symbols from [^\n]*\n?"
    r"|WARNING: Addrspace is not set\n?"
    r"|ERROR: couldn't get argument \d+ for [^\n]*\n?"
    r"|ERROR: Failed to compile: [^\n]*\n?"
    r"|error: <unknown>:0:0: [^\n]*\n?")


def _corpus(section: str) -> List[Tuple[str, Tuple[str, ...]]]:
    out, current = [], None
    with open(CORPUS) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            if line.startswith("[") and line.endswith("]"):
                current = line[1:-1]
                continue
            if current == section:
                prog, _, params = line.partition(" ## ")
                out.append((prog, tuple(params.split())))
    return out


def _tools() -> List[str]:
    try:
        listed = subprocess.run(["dpkg", "-L", "bpftrace"], capture_output=True,
                                text=True, timeout=30).stdout.split()
    except (OSError, subprocess.SubprocessError):
        listed = []
    tools = sorted(p for p in listed if p.endswith(".bt") and os.path.isfile(p))
    return tools or sorted(glob.glob("/usr/sbin/*.bt"))


def oracle(prog: str, params: Sequence[str] = (), path: Optional[str] = None
           ) -> Tuple[Optional[str], str]:
    """bpftrace -d: (the typed tree after its semantic pass or None, stderr without
    start-up and code-generation noise)."""
    cmd = ["bpftrace", "-d", path] if path else ["bpftrace", "-d", "-e", prog]
    res = subprocess.run(cmd + list(params), capture_output=True, text=True, timeout=120)
    err = _NOISE.sub("", res.stderr).strip("\n")
    # the resource pass (after the printed tree) can still refuse: lhist bounds
    if "AST after: Semantic" not in res.stdout or re.search(r"^\S+:\d+:\d+-\d+: ERROR: ",
                                                            err, re.M):
        return None, err
    sec = res.stdout.split("AST after: Semantic\n-------------------\n", 1)[1]
    sec = sec.split("\n\nAST after:", 1)[0]
    return sec[sec.find("Program\n"):].rstrip("\n"), err


def ours(src: str, filename: str = "stdin", params: Sequence[str] = ()
         ) -> Tuple[Optional[str], str]:
    """Our analysis: (the typed tree or None, the diagnostics as bpftrace prints them)."""
    env = ProbeEnv(params=params)
    try:
        prog = parse_program(src, filename, headers=True)
        aps = parse_attach_points(prog, env, src, filename)
        res = analyse(prog, aps, env, source=src, filename=filename)
    except BpftraceError as exc:
        early = [render_diagnostic(d, src, filename) for d in getattr(exc, "warnings", [])]
        return None, "\n".join(early + [str(exc)]).strip("\n")
    warnings = "\n".join(render_diagnostic(d, src, filename) for d in res.warnings)
    return dump_program(res.program, aps).rstrip("\n"), warnings.strip("\n")


def _agree(want: Tuple[Optional[str], str], got: Tuple[Optional[str], str]) -> None:
    if want[0] is None:
        assert got[0] is None, f"bpftrace refuses it:\n{want[1]}\nwe accept it"
        assert got[1] == want[1]
    else:
        assert got[0] is not None, f"bpftrace accepts it; we refuse it:\n{got[1]}"
        assert got[0] == want[0]
        assert got[1] == want[1]


# -- (a) bpftrace's own tools -------------------------------------------------------------

@needs_oracle
@pytest.mark.parametrize("path", _tools(), ids=os.path.basename)
def test_tool_like_bpftrace(path: str) -> None:
    with open(path) as f:
        src = f.read()
    want, got = oracle(src, path=path), ours(src, path)
    clang = clang_header_refusal(want[1]) if want[0] is None else None
    if clang and got != want:
        pytest.xfail(f"bpftrace's clang parse of the headers refuses it on this machine "
                     f"({clang}); pybpf does not model that parse")
    _agree(want, got)


# -- (b) refused programs, (c) accepted programs -------------------------------------------

@needs_oracle
@pytest.mark.parametrize("prog,params", _corpus("refused"), ids=lambda x: str(x)[:60])
def test_refused_like_bpftrace(prog: str, params: Tuple[str, ...]) -> None:
    want = oracle(prog, params)
    assert want[0] is None, "bpftrace 0.17 now accepts this corpus entry"
    _agree(want, ours(prog, params=params))


@needs_oracle
@pytest.mark.parametrize("prog,params", _corpus("accepted"), ids=lambda x: str(x)[:60])
def test_types_like_bpftrace(prog: str, params: Tuple[str, ...]) -> None:
    want = oracle(prog, params)
    assert want[0] is not None, f"bpftrace 0.17 now refuses this corpus entry: {want[1]}"
    _agree(want, ours(prog, params=params))


def test_corpus_size() -> None:
    assert len(_corpus("refused")) >= 130 and len(_corpus("accepted")) >= 90


# -- units --------------------------------------------------------------------------------

def test_type_spelling_and_layout() -> None:
    assert str(create_uint64()) == "unsigned int64" and str(create_int(8)) == "int8"
    t = create_tuple([create_int(64), create_string(3), create_uint(8)])
    assert str(t) == "(int64,string[3],unsigned int8)"
    assert [f.offset for f in t.fields] == [0, 8, 11] and t.size == 16
    assert t.dump() == "type[(int64,string[3],unsigned int8), ctx: 0]"


def test_printf_formats() -> None:
    s, i = create_string(4), create_int(64)
    assert validate_format("%s %d", [s, i], "printf") == ""
    assert validate_format("%d", [], "printf") == \
        "printf: Not enough arguments for format string (0 supplied, 1 expected)"
    assert validate_format("%rx", [i], "printf") == \
        "printf: %rx specifier expects a value of type buffer (integer supplied)"
    assert validate_format("%-08.3lld", [i], "printf") == ""
    assert validate_format("%c %c %c %c", [i] * 4, "debugf") == \
        "debugf: Cannot use more than 3 conversion specifiers"


def test_stoll_is_bpftraces_is_numeric() -> None:
    assert [stoll(x) for x in ("12", " 12", "0x10", "010", "-5", "+3")] == \
        [12, 12, 16, 8, -5, 3]
    assert [stoll(x) for x in ("", "12a", "0x", "08", "1 ")] == [None] * 5


def test_c_types_without_btf() -> None:
    m = StructManager(btf=None)
    assert str(m.c_type("const char *")) == "int8 *"
    assert str(m.c_type("char[16]")) == "string[16]"
    assert str(m.c_type("unsigned char[6]")) == "unsigned int8[6]"
    assert str(m.c_type("long unsigned int")) == "unsigned int64"
    assert str(m.c_type("u32")) == "unsigned int32" and str(m.c_type("_Bool")) == \
        "unsigned int8"


def test_preamble_struct_layout() -> None:
    src = ("struct s { char c; int i; unsigned long long u; char name[5]; "
           "unsigned int a:3, b:7; };\nBEGIN { $p = (struct s *)0; @x = $p->b; "
           "@n = $p->name; }")
    prog = parse_program(src)
    env = ProbeEnv()
    res = analyse(prog, parse_attach_points(prog, env, src), env,
                  SemaOptions(btf=None), src)
    st = res.structs.lookup("struct s")
    assert st is not None and st.size == 24           # as gcc lays it out
    assert [(f.name, f.offset) for f in st.fields] == \
        [("c", 0), ("i", 4), ("u", 8), ("name", 16), ("a", 21), ("b", 21)]
    b = st.field("b").bitfield
    assert b is not None and (b.read_bytes, b.rshift, b.mask) == (2, 3, 0x7f)
    assert str(res.maps["@x"].value) == "unsigned int64"
    assert str(res.maps["@n"].value) == "string[5]"



def test_kernel_records_kept_for_later_programs_yield_to_a_preamble() -> None:
    """Kernel records made from BTF for one program are kept for the next ones (on the
    BTF object), with the layout the BTF gives; a program whose preamble defines a
    record that a kernel record uses gets its own definition inside the kernel's
    record, and the programs after it the kernel's layout again."""
    from pybpf.btf import vmlinux
    from pybpf.btf.resolve import offsetof, sizeof
    try:
        btf = vmlinux()
    except (OSError, ValueError) as exc:
        pytest.skip(f"no kernel BTF: {exc}")

    def layout(src: str) -> Tuple[int, int, str, int]:
        prog = parse_program(src)
        env = ProbeEnv()
        res = analyse(prog, parse_attach_points(prog, env, src), env,
                      SemaOptions(btf=btf), src)
        st = res.structs.lookup("struct file")
        assert st is not None
        path = st.field("f_path").type
        return st.size, st.field("f_flags").offset, str(st.field("f_flags").type), \
            path.struct.size
    kernel = "BEGIN { @x = ((struct file *)0)->f_flags; @y = ((struct file *)0)->f_path; }"
    file_id, path_id = btf.type_id("file", "struct"), btf.type_id("path", "struct")
    want = (sizeof(btf, file_id), offsetof(btf, file_id, "f_flags"), "unsigned int32",
            sizeof(btf, path_id))
    assert layout(kernel) == want
    assert layout(kernel) == want
    own = "struct path { char one; };\n" + kernel
    assert layout(own) == want[:3] + (1,)
    assert layout(kernel) == want


def test_data_model_for_lowering() -> None:
    src = ('BEGIN { @c[comm, (uint8)1] = count(); @s = "ab"; @s = "abcd"; $v = 1; '
           'printf("%s %d\\n", comm, $v); @h = lhist(5, 0, 10, 1); time(); '
           'print(@c); exit(); }')
    prog = parse_program(src)
    env = ProbeEnv()
    res = analyse(prog, parse_attach_points(prog, env, src), env, source=src)
    c = res.maps["@c"]
    assert c.kind == "count" and [str(k) for k in c.key] == ["string[16]", "unsigned int64"]
    assert str(res.maps["@s"].value) == "string[5]"
    assert res.maps["@h"].lhist == (0, 10, 1)
    assert {k: str(v) for k, v in res.probes[0].variables.items()} == {"$v": "int64"}
    kinds = [(a.kind, a.fmt) for a in res.actions]
    assert kinds == [("printf", "%s %d\n"), ("time", "%H:%M:%S\n"), ("print", "@c"),
                     ("exit", None)]
    assert [str(t) for t in res.actions[0].args] == ["string[16]", "int64"]
    # the map key (uint8)1 was widened by an inserted cast, as bpftrace does
    key = prog.probes[0].body[0].map.keys[1]
    assert getattr(key, "implicit", False) and str(key.ty) == "unsigned int64"


def test_errors_collected_per_pass() -> None:
    src = 'BEGIN { $x = 1; $x = "a"; @a = count(); @a = 1; printf("%s", 1); }'
    prog = parse_program(src)
    env = ProbeEnv()
    with pytest.raises(BpftraceError) as info:
        analyse(prog, parse_attach_points(prog, env, src), env, source=src)
    # two errors of the first pass; the printf check belongs to the last pass
    assert info.value.prefixes() == [
        ("stdin:1:20-21", "Type mismatch for $x: trying to assign value of type "
                          "'string[2]' when variable already contains a value of type "
                          "'int64'"),
        ("stdin:1:41-43", "Type mismatch for @a: trying to assign value of type 'int64' "
                          "when map already contains a value of type 'count")]


def test_unsafe_gate() -> None:
    src = 'BEGIN { system("true"); }'
    prog = parse_program(src)
    env = ProbeEnv()
    aps = parse_attach_points(prog, env, src)
    with pytest.raises(BpftraceError, match="unsafe function being used in safe mode"):
        analyse(prog, aps, env, source=src)
    res = analyse(parse_program(src), aps, env, SemaOptions(unsafe=True), src)
    assert [a.kind for a in res.actions] == ["system"]


# -- random programs (fixed seed) ----------------------------------------------------------

def _random_programs(n: int) -> List[str]:
    import random
    rnd = random.Random(7)
    atoms = ["1", "-1", "comm", "pid", "curtask", "$x", "@m", "@m[1]", '"s"', "(1,2)",
             "args", "ctx", "retval", "kstack", "(uint8)1", "curtask->comm", "str(1)",
             "buf(1,2)", 'pton("1.2.3.4")', "$1", "$#", "arg0", "probe", "username",
             "nsecs", "(struct task_struct *)0", "*curtask", "ksym(1)", '(1,"a").1']
    ops = ["+", "-", "*", "/", "%", "==", "!=", "<", ">", "&&", "||", "&", "|", "^",
           "<<", ">>"]
    forms = ['printf("%d\\n", {})', "print({})", "str({})", "buf({})", "ntop({})",
             "@x = {}", "$v = {}", "@k[{}] = 1", "if ({}) {{ }}", "@h = hist({})",
             "kstack({})", "join({})", 'strncmp({}, "a", 1)', "sizeof({})", "bswap({})",
             "macaddr({})", "@c = sum({})", "$n = -{}", "$n = !{}", "$n = ~{}",
             "$n = {} ? 1 : 2", "$n = {}.0", "$n = {}[0]", "$n = {}->pid",
             "$n = (uint32){}", "delete({})", "clear({})"]
    probes = ["BEGIN", "kprobe:vfs_read", "tracepoint:syscalls:sys_enter_read",
              "profile:hz:99", "kretprobe:vfs_read"]
    out = []
    for _ in range(n):
        a, b = rnd.choice(atoms), rnd.choice(atoms)
        e = rnd.choice([a, f"{a} {rnd.choice(ops)} {b}"])
        out.append(f"{rnd.choice(probes)} {{ $x = 1; @m[1] = 2; "
                   f"{rnd.choice(forms).format(e)}; }}")
    return out


@needs_oracle
@pytest.mark.parametrize("prog", _random_programs(60), ids=lambda x: x[:60])
def test_random_program_like_bpftrace(prog: str) -> None:
    _agree(oracle(prog, ("5",)), ours(prog, params=("5",)))


@needs_oracle
def test_strlen_like_bpftrace() -> None:
    src = "BEGIN { @x = str(1); @y = buf(1, 40); }"
    res = subprocess.run(["bpftrace", "-d", "-e", src], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "BPFTRACE_STRLEN": "32"})
    assert "type[string[32]" in res.stdout and "type[buffer[33]" in res.stdout
    assert "shortened to 32 bytes (see BPFTRACE_STRLEN)" in res.stderr
    tree = parse_program(src)
    env = ProbeEnv()
    got = analyse(tree, parse_attach_points(tree, env, src), env, SemaOptions(strlen=32),
                  src)
    assert str(got.maps["@x"].value) == "string[32]"
    assert str(got.maps["@y"].value) == "buffer[33]"
    assert "shortened to 32 bytes" in got.warnings[0].message


def test_scalar_typedef_table_agrees_with_kernel_btf() -> None:
    """The typedefs resolved without BTF (so that a tracepoint program need not parse
    the kernel's BTF) are what the kernel's BTF says, integer size, sign and plain-char
    alike, for every one this kernel's BTF has."""
    from pybpf.bpftrace.structs import _FALLBACK_TYPEDEFS
    from pybpf.btf import vmlinux
    try:
        btf = vmlinux()
    except (OSError, ValueError) as exc:
        pytest.skip(f"no kernel BTF: {exc}")
    from pybpf.btf import types as bt
    with_btf, table = StructManager(None, btf), StructManager(None, None)
    checked = 0
    for name, target in _FALLBACK_TYPEDEFS.items():
        ids = btf.ids(name, "typedef")
        if not ids:
            continue
        _tid, inner = with_btf._skip(ids[0])
        want = (with_btf.btf_sized(ids[0]), isinstance(inner, bt.Int) and inner.name == "char")
        assert table._named(target) == want, name
        assert table.c_type(name) == want[0] and table.c_type(name + " *") == \
            with_btf.c_type(name + " *"), name
        checked += 1
    assert checked >= 60


def test_tracepoint_program_reads_no_btf() -> None:
    """A tracepoint program on base-typed and common typedef'd fields (openat's
    ``umode_t mode``) is typed from the format file alone: the kernel's BTF, seconds of
    parsing at start-up, is never asked for; the types are the ones BTF gives."""
    if not os.path.exists("/sys/kernel/tracing/events/syscalls/sys_enter_openat/format"):
        pytest.skip("no syscalls:sys_enter_openat tracepoint")
    src = ('tracepoint:syscalls:sys_enter_openat { printf("%s %d %d\\n", '
           'str(args->filename), args->mode, args->flags); }')
    asked: List[int] = []

    def btf() -> None:
        asked.append(1)
        return None
    env = ProbeEnv()
    tree = parse_program(src)
    res = analyse(tree, parse_attach_points(tree, env, src), env, SemaOptions(btf=btf), src)
    assert not asked
    no_btf = res.structs.tracepoint("syscalls", "sys_enter_openat")
    from pybpf.btf import vmlinux
    kernel = StructManager(None, vmlinux()).tracepoint("syscalls", "sys_enter_openat")
    assert no_btf is not None and kernel is not None and no_btf.same_layout(kernel)
    assert no_btf.field("mode").type == create_uint(16)
