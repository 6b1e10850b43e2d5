"""pybpf.symbolize against independent oracles: kernel addresses read from
/proc/kallsyms here; user addresses printed by C programs built with gcc (PIE,
non-PIE, a shared library, a library dlopen'ed later, a stripped binary) and named by
binutils (readelf's symbol table, addr2line -f, nm -D); exited processes, deleted
files, execve; the stack formatting helpers."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from typing import Dict, List, Tuple

import pytest

from pybpf.asm.assembler import assemble
from pybpf.program import ProgramSpec
from pybpf.symbolize import (UNKNOWN, Frame, KernelSymbols, UserSymbols, folded,
                             frame_names, kernel_symbols, stack_addresses, stack_lines)
from pybpf.syscall.bpf import ProgType

from bpfenv import needs_bpf


# -- kernel ------------------------------------------------------------------------------
def _kallsyms() -> List[Tuple[int, str, str, str]]:
    out = []
    with open("/proc/kallsyms") as fh:
        for line in fh:
            parts = line.split()
            mod = parts[3].strip("[]") if len(parts) > 3 else ""
            out.append((int(parts[0], 16), parts[1], parts[2], mod))
    return out


@pytest.fixture(scope="module")
def kallsyms():
    entries = _kallsyms()
    if not any(a for a, *_ in entries):
        pytest.skip("/proc/kallsyms hides addresses here (needs root, kptr_restrict)")
    return entries


def _unique_text(entries, wanted) -> Dict[str, Tuple[int, str]]:
    """name -> (address, module) for text symbols alone at their address."""
    at: Dict[int, int] = {}
    for a, _t, _n, _m in entries:
        at[a] = at.get(a, 0) + 1
    return {n: (a, m) for a, t, n, m in entries
            if t in "tT" and at[a] == 1 and (wanted is None or n in wanted)}


def test_kernel_functions_name_themselves(kallsyms):
    wanted = {"vfs_read", "vfs_write", "ksys_read", "do_sys_openat2", "schedule",
              "do_nanosleep", "kmem_cache_alloc_noprof", "__x64_sys_getpid"}
    found = _unique_text(kallsyms, wanted)
    assert len(found) >= 4, found
    ks = kernel_symbols()
    assert kernel_symbols() is ks and ks.available     # read once per process
    for name, (addr, mod) in found.items():
        assert ks.lookup(addr) == Frame(addr, name, 0, mod, True)
        f = ks.lookup(addr + 1)
        assert (f.name, f.offset) == (name, 1)
        assert f.format(offsets=True) == f"{name}+0x1"
        assert f.format(annotate=True) == f"{name}_[k]"
        assert ks.address(name) == addr


def test_kernel_every_unique_text_symbol(kallsyms):
    """All text symbols alone at their address name themselves (module symbols with
    their module); BPF programs are left out: other processes load and unload them
    between the two reads."""
    ks = kernel_symbols()
    found = _unique_text(kallsyms, None)
    assert len(found) > 1000
    wrong = [(n, hex(a)) for n, (a, m) in found.items()
             if not n.startswith(("__pfx_", "__cfi_")) and m != "bpf"
             and ks.lookup(a) != Frame(a, n, 0, m, True)]
    assert not wrong, wrong[:10]


@needs_bpf
def test_kernel_bpf_program_symbols(kallsyms):
    """A JIT-ed BPF program is a text symbol of module ``bpf``; a new
    :class:`KernelSymbols` sees programs loaded after the process-wide one was read."""
    with open("/proc/sys/net/core/bpf_jit_kallsyms") as fh:
        if fh.read().strip() != "1":
            pytest.skip("BPF JIT symbols are off (net.core.bpf_jit_kallsyms)")
    spec = ProgramSpec(ProgType.SOCKET_FILTER, assemble("r0 = 0\nexit\n"), name="symtest")
    with spec.load() as prog:
        name = f"bpf_prog_{prog.tag}_symtest"
        addr = next(a for a, _t, n, m in _kallsyms() if n == name and m == "bpf")
        f = KernelSymbols().lookup(addr + 2)
    assert (f.name, f.offset, f.module) == (name, 2, "bpf")
    assert f.format(offsets=True, modules=True, annotate=True) == f"{name}+0x2 [bpf]_[k]"


def test_kernel_data_ends_the_text(kallsyms):
    """An address at a data symbol is not 'the previous function + offset'."""
    ks = kernel_symbols()
    text = {a for a, t, _n, _m in kallsyms if t in "tTwW"}
    data = [a for a, t, n, _m in kallsyms if t in "dDbBrR" and a not in text][:50]
    assert data
    for a in data:
        assert ks.lookup(a).name == UNKNOWN
    first = min(a for a, *_ in kallsyms if a)
    assert ks.lookup(first - 1) == Frame(first - 1, UNKNOWN, 0, "", True)


def test_kernel_hidden_addresses(tmp_path):
    p = tmp_path / "kallsyms"
    p.write_text("0000000000000000 T vfs_read\n0000000000000000 t helper\t[mod]\n")
    ks = KernelSymbols(str(p))
    assert not ks.available
    assert ks.lookup(0xffffffff81000000).name == UNKNOWN
    assert not KernelSymbols(str(tmp_path / "missing")).available


def test_kernel_aliases_prefer_global(tmp_path):
    p = tmp_path / "kallsyms"
    p.write_text("ffffffff81000000 t local_first\nffffffff81000000 T global_one\n"
                 "ffffffff81000000 W weak_one\nffffffff81000010 T next_one\n"
                 "ffffffff81000020 D some_data\n")
    ks = KernelSymbols(str(p))
    assert ks.lookup(0xffffffff8100000f) == Frame(0xffffffff8100000f, "global_one", 15,
                                                  "", True)
    assert ks.lookup(0xffffffff81000011).name == "next_one"
    assert ks.lookup(0xffffffff81000021).name == UNKNOWN


# -- user space ---------------------------------------------------------------------------
MAIN = r"""
#include <dlfcn.h>
#include <stdio.h>
#include <unistd.h>
int lib_gamma(int);
void *lib_gamma_addr(void);
__attribute__((noinline)) int alpha(int x) { __asm__ volatile(""); return x + 1; }
__attribute__((noinline)) static int beta(int x) { __asm__ volatile(""); return x * 2; }
static void say(const char *name, void *p) { printf("%s %p\n", name, p); fflush(stdout); }
int main(int argc, char **argv) {
    char line[64];
    say("alpha", (void *)alpha); say("beta", (void *)beta); say("main", (void *)main);
    say("lib_gamma", lib_gamma_addr()); say("ready", 0);
    if (!fgets(line, sizeof line, stdin)) return 0;
    void *h = dlopen(argv[1], RTLD_NOW);
    say("late_delta", h ? dlsym(h, "late_delta") : 0); say("ready", 0);
    if (!fgets(line, sizeof line, stdin)) return 0;
    if (argc > 2) execv(argv[2], argv + 2);
    return alpha(1) + beta(2) + lib_gamma(3);
}
"""
LIB = r"""
__attribute__((noinline)) int lib_gamma(int x) { __asm__ volatile(""); return x - 1; }
__attribute__((noinline)) static int lib_hidden(int x) { __asm__ volatile(""); return ~x; }
void *lib_gamma_addr(void) { return lib_hidden(0) ? (void *)lib_gamma : 0; }
"""
LATE = r"""
__attribute__((noinline)) int late_delta(int x) { __asm__ volatile(""); return x ^ 5; }
"""
OTHER = r"""
#include <stdio.h>
__attribute__((noinline)) int omega_one(int x) { __asm__ volatile(""); return x + 7; }
__attribute__((noinline)) int omega_two(int x) { __asm__ volatile(""); return x + 9; }
int main(void) {
    char line[64];
    printf("omega_one %p\nomega_two %p\nready (nil)\n", (void *)omega_one,
           (void *)omega_two);
    fflush(stdout);
    if (fgets(line, sizeof line, stdin)) return omega_one(1) + omega_two(2);
    return 0;
}
"""


def _gcc(*args: str) -> None:
    subprocess.run(["gcc", "-O1", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    for tool in ("gcc", "readelf", "addr2line", "nm", "strip"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    if os.geteuid() != 0:
        pytest.skip("needs root (/proc/PID/map_files, /proc/PID/mem)")
    d = tmp_path_factory.mktemp("symbolize")
    for name, text in (("main.c", MAIN), ("lib.c", LIB), ("late.c", LATE),
                       ("other.c", OTHER)):
        (d / name).write_text(text)
    _gcc("-fPIC", "-shared", "-o", str(d / "libgamma.so"), str(d / "lib.c"))
    _gcc("-fPIC", "-shared", "-o", str(d / "liblate.so"), str(d / "late.c"))
    link = [f"-L{d}", "-lgamma", f"-Wl,-rpath,{d}", "-ldl"]
    _gcc("-fPIE", "-pie", "-o", str(d / "pie"), str(d / "main.c"), *link)
    _gcc("-fno-pie", "-no-pie", "-o", str(d / "nopie"), str(d / "main.c"), *link)
    _gcc("-fPIE", "-pie", "-rdynamic", "-o", str(d / "stripped"), str(d / "main.c"), *link)
    subprocess.run(["strip", str(d / "stripped")], check=True)
    _gcc("-fno-pie", "-no-pie", "-o", str(d / "other"), str(d / "other.c"))
    return d


class Child:
    """A built program, started; ``addrs`` what it printed before each 'ready'."""

    def __init__(self, *argv: str) -> None:
        self.proc = subprocess.Popen(list(argv), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        self.pid = self.proc.pid
        self.addrs: Dict[str, int] = {}
        self.read()

    def read(self) -> None:
        for line in self.proc.stdout:
            name, value = line.split()
            if name == "ready":
                return
            self.addrs[name] = int(value, 16)
        raise AssertionError("the program ended early")

    def go(self) -> None:
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def end(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def run(built):
    children: List[Child] = []

    def start(exe: str, *more: str) -> Child:
        c = Child(str(built / exe), str(built / "liblate.so"), *more)
        children.append(c)
        return c
    yield start
    for c in children:
        c.end()


def _functions(path, aliases: bool = False) -> Dict[int, Tuple[str, int]]:
    """readelf's defined FUNC symbols of ``path``: value -> (name, size); addresses with
    several names are dropped, or with ``aliases`` give the public name (the fewest
    leading underscores: ``getrandom`` for ``__vdso_getrandom``)."""
    out = subprocess.run(["readelf", "-sW", str(path)], capture_output=True, text=True,
                         check=True).stdout
    seen: Dict[int, List[Tuple[str, int]]] = {}
    for m in re.finditer(r"^\s*\d+:\s+([0-9a-f]+)\s+(\d+)\s+FUNC\s+\w+\s+\w+\s+(\d+)\s+"
                         r"(\S+)", out, re.M):
        value, size, name = int(m.group(1), 16), int(m.group(2)), m.group(4)
        if value:
            seen.setdefault(value, [])
            if (name.split("@")[0], size) not in seen[value]:
                seen[value].append((name.split("@")[0], size))
    if aliases:
        return {v: min(names, key=lambda ns: len(ns[0]) - len(ns[0].lstrip("_")))
                for v, names in seen.items()}
    return {v: names[0] for v, names in seen.items() if len(names) == 1}


def _addr2line(path, addrs: List[int]) -> List[str]:
    out = subprocess.run(["addr2line", "-f", "-e", str(path), *map(hex, addrs)],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    return out[0::2]


def _check_file(syms: UserSymbols, pid: int, path, bias: int, module: str) -> None:
    """Every function of ``path`` (readelf), at its start and in its middle, is named
    as readelf and addr2line name it, with the mapped file as module."""
    funcs = _functions(path)
    assert funcs
    for value, (name, size) in funcs.items():
        f = syms.lookup(pid, bias + value)
        assert (f.name, f.offset, f.module) == (name, 0, module), (name, hex(value))
    middles = {v + s // 2: n for v, (n, s) in funcs.items() if s > 1}
    oracle = _addr2line(path, list(middles))
    for (addr, name), theirs in zip(middles.items(), oracle):
        f = syms.lookup(pid, bias + addr)
        assert f.name == theirs == name and f.offset == addr - min(
            v for v in funcs if v <= addr and v + funcs[v][1] > addr)


def _nm(path, name: str, dynamic: bool = False) -> int:
    out = subprocess.run(["nm", "--defined-only", *(["-D"] if dynamic else []), str(path)],
                         capture_output=True, text=True, check=True).stdout
    return next(int(a, 16) for a, _t, n in (line.split() for line in out.splitlines()
                                           if len(line.split()) == 3) if n == name)


@pytest.mark.parametrize("exe", ["pie", "nopie"])
def test_user_functions_named_like_binutils(built, run, exe):
    child = run(exe)
    syms = UserSymbols()
    bias = child.addrs["main"] - _nm(built / exe, "main")
    assert (bias == 0) == (exe == "nopie")
    for name in ("alpha", "beta", "main"):
        f = syms.lookup(child.pid, child.addrs[name])
        assert (f.name, f.offset, f.module) == (name, 0, str(built / exe))
        assert f.format(offsets=True) == name + "+0x0"
    _check_file(syms, child.pid, built / exe, bias, str(built / exe))
    lib = built / "libgamma.so"
    lib_bias = child.addrs["lib_gamma"] - _nm(lib, "lib_gamma")
    assert lib_bias > 0
    _check_file(syms, child.pid, lib, lib_bias, str(lib))
    frames = syms.stack(child.pid, [child.addrs["alpha"] + 1, child.addrs["lib_gamma"]])
    assert frame_names(frames, offsets=True, modules=True) == (
        f"alpha+0x1 [{exe}]", "lib_gamma+0x0 [libgamma.so]")


def test_user_stripped_binary_uses_dynsym(built, run):
    child = run("stripped")
    syms = UserSymbols()
    bias = child.addrs["main"] - _nm(built / "stripped", "main", dynamic=True)
    assert syms.lookup(child.pid, child.addrs["alpha"] + 2)[1:3] == ("alpha", 2)
    assert bias + _nm(built / "stripped", "alpha", dynamic=True) == child.addrs["alpha"]
    # beta is static: no symbol left; it is unknown, not "the function before it"
    f = syms.lookup(child.pid, child.addrs["beta"])
    assert (f.name, f.module) == (UNKNOWN, str(built / "stripped"))


def test_user_library_loaded_after_first_lookup(built, run):
    child = run("pie")
    syms = UserSymbols()
    assert syms.lookup(child.pid, child.addrs["alpha"]).name == "alpha"
    child.go()
    child.read()                          # now liblate.so is loaded
    f = syms.lookup(child.pid, child.addrs["late_delta"] + 3)
    assert (f.name, f.offset, f.module) == ("late_delta", 3, str(built / "liblate.so"))
    assert syms.lookup(child.pid, child.addrs["alpha"]).name == "alpha"


def test_user_exited_process(built, run):
    child = run("pie")
    early = UserSymbols()
    assert early.lookup(child.pid, child.addrs["alpha"]).name == "alpha"
    child.proc.kill()
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)     # a zombie, not reaped
    assert early.lookup(child.pid, child.addrs["main"]).name == "main"
    child.end()
    late = UserSymbols()
    assert late.lookup(child.pid, child.addrs["alpha"]) == Frame(
        child.addrs["alpha"], UNKNOWN, 0, "", False)
    assert frame_names(late.stack(child.pid, [child.addrs["beta"], 1])) == (UNKNOWN,) * 2
    # what was read while it ran still names its stacks
    assert early.lookup(child.pid, child.addrs["beta"]).name == "beta"
    assert early.lookup(child.pid, 8).name == UNKNOWN


def test_user_deleted_executable(built, run, tmp_path):
    copy = tmp_path / "gone"
    shutil.copy(built / "pie", copy)
    child = Child(str(copy), str(built / "liblate.so"))
    try:
        os.unlink(copy)
        f = UserSymbols().lookup(child.pid, child.addrs["beta"] + 1)
        assert (f.name, f.offset, f.module) == ("beta", 1, f"{copy} (deleted)")
    finally:
        child.end()


def test_user_execve_replaces_the_cache(built, run):
    """The same pid runs another non-PIE program: its functions at fixed addresses are
    named from the new image, not the cached one."""
    child = run("nopie", str(built / "other"))
    syms = UserSymbols()
    assert syms.lookup(child.pid, child.addrs["alpha"]).name == "alpha"
    child.go()
    child.read()
    child.go()
    child.read()                          # omega_one, omega_two from the new image
    for name in ("omega_one", "omega_two"):
        f = syms.stack(child.pid, [child.addrs[name]])[0]
        assert (f.name, f.module) == (name, str(built / "other"))
        assert child.addrs[name] == _nm(built / "other", name)


def test_user_vdso(built):
    """This process's vDSO functions (exported twice: ``__vdso_time`` and ``time``),
    named by their public names, read from the process's memory."""
    with open("/proc/self/maps") as fh:
        line = next((x for x in fh if x.rstrip().endswith("[vdso]")), None)
    if line is None:
        pytest.skip("no [vdso] mapping")
    start = int(line.split("-")[0], 16)
    with open("/proc/self/mem", "rb", buffering=0) as fh:
        fh.seek(start)
        image = fh.read(int(line.split()[0].split("-")[1], 16) - start)
    vdso = built / "vdso.so"
    vdso.write_bytes(image)
    funcs = _functions(vdso, aliases=True)
    assert funcs
    syms = UserSymbols()
    for value, (name, _size) in funcs.items():
        f = syms.lookup(os.getpid(), start + value + 1)   # the vDSO is linked at 0
        assert (f.name, f.offset, f.module) == (name, 1, "[vdso]")


