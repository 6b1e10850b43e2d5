"""Bad input on the command line gives one located line on stderr (exit 1, no
traceback) saying what is wrong and what to do; what already worked keeps working.

The files are made per session: assembly with bad bytes, a clang-19-built object cut at
several points (the sizes its headers need come from ``readelf -h``), a corrupt object,
a map pinned in /sys/fs/bpf, programs the verifier refuses.
"""

from __future__ import annotations

import errno
import os
import random
import re
import shutil
import subprocess
import sys
from ctypes import c_uint32, c_uint64
from typing import Dict, Tuple

import pytest

from bpfenv import BPF_UNAVAILABLE
from cliharness import ROOT, Outcome, assert_one_line_error, run

HERE = os.path.dirname(os.path.abspath(__file__))
CLANG = shutil.which("clang-19")
READELF = shutil.which("readelf") or shutil.which("llvm-readelf-19")
LLVM_MC = shutil.which("llvm-mc-19")


def _kernel_run_unavailable() -> str:
    if BPF_UNAVAILABLE:
        return BPF_UNAVAILABLE
    from pybpf.conformance.kernel import kernel_unavailable
    return kernel_unavailable() or ""


#: why a case cannot run here, per requirement ("" when it can)
NEEDS: Dict[str, str] = {
    "clang": "" if CLANG else "clang-19 is not installed (Debian package clang-19)",
    "readelf": "" if READELF else "readelf is not installed (binutils)",
    "bpf": BPF_UNAVAILABLE,
    "kernel-run": "",           # filled lazily: probing loads a map
}


def _need(what: str) -> None:
    if what == "kernel-run" and not NEEDS[what]:
        NEEDS[what] = _kernel_run_unavailable() or "-"
    reason = NEEDS.get(what, "")
    if reason and reason != "-":
        pytest.skip(reason)


def _readelf_header(path: str) -> Dict[str, int]:
    """``readelf -h``'s numbers: the independent answer to what size a file needs."""
    text = subprocess.run([READELF, "-h", path], capture_output=True, text=True,
                          check=True).stdout
    values = {}
    for key, label in (("shoff", "Start of section headers"),
                       ("ehsize", "Size of this header"),
                       ("shentsize", "Size of section headers"),
                       ("shnum", "Number of section headers")):
        found = re.search(label + r":\s+(\d+)", text)
        assert found, (label, text)
        values[key] = int(found.group(1))
    return values


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Dict[str, str]:
    """Paths of the inputs of the cases, by name."""
    top = tmp_path_factory.mktemp("hardening")
    made: Dict[str, str] = {"dir": str(top)}

    def write(name: str, data: bytes) -> None:
        path = top / name
        path.write_bytes(data)
        made[name] = str(path)

    write("latin1.s", b"r0 = 1\n\n  r0 += 2 ; caf\xe9\nexit\n")
    write("badop.s", b"r0 = 1\n  frob r1\nexit\n")
    write("good.s", b"r0 = 42\nexit\n")
    write("syntax.py", b"import os\nprint((1,\n")
    write("trailing.bin", bytes.fromhex("b7000000 2a000000 9500"))
    write("verifier.s", b"r0 = 1\nr2 = *(u64 *)(r3 + 0)\nexit\n")
    write("verifier2.s", b"r0 = 0\nr1 = *(u64 *)(r1 + 0)\nr1 += 1\n"
                         b"  r0 = *(u64 *)(r1 + 0)\nexit\n")
    if CLANG:
        obj = str(top / "counter.o")
        subprocess.run([CLANG, "-O2", "-g", "-target", "bpf", "-c",
                        os.path.join(HERE, "data", "objects", "counter.c"), "-o", obj],
                       check=True)
        made["counter.o"] = obj
        data = open(obj, "rb").read()
        from elftools.elf.elffile import ELFFile
        with open(obj, "rb") as fh:
            elf = ELFFile(fh)
            names = [sec.name for sec in elf.iter_sections()]
            btf = elf.get_section_by_name(".BTF")["sh_offset"]
        symtab = names.index(".symtab")
        # the .symtab header's sh_entsize (the last 8 bytes of its 64-byte entry) = 7
        bad = bytearray(data)
        entry = elf["e_shoff"] + symtab * elf["e_shentsize"]
        bad[entry + 56:entry + 64] = (7).to_bytes(8, "little")
        write("badsymtab.o", bytes(bad))
        bad = bytearray(data)
        bad[btf:btf + 2] = b"\0\0"          # the BTF magic, 0xeb9f
        write("badbtf.o", bytes(bad))
    return made


