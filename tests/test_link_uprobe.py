"""Uprobes and uretprobes on real code: a binary built here with gcc (PIE, non-PIE, a
shared object; by symbol, sym+offset, address, raw offset), libc (getpid, malloc), bash's
readline, both mechanisms (PMU and uprobe_events), pid filtering, bad input, fast symbol
lookup, 500 attach/detach cycles."""

from __future__ import annotations

import ctypes
import os
import re
import select
import shutil
import subprocess
import time

import pytest

from pybpf.elf.libs import resolve_library
from pybpf.elf.symbols import ElfFile
from pybpf.link.uprobe import attach_uprobe, attach_uretprobe, resolve_uprobe
from pybpf.syscall.bpf import ProgType

from linkutil import NoLeaks, counter_map, counting_program, probe_events_text, root_reason

pytestmark = pytest.mark.skipif(bool(root_reason()), reason=root_reason())

SOURCE = r"""
#include <stdio.h>
#include <stdlib.h>
__attribute__((noinline)) int pybpf_target(int x) { __asm__ volatile(""); return x * 3 + 1; }
int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 1, s = 0;
    if (argc > 2) getchar();                      /* wait for a line first */
    for (int i = 0; i < n; i++) s += pybpf_target(i);
    printf("%d\n", s);
    return 0;
}
"""
LIB_SOURCE = r"""
__attribute__((noinline)) int pybpf_target(int x) { __asm__ volatile(""); return x * 3 + 1; }
"""
MAIN_FOR_LIB = r"""
#include <stdio.h>
#include <stdlib.h>
int pybpf_target(int);
int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 1, s = 0;
    for (int i = 0; i < n; i++) s += pybpf_target(i);
    printf("%d\n", s);
    return 0;
}
"""