# -- formatting ---------------------------------------------------------------------------
def test_formatting():
    k = [Frame(0x10, "vfs_read", 0x12, "", True), Frame(0x20, "ksys_read", 4, "", True)]
    u = [Frame(0x30, "read", 9, "/usr/lib/libc.so.6", False),
         Frame(0x40, UNKNOWN, 0, "", False)]
    assert frame_names(k, annotate=True) == ("vfs_read_[k]", "ksys_read_[k]")
    assert frame_names(k, offsets=True) == ("vfs_read+0x12", "ksys_read+0x4")
    assert frame_names(u, offsets=True, modules=True, annotate=True) == (
        "read+0x9 [libc.so.6]", UNKNOWN)
    assert stack_lines(["a", "b"]) == ["    a", "    b"]
    kn, un = frame_names(k), frame_names(u)
    assert folded("cat", un, kn, 7) == "cat;[unknown];read;ksys_read;vfs_read 7"
    assert folded("cat", un, kn, 7, delimiter=True) == \
        "cat;[unknown];read;-;ksys_read;vfs_read 7"
    assert folded("cat", (), kn, 1, delimiter=True) == "cat;ksys_read;vfs_read 1"


def test_stack_addresses():
    stacks = {3: [0x10, 0x20, 0]}
    assert stack_addresses(stacks, 3) == [0x10, 0x20]
    assert stack_addresses(stacks, 4) is None
    assert stack_addresses(stacks, -14) is None