@pytest.fixture(scope="module")
def pinned(files) -> str:
    """A hash map {1: 42} pinned in /sys/fs/bpf, removed after the module."""
    if BPF_UNAVAILABLE:
        pytest.skip(BPF_UNAVAILABLE)
    from pybpf.maps import HashMap
    path = f"/sys/fs/bpf/pybpf_hardening_{os.getpid()}"
    m = HashMap(key=c_uint32, value=c_uint64, max_entries=4, name="hardening")
    m[1] = 42
    m.pin(path)
    yield path
    os.unlink(path)
    m.close()


def _expand(args: Tuple[str, ...], files: Dict[str, str], request) -> list:
    out = []
    for word in args:
        if "{pin}" in word:
            word = word.replace("{pin}", request.getfixturevalue("pinned"))
        out.append(word.format(**{k.replace(".", "_"): v for k, v in files.items()}))
    return out


# (id, requirement, args, stdin, exit status, words on the one stderr line, or on stdout
# for status 0)
CASES = [
    # 1. a file that is not UTF-8: the file, line, column and byte offset
    ("asm-not-utf8", "", ("asm", "{latin1_s}"), None, 1,
     ("latin1.s:3:16:", "not UTF-8", "0xe9", "offset 23")),
    ("exec-not-utf8", "", ("exec", "--vm", "{latin1_s}"), None, 1,
     ("latin1.s:3:16:", "not UTF-8")),
    ("vm-not-utf8", "", ("vm", "run", "{latin1_s}"), None, 1, ("latin1.s:3:16:", "not UTF-8")),
    # 3. an odd number of hex digits, with the count
    ("hex-odd", "", ("disasm", "--hex", "b70"), None, 1, ("--hex", "3 hex digits", "odd")),
    ("hex-odd-spaced", "", ("disasm", "--hex", "b7 00 00 00 2a 00 00 00 9"), None, 1,
     ("17 hex digits", "odd")),
    # 5. a corrupt object
    ("btf-corrupt-symtab", "clang", ("btf", "dump", "--file", "{badsymtab_o}"), None, 1,
     ("badsymtab.o", "malformed ELF file", ".symtab")),
    ("disasm-corrupt-symtab", "clang", ("disasm", "{badsymtab_o}"), None, 1,
     ("badsymtab.o", "malformed object", ".symtab")),
    ("btf-corrupt-magic", "clang", ("btf", "dump", "--file", "{badbtf_o}"), None, 1,
     ("badbtf.o", "magic")),
    # 6. run: a directory, a file that is not Python
    ("run-directory", "", ("run", "{dir}"), None, 1,
     ("is a directory", "tool name", "python file")),
    ("run-passwd", "", ("run", "/etc/passwd"), None, 1,
     ("/etc/passwd:1:", "SyntaxError", "python program")),
    ("run-syntax", "", ("run", "{syntax_py}"), None, 1,
     ("syntax.py:2:", "SyntaxError", "never closed", "python program")),
    # 7. pinned paths: nothing there, a file outside the BPF file system
    ("map-missing-pin", "bpf", ("map", "dump", "/sys/fs/bpf/pybpf_nonexistent"), None, 1,
     ("/sys/fs/bpf/pybpf_nonexistent", "nothing is pinned there", "ENOENT")),
    ("map-not-bpffs", "bpf", ("map", "dump", "/etc/passwd"), None, 1,
     ("/etc/passwd", "not a pinned BPF object", "not in a BPF file system")),
    ("map-show-not-bpffs", "bpf", ("map", "show", "/etc/passwd"), None, 1,
     ("/etc/passwd", "not a pinned BPF object")),
    ("map-not-dir", "bpf", ("map", "dump", "/etc/passwd/x"), None, 1,
     ("/etc/passwd/x", "not a directory")),
    # 9. the verifier's complaint at the line of the user's program
    ("exec-verifier-uninit", "kernel-run", ("exec", "{verifier_s}"), None, 1,
     ("verifier.s:2:1: verifier: R3 !read_ok", "instruction 1:", "r3")),
    ("exec-verifier-scalar", "kernel-run", ("exec", "{verifier2_s}", "--mem",
                                                   "01 02 03 04 05 06 07 08"), None, 1,
     ("verifier2.s:4:3: verifier:", "invalid mem access", "instruction 3:")),
    # what worked before and still does
    ("asm-bad-mnemonic", "", ("asm", "{badop_s}"), None, 1,
     ("badop.s:2:3: error: unknown instruction", "'frob'", "expected")),
    ("asm-missing-file", "", ("asm", "/nonexistent/x.s"), None, 1,
     ("no such file", "/nonexistent/x.s")),
    ("asm-stdin", "", ("asm", "-", "-o", "{dir}/stdin.bin"), "r0 = 1\nexit\n", 0, ()),
    ("hex-not-hex", "", ("disasm", "--hex", "zz"), None, 1, ("--hex", "'z'", "not a hex")),
    ("hex-valid", "", ("disasm", "--hex", "b7 00 00 00 2a 00 00 00 95 00 00 00 00 00 00 00"),
     None, 0, ("r0 = 0x2a", "exit")),
    ("disasm-trailing", "", ("disasm", "{trailing_bin}"), None, 1, ("multiple of 8",)),
    ("disasm-object", "clang", ("disasm", "{counter_o}"), None, 0,
     ("Disassembly of section tracepoint/syscalls/sys_enter_getppid", "<count_getppid>:")),
    ("btf-object", "clang", ("btf", "dump", "--file", "{counter_o}"), None, 0,
     ("FUNC 'count_getppid'",)),
    ("exec-vm", "", ("exec", "--vm", "{good_s}"), None, 0, ("0x2a",)),
    ("exec-kernel", "kernel-run", ("exec", "{good_s}"), None, 0, ("0x2a",)),
    ("run-missing-file", "", ("run", "/nonexistent/tool.py"), None, 1, ("no such file",)),
    ("run-unknown-tool", "", ("run", "no_such_tool_here"), None, 1,
     ("no tool named 'no_such_tool_here'",)),
    ("map-unknown-id", "bpf", ("map", "dump", "4000000000"), None, 1, ("no map with id",)),
    ("map-dump-pinned", "bpf", ("map", "dump", "{pin}"), None, 0,
     ("key: 01 00 00 00  value: 2a 00 00 00 00 00 00 00", "Found 1 element")),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_cli_message(case, files, request) -> None:
    _, need, args, stdin, status, words = case
    if need:
        _need(need)
    out = run(_expand(args, files, request), stdin=stdin)
    if status:
        assert_one_line_error(out, *words, status=status)
    else:
        assert out.returncode == 0 and not out.error_lines, out.stderr
        for word in words:
            assert word in out.stdout, (word, out.stdout[-2000:])
    if case[0] == "asm-stdin" and LLVM_MC:    # the same text through llvm-mc
        shown = subprocess.run([LLVM_MC, "-triple", "bpfel", "-show-encoding"],
                               input=stdin, capture_output=True, text=True, check=True).stdout
        want = bytes(int(b, 16) for enc in re.findall(r"encoding: \[([^]]*)\]", shown)
                     for b in enc.split(","))
        with open(os.path.join(files["dir"], "stdin.bin"), "rb") as fh:
            assert fh.read() == want


def _closed_stdin(*args: str) -> Outcome:
    """``pybpf ARGS`` with file descriptor 0 closed (``<&-``)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(["sh", "-c", 'exec "$0" -m pybpf "$@" <&-', sys.executable, *args],
                          capture_output=True, text=True, env=env, cwd=str(ROOT), timeout=60)
    return Outcome(proc.returncode, proc.stdout, proc.stderr)


@pytest.mark.parametrize("args", [("asm", "-"), ("disasm", "-"), ("exec", "--vm", "-"),
                                  ("vm", "run", "-")])
def test_closed_stdin(args) -> None:
    """2: reading '-' with standard input closed."""
    assert_one_line_error(_closed_stdin(*args), "standard input is closed", "FILE")


def _cut_points(size: int) -> list:
    rnd = random.Random(1234)
    return sorted({1, 4, 10, 15, 16, 20, 63, 64, 100, size // 2, size - 1}
                  | {rnd.randrange(1, size) for _ in range(5)})


def test_truncated_objects_on_the_command_line(files) -> None:
    """4: a clang-built object cut short, read by each command that reads objects."""
    _need("clang")
    _need("readelf")
    whole = open(files["counter.o"], "rb").read()
    head = _readelf_header(files["counter.o"])
    table_end = head["shoff"] + head["shnum"] * head["shentsize"]
    cut_path = os.path.join(files["dir"], "cut.o")
    for cut in _cut_points(len(whole)):
        with open(cut_path, "wb") as fh:
            fh.write(whole[:cut])
        needs = 16 if cut < 16 else head["ehsize"] if cut < head["ehsize"] else table_end
        for args in (("disasm", cut_path), ("btf", "dump", "--file", cut_path)):
            out = run(args)
            if cut < 4:     # not even the magic: disasm reads raw bytes, btf raw BTF
                assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
                continue
            assert_one_line_error(out, cut_path, "truncated ELF file", f"({cut} bytes;",
                                  f"needs {needs})")


def test_every_truncation_is_an_object_error(files) -> None:
    """4: read_object and disasm_object on every prefix of a real object."""
    _need("clang")
    from pybpf.object import ObjectError, disasm_object, read_object
    whole = open(files["counter.o"], "rb").read()
    for cut in range(4, len(whole)):
        for reader in (read_object, disasm_object):
            with pytest.raises(ObjectError, match="truncated ELF file") as info:
                reader(whole[:cut])
            assert f"({cut} bytes;" in str(info.value)


def test_map_too_large() -> None:
    """8: max_entries beyond what a hash map's tables allow: E2BIG with the value."""
    if BPF_UNAVAILABLE:
        pytest.skip(BPF_UNAVAILABLE)
    from pybpf.maps import HashMap
    from pybpf.syscall.errors import NotSupportedError
    with pytest.raises(OSError) as info:
        HashMap(key=c_uint32, value=c_uint64, max_entries=2 ** 31).close()
    err = info.value
    assert err.errno == errno.E2BIG and not isinstance(err, NotSupportedError)
    text = str(err)
    assert "max_entries 2147483648" in text and "too large" in text, text
    assert "older" not in text, text
    assert "\n" not in text


@pytest.mark.parametrize("tool, args, shell_tail, words", [
    ("bashreadline", ["-s", "/nonexistent/libreadline.so"], "",
     ["bashreadline: unknown binary '/nonexistent/libreadline.so'", "no such file"]),
    ("opensnoop", ["-d", "1"], ">&-", ["opensnoop: standard output is closed"]),
])
def test_tools_run_directly_print_one_line(tool, args, shell_tail, words) -> None:
    """``python3 programs/NAME.py`` reports a user error as ``NAME: message`` on one line
    with status 1, as ``pybpf run NAME`` does; PYBPF_DEBUG=1 shows the traceback."""
    import shlex
    script = os.path.join(ROOT, "programs", f"{tool}.py")
    command = " ".join(shlex.quote(w) for w in [sys.executable, script, *args])
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(["sh", "-c", f"{command} {shell_tail}"], capture_output=True,
                          text=True, timeout=60, env=env, stdin=subprocess.DEVNULL)
    out = Outcome(proc.returncode, proc.stdout, proc.stderr)
    assert_one_line_error(out, *words)
    debug = subprocess.run(["sh", "-c", f"{command} {shell_tail}"], capture_output=True,
                           text=True, timeout=60, stdin=subprocess.DEVNULL,
                           env=dict(env, PYBPF_DEBUG="1"))
    assert debug.returncode == 1 and "Traceback" in debug.stderr