def _gcc(*args: str) -> None:
    subprocess.run(["gcc", "-O1", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def binaries(tmp_path_factory):
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    d = tmp_path_factory.mktemp("uprobe")
    (d / "t.c").write_text(SOURCE)
    (d / "lib.c").write_text(LIB_SOURCE)
    (d / "main.c").write_text(MAIN_FOR_LIB)
    _gcc("-fPIE", "-pie", "-o", str(d / "pie"), str(d / "t.c"))
    _gcc("-fno-pie", "-no-pie", "-o", str(d / "nopie"), str(d / "t.c"))
    _gcc("-fPIC", "-shared", "-o", str(d / "libpybpftest.so"), str(d / "lib.c"))
    _gcc("-o", str(d / "uselib"), str(d / "main.c"), f"-L{d}", "-lpybpftest",
         f"-Wl,-rpath,{d}")
    return d


@pytest.fixture(scope="module")
def prog_and_counts():
    counts = counter_map()
    prog = counting_program(ProgType.KPROBE, counts, name="uprobe_count")
    yield prog, counts
    prog.close()
    counts.close()


def _run(path, n: int) -> None:
    subprocess.run([str(path), str(n)], check=True, capture_output=True)


@pytest.mark.parametrize("kind", ["pie", "nopie", "shared"])
@pytest.mark.parametrize("mode", ["pmu", "legacy"])
def test_counts_calls_in_built_binary(binaries, prog_and_counts, kind, mode):
    prog, counts = prog_and_counts
    counts[0] = 0
    target = binaries / ("libpybpftest.so" if kind == "shared" else kind)
    exe = binaries / ("uselib" if kind == "shared" else kind)
    before = probe_events_text()            # this process's probes only
    with attach_uprobe(prog, str(target), "pybpf_target", mode=mode) as link:
        assert link.details["mode"] == mode
        if mode == "legacy":
            assert link.details["event"].split("/")[1] in probe_events_text()
        _run(exe, 37)
    assert counts[0] == 37
    assert probe_events_text() == before


def _second_instruction(path, symbol: str) -> int:
    out = subprocess.run(["objdump", "-d", f"--disassemble={symbol}", str(path)],
                         capture_output=True, text=True, check=True).stdout
    addrs = [int(m.group(1), 16) for m in re.finditer(r"^\s*([0-9a-f]+):\s", out, re.M)]
    return addrs[1] - addrs[0]


def test_symbol_plus_offset_address_and_raw_offset(binaries, prog_and_counts):
    prog, counts = prog_and_counts
    exe = binaries / "nopie"
    step = _second_instruction(exe, "pybpf_target")
    with ElfFile(str(exe)) as elf:
        sym = elf.symbol("pybpf_target")
        raw = elf.file_offset(sym.value)
    for kwargs in ({"symbol": f"pybpf_target+{step}"}, {"address": sym.value},
                   {"offset": raw}):
        counts[0] = 0
        with attach_uprobe(prog, str(exe), **kwargs):
            _run(exe, 5)
        assert counts[0] == 5, kwargs


def test_uretprobe_and_pid_filter(binaries, prog_and_counts):
    prog, counts = prog_and_counts
    exe = binaries / "pie"
    counts[0] = 0
    # a process that waits for a line before calling the function
    child = subprocess.Popen(["sh", "-c", f"read x; exec {exe} 11"],
                             stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    try:
        time.sleep(0.05)
        with attach_uretprobe(prog, str(exe), "pybpf_target", pid=child.pid):
            _run(exe, 7)                      # another process: not counted
            child.stdin.write(b"go\n")
            child.stdin.close()
            child.wait(10)
        assert counts[0] == 11
    finally:
        child.kill()
        child.wait()


def test_target_by_pid_only(binaries, prog_and_counts):
    """No binary: the process's own executable (/proc/PID/exe), this process only."""
    prog, counts = prog_and_counts
    counts[0] = 0
    child = subprocess.Popen([str(binaries / "pie"), "9", "wait"], stdin=subprocess.PIPE,
                             stdout=subprocess.DEVNULL)
    try:
        time.sleep(0.05)
        with attach_uprobe(prog, symbol="pybpf_target", pid=child.pid) as link:
            assert link.details["path"] == f"/proc/{child.pid}/exe"
            _run(binaries / "pie", 4)                 # not that process: not counted
            child.communicate(b"\n", timeout=10)
        assert counts[0] == 9
    finally:
        child.kill()
        child.wait()


def test_libc_getpid_and_malloc(prog_and_counts):
    prog, counts = prog_and_counts
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    getpid = libc.getpid
    for symbol, work in (("getpid", lambda: getpid()),
                         ("malloc", lambda: libc.free(libc.malloc(24)))):
        counts[0] = 0
        with attach_uprobe(prog, "c", symbol, pid=os.getpid()):
            for _ in range(300):
                work()
        assert counts[0] >= 300, symbol


def test_bash_readline(prog_and_counts):
    """An interactive bash on a pseudo-terminal reads each command with readline."""
    prog, counts = prog_and_counts
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash")
    with ElfFile(os.path.realpath(bash)) as elf:
        if not elf.find_symbols("readline"):
            pytest.skip("this bash has no readline symbol")
    counts[0] = 0
    master, slave = os.openpty()
    child = subprocess.Popen([bash, "--norc", "--noprofile", "-i"], stdin=slave,
                             stdout=slave, stderr=slave, env={"PS1": "pybpf$ ",
                                                              "TERM": "dumb"})
    os.close(slave)
    try:
        _read_until(master, b"pybpf$ ")
        with attach_uprobe(prog, "bash", "readline", pid=child.pid):
            for _ in range(8):
                os.write(master, b"true\n")
                _read_until(master, b"pybpf$ ")
            os.write(master, b"exit\n")
            child.wait(10)
        assert counts[0] >= 8
    finally:
        child.kill()
        child.wait()
        os.close(master)


def _read_until(fd: int, marker: bytes, timeout: float = 10.0) -> None:
    seen = b""
    end = time.monotonic() + timeout
    while marker not in seen:
        ready, _, _ = select.select([fd], [], [], max(0.0, end - time.monotonic()))
        if not ready:
            raise TimeoutError(f"no {marker!r} from the terminal; got {seen[-200:]!r}")
        seen += os.read(fd, 4096)


def test_bad_input_names_close_matches(binaries, prog_and_counts):
    prog, _ = prog_and_counts
    with NoLeaks():
        with pytest.raises(LookupError, match="pybpf_target"):
            attach_uprobe(prog, str(binaries / "pie"), "pybpf_targte")
        with pytest.raises(LookupError, match="libc"):
            attach_uprobe(prog, "libcc", "malloc")
        with pytest.raises(LookupError, match="no such file"):
            attach_uprobe(prog, "/nonexistent/binary", "main")
        with pytest.raises(ValueError):
            attach_uprobe(prog, "c", "malloc+zz")
        with pytest.raises(ValueError, match="white space"):   # unsafe in uprobe_events
            _legacy_bad_path(prog, binaries)


def _legacy_bad_path(prog, binaries):
    bad = binaries / "with space"
    shutil.copy(binaries / "pie", bad)
    attach_uprobe(prog, str(bad), "pybpf_target", mode="legacy")


def _readelf_file_offset(path: str, symbol: str) -> int:
    """The oracle: the symbol's address from ``nm -D`` mapped to a file offset through
    the PT_LOAD segments ``readelf -lW`` lists."""
    nm = subprocess.run(["nm", "-D", "--defined-only", path], capture_output=True,
                        text=True, check=True).stdout
    addr = next(int(line.split()[0], 16) for line in nm.splitlines()
                if line.split()[-1] in (symbol, f"{symbol}@@GLIBC_2.2.5"))
    segs = subprocess.run(["readelf", "-lW", path], capture_output=True, text=True,
                          check=True).stdout
    for line in segs.splitlines():
        f = line.split()
        if f and f[0] == "LOAD":
            offset, vaddr, filesz = int(f[1], 16), int(f[2], 16), int(f[4], 16)
            if vaddr <= addr < vaddr + filesz:
                return addr - vaddr + offset
    raise AssertionError(f"{symbol} is in no PT_LOAD segment of {path}")


@pytest.mark.skipif(shutil.which("readelf") is None or shutil.which("nm") is None,
                    reason="binutils (readelf, nm) is the oracle of symbol offsets")
def test_libc_symbols_resolve_to_readelf_offsets():
    """libc's malloc/free/getpid resolve (ld.so.cache, ELF hash tables) to the file
    offsets binutils computes. Resolution speed is measured in benchmarks/attach.py."""
    libc = resolve_library("c")
    elf = ElfFile(libc)
    for name in ("malloc", "free", "getpid"):
        assert elf.file_offset(elf.symbol(name).value) == _readelf_file_offset(libc, name)
        assert resolve_uprobe("c", name) == (libc, _readelf_file_offset(libc, name))


def test_attach_detach_cycles_leave_nothing(binaries, prog_and_counts):
    """Fewer than 500 cycles, on purpose: removing a uprobe waits for the kernel's
    uprobe/RCU synchronisation, ~80 ms even without a program and ~120 ms with one
    here (measured; threads do not overlap them), so 500 cycles would take a minute.
    100 PMU cycles (both attach paths) and 20 through uprobe_events (each creates and
    deletes a tracefs event too) with every one checked: no fd, no tracefs entry left."""
    prog, counts = prog_and_counts
    exe = str(binaries / "nopie")
    libc = ctypes.CDLL("libc.so.6")
    counts[0] = 0
    with NoLeaks():
        for i in range(100):
            with attach_uprobe(prog, "c", "getpid", pid=os.getpid(), use_link=bool(i % 2)):
                libc.getpid()
        for _ in range(20):
            attach_uprobe(prog, exe, "pybpf_target", mode="legacy").close()
    assert counts[0] >= 100


def test_cookie(binaries):
    """counts[0] += bpf_get_attach_cookie(ctx): the perf-event bpf_link carries it
    (Linux 5.15)."""
    from pybpf.asm import R0, R1, R2, R6, R7, R10
    from pybpf.asm.builder import DW, W, Label, add, atomic_add, build, call, exit_, jeq, \
        ld_map_fd, mov, stx
    from pybpf.program import ProgramSpec
    counts = counter_map()
    insns = build([
        mov(R6, R1), call("get_attach_cookie"), mov(R7, R0),
        mov(R1, 0), stx(W, R10, -4, R1), mov(R2, R10), add(R2, -4),
        ld_map_fd(R1, counts), call("map_lookup_elem"), jeq(R0, 0, "out"),
        atomic_add(DW, R0, 0, R7), Label("out"), mov(R0, 0), exit_(),
    ])
    with ProgramSpec(ProgType.KPROBE, insns, name="cookie").load() as prog:
        with attach_uprobe(prog, str(binaries / "pie"), "pybpf_target", cookie=7) as link:
            assert link.details["via"] == "bpf_link"
            _run(binaries / "pie", 3)
    assert counts[0] == 21
    counts.close()
